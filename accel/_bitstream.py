"""Batched range decoding: many independent streams decoded in lockstep, one numpy lane per stream.

The scalar :class:`~opus_dred.bitstream._rangecoder.RangeDecoder` is the readable reference; this module
computes the same thing for N streams at once, symbol by symbol, so that the per-symbol interpreter
cost is shared by the whole batch (see ``docs/benchmarks.md``). Every operation takes an optional
boolean ``mask`` of the lanes it applies to: masked-out lanes keep their state and return 0, which is
how lanes that have stopped (or that skip a symbol) ride along.

Two layers:

* :class:`BatchRangeDecoder`: RFC 6716 §4.1 decoding (``celt/entdec.c``: ``ec_dec_init``,
  ``ec_decode``, ``ec_decode_bin``, ``ec_dec_update``, ``ec_dec_bit_logp``, ``ec_dec_icdf16``,
  ``ec_dec_uint``, ``ec_dec_bits``, ``ec_tell``, ``ec_tell_frac``) with per-lane frequency totals and
  tables, and the Laplace "p0" coder (``celt/laplace.c:ec_laplace_decode_p0``).
* :func:`locate_dred_payloads`: the DRED payload of many packets, with a lean path for the common
  framing and :func:`~opus_dred.bitstream._extensions.find_dred_extension` for everything else.
* :func:`read_dred_payloads`: ``dnn/dred_decoder.c:dred_ec_decode`` for N DRED payloads (the bytes after
  ``'D'`` and the version byte): header, initial state, latent chunks newest first with the chunk-loop
  stop rule ``8 * num_bytes - tell <= 7`` and the requested-amount bound, dequantised as
  ``dred_decode_latents`` does.

Both entry points use the native kernel of :mod:`opus_dred.accel._native` (ctypes, one packet after another in C,
the batch split over the cores) where it builds, and the numpy lanes otherwise (``native=False`` asks for them);
:func:`read_dred_packets` does both steps on the packets' bytes without copying the payloads out.

numpy only (no JAX). State is int64: every intermediate of the 32-bit decoder fits, and values are
masked to 32 bits where the C code wraps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from opus_dred.accel import _native
from opus_dred.bitstream._arith import (
    QMAX_UNCODED,
    compute_dred_offset,
    compute_quantizer,
    dequantize,
    extra_offset_from_code,
    q_feature,
    qmax_is_coded,
    qmax_nvals,
    qmax_of_symbol,
    requested_chunks,
)
from opus_dred.bitstream._dred import coding_tables
from opus_dred.bitstream._errors import RangeCoderError
from opus_dred.bitstream._extensions import DRED_EXPERIMENTAL_BYTES, dred_version_in, find_dred_extension
from opus_dred.bitstream._packet import Toc
from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.bitstream._rangecoder import (
    BITRES,
    EC_CODE_BITS,
    EC_CODE_BOT,
    EC_CODE_EXTRA,
    EC_CODE_TOP,
    EC_SYM_BITS,
    EC_UINT_BITS,
    laplace_p0_icdfs,
)

_M32 = 0xFFFFFFFF
_SYM_MAX = (1 << EC_SYM_BITS) - 1
_TELL_FRAC_CORRECTION = np.array((35733, 38967, 42495, 46340, 50535, 55109, 60097, 65535), np.int64)


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values below 2**53 (exact through float64's exponent)."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)


def _lanes(v, n: int) -> np.ndarray:
    a = np.asarray(v, dtype=np.int64)
    return np.broadcast_to(a, (n,)) if a.ndim == 0 else a


class BatchRangeDecoder:
    """N range decoders over ``payloads``, advanced together (``celt/entdec.c``, vectorised over lanes).

    Attributes are int64 arrays of shape [N] mirroring ``ec_dec``: ``rng``, ``val``, ``rem``, ``offs``,
    ``end_offs``, ``end_window``, ``nend_bits``, ``nbits_total``, ``storage``, ``error``. Reading past a
    lane's end yields zeros (RFC 6716 §4.1.1), as in the scalar decoder.
    """

    def __init__(self, payloads: Sequence[bytes | bytearray | memoryview]) -> None:
        bufs = [bytes(p) for p in payloads]
        n = len(bufs)
        self.n = n
        width = max((len(b) for b in bufs), default=0)
        self.width = width
        # one spare zero column so that a clipped index always lands on a valid cell
        self.buf = np.zeros((n, width + 1), np.int64)
        for i, b in enumerate(bufs):
            if b:
                self.buf[i, : len(b)] = np.frombuffer(b, np.uint8)
        self.storage = np.array([len(b) for b in bufs], np.int64)
        self._ar = np.arange(n)
        z = np.zeros(n, np.int64)
        self.end_offs = z.copy()
        self.end_window = z.copy()
        self.nend_bits = z.copy()
        self.nbits_total = np.full(n, EC_CODE_BITS + 1 - ((EC_CODE_BITS - EC_CODE_EXTRA) // EC_SYM_BITS) * EC_SYM_BITS,
                                   np.int64)
        self.offs = z.copy()
        self.rng = np.full(n, 1 << EC_CODE_EXTRA, np.int64)
        self.error = z.copy()
        self.ext = np.ones(n, np.int64)
        self.rem = self._read_byte(None)
        self.val = self.rng - 1 - (self.rem >> (EC_SYM_BITS - EC_CODE_EXTRA))
        self._normalize()

    # -- input ---------------------------------------------------------------------------------
    def _read_byte(self, mask: np.ndarray | None) -> np.ndarray:
        ok = self.offs < self.storage
        if mask is not None:
            ok &= mask
        b = np.where(ok, self.buf[self._ar, np.minimum(self.offs, self.width)], 0)
        self.offs += ok
        return b

    def _read_byte_from_end(self, mask: np.ndarray) -> np.ndarray:
        ok = mask & (self.end_offs < self.storage)
        idx = np.clip(self.storage - self.end_offs - 1, 0, self.width)
        b = np.where(ok, self.buf[self._ar, idx], 0)
        self.end_offs += ok
        return b

    def _normalize(self) -> None:
        # RFC 6716 §4.1.2.1, lane by lane: while rng <= 2**23 shift in a byte (at most 4 rounds).
        while True:
            m = self.rng <= EC_CODE_BOT
            if not m.any():
                return
            if (self.rng[m] == 0).any():
                lane = int(np.flatnonzero(m & (self.rng == 0))[0])
                raise RangeCoderError(f"range collapsed to zero in lane {lane} (zero-probability symbol)",
                                      bit_offset=int(self.tell()[lane]))
            self.nbits_total += np.where(m, EC_SYM_BITS, 0)
            self.rng = np.where(m, self.rng << EC_SYM_BITS, self.rng)
            nxt = self._read_byte(m)
            sym = ((self.rem << EC_SYM_BITS) | nxt) >> (EC_SYM_BITS - EC_CODE_EXTRA)
            self.rem = np.where(m, nxt, self.rem)
            val = ((self.val << EC_SYM_BITS) + (_SYM_MAX & ~sym)) & (EC_CODE_TOP - 1)
            self.val = np.where(m, val, self.val)

    # -- symbols ---------------------------------------------------------------------------------
    def decode(self, ft, mask: np.ndarray | None = None) -> np.ndarray:
        """``ec_decode`` per lane (``ft`` scalar or [N]); follow with :meth:`update` on the same mask."""
        ft = _lanes(ft, self.n)
        if ((ft < 1) | (ft > 1 << 16)).any():
            raise RangeCoderError("frequency total out of range 1..65536")
        ext = self.rng // ft
        s = self.val // np.maximum(ext, 1)
        fs = ft - np.minimum(s + 1, ft)
        if mask is None:
            self.ext = ext
            return fs
        self.ext = np.where(mask, ext, self.ext)
        return np.where(mask, fs, 0)

    def decode_bin(self, bits: int, mask: np.ndarray | None = None) -> np.ndarray:
        """``ec_decode_bin``: :meth:`decode` with ``ft = 2**bits``."""
        if not 0 <= bits <= 16:
            raise RangeCoderError(f"decode_bin bits={bits} out of range 0..16")
        return self.decode(1 << bits, mask)

    def update(self, fl, fh, ft, mask: np.ndarray | None = None) -> None:
        """``ec_dec_update`` per lane."""
        fl, fh, ft = _lanes(fl, self.n), _lanes(fh, self.n), _lanes(ft, self.n)
        act = np.ones(self.n, bool) if mask is None else mask
        if (act & ~((0 <= fl) & (fl < fh) & (fh <= ft))).any():
            raise RangeCoderError("update needs 0 <= fl < fh <= ft in every active lane")
        s = (self.ext * (ft - fh)) & _M32
        val = (self.val - s) & _M32
        rng = np.where(fl > 0, (self.ext * (fh - fl)) & _M32, (self.rng - s) & _M32)
        self.val = np.where(act, val, self.val)
        self.rng = np.where(act, rng, self.rng)
        self._normalize()

    def dec_bit_logp(self, logp: int, mask: np.ndarray | None = None) -> np.ndarray:
        """``ec_dec_bit_logp`` per lane."""
        if not 1 <= logp <= 16:
            raise RangeCoderError(f"logp={logp} out of range 1..16")
        act = np.ones(self.n, bool) if mask is None else mask
        s = self.rng >> logp
        ret = self.val < s
        self.val = np.where(act & ~ret, self.val - s, self.val)
        self.rng = np.where(act, np.where(ret, s, self.rng - s), self.rng)
        self._normalize()
        return (ret & act).astype(np.int64)

    def dec_icdf(self, icdf: np.ndarray, ftb: int, mask: np.ndarray | None = None) -> np.ndarray:
        """``ec_dec_icdf`` / ``ec_dec_icdf16``: ``icdf`` is one table [K] or one per lane [N, K].

        Tables are not checked (the hot path); they must be non-increasing and end with 0.
        """
        icdf = np.asarray(icdf, np.int64)
        r = self.rng >> ftb
        prods = r[:, None] * icdf if icdf.ndim == 2 else r[:, None] * icdf[None, :]
        ret = np.count_nonzero(self.val[:, None] < prods, axis=1)
        s = prods[self._ar, ret]
        t = np.where(ret == 0, self.rng, prods[self._ar, np.maximum(ret - 1, 0)])
        if mask is None:
            self.val = self.val - s
            self.rng = t - s
        else:
            self.val = np.where(mask, self.val - s, self.val)
            self.rng = np.where(mask, t - s, self.rng)
            ret = np.where(mask, ret, 0)
        self._normalize()
        return ret

    dec_icdf16 = dec_icdf

    def dec_bits(self, bits, mask: np.ndarray | None = None) -> np.ndarray:
        """``ec_dec_bits`` per lane: ``bits`` (0..25, scalar or [N]) raw bits from the end of the buffer."""
        bits = _lanes(bits, self.n)
        if ((bits < 0) | (bits > 25)).any():
            raise RangeCoderError("dec_bits bits out of range 0..25")
        act = np.ones(self.n, bool) if mask is None else mask
        window = self.end_window.copy()
        avail = self.nend_bits.copy()
        need = act & (avail < bits)
        while need.any():  # refill until more than 24 bits are available (EC_WINDOW_SIZE - 8)
            window |= self._read_byte_from_end(need) << np.where(need, avail, 0)
            avail = np.where(need, avail + EC_SYM_BITS, avail)
            need &= avail <= 32 - EC_SYM_BITS
        ret = np.where(act, window & ((1 << bits) - 1), 0)
        self.end_window = np.where(act, window >> bits, self.end_window)
        self.nend_bits = np.where(act, avail - bits, self.nend_bits)
        self.nbits_total = self.nbits_total + np.where(act, bits, 0)
        return ret

    def dec_uint(self, ft, mask: np.ndarray | None = None) -> np.ndarray:
        """``ec_dec_uint`` per lane: an integer in ``[0, ft)`` (``ft`` 2..2**32-1, scalar or [N])."""
        ft = _lanes(ft, self.n)
        if ((ft < 2) | (ft > _M32)).any():
            raise RangeCoderError("dec_uint ft out of range 2..2**32-1")
        act = np.ones(self.n, bool) if mask is None else mask
        ftm = ft - 1
        ftb = _bit_length(ftm)
        big = ftb > EC_UINT_BITS
        out = np.zeros(self.n, np.int64)
        small = act & ~big
        if small.any():
            s = self.decode(np.where(small, ft, 2), small)
            self.update(s, s + 1, np.where(small, ft, 2), small)
            out = np.where(small, s, out)
        large = act & big
        if large.any():
            sh = np.where(large, ftb - EC_UINT_BITS, 0)
            ft1 = np.where(large, (ftm >> sh) + 1, 2)
            s = self.decode(ft1, large)
            self.update(s, s + 1, ft1, large)
            t = (s << sh) | self.dec_bits(sh, large)
            bad = large & (t > ftm)
            self.error = np.where(bad, 1, self.error)
            out = np.where(large, np.where(bad, ftm, t), out)
        return out

    def laplace_p0(self, sign_icdf: np.ndarray, mag_icdf: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``celt/laplace.c:ec_laplace_decode_p0`` per lane, with per-lane tables from
        :func:`~opus_dred.bitstream._rangecoder.laplace_p0_icdfs`: ``sign_icdf`` [N, 3], ``mag_icdf`` [N, 8]."""
        s = self.dec_icdf(sign_icdf, 15, mask)
        cont = s != 0
        value = cont.astype(np.int64)
        while cont.any():
            v = self.dec_icdf(mag_icdf, 15, cont)
            value += v
            cont &= v == 7
        return np.where(s == 2, -value, value)

    # -- position --------------------------------------------------------------------------------
    def tell(self) -> np.ndarray:
        """``ec_tell`` per lane."""
        return self.nbits_total - _bit_length(self.rng)

    def tell_frac(self) -> np.ndarray:
        """``ec_tell_frac`` per lane (1/8 bit units)."""
        lg = _bit_length(self.rng)
        r = self.rng >> np.maximum(lg - 16, 0)
        b = (r >> 12) - 8
        b += r > _TELL_FRAC_CORRECTION[np.clip(b, 0, 7)]
        return (self.nbits_total << BITRES) - ((lg << 3) + b)


