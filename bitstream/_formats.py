"""File formats that carry Opus packets or DRED payloads.

Three containers, each read and written here, each failure a :class:`~opus_dred.bitstream._errors.FormatError`
(or :class:`~opus_dred.bitstream._errors.TruncatedError`) with the byte offset where the file stops making sense:

``opus_demo`` bitstream (``.bit``)
    What libopus' ``opus_demo`` writes when encoding and reads when decoding (src/opus_demo.c): a sequence of
    records ``[length: u32 big-endian][encoder final range: u32 big-endian][length bytes of packet]``. A record of
    length 0 stands for a lost packet.

DRED-only stream
    What libopus' ``fargan_demo -dred-decoding`` reads (dnn/fargan_demo.c, the format of libopus' official DRED
    decoding vectors, ``vectorN_dred.bit``): records ``[q0: u32 BE][nb_chunks: u32 BE][nb_bytes: u32 BE][bytes]``,
    where ``bytes`` is a bare range-coded stream holding the initial state and then the latents, all quantized at
    level ``q0``, and ``nb_chunks`` counts 20 ms feature pairs (two per latent).

Ogg Opus (``.opus``)
    RFC 7845; pages are read and written with mutagen's Ogg page support, packets are re-assembled across pages.

Raw packets
    One file holds one Opus packet (RFC 6716 §3), as the conformance suite's ``packet.bin`` does; a folder of
    ``*.bin`` files holds one packet per file, in sorted name order.

Packet captures (``.pcap``, ``.pcapng``)
    RTP over UDP carrying Opus (RFC 3550, RFC 7587, RED per RFC 2198), read by
    :mod:`opus_dred.bitstream._capture`: one Opus stream (SSRC) becomes the packets in sequence order, a
    sequence gap an empty packet (a loss, as a ``.bit`` file's length 0), with the capture's warnings.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

import bitstring
from bitstring import Bits

from opus_dred.bitstream._errors import BitstreamError, FormatError, TruncatedError
from opus_dred.bitstream._packet import parse_packet


def existing_file(arg: str) -> Path | None:
    """``arg`` as a path when it names an existing regular file, else None: a command-line argument that may
    be a file or a packet in hex. A hex packet of more than ~127 bytes is longer than a file name may be, and
    the operating system's "name too long" (or any other error reaching the path) means it is no file."""
    try:
        p = Path(arg)
        return p if p.is_file() else None
    except (OSError, ValueError):
        return None


#: Longest packet opus_demo will read back (its MAX_PACKET is 1500); larger values are rejected by libopus.
OPUS_DEMO_MAX_PACKET = 1500
#: Longest record fargan_demo accepts in a DRED-only stream (its MAX_DRED_PACKET).
DRED_STREAM_MAX_BYTES = 100_000
#: fargan_demo's feature buffer holds DRED_CHUNKS = 50 pairs of 20-float frames per record.
DRED_STREAM_MAX_CHUNKS = 50


# --------------------------------------------------------------------------------------------------------------
# opus_demo .bit
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BitRecord:
    """One record of an opus_demo bitstream: the packet, the encoder's final range, and where it sits."""

    data: bytes
    final_range: int
    offset: int = 0  # byte offset of the record's header in the file

    @property
    def lost(self) -> bool:
        return len(self.data) == 0


def read_opus_demo_bit(data: bytes, *, max_packet: int = OPUS_DEMO_MAX_PACKET) -> list[BitRecord]:
    """Split an opus_demo ``.bit`` file into records.

    Raises :class:`TruncatedError` when a header or a packet runs past the end of the file and
    :class:`FormatError` when a length exceeds ``max_packet`` (opus_demo refuses those too).
    """
    records: list[BitRecord] = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < 8:
            raise TruncatedError(
                f"opus_demo record header needs 8 bytes, {n - pos} left", byte_offset=pos, rule="opus_demo: header"
            )
        length, rng = struct.unpack_from(">II", data, pos)
        if length > max_packet:
            raise FormatError(
                f"opus_demo record announces a {length}-byte packet (at most {max_packet})",
                byte_offset=pos,
                rule="opus_demo: packet length",
            )
        if pos + 8 + length > n:
            raise TruncatedError(
                f"opus_demo packet of {length} bytes runs past the end of the file ({n - pos - 8} left)",
                byte_offset=pos + 8,
                rule="opus_demo: payload",
            )
        records.append(BitRecord(bytes(data[pos + 8 : pos + 8 + length]), rng, pos))
        pos += 8 + length
    return records


