"""Neural-network primitives of the RDO-VAE decoder, in pure JAX, with two arithmetic paths.

Our own formulation of what libopus computes in ``dnn/nnet.c`` (``compute_generic_dense``,
``compute_generic_gru``, ``compute_glu``, ``compute_generic_conv1d``) and ``dnn/nnet_arch.h``
(``compute_linear_``, ``compute_activation_``), with the arithmetic of ``dnn/vec.h`` /
``dnn/vec_avx.h`` (``cgemv8x4``, ``sparse_cgemv8x4``, ``vector_ps_to_epi8``, ``tanh8_approx``,
``sigmoid8_approx``). See ``docs/numerics.md`` for every approximation and how far each path is from
libopus builds.

Two parts:

* **Load time (numpy)**: :func:`unpack_linear` turns libopus' storage layouts (int8 8x4 blocks, block-sparse
  index lists, float ``[nb_in][nb_out]``) into one dense ``[nb_in, nb_out]`` matrix per layer, once.
* **Run time (JAX)**: pure functions of a parameter pytree (a dict per layer) and a static
  :class:`Numerics` configuration. They are ``jit``/``vmap``/``grad``-friendly; the int8 emulation path
  is piecewise constant in its inputs (quantisation), so use :data:`FLOAT` for gradients.

A layer's pytree: ``{"weight": f32[nb_in, nb_out], "bias": f32[nb_out]}`` for every layer (``weight``
is the dequantised ``int8 * scale`` for quantised layers), plus, for quantised layers,
``{"weight_q": i8[nb_in, nb_out], "scale": f32[nb_out], "subias": f32[nb_out]}``. Layers without
``weight_q`` (libopus' float layers ``dec_dense1`` and ``dec_hidden_init``) always use float arithmetic.
``weight_q`` holds integers; any type that holds them exactly will do (an accelerator keeps them in the
operand type of its GEMM and injects its own ``linear`` into the blocks, which take it as an argument).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
from pathlib import Path
from typing import Mapping

import numpy as np

import jax
import jax.numpy as jnp

# ---------------------------------------------------------------------------------------------------
# Arithmetic configuration
# ---------------------------------------------------------------------------------------------------


#: The emulated ``RCPPS`` variants (``Numerics.reciprocal``): AMD's (12-bit index) and Intel's (11-bit).
RCPPS_TABLES = ("rcp12", "rcp11")


@dataclasses.dataclass(frozen=True)
class Numerics:
    """How the decoder does its arithmetic (hashable: pass it as a static argument to ``jax.jit``).

    matmul:
        ``"float"``: ``x @ (w_q * scale) + bias`` in the working float type (the dequantised model).
        ``"int8"``: libopus-like emulation: inputs quantised to 8 bits, exact int32 dot products with the
        int8 weights, then ``float(acc) * scale + bias`` (see ``bias``).
    bias:
        int8 path only. ``"su"``: unsigned inputs ``127 + round(127 x)`` and the export's ``subias``
        (every x86 build, ``USE_SU_BIAS`` in vec_avx.h). ``"signed"``: signed inputs ``round(127 x)`` and
        ``bias`` (generic C / NEON).
    rounding:
        int8 path only: how ``127 x`` is rounded. ``"even"`` (AVX2 ``cvtps_epi32``, NEON ``vcvtnq``) or
        ``"half_up"`` (the SSE2 fallback's ``floor(.5 + 127 x)``).
    activation:
        ``"exact"``: ``tanh`` and the logistic sigmoid. ``"approx"``: libopus' rational (Padé-like)
        approximations of both, clamped to the output range (x86/NEON kernels). ``"approx_c"``: the
        plain-C variant, where the sigmoid is ``0.5 + 0.5 tanh_approx(x/2)``.
    reciprocal:
        approx activations only. ``"exact"``: true division (libopus builds with no SIMD at all).
        ``"rcp12"``: the x86 ``RCPPS`` approximate reciprocal of AMD cores, emulated with a 4096-entry
        table measured on an AMD Zen 4 core (result set by the top 12 mantissa bits). ``"rcp11"``: Intel's
        ``RCPPS``, a 2048-entry table measured on an Intel Xeon (result set by the top 11 mantissa bits).
        Both keep 12 mantissa bits (bits 22..11); they differ in about half of their entries, and which one the
        CPU running libopus has decides whether the emulation is bit-exact there (:func:`for_host`,
        docs/numerics.md). The tables are data files with their provenance (``data/rcpps.json``).
    fma:
        emulation paths only: whether libopus' SIMD kernels (float matrix-vector products, the
        activation polynomials, the input quantisation) use fused multiply-adds, as the AVX2 build
        does. Everything outside those kernels (GRU/GLU element-wise arithmetic, ``acc*scale + bias``)
        is never fused in libopus and is kept unfused here.
    """

    matmul: str = "float"
    bias: str = "su"
    rounding: str = "even"
    activation: str = "exact"
    reciprocal: str = "exact"
    fma: bool = False

    def __post_init__(self):
        checks = {
            "matmul": ("float", "int8"),
            "bias": ("su", "signed"),
            "rounding": ("even", "half_up"),
            "activation": ("exact", "approx", "approx_c"),
            "reciprocal": ("exact",) + RCPPS_TABLES,
        }
        for field, allowed in checks.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"Numerics.{field} must be one of {allowed}, got {getattr(self, field)!r}")


#: The dequantised model with exact activations: the mathematical reference, differentiable.
FLOAT = Numerics()
#: libopus on x86 with AVX2 (the RTCD default): u8 inputs, su-bias, rational activations with RCPPS.
LIBOPUS_AVX2 = Numerics(matmul="int8", bias="su", rounding="even", activation="approx", reciprocal="rcp12",
                        fma=True)
#: libopus x86 built with --disable-intrinsics --disable-rtcd (SSE2 path of vec_avx.h).
LIBOPUS_SSE2 = Numerics(matmul="int8", bias="su", rounding="half_up", activation="approx", reciprocal="rcp12")
#: libopus' plain-C arithmetic (dnn/vec.h without SIMD): signed inputs rounded half up, plain bias, the
#: rational tanh with exact division, and sigmoid(x) = 0.5 + 0.5 tanh(x/2).
LIBOPUS_C = Numerics(matmul="int8", bias="signed", rounding="half_up", activation="approx_c", reciprocal="exact")

#: The same two x86 paths on Intel cores, whose ``RCPPS`` differs from AMD's.
LIBOPUS_AVX2_INTEL = dataclasses.replace(LIBOPUS_AVX2, reciprocal="rcp11")
LIBOPUS_SSE2_INTEL = dataclasses.replace(LIBOPUS_SSE2, reciprocal="rcp11")

NUMERICS = {"float": FLOAT, "avx2": LIBOPUS_AVX2, "sse2": LIBOPUS_SSE2, "c": LIBOPUS_C,
            "avx2-intel": LIBOPUS_AVX2_INTEL, "sse2-intel": LIBOPUS_SSE2_INTEL}


@functools.lru_cache(maxsize=1)
def cpu_vendor() -> str:
    """The x86 vendor string of this machine's CPU (``/proc/cpuinfo``'s ``vendor_id``), or ``""``; read once."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def host_reciprocal() -> str:
    """The ``RCPPS`` table that matches this machine's CPU by vendor: ``"rcp11"`` on Intel, ``"rcp12"``
    otherwise (AMD, where the default table was measured). ``opus_dred.libopus._cpu`` measures the
    instruction itself to confirm it."""
    return "rcp11" if cpu_vendor() == "GenuineIntel" else "rcp12"


