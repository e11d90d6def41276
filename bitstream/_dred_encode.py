"""The integer half of the DRED encoder: which latents a frame's payload carries, how they are coded within a
byte budget, and how the payload goes into an Opus packet.

``dnn/dred_encoder.c:dred_encode_silk_frame`` (identical in libopus 1.5.2 and 1.6.1) turns the encoder's
buffers into one payload per Opus frame. Its float part, the quantizer of ``dred_encode_latents``, lives in
``opus_dred.refimpl``; everything after it is integer and is here, in three steps:

1. :func:`plan_dred_frame`, the offsets (all in libopus' units: buffer entries of 20 ms, ``dred_offset`` in
   2.5 ms):

   * *delayed DRED*: when the newest activity entry is set and the previous frame skipped leading silence
     (``last_extra_dred_offset > 0``), this frame starts at that earlier offset, and the memory is cleared;
   * *leading silence*: while the entry at ``latent_offset`` (two 20 ms entries of activity, 16 values of
     2.5 ms from ``8 * latent_offset``, ``dred_voice_active``) holds no voice and the buffer goes on, the
     start moves one entry back in time and the extra offset grows by one; unless the frame was delayed, the
     extra offset is remembered as ``last_extra_dred_offset``;
   * the header's offset ``16 - (dred_offset - 8 * extra)``, coded as ``offset = uint(32)`` below 32 and
     otherwise with the extended flag and ``uint(256)`` for its multiples of 32;
   * the candidate chunks: buffer entries ``latent_offset + 2k`` for ``k = 0, 1, ...`` while
     ``2k < min(2 * max_chunks, latents_buffer_fill - latent_offset - 1)``, chunk ``k`` at level
     ``compute_quantizer(q0, dQ, qmax, k)``.

2. :func:`code_dred_frame`, the budget loop: the header and the initial state (the state entry at
   ``latent_offset``, at level ``q0``) are coded into a range encoder of ``max_bytes``; over budget there, no
   payload. Then each candidate chunk: if it takes the encoder past ``8 * max_bytes`` bits the loop stops
   (so no payload at all if it was the first); otherwise, when the chunk or the one before it is active, the
   encoder's state is saved (``ec_bak``) and the chunk counts as sent. At the end the encoder goes back to the
   last saved state, which drops the trailing inactive chunks and a chunk that did not fit. No payload is
   sent without a sent chunk, nor with only one chunk after skipped silence ("no empty DRED").
   The payload is cut to ``ceil(tell / 8)`` bytes and finished.

3. :func:`attach_dred`: the payload as the profile's DRED extension (``'D'``, version, payload) in the
   packet's padding, the way ``src/opus_encoder.c`` hands it to ``opus_packet_pad_impl``
   (``src/repacketizer.c:opus_repacketizer_out_range_impl``).

:func:`encode_dred_frame` runs steps 1 and 2 on quantized buffers. The range coding itself is the payload
writer's (:func:`~opus_dred.bitstream._dred.encode_header`, :func:`~opus_dred.bitstream._dred.encode_values`,
:func:`~opus_dred.bitstream._dred.finish_payload`).

The activity memory is libopus' ``activity_mem`` of ``OpusEncoder``: one byte per 2.5 ms, newest first,
normally 0 or 1. The delay rule tests the newest entry for non-zero, ``dred_voice_active`` for equality with 1,
as libopus does (1.5.x can store ``VAD_NO_DECISION``, 255 as a byte, which counts for the one and not the
other). Entries past the end of the given memory count as 0: libopus' memory holds ``4 * DRED_MAX_FRAMES``
entries and the leading-silence scan can read up to 8 past them (into the fields after ``activity_mem``),
but only when no chunk is left to send, where it changes ``last_extra_dred_offset`` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from opus_dred.bitstream._arith import DRED_MAX_LATENTS, QMAX_UNCODED, compute_quantizer, qmax_is_coded
from opus_dred.bitstream._dred import CodingTables, dred_extension_data, encode_header, encode_values, finish_payload
from opus_dred.bitstream._errors import DredPayloadError, ExtensionError, PacketError
from opus_dred.bitstream._extensions import Extension, parse_extensions, write_extensions
from opus_dred.bitstream._packet import encode_padding_length, parse_packet, write_packet
from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.bitstream._rangecoder import RangeEncoder

#: ``DRED_MAX_FRAMES`` of ``dnn/dred_config.h``: the most redundancy, in 10 ms frames. The encoder's latent and
#: state buffers are that many entries deep (of which ``2 * max_latents`` are ever filled, one per 20 ms), and
#: the activity memory holds 4 entries of 2.5 ms per frame.
DRED_MAX_FRAMES = 104

#: entries of ``OpusEncoder.activity_mem`` (``src/opus_encoder.c``): 2.5 ms each
ACTIVITY_ENTRIES = 4 * DRED_MAX_FRAMES

#: ``OPUS_SET_DRED_DURATION`` accepts 0..``DRED_MAX_FRAMES`` (10 ms units; ``src/opus_encoder.c``)
MAX_DURATION = DRED_MAX_FRAMES

#: what the header's ``offset = uint(32)`` and extended ``uint(256)`` can express together
MAX_TOTAL_OFFSET = 32 * 255 + 31


class DredSettingsError(DredPayloadError):
    """Encoder settings or buffer state that libopus' DRED encoder does not accept; ``parameter`` names the
    offending argument and ``value`` is what it was given."""

    def __init__(self, parameter: str, value, message: str, *, profile: str | None = None) -> None:
        self.parameter = parameter
        self.value = value
        super().__init__(f"{parameter}={value!r}: {message}", rule="dred: encoder settings", profile=profile)


def _profile(profile) -> Profile:
    return get_profile(profile) if isinstance(profile, str) else profile


def dred_chunks_for_duration(duration: int, max_latents: int = DRED_MAX_LATENTS) -> int:
    """The latent chunks libopus' encoder asks for with ``OPUS_SET_DRED_DURATION(duration)`` (10 ms units):
    ``min((duration + 5) / 4, DRED_NUM_REDUNDANCY_FRAMES / 2)`` (``src/opus_encoder.c``, the DRED part of
    ``opus_encode_frame_native``), and 0 for ``duration == 0``, which turns DRED off. ``duration`` outside
    0..104 raises :class:`DredSettingsError`, as the ctl refuses it."""
    if not isinstance(duration, (int, np.integer)) or not 0 <= duration <= MAX_DURATION:
        raise DredSettingsError("duration", duration, f"must be 0..{MAX_DURATION} (10 ms units)")
    return min((int(duration) + 5) // 4, max_latents) if duration else 0


def check_settings(profile, q0: int, dq: int, qmax: int) -> None:
    """Raise :class:`DredSettingsError` for a quantizer setting ``dred_encode_silk_frame`` does not accept:
    ``q0`` outside the profile's levels (0..15), ``dq`` outside its ``dq_table``, ``qmax`` below ``q0`` or above
    15, and ``qmax == q0`` where the header codes ``qmax`` (``q0 < 14`` and ``dq > 0``; libopus asserts
    ``qmax > q0`` there, since that symbol would read back as 15). ``qmax < 15`` with ``q0 >= 14`` is accepted
    as libopus accepts it: the header does not code it, so a reader takes 15 and, with ``dq > 0``, later
    chunks' levels differ from the ones coded."""
    prof = _profile(profile)
    levels = min(prof.quant_levels, QMAX_UNCODED + 1)
    if not isinstance(q0, (int, np.integer)) or not 0 <= q0 < levels:
        raise DredSettingsError("q0", q0, f"must be 0..{levels - 1}", profile=prof.name)
    if not isinstance(dq, (int, np.integer)) or not 0 <= dq < min(len(prof.dq_table), 8):
        raise DredSettingsError("dq", dq, f"must index the dQ table (0..{min(len(prof.dq_table), 8) - 1})",
                                profile=prof.name)
    if not isinstance(qmax, (int, np.integer)) or not q0 <= qmax <= QMAX_UNCODED:
        raise DredSettingsError("qmax", qmax, f"must be q0..15 ({q0}..{QMAX_UNCODED})", profile=prof.name)
    if qmax_is_coded(q0, dq) and qmax == q0:
        raise DredSettingsError("qmax", qmax, "must exceed q0 when q0 < 14 and dq > 0 (use dq = 0 for a fixed "
                                "level)", profile=prof.name)