def write_opus_demo_bit(records) -> bytes:
    """Serialize records (``BitRecord`` or ``(data, final_range)`` pairs) as an opus_demo ``.bit`` file."""
    out = bytearray()
    for rec in records:
        if isinstance(rec, BitRecord):
            pkt, rng = rec.data, rec.final_range
        else:
            pkt, rng = rec
        if not 0 <= rng < 2**32:
            raise ValueError(f"final range {rng} does not fit 32 bits")
        out += struct.pack(">II", len(pkt), rng)
        out += pkt
    return bytes(out)


# --------------------------------------------------------------------------------------------------------------
# DRED-only stream (fargan_demo -dred-decoding)
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DredStreamRecord:
    """One record of a DRED-only stream: quantizer level, number of 20 ms chunks, range-coded bytes."""

    q0: int
    nb_chunks: int
    data: bytes
    offset: int = 0

    @property
    def nb_latents(self) -> int:
        """Latents the record holds (fargan_demo decodes one per two chunks, rounding up)."""
        return (self.nb_chunks + 1) // 2


def read_dred_stream(data: bytes, *, quant_levels: int = 16) -> list[DredStreamRecord]:
    """Split a DRED-only stream into records, checking each header against what fargan_demo can decode."""
    out: list[DredStreamRecord] = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < 12:
            raise TruncatedError(
                f"DRED stream record header needs 12 bytes, {n - pos} left", byte_offset=pos, rule="dred-stream: header"
            )
        q0, nb_chunks, nb_bytes = struct.unpack_from(">III", data, pos)
        if q0 >= quant_levels:
            raise FormatError(
                f"DRED stream q0 = {q0} is not a quantizer level (0..{quant_levels - 1})",
                byte_offset=pos,
                rule="dred-stream: q0",
            )
        if nb_chunks > DRED_STREAM_MAX_CHUNKS:
            raise FormatError(
                f"DRED stream record has {nb_chunks} chunks (at most {DRED_STREAM_MAX_CHUNKS})",
                byte_offset=pos + 4,
                rule="dred-stream: nb_chunks",
            )
        if nb_bytes > DRED_STREAM_MAX_BYTES:
            raise FormatError(
                f"DRED stream record of {nb_bytes} bytes (at most {DRED_STREAM_MAX_BYTES})",
                byte_offset=pos + 8,
                rule="dred-stream: nb_bytes",
            )
        if pos + 12 + nb_bytes > n:
            raise TruncatedError(
                f"DRED stream record of {nb_bytes} bytes runs past the end ({n - pos - 12} left)",
                byte_offset=pos + 12,
                rule="dred-stream: payload",
            )
        out.append(DredStreamRecord(q0, nb_chunks, bytes(data[pos + 12 : pos + 12 + nb_bytes]), pos))
        pos += 12 + nb_bytes
    return out


def write_dred_stream(records) -> bytes:
    """Serialize ``DredStreamRecord``s (or ``(q0, nb_chunks, data)`` triples) as a DRED-only stream."""
    out = bytearray()
    for rec in records:
        if isinstance(rec, DredStreamRecord):
            q0, nb_chunks, payload = rec.q0, rec.nb_chunks, rec.data
        else:
            q0, nb_chunks, payload = rec
        out += struct.pack(">III", q0, nb_chunks, len(payload))
        out += payload
    return bytes(out)


