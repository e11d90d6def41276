"""The DRED half of libopus' encoder through the shim: ``DREDEnc`` (dnn/dred_encoder.c), the LPCNet feature
extractor (dnn/lpcnet_enc.c) and PitchDNN (dnn/pitchdnn.c), each on caller-owned state.

These are the oracles the reference encoder (``opus_dred.refimpl``) is compared with, step by step: the 16 kHz
conversion and feature frames, one RDO-VAE encoder step, the latent and state buffers, and the payload
``dred_encode_silk_frame`` writes for given settings and activity. The CPU dispatch is libopus' own
(``opus_select_arch``), so the default build runs its AVX2 kernels where the CPU has them.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from opus_dred.libopus._oracle import Oracle, OracleError

_f32 = np.float32


def _fp(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


@dataclass(frozen=True)
class EncoderLayout:
    """Sizes of the build's encoder structures, as its compiler sees them (``shim_enc_layout``)."""

    sizeof_dredenc: int
    sizeof_lpcnet_enc: int
    max_frames: int
    latent_dim: int
    state_dim: int
    nb_total_features: int
    if_features: int
    xcorr_features: int
    input_buffer: int
    resample_mem: int
    silk_encoder_delay: int


def encoder_layout(oracle: Oracle) -> EncoderLayout:
    vals = (ctypes.c_int * 11)()
    if oracle._lib.shim_enc_layout(vals) != 11:  # pragma: no cover - ABI checked at load
        raise OracleError("shim_enc_layout returned an unexpected count")
    return EncoderLayout(*list(vals))


@dataclass
class DredEncState:
    """A copy of a ``DREDEnc``'s buffers: latents and states newest first (``[max_frames, dim]``)."""

    input_buffer_fill: int
    dred_offset: int
    latent_offset: int
    last_extra_dred_offset: int
    latents_buffer_fill: int
    latents: np.ndarray
    states: np.ndarray
    input_buffer: np.ndarray


