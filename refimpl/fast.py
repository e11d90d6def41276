"""A faster formulation of the RDO-VAE decoder that computes the same numbers as :mod:`.rdovae`.

:mod:`opus_dred.refimpl.rdovae` stays the readable reference; this module reorganises the work for
throughput over many packets, and ``tests/test_fast.py`` checks it bit for bit against
``rdovae.decode_features`` for the :data:`~.nnet.LIBOPUS_AVX2` and :data:`~.nnet.FLOAT` presets.

What changes (measured with ``opus-dred bench decode``, see ``docs/benchmarks.md``):

* **int8 products as float32 GEMMs.** libopus' int8 layers (``dnn/vec_avx.h:cgemv8x4``,
  ``sparse_cgemv8x4``) sum integer products of 8-bit inputs and int8 weights. The emulation in
  :func:`.nnet.linear` does that with an int32 ``matmul``, which XLA's CPU backend runs as a plain
  loop. Here the same integers go through a float32 GEMM: every partial sum of ``q * w`` is an
  integer of magnitude at most ``max_q * max_i sum_j |w[j, i]|``; when that bound is below 2**24 each
  partial sum is exactly representable, so the float32 result *is* the integer result, in any
  summation order. :func:`prepare` checks the bound per layer from the weights and keeps the int32
  product for a layer that fails it (none of the shipped layers does: the largest bound is 6.5e6).
  The GEMM runs at ``Precision.HIGHEST`` so that accelerators do not drop to TF32/bf16.
* **Many packets at once**: :func:`decode_batch` takes ``[B, state_dim]`` states and ``[B, T,
  latent_dim]`` latents (``T`` = the longest packet of the batch, shorter ones zero-padded; the
  decoder is causal in latent order, so rows ``< 4 * nb`` do not depend on the padding) and runs one
  ``lax.scan`` over latents on ``[B, ...]`` arrays: every layer is a real matrix product instead of
  ``B`` matrix-vector products.

Everything else (input quantisation, rational activations, the RCPPS table, the unfused products)
is :mod:`.nnet`'s own code, called unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

import jax
import jax.numpy as jnp

from . import nnet, rdovae
from .nnet import FLOAT, Numerics

__all__ = ["EXACT_F32_LIMIT", "prepare", "decode_batch", "decode_batch_jit", "pad_latents"]

#: float32 represents every integer of magnitude up to 2**24 exactly.
EXACT_F32_LIMIT = 1 << 24


def _gemm_ok(wq: np.ndarray, num: Numerics) -> bool:
    """Whether every partial sum of ``q @ wq`` stays exactly representable in float32."""
    max_q = 255 if num.bias == "su" else 128
    return int(np.abs(wq.astype(np.int64)).sum(axis=0).max(initial=0)) * max_q < EXACT_F32_LIMIT


def prepare(params: rdovae.Params, num: Numerics = FLOAT) -> dict:
    """Parameters rearranged for :func:`decode_batch` under ``num`` (done once, in numpy).

    For the int8 emulation each quantised layer gets ``weight_f`` (its int8 weights as float32) when
    the exactness bound holds, and keeps ``weight_q`` otherwise.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, p in params.items():
        q = dict(p)
        if num.matmul == "int8" and "weight_q" in p:
            wq = np.asarray(p["weight_q"])
            if _gemm_ok(wq, num):
                q["weight_f"] = jnp.asarray(wq.astype(np.float32))
                del q["weight_q"]
            q.pop("weight", None)
        out[name] = q
    return out


def _linear(p: dict, x, num: Numerics):
    if num.matmul == "int8" and "weight_f" in p:
        qi = nnet.quantize_input(x, num)
        acc = jnp.matmul(qi.astype(jnp.float32), p["weight_f"], precision=jax.lax.Precision.HIGHEST)
        bias = p["subias"] if num.bias == "su" else p["bias"]
        return nnet._unfused(acc.astype(x.dtype) * p["scale"].astype(x.dtype)) + bias.astype(x.dtype)
    return nnet.linear(p, x, num)


def _dense(p, x, num, activation="tanh"):
    y = _linear(p, x, num)
    if activation == "tanh":
        return nnet.tanh(y, num)
    if activation == "linear":
        return y
    raise ValueError(activation)