# ---------------------------------------------------------------------------------------------------
# DRED payloads
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DredTables:
    """A profile's :class:`~opus_dred.bitstream._dred.CodingTables` as arrays indexed by (level, dimension).

    ``*_sign`` [levels, dim, 3] and ``*_mag`` [levels, dim, 8]: the ICDFs of the Laplace p0 coder for each
    ``(p0 << 7, r << 7)``; ``*_skip`` [levels, dim]: values coded with no bits (the coding tables' ``None``);
    ``*_div`` [levels, dim] float32: the dequantization divisor, the coding tables' own.
    """

    state_sign: np.ndarray
    state_mag: np.ndarray
    state_skip: np.ndarray
    state_div: np.ndarray
    latent_sign: np.ndarray
    latent_mag: np.ndarray
    latent_skip: np.ndarray
    latent_div: np.ndarray


def _icdf_tables(params: list, div: np.ndarray):
    levels, dim = div.shape
    sign = np.zeros((levels, dim, 3), np.int64)
    mag = np.zeros((levels, dim, 8), np.int64)
    skip = np.zeros((levels, dim), bool)
    for q, row in enumerate(params):
        for i, par in enumerate(row):
            if par is None:
                skip[q, i] = True
            else:
                sign[q, i], mag[q, i] = laplace_p0_icdfs(*par)
    return sign, mag, skip, div


