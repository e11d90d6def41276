"""The libopus oracle: libopus itself, reached through ctypes and a small C shim of our own.

Everything in opus-dred that claims to match libopus checks itself against this module. For one
:class:`~opus_dred.libopus._builds.Build` it compiles ``shim/dred_shim.c`` against that tree's own
headers and links it with the tree's ``libopus.a`` into one shared object
(:func:`build_shim`), loads it with ``RTLD_LOCAL`` (so several libopus versions live in one process)
and wraps it in :class:`Oracle`:

* the public codec: :meth:`Oracle.encode`, :meth:`Oracle.decoder` (:class:`Decoder`: 16- and, in
  1.6, 24-bit decoding, DRED decoding, the last packet duration, calls exactly as opus_demo makes
  them), :meth:`Oracle.dred_parse`, :meth:`Oracle.dred_process`, :meth:`Oracle.packet_get_nb_samples`;
* internals libopus does not export, for the bitstream layer's differential tests: the range coder
  (:meth:`Oracle.ec_encode` / :meth:`Oracle.ec_decode`), the packet parser with padding
  (:meth:`Oracle.packet_parse`), padding extensions (:meth:`Oracle.ext_parse`,
  :meth:`Oracle.ext_generate`, :meth:`Oracle.ext_count`), the DRED payload decoder
  (:meth:`Oracle.dred_ec_decode`, :meth:`Oracle.dred_header`) and the RDO-VAE decoder on arbitrary
  inputs (:meth:`Oracle.rdovae_decode`);
* libopus' generative packet-loss model (``dnn/lossgen.c``, not in ``libopus.a``):
  :meth:`Oracle.lossgen` (:class:`LossGen`), from a second small shared object built from
  ``shim/lossgen_shim.c`` and the tree's ``dnn/lossgen.c`` + ``dnn/lossgen_data.c``
  (:func:`build_lossgen_shim`); :func:`build_lossgen_opus_demo` links the tree's opus_demo with
  ``-sim_loss`` against the same ``libopus.a``.

Struct layouts and dimensions are never assumed: the shim reports them as its compiler saw them
(:class:`ShimLayout`), and :meth:`Oracle.info` checks ``sizeof(OpusDRED)`` against
``opus_dred_get_size()``. Where 1.5.2 and 1.6.1 differ in an internal signature (extension parsing
and generation gained ``nb_frames`` in 1.6), the shim is compiled with ``-DSHIM_EXT_ITERATOR`` as
detected from the source tree, and Python sees one signature. See ``docs/oracle.md``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from opus_dred.libopus import _upstream as upstream
from opus_dred.libopus._builds import Build, cache_dir

from opus_dred.errors import OpusDredError

SHIM_ABI_VERSION = 3
LOSSGEN_ABI_VERSION = 1

# Public constants of include/opus_defines.h (identical in 1.5.2 and 1.6.1).
OPUS_OK = 0
_ERRORS = {
    -1: "OPUS_BAD_ARG",
    -2: "OPUS_BUFFER_TOO_SMALL",
    -3: "OPUS_INTERNAL_ERROR",
    -4: "OPUS_INVALID_PACKET",
    -5: "OPUS_UNIMPLEMENTED",
    -6: "OPUS_INVALID_STATE",
    -7: "OPUS_ALLOC_FAIL",
}
APPLICATIONS = {"voip": 2048, "audio": 2049, "lowdelay": 2051}
BANDWIDTHS = {"auto": -1000, "nb": 1101, "mb": 1102, "wb": 1103, "swb": 1104, "fb": 1105}
_SET_BITRATE = 4002
_SET_VBR = 4006
_SET_BANDWIDTH = 4008
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016
_GET_FINAL_RANGE = 4031
_GET_LAST_PACKET_DURATION = 4039
_SET_DRED_DURATION = 4050
_FRAME_MS = (2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 120.0)
_RATES = (8000, 12000, 16000, 24000, 48000)
_MAX_PACKET = 1275 * 6 + 16
_MAX_EXTENSIONS = 512


def error_name(code: int) -> str:
    """The libopus name of a negative return code (``OPUS_INVALID_PACKET``...)."""
    return _ERRORS.get(code, f"error {code}")


#: shim op kinds whose decoded value is an ``opus_uint32`` (uint, encode, bits, encode_bin, decode, decode_bin)
_UNSIGNED_DECODES = frozenset((0, 1, 2, 7, 10, 11))


class OracleError(OpusDredError):
    """The oracle could not be built or loaded, or a libopus call failed."""


class OpusCallError(OracleError):
    """A libopus function returned a negative code where the caller needs success."""

    def __init__(self, function: str, code: int):
        super().__init__(f"{function} returned {code} ({error_name(code)})")
        self.function = function
        self.code = code


# ---------------------------------------------------------------------------------------------
# Building and loading the shim


def shim_source() -> Path:
    """Path of the shim's C source shipped with the package."""
    return Path(__file__).resolve().parent / "shim" / "dred_shim.c"


def detect_shim_defines(build: Build) -> dict[str, int]:
    """Compile-time switches for the shim, read from the build's source tree.

    ``SHIM_EXT_ITERATOR`` is 1 when ``src/opus_private.h`` declares the extension iterator
    (``opus_extension_iterator_init``, libopus 1.6 and later), whose ``opus_packet_extensions_parse``,
    ``_count`` and ``_generate`` take an extra ``nb_frames`` argument.
    """
    header = Path(build.source_dir) / "src" / "opus_private.h"
    try:
        text = header.read_text(errors="replace")
    except OSError as e:
        raise OracleError(f"cannot read {header}: {e}") from e
    return {"SHIM_EXT_ITERATOR": int("opus_extension_iterator_init" in text)}


def _compile_flags(build: Build) -> tuple[list[str], list[str]]:
    defines = detect_shim_defines(build)
    cflags = ["-shared", "-fPIC", "-O2", "-DHAVE_CONFIG_H"]
    cflags += [f"-D{k}={v}" for k, v in sorted(defines.items())]
    cflags += _include_flags(build)
    ldflags = [
        "-Wl,--whole-archive",
        str(build.static_lib),
        "-Wl,--no-whole-archive",
        "-Wl,-Bsymbolic",
        "-lm",
    ]
    return cflags, ldflags


def _file_digest(h: "hashlib._Hash", path: Path) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise OracleError("no C compiler found (set CC)")
    return cc


