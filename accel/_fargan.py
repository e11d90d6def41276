"""FARGAN over many streams at once, computing the same numbers as :mod:`opus_dred.refimpl._fargan`.

The pieces are the reference's (the period table, the pitch positions, the de-emphasis, the priming of
``fargan_cont``, :mod:`.nnet`'s layers, activations and roundings); what changes is how the layers' products are
computed, injected into the same blocks as their ``linear``:

* **int8 products as float GEMMs** (:func:`opus_dred.accel._decode.prepare`, :func:`~opus_dred.accel._decode.
  linear`): the exact integer sums of 8-bit inputs and int8 weights through a float GEMM (bfloat16 operands where
  the backend accumulates them exactly in float32, else float32), where every partial sum stays below 2**24 (all
  FARGAN layers: the widest, ``sig_net_skip_dense``, 688 inputs, has a bound of 1.1e7).
* **float layers** (``sig_net_cond_gain_dense``, ``sig_net_gain_dense_out``, ``cond_net_fdense1``) accumulate input
  by input as libopus' ``sgemv`` does, as a loop over the inputs (:func:`.nnet.linear_looped`): its cost per
  step does not grow with the batch (unrolled, the graph took 95 s to compile and ran no faster).
* **streams as a batch axis**: :func:`vocode` takes ``[S, T, 20]`` and runs one ``lax.scan`` over frames on
  ``[S, ...]`` arrays, so every layer is a matrix product instead of S matrix-vector products.

``tests/test_vocoder.py`` checks :func:`vocode` sample for sample against the reference's ``vocode`` for the
emulation presets.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from opus_dred.accel import _decode as fast
from opus_dred.refimpl import _fargan as fg
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl._nnet import Numerics

Params = fg.Params


def prepare(params: Params, num: Numerics, *, dot: str = "f32") -> Params:
    """FARGAN's parameters for :func:`vocode` under ``num`` (:func:`opus_dred.accel._decode.prepare`). ``dot``:
    the GEMM operands (:data:`opus_dred.accel._decode.DOTS`); float32 by default: on a CPU without AVX512-BF16
    bfloat16 operands ran 1.4x slower at FARGAN's shapes (256 streams, an AMD EPYC without AVX-512)."""
    return fast.prepare(params, num, dot=dot)


def recip(x, mode: str):
    """:func:`.nnet.recip`, the measured ``RCPPS`` table's lookup kept apart from the arithmetic around it (an
    optimisation barrier on the index and on the looked-up bits): the same bits, but XLA no longer fuses the
    gather into the activation, which then runs vectorised (measured: 47 -> 52x real time per core at 256
    streams). The computed tables and the exact reciprocal are element-wise already."""
    if mode not in nnet.RCPPS_TABLES or mode == "rcp11":
        return nnet.recip(x, mode)
    x32 = x.astype(jnp.float32)
    bits = jax.lax.bitcast_convert_type(x32, jnp.uint32)
    e = (bits >> 23).astype(jnp.int32) - 127
    idx = jax.lax.optimization_barrier(((bits >> 11) & 0xFFF).astype(jnp.int32))
    t = jax.lax.optimization_barrier(jnp.asarray(nnet.rcpps_table(mode))[idx])
    r = t.astype(jnp.int32) - (e << 23)
    return jax.lax.bitcast_convert_type(r.astype(jnp.uint32), jnp.float32).astype(x.dtype)


def _rational(x, n, d, num: Numerics):
    x2 = x * x
    top = nnet._mad(nnet._mad(n[2], x2, n[1], num.fma), x2, n[0], num.fma)
    den = nnet._mad(nnet._mad(d[2], x2, d[1], num.fma), x2, d[0], num.fma)
    return top * x, recip(den, num.reciprocal)


def _tanh_approx(x, num: Numerics):
    top, rden = _rational(x, nnet._TANH_N, nnet._TANH_D, num)
    return jnp.clip(top * rden, -1.0, 1.0)


def tanh(x, num: Numerics):
    """:func:`.nnet.tanh` with :func:`recip`."""
    return jnp.tanh(x) if num.activation == "exact" else _tanh_approx(x, num)


def sigmoid(x, num: Numerics):
    """:func:`.nnet.sigmoid` with :func:`recip`."""
    if num.activation == "exact":
        return jax.nn.sigmoid(x)
    if num.activation == "approx_c":
        return 0.5 + nnet._unfused(0.5 * _tanh_approx(0.5 * x, num))
    top, rden = _rational(x, nnet._SIG_N, nnet._SIG_D, num)
    return jnp.clip(nnet._mad(top, rden, 0.5, num.fma), 0.0, 1.0)