# --------------------------------------------------------------------------------------------------------------
# Ogg Opus (RFC 7845)
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpusHead:
    """The identification header of RFC 7845 §5.1."""

    version: int
    channels: int
    pre_skip: int
    input_sample_rate: int
    output_gain: int
    mapping_family: int
    mapping: bytes = b""

    #: field layout of the fixed part, as (name, bits) — shown by ``inspect``
    LAYOUT = (
        ("magic", 64),
        ("version", 8),
        ("channels", 8),
        ("pre_skip", 16),
        ("input_sample_rate", 32),
        ("output_gain", 16),
        ("mapping_family", 8),
    )

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> "OpusHead":
        if len(data) < 19 or data[:8] != b"OpusHead":
            raise FormatError("first Ogg packet is not an OpusHead header", byte_offset=offset, rule="RFC7845 5.1")
        # the multi-byte fields are little-endian (RFC 7845 §5.1)
        b = Bits.from_bytes(data[8:19])
        version, channels, pre_skip, rate, gain, family = b.unpack("uint8, uint8, uintle16, uintle32, intle16, uint8")
        if version >> 4 != 0:
            raise FormatError(f"unsupported OpusHead version {version}", byte_offset=offset + 8, rule="RFC7845 5.1")
        if channels == 0:
            raise FormatError("OpusHead announces 0 channels", byte_offset=offset + 9, rule="RFC7845 5.1")
        mapping = bytes(data[19:]) if family != 0 else b""
        return cls(version, channels, pre_skip, rate, gain, family, mapping)

    def to_bytes(self) -> bytes:
        fixed = bitstring.pack(
            "bytes8, uint8, uint8, uintle16, uintle32, intle16, uint8",
            b"OpusHead",
            self.version,
            self.channels,
            self.pre_skip,
            self.input_sample_rate,
            self.output_gain,
            self.mapping_family,
        )
        return fixed.tobytes() + self.mapping


@dataclass
class OggOpus:
    """An Ogg Opus stream: its header, its comment packet, and its audio packets with their granule info."""

    head: OpusHead
    tags: bytes
    packets: list[bytes] = field(default_factory=list)
    #: for each audio packet, the granule position of the page on which it ends (-1 where the page ends none)
    granules: list[int] = field(default_factory=list)
    serial: int = 0
    pages: int = 0


def read_ogg_opus(source) -> OggOpus:
    """Read the first logical Ogg Opus stream of a file (path, bytes or binary file object).

    Packets that continue across pages are joined, as RFC 3533 describes; errors in the page structure (bad
    capture pattern, a page cut short) become :class:`FormatError` with the byte offset of the page.
    """
    from mutagen.ogg import OggPage

    if isinstance(source, (str, Path)):
        raw = Path(source).read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
    else:
        raw = source.read()
    fileobj = io.BytesIO(raw)
    serial = None
    packets: list[bytes] = []
    granules: list[int] = []
    npages = 0
    pending: bytes | None = None  # a packet whose last fragment is still to come
    while fileobj.tell() < len(raw):
        start = fileobj.tell()
        try:
            page = OggPage(fileobj)
        except EOFError:
            raise TruncatedError("Ogg page cut short", byte_offset=start, rule="RFC3533 page") from None
        except Exception as exc:  # mutagen raises its own error types for a bad page
            if "unable to read full" in str(exc):
                raise TruncatedError(f"Ogg page cut short: {exc}", byte_offset=start, rule="RFC3533 page") from None
            raise FormatError(f"not an Ogg page: {exc}", byte_offset=start, rule="RFC3533 page") from None
        if serial is None:
            serial = page.serial
        if page.serial != serial:
            continue  # another logical stream multiplexed in; only the first is read
        npages += 1
        last = len(page.packets) - 1
        for i, frag in enumerate(page.packets):
            if i == 0 and page.continued:
                if pending is None:
                    raise FormatError(
                        "page continues a packet that no earlier page started", byte_offset=start, rule="RFC3533 packet"
                    )
                pending += frag
            else:
                if pending is not None:
                    raise FormatError(
                        "a new packet starts before the previous one ended", byte_offset=start, rule="RFC3533 packet"
                    )
                pending = frag
            if i < last or page.complete:
                packets.append(pending)
                # a page's granule position belongs to the last packet that ends on it
                granules.append(page.position if i == last else -1)
                pending = None
    if pending is not None:
        raise TruncatedError("last Ogg packet is not complete", byte_offset=len(raw), rule="RFC3533 packet")
    if len(packets) < 2:
        raise FormatError("an Ogg Opus stream needs OpusHead and OpusTags packets", byte_offset=0, rule="RFC7845 3")
    head = OpusHead.parse(packets[0], 0)
    if not packets[1].startswith(b"OpusTags"):
        raise FormatError("second Ogg packet is not OpusTags", byte_offset=0, rule="RFC7845 5.2")
    return OggOpus(head, packets[1], packets[2:], granules[2:], serial or 0, npages)


