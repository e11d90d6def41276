"""What ``opus-dred inspect`` finds in a file or a packet: a pure, JSON-able data model.

Every function here turns bytes into plain records (dataclasses of ints, strings, lists and dicts; see
:meth:`FileInspection.to_json`); nothing prints, nothing imports JAX. Whatever the bytes, nothing but a
record comes out: a packet that cannot be read carries its :class:`~opus_dred.bitstream._errors.BitstreamError`
as ``error`` (type, message, byte and bit offset, rule, profile), and a file that stops making sense
halfway keeps the records before that point and the error in :attr:`FileInspection.error`.

Per Opus packet (:func:`inspect_packet`): the TOC (config, mode, bandwidth, frame duration, stereo, code),
the frames (count, sizes, offsets, CBR/VBR), the padding (length, where its length bytes are), the
extensions (id, frame, ``L`` flag, length, offsets, RTE repeats), and the DRED payload header
(:func:`~opus_dred.bitstream._dred.read_dred_payload`: q0, dQ, qmax, extended offset, offset, dred_offset,
number of latents, coverage in ms, and the bit position of each coded field). With ``bits=True`` the
bit-level view is added with :mod:`bitstring`: TOC bits ``config:5 s:1 c:2``, the code 3 frame-count byte
``v p M:6``, each extension ID byte ``id:7 L:1``, the padding-length chain, and the first bits of the
DRED payload.

The profile is the one given, or the one whose experimental version byte the DRED extension carries
(:func:`~opus_dred.bitstream._extensions.dred_owner`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._dredstream import read_stream_record
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import dred_location, dred_owner, find_dred_extension, iter_extensions
from opus_dred.bitstream._formats import (
    detect_format,
    read_dred_stream,
    read_ogg_opus,
    read_opus_demo_bit,
    read_with_prefix,
)
from opus_dred.bitstream._packet import parse_packet
from opus_dred.bitstream._profiles import get_profile
from opus_dred.bitstream._rangecoder import RangeDecoder, TracingDecoder

#: how many leading bits of a DRED payload the bit-level view shows
DRED_BITS_SHOWN = 64
#: extensions listed per packet (the rest are counted): memory stays bounded whatever the padding
MAX_LISTED_EXTENSIONS = 1024


def _error(exc: BitstreamError) -> dict:
    return exc.to_dict()


def _bits(value: int, fmt: str) -> str:
    """``value`` (one byte) as bit groups, e.g. ``"01011 0 11"`` for ``uint:5, uint:1, uint:2``."""
    import bitstring

    b = bitstring.Bits(uint=value, length=8)
    widths = [int(tok.split(":")[1]) for tok in fmt.split(",")]
    out, pos = [], 0
    for w in widths:
        out.append(b[pos:pos + w].bin)
        pos += w
    return " ".join(out)


@dataclass
class PacketInspection:
    """One Opus packet (or a lost one: ``length == 0``)."""

    index: int
    offset: int | None = None  # byte offset of the packet (or its record) in the file
    length: int = 0
    final_range: int | None = None
    lost: bool = False
    toc: dict | None = None
    frames: dict | None = None
    padding: dict | None = None
    extensions: list[dict] = field(default_factory=list)
    extensions_total: int = 0  # all extensions; ``extensions`` lists the first MAX_LISTED_EXTENSIONS
    extension_syntax: str | None = None
    extension_error: dict | None = None
    dred: dict | None = None
    duration_ms: float = 0.0
    error: dict | None = None
    bits: dict | None = None

    def to_json(self) -> dict:
        # the fields are JSON-able already (ints, strings, lists and dicts of those): a shallow copy will do
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class RecordInspection:
    """One record of a DRED-only stream."""

    index: int
    offset: int
    q0: int
    nb_chunks: int
    nb_bytes: int
    nb_latents: int = 0
    coverage_ms: float = 0.0
    end_tell: int = 0
    read_past_end: bool = False
    fields: list[list] = field(default_factory=list)
    error: dict | None = None
    bits: dict | None = None

    def to_json(self) -> dict:
        # the fields are JSON-able already (ints, strings, lists and dicts of those): a shallow copy will do
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class FileInspection:
    """A whole input: its format, profile, header (Ogg), items and summary."""

    name: str
    format: str  # "bit", "ogg", "dred" (DRED-only stream), "raw" (packet files) or "hex"
    size: int
    profile: str | None
    profile_source: str  # "given", "version byte", "default" or "none"
    items: list[PacketInspection | RecordInspection] = field(default_factory=list)
    header: dict | None = None
    error: dict | None = None
    summary: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "format": self.format,
            "size": self.size,
            "profile": self.profile,
            "profile_source": self.profile_source,
            "header": self.header,
            "error": self.error,
            "summary": self.summary,
            "items": [it.to_json() for it in self.items],
        }


# ------------------------------------------------------------------------------------------------
# profiles


def _profile_obj(profile):
    if profile is None or not isinstance(profile, str):
        return profile

    return get_profile(profile)


# ------------------------------------------------------------------------------------------------
# one packet


def inspect_packet(
    data: bytes,
    profile=None,
    *,
    index: int = 0,
    offset: int | None = None,
    final_range: int | None = None,
    bits: bool = False,
) -> PacketInspection:
    """Everything about one Opus packet; never raises for any ``data``.

    ``profile`` (a name or profile object) fixes the extension syntax and the DRED statistics; ``None``
    picks the profile from the DRED extension's version byte (and lists extensions with the ``"rte"``
    syntax when there is none).
    """

    data = bytes(data)
    out = PacketInspection(index=index, offset=offset, length=len(data), final_range=final_range)
    if not data:
        out.lost = True
        return out
    try:
        pkt = parse_packet(data)
    except BitstreamError as exc:
        _describe_unparsed(out, data, exc, bits)
        return out
    _describe_framing(out, pkt, data, bits)
    prof = _choose_profile(out, profile, pkt)
    listed = _list_extensions(out, pkt, prof, bits)
    if prof is not None:
        _describe_dred(out, data, pkt, prof, listed, bits)
    return out


def _describe_unparsed(out: PacketInspection, data: bytes, exc: BitstreamError, bits: bool) -> None:
    """A packet RFC 6716 §3.4 rejects: the error and the TOC byte's fields (RFC 6716 §3.1)."""
    out.error = _error(exc)
    t0 = data[0]
    out.toc = {"byte": t0, "config": t0 >> 3, "stereo": bool(t0 & 4), "code": t0 & 3}
    if bits:
        out.bits = {"toc": _bits(t0, "uint:5, uint:1, uint:2")}


