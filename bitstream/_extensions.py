"""Extensions carried in the padding of an Opus packet (draft-ietf-mlcodec-opus-extension).

Two syntaxes, one per libopus generation (``src/extensions.c``):

``"v1"`` (libopus 1.5.x)
    Each extension starts with an ID byte ``id << 1 | L``. id 0 is padding (L=0: the rest of the
    padding; L=1: this one byte), id 1 a frame separator (L=0: next frame; L=1: the next byte is the
    frame increment), ids 2..31 short extensions (L payload bytes), ids 32..127 long extensions (L=0:
    the payload runs to the end; L=1: a length coded as a chain of bytes, 255 meaning "add 255 and
    continue"). A frame index of 48 or more makes the padding invalid (``opus_packet_extensions_parse``).
``"rte"`` (libopus 1.6.x)
    As ``"v1"``, but id 2 is *Repeat These Extensions* (RTE): the extensions coded since the last frame
    separator (or the start) are repeated for every later frame, and only their payloads follow
    (``opus_extension_iterator_next`` / ``opus_extension_iterator_next_repeat``). A separator that
    reaches the packet's frame count is invalid; a separator increment of 0 is a no-op.

:func:`parse_extensions` returns the extensions in bitstream order (repeated ones where their payloads
are), :func:`write_extensions` produces exactly the bytes of libopus' ``opus_packet_extensions_generate``
of the matching release, :func:`find_dred_extension` locates DRED the way
``src/opus_decoder.c:dred_find_payload`` of that release does, and :func:`find_dred` also decides which
profile owns a packet's DRED (every reader, ``inspect`` and ``decode`` ask it).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import bitstring
from opus_dred.bitstream._arith import compute_dred_frame_offset
from opus_dred.bitstream._errors import BitstreamError, ExtensionError
from opus_dred.bitstream._packet import parse_packet
from opus_dred.bitstream._profiles import EXPERIMENTAL_MAGIC, Profile, get_profile, list_profiles, profile_for_version

SYNTAXES = ("v1", "rte")
MAX_FRAMES = 48  # an Opus packet holds at most 48 frames (RFC 6716 §3.2.5)


@dataclass(frozen=True)
class Extension:
    """One extension: its ``id`` (2..127), the ``frame`` it belongs to, and its payload ``data``.

    ``id_offset`` (byte offset of the ID byte in the padding; ``None`` for an extension repeated by
    RTE, which has no ID byte of its own) and ``data_offset`` (offset of the payload) are filled by the
    parser and ignored by comparisons.
    """

    id: int
    frame: int
    data: bytes = b""
    id_offset: int | None = field(default=None, compare=False)
    data_offset: int | None = field(default=None, compare=False)
    repeated: bool = field(default=False, compare=False)

    @property
    def is_long(self) -> bool:
        return self.id >= 32


def id_byte(ext_id: int, flag: int) -> int:
    """The ID byte ``id << 1 | L`` (as bits: ``uint:7, uint:1``)."""
    return bitstring.pack("uint:7, uint:1", ext_id, flag).uint


def parse_id_byte(byte: int) -> tuple[int, int]:
    """``(id, L)`` of an ID byte."""
    ext_id, flag = bitstring.Bits(uint=byte, length=8).unpack("uint:7, uint:1")
    return ext_id, flag


def _check_syntax(syntax: str) -> None:
    if syntax not in SYNTAXES:
        raise ExtensionError(f"unknown extension syntax {syntax!r} (expected one of {SYNTAXES})")


# ------------------------------------------------------------------------------------------------------
# v1 (libopus 1.5.x): src/extensions.c skip_extension / opus_packet_extensions_parse


def _v1_skip(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Skip the extension at ``pos``: (next position, header size), or (-1, 0) if it overruns ``end``."""
    b = data[pos]
    ext_id, flag = b >> 1, b & 1
    if ext_id == 0 and flag == 1:
        return pos + 1, 1
    if 0 < ext_id < 32:
        if end - pos < 1 + flag:
            return -1, 0
        return pos + 1 + flag, 1
    if flag == 0:  # padding with L=0, or a long extension running to the end
        return end, 1
    total = 0
    header = 1
    p = pos
    while True:
        p += 1
        if p >= end:
            return -1, 0
        total += data[p]
        header += 1
        if data[p] != 255:
            break
    p += 1
    if total > end - p:
        return -1, 0
    return p + total, header


