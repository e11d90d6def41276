"""The input side of libopus' DRED encoder in numpy: the 16 kHz conversion and the LPCNet feature frames.

Two stateful objects, each batched over a leading axis of independent streams:

* :class:`Resampler` is ``dnn/dred_encoder.c:dred_convert_to_16k`` with ``filter_df2t``: float PCM at 8, 12,
  16, 24 or 48 kHz (libopus' float API scale, ±1) to 16 kHz samples in int16 scale. The input is scaled by the
  zero-insertion factor, rounded to int16 (``celt/float_cast.h:FLOAT2INT16``: ×32768, clamped, round half to
  even), plus ``VERY_SMALL`` (``1e-30f``) from libopus 1.6 on, zero-stuffed to 16 or 48 kHz, filtered by a
  7th-order elliptic low-pass in transposed direct form II and decimated by 3 (not at 8 or 16 kHz).
* :class:`FeatureExtractor` is ``LPCNetEncState`` with
  ``dnn/lpcnet_enc.c:lpcnet_compute_single_frame_features_float``: per 160 samples at 16 kHz, the 36 values of
  ``st->features`` (18 cepstral coefficients, the pitch, the frame correlation, 16 LPC coefficients; the first
  20 are what the RDO-VAE encoder reads), PitchDNN's inputs (``if_features``, ``xcorr_features``) and its
  output ``dnn_pitch``. PitchDNN is injected (``pitch=``): by default the reference one
  (:class:`~opus_dred.refimpl._pitchdnn.PitchDNN`, JAX), or any callable, such as libopus' own.

Every step is float32 in libopus' order, each operation rounded where the C code rounds it, so that the result is
bit-exact with a libopus build. The C code outside the SIMD kernels is compiled for baseline x86-64 (``-O2``,
no FMA, no ``-ffast-math``): plain float32 operations, promoted to double where C promotes them (``sqrt``,
``pow``, ``exp``, ``log`` and double constants). Sums are sequential (``numpy.cumsum`` accumulates in order;
``numpy.sum`` is pairwise and never used for a libopus sum).

The steps of ``compute_frame_features`` (``dnn/lpcnet_enc.c``, ``dnn/freq.c``):

1. pre-emphasis ``x[i] + (-0.85)·x[i-1]``;
2. ``frame_analysis``: the previous and current 160 samples, windowed (``half_window`` and its mirror), the
   320-point complex kiss FFT (``celt/kiss_fft.c:opus_fft_c``: input scaled by 1/320 and bit-reversed, then the
   radix stages of the factor plan 5·4·4·4, ``kf_bfly4``'s degenerate first stage, ``kf_bfly5`` last), the band
   energies of ``lpcn_compute_band_energy`` (18 triangular bands, sequential sums);
3. the instantaneous-frequency features: ``X[i]·conj(X_prev[i])`` normalised by ``1/sqrt(1e-15 + |·|²)`` and the
   log-energy of each of the first 30 bins, ``(10·log10(1e-15 + |X|²) - 6)/64`` clamped to [-1, 1];
4. the log band energies ``log10(0.01 + E)`` with the floor ``max(logMax - 8, follow - 2.5)``, the DCT
   (``dct_table``, times ``sqrt(2/18)`` in double), ``c0 -= 4``;
5. ``lpc_from_cepstrum``: the inverse DCT, ``pow(10, ·)·compensation`` (double), the band gains interpolated to
   161 bins, the inverse transform by the same FFT, a -40 dB noise floor and lag window, and Levinson-Durbin
   (``lpcn_lpc``, a float copy of ``celt/celt_lpc.c:_celt_lpc`` that stops at 30 dB of prediction gain);
6. the LPC residual: ``celt_fir`` of the pre-emphasised input delayed by 80 samples, the excitation
   ``r[i] + 0.7·r[i-1]``, and the residual low-passed by a biquad (``ellip(2, 2, 20, 1200/8000)``);
7. the pitch correlations ``2·xcorr[k] / (1 + E0 + E1[k])`` over 224 lags (``celt_pitch_xcorr``,
   ``celt_inner_prod``, ``E1`` updated in double), PitchDNN on (3, 7) -> ``dnn_pitch``, the period
   ``floor(.5 + 256/2^(dnn_pitch + 1.5))`` and ``frame_corr = log(1 + e^(5c))/log(1 + e^5)`` of the normalised
   correlation of the low-passed residual at that period.

Kernels (``kernels=``): a default x86 build of libopus dispatches ``celt_pitch_xcorr`` to
``celt/x86/pitch_avx.c:celt_pitch_xcorr_avx2`` (8 lanes of fused multiply-adds, then a fixed tree of adds) where
the CPU has AVX2, and always compiles ``celt_inner_prod`` and ``xcorr_kernel`` (inside ``celt_fir``) as
``celt/x86/pitch_sse.c``'s SSE versions (4 lanes, separate multiply and add; ``xcorr_kernel_sse`` keeps even and
odd taps in two accumulators): ``kernels="x86"``. A ``--disable-intrinsics --disable-rtcd`` build runs the plain
C of ``celt/pitch.h`` and ``celt/pitch.c`` (one sequential sum per output): ``kernels="c"``.

A fused multiply-add is emulated exactly: the product of two float32 values is exact in double, the sum is
rounded once to double and then to float32; the two roundings differ from one only when the double sum falls
exactly half-way between two float32 values while the exact sum does not, which the code detects (the sum's
rounding error, by Knuth's TwoSum) and corrects. So the emulation equals the FMA instruction for every input,
subnormal results included.

Versions: libopus builds for x86 define ``FLOAT_APPROX``, so ``celt_log2`` (and with it the ``celt_log10`` of
``lpcnet_enc.c``) is ``celt/mathops.h``'s polynomial approximation, which differs between releases: 1.5.x has a
cubic in the mantissa around 1.5, 1.6.x a quartic on eight sub-ranges of the mantissa. 1.6.x also adds
``VERY_SMALL`` to each converted input sample. Both are chosen from the model pack's release. Everything else
of this module is the same in 1.5.2 and 1.6.1.

libm: ``pow``, ``exp`` and ``log`` are glibc's in libopus, and numpy's SIMD versions may differ from glibc's in
the last bit of a double. Each result here is rounded to float32 (or to an integer) before it is used further, so
the module computes with numpy and recomputes with Python's :mod:`math` (glibc's functions) the rare elements
whose double result lies within 2^-40 (relative) of a rounding boundary, where a last-bit difference could show.

Tables: the FFT plan, bit reversal, twiddles, window and DCT are the model pack's (``dnn/lpcnet_tables.c``,
docs/model-packs.md). The few constants of the C code (band edges, compensation, the filters' coefficients, the
``celt_log2`` coefficients) are data written here as the C source spells them, each literal rounded once to
float32 as a C compiler does; sources are named where they are defined (BSD-3-Clause, libopus).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import cache

import numpy as np

from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.errors import OpusDredError
from opus_dred.models import load_pack

_f32 = np.float32
_f64 = np.float64

# ---------------------------------------------------------------------------------------------------------------
# constants


class FeatureError(OpusDredError):
    """A bad argument to the feature extractor or the resampler; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {message}")


def c_float(literal: str) -> np.float32:
    """A C ``float`` literal (``"0.85"`` for ``0.85f``) as a C compiler rounds it: the decimal value rounded once
    to the nearest float32, ties to even (``np.float32(float(s))`` would round twice)."""
    exact = Fraction(literal)
    near = np.float32(float(literal))
    cands = [np.nextafter(near, _f32(-np.inf)), near, np.nextafter(near, _f32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.asarray(c).view(np.uint32)) & 1))
    return _f32(best)


