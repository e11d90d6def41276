"""Hypothesis strategies for Opus DRED inputs, valid by construction (but the mutations).

Every value is made by opus-dred's writers: packets by :func:`opus_dred.bitstream._packet.write_packet`
(RFC 6716 §3.2), extension padding by :func:`opus_dred.bitstream._extensions.write_extensions`
(draft-ietf-mlcodec-opus-extension, in the profile's syntax), DRED payloads by
:func:`opus_dred.bitstream._dred.write_dred_payload` (draft-ietf-mlcodec-opus-dred, ``dred_encode_silk_frame``'s
layout). So a parser that rejects one of them is wrong, and libopus' parsers accept them too
(``tests/test_testing_kit.py`` checks both). :func:`mutations` and :func:`truncations` then break such values on
purpose, for robustness tests: a parser must answer them with a typed error or a value, never a crash or a hang.

Needs ``hypothesis`` (``pip install 'opus-dred[testing]'``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from hypothesis import strategies as st
from opus_dred.bitstream._arith import compute_quantizer, qmax_is_coded
from opus_dred.bitstream._dred import DredPayload, coding_tables, dred_extension_data, write_dred_payload
from opus_dred.bitstream._extensions import MAX_FRAMES, Extension, dred_extension_ids, write_extensions
from opus_dred.bitstream._packet import MAX_FRAME_BYTES, Toc, write_packet
from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.refimpl._receiver import PacketArrived, PacketLost

#: the longest packet RFC 6716 §3.2.5 allows, in samples at 48 kHz (120 ms)
MAX_PACKET_SAMPLES_48K = 5760
#: ids below 32 carry at most one byte (the L flag: "short" extensions of the extension draft)
FIRST_LONG_ID = 32
#: byte values that matter to the framing and extension syntax (separators, RTE, length chains, the DRED 'D')
INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x7F, 0x80, 0xFC, 0xFD, 0xFE, 0xFF, 0x44)


def _prof(profile: str | Profile) -> Profile:
    return get_profile(profile) if isinstance(profile, str) else profile


def _first_free_id(prof: Profile) -> int:
    """The lowest id an extension may carry: 2 in the 1.5 syntax, 3 in RTE's (id 2 is Repeat These Extensions)."""
    return 3 if prof.extension_syntax == "rte" else 2


# ------------------------------------------------------------------------------------------------
# extensions


@st.composite
def extension_lists(draw, profile: str | Profile, nb_frames: int | None = None, *, max_extensions: int = 8) -> tuple[list[Extension], int]:
    """``(extensions, nb_frames)``: a list :func:`write_extensions` writes in ``profile``'s syntax, in frame
    order (the order a parser returns them), with ids from the first free one to 127 (DRED's id left out: see
    :func:`opus_packets` for DRED), short ids with 0 or 1 byte, long ids up to 300 bytes, and now and then the
    same extensions on every frame (what RTE compresses)."""
    prof = _prof(profile)
    nb = draw(st.integers(1, MAX_FRAMES)) if nb_frames is None else nb_frames
    dred_ids = dred_extension_ids()
    ids = st.integers(_first_free_id(prof), 127).filter(lambda i: i not in dred_ids)
    exts = []
    for _ in range(draw(st.integers(0, max_extensions))):
        eid = draw(ids)
        data = draw(st.binary(max_size=1) if eid < FIRST_LONG_ID else st.binary(max_size=300))
        exts.append(Extension(eid, draw(st.integers(0, nb - 1)), data))
    if exts and nb > 1 and draw(st.booleans()):
        head = [e for e in exts if e.frame == 0] or exts[:1]
        exts = [Extension(e.id, f, draw(st.binary(min_size=len(e.data), max_size=len(e.data))) if e.id < FIRST_LONG_ID
                          else draw(st.binary(max_size=40))) for f in range(nb) for e in head]
    return sorted(exts, key=lambda e: e.frame), nb


# ------------------------------------------------------------------------------------------------
# DRED payloads