def _describe_framing(out: PacketInspection, pkt, data: bytes, bits: bool) -> None:
    """The TOC (RFC 6716 §3.1), the frames and the padding (§3.2), and with ``bits`` their bit-level view:
    the TOC ``config s c``, the code 3 frame-count byte ``v p M`` and the padding-length chain."""
    toc = pkt.toc
    out.toc = {"byte": data[0], "config": toc.config, "mode": toc.mode, "bandwidth": toc.bandwidth,
               "frame_ms": toc.frame_ms, "stereo": toc.stereo, "code": toc.code}
    out.frames = {"count": pkt.nb_frames, "sizes": [len(f) for f in pkt.frames], "offsets": pkt.frame_offsets,
                  "vbr": pkt.vbr, "count_byte_offset": pkt.count_byte_offset,
                  "length_offsets": pkt.frame_length_offsets}
    out.duration_ms = pkt.nb_frames * toc.frame_ms
    if pkt.has_padding:
        out.padding = {"length": len(pkt.padding), "offset": pkt.padding_offset,
                       "length_offsets": pkt.padding_length_offsets}
    if bits:
        bv: dict[str, Any] = {"toc": _bits(data[0], "uint:5, uint:1, uint:2")}
        if pkt.count_byte_offset is not None:
            bv["count_byte"] = _bits(data[pkt.count_byte_offset], "uint:1, uint:1, uint:6")
        if pkt.padding_length_offsets:
            bv["padding_chain"] = [format(data[i], "08b") for i in pkt.padding_length_offsets]
        out.bits = bv