def _iter_v1(padding: bytes, max_frame: int | None) -> Iterator[Extension]:
    data = padding
    end = len(data)
    pos = 0
    frame = 0
    while pos < end:
        b = data[pos]
        ext_id, flag = b >> 1, b & 1
        if ext_id == 1:
            if flag == 0:
                frame += 1
            elif end - pos >= 2:
                frame += data[pos + 1]
            if max_frame is not None and frame >= max_frame:
                raise ExtensionError(f"frame separator reaches frame {frame} (limit {max_frame})",
                                     byte_offset=pos, rule="ext: frame >= 48")
        nxt, header = _v1_skip(data, pos, end)
        if nxt < 0:
            raise ExtensionError(f"extension id {ext_id} (L={flag}) runs past the end of the padding",
                                 byte_offset=pos, rule="ext: truncated")
        if ext_id > 1:
            yield Extension(ext_id, frame, bytes(data[pos + header:nxt]), id_offset=pos,
                            data_offset=pos + header)
        pos = nxt


# ------------------------------------------------------------------------------------------------------
# rte (libopus 1.6.x): src/extensions.c skip_extension_payload / opus_extension_iterator_*


def _rte_skip_payload(data: bytes, pos: int, length: int, id_b: int, trailing_short: int) -> tuple[int, int, int]:
    """Skip the payload of an extension whose ID byte is ``id_b``.

    ``length`` is the number of bytes left from ``pos``. Returns (new pos, new length, header size), with
    new length -1 when the payload does not fit.
    """
    ext_id, flag = id_b >> 1, id_b & 1
    if (ext_id == 0 and flag == 1) or ext_id == 2:
        return pos, length, 0
    if 0 < ext_id < 32:
        if length < flag:
            return pos, -1, 0
        return pos + flag, length - flag, 0
    if flag == 0:
        if length < trailing_short:
            return pos, -1, 0
        return pos + length - trailing_short, trailing_short, 0
    total = 0
    header = 0
    while True:
        if length < 1:
            return pos, -1, 0
        lacing = data[pos]
        pos += 1
        total += lacing
        header += 1
        length -= lacing + 1
        if lacing != 255:
            break
    if length < 0:
        return pos, -1, 0
    return pos + total, length, header


def _rte_skip(data: bytes, pos: int, length: int) -> tuple[int, int, int]:
    """Skip one whole extension (ID byte and payload; RTE: the ID byte only)."""
    if length == 0:
        return pos, 0, 0
    nxt, left, header = _rte_skip_payload(data, pos + 1, length - 1, data[pos], 0)
    if left < 0:
        return pos, -1, 0
    return nxt, left, header + 1


