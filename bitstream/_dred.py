"""The DRED payload: header, initial state and quantized latents (draft-ietf-mlcodec-opus-dred).

Syntax (identical in libopus 1.5.2 and 1.6.1; ``dnn/dred_decoder.c:dred_ec_decode``, written by
``dnn/dred_encoder.c:dred_encode_silk_frame``), all range coded (RFC 6716 §4.1):

1. ``q0 = uint(16)``, ``dQ = uint(8)``;
2. the offset: a 2-way flag ``uint(2)`` (``extended_offset``); if set ``extra_offset = 32 * uint(256)``;
   then ``offset = uint(32)``. ``dred_offset = 16 - offset - extra_offset + dred_frame_offset`` (2.5 ms units);
3. ``qmax``: 15 unless ``q0 < 14`` and ``dQ > 0``; then one symbol of ``ft = 2*nvals`` with
   ``nvals = 14 - q0``: the lower half [0, nvals) means 15, symbol ``nvals + j`` means ``q0 + 1 + j``;
4. the initial state: ``state_dim`` Laplace values with the statistics of level ``q0``;
5. latent chunks, newest first, while ``8*num_bytes - tell > 7`` and fewer than the requested amount:
   chunk ``k`` uses level ``min(qmax, q0 + (dq_table[dQ]*k + 8) // 16)``
   (``dnn/dred_coding.c:compute_quantizer``).

Each value (``dred_decode_latents``): 0 without reading anything when ``r == 0`` or ``p0 == 255``;
otherwise ``celt/laplace.c:ec_laplace_decode_p0(p0 << 7, r << 7)``. Dequantized as libopus does, in
float32: ``q * 256 / (scale or 1)``. Profiles with ``has_q_feature`` (1.6.x) append ``q_level*0.125 - 1``
to each latent vector.

libopus never rejects a payload once found: reading past the end gives zeros. :func:`read_dred_payload`
does the same and records it in :attr:`DredPayload.read_past_end`.

:func:`read_dred_payload` reads as the steps above (``_read_header``, ``_read_initial_state``,
``_read_latents``); each field is a named read of the range decoder (:meth:`RangeDecoder.read`), and the
bit positions of :attr:`DredPayload.fields` are recorded by the
:class:`~opus_dred.bitstream._rangecoder.TracingDecoder` it reads with, not by the syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opus_dred.bitstream._arith import (
    QMAX_UNCODED,
    compute_dred_offset,
    compute_quantizer,
    dequant_divisor,
    dequantize,
    dred_end,
    extra_offset_from_code,
    extra_offset_to_code,
    latent_coverage_ms,
    min_feature_frames_for,
    parse_return,
    q_feature,
    qmax_is_coded,
    qmax_nvals,
    qmax_of_symbol,
    qmax_symbol,
    requested_chunks,
)
from opus_dred.bitstream._errors import DredPayloadError, RangeCoderError
from opus_dred.bitstream._profiles import get_profile
from opus_dred.bitstream._rangecoder import (
    RangeDecoder,
    RangeEncoder,
    TracingDecoder,
    laplace_decode_p0,
    laplace_encode_p0,
)


def _profile(profile):
    if isinstance(profile, str):
        return get_profile(profile)
    return profile


@dataclass
class DredPayload:
    """A DRED payload, decoded or to be written.

    Names and units are libopus' (``dred_ec_decode``): ``q0``, ``dQ``, ``qmax``, ``extended_offset`` (the
    flag), ``extra_offset`` (32 × the coded ``uint(256)``), ``offset`` (the coded ``uint(32)``),
    ``dred_frame_offset`` and ``dred_offset`` in 2.5 ms units. Quantized values are what is coded; the float
    arrays are libopus' dequantized decoder inputs. ``fields`` lists ``(name, tell_before, tell_after)`` in
    bits for each coded field (``inspect``).
    """

    profile: str
    q0: int
    dQ: int
    qmax: int = QMAX_UNCODED
    extended_offset: bool = False
    extra_offset: int = 0
    offset: int = 0
    dred_frame_offset: int = 0
    state_q: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    latents_q: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    q_levels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    state: np.ndarray | None = None
    latents: np.ndarray | None = None
    num_bytes: int = 0
    end_tell: int = 0
    read_past_end: bool = False
    stop_reason: str = ""
    fields: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def nb_latents(self) -> int:
        return int(self.latents_q.shape[0])

    @property
    def dred_offset(self) -> int:
        """``OpusDRED.dred_offset`` (2.5 ms units): :func:`~opus_dred.bitstream._arith.compute_dred_offset`."""
        return compute_dred_offset(self.offset, self.extra_offset, self.dred_frame_offset)

    @property
    def coverage_ms(self) -> float:
        """Audio the latents describe: 4 feature frames of 10 ms per latent chunk."""
        return latent_coverage_ms(self.nb_latents)

    def available_samples(self, sampling_rate: int = 48000) -> int:
        """What ``opus_dred_parse`` returns (:func:`~opus_dred.bitstream._arith.parse_return`)."""
        return parse_return(self.nb_latents, self.dred_offset, sampling_rate)

    def dred_end(self, sampling_rate: int = 48000) -> int:
        """``*dred_end`` of ``opus_dred_parse`` (:func:`~opus_dred.bitstream._arith.dred_end`)."""
        return dred_end(self.dred_offset, sampling_rate)

    def header_dict(self) -> dict[str, Any]:
        """The header under the names the vectors and ``inspect`` write: ``dq``, ``extra`` (the coded
        ``uint(256)``), ``off`` (the coded ``uint(32)``)."""
        return {
            "q0": self.q0,
            "dq": self.dQ,
            "qmax": self.qmax,
            "extended_offset": bool(self.extended_offset),
            "extra": extra_offset_to_code(self.extra_offset),
            "off": self.offset,
            "dred_frame_offset": self.dred_frame_offset,
            "dred_offset": self.dred_offset,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            **self.header_dict(),
            "nb_latents": self.nb_latents,
            "coverage_ms": self.coverage_ms,
            "q_levels": [int(x) for x in self.q_levels],
            "state_q": [int(x) for x in self.state_q],
            "latents_q": [[int(x) for x in row] for row in self.latents_q],
            "num_bytes": self.num_bytes,
            "end_tell": self.end_tell,
            "read_past_end": self.read_past_end,
            "stop_reason": self.stop_reason,
            "fields": [list(f) for f in self.fields],
        }


class CodingTables:
    """Per-profile coding parameters, precomputed once: per level, per dim, ``(p0 << 7, r << 7)`` or None."""

    _cache: dict[str, "CodingTables"] = {}

    def __init__(self, prof) -> None:
        st = prof.stats
        self.latent = [self._params(st.latent_p0[q], st.latent_r[q]) for q in range(prof.quant_levels)]
        self.state = [self._params(st.state_p0[q], st.state_r[q]) for q in range(prof.quant_levels)]
        self.latent_div = dequant_divisor(st.latent_scale)
        self.state_div = dequant_divisor(st.state_scale)

    @staticmethod
    def _params(p0_row, r_row):
        return [None if (int(r) == 0 or int(p) == 255) else (int(p) << 7, int(r) << 7)
                for p, r in zip(p0_row, r_row)]

    @classmethod
    def of(cls, prof) -> "CodingTables":
        key = f"{prof.name}:{prof.model_pack}"
        t = cls._cache.get(key)
        if t is None:
            t = cls._cache[key] = cls(prof)
        return t


def coding_tables(profile) -> CodingTables:
    """The per-level Laplace parameters and dequantization divisors of a profile (built once, cached)."""
    return CodingTables.of(_profile(profile))


@dataclass(frozen=True)
class _Header:
    """The payload header as ``dred_ec_decode`` reads it (libopus' names and units, see :class:`DredPayload`)."""

    q0: int
    dQ: int
    extended_offset: int
    extra_offset: int
    offset: int
    qmax: int


def read_dred_payload(
    data: bytes,
    profile,
    *,
    max_latents: int | None = None,
    min_feature_frames: int | None = None,
    max_dred_samples: int | None = None,
    sampling_rate: int = 48000,
    dred_frame_offset: int = 0,
    decoder: RangeDecoder | TracingDecoder | None = None,
) -> DredPayload:
    """Decode a DRED payload (the bytes after ``'D', version``) as ``dred_ec_decode`` does.

    How many chunks are read, as libopus' caller asks for them: ``min_feature_frames`` directly (the bound of
    ``dred_ec_decode``'s loop), or from ``max_dred_samples`` at ``sampling_rate`` under the profile's
    ``chunk_bound`` rule (:func:`~opus_dred.bitstream._arith.min_feature_frames_for`: ``"release-1.5"``
    ``min(2 + 100*max/sr, 104)``; ``"master-2026-06"`` from the request and the header's ``dred_offset``);
    by default as many as the profile allows (26). ``max_latents`` caps the count further. The loop also
    stops, like libopus', when ``8*len(data) - tell <= 7`` (so a last chunk under 8 bits is lost).
    ``dred_frame_offset`` is the carrying frame's position (see
    :func:`opus_dred.bitstream._extensions.find_dred_extension`).

    ``decoder`` is the range decoder to read ``data`` with: by default a
    :class:`~opus_dred.bitstream._rangecoder.TracingDecoder`, whose spans become :attr:`DredPayload.fields`;
    a plain :class:`~opus_dred.bitstream._rangecoder.RangeDecoder` reads the same values and leaves
    ``fields`` empty.
    """
    prof = _profile(profile)
    data = bytes(data)
    tables = CodingTables.of(prof)
    if max_latents is not None and max_latents < 0:
        raise DredPayloadError(f"max_latents {max_latents} is negative", profile=prof.name)
    dec = TracingDecoder(RangeDecoder(data)) if decoder is None else decoder
    try:
        header = _read_header(dec)
        dred_offset = compute_dred_offset(header.offset, header.extra_offset, dred_frame_offset)
        n_chunks = _chunks_to_read(prof, max_latents, min_feature_frames, max_dred_samples, sampling_rate,
                                   dred_offset)
        state_q = _read_initial_state(dec, prof, tables, header.q0)
        latents_q, levels, stop = _read_latents(dec, prof, tables, header, n_chunks, len(data))
    except RangeCoderError as exc:  # pragma: no cover - only a profile with zero-probability tables
        raise DredPayloadError(f"range decoder failed: {exc.message}", bit_offset=dec.tell(),
                               byte_offset=dec.tell() // 8, rule="dred: range coder", profile=prof.name) from None
    lq = np.array(latents_q, np.int32).reshape(len(latents_q), prof.latent_dim)
    lv = np.array(levels, np.int32)
    state, latents = _dequantize_payload(prof, tables, header.q0, state_q, lq, lv)
    return DredPayload(
        profile=prof.name,
        q0=header.q0,
        dQ=header.dQ,
        qmax=header.qmax,
        extended_offset=bool(header.extended_offset),
        extra_offset=header.extra_offset,
        offset=header.offset,
        dred_frame_offset=dred_frame_offset,
        state_q=state_q,
        latents_q=lq,
        q_levels=lv,
        state=state,
        latents=latents,
        num_bytes=len(data),
        end_tell=dec.tell(),
        read_past_end=dec.tell() > 8 * len(data),
        stop_reason=stop,
        fields=dec.fields if isinstance(dec, TracingDecoder) else [],
    )


def _chunks_to_read(prof, max_latents: int | None, min_feature_frames: int | None, max_dred_samples: int | None,
                    sampling_rate: int, dred_offset: int) -> int:
    """The latent chunks asked for: ``dred_ec_decode``'s loop bound ``min_feature_frames`` (given, or from
    ``max_dred_samples`` under the profile's ``chunk_bound`` rule, which may use the header's ``dred_offset``,
    or the profile's most), then ``max_latents``."""
    if min_feature_frames is None:
        if max_dred_samples is not None:
            min_feature_frames = min_feature_frames_for(max_dred_samples, sampling_rate, prof.max_latents,
                                                        rule=prof.chunk_bound, dred_offset=dred_offset)
        else:
            min_feature_frames = 4 * prof.max_latents
    n_chunks = requested_chunks(min_feature_frames, prof.max_latents)
    if max_latents is not None:
        n_chunks = min(n_chunks, max_latents)
    return n_chunks


def _read_header(dec: RangeDecoder | TracingDecoder) -> _Header:
    """The header (draft-ietf-mlcodec-opus-dred, the DRED payload; ``dred_ec_decode``): the quantizer
    ``q0 = uint(16)`` and its step ``dQ = uint(8)``, the offset, then ``qmax``."""
    q0 = dec.read("q0", RangeDecoder.dec_uint, 16)
    dQ = dec.read("dq", RangeDecoder.dec_uint, 8)
    extended, extra_offset, offset = _read_offset(dec)
    qmax = dec.read("qmax", _dec_qmax, q0) if qmax_is_coded(q0, dQ) else QMAX_UNCODED
    return _Header(q0, dQ, extended, extra_offset, offset, qmax)


def _read_offset(dec: RangeDecoder | TracingDecoder) -> tuple[int, int, int]:
    """The offset (``dred_ec_decode``), in 2.5 ms units: the flag ``extended_offset = uint(2)``; when set, the
    extra offset ``32 * uint(256)``; then ``offset = uint(32)``."""
    extended = dec.read("extended_offset", RangeDecoder.dec_uint, 2)
    extra_offset = extra_offset_from_code(dec.read("extra", RangeDecoder.dec_uint, 256)) if extended else 0
    offset = dec.read("off", RangeDecoder.dec_uint, 32)
    return extended, extra_offset, offset


def _dec_qmax(dec: RangeDecoder, q0: int) -> int:
    """``qmax`` (``dred_ec_decode``): one symbol of ``ft = 2 * nvals``; the lower half ``[0, nvals)`` means 15,
    symbol ``nvals + j`` means ``q0 + 1 + j``."""
    nvals = qmax_nvals(q0)
    ft = 2 * nvals
    s = dec.decode(ft)
    if s >= nvals:
        dec.update(s, s + 1, ft)
        return qmax_of_symbol(q0, s)
    dec.update(0, nvals, ft)
    return QMAX_UNCODED


def _dec_laplace_values(dec: RangeDecoder, params, n: int) -> list[int]:
    """``n`` quantized values (``dred_decode_latents``): a position the statistics give zero probability
    (``None``: ``r == 0`` or ``p0 == 255``) is 0 without a read, any other
    ``ec_laplace_decode_p0(p0 << 7, r << 7)``."""
    values = [0] * n
    for j, par in enumerate(params):
        if par is not None:
            values[j] = laplace_decode_p0(dec, par[0], par[1])
    return values


def _read_initial_state(dec: RangeDecoder | TracingDecoder, prof, tables: CodingTables, q0: int) -> np.ndarray:
    """The initial state (draft-ietf-mlcodec-opus-dred; ``dred_ec_decode``): ``state_dim`` values with the
    statistics of level ``q0``."""
    return np.array(dec.read("state", _dec_laplace_values, tables.state[q0], prof.state_dim), np.int32)


def _read_latents(dec: RangeDecoder | TracingDecoder, prof, tables: CodingTables, header: _Header, n_chunks: int,
                  num_bytes: int) -> tuple[list[list[int]], list[int], str]:
    """The latent chunks, newest first (draft-ietf-mlcodec-opus-dred; ``dred_ec_decode``'s loop): chunk ``k``
    at the level :func:`~opus_dred.bitstream._arith.compute_quantizer` gives, while more than 7 bits are left.

    Returns the chunks' values, their levels and why the loop stopped: ``"bits"`` (the bytes ran out),
    ``"requested"`` (fewer were asked for than the profile allows) or ``"max"``."""
    rows: list[list[int]] = []
    levels: list[int] = []
    for k in range(n_chunks):
        if 8 * num_bytes - dec.tell() <= 7:
            return rows, levels, "bits"
        level = compute_quantizer(header.q0, header.dQ, header.qmax, k, prof.dq_table)
        rows.append(dec.read(f"latent[{k}]", _dec_laplace_values, tables.latent[level], prof.latent_dim))
        levels.append(level)
    return rows, levels, "requested" if n_chunks < prof.max_latents else "max"


def _dequantize_payload(prof, tables: CodingTables, q0: int, state_q: np.ndarray, lq: np.ndarray,
                        lv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """libopus' decoder inputs (``dred_decode_latents``, ``dred_ec_decode``): every value ``q * 256 / scale``
    in float32; profiles with the quantizer feature (1.6.x) append it to each latent vector."""
    state = dequantize(state_q, tables.state_div[q0])
    lat = dequantize(lq, tables.latent_div[lv]) if len(lv) else np.zeros((0, prof.latent_dim), np.float32)
    if prof.has_q_feature:
        qf = q_feature(lv).astype(np.float32).reshape(-1, 1)
        lat = np.concatenate([lat, qf], axis=1)
    return state, lat


def write_dred_payload(payload: DredPayload, profile=None) -> bytes:
    """Range-code ``payload`` as libopus' ``dred_encode_silk_frame`` does, and return the bytes.

    Every field can be set, including values libopus' encoder never picks (any q0/dQ/qmax, an extended
    offset with ``extra_offset = 0``, up to ``max_latents`` chunks). The buffer is cut to
    ``ceil(tell / 8)`` bytes before ``ec_enc_done``, as libopus does. ``q_levels``, if given, must be
    what ``compute_quantizer`` gives. Values at positions the statistics make impossible
    (``r == 0`` or ``p0 == 255``) must be 0. Raises :class:`DredPayloadError` for what cannot be coded.
    """
    prof = _profile(profile if profile is not None else payload.profile)
    tables = CodingTables.of(prof)
    p = payload

    def bad(msg: str) -> DredPayloadError:
        return DredPayloadError(msg, rule="dred: write", profile=prof.name)

    if not 0 <= p.q0 < 16:
        raise bad(f"q0 {p.q0} outside 0..15")
    if not 0 <= p.dQ < 8:
        raise bad(f"dQ {p.dQ} outside 0..7")
    extra = extra_offset_to_code(p.extra_offset)
    if not 0 <= extra < 256 or extra_offset_from_code(extra) != p.extra_offset or (extra and not p.extended_offset):
        raise bad(f"extra_offset {p.extra_offset} needs extended_offset and 32 x 0..255")
    if not 0 <= p.offset < 32:
        raise bad(f"offset {p.offset} outside 0..31")
    if qmax_is_coded(p.q0, p.dQ):
        if not p.q0 < p.qmax <= QMAX_UNCODED:
            raise bad(f"qmax {p.qmax} outside {p.q0 + 1}..15")
    elif p.qmax != QMAX_UNCODED:
        raise bad(f"qmax is 15 when q0 >= 14 or dQ == 0, not {p.qmax}")
    state_q = np.asarray(p.state_q, dtype=np.int64).reshape(-1)
    if state_q.shape[0] != prof.state_dim:
        raise bad(f"state has {state_q.shape[0]} values, profile wants {prof.state_dim}")
    latents_q = np.asarray(p.latents_q, dtype=np.int64)
    if latents_q.size == 0:
        latents_q = latents_q.reshape(0, prof.latent_dim)
    if latents_q.ndim != 2 or latents_q.shape[1] != prof.latent_dim:
        raise bad(f"latents shaped {latents_q.shape}, profile wants [n, {prof.latent_dim}]")
    nb = latents_q.shape[0]
    if nb > prof.max_latents:
        raise bad(f"{nb} latent chunks, at most {prof.max_latents}")
    levels = [compute_quantizer(p.q0, p.dQ, p.qmax, k, prof.dq_table) for k in range(nb)]
    if p.q_levels is not None and len(p.q_levels) and [int(x) for x in p.q_levels] != levels:
        raise bad(f"q_levels {list(p.q_levels)} differ from compute_quantizer's {levels}")

    size = 64 + 2 * int(np.abs(state_q).sum() // 7 + np.abs(latents_q).sum() // 7) + 4 * (state_q.size + latents_q.size)
    enc = RangeEncoder(size)
    encode_header(enc, p.q0, p.dQ, p.qmax, bool(p.extended_offset), extra, p.offset)
    try:
        encode_values(enc, state_q, tables.state[p.q0], "state", prof)
        for k in range(nb):
            encode_values(enc, latents_q[k], tables.latent[levels[k]], f"latent[{k}]", prof)
    except RangeCoderError as exc:
        raise bad(f"cannot code: {exc.message}") from None
    if enc.error or (enc.tell() + 7) // 8 > size:
        raise bad("internal: encoder buffer too small")  # pragma: no cover
    out = finish_payload(enc)
    if enc.error:
        raise bad("internal: range encoder overflow")  # pragma: no cover
    return out


def encode_header(enc: RangeEncoder, q0: int, dQ: int, qmax: int, extended_offset: bool, extra_code: int,
                  offset: int) -> None:
    """Code the header (``dred_encode_silk_frame``; the inverse of :func:`_read_header`): ``q0 = uint(16)``,
    ``dQ = uint(8)``, the flag ``uint(2)``, when set the extra offset's ``uint(256)`` (``extra_code``), the
    offset ``uint(32)``, then ``qmax`` when :func:`~opus_dred.bitstream._arith.qmax_is_coded`: the lower half
    of ``ft = 2 * nvals`` for ``qmax >= 15``, else the one symbol of :func:`~opus_dred.bitstream._arith.qmax_symbol`.
    The caller checks the ranges."""
    enc.enc_uint(q0, 16)
    enc.enc_uint(dQ, 8)
    enc.enc_uint(1 if extended_offset else 0, 2)
    if extended_offset:
        enc.enc_uint(extra_code, 256)
    enc.enc_uint(offset, 32)
    if qmax_is_coded(q0, dQ):
        nvals = qmax_nvals(q0)
        if qmax >= QMAX_UNCODED:
            enc.encode(0, nvals, 2 * nvals)
        else:
            s = qmax_symbol(q0, qmax)
            enc.encode(s, s + 1, 2 * nvals)


def encode_values(enc: RangeEncoder, values, params, what: str, prof) -> None:
    """Code one vector of quantized values (the coding half of ``dred_encode_latents``): a position whose
    statistics give zero probability (``None`` in ``params``: ``r == 0`` or ``p0 == 255``) is not coded and
    must hold 0 (:class:`DredPayloadError` otherwise, naming ``what[j]``); any other is
    ``ec_laplace_encode_p0(v, p0 << 7, r << 7)``."""
    for j, (v, par) in enumerate(zip(values, params)):
        v = int(v)
        if par is None:
            if v != 0:
                raise DredPayloadError(f"{what}[{j}] = {v}, but the statistics give that position zero probability",
                                       rule="dred: write", profile=prof.name)
            continue
        laplace_encode_p0(enc, v, par[0], par[1])


def finish_payload(enc: RangeEncoder) -> bytes:
    """End a payload as ``dred_encode_silk_frame`` does: shrink the buffer to ``ceil(tell / 8)`` bytes, then
    ``ec_enc_done``; the bytes returned are the payload."""
    enc.shrink((enc.tell() + 7) // 8)
    return enc.done()


def dred_extension_data(payload_bytes: bytes, profile) -> bytes:
    """The data of the DRED extension: the profile's experimental prefix (``'D'``, version) then the payload."""
    prof = _profile(profile)
    return bytes(prof.experimental_prefix) + bytes(payload_bytes)