def voice_active(activity: Sequence[int], offset: int) -> bool:
    """``dred_voice_active``: whether any of the 16 activity entries from ``8 * offset`` is 1 (entries past
    the end count as 0)."""
    lo = 8 * offset
    return any(int(a) == 1 for a in activity[lo:lo + 16])


@dataclass(frozen=True)
class DredFramePlan:
    """What :func:`plan_dred_frame` decides before any coding.

    ``latent_offset``: the buffer entry of the initial state and of the first chunk; ``extra_dred_offset``:
    entries of leading silence skipped; ``delayed``: whether the frame took the previous frame's skip
    (delayed DRED); ``last_extra_dred_offset``: the encoder's memory after this frame; ``total_offset``: what
    the header's offset fields code (``16 - (dred_offset - 8 * extra_dred_offset)``); ``chunks``: the
    candidate chunks' buffer entries and ``levels`` their quantizer levels; ``active``: whether each chunk's
    entry holds voice (``dred_voice_active``)."""

    q0: int
    dq: int
    qmax: int
    latent_offset: int
    extra_dred_offset: int
    delayed: bool
    last_extra_dred_offset: int
    total_offset: int
    chunks: tuple[int, ...]
    levels: tuple[int, ...]
    active: tuple[bool, ...]

    @property
    def extended_offset(self) -> bool:
        """Whether the header needs the extended offset (``total_offset > 31``)."""
        return self.total_offset > 31

    @property
    def extra_code(self) -> int:
        """The extended offset's ``uint(256)``: ``total_offset >> 5``."""
        return self.total_offset >> 5

    @property
    def offset(self) -> int:
        """The header's ``offset = uint(32)``: ``total_offset & 31`` (all of it when not extended)."""
        return self.total_offset & 31 if self.extended_offset else self.total_offset


