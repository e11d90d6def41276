"""The payload of a DRED-only stream record (libopus' official DRED decoding vectors).

A record of the DRED-only stream (:func:`opus_dred.bitstream._formats.read_dred_stream`) holds ``q0``,
``nb_chunks`` and a bare range-coded stream. Unlike the payload carried in an Opus packet
(:mod:`opus_dred.bitstream._dred`), it has no header: as libopus' ``fargan_demo -dred-decoding`` reads it
(dnn/fargan_demo.c, 1.6.x and master), the stream holds

1. the initial state, ``state_dim`` Laplace values with the statistics of level ``q0``;
2. ``nb_chunks / 2`` latent vectors, newest first, **all at level** ``q0`` (no ``dQ`` schedule), each with the
   quantizer feature ``q0 * 0.125 - 1`` appended where the profile has it.

Every latent is read, whatever the number of bits left (no ``8*num_bytes - tell`` stop rule). ``nb_chunks``
counts 20 ms chunks, two per latent, and must be even: fargan_demo writes outside its feature buffer for an odd
count. Decoded features come out of fargan_demo in chronological order (oldest frame first), the reverse of
``OpusDRED.fec_features``; :func:`chronological` converts.
"""

from __future__ import annotations

import numpy as np

from opus_dred.bitstream._arith import dequantize, q_feature
from opus_dred.bitstream._dred import DredPayload, _dec_laplace_values, _profile, _read_initial_state, coding_tables
from opus_dred.bitstream._errors import DredPayloadError, FormatError
from opus_dred.bitstream._formats import DRED_STREAM_MAX_CHUNKS, DredStreamRecord
from opus_dred.bitstream._rangecoder import RangeDecoder, RangeEncoder, TracingDecoder, laplace_encode_p0


def _check(prof, q0: int, nb_chunks: int, offset: int) -> None:
    if not 0 <= q0 < prof.quant_levels:
        raise FormatError(f"q0 = {q0} is not a quantizer level", byte_offset=offset, rule="dred-stream: q0",
                          profile=prof.name)
    if nb_chunks % 2:
        raise FormatError(
            f"nb_chunks = {nb_chunks} is odd (two 20 ms chunks per latent; fargan_demo would write outside its buffer)",
            byte_offset=offset + 4,
            rule="dred-stream: nb_chunks",
            profile=prof.name,
        )
    if nb_chunks > DRED_STREAM_MAX_CHUNKS:
        raise FormatError(
            f"nb_chunks = {nb_chunks} is more than fargan_demo holds ({DRED_STREAM_MAX_CHUNKS}, i.e. 25 latents)",
            byte_offset=offset + 4,
            rule="dred-stream: nb_chunks",
            profile=prof.name,
        )


def read_stream_record(record: DredStreamRecord, profile) -> DredPayload:
    """Decode one record's stream into a :class:`DredPayload` (q0 everywhere, ``dQ = 0``, no offset)."""
    prof = _profile(profile)
    _check(prof, record.q0, record.nb_chunks, record.offset)
    tables = coding_tables(prof)
    q0 = record.q0
    n = record.nb_chunks // 2
    dec = TracingDecoder(RangeDecoder(record.data))
    state_q = _read_initial_state(dec, prof, tables, q0)
    rows = [dec.read(f"latent[{k}]", _dec_laplace_values, tables.latent[q0], prof.latent_dim) for k in range(n)]
    lq = np.array(rows, np.int32).reshape(n, prof.latent_dim)
    levels = np.full(n, q0, np.int32)
    state = dequantize(state_q, tables.state_div[q0])
    lat = dequantize(lq, tables.latent_div[levels]) if n else np.zeros((0, prof.latent_dim), np.float32)
    if prof.has_q_feature:
        qf = np.full((n, 1), np.float32(q_feature(q0)), np.float32)
        lat = np.concatenate([lat, qf], axis=1)
    return DredPayload(
        profile=prof.name,
        q0=q0,
        dQ=0,
        qmax=q0,
        state_q=state_q,
        latents_q=lq,
        q_levels=levels,
        state=state,
        latents=lat,
        num_bytes=len(record.data),
        end_tell=dec.tell(),
        read_past_end=dec.tell() > 8 * len(record.data),
        stop_reason="record",
        fields=dec.fields,
    )


def write_stream_record(state_q, latents_q, q0: int, profile, *, size: int = 4096) -> DredStreamRecord:
    """Range-code an initial state and latents (all at level ``q0``) as one DRED-only stream record."""
    prof = _profile(profile)
    state_q = np.asarray(state_q, np.int64)
    latents_q = np.asarray(latents_q, np.int64).reshape(-1, prof.latent_dim)
    _check(prof, q0, 2 * latents_q.shape[0], 0)
    tables = coding_tables(prof)
    enc = RangeEncoder(size)

    def put(values, params) -> None:
        for v, par in zip(values, params):
            if par is None:
                if v != 0:
                    raise DredPayloadError("a value where the statistics allow only 0", profile=prof.name,
                                           rule="dred-stream: zero probability")
                continue
            laplace_encode_p0(enc, int(v), par[0], par[1])

    put(state_q, tables.state[q0])
    for row in latents_q:
        put(row, tables.latent[q0])
    fill = (enc.tell() + 7) // 8
    if enc.error or fill > size:
        raise DredPayloadError(f"the stream does not fit {size} bytes", profile=prof.name, rule="dred-stream: size")
    enc.shrink(fill)  # as libopus' encoder does for a DRED payload: just the bytes the symbols need
    data = enc.done()
    return DredStreamRecord(q0, 2 * latents_q.shape[0], data)


def chronological(features: np.ndarray) -> np.ndarray:
    """Reorder ``fec_features`` rows (newest first) into time order (oldest first), as fargan_demo writes."""
    return np.ascontiguousarray(np.asarray(features)[::-1])
