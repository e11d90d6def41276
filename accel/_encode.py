"""The DRED encoder half over many streams at once, computing the reference's numbers in throughput order.

:func:`encode_streams` takes ``B`` streams of PCM and returns every Opus frame's DRED payload, the bytes
:class:`~opus_dred.refimpl._dred_encoder.DredEncoder` (libopus' ``dred_compute_latents`` then
``dred_encode_silk_frame``) writes for each stream alone. The stages, each over the whole batch:

1. the 16 kHz conversion: the reference's :class:`~opus_dred.refimpl._features.Resampler` over each stream at
   once (the filter's memory carries across the Opus frames, so one call equals one per frame);
2. the feature frames: :class:`opus_dred.accel._features.BlockFeatureExtractor`, a block of frames of every
   stream per XLA computation, bit for bit the reference extractor's;
3. the RDO-VAE encoder: the reference's :func:`~opus_dred.refimpl._rdovae_enc.encode_steps` scanned over a
   block of steps, with :func:`opus_dred.accel._decode.linear` (the int8 layers' exact integer sums as float
   GEMMs) injected;
4. the quantizer: the reference's :func:`~opus_dred.refimpl._dred_encoder.quantize` on exactly the rows the
   payloads carry (one jitted call for every frame of every stream);
5. the range coding: :class:`LockstepEncoder`, the range encoder of :mod:`opus_dred.bitstream._rangecoder` with
   every encoder's state as numpy arrays, one Laplace value per encoder per step, and
   :func:`code_payloads`, ``dred_encode_silk_frame``'s budget loop (``ec_bak`` rollback) per encoder.

The offsets that tie the buffers to each Opus frame depend on sample counts alone, so every stream (all of
one length) shares them (:func:`opus_dred.refimpl._encode.frame_offsets`), and with every frame active
(no activity memory) every stream shares the plan of each frame
(:func:`~opus_dred.bitstream._dred_encode.plan_dred_frame`). ``workers`` threads share the streams (XLA and
numpy's large operations release the interpreter).

Tested equal to the reference and to libopus in ``tests/test_accel_encode.py``; timed by
``opus-dred bench encode``.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from opus_dred.accel import _decode as fast
from opus_dred.accel._features import BlockFeatureExtractor
from opus_dred.bitstream._arith import QMAX_UNCODED, compute_quantizer, qmax_is_coded, qmax_nvals, qmax_symbol
from opus_dred.bitstream._dred import CodingTables
from opus_dred.bitstream._dred_encode import DredSettingsError, check_settings, plan_dred_frame
from opus_dred.bitstream._errors import DredPayloadError, RangeCoderError
from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.bitstream._rangecoder import EC_CODE_BITS, EC_CODE_BOT, EC_CODE_SHIFT, EC_CODE_TOP, EC_SYM_MAX
from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _features as ref_features
from opus_dred.refimpl import _rdovae_enc as rdovae_enc
from opus_dred.refimpl._dred_encoder import RATES, quantize
from opus_dred.refimpl._encode import DRED_FRAME_SIZE, DRED_SILK_ENCODER_DELAY, frame_offsets
from opus_dred.refimpl._nnet import Numerics

_I64 = np.int64
_MASK31 = EC_CODE_TOP - 1


def _bit_length(x: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of non-negative int64 values below 2**53 (exact through float64)."""
    return np.frexp(x.astype(np.float64))[1].astype(_I64)


# ---------------------------------------------------------------------------------------------------------------
# the range encoder, lockstep over N encoders