def _cfs(*literals: str) -> np.ndarray:
    return np.array([c_float(s) for s in literals], _f32)


KERNELS = ("x86", "c")
#: the rates ``dred_convert_to_16k`` accepts (96 kHz only in QEXT builds, not emulated)
RATES = (8000, 12000, 16000, 24000, 48000)

FRAME_SIZE = 160  # dnn/freq.h
OVERLAP_SIZE = 160
TRAINING_OFFSET = 80
WINDOW_SIZE = 320
FREQ_SIZE = 161
NB_BANDS = 18
LPC_ORDER = 16
NB_TOTAL_FEATURES = 36  # dnn/lpcnet.h
PITCH_MIN_PERIOD = 32  # dnn/lpcnet.h
PITCH_MAX_PERIOD = 256
NB_XCORR = PITCH_MAX_PERIOD - PITCH_MIN_PERIOD  # 224
PITCH_IF_MAX_FREQ = 30  # dnn/lpcnet_private.h
PITCH_IF_FEATURES = 3 * PITCH_IF_MAX_FREQ - 2  # 88

#: dnn/freq.c: eband5ms (band edges in units of 4 bins) and compensation
EBAND5MS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 34, 40])
COMPENSATION = _cfs("0.8", "1", "1", "1", "1", "1", "1", "1", "0.666667", "0.5", "0.5", "0.5", "0.333333", "0.25",
                    "0.25", "0.2", "0.166667", "0.173913")
_PREEMPH = c_float("0.85")  # dnn/freq.h: PREEMPHASIS
#: dnn/lpcnet_enc.c:compute_frame_features: the biquad's lp_b, lp_a
_LP_B = _cfs("-0.84946", "1")
_LP_A = _cfs("-1.54220", "0.70781")
_BQ_C0 = _LP_B[0] - _LP_A[0]  # (b[0]-a[0]) in float, as biquad() computes it
_BQ_C1 = _LP_B[1] - _LP_A[1]
_1E_30 = c_float("1e-30")
_1E_15 = c_float("1e-15")
_1E_2 = c_float("1e-2")
_LOG10_2 = c_float("0.3010299957")  # lpcnet_enc.c: celt_log10(x) = 0.3010299957f*celt_log2(x)
_0P7 = c_float("0.7")
_0P001 = c_float("0.001")
_INV64 = _f32(1.0 / 64)
#: sqrt(2./NB_BANDS), folded by the compiler (correctly rounded)
_DCT_SCALE = math.sqrt(2.0 / NB_BANDS)
#: dnn/freq.c:lpc_from_bands: 320/12/38. (integer division first)
_NOISE_FLOOR = (320 // 12) / 38.0
_LAG_WINDOW = np.array([1.0] + [1 - 6e-5 * i * i for i in range(1, LPC_ORDER + 1)], _f64)


def _log1p_exp5() -> float:
    """``log(1+exp(5.f))`` of ``compute_frame_features``, which the compiler folds with correctly rounded
    ``exp`` and ``log``: each step rounded to the nearest double."""
    with localcontext() as ctx:
        ctx.prec = 60
        e5 = float(Decimal(5).exp())
        return float(Decimal(1.0 + e5).ln())


_LOG1P_EXP5 = _log1p_exp5()

#: celt/mathops.h (FLOAT_APPROX), 1.5.x: celt_log2's cubic
_LOG2_V15 = _cfs("-0.41445418", "0.95909232", "-0.33951290", "0.16541097")
#: celt/mathops.h (FLOAT_APPROX), 1.6.x: log2_x_norm_coeff, log2_y_norm_coeff, LOG2_COEFF_A0..A4
_LOG2_V16_X = _cfs("1.000000000000000000000000000", "8.88888895511627197265625e-01", "8.00000000000000000000000e-01",
                   "7.27272748947143554687500e-01", "6.66666686534881591796875e-01", "6.15384638309478759765625e-01",
                   "5.71428596973419189453125e-01", "5.33333361148834228515625e-01")
_LOG2_V16_Y = _cfs("0.0000000000000000000000000000", "1.699250042438507080078125e-01", "3.219280838966369628906250e-01",
                   "4.594316184520721435546875e-01", "5.849624872207641601562500e-01", "7.004396915435791015625000e-01",
                   "8.073549270629882812500000e-01", "9.068905711174011230468750e-01")
_LOG2_V16_A = _cfs("8.74628424644470214843750000e-02", "1.357829570770263671875000000000",
                   "-6.3897705078125000000000000e-01", "4.01971250772476196289062500e-01",
                   "-2.8415444493293762207031250e-01")

#: dnn/dred_encoder.c:dred_convert_to_16k: (up, decimation, b0, filter_b, filter_a) per input rate; the same
#: figures in 1.5.2 and 1.6.1 (ellip(7, .2, 70, ...))
_RESAMPLERS = {
    48000: (1, 3, "0.004523418224",
            ("0.005873358047", "0.012980854831", "0.014531340042", "0.014531340042", "0.012980854831",
             "0.005873358047", "0.004523418224", "0"),
            ("-3.878718597768", "7.748834257468", "-9.653651699533", "8.007342726666", "-4.379450178552",
             "1.463182111810", "-0.231720677804", "0")),
    12000: (4, 3, "0.002033596776",
            ("-0.001017101081", "0.003673127243", "0.001009165267", "0.001009165267", "0.003673127243",
             "-0.001017101081", "0.002033596776", "0"),
            ("-4.930414411612", "11.291643096504", "-15.322037343815", "13.216403930898", "-7.220409219553",
             "2.310550142771", "-0.334338618782", "0")),
    8000: (2, 1, "0.020109185709",
           ("0.081670120929", "0.180401598565", "0.259391051971", "0.259391051971", "0.180401598565",
            "0.081670120929", "0.020109185709", "0"),
           ("-1.393651933659", "2.609789872676", "-2.403541968806", "2.056814957331", "-1.148908574570",
            "0.473001413788", "-0.110359852412", "0")),
}
_RESAMPLERS[24000] = (2,) + _RESAMPLERS[48000][1:]
RESAMPLING_ORDER = 8  # dnn/dred_encoder.h

# ---------------------------------------------------------------------------------------------------------------
# exact arithmetic helpers


def _seqsum(init, terms: np.ndarray) -> np.ndarray:
    """``s = init; for t in terms (last axis): s += t``, rounded at each step in the arrays' dtype.

    ``numpy.cumsum`` accumulates in order; for many short rows a loop over the summation axis (one
    vectorised add per term) is faster and gives the same sums."""
    n = terms.shape[-1]
    if terms.size >= 4096 * n:
        acc = np.array(np.broadcast_to(init, terms.shape[:-1]), dtype=terms.dtype)
        cols = np.ascontiguousarray(np.moveaxis(terms, -1, 0))
        for j in range(n):
            acc += cols[j]
        return acc
    buf = np.empty(terms.shape[:-1] + (n + 1,), terms.dtype)
    buf[..., 0] = init
    buf[..., 1:] = terms
    return np.cumsum(buf, axis=-1)[..., -1]


_LOW29 = np.uint64(0x1FFFFFFF)
_HALF29 = np.uint64(0x10000000)
_TINY = 2.0 ** -124


def _min_nonzero(x: np.ndarray) -> float:
    a = np.abs(np.asarray(x, _f64))
    a = a[a != 0]
    return float(a.min()) if a.size else math.inf


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray, *, tiny: bool | None = None) -> np.ndarray:
    """``fmaf(a, b, c)`` element-wise on float32 values (broadcasting): ``a·b + c`` rounded once.

    The product is exact in double and the double sum ``s`` is rounded to float32. That second rounding can
    differ from a single one only where ``s`` lies exactly half-way between two float32 values and ``s`` is not
    the exact sum: for a normal float32 result, the 29 bits of ``s`` below float precision are then
    ``1000…0``; those few candidates are resolved with the sum's exact rounding error (TwoSum). A result in
    the float32 subnormal range needs both ``|a·b|`` and ``|c|`` below 2^-124 (a sum is exact when its terms
    nearly cancel); ``tiny=False`` says the caller knows no nonzero product is that small (``None``: the
    operands are checked), else every result below 2^-125 is a candidate too."""
    a = np.asarray(a, _f32)
    b = np.asarray(b, _f32)
    c = np.asarray(c, _f32)
    if tiny is None:
        tiny = _min_nonzero(a) * _min_nonzero(b) < _TINY
    p = np.multiply(a, b, dtype=_f64)  # exact
    s = np.add(p, c, dtype=_f64)
    r = s.astype(_f32)
    cand = np.bitwise_and(s.view(np.uint64), _LOW29) == _HALF29
    if tiny:
        cand |= (np.abs(s) < 2.0 ** -125) & (s != 0)
    if cand.any():
        cb = np.broadcast_to(c, s.shape)
        idx = np.nonzero(cand)
        r[idx] = _round_sum(p[idx], cb[idx].astype(_f64), s[idx], r[idx])
    return r