class _RteIterator:
    """A re-expression of ``opus_extension_iterator_*`` (libopus 1.6.1) as a Python generator."""

    def __init__(self, data: bytes, nb_frames: int) -> None:
        self.data = data
        self.nb_frames = nb_frames

    def __iter__(self) -> Iterator[Extension]:
        data = self.data
        nb_frames = self.nb_frames
        pos = 0
        length = len(data)
        frame = 0
        group_start = 0  # start of the extensions an RTE would repeat
        last_long_end = None  # position right after the last long extension of the group
        trailing_short = 0  # payload bytes of short extensions after that long extension
        if frame >= nb_frames:
            return
        while length > 0:
            start = pos
            b = data[pos]
            ext_id, flag = b >> 1, b & 1
            pos, length, header = _rte_skip(data, pos, length)
            if length < 0:
                raise ExtensionError(f"extension id {ext_id} (L={flag}) runs past the end of the padding",
                                     byte_offset=start, rule="ext: truncated")
            if ext_id == 1:
                if flag == 0:
                    frame += 1
                else:
                    inc = data[start + 1]
                    if inc == 0:
                        continue  # an increment of 0 changes nothing, not even the RTE group
                    frame += inc
                if frame >= nb_frames:
                    raise ExtensionError(f"frame separator reaches frame {frame} of a {nb_frames}-frame packet",
                                         byte_offset=start, rule="ext: frame >= nb_frames")
                group_start = pos
                last_long_end = None
                trailing_short = 0
            elif ext_id == 2:
                # Repeat These Extensions: payloads of the group [group_start, start) for frames frame+1..
                src_end = start
                for rframe in range(frame + 1, nb_frames):
                    src = group_start
                    src_len = src_end - group_start
                    while src_len > 0:
                        rid_b = data[src]
                        src, src_len, _ = _rte_skip(data, src, src_len)
                        if rid_b <= 3:  # padding and separators are not repeated
                            continue
                        if flag == 0 and rframe + 1 >= nb_frames and src == last_long_end:
                            rid_b &= ~1  # the last long extension of the last frame runs to the end
                        p0 = pos
                        pos, length, rheader = _rte_skip_payload(data, pos, length, rid_b, trailing_short)
                        if length < 0:
                            raise ExtensionError(
                                f"repeated extension id {rid_b >> 1} for frame {rframe} runs past the end",
                                byte_offset=p0, rule="ext: truncated")
                        yield Extension(rid_b >> 1, rframe, bytes(data[p0 + rheader:pos]), id_offset=None,
                                        data_offset=p0 + rheader, repeated=True)
                group_start = pos
                last_long_end = None
                if flag == 0:
                    frame += 1
                    if frame >= nb_frames:
                        return  # whatever is left is ignored
            elif ext_id > 2:
                if ext_id >= 32:
                    last_long_end = pos
                    trailing_short = 0
                else:
                    trailing_short += flag
                yield Extension(ext_id, frame, bytes(data[start + header:pos]), id_offset=start,
                                data_offset=start + header)


def iter_extensions(padding: bytes, nb_frames: int = MAX_FRAMES, *, syntax: str = "rte") -> Iterator[Extension]:
    """Yield the extensions of ``padding`` in bitstream order; raise :class:`ExtensionError` on reaching
    malformed data (extensions before it have been yielded already, as libopus' iterator returns them).

    ``nb_frames`` is the frame count of the packet (used by ``"rte"`` only; ``"v1"`` limits the frame
    index to 48 whatever the packet's count, as libopus 1.5.x does).
    """
    _check_syntax(syntax)
    if not 0 <= nb_frames <= MAX_FRAMES:
        raise ExtensionError(f"nb_frames {nb_frames} outside 0..{MAX_FRAMES}")
    padding = bytes(padding)
    if syntax == "v1":
        return _iter_v1(padding, MAX_FRAMES)
    return iter(_RteIterator(padding, nb_frames))