class LockstepEncoder:
    """``N`` range encoders (:class:`~opus_dred.bitstream._rangecoder.RangeEncoder`, ``celt/entenc.c``) whose
    fields are arrays: ``rng``, ``val``, ``rem``, ``ext``, ``offs``, ``nbits_total``, ``error``, ``storage``
    (per encoder) and ``buf [N, size]``. Every operation takes a boolean ``mask`` of the encoders it applies
    to and gives each of them exactly what the scalar encoder's operation gives. Raw bits (``ec_enc_bits``)
    are not provided: a DRED payload has none (its largest ``ec_enc_uint`` total is 256)."""

    FIELDS = ("rng", "val", "rem", "ext", "offs", "nbits_total", "error")

    def __init__(self, n: int, size) -> None:
        self.n = int(n)
        self.storage = np.broadcast_to(np.asarray(size, _I64), (self.n,)).copy()
        if (self.storage < 0).any():
            raise RangeCoderError(f"encoder size {int(self.storage.min())} is negative")
        self.buf = np.zeros((self.n, int(self.storage.max(initial=0)) + 1), np.uint8)
        self.rng = np.full(self.n, EC_CODE_TOP, _I64)
        self.val = np.zeros(self.n, _I64)
        self.rem = np.full(self.n, -1, _I64)
        self.ext = np.zeros(self.n, _I64)
        self.offs = np.zeros(self.n, _I64)
        self.nbits_total = np.full(self.n, EC_CODE_BITS + 1, _I64)
        self.error = np.zeros(self.n, _I64)

    # -- output ----------------------------------------------------------------------------------
    def _write(self, idx: np.ndarray, value: np.ndarray) -> None:
        """``ec_write_byte`` for the encoders ``idx`` (distinct): the byte at ``offs`` if it fits, else
        ``error = -1``."""
        ok = self.offs[idx] < self.storage[idx]
        i = idx[ok]
        if i.size:
            self.buf[i, self.offs[i]] = (value[ok] & 0xFF).astype(np.uint8)
            self.offs[i] += 1
        self.error[idx[~ok]] = -1

    def _carry_out(self, c: np.ndarray, idx: np.ndarray) -> None:
        """``ec_enc_carry_out(c)`` for the encoders ``idx`` (distinct), ``c`` theirs (RFC 6716 §5.1.1: 0xFF bytes
        are held back in ``ext``)."""
        emit = c != EC_SYM_MAX
        e, ce = idx[emit], c[emit]
        if e.size:
            carry = ce >> 8
            rem = self.rem[e]
            held = rem >= 0
            self._write(e[held], rem[held] + carry[held])
            run = self.ext[e] > 0
            if run.any():
                r, sym = e[run], (EC_SYM_MAX + carry[run]) & EC_SYM_MAX
                while r.size:
                    self._write(r, sym)
                    self.ext[r] -= 1
                    more = self.ext[r] > 0
                    r, sym = r[more], sym[more]
            self.rem[e] = ce & EC_SYM_MAX
        self.ext[idx[~emit]] += 1

    def _normalize(self, mask: np.ndarray) -> None:
        idx = np.nonzero(mask & (self.rng <= EC_CODE_BOT))[0]
        while idx.size:
            self._carry_out(self.val[idx] >> EC_CODE_SHIFT, idx)
            self.val[idx] = (self.val[idx] << 8) & _MASK31
            self.rng[idx] <<= 8
            self.nbits_total[idx] += 8
            idx = idx[self.rng[idx] <= EC_CODE_BOT]

    # -- symbols ---------------------------------------------------------------------------------
    def encode(self, fl, fh, ft, mask: np.ndarray) -> None:
        """``ec_encode(fl, fh, ft)`` where ``mask`` (arrays or scalars; ``ft`` 1..65536, ``fl < fh <= ft``)."""
        fl, fh, ft = (np.broadcast_to(np.asarray(v, _I64), (self.n,)) for v in (fl, fh, ft))
        if mask.any():
            bad = mask & ~((ft >= 1) & (ft <= 1 << 16) & (fl >= 0) & (fl < fh) & (fh <= ft))
            if bad.any():
                i = int(np.nonzero(bad)[0][0])
                raise RangeCoderError(f"encoder {i}: encode needs 0 <= fl < fh <= ft <= 65536, got fl={int(fl[i])} "
                                      f"fh={int(fh[i])} ft={int(ft[i])}")
        r = self.rng // np.where(mask, ft, 1)
        self._update(r, fl > 0, r * (ft - fl), r * (fh - fl), r * (ft - fh), mask)

    def icdf15(self, hi: np.ndarray, lo: np.ndarray, first: np.ndarray, mask: np.ndarray) -> None:
        """``ec_enc_icdf(s, icdf, 15)`` where ``mask``, given ``hi = icdf[s - 1]`` (unused when ``first``,
        i.e. ``s == 0``) and ``lo = icdf[s]``: ``r = rng >> 15``, then ``val += rng - r hi``,
        ``rng = r (hi - lo)``, or for ``s == 0`` ``rng -= r lo``. A symbol of zero probability raises
        :class:`RangeCoderError`, as the scalar encoder does."""
        r = self.rng >> 15
        self._update(r, ~first, r * hi, r * (hi - lo), r * lo, mask)
        if (mask & (self.rng == 0)).any():
            i = int(np.nonzero(mask & (self.rng == 0))[0][0])
            raise RangeCoderError(f"encoder {i}: a symbol has zero probability (icdf {int(hi[i])}, {int(lo[i])})")

    def _update(self, r, later, top, width, low, mask) -> None:
        """``val += rng - top; rng = width`` (``later``) or ``rng -= low``, where ``mask``; then normalise."""
        a = mask & later
        self.val = np.where(a, self.val + self.rng - top, self.val)
        self.rng = np.where(a, width, np.where(mask, self.rng - low, self.rng))
        self._normalize(mask)

    def laplace_p0(self, value: np.ndarray, p0: np.ndarray, decay: np.ndarray, mask: np.ndarray) -> None:
        """``ec_laplace_encode_p0(value, p0, decay)`` (``celt/laplace.c``) where ``mask``: the sign symbol
        (``{0, +, -}``, ``P(0) = p0 / 32768``), then the magnitude minus one in symbols of at most 7 of the
        ``decay`` table (:func:`~opus_dred.bitstream._rangecoder.laplace_p0_icdfs`), each 7 saying another
        follows. ``p0`` and ``decay``: one value for all encoders, or one per encoder."""
        value = np.asarray(value, _I64)
        s0 = 32768 - np.asarray(p0, _I64)
        half = s0 >> 1
        pos = value > 0
        neg = value < 0
        self.icdf15(np.where(pos, s0, half), np.where(pos, half, np.where(neg, 0, s0)), ~(pos | neg), mask)
        left = np.where(mask, np.abs(value) - 1, -1)
        if not (left >= 0).any():
            return
        if np.ndim(decay) == 0:  # one table for every encoder (a position of the payload): index it
            mag = np.array(_mag_row(int(decay)), _I64)
            top = np.concatenate([[32768], mag[:-1]])  # top[s] = icdf[s - 1]

            def entries(sym):
                return top[sym], mag[sym]
        else:
            mags = _laplace_mag(np.asarray(decay, _I64))  # [N, 8]
            tops = np.concatenate([np.full((self.n, 1), 32768, _I64), mags[:, :-1]], axis=1)
            rows = np.arange(self.n)

            def entries(sym):
                return tops[rows, sym], mags[rows, sym]
        while True:
            m = left >= 0
            if not m.any():
                return
            sym = np.minimum(np.maximum(left, 0), 7)
            hi, lo = entries(sym)
            self.icdf15(hi, lo, sym == 0, m)
            left = np.where(m, left - 7, left)

    # -- position and state ------------------------------------------------------------------------
    def tell(self) -> np.ndarray:
        """``ec_tell``: bits used so far, rounded up, per encoder."""
        return self.nbits_total - _bit_length(self.rng)

    def snapshot(self) -> dict:
        """The fields (``ec_bak = *enc``); the buffer is shared, as libopus' copied struct shares its buffer."""
        return {k: getattr(self, k).copy() for k in self.FIELDS}

    def restore(self, saved: dict, mask: np.ndarray) -> None:
        """Fields back to ``saved`` where ``mask``."""
        for k in self.FIELDS:
            setattr(self, k, np.where(mask, saved[k], getattr(self, k)))

    def update_snapshot(self, saved: dict, mask: np.ndarray) -> None:
        """``saved`` takes the current fields where ``mask``."""
        for k in self.FIELDS:
            saved[k] = np.where(mask, getattr(self, k), saved[k])

    def shrink(self, size: np.ndarray, mask: np.ndarray) -> None:
        """``ec_enc_shrink(size)`` where ``mask`` (no raw bits to move)."""
        size = np.asarray(size, _I64)
        bad = mask & ~((self.offs <= size) & (size <= self.storage))
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            raise RangeCoderError(f"encoder {i}: cannot shrink a {int(self.storage[i])}-byte encoder holding "
                                  f"{int(self.offs[i])} bytes to {int(size[i])}")
        self.storage = np.where(mask, size, self.storage)

    def done(self, mask: np.ndarray) -> list[bytes | None]:
        """``ec_enc_done`` where ``mask``: each such encoder's whole ``storage``-byte buffer (``None`` elsewhere),
        as :meth:`~opus_dred.bitstream._rangecoder.RangeEncoder.done` returns it."""
        lg = np.where(mask, EC_CODE_BITS - _bit_length(self.rng), 0)
        msk = _MASK31 >> lg
        end = (self.val + msk) & ~msk
        wide = mask & ((end | msk) >= self.val + self.rng)
        lg = np.where(wide, lg + 1, lg)
        msk = np.where(wide, msk >> 1, msk)
        end = np.where(wide, (self.val + msk) & ~msk, end)
        idx = np.nonzero(mask & (lg > 0))[0]
        while idx.size:
            self._carry_out(end[idx] >> EC_CODE_SHIFT, idx)
            end[idx] = (end[idx] << 8) & _MASK31
            lg[idx] -= 8
            idx = idx[lg[idx] > 0]
        idx = np.nonzero(mask & ((self.rem >= 0) | (self.ext > 0)))[0]
        self._carry_out(np.zeros(idx.size, _I64), idx)
        cols = np.arange(self.buf.shape[1])
        clear = (mask & (self.error == 0))[:, None] & (cols >= self.offs[:, None]) & (cols < self.storage[:, None])
        self.buf[clear] = 0
        out: list[bytes | None] = [None] * self.n
        for i in np.nonzero(mask)[0]:
            out[i] = self.buf[i, :self.storage[i]].tobytes()
        return out


