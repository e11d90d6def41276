"""The LPCNet feature frames of libopus' DRED encoder in JAX: the arithmetic of :mod:`opus_dred.refimpl._features`,
reorganised so that XLA computes a whole block of frames of every stream at once.

``lpcnet_compute_single_frame_features_float`` (``dnn/lpcnet_enc.c``) keeps per stream the pre-emphasis memory,
the previous frame (analysis window and the 80-sample delayed copy the LPC residual is computed on), the
previous spectrum (IF features), the residual's last sample, the excitation and low-passed residual histories
and the biquad's memory. None of that depends on PitchDNN's output: ``dnn_pitch`` only picks the lag of the
``frame_corr`` feature. So a block of ``T`` frames of ``B`` streams is computed in stages, each one XLA
computation over all ``B * T`` frames:

1. :func:`_analysis` (pre-emphasis, window, kiss FFT, band energies, IF features, log energies with their
   floor, DCT, the inverse DCT of ``lpc_from_cepstrum``);
2. ``pow(10, .)`` of ``lpc_from_cepstrum`` in numpy with the reference's own function (glibc's result near a
   rounding boundary: :func:`opus_dred.refimpl._features._pow10_comp`);
3. :func:`_residual` (band gains, inverse FFT, Levinson-Durbin, ``celt_fir``, the excitation, the lag energies)
   and :func:`_lowpass` (the biquad as one ``lax.scan`` over the block's samples);
4. :func:`_xcorr` (``celt_pitch_xcorr``, the 224 lags of every frame);
5. PitchDNN (:func:`pitchdnn_block`: the reference's layers on every frame of the block at once, its GRU as one
   ``lax.scan`` over the block);
6. the pitch period and ``frame_corr`` (:func:`_frame_corr_inputs` in XLA; ``pow``, ``exp`` and ``log`` in
   numpy with the reference's functions).

The arithmetic is the reference's, operation for operation: the same float32 (and, where C promotes, float64)
operations in the same order. Two properties of XLA's CPU backend are handled explicitly (``docs/numerics.md``):

* it contracts ``a * b + c`` into a fused multiply-add on hosts that have one. Every product that libopus rounds
  on its own goes through :func:`_mul` (the reference decoder's ``nnet._unfused``: a select between product and
  sum), which also keeps XLA's algebraic simplifier from re-associating a product of constants;
  ``celt_pitch_xcorr_avx2``'s fused chains (``kernels="x86"``) are written ``x * y + acc`` and rely on the
  contraction, which :func:`xcorr_exact` checks once per compiled shape against the reference's exact
  emulation (:func:`opus_dred.refimpl._features.pitch_xcorr`) and replaces by it where it does not hold;
* it rewrites a division by a constant into a multiplication by its reciprocal and ``a / sqrt(b)`` into
  ``a * rsqrt(b)``: no division here has a constant divisor, and each square root goes through :func:`_mul`'s
  select before it divides.

Sums are sequential loops, as in the reference (XLA keeps their order). Subnormal float32 results are flushed
to zero by XLA's CPU backend where libopus keeps them; speech at int16 scale never produces one (its smallest
non-zero values are libopus 1.6's ``VERY_SMALL`` = 1e-30 and products of it with values >= 2^-90); the tests
compare every feature bit for bit with the reference on speech with silence and digital silence, both releases.

The float64 stages run under ``jax.enable_x64``; PitchDNN runs in float32 mode, as the reference runs it.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.refimpl import _features as ref
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl import _pitchdnn as pdnn
from opus_dred.refimpl._nnet import Numerics

_f32 = np.float32
_f64 = np.float64

FRAME = ref.FRAME_SIZE  # 160
HIST = ref.PITCH_MAX_PERIOD  # 256: excitation / low-passed residual history
NB_XCORR = ref.NB_XCORR  # 224
WINDOW = ref.WINDOW_SIZE  # 320
NB_BANDS = ref.NB_BANDS
LPC_ORDER = ref.LPC_ORDER
NIF = ref.PITCH_IF_MAX_FREQ  # 30


def _mul(a, b):
    """``a * b`` rounded on its own: XLA neither fuses it into a following addition nor re-associates it."""
    p = a * b
    return jnp.where(jnp.isnan(p), jnp.nan, p)


def _opaque(v):
    """``v`` behind a select, so that no algebraic rewrite sees through it (``1 / sqrt`` into ``rsqrt``)."""
    return jnp.where(jnp.isnan(v), jnp.nan, v)


def _seq(init, terms):
    """``((init + t0) + t1) + ...`` over a list of arrays."""
    acc = init
    for t in terms:
        acc = acc + t
    return acc


# ---------------------------------------------------------------------------------------------------------------
# celt_log2, the kiss FFT, band energies, DCT (the reference's functions, in jnp)


def celt_log2(x, release: tuple[int, ...]):
    """:func:`opus_dred.refimpl._features.celt_log2` (``celt/mathops.h``, ``FLOAT_APPROX``) in jnp."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    integer = (bits >> jnp.uint32(23)).astype(jnp.int32) - jnp.int32(127)
    mant_bits = bits - (jax.lax.bitcast_convert_type(integer, jnp.uint32) << jnp.uint32(23))
    mant = jax.lax.bitcast_convert_type(mant_bits, jnp.float32)
    if release < (1, 6):
        c = ref._LOG2_V15
        frac = mant - c.dtype.type(1.5)
        frac = c[0] + _mul(frac, c[1] + _mul(frac, c[2] + _mul(frac, c[3])))
        return (1 + integer).astype(jnp.float32) + frac
    idx = (jax.lax.bitcast_convert_type(mant_bits, jnp.int32) >> 20) & 7
    a = ref._LOG2_V16_A
    f = _mul(mant, jnp.asarray(ref._LOG2_V16_X)[idx]) - _f32(1.0625)
    f = a[0] + _mul(f, a[1] + _mul(f, a[2] + _mul(f, a[3] + _mul(f, a[4]))))
    return (integer.astype(jnp.float32) + f) + jnp.asarray(ref._LOG2_V16_Y)[idx]


def _cmul(ar, ai, br, bi):
    return _mul(ar, br) - _mul(ai, bi), _mul(ar, bi) + _mul(ai, br)