def _choose_profile(out: PacketInspection, profile, pkt):
    """The profile given, or the one whose experimental version byte the DRED extension carries (a version
    byte no profile has is noted in ``out.dred``); ``None`` when there is neither."""
    prof = _profile_obj(profile)
    if prof is None and pkt.padding:
        prof, v = dred_owner(pkt.padding, pkt.nb_frames)
        if prof is None and v is not None:
            out.dred = {"found": False, "version": v, "note": f"DRED version byte {v} matches no profile"}
    return prof


def _list_extensions(out: PacketInspection, pkt, prof, bits: bool) -> list:
    """The extensions in the padding (draft-ietf-mlcodec-opus-extension) with the profile's syntax (``"rte"``
    without one): the first :data:`MAX_LISTED_EXTENSIONS` listed, all counted, offsets in the packet; an
    error where the padding stops making sense goes to ``out.extension_error``. Returns those listed."""
    syntax = prof.extension_syntax if prof is not None else "rte"
    out.extension_syntax = syntax
    base = pkt.padding_offset or 0
    listed = []
    if not pkt.padding:
        return listed
    try:
        for e in iter_extensions(pkt.padding, pkt.nb_frames, syntax=syntax):
            out.extensions_total += 1
            if out.extensions_total > MAX_LISTED_EXTENSIONS:
                # RTE repeats up to 47 extensions per byte: list a bounded number, count the rest
                continue
            listed.append(e)
            out.extensions.append(_describe_extension(e, pkt, base, bits))
    except BitstreamError as exc:
        exc.byte_offset = base + (exc.byte_offset or 0)
        exc.bit_offset = 8 * exc.byte_offset
        exc.profile = exc.profile or (prof.name if prof is not None else None)
        out.extension_error = _error(exc)
    return listed


def _describe_extension(e, pkt, base: int, bits: bool) -> dict:
    """One extension: id, frame, length, offsets in the packet, the ID byte's ``L`` flag (``id << 1 | L``),
    and the experimental version byte of a ``'D'``-prefixed long extension."""
    ent = {"id": e.id, "frame": e.frame, "length": len(e.data), "repeated": e.repeated,
           "id_offset": None if e.id_offset is None else base + e.id_offset,
           "data_offset": None if e.data_offset is None else base + e.data_offset}
    if e.id_offset is not None:
        ent["L"] = pkt.padding[e.id_offset] & 1
        if bits:
            ent["id_byte_bits"] = _bits(pkt.padding[e.id_offset], "uint:7, uint:1")
    if e.id >= 32 and e.data[:1] == b"D" and len(e.data) >= 2:
        ent["experimental_version"] = e.data[1]
    return ent


def _describe_dred(out: PacketInspection, data: bytes, pkt, prof, listed: list, bits: bool) -> None:
    """The DRED extension of ``prof`` (draft-ietf-mlcodec-opus-dred): where it is, then its payload's header
    and coverage, with the bit position of each field from a tracing range decoder."""
    try:
        loc = _locate_dred(out, data, pkt, prof, listed)
    except BitstreamError as exc:
        out.dred = {"found": False, "profile": prof.name}
        out.error = _error(exc)
        return
    if loc is None:
        if out.dred is None:
            out.dred = {"found": False, "profile": prof.name}
        return
    d: dict[str, Any] = {"found": True, "profile": prof.name, "version": prof.dred_version,
                         "frame": loc.frame, "dred_frame_offset": loc.dred_frame_offset,
                         "payload_offset": loc.payload_offset, "payload_bytes": len(loc.payload)}
    out.dred = d
    tracer = TracingDecoder(RangeDecoder(loc.payload))
    try:
        p = read_dred_payload(loc.payload, prof, dred_frame_offset=loc.dred_frame_offset, decoder=tracer)
    except BitstreamError as exc:
        if exc.byte_offset is not None:
            exc.byte_offset += loc.payload_offset
            exc.bit_offset = 8 * exc.byte_offset
        out.error = _error(exc)
        return
    d.update(_dred_summary(p, tracer))
    if bits:
        import bitstring

        raw = bitstring.Bits.from_bytes(loc.payload)
        out.bits["dred_payload"] = raw[:DRED_BITS_SHOWN].bin