@functools.lru_cache(maxsize=4096)
def _mag_row(decay: int) -> tuple[int, ...]:
    """The eight-entry magnitude ICDF of ``ec_laplace_encode_p0`` for one ``decay``."""
    mag = [max(7, decay)]
    for i in range(1, 7):
        mag.append(max(7 - i, (mag[-1] * decay) >> 15))
    return tuple(mag + [0])


def _laplace_mag(decay: np.ndarray) -> np.ndarray:
    uniq, inv = np.unique(decay, return_inverse=True)
    table = np.array([_mag_row(int(d)) for d in uniq], _I64).reshape(len(uniq), 8)
    return table[inv.reshape(-1)]


# ---------------------------------------------------------------------------------------------------------------
# dred_encode_silk_frame over N payloads


@dataclass(frozen=True)
class PayloadPlan:
    """What :func:`code_payloads` codes for ``N`` payloads: the header fields (``q0``, ``dq``, ``qmax`` scalars;
    ``total_offset [N]``), ``extra_dred_offset [N]`` (leading silence skipped), the candidate chunks' count
    ``chunks [N]``, their quantizer ``levels [C]`` and voice activity ``active [N, C]`` (``C`` the most chunks),
    ``max_bytes``: the budget."""

    q0: int
    dq: int
    qmax: int
    total_offset: np.ndarray
    extra_dred_offset: np.ndarray
    chunks: np.ndarray
    levels: np.ndarray
    active: np.ndarray
    max_bytes: int


