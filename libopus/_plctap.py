"""A libopus build whose decoder reports its neural-PLC calls, and lets the caller supply the concealment.

:class:`TappedOracle` is an :class:`~opus_dred.libopus._oracle.Oracle` over a second shared object: the same
shim and the same ``libopus.a``, linked so that libopus' own calls of ``dnn/lpcnet_plc.c`` go through
``shim/plc_tap.c`` first (GNU ld ``-wrap``):

* ``lpcnet_plc_update`` (from ``silk/PLC.c:silk_PLC`` after each good SILK frame at 16 kHz internal rate, two
  10 ms frames per 20 ms; from ``celt/celt_decoder.c:update_plc_state`` at the start of a CELT concealment, the
  last 40 ms of CELT's 48 kHz history downsampled to 16 kHz, four frames);
* ``lpcnet_plc_conceal`` (``silk/PLC.c:silk_PLC_conceal``; ``celt/celt_decoder.c:celt_decode_lost``, which reads
  ahead to cover its resampler and overlap);
* ``lpcnet_plc_fec_add`` / ``lpcnet_plc_fec_clear`` (``src/opus_decoder.c:opus_decode_native`` before a DRED
  decode) and ``lpcnet_plc_reset`` (``OPUS_RESET_STATE``).

While :meth:`TappedOracle.tap` is active, each call is handed to a listener as a :class:`TapCall` with the state's
eight counters as they were before the call; a listener's ``conceal`` may return 160 int16 samples, which
replace what libopus' concealment wrote before SILK or CELT reads them. Direct writes of libopus into the
state (``celt_decode_with_ec_dred`` sets ``blend = 0`` when a CELT packet arrives) show in the counters of the
next call.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from opus_dred.libopus._builds import Build
from opus_dred.libopus._oracle import (
    _OPTIONAL_SIGNATURES,
    _SIGNATURES,
    OPUS_OK,
    SHIM_ABI_VERSION,
    Oracle,
    OracleError,
    OpusCallError,
    ShimLayout,
    _compile_cached,
    _compile_flags,
    _load,
    shim_source,
)

TAP_ABI_VERSION = 1
#: the functions whose calls from libopus' other objects are redirected
WRAPPED = ("lpcnet_plc_update", "lpcnet_plc_conceal", "lpcnet_plc_fec_add", "lpcnet_plc_fec_clear",
           "lpcnet_plc_reset")
KINDS = ("update", "conceal", "fec_add", "fec_clear", "reset")
COUNTERS = ("blend", "loss_count", "analysis_gap", "analysis_pos", "predict_pos", "fec_read_pos", "fec_fill_pos",
            "fec_skip")
FRAME = 160
NB_FEATURES = 20

_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16),
                         ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int))

_TAP_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    **_SIGNATURES,
    "shim_tap_abi_version": (ctypes.c_int, []),
    "shim_tap_set": (None, [_HOOK]),
    "shim_tap_sizeof_plc": (ctypes.c_int, []),
}


def tap_source() -> Path:
    """Path of the tap's C source shipped with the package."""
    return Path(__file__).resolve().parent / "shim" / "plc_tap.c"


def build_tapped_shim(build: Build, *, force: bool = False) -> Path:
    """The shim and the tap compiled against ``build``, ``libopus.a`` linked whole with ``-wrap`` for each of
    :data:`WRAPPED`. Cached at ``cache_dir()/plctap/<build.name>/<hash>/libopus_dred_tap.so``."""
    cflags, ldflags = _compile_flags(build)
    ldflags = ldflags + ["-Wl," + ",".join(f"--wrap={f}" for f in WRAPPED)]
    return _compile_cached(
        build, tag=f"abi{SHIM_ABI_VERSION}-tap{TAP_ABI_VERSION}", subdir="plctap", out_name="libopus_dred_tap.so",
        sources=[shim_source(), tap_source()], cflags=cflags, ldflags=ldflags, what="the PLC tap", force=force,
    )


@dataclass
class TapCall:
    """One neural-PLC call of libopus' decoder: ``kind`` (one of :data:`KINDS`), ``state`` (the address of the
    ``LPCNetPLCState``), ``pcm`` (update: the 160 samples fed; conceal: the 160 libopus' concealment wrote;
    else ``None``), ``features`` (fec_add: the 20 values queued, ``None`` for a frame DRED does not cover),
    ``features_address`` (their address in the ``OpusDRED``), ``counters`` (:data:`COUNTERS` before the call)."""

    kind: str
    state: int
    pcm: np.ndarray | None
    features: np.ndarray | None
    features_address: int | None
    counters: dict[str, int]