_TABLE_CACHE: dict[tuple, DredTables] = {}


def dred_tables(profile: Profile) -> DredTables:
    """The decoding tables of ``profile``, from its :func:`~opus_dred.bitstream._dred.coding_tables`
    (cached per profile and model pack)."""
    key = (profile.name, profile.model_pack, id(profile.stats))
    t = _TABLE_CACHE.get(key)
    if t is None:
        ct = coding_tables(profile)
        t = _TABLE_CACHE[key] = DredTables(*_icdf_tables(ct.state, ct.state_div),
                                           *_icdf_tables(ct.latent, ct.latent_div))
    return t


@dataclass
class BatchDred:
    """:class:`~opus_dred.bitstream._dred.DredPayload`'s fields as arrays, one row per payload, under the same
    names and units (libopus'): what :func:`read_dred_payloads` (numpy) and
    :func:`opus_dred.accel._reader.read_dred_payloads_jax` (JAX arrays) read.

    Header [N]: ``q0``, ``dQ``, ``qmax``, ``extended_offset`` (bool), ``extra_offset`` (32 × the coded
    ``uint(256)``), ``offset`` (the coded ``uint(32)``), ``dred_frame_offset``; ``dred_offset`` (2.5 ms units)
    follows from them. Values: ``state_q`` [N, state_dim] and ``latents_q`` [N, L, latent_dim] integers,
    ``q_levels`` [N, L], ``nb_latents`` [N]; dequantised ``state`` [N, state_dim] and ``latents`` [N, L,
    latent_stride] float32 (1.6.x: the quantizer feature in the last column); rows past ``nb_latents`` are
    zero. ``num_bytes`` [N] and ``end_tell`` [N] (``ec_tell`` at the end). ``L`` is ``max_latents`` (numpy) or
    the chunk bound (JAX).
    """

    profile: str
    q0: np.ndarray
    dQ: np.ndarray
    qmax: np.ndarray
    extended_offset: np.ndarray
    extra_offset: np.ndarray
    offset: np.ndarray
    dred_frame_offset: np.ndarray
    state_q: np.ndarray
    latents_q: np.ndarray
    q_levels: np.ndarray
    nb_latents: np.ndarray
    state: np.ndarray
    latents: np.ndarray
    num_bytes: np.ndarray
    end_tell: np.ndarray

    @property
    def dred_offset(self):
        """``OpusDRED.dred_offset`` per row (:func:`~opus_dred.bitstream._arith.compute_dred_offset`)."""
        return compute_dred_offset(self.offset, self.extra_offset, self.dred_frame_offset)

    @property
    def read_past_end(self):
        return self.end_tell > 8 * self.num_bytes

    def __len__(self) -> int:
        return len(self.q0)