def _coding_arrays(prof: Profile, level: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(coded, p0 << 7, r << 7)`` per position of ``kind`` (``"state"`` or ``"latent"``) at ``level``."""
    params = getattr(CodingTables.of(prof), kind)[level]
    coded = np.array([p is not None for p in params])
    p0 = np.array([p[0] if p is not None else 0 for p in params], _I64)
    r = np.array([p[1] if p is not None else 0 for p in params], _I64)
    return coded, p0, r


def _code_values(enc: LockstepEncoder, values: np.ndarray, coded: np.ndarray, p0: np.ndarray, r: np.ndarray,
                 mask: np.ndarray, what: str, prof: Profile) -> None:
    """``encode_values`` (``bitstream._dred``) for one vector per encoder, ``values [N, dim]``, where ``mask``."""
    for j in range(values.shape[1]):
        v = values[:, j]
        if not coded[j]:
            bad = mask & (v != 0)
            if bad.any():
                i = int(np.nonzero(bad)[0][0])
                raise DredPayloadError(f"payload {i}: {what}[{j}] = {int(v[i])}, but the statistics give that "
                                       f"position zero probability", rule="dred: write", profile=prof.name)
            continue
        enc.laplace_p0(v, int(p0[j]), int(r[j]), mask)


def code_payloads(profile, plan: PayloadPlan, state_q: np.ndarray, latents_q: np.ndarray) -> list[bytes]:
    """:func:`~opus_dred.bitstream._dred_encode.code_dred_frame` for ``N`` payloads in lockstep: the same bytes.

    ``state_q [N, state_dim]``: each initial state quantized at ``q0``; ``latents_q [N, C, latent_dim]``: each
    candidate chunk at its level (rows past ``plan.chunks[i]`` are not read). The header, the state, then chunk
    after chunk; an encoder past ``8 * max_bytes`` bits after a chunk stops there (no payload if that was the
    first), one whose chunk or previous chunk is active saves its state (``ec_bak``), and at the end each goes
    back to its last saved state, is cut to ``ceil(tell / 8)`` bytes and finished (``ec_enc_done``)."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    n = len(plan.chunks)
    if n == 0:
        return []
    state_q = np.asarray(state_q, _I64).reshape(n, prof.state_dim)
    latents_q = np.asarray(latents_q, _I64).reshape(n, -1, prof.latent_dim)
    budget = 8 * int(plan.max_bytes)
    chunks = np.asarray(plan.chunks, _I64)
    live = chunks > 0
    enc = LockstepEncoder(n, plan.max_bytes)
    _code_header(enc, plan, live)
    coded, p0, r = _coding_arrays(prof, plan.q0, "state")
    _code_values(enc, state_q, coded, p0, r, live, "state", prof)
    live &= enc.tell() <= budget
    saved = enc.snapshot()
    sent = np.zeros(n, _I64)
    prev_active = np.zeros(n, bool)
    for k in range(min(latents_q.shape[1], int(chunks.max(initial=0)))):
        m = live & (chunks > k)
        if not m.any():
            break
        coded, p0, r = _coding_arrays(prof, int(plan.levels[k]), "latent")
        _code_values(enc, latents_q[:, k], coded, p0, r, m, f"latent[{k}]", prof)
        fits = enc.tell() <= budget
        live &= ~(m & ~fits)
        act = np.asarray(plan.active[:, k], bool)
        keep = m & fits & (act | prev_active)
        enc.update_snapshot(saved, keep)
        sent = np.where(keep, k + 1, sent)
        prev_active = np.where(m & fits, act, prev_active)
    ok = (sent > 0) & ~((sent <= 1) & (np.asarray(plan.extra_dred_offset) > 0))
    enc.restore(saved, ok)
    enc.shrink((enc.tell() + 7) // 8, ok)
    out = enc.done(ok)
    return [o if o is not None else b"" for o in out]


def _code_header(enc: LockstepEncoder, plan: PayloadPlan, mask: np.ndarray) -> None:
    """``encode_header`` (``bitstream._dred``): ``q0``, ``dQ``, the extended flag, its ``uint(256)``, the
    offset, then ``qmax`` where coded."""
    total = np.asarray(plan.total_offset, _I64)
    extended = total > 31
    offset = np.where(extended, total & 31, total)
    enc.encode(plan.q0, plan.q0 + 1, 16, mask)
    enc.encode(plan.dq, plan.dq + 1, 8, mask)
    flag = extended.astype(_I64)
    enc.encode(flag, flag + 1, 2, mask)
    extra = total >> 5
    enc.encode(extra, extra + 1, 256, mask & extended)
    enc.encode(offset, offset + 1, 32, mask)
    if qmax_is_coded(plan.q0, plan.dq):
        nvals = qmax_nvals(plan.q0)
        if plan.qmax >= QMAX_UNCODED:
            enc.encode(0, nvals, 2 * nvals, mask)
        else:
            s = qmax_symbol(plan.q0, plan.qmax)
            enc.encode(s, s + 1, 2 * nvals, mask)


# ---------------------------------------------------------------------------------------------------------------
# the whole encoder


@functools.cache
def _encoder_setup(model_pack: str, num: Numerics):
    """The RDO-VAE encoder's parameters with :func:`opus_dred.accel._decode.prepare`'s GEMM weights, and the
    block scan with :func:`opus_dred.accel._decode.linear` injected, compiled."""
    params = fast.prepare(rdovae_enc.encoder_params_from_pack(load_pack(model_pack)), num)

    def steps(p, carry, pairs):
        return rdovae_enc.encode_steps(p, carry, pairs, num, linear=fast.linear)

    return params, jax.jit(steps)


@functools.cache
def _quantizer(profile_name: str, q0: int, num: Numerics):
    prof = get_profile(profile_name)
    st = prof.stats
    lat = tuple(jnp.asarray(st.table(f"latent_{n}")) for n in ("scale", "dead_zone", "r", "p0"))
    sta = tuple(np.asarray(st.table(f"state_{n}"))[q0] for n in ("scale", "dead_zone", "r", "p0"))

    def q(x_state, x_lat, levels):
        sq = quantize(x_state, *sta, numerics=num)
        lq = quantize(x_lat, *(t[levels][None] for t in lat), numerics=num)
        return sq, lq

    return jax.jit(q)


def _float2int16_16k(x, very_small):
    """``dred_convert_to_16k`` at 16 kHz (no filter): ``FLOAT2INT16`` (x 32768, clamped, rounded half to even)
    and, from libopus 1.6 on, ``+ VERY_SMALL``: :meth:`opus_dred.refimpl._features.Resampler.process`'s
    arithmetic, element-wise (no product meets a sum)."""
    v = x * np.float32(32768)
    v = jnp.where(v > np.float32(-32768), v, np.float32(-32768))
    v = jnp.where(v < np.float32(32767), v, np.float32(32767))
    s = jnp.round(v).astype(jnp.int16).astype(jnp.float32)
    return s + very_small if very_small is not None else s


_float2int16_jit = jax.jit(_float2int16_16k, static_argnames=("very_small",))


def to_16k(x: np.ndarray, fs: int, prof: Profile) -> np.ndarray:
    """Whole streams ``[B, n]`` through ``dred_convert_to_16k``: at 16 kHz one XLA computation, at the other rates
    the reference's :class:`~opus_dred.refimpl._features.Resampler` (its filter memory carries from frame to
    frame, so one call over the stream equals one per frame)."""
    r = ref_features.Resampler(fs, prof)
    if fs != 16000:
        return np.asarray(r.process(x), np.float32).reshape(x.shape[0], -1)
    vs = None if r.very_small is None else float(r.very_small)
    out = np.empty(x.shape, np.float32)
    for i in range(0, x.shape[1], CONVERT_SAMPLES):  # one compiled shape: the last piece zero-padded
        piece = x[:, i:i + CONVERT_SAMPLES]
        m = piece.shape[1]
        if m < CONVERT_SAMPLES:
            piece = np.concatenate([piece, np.zeros((x.shape[0], CONVERT_SAMPLES - m), np.float32)], axis=1)
        out[:, i:i + m] = np.asarray(_float2int16_jit(jnp.asarray(piece, jnp.float32), very_small=vs))[:, :m]
    return out


#: samples per stream converted per XLA call at 16 kHz
CONVERT_SAMPLES = 16000


#: rows per quantizer call (the last call's rows zero-padded): one compiled shape for any input
QUANT_ROWS = 1024


def _quantize_rows(q, x_state: np.ndarray, x_lat: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``q`` over the rows in calls of :data:`QUANT_ROWS` rows (the quantizer is element-wise)."""
    n = x_state.shape[0]
    sq = np.empty(x_state.shape, np.int32)
    lq = np.empty(x_lat.shape, np.int32)
    for i in range(0, n, QUANT_ROWS):
        a, b = x_state[i:i + QUANT_ROWS], x_lat[i:i + QUANT_ROWS]
        m = a.shape[0]
        if m < QUANT_ROWS:
            a = np.concatenate([a, np.zeros((QUANT_ROWS - m,) + a.shape[1:], a.dtype)])
            b = np.concatenate([b, np.zeros((QUANT_ROWS - m,) + b.shape[1:], b.dtype)])
        ys, yl = q(a, b, levels)
        sq[i:i + m] = np.asarray(ys)[:m]
        lq[i:i + m] = np.asarray(yl)[:m]
    return sq, lq


@dataclass
class EncodeRun:
    """What :func:`encode_streams_timed` gives: ``payloads[b][f]`` (``b""`` where none) and the seconds each
    stage took (summed over the workers when ``workers > 1``)."""

    payloads: list
    seconds: dict = field(default_factory=dict)
    workers: int = 1


def _check(prof: Profile, fs: int, q0: int, dq: int, qmax: int, max_chunks: int, max_bytes: int) -> None:
    if fs not in RATES:
        raise DredSettingsError("fs", fs, f"must be one of {RATES}", profile=prof.name)
    check_settings(prof, q0, dq, qmax)
    if not isinstance(max_chunks, (int, np.integer)) or not 0 <= max_chunks <= prof.max_latents:
        raise DredSettingsError("max_chunks", max_chunks, f"must be 0..{prof.max_latents}", profile=prof.name)
    if not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
        raise DredSettingsError("max_bytes", max_bytes, "must be a non-negative integer", profile=prof.name)


def encode_streams(pcm, fs: int, profile, *, q0: int, dq: int, qmax: int, max_chunks: int, max_bytes: int,
                   numerics: Numerics, frame_size: int | None = None, extra_delay: int | None = None,
                   kernels: str | None = None, workers: int = 1, block_frames: int = 100) -> list[list[bytes]]:
    """Every Opus frame's DRED payload of ``B`` streams: ``payloads[b][f]``, ``b""`` where libopus sends none.

    ``pcm [B, n]``: mono float PCM at ``fs`` (libopus' float scale, ±1), cut into Opus frames of
    ``frame_size`` samples (default 20 ms; a trailing part frame is dropped) fed one after another to
    ``dred_compute_latents`` with the look-ahead ``extra_delay`` (default ``fs / 250``, libopus' 4 ms delay
    compensation). ``q0``, ``dq``, ``qmax``, ``max_chunks`` and ``max_bytes`` are ``dred_encode_silk_frame``'s
    settings (every frame active). ``numerics``: the arithmetic of PitchDNN, the RDO-VAE encoder and the
    quantizer (a :class:`~opus_dred.refimpl._nnet.Numerics`); ``kernels``: the feature extractor's DSP kernels
    (``"x86"``, ``"c"``; default ``"x86"`` for numerics with fused multiply-adds, else ``"c"``). ``workers``
    threads encode parts of the batch; ``block_frames`` (even) feature frames are computed per XLA call.

    Each payload equals what :class:`~opus_dred.refimpl._dred_encoder.DredEncoder` with the reference's
    networks under ``numerics`` gives for that stream alone. Raises :class:`DredSettingsError` for settings
    libopus does not accept, naming the parameter."""
    return encode_streams_timed(pcm, fs, profile, q0=q0, dq=dq, qmax=qmax, max_chunks=max_chunks,
                                max_bytes=max_bytes, numerics=numerics, frame_size=frame_size,
                                extra_delay=extra_delay, kernels=kernels, workers=workers,
                                block_frames=block_frames).payloads


def encode_streams_timed(pcm, fs: int, profile, *, q0: int, dq: int, qmax: int, max_chunks: int, max_bytes: int,
                         numerics: Numerics, frame_size: int | None = None, extra_delay: int | None = None,
                         kernels: str | None = None, workers: int = 1, block_frames: int = 100) -> EncodeRun:
    """:func:`encode_streams` with the seconds of each stage (``resample``, ``features``, ``network``,
    ``quantize+code``)."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    _check(prof, fs, q0, dq, qmax, max_chunks, max_bytes)
    x = np.asarray(pcm, np.float32)
    if x.ndim != 2:
        raise DredSettingsError("pcm", f"array{x.shape}", "must be [B, n] mono PCM", profile=prof.name)
    frame = fs // 50 if frame_size is None else int(frame_size)
    if frame <= 0 or (frame * 16000) % fs:
        raise DredSettingsError("frame_size", frame_size, f"must be a positive whole number of 16 kHz samples at "
                                f"{fs} Hz", profile=prof.name)
    delay = fs // 250 if extra_delay is None else int(extra_delay)
    if kernels is None:
        kernels = "x86" if numerics.fma else "c"
    if block_frames < 2 or block_frames % 2:
        raise DredSettingsError("block_frames", block_frames, "must be an even number >= 2", profile=prof.name)
    b = x.shape[0]
    nframes = x.shape[1] // frame
    offsets = frame_offsets(prof.name, fs, frame, nframes, delay)
    settings = {"q0": int(q0), "dq": int(dq), "qmax": int(qmax), "max_chunks": int(max_chunks),
                "max_bytes": int(max_bytes)}
    workers = max(1, min(int(workers), b))
    parts = np.array_split(np.arange(b), workers)
    seconds: dict = {}
    lock = threading.Lock()

    def run(rows):
        sec: dict = {}
        out = _encode_part(x[rows, :nframes * frame], fs, prof, offsets, settings, numerics, kernels, block_frames,
                           sec)
        with lock:
            for k, v in sec.items():
                seconds[k] = seconds.get(k, 0.0) + v
        return out

    if workers == 1:
        results = [run(parts[0])]
    else:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            results = list(ex.map(run, parts))
    payloads = [row for part in results for row in part]
    return EncodeRun(payloads, seconds, workers)


def _encode_part(x: np.ndarray, fs: int, prof: Profile, offsets: list[tuple], settings: dict, num: Numerics,
                 kernels: str, block: int, sec: dict) -> list[list[bytes]]:
    b = x.shape[0]
    done_last = offsets[-1][3] if offsets else 0
    t0 = time.perf_counter()
    x16 = to_16k(x, fs, prof)
    s16 = np.concatenate([np.zeros((b, DRED_SILK_ENCODER_DELAY), np.float32), x16], axis=1)
    need = 2 * DRED_FRAME_SIZE * done_last
    t1 = time.perf_counter()
    sec["resample"] = sec.get("resample", 0.0) + t1 - t0

    # features and RDO-VAE, a block of frames at a time (the last block zero-padded: both are causal)
    nf = prof.num_features
    extractor = BlockFeatureExtractor(prof, num, kernels=kernels, streams=b)
    params, steps_jit = _encoder_setup(prof.model_pack, num)
    carry = rdovae_enc.init_encoder_carry(params, (b,))
    latents, states = [], []
    fsec: dict = {}
    t_net = 0.0
    for start in range(0, need, block * DRED_FRAME_SIZE):
        chunk = s16[:, start:min(start + block * DRED_FRAME_SIZE, need)]
        n = chunk.shape[1] // DRED_FRAME_SIZE
        if n < block:
            chunk = np.concatenate([chunk, np.zeros((b, (block - n) * DRED_FRAME_SIZE), np.float32)], axis=1)
        feats = extractor.frames(chunk, seconds=fsec).features[:, :, :nf]
        tn = time.perf_counter()
        pairs = jnp.asarray(np.swapaxes(feats.reshape(b, block // 2, 2, nf), 0, 1))
        carry, lt, st = steps_jit(params, carry, pairs)
        latents.append(np.asarray(lt)[:n // 2])
        states.append(np.asarray(st)[:n // 2])
        t_net += time.perf_counter() - tn
    t2 = time.perf_counter()
    sec["features"] = sec.get("features", 0.0) + (t2 - t1) - t_net
    sec["network"] = sec.get("network", 0.0) + t_net
    for k, v in fsec.items():
        sec[f"features:{k}"] = sec.get(f"features:{k}", 0.0) + v
    lat = np.concatenate(latents).swapaxes(0, 1) if latents else np.zeros((b, 0, prof.latent_dim), np.float32)
    sta = np.concatenate(states).swapaxes(0, 1) if states else np.zeros((b, 0, prof.state_dim), np.float32)

    out = _code_frames(prof, lat, sta, offsets, settings, num)
    sec["quantize+code"] = sec.get("quantize+code", 0.0) + time.perf_counter() - t2
    return out


def _code_frames(prof: Profile, lat: np.ndarray, sta: np.ndarray, offsets: list[tuple], s: dict,
                 num: Numerics) -> list[list[bytes]]:
    """Every frame's payload of every stream from the RDO-VAE outputs (oldest first): one plan per frame (the
    streams share it), one quantizer call for all rows, one lockstep coding of all payloads."""
    b = lat.shape[0]
    nframes = len(offsets)
    cap = max(1, s["max_chunks"])
    levels = np.array([compute_quantizer(s["q0"], s["dq"], s["qmax"], k, prof.dq_table) for k in range(cap)])
    coded_frames, idx_state, idx_lat, total, extra, nchunks = [], [], [], [], [], []
    for f, (dred_offset, latent_offset, fill, done) in enumerate(offsets):
        plan = plan_dred_frame(prof, q0=s["q0"], dq=s["dq"], qmax=s["qmax"], dred_offset=dred_offset,
                               latents_buffer_fill=fill, latent_offset=latent_offset, max_chunks=s["max_chunks"])
        if not plan.chunks:
            continue
        coded_frames.append(f)
        idx_state.append(done - 1 - plan.latent_offset)
        row = np.zeros(cap, np.intp)
        row[:len(plan.chunks)] = done - 1 - np.asarray(plan.chunks, np.intp)  # buffer entry e: step done - 1 - e
        idx_lat.append(row)
        total.append(plan.total_offset)
        extra.append(plan.extra_dred_offset)
        nchunks.append(len(plan.chunks))
    out = [[b""] * nframes for _ in range(b)]
    if not coded_frames:
        return out
    nc = len(coded_frames)
    x_state = sta[:, idx_state].reshape(b * nc, -1)  # [B*F, state_dim], stream-major
    x_lat = lat[:, np.stack(idx_lat)].reshape(b * nc, cap, -1)
    sq, lq = _quantize_rows(_quantizer(prof.name, s["q0"], num), x_state, x_lat, levels)
    plan = PayloadPlan(q0=s["q0"], dq=s["dq"], qmax=s["qmax"], total_offset=np.tile(np.asarray(total), b),
                       extra_dred_offset=np.tile(np.asarray(extra), b), chunks=np.tile(np.asarray(nchunks), b),
                       levels=levels, active=np.ones((b * nc, cap), bool), max_bytes=s["max_bytes"])
    payloads = code_payloads(prof, plan, np.asarray(sq), np.asarray(lq))
    for i, p in enumerate(payloads):
        out[i // nc][coded_frames[i % nc]] = p
    return out