class LibopusDredEncoder:
    """libopus' ``DREDEnc`` for one sampling rate and channel count (``dred_encoder_init``)."""

    def __init__(self, oracle: Oracle, fs: int, channels: int = 1):
        self.oracle = oracle
        self.layout = encoder_layout(oracle)
        self.fs = fs
        self.channels = channels
        self._mem = ctypes.create_string_buffer(self.layout.sizeof_dredenc + 64)
        if not oracle._lib.shim_dredenc_init(self._mem, fs, channels):
            raise OracleError(f"{oracle.build.name}: the DRED encoder model is not compiled in")

    def compute_latents(self, pcm: np.ndarray, extra_delay: int = 0) -> None:
        """``dred_compute_latents`` on one Opus frame of float PCM (int16 scale / 32768 as libopus' float API)."""
        x = np.ascontiguousarray(pcm, dtype=_f32).reshape(-1)
        frame_size = x.shape[0] // self.channels
        self.oracle._lib.shim_dredenc_compute_latents(self._mem, _fp(x), frame_size, int(extra_delay))

    def state(self) -> DredEncState:
        lay = self.layout
        ints = (ctypes.c_int * 5)()
        lat = np.zeros(lay.max_frames * lay.latent_dim, _f32)
        st = np.zeros(lay.max_frames * lay.state_dim, _f32)
        inp = np.zeros(lay.input_buffer, _f32)
        self.oracle._lib.shim_dredenc_get(self._mem, ints, _fp(lat), _fp(st), _fp(inp))
        v = list(ints)
        return DredEncState(v[0], v[1], v[2], v[3], v[4], lat.reshape(lay.max_frames, lay.latent_dim),
                            st.reshape(lay.max_frames, lay.state_dim), inp)

    def set_buffers(self, latents: np.ndarray, states: np.ndarray, *, fill: int, dred_offset: int,
                    latent_offset: int = 0, last_extra_dred_offset: int = 0) -> None:
        """Replace the latent and state buffers (newest first) to have libopus code chosen values."""
        lay = self.layout
        lat = np.zeros((lay.max_frames, lay.latent_dim), _f32)
        st = np.zeros((lay.max_frames, lay.state_dim), _f32)
        lat[: len(latents)] = latents
        st[: len(states)] = states
        ints = (ctypes.c_int * 4)(dred_offset, latent_offset, last_extra_dred_offset, fill)
        self.oracle._lib.shim_dredenc_set(self._mem, ints, _fp(lat.reshape(-1)), _fp(st.reshape(-1)))

    def encode(self, *, max_chunks: int, max_bytes: int, q0: int, dq: int, qmax: int,
               activity: np.ndarray | None = None) -> bytes:
        """``dred_encode_silk_frame``: the range-coded payload (no ``'D'``/version prefix); ``b""`` if none.

        ``activity`` is the encoder's activity memory, 2.5 ms per entry, newest first (all active if None).
        """
        n = 4 * self.layout.max_frames
        act = np.ones(n, np.uint8) if activity is None else np.ascontiguousarray(activity, np.uint8)
        if act.shape[0] < n:
            act = np.concatenate([act, np.zeros(n - act.shape[0], np.uint8)])
        buf = (ctypes.c_ubyte * max(1, max_bytes))()
        ret = self.oracle._lib.shim_dredenc_encode(
            self._mem, buf, int(max_chunks), int(max_bytes), int(q0), int(dq), int(qmax),
            act.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte)))
        return bytes(buf[:ret]) if ret > 0 else b""

    def rdovae_encode_step(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One ``dred_rdovae_encode_dframe`` on two feature frames ``[2, 20]`` with the encoder's own network
        state (which it advances); returns ``(latent, state)``."""
        lay = self.layout
        x = np.ascontiguousarray(frames, _f32).reshape(-1)
        lat = np.zeros(lay.latent_dim, _f32)
        st = np.zeros(lay.state_dim, _f32)
        self.oracle._lib.shim_rdovae_encode_dframe(self._mem, _fp(x), _fp(lat), _fp(st))
        return lat, st


@dataclass
class FrameFeatures:
    """One 10 ms frame of ``lpcnet_compute_single_frame_features_float``: all 36 values (20 DRED features,
    then 16 LPC), PitchDNN's inputs and its raw output."""

    features: np.ndarray
    if_features: np.ndarray
    xcorr_features: np.ndarray
    dnn_pitch: float


class LibopusFeatureExtractor:
    """libopus' ``LPCNetEncState`` (``lpcnet_encoder_init``), fed 160 samples at 16 kHz per call."""

    def __init__(self, oracle: Oracle):
        self.oracle = oracle
        self.layout = encoder_layout(oracle)
        self._mem = ctypes.create_string_buffer(self.layout.sizeof_lpcnet_enc + 64)
        oracle._lib.shim_lpcnet_enc_init(self._mem)

    def frame(self, pcm160: np.ndarray) -> FrameFeatures:
        lay = self.layout
        x = np.ascontiguousarray(pcm160, _f32).reshape(-1)
        if x.shape[0] != 160:
            raise ValueError(f"a feature frame is 160 samples at 16 kHz, got {x.shape[0]}")
        f = np.zeros(lay.nb_total_features, _f32)
        iff = np.zeros(lay.if_features, _f32)
        xc = np.zeros(lay.xcorr_features, _f32)
        extra = np.zeros(1, _f32)
        self.oracle._lib.shim_lpcnet_features(self._mem, _fp(x), _fp(f), _fp(iff), _fp(xc), _fp(extra))
        return FrameFeatures(f, iff, xc, float(extra[0]))

    def frames(self, pcm16k: np.ndarray) -> list[FrameFeatures]:
        x = np.asarray(pcm16k, _f32).reshape(-1)
        return [self.frame(x[i:i + 160]) for i in range(0, x.shape[0] - 159, 160)]

    def pitchdnn(self, if_features: np.ndarray, xcorr_features: np.ndarray) -> float:
        """``compute_pitchdnn`` on given inputs, with (and advancing) this extractor's PitchDNN state."""
        a = np.ascontiguousarray(if_features, _f32)
        b = np.ascontiguousarray(xcorr_features, _f32)
        return float(self.oracle._lib.shim_pitchdnn(self._mem, _fp(a), _fp(b)))