def _read_values(dec: BatchRangeDecoder, level: np.ndarray, sign, mag, skip, active: np.ndarray) -> np.ndarray:
    dim = sign.shape[1]
    out = np.zeros((dec.n, dim), np.int32)
    for i in range(dim):
        sk = skip[level, i]
        m = active & ~sk
        if not m.any():
            continue
        out[:, i] = dec.laplace_p0(sign[level, i], mag[level, i], m)
    return out


def read_dred_payloads(
    payloads: Sequence[bytes],
    profile: Profile | str,
    *,
    min_feature_frames: int = 104,
    dred_frame_offset=0,
    native: bool | None = None,
) -> BatchDred:
    """``dnn/dred_decoder.c:dred_ec_decode`` on N raw DRED payloads at once.

    ``payloads``: the range-coded bytes of each payload (after ``'D'`` and the version byte).
    ``min_feature_frames``: the requested amount (``opus_dred_parse`` passes
    :func:`~opus_dred.bitstream._arith.min_feature_frames_for`); chunks are read while ``k`` is below
    :func:`~opus_dred.bitstream._arith.requested_chunks` and the lane has more than 7 bits left.
    ``dred_frame_offset`` (scalar or [N]) is added to ``dred_offset``. ``native``: the C kernel (``None``: where
    it builds), else the numpy lanes; both give the same arrays.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    lib = _native.library() if native is not False else None
    if native and lib is None:
        raise RuntimeError("the native DRED reader could not be built (no C compiler?)")
    if lib is not None:
        data, starts, lens = _native.joined(payloads)
        return _read_native(lib, prof, data, starts, lens, min_feature_frames, dred_frame_offset)
    tab = dred_tables(prof)
    dec = BatchRangeDecoder(payloads)
    n = dec.n
    num_bits = 8 * dec.storage
    q0 = dec.dec_uint(16)
    dQ = dec.dec_uint(8)
    extended = dec.dec_uint(2) != 0
    code = dec.dec_uint(256, extended) if extended.any() else np.zeros(n, np.int64)
    extra_offset = extra_offset_from_code(code)
    offset = dec.dec_uint(32)
    qmax = np.full(n, QMAX_UNCODED, np.int64)
    m = qmax_is_coded(q0, dQ)
    if m.any():
        nvals = np.where(m, qmax_nvals(q0), 1)
        ft = 2 * nvals
        s = dec.decode(ft, m)
        hi = m & (s >= nvals)
        qmax = np.where(hi, qmax_of_symbol(q0, s), qmax)
        dec.update(np.where(hi, s, 0), np.where(hi, s + 1, nvals), ft, m)
    all_lanes = np.ones(n, bool)
    state_q = _read_values(dec, q0, tab.state_sign, tab.state_mag, tab.state_skip, all_lanes)
    state = dequantize(state_q, tab.state_div[q0])

    max_lat = prof.max_latents
    dq_table = np.asarray(prof.dq_table, np.int64)
    latents_q = np.zeros((n, max_lat, prof.latent_dim), np.int32)
    q_levels = np.zeros((n, max_lat), np.int64)
    nb = np.zeros(n, np.int64)
    active = np.ones(n, bool)
    used = 0
    for k in range(requested_chunks(int(min_feature_frames), max_lat)):
        active &= num_bits - dec.tell() > 7
        if not active.any():
            break
        ql = np.where(active, compute_quantizer(q0, dQ, qmax, k, dq_table), 0)
        latents_q[:, k] = _read_values(dec, ql, tab.latent_sign, tab.latent_mag, tab.latent_skip, active)
        q_levels[:, k] = ql
        nb += active
        used = k + 1
    latents = np.zeros((n, max_lat, prof.latent_stride), np.float32)
    if used:
        ql = q_levels[:, :used]
        latents[:, :used, : prof.latent_dim] = dequantize(latents_q[:, :used], tab.latent_div[ql])
        valid = np.arange(used)[None, :] < nb[:, None]
        if prof.has_q_feature:
            latents[:, :used, prof.latent_dim] = np.where(valid, q_feature(ql), 0)
        latents[:, :used] = np.where(valid[:, :, None], latents[:, :used], 0)
    return BatchDred(
        profile=prof.name, q0=q0, dQ=dQ, qmax=qmax, extended_offset=extended, extra_offset=extra_offset,
        offset=offset, dred_frame_offset=np.array(_lanes(dred_frame_offset, n)), state_q=state_q, latents_q=latents_q,
        q_levels=q_levels, nb_latents=nb, state=state, latents=latents, num_bytes=dec.storage.copy(),
        end_tell=dec.tell(),
    )


_NATIVE_TABLES: dict[tuple, tuple] = {}


def native_tables(profile: Profile) -> tuple:
    """:func:`dred_tables` flattened for :func:`opus_dred.accel._native.read_dred`: sign and magnitude ICDFs int32,
    skip flags uint8, divisors float32 (state, then latents)."""
    key = (profile.name, profile.model_pack, id(profile.stats))
    t = _NATIVE_TABLES.get(key)
    if t is None:
        d = dred_tables(profile)
        t = _NATIVE_TABLES[key] = tuple(
            np.ascontiguousarray(a, dt) for a, dt in (
                (d.state_sign, np.int32), (d.state_mag, np.int32), (d.state_skip, np.uint8),
                (d.state_div, np.float32), (d.latent_sign, np.int32), (d.latent_mag, np.int32),
                (d.latent_skip, np.uint8), (d.latent_div, np.float32)))
    return t


def _read_native(lib, prof: Profile, data, starts, lens, min_feature_frames, dred_frame_offset) -> BatchDred:
    n = len(lens)
    o = _native.read_dred(lib, data, starts, lens, native_tables(prof), state_dim=prof.state_dim,
                          latent_dim=prof.latent_dim, max_lat=prof.max_latents, stride=prof.latent_stride,
                          n_chunks=requested_chunks(int(min_feature_frames), prof.max_latents),
                          has_q=bool(prof.has_q_feature), dq_table=np.asarray(prof.dq_table))
    bad = np.flatnonzero(o.pop("status"))
    if len(bad):
        lane = int(bad[0])
        raise RangeCoderError(f"range collapsed to zero in lane {lane} (zero-probability symbol)",
                              bit_offset=int(o["end_tell"][lane]))
    code = o.pop("code")
    return BatchDred(profile=prof.name, extra_offset=extra_offset_from_code(code),
                     dred_frame_offset=np.array(_lanes(dred_frame_offset, n)), num_bytes=lens.astype(np.int64), **o)


# ---------------------------------------------------------------------------------------------------
# Locating DRED payloads in bulk
# ---------------------------------------------------------------------------------------------------


@dataclass
class DredLocations:
    """:class:`~opus_dred.bitstream._extensions.DredLocation`'s fields as arrays, one entry per packet, from
    :func:`locate_dred_payloads` (the extension itself left out).

    ``payload[i]``: the range-coded bytes after the ``'D', version`` prefix (``b""`` where the packet has
    no DRED); ``frame``, ``dred_frame_offset`` and ``payload_offset`` [N] (0 without DRED); ``found`` [N] bool;
    ``fast`` [N] bool: whether the lean path answered (the rest went through
    :func:`~opus_dred.bitstream._extensions.find_dred_extension`).
    """

    payload: list[bytes]
    frame: np.ndarray
    dred_frame_offset: np.ndarray
    payload_offset: np.ndarray
    found: np.ndarray
    fast: np.ndarray

    def __len__(self) -> int:
        return len(self.payload)


_FRAME_48K: tuple[int, ...] | None = None


def _frame_sizes() -> tuple[int, ...]:
    global _FRAME_48K
    if _FRAME_48K is None:
        _FRAME_48K = tuple(Toc.from_byte(b).frame_size_48k for b in range(256))
    return _FRAME_48K


def _lean_locate(data: bytes, frame_sizes, head: int) -> int:
    """Start of the first extension's data in ``data`` for the framing libopus' encoder writes, or -1 when
    the packet is anything else (the caller then asks the reference parser).

    Handled: a code 3 packet (RFC 6716 §3.2.5) that ``opus_packet_parse_impl`` accepts, with padding
    whose first extension is a long one with L=0 (data to the end of the padding, libopus'
    ``skip_extension`` / ``skip_extension_payload``) and ``head`` as its ID byte. That extension is at frame
    0 and is the first one, so ``dred_find_payload`` (1.5.x and 1.6.x) takes it or nothing (it is the last
    one too): the caller decides with :func:`~opus_dred.bitstream._extensions.dred_version_in`, as
    ``find_dred_extension`` does.
    """
    n = len(data)
    if n < 2 or data[0] & 3 != 3:
        return -1
    cb = data[1]
    count = cb & 63
    if not cb & 64 or count == 0 or count * frame_sizes[data[0]] > 5760:
        return -1
    pos = 2
    remaining = n - 2
    pad = 0
    while True:  # padding length chain: 255 adds 254 and continues
        if remaining <= 0:
            return -1
        b = data[pos]
        pos += 1
        remaining -= 1
        add = 254 if b == 255 else b
        remaining -= add
        pad += add
        if b != 255:
            break
    if remaining < 0:
        return -1
    if cb & 128:  # VBR: only one frame (no length fields)
        if count != 1:
            return -1
        last = remaining
    else:
        last = remaining // count
        if last * count != remaining:
            return -1
    if last > 1275 or pad < 1:
        return -1
    start = n - pad  # padding follows the frames
    if data[start] != head:
        return -1
    return start + 1


def _locate(packets, prof: Profile, native: bool | None):
    """(locations, the packets' joined buffer, the payloads' starts in it) or (locations, None, None)."""
    lib = _native.library() if native is not False else None
    if lib is None:
        return _locate_py(packets, prof), None, None
    n = len(packets)
    data, starts, lens = _native.joined(packets)
    fs = np.asarray(_frame_sizes(), np.int32)
    rel = _native.locate(lib, data, starts, lens, fs, prof.extension_id << 1, prof.dred_version)
    fast = rel >= 0
    payloads: list[bytes] = [b""] * n
    frame = np.zeros(n, np.int64)
    offs = np.zeros(n, np.int64)
    where = np.where(fast, rel, 0).astype(np.int64)
    found = fast.copy()
    for i in np.flatnonzero(~fast).tolist():
        p = packets[i]
        loc = find_dred_extension(p if type(p) is bytes else bytes(p), prof)
        if loc is not None:
            payloads[i] = loc.payload
            frame[i], offs[i], where[i] = loc.frame, loc.dred_frame_offset, loc.payload_offset
            found[i] = True
    return DredLocations(payloads, frame, offs, where, found, fast), data, (starts, lens, rel)


def _fill_payloads(loc: DredLocations, data: np.ndarray, starts, lens, rel) -> None:
    buf = data.tobytes()
    ids = np.flatnonzero(loc.fast)
    a, b = (starts[ids] + rel[ids]).tolist(), (starts[ids] + lens[ids]).tolist()
    pay = loc.payload
    for i, x, y in zip(ids.tolist(), a, b):
        pay[i] = buf[x:y]


def read_dred_packets(packets: Sequence[bytes], profile: Profile | str, *, min_feature_frames: int = 104,
                      native: bool | None = None) -> tuple[DredLocations, BatchDred]:
    """:func:`locate_dred_payloads` then :func:`read_dred_payloads` of the packets that carry DRED (the rows of
    the :class:`BatchDred` are ``np.flatnonzero(loc.found)``), reading the payloads in place in the packets'
    bytes where the native kernel runs. The locations' ``payload`` list is filled too."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    loc, data, extra = _locate(packets, prof, native)
    ids = np.flatnonzero(loc.found)
    if data is None:
        return loc, read_dred_payloads([loc.payload[i] for i in ids], prof, min_feature_frames=min_feature_frames,
                                       dred_frame_offset=loc.dred_frame_offset[ids], native=False)
    starts, lens, rel = extra
    _fill_payloads(loc, data, starts, lens, rel)
    if loc.fast.all():
        pd, ps, pl = data, starts + rel, lens - rel
    else:
        pd, ps, pl = _native.joined([loc.payload[i] for i in ids])
    b = _read_native(_native.library(), prof, pd, ps, pl, min_feature_frames, loc.dred_frame_offset[ids])
    return loc, b