def _compile_cached(
    build: Build,
    *,
    tag: str,
    subdir: str,
    out_name: str,
    sources: Sequence[Path],
    cflags: list[str],
    ldflags: list[str],
    what: str,
    force: bool = False,
) -> Path:
    """Compile ``sources`` (+ the build's libopus.a in ``ldflags``) into
    ``cache_dir()/<subdir>/<build.name>/<hash>/<out_name>``; the hash covers ``tag``, the compiler,
    the command line, every source, ``libopus.a`` and the build's ``config.h``. Written under a
    temporary name and renamed into place, so concurrent processes never load a half-written file."""
    lib = Path(build.static_lib)
    if not lib.is_file():
        raise OracleError(f"{build.name}: static library {lib} is missing (build it with the upstream manager)")
    cc = _compiler()
    h = hashlib.sha256()
    h.update(f"{tag}\0{cc}\0".encode())
    h.update("\0".join(cflags + ldflags).encode())
    for src in sources:
        _file_digest(h, Path(src))
    _file_digest(h, lib)
    cfg = Path(build.build_dir) / "config.h"
    if cfg.is_file():
        _file_digest(h, cfg)
    out_dir = cache_dir() / subdir / build.name / h.hexdigest()[:20]
    out = out_dir / out_name
    if out.is_file() and not force:
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=Path(out_name).suffix, dir=out_dir)
    os.close(fd)
    cmd = [cc, *cflags, *(str(s) for s in sources), "-o", tmp, *ldflags]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise OracleError(f"{build.name}: compiling {what} failed:\n{' '.join(cmd)}\n{res.stderr[-4000:]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def build_shim(build: Build, *, force: bool = False) -> Path:
    """Compile the shim against ``build`` and return the shared object's path.

    Cached at ``cache_dir()/shim/<build.name>/<hash>/libopus_dred_shim.so``, the hash covering the
    shim source, ``libopus.a``, the build's ``config.h`` and the compiler command line; an existing
    file is reused unless ``force``.
    """
    cflags, ldflags = _compile_flags(build)
    return _compile_cached(
        build, tag=f"abi{SHIM_ABI_VERSION}", subdir="shim", out_name="libopus_dred_shim.so",
        sources=[shim_source()], cflags=cflags, ldflags=ldflags, what="the shim", force=force,
    )


def lossgen_shim_source() -> Path:
    """Path of the loss-generator shim's C source shipped with the package."""
    return Path(__file__).resolve().parent / "shim" / "lossgen_shim.c"


def lossgen_sources(build: Build) -> list[Path]:
    """``dnn/lossgen.c`` and ``dnn/lossgen_data.c`` of the build's source tree. Raises
    :class:`OracleError` when the release has no generative loss model (both 1.5.2 and 1.6.1
    have one)."""
    dnn = Path(build.source_dir) / "dnn"
    files = [dnn / "lossgen.c", dnn / "lossgen_data.c"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise OracleError(
            f"{build.name}: libopus {build.release} has no generative loss model (missing {', '.join(missing)})"
        )
    return files


def _include_flags(build: Build) -> list[str]:
    incs = [Path(build.source_dir)] + [Path(p) for p in build.include_dirs]
    return [f"-I{p}" for p in incs]


def build_lossgen_shim(build: Build, *, force: bool = False) -> Path:
    """Compile ``shim/lossgen_shim.c`` with the build's own ``dnn/lossgen.c`` and
    ``dnn/lossgen_data.c`` into a second shared object (``libopus.a`` linked normally, not whole
    archive: lossgen.c carries its own copies of the weight-parsing helpers). Only the shim's
    functions are exported (``-fvisibility=hidden``). Cached at
    ``cache_dir()/lossgen/<build.name>/<hash>/libopus_dred_lossgen.so``."""
    srcs = [lossgen_shim_source(), *lossgen_sources(build)]
    cflags = ["-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-DHAVE_CONFIG_H", *_include_flags(build)]
    ldflags = [str(build.static_lib), "-Wl,-Bsymbolic", "-lm"]
    return _compile_cached(
        build, tag=f"lossgen{LOSSGEN_ABI_VERSION}", subdir="lossgen", out_name="libopus_dred_lossgen.so",
        sources=srcs, cflags=cflags, ldflags=ldflags, what="the lossgen shim", force=force,
    )


def build_lossgen_opus_demo(build: Build, *, force: bool = False) -> Path:
    """``opus_demo`` with ``-sim_loss``, as ``configure --enable-lossgen`` would build it.

    ``ENABLE_LOSSGEN`` changes nothing in libopus itself (only ``src/opus_demo.c`` and the
    Makefile read it; ``opus_demo_SOURCES += $(LOSSGEN_SOURCES)``), so this links the tree's
    ``src/opus_demo.c`` compiled with ``-DENABLE_LOSSGEN``, ``dnn/lossgen.c`` and
    ``dnn/lossgen_data.c`` with the build's ``libopus.a``: the same program without a new libopus
    build. Cached at ``cache_dir()/lossgen/<build.name>/<hash>/opus_demo``."""
    demo = Path(build.source_dir) / "src" / "opus_demo.c"
    if not demo.is_file():
        raise OracleError(f"{build.name}: {demo} is missing")
    srcs = [demo, *lossgen_sources(build)]
    cflags = ["-O2", "-DHAVE_CONFIG_H", "-DENABLE_LOSSGEN", *_include_flags(build)]
    ldflags = [str(build.static_lib), "-lm"]
    return _compile_cached(
        build, tag="opus_demo_lossgen1", subdir="lossgen", out_name="opus_demo",
        sources=srcs, cflags=cflags, ldflags=ldflags, what="opus_demo with lossgen", force=force,
    )


_LOADED: dict[str, ctypes.CDLL] = {}
_LOAD_LOCK = threading.Lock()

_P = ctypes.c_void_p
_I = ctypes.c_int
_I32 = ctypes.c_int32
_U32 = ctypes.c_uint32
_IP = ctypes.POINTER(ctypes.c_int)
_I32P = ctypes.POINTER(ctypes.c_int32)
_U32P = ctypes.POINTER(ctypes.c_uint32)
_I16P = ctypes.POINTER(ctypes.c_int16)
_U16P = ctypes.POINTER(ctypes.c_uint16)
_FP = ctypes.POINTER(ctypes.c_float)
_BP = ctypes.c_char_p  # const unsigned char * (read-only inputs)
_UBP = ctypes.POINTER(ctypes.c_ubyte)

_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    # shim
    "shim_abi_version": (_I, []),
    "shim_layout": (_I, [_IP, _I]),
    "shim_dred_get": (None, [_P, _IP, _FP, _FP, _FP]),
    "shim_dred_set": (None, [_P, _IP, _FP, _FP, _FP]),
    "shim_rdovae_decode": (_I, [_P, _FP, _FP, _I, _FP]),
    "shim_dred_ec_decode": (_I, [_P, _BP, _I, _I, _I]),
    "shim_dred_header": (_I, [_BP, _I, _IP]),
    "shim_enc_set": (_I, [_P, _I, _I]),
    "shim_enc_get_u32": (_I, [_P, _I, _U32P]),
    "shim_dec_set": (_I, [_P, _I, _I]),
    "shim_dec_get_u32": (_I, [_P, _I, _U32P]),
    "shim_dec_reset": (_I, [_P]),
    "shim_ec_encode_ops": (_I, [_UBP, _I, _I, _IP, _U32P, _U32P, _U32P, _IP, _UBP, _U16P, _IP, _U32P, _U32P, _U32P]),
    "shim_ec_decode_ops": (_I, [_UBP, _I, _I, _IP, _U32P, _U32P, _U32P, _IP, _UBP, _U16P, _IP, _U32P, _U32P, _U32P]),
    "shim_packet_parse_impl": (_I, [_BP, _I32, _I, _IP, _I16P, _IP]),
    "shim_packet_parse": (_I, [_BP, _I32, _IP, _I16P, _IP]),
    "shim_ext_count": (_I, [_BP, _I32, _I]),
    "shim_ext_parse": (_I, [_BP, _I32, _I, _IP, _IP, _IP, _IP, _I32P]),
    "shim_ext_parse_frame_order": (_I, [_BP, _I32, _I, _IP, _IP, _IP, _IP, _I32P]),
    "shim_ext_generate": (_I, [_UBP, _I32, _I, _IP, _IP, _BP, _IP, _IP, _I, _I]),
    "shim_enc_layout": (_I, [_IP]),
    "shim_dredenc_init": (_I, [_P, _I, _I]),
    "shim_dredenc_compute_latents": (None, [_P, _FP, _I, _I]),
    "shim_dredenc_get": (None, [_P, _IP, _FP, _FP, _FP]),
    "shim_dredenc_set": (None, [_P, _IP, _FP, _FP]),
    "shim_dredenc_encode": (_I, [_P, _UBP, _I, _I, _I, _I, _I, _UBP]),
    "shim_rdovae_encode_dframe": (None, [_P, _FP, _FP, _FP]),
    "shim_lpcnet_enc_init": (None, [_P]),
    "shim_lpcnet_features": (None, [_P, _FP, _FP, _FP, _FP, _FP]),
    "shim_pitchdnn": (ctypes.c_float, [_P, _FP, _FP]),
    "shim_listen_layout": (_I, [_IP]),
    "shim_fargan_init": (None, [_P]),
    "shim_fargan_cont": (None, [_P, _FP, _FP]),
    "shim_fargan_synthesize": (None, [_P, _FP, _FP]),
    "shim_fargan_synthesize_int": (None, [_P, _I16P, _FP]),
    "shim_fargan_get": (None, [_P, _IP, _FP]),
    "shim_burg_cepstrum": (None, [_FP, _FP]),
    "shim_plc_init": (_I, [_P]),
    "shim_plc_reset": (None, [_P]),
    "shim_plc_update": (_I, [_P, _I16P]),
    "shim_plc_conceal": (_I, [_P, _I16P]),
    "shim_plc_fec_add": (None, [_P, _FP]),
    "shim_plc_fec_clear": (None, [_P]),
    "shim_plc_get": (None, [_P, _IP, _FP, _FP]),
    # public libopus
    "opus_get_version_string": (ctypes.c_char_p, []),
    "opus_encoder_create": (_P, [_I32, _I, _I, _IP]),
    "opus_encoder_destroy": (None, [_P]),
    "opus_encode": (_I32, [_P, _I16P, _I, _UBP, _I32]),
    "opus_decoder_create": (_P, [_I32, _I, _IP]),
    "opus_decoder_destroy": (None, [_P]),
    "opus_decode": (_I, [_P, _BP, _I32, _I16P, _I, _I]),
    "opus_decoder_dred_decode": (_I, [_P, _P, _I32, _I16P, _I32]),
    "opus_dred_decoder_create": (_P, [_IP]),
    "opus_dred_decoder_destroy": (None, [_P]),
    "opus_dred_get_size": (_I, []),
    "opus_dred_alloc": (_P, [_IP]),
    "opus_dred_free": (None, [_P]),
    "opus_dred_parse": (_I, [_P, _P, _BP, _I32, _I32, _I32, _IP, _I]),
    "opus_dred_process": (_I, [_P, _P, _P]),
    "opus_packet_pad": (_I, [_UBP, _I32, _I32]),
    "opus_packet_unpad": (_I32, [_UBP, _I32]),
    "opus_packet_has_lbrr": (_I, [_BP, _I32]),
    "opus_packet_get_nb_samples": (_I, [_BP, _I32, _I32]),
}


# Present in some releases only (1.6: 24-bit decoding); bound when the library has them.
_OPTIONAL_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "opus_decode24": (_I, [_P, _BP, _I32, _I32P, _I, _I]),
    "opus_decoder_dred_decode24": (_I, [_P, _P, _I32, _I32P, _I32]),
}