def parse_extensions(
    padding: bytes, nb_frames: int = MAX_FRAMES, *, syntax: str = "rte", max_extensions: int | None = None
) -> list[Extension]:
    """All extensions of ``padding`` in bitstream order (``opus_packet_extensions_parse``).

    Padding (id 0), separators (id 1) and RTE indicators (id 2 under ``"rte"``) are not returned;
    extensions repeated by RTE are (with ``repeated=True``). Raises :class:`ExtensionError` with the
    byte offset of the extension that does not fit, exactly where libopus returns
    ``OPUS_INVALID_PACKET``.

    ``max_extensions`` is the capacity of the caller's list, as libopus' ``nb_extensions`` argument: one more
    extension raises :class:`ExtensionError` (rule ``"ext: capacity"``; libopus returns
    ``OPUS_BUFFER_TOO_SMALL``). RTE can code dozens of extensions per byte, so a caller that must bound its
    memory for hostile input gives a capacity, or walks :func:`iter_extensions` instead.
    """
    if max_extensions is None:
        return list(iter_extensions(padding, nb_frames, syntax=syntax))
    out: list[Extension] = []
    for e in iter_extensions(padding, nb_frames, syntax=syntax):
        if len(out) == max_extensions:
            raise ExtensionError(
                f"more than {max_extensions} extensions",
                byte_offset=e.id_offset if e.id_offset is not None else e.data_offset,
                rule="ext: capacity",
            )
        out.append(e)
    return out


# ------------------------------------------------------------------------------------------------------
# Writing: opus_packet_extensions_generate (1.5.2 and 1.6.1)


def _check_ext_for_write(e: Extension, min_id: int) -> None:
    if not min_id <= e.id <= 127:
        raise ExtensionError(f"extension id {e.id} cannot be written (allowed {min_id}..127)")
    if e.id < 32 and len(e.data) > 1:
        raise ExtensionError(f"short extension id {e.id} carries at most 1 byte, not {len(e.data)}")