def locate_dred_payloads(packets: Sequence[bytes], profile: Profile | str, *,
                         native: bool | None = None) -> DredLocations:
    """The DRED payload of each packet, exactly as
    :func:`~opus_dred.bitstream._extensions.find_dred_extension` gives it (``src/opus_decoder.c:
    dred_find_payload``), for many packets.

    The common framing (a code 3 packet whose padding starts with the DRED extension, coded with L=0)
    is read by a short loop over the framing bytes and decided by the same
    :func:`~opus_dred.bitstream._extensions.dred_version_in`; every other packet is handed to
    ``find_dred_extension``, whose typed error (``PacketError``, ``ExtensionError``) propagates for the
    first packet that has one, as a loop over ``find_dred_extension`` would raise it. ``native``: the lean
    path in C (``None``: where it builds) or in Python.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    loc, data, extra = _locate(packets, prof, native)
    if data is not None:
        _fill_payloads(loc, data, *extra)
    return loc


def _locate_py(packets: Sequence[bytes], prof: Profile) -> DredLocations:
    head = prof.extension_id << 1  # long extension, L = 0
    version = prof.dred_version
    lp = DRED_EXPERIMENTAL_BYTES
    fs = _frame_sizes()
    n = len(packets)
    payloads: list[bytes] = [b""] * n
    frame = np.zeros(n, np.int64)
    offs = np.zeros(n, np.int64)
    where = np.zeros(n, np.int64)
    found = np.zeros(n, bool)
    fast = np.zeros(n, bool)
    for i, p in enumerate(packets):
        data = p if type(p) is bytes else bytes(p)
        s = _lean_locate(data, fs, head)
        # dred_find_payload's test on the extension's data (to the end of the packet); it reads no further
        # than the prefix and one payload byte
        if s >= 0 and dred_version_in(data[s:s + lp + 1]) == version:
            payloads[i] = data[s + lp:]
            where[i] = s + lp
            found[i] = fast[i] = True
            continue
        loc = find_dred_extension(data, prof)
        if loc is not None:
            payloads[i] = loc.payload
            frame[i], offs[i], where[i] = loc.frame, loc.dred_frame_offset, loc.payload_offset
            found[i] = True
    return DredLocations(payloads, frame, offs, where, found, fast)