def _check_int(name: str, value, lo: int, hi: int | None = None, profile: str | None = None) -> int:
    if not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise DredSettingsError(name, value, f"must be an integer {rng}", profile=profile)
    return int(value)


def _activity(activity) -> np.ndarray:
    if activity is None:
        return np.ones(ACTIVITY_ENTRIES, np.uint8)
    a = np.asarray(activity)
    if a.ndim != 1 or (a.size and (a.min() < 0 or a.max() > 255)):
        raise DredSettingsError("activity", f"array{a.shape} in {a.min()}..{a.max()}" if a.size else a.shape,
                                "must be one byte (0..255) per 2.5 ms, newest first")
    return a.astype(np.uint8)


def plan_dred_frame(profile, *, q0: int, dq: int, qmax: int, dred_offset: int, latents_buffer_fill: int,
                    latent_offset: int = 0, last_extra_dred_offset: int = 0, activity=None,
                    max_chunks: int) -> DredFramePlan:
    """The offsets and candidate chunks of one frame's payload (``dred_encode_silk_frame`` up to the coding;
    see the module docstring). ``activity`` is the activity memory, newest first (``None``: all active).

    Raises :class:`DredSettingsError` for settings libopus does not accept (:func:`check_settings`),
    ``max_chunks`` outside 0..max_latents, a buffer fill outside 0..2*max_latents, negative offsets, or a
    ``dred_offset`` whose header offset falls outside 0..8191."""
    prof = _profile(profile)
    check_settings(prof, q0, dq, qmax)
    name = prof.name
    max_chunks = _check_int("max_chunks", max_chunks, 0, prof.max_latents, name)
    fill = _check_int("latents_buffer_fill", latents_buffer_fill, 0, 2 * prof.max_latents, name)
    pos = _check_int("latent_offset", latent_offset, 0, DRED_MAX_FRAMES, name)
    last_extra = _check_int("last_extra_dred_offset", last_extra_dred_offset, 0, DRED_MAX_FRAMES, name)
    dred_offset = _check_int("dred_offset", dred_offset, -(1 << 31), (1 << 31) - 1, name)
    act = _activity(activity)

    delayed = False
    if act.size and act[0] != 0 and last_extra > 0:
        pos = last_extra
        delayed = True
        last_extra = 0
    extra = 0
    while pos < fill and not voice_active(act, pos):
        pos += 1
        extra += 1
    if not delayed:
        last_extra = extra
    total = 16 - (dred_offset - 8 * extra)
    if not 0 <= total <= MAX_TOTAL_OFFSET:
        raise DredSettingsError("dred_offset", dred_offset,
                                f"gives a header offset of {total} (16 - dred_offset + 8 x {extra} skipped), "
                                f"outside 0..{MAX_TOTAL_OFFSET}", profile=name)
    bound = min(2 * max_chunks, fill - pos - 1)
    chunks = tuple(pos + i for i in range(0, max(bound, 0), 2))
    levels = tuple(compute_quantizer(q0, dq, qmax, k, prof.dq_table) for k in range(len(chunks)))
    return DredFramePlan(q0=int(q0), dq=int(dq), qmax=int(qmax), latent_offset=pos, extra_dred_offset=extra,
                         delayed=delayed, last_extra_dred_offset=last_extra, total_offset=total, chunks=chunks,
                         levels=levels, active=tuple(voice_active(act, c) for c in chunks))