def for_host(num: Numerics) -> Numerics:
    """``num`` with its ``RCPPS`` table swapped for this machine's (:func:`host_reciprocal`): the numerics
    that reproduce a libopus build *running on this CPU*. Presets without ``RCPPS`` come back unchanged."""
    if num.reciprocal in RCPPS_TABLES:
        return dataclasses.replace(num, reciprocal=host_reciprocal())
    return num

# ---------------------------------------------------------------------------------------------------
# Load time: libopus storage layouts -> dense matrices (numpy)
# ---------------------------------------------------------------------------------------------------


_BLOCK_ROWS = 8  # outputs per block (dnn/vec.h: 8x4 blocks)
_BLOCK_COLS = 4  # inputs per block


def _unpack_sparse(data: np.ndarray, idx: np.ndarray, nb_in: int, nb_out: int, *, out_major: bool) -> np.ndarray:
    """Expand a block-sparse matrix to dense ``[nb_in, nb_out]``.

    ``idx`` holds, for each group of 8 outputs, the number of non-zero 8x4 blocks followed by each
    block's first input position. int8 blocks are stored out-major ``[8][4]``, float blocks in-major
    ``[4][8]`` (dnn/vec.h ``sparse_cgemv8x4`` and ``sparse_sgemv8x4``).
    """
    dense = np.zeros((nb_in, nb_out), dtype=data.dtype)
    idx = np.asarray(idx, dtype=np.int64)
    p = 0
    blk = 0
    for row in range(0, nb_out, _BLOCK_ROWS):
        if p >= len(idx):
            raise ValueError("sparse index list ends early")
        count = int(idx[p])
        p += 1
        for _ in range(count):
            col = int(idx[p])
            p += 1
            if col < 0 or col + _BLOCK_COLS > nb_in:
                raise ValueError(f"sparse block position {col} out of range for {nb_in} inputs")
            block = data[blk * 32:(blk + 1) * 32]
            if len(block) != 32:
                raise ValueError("sparse weight data ends early")
            block = block.reshape(_BLOCK_ROWS, _BLOCK_COLS).T if out_major else block.reshape(_BLOCK_COLS, _BLOCK_ROWS)
            dense[col:col + _BLOCK_COLS, row:row + _BLOCK_ROWS] = block
            blk += 1
    if p != len(idx) or blk * 32 != len(data):
        raise ValueError("sparse index list and weight data disagree in length")
    return dense