def _stage(re, im, st, t: ref.Tables):
    """One radix stage of ``opus_fft_impl`` on ``[..., nfft]``: the butterflies of ``kf_bfly2/3/4/5`` (the
    reference's ``_bfly*``), with the stage's elements viewed as ``[..., n, radix, m]``."""
    p, m = st.radix, st.m
    if st.n > 1 and st.mm != p * m:
        raise ValueError(f"kiss FFT stage {st} does not lay out [n, radix, m]")
    lead = re.shape[:-1]
    rr = re.reshape(lead + (st.n, p, m))
    ii = im.reshape(lead + (st.n, p, m))
    fr = [rr[..., q, :] for q in range(p)]
    fi = [ii[..., q, :] for q in range(p)]
    k = np.arange(m)
    fs = st.fstride

    def tw(mult):
        return t.tw_r[mult * k * fs], t.tw_i[mult * k * fs]

    if p == 4 and m == 1:
        s0r, s0i = fr[0] - fr[2], fi[0] - fi[2]
        f0r, f0i = fr[0] + fr[2], fi[0] + fi[2]
        s1r, s1i = fr[1] + fr[3], fi[1] + fi[3]
        o2 = (f0r - s1r, f0i - s1i)
        o0 = (f0r + s1r, f0i + s1i)
        s1r, s1i = fr[1] - fr[3], fi[1] - fi[3]
        o1 = (s0r + s1i, s0i - s1r)
        o3 = (s0r - s1i, s0i + s1r)
        outs = [o0, o1, o2, o3]
    elif p == 4:
        a0r, a0i = fr[0], fi[0]
        c0r, c0i = _cmul(fr[1], fi[1], *tw(1))
        c1r, c1i = _cmul(fr[2], fi[2], *tw(2))
        c2r, c2i = _cmul(fr[3], fi[3], *tw(3))
        s5r, s5i = a0r - c1r, a0i - c1i
        a0r, a0i = a0r + c1r, a0i + c1i
        s3r, s3i = c0r + c2r, c0i + c2i
        s4r, s4i = c0r - c2r, c0i - c2i
        outs = [(a0r + s3r, a0i + s3i), (s5r + s4i, s5i - s4r), (a0r - s3r, a0i - s3i), (s5r - s4i, s5i + s4r)]
    elif p == 5:
        yar, yai = t.tw_r[fs * m], t.tw_i[fs * m]
        ybr, ybi = t.tw_r[2 * fs * m], t.tw_i[2 * fs * m]
        s0r, s0i = fr[0], fi[0]
        s = [None] + [_cmul(fr[q], fi[q], *tw(q)) for q in range(1, 5)]
        s7r, s7i = s[1][0] + s[4][0], s[1][1] + s[4][1]
        s10r, s10i = s[1][0] - s[4][0], s[1][1] - s[4][1]
        s8r, s8i = s[2][0] + s[3][0], s[2][1] + s[3][1]
        s9r, s9i = s[2][0] - s[3][0], s[2][1] - s[3][1]
        o0 = (s0r + (s7r + s8r), s0i + (s7i + s8i))
        s5r = s0r + (_mul(s7r, yar) + _mul(s8r, ybr))
        s5i = s0i + (_mul(s7i, yar) + _mul(s8i, ybr))
        s6r = _mul(s10i, yai) + _mul(s9i, ybi)
        s6i = -(_mul(s10r, yai) + _mul(s9r, ybi))
        s11r = s0r + (_mul(s7r, ybr) + _mul(s8r, yar))
        s11i = s0i + (_mul(s7i, ybr) + _mul(s8i, yar))
        s12r = _mul(s9i, yai) - _mul(s10i, ybi)
        s12i = _mul(s10r, ybi) - _mul(s9r, yai)
        outs = [o0, (s5r - s6r, s5i - s6i), (s11r + s12r, s11i + s12i), (s11r - s12r, s11i - s12i),
                (s5r + s6r, s5i + s6i)]
    elif p == 3:
        e3 = t.tw_i[fs * m]
        s1r, s1i = _cmul(fr[1], fi[1], *tw(1))
        s2r, s2i = _cmul(fr[2], fi[2], *tw(2))
        s3r, s3i = s1r + s2r, s1i + s2i
        s0r, s0i = s1r - s2r, s1i - s2i
        fmr = fr[0] - _mul(s3r, _f32(0.5))
        fmi = fi[0] - _mul(s3i, _f32(0.5))
        s0r, s0i = _mul(s0r, e3), _mul(s0i, e3)
        outs = [(fr[0] + s3r, fi[0] + s3i), (fmr - s0i, fmi + s0r), (fmr + s0i, fmi - s0r)]
    elif p == 2 and m == 4:
        tw2 = ref.c_float("0.7071067812")
        g_r, g_i = fr[1], fi[1]
        tr = jnp.stack([g_r[..., 0], _mul(g_r[..., 1] + g_i[..., 1], tw2), g_i[..., 2],
                        _mul(g_i[..., 3] - g_r[..., 3], tw2)], axis=-1)
        ti = jnp.stack([g_i[..., 0], _mul(g_i[..., 1] - g_r[..., 1], tw2), -g_r[..., 2],
                        _mul(-(g_i[..., 3] + g_r[..., 3]), tw2)], axis=-1)
        outs = [(fr[0] + tr, fi[0] + ti), (fr[0] - tr, fi[0] - ti)]
    else:
        raise ValueError(f"no kiss FFT butterfly for radix {p} with m={m}")
    re = jnp.stack([o[0] for o in outs], axis=-2).reshape(re.shape)
    im = jnp.stack([o[1] for o in outs], axis=-2).reshape(im.shape)
    return re, im


@functools.cache
def _digit_reversal(pack_id: str) -> tuple[int, ...] | None:
    """The radices ``(r0, ..., rk)`` whose reversed digits give the FFT's input order (``fft_bitrev``): the input
    viewed as ``[..., r0, ..., rk]`` with those axes reversed. ``None`` if ``bitrev`` is not that permutation."""
    t = ref.tables(pack_id)
    dims = tuple(st.radix for st in t.stages)  # first stage's radix is the fastest-varying digit
    if int(np.prod(dims)) != t.nfft:
        return None
    inv = np.empty_like(t.bitrev)
    inv[t.bitrev] = np.arange(t.nfft)
    order = np.arange(t.nfft).reshape(dims).transpose(tuple(range(len(dims)))[::-1]).reshape(-1)
    return dims if np.array_equal(order, inv) else None