def _gru(p_in, p_rec, state, x, num):
    # nnet.gru with the fast linear (same element-wise arithmetic)
    n = state.shape[-1]
    zrh = _linear(p_in, x, num)
    rec = _linear(p_rec, state, num)
    zr = nnet.sigmoid(zrh[..., :2 * n] + rec[..., :2 * n], num)
    z, r = zr[..., :n], zr[..., n:]
    if num.matmul == "int8":
        h = nnet.tanh(nnet._unfused(rec[..., 2 * n:] * r) + zrh[..., 2 * n:], num)
        return nnet._unfused(z * state) + nnet._unfused((1.0 - z) * h)
    h = nnet.tanh(zrh[..., 2 * n:] + rec[..., 2 * n:] * r, num)
    return z * state + (1.0 - z) * h


def _sizes(fp: dict) -> tuple[list[int], list[int]]:
    grus = [int(fp[f"dec_gru{b}_recurrent"]["bias"].shape[0]) // 3 for b in range(1, rdovae.NB_BLOCKS + 1)]
    convs = []
    for b in range(1, rdovae.NB_BLOCKS + 1):
        p = fp[f"dec_conv{b}"]
        w = p.get("weight_f", p.get("weight_q", p.get("weight")))
        convs.append(int(w.shape[0]) // 2)
    return grus, convs


def decode_batch(fp: dict, states, latents, num: Numerics = FLOAT):
    """Features of B packets: ``states`` [B, state_dim], ``latents`` [B, T, latent_dim] (newest first,
    zero-padded past each packet's ``nb_latents``) -> [B, 4 * T, 20] in ``fec_features`` order.

    Row ``4 k + j`` of packet b equals ``rdovae.decode_features(params, states[b], latents[b, :nb])``
    row ``4 k + j`` for every ``k < nb``; ``fp`` comes from :func:`prepare` with the same ``num``.
    """
    states = jnp.asarray(states, jnp.float32)
    latents = jnp.asarray(latents, jnp.float32)
    grus_n, convs_n = _sizes(fp)
    hidden = _dense(fp["dec_hidden_init"], states, num)
    g = _dense(fp["dec_gru_init"], hidden, num)
    grus, off = [], 0
    for n in grus_n:
        grus.append(g[:, off:off + n])
        off += n
    convs = [jnp.zeros((states.shape[0], m), jnp.float32) for m in convs_n]
    has_conv_dense = "dec_conv_dense1" in fp

    def step(carry, z):
        grus, convs = carry
        buf = _dense(fp["dec_dense1"], z, num)
        new_g, new_c = [], []
        for b in range(rdovae.NB_BLOCKS):
            s = _gru(fp[f"dec_gru{b + 1}_input"], fp[f"dec_gru{b + 1}_recurrent"], grus[b], buf, num)
            new_g.append(s)
            glu = s * nnet.sigmoid(_linear(fp[f"dec_glu{b + 1}"], s, num), num)
            buf = jnp.concatenate([buf, glu], axis=-1)
            conv_in = _dense(fp[f"dec_conv_dense{b + 1}"], buf, num) if has_conv_dense else buf
            y = _dense(fp[f"dec_conv{b + 1}"], jnp.concatenate([convs[b], conv_in], axis=-1), num)
            new_c.append(conv_in)
            buf = jnp.concatenate([buf, y], axis=-1)
        out = _dense(fp["dec_output"], buf, num, activation="linear")
        return (tuple(new_g), tuple(new_c)), out

    _, outs = jax.lax.scan(step, (tuple(grus), tuple(convs)), jnp.swapaxes(latents, 0, 1))
    outs = jnp.swapaxes(outs, 0, 1)  # [B, T, 80]
    return outs.reshape(outs.shape[0], -1, rdovae.NUM_FEATURES)


#: ``jax.jit(decode_batch)`` with ``num`` static.
decode_batch_jit = jax.jit(decode_batch, static_argnames=("num",))


def pad_latents(latents_list, width: int, length: int | None = None) -> np.ndarray:
    """Stack per-packet ``[nb, width]`` latents into ``[B, T, width]`` (zero rows past each ``nb``)."""
    t = max([len(z) for z in latents_list] + [1]) if length is None else length
    out = np.zeros((len(latents_list), t, width), np.float32)
    for i, z in enumerate(latents_list):
        out[i, : len(z)] = z
    return out
