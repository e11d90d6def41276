"""Burg's cepstral analysis of the neural PLC, in numpy, in libopus' float order.

Our formulation of ``dnn/freq.c:burg_cepstral_analysis`` (the same code in libopus 1.5.2 and 1.6.1): a 10 ms
frame of 160 samples at 16 kHz (int16 scale) gives 36 values, the 18-band cepstra of its two 5 ms halves as
their mean (first 18) and their difference (last 18). The PLC feeds them, with the LPCNet features of the same
frame, to its prediction network (``dnn/lpcnet_plc.c:lpcnet_plc_conceal``).

Per half (``dnn/freq.c:compute_burg_cepstrum``, ``len`` = 80 samples, order 16):

1. pre-emphasis ``x[i+1] - 0.85·x[i]`` (79 samples);
2. ``dnn/burg.c:silk_burg_analysis`` (one subframe, minimum inverse gain ``1e-3``): Burg's method on the
   correlations, accumulated in double; the residual energy ``g`` is divided by ``len - 2·(order - 1)``;
3. the LPC filter ``1, -a_i·0.995^(i+1)`` (bandwidth expansion, ``pow`` in double), zero-padded to 320 samples,
   through the feature extractor's forward transform (the kiss FFT of :mod:`opus_dred.refimpl._features`);
4. ``compute_band_energy_inverse``: per bin ``1/(|A|² + 1e-9)`` in double, summed into the 18 triangular bands
   as ``lpcn_compute_band_energy`` sums the energies; scaled by ``0.45·g/320³``;
5. ``log10(1e-2 + E)`` with the floor ``max(logMax - 8, follow - 2.5)`` and the DCT, ``c0 -= 4``, exactly as the
   feature extractor's cepstrum.

Arithmetic: ``burg.c`` and ``freq.c`` are compiled for baseline x86-64 in every build (no FMA: checked on the
builds' objects), so the module is the same for the default and the generic builds. Burg's recursion runs in
Python floats (IEEE doubles, the C code's ``double`` variables, each operation rounded as C rounds it), with the
products of two ``float`` samples rounded to float32 where the C code multiplies two floats
(``C_first_row[k] -= x[n]·x[n-k-1]``); the sums of ``silk_energy_FLP`` and ``silk_inner_product_FLP`` keep their
unrolled order (four products summed left to right, then added to the total). ``log10`` and ``pow`` are glibc's
(Python's :mod:`math`) where a numpy result could round differently.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from opus_dred.refimpl._features import (
    _BAND_1MF,
    _BAND_F,
    _BAND_IDX,
    _PREEMPH,
    FRAME_SIZE,
    FREQ_SIZE,
    LPC_ORDER,
    NB_BANDS,
    WINDOW_SIZE,
    FeatureError,
    Tables,
    _dct,
    _libm,
    _near_f32_boundary,
    _seqsum,
    c_float,
    kiss_fft,
)

_f32 = np.float32
_f64 = np.float64

#: dnn/burg.c: FIND_LPC_COND_FAC (a float literal, used in double)
_COND_FAC = float(c_float("1e-5"))
#: dnn/burg.c: the 1e-9f of the correlation matrix' first element
_1E_9F = float(c_float("1e-9"))
#: dnn/freq.c:compute_burg_cepstrum passes 1e-3 to a float parameter
_MIN_INV_GAIN = float(_f32(1e-3))
#: (1.f/((float)WINDOW_SIZE*WINDOW_SIZE*WINDOW_SIZE)), a float constant
_INV_W3 = float(_f32(1) / _f32(WINDOW_SIZE * WINDOW_SIZE * WINDOW_SIZE))
HALF = FRAME_SIZE // 2
#: the 36 values per frame (2 * NB_BANDS)
NB_BURG = 2 * NB_BANDS


@cache
def _bandwidth_expansion(order: int) -> np.ndarray:
    """``pow(.995, i+1)`` for i < order (glibc's ``pow``, double)."""
    return np.array([math.pow(0.995, i + 1) for i in range(order)], _f64)


def _sum4(p: np.ndarray) -> float:
    """The sum of double products in the order of ``silk_energy_FLP`` / ``silk_inner_product_FLP``: blocks of
    four summed left to right, each block added to the total, then the remaining products one by one."""
    n4 = (p.shape[0] // 4) * 4
    blocks = p[:n4].reshape(-1, 4)
    partial = ((blocks[:, 0] + blocks[:, 1]) + blocks[:, 2]) + blocks[:, 3]
    total = 0.0
    for v in partial.tolist():
        total += v
    for v in p[n4:].tolist():
        total += v
    return total


def _inner(a: np.ndarray, b: np.ndarray) -> float:
    """``silk_inner_product_FLP`` (and, with ``a is b``, ``silk_energy_FLP``): float32 samples, double products."""
    return _sum4(a.astype(_f64) * b.astype(_f64))


def silk_burg_analysis(x: np.ndarray, order: int, min_inv_gain: float = _MIN_INV_GAIN) -> tuple[np.ndarray, np.float32]:
    """``dnn/burg.c:silk_burg_analysis`` with one subframe: float32 samples ``x [L]`` -> (prediction coefficients
    ``A [order]`` float32, the residual energy float32). Stops early, with the remaining coefficients zero, where
    the prediction gain would pass ``1/min_inv_gain``."""
    x = np.ascontiguousarray(x, _f32)
    n_x = x.shape[0]
    if not 0 < order <= 16 or n_x <= order:
        raise FeatureError("order", f"Burg's analysis of order {order} on {n_x} samples (libopus: order <= 16 "
                                    f"and fewer than the samples)")
    xs = x.astype(_f64).tolist()
    # the float products x[i]*x[j], rounded to float32 as the C code's float multiplications round them
    prod = (x[:, None] * x[None, :]).astype(_f64).tolist()
    c0 = _inner(x, x)
    first = [0.0] * order
    for n in range(1, order + 1):
        first[n - 1] += _inner(x[:n_x - n], x[n:])
    last = list(first)
    caf = [0.0] * (order + 1)
    cab = [0.0] * (order + 1)
    caf[0] = cab[0] = (c0 + _COND_FAC * c0) + _1E_9F
    inv_gain = 1.0
    reached = False
    af = [0.0] * order
    for n in range(order):
        t1 = xs[n]
        t2 = xs[n_x - n - 1]
        for k in range(n):
            first[k] -= prod[n][n - k - 1]
            last[k] -= prod[n_x - n - 1][n_x - n + k]
            a = af[k]
            t1 += xs[n - k - 1] * a
            t2 += xs[n_x - n + k] * a
        for k in range(n + 1):
            caf[k] -= t1 * xs[n - k]
            cab[k] -= t2 * xs[n_x - n + k - 1]
        t1 = first[n]
        t2 = last[n]
        for k in range(n):
            a = af[k]
            t1 += last[n - k - 1] * a
            t2 += first[n - k - 1] * a
        caf[n + 1] = t1
        cab[n + 1] = t2
        num = cab[n + 1]
        nrg_b = cab[0]
        nrg_f = caf[0]
        for k in range(n):
            a = af[k]
            num += cab[n - k] * a
            nrg_b += cab[k + 1] * a
            nrg_f += caf[k + 1] * a
        rc = -2.0 * num / (nrg_f + nrg_b)
        t1 = inv_gain * (1.0 - rc * rc)
        if t1 <= min_inv_gain:
            rc = math.sqrt(1.0 - min_inv_gain / inv_gain)
            if num > 0:
                rc = -rc
            inv_gain = min_inv_gain
            reached = True
        else:
            inv_gain = t1
        for k in range((n + 1) >> 1):
            t1 = af[k]
            t2 = af[n - k - 1]
            af[k] = t1 + rc * t2
            af[n - k - 1] = t2 + rc * t1
        af[n] = rc
        if reached:
            for k in range(n + 1, order):
                af[k] = 0.0
            break
        for k in range(n + 2):
            t1 = caf[k]
            caf[k] += rc * cab[n - k + 1]
            cab[n - k + 1] += rc * t1
    if reached:
        coeffs = np.array([-a for a in af], _f64).astype(_f32)
        c0 -= _inner(x[:order], x[:order])
        nrg = c0 * inv_gain
    else:
        nrg = caf[0]
        t1 = 1.0
        for k in range(order):
            a = af[k]
            nrg += caf[k + 1] * a
            t1 += a * a
        coeffs = np.array([-a for a in af], _f64).astype(_f32)
        nrg -= (_COND_FAC * c0) * t1
    g = _f32(nrg)
    return coeffs, max(g, _f32(0))  # MAX32(0, g)


def band_energy_inverse(xr: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """``dnn/freq.c:compute_band_energy_inverse``: ``[B, 161]`` spectrum -> ``[B, 18]``, the triangular band sums
    of ``(float)(1/(|X|² + 1e-9))`` over bins 0..159 (in double per bin, summed in float as the band energies)."""
    n = _BAND_F.shape[0]
    tmp = xr[:, :n] * xr[:, :n]
    tmp = tmp + xi[:, :n] * xi[:, :n]
    inv = (1.0 / (tmp.astype(_f64) + 1e-9)).astype(_f32)
    terms = np.concatenate([_BAND_1MF * inv, _BAND_F * inv, np.zeros((inv.shape[0], 1), _f32)], axis=1)
    s = _seqsum(_f32(0), terms[:, _BAND_IDX])
    s[:, 0] = s[:, 0] * _f32(2)
    s[:, -1] = s[:, -1] * _f32(2)
    return s


def _log10(v: np.ndarray) -> np.ndarray:
    """``(float)log10(v)`` for doubles ``v`` (glibc's where numpy's could round differently)."""
    return _libm(np.log10, math.log10, _near_f32_boundary, v).astype(_f32)


def burg_cepstrum(pcm: np.ndarray, t: Tables, order: int = LPC_ORDER) -> np.ndarray:
    """``dnn/freq.c:compute_burg_cepstrum`` on ``[B, len]`` float32 samples -> ``[B, 18]`` (``c0`` offset by -4)."""
    pcm = np.asarray(pcm, _f32)
    b, n = pcm.shape
    burg_in = pcm[:, 1:] - _PREEMPH * pcm[:, :-1]
    lpc = np.zeros((b, order), _f32)
    g = np.zeros(b, _f32)
    for i in range(b):
        lpc[i], g[i] = silk_burg_analysis(burg_in[i], order)
    g = g / _f32(n - 2 * (order - 1))
    x = np.zeros((b, WINDOW_SIZE), _f32)
    x[:, 0] = 1
    x[:, 1:order + 1] = ((-lpc).astype(_f64) * _bandwidth_expansion(order)).astype(_f32)
    yr, yi = kiss_fft(x, np.zeros_like(x), t)
    e = band_energy_inverse(yr[:, :FREQ_SIZE], yi[:, :FREQ_SIZE])
    e = (e.astype(_f64) * ((0.45 * g.astype(_f64)) * _INV_W3)[:, None]).astype(_f32)
    ly = _log10(1e-2 + e.astype(_f64))
    log_max = np.full(b, _f32(-2))
    follow = np.full(b, _f32(-2))
    for i in range(NB_BANDS):
        v = np.maximum(log_max - _f32(8), np.maximum(follow - _f32(2.5), ly[:, i]))
        ly[:, i] = v
        log_max = np.maximum(log_max, v)
        follow = np.maximum(follow - _f32(2.5), v)
    ceps = _dct(ly, t.dct)
    ceps[:, 0] = ceps[:, 0] + _f32(-4)
    return ceps


def burg_cepstral_analysis(x160: np.ndarray, t: Tables) -> np.ndarray:
    """``dnn/freq.c:burg_cepstral_analysis``: ``[160]`` or ``[B, 160]`` samples (int16 scale, float) -> ``[36]`` or
    ``[B, 36]`` float32: the mean of the two 5 ms halves' cepstra, then their difference."""
    x = np.asarray(x160, _f32)
    single = x.ndim == 1
    x2 = x.reshape(1, -1) if single else x
    if x2.ndim != 2 or x2.shape[1] != FRAME_SIZE:
        raise FeatureError("x160", f"Burg's analysis takes frames of {FRAME_SIZE} samples, got shape {x.shape}")
    b = x2.shape[0]
    halves = burg_cepstrum(np.concatenate([x2[:, :HALF], x2[:, HALF:]], axis=0), t)
    c0, c1 = halves[:b], halves[b:]
    out = np.empty((b, NB_BURG), _f32)
    out[:, :NB_BANDS] = (0.5 * (c0 + c1).astype(_f64)).astype(_f32)
    out[:, NB_BANDS:] = c0 - c1
    return out[0] if single else out


__all__ = ["NB_BURG", "band_energy_inverse", "burg_cepstral_analysis", "burg_cepstrum", "silk_burg_analysis"]