def code_dred_frame(profile, plan: DredFramePlan, state_q, latents_q: Sequence, *, max_bytes: int) -> bytes:
    """The budget loop of ``dred_encode_silk_frame`` (module docstring, step 2): the payload, or ``b""``.

    ``state_q``: the initial state quantized at ``plan.q0`` (``state_dim`` ints); ``latents_q``: one row of
    ``latent_dim`` ints per candidate chunk of ``plan``, quantized at its level (:attr:`DredFramePlan.levels`).
    Positions the statistics give zero probability must hold 0, as libopus' quantizer leaves them.
    """
    prof = _profile(profile)
    max_bytes = _check_int("max_bytes", max_bytes, 0, None, prof.name)
    if not plan.chunks:
        return b""
    if len(latents_q) < len(plan.chunks):
        raise DredSettingsError("latents_q", len(latents_q), f"needs {len(plan.chunks)} rows, one per candidate "
                                "chunk", profile=prof.name)
    tables = CodingTables.of(prof)
    enc = RangeEncoder(max_bytes)
    encode_header(enc, plan.q0, plan.dq, plan.qmax, plan.extended_offset, plan.extra_code, plan.offset)
    encode_values(enc, _row(state_q, prof.state_dim, "state_q", prof), tables.state[plan.q0], "state", prof)
    if enc.tell() > 8 * max_bytes:
        return b""
    saved = _snapshot(enc)
    sent = 0
    prev_active = False
    for k, (level, active) in enumerate(zip(plan.levels, plan.active)):
        row = _row(latents_q[k], prof.latent_dim, f"latents_q[{k}]", prof)
        encode_values(enc, row, tables.latent[level], f"latent[{k}]", prof)
        if enc.tell() > 8 * max_bytes:
            break  # libopus returns at once when k == 0; with nothing sent that is the "no payload" below
        if active or prev_active:
            saved = _snapshot(enc)
            sent = k + 1
        prev_active = active
    if sent == 0 or (sent <= 1 and plan.extra_dred_offset):
        return b""
    _restore(enc, saved)
    return finish_payload(enc)


class EncodedDred(NamedTuple):
    """One frame's payload (``b""`` for none) and the encoder's ``last_extra_dred_offset`` after it."""

    payload: bytes
    last_extra_dred_offset: int