class TapListener(Protocol):
    def __call__(self, call: TapCall) -> np.ndarray | None: ...


class TapError(OracleError):
    """A listener raised inside a libopus call; the original exception is chained."""


class TappedOracle(Oracle):
    """:class:`Oracle` over the tapped shared object (:func:`build_tapped_shim`); every method of the oracle
    works on it, and :meth:`tap` reports the decoder's neural-PLC calls. ``TappedOracle.for_build(name)`` shares
    one per build, apart from the plain oracles."""

    _instances: dict[str, "TappedOracle"] = {}

    def __init__(self, build: Build):  # noqa: D401 - the Oracle constructor over another shared object
        self.build = build
        self.shim_path = build_tapped_shim(build)
        self._lib = _load(self.shim_path, _TAP_SIGNATURES, _OPTIONAL_SIGNATURES)
        got = self._lib.shim_tap_abi_version()
        if got != TAP_ABI_VERSION:
            raise OracleError(f"{self.shim_path}: shim_tap_abi_version {got} != {TAP_ABI_VERSION}")
        vals = (ctypes.c_int * 22)()
        if self._lib.shim_layout(vals, 22) != 22:
            raise OracleError("shim_layout returned an unexpected count")
        self.layout = ShimLayout._from(list(vals))
        #: ``sizeof(LPCNetPLCState)`` in this build (the tap reads the state's counters in C, not from Python)
        self.plc_state_size = int(self._lib.shim_tap_sizeof_plc())
        err = ctypes.c_int(0)
        self._dred_dec = self._lib.opus_dred_decoder_create(ctypes.byref(err))
        if not self._dred_dec or err.value != OPUS_OK:
            raise OpusCallError("opus_dred_decoder_create", err.value)
        self._lock = threading.Lock()
        self._hook = _HOOK(self._dispatch)
        self._listener: TapListener | None = None
        self._error: BaseException | None = None

    def _dispatch(self, kind, state, pcm, features, counters) -> None:
        if self._listener is None or self._error is not None:
            return
        try:
            k = KINDS[kind]
            c = dict(zip(COUNTERS, (counters[i] for i in range(len(COUNTERS)))))
            x = np.ctypeslib.as_array(pcm, (FRAME,)).copy() if pcm else None
            f = np.ctypeslib.as_array(features, (NB_FEATURES,)).copy() if features else None
            addr = ctypes.cast(features, ctypes.c_void_p).value if features else None
            out = self._listener(TapCall(k, int(state), x, f, addr, c))
            if out is not None:
                if k != "conceal":
                    raise TapError(f"a listener may replace the samples of a conceal call only, not of {k}")
                y = np.asarray(out)
                if y.shape != (FRAME,):
                    raise TapError(f"a concealed frame is {FRAME} samples, the listener returned shape {y.shape}")
                np.ctypeslib.as_array(pcm, (FRAME,))[:] = y.astype(np.int16)
        except BaseException as exc:  # noqa: BLE001 - re-raised after the libopus call returns
            self._error = exc

    @contextlib.contextmanager
    def tap(self, listener: TapListener) -> Iterator[None]:
        """Report every neural-PLC call of this build's decoders to ``listener`` while the block runs (one tap
        at a time per build). An exception of the listener stops the reports and is raised (as
        :class:`TapError`, chained) by :meth:`check` or when the block ends."""
        with self._lock:
            self._listener, self._error = listener, None
            self._lib.shim_tap_set(self._hook)
            try:
                yield
                self.check()
            finally:
                self._lib.shim_tap_set(_HOOK())
                self._listener = None

    def check(self) -> None:
        """Raise what a listener raised during the last calls, if anything."""
        if self._error is not None:
            exc, self._error = self._error, None
            if isinstance(exc, TapError):
                raise exc
            raise TapError(f"{self.build.name}: the PLC tap's listener failed: {exc!r}") from exc


__all__ = ["COUNTERS", "KINDS", "TAP_ABI_VERSION", "TapCall", "TapError", "TapListener", "TappedOracle",
           "WRAPPED", "build_tapped_shim", "tap_source"]