def _locate_dred(out: PacketInspection, data: bytes, pkt, prof, listed: list):
    """The DRED extension: when the whole padding was read, the first listed extension with the profile's id
    and prefix (what ``find_dred_extension`` returns); where the padding breaks off, ``find_dred_extension``
    itself decides, as libopus' ``dred_find_payload`` does."""
    if out.extension_error is None and out.extensions_total <= MAX_LISTED_EXTENSIONS:
        return _first_dred(listed, prof, pkt, pkt.padding_offset or 0)
    return find_dred_extension(data, prof)


def _dred_summary(p, tracer: TracingDecoder) -> dict:
    """The payload's header, coverage and stop, and each field's bit span as the tracer recorded it."""
    return {
        **p.header_dict(), "dred_offset_ms": 2.5 * p.dred_offset,
        "nb_latents": p.nb_latents, "coverage_ms": p.coverage_ms,
        "available_ms": p.available_samples(48000) / 48.0, "q_levels": [int(q) for q in p.q_levels],
        "end_tell": p.end_tell, "read_past_end": p.read_past_end, "stop_reason": p.stop_reason,
        # bit positions are counted from the start of the payload (ec_tell: a fresh decoder has used 1 bit)
        "fields": [[name, t0, t1] for name, t0, t1 in tracer.fields],
    }


def _first_dred(exts, prof, pkt, base: int):
    return next((loc for e in exts if (loc := dred_location(e, prof, pkt.toc.frame_size_48k, base)) is not None),
                None)


# ------------------------------------------------------------------------------------------------
# one DRED-only record


def inspect_stream_record(record, profile, *, index: int = 0, bits: bool = False) -> RecordInspection:
    """One record of a DRED-only stream (:func:`~opus_dred.bitstream._dredstream.read_stream_record`)."""
    out = RecordInspection(index=index, offset=record.offset, q0=record.q0, nb_chunks=record.nb_chunks,
                           nb_bytes=len(record.data))
    try:
        p = read_stream_record(record, profile)
    except BitstreamError as exc:
        out.error = _error(exc)
        return out
    out.nb_latents = p.nb_latents
    out.coverage_ms = p.coverage_ms
    out.end_tell = p.end_tell
    out.read_past_end = p.read_past_end
    out.fields = [[n, a, b] for n, a, b in p.fields]
    if bits:
        import bitstring

        out.bits = {"payload": bitstring.Bits.from_bytes(record.data)[:DRED_BITS_SHOWN].bin}
    return out


# ------------------------------------------------------------------------------------------------
# files