_LOSSGEN_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "shim_lossgen_abi_version": (_I, []),
    "shim_lossgen_size": (_I, []),
    "shim_lossgen_init": (None, [_P]),
    "shim_lossgen_prob": (ctypes.c_float, [_P, _I, ctypes.c_float]),
    "shim_lossgen_sample": (_I, [_P, ctypes.c_float]),
}


def _load(
    path: Path,
    signatures: dict[str, tuple[Any, list[Any]]] = _SIGNATURES,
    optional: dict[str, tuple[Any, list[Any]]] = _OPTIONAL_SIGNATURES,
    abi: tuple[str, int] = ("shim_abi_version", SHIM_ABI_VERSION),
) -> ctypes.CDLL:
    key = str(path)
    with _LOAD_LOCK:
        lib = _LOADED.get(key)
        if lib is None:
            lib = ctypes.CDLL(key, mode=os.RTLD_LOCAL | getattr(os, "RTLD_NOW", 2))
            for name, (res, args) in signatures.items():
                fn = getattr(lib, name)
                fn.restype = res
                fn.argtypes = args
            for name, (res, args) in optional.items():
                if hasattr(lib, name):
                    fn = getattr(lib, name)
                    fn.restype = res
                    fn.argtypes = args
            got = getattr(lib, abi[0])()
            if got != abi[1]:
                raise OracleError(f"{path}: {abi[0]} {got} != {abi[1]}")
            _LOADED[key] = lib
        return lib


def resolve_build(name: str) -> Build:
    """The upstream manager's :class:`Build` for ``name``, built first if it is missing."""
    build = None
    try:
        build = upstream.get_build(name)
    except Exception:  # noqa: BLE001 - any failure to find it means: build it
        build = None
    if build is None or not Path(build.static_lib).is_file():
        build = upstream.ensure_build(name)
    return build


# ---------------------------------------------------------------------------------------------
# Result records


@dataclass(frozen=True)
class ShimLayout:
    """Dimensions and the OpusDRED layout as the shim's compiler saw them for one libopus tree."""

    dred_version: int
    latent_dim: int
    state_dim: int
    num_redundancy_frames: int
    max_latents: int
    num_features: int
    sizeof_opus_dred: int
    fec_features_len: int
    state_len: int
    latents_len: int
    latent_stride: int
    offset_fec_features: int
    offset_state: int
    offset_latents: int
    offset_nb_latents: int
    offset_process_stage: int
    offset_dred_offset: int
    ext_iterator: bool
    extension_id: int
    experimental_bytes: int
    sizeof_ec_ctx: int
    quantization_levels: int

    @classmethod
    def _from(cls, v: Sequence[int]) -> "ShimLayout":
        vals = list(v)
        vals[17] = bool(vals[17])
        return cls(*vals)


@dataclass(frozen=True)
class OracleInfo:
    """What :meth:`Oracle.info` reports."""

    build_name: str
    version_string: str
    dred_version: int
    latent_dim: int
    latent_stride: int
    state_dim: int
    num_redundancy_frames: int
    max_latents: int
    num_features: int
    sizeof_opus_dred: int
    opus_dred_get_size: int
    ext_iterator: bool

    @property
    def layout_consistent(self) -> bool:
        return self.sizeof_opus_dred == self.opus_dred_get_size


@dataclass(frozen=True)
class Encoded:
    """One packet from :meth:`Oracle.encode` and the encoder's final range after it."""

    data: bytes
    final_range: int


@dataclass(frozen=True)
class DredHeader:
    """DRED payload header fields (dnn/dred_decoder.c:dred_ec_decode keeps them in locals; the shim
    re-reads them with the same version's range decoder)."""

    q0: int
    dQ: int
    extra_flag: int
    extra: int
    offset: int
    qmax: int
    tell: int
    tell_frac: int
    error: int


@dataclass(frozen=True)
class Extension:
    id: int
    frame: int
    data: bytes
    offset: int = -1  # payload offset in the parsed buffer (-1 when not known)


@dataclass(frozen=True)
class ExtParse:
    """Result of libopus' extension parser: its return code, and what it wrote."""

    ret: int
    count: int
    extensions: list[Extension]


@dataclass(frozen=True)
class PacketParse:
    """Result of ``src/opus.c:opus_packet_parse_impl`` (or the public ``opus_packet_parse``)."""

    ret: int
    toc: int
    frames: list[bytes]
    frame_offsets: list[int]
    sizes: list[int]
    payload_offset: int
    packet_offset: int = 0
    padding_offset: int = -1
    padding: bytes | None = None

    @property
    def padding_len(self) -> int:
        return 0 if self.padding is None else len(self.padding)


@dataclass(frozen=True)
class EcResult:
    """Result of running a list of range-coder operations.

    ``data`` is the whole buffer (for the encoder: after ``ec_enc_done``; raw bits sit at its end),
    ``values`` the decoded values (decoder) or the values actually coded (encoder; ``laplace`` may
    clamp), and ``tell``/``tell_frac``/``rng`` the coder state after each operation.
    """

    data: bytes
    values: list[int]
    tell: list[int]
    tell_frac: list[int]
    rng: list[int]
    error: int
    final_rng: int
    offs: int
    end_offs: int
    nend_bits: int
    storage: int


class DredParse:
    """An ``OpusDRED`` owned by Python: fields copied out after each libopus call, the C object kept
    for :meth:`Oracle.dred_process` and :meth:`Decoder.decode_dred`.

    Attributes: ``ret`` (opus_dred_parse's return: samples covered or a negative error),
    ``dred_end``, ``nb_latents``, ``dred_offset``, ``process_stage``, ``state`` (float32
    [state_dim]), ``latents`` (float32 [nb_latents, latent_stride]; 1.6.1's last column is the
    quantiser feature), ``features`` (float32 [4*nb_latents, 20] in ``fec_features`` order, or
    ``None`` before processing), ``header`` (:class:`DredHeader` when known).
    """

    def __init__(self, oracle: "Oracle", ret: int = 0, dred_end: int = 0):
        self._oracle = oracle
        self._lib = oracle._lib
        err = ctypes.c_int(0)
        self._ptr = self._lib.opus_dred_alloc(ctypes.byref(err))
        if not self._ptr:
            raise OpusCallError("opus_dred_alloc", err.value or -7)
        ctypes.memset(self._ptr, 0, oracle.layout.sizeof_opus_dred)
        self.ret = ret
        self.dred_end = dred_end
        self.header: DredHeader | None = None
        self.nb_latents = 0
        self.process_stage = 0
        self.dred_offset = 0
        self.state = np.zeros(0, np.float32)
        self.latents = np.zeros((0, oracle.layout.latent_stride), np.float32)
        self.features: np.ndarray | None = None

    def _refresh(self) -> "DredParse":
        lay = self._oracle.layout
        ints = (ctypes.c_int * 3)()
        state = np.zeros(lay.state_len, np.float32)
        lat = np.zeros(lay.latents_len, np.float32)
        feat = np.zeros(lay.fec_features_len, np.float32)
        self._lib.shim_dred_get(self._ptr, ints, _fptr(state), _fptr(lat), _fptr(feat))
        self.nb_latents, self.process_stage, self.dred_offset = ints[0], ints[1], ints[2]
        n = max(0, min(self.nb_latents, lay.max_latents))
        self.state = state
        self.latents = lat.reshape(-1, lay.latent_stride)[:n].copy()
        if self.process_stage == 2:
            self.features = feat.reshape(-1, lay.num_features)[: 4 * n].copy()
        else:
            self.features = None
        return self

    @property
    def ptr(self) -> int:
        return self._ptr

    def close(self) -> None:
        if getattr(self, "_ptr", None):
            self._lib.opus_dred_free(self._ptr)
            self._ptr = None

    def __del__(self) -> None:  # pragma: no cover - timing of GC
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "DredParse":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DredParse(ret={self.ret}, dred_end={self.dred_end}, nb_latents={self.nb_latents}, "
            f"dred_offset={self.dred_offset}, process_stage={self.process_stage})"
        )