def dense(p, x, num: Numerics, activation: str = "tanh"):
    """:func:`.nnet.dense` with the fast products and activations."""
    y = _lin(p, x, num)
    return {"tanh": tanh, "sigmoid": sigmoid}[activation](y, num) if activation != "linear" else y


def gru(p_in, p_rec, state, x, num: Numerics):
    """:func:`.nnet.gru` (reset after the recurrent product) with the fast products and activations."""
    n = state.shape[-1]
    zrh = _lin(p_in, x, num)
    rec = _lin(p_rec, state, num)
    zr = sigmoid(zrh[..., :2 * n] + rec[..., :2 * n], num)
    z, r = zr[..., :n], zr[..., n:]
    if num.matmul == "int8":
        h = tanh(nnet._unfused(rec[..., 2 * n:] * r) + zrh[..., 2 * n:], num)
        return nnet._unfused(z * state) + nnet._unfused((1.0 - z) * h)
    h = tanh(zrh[..., 2 * n:] + rec[..., 2 * n:] * r, num)
    return z * state + (1.0 - z) * h


def glu(p, x, num: Numerics):
    """:func:`.nnet.glu` with the fast products and activations."""
    return x * sigmoid(_lin(p, x, num), num)


def conv1d(p, mem, x, num: Numerics):
    """:func:`.nnet.conv1d` (kernel 2) with the fast products and activations."""
    return tanh(_lin(p, jnp.concatenate([mem, x], axis=-1), num), num), x


def _lin(p, x, num):
    if num.matmul == "int8" and "weight_q" not in p:
        return nnet.linear_looped(p, x, num)
    return fast.linear(p, x, num)


def compute_cond(params: Params, conv_mem, features, period, num: Numerics):
    """:func:`opus_dred.refimpl._fargan.compute_cond` with the fast products."""
    emb = params["cond_net_pembed"]["weight"].astype(features.dtype)
    x = jnp.concatenate([features, emb[fg.pembed_row(period)]], axis=-1)
    h = nnet.dense(params["cond_net_fdense1"], x, num, linear=_lin)
    c, conv_mem = nnet.conv1d_dilated(params["cond_net_fconv1"], conv_mem, h, num, linear=_lin)
    return nnet.dense(params["cond_net_fdense2"], c, num, linear=_lin), conv_mem


def subframe(params: Params, state: dict, cond, period, num: Numerics):
    """:func:`opus_dred.refimpl._fargan.subframe` with the fast products."""
    dt = cond.dtype
    emulate = num.matmul == "int8"
    g = dense(params["sig_net_cond_gain_dense"], cond, num, "linear")[..., 0]
    gain = fg.exp_rounded(g).astype(dt) if emulate else jnp.exp(g)
    gain_1 = 1.0 / (jnp.float32(1e-5) + gain)
    buf = state["pitch_buf"]
    ext = jnp.concatenate([buf, state["cond_conv"][..., :fg.PRED_SIZE - 2]], axis=-1)
    past = jnp.take_along_axis(ext, fg._pitch_positions(period), axis=-1)
    pred = jnp.clip(gain_1[..., None] * past, -1.0, 1.0)
    prev = jnp.clip(gain_1[..., None] * buf[..., fg.PITCH_MAX_PERIOD - fg.SUBFRAME_SIZE:], -1.0, 1.0)
    mid = pred[..., 2:2 + fg.SUBFRAME_SIZE]
    y, fwc0 = conv1d(params["sig_net_fwc0_conv"], state["fwc0"], jnp.concatenate([cond, pred, prev], axis=-1),
                          num)
    g1 = glu(params["sig_net_fwc0_glu_gate"], y, num)
    gate = dense(params["sig_net_gain_dense_out"], g1, num, "sigmoid")

    def gated(k):
        return gate[..., k:k + 1] * mid

    s1 = gru(params["sig_net_gru1_input"], params["sig_net_gru1_recurrent"], state["gru1"],
                  jnp.concatenate([g1, gated(0), prev], axis=-1), num)
    g2 = glu(params["sig_net_gru1_glu_gate"], s1, num)
    s2 = gru(params["sig_net_gru2_input"], params["sig_net_gru2_recurrent"], state["gru2"],
                  jnp.concatenate([g2, gated(1), prev], axis=-1), num)
    g3 = glu(params["sig_net_gru2_glu_gate"], s2, num)
    s3 = gru(params["sig_net_gru3_input"], params["sig_net_gru3_recurrent"], state["gru3"],
                  jnp.concatenate([g3, gated(2), prev], axis=-1), num)
    g4 = glu(params["sig_net_gru3_glu_gate"], s3, num)
    skip = dense(params["sig_net_skip_dense"], jnp.concatenate([g2, g3, g4, g1, gated(3), prev], axis=-1), num)
    skip = glu(params["sig_net_skip_glu_gate"], skip, num)
    exc = dense(params["sig_net_sig_dense_out"], skip, num) * gain[..., None]
    if emulate:
        exc = nnet._unfused(exc)
    pcm, deemph = fg.deemphasis(exc, state["deemph"], num)
    new = dict(state, pitch_buf=jnp.concatenate([buf[..., fg.SUBFRAME_SIZE:], exc], axis=-1), fwc0=fwc0,
               gru1=s1, gru2=s2, gru3=s3, deemph=deemph)
    return new, pcm