def kiss_fft(re, im, t: ref.Tables, pack_id: str | None = None):
    """:func:`opus_dred.refimpl._features.kiss_fft` on ``[..., nfft]``: scaled, bit-reversed, then the stages.

    The bit reversal is a digit reversal of the radices (a transpose, where :func:`_digit_reversal` confirms it
    for the pack) and each stage's result is materialised (an optimisation barrier): XLA would otherwise fuse
    the stages into one loop that recomputes earlier stages per output."""
    dims = _digit_reversal(pack_id) if pack_id is not None else None
    re = _mul(t.scale, re)
    im = _mul(t.scale, im)
    if dims is None:
        inv = np.empty_like(t.bitrev)
        inv[t.bitrev] = np.arange(t.bitrev.shape[0])
        re, im = re[..., inv], im[..., inv]
    else:
        lead = re.shape[:-1]
        k = len(dims)
        axes = tuple(range(len(lead))) + tuple(range(len(lead) + k - 1, len(lead) - 1, -1))
        re = jnp.transpose(re.reshape(lead + dims), axes).reshape(lead + (t.nfft,))
        im = jnp.transpose(im.reshape(lead + dims), axes).reshape(lead + (t.nfft,))
    re, im = jax.lax.optimization_barrier((re, im))
    for st in t.stages:
        re, im = jax.lax.optimization_barrier(_stage(re, im, st, t))
    return re, im


def band_energy(xr, xi):
    """``lpcn_compute_band_energy`` (:func:`opus_dred.refimpl._features.band_energy`): ``[..., 161]`` -> 18."""
    n = ref._BAND_F.shape[0]
    tmp = _mul(xr[..., :n], xr[..., :n])
    tmp = tmp + _mul(xi[..., :n], xi[..., :n])
    terms = jnp.concatenate([_mul(ref._BAND_1MF, tmp), _mul(ref._BAND_F, tmp), jnp.zeros_like(tmp[..., :1])],
                            axis=-1)
    g = terms[..., ref._BAND_IDX]  # [..., 18, width]
    s = _seq(jnp.zeros(g.shape[:-1], jnp.float32), [g[..., j] for j in range(g.shape[-1])])
    s = s.at[..., 0].set(_mul(s[..., 0], _f32(2)))
    return s.at[..., -1].set(_mul(s[..., -1], _f32(2)))


def _dct(x, table: np.ndarray):
    """``out[i] = (float)(sum_j x[j] table[j, i] * sqrt(2/18))`` (the reference's ``_dct``)."""
    acc = jnp.zeros(x.shape[:-1] + (table.shape[1],), jnp.float32)
    for j in range(table.shape[0]):
        acc = acc + _mul(x[..., j, None], table[j])
    return _mul(acc.astype(jnp.float64), ref._DCT_SCALE).astype(jnp.float32)


def _log_energy(e, release):
    v = _mul(ref._LOG10_2, celt_log2(e, release))
    return jnp.maximum(_f32(-1), jnp.minimum(_f32(1), _mul(ref._INV64, _mul(_f32(10), v) - _f32(6))))