def _fptr(a: np.ndarray) -> Any:
    assert a.dtype == np.float32 and a.flags["C_CONTIGUOUS"]
    return a.ctypes.data_as(_FP)


def _ibuf(values: Sequence[int] | int, ctype: Any = ctypes.c_int) -> Any:
    if isinstance(values, int):
        return (ctype * max(1, values))()
    return (ctype * max(1, len(values)))(*values)


# ---------------------------------------------------------------------------------------------
# Decoder


def pcm24_to_16(pcm: np.ndarray) -> np.ndarray:
    """24-bit samples (int32, full scale +-2**23) to int16 as 1.6.1's ``src/opus_demo.c`` writes
    them: clamp to +-0x7fff00, add 128, shift right by 8 (round half up)."""
    x = np.clip(np.asarray(pcm, np.int64), -0x7FFF00, 0x7FFF00)
    return ((x + 128) >> 8).astype(np.int16)


#: Largest ``frame_size`` the decoder wrappers accept, per channel: opus_demo's ``max_frame_size``
#: (2 s at 48 kHz), which it passes for every normal decode whatever the rate.
MAX_DECODE_SAMPLES = 2 * 48000


@dataclass(frozen=True)
class DecodeResult:
    """What a libopus decode call returned: ``ret`` (samples per channel, or a negative error
    code) and ``pcm``, the ``ret`` samples it wrote (int16, or int32 for the 24-bit calls; shape
    [ret] mono, [ret, channels] otherwise; empty when ``ret <= 0``)."""

    ret: int
    pcm: np.ndarray


class Decoder:
    """An ``OpusDecoder``. Use as a context manager or call :meth:`close`.

    Two levels: :meth:`decode_call` / :meth:`dred_decode_call` make the libopus call exactly as
    asked (any ``frame_size`` in 0..:data:`MAX_DECODE_SAMPLES`, including the 0 that opus_demo passes
    for losses before the first packet) and return the code, never raising on it; :meth:`decode`,
    :meth:`decode_dred`, :meth:`decode24`, :meth:`decode_dred24` return the PCM and raise
    :class:`OpusCallError` on a negative code. ``pcm24=True`` uses 1.6's ``opus_decode24`` /
    ``opus_decoder_dred_decode24`` (int32, 24-bit scale; see :func:`pcm24_to_16` for opus_demo's
    rounding); a release without them raises :class:`OracleError`.
    """

    def __init__(self, oracle: "Oracle", fs: int, channels: int = 1):
        if fs not in _RATES:
            raise ValueError(f"sampling rate {fs} not one of {_RATES}")
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self._oracle = oracle
        self._lib = oracle._lib
        self.fs = fs
        self.channels = channels
        err = ctypes.c_int(0)
        self._st = self._lib.opus_decoder_create(fs, channels, ctypes.byref(err))
        if not self._st or err.value != OPUS_OK:
            raise OpusCallError("opus_decoder_create", err.value)

    @property
    def has_pcm24(self) -> bool:
        """Whether this release has ``opus_decode24`` / ``opus_decoder_dred_decode24`` (1.6+)."""
        return self._oracle.has_pcm24

    def _out(self, frame_size: int, pcm24: bool) -> np.ndarray:
        if not 0 <= frame_size <= MAX_DECODE_SAMPLES:
            raise ValueError(f"frame_size {frame_size} outside 0..{MAX_DECODE_SAMPLES}")
        return np.zeros(max(1, frame_size * self.channels), np.int32 if pcm24 else np.int16)

    def _result(self, pcm: np.ndarray, n: int) -> DecodeResult:
        pcm = pcm[: max(0, n) * self.channels].copy()
        return DecodeResult(n, pcm if self.channels == 1 else pcm.reshape(-1, self.channels))

    def _fn(self, name16: str, name24: str, pcm24: bool) -> tuple[Any, Any]:
        if not pcm24:
            return getattr(self._lib, name16), _I16P
        if not self.has_pcm24:
            raise OracleError(f"{self._oracle.build.name}: libopus has no {name24} (added in 1.6)")
        return getattr(self._lib, name24), _I32P

    def _live(self) -> Any:
        if not self._st:
            raise OracleError("decoder is closed")
        return self._st

    def decode_call(
        self, packet: bytes | None, frame_size: int, *, fec: bool = False, pcm24: bool = False
    ) -> DecodeResult:
        """``opus_decode`` (or ``opus_decode24``) as called; ``packet=None`` (or empty) runs
        packet-loss concealment. The return code is in the result, not raised."""
        fn, ptype = self._fn("opus_decode", "opus_decode24", pcm24)
        pcm = self._out(frame_size, pcm24)
        data = None if packet is None else bytes(packet)
        n = fn(self._live(), data, 0 if data is None else len(data), pcm.ctypes.data_as(ptype), int(frame_size),
               int(bool(fec)))
        return self._result(pcm, n)

    def dred_decode_call(
        self, dred: DredParse, dred_offset_samples: int, frame_size: int, *, pcm24: bool = False
    ) -> DecodeResult:
        """``opus_decoder_dred_decode`` (or ``..._decode24``) as called; the code is not raised."""
        if dred.ptr is None:
            raise OracleError("DRED object is closed")
        if dred._oracle is not self._oracle:
            raise OracleError("DRED object belongs to another libopus build")
        fn, ptype = self._fn("opus_decoder_dred_decode", "opus_decoder_dred_decode24", pcm24)
        pcm = self._out(frame_size, pcm24)
        n = fn(self._live(), dred.ptr, int(dred_offset_samples), pcm.ctypes.data_as(ptype), int(frame_size))
        return self._result(pcm, n)

    def decode(self, packet: bytes | None, frame_size: int, *, fec: bool = False) -> np.ndarray:
        """``opus_decode`` (int16); ``packet=None`` runs packet-loss concealment."""
        r = self.decode_call(packet, frame_size, fec=fec)
        if r.ret < 0:
            raise OpusCallError("opus_decode", r.ret)
        return r.pcm

    def decode24(self, packet: bytes | None, frame_size: int, *, fec: bool = False) -> np.ndarray:
        """``opus_decode24`` (int32, 24-bit scale; 1.6+)."""
        r = self.decode_call(packet, frame_size, fec=fec, pcm24=True)
        if r.ret < 0:
            raise OpusCallError("opus_decode24", r.ret)
        return r.pcm

    def decode_fec(self, packet: bytes, frame_size: int) -> np.ndarray:
        """``opus_decode(..., decode_fec=1)``: recover the previous frame from this packet's LBRR."""
        return self.decode(packet, frame_size, fec=True)

    def decode_plc(self, frame_size: int) -> np.ndarray:
        return self.decode(None, frame_size)

    def decode_dred(self, dred: DredParse, dred_offset_samples: int, frame_size: int) -> np.ndarray:
        """``opus_decoder_dred_decode``: ``dred_offset_samples`` is the position, in samples at this
        decoder's rate, before the start of the packet that carried the DRED."""
        r = self.dred_decode_call(dred, dred_offset_samples, frame_size)
        if r.ret < 0:
            raise OpusCallError("opus_decoder_dred_decode", r.ret)
        return r.pcm

    def decode_dred24(self, dred: DredParse, dred_offset_samples: int, frame_size: int) -> np.ndarray:
        """``opus_decoder_dred_decode24`` (int32, 24-bit scale; 1.6+)."""
        r = self.dred_decode_call(dred, dred_offset_samples, frame_size, pcm24=True)
        if r.ret < 0:
            raise OpusCallError("opus_decoder_dred_decode24", r.ret)
        return r.pcm

    @property
    def last_packet_duration(self) -> int:
        """``OPUS_GET_LAST_PACKET_DURATION``: samples per channel of the last decode call (what
        opus_demo uses as the size of its loss-concealment calls)."""
        v = ctypes.c_uint32(0)
        r = self._lib.shim_dec_get_u32(self._live(), _GET_LAST_PACKET_DURATION, ctypes.byref(v))
        if r != OPUS_OK:
            raise OpusCallError("OPUS_GET_LAST_PACKET_DURATION", r)
        return ctypes.c_int32(v.value).value

    @property
    def final_range(self) -> int:
        v = ctypes.c_uint32(0)
        r = self._lib.shim_dec_get_u32(self._live(), _GET_FINAL_RANGE, ctypes.byref(v))
        if r != OPUS_OK:
            raise OpusCallError("OPUS_GET_FINAL_RANGE", r)
        return v.value

    def reset(self) -> None:
        r = self._lib.shim_dec_reset(self._live())
        if r != OPUS_OK:
            raise OpusCallError("OPUS_RESET_STATE", r)

    def set_complexity(self, complexity: int) -> None:
        r = self._lib.shim_dec_set(self._live(), _SET_COMPLEXITY, int(complexity))
        if r != OPUS_OK:
            raise OpusCallError("OPUS_SET_COMPLEXITY", r)

    def close(self) -> None:
        if getattr(self, "_st", None):
            self._lib.opus_decoder_destroy(self._st)
            self._st = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "Decoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Range-coder operations