def _round_sum(p: np.ndarray, c: np.ndarray, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The float32 nearest ``p + c`` given ``s = fl64(p + c)`` and ``r = fl32(s)``: ``r``, or its neighbour
    across ``s`` where ``s`` is a float32 midpoint and the exact sum lies on the neighbour's side of it."""
    bb = s - p
    err = (p - (s - bb)) + (c - bb)  # TwoSum: p + c == s + err exactly
    r64 = r.astype(_f64)
    other = np.nextafter(r, np.where(s > r64, _f32(np.inf), _f32(-np.inf)).astype(_f32))
    o64 = other.astype(_f64)
    wrong = (s == (r64 + o64) * 0.5) & (s != r64) & (err != 0) & (np.sign(err) == np.sign(o64 - s))
    return np.where(wrong, other, r)


def _near_f32_boundary(v: np.ndarray) -> np.ndarray:
    """Where a double lies within 2^-40 (relative) of a float32 rounding boundary."""
    r = v.astype(_f32)
    r64 = r.astype(_f64)
    lo = np.nextafter(r, _f32(-np.inf)).astype(_f64)
    hi = np.nextafter(r, _f32(np.inf)).astype(_f64)
    tol = np.abs(v) * 2.0 ** -40
    with np.errstate(invalid="ignore", over="ignore"):
        return (np.abs(v - (r64 + lo) * 0.5) <= tol) | (np.abs(v - (r64 + hi) * 0.5) <= tol)


def _libm(vec: Callable, scalar: Callable, boundary: Callable, *args: np.ndarray) -> np.ndarray:
    """``vec(*args)`` (numpy, float64) with the elements that ``boundary`` finds close to a rounding boundary
    recomputed by ``scalar`` (Python floats, glibc's libm)."""
    v = vec(*args)
    risky = boundary(v)
    if risky.any():
        v = v.copy()
        for i in zip(*np.nonzero(risky)):
            v[i] = scalar(*(float(a[i]) for a in args))
    return v


def _pow10_comp(e: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """``(float)(pow(10.f, e)*compensation)`` of ``dnn/freq.c:lpc_from_cepstrum``."""
    comp = np.broadcast_to(comp, e.shape).astype(_f64)
    v = _libm(lambda x, c: np.power(10.0, x) * c, lambda x, c: math.pow(10.0, x) * c, _near_f32_boundary,
              e.astype(_f64), comp)
    return v.astype(_f32)


def _pitch_period(dnn_pitch: np.ndarray) -> np.ndarray:
    """``(int)floor(.5+256./pow(2.f,((1./60.)*((dnn_pitch+1.5)*60))))`` of ``compute_frame_features``."""
    def near_int(v):
        return np.abs(v - np.rint(v)) <= np.abs(v) * 2.0 ** -40

    v = _libm(lambda d: 0.5 + 256.0 / np.power(2.0, (1.0 / 60.0) * ((d + 1.5) * 60)),
              lambda d: 0.5 + 256.0 / math.pow(2.0, (1.0 / 60.0) * ((d + 1.5) * 60)),
              near_int, dnn_pitch.astype(_f64))
    return np.floor(v)


def _frame_corr(c: np.ndarray) -> np.ndarray:
    """``(float)(log(1.f+exp(5.f*c))/log(1+exp(5.f)))`` of ``compute_frame_features`` (``c`` float32)."""
    x = (_f32(5) * c).astype(_f64)
    v = _libm(lambda t: np.log(1.0 + np.exp(t)) / _LOG1P_EXP5, lambda t: math.log(1.0 + math.exp(t)) / _LOG1P_EXP5,
              _near_f32_boundary, x)
    return v.astype(_f32)


def celt_log2(x: np.ndarray, release: tuple[int, ...]) -> np.ndarray:
    """``celt/mathops.h:celt_log2`` of the float ``FLOAT_APPROX`` build of ``release`` (float32 in and out)."""
    x = np.ascontiguousarray(x, _f32)
    bits = x.view(np.uint32)
    integer = (bits >> np.uint32(23)).astype(np.int32) - np.int32(127)
    mant_bits = (bits - (integer.astype(np.uint32) << np.uint32(23))).astype(np.uint32)
    if release < (1, 6):
        c = _LOG2_V15
        frac = mant_bits.view(_f32) - _f32(1.5)
        frac = c[0] + frac * (c[1] + frac * (c[2] + frac * c[3]))
        return (1 + integer).astype(_f32) + frac  # 1+integer+frac: the int sum, then to float
    idx = (mant_bits.view(np.int32) >> 20) & 7
    a = _LOG2_V16_A
    f = mant_bits.view(_f32) * _LOG2_V16_X[idx] - _f32(1.0625)
    f = a[0] + f * (a[1] + f * (a[2] + f * (a[3] + f * a[4])))
    return (integer.astype(_f32) + f) + _LOG2_V16_Y[idx]


# ---------------------------------------------------------------------------------------------------------------
# tables and the kiss FFT


@dataclass(frozen=True)
class _Stage:
    radix: int
    m: int
    n: int  # butterflies' outer count (fstride[i])
    mm: int
    fstride: int  # twiddle stride (fstride[i] << shift)


@dataclass(frozen=True)
class Tables:
    """The feature extractor's tables of one model pack, and the libopus release whose arithmetic applies."""

    release: tuple[int, ...]
    nfft: int
    scale: np.float32
    bitrev: np.ndarray
    tw_r: np.ndarray
    tw_i: np.ndarray
    stages: tuple[_Stage, ...]
    half_window: np.ndarray
    dct: np.ndarray  # [18, 18], dct_table[j*18 + i] at [j, i]


@cache
def tables(pack_id: str) -> Tables:
    """The tables of ``dnn/lpcnet_tables.c`` from a model pack (``kfft`` plan, ``fft_bitrev``, ``fft_twiddles``,
    ``half_window``, ``dct_table``)."""
    pack = load_pack(pack_id)
    rel = (pack.manifest.get("source") or {}).get("release")
    try:
        release = tuple(int(p) for p in str(rel).split("."))
    except ValueError:
        raise FeatureError("profile", f"model pack {pack_id!r} names no libopus release ({rel!r}); the feature "
                                      f"extractor's arithmetic follows the release") from None
    if release < (1, 5):
        raise FeatureError("profile", f"model pack {pack_id!r} is of libopus {rel}; DRED starts with 1.5")
    nfft = int(pack.array("kfft_nfft")[0])
    shift = max(int(pack.array("kfft_shift")[0]), 0)
    factors = [int(v) for v in pack.array("kfft_factors")]
    tw = np.asarray(pack.array("fft_twiddles"), _f32).reshape(-1, 2)
    fstride = [1]
    radices, ms = [], []
    while True:
        p, m = factors[2 * len(radices)], factors[2 * len(radices) + 1]
        radices.append(p)
        ms.append(m)
        fstride.append(fstride[-1] * p)
        if m == 1:
            break
    stages = []
    m = ms[-1]
    for i in range(len(radices) - 1, -1, -1):
        m2 = ms[i - 1] if i else 1
        stages.append(_Stage(radices[i], m, fstride[i], m2, fstride[i] << shift))
        m = m2
    win = np.asarray(pack.array("half_window"), _f32)
    return Tables(release=release, nfft=nfft, scale=_f32(pack.array("kfft_scale")[0]),
                  bitrev=np.asarray(pack.array("fft_bitrev"), np.intp), tw_r=tw[:, 0].copy(), tw_i=tw[:, 1].copy(),
                  stages=tuple(stages), half_window=win,
                  dct=np.asarray(pack.array("dct_table"), _f32).reshape(NB_BANDS, NB_BANDS))


def _cmul(ar, ai, br, bi):
    """``C_MUL``: ``(ar·br - ai·bi, ar·bi + ai·br)``, each product rounded."""
    return ar * br - ai * bi, ar * bi + ai * br


def _bfly2(re, im, st: _Stage, t: Tables):
    """``kf_bfly2`` (``m == 4``: a radix-2 stage right after a radix-4 one)."""
    tw = c_float("0.7071067812")
    base = 8 * np.arange(st.n)[:, None]
    f = base + np.arange(4)
    g = f + 4
    fr, fi, gr, gi = re[:, f], im[:, f], re[:, g], im[:, g]
    tr = np.empty_like(gr)
    ti = np.empty_like(gi)
    tr[..., 0], ti[..., 0] = gr[..., 0], gi[..., 0]
    tr[..., 1] = (gr[..., 1] + gi[..., 1]) * tw
    ti[..., 1] = (gi[..., 1] - gr[..., 1]) * tw
    tr[..., 2], ti[..., 2] = gi[..., 2], -gr[..., 2]
    tr[..., 3] = (gi[..., 3] - gr[..., 3]) * tw
    ti[..., 3] = -(gi[..., 3] + gr[..., 3]) * tw
    re[:, g], im[:, g] = fr - tr, fi - ti
    re[:, f], im[:, f] = fr + tr, fi + ti


def _bfly3(re, im, st: _Stage, t: Tables):
    """``kf_bfly3``."""
    m, fs = st.m, st.fstride
    k = np.arange(m)
    base = (np.arange(st.n)[:, None] * st.mm + k).reshape(-1)
    kk = np.tile(k, st.n)
    e3 = t.tw_i[fs * m]
    a0r, a0i = re[:, base], im[:, base]
    s1r, s1i = _cmul(re[:, base + m], im[:, base + m], t.tw_r[kk * fs], t.tw_i[kk * fs])
    s2r, s2i = _cmul(re[:, base + 2 * m], im[:, base + 2 * m], t.tw_r[2 * kk * fs], t.tw_i[2 * kk * fs])
    s3r, s3i = s1r + s2r, s1i + s2i
    s0r, s0i = s1r - s2r, s1i - s2i
    fmr = a0r - s3r * _f32(0.5)
    fmi = a0i - s3i * _f32(0.5)
    s0r, s0i = s0r * e3, s0i * e3
    re[:, base], im[:, base] = a0r + s3r, a0i + s3i
    re[:, base + 2 * m], im[:, base + 2 * m] = fmr + s0i, fmi - s0r
    re[:, base + m], im[:, base + m] = fmr - s0i, fmi + s0r


def _bfly4(re, im, st: _Stage, t: Tables):
    """``kf_bfly4`` (with its twiddle-free form for ``m == 1``)."""
    m = st.m
    if m == 1:
        base = 4 * np.arange(st.n)
        f0r, f0i, f1r, f1i = re[:, base], im[:, base], re[:, base + 1], im[:, base + 1]
        f2r, f2i, f3r, f3i = re[:, base + 2], im[:, base + 2], re[:, base + 3], im[:, base + 3]
        s0r, s0i = f0r - f2r, f0i - f2i
        f0r, f0i = f0r + f2r, f0i + f2i
        s1r, s1i = f1r + f3r, f1i + f3i
        re[:, base + 2], im[:, base + 2] = f0r - s1r, f0i - s1i
        re[:, base], im[:, base] = f0r + s1r, f0i + s1i
        s1r, s1i = f1r - f3r, f1i - f3i
        re[:, base + 1], im[:, base + 1] = s0r + s1i, s0i - s1r
        re[:, base + 3], im[:, base + 3] = s0r - s1i, s0i + s1r
        return
    fs = st.fstride
    j = np.arange(m)
    base = (np.arange(st.n)[:, None] * st.mm + j).reshape(-1)
    jj = np.tile(j, st.n)
    a0r, a0i = re[:, base], im[:, base]
    c0r, c0i = _cmul(re[:, base + m], im[:, base + m], t.tw_r[jj * fs], t.tw_i[jj * fs])
    c1r, c1i = _cmul(re[:, base + 2 * m], im[:, base + 2 * m], t.tw_r[2 * jj * fs], t.tw_i[2 * jj * fs])
    c2r, c2i = _cmul(re[:, base + 3 * m], im[:, base + 3 * m], t.tw_r[3 * jj * fs], t.tw_i[3 * jj * fs])
    s5r, s5i = a0r - c1r, a0i - c1i
    a0r, a0i = a0r + c1r, a0i + c1i
    s3r, s3i = c0r + c2r, c0i + c2i
    s4r, s4i = c0r - c2r, c0i - c2i
    re[:, base + 2 * m], im[:, base + 2 * m] = a0r - s3r, a0i - s3i
    re[:, base], im[:, base] = a0r + s3r, a0i + s3i
    re[:, base + m], im[:, base + m] = s5r + s4i, s5i - s4r
    re[:, base + 3 * m], im[:, base + 3 * m] = s5r - s4i, s5i + s4r


def _bfly5(re, im, st: _Stage, t: Tables):
    """``kf_bfly5``."""
    m, fs = st.m, st.fstride
    u = np.arange(m)
    base = (np.arange(st.n)[:, None] * st.mm + u).reshape(-1)
    uu = np.tile(u, st.n)
    yar, yai = t.tw_r[fs * m], t.tw_i[fs * m]
    ybr, ybi = t.tw_r[2 * fs * m], t.tw_i[2 * fs * m]
    s0r, s0i = re[:, base], im[:, base]
    s = [None] * 5
    for k in range(1, 5):
        s[k] = _cmul(re[:, base + k * m], im[:, base + k * m], t.tw_r[k * uu * fs], t.tw_i[k * uu * fs])
    s7r, s7i = s[1][0] + s[4][0], s[1][1] + s[4][1]
    s10r, s10i = s[1][0] - s[4][0], s[1][1] - s[4][1]
    s8r, s8i = s[2][0] + s[3][0], s[2][1] + s[3][1]
    s9r, s9i = s[2][0] - s[3][0], s[2][1] - s[3][1]
    re[:, base] = s0r + (s7r + s8r)
    im[:, base] = s0i + (s7i + s8i)
    s5r = s0r + (s7r * yar + s8r * ybr)
    s5i = s0i + (s7i * yar + s8i * ybr)
    s6r = s10i * yai + s9i * ybi
    s6i = -(s10r * yai + s9r * ybi)
    re[:, base + m], im[:, base + m] = s5r - s6r, s5i - s6i
    re[:, base + 4 * m], im[:, base + 4 * m] = s5r + s6r, s5i + s6i
    s11r = s0r + (s7r * ybr + s8r * yar)
    s11i = s0i + (s7i * ybr + s8i * yar)
    s12r = s9i * yai - s10i * ybi
    s12i = s10r * ybi - s9r * yai
    re[:, base + 2 * m], im[:, base + 2 * m] = s11r + s12r, s11i + s12i
    re[:, base + 3 * m], im[:, base + 3 * m] = s11r - s12r, s11i - s12i


_BFLY = {2: _bfly2, 3: _bfly3, 4: _bfly4, 5: _bfly5}


def kiss_fft(re: np.ndarray, im: np.ndarray, t: Tables) -> tuple[np.ndarray, np.ndarray]:
    """``celt/kiss_fft.c:opus_fft_c`` on ``[B, nfft]`` float32 real and imaginary parts: each input times
    ``scale``, stored at its bit-reversed position, then ``opus_fft_impl``'s radix stages, last factor first."""
    ore = np.empty_like(re)
    oim = np.empty_like(im)
    ore[:, t.bitrev] = t.scale * re
    oim[:, t.bitrev] = t.scale * im
    for st in t.stages:
        _BFLY[st.radix](ore, oim, st, t)
    return ore, oim


# ---------------------------------------------------------------------------------------------------------------
# dnn/freq.c


def _band_plan() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``lpcn_compute_band_energy``: the ``(1-frac)`` and ``frac`` weights of bins 0..159 and, per band,
    the order in which terms reach ``sum[k]`` (band k-1's ``frac`` terms, then band k's ``1-frac`` terms), as
    indices into ``[A (160), B (160), zero]``."""
    n = EBAND5MS[-1] * 4
    frac = np.zeros(n, _f32)
    for i in range(NB_BANDS - 1):
        size = (EBAND5MS[i + 1] - EBAND5MS[i]) * 4
        for j in range(size):
            frac[EBAND5MS[i] * 4 + j] = _f32(j) / _f32(size)
    one_minus = _f32(1) - frac
    rows = []
    for k in range(NB_BANDS):
        row = []
        if k > 0:
            row += list(range(n + EBAND5MS[k - 1] * 4, n + EBAND5MS[k] * 4))
        if k < NB_BANDS - 1:
            row += list(range(EBAND5MS[k] * 4, EBAND5MS[k + 1] * 4))
        rows.append(row)
    width = max(len(r) for r in rows)
    idx = np.full((NB_BANDS, width), 2 * n, np.intp)  # padding: + 0 changes no sum of non-negative terms
    for k, r in enumerate(rows):
        idx[k, : len(r)] = r
    return one_minus, frac, idx


_BAND_1MF, _BAND_F, _BAND_IDX = _band_plan()


def band_energy(xr: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """``lpcn_compute_band_energy``: 18 triangular band energies of bins 0..159 (``[B, 161]`` -> ``[B, 18]``)."""
    n = _BAND_F.shape[0]
    tmp = xr[:, :n] * xr[:, :n]
    tmp = tmp + xi[:, :n] * xi[:, :n]
    terms = np.concatenate([_BAND_1MF * tmp, _BAND_F * tmp, np.zeros((tmp.shape[0], 1), _f32)], axis=1)
    s = _seqsum(_f32(0), terms[:, _BAND_IDX])
    s[:, 0] = s[:, 0] * _f32(2)
    s[:, -1] = s[:, -1] * _f32(2)
    return s


def _dct(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``out[i] = (float)(Σ_j x[j]·table[j, i] · sqrt(2/18))``, the sum sequential in float (``dct`` with
    ``dct_table[j*18+i]``; ``idct`` passes the transposed table)."""
    prod = x[:, :, None] * table[None, :, :]  # [B, j, i]
    s = _seqsum(_f32(0), np.swapaxes(prod, 1, 2))
    return (s.astype(_f64) * _DCT_SCALE).astype(_f32)


def _interp_band_gain(e: np.ndarray) -> np.ndarray:
    """``interp_band_gain`` with ``Xr[160] = 0`` (``lpc_from_bands``): ``[B, 18]`` -> ``[B, 161]``."""
    b = e.shape[0]
    g = np.zeros((b, FREQ_SIZE), _f32)
    for i in range(NB_BANDS - 1):
        lo, hi = EBAND5MS[i] * 4, EBAND5MS[i + 1] * 4
        g[:, lo:hi] = _BAND_1MF[lo:hi] * e[:, i, None] + _BAND_F[lo:hi] * e[:, i + 1, None]
    return g


def lpcn_lpc(ac: np.ndarray) -> np.ndarray:
    """``dnn/freq.c:lpcn_lpc``: Levinson-Durbin on ``[B, 17]`` autocorrelations, each stream stopping once its
    error is below ``0.001·ac[0]`` (all zeros where ``ac[0] == 0``)."""
    b = ac.shape[0]
    lpc = np.zeros((b, LPC_ORDER), _f32)
    error = ac[:, 0].copy()
    active = ac[:, 0] != 0
    floor = _0P001 * ac[:, 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(LPC_ORDER):
            if not active.any():
                break
            rr = _seqsum(_f32(0), lpc[:, :i] * ac[:, i:0:-1]) + ac[:, i + 1]
            r = -rr / error
            new = lpc.copy()
            if i:
                new[:, :i] = lpc[:, :i] + r[:, None] * lpc[:, i - 1::-1]
            new[:, i] = r
            new_err = error - (r * r) * error
            lpc = np.where(active[:, None], new, lpc)
            error = np.where(active, new_err, error)
            active = active & ~(new_err < floor)
    return lpc


def lpc_from_cepstrum(ceps: np.ndarray, t: Tables) -> np.ndarray:
    """``dnn/freq.c:lpc_from_cepstrum`` (``[B, 18]`` cepstrum with ``c0`` offset by -4 -> ``[B, 16]`` LPC)."""
    tmp = ceps.copy()
    tmp[:, 0] = tmp[:, 0] + _f32(4)
    ex = _pow10_comp(_dct(tmp, t.dct.T), COMPENSATION)
    xr = _interp_band_gain(ex)
    b = xr.shape[0]
    # inverse_transform: the Hermitian extension, the forward FFT, the output reversed and scaled by 320
    re = np.empty((b, WINDOW_SIZE), _f32)
    im = np.zeros((b, WINDOW_SIZE), _f32)
    re[:, :FREQ_SIZE] = xr
    re[:, FREQ_SIZE:] = xr[:, WINDOW_SIZE - FREQ_SIZE:0:-1]
    im[:, FREQ_SIZE:] = -im[:, WINDOW_SIZE - FREQ_SIZE:0:-1]
    yr, _ = kiss_fft(re, im, t)
    rev = np.concatenate([[0], np.arange(WINDOW_SIZE - 1, WINDOW_SIZE - 1 - LPC_ORDER, -1)])
    ac = _f32(WINDOW_SIZE) * yr[:, rev]
    a0 = ac[:, 0].astype(_f64)
    ac[:, 0] = (a0 + (a0 * 1e-4 + _NOISE_FLOOR)).astype(_f32)
    ac[:, 1:] = (ac[:, 1:].astype(_f64) * _LAG_WINDOW[1:]).astype(_f32)
    return lpcn_lpc(ac)


# ---------------------------------------------------------------------------------------------------------------
# celt kernels


def inner_prod(x: np.ndarray, y: np.ndarray, kernels: str) -> np.ndarray:
    """``celt_inner_prod`` over the last axis (length a multiple of 4). ``"x86"``: ``celt_inner_prod_sse``, four
    lanes ``x[4c+l]·y[4c+l]`` summed in order, then ``(l0 + l2) + (l1 + l3)``; ``"c"``: one sequential sum."""
    p = x * y
    if kernels == "c":
        return _seqsum(_f32(0), p)
    lanes = _seqsum(_f32(0), np.swapaxes(p.reshape(p.shape[:-1] + (-1, 4)), -1, -2))
    return (lanes[..., 0] + lanes[..., 2]) + (lanes[..., 1] + lanes[..., 3])


def pitch_xcorr(x: np.ndarray, y: np.ndarray, max_pitch: int, kernels: str) -> np.ndarray:
    """``celt_pitch_xcorr``: ``xcorr[k] = Σ_j x[j]·y[j+k]`` for ``k < max_pitch`` (``x [B, n]``,
    ``y [B, n + max_pitch - 1]``; ``n`` a multiple of 8, ``max_pitch`` of 8 for x86 and of 4 for C).

    ``"x86"``: ``celt_pitch_xcorr_avx2``: per lag 8 lanes of ``fmaf`` over ``j = 8c + l``, then
    ``((l0+l4) + (l1+l5)) + ((l2+l6) + (l3+l7))``. ``"c"``: ``xcorr_kernel_c``, one sequential sum per lag."""
    n = x.shape[-1]
    if kernels == "c":
        acc = np.zeros((x.shape[0], max_pitch), _f32)
        t = np.empty_like(acc)
        for j in range(n):
            np.multiply(x[:, j, None], y[:, j:j + max_pitch], out=t)
            acc += t
        return acc
    win = np.lib.stride_tricks.sliding_window_view(y, n, axis=-1)[:, :max_pitch]  # [B, K, n]
    b = x.shape[0]
    xs = np.ascontiguousarray(np.moveaxis(x.reshape(b, 1, -1, 8), 2, 0))  # [n/8, B, 1, 8]
    ws = np.ascontiguousarray(np.moveaxis(win.reshape(b, max_pitch, -1, 8), 2, 0))  # [n/8, B, K, 8]
    tiny = _min_nonzero(x) * _min_nonzero(y) < _TINY
    acc = np.zeros((b, max_pitch, 8), _f32)
    for c in range(ws.shape[0]):
        acc = fma32(xs[c], ws[c], acc, tiny=tiny)
    return ((acc[..., 0] + acc[..., 4]) + (acc[..., 1] + acc[..., 5])) + (
        (acc[..., 2] + acc[..., 6]) + (acc[..., 3] + acc[..., 7]))


def celt_fir(x: np.ndarray, num: np.ndarray, kernels: str) -> np.ndarray:
    """``celt/celt_lpc.c:celt_fir`` (float): ``y[n] = x[n] + Σ_{m=1..ord} num[m-1]·x[n-m]`` on
    ``x [B, ord + N]`` (``ord`` samples of history first), taps applied oldest first (``rnum[j] = num[ord-1-j]``
    on ``x[n - ord + j]``). ``"x86"``: ``xcorr_kernel_sse``, even taps added to ``x[n]``, odd taps in a second
    sum from zero, the two added; ``"c"``: ``xcorr_kernel_c``, all taps in one sum."""
    order = num.shape[-1]
    rnum = num[:, ::-1]
    win = np.lib.stride_tricks.sliding_window_view(x, order, axis=-1)[:, :-1]  # [B, N, ord]: x[n-ord+j]
    p = win * rnum[:, None, :]
    x0 = x[:, order:]
    if kernels == "c":
        return _seqsum(x0, p)
    return _seqsum(x0, p[..., 0::2]) + _seqsum(_f32(0), p[..., 1::2])


# ---------------------------------------------------------------------------------------------------------------
# the feature extractor


@dataclass
class Features:
    """One 10 ms frame per stream: ``features [B, 36]`` (cepstrum 0-17, pitch 18, frame correlation 19, LPC
    20-35), ``if_features [B, 88]``, ``xcorr_features [B, 224]`` (PitchDNN's inputs) and ``dnn_pitch [B]``.
    ``frames`` gives the same with a frame axis after the stream axis; a 1-D input drops the stream axis."""

    features: np.ndarray
    if_features: np.ndarray
    xcorr_features: np.ndarray
    dnn_pitch: np.ndarray


def _profile(profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    return get_profile(profile)


def _check_kernels(kernels: str) -> str:
    if kernels not in KERNELS:
        raise FeatureError("kernels", f"{kernels!r} is not one of {', '.join(KERNELS)} ('x86': a default libopus "
                                      f"build on a CPU with AVX2; 'c': a --disable-intrinsics --disable-rtcd build)")
    return kernels


class FeatureExtractor:
    """``LPCNetEncState`` for ``B`` streams: :meth:`frame` is ``lpcnet_compute_single_frame_features_float``.

    ``profile``: a profile name or :class:`~opus_dred.bitstream._profiles.Profile` (its model pack gives the
    tables and the release). ``kernels``: ``"x86"`` or ``"c"`` (module docstring). ``pitch``: the PitchDNN
    that turns each frame's ``(if_features [B, 88], xcorr_features [B, 224])`` into ``dnn_pitch [B]``, called
    once per frame in order (it keeps PitchDNN's state): a callable, or the reference
    :class:`~opus_dred.refimpl._pitchdnn.PitchDNN` with a numerics preset (a name of ``_nnet.NUMERICS`` or a
    ``Numerics``); ``None`` takes the preset of the build the kernels are of, ``"avx2"`` with ``"x86"`` and
    ``"sse2"`` with ``"c"`` (AMD's ``RCPPS`` table; ``"avx2-intel"``/``"sse2-intel"`` reproduce libopus running
    on an Intel CPU). ``streams`` fixes ``B`` (else the first frame does).
    """

    def __init__(self, profile, *, kernels: str = "x86", pitch=None, streams: int | None = None) -> None:
        self.profile = _profile(profile)
        self.kernels = _check_kernels(kernels)
        self.tables = tables(self.profile.model_pack)
        if not callable(pitch):
            from opus_dred.refimpl._pitchdnn import PitchDNN  # lazy: loads JAX, which the DSP does not need

            preset = pitch if pitch is not None else ("avx2" if self.kernels == "x86" else "sse2")
            pitch = PitchDNN(self.profile.name, preset).step
        self.pitch: Callable[[np.ndarray, np.ndarray], np.ndarray] = pitch
        self.streams = streams
        self.reset()

    def reset(self) -> None:
        """``lpcnet_encoder_init``: every memory zero (the pitch source keeps its own state)."""
        self._st = None if self.streams is None else self._zero_state(self.streams)

    @staticmethod
    def _zero_state(b: int) -> dict[str, np.ndarray]:
        z = np.zeros
        return {"mem_preemph": z(b, _f32), "analysis_mem": z((b, OVERLAP_SIZE), _f32),
                "prev_if_r": z((b, PITCH_IF_MAX_FREQ), _f32), "prev_if_i": z((b, PITCH_IF_MAX_FREQ), _f32),
                "pitch_mem": z((b, LPC_ORDER), _f32), "exc_buf": z((b, PITCH_MAX_PERIOD + FRAME_SIZE), _f32),
                "lp_buf": z((b, PITCH_MAX_PERIOD + FRAME_SIZE), _f32), "lp_mem": z((b, 2), _f32),
                "pitch_filt": z(b, _f32)}

    def _state_for(self, b: int) -> dict[str, np.ndarray]:
        if self._st is None:
            self.streams = b
            self._st = self._zero_state(b)
        if b != self.streams:
            raise FeatureError("pcm160", f"{b} streams given to an extractor of {self.streams}")
        return self._st

    def frame(self, pcm160: np.ndarray) -> Features:
        """One frame: ``[160]`` or ``[B, 160]`` samples at 16 kHz in int16 scale (float)."""
        x = np.asarray(pcm160, _f32)
        single = x.ndim == 1
        x2 = x.reshape(1, -1) if single else x
        if x2.ndim != 2 or x2.shape[1] != FRAME_SIZE:
            raise FeatureError("pcm160", f"a feature frame is {FRAME_SIZE} samples at 16 kHz per stream, got shape "
                                         f"{x.shape}")
        out = self._frame(np.ascontiguousarray(x2))
        if single:
            return Features(out.features[0], out.if_features[0], out.xcorr_features[0], out.dnn_pitch[0])
        return out

    def frames(self, pcm16k: np.ndarray) -> Features:
        """Consecutive frames of ``[N]`` or ``[B, N]`` samples (``N`` a multiple of 160): arrays
        ``[(B,) F, ...]``."""
        x = np.asarray(pcm16k, _f32)
        single = x.ndim == 1
        x2 = x.reshape(1, -1) if single else x
        if x2.ndim != 2 or x2.shape[1] % FRAME_SIZE:
            raise FeatureError("pcm16k", f"length must be a multiple of {FRAME_SIZE} samples, got shape {x.shape}")
        outs = [self._frame(np.ascontiguousarray(x2[:, i:i + FRAME_SIZE]))
                for i in range(0, x2.shape[1], FRAME_SIZE)]
        b = x2.shape[0]

        def stack(name, width):
            if not outs:
                return np.zeros((b, 0) + width, _f32)
            return np.stack([getattr(o, name) for o in outs], axis=1)

        res = Features(stack("features", (NB_TOTAL_FEATURES,)), stack("if_features", (PITCH_IF_FEATURES,)),
                       stack("xcorr_features", (NB_XCORR,)), stack("dnn_pitch", ()))
        if single:
            return Features(res.features[0], res.if_features[0], res.xcorr_features[0], res.dnn_pitch[0])
        return res

    def _frame(self, pcm: np.ndarray) -> Features:
        st = self._state_for(pcm.shape[0])
        t = self.tables
        k = self.kernels
        b = pcm.shape[0]

        # preemphasis (dnn/lpcnet_enc.c): y[i] = x[i] + mem, mem = -coef*x[i]
        prev = np.concatenate([st["mem_preemph"][:, None], (-_PREEMPH) * pcm[:, :-1]], axis=1)
        x = pcm + prev
        st["mem_preemph"] = (-_PREEMPH) * pcm[:, -1]

        # compute_frame_features
        aligned = np.empty((b, FRAME_SIZE), _f32)
        aligned[:, :TRAINING_OFFSET] = st["analysis_mem"][:, OVERLAP_SIZE - TRAINING_OFFSET:]

        # frame_analysis: window, forward_transform, band energies
        win = np.concatenate([st["analysis_mem"], x], axis=1)
        st["analysis_mem"] = x[:, FRAME_SIZE - OVERLAP_SIZE:].copy()
        win[:, :OVERLAP_SIZE] = win[:, :OVERLAP_SIZE] * t.half_window
        win[:, WINDOW_SIZE - OVERLAP_SIZE:] = win[:, WINDOW_SIZE - OVERLAP_SIZE:] * t.half_window[::-1]
        yr, yi = kiss_fft(win, np.zeros_like(win), t)
        xr, xi = yr[:, :FREQ_SIZE], yi[:, :FREQ_SIZE]
        ex = band_energy(xr, xi)

        # instantaneous-frequency features
        rel = t.release
        iff = np.empty((b, PITCH_IF_FEATURES), _f32)

        def log_energy(e):
            v = _LOG10_2 * celt_log2(e, rel)
            return np.maximum(_f32(-1), np.minimum(_f32(1), _INV64 * (_f32(10) * v - _f32(6))))

        iff[:, 0] = log_energy(_1E_15 + xr[:, 0] * xr[:, 0])
        n = PITCH_IF_MAX_FREQ
        ar, ai = xr[:, 1:n], xi[:, 1:n]
        pr, pi_ = st["prev_if_r"][:, 1:n], st["prev_if_i"][:, 1:n]
        prod_r = ar * pr + ai * pi_
        prod_i = ai * pr - ar * pi_
        mag = (_1E_15 + prod_r * prod_r) + prod_i * prod_i
        norm = (1.0 / np.sqrt(mag.astype(_f64))).astype(_f32)
        iff[:, 1::3] = prod_r * norm
        iff[:, 2::3] = prod_i * norm
        iff[:, 3::3] = log_energy((_1E_15 + ar * ar) + ai * ai)
        st["prev_if_r"] = xr[:, :n].copy()
        st["prev_if_i"] = xi[:, :n].copy()

        # log band energies with the follow/logMax floor, DCT
        ly = _LOG10_2 * celt_log2(_1E_2 + ex, rel)
        log_max = np.full(b, _f32(-2))
        follow = np.full(b, _f32(-2))
        for i in range(NB_BANDS):
            v = np.maximum(log_max - _f32(8), np.maximum(follow - _f32(2.5), ly[:, i]))
            ly[:, i] = v
            log_max = np.maximum(log_max, v)
            follow = np.maximum(follow - _f32(2.5), v)
        feats = np.zeros((b, NB_TOTAL_FEATURES), _f32)
        ceps = _dct(ly, t.dct)
        ceps[:, 0] = ceps[:, 0] - _f32(4)
        lpc = lpc_from_cepstrum(ceps, t)
        feats[:, :NB_BANDS] = ceps
        feats[:, NB_BANDS + 2:] = lpc

        # LPC residual, excitation, low-passed residual
        exc = st["exc_buf"]
        lp = st["lp_buf"]
        exc[:, :PITCH_MAX_PERIOD] = exc[:, FRAME_SIZE:].copy()
        lp[:, :PITCH_MAX_PERIOD] = lp[:, FRAME_SIZE:].copy()
        aligned[:, TRAINING_OFFSET:] = x[:, :FRAME_SIZE - TRAINING_OFFSET]
        firin = np.concatenate([st["pitch_mem"], aligned], axis=1)
        st["pitch_mem"] = aligned[:, FRAME_SIZE - LPC_ORDER:].copy()
        res = celt_fir(firin, lpc, k)
        lag1 = np.concatenate([st["pitch_filt"][:, None], res[:, :-1]], axis=1)
        exc[:, PITCH_MAX_PERIOD:] = res + _0P7 * lag1
        st["pitch_filt"] = res[:, -1].copy()
        lp[:, PITCH_MAX_PERIOD:] = self._biquad(res, st["lp_mem"])

        # pitch correlations
        cur = exc[:, PITCH_MAX_PERIOD:]
        xc = pitch_xcorr(cur, exc[:, :FRAME_SIZE + NB_XCORR - 1], NB_XCORR, k)
        ener0 = inner_prod(cur, cur, k)
        ener1 = inner_prod(exc[:, :FRAME_SIZE], exc[:, :FRAME_SIZE], k).astype(_f64)
        e64 = exc.astype(_f64)
        d = e64[:, FRAME_SIZE:FRAME_SIZE + NB_XCORR - 1] ** 2 - e64[:, :NB_XCORR - 1] ** 2
        ener1s = np.cumsum(np.concatenate([ener1[:, None], d], axis=1), axis=1)  # [B, 224], sequential in double
        ener = ((_f32(1) + ener0)[:, None].astype(_f64) + ener1s).astype(_f32)
        xcf = (_f32(2) * xc) / ener

        dnn_pitch = np.asarray(self.pitch(iff, xcf), _f32)
        if dnn_pitch.size != b:
            raise FeatureError("pitch", f"the pitch source returned {dnn_pitch.size} values for {b} streams")
        dnn_pitch = dnn_pitch.reshape(b)
        period = _pitch_period(dnn_pitch)
        if not np.all((period >= 0) & (period <= PITCH_MAX_PERIOD)):
            raise FeatureError("pitch", f"dnn_pitch {dnn_pitch.tolist()} gives pitch periods {period.tolist()} "
                                        f"outside [0, {PITCH_MAX_PERIOD}]")
        period = period.astype(np.intp)
        cur_lp = lp[:, PITCH_MAX_PERIOD:]
        lagged = lp[np.arange(b)[:, None], (PITCH_MAX_PERIOD - period)[:, None] + np.arange(FRAME_SIZE)]
        xx = inner_prod(cur_lp, cur_lp, k)
        yy = inner_prod(lagged, lagged, k)
        xy = inner_prod(cur_lp, lagged, k)
        corr = (xy.astype(_f64) / np.sqrt((_f32(1) + xx * yy).astype(_f64))).astype(_f32)
        corr = _frame_corr(corr)
        feats[:, NB_BANDS] = dnn_pitch
        feats[:, NB_BANDS + 1] = corr - _f32(0.5)
        return Features(feats, iff, xcf, dnn_pitch)

    @staticmethod
    def _biquad(x: np.ndarray, mem: np.ndarray) -> np.ndarray:
        """``biquad`` of ``lpcnet_enc.c`` (its reordered form with ``+1e-30f``), updating ``mem [B, 2]``:
        ``y = x + m0``, ``m0 = ((b0-a0)·x + m1) - a0·m0``, ``m1 = ((b1-a1)·x + 1e-30) - a1·m0_old``. The terms
        in ``x`` alone do not depend on the state and are computed for the whole frame first."""
        p0 = _BQ_C0 * x
        p1 = _BQ_C1 * x + _1E_30
        a0, a1 = _LP_A
        n = x.shape[1]
        m0s = np.empty((n + 1, x.shape[0]), _f32)  # m0 before each sample, and after the last
        m0s[0] = mem[:, 0]
        m1 = mem[:, 1].copy()
        p0t = np.ascontiguousarray(p0.T)
        p1t = np.ascontiguousarray(p1.T)
        t = np.empty_like(m1)
        for i in range(n):
            m0 = m0s[i]
            np.multiply(a0, m0, out=t)
            np.add(p0t[i], m1, out=m0s[i + 1])
            np.subtract(m0s[i + 1], t, out=m0s[i + 1])
            np.multiply(a1, m0, out=t)
            np.subtract(p1t[i], t, out=m1)
        mem[:, 0] = m0s[n]
        mem[:, 1] = m1
        return x + m0s[:n].T


# ---------------------------------------------------------------------------------------------------------------
# the 16 kHz conversion


class Resampler:
    """``dred_convert_to_16k`` of a ``DREDEnc`` at ``fs`` (``resample_mem`` kept between calls), for ``B``
    streams of ``channels`` (1, or 2 interleaved: averaged as ``.5*up*(l+r)`` in double).

    :meth:`process` takes float PCM (±1 scale) ``[n·channels]`` or ``[B, n·channels]``, ``n·16000/fs`` whole,
    and returns the 16 kHz samples in int16 scale (``[m]`` or ``[B, m]``), as libopus appends them to
    ``input_buffer``.
    """

    def __init__(self, fs: int, profile, *, channels: int = 1) -> None:
        if fs not in RATES:
            raise FeatureError("fs", f"{fs} is not one of {', '.join(map(str, RATES))}")
        if channels not in (1, 2):
            raise FeatureError("channels", f"{channels}: libopus' DRED encoder takes 1 or 2")
        self.fs = fs
        self.channels = channels
        self.profile = _profile(profile)
        release = tables(self.profile.model_pack).release
        self.very_small = _1E_30 if release >= (1, 6) else None
        if fs == 16000:
            self.up, self.decim = 1, 1
            self._b0 = self._b = self._a = None
        else:
            up, decim, b0, bs, as_ = _RESAMPLERS[fs]
            self.up, self.decim = up, decim
            self._b0, self._b, self._a = c_float(b0), _cfs(*bs), _cfs(*as_)
        self._mem = None

    def reset(self) -> None:
        self._mem = None

    def process(self, pcm: np.ndarray) -> np.ndarray:
        x = np.asarray(pcm, _f32)
        single = x.ndim == 1
        x2 = x.reshape(1, -1) if single else x
        if x2.ndim != 2 or x2.shape[1] % self.channels:
            raise FeatureError("pcm", f"shape {x.shape} is not [(B,) n*{self.channels}]")
        n = x2.shape[1] // self.channels
        if (n * 16000) % self.fs:
            raise FeatureError("pcm", f"{n} samples at {self.fs} Hz are not a whole number of 16 kHz samples")
        b = x2.shape[0]
        if self._mem is None:
            self._mem = np.zeros((b, RESAMPLING_ORDER + 1), _f32)
        elif self._mem.shape[0] != b:
            raise FeatureError("pcm", f"{b} streams given to a resampler of {self._mem.shape[0]}")
        up = self.up
        if self.channels == 1:
            v = _f32(up) * x2
        else:
            v = ((0.5 * up) * (x2[:, 0::2] + x2[:, 1::2]).astype(_f64)).astype(_f32)
        # FLOAT2INT16: x*32768, MAX32(x, -32768), MIN32(x, 32767), float2int (round half to even)
        v = v * _f32(32768)
        v = np.where(v > _f32(-32768), v, _f32(-32768))
        v = np.where(v < _f32(32767), v, _f32(32767))
        s = np.rint(v).astype(np.int16).astype(_f32)
        if self.very_small is not None:
            s = s + self.very_small
        if self.fs == 16000:
            return s[0] if single else s
        down = np.zeros((b, up * n), _f32)
        down[:, ::up] = s
        y = self._filter(down)
        y = y[:, :: self.decim]
        return y[0] if single else y

    def _filter(self, x: np.ndarray) -> np.ndarray:
        """``filter_df2t``: ``y = x·b0 + mem[0]``; ``mem[j] = mem[j+1] + b[j]·x + a[j]·(-y)`` for j < 8, each
        from the previous ``mem[j+1]``."""
        mem = self._mem
        b0, bb, aa = self._b0, self._b[None, :], self._a[None, :]
        y = np.empty_like(x)
        for i in range(x.shape[1]):
            xi = x[:, i]
            yi = xi * b0 + mem[:, 0]
            y[:, i] = yi
            mem[:, :RESAMPLING_ORDER] = (mem[:, 1:] + bb * xi[:, None]) + aa * (-yi)[:, None]
        return y


__all__ = ["KERNELS", "RATES", "FeatureError", "FeatureExtractor", "Features", "Resampler", "Tables", "band_energy",
           "c_float", "celt_fir", "celt_log2", "fma32", "inner_prod", "kiss_fft", "lpc_from_cepstrum", "lpcn_lpc",
           "pitch_xcorr", "tables"]