def write_ogg_opus(
    path_or_file,
    packets: list[bytes],
    samples_48k: list[int],
    *,
    channels: int = 1,
    input_sample_rate: int = 48000,
    pre_skip: int = 312,
    serial: int = 0x0D5ED,
    vendor: str = "opus-dred",
    end_granule: int | None = None,
) -> bytes:
    """Write packets as an Ogg Opus file, one audio packet per page, granule = samples at 48 kHz so far.

    ``samples_48k`` gives each packet's duration at 48 kHz (from its TOC). ``end_granule``: the last page's
    granule position when it is to end the stream before its last packet does (RFC 7845 §4.5's end trimming:
    ``pre_skip`` plus the input's length at 48 kHz); it may not fall before the previous page's granule.
    Returns the bytes written.
    """
    from mutagen.ogg import OggPage

    if len(samples_48k) != len(packets):
        raise ValueError("one duration per packet")
    total = sum(samples_48k)
    if end_granule is not None and packets and not total - samples_48k[-1] <= end_granule <= total:
        raise ValueError(f"end granule {end_granule} outside the last packet ({total - samples_48k[-1]}..{total}), "
                         "RFC 7845 4.5")
    head = OpusHead(1, channels, pre_skip, input_sample_rate, 0, 0).to_bytes()
    vendor_b = vendor.encode()
    tags = b"OpusTags" + struct.pack("<I", len(vendor_b)) + vendor_b + struct.pack("<I", 0)
    out = []
    granule = 0
    all_packets = [head, tags, *packets]
    seq = 0
    for index, pkt in enumerate(all_packets):
        if index >= 2:
            granule += samples_48k[index - 2]
        # a packet longer than one page can hold is split over several; only the page on which it ends
        # carries a granule position, the others carry -1 (RFC 3533)
        pages = OggPage.from_packets([pkt], sequence=seq)
        for j, page in enumerate(pages):
            page.serial = serial
            page.first = index == 0 and j == 0
            page.last = index == len(all_packets) - 1 and j == len(pages) - 1
            last_audio = index == len(all_packets) - 1 and index >= 2
            final = end_granule if (last_audio and end_granule is not None) else granule
            page.position = final if j == len(pages) - 1 else -1
            out.append(page.write())
        seq += len(pages)
    data = b"".join(out)
    if isinstance(path_or_file, (str, Path)):
        Path(path_or_file).write_bytes(data)
    elif path_or_file is not None:
        path_or_file.write(data)
    return data


# --------------------------------------------------------------------------------------------------------------
# raw packets
# --------------------------------------------------------------------------------------------------------------
def read_raw_packet(data: bytes) -> list[bytes]:
    """A raw packet file as its one packet, once :func:`~opus_dred.bitstream._packet.parse_packet` accepts its
    framing (RFC 6716 §3.4); its :class:`~opus_dred.bitstream._errors.PacketError` otherwise."""
    parse_packet(data)
    return [bytes(data)]


def read_packet_folder(folder: Path) -> list[tuple[str, bytes]]:
    """A folder of raw packets: ``(file name, packet)`` for each ``*.bin`` file, in sorted name order.

    The packets are not parsed here (a reader of the folder reports each packet's own error); a folder with
    no ``*.bin`` file is a :class:`FormatError`.
    """
    files = sorted(p for p in Path(folder).glob("*.bin") if p.is_file())
    if not files:
        raise FormatError(f"folder {folder} holds no *.bin packet file", byte_offset=0, rule="raw: folder")
    return [(p.name, p.read_bytes()) for p in files]


# --------------------------------------------------------------------------------------------------------------
#: formats a file may hold, in the order :func:`detect_format` tries them; ``hex`` is a packet typed in hex
FORMATS = ("bit", "ogg", "dred", "raw", "hex", "pcap", "pcapng")
#: the formats that are packet captures
CAPTURE_FORMATS = ("pcap", "pcapng")