def encode_dred_frame(profile, *, q0: int, dq: int, qmax: int, dred_offset: int, state_q, latents_q,
                      latents_buffer_fill: int, latent_offset: int = 0, last_extra_dred_offset: int = 0,
                      activity=None, max_chunks: int, max_bytes: int) -> EncodedDred:
    """``dred_encode_silk_frame`` on quantized buffers: the payload of one frame (without ``'D'``, version) and
    the new ``last_extra_dred_offset``.

    ``state_q``: the state buffer quantized at ``q0``, newest first (``[n, state_dim]`` ints), or a function
    of the buffer entry giving that row. ``latents_q``: the latent buffer quantized at every level
    (``[quant_levels, n, latent_dim]`` ints, ``latents_q[level, entry]``), or a function ``(entry, level)``
    giving that row; only the entries and levels :func:`plan_dred_frame` picks are read. The buffers hold one
    entry per 20 ms, newest first; every other one is sent. ``dred_offset``, ``latent_offset``,
    ``latents_buffer_fill`` and ``last_extra_dred_offset`` are the encoder's (``DREDEnc``); ``activity`` the
    activity memory (module docstring); ``max_chunks`` and ``max_bytes`` the limits libopus' caller passes.
    """
    plan = plan_dred_frame(profile, q0=q0, dq=dq, qmax=qmax, dred_offset=dred_offset,
                           latents_buffer_fill=latents_buffer_fill, latent_offset=latent_offset,
                           last_extra_dred_offset=last_extra_dred_offset, activity=activity, max_chunks=max_chunks)
    state_of = state_q if callable(state_q) else _entries(state_q, 2, "state_q", lambda a, e: a[e])
    latent_of = latents_q if callable(latents_q) else _entries(latents_q, 3, "latents_q", lambda a, e, lv: a[lv, e])
    if not plan.chunks:
        return EncodedDred(b"", plan.last_extra_dred_offset)
    rows = [latent_of(e, lv) for e, lv in zip(plan.chunks, plan.levels)]
    payload = code_dred_frame(profile, plan, state_of(plan.latent_offset), rows, max_bytes=max_bytes)
    return EncodedDred(payload, plan.last_extra_dred_offset)


def _entries(a, ndim: int, name: str, pick: Callable) -> Callable:
    """``pick`` on the integer array ``a`` (``ndim`` dimensions), as a function of the remaining indices."""
    arr = np.asarray(a)
    if arr.ndim != ndim or arr.dtype.kind not in "iu":
        raise DredSettingsError(name, f"array{arr.shape} of {arr.dtype}", f"must be a {ndim}-d integer array")
    return lambda *idx: pick(arr, *idx)


def _row(values, dim: int, name: str, prof: Profile) -> np.ndarray:
    row = np.asarray(values).reshape(-1)
    if row.shape[0] != dim or row.dtype.kind not in "iu":
        raise DredSettingsError(name, f"array{row.shape} of {row.dtype}", f"must be {dim} integers",
                                profile=prof.name)
    return row


# -- ec_bak: the range encoder's state, saved and restored as libopus copies its ec_enc ------------------


def _snapshot(enc) -> dict:
    """The encoder's fields (``ec_bak = ec_encoder``). The byte buffer is shared, as the copied struct shares
    libopus' buffer: bytes written after the copy stay there, and ``ec_enc_done`` clears what lies beyond the
    restored position."""
    return {name: getattr(enc, name) for name in type(enc).__slots__}


def _restore(enc, saved: dict) -> None:
    for name, value in saved.items():
        setattr(enc, name, value)


# -- the payload in the packet: src/opus_encoder.c (DRED) and src/repacketizer.c -------------------------