_EC_KIND = {
    "uint": 0,
    "encode": 1,
    "bits": 2,
    "icdf": 3,
    "icdf16": 4,
    "laplace_p0": 5,
    "bit_logp": 6,
    "encode_bin": 7,
    "laplace": 8,
    "shrink": 9,
    "decode": 10,
    "decode_bin": 11,
    "update": 12,
}


def _check_icdf(icdf: Sequence[int], ftb: int, bits: int, sym: int | None) -> None:
    if not 1 <= ftb <= bits:
        raise ValueError(f"icdf ftb {ftb} outside 1..{bits}")
    t = [int(x) for x in icdf]
    top = 1 << ftb
    if not t or t[-1] != 0 or any(x < 0 or x > top for x in t) or any(a < b for a, b in zip(t, t[1:])):
        raise ValueError("icdf table must be non-increasing within 0..2**ftb and end with 0")
    if sym is not None:
        if not 0 <= sym < len(t):
            raise ValueError(f"icdf symbol {sym} outside the table")
        prev = top if sym == 0 else t[sym - 1]
        if prev - t[sym] <= 0:
            raise ValueError(f"icdf symbol {sym} has zero probability")


def _laplace_p0_ok(val: int, p0: int, decay: int) -> None:
    if not 0 <= p0 <= 32768 or not 0 <= decay < 32768:
        raise ValueError("laplace_p0 needs 0 <= p0 <= 32768 and 0 <= decay < 32768")
    rest = 32768 - p0
    probs = {0: p0, 1: rest - rest // 2, -1: rest // 2}
    if probs[(val > 0) - (val < 0)] <= 0:
        raise ValueError(f"laplace_p0 value {val} has zero probability with p0={p0}")


def _compile_ops(ops: Iterable[Sequence[Any]], encoding: bool) -> tuple[Any, ...]:
    kinds: list[int] = []
    a: list[int] = []
    b: list[int] = []
    c: list[int] = []
    vals: list[int] = []
    tab8: list[int] = []
    tab16: list[int] = []
    for i, op in enumerate(ops):
        name, args = op[0], list(op[1:])
        if name not in _EC_KIND:
            raise ValueError(f"op {i}: unknown range-coder op {name!r}")
        k = _EC_KIND[name]
        A = B = C = 0
        v = 0
        try:
            if name == "uint":
                val, ft = args
                ft = int(ft)
                if not 2 <= ft <= 0xFFFFFFFF:
                    raise ValueError("uint needs 2 <= ft < 2**32")
                if encoding and not 0 <= int(val) < ft:
                    raise ValueError("uint value outside 0..ft-1")
                A, B = int(val or 0), ft
            elif name in ("encode", "update"):
                fl, fh, ft = (int(x) for x in args)
                if not (0 <= fl < fh <= ft <= 65535):
                    raise ValueError(f"{name} needs 0 <= fl < fh <= ft <= 65535")
                A, B, C = fl, fh, ft
            elif name == "encode_bin":
                fl, fh, nb = (int(x) for x in args)
                if not (1 <= nb <= 16 and 0 <= fl < fh <= (1 << nb)):
                    raise ValueError("encode_bin needs 1 <= bits <= 16 and 0 <= fl < fh <= 2**bits")
                A, B, C = fl, fh, nb
            elif name == "decode":
                (ft,) = (int(x) for x in args)
                if not 1 <= ft <= 65535:
                    raise ValueError("decode needs 1 <= ft <= 65535")
                C = ft
            elif name == "decode_bin":
                (nb,) = (int(x) for x in args)
                if not 1 <= nb <= 16:
                    raise ValueError("decode_bin needs 1 <= bits <= 16")
                C = nb
            elif name == "bits":
                val, nb = args
                nb = int(nb)
                # celt/entenc.h and entdec.h allow 1..25 (ec_enc_bits) and 0..25 (ec_dec_bits)
                if not (1 if encoding else 0) <= nb <= 25:
                    raise ValueError("bits needs 1 <= nbits <= 25 (0 allowed when decoding)")
                if encoding and not 0 <= int(val) < (1 << nb):
                    raise ValueError("bits value does not fit")
                A, B = int(val or 0), nb
            elif name in ("icdf", "icdf16"):
                sym, table, ftb = args
                bits = 8 if name == "icdf" else 15
                _check_icdf(table, int(ftb), bits, int(sym) if encoding else None)
                store = tab8 if name == "icdf" else tab16
                A, B = len(store), int(ftb)
                store.extend(int(x) for x in table)
                v = int(sym or 0) if encoding else 0
            elif name == "laplace_p0":
                val, p0, decay = args
                if encoding:
                    _laplace_p0_ok(int(val), int(p0), int(decay))
                elif not (0 <= int(p0) <= 32768 and 0 <= int(decay) < 32768):
                    raise ValueError("laplace_p0 needs 0 <= p0 <= 32768 and 0 <= decay < 32768")
                A, B, v = int(p0), int(decay), int(val or 0)
            elif name == "bit_logp":
                val, logp = args
                if not 1 <= int(logp) <= 15:
                    raise ValueError("bit_logp needs 1 <= logp <= 15")
                if encoding and int(val) not in (0, 1):
                    raise ValueError("bit_logp value must be 0 or 1")
                A, v = int(logp), int(val or 0)
            elif name == "laplace":
                val, fs, decay = args
                if not (1 <= int(fs) <= 32736 and 0 <= int(decay) < 16384):
                    raise ValueError("laplace needs 1 <= fs <= 32736 and 0 <= decay < 16384")
                A, B, v = int(fs), int(decay), int(val or 0)
            elif name == "shrink":
                (size,) = args
                A = int(size)
                if A < 0:
                    raise ValueError("shrink size must be >= 0")
        except (TypeError, ValueError) as e:
            raise ValueError(f"op {i} {tuple(op)!r}: {e}") from None
        kinds.append(k)
        a.append(A & 0xFFFFFFFF)
        b.append(B & 0xFFFFFFFF)
        c.append(C & 0xFFFFFFFF)
        vals.append(v)
    return kinds, a, b, c, vals, tab8, tab16


# ---------------------------------------------------------------------------------------------
# The generative loss model (second shared object)


_WARMUP_RE = re.compile(r"for\s*\(\s*i\s*=\s*0\s*;\s*i\s*<\s*(\d+)\s*;\s*i\s*\+\+\s*\)\s*sample_loss_impl")


def lossgen_warmup(build: Build) -> int:
    """Steps ``dnn/lossgen.c:sample_loss`` runs and discards on first use (100 in 1.5.2, 1000 in
    1.6.1), read from the build's source."""
    src = lossgen_sources(build)[0]
    m = _WARMUP_RE.search(src.read_text(errors="replace"))
    if not m:
        raise OracleError(f"{build.name}: cannot find sample_loss' warm-up loop in {src}")
    return int(m.group(1))


class LossGen:
    """libopus' generative loss model (``dnn/lossgen.c``) of one build, through
    ``shim/lossgen_shim.c`` (see :func:`build_lossgen_shim`). ``frac`` arguments are what
    opus_demo passes to ``sample_loss``: the ``-sim_loss`` percentage times ``.01f``
    (:meth:`frac`).

    * :meth:`new_state`: a fresh ``LossGenState`` (``lossgen_init``) in a ctypes buffer;
    * :meth:`prob`: one network step (``sample_loss_impl`` without its draw) from an explicit
      previous flag; returns the probability that this packet is lost;
    * :meth:`sample`: libopus' own ``sample_loss`` (warm-up of :attr:`warmup` steps on first use,
      then one libc ``rand()`` draw per call, ``(float)rand()/(float)RAND_MAX < p``). It draws from
      the process-wide ``rand()`` state, like opus_demo (which never calls ``srand``).
    """

    def __init__(self, build: Build):
        self.build = build
        self.path = build_lossgen_shim(build)
        self._lib = _load(self.path, _LOSSGEN_SIGNATURES, {}, ("shim_lossgen_abi_version", LOSSGEN_ABI_VERSION))
        self.state_size = int(self._lib.shim_lossgen_size())
        self.warmup = lossgen_warmup(build)

    @staticmethod
    def frac(percent: float) -> float:
        """opus_demo's argument to ``sample_loss``: ``(float)atof(arg) * .01f`` in float32."""
        return float(np.float32(np.float32(percent) * np.float32(0.01)))

    def new_state(self) -> Any:
        st = ctypes.create_string_buffer(self.state_size)
        self._lib.shim_lossgen_init(st)
        return st

    def prob(self, state: Any, last_loss: int, frac: float) -> float:
        return float(self._lib.shim_lossgen_prob(state, int(last_loss), float(frac)))

    def sample(self, state: Any, frac: float) -> int:
        return int(self._lib.shim_lossgen_sample(state, float(frac)))

    def __repr__(self) -> str:
        return f"LossGen({self.build.name!r}, warmup={self.warmup})"


# ---------------------------------------------------------------------------------------------
# The oracle


class Oracle:
    """libopus ``build`` behind the shim. ``Oracle.for_build("libopus-1.6.1")`` gets the build
    from the upstream manager (building it if needed)."""

    _instances: dict[str, "Oracle"] = {}

    def __init__(self, build: Build):
        self.build = build
        self.shim_path = build_shim(build)
        self._lib = _load(self.shim_path)
        vals = (ctypes.c_int * 22)()
        n = self._lib.shim_layout(vals, 22)
        if n != 22:
            raise OracleError(f"shim_layout returned {n} values")
        self.layout = ShimLayout._from(list(vals))
        lay = self.layout
        if lay.latent_stride not in (lay.latent_dim, lay.latent_dim + 1):
            raise OracleError(f"{build.name}: unexpected OpusDRED latent stride {lay.latent_stride}")
        err = ctypes.c_int(0)
        self._dred_dec = self._lib.opus_dred_decoder_create(ctypes.byref(err))
        if not self._dred_dec or err.value != OPUS_OK:
            raise OpusCallError("opus_dred_decoder_create", err.value)

    @classmethod
    def for_build(cls, name: str) -> "Oracle":
        """One shared oracle per build name (the upstream manager's build)."""
        inst = cls._instances.get(name)
        if inst is None:
            inst = cls(resolve_build(name))
            cls._instances[name] = inst
        return inst

    def __del__(self) -> None:  # pragma: no cover
        try:
            if getattr(self, "_dred_dec", None):
                self._lib.opus_dred_decoder_destroy(self._dred_dec)
                self._dred_dec = None
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"Oracle({self.build.name!r}, dred_version={self.layout.dred_version})"

    # -- info ---------------------------------------------------------------------------------

    def info(self) -> OracleInfo:
        lay = self.layout
        return OracleInfo(
            build_name=self.build.name,
            version_string=self._lib.opus_get_version_string().decode(),
            dred_version=lay.dred_version,
            latent_dim=lay.latent_dim,
            latent_stride=lay.latent_stride,
            state_dim=lay.state_dim,
            num_redundancy_frames=lay.num_redundancy_frames,
            max_latents=lay.max_latents,
            num_features=lay.num_features,
            sizeof_opus_dred=lay.sizeof_opus_dred,
            opus_dred_get_size=self._lib.opus_dred_get_size(),
            ext_iterator=lay.ext_iterator,
        )

    # -- encoder ------------------------------------------------------------------------------

    def encode(
        self,
        pcm: np.ndarray,
        *,
        fs: int,
        channels: int = 1,
        bitrate: int,
        frame_ms: float = 20.0,
        complexity: int = 10,
        dred_duration: int = 0,
        loss_perc: int = 0,
        lbrr: bool = False,
        vbr: bool = True,
        application: str = "voip",
        dtx: bool = False,
        bandwidth: str | int | None = None,
    ) -> list[Encoded]:
        """Encode int16 ``pcm`` (shape [n] or [n, channels]; floats in [-1, 1] are scaled) with a
        fresh ``OpusEncoder``; the tail is zero-padded to a whole frame. ``dred_duration`` is in
        10 ms units (OPUS_SET_DRED_DURATION)."""
        if fs not in _RATES:
            raise ValueError(f"sampling rate {fs} not one of {_RATES}")
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        if float(frame_ms) not in _FRAME_MS:
            raise ValueError(f"frame_ms {frame_ms} not one of {_FRAME_MS}")
        if application not in APPLICATIONS:
            raise ValueError(f"application must be one of {sorted(APPLICATIONS)}")
        x = np.asarray(pcm)
        if x.dtype.kind == "f":
            x = np.clip(np.round(x * 32768.0), -32768, 32767)
        x = x.astype(np.int16)
        if x.ndim == 1 and x.shape[0] % channels == 0:
            x = x.reshape(-1, channels)  # interleaved
        if x.ndim != 2 or x.shape[1] != channels:
            raise ValueError(f"pcm must have shape [n] or [n, {channels}]")
        frame = int(round(fs * float(frame_ms) / 1000.0))
        nframes = -(-x.shape[0] // frame)
        buf = np.zeros((nframes * frame, channels), np.int16)
        buf[: x.shape[0]] = x
        lib = self._lib
        err = ctypes.c_int(0)
        st = lib.opus_encoder_create(fs, channels, APPLICATIONS[application], ctypes.byref(err))
        if not st or err.value != OPUS_OK:
            raise OpusCallError("opus_encoder_create", err.value)
        try:
            settings = [
                (_SET_BITRATE, int(bitrate), "OPUS_SET_BITRATE"),
                (_SET_VBR, int(bool(vbr)), "OPUS_SET_VBR"),
                (_SET_COMPLEXITY, int(complexity), "OPUS_SET_COMPLEXITY"),
                (_SET_INBAND_FEC, int(bool(lbrr)), "OPUS_SET_INBAND_FEC"),
                (_SET_PACKET_LOSS_PERC, int(loss_perc), "OPUS_SET_PACKET_LOSS_PERC"),
                (_SET_DTX, int(bool(dtx)), "OPUS_SET_DTX"),
                (_SET_DRED_DURATION, int(dred_duration), "OPUS_SET_DRED_DURATION"),
            ]
            if bandwidth is not None:
                bw = BANDWIDTHS[bandwidth] if isinstance(bandwidth, str) else int(bandwidth)
                settings.append((_SET_BANDWIDTH, bw, "OPUS_SET_BANDWIDTH"))
            for req, val, nm in settings:
                r = lib.shim_enc_set(st, req, val)
                if r != OPUS_OK:
                    raise OpusCallError(nm, r)
            out: list[Encoded] = []
            pkt = (ctypes.c_ubyte * _MAX_PACKET)()
            rng = ctypes.c_uint32(0)
            for i in range(nframes):
                chunk = np.ascontiguousarray(buf[i * frame : (i + 1) * frame])
                n = lib.opus_encode(st, chunk.ctypes.data_as(_I16P), frame, pkt, _MAX_PACKET)
                if n < 0:
                    raise OpusCallError("opus_encode", n)
                r = lib.shim_enc_get_u32(st, _GET_FINAL_RANGE, ctypes.byref(rng))
                if r != OPUS_OK:
                    raise OpusCallError("OPUS_GET_FINAL_RANGE", r)
                out.append(Encoded(bytes(pkt[:n]), rng.value))
            return out
        finally:
            lib.opus_encoder_destroy(st)

    # -- decoder ------------------------------------------------------------------------------

    def decoder(self, fs: int, channels: int = 1) -> Decoder:
        return Decoder(self, fs, channels)

    @property
    def has_pcm24(self) -> bool:
        """Whether this release exports ``opus_decode24`` and ``opus_decoder_dred_decode24`` (1.6+)."""
        return hasattr(self._lib, "opus_decode24") and hasattr(self._lib, "opus_decoder_dred_decode24")

    # -- generative loss model ------------------------------------------------------------------

    def lossgen(self) -> "LossGen":
        """libopus' generative loss model of this build (``dnn/lossgen.c``), from the second shared
        object (:func:`build_lossgen_shim`, compiled on first use). One per oracle."""
        lg = getattr(self, "_lossgen", None)
        if lg is None:
            lg = LossGen(self.build)
            self._lossgen = lg
        return lg

    # -- DRED ---------------------------------------------------------------------------------

    def dred_parse(
        self,
        packet: bytes,
        *,
        max_dred_samples: int | None = None,
        sampling_rate: int = 48000,
        defer_processing: bool = False,
    ) -> DredParse:
        """``opus_dred_parse``. ``max_dred_samples`` defaults to the most libopus can return
        (DRED_MAX_LATENTS latents, 40 ms each). ``ret`` holds the return code; nothing raises on a
        negative one (the error is the behaviour under test)."""
        if max_dred_samples is None:
            max_dred_samples = self.layout.max_latents * 4 * sampling_rate // 100
        if sampling_rate <= 0:
            raise ValueError("sampling_rate must be positive")
        data = bytes(packet)
        d = DredParse(self)
        end = ctypes.c_int(0)
        ret = self._lib.opus_dred_parse(
            self._dred_dec, d.ptr, data, len(data), int(max_dred_samples), int(sampling_rate),
            ctypes.byref(end), int(bool(defer_processing)),
        )
        d.ret, d.dred_end = ret, end.value
        return d._refresh()

    def dred_process(self, src: DredParse, dst: DredParse | None = None) -> DredParse:
        """``opus_dred_process(src -> dst)``; returns ``dst`` (a new object unless given, or ``src``
        itself for in-place). ``dst.ret`` holds the return code."""
        if src._oracle is not self:
            raise OracleError("DRED object belongs to another libopus build")
        if dst is None:
            dst = DredParse(self, ret=src.ret, dred_end=src.dred_end)
        dst.header = src.header
        r = self._lib.opus_dred_process(self._dred_dec, src.ptr, dst.ptr)
        if r != OPUS_OK:
            dst.ret = r
        return dst._refresh()

    def dred_ec_decode(
        self, payload: bytes, *, min_feature_frames: int = 104, dred_frame_offset: int = 0
    ) -> DredParse:
        """``dnn/dred_decoder.c:dred_ec_decode`` on a raw range-coded payload (the bytes after 'D'
        and the version byte). ``ret`` is its return (latents decoded); ``header`` the header
        fields."""
        data = bytes(payload)
        d = DredParse(self)
        d.ret = self._lib.shim_dred_ec_decode(d.ptr, data, len(data), int(min_feature_frames), int(dred_frame_offset))
        d.header = self.dred_header(data)
        return d._refresh()

    def dred_header(self, payload: bytes) -> DredHeader:
        """The header of a raw DRED payload, read by the shim with this version's range decoder."""
        data = bytes(payload)
        out = (ctypes.c_int * 9)()
        self._lib.shim_dred_header(data, len(data), out)
        return DredHeader(*list(out))

    def rdovae_decode(self, state: np.ndarray, latents: np.ndarray) -> np.ndarray:
        """The RDO-VAE decoder (``DRED_rdovae_decode_all`` via ``opus_dred_process``) on arbitrary
        ``state`` [state_dim] and ``latents`` [nb, latent_stride] (1.6.1: the last column is the
        quantiser feature ``q_level/8 - 1``). Returns float32 [4*nb, 20] in fec_features order."""
        lay = self.layout
        s = np.ascontiguousarray(state, np.float32).reshape(-1)
        z = np.ascontiguousarray(latents, np.float32)
        if z.ndim == 1:
            z = z.reshape(-1, lay.latent_stride)
        if s.shape[0] != lay.state_dim:
            raise ValueError(f"state must have {lay.state_dim} values")
        if z.ndim != 2 or z.shape[1] != lay.latent_stride or not 0 <= z.shape[0] <= lay.max_latents:
            raise ValueError(f"latents must have shape [0..{lay.max_latents}, {lay.latent_stride}]")
        nb = z.shape[0]
        feat = np.zeros((max(1, 4 * nb), lay.num_features), np.float32)
        zz = z if nb else np.zeros((1, lay.latent_stride), np.float32)
        r = self._lib.shim_rdovae_decode(self._dred_dec, _fptr(s), _fptr(zz), nb, _fptr(feat))
        if r != OPUS_OK:
            raise OpusCallError("opus_dred_process", r)
        return feat[: 4 * nb]

    # -- range coder --------------------------------------------------------------------------

    def _ec_run(self, fn: Any, buf: Any, size: int, ops: list, encoding: bool) -> EcResult:
        kinds, a, b, c, vals, tab8, tab16 = _compile_ops(ops, encoding)
        n = len(kinds)
        values = _ibuf(vals)
        tell = _ibuf(n)
        tell_frac = _ibuf(n, ctypes.c_uint32)
        rng = _ibuf(n, ctypes.c_uint32)
        info = (ctypes.c_uint32 * 6)()
        t8 = _ibuf(tab8, ctypes.c_ubyte)
        t16 = _ibuf(tab16, ctypes.c_uint16)
        r = fn(buf, size, n, _ibuf(kinds), _ibuf(a, ctypes.c_uint32), _ibuf(b, ctypes.c_uint32),
               _ibuf(c, ctypes.c_uint32), values, t8, t16, tell, tell_frac, rng, info)
        if r < 0:
            raise ValueError(f"op {-1 - r}: rejected by the shim")
        out_vals = list(values[:n])
        if not encoding:  # ec_dec_uint, ec_decode, ec_dec_bits, ec_decode_bin return opus_uint32: undo the int cast
            out_vals = [v & 0xFFFFFFFF if k in _UNSIGNED_DECODES else v for k, v in zip(kinds, out_vals)]
        if encoding:  # ops whose value the C side does not carry: report what was coded
            for i, k in enumerate(kinds):
                if k in (0, 1, 2, 7):
                    out_vals[i] = a[i]
                elif k == 9:
                    out_vals[i] = 0
        return EcResult(
            data=bytes(buf[:size]),
            values=out_vals,
            tell=list(tell[:n]),
            tell_frac=list(tell_frac[:n]),
            rng=list(rng[:n]),
            error=int(ctypes.c_int32(info[0]).value),
            final_rng=int(info[1]),
            offs=int(info[2]),
            end_offs=int(info[3]),
            nend_bits=int(info[4]),
            storage=int(info[5]),
        )

    def ec_encode(self, ops: Sequence[Sequence[Any]], size: int = 1275) -> EcResult:
        """Run encoder ops on a fresh ``ec_enc`` over a ``size``-byte buffer, then ``ec_enc_done``.

        Ops: ``("uint", val, ft)``, ``("encode", fl, fh, ft)``, ``("encode_bin", fl, fh, bits)``,
        ``("bits", val, nbits)``, ``("icdf", sym, icdf, ftb)``, ``("icdf16", sym, icdf, ftb)``,
        ``("laplace_p0", val, p0, decay)``, ``("bit_logp", val, logp)``,
        ``("laplace", val, fs, decay)`` (celt/laplace.c:ec_laplace_encode), ``("shrink", size)``.
        Arguments that would make libopus divide by zero, read outside a table or code a
        zero-probability symbol raise ``ValueError`` before any C runs.
        """
        if not 0 <= size <= 1 << 20:
            raise ValueError("size out of range")
        ops = list(ops)
        for i, op in enumerate(ops):
            if op[0] == "shrink" and not 0 <= int(op[1]) <= size:
                raise ValueError(f"op {i}: shrink size must be within the buffer")
            if op[0] in ("decode", "decode_bin", "update"):
                raise ValueError(f"op {i}: {op[0]} is a decoder-only op")
        buf = (ctypes.c_ubyte * max(1, size))()
        return self._ec_run(self._lib.shim_ec_encode_ops, buf, size, ops, True)

    def ec_decode(self, data: bytes, ops: Sequence[Sequence[Any]]) -> EcResult:
        """Run decoder ops over ``data``. Same op shapes as :meth:`ec_encode` (the value slot is
        ignored; an ``encode`` op decodes with ``ec_decode(ft)`` then updates with its fl/fh), plus
        decoder-only ``("decode", ft)``, ``("decode_bin", bits)`` and ``("update", fl, fh, ft)``.
        ``values`` holds what was decoded (for ``encode``/``encode_bin``: ``ec_decode``'s result, a
        value in [fl, fh); the encoder reports fl)."""
        raw = bytes(data)
        buf = (ctypes.c_ubyte * max(1, len(raw))).from_buffer_copy(raw.ljust(max(1, len(raw)), b"\0"))
        return self._ec_run(self._lib.shim_ec_decode_ops, buf, len(raw), list(ops), False)

    def laplace_p0_decode(self, data: bytes, p0: int, decay: int, count: int = 1) -> list[int]:
        """``celt/laplace.c:ec_laplace_decode_p0`` ``count`` times from the start of ``data``."""
        return self.ec_decode(data, [("laplace_p0", None, p0, decay)] * count).values

    def laplace_p0_encode(self, values: Sequence[int], p0: int, decay: int, size: int = 1275) -> EcResult:
        """``celt/laplace.c:ec_laplace_encode_p0`` for each value."""
        return self.ec_encode([("laplace_p0", int(v), p0, decay) for v in values], size)

    # -- packets ------------------------------------------------------------------------------

    def packet_parse(self, data: bytes, *, self_delimited: bool = False) -> PacketParse:
        """The internal ``src/opus.c:opus_packet_parse_impl`` (reports the padding)."""
        raw = bytes(data)
        offs = (ctypes.c_int * 48)()
        sizes = (ctypes.c_int16 * 48)()
        ints = (ctypes.c_int * 5)()
        ret = self._lib.shim_packet_parse_impl(raw, len(raw), int(bool(self_delimited)), offs, sizes, ints)
        nfr = max(0, ret)
        fo = [offs[i] for i in range(nfr)]
        sz = [sizes[i] for i in range(nfr)]
        pad_off, pad_len = ints[3], ints[4]
        padding = raw[pad_off : pad_off + pad_len] if (ret >= 0 and pad_off >= 0) else None
        return PacketParse(
            ret=ret,
            toc=ints[0],
            frames=[raw[o : o + s] for o, s in zip(fo, sz)],
            frame_offsets=fo,
            sizes=sz,
            payload_offset=ints[1],
            packet_offset=ints[2],
            padding_offset=pad_off,
            padding=padding,
        )

    def packet_parse_public(self, data: bytes) -> PacketParse:
        """The public ``opus_packet_parse`` (no padding information)."""
        raw = bytes(data)
        offs = (ctypes.c_int * 48)()
        sizes = (ctypes.c_int16 * 48)()
        ints = (ctypes.c_int * 2)()
        ret = self._lib.shim_packet_parse(raw, len(raw), offs, sizes, ints)
        nfr = max(0, ret)
        fo = [offs[i] for i in range(nfr)]
        sz = [sizes[i] for i in range(nfr)]
        return PacketParse(ret=ret, toc=ints[0], frames=[raw[o : o + s] for o, s in zip(fo, sz)],
                           frame_offsets=fo, sizes=sz, payload_offset=ints[1])

    def packet_pad(self, data: bytes, new_len: int) -> tuple[int, bytes]:
        """``opus_packet_pad``: (return code, padded packet or the input on error)."""
        raw = bytes(data)
        if new_len < 0 or new_len > 1 << 20:
            raise ValueError("new_len out of range")
        size = max(len(raw), new_len, 1)
        buf = (ctypes.c_ubyte * size).from_buffer_copy(raw.ljust(size, b"\0"))
        r = self._lib.opus_packet_pad(buf, len(raw), new_len)
        return r, (bytes(buf[:new_len]) if r == OPUS_OK else raw)

    def packet_unpad(self, data: bytes) -> tuple[int, bytes]:
        """``opus_packet_unpad``: (return code = new length or error, unpadded packet)."""
        raw = bytes(data)
        buf = (ctypes.c_ubyte * max(1, len(raw))).from_buffer_copy(raw.ljust(max(1, len(raw)), b"\0"))
        r = self._lib.opus_packet_unpad(buf, len(raw))
        return r, (bytes(buf[:r]) if r >= 0 else raw)

    def packet_has_lbrr(self, data: bytes) -> int:
        raw = bytes(data)
        return self._lib.opus_packet_has_lbrr(raw, len(raw))

    def packet_get_nb_samples(self, data: bytes, fs: int) -> int:
        """``opus_packet_get_nb_samples``: samples per channel at ``fs``, or a negative error code
        (``OPUS_BAD_ARG`` for an empty packet, ``OPUS_INVALID_PACKET`` over 120 ms)."""
        raw = bytes(data)
        return self._lib.opus_packet_get_nb_samples(raw, len(raw), int(fs))

    # -- extensions ---------------------------------------------------------------------------

    def ext_count(self, padding: bytes, nb_frames: int = 48) -> int:
        """``opus_packet_extensions_count`` (``nb_frames`` is ignored by 1.5.x)."""
        raw = bytes(padding)
        return self._lib.shim_ext_count(raw, len(raw), int(nb_frames))

    def ext_parse(
        self, padding: bytes, nb_frames: int = 48, *, capacity: int = _MAX_EXTENSIONS, frame_order: bool = False
    ) -> ExtParse:
        """``opus_packet_extensions_parse`` on the padding bytes (bitstream order), or with
        ``frame_order`` 1.6's ``opus_packet_extensions_parse_ext`` (``OPUS_UNIMPLEMENTED`` in 1.5).
        ``nb_frames`` is the packet's frame count (ignored by 1.5.x, which stops at 48)."""
        if not 0 <= capacity <= _MAX_EXTENSIONS:
            raise ValueError(f"capacity must be within 0..{_MAX_EXTENSIONS}")
        if not 0 <= nb_frames <= 48:
            raise ValueError("nb_frames must be within 0..48")
        raw = bytes(padding)
        ids, frames, offs, lens = (ctypes.c_int * max(1, capacity))(), (ctypes.c_int * max(1, capacity))(), \
            (ctypes.c_int * max(1, capacity))(), (ctypes.c_int * max(1, capacity))()
        n = ctypes.c_int32(capacity)
        fn = self._lib.shim_ext_parse_frame_order if frame_order else self._lib.shim_ext_parse
        ret = fn(raw, len(raw), int(nb_frames), ids, frames, offs, lens, ctypes.byref(n))
        count = max(0, min(n.value, capacity))
        exts = []
        for i in range(count):
            o, ln = offs[i], lens[i]
            data = raw[o : o + ln] if o >= 0 else b""
            exts.append(Extension(ids[i], frames[i], data, o))
        return ExtParse(ret=ret, count=n.value, extensions=exts)

    def ext_generate(
        self,
        extensions: Sequence[Extension | tuple[int, int, bytes]],
        *,
        length: int = 1275,
        nb_frames: int = 48,
        pad: bool = False,
    ) -> tuple[int, bytes]:
        """``opus_packet_extensions_generate`` into a ``length``-byte buffer: (return code, the
        ``ret`` bytes written, or b"" on error). ``nb_frames`` is ignored by 1.5.x."""
        exts = [e if isinstance(e, Extension) else Extension(int(e[0]), int(e[1]), bytes(e[2])) for e in extensions]
        if len(exts) > _MAX_EXTENSIONS:
            raise ValueError(f"at most {_MAX_EXTENSIONS} extensions")
        if not 0 <= length <= 1 << 20 or not 0 <= nb_frames <= 48:
            raise ValueError("length or nb_frames out of range")
        for e in exts:
            if not 0 <= e.id <= 127 or not 0 <= e.frame < 48:
                raise ValueError(f"extension id {e.id} / frame {e.frame} out of range")
        blob = b"".join(e.data for e in exts)
        offs, pos = [], 0
        for e in exts:
            offs.append(pos)
            pos += len(e.data)
        out = (ctypes.c_ubyte * max(1, length))()
        r = self._lib.shim_ext_generate(
            out, length, len(exts), _ibuf([e.id for e in exts]), _ibuf([e.frame for e in exts]),
            blob or b"\0", _ibuf(offs), _ibuf([len(e.data) for e in exts]), int(nb_frames), int(bool(pad)),
        )
        return r, (bytes(out[:r]) if r >= 0 else b"")