def _format_by_name(data: bytes, name: str) -> str | None:
    """The format a file's name announces when its bytes chain as none: an Ogg name is Ogg; a ``.bit`` cut
    short is opus_demo's, or a DRED-only stream where its first q0/nb_chunks headers read as small numbers."""
    low = name.lower()
    if low.endswith((".opus", ".ogg", ".oga")):
        return "ogg"
    if low.endswith((".pcap", ".cap")):
        return "pcap"
    if low.endswith(".pcapng"):
        return "pcapng"
    if low.endswith(".bit"):
        q0, nb_chunks = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")
        if len(data) >= 12 and 0 < q0 < 16 and nb_chunks <= DRED_STREAM_MAX_CHUNKS:
            return "dred"
        return "bit"
    return None


def capture_magic(data: bytes) -> str | None:
    """``"pcap"`` or ``"pcapng"`` when ``data`` opens with a capture's magic (``a1b2c3d4`` and its byte-swapped
    and nanosecond forms; a pcapng section header ``0a0d0d0a``), else None."""
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return "pcapng"
    if len(data) >= 4 and int.from_bytes(data[:4], "big") in (0xA1B2C3D4, 0xA1B23C4D, 0xD4C3B2A1, 0x4D3CB2A1,
                                                               0xA1B2CD34, 0x34CDB2A1):
        return "pcap"
    return None


def detect_format(data: bytes, name: str = "") -> str:
    """Guess a file's format: ``"ogg"``, ``"pcap"``/``"pcapng"`` (by their magic), ``"bit"`` (opus_demo),
    ``"dred"`` (DRED-only stream), ``"raw"``.

    A file is taken as ``.bit`` or DRED stream only if its records chain exactly to the end of the file;
    then the file's ``name`` is asked (a ``.bit`` cut short is still a ``.bit``); last, a file that
    :func:`~opus_dred.bitstream._packet.parse_packet` accepts is one raw packet. Raises :class:`FormatError`
    when none fits, naming the formats tried and the packet parser's reason.
    """
    if data[:4] == b"OggS":
        return "ogg"
    cap = capture_magic(data)
    if cap is not None:
        return cap
    for fmt, reader in (("bit", read_opus_demo_bit), ("dred", read_dred_stream)):
        try:
            if reader(data):
                return fmt
        except BitstreamError:
            continue
    by_name = _format_by_name(data, name)
    if by_name is not None:
        return by_name
    try:
        read_raw_packet(data)
    except BitstreamError as exc:
        raise FormatError(
            "not an Ogg Opus file, a pcap/pcapng capture, an opus_demo .bit file, a DRED-only stream, or a raw "
            "Opus packet "
            f"(as a packet, {type(exc).__name__}: {exc})",
            byte_offset=0,
            rule="format",
        ) from None
    return "raw"


# --------------------------------------------------------------------------------------------------------------
# command-line inputs
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamInput:
    """What a command-line argument names: a file, a folder of raw packets, or one packet typed in hex.

    ``fmt`` is the format given or implied (``"raw"`` for a folder, ``"hex"`` for hex), ``None`` where the
    file's bytes are to be detected; ``packets`` holds a folder's packets, ``data`` a file's (or hex) bytes.
    """

    name: str
    data: bytes
    fmt: str | None
    packets: tuple[bytes, ...] | None = None


def parse_hex_packet(text: str) -> bytes:
    """A packet typed in hex: spaces and colons ignored, an ``0x`` prefix allowed; ValueError if not hex."""
    text = text.replace(" ", "").replace(":", "")
    if text.lower().startswith("0x"):
        text = text[2:]
    return bytes.fromhex(text)