def inspect_bytes(
    data: bytes,
    *,
    name: str = "<bytes>",
    profile=None,
    fmt: str | None = None,
    bits: bool = False,
    progress: Callable[[int, int], None] | None = None,
    packets: Sequence[bytes] | None = None,
) -> FileInspection:
    """Inspect a whole input; never raises a :class:`BitstreamError` (it is in ``error``).

    ``fmt``: ``"bit"``, ``"ogg"``, ``"dred"``, ``"raw"`` or ``"hex"`` (``data`` is one packet), or ``None`` to
    detect. ``packets``: a folder's raw packets, inspected in order (``data`` is them joined).
    ``progress(done, total)`` is called as items are inspected.
    """
    data = bytes(data)
    prof = _profile_obj(profile)
    res = FileInspection(name=name, format=fmt or "?", size=len(data), profile=prof.name if prof else None,
                         profile_source="given" if prof else "none")
    try:
        if fmt is None:
            fmt = "raw" if packets is not None else detect_format(data, name)
    except BitstreamError as exc:
        res.error = _error(exc)
        res.summary = summarize(res)
        return res
    res.format = fmt

    if fmt == "dred":
        if prof is None:
            prof = get_profile("libopus-1.6.1")  # the DRED-only stream is fargan_demo's (1.6.x)
            res.profile, res.profile_source = prof.name, "default"
        records, exc = read_with_prefix(lambda b: read_dred_stream(b, quant_levels=prof.quant_levels), data)
        res.error = _error(exc) if exc is not None else None
        n = len(records)
        for i, rec in enumerate(records):
            res.items.append(inspect_stream_record(rec, prof, index=i, bits=bits))
            if progress is not None:
                progress(i + 1, n)
        res.summary = summarize(res)
        return res

    listed: Sequence[tuple[bytes, int | None, int | None]]
    if fmt in ("hex", "raw"):
        listed = [(p, None, None) for p in (packets if packets is not None else [data])]
    elif fmt == "bit":
        recs, exc = read_with_prefix(read_opus_demo_bit, data)
        res.error = _error(exc) if exc is not None else None
        listed = [(r.data, r.offset, r.final_range) for r in recs]
    elif fmt == "ogg":
        try:
            ogg = read_ogg_opus(data)
        except BitstreamError as exc:
            res.error = _error(exc)
            res.summary = summarize(res)
            return res
        h = ogg.head
        res.header = {"version": h.version, "channels": h.channels, "pre_skip": h.pre_skip,
                      "input_sample_rate": h.input_sample_rate, "output_gain": h.output_gain,
                      "mapping_family": h.mapping_family, "pages": ogg.pages, "serial": ogg.serial,
                      "last_granule": max((g for g in ogg.granules if g >= 0), default=None)}
        tags = ogg.tags
        if len(tags) >= 12:
            vlen = int.from_bytes(tags[8:12], "little")
            res.header["vendor"] = tags[12:12 + vlen].decode("utf-8", "replace")
        listed = [(p, None, None) for p in ogg.packets]
    else:
        res.error = {"error": "FormatError", "message": f"unknown format {fmt!r}", "byte_offset": 0,
                     "bit_offset": 0, "rule": "format", "profile": None}
        return res

    n = len(listed)
    detected = None
    for i, (pk, off, rng) in enumerate(listed):
        it = inspect_packet(pk, prof, index=i, offset=off, final_range=rng, bits=bits)
        if prof is None and it.dred and it.dred.get("found") and detected is None:
            detected = it.dred["profile"]
        res.items.append(it)
        if progress is not None:
            progress(i + 1, n)
    if prof is None and detected is not None:
        res.profile, res.profile_source = detected, "version byte"
    res.summary = summarize(res)
    return res


def summarize(res: FileInspection) -> dict:
    """Totals over the items: counts, bytes, durations, DRED coverage, errors, configurations."""
    s: dict[str, Any] = {"items": len(res.items)}
    if res.format == "dred":
        recs = [r for r in res.items if isinstance(r, RecordInspection)]
        s.update({
            "records": len(recs),
            "bytes": sum(r.nb_bytes for r in recs),
            "latents": sum(r.nb_latents for r in recs),
            "coverage_ms_mean": (sum(r.coverage_ms for r in recs) / len(recs)) if recs else 0.0,
            "errors": sum(1 for r in recs if r.error),
        })
        return s
    pk = [p for p in res.items if isinstance(p, PacketInspection)]
    dred = [p.dred for p in pk if p.dred and p.dred.get("found")]
    configs: dict[str, int] = {}
    for p in pk:
        if p.toc and "mode" in p.toc:
            key = f"{p.toc['mode']} {p.toc['bandwidth']} {p.toc['frame_ms']:g} ms{' stereo' if p.toc['stereo'] else ''}"
            configs[key] = configs.get(key, 0) + 1
    cov = [d.get("coverage_ms", 0.0) for d in dred if "coverage_ms" in d]
    s.update({
        "packets": len(pk),
        "lost": sum(1 for p in pk if p.lost),
        "bytes": sum(p.length for p in pk),
        "duration_ms": sum(p.duration_ms for p in pk),
        "with_padding": sum(1 for p in pk if p.padding),
        "extensions": sum(p.extensions_total for p in pk),
        "with_dred": len(dred),
        "dred_bytes": sum(d.get("payload_bytes", 0) for d in dred),
        "coverage_ms_mean": (sum(cov) / len(cov)) if cov else 0.0,
        "coverage_ms_min": min(cov) if cov else 0.0,
        "coverage_ms_max": max(cov) if cov else 0.0,
        "errors": sum(1 for p in pk if p.error),
        "extension_errors": sum(1 for p in pk if p.extension_error),
        "configs": dict(sorted(configs.items(), key=lambda kv: -kv[1])),
    })
    return s
