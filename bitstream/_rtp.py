"""RTP (RFC 3550) carrying Opus (RFC 7587), with RED (RFC 2198) as WebRTC sends it, and the streams it makes.

Three layers, each pure Python (numpy for the per-stream columns):

* one datagram: :func:`parse_rtp` reads the fixed header (version 2, padding, extension, marker, payload type,
  sequence number, timestamp, SSRC), the CSRC list, a header extension (RFC 3550 §5.3.1: profile, length in
  32-bit words; RFC 8285's one- and two-byte forms are the same container) and the padding count at the end;
  :func:`parse_red` splits an RFC 2198 payload into its blocks (4-byte headers ``F:1 PT:7 ts_offset:14
  length:10`` with ``F = 1``, a last 1-byte header ``F = 0, PT``, then the block data in order; the last block
  is the primary encoding). WebRTC's audio RED (``a=rtpmap:63 red/48000/2``, ``a=fmtp:63 111/111``) carries
  the current Opus packet as the primary block and earlier ones as redundant blocks.
* the session description: :func:`parse_sdp` takes the ``a=rtpmap`` and ``a=fmtp`` lines (RFC 8866 §6.6,
  §6.15): which payload types are Opus (``opus/48000/2``, RFC 7587 §7) and which are RED over Opus.
* one SSRC's packets, in the order they arrived: :func:`analyze_stream` extends the 16-bit sequence numbers
  and the 32-bit timestamps across their wrap-around (RFC 3550 Appendix A.1's rule: the extended value nearest
  the highest so far), finds the gaps (the losses), duplicates and packets that arrive after a later one, and
  the interarrival jitter of RFC 3550 §6.4.1 (``J += (|D| - J) / 16`` in timestamp units).

What goes wrong in a datagram is a typed :class:`RtpError` with its byte offset; what is odd about a stream
but still usable (reordering, duplicates, wrap-around, snaplen-cut packets, several SSRCs, payloads that are
not Opus) is a :class:`CaptureWarning` with the byte offset in the capture of the first packet concerned.
These classes are :class:`~opus_dred.bitstream._errors.BitstreamError` subclasses, so every command prints
them the same way (``to_dict``).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

import numpy as np
from opus_dred.bitstream._errors import BitstreamError, FormatError

#: RTP's version number (RFC 3550 §5.1)
RTP_VERSION = 2
#: the RTP clock rate of Opus, whatever the rate it was encoded at (RFC 7587 §4.1)
OPUS_CLOCK = 48000
#: fixed part of the RTP header, in bytes
RTP_FIXED = 12
#: second bytes 192..223 are RTCP when RTP and RTCP share a port (RFC 5761 §4): packet types 200..204 and the
#: range reserved around them
RTCP_SECOND_BYTE = range(192, 224)
#: payload types a stream may not be Opus on: the static assignments of RFC 3551 §6 (0..34) and the range
#: RFC 5761 §4 keeps free of RTCP's packet types (72..76)
STATIC_PAYLOAD_TYPES = range(35)
RTCP_CONFLICT_PAYLOAD_TYPES = range(72, 77)


# --------------------------------------------------------------------------------------------------------------
# errors and warnings
# --------------------------------------------------------------------------------------------------------------
class RtpError(BitstreamError):
    """A datagram that is not an RTP packet (RFC 3550 §5.1): too short, not version 2, a CSRC list, header
    extension or padding count that runs past its end."""


class RedError(RtpError):
    """An RFC 2198 payload whose block headers or lengths run past its end."""


class CaptureError(FormatError):
    """A capture that cannot be used: not pcap or pcapng, a link type no reader here knows, or no RTP stream
    of the kind asked for."""


class PayloadTypeError(CaptureError):
    """A payload type that no packet of the capture carries, or that the session description does not name."""


class NotOpusError(CaptureError):
    """A stream whose payloads, taken as Opus packets, break RFC 6716 §3.4 or disagree with the RTP timestamps."""


class StreamSelectionError(CaptureError):
    """An SSRC asked for that no Opus stream of the capture has."""


class CaptureWarning(BitstreamError):
    """Something about a capture that a reader works around (the packets stay usable); never raised.

    ``count`` is how many packets the warning stands for (its offset is the first one's); ``ssrc`` the stream.
    """

    def __init__(self, message: str, *, byte_offset: int | None = None, rule: str | None = None,
                 ssrc: int | None = None, count: int = 1) -> None:
        self.ssrc = ssrc
        self.count = count
        super().__init__(message, byte_offset=byte_offset, rule=rule)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "ssrc": self.ssrc, "count": self.count}


class SnaplenWarning(CaptureWarning):
    """Packets the capture cut short (captured length below the length on the wire): their payload is unusable."""


class ReorderWarning(CaptureWarning):
    """Packets that arrived after a packet with a later sequence number."""


class DuplicateWarning(CaptureWarning):
    """Packets whose sequence number arrived before (the first copy is used)."""


class WrapWarning(CaptureWarning):
    """A sequence number or timestamp that wrapped around (extended across it, RFC 3550 Appendix A.1)."""


class StreamsWarning(CaptureWarning):
    """Several Opus streams (SSRCs) in one capture: the one used is named, the others listed."""


class PayloadWarning(CaptureWarning):
    """Packets of an Opus stream that are not Opus (another payload type, or a payload RFC 6716 rejects)."""


class NotRtpWarning(CaptureWarning):
    """Datagrams that look like RTP (version 2) but cannot be read as RTP packets."""


# --------------------------------------------------------------------------------------------------------------
# one packet
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The header of one RTP packet (RFC 3550 §5.1) and where its parts are, in bytes from its start."""

    version: int
    padding: bool
    extension: bool
    marker: bool
    pt: int
    seq: int
    timestamp: int
    ssrc: int
    csrc: tuple[int, ...] = ()
    ext_profile: int | None = None
    ext_length: int = 0  # bytes of header-extension data (after its 4-byte profile/length word)
    header_length: int = RTP_FIXED  # where the payload starts
    padding_length: int = 0  # bytes of padding at the end (the last byte's count), 0 without P
    payload_length: int = 0

    def to_dict(self) -> dict:
        return {"version": self.version, "padding": self.padding, "extension": self.extension,
                "marker": self.marker, "pt": self.pt, "seq": self.seq, "timestamp": self.timestamp,
                "ssrc": self.ssrc, "csrc": list(self.csrc), "ext_profile": self.ext_profile,
                "ext_length": self.ext_length, "header_length": self.header_length,
                "padding_length": self.padding_length, "payload_length": self.payload_length}


_FIXED = struct.Struct(">BBHII")


def looks_like_rtp(data: bytes) -> bool:
    """Whether a datagram may be RTP: version 2 and not RTCP on a shared port (RFC 5761 §4, RFC 7983's
    demultiplexing by the first byte: 128..191 is RTP or RTCP)."""
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and data[1] not in RTCP_SECOND_BYTE


def rtp_fields(data: bytes, base: int = 0) -> tuple[int, bool, int, int, int, int, int, int, int]:
    """The fields of an RTP packet a stream needs, as a tuple: ``(pt, marker, seq, timestamp, ssrc,
    header_length, padding_length, csrc_count, ext_profile or -1)``; the checks and errors of :func:`parse_rtp`."""
    n = len(data)
    if n < RTP_FIXED:
        raise RtpError(f"RTP packet of {n} bytes is shorter than the 12-byte header", byte_offset=base,
                       rule="RFC3550 5.1")
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data, 0)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {b0 >> 6} (2 expected)", byte_offset=base, rule="RFC3550 5.1 V")
    cc = b0 & 15
    pos = RTP_FIXED + 4 * cc
    if pos > n:
        raise RtpError(f"CSRC list of {cc} entries runs past the end of the {n}-byte packet", byte_offset=base + 12,
                       rule="RFC3550 5.1 CC")
    ext_profile = -1
    if b0 & 0x10:
        if pos + 4 > n:
            raise RtpError("header extension word runs past the end of the packet", byte_offset=base + pos,
                           rule="RFC3550 5.3.1")
        ext_profile, words = struct.unpack_from(">HH", data, pos)
        if pos + 4 + 4 * words > n:
            raise RtpError(f"header extension of {4 * words} bytes runs past the end of the packet",
                           byte_offset=base + pos + 2, rule="RFC3550 5.3.1")
        pos += 4 + 4 * words
    pad = 0
    if b0 & 0x20:
        pad = data[n - 1]
        if pad == 0 or pos + pad > n:
            raise RtpError(f"padding count {pad} does not fit the {n - pos} bytes after the header",
                           byte_offset=base + n - 1, rule="RFC3550 5.1 P")
    return b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, pos, pad, cc, ext_profile