def load_input(arg: str, fmt: str | None = None) -> StreamInput:
    """Resolve a command-line argument: an existing file, a folder of ``*.bin`` packets, or hex.

    Raises ValueError when ``arg`` is none of them, :class:`FormatError` for a folder without packets.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    p = existing_file(arg)
    if p is not None:
        return StreamInput(str(p), p.read_bytes(), fmt)
    if _is_folder(arg):
        packets = tuple(pkt for _, pkt in read_packet_folder(Path(arg)))
        return StreamInput(arg, b"".join(packets), "raw", packets)
    return StreamInput("<hex>", parse_hex_packet(arg), fmt or "hex")


def _is_folder(arg: str) -> bool:
    try:
        return Path(arg).is_dir()
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class StreamContents:
    """The items of an input: Opus packets (``kind == "packets"``) or DRED-only records (``"dred"``), and the
    error where the file stopped making sense (the items are those before it), or None. A capture also gives
    its warnings (:class:`~opus_dred.bitstream._rtp.CaptureWarning`), the capture read
    (:class:`~opus_dred.bitstream._capture.RtpCapture`) and the Opus stream used
    (:class:`~opus_dred.bitstream._capture.OpusStream`; ``items`` are its packets in sequence order, ``b""`` for
    a loss)."""

    fmt: str
    kind: str
    items: list
    error: BitstreamError | None = None
    warnings: tuple = ()
    capture: object | None = None
    stream: object | None = None


def read_input(inp: StreamInput, *, quant_levels: int = 16, capture_options=None, map=map) -> StreamContents:
    """The packets or records of an input; a file that breaks off keeps the items before the break and
    carries the error. Raises :class:`FormatError` when the file is no format at all.

    A capture (``capture_options``: :class:`~opus_dred.bitstream._capture.CaptureOptions`; ``map`` runs its
    record scan, see :func:`~opus_dred.bitstream._capture.read_capture`) gives the packets of its selected Opus
    stream in sequence order, ``b""`` where a packet is missing, cut by the capture or no Opus packet; it raises
    the capture's typed errors (:class:`~opus_dred.bitstream._rtp.CaptureError` and subclasses)."""
    if inp.packets is not None:
        return StreamContents("raw", "packets", list(inp.packets))
    fmt = inp.fmt or detect_format(inp.data, inp.name)
    if fmt in CAPTURE_FORMATS:
        return read_capture_input(inp.data, capture_options, map=map)
    if fmt in ("hex", "raw"):
        return StreamContents(fmt, "packets", [inp.data])
    if fmt == "ogg":
        return StreamContents(fmt, "packets", read_ogg_opus(inp.data).packets)
    if fmt == "bit":
        recs, err = read_with_prefix(read_opus_demo_bit, inp.data)
        return StreamContents(fmt, "packets", [r.data for r in recs], err)
    recs, err = read_with_prefix(lambda b: read_dred_stream(b, quant_levels=quant_levels), inp.data)
    return StreamContents(fmt, "dred", recs, err)


def read_capture_input(data: bytes, options=None, *, map=map) -> StreamContents:
    """:func:`read_input` for a pcap or pcapng file (see there)."""
    from opus_dred.bitstream._capture import (  # lazy: dpkt takes ~60 ms to import, only captures need it
        read_capture,
        require_opus,
        validate_packets,
    )

    cap = read_capture(data, options, map=map)
    stream = require_opus(cap)
    if stream is None:  # the file broke off before any Opus packet
        return StreamContents(cap.fmt, "packets", [], cap.error, tuple(cap.warnings), cap)
    invalid = validate_packets(stream)
    warnings = tuple(cap.warnings) + ((invalid,) if invalid is not None else ())
    _, items, _, _ = stream.in_sequence()
    return StreamContents(cap.fmt, "packets", [b"" if p is None else p for p in items], cap.error, warnings, cap,
                          stream)


def read_with_prefix(reader, data: bytes) -> tuple[list, BitstreamError | None]:
    """``(records, None)`` for a file ``reader`` reads whole; ``(records before the break, error)`` for one
    that breaks off: the longest prefix that reads, ending at the error's offset or at the record header
    before it (8 bytes in a ``.bit``, 12 in a DRED-only stream)."""
    try:
        return reader(data), None
    except BitstreamError as exc:
        off = exc.byte_offset or 0
        for cut in (off, off - 8, off - 12):
            if 0 <= cut <= len(data):
                try:
                    return reader(data[:cut]), exc
                except BitstreamError:
                    continue
        return [], exc