def synthesize(params: Params, state: dict, features, num: Numerics):
    """One frame for every stream (:func:`opus_dred.refimpl._fargan.fargan_synthesize`)."""
    period = fg.pitch_period(features[..., fg.PITCH_FEATURE])
    cond, conv = compute_cond(params, state["cond_conv"], features, period, num)
    st = dict(state, cond_conv=conv)
    c = fg.cond_size(params)
    conds = jnp.stack([cond[..., k * c:(k + 1) * c] for k in range(fg.NB_SUBFRAMES)])

    def step(s, ck):
        return subframe(params, s, ck, s["last_period"], num)

    st, pcm = jax.lax.scan(step, st, conds)
    st["last_period"] = period
    return st, jnp.moveaxis(pcm, 0, -2).reshape(pcm.shape[1:-1] + (fg.FRAME_SIZE,))


def cont(params: Params, state: dict, pcm0, features0, num: Numerics) -> dict:
    """``fargan_cont`` for every stream (:func:`opus_dred.refimpl._fargan.fargan_cont`)."""
    periods = fg.pitch_period(features0[..., fg.PITCH_FEATURE])

    def cond_step(mem, frame):
        cond, mem = compute_cond(params, mem, frame[0], frame[1], num)
        return mem, cond

    conv, conds = jax.lax.scan(cond_step, state["cond_conv"],
                               (jnp.moveaxis(features0, -2, 0), jnp.moveaxis(periods, -1, 0)))
    x0 = fg.preemphasis(pcm0, num)
    half = fg.PITCH_MAX_PERIOD - fg.FRAME_SIZE
    st = dict(state, cond_conv=conv, last_period=periods[..., fg.CONT_VECTORS - 2],
              pitch_buf=jnp.concatenate([state["pitch_buf"][..., :half], x0[..., :fg.FRAME_SIZE]], axis=-1))
    c = fg.cond_size(params)
    for k in range(fg.NB_SUBFRAMES):
        st, _ = subframe(params, st, conds[-1][..., k * c:(k + 1) * c], st["last_period"], num)
        known = x0[..., fg.FRAME_SIZE + k * fg.SUBFRAME_SIZE:fg.FRAME_SIZE + (k + 1) * fg.SUBFRAME_SIZE]
        st = fg._overwrite_last(st, known)
    st["deemph"] = pcm0[..., -1]
    return st


@functools.partial(jax.jit, static_argnames=("num",))
def vocode(params: Params, features, pcm0, features0, num: Numerics):
    """Features ``[S, T, 20]`` -> ``[S, T * 160]`` float samples, each stream primed by ``fargan_cont`` on
    ``pcm0 [S, 320]`` and ``features0 [S, 5, 20]``: what :func:`opus_dred.refimpl._fargan.vocode` gives each
    stream. ``params`` from :func:`prepare` with the same ``num``."""
    x = jnp.asarray(features, jnp.float32)
    state = fg.init_fargan_state(params, x.shape[:1])
    state = cont(params, state, jnp.asarray(pcm0, jnp.float32), jnp.asarray(features0, jnp.float32), num)

    def step(s, f):
        return synthesize(params, s, f, num)

    _, pcm = jax.lax.scan(step, state, jnp.moveaxis(x, 1, 0))
    return jnp.moveaxis(pcm, 0, 1).reshape(x.shape[0], -1)