def attach_dred(opus_packet: bytes, payload: bytes, profile, *, frame: int = 0, pad_to: int | None = None) -> bytes:
    """``opus_packet`` with ``payload`` as the profile's DRED extension of frame ``frame``.

    The extension (the profile's id, data ``'D'``, version, payload) is written the way libopus' encoder hands
    it to ``opus_packet_pad_impl`` (``src/repacketizer.c:opus_repacketizer_out_range_impl``): the packet is
    framed as code 3 (VBR when its frames differ in length), the extensions the padding already holds are kept
    after the new one (``write_extensions`` of the profile's syntax orders them by frame), other padding is
    dropped. Without ``pad_to`` (libopus' VBR) the padding holds the extensions alone; its length chain is the
    one that libopus generation writes (1.5.x, ``"v1"`` profiles: ``254 * n`` bytes as ``n`` bytes of 255 and a
    0; 1.6.x: the minimal chain). With ``pad_to`` (CBR) the packet is filled to exactly ``pad_to`` bytes, 0x01
    padding before the extensions. An empty ``payload`` adds nothing (libopus sends no DRED then); with
    ``pad_to`` the packet is still padded, as ``opus_packet_pad`` does.

    Raises :class:`PacketError` for a packet that does not parse or does not fit in ``pad_to``, and
    :class:`ExtensionError` for a ``frame`` outside the packet or padding whose extensions do not parse.
    """
    prof = _profile(profile)
    data = bytes(opus_packet)
    pkt = parse_packet(data)
    if not 0 <= frame < pkt.nb_frames:
        raise ExtensionError(f"frame {frame} outside the packet's {pkt.nb_frames} frames", rule="ext: frame",
                             profile=prof.name)
    if not payload and (pad_to is None or pad_to == len(data)):
        return data  # nothing to add (opus_packet_pad leaves a packet of the asked length alone)
    if pad_to is not None and pad_to < len(data) and not payload:
        raise PacketError(f"pad_to={pad_to} is shorter than the packet ({len(data)} bytes)")
    try:
        existing = parse_extensions(pkt.padding, pkt.nb_frames, syntax=prof.extension_syntax) if pkt.padding else []
    except ExtensionError as exc:
        raise ExtensionError(f"the packet's padding does not parse: {exc.message}", byte_offset=exc.byte_offset,
                             rule=exc.rule, profile=prof.name) from None
    exts = list(existing)
    if payload:
        exts.insert(0, Extension(prof.extension_id, frame, dred_extension_data(payload, prof)))
    return _repacketize(pkt.toc, pkt.frames, exts, prof.extension_syntax, pad_to)


def _repacketize(toc, frames: list[bytes], exts: list[Extension], syntax: str, pad_to: int | None) -> bytes:
    """One packet's frames through ``opus_repacketizer_out_range_impl`` with ``exts``: ``pad_to`` is its
    ``maxlen`` with ``pad`` set; ``None`` leaves ``pad`` unset (no padding beyond the extensions)."""
    plain = write_packet(toc, frames)
    if pad_to is not None and pad_to < len(plain):
        raise PacketError(f"pad_to={pad_to} is shorter than the packet's frames ({len(plain)} bytes)")
    if not exts and (pad_to is None or pad_to == len(plain)):
        return plain
    vbr = len({len(f) for f in frames}) > 1
    head = 2 + sum(len(f) + ((1 + (len(f) >= 252)) if vbr else 0) for f in frames[:-1]) + len(frames[-1])
    ext_bytes = write_extensions(exts, len(frames), syntax=syntax) if exts else b""
    room = len(ext_bytes) + _chain_bytes(len(ext_bytes), syntax) if pad_to is None else pad_to - head
    if room <= 0:
        if exts:
            raise PacketError(f"pad_to={pad_to} leaves no room for {len(ext_bytes)} bytes of extensions")
        return write_packet(toc, frames, code=3, vbr=vbr)  # code 3 fills the length exactly, without padding
    nb_255 = (room - 1) // 255
    data_len = room - nb_255 - 1
    if data_len < len(ext_bytes):
        raise PacketError(f"the extensions need {len(ext_bytes)} bytes of padding, pad_to={pad_to} leaves {data_len}")
    chain = bytes([255] * nb_255 + [room - 255 * nb_255 - 1])
    padding = write_extensions(exts, len(frames), syntax=syntax, pad_to=data_len) if exts else bytes(data_len)
    return write_packet(toc, frames, padding=padding, padding_chain=chain, code=3, vbr=vbr)


def _chain_bytes(ext_len: int, syntax: str) -> int:
    """Bytes of the padding-length chain libopus' repacketizer (no ``pad``) spends on ``ext_len`` bytes of
    extensions: 1.5.x ``ext_len / 254 + 1``, 1.6.x ``ceil(ext_len / 254)`` (one for none)."""
    if syntax == "v1":
        return ext_len // 254 + 1
    return len(encode_padding_length(ext_len)) if ext_len else 1