def inner_prod(x, y, kernels: str):
    """``celt_inner_prod`` over the last axis (:func:`opus_dred.refimpl._features.inner_prod`)."""
    p = _mul(x, y)
    zero = jnp.zeros(p.shape[:-1], jnp.float32)
    if kernels == "c":
        return _seq(zero, [p[..., j] for j in range(p.shape[-1])])
    lanes = [_seq(zero, [p[..., 4 * c + lane] for c in range(p.shape[-1] // 4)]) for lane in range(4)]
    return (lanes[0] + lanes[2]) + (lanes[1] + lanes[3])


# ---------------------------------------------------------------------------------------------------------------
# the stages


def _windowed(mem_preemph, xprev, pcm, t: ref.Tables):
    """Stage 1a for ``pcm [B, T*160]`` (int16 scale, float32): pre-emphasis and ``frame_analysis``' window.

    State in: ``mem_preemph [B]`` and the previous frame of the pre-emphasised signal ``xprev [B, 160]``.
    Returns the new state, the pre-emphasised signal with the previous frame in front
    ``xext [B, 160 + T*160]`` and the windowed frames ``[B, T, 320]``."""
    nt = pcm.shape[1] // FRAME
    prev = jnp.concatenate([mem_preemph[:, None], _mul(-ref._PREEMPH, pcm[:, :-1])], axis=1)
    x = pcm + prev
    xext = jnp.concatenate([xprev, x], axis=1)
    win = _frame_windows(xext, 0, WINDOW, nt)  # [B, T, 320]
    hw = t.half_window
    win = jnp.concatenate([_mul(win[..., :FRAME], hw), _mul(win[..., FRAME:], hw[::-1])], axis=-1)
    return (_mul(-ref._PREEMPH, pcm[:, -1]), x[:, -FRAME:]), xext, win


def _spectral(prev_ifr, prev_ifi, yr, yi, t: ref.Tables):
    """Stage 1b on the spectra ``yr, yi [B, T, 320]``: band energies, IF features (with the previous frame's
    first 30 bins ``prev_ifr/prev_ifi [B, 30]`` for the block's first frame), log band energies with their
    floor, DCT, and the inverse DCT that ``lpc_from_cepstrum`` raises to ``10**``. Returns the new state, the
    cepstrum (``c0 - 4``) ``[B, T, 18]``, the inverse DCT ``[B, T, 18]`` and the IF features ``[B, T, 88]``."""
    b, nt = yr.shape[:2]
    rel = t.release
    xr, xi = yr[..., :ref.FREQ_SIZE], yi[..., :ref.FREQ_SIZE]
    ex = band_energy(xr, xi)

    ar_all, ai_all = xr[..., :NIF], xi[..., :NIF]
    pr = jnp.concatenate([prev_ifr[:, None], ar_all[:, :-1]], axis=1)[..., 1:]
    pi_ = jnp.concatenate([prev_ifi[:, None], ai_all[:, :-1]], axis=1)[..., 1:]
    ar, ai = ar_all[..., 1:], ai_all[..., 1:]
    prod_r = _mul(ar, pr) + _mul(ai, pi_)
    prod_i = _mul(ai, pr) - _mul(ar, pi_)
    mag = (ref._1E_15 + _mul(prod_r, prod_r)) + _mul(prod_i, prod_i)
    norm = (1.0 / _opaque(jnp.sqrt(mag.astype(jnp.float64)))).astype(jnp.float32)
    le0 = _log_energy(ref._1E_15 + _mul(xr[..., 0], xr[..., 0]), rel)
    le = _log_energy((ref._1E_15 + _mul(ar, ar)) + _mul(ai, ai), rel)
    trip = jnp.stack([_mul(prod_r, norm), _mul(prod_i, norm), le], axis=-1).reshape(b, nt, 3 * (NIF - 1))
    iff = jnp.concatenate([le0[..., None], trip], axis=-1)

    ly = _mul(ref._LOG10_2, celt_log2(ref._1E_2 + ex, rel))
    log_max = jnp.full((b, nt), _f32(-2))
    follow = jnp.full((b, nt), _f32(-2))
    cols = []
    for i in range(NB_BANDS):
        v = jnp.maximum(log_max - _f32(8), jnp.maximum(follow - _f32(2.5), ly[..., i]))
        cols.append(v)
        log_max = jnp.maximum(log_max, v)
        follow = jnp.maximum(follow - _f32(2.5), v)
    ly = jnp.stack(cols, axis=-1)
    ceps = _dct(ly, t.dct)
    ceps = ceps.at[..., 0].set(ceps[..., 0] - _f32(4))
    tmp = ceps.at[..., 0].set(ceps[..., 0] + _f32(4))
    e = _dct(tmp, np.ascontiguousarray(t.dct.T))
    return (xr[:, -1, :NIF], xi[:, -1, :NIF]), ceps, e, iff


def _lpcn_lpc(ac):
    """``dnn/freq.c:lpcn_lpc`` (:func:`opus_dred.refimpl._features.lpcn_lpc`) on ``[..., 17]``, one
    ``fori_loop`` step per order ``i``: ``rr = (0 + sum_{j<i} lpc[j] ac[i-j]) + ac[i+1]`` in order,
    ``r = -rr / error``, ``lpc[j] += r lpc[i-1-j]`` for ``j < i``, ``lpc[i] = r``, ``error -= (r r) error``,
    each stream stopping once its error falls below ``0.001 ac[0]``."""
    lead = ac.shape[:-1]
    jj = np.arange(LPC_ORDER)
    floor = _mul(ref._0P001, ac[..., 0])

    def body(i, carry):
        lpc, error, active = carry
        acg = jnp.take(ac, jnp.clip(i - jj, 0, LPC_ORDER), axis=-1)
        prods = _mul(lpc, acg)
        acc = jnp.zeros(lead, jnp.float32)
        for j in range(LPC_ORDER):
            acc = jnp.where(j < i, acc + prods[..., j], acc)
        rr = acc + jnp.take(ac, i + 1, axis=-1)
        r = -rr / error
        rev = jnp.take(lpc, jnp.clip(i - 1 - jj, 0, LPC_ORDER - 1), axis=-1)
        upd = lpc + _mul(r[..., None], rev)
        new = jnp.where(jj < i, upd, jnp.where(jj == i, r[..., None], lpc))
        new_err = error - _mul(_mul(r, r), error)
        lpc = jnp.where(active[..., None], new, lpc)
        error = jnp.where(active, new_err, error)
        return lpc, error, active & ~(new_err < floor)

    init = (jnp.zeros(lead + (LPC_ORDER,), jnp.float32), ac[..., 0], ac[..., 0] != 0)
    return jax.lax.fori_loop(0, LPC_ORDER, body, init)[0]


def _band_gains(ex):
    """``lpc_from_cepstrum`` after ``pow(10, .)``, up to its inverse transform: the band gains interpolated to
    161 bins and extended to the 320-point Hermitian input ``(re, im)`` of the forward FFT."""
    lead = ex.shape[:-1]
    segs = []
    for i in range(NB_BANDS - 1):
        lo, hi = ref.EBAND5MS[i] * 4, ref.EBAND5MS[i + 1] * 4
        segs.append(_mul(ref._BAND_1MF[lo:hi], ex[..., i, None]) + _mul(ref._BAND_F[lo:hi], ex[..., i + 1, None]))
    g = jnp.concatenate(segs + [jnp.zeros(lead + (ref.FREQ_SIZE - ref.EBAND5MS[-1] * 4,), jnp.float32)], axis=-1)
    re = jnp.concatenate([g, g[..., WINDOW - ref.FREQ_SIZE:0:-1]], axis=-1)
    im = jnp.concatenate([jnp.zeros(lead + (ref.FREQ_SIZE,), jnp.float32),
                          jnp.full(lead + (WINDOW - ref.FREQ_SIZE,), -0.0, jnp.float32)], axis=-1)
    return re, im


def _lpc_from_autocorr(yr):
    """The rest of ``lpc_from_cepstrum`` on the transform's real part ``[..., 320]``: the autocorrelation
    (output reversed, times 320), the -40 dB noise floor and lag window in double, Levinson-Durbin."""
    rev = np.concatenate([[0], np.arange(WINDOW - 1, WINDOW - 1 - LPC_ORDER, -1)])
    ac = _mul(_f32(WINDOW), yr[..., rev])
    a0 = ac[..., 0].astype(jnp.float64)
    ac0 = (a0 + (_mul(a0, 1e-4) + ref._NOISE_FLOOR)).astype(jnp.float32)
    rest = _mul(ac[..., 1:].astype(jnp.float64), ref._LAG_WINDOW[1:]).astype(jnp.float32)
    return _lpcn_lpc(jnp.concatenate([ac0[..., None], rest], axis=-1))


def _frame_windows(stream, start: int, span: int, nt: int):
    """``[B, nt, span]``: for each frame ``f`` the samples ``stream[:, start + 160 f : start + 160 f + span]``,
    built from the stream cut into 160-sample rows (slices and one concatenation; a gather would be slower)."""
    b, n = stream.shape
    first, off = divmod(start, FRAME)
    nb = -(-(off + span) // FRAME)
    need = (first + nt - 1 + nb) * FRAME
    if n < need:
        stream = jnp.concatenate([stream, jnp.zeros((b, need - n), stream.dtype)], axis=1)
    rows = stream[:, :need].reshape(b, need // FRAME, FRAME)
    return jnp.concatenate([rows[:, first + j:first + j + nt] for j in range(nb)], axis=-1)[..., off:off + span]


def _celt_fir(xext, lpc, kernels: str):
    """``celt_fir`` of every frame: ``xext [B, 160 + T*160]`` (pre-emphasised signal, previous frame first),
    ``lpc [B, T, 16]`` -> the residual ``[B, T*160]``. Frame ``f`` filters the signal delayed by 80 samples
    (``TRAINING_OFFSET``) with its 16 samples of history: ``xext[f*160 + 64 : f*160 + 240]``."""
    b = xext.shape[0]
    nt = lpc.shape[1]
    start = FRAME - ref.TRAINING_OFFSET - LPC_ORDER  # 64
    firin = _frame_windows(xext, start, FRAME + LPC_ORDER, nt)
    rnum = lpc[..., ::-1]
    p = [_mul(firin[..., j:j + FRAME], rnum[..., j, None]) for j in range(LPC_ORDER)]
    x0 = firin[..., LPC_ORDER:]
    if kernels == "c":
        res = _seq(x0, p)
    else:
        res = _seq(x0, p[0::2]) + _seq(jnp.zeros_like(x0), p[1::2])
    return res.reshape(b, nt * FRAME)


def _biquad(x, mem):
    """The biquad of ``compute_frame_features`` (the reference's ``_biquad``) over ``x [B, n]``, one
    ``lax.scan`` step per sample: ``(y [B, n], mem [B, 2])``."""
    p0 = _mul(ref._BQ_C0, x)
    p1 = _mul(ref._BQ_C1, x) + ref._1E_30
    a0, a1 = ref._LP_A

    def step(c, pp):
        m0, m1 = c
        q0, q1 = pp
        return ((q0 + m1) - _mul(a0, m0), q1 - _mul(a1, m0)), m0

    (m0, m1), m0s = jax.lax.scan(step, (mem[:, 0], mem[:, 1]), (p0.T, p1.T), unroll=8)
    return x + m0s.T, jnp.stack([m0, m1], axis=1)


def _residual(pitch_filt, exc_tail, xext, yr, kernels: str):
    """Stage 3 on the inverse transforms ``yr [B, T, 320]`` of the band gains: the LPC of every frame, the
    residual, the excitation and the denominators of the normalised cross-correlation.

    State in: the residual's last sample ``pitch_filt [B]`` and the last 256 samples of the excitation
    ``exc_tail [B, 256]``. Returns the new state, ``lpc [B, T, 16]``, the residual ``[B, T*160]``, the
    excitation windows ``[B, T, 416]`` (256 samples of history, then the frame) and ``1 + E0 + E1[k]`` rounded to
    float ``[B, T, 224]``."""
    nt = yr.shape[1]
    lpc = _lpc_from_autocorr(yr)
    res = _celt_fir(xext, lpc, kernels)
    lag1 = jnp.concatenate([pitch_filt[:, None], res[:, :-1]], axis=1)
    exc = res + _mul(ref._0P7, lag1)
    excx = jnp.concatenate([exc_tail, exc], axis=1)
    excw = _frame_windows(excx, 0, HIST + FRAME, nt)  # [B, T, 416]
    cur = excw[..., HIST:]
    ener0 = inner_prod(cur, cur, kernels)
    ener1 = inner_prod(excw[..., :FRAME], excw[..., :FRAME], kernels).astype(jnp.float64)
    e64 = excw.astype(jnp.float64)
    d = _mul(e64[..., FRAME:FRAME + NB_XCORR - 1], e64[..., FRAME:FRAME + NB_XCORR - 1]) - _mul(
        e64[..., :NB_XCORR - 1], e64[..., :NB_XCORR - 1])

    def lag(acc, dk):
        acc = acc + dk
        return acc, acc

    _, rest = jax.lax.scan(lag, ener1, jnp.moveaxis(d, -1, 0))
    ener1s = jnp.concatenate([ener1[..., None], jnp.moveaxis(rest, 0, -1)], axis=-1)
    ener = ((_f32(1) + ener0)[..., None].astype(jnp.float64) + ener1s).astype(jnp.float32)
    return (res[:, -1], excx[:, -HIST:]), lpc, res, excw, ener


def _lowpass(lp_tail, lp_mem, res):
    """The low-passed residual (the biquad, a ``lax.scan`` over the block's samples) as ``[B, T, 416]`` windows
    (256 samples of history, then the frame), with the state ``(lp_tail [B, 256], lp_mem [B, 2])`` in and out.
    Its own XLA computation: only ``frame_corr`` reads it, so it runs while the xcorr and PitchDNN do."""
    lp, lp_mem = _biquad(res, lp_mem)
    lpx = jnp.concatenate([lp_tail, lp], axis=1)
    return (lpx[:, -HIST:], lp_mem), _frame_windows(lpx, 0, HIST + FRAME, res.shape[1] // FRAME)


def _xcorr(excw, kernels: str):
    """``celt_pitch_xcorr`` of every frame: ``xcorr[k] = sum_j cur[j] y[j + k]``, ``cur`` the frame's excitation,
    ``y`` the window from 256 samples back; ``[..., 416]`` -> ``[..., 224]``.

    Also returns each window's smallest non-zero magnitude (:func:`xcorr` checks it).
    ``"x86"``: ``celt_pitch_xcorr_avx2``, eight chains ``acc_l = fma(cur[8c + l], y[8c + l + k], acc_l)``
    written ``x * y + acc`` (XLA contracts them on an FMA host; :func:`xcorr_exact` checks), then
    ``((l0+l4) + (l1+l5)) + ((l2+l6) + (l3+l7))``. ``"c"``: one sequential sum of rounded products per lag."""
    cur = excw[..., HIST:]
    if kernels == "c":
        acc = jnp.zeros(excw.shape[:-1] + (NB_XCORR,), jnp.float32)
        for j in range(FRAME):
            acc = acc + _mul(cur[..., j, None], excw[..., j:j + NB_XCORR])
        return acc, _smallest(excw)
    lanes = []
    for lane in range(8):
        acc = jnp.zeros(excw.shape[:-1] + (NB_XCORR,), jnp.float32)
        for c in range(FRAME // 8):
            j = 8 * c + lane
            acc = cur[..., j, None] * excw[..., j:j + NB_XCORR] + acc
        lanes.append(acc)
    a = lanes
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])), _smallest(excw)


def _smallest(w):
    """The smallest non-zero magnitude of each window (``inf`` for an all-zero one)."""
    a = jnp.abs(w)
    return jnp.min(jnp.where(a > 0, a, jnp.inf), axis=-1)


def _frame_corr_inputs(lpw, period, kernels: str):
    """The normalised correlation of the frame's low-passed residual with itself ``period`` samples back,
    ``(float)(xy / sqrt((double)(1 + xx * yy)))``: ``lpw [B, T, 416]``, ``period [B, T]`` -> ``[B, T]``."""
    cur = lpw[..., HIST:]
    idx = (HIST - period)[..., None] + jnp.arange(FRAME)
    lagged = jnp.take_along_axis(lpw, idx, axis=-1)
    xx = inner_prod(cur, cur, kernels)
    yy = inner_prod(lagged, lagged, kernels)
    xy = inner_prod(cur, lagged, kernels)
    den = _opaque(jnp.sqrt((_f32(1) + _mul(xx, yy)).astype(jnp.float64)))
    return (xy.astype(jnp.float64) / den).astype(jnp.float32)


@functools.cache
def _stage_jits(pack_id: str):
    """The stages that read one model pack's tables, compiled: window, FFT, spectral features."""
    t = ref.tables(pack_id)
    return (jax.jit(functools.partial(_windowed, t=t)), jax.jit(functools.partial(kiss_fft, t=t, pack_id=pack_id)),
            jax.jit(functools.partial(_spectral, t=t)))


_band_gains_jit = jax.jit(_band_gains)
_residual_jit = jax.jit(_residual, static_argnames=("kernels",))
_lowpass_jit = jax.jit(_lowpass)
def conv2d_block(p: dict, state, x, num: Numerics):
    """``compute_conv2d`` (:func:`opus_dred.refimpl._nnet.conv2d`) on ``T`` consecutive input frames ``x [B, T,
    C, H + 2]`` with the ``ktime - 1`` frames before them ``state [B, kt - 1, C, H + 2]``: ``([B, T, out, H]``
    after the bias and tanh, the state after the block).

    Frame ``f`` sees the frames ``f, f + 1, f + 2`` of ``[state, x]``, so each tap is a slice of that history.
    The emulation presets' 3x3 kernel is ``nnet.conv2d``'s loop: per input channel the nine products in
    (time, height) order (``fma(w0, x0, w1 x1)`` and fused onward with ``num.fma``, else all rounded), each
    channel's sum added to the output, then the bias; other cases call ``nnet.conv2d`` on stacked memories."""
    hist = jnp.concatenate([state, x], axis=1)  # [B, T + kt - 1, C, H + kh - 1]
    nt = x.shape[1]
    w = p["weight"].astype(x.dtype)
    _, n_in, kt, kh = w.shape
    if num.matmul != "int8" or (kt, kh) != (3, 3):
        mem = jnp.stack([hist[:, j:j + nt] for j in range(kt - 1)], axis=2)
        y, _ = nnet.conv2d(p, mem, x, num)
        return y, hist[:, -(kt - 1):]
    height = x.shape[-1] - kh + 1

    def tap(t, m, h):
        return hist[:, t:t + nt, m, None, h:h + height]

    taps = [(t, h) for t in range(kt) for h in range(kh)]
    y = None
    for m in range(n_in):
        (t0, h0), (t1, h1) = taps[0], taps[1]
        sm = nnet._mad(w[:, m, t0, h0, None], tap(t0, m, h0), nnet._unfused(w[:, m, t1, h1, None] * tap(t1, m, h1)),
                       num.fma)
        for t, h in taps[2:]:
            sm = nnet._mad(w[:, m, t, h, None], tap(t, m, h), sm, num.fma)
        y = sm if y is None else y + sm
    y = y + p["bias"].astype(x.dtype)[:, None]
    return nnet.tanh(y, num), hist[:, -(kt - 1):]


def _pd_if(params, if_features, num):
    return nnet.dense(params["dense_if_upsampler_2"], nnet.dense(params["dense_if_upsampler_1"], if_features, num),
                      num)


def _pd_conv1(params, state, xcorr_features, num):
    return conv2d_block(params["conv2d_1"], state, pdnn._pad_height(xcorr_features)[..., None, :], num)


def _pd_conv2(params, state, c1, num):
    return conv2d_block(params["conv2d_2"], state, pdnn._pad_height(c1), num)


def _pd_down(params, c2, if2, num):
    return nnet.dense(params["dense_downsampler"], jnp.concatenate([c2[..., 0, :], if2], axis=-1), num)


def _pd_gru(params, h, down, num):
    def step(h, d):
        h = nnet.gru(params["gru_1_input"], params["gru_1_recurrent"], h, d, num)
        return h, h

    gru, hs = jax.lax.scan(step, h, jnp.swapaxes(down, 0, 1))
    logits = nnet.dense(params["dense_final_upsampler"], jnp.swapaxes(hs, 0, 1), num, activation="linear")
    return gru, pdnn.pitch_estimate(logits, num)


_PD_JITS = tuple(jax.jit(f, static_argnames=("num",)) for f in (_pd_if, _pd_conv1, _pd_conv2, _pd_down, _pd_gru))


def pitchdnn_block(params, state, if_features, xcorr_features, num: Numerics):
    """``compute_pitchdnn`` on ``T`` consecutive frames of ``B`` streams: ``[B, T, 88]``, ``[B, T, 224]`` ->
    (state after the block, ``dnn_pitch [B, T]``), what :func:`opus_dred.refimpl._pitchdnn.pitchdnn_step` gives
    frame after frame.

    Only ``gru_1`` carries a state from frame to frame; the convolutions' memories are the frames' own
    predecessors, known for the whole block. So every layer but the GRU runs on all ``B * T`` frames at once
    (the reference's :func:`~opus_dred.refimpl._nnet.dense`, and :func:`conv2d_block`), the GRU
    (:func:`~opus_dred.refimpl._nnet.gru`) is one ``lax.scan`` over the block, and the estimate is
    :func:`~opus_dred.refimpl._pitchdnn.pitch_estimate` on every frame. Each layer is its own XLA computation:
    compiled together, XLA fuses a layer into the next one's integer matrix product and recomputes it there
    (three times slower on the 2-core machine measured)."""
    f_if, f_conv1, f_conv2, f_down, f_gru = _PD_JITS
    if2 = f_if(params, if_features, num=num)
    c1, conv1 = f_conv1(params, state["conv1"], xcorr_features, num=num)
    c2, conv2 = f_conv2(params, state["conv2"], c1, num=num)
    down = f_down(params, c2, if2, num=num)
    gru, pitch = f_gru(params, state["gru"], down, num=num)
    return {"gru": gru, "conv1": conv1, "conv2": conv2}, pitch


_xcorr_jit = jax.jit(_xcorr, static_argnames=("kernels",))
_frame_corr_jit = jax.jit(_frame_corr_inputs, static_argnames=("kernels",))
_pitchdnn_jit = pitchdnn_block


# ---------------------------------------------------------------------------------------------------------------
# the contraction check


_XCORR_OK: dict = {}
_XCORR_LOCK = threading.Lock()


def xcorr_exact(shape: tuple[int, ...]) -> bool:
    """Whether :func:`_xcorr` (``"x86"``), compiled for excitation windows of ``shape`` (``[..., 416]``), gives
    ``celt_pitch_xcorr_avx2``'s fused results, i.e. XLA contracted every ``x * y + acc`` into an FMA.

    Checked once per shape: the compiled computation runs on random data with full mantissas (where fused and
    unfused chains differ in most outputs) and the first and last 16 windows are compared with the reference's
    exact ``fmaf`` emulation (:func:`opus_dred.refimpl._features.pitch_xcorr`); every window goes through the
    same compiled loop, so those rows test every path of it."""
    key = (tuple(shape), jax.default_backend())
    with _XCORR_LOCK:
        ok = _XCORR_OK.get(key)
        if ok is None:
            rng = np.random.default_rng(0)
            w = (rng.standard_normal(shape) * 1000).astype(_f32)
            got = np.asarray(_xcorr_jit(jnp.asarray(w), kernels="x86")[0]).reshape(-1, NB_XCORR)
            flat = w.reshape(-1, HIST + FRAME)
            rows = np.unique(np.r_[np.arange(min(16, len(flat))), np.arange(max(0, len(flat) - 16), len(flat))])
            want = ref.pitch_xcorr(flat[rows, HIST:], flat[rows, :FRAME + NB_XCORR - 1], NB_XCORR, "x86")
            ok = _XCORR_OK[key] = bool(np.array_equal(got[rows].view(np.uint32), want.view(np.uint32)))
    return ok


#: windows whose smallest non-zero magnitude lies below this are recomputed by the reference (:func:`xcorr`)
XCORR_SAFE = 2.0 ** -40


def xcorr(excw, kernels: str) -> np.ndarray:
    """:func:`_xcorr` on ``[B, T, 416]`` windows; with ``"x86"`` where :func:`xcorr_exact` fails for the shape,
    the reference's exact emulation instead.

    A window whose non-zero values all have magnitudes of at least 2^-40 keeps every product and every partial
    sum a multiple of 2^-126 (the products of two float32 values >= 2^-40 are multiples of 2^-126, and so are
    their sums and roundings), so no value of it is ever subnormal and XLA's flushing changes nothing; a window
    with a smaller non-zero value is recomputed by the reference."""
    if kernels == "x86" and not xcorr_exact(np.shape(excw)):
        flat = np.asarray(excw, _f32).reshape(-1, HIST + FRAME)
        return ref.pitch_xcorr(flat[:, HIST:], flat[:, :FRAME + NB_XCORR - 1], NB_XCORR, "x86").reshape(
            np.shape(excw)[:-1] + (NB_XCORR,))
    xc, lo = _xcorr_jit(excw, kernels=kernels)
    out = np.array(xc)
    risky = np.asarray(lo) < XCORR_SAFE
    if risky.any():
        idx = np.nonzero(risky)
        w = np.asarray(excw, _f32)[idx]
        out[idx] = ref.pitch_xcorr(w[:, HIST:], w[:, :FRAME + NB_XCORR - 1], NB_XCORR, kernels)
    return out


# ---------------------------------------------------------------------------------------------------------------
# the extractor


@dataclass
class FrameBlock:
    """Features of ``T`` consecutive frames of ``B`` streams: ``features [B, T, 36]``, ``if_features
    [B, T, 88]``, ``xcorr_features [B, T, 224]``, ``dnn_pitch [B, T]``, as the reference's
    :class:`~opus_dred.refimpl._features.Features` with a frame axis."""

    features: np.ndarray
    if_features: np.ndarray
    xcorr_features: np.ndarray
    dnn_pitch: np.ndarray


class BlockFeatureExtractor:
    """``LPCNetEncState`` for ``B`` streams, computed a block of frames at a time: :meth:`frames` gives what the
    reference's :meth:`~opus_dred.refimpl._features.FeatureExtractor.frames` gives for the same samples, bit for
    bit (``profile`` and ``kernels`` as there). PitchDNN is the reference's, under ``numerics`` (a
    :class:`~opus_dred.refimpl._nnet.Numerics`), run as one ``lax.scan`` over each block."""

    def __init__(self, profile, numerics: Numerics, *, kernels: str = "x86", streams: int) -> None:
        self.profile: Profile = get_profile(profile) if isinstance(profile, str) else profile
        self.kernels = ref._check_kernels(kernels)
        self.tables = ref.tables(self.profile.model_pack)
        self.numerics = numerics
        self.pitch_params = pdnn._cached_params(self.profile.name)
        self.streams = int(streams)
        self.reset()

    def reset(self) -> None:
        b = self.streams
        z = functools.partial(np.zeros, dtype=_f32)
        self._a = (z(b), z((b, FRAME)), z((b, NIF)), z((b, NIF)))
        self._r = (z(b), z((b, HIST)), z((b, HIST)), z((b, 2)))
        self._pitch = pdnn.init_pitch_state(self.pitch_params, b)
        self._hist = np.zeros((b, HIST + FRAME), _f32)

    def frames(self, pcm16k: np.ndarray, *, seconds: dict | None = None) -> FrameBlock:
        """``[B, T*160]`` samples at 16 kHz in int16 scale (float32) -> the block's features; ``seconds``
        (optional) accumulates the time of each stage. Streams whose block (or the 416 samples before it)
        holds a run of tiny non-zero samples (:func:`tiny_runs`) are computed by the reference extractor."""
        x = np.ascontiguousarray(pcm16k, _f32)
        if x.ndim != 2 or x.shape[0] != self.streams or x.shape[1] % FRAME:
            raise ref.FeatureError("pcm16k", f"must be [{self.streams}, T*{FRAME}], got shape {x.shape}")
        dirty = tiny_runs(np.concatenate([self._hist, x], axis=1))
        prev = (self._a, self._r, self._pitch)
        out = self._fast(x, seconds)
        if dirty.any():
            self._reference(np.nonzero(dirty)[0], x, prev, out)
        self._hist = np.concatenate([self._hist, x], axis=1)[:, -HIST - FRAME:]
        return out

    def _fast(self, x: np.ndarray, seconds: dict | None) -> FrameBlock:
        k = self.kernels
        b, nt = x.shape[0], x.shape[1] // FRAME
        clock = [time.perf_counter()]

        def lap(name):
            now = time.perf_counter()
            if seconds is not None:
                seconds[name] = seconds.get(name, 0.0) + now - clock[0]
            clock[0] = now

        windowed, fft, spectral = _stage_jits(self.profile.model_pack)
        (mem, xprev, pr, pi_), (pf, exc_t, lp_t, lp_mem) = self._a, self._r
        with jax.enable_x64(True):
            s1, xext, win = windowed(mem, xprev, x)
            yr, yi = fft(win, jnp.zeros_like(win))
            s2, ceps, e, iff = spectral(pr, pi_, yr, yi)
            ex = ref._pow10_comp(np.asarray(e).reshape(-1, NB_BANDS), ref.COMPENSATION).reshape(b, nt, NB_BANDS)
            gr, gi = _band_gains_jit(ex)
            yr, _ = fft(gr, gi)
            (pf, exc_t), lpc, res, excw, ener = _residual_jit(pf, exc_t, xext, yr, kernels=k)
            (lp_t, lp_mem), lpw = _lowpass_jit(lp_t, lp_mem, res)
            sr = (pf, exc_t, lp_t, lp_mem)
            sa = s1 + s2
        lap("dsp")
        xc = xcorr(excw, k)
        lap("xcorr")
        xcf = (_f32(2) * xc) / np.asarray(ener)
        iff = np.array(iff)
        self._pitch, dp = _pitchdnn_jit(self.pitch_params, self._pitch, iff, xcf, num=self.numerics)
        dnn_pitch = np.array(dp, _f32)
        lap("pitchdnn")
        period = ref._pitch_period(dnn_pitch)
        if not np.all((period >= 0) & (period <= ref.PITCH_MAX_PERIOD)):
            bad = dnn_pitch[(period < 0) | (period > ref.PITCH_MAX_PERIOD)]
            raise ref.FeatureError("pitch", f"dnn_pitch {bad.tolist()} gives pitch periods outside "
                                            f"[0, {ref.PITCH_MAX_PERIOD}]")
        with jax.enable_x64(True):
            corr = np.asarray(_frame_corr_jit(lpw, jnp.asarray(period.astype(np.int32)), kernels=k))
        corr = ref._frame_corr(corr)
        self._a = tuple(np.array(s) for s in sa)
        self._r = tuple(np.array(s) for s in sr)
        feats = np.zeros((b, nt, ref.NB_TOTAL_FEATURES), _f32)
        feats[..., :NB_BANDS] = np.asarray(ceps)
        feats[..., NB_BANDS] = dnn_pitch
        feats[..., NB_BANDS + 1] = corr - _f32(0.5)
        feats[..., NB_BANDS + 2:] = np.asarray(lpc)
        lap("dsp")
        return FrameBlock(feats, iff, xcf.astype(_f32), dnn_pitch)

    def _reference(self, rows: np.ndarray, x: np.ndarray, prev, out: FrameBlock) -> None:
        """Streams ``rows`` of the block by the reference extractor, from their state before the block (``prev``):
        their results replace the fast ones in ``out`` and in this extractor's state."""
        (mem, xprev, pr, pi_), (pf, exc_t, lp_t, lp_mem), pitch = prev
        n = len(rows)
        pstate = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[rows], pitch)

        def pitch_step(iff, xcf):
            nonlocal pstate
            pstate, dp = pdnn.pitchdnn_step_jit(self.pitch_params, pstate, iff, xcf, num=self.numerics)
            return np.asarray(dp)

        fe = ref.FeatureExtractor(self.profile, kernels=self.kernels, pitch=pitch_step, streams=n)
        span = HIST + FRAME
        exc_buf = np.zeros((n, span), _f32)
        exc_buf[:, FRAME:] = exc_t[rows]
        lp_buf = np.zeros((n, span), _f32)
        lp_buf[:, FRAME:] = lp_t[rows]
        fe._st = {"mem_preemph": mem[rows].copy(), "analysis_mem": xprev[rows].copy(),
                  "prev_if_r": pr[rows].copy(), "prev_if_i": pi_[rows].copy(),
                  "pitch_mem": xprev[rows, FRAME - ref.TRAINING_OFFSET - LPC_ORDER:FRAME - ref.TRAINING_OFFSET].copy(),
                  "exc_buf": exc_buf, "lp_buf": lp_buf, "lp_mem": lp_mem[rows].copy(), "pitch_filt": pf[rows].copy()}
        r = fe.frames(x[rows])
        out.features[rows] = r.features
        out.if_features[rows] = r.if_features
        out.xcorr_features[rows] = r.xcorr_features
        out.dnn_pitch[rows] = r.dnn_pitch
        st = fe._st
        a = [np.array(v) for v in self._a]
        a[0][rows], a[1][rows], a[2][rows], a[3][rows] = (st["mem_preemph"], st["analysis_mem"], st["prev_if_r"],
                                                          st["prev_if_i"])
        rr = [np.array(v) for v in self._r]
        rr[0][rows], rr[1][rows], rr[2][rows], rr[3][rows] = (st["pitch_filt"], st["exc_buf"][:, FRAME:],
                                                              st["lp_buf"][:, FRAME:], st["lp_mem"])
        self._a, self._r = tuple(a), tuple(rr)
        self._pitch = jax.tree_util.tree_map(lambda full, part: jnp.asarray(full).at[rows].set(part), self._pitch,
                                             pstate)


#: samples below this magnitude count as tiny (:func:`tiny_runs`)
TINY_SAMPLE = 2.0 ** -24
#: a run of this many tiny samples (at least one non-zero) sends a stream's block to the reference
TINY_RUN = 16


def tiny_runs(x: np.ndarray) -> np.ndarray:
    """Per stream of ``x [B, n]``: whether ``TINY_RUN`` consecutive samples all lie below ``TINY_SAMPLE`` in
    magnitude with at least one of them non-zero.

    Such runs (libopus 1.6's digital silence, every sample ``VERY_SMALL``; a resampler's decaying tail) make
    values of 1e-30 and below in the pre-emphasised signal, the spectrum and the residual, whose differences
    and products fall into float32's subnormal range, which XLA's CPU backend flushes to zero and libopus
    keeps. Exact zeros alone make exact zeros, and int16-scale samples next to a tiny one keep every value
    far from that range."""
    a = np.abs(np.asarray(x, _f64))
    small = a < TINY_SAMPLE
    nz = small & (a > 0)
    if x.shape[1] < TINY_RUN:
        return np.zeros(x.shape[0], bool)
    cs = np.concatenate([np.zeros((x.shape[0], 1), np.int64), np.cumsum(small, axis=1)], axis=1)
    cn = np.concatenate([np.zeros((x.shape[0], 1), np.int64), np.cumsum(nz, axis=1)], axis=1)
    full = (cs[:, TINY_RUN:] - cs[:, :-TINY_RUN]) == TINY_RUN
    some = (cn[:, TINY_RUN:] - cn[:, :-TINY_RUN]) > 0
    return np.any(full & some, axis=1)