def _laplace_values(draw, params: Sequence, spread: int) -> list[int]:
    """Values for one row: 0 where the statistics give a position zero probability (``par`` None), else small
    integers, mostly near 0 as a real encoder's are."""
    return [0 if par is None else draw(st.integers(-spread, spread)) for par in params]


@st.composite
def dred_payloads(draw, profile: str | Profile, *, max_latents: int | None = None, spread: int = 8) -> DredPayload:
    """A :class:`DredPayload` that :func:`write_dred_payload` codes: any q0, dQ and qmax the syntax allows
    (also those libopus' encoder never picks), the extended offset with any extra offset, any offset, 0 to the
    profile's maximum latent chunks, values where the statistics allow them. ``write_dred_payload(p)`` gives
    the bytes; ``dred_extension_data`` prefixes them for the extension."""
    prof = _prof(profile)
    tables = coding_tables(prof)
    q0 = draw(st.integers(0, prof.quant_levels - 1))
    dq = draw(st.integers(0, 7))
    qmax = draw(st.integers(q0 + 1, 15)) if qmax_is_coded(q0, dq) else 15
    extended = draw(st.booleans())
    nb = draw(st.integers(0, prof.max_latents if max_latents is None else min(max_latents, prof.max_latents)))
    levels = [compute_quantizer(q0, dq, qmax, k, prof.dq_table) for k in range(nb)]
    state = np.array(_laplace_values(draw, tables.state[q0], spread), np.int32)
    lat = np.array([_laplace_values(draw, tables.latent[q], spread) for q in levels], np.int32).reshape(nb, prof.latent_dim)
    return DredPayload(prof.name, q0=q0, dQ=dq, qmax=qmax, extended_offset=extended,
                       extra_offset=32 * draw(st.integers(0, 255)) if extended else 0, offset=draw(st.integers(0, 31)),
                       state_q=state, latents_q=lat)


# ------------------------------------------------------------------------------------------------
# packets


@st.composite
def _framing(draw, max_frame_bytes: int) -> tuple[Toc, list[bytes]]:
    """A TOC and its frames: 1 to 48 frames, at most 120 ms, each at most ``max_frame_bytes`` (<= 1275), equal
    sizes or not."""
    toc = Toc(draw(st.integers(0, 31)), draw(st.booleans()), 0)
    n = draw(st.integers(1, min(MAX_FRAMES, MAX_PACKET_SAMPLES_48K // toc.frame_size_48k)))
    top = min(max_frame_bytes, MAX_FRAME_BYTES)
    if draw(st.booleans()):
        size = draw(st.integers(0, top))
        return toc, [draw(st.binary(min_size=size, max_size=size)) for _ in range(n)]
    return toc, [draw(st.binary(max_size=top)) for _ in range(n)]


@st.composite
def opus_packets(draw, profile: str | Profile | None = None, *, dred: bool | None = None,
                 self_delimited: bool = False, max_frame_bytes: int = 60) -> bytes:
    """A valid Opus packet (RFC 6716 §3.2): any TOC, codes 0 to 3, CBR or VBR, 1 to 48 frames up to 120 ms.

    With a ``profile``, a code 3 packet may carry padding with extensions in the profile's syntax
    (:func:`extension_lists`) and, when ``dred`` is True (or, for None, when drawn), one DRED extension on any
    frame holding a :func:`dred_payloads` payload, which the profile's decoder finds. ``self_delimited`` writes
    the self-delimiting framing of RFC 6716 Appendix B. Frame contents are random bytes: the packet is valid
    framing, not decodable audio."""
    toc, frames = draw(_framing(max_frame_bytes))
    padding = None
    if profile is not None and (dred or draw(st.booleans())):
        prof = _prof(profile)
        exts, _ = draw(extension_lists(prof, len(frames), max_extensions=4))
        if dred if dred is not None else draw(st.booleans()):
            payload = draw(dred_payloads(prof))
            data = dred_extension_data(write_dred_payload(payload, prof), prof)
            at = draw(st.integers(0, len(exts)))
            frame = draw(st.integers(0, len(frames) - 1))
            exts.insert(at, Extension(prof.extension_id, frame, data))
            exts.sort(key=lambda e: e.frame)
        padding = write_extensions(exts, len(frames), syntax=prof.extension_syntax)
    elif profile is None and draw(st.booleans()):
        padding = draw(st.binary(max_size=40))
    return write_packet(toc, frames, padding=padding, self_delimited=self_delimited)


# ------------------------------------------------------------------------------------------------
# breaking things on purpose


def _bytes_of(data: bytes | st.SearchStrategy) -> st.SearchStrategy:
    return data if isinstance(data, st.SearchStrategy) else st.just(bytes(data))


@st.composite
def mutations(draw, data: bytes | st.SearchStrategy, *, max_edits: int = 4) -> bytes:
    """``data`` (bytes, or a strategy of bytes such as :func:`opus_packets`) with 1 to ``max_edits`` edits: a
    byte set to a value the syntax cares about or to any value, a bit flipped, a byte inserted or deleted, a
    slice repeated. Not valid on purpose."""
    out = bytearray(draw(_bytes_of(data)))
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(["set", "flip", "insert", "delete", "repeat"]))
        if not out or kind == "insert":
            out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(INTERESTING_BYTES) | st.integers(0, 255)))
            continue
        i = draw(st.integers(0, len(out) - 1))
        if kind == "set":
            out[i] = draw(st.sampled_from(INTERESTING_BYTES) | st.integers(0, 255))
        elif kind == "flip":
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete":
            del out[i]
        else:
            j = min(len(out), i + draw(st.integers(1, 16)))
            out[i:i] = out[i:j] * draw(st.integers(1, 4))
    return bytes(out)