def unpack_linear(arrays: Mapping[str, np.ndarray], name: str, nb_inputs: int, nb_outputs: int) -> dict:
    """Build one layer's parameter pytree from libopus' C arrays (the names of ``linear_init``).

    Uses ``<name>_weights_int8`` (with ``<name>_scale`` and ``<name>_subias``) when present, else
    ``<name>_weights_float``; ``<name>_weights_idx`` marks a block-sparse layer. Dense int8 weights are
    stored in blocks ``(nb_out/8, nb_in/4, 8, 4)``; dense float weights as ``[nb_in][nb_out]``
    (dnn/parse_lpcnet_weights.c:linear_init, dnn/vec.h).
    """
    def get(suffix):
        return arrays.get(f"{name}_{suffix}")

    bias = get("bias")
    bias = np.zeros(nb_outputs, np.float32) if bias is None else np.asarray(bias, np.float32)
    if bias.shape != (nb_outputs,):
        raise ValueError(f"{name}: bias has {bias.shape}, expected ({nb_outputs},)")
    idx = get("weights_idx")
    w_int8 = get("weights_int8")
    w_float = get("weights_float")
    out = {"bias": jnp.asarray(bias)}
    if w_int8 is not None:
        w_int8 = np.asarray(w_int8, np.int8)
        if idx is not None:
            wq = _unpack_sparse(w_int8, idx, nb_inputs, nb_outputs, out_major=True)
        else:
            if w_int8.size != nb_inputs * nb_outputs:
                raise ValueError(f"{name}: {w_int8.size} int8 weights, expected {nb_inputs * nb_outputs}")
            wq = (w_int8.reshape(nb_outputs // 8, nb_inputs // 4, 8, 4)
                  .transpose(1, 3, 0, 2).reshape(nb_inputs, nb_outputs))
        scale = np.asarray(get("scale"), np.float32)
        subias = get("subias")
        if subias is None:  # derive it as the export does: bias - 127 * sum_j w_q[j, i] * scale[i]
            subias = bias - 127.0 * wq.astype(np.float64).sum(axis=0) * scale
        out["weight_q"] = jnp.asarray(wq)
        out["scale"] = jnp.asarray(scale)
        out["subias"] = jnp.asarray(np.asarray(subias, np.float32))
        out["weight"] = jnp.asarray(wq.astype(np.float32) * (127.0 * scale)[None, :])
    elif w_float is not None:
        w_float = np.asarray(w_float, np.float32)
        if idx is not None:
            w = _unpack_sparse(w_float, idx, nb_inputs, nb_outputs, out_major=False)
        else:
            if w_float.size != nb_inputs * nb_outputs:
                raise ValueError(f"{name}: {w_float.size} float weights, expected {nb_inputs * nb_outputs}")
            w = w_float.reshape(nb_inputs, nb_outputs)
        out["weight"] = jnp.asarray(w)
    else:
        raise ValueError(f"{name}: no weights_int8 or weights_float array")
    return out


# ---------------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------------

# Coefficients of libopus' rational activations (dnn/vec_avx.h tanh8_approx / sigmoid8_approx; the
# same numbers in dnn/vec.h): f(x) = x * (N0 + N1 x^2 + N2 x^4) / (D0 + D1 x^2 + D2 x^4).
_TANH_N = (952.52801514, 96.39235687, 0.60863042)
_TANH_D = (952.72399902, 413.36801147, 11.88600922)
_SIG_N = (238.13200378, 6.02452230, 0.00950985)
_SIG_D = (952.72399902, 103.34200287, 0.74287558)

#: The measured ``RCPPS`` tables, one ``.npy`` file each, and their provenance (``rcpps.json``: CPU, probe,
#: licence, sha256); read on first use.
RCPPS_DATA = Path(__file__).parent / "data"


@functools.lru_cache(maxsize=1)
def rcpps_provenance() -> dict:
    """``data/rcpps.json``: what each table is, where and how it was measured, its file and sha256."""
    return json.loads((RCPPS_DATA / "rcpps.json").read_text())


@functools.lru_cache(maxsize=None)
def rcpps_measured(mode: str) -> np.ndarray:
    """The measured table of ``mode`` as stored: uint16 mantissa bits 22..11 of ``RCPPS(1 + k/N)`` scaled into
    [0.5, 1), for N = 4096 (``"rcp12"``) or 2048 (``"rcp11"``) entries; its sha256 is checked on loading."""
    if mode not in RCPPS_TABLES:
        raise ValueError(f"no RCPPS table {mode!r}; choose one of {RCPPS_TABLES}")
    entry = rcpps_provenance()["tables"][mode]
    data = (RCPPS_DATA / entry["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{entry['file']}: sha256 differs from rcpps.json (the measured table was altered)")
    raw = np.load(io.BytesIO(data), allow_pickle=False)
    if raw.dtype != np.dtype("<u2") or raw.shape != (entry["entries"],):
        raise ValueError(f"{entry['file']}: expected {entry['entries']} uint16 entries, got {raw.dtype} {raw.shape}")
    return raw


@functools.lru_cache(maxsize=None)
def rcpps_table(mode: str = "rcp12") -> np.ndarray:
    """The emulated ``RCPPS`` of ``mode`` as 4096 float32 bit patterns: entry ``m`` is ``RCPPS(1 + m/4096)``
    scaled into [0.5, 1) (an 11-bit table is repeated per entry, so both index by 12 mantissa bits)."""
    raw = rcpps_measured(mode).astype(np.uint32)
    if mode == "rcp11":
        raw = np.repeat(raw, 2)
    return (np.uint32(0x3F000000) | (raw << np.uint32(11))).astype(np.uint32)


def recip(x, mode: str = "exact"):
    """1/x, or the emulated x86 ``RCPPS`` approximation (``mode`` one of :data:`RCPPS_TABLES`).

    The emulation covers positive normal float32 inputs with a normal reciprocal, which is all the
    activations need (their denominators are at least 952.7).
    """
    if mode == "exact":
        return 1.0 / x
    if x.dtype != jnp.float32:
        x32 = x.astype(jnp.float32)
    else:
        x32 = x
    bits = jax.lax.bitcast_convert_type(x32, jnp.uint32)
    if mode == "rcp11":
        return _rcp11(x32, bits).astype(x.dtype)
    e = (bits >> 23).astype(jnp.int32) - 127
    m = (bits >> 11) & 0xFFF
    table = jnp.asarray(rcpps_table(mode))
    r = table[m].astype(jnp.int32) - (e << 23)
    res = jax.lax.bitcast_convert_type(r.astype(jnp.uint32), jnp.float32)
    return res.astype(x.dtype)


def _rcp11(x, bits):
    """Intel's ``RCPPS``, computed instead of looked up. The measured table (:func:`rcpps_table`) is exactly
    the reciprocal of the midpoint of the input's 11-bit mantissa interval, rounded to 13 significant bits
    (to nearest; ``rint(2^25 / (4097 + 2p))`` in units of 2^-13 for ``x = 1 + p/2048``), checked against all
    2^23 mantissas measured on the CPU. Here: the float32 reciprocal of that midpoint, rounded to 13
    significant bits by adding and subtracting ``2^11`` times its power of two (round to nearest even); the
    float32 division lands exactly on a rounding midpoint for one input, ``p = 2047``, whose true value lies
    just above it, so that one is rounded up by hand. Element-wise only: XLA vectorises it, where a table
    lookup is a gather that keeps the whole activation fusion scalar (docs/benchmarks.md)."""
    mid = jax.lax.bitcast_convert_type((bits & jnp.uint32(0xFFFFF000)) | jnp.uint32(0x800), jnp.float32)
    y = 1.0 / mid
    c = jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(y, jnp.uint32) & jnp.uint32(0xFF800000),
                                     jnp.float32) * 2048.0
    r = (y + c) - c
    top = (bits & jnp.uint32(0x7FF000)) == jnp.uint32(0x7FF000)
    return jnp.where(top, r * np.float32(1.0 + 2.0 ** -12), r)


def _unfused(p):
    """Stop XLA from contracting the product ``p`` into a following addition (an FMA).

    XLA's CPU backend fuses ``a * b + c`` into one FMA on hosts that have it; libopus rounds the
    product first except inside its FMA kernels. A select keeps the product a separate, rounded value.
    """
    return jnp.where(jnp.isnan(p), jnp.nan, p)


def _mad(a, b, c, fused: bool):
    """``a * b + c``: one rounding (``fused``; relies on XLA contracting it on FMA hosts) or two."""
    if fused:
        return a * b + c
    return _unfused(a * b) + c


def _rational(x, n, d, reciprocal, fused):
    x2 = x * x
    num = _mad(_mad(n[2], x2, n[1], fused), x2, n[0], fused)
    den = _mad(_mad(d[2], x2, d[1], fused), x2, d[0], fused)
    return num * x, recip(den, reciprocal)


def tanh_approx(x, reciprocal: str = "exact", fused: bool = False):
    """libopus' rational tanh (dnn/vec_avx.h:tanh8_approx), clamped to [-1, 1].

    ``reciprocal="exact"`` divides (dnn/vec.h:tanh_approx, no-SIMD builds); ``"rcp12"``/``"rcp11"``
    multiply by the emulated ``RCPPS`` (AMD/Intel) as the x86 kernels do.
    """
    num, rden = _rational(x, _TANH_N, _TANH_D, reciprocal, fused)
    return jnp.clip(num * rden, -1.0, 1.0)


def sigmoid_approx(x, reciprocal: str = "exact", fused: bool = False):
    """libopus' rational sigmoid (dnn/vec_avx.h:sigmoid8_approx): ``0.5 + x P(x^2) / Q(x^2)`` in [0, 1]."""
    num, rden = _rational(x, _SIG_N, _SIG_D, reciprocal, fused)
    return jnp.clip(_mad(num, rden, 0.5, fused), 0.0, 1.0)


def tanh(x, num: Numerics = FLOAT):
    if num.activation == "exact":
        return jnp.tanh(x)
    return tanh_approx(x, num.reciprocal, num.fma)


def sigmoid(x, num: Numerics = FLOAT):
    if num.activation == "exact":
        return jax.nn.sigmoid(x)
    if num.activation == "approx_c":  # dnn/vec.h:sigmoid_approx: 0.5 + 0.5 tanh(x / 2)
        return 0.5 + _unfused(0.5 * tanh_approx(0.5 * x, num.reciprocal, num.fma))
    return sigmoid_approx(x, num.reciprocal, num.fma)


# ---------------------------------------------------------------------------------------------------
# Linear layers and the blocks built on them
# ---------------------------------------------------------------------------------------------------


def quantize_input(x, num: Numerics):
    """8-bit input quantisation of libopus' int8 matrix-vector products (dnn/vec_avx.h:vector_ps_to_epi8).

    Returns int32 values: ``127 + round(127 x)`` saturated to [0, 255] for ``bias="su"``, and
    ``round(127 x)`` for ``bias="signed"``. Inputs of the decoder's int8 layers are all in [-1, 1].
    AVX2 rounds ``fma(x, 127, 127)`` to nearest-even; the SSE2 and plain-C fallbacks compute
    ``floor(0.5 + float(127 x))``.
    """
    if num.rounding == "even":
        if num.bias == "su":
            q = jnp.round(_mad(x, 127.0, 127.0, num.fma)).astype(jnp.int32)
            return jnp.clip(q, 0, 255)
        return jnp.round(x * 127.0).astype(jnp.int32)
    q = jnp.floor(_unfused(x * 127.0) + 0.5).astype(jnp.int32)
    if num.bias == "su":
        q = jnp.clip(q + 127, 0, 255)
    return q


def _sgemv_sequential(w, x, fused: bool):
    """Float matrix-vector product accumulated input by input, as libopus' ``sgemv`` kernels do
    (dnn/vec_avx.h:sgemv: ``y = fma(w[j], x[j], y)`` for j = 0, 1, ...; plain mul+add without FMA)."""
    y = jnp.zeros(x.shape[:-1] + (w.shape[1],), x.dtype)
    for j in range(w.shape[0]):
        y = _mad(w[j].astype(x.dtype), x[..., j:j + 1], y, fused)
    return y


def nb_inputs(p: dict) -> int:
    """A layer's input width: the first axis of its weight matrix (``weight``, else ``weight_q``)."""
    return int(np.shape(p["weight"] if "weight" in p else p["weight_q"])[0])


def int_product(q, w):
    """The exact integer sums ``q @ w`` of 8-bit inputs and int8 weights, as an int32 ``matmul``."""
    return jnp.matmul(q, w.astype(jnp.int32), preferred_element_type=jnp.int32)


def int8_linear(p: dict, x, num: Numerics, product=int_product):
    """libopus' int8 layer (dnn/vec_avx.h:cgemv8x4, sparse_cgemv8x4): ``quantize_input``, the exact integer
    sums ``product(q, weight_q)``, then ``float(acc) * scale`` and, rounded separately, ``+ subias`` (``su``
    bias) or ``+ bias``. ``product`` may compute the sums any way that gives the same integers."""
    acc = product(quantize_input(x, num), p["weight_q"])
    bias = p["subias"] if num.bias == "su" else p["bias"]
    return _unfused(acc.astype(x.dtype) * p["scale"].astype(x.dtype)) + bias.astype(x.dtype)


def linear(p: dict, x, num: Numerics = FLOAT):
    """``compute_linear``: ``x @ W + b`` over the last axis of ``x`` (any leading batch axes).

    With ``num.matmul == "int8"`` a quantised layer runs the integer emulation (:func:`int8_linear`) and a
    float layer runs the sequential ``sgemv`` order; with ``"float"`` every layer is one ``jnp.matmul``.
    The blocks below take it as their ``linear`` argument, so that another implementation of the same
    arithmetic can be injected into them (and into ``rdovae.decode_step``).
    """
    if num.matmul == "int8":
        if "weight_q" in p:
            return int8_linear(p, x, num)
        return _sgemv_sequential(p["weight"], x, num.fma) + p["bias"].astype(x.dtype)
    return jnp.matmul(x, p["weight"].astype(x.dtype)) + p["bias"].astype(x.dtype)


def dense(p: dict, x, num: Numerics = FLOAT, activation: str = "tanh", *, linear=linear):
    """``compute_generic_dense``: a linear layer followed by tanh, sigmoid or nothing (``"linear"``)."""
    y = linear(p, x, num)
    if activation == "tanh":
        return tanh(y, num)
    if activation == "sigmoid":
        return sigmoid(y, num)
    if activation == "linear":
        return y
    raise ValueError(f"unknown activation {activation!r}")


def gru(p_in: dict, p_rec: dict, state, x, num: Numerics = FLOAT, *, linear=linear):
    """``compute_generic_gru``: one GRU step, gates laid out ``[z | r | h]``, reset applied after the
    recurrent product ("reset-after"); both linears carry their own bias. Returns the new state."""
    n = state.shape[-1]
    zrh = linear(p_in, x, num)
    rec = linear(p_rec, state, num)
    zr = sigmoid(zrh[..., :2 * n] + rec[..., :2 * n], num)
    z, r = zr[..., :n], zr[..., n:]
    if num.matmul == "int8":  # libopus rounds every product here (dnn/nnet.c is built without FMA)
        h = tanh(_unfused(rec[..., 2 * n:] * r) + zrh[..., 2 * n:], num)
        return _unfused(z * state) + _unfused((1.0 - z) * h)
    h = tanh(zrh[..., 2 * n:] + rec[..., 2 * n:] * r, num)
    return z * state + (1.0 - z) * h


def glu(p: dict, x, num: Numerics = FLOAT, *, linear=linear):
    """``compute_glu``: ``x * sigmoid(W x + b)``."""
    return x * sigmoid(linear(p, x, num), num)


def conv1d(p: dict, mem, x, num: Numerics = FLOAT, *, linear=linear):
    """``compute_generic_conv1d`` with kernel size 2: ``tanh(W [mem, x] + b)``; returns (output, new mem = x)."""
    y = tanh(linear(p, jnp.concatenate([mem, x], axis=-1), num), num)
    return y, x


def conv1d_dilated(p: dict, mem, x, num: Numerics = FLOAT, dilation: int = 1, activation: str = "tanh", *,
                   linear=linear):
    """``compute_generic_conv1d_dilation``: a causal convolution whose taps lie ``dilation`` frames apart.

    The kernel size ``k`` is ``nb_inputs / width(x)``. ``mem`` holds the last ``(k - 1) * dilation`` input
    frames, oldest first, flat (libopus' layout); the layer sees the frames ``dilation`` apart that end with
    ``x`` (``[mem frame 0, mem frame dilation, ..., x]``) and applies ``activation``. Returns (output, new
    mem): ``mem`` shifted by one frame with ``x`` appended. With ``dilation=1`` and ``k=2`` this is
    :func:`conv1d`.
    """
    n = x.shape[-1]
    nb_in = nb_inputs(p)
    if n == 0 or nb_in % n:
        raise ValueError(f"conv input width {n} does not divide the layer's {nb_in} inputs")
    k = nb_in // n
    if mem.shape[-1] != (k - 1) * dilation * n:
        raise ValueError(f"conv memory has width {mem.shape[-1]}, expected (k-1)*dilation*n = "
                         f"{(k - 1) * dilation * n} (k={k}, dilation={dilation}, n={n})")
    taps = [mem[..., i * dilation * n:(i * dilation + 1) * n] for i in range(k - 1)]
    y = dense(p, jnp.concatenate([*taps, x], axis=-1), num, activation, linear=linear)
    return y, jnp.concatenate([mem[..., n:], x], axis=-1)


# ---------------------------------------------------------------------------------------------------
# 2-D convolution (PitchDNN)
# ---------------------------------------------------------------------------------------------------


def unpack_conv2d(arrays: Mapping[str, np.ndarray], name: str, in_channels: int, out_channels: int, ktime: int,
                  kheight: int) -> dict:
    """One ``Conv2dLayer``'s pytree from libopus' C arrays (dnn/parse_lpcnet_weights.c:conv2d_init):
    ``{"weight": f32[out_channels, in_channels, ktime, kheight], "bias": f32[out_channels]}``, the order of
    ``<name>_weight_float``; a missing ``<name>_bias`` is zero."""
    w = arrays.get(f"{name}_weight_float")
    if w is None:
        raise ValueError(f"{name}: no {name}_weight_float array")
    w = np.asarray(w, np.float32)
    shape = (out_channels, in_channels, ktime, kheight)
    if w.size != int(np.prod(shape)):
        raise ValueError(f"{name}: {w.size} weights, expected {shape} = {int(np.prod(shape))}")
    b = arrays.get(f"{name}_bias")
    b = np.zeros(out_channels, np.float32) if b is None else np.asarray(b, np.float32)
    if b.shape != (out_channels,):
        raise ValueError(f"{name}: bias has {b.shape}, expected ({out_channels},)")
    return {"weight": jnp.asarray(w.reshape(shape)), "bias": jnp.asarray(b)}


def conv2d(p: dict, mem, x, num: Numerics = FLOAT, activation: str = "tanh"):
    """``compute_conv2d`` (dnn/nnet_arch.h:compute_conv2d_): one time step of a convolution over (time, height).

    ``p`` as :func:`unpack_conv2d` builds it. ``x`` is the newest input frame, ``[..., in_channels, height +
    kheight - 1]``, already padded along the height (the convolution is "valid" there); ``mem`` holds the
    ``ktime - 1`` frames before it, oldest first, ``[..., ktime - 1, in_channels, height + kheight - 1]``.
    Returns (``[..., out_channels, height]`` after the bias and ``activation``, the new memory: the last
    ``ktime - 1`` frames of ``[mem, x]``).

    With ``num.matmul == "float"`` the sum is one ``einsum`` (XLA's order). The emulation paths follow the
    compiled loops: for a 3x3 kernel (dnn/nnet_arch.h:conv2d_3x3_float) each input channel's nine products are
    summed in (time, height) order and that sum is added to the output, channel after channel; with
    ``num.fma`` the first two products make ``fma(w0, x0, w1 x1)`` and each later product is fused onto the
    sum (what GCC emits for dnn/x86/nnet_avx2.c, built with ``-mfma``), else every product and sum is
    rounded. Other kernel sizes (dnn/nnet_arch.h:conv2d_float) add one product at a time, fused with
    ``num.fma``. The bias is then added in its own rounding.
    """
    w = p["weight"].astype(x.dtype)
    _, n_in, kt, kh = w.shape
    if x.shape[-2] != n_in:
        raise ValueError(f"conv2d input has {x.shape[-2]} channels, the layer takes {n_in}")
    if mem.shape[-3:] != (kt - 1,) + x.shape[-2:]:
        raise ValueError(f"conv2d memory has shape {mem.shape[-3:]}, expected {(kt - 1,) + x.shape[-2:]}")
    height = x.shape[-1] - kh + 1
    frames = jnp.concatenate([mem, x[..., None, :, :]], axis=-3)  # [..., kt, in, height + kh - 1]

    def tap(t, m, h):  # [..., 1, height]: the inputs that weight [:, m, t, h] multiplies
        return frames[..., t, m, None, h:h + height]

    if num.matmul != "int8":
        patches = jnp.stack([frames[..., h:h + height] for h in range(kh)], axis=-2)  # [..., kt, in, kh, H]
        y = jnp.einsum("...tmhj,omth->...oj", patches, w)
    else:
        taps = [(t, h) for t in range(kt) for h in range(kh)]
        y = None
        for m in range(n_in):
            if kt == 3 and kh == 3:
                (t0, h0), (t1, h1) = taps[0], taps[1]
                s = _mad(w[:, m, t0, h0, None], tap(t0, m, h0), _unfused(w[:, m, t1, h1, None] * tap(t1, m, h1)),
                         num.fma)
                for t, h in taps[2:]:
                    s = _mad(w[:, m, t, h, None], tap(t, m, h), s, num.fma)
                y = s if y is None else y + s
            else:
                for t, h in taps:
                    prod_in = tap(t, m, h)
                    y = _unfused(w[:, m, t, h, None] * prod_in) if y is None else _mad(w[:, m, t, h, None], prod_in,
                                                                                         y, num.fma)
    y = y + p["bias"].astype(x.dtype)[:, None]
    if activation == "tanh":
        y = tanh(y, num)
    elif activation == "sigmoid":
        y = sigmoid(y, num)
    elif activation != "linear":
        raise ValueError(f"unknown activation {activation!r}")
    return y, frames[..., 1:, :, :]


# ---------------------------------------------------------------------------------------------------
# A smaller graph for the same arithmetic (FARGAN)
# ---------------------------------------------------------------------------------------------------


def _sgemv_scan(w, x, fused: bool):
    """:func:`_sgemv_sequential` as a ``lax.scan`` over the inputs: the same roundings in the same order, one
    loop body instead of one operation per input (a faster compile for wide float layers)."""
    def step(y, wx):
        wj, xj = wx
        return _mad(wj, xj[..., None], y, fused), None

    y0 = jnp.zeros(x.shape[:-1] + (w.shape[1],), x.dtype)
    y, _ = jax.lax.scan(step, y0, (w.astype(x.dtype), jnp.moveaxis(x, -1, 0)))
    return y


def linear_looped(p: dict, x, num: Numerics = FLOAT):
    """:func:`linear` with the emulation paths' float layers accumulated in a loop (:func:`_sgemv_scan`):
    the same results; pass it as the blocks' ``linear`` where a model's graph is large."""
    if num.matmul == "int8" and "weight_q" not in p:
        return _sgemv_scan(p["weight"], x, num.fma) + p["bias"].astype(x.dtype)
    return linear(p, x, num)
