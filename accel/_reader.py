"""Entropy decoding of many DRED payloads in one XLA computation.

The arithmetic of :func:`opus_dred.accel._bitstream.read_dred_payloads` (``celt/entdec.c``,
``celt/laplace.c:ec_laplace_decode_p0``, ``dnn/dred_decoder.c:dred_ec_decode``), written for XLA: uint32 range
state (every value of the 32-bit decoder fits, and products wrap as in C), the renormalisation as three masked
rounds (after any symbol ``1 <= rng``, so three byte shifts always lift it above 2**23), and each lane's Laplace
tables gathered once per chunk. The numpy reader stays the reference; ``tests/test_fast.py`` checks every field of
both on real and random payloads.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from opus_dred.accel._bitstream import BatchDred, dred_tables
from opus_dred.bitstream._arith import (
    QMAX_UNCODED,
    compute_quantizer,
    dequantize,
    extra_offset_from_code,
    q_feature,
    qmax_is_coded,
    qmax_nvals,
    qmax_of_symbol,
    requested_chunks,
)
from opus_dred.bitstream._profiles import get_profile

_BOT = np.uint32(1 << 23)
_TOPM = np.uint32((1 << 31) - 1)


def _rd_read_byte(buf, st, m):
    offs = st["offs"]
    ok = m & (offs < st["storage"])
    b = jnp.take_along_axis(buf, jnp.minimum(offs, buf.shape[1] - 1)[:, None], axis=1)[:, 0]
    st["offs"] = offs + ok.astype(jnp.int32)
    return jnp.where(ok, b, jnp.uint32(0))


def _rd_normalize(buf, st):
    for _ in range(3):
        m = st["rng"] <= _BOT
        st["nbits"] = st["nbits"] + jnp.where(m, 8, 0)
        st["rng"] = jnp.where(m, st["rng"] << 8, st["rng"])
        nxt = _rd_read_byte(buf, st, m)
        sym = ((st["rem"] << 8) | nxt) >> 1
        st["rem"] = jnp.where(m, nxt, st["rem"])
        val = ((st["val"] << 8) + (jnp.uint32(255) & ~sym)) & _TOPM
        st["val"] = jnp.where(m, val, st["val"])
    return st


def _rd_uint(buf, st, ft, m):
    """``ec_dec_uint`` for ``ft <= 256`` (one ``ec_decode`` + ``ec_dec_update``), masked."""
    ft = jnp.asarray(ft, jnp.uint32)
    ext = st["rng"] // ft
    s = st["val"] // jnp.maximum(ext, 1)
    fs = ft - jnp.minimum(s + 1, ft)
    st = _rd_update(buf, st, ext, fs, fs + 1, ft, m)
    return jnp.where(m, fs, jnp.uint32(0)).astype(jnp.int32)


def _rd_update(buf, st, ext, fl, fh, ft, m):
    s = ext * (ft - fh)
    val = st["val"] - s
    rng = jnp.where(fl > 0, ext * (fh - fl), st["rng"] - s)
    st["val"] = jnp.where(m, val, st["val"])
    st["rng"] = jnp.where(m, rng, st["rng"])
    return _rd_normalize(buf, st)


def _rd_icdf(buf, st, icdf, m):
    """``ec_dec_icdf(.., 15)`` with a table per lane (``icdf`` uint32 [B, K]), masked."""
    r = st["rng"] >> 15
    prods = r[:, None] * icdf
    ret = jnp.sum((st["val"][:, None] < prods).astype(jnp.int32), axis=1)
    s = jnp.take_along_axis(prods, ret[:, None], axis=1)[:, 0]
    t = jnp.where(ret == 0, st["rng"], jnp.take_along_axis(prods, jnp.maximum(ret - 1, 0)[:, None], axis=1)[:, 0])
    st["val"] = jnp.where(m, st["val"] - s, st["val"])
    st["rng"] = jnp.where(m, t - s, st["rng"])
    return _rd_normalize(buf, st), jnp.where(m, ret, 0)


def _rd_laplace(buf, st, sign, mag, m):
    st, s = _rd_icdf(buf, st, sign, m)
    cont = s != 0

    def cond(c):
        return jnp.any(c[2])

    def body(c):
        st, value, cont = c
        st, v = _rd_icdf(buf, st, mag, cont)
        return st, value + v, cont & (v == 7)

    st, value, _ = jax.lax.while_loop(cond, body, (st, cont.astype(jnp.int32), cont))
    return st, jnp.where(s == 2, -value, value)


def _rd_values(buf, st, sign, mag, skip, active):
    """One Laplace value per dimension: ``sign`` [B, dim, 3], ``mag`` [B, dim, 8], ``skip`` [B, dim]."""
    dim = sign.shape[1]

    def body(i, c):
        st, out = c
        m = active & ~skip[:, i]
        st, v = _rd_laplace(buf, st, sign[:, i], mag[:, i], m)
        return st, jax.lax.dynamic_update_slice_in_dim(out, v[:, None], i, axis=1)

    return jax.lax.fori_loop(0, dim, body, (st, jnp.zeros((buf.shape[0], dim), jnp.int32)))


def _tell(st):
    return st["nbits"] - (32 - jax.lax.clz(st["rng"]).astype(jnp.int32))


@functools.partial(jax.jit, static_argnames=("n_chunks", "has_q"))
def _read_jax(buf, storage, frame_off, tabs, dq_table, *, n_chunks: int, has_q: bool):
    n = buf.shape[0]
    st = {"storage": storage, "offs": jnp.zeros(n, jnp.int32), "nbits": jnp.full(n, 9, jnp.int32),
          "rng": jnp.full(n, 128, jnp.uint32), "val": jnp.zeros(n, jnp.uint32), "rem": jnp.zeros(n, jnp.uint32)}
    all_ = jnp.ones(n, bool)
    st["rem"] = _rd_read_byte(buf, st, all_)
    st["val"] = jnp.uint32(127) - (st["rem"] >> 1)
    st = _rd_normalize(buf, st)
    q0 = _rd_uint(buf, st, 16, all_)
    dQ = _rd_uint(buf, st, 8, all_)
    extended = _rd_uint(buf, st, 2, all_) != 0
    extra_offset = extra_offset_from_code(_rd_uint(buf, st, 256, extended))
    offset = _rd_uint(buf, st, 32, all_)
    m = qmax_is_coded(q0, dQ)
    nvals = jnp.where(m, qmax_nvals(q0), 1)
    ft = (2 * nvals).astype(jnp.uint32)
    ext = st["rng"] // ft
    s = (st["val"] // jnp.maximum(ext, 1))
    s = (ft - jnp.minimum(s + 1, ft)).astype(jnp.int32)
    hi = m & (s >= nvals)
    qmax = jnp.where(hi, qmax_of_symbol(q0, s), QMAX_UNCODED)
    st = _rd_update(buf, st, ext, jnp.where(hi, s, 0).astype(jnp.uint32),
                    jnp.where(hi, s + 1, nvals).astype(jnp.uint32), ft, m)
    st, state_q = _rd_values(buf, st, tabs["state_sign"][q0], tabs["state_mag"][q0], tabs["state_skip"][q0], all_)
    state = dequantize(state_q, tabs["state_div"][q0])

    max_lat, dim = max(1, n_chunks), tabs["latent_skip"].shape[1]  # at least one row, even for 0 chunks
    num_bits = 8 * storage

    def more(st, active):
        return active & (num_bits - _tell(st) > 7)

    def cond(c):
        k, st, active = c[0], c[1], c[2]
        return (k < n_chunks) & jnp.any(more(st, active))

    def chunk(c):  # dred_ec_decode's chunk loop; stops when no lane has more than 7 bits left
        k, st, active, lq, ql_all, nb = c
        active = more(st, active)
        ql = jnp.where(active, compute_quantizer(q0, dQ, qmax, k, dq_table), 0)
        st, v = _rd_values(buf, st, tabs["latent_sign"][ql], tabs["latent_mag"][ql], tabs["latent_skip"][ql], active)
        lq = jax.lax.dynamic_update_slice(lq, v[:, None, :], (0, k, 0))
        ql_all = jax.lax.dynamic_update_slice_in_dim(ql_all, ql[:, None], k, axis=1)
        return k + 1, st, active, lq, ql_all, nb + active.astype(jnp.int32)

    init = (jnp.int32(0), st, all_, jnp.zeros((n, max_lat, dim), jnp.int32), jnp.zeros((n, max_lat), jnp.int32),
            jnp.zeros(n, jnp.int32))
    _, st, _, lq, qls, nb = jax.lax.while_loop(cond, chunk, init)
    valid = jnp.arange(max_lat)[None, :] < nb[:, None]
    lat = dequantize(lq, tabs["latent_div"][qls])
    if has_q:
        lat = jnp.concatenate([lat, q_feature(qls)[..., None]], axis=-1)
    lat = jnp.where(valid[..., None], lat, 0.0)
    return {"q0": q0, "dQ": dQ, "qmax": qmax, "extended_offset": extended, "extra_offset": extra_offset,
            "offset": offset, "dred_frame_offset": frame_off, "state_q": state_q, "latents_q": lq, "q_levels": qls,
            "nb_latents": nb, "state": state, "latents": lat, "num_bytes": storage, "end_tell": _tell(st)}


_JTABS: dict = {}


def _jax_tables(prof):
    key = (prof.name, prof.model_pack)
    t = _JTABS.get(key)
    if t is None:
        d = dred_tables(prof)
        t = {"state_sign": jnp.asarray(d.state_sign, jnp.uint32), "state_mag": jnp.asarray(d.state_mag, jnp.uint32),
             "state_skip": jnp.asarray(d.state_skip), "state_div": jnp.asarray(d.state_div),
             "latent_sign": jnp.asarray(d.latent_sign, jnp.uint32),
             "latent_mag": jnp.asarray(d.latent_mag, jnp.uint32),
             "latent_skip": jnp.asarray(d.latent_skip), "latent_div": jnp.asarray(d.latent_div)}
        t = _JTABS[key] = (t, jnp.asarray(np.asarray(prof.dq_table), jnp.int32))
    return t


def pack_payloads(payloads, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Payload bytes as one zero-padded uint32 matrix ``[N, width]`` (``width`` rounded up to a multiple
    of 64 by default, so that few shapes get compiled) and their lengths ``[N]`` int32."""
    lens = np.fromiter((len(p) for p in payloads), np.int32, len(payloads))
    w = int(lens.max(initial=0)) + 1
    width = max(w, width or 0, 64 * -(-w // 64))
    flat = np.frombuffer(b"".join(payloads), np.uint8)
    rows = np.repeat(np.arange(len(payloads)), lens)
    starts = np.cumsum(lens) - lens
    cols = np.arange(flat.size) - np.repeat(starts, lens)
    buf = np.zeros((len(payloads), width), np.uint32)
    buf[rows, cols] = flat
    return buf, lens


def read_dred_payloads_jax(payloads, profile, *, min_feature_frames: int = 104, dred_frame_offset=0,
                           packed=None) -> BatchDred:
    """:func:`opus_dred.accel._bitstream.read_dred_payloads` as one jitted XLA computation.

    Returns a :class:`~opus_dred.accel._bitstream.BatchDred` of JAX arrays, every value equal to the numpy
    reader's; the latent axis has :func:`~opus_dred.bitstream._arith.requested_chunks` rows (at least one)
    instead of ``max_latents``. ``packed``: ``pack_payloads(payloads)`` when already done.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    tabs, dq_table = _jax_tables(prof)
    buf, lens = packed if packed is not None else pack_payloads(payloads)
    n_chunks = requested_chunks(int(min_feature_frames), prof.max_latents)
    fo = np.broadcast_to(np.asarray(dred_frame_offset, np.int32), lens.shape)
    out = _read_jax(buf, lens, fo, tabs, dq_table, n_chunks=n_chunks, has_q=bool(prof.has_q_feature))
    return BatchDred(profile=prof.name, **out)


