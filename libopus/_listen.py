"""The listening side of libopus through the shim: the FARGAN vocoder (dnn/fargan.c), Burg's cepstral analysis
(dnn/freq.c) and the neural PLC (dnn/lpcnet_plc.c), each on caller-owned state.

These are the oracles the reference vocoder and PLC are compared with: the same feature vectors in, the same
samples out, with libopus' own CPU dispatch (``opus_select_arch``).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from opus_dred.libopus._oracle import Oracle, OracleError

_f32 = np.float32


def _fp(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def _i16p(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))


@dataclass(frozen=True)
class ListenLayout:
    """Sizes of the build's FARGAN and PLC structures (``shim_listen_layout``)."""

    sizeof_fargan: int
    sizeof_plc: int
    cont_samples: int
    frame_size: int
    nb_features: int
    cont_vectors: int
    plc_buf_size: int
    plc_max_fec: int
    nb_bands: int


def listen_layout(oracle: Oracle) -> ListenLayout:
    vals = (ctypes.c_int * 9)()
    if oracle._lib.shim_listen_layout(vals) != 9:  # pragma: no cover - ABI checked at load
        raise OracleError("shim_listen_layout returned an unexpected count")
    return ListenLayout(*list(vals))


class LibopusFargan:
    """libopus' ``FARGANState`` (``fargan_init``): :meth:`cont` primes it from known speech, :meth:`synthesize`
    makes 160 samples at 16 kHz per feature vector."""

    def __init__(self, oracle: Oracle):
        self.oracle = oracle
        self.layout = listen_layout(oracle)
        self._mem = ctypes.create_string_buffer(self.layout.sizeof_fargan + 64)
        oracle._lib.shim_fargan_init(self._mem)

    def cont(self, pcm0: np.ndarray, features0: np.ndarray) -> None:
        """``fargan_cont``: ``pcm0`` the last 320 samples (float, int16 scale / 32768), ``features0`` the 5 feature
        vectors ``[5, 20]`` that describe them and the frame to come."""
        lay = self.layout
        p = np.ascontiguousarray(pcm0, _f32).reshape(-1)
        f = np.ascontiguousarray(features0, _f32).reshape(-1)
        if p.shape[0] != lay.cont_samples or f.shape[0] != lay.cont_vectors * lay.nb_features:
            raise ValueError(f"fargan_cont takes {lay.cont_samples} samples and {lay.cont_vectors}x"
                             f"{lay.nb_features} features")
        self.oracle._lib.shim_fargan_cont(self._mem, _fp(p), _fp(f))

    def synthesize(self, features: np.ndarray) -> np.ndarray:
        """``fargan_synthesize``: one frame of float samples (±1) for a feature vector of 20."""
        f = np.ascontiguousarray(features, _f32).reshape(-1)[: self.layout.nb_features].copy()
        out = np.zeros(self.layout.frame_size, _f32)
        self.oracle._lib.shim_fargan_synthesize(self._mem, _fp(out), _fp(f))
        return out

    def synthesize_int(self, features: np.ndarray) -> np.ndarray:
        """``fargan_synthesize_int``: the same frame as int16."""
        f = np.ascontiguousarray(features, _f32).reshape(-1)[: self.layout.nb_features].copy()
        out = np.zeros(self.layout.frame_size, np.int16)
        self.oracle._lib.shim_fargan_synthesize_int(self._mem, _i16p(out), _fp(f))
        return out

    def info(self) -> dict:
        ints = (ctypes.c_int * 2)()
        fl = (ctypes.c_float * 1)()
        self.oracle._lib.shim_fargan_get(self._mem, ints, fl)
        return {"cont_initialized": ints[0], "last_period": ints[1], "deemph_mem": float(fl[0])}


def burg_cepstrum(oracle: Oracle, x160: np.ndarray) -> np.ndarray:
    """``burg_cepstral_analysis`` of 160 samples (int16 scale): 2 x 18 values."""
    x = np.ascontiguousarray(x160, _f32).reshape(-1)
    if x.shape[0] != 160:
        raise ValueError(f"Burg's analysis takes 160 samples, got {x.shape[0]}")
    out = np.zeros(2 * listen_layout(oracle).nb_bands, _f32)
    oracle._lib.shim_burg_cepstrum(_fp(out), _fp(x))
    return out


@dataclass
class PlcInfo:
    """A ``LPCNetPLCState``'s bookkeeping after a call (``shim_plc_get``)."""

    blend: int
    loss_count: int
    analysis_gap: int
    analysis_pos: int
    predict_pos: int
    fec_read_pos: int
    fec_fill_pos: int
    fec_skip: int
    features: np.ndarray
    pcm: np.ndarray


class LibopusPlc:
    """libopus' neural PLC at 16 kHz (``lpcnet_plc_init``): :meth:`update` with each good 10 ms frame,
    :meth:`conceal` for each lost one, :meth:`fec_add` to queue DRED features (``None``: a frame DRED does not
    cover), :meth:`fec_clear` before a new DRED batch."""

    def __init__(self, oracle: Oracle):
        self.oracle = oracle
        self.layout = listen_layout(oracle)
        self._mem = ctypes.create_string_buffer(self.layout.sizeof_plc + 64)
        ret = oracle._lib.shim_plc_init(self._mem)
        if ret != 0:
            raise OracleError(f"{oracle.build.name}: lpcnet_plc_init returned {ret}")

    def reset(self) -> None:
        self.oracle._lib.shim_plc_reset(self._mem)

    def update(self, pcm160: np.ndarray) -> None:
        x = np.ascontiguousarray(pcm160, np.int16).reshape(-1)
        if x.shape[0] != 160:
            raise ValueError(f"a PLC frame is 160 samples at 16 kHz, got {x.shape[0]}")
        self.oracle._lib.shim_plc_update(self._mem, _i16p(x))

    def conceal(self) -> np.ndarray:
        out = np.zeros(160, np.int16)
        self.oracle._lib.shim_plc_conceal(self._mem, _i16p(out))
        return out

    def fec_add(self, features: np.ndarray | None) -> None:
        if features is None:
            self.oracle._lib.shim_plc_fec_add(self._mem, None)
            return
        f = np.ascontiguousarray(features, _f32).reshape(-1)[: self.layout.nb_features].copy()
        self.oracle._lib.shim_plc_fec_add(self._mem, _fp(f))

    def fec_clear(self) -> None:
        self.oracle._lib.shim_plc_fec_clear(self._mem)

    def info(self) -> PlcInfo:
        ints = (ctypes.c_int * 8)()
        feats = np.zeros(36, _f32)
        pcm = np.zeros(self.layout.plc_buf_size, _f32)
        self.oracle._lib.shim_plc_get(self._mem, ints, _fp(feats), _fp(pcm))
        return PlcInfo(*list(ints), feats, pcm)
