"""The RDO-VAE decoder over many packets at once, computing the same numbers as :mod:`opus_dred.refimpl._rdovae`.

The decoder step is the reference's own (:func:`opus_dred.refimpl._rdovae.decode_step`, run on ``[B, ...]``
arrays); what this module changes is how an int8 layer's exact integer sums are computed, injected into that
step as its ``linear`` (:func:`linear`). ``tests/test_fast.py`` checks :func:`decode_batch` bit for bit against
``rdovae.decode_features`` of each packet alone, for every numerics preset of :mod:`opus_dred.refimpl._nnet`.

What changes (measured with ``opus-dred bench decode``, see ``docs/benchmarks.md``):

* **int8 products as float GEMMs.** libopus' int8 layers (``dnn/vec_avx.h:cgemv8x4``,
  ``sparse_cgemv8x4``) sum integer products of 8-bit inputs and int8 weights. The reference
  (:func:`.nnet.int_product`) does that with an int32 ``matmul``, which XLA's CPU backend runs as a plain
  loop. Here the same integers go through a float GEMM: every partial sum of ``q * w`` is an integer of
  magnitude at most ``max_q * max_i sum_j |w[j, i]|``; when that bound is below 2**24 each partial sum is
  exactly representable in float32, so a float32 accumulation gives *the* integer result, in any summation
  order. :func:`prepare` checks the bound per layer from the weights and keeps the int8 weights (and the
  int32 product) for a layer that fails it (none of the shipped layers does: the largest bound is 6.5e6).
* **bfloat16 operands, float32 accumulation.** The quantised inputs (0..255 with the ``su`` bias,
  -127..127 signed) and the int8 weights are integers of at most 8 significant bits, so bfloat16 holds
  them exactly, and the product of two of them (at most 16 bits) is exact in float32:
  ``jnp.dot(q_bf16, w_bf16, preferred_element_type=float32)`` therefore returns the same integers as the
  float32 GEMM, under the same bound, provided the backend really accumulates in float32.
  :func:`bf16_dot_exact` checks that once per backend on worst-case data; ``prepare(..., dot="auto")`` uses
  bfloat16 operands where it holds and the float32 GEMM (at ``Precision.HIGHEST``, so that accelerators do
  not drop to TF32/bf16) elsewhere. On XLA's CPU backend (a YNNPACK dot; AVX512-BF16 CPU) bfloat16 runs
  about 2x the float32 GEMM at the decoder's shapes (``docs/benchmarks.md``).
* **Many packets at once**: :func:`decode_batch` takes ``[B, state_dim]`` states and ``[B, T,
  latent_dim]`` latents (``T`` = the longest packet of the batch, shorter ones zero-padded; the
  decoder is causal in latent order, so rows ``< 4 * nb`` do not depend on the padding) and runs one
  ``lax.scan`` over latents on ``[B, ...]`` arrays: every layer is a real matrix product instead of
  ``B`` matrix-vector products.

Everything else (input quantisation, rational activations, the RCPPS emulation, the unfused products, the
GRU, GLU and convolution blocks) is :mod:`.nnet`'s own code, called unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from opus_dred.accel._bitstream import locate_dred_payloads
from opus_dred.accel._reader import pack_payloads, read_dred_payloads_jax
from opus_dred.bitstream._profiles import get_profile
from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl import _rdovae as rdovae
from opus_dred.refimpl._nnet import FLOAT, Numerics

#: float32 represents every integer of magnitude up to 2**24 exactly.
EXACT_F32_LIMIT = 1 << 24

#: operand types of the int8 layers' exact integer sums (:func:`prepare`'s ``dot``): ``"bf16"`` (bfloat16
#: operands, float32 accumulation; only where :func:`bf16_dot_exact` holds), ``"f32"`` (float32 GEMM at
#: HIGHEST precision), ``"auto"`` (``"bf16"`` where it is exact, else ``"f32"``)
DOTS = ("auto", "bf16", "f32")

_BF16_OK: dict = {}


def _dot_bf16(q, w):
    return jnp.dot(q.astype(jnp.bfloat16), w, preferred_element_type=jnp.float32)


def _dot_f32(q, w):
    return jnp.matmul(q.astype(jnp.float32), w, precision=jax.lax.Precision.HIGHEST)


def bf16_dot_exact(backend: str | None = None) -> bool:
    """Whether ``jnp.dot`` of bfloat16 operands with ``preferred_element_type=float32`` returns exact
    integer sums on ``backend`` (default: JAX's default backend), i.e. accumulates in float32.

    Probed once per backend on integer data: the largest operands (255 * 127 summed over K, sums up
    to 2**24 - 1, where any accumulator or output narrower than float32 rounds), alternating signs,
    and random values, at a few shapes (small and GEMM-sized, so that the kernels the decoder's
    layers get are the ones probed); compared with numpy's int64 product.
    """
    backend = backend or jax.default_backend()
    ok = _BF16_OK.get(backend)
    if ok is None:
        rng = np.random.default_rng(0)
        ok = True
        dev = jax.devices(backend)[0]
        f = jax.jit(_dot_bf16)
        for b, k, n in ((8, 96, 32), (1024, 608, 192), (1024, 1408, 32)):
            q = rng.integers(0, 256, (b, k))
            q[0] = 255  # all-maximal row: sums 255 * 127 * k' for the column below
            w = rng.integers(-128, 128, (k, n))
            kmax = (EXACT_F32_LIMIT - 1) // (255 * 127)
            w[:, 0] = 0
            w[:kmax, 0] = 127  # column 0: row 0 sums to 255 * 127 * kmax, just under 2**24
            w[:, 1] = np.where(np.arange(k) % 2 == 0, 127, -128)
            want = q @ w
            got = f(jax.device_put(jnp.asarray(q, jnp.bfloat16), dev),
                    jax.device_put(jnp.asarray(w, jnp.bfloat16), dev))
            if not np.array_equal(np.asarray(got).astype(np.int64), want):
                ok = False
                break
        _BF16_OK[backend] = ok
    return ok


def _gemm_ok(wq: np.ndarray, num: Numerics) -> bool:
    """Whether every partial sum of ``q @ wq`` stays exactly representable in float32."""
    max_q = 255 if num.bias == "su" else 128
    return int(np.abs(wq.astype(np.int64)).sum(axis=0).max(initial=0)) * max_q < EXACT_F32_LIMIT


def _operand_type(dot: str):
    """The GEMM operand type ``dot`` (one of :data:`DOTS`) names on this backend."""
    if dot not in DOTS:
        raise ValueError(f"dot must be one of {DOTS}, got {dot!r}")
    if dot == "f32":
        return jnp.float32
    if bf16_dot_exact():
        return jnp.bfloat16
    if dot == "bf16":
        raise ValueError(f"bfloat16 dots do not give exact integer sums on the {jax.default_backend()} backend")
    return jnp.float32


def prepare(params: rdovae.Params, num: Numerics = FLOAT, *, dot: str = "auto") -> rdovae.Params:
    """Parameters for :func:`decode_batch` under ``num`` (done once, in numpy).

    For the int8 emulation each quantised layer whose partial sums stay below 2**24 (:func:`_gemm_ok`) holds
    its ``weight_q`` in the GEMM operand type ``dot`` names (:data:`DOTS`; the same integers, exactly),
    where :func:`linear` finds it; a layer that fails the bound keeps int8 weights and the reference's int32
    product. Quantised layers drop the dequantised ``weight`` the int8 path never reads. Float numerics
    leave the parameters as they are. Every layer's input width stays its weight's first axis
    (:func:`.nnet.nb_inputs`).
    """
    if num.matmul != "int8":
        return {name: dict(p) for name, p in params.items()}
    wdt = None
    out: dict[str, dict[str, Any]] = {}
    for name, p in params.items():
        q = dict(p)
        if "weight_q" in p:
            wq = np.asarray(p["weight_q"])
            if _gemm_ok(wq, num):
                wdt = wdt or _operand_type(dot)
                q["weight_q"] = jnp.asarray(wq.astype(np.float32), wdt)
            q.pop("weight", None)
        out[name] = q
    return out


def linear(p: dict, x, num: Numerics):
    """:func:`.nnet.linear` with an int8 layer's integer sums as a float GEMM where :func:`prepare` gave it
    float weights (bfloat16: :func:`_dot_bf16`; float32: :func:`_dot_f32`); every other layer is the
    reference's own."""
    w = p.get("weight_q")
    if num.matmul == "int8" and w is not None and w.dtype != jnp.int8:
        return nnet.int8_linear(p, x, num, product=_dot_bf16 if w.dtype == jnp.bfloat16 else _dot_f32)
    return nnet.linear(p, x, num)


def decode_batch(fp: rdovae.Params, states, latents, num: Numerics = FLOAT):
    """Features of B packets: ``states`` [B, state_dim], ``latents`` [B, T, latent_dim] (newest first,
    zero-padded past each packet's ``nb_latents``) -> [B, 4 * T, 20] in ``fec_features`` order.

    The reference's :func:`~opus_dred.refimpl._rdovae.init_carry` and ``decode_step`` on the whole batch,
    with :func:`linear` injected, scanned over the latents. Row ``4 k + j`` of packet b equals
    ``rdovae.decode_features(params, states[b], latents[b, :nb])`` row ``4 k + j`` for every ``k < nb``;
    ``fp`` comes from :func:`prepare` with the same ``num``.
    """
    states = jnp.asarray(states, jnp.float32)
    latents = jnp.asarray(latents, jnp.float32)
    carry = rdovae.init_carry(fp, states, num, linear=linear)

    def step(c, z):
        return rdovae.decode_step(fp, c, z, num, linear=linear)

    _, outs = jax.lax.scan(step, carry, jnp.swapaxes(latents, 0, 1))
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


# ---------------------------------------------------------------------------------------------------
# Whole packets to features: batches on every core
# ---------------------------------------------------------------------------------------------------


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclasses.dataclass
class StreamDecode:
    """What :func:`decode_packets` gives, one entry per packet: ``features[i]`` ``[4 * nb, 20]`` in
    ``fec_features`` order (empty without DRED), ``nb_latents``, ``dred_offset`` (2.5 ms units) and
    ``found``; ``stage_s``: seconds spent in each stage (``locate``, ``entropy``, ``decoder``) summed
    over the workers (they overlap when ``workers > 1``); ``wall_s``: the whole call."""

    features: list
    nb_latents: np.ndarray
    dred_offset: np.ndarray
    found: np.ndarray
    stage_s: dict
    wall_s: float
    batch: int
    workers: int


_PREPARED: dict = {}
_PREPARED_LOCK = threading.Lock()


def _prepared(profile, num: Numerics) -> dict:
    key = (profile.name, profile.model_pack, num)
    with _PREPARED_LOCK:
        fp = _PREPARED.get(key)
        if fp is None:
            fp = _PREPARED[key] = prepare(rdovae.params_from_pack(load_pack(profile.model_pack)), num)
    return fp


def decode_packets(packets: Sequence[bytes], profile, num: Numerics = nnet.LIBOPUS_AVX2, *, batch: int = 1024,
                   workers: int | None = None, min_feature_frames: int = 104,
                   width: int | None = None) -> StreamDecode:
    """Features of every DRED payload in ``packets`` (Opus packets), as ``opus_dred_parse`` with processing
    leaves them, computed in batches of at most ``batch`` packets by ``workers`` threads at once (default:
    two per core; the batches are evened out to a multiple of ``workers``).

    Each batch goes through the three stages on one thread: :func:`opus_dred.accel._bitstream.
    locate_dred_payloads`, :func:`read_dred_payloads_jax` and :func:`decode_batch_jit` (over the batch's
    longest packet). Batches are independent, and XLA releases the interpreter while it computes, so with
    two or more workers one batch's Python lookup runs while another's XLA computations do, and each XLA
    computation keeps a core busy: on the 2-core machine measured here two at once give 1.45x the
    decoder's throughput and 2.7x the entropy decoder's of one computation at a time using both cores,
    and two workers per core beat one per core (docs/benchmarks.md). Every batch has the same number of
    rows (the last padded with empty payloads) and every payload buffer ``width`` bytes (default: the
    longest packet's, rounded up to 64), so the compiled shapes repeat. ``min_feature_frames`` bounds the
    latents read, as ``max_dred_samples`` does in libopus (``2 + 100 * max_dred_samples // sampling_rate``,
    at most ``4 * max_latents``). A packet that cannot be parsed raises the typed error of
    ``find_dred_extension``.
    """

    prof = get_profile(profile) if isinstance(profile, str) else profile
    fp = _prepared(prof, num)
    n = len(packets)
    workers = 2 * default_workers() if workers is None else max(1, int(workers))
    # as many batches as it takes at most ``batch`` packets each, rounded up to a multiple of the workers and
    # evened out, so that no worker idles while another finishes a last batch
    count = workers * -(-n // (workers * max(1, int(batch)))) if n else 1
    batch = max(1, -(-n // count))
    if width is None:
        w = max((len(p) for p in packets), default=0) + 1
        width = 64 * -(-w // 64)
    starts = list(range(0, n, batch))
    stage = {"locate": 0.0, "entropy": 0.0, "decoder": 0.0}
    lock = threading.Lock()

    def run(s: int):
        chunk = packets[s:s + batch]
        pad = batch - len(chunk)
        t0 = time.perf_counter()
        loc = locate_dred_payloads(chunk, prof)
        pays = loc.payload + [b""] * pad
        offs = np.concatenate([np.asarray(loc.dred_frame_offset, np.int32), np.zeros(pad, np.int32)])
        packed = pack_payloads(pays, width=width)
        t1 = time.perf_counter()
        jd = read_dred_payloads_jax(None, prof, min_feature_frames=min_feature_frames, dred_frame_offset=offs,
                                    packed=packed)
        nb = np.asarray(jd.nb_latents)[: len(chunk)]
        dred_off = np.asarray(jd.dred_offset)[: len(chunk)]
        t2 = time.perf_counter()
        t = max(1, int(nb.max(initial=0)))
        out = np.asarray(decode_batch_jit(fp, jd.state, jd.latents[:, :t], num=num))
        t3 = time.perf_counter()
        with lock:
            stage["locate"] += t1 - t0
            stage["entropy"] += t2 - t1
            stage["decoder"] += t3 - t2
        feats = [out[i, : 4 * int(nb[i])] if loc.found[i] else out[i, :0] for i in range(len(chunk))]
        nb = np.where(loc.found, nb, 0)
        return feats, nb, np.where(loc.found, dred_off, 0), np.asarray(loc.found)

    tw = time.perf_counter()
    if workers == 1 or len(starts) <= 1:
        parts = [run(s) for s in starts]
    else:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            parts = list(ex.map(run, starts))
    wall = time.perf_counter() - tw
    feats = [f for p in parts for f in p[0]]

    def cat(k, dt):
        return np.concatenate([p[k] for p in parts]).astype(dt) if parts else np.zeros(0, dt)

    return StreamDecode(features=feats, nb_latents=cat(1, np.int32), dred_offset=cat(2, np.int32),
                        found=cat(3, bool), stage_s=stage, wall_s=wall, batch=batch, workers=workers)