@st.composite
def truncations(draw, data: bytes | st.SearchStrategy) -> bytes:
    """``data`` cut short: a prefix of 0 to ``len(data) - 1`` bytes (a truncation inside any field)."""
    whole = draw(_bytes_of(data))
    return whole[: draw(st.integers(0, max(0, len(whole) - 1)))]


# ------------------------------------------------------------------------------------------------
# receiver events


@st.composite
def receiver_events(draw, rate: int = 48000, *, max_runs: int = 8, reorder: bool = True) -> list:
    """Events for :class:`opus_dred.refimpl.Receiver` (no :class:`EndOfStream`; ``run`` adds it): runs of 1 to
    60 received and lost frames, packets of 10 to 60 ms (one duration for the stream, or any), with or without
    LBRR, 0 to 26 DRED latents at offsets from -8 to 40 (2.5 ms units); with ``reorder``, some loss reports
    left out, neighbours swapped and packets duplicated, as a network delivers them."""
    f20 = rate // 50
    fixed = draw(st.sampled_from([None, f20]))
    events: list = []
    lost = draw(st.booleans())
    seq = 0
    for _ in range(draw(st.integers(1, max_runs))):
        for _ in range(draw(st.integers(1, 60))):
            if not lost:
                events.append(_arrived(draw, seq, fixed or draw(st.sampled_from([f20 // 2, f20, 2 * f20, 3 * f20]))))
            elif not reorder or draw(st.integers(0, 4)):
                events.append(PacketLost(seq))
            seq += 1
        lost = not lost
    if not events:  # every loss report left out: the stream still says that frame 0 exists
        events.append(PacketLost(0))
    if reorder and len(events) > 1:
        _shuffle_neighbours(draw, events)
    return events


def _arrived(draw, seq: int, samples: int) -> PacketArrived:
    nb = draw(st.integers(0, 26))
    return PacketArrived(seq, samples, draw(st.booleans()), nb, draw(st.integers(-8, 40)) if nb else 0)


def _shuffle_neighbours(draw, events: list) -> None:
    for _ in range(draw(st.integers(0, 6))):
        k = draw(st.integers(0, len(events) - 2))
        j = min(len(events) - 1, k + draw(st.integers(1, 3)))
        events[k], events[j] = events[j], events[k]
    for _ in range(draw(st.integers(0, 3))):
        k = draw(st.integers(0, len(events) - 1))
        events.insert(draw(st.integers(k, len(events))), events[k])