def _long_length(n: int) -> bytes:
    return bytes([255] * (n // 255) + [n % 255])


def _write_payload(out: bytearray, e: Extension, last: bool) -> None:
    if e.id < 32:
        out += e.data
    else:
        if not last:
            out += _long_length(len(e.data))
        out += e.data


def _write_one(out: bytearray, e: Extension, last: bool) -> None:
    flag = len(e.data) if e.id < 32 else int(not last)
    out.append(id_byte(e.id, flag))
    _write_payload(out, e, last)


def _separator(out: bytearray, diff: int) -> None:
    if diff == 1:
        out.append(id_byte(1, 0))
    else:
        out += bytes([id_byte(1, 1), diff])


def _generate_v1(exts: Sequence[Extension]) -> bytearray:
    for e in exts:
        _check_ext_for_write(e, 2)
        if e.frame < 0:
            raise ExtensionError(f"negative frame index {e.frame}")
    max_frame = max((e.frame for e in exts), default=0)
    if max_frame >= MAX_FRAMES:
        raise ExtensionError(f"frame index {max_frame} is 48 or more")
    out = bytearray()
    cur = 0
    written = 0
    n = len(exts)
    for f in range(max_frame + 1):
        for e in exts:
            if e.frame != f:
                continue
            if f != cur:
                _separator(out, f - cur)
                cur = f
            _write_one(out, e, written == n - 1)
            written += 1
    return out


def _generate_rte(exts: Sequence[Extension], nb_frames: int) -> bytearray:
    n = len(exts)
    fmin = [n] * nb_frames  # first index of each frame's extensions (advanced as repeats consume them)
    fmax = [0] * nb_frames  # one past the last index of each frame's extensions
    for i, e in enumerate(exts):
        if not 0 <= e.frame < nb_frames:
            raise ExtensionError(f"extension frame {e.frame} outside 0..{nb_frames - 1}")
        _check_ext_for_write(e, 3)
        fmin[e.frame] = min(fmin[e.frame], i)
        fmax[e.frame] = max(fmax[e.frame], i + 1)
    frep = list(fmin)  # per frame: how far the repeatable prefix reaches
    out = bytearray()
    cur = 0
    written = 0
    for f in range(nb_frames):
        repeat_count = 0
        last_long_idx = -1
        if f + 1 < nb_frames:
            # How many leading extensions of frame f start every later frame too (same id, and same
            # length for short ids)?
            for i in range(fmin[f], fmax[f]):
                if exts[i].frame != f:
                    continue
                repeatable = True
                for g in range(f + 1, nb_frames):
                    if frep[g] >= fmax[g]:
                        repeatable = False
                        break
                    other = exts[frep[g]]
                    if other.id != exts[i].id or (other.id < 32 and len(other.data) != len(exts[i].data)):
                        repeatable = False
                        break
                if not repeatable:
                    break
                if exts[i].id >= 32:
                    last_long_idx = frep[nb_frames - 1]
                for g in range(f + 1, nb_frames):
                    j = frep[g] + 1
                    while j < fmax[g] and exts[j].frame != g:
                        j += 1
                    frep[g] = j
                repeat_count += 1
                frep[f] = i
        for i in range(fmin[f], fmax[f]):
            e = exts[i]
            if e.frame != f:
                continue
            if f != cur:
                _separator(out, f - cur)
                cur = f
            _write_one(out, e, written == n - 1)
            written += 1
            if repeat_count > 0 and frep[f] == i:
                nb_repeated = repeat_count * (nb_frames - (f + 1))
                last = written + nb_repeated == n or (last_long_idx < 0 and i + 1 >= fmax[f])
                out.append(id_byte(2, int(not last)))
                for g in range(f + 1, nb_frames):
                    j = fmin[g]
                    while j < frep[g]:
                        if exts[j].frame == g:
                            _write_payload(out, exts[j], last and j == last_long_idx)
                            written += 1
                        j += 1
                    fmin[g] = j
                if last:
                    cur += 1
    return out


def write_extensions(
    exts: Sequence[Extension],
    nb_frames: int = MAX_FRAMES,
    *,
    syntax: str = "rte",
    pad_to: int | None = None,
) -> bytes:
    """The padding bytes libopus' ``opus_packet_extensions_generate`` writes for ``exts``.

    Extensions are written frame by frame (in the given order within a frame), separators as 0x02
    (next frame) or 0x03 n (n frames on), the last extension written without a length (long: L=0).
    ``"rte"`` (1.6.x) also uses Repeat These Extensions whenever every later frame starts with the same
    extensions; it needs the packet's ``nb_frames`` and refuses id 2 and frames outside it. ``"v1"``
    (1.5.x) ignores ``nb_frames`` and accepts ids 2..127 on frames 0..47. ``pad_to`` fills up to that
    many bytes by *prepending* 0x01 (one-byte padding) extensions; raises :class:`ExtensionError` if the
    extensions need more.
    """
    _check_syntax(syntax)
    for e in exts:
        if not isinstance(e, Extension):
            raise ExtensionError(f"not an Extension: {e!r}")
    if syntax == "v1":
        out = _generate_v1(exts)
    else:
        if not 0 <= nb_frames <= MAX_FRAMES:
            raise ExtensionError(f"nb_frames {nb_frames} outside 0..{MAX_FRAMES}")
        out = _generate_rte(exts, nb_frames)
    if pad_to is not None:
        if pad_to < len(out):
            raise ExtensionError(f"extensions need {len(out)} bytes, more than pad_to={pad_to}")
        out = bytearray([id_byte(0, 1)] * (pad_to - len(out))) + out
    return bytes(out)


# ------------------------------------------------------------------------------------------------------
# Locating DRED: src/opus_decoder.c:dred_find_payload

#: the bytes ``'D', version`` that open the data of an experimental DRED extension (``DRED_EXPERIMENTAL_BYTES``
#: of ``dnn/dred_config.h``, 1.5.2 and 1.6.1)
DRED_EXPERIMENTAL_BYTES = 2


@dataclass(frozen=True)
class DredLocation:
    """Where the DRED payload of a packet is.

    ``payload``: the range-coded bytes (after the experimental ``'D', version`` prefix);
    ``extension``: the extension that carries it; ``frame``: its frame index; ``dred_frame_offset``:
    ``frame * frame_size_48k // 120``, the frame's position in 2.5 ms units; ``payload_offset``: offset
    of ``payload`` in the packet.
    """

    payload: bytes
    extension: Extension
    frame: int
    dred_frame_offset: int
    payload_offset: int


def dred_version_in(data: bytes) -> int | None:
    """The experimental version an extension's data claims, by ``dred_find_payload``'s test: longer than
    ``DRED_EXPERIMENTAL_BYTES`` (so at least one payload byte) and opening with ``'D'``; else ``None``."""
    if len(data) > DRED_EXPERIMENTAL_BYTES and data[:1] == EXPERIMENTAL_MAGIC:
        return data[1]
    return None


def dred_payload_in(data: bytes, profile) -> bytes | None:
    """The DRED payload in one extension's data if it is ``profile``'s (its version byte), else ``None``."""
    if dred_version_in(data) != profile.dred_version:
        return None
    return bytes(data[DRED_EXPERIMENTAL_BYTES:])


def dred_location(e: Extension, profile, frame_size_48k: int, padding_offset: int) -> DredLocation | None:
    """``e`` as ``profile``'s DRED (its extension id and :func:`dred_payload_in`), or ``None``;
    ``padding_offset`` is where the padding starts in the packet."""
    payload = dred_payload_in(e.data, profile) if e.id == profile.extension_id else None
    if payload is None:
        return None
    return DredLocation(payload=payload, extension=e, frame=e.frame,
                        dred_frame_offset=compute_dred_frame_offset(e.frame, frame_size_48k),
                        payload_offset=padding_offset + e.data_offset + DRED_EXPERIMENTAL_BYTES)


def find_dred_extension(data: bytes, profile) -> DredLocation | None:
    """Find the DRED payload in an Opus packet as ``dred_find_payload`` of the profile's libopus does.

    The packet is parsed (a :class:`~opus_dred.bitstream._errors.PacketError` propagates, as libopus
    returns the parse error). The first extension with the profile's id (126) whose data passes
    :func:`dred_payload_in` (longer than the experimental prefix, and opening with it: ``'D'``, version) is
    taken.

    * profile syntax ``"v1"`` (libopus 1.5.x): the padding is scanned with no frame limit; malformed
      padding before a DRED extension means "no DRED" (``None``).
    * profile syntax ``"rte"`` (1.6.x): libopus' extension iterator, bounded by the packet's frame count;
      malformed padding before a DRED extension raises :class:`ExtensionError` (libopus returns
      ``OPUS_INVALID_PACKET`` from ``opus_dred_parse``).

    ``profile`` is a profile object or name (:func:`opus_dred.bitstream._profiles.get_profile`).
    """
    if isinstance(profile, str):
        profile = get_profile(profile)
    pkt = parse_packet(data)
    frame_size = pkt.toc.frame_size_48k
    base = pkt.padding_offset or 0
    try:
        for e in _dred_scan(pkt.padding, pkt.nb_frames, profile.extension_syntax):
            loc = dred_location(e, profile, frame_size, base)
            if loc is not None:
                return loc
    except ExtensionError as exc:
        if profile.extension_syntax == "v1":
            return None
        raise ExtensionError(exc.message, byte_offset=base + (exc.byte_offset or 0), rule=exc.rule,
                             profile=profile.name) from None
    return None


# ------------------------------------------------------------------------------------------------------
# Which profile owns a packet's DRED


def profile_for_dred_version(version: int) -> Profile | None:
    """The profile of an experimental version byte (:func:`~opus_dred.bitstream._profiles.profile_for_version`),
    ``None`` for an unknown version or a profile that cannot be loaded here."""
    try:
        return profile_for_version(version)
    except Exception:  # noqa: BLE001 - a profile whose description or pack is unreadable counts as unknown
        return None


@functools.lru_cache(maxsize=8)
def _ids_of(names: tuple[str, ...]) -> frozenset[int]:
    ids = set()
    for name in names:
        try:
            ids.add(get_profile(name).extension_id)
        except Exception:  # noqa: BLE001 - an unreadable description is passed over
            continue
    return frozenset(ids) or frozenset({126})


def dred_extension_ids() -> frozenset[int]:
    """The extension ids of every known profile (126 for libopus 1.5.x and 1.6.x)."""
    return _ids_of(tuple(list_profiles()))


def _dred_scan(padding: bytes, nb_frames: int, syntax: str) -> Iterator[Extension]:
    """The extensions in the order ``dred_find_payload`` walks them: the 1.5.x scan (``"v1"``) has no frame
    limit, the 1.6.x one (``"rte"``) is libopus' extension iterator over the packet's frames."""
    return _iter_v1(padding, None) if syntax == "v1" else iter(_RteIterator(padding, nb_frames))


def _dred_candidates(padding: bytes, nb_frames: int, syntax: str, ids) -> Iterator[tuple[Extension, int]]:
    """``(extension, version)`` for each extension with an id in ``ids`` whose data passes
    :func:`dred_version_in`, in the order of :func:`_dred_scan`; raises at malformed padding."""
    for e in _dred_scan(padding, nb_frames, syntax):
        v = dred_version_in(e.data) if e.id in ids else None
        if v is not None:
            yield e, v


def dred_owner(padding: bytes, nb_frames: int) -> tuple[Profile | None, int | None]:
    """``(profile, version)`` of the DRED a packet's padding carries, without knowing the profile.

    The padding is read with the ``"rte"`` syntax, or the ``"v1"`` one where ``"rte"`` finds it malformed;
    the first extension with a known profile's DRED id whose data passes ``dred_find_payload``'s test
    (:func:`dred_version_in`) and whose version byte names a profile decides, as the libopus of that
    profile passes over extensions of other versions. ``(None, v)``: only versions of no profile (``v`` the
    first); ``(None, None)``: no DRED extension at all.
    """
    ids = dred_extension_ids()
    first = None
    for syntax in ("rte", "v1"):
        try:
            for _, v in _dred_candidates(padding, nb_frames, syntax, ids):
                prof = profile_for_dred_version(v)
                if prof is not None:
                    return prof, v
                first = v if first is None else first
            return None, first
        except BitstreamError:
            continue
    return None, first


def find_dred(data: bytes, profile=None) -> tuple[Profile | None, DredLocation | None]:
    """``(profile, location)`` of a packet's DRED: the one decision of which profile owns it and where it is.

    With ``profile`` (a profile or its name): that profile and :func:`find_dred_extension` (``None`` without
    DRED). Without: the profile of :func:`dred_owner`, then where that profile's libopus finds its DRED
    (``(None, None)`` when no known profile's DRED is there). A packet libopus cannot parse raises the
    :class:`~opus_dred.bitstream._errors.PacketError` of :func:`~opus_dred.bitstream._packet.parse_packet`.
    """
    if profile is None:
        pkt = parse_packet(data)
        profile = dred_owner(pkt.padding, pkt.nb_frames)[0] if pkt.padding else None
        if profile is None:
            return None, None
    elif isinstance(profile, str):
        profile = get_profile(profile)
    return profile, find_dred_extension(data, profile)


def foreign_dred(data: bytes, profile) -> Extension | None:
    """The extension ``profile``'s libopus would take for DRED if its version byte were the profile's: the
    first one with the profile's id and syntax that passes :func:`dred_version_in`, when its version is
    another; ``None`` otherwise (also for a packet or padding that cannot be read)."""
    if isinstance(profile, str):
        profile = get_profile(profile)
    try:
        pkt = parse_packet(data)
        found = next(_dred_candidates(pkt.padding, pkt.nb_frames, profile.extension_syntax,
                                      {profile.extension_id}), None)
    except BitstreamError:
        return None
    return found[0] if found is not None and found[1] != profile.dred_version else None
