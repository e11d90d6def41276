"""Packet captures (pcap and pcapng) of RTP over UDP carrying Opus: from the file's bytes to Opus streams.

The file layers are read with ``dpkt``'s own structures, record by record, so that every record's byte offset
is known: pcap's file and record headers (``dpkt.pcap.FileHdr``/``PktHdr``, both byte orders, microsecond and
nanosecond magics), pcapng's blocks (``dpkt.pcapng``: section headers in either byte order, interface
descriptions with their link type, snaplen and ``if_tsresol``/``if_tsoffset``, enhanced, simple and obsolete
packet blocks). The protocol layers are ``dpkt``'s too: Ethernet (with 802.1Q tags), Linux cooked capture v1
and v2, BSD loopback (``DLT_NULL``/``DLT_LOOP``), raw IP; IPv4 and IPv6; UDP. Timestamps are kept as integer
nanoseconds since the epoch.

A file that breaks off (a record or block running past the end) keeps the records before the break and carries
a :class:`~opus_dred.bitstream._errors.TruncatedError` at the record's offset; a record whose captured length is
below its length on the wire (the capture's snaplen) is kept, marked ``cut``, and reported once
(:class:`~opus_dred.bitstream._rtp.SnaplenWarning`). IPv4 fragments are passed over (counted).

Above the datagrams (:func:`read_capture`): every UDP datagram that reads as RTP version 2 (and is not RTCP on a
shared port) is grouped by SSRC; each SSRC's payload type is Opus when ``--pt`` names it, when a session
description (``a=rtpmap:<pt> opus/48000/2``) does, or, without either, when its payloads read as Opus packets
(RFC 6716 §3.4) whose durations agree with the RTP timestamps; RED (RFC 2198) is recognised the same ways, and
its primary block taken as the packet. The result, :class:`RtpCapture`, lists every RTP packet, every SSRC and
the Opus streams, with the warnings and the error.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

import dpkt
import numpy as np
from opus_dred.bitstream._errors import BitstreamError, PacketError, TruncatedError
from opus_dred.bitstream._formats import capture_magic
from opus_dred.bitstream._packet import Toc, parse_packet
from opus_dred.bitstream._rtp import (
    OPUS_CLOCK,
    RTCP_CONFLICT_PAYLOAD_TYPES,
    RTCP_SECOND_BYTE,
    STATIC_PAYLOAD_TYPES,
    CaptureError,
    CaptureWarning,
    DuplicateWarning,
    NotOpusError,
    NotRtpWarning,
    PayloadTypeError,
    PayloadWarning,
    RedError,
    ReorderWarning,
    RtpError,
    SdpInfo,
    SnaplenWarning,
    StreamAnalysis,
    StreamSelectionError,
    StreamsWarning,
    WrapWarning,
    analyze_stream,
    parse_red,
    rtp_fields,
)

#: pcap magics (the first four bytes, read big-endian) and what they say
PCAP_MAGICS = {0xA1B2C3D4: ("big", 1000), 0xA1B23C4D: ("big", 1), 0xD4C3B2A1: ("little", 1000),
               0x4D3CB2A1: ("little", 1), 0xA1B2CD34: ("big", 1000), 0x34CDB2A1: ("little", 1000)}
#: largest record a capture may hold (libpcap's MAXIMUM_SNAPLEN); larger lengths are corruption
MAX_RECORD = 262144

# link types (https://www.tcpdump.org/linktypes.html)
LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP, LINK_SLL, LINK_IPV4, LINK_IPV6, LINK_SLL2 = 0, 1, 101, 108, 113, 228, \
    229, 276
#: link types read here, with their names
LINK_TYPES = {LINK_NULL: "BSD loopback", LINK_ETHERNET: "Ethernet", LINK_RAW: "raw IP", 12: "raw IP", 14: "raw IP",
              LINK_LOOP: "OpenBSD loopback", LINK_SLL: "Linux cooked v1", LINK_SLL2: "Linux cooked v2",
              LINK_IPV4: "raw IPv4", LINK_IPV6: "raw IPv6"}


def is_capture(data: bytes) -> str | None:
    """``"pcap"`` or ``"pcapng"`` when ``data`` opens as one (its magic), else None."""
    return capture_magic(data)


# --------------------------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Record:
    """One captured packet: its index in the file (tshark's ``frame.number`` is ``index + 1``), the offset of
    its record header and of its data, the capture time (ns since the epoch), the captured and on-the-wire
    lengths, the link type, and the data."""

    index: int
    offset: int
    data_offset: int
    ts_ns: int
    caplen: int
    origlen: int
    linktype: int
    data: bytes

    @property
    def cut(self) -> bool:
        return self.caplen < self.origlen


@dataclass
class RecordFile:
    """The records of a capture, its format and interfaces, and the error where it broke off (or None)."""

    fmt: str
    records: list[Record]
    linktypes: list[int]
    snaplen: int
    error: BitstreamError | None = None


def read_records(data: bytes) -> RecordFile:
    """Every record of a pcap or pcapng file. Raises :class:`~opus_dred.bitstream._rtp.CaptureError` when the
    file is neither (or its first header is cut short); a later break is kept in :attr:`RecordFile.error`."""
    fmt = is_capture(data)
    if fmt == "pcap":
        return _read_pcap(data)
    if fmt == "pcapng":
        return _read_pcapng(data)
    raise CaptureError("not a pcap or pcapng capture (no magic)", byte_offset=0, rule="pcap: magic")


def _read_pcap(data: bytes) -> RecordFile:
    n = len(data)
    if n < dpkt.pcap.FileHdr.__hdr_len__:
        raise CaptureError(f"pcap file header needs {dpkt.pcap.FileHdr.__hdr_len__} bytes, {n} given",
                           byte_offset=0, rule="pcap: file header")
    magic = int.from_bytes(data[:4], "big")
    order, unit_ns = PCAP_MAGICS[magic]
    fh = (dpkt.pcap.LEFileHdr if order == "little" else dpkt.pcap.FileHdr)(data[:dpkt.pcap.FileHdr.__hdr_len__])
    ph = dpkt.pcap.MAGIC_TO_PKT_HDR[magic]
    hlen = ph.__hdr_len__
    # dpkt's record header layout, unpacked in place (a dpkt object per record costs ~2 µs more)
    unpack = struct.Struct(ph.__hdr_fmt__).unpack_from
    linktype = fh.linktype & 0xFFFF  # the upper bits may carry FCS information
    out = RecordFile("pcap", [], [linktype], fh.snaplen)
    pos = dpkt.pcap.FileHdr.__hdr_len__
    recs = out.records
    while pos < n:
        if n - pos < hlen:
            out.error = TruncatedError(f"pcap record header needs {hlen} bytes, {n - pos} left", byte_offset=pos,
                                       rule="pcap: record header")
            break
        tv_sec, tv_frac, caplen, origlen = unpack(data, pos)[:4]
        if caplen > MAX_RECORD:
            out.error = CaptureError(f"pcap record announces {caplen} captured bytes (at most {MAX_RECORD})",
                                     byte_offset=pos + 8, rule="pcap: caplen")
            break
        start = pos + hlen
        if start + caplen > n:
            out.error = TruncatedError(f"pcap record of {caplen} bytes runs past the end of the file "
                                       f"({n - start} left)", byte_offset=pos, rule="pcap: record data")
            break
        recs.append(Record(len(recs), pos, start, tv_sec * 1_000_000_000 + tv_frac * unit_ns, caplen, origlen,
                           linktype, data[start:start + caplen]))
        pos = start + caplen
    return out


@dataclass
class _Interface:
    linktype: int
    snaplen: int
    resol_num: int = 1_000_000_000  # ns per tick = resol_num / resol_den
    resol_den: int = 1_000_000
    offset_s: int = 0

    def ns(self, ticks: int) -> int:
        return ticks * self.resol_num // self.resol_den + self.offset_s * 1_000_000_000


def _interface(idb, le: bool) -> _Interface:
    itf = _Interface(idb.linktype, idb.snaplen)
    for opt in idb.opts:
        if opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL and opt.data:
            v = opt.data[0]
            if v & 0x80:  # a negative power of two
                itf.resol_num, itf.resol_den = 1_000_000_000, 1 << (v & 0x7F)
            else:
                itf.resol_num, itf.resol_den = 1_000_000_000, 10 ** v
        elif opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) >= 8:
            itf.offset_s = struct.unpack("<q" if le else ">q", opt.data[:8])[0]
    return itf


def _read_pcapng(data: bytes) -> RecordFile:
    n = len(data)
    out = RecordFile("pcapng", [], [], 0)
    recs = out.records
    le = True
    itfs: list[_Interface] = []
    pos = 0
    ng = dpkt.pcapng
    while pos < n:
        if n - pos < 12:
            if pos == 0:
                raise CaptureError(f"pcapng section header needs 12 bytes, {n} given", byte_offset=0,
                                   rule="pcapng: SHB")
            out.error = TruncatedError(f"pcapng block header needs 12 bytes, {n - pos} left", byte_offset=pos,
                                       rule="pcapng: block")
            break
        btype = int.from_bytes(data[pos:pos + 4], "little" if le else "big")
        if btype == ng.PCAPNG_BT_SHB:
            bom = data[pos + 8:pos + 12]
            if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                err = CaptureError("pcapng section header with no byte-order magic", byte_offset=pos + 8,
                                   rule="pcapng: SHB")
                if pos == 0:
                    raise err
                out.error = err
                break
            le = bom == b"\x4d\x3c\x2b\x1a"
            itfs = []
        blen = int.from_bytes(data[pos + 4:pos + 8], "little" if le else "big")
        if blen < 12 or blen % 4:
            err = CaptureError(f"pcapng block length {blen} is not a multiple of 4 of at least 12",
                               byte_offset=pos + 4, rule="pcapng: block length")
            if pos == 0:
                raise err
            out.error = err
            break
        if pos + blen > n:
            err = TruncatedError(f"pcapng block of {blen} bytes runs past the end of the file ({n - pos} left)",
                                 byte_offset=pos, rule="pcapng: block")
            if pos == 0:
                raise CaptureError(err.message, byte_offset=0, rule="pcapng: SHB")
            out.error = err
            break
        buf = data[pos:pos + blen]
        try:
            if btype == ng.PCAPNG_BT_IDB:
                idb = (ng.InterfaceDescriptionBlockLE if le else ng.InterfaceDescriptionBlock)(buf)
                itfs.append(_interface(idb, le))
                out.linktypes.append(idb.linktype)
                out.snaplen = max(out.snaplen, idb.snaplen)
            elif btype in (ng.PCAPNG_BT_EPB, ng.PCAPNG_BT_PB):
                cls = {(ng.PCAPNG_BT_EPB, True): ng.EnhancedPacketBlockLE, (ng.PCAPNG_BT_EPB, False):
                       ng.EnhancedPacketBlock, (ng.PCAPNG_BT_PB, True): ng.PacketBlockLE,
                       (ng.PCAPNG_BT_PB, False): ng.PacketBlock}[(btype, le)]
                b = cls(buf)
                if b.iface_id >= len(itfs):
                    raise CaptureError(f"packet block names interface {b.iface_id}, {len(itfs)} described",
                                       byte_offset=pos + 8, rule="pcapng: interface id")
                itf = itfs[b.iface_id]
                recs.append(Record(len(recs), pos, pos + 28, itf.ns((b.ts_high << 32) | b.ts_low), b.caplen,
                                   b.pkt_len, itf.linktype, bytes(b.pkt_data)))
            elif btype == ng.PCAPNG_BT_SPB:
                if not itfs:
                    raise CaptureError("simple packet block before any interface description",
                                       byte_offset=pos, rule="pcapng: interface id")
                origlen = int.from_bytes(buf[8:12], "little" if le else "big")
                itf = itfs[0]
                cap = min(origlen, itf.snaplen or origlen, blen - 16)
                recs.append(Record(len(recs), pos, pos + 12, 0, cap, origlen, itf.linktype, bytes(buf[12:12 + cap])))
        except CaptureError as exc:
            out.error = exc
            break
        except (dpkt.UnpackError, struct.error, ValueError, IndexError) as exc:
            err = CaptureError(f"pcapng block of type {btype:#x} cannot be read: {exc}", byte_offset=pos,
                               rule="pcapng: block")
            if pos == 0:
                raise err from None
            out.error = err
            break
        pos += blen
    if not out.linktypes and out.error is None and not recs:
        out.snaplen = 0
    return out


# --------------------------------------------------------------------------------------------------------------
# datagrams and RTP packets, as columns
# --------------------------------------------------------------------------------------------------------------
_ADDR: dict[bytes, str] = {}


def _addr(raw: bytes) -> str:
    s = _ADDR.get(raw)
    if s is None:
        s = _ADDR[raw] = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    return s


def _network(linktype: int, buf: bytes):
    """``(ip object, offset of the IP header in the record)`` for the record's link type, or None."""
    if linktype == LINK_ETHERNET:
        eth = dpkt.ethernet.Ethernet(buf)
        hl = 14 + 4 * len(getattr(eth, "vlan_tags", None) or ()) + 4 * len(getattr(eth, "mpls_labels", None) or ())
        return eth.data, hl
    if linktype in (LINK_NULL, LINK_LOOP):
        return dpkt.loopback.Loopback(buf).data, 4
    if linktype == LINK_SLL:
        return dpkt.sll.SLL(buf).data, 16
    if linktype == LINK_SLL2:
        return dpkt.sll2.SLL2(buf).data, 20
    if linktype in (LINK_RAW, 12, 14, LINK_IPV4, LINK_IPV6) and buf:
        v = buf[0] >> 4
        return (dpkt.ip.IP(buf) if v == 4 else dpkt.ip6.IP6(buf) if v == 6 else None), 0
    return None


def udp_payload(linktype: int, buf: bytes) -> tuple[int, int, bytes, bytes, int, int] | None:
    """``(start, end, src, dst, sport, dport)`` of the UDP payload a record's ``buf`` carries (``end`` may lie past
    the captured bytes when the capture cut the record), or None for anything else: other protocols, IPv4
    fragments, a record too short for its headers."""
    got = _udp_parse(linktype, buf)
    return None if got is None else got[:6]


def _udp_parse(linktype: int, buf: bytes) -> tuple[int, int, bytes, bytes, int, int, int, int] | None:
    """:func:`udp_payload`'s answer and two more: where the IP header starts and its version (4 or 6)."""
    try:
        got = _network(linktype, buf)
    except (dpkt.UnpackError, struct.error, ValueError, IndexError):
        return None
    if got is None:
        return None
    ip, base = got
    udp = getattr(ip, "data", None)
    if not isinstance(udp, dpkt.udp.UDP):
        return None
    if isinstance(ip, dpkt.ip.IP):
        if ip.p != dpkt.ip.IP_PROTO_UDP or ip.mf or ip.offset:  # not UDP, or a fragment
            return None
        start, version = base + 4 * ip.hl + 8, 4
    elif isinstance(ip, dpkt.ip6.IP6):
        if ip.p != dpkt.ip.IP_PROTO_UDP:
            return None
        start, version = base + 40 + ip.plen - udp.ulen + 8, 6  # UDP is the last header: it ends the payload
    else:
        return None
    return start, start + max(0, udp.ulen - 8), ip.src, ip.dst, udp.sport, udp.dport, base, version


@dataclass(slots=True)
class _Shape:
    """How ``dpkt`` read one record down to its UDP payload, to read the records laid out the same way without
    it: those of the same link type whose bytes up to the payload (``length``) equal this record's in every
    range of ``same`` (everything but IPv4's total length, identification and checksum, IPv6's payload length,
    and UDP's length and checksum) take dpkt's answer, ``(src, dst, sport, dport)`` and ``length`` as the start,
    with the end from their own UDP length. A record whose lengths dpkt would read differently (a UDP length
    under 8; an IPv4 total length too short for the UDP header; an IPv6 payload length of 0 or not ending with
    the UDP datagram) is left to dpkt."""

    linktype: int
    length: int
    same: tuple[tuple[int, int, bytes], ...]
    len_at: int  # offset of IPv4's total length or IPv6's payload length
    version: int
    ip_base: int
    flow: tuple[bytes, bytes, int, int]

    @classmethod
    def of(cls, linktype: int, buf: bytes, got: tuple) -> "_Shape | None":
        start, _, src, dst, sport, dport, base, version = got
        if not base + 20 <= start - 8 <= len(buf) - 8:
            return None
        cuts = ((0, base + 2), (base + 6, base + 10), (base + 12, start - 4)) if version == 4 else \
            ((0, base + 4), (base + 6, start - 4))
        return cls(linktype, start, tuple((a, b, buf[a:b]) for a, b in cuts), base + (2 if version == 4 else 4),
                   version, base, (src, dst, sport, dport))

    def read(self, buf: bytes) -> tuple[int, int] | None:
        """``(start, end)`` of ``buf``'s UDP payload when ``buf`` is laid out as this shape, else None."""
        n = self.length
        if len(buf) < n:
            return None
        for a, b, v in self.same:
            if buf[a:b] != v:
                return None
        ulen = (buf[n - 4] << 8) | buf[n - 3]
        if ulen < 8:
            return None
        ln = (buf[self.len_at] << 8) | buf[self.len_at + 1]
        if self.version == 4:
            if ln and ln < n - self.ip_base:
                return None
        elif not ln or self.ip_base + 40 + ln - ulen + 8 != n:
            return None
        return n, n + ulen - 8


#: layouts :func:`scan_records` remembers per chunk (a capture of a few calls has a few: one per flow)
MAX_SHAPES = 16


#: the per-packet columns of :class:`RtpColumns`, in order
RTP_COLUMNS = ("record", "offset", "arrival_ns", "flow", "pt", "marker", "seq", "timestamp", "ssrc",
               "header_length", "padding_length", "csrc_count", "ext_profile", "cut")


@dataclass
class RtpColumns:
    """Every RTP packet of a capture as numpy columns (arrival order), with the payloads and the flows.

    ``record`` (index in the file; tshark's ``frame.number`` is ``record + 1``), ``offset`` (of the RTP header in
    the file), ``arrival_ns``, ``flow`` (index into ``flows``: ``(src, sport, dst, dport)``), ``pt``, ``marker``,
    ``seq``, ``timestamp``, ``ssrc``, ``header_length`` (payload start), ``padding_length``, ``csrc_count``,
    ``ext_profile`` (-1 without an extension), ``cut`` (the capture cut the packet: its payload is incomplete).
    ``payloads``: the payload of each (empty for a cut packet whose header could not be read whole).
    ``udp``: UDP datagrams seen; ``bad``: ``(error, record)`` of datagrams that looked like RTP but are not.
    """

    record: np.ndarray
    offset: np.ndarray
    arrival_ns: np.ndarray
    flow: np.ndarray
    pt: np.ndarray
    marker: np.ndarray
    seq: np.ndarray
    timestamp: np.ndarray
    ssrc: np.ndarray
    header_length: np.ndarray
    padding_length: np.ndarray
    csrc_count: np.ndarray
    ext_profile: np.ndarray
    cut: np.ndarray
    payloads: list[bytes]
    flows: list[tuple[str, int, str, int]]
    udp: int = 0
    bad: list[tuple[RtpError, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.payloads)

    def packet(self, i: int) -> dict:
        """Packet ``i``'s RTP fields as a dict (what ``inspect --json`` lists under ``rtp``)."""
        src, sport, dst, dport = self.flows[int(self.flow[i])]
        return {"frame": int(self.record[i]) + 1, "offset": int(self.offset[i]),
                "arrival": format_ns(int(self.arrival_ns[i])), "src": f"{src}:{sport}", "dst": f"{dst}:{dport}",
                "ssrc": int(self.ssrc[i]), "seq": int(self.seq[i]), "timestamp": int(self.timestamp[i]),
                "pt": int(self.pt[i]), "marker": bool(self.marker[i]), "csrc_count": int(self.csrc_count[i]),
                "ext_profile": None if self.ext_profile[i] < 0 else int(self.ext_profile[i]),
                "padding_length": int(self.padding_length[i]), "payload_length": len(self.payloads[i]),
                "cut": bool(self.cut[i])}


def format_ns(ns: int) -> str:
    """Nanoseconds since the epoch as ``seconds.nanoseconds`` (tshark's ``frame.time_epoch``)."""
    s, f = divmod(int(ns), 1_000_000_000)
    return f"{s}.{f:09d}"


def scan_records(chunk: tuple[bytes, int, list[tuple[int, int, int, int, int, int]], int | None]) -> tuple:
    """The RTP packets among some records: ``chunk = (data, base, records, port)`` with ``data`` the bytes of
    the file from offset ``base`` on and ``records`` their ``(index, data_offset, ts_ns, caplen, origlen,
    linktype)``. Returns plain columns (lists), picklable, for :func:`merge_scans` (a worker process may run it)."""
    data, base, records, port = chunk
    rows: list[tuple] = []
    payloads: list[bytes] = []
    flows: dict[tuple, int] = {}
    bad: list[tuple[RtpError, int]] = []
    udp = 0
    shapes: list[_Shape] = []
    for index, doff, ts_ns, caplen, origlen, linktype in records:
        rel = doff - base
        buf = data[rel:rel + caplen]
        for sh in shapes:
            if sh.linktype == linktype and (se := sh.read(buf)) is not None:
                start, end = se
                src, dst, sport, dport = sh.flow
                break
        else:
            got = _udp_parse(linktype, buf)
            if got is None:
                continue
            start, end, src, dst, sport, dport = got[:6]
            if len(shapes) < MAX_SHAPES and (sh := _Shape.of(linktype, buf, got)) is not None:
                shapes.append(sh)
        if port is not None and port not in (sport, dport):
            continue
        udp += 1
        payload = buf[start:end]
        if len(payload) < 2 or payload[0] >> 6 != 2 or payload[1] in RTCP_SECOND_BYTE:
            continue
        cut = caplen < origlen or end > caplen
        where = doff + start
        try:
            pt, marker, seq, ts, ssrc, hl, pad, cc, ext = rtp_fields(payload, where)
            body = payload[hl:len(payload) - pad]
        except RtpError as exc:
            if not cut:
                bad.append((exc, index))
                continue
            if len(payload) < 12:
                continue
            # a packet the capture cut keeps its fixed header: its sequence number still counts as received
            _, b1, seq, ts, ssrc = struct.unpack_from(">BBHII", payload, 0)
            pt, marker, hl, pad, cc, ext, body = b1 & 0x7F, bool(b1 & 0x80), 12, 0, 0, -1, b""
        key = (src, sport, dst, dport)
        f = flows.get(key)
        if f is None:
            f = flows[key] = len(flows)
        rows.append((index, where, ts_ns, f, pt, marker, seq, ts, ssrc, hl, pad, cc, ext, cut))
        payloads.append(body)
    cols = [list(c) for c in zip(*rows)] if rows else [[] for _ in RTP_COLUMNS]
    return cols, payloads, [(_addr(a), sp, _addr(b), dp) for (a, sp, b, dp) in flows], udp, bad


def merge_scans(parts: list[tuple]) -> RtpColumns:
    """One :class:`RtpColumns` from the results of :func:`scan_records` over consecutive chunks."""
    cols: list[list] = [[] for _ in RTP_COLUMNS]
    payloads: list[bytes] = []
    flows: list[tuple] = []
    where: dict[tuple, int] = {}
    udp = 0
    bad: list = []
    for pcols, ppay, pflows, pudp, pbad in parts:
        remap = []
        for fl in pflows:
            if fl not in where:
                where[fl] = len(flows)
                flows.append(fl)
            remap.append(where[fl])
        for k, col in enumerate(pcols):
            cols[k].extend(col if RTP_COLUMNS[k] != "flow" else [remap[f] for f in col])
        payloads.extend(ppay)
        udp += pudp
        bad.extend(pbad)
    dtypes = {"marker": bool, "cut": bool}
    arrays = {name: np.array(col, dtypes.get(name, np.int64)) for name, col in zip(RTP_COLUMNS, cols)}
    return RtpColumns(**arrays, payloads=payloads, flows=flows, udp=udp, bad=bad)


#: records per chunk handed to :func:`scan_records` (by :func:`scan_capture`'s ``map``)
SCAN_CHUNK = 16384


def scan_capture(data: bytes, records: list[Record], *, port: int | None = None, map=map) -> RtpColumns:
    """:func:`scan_records` over the records in chunks of :data:`SCAN_CHUNK`; ``map`` may be a process pool's
    (each chunk carries the slice of the file it needs)."""
    chunks = []
    for a in range(0, len(records), SCAN_CHUNK):
        part = records[a:a + SCAN_CHUNK]
        lo, hi = part[0].data_offset, part[-1].data_offset + part[-1].caplen
        chunks.append((data[lo:hi], lo, [(r.index, r.data_offset, r.ts_ns, r.caplen, r.origlen, r.linktype)
                                         for r in part], port))
    return merge_scans(list(map(scan_records, chunks)))


# --------------------------------------------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaptureOptions:
    """How to find the Opus stream: ``pt`` (the Opus payload type), ``sdp`` (a session description),
    ``ssrc`` (the stream a single-stream command uses), ``port`` (only datagrams to or from this UDP port)."""

    pt: int | None = None
    sdp: SdpInfo | None = None
    ssrc: int | None = None
    port: int | None = None


@dataclass
class SsrcStream:
    """Every RTP packet of one SSRC (``packets``: indices into :class:`RtpColumns`, arrival order), the payload
    types seen, what the stream was decided to carry and why, and the analysis of its numbers."""

    ssrc: int
    packets: np.ndarray
    pts: dict[int, int]
    src: str
    dst: str
    analysis: StreamAnalysis
    codec: str | None = None  # "opus" or None
    opus_pt: int | None = None
    red_pt: int | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        a = self.analysis
        return {"ssrc": self.ssrc, "ssrc_hex": f"{self.ssrc:#010x}", "src": self.src, "dst": self.dst,
                "packets": len(self.packets), "payload_types": {str(k): v for k, v in sorted(self.pts.items())},
                "codec": self.codec, "opus_pt": self.opus_pt, "red_pt": self.red_pt, "reason": self.reason,
                "first_seq": a.first_seq, "last_seq": a.last_seq, "expected": a.expected, "lost": len(a.lost),
                "duplicates": int(a.duplicate.sum()), "reordered": int(a.reordered.sum())}


@dataclass
class OpusStream:
    """One SSRC's Opus packets in arrival order: ``rtp`` (indices into :class:`RtpColumns`), the Opus packet of
    each (the RED primary where RED carries it; ``None`` where the capture cut the packet, RED cannot be split,
    or :func:`validate_packets` found it is no Opus packet), its offset in the file, its redundant RED blocks
    ``(ts_offset, packet)``, and the numbers of the SSRC's analysis for these packets (``ext_seq``, ``ext_ts``,
    ``arrival_ns``, ``duplicate``, ``reordered``; ``lost``: the SSRC's losses). ``other_seq``: the extended
    sequence numbers of the SSRC's packets of other payload types (not losses)."""

    ssrc: int
    pt: int
    red_pt: int | None
    rtp: np.ndarray
    opus: list[bytes | None]
    opus_offset: list[int]
    redundant: list[list[tuple[int, bytes]]]
    ext_seq: np.ndarray
    ext_ts: np.ndarray
    arrival_ns: np.ndarray
    duplicate: np.ndarray
    reordered: np.ndarray
    lost: np.ndarray
    other_seq: np.ndarray
    src: str = ""
    dst: str = ""

    def __len__(self) -> int:
        return len(self.rtp)

    def in_sequence(self) -> tuple[np.ndarray, list[bytes | None], np.ndarray, np.ndarray]:
        """The stream in sequence order, first to last extended sequence number, the other payload types'
        numbers passed over: ``(ext_seq, packet or None for a loss, arrival ns or -1 for a loss, index into the
        stream or -1)``. The first copy of a duplicate is used; a packet the capture cut or that is not Opus is
        ``None`` (a loss)."""
        keep = np.flatnonzero(~self.duplicate)
        order = keep[np.argsort(self.ext_seq[keep], kind="stable")]
        if not len(order):
            z = np.zeros(0, np.int64)
            return z, [], z, z
        lo, hi = int(self.ext_seq[order[0]]), int(self.ext_seq[order[-1]])
        seqs = np.arange(lo, hi + 1)
        if len(self.other_seq):
            seqs = seqs[~np.isin(seqs, self.other_seq)]
        where = np.full(hi - lo + 1, -1, np.int64)
        where[self.ext_seq[order] - lo] = order
        idx = where[seqs - lo]
        items = [self.opus[i] if i >= 0 else None for i in idx.tolist()]
        arr = np.where(idx >= 0, self.arrival_ns[np.maximum(idx, 0)], -1)
        return seqs, items, arr, idx

    def loss_flags(self) -> np.ndarray:
        """One flag per packet in sequence order (1: lost, cut by the capture, or not Opus)."""
        _, items, _, _ = self.in_sequence()
        return np.array([p is None for p in items], np.uint8)

    def arrival_delays_ms(self, frame_ms: float = 20.0) -> np.ndarray:
        """Per packet in sequence order: arrival time less send time, in ms, packet ``k`` being sent
        ``k * frame_ms`` after the first, the smallest delay taken as 0. A packet that did not arrive (or is
        unusable) gets the median delay of those that did."""
        _, items, arr, _ = self.in_sequence()
        got = (arr >= 0) & np.array([p is not None for p in items], bool)
        if not got.any():
            return np.zeros(len(arr))
        send = np.arange(len(arr)) * frame_ms
        delay = np.where(got, (arr - arr[got][0]) / 1e6 - send, np.nan)
        delay -= np.nanmin(delay)
        return np.where(got, delay, np.nanmedian(delay))


@dataclass
class RtpCapture:
    """A capture read down to its Opus streams.

    ``rtp``: every RTP packet (:class:`RtpColumns`, arrival order); ``ssrcs``: every SSRC; ``opus``: the Opus
    streams, in the order of their first packet; ``selected``: the one a single-stream command uses
    (``CaptureOptions.ssrc``, else the stream with the most packets); ``warnings``; ``error``: where the file
    broke off (the packets before it are here), or None. ``records``: how many; ``linktypes``, ``snaplen``: the
    capture's interfaces.
    """

    fmt: str
    size: int
    records: int
    linktypes: list[int]
    snaplen: int
    rtp: RtpColumns
    ssrcs: list[SsrcStream]
    opus: list[OpusStream]
    selected: OpusStream | None
    warnings: list[CaptureWarning] = field(default_factory=list)
    error: BitstreamError | None = None

    def header(self) -> dict:
        r = self.rtp
        first = int(r.arrival_ns.min()) if len(r) else 0
        last = int(r.arrival_ns.max()) if len(r) else 0
        return {"capture": self.fmt, "records": self.records, "udp_datagrams": r.udp, "rtp_packets": len(r),
                "link_types": [f"{lt} ({LINK_TYPES.get(lt, 'unknown')})" for lt in self.linktypes],
                "snaplen": self.snaplen, "first": format_ns(first) if len(r) else None,
                "last": format_ns(last) if len(r) else None, "span_s": (last - first) / 1e9,
                "ssrcs": [s.to_dict() for s in self.ssrcs],
                "selected_ssrc": None if self.selected is None else self.selected.ssrc}


def read_capture(data: bytes, options: CaptureOptions | None = None, *, map=map) -> RtpCapture:
    """A pcap or pcapng file read down to its Opus streams (see the module docstring); ``map`` runs
    :func:`scan_records` over chunks of records (a process pool's map may).

    Raises :class:`~opus_dred.bitstream._rtp.CaptureError` when the file is no capture, a
    :class:`~opus_dred.bitstream._rtp.PayloadTypeError` when ``options.pt`` (or the SDP) names a payload type no
    packet carries, :class:`~opus_dred.bitstream._rtp.NotOpusError` when the payload type named is not Opus,
    :class:`~opus_dred.bitstream._rtp.StreamSelectionError` when ``options.ssrc`` is no Opus stream's. A file
    that breaks off is no error here: :attr:`RtpCapture.error`.
    """
    opt = options or CaptureOptions()
    rf = read_records(data)
    rtp = scan_capture(data, rf.records, port=opt.port, map=map)
    warns: list[CaptureWarning] = []
    if rtp.bad:
        exc, idx = rtp.bad[0]
        warns.append(NotRtpWarning(f"{len(rtp.bad)} datagram(s) look like RTP but are not ({exc.message}); the "
                                   f"first is frame {idx + 1}", byte_offset=exc.byte_offset, rule=exc.rule,
                                   count=len(rtp.bad)))
    cut = np.flatnonzero(rtp.cut)
    if len(cut):
        c = int(cut[0])
        warns.append(SnaplenWarning(
            f"{len(cut)} RTP packet(s) cut short by the capture (snaplen {rf.snaplen}): their payloads are not "
            f"used, the first is frame {int(rtp.record[c]) + 1}", byte_offset=int(rtp.offset[c]),
            rule="pcap: snaplen", ssrc=int(rtp.ssrc[c]), count=len(cut)))
    ssrcs = _group(rtp)
    for s in ssrcs:
        _decide(s, rtp, opt)
    _check_payload_type(ssrcs, rtp, opt)
    opus = [_opus_stream(s, rtp, warns) for s in ssrcs if s.codec == "opus"]
    opus = [o for o in opus if len(o)]
    selected = _select(opus, opt, warns, rtp)
    for o in opus:
        _stream_warnings(o, rtp, warns)
    return RtpCapture(rf.fmt, len(data), len(rf.records), rf.linktypes, rf.snaplen, rtp, ssrcs, opus, selected,
                      warns, rf.error)


def _group(rtp: RtpColumns) -> list[SsrcStream]:
    if not len(rtp):
        return []
    ssrcs, first = np.unique(rtp.ssrc, return_index=True)
    out = []
    for ssrc in ssrcs[np.argsort(first)].tolist():
        idx = np.flatnonzero(rtp.ssrc == ssrc)
        an = analyze_stream(rtp.seq[idx], rtp.timestamp[idx], rtp.arrival_ns[idx])
        pts, counts = np.unique(rtp.pt[idx], return_counts=True)
        src, sport, dst, dport = rtp.flows[int(rtp.flow[idx[0]])]
        out.append(SsrcStream(int(ssrc), idx, dict(zip(pts.tolist(), counts.tolist())), f"{src}:{sport}",
                              f"{dst}:{dport}", an))
    return out


#: packets of a payload type sampled to decide whether it is Opus
DETECT_SAMPLE = 64


def _opus_duration(pkt: bytes) -> int:
    """Samples at 48 kHz an Opus packet lasts (RFC 6716 §3.1 and §3.2), once :func:`parse_packet` takes it."""
    p = parse_packet(pkt)
    return p.nb_frames * p.toc.frame_size_48k


def opus_evidence(payloads: list[bytes], ts: list[int], seq: list[int] | None = None) -> tuple[float, float]:
    """``(share of payloads RFC 6716 §3.4 accepts, share of neighbouring pairs, at most 3 sequence numbers apart,
    whose timestamp step is the first one's duration times that distance)``, over packets in sequence order with
    their RTP timestamps and extended sequence numbers (``None``: all consecutive)."""
    durs: list[int | None] = []
    for p in payloads:
        try:
            durs.append(_opus_duration(p))
        except BitstreamError:
            durs.append(None)
    ok = sum(d is not None for d in durs)
    pairs = agree = 0
    for k in range(len(payloads) - 1):
        gap = 1 if seq is None else seq[k + 1] - seq[k]
        if durs[k] is None or not 1 <= gap <= 3:
            continue
        pairs += 1
        agree += (ts[k + 1] - ts[k]) & 0xFFFFFFFF == gap * durs[k]
    return (ok / len(payloads) if payloads else 0.0), (agree / pairs if pairs else 0.0)


def _sample(s: SsrcStream, rtp: RtpColumns, pt: int) -> tuple[list[int], list[int]]:
    """Up to :data:`DETECT_SAMPLE` packets of payload type ``pt`` from the middle of the stream, in sequence
    order, duplicates and cut packets left out: ``(indices into rtp, extended sequence numbers)``."""
    an = s.analysis
    k = np.flatnonzero((rtp.pt[s.packets] == pt) & ~rtp.cut[s.packets] & ~an.duplicate)
    k = k[np.argsort(an.ext_seq[k], kind="stable")]
    start = max(0, len(k) // 2 - DETECT_SAMPLE // 2)
    k = k[start:start + DETECT_SAMPLE]
    return s.packets[k].tolist(), an.ext_seq[k].tolist()


def _red_primary(payload: bytes) -> tuple[int, bytes] | None:
    try:
        blocks = parse_red(payload)
    except RedError:
        return None
    return blocks[-1].pt, blocks[-1].data


def _looks_opus(rtp: RtpColumns, sample: tuple[list[int], list[int]], red: bool) -> tuple[bool, str]:
    idx, seq = sample
    pay = []
    for i in idx:
        if red:
            got = _red_primary(rtp.payloads[i])
            if got is None:
                return False, "a payload is not RED (RFC 2198)"
            pay.append(got[1])
        else:
            pay.append(rtp.payloads[i])
    if not pay:
        return False, "no packet to look at"
    ok, agree = opus_evidence(pay, rtp.timestamp[idx].tolist(), seq)
    if ok < 0.9:
        return False, f"{100 * ok:.0f} % of the payloads are Opus packets (RFC 6716 3.4)"
    if len(pay) > 2 and agree < 0.5:
        return False, f"packet durations match the timestamp steps in {100 * agree:.0f} % of the pairs"
    return True, f"{100 * ok:.0f} % Opus packets, durations match the timestamps in {100 * agree:.0f} % of pairs"


def _candidate(pt: int) -> bool:
    return pt not in STATIC_PAYLOAD_TYPES and pt not in RTCP_CONFLICT_PAYLOAD_TYPES


def _decide(s: SsrcStream, rtp: RtpColumns, opt: CaptureOptions) -> None:
    """Which of the stream's payload types is Opus (and which RED over Opus), from ``--pt``, the SDP, or the
    payloads themselves; sets ``codec``, ``opus_pt``, ``red_pt`` and ``reason``."""
    sdp = opt.sdp
    named = {opt.pt} if opt.pt is not None else (set(sdp.opus) if sdp is not None else None)
    why_named = "--pt" if opt.pt is not None else "SDP a=rtpmap"
    by_count = sorted(s.pts, key=lambda p: -s.pts[p])
    refused = []
    for pt in by_count:
        if named is not None:
            if pt in named:
                s.codec, s.opus_pt, s.reason = "opus", pt, why_named
                break
            refused.append(f"payload type {pt} not named by {why_named.split()[0]}")
        elif _candidate(pt):
            good, why = _looks_opus(rtp, _sample(s, rtp, pt), red=False)
            if good:
                s.codec, s.opus_pt, s.reason = "opus", pt, f"detected: {why}"
                break
            refused.append(f"payload type {pt}: {why}")
        else:
            refused.append(f"payload type {pt} is "
                           + ("a static one (RFC 3551)" if pt in STATIC_PAYLOAD_TYPES else "RTCP's range (RFC 5761)"))
    for pt in by_count:
        if pt == s.opus_pt or not _candidate(pt) or (sdp is not None and pt not in sdp.red):
            continue
        sample = _sample(s, rtp, pt)
        prim = {got[0] if (got := _red_primary(rtp.payloads[i])) is not None else None for i in sample[0]}
        if len(prim) != 1 or None in prim:
            continue
        inner = prim.pop()
        allowed = {s.opus_pt} if s.opus_pt is not None else named
        if sdp is not None and sdp.red[pt]:
            allowed = (allowed or set(sdp.red[pt])) & set(sdp.red[pt])
        if inner == pt or (allowed is not None and inner not in allowed):
            continue
        good, why = _looks_opus(rtp, sample, red=True)
        if good:
            s.codec, s.red_pt, s.opus_pt = "opus", pt, inner
            src = "SDP a=rtpmap red" if sdp is not None else "detected"
            s.reason += ("; " if s.reason else "") + f"RED over payload type {inner} ({src}): {why}"
            break
    if s.codec is None:
        s.reason = "not Opus: " + "; ".join(refused)


def _check_payload_type(ssrcs: list[SsrcStream], rtp: RtpColumns, opt: CaptureOptions) -> None:
    """``--pt`` (or the SDP's Opus payload types) must be carried by some packet, and be Opus there."""
    asked = {opt.pt} if opt.pt is not None else (set(opt.sdp.opus) if opt.sdp is not None else set())
    if not asked or not len(rtp):
        return
    if not any(s.codec == "opus" for s in ssrcs):
        seen = Counter()
        for s in ssrcs:
            seen.update(s.pts)
        names = ", ".join(f"{pt} (x{n})" for pt, n in seen.most_common()) or "none"
        src = "--pt" if opt.pt is not None else "the SDP"
        raise PayloadTypeError(f"no RTP packet carries payload type {', '.join(map(str, sorted(asked)))} named by "
                               f"{src}; payload types seen: {names}", byte_offset=int(rtp.offset[0]),
                               rule="RFC3550 5.1 PT")
    for s in ssrcs:
        if s.codec != "opus":
            continue
        sample = _sample(s, rtp, s.opus_pt)
        if not sample[0]:
            continue  # only RED packets carry it
        good, why = _looks_opus(rtp, sample, red=False)
        if not good:
            bad = next((i for i in sample[0] if not _is_opus(rtp.payloads[i])), sample[0][0])
            raise NotOpusError(f"payload type {s.opus_pt} of SSRC {s.ssrc:#010x} is not Opus: {why}",
                               byte_offset=int(rtp.offset[bad] + rtp.header_length[bad]), rule="RFC7587 4.2")


def _is_opus(payload: bytes) -> bool:
    try:
        parse_packet(payload)
        return True
    except BitstreamError:
        return False


def _opus_stream(s: SsrcStream, rtp: RtpColumns, warns: list) -> OpusStream:
    an = s.analysis
    pts = rtp.pt[s.packets]
    mine = (pts == s.opus_pt) | ((pts == s.red_pt) if s.red_pt is not None else False)
    keep = np.flatnonzero(mine)
    other = np.flatnonzero(~mine)
    opus: list[bytes | None] = []
    offs: list[int] = []
    red: list[list[tuple[int, bytes]]] = []
    bad: list[tuple[int, str]] = []
    sel = s.packets[keep]
    bases = (rtp.offset[sel] + rtp.header_length[sel]).tolist()
    cuts = rtp.cut[sel].tolist()
    is_red = (rtp.pt[sel] == s.red_pt).tolist() if s.red_pt is not None else [False] * len(sel)
    payloads = rtp.payloads
    if not any(is_red):  # no RED: the payloads as they are, a cut one as None
        sel_l = sel.tolist()
        opus = [None if c else payloads[i] for i, c in zip(sel_l, cuts)] if any(cuts) else \
            [payloads[i] for i in sel_l]
        offs = bases
        red = [[] for _ in sel_l]
    for i, base, cut, red_pkt in zip(sel.tolist() if any(is_red) else [], bases, cuts, is_red):
        payload = payloads[i]
        if cut:
            opus.append(None)
            offs.append(base)
            red.append([])
        elif red_pkt:
            try:
                blocks = parse_red(payload, base=base)
            except RedError as exc:
                opus.append(None)
                offs.append(base)
                red.append([])
                bad.append((exc.byte_offset or base, f"RedError: {exc.message}"))
                continue
            prim = blocks[-1]
            opus.append(prim.data)
            offs.append(base + prim.offset)
            red.append([(b.ts_offset, b.data) for b in blocks[:-1] if b.pt == s.opus_pt])
        else:
            opus.append(payload)
            offs.append(base)
            red.append([])
    if bad:
        warns.append(PayloadWarning(f"{len(bad)} RED payload(s) of Opus stream {s.ssrc:#010x} cannot be split "
                                    f"and are treated as lost (first: {bad[0][1]})", byte_offset=bad[0][0],
                                    rule="RFC2198 3", ssrc=s.ssrc, count=len(bad)))
    return OpusStream(s.ssrc, s.opus_pt, s.red_pt, s.packets[keep], opus, offs, red, an.ext_seq[keep],
                      an.ext_ts[keep], an.arrival_ns[keep], an.duplicate[keep], an.reordered[keep], an.lost,
                      np.unique(an.ext_seq[other]), s.src, s.dst)


def invalid_packets_warning(o: OpusStream, bad: list[tuple[int, BitstreamError]]) -> PayloadWarning | None:
    """The one warning for the packets of ``o`` that RFC 6716 §3.4 rejects: ``bad`` = ``(index into the stream,
    error)`` pairs, the error's offset counted from the packet's start. Every command words it the same."""
    if not bad:
        return None
    k, exc = bad[0]
    return PayloadWarning(f"{len(bad)} packet(s) of Opus stream {o.ssrc:#010x} are not Opus packets and are treated "
                          f"as lost (first: {type(exc).__name__}: {exc.message})",
                          byte_offset=o.opus_offset[k] + (exc.byte_offset or 0), rule=exc.rule or "RFC6716 3.4",
                          ssrc=o.ssrc, count=len(bad))


def validate_packets(o: OpusStream) -> PayloadWarning | None:
    """Mark as ``None`` (lost) the packets of ``o`` that :func:`parse_packet` rejects; their warning."""
    bad = []
    for k, p in enumerate(o.opus):
        if p is None:
            continue
        try:
            parse_packet(p)
        except PacketError as exc:
            bad.append((k, exc))
            o.opus[k] = None
    return invalid_packets_warning(o, bad)


def require_opus(cap: RtpCapture) -> OpusStream | None:
    """The capture's selected Opus stream; None when the file broke off before any (``cap.error`` says where);
    :class:`~opus_dred.bitstream._rtp.NotOpusError` when no stream of it is Opus."""
    if cap.selected is not None:
        return cap.selected
    if cap.error is not None:
        return None
    if not len(cap.rtp):
        raise NotOpusError(f"no RTP packet in the capture ({cap.records} records, {cap.rtp.udp} UDP datagrams)",
                           byte_offset=0, rule="RFC3550 5.1")
    what = "; ".join(f"SSRC {s.ssrc:#010x} ({len(s.packets)} packets): {s.reason}" for s in cap.ssrcs)
    raise NotOpusError(f"no RTP stream of the capture is Opus ({what}); name its payload type with --pt or --sdp",
                       byte_offset=int(cap.rtp.offset[0]), rule="RFC7587 4.2")


def _select(opus: list[OpusStream], opt: CaptureOptions, warns: list, rtp: RtpColumns) -> OpusStream | None:
    if opt.ssrc is not None:
        for o in opus:
            if o.ssrc == opt.ssrc:
                return o
        raise StreamSelectionError(f"no Opus stream has SSRC {opt.ssrc:#010x}; Opus streams: "
                                   + (", ".join(f"{o.ssrc:#010x}" for o in opus) or "none"), byte_offset=0,
                                   rule="RFC3550 5.1 SSRC")
    if not opus:
        return None
    best = max(opus, key=len)
    if len(opus) > 1:
        others = [o for o in opus if o is not best]
        warns.append(StreamsWarning(
            f"{len(opus)} Opus streams: SSRC {best.ssrc:#010x} ({len(best)} packets) is used; the others: "
            + ", ".join(f"{o.ssrc:#010x} ({len(o)} packets)" for o in others) + " (choose one with --ssrc)",
            byte_offset=min(int(rtp.offset[o.rtp[0]]) for o in others), rule="RFC3550 5.1 SSRC", ssrc=best.ssrc,
            count=len(opus)))
    return best


def _stream_warnings(o: OpusStream, rtp: RtpColumns, warns: list) -> None:
    def off(k) -> int:
        return int(rtp.offset[o.rtp[int(k)]])

    tag = f"SSRC {o.ssrc:#010x}"
    dup = np.flatnonzero(o.duplicate)
    if len(dup):
        warns.append(DuplicateWarning(f"{tag}: {len(dup)} duplicated packet(s), the first copy used (first: seq "
                                      f"{int(o.ext_seq[dup[0]]) & 0xFFFF})", byte_offset=off(dup[0]),
                                      rule="RFC3550 A.1", ssrc=o.ssrc, count=len(dup)))
    reo = np.flatnonzero(o.reordered)
    if len(reo):
        warns.append(ReorderWarning(f"{tag}: {len(reo)} packet(s) arrived after a later one (first: seq "
                                    f"{int(o.ext_seq[reo[0]]) & 0xFFFF})", byte_offset=off(reo[0]),
                                    rule="RFC3550 A.1", ssrc=o.ssrc, count=len(reo)))
    if not len(o.ext_seq):
        return
    cycles = o.ext_seq >> 16
    wrapped = np.flatnonzero(cycles > cycles.min())
    if len(wrapped):
        first = int(wrapped[np.argmin(o.arrival_ns[wrapped])])
        n = int(cycles.max() - cycles.min())
        warns.append(WrapWarning(f"{tag}: the 16-bit sequence number wrapped {n} time(s) (extended across it)",
                                 byte_offset=off(first), rule="RFC3550 A.1 seq", ssrc=o.ssrc, count=n))
    tcycles = o.ext_ts >> 32
    twrapped = np.flatnonzero(tcycles != tcycles[np.argmin(o.ext_seq)])
    if len(twrapped):
        first = int(twrapped[np.argmin(o.arrival_ns[twrapped])])
        warns.append(WrapWarning(f"{tag}: the 32-bit RTP timestamp wrapped (extended across it)",
                                 byte_offset=off(first), rule="RFC3550 5.1 timestamp", ssrc=o.ssrc, count=1))


# --------------------------------------------------------------------------------------------------------------
# per-packet figures a stream report needs, cheaply
# --------------------------------------------------------------------------------------------------------------
_FRAME_48K = np.array([Toc.from_byte(b).frame_size_48k for b in range(256)], np.int64)


def packet_durations(packets: list[bytes | None]) -> np.ndarray:
    """Samples at 48 kHz of each packet from its TOC and frame count (RFC 6716 §3.1, §3.2); 0 for ``None``."""
    n = len(packets)
    b0 = np.zeros(n, np.int64)
    b1 = np.zeros(n, np.int64)
    for i, p in enumerate(packets):
        if p:
            b0[i] = p[0]
            if len(p) > 1:
                b1[i] = p[1]
    code = b0 & 3
    count = np.where(code == 0, 1, np.where(code == 3, b1 & 63, 2))
    present = np.array([bool(p) for p in packets], bool)
    return np.where(present, _FRAME_48K[b0] * count, 0)


OPUS_MS = OPUS_CLOCK // 1000


# --------------------------------------------------------------------------------------------------------------
# writing captures (tests and the benchmark make their own)
# --------------------------------------------------------------------------------------------------------------
def _ip_bytes(addr: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


def udp_frame(payload: bytes, *, src: str = "127.0.0.1", dst: str = "127.0.0.1", sport: int = 5004,
              dport: int = 5006, linktype: int = LINK_ETHERNET, vlan: int | None = None) -> bytes:
    """A link-layer frame (``linktype``: Ethernet, optionally 802.1Q-tagged, Linux cooked v1, BSD loopback or raw
    IP) holding an IPv4 or IPv6 (by the address) UDP datagram with ``payload``; ``dpkt`` builds every header and
    its checksums."""
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    u.ulen = 8 + len(payload)
    if ":" in src:
        ip = dpkt.ip6.IP6(src=_ip_bytes(src), dst=_ip_bytes(dst), nxt=dpkt.ip.IP_PROTO_UDP, hlim=64, data=u)
        ip.plen = len(u)
        ethertype, family = dpkt.ethernet.ETH_TYPE_IP6, 30
    else:
        ip = dpkt.ip.IP(src=_ip_bytes(src), dst=_ip_bytes(dst), p=dpkt.ip.IP_PROTO_UDP, ttl=64, data=u)
        ip.len = 20 + len(u)
        ethertype, family = dpkt.ethernet.ETH_TYPE_IP, 2
    raw = bytes(ip)
    if linktype == LINK_ETHERNET:
        if vlan is not None:
            tag = struct.pack(">HHH", dpkt.ethernet.ETH_TYPE_8021Q, vlan & 0xFFF, ethertype)
            return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + tag + raw
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                            type=ethertype, data=raw))
    if linktype == LINK_SLL:
        return bytes(dpkt.sll.SLL(type=0, hrd=772, hlen=6, hdr=b"\x00" * 8, ethtype=ethertype, data=raw))
    if linktype == LINK_NULL:
        return struct.pack("=I", family) + raw
    if linktype == LINK_RAW:
        return raw
    raise ValueError(f"link type {linktype}: one of {LINK_ETHERNET}, {LINK_SLL}, {LINK_NULL}, {LINK_RAW}")


def write_capture(frames, *, fmt: str = "pcap", linktype: int = LINK_ETHERNET, snaplen: int = 65535,
                  nano: bool = False, little: bool = True) -> bytes:
    """A capture file of ``frames``: ``(ts_ns, frame bytes)`` or ``(ts_ns, frame bytes, length on the wire)`` (a
    length above the frame's stands for a record the snaplen cut). ``fmt``: ``"pcap"`` (microsecond or, with
    ``nano``, nanosecond magic; ``little``: byte order) or ``"pcapng"`` (one interface, ``if_tsresol`` 9 with
    ``nano``). The headers and blocks are ``dpkt``'s structures."""
    out = []
    if fmt == "pcap":
        fh_cls, ph_cls = (dpkt.pcap.LEFileHdr, dpkt.pcap.LEPktHdr) if little else (dpkt.pcap.FileHdr, dpkt.pcap.PktHdr)
        magic = dpkt.pcap.TCPDUMP_MAGIC_NANO if nano else dpkt.pcap.TCPDUMP_MAGIC
        out.append(bytes(fh_cls(magic=magic, snaplen=snaplen, linktype=linktype)))
        unit = 1 if nano else 1000
        for fr in frames:
            ts, buf = fr[0], fr[1]
            origlen = fr[2] if len(fr) > 2 else len(buf)
            sec, frac = divmod(int(ts), 1_000_000_000)
            out.append(bytes(ph_cls(tv_sec=sec, tv_usec=frac // unit, caplen=len(buf), len=origlen)) + buf)
        return b"".join(out)
    if fmt != "pcapng":
        raise ValueError(f"capture format {fmt!r}: pcap or pcapng")
    ng = dpkt.pcapng
    shb = ng.SectionHeaderBlockLE() if little else ng.SectionHeaderBlock()
    idb_cls, opt_cls = (ng.InterfaceDescriptionBlockLE, ng.PcapngOptionLE) if little else \
        (ng.InterfaceDescriptionBlock, ng.PcapngOption)
    opts = [opt_cls(code=ng.PCAPNG_OPT_IF_TSRESOL, data=bytes([9 if nano else 6])),
            opt_cls(code=ng.PCAPNG_OPT_ENDOFOPT)]
    idb = idb_cls(snaplen=snaplen, linktype=linktype, opts=opts)
    out += [bytes(shb), bytes(idb)]
    epb_cls = ng.EnhancedPacketBlockLE if little else ng.EnhancedPacketBlock
    order = "<" if little else ">"
    for fr in frames:
        ts, buf = fr[0], fr[1]
        origlen = fr[2] if len(fr) > 2 else len(buf)
        ticks = int(ts) if nano else int(ts) // 1000
        blk = bytearray(bytes(epb_cls(ts_high=ticks >> 32, ts_low=ticks & 0xFFFFFFFF, pkt_data=buf)))
        struct.pack_into(order + "I", blk, 24, origlen)  # the on-the-wire length (dpkt writes the captured one)
        out.append(bytes(blk))
    return b"".join(out)