def parse_rtp(data: bytes, *, base: int = 0) -> tuple[RtpHeader, bytes]:
    """``(header, payload)`` of one RTP packet; the payload is what lies between the header (CSRCs and
    extension included) and the padding. Raises :class:`RtpError` at the byte (``base`` + offset in ``data``)
    where the packet stops being RTP."""
    pt, marker, seq, ts, ssrc, pos, pad, cc, ext = rtp_fields(data, base)
    b0 = data[0]
    csrc = struct.unpack_from(f">{cc}I", data, RTP_FIXED) if cc else ()
    ext_len = pos - RTP_FIXED - 4 * cc - 4 if ext >= 0 else 0
    n = len(data)
    hdr = RtpHeader(RTP_VERSION, bool(b0 & 0x20), bool(b0 & 0x10), marker, pt, seq, ts, ssrc, csrc,
                    None if ext < 0 else ext, ext_len, pos, pad, n - pos - pad)
    return hdr, bytes(data[pos:n - pad])


def write_rtp(payload: bytes, *, pt: int, seq: int, timestamp: int, ssrc: int, marker: bool = False,
              csrc: tuple[int, ...] = (), ext_profile: int | None = None, ext_data: bytes = b"",
              padding: int = 0) -> bytes:
    """An RTP packet (RFC 3550 §5.1) around ``payload``: CSRCs, an optional header extension (``ext_data``
    padded to whole 32-bit words) and ``padding`` bytes of padding (the last one its count)."""
    if not 0 <= pt < 128 or len(csrc) > 15 or not 0 <= padding < 256:
        raise ValueError("pt 0..127, at most 15 CSRCs, padding 0..255")
    b0 = (RTP_VERSION << 6) | (0x20 if padding else 0) | (0x10 if ext_profile is not None else 0) | len(csrc)
    out = bytearray(_FIXED.pack(b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, timestamp & 0xFFFFFFFF,
                                ssrc & 0xFFFFFFFF))
    for c in csrc:
        out += struct.pack(">I", c)
    if ext_profile is not None:
        words = -(-len(ext_data) // 4)
        out += struct.pack(">HH", ext_profile, words) + ext_data + bytes(4 * words - len(ext_data))
    out += payload
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return bytes(out)


# --------------------------------------------------------------------------------------------------------------
# RED (RFC 2198)
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RedBlock:
    """One block of an RFC 2198 payload: its payload type, how far its timestamp lies before the packet's
    (0 for the primary), its data and where the data start in the RED payload."""

    pt: int
    ts_offset: int
    data: bytes
    offset: int
    primary: bool


def parse_red(payload: bytes, *, base: int = 0) -> list[RedBlock]:
    """The blocks of an RFC 2198 payload, redundant ones first and the primary last (§3). Raises
    :class:`RedError` at the byte (``base`` + offset) where a header or a block runs past the end."""
    heads: list[tuple[int, int, int]] = []
    pos = 0
    n = len(payload)
    while True:
        if pos >= n:
            raise RedError("RED block headers run past the end of the payload", byte_offset=base + pos,
                           rule="RFC2198 3")
        b = payload[pos]
        if not b & 0x80:  # the last header: F = 0, the primary's payload type
            heads.append((b & 0x7F, 0, -1))
            pos += 1
            break
        if pos + 4 > n:
            raise RedError("RED block header of 4 bytes runs past the end of the payload", byte_offset=base + pos,
                           rule="RFC2198 3")
        word = int.from_bytes(payload[pos:pos + 4], "big")
        heads.append(((word >> 24) & 0x7F, (word >> 10) & 0x3FFF, word & 0x3FF))
        pos += 4
    blocks = []
    for i, (pt, ts_off, length) in enumerate(heads):
        if length < 0:
            length = n - pos
        if pos + length > n:
            raise RedError(f"RED block {i} of {length} bytes runs past the end of the payload",
                           byte_offset=base + pos, rule="RFC2198 3")
        blocks.append(RedBlock(pt, ts_off, bytes(payload[pos:pos + length]), pos, i == len(heads) - 1))
        pos += length
    return blocks


def write_red(blocks: list[tuple[int, int, bytes]], primary_pt: int, primary: bytes) -> bytes:
    """An RFC 2198 payload: ``blocks`` = redundant ``(pt, ts_offset, data)`` in order, then the primary."""
    out = bytearray()
    for pt, ts_off, data in blocks:
        if not 0 <= ts_off < 1 << 14 or len(data) >= 1 << 10:
            raise ValueError("a RED timestamp offset is 14 bits and a block length 10 bits")
        out += (0x80000000 | pt << 24 | ts_off << 10 | len(data)).to_bytes(4, "big")
    out.append(primary_pt & 0x7F)
    for _, _, data in blocks:
        out += data
    return bytes(out + primary)


# --------------------------------------------------------------------------------------------------------------
# SDP
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SdpInfo:
    """What a session description says about payload types: ``rtpmap`` (pt → ``(encoding, clock, channels)``),
    the Opus payload types, RED payload types with the payload types their blocks carry, and the media ports."""

    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    opus: frozenset[int] = frozenset()
    red: dict[int, tuple[int, ...]] = field(default_factory=dict)
    ports: frozenset[int] = frozenset()


_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+([^/\s]+)/(\d+)(?:/(\d+))?", re.IGNORECASE)
_FMTP = re.compile(r"^a=fmtp:(\d+)\s+(.*)$", re.IGNORECASE)
_MEDIA = re.compile(r"^m=audio\s+(\d+)\s", re.IGNORECASE)


def parse_sdp(text: str) -> SdpInfo:
    """The payload types of a session description (RFC 8866): ``a=rtpmap:<pt> opus/48000/2`` names Opus
    (RFC 7587 §7), ``a=rtpmap:<pt> red/48000/2`` with ``a=fmtp:<pt> 111/111`` names RED over payload type 111
    (RFC 2198 §5); ``m=audio <port>`` lines give the ports. Lines it does not know are passed over."""
    rtpmap: dict[int, tuple[str, int, int]] = {}
    fmtp: dict[int, str] = {}
    ports = set()
    for raw in text.splitlines():
        line = raw.strip()
        if m := _RTPMAP.match(line):
            rtpmap[int(m[1])] = (m[2].lower(), int(m[3]), int(m[4] or 1))
        elif m := _FMTP.match(line):
            fmtp[int(m[1])] = m[2].strip()
        elif m := _MEDIA.match(line):
            ports.add(int(m[1]))
    opus = frozenset(pt for pt, (enc, clock, _) in rtpmap.items() if enc == "opus" and clock == OPUS_CLOCK)
    red = {}
    for pt, (enc, _, _) in rtpmap.items():
        if enc == "red":
            inner = tuple(int(x) for x in re.findall(r"\d+", fmtp.get(pt, "").split(";")[0]))
            red[pt] = inner or tuple(sorted(opus))
    return SdpInfo(rtpmap, opus, red, frozenset(ports))


# --------------------------------------------------------------------------------------------------------------
# one stream
# --------------------------------------------------------------------------------------------------------------
def extend_seq(seq: np.ndarray) -> np.ndarray:
    """16-bit sequence numbers, in arrival order, extended across wrap-around: each one is given the extended
    value nearest the highest so far (RFC 3550 Appendix A.1, without its probation). The first is taken as is."""
    out = np.empty(len(seq), np.int64)
    top = None
    for i, s in enumerate(seq.tolist()):
        if top is None:
            v = s
        else:
            d = (s - top) & 0xFFFF
            v = top + (d - 0x10000 if d >= 0x8000 else d)
        out[i] = v
        if top is None or v > top:
            top = v
    return out


def extend_timestamps(ts: np.ndarray, order: np.ndarray) -> np.ndarray:
    """32-bit RTP timestamps extended across wrap-around, packets taken in ``order`` (indices sorted by extended
    sequence number): each differs from the one before it by the signed 32-bit difference."""
    out = np.empty(len(ts), np.int64)
    if not len(ts):
        return out
    t = ts.astype(np.int64)[order]
    d = np.diff(t) & 0xFFFFFFFF
    d = np.where(d >= 1 << 31, d - (1 << 32), d)
    out[order] = t[0] + np.concatenate([[0], np.cumsum(d)])
    return out


@dataclass
class StreamAnalysis:
    """One SSRC's packets, as numpy columns in arrival order, and what their numbers say.

    Columns [N]: ``ext_seq`` and ``ext_ts`` (extended), ``arrival_ns``, ``duplicate`` (a sequence number seen
    before; the first copy counts), ``reordered`` (arrived after a later sequence number). ``seq_wraps`` and
    ``ts_wraps``: where the 16-bit sequence or 32-bit timestamp wrapped (indices into the columns). ``lost``:
    extended sequence numbers never received, between the first and the last. ``jitter``: RFC 3550's
    interarrival jitter after each packet (timestamp units), over the packets in arrival order.
    """

    ext_seq: np.ndarray
    ext_ts: np.ndarray
    arrival_ns: np.ndarray
    duplicate: np.ndarray
    reordered: np.ndarray
    seq_wraps: list[int]
    ts_wraps: list[int]
    lost: np.ndarray
    jitter: np.ndarray
    clock: int = OPUS_CLOCK

    @property
    def first_seq(self) -> int:
        return int(self.ext_seq.min()) if len(self.ext_seq) else 0

    @property
    def last_seq(self) -> int:
        return int(self.ext_seq.max()) if len(self.ext_seq) else -1

    @property
    def expected(self) -> int:
        """Packets the sequence numbers span (RFC 3550 A.3's ``expected``)."""
        return self.last_seq - self.first_seq + 1 if len(self.ext_seq) else 0

    def loss_runs(self) -> list[tuple[int, int]]:
        """``(first extended sequence number, length)`` of each run of consecutive losses."""
        if not len(self.lost):
            return []
        cut = np.flatnonzero(np.diff(self.lost) != 1) + 1
        starts = np.concatenate([[0], cut])
        ends = np.concatenate([cut, [len(self.lost)]])
        return [(int(self.lost[a]), int(b - a)) for a, b in zip(starts, ends)]

    def jitter_ms(self) -> float:
        """The interarrival jitter after the last packet, in ms."""
        return 1000.0 * float(self.jitter[-1]) / self.clock if len(self.jitter) else 0.0

    def max_jitter_ms(self) -> float:
        return 1000.0 * float(self.jitter.max()) / self.clock if len(self.jitter) else 0.0


def analyze_stream(seq: np.ndarray, ts: np.ndarray, arrival_ns: np.ndarray, *, clock: int = OPUS_CLOCK
                   ) -> StreamAnalysis:
    """The :class:`StreamAnalysis` of one SSRC's packets: ``seq`` (16-bit), ``ts`` (32-bit) and ``arrival_ns``
    (capture time, ns) in the order the packets arrived."""
    seq = np.asarray(seq, np.int64)
    ts = np.asarray(ts, np.int64)
    arrival_ns = np.asarray(arrival_ns, np.int64)
    n = len(seq)
    ext = extend_seq(seq)
    # first occurrence of each extended sequence number counts; a later copy is a duplicate
    order = np.argsort(ext, kind="stable")
    dup_sorted = np.zeros(n, bool)
    if n:
        dup_sorted[1:] = ext[order][1:] == ext[order][:-1]
    duplicate = np.zeros(n, bool)
    duplicate[order] = dup_sorted
    top = np.maximum.accumulate(ext) if n else ext
    reordered = np.zeros(n, bool)
    if n:
        reordered[1:] = (ext[1:] < top[:-1]) & ~duplicate[1:]
    seq_wraps = [int(i) for i in np.flatnonzero((ext >> 16) > (np.concatenate([[ext[0]], top[:-1]]) >> 16))] if n \
        else []
    keep = order[~dup_sorted]  # unique packets in sequence order
    ext_ts = extend_timestamps(ts, keep) if n else ts.copy()
    if n:
        ext_ts[order[dup_sorted]] = ext_ts[keep][np.searchsorted(ext[keep], ext[order[dup_sorted]])]
    ts_wraps = []
    if len(keep) > 1:
        hi = ext_ts[keep] >> 32
        ts_wraps = [int(keep[i + 1]) for i in np.flatnonzero(hi[1:] != hi[:-1])]
    present = ext[keep]
    lost = np.setdiff1d(np.arange(present[0], present[-1] + 1), present) if len(present) else np.zeros(0, np.int64)
    jitter = interarrival_jitter(ext_ts, arrival_ns, clock)
    return StreamAnalysis(ext, ext_ts, arrival_ns, duplicate, reordered, seq_wraps, ts_wraps, lost, jitter, clock)


def interarrival_jitter(ext_ts: np.ndarray, arrival_ns: np.ndarray, clock: int = OPUS_CLOCK) -> np.ndarray:
    """RFC 3550 §6.4.1: after each packet (arrival order), ``J += (|D| - J) / 16`` with ``D`` the change in
    transit time (arrival in timestamp units minus RTP timestamp) from the packet before it."""
    n = len(ext_ts)
    out = np.zeros(n, np.float64)
    if n < 2:
        return out
    transit = arrival_ns.astype(np.float64) * (clock / 1e9) - ext_ts.astype(np.float64)
    d = np.abs(np.diff(transit))
    j = 0.0
    for i, x in enumerate(d.tolist(), start=1):
        j += (x - j) / 16.0
        out[i] = j
    return out
