"""What ``opus-dred inspect`` finds in a capture: per Opus stream (SSRC), its packets, losses, jitter and DRED.

A pure, JSON-able data model over :func:`~opus_dred.bitstream._capture.read_capture`. Per Opus stream:

* the RTP numbers: packets, the extended sequence range, losses (sequence gaps), duplicates, packets that arrived
  after a later one, sequence and timestamp wrap-arounds, RFC 3550's interarrival jitter and the spread of the
  arrival delays;
* the DRED of every packet, read by a *DRED reader* (``dred_reader``: :func:`scalar_dred_reader`, the
  bitstream layer's own :func:`~opus_dred.bitstream._extensions.find_dred_extension` and
  :func:`~opus_dred.bitstream._dred.read_dred_payload`, by default; the command passes a batched one): header,
  ``dred_offset``, latents, coverage and what ``opus_dred_parse`` would return at 48 kHz;
* DRED coverage over time: per bucket of media time (the RTP timestamps), packets, losses, packets with DRED and
  their coverage;
* every run of lost packets and whether the DRED of the first usable packet after it could have covered it: the
  lost audio is ``[end of the packet before the run, start of the packet after it)`` on the RTP timestamp axis
  (48 kHz, RFC 7587 §4.1), the DRED of the packet after it covers ``[start - available, start - dred_end)``
  (``available`` = ``opus_dred_parse``'s return, :func:`~opus_dred.bitstream._arith.parse_return`;
  ``dred_end`` = :func:`~opus_dred.bitstream._arith.dred_end`), and RED's redundant blocks of the next packets
  cover ``[start - ts_offset, ... + their duration)``: ``covered`` is ``"full"``, ``"partial"`` or ``"none"``.

Packets are given in detail (:func:`~opus_dred.bitstream._inspect.inspect_packet`: framing, extensions, DRED with
field positions) for the first ``detail`` packets of each stream, and in a light row (RTP fields, TOC, DRED
header and coverage) for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opus_dred.bitstream._capture import (
    CaptureOptions,
    OpusStream,
    RtpCapture,
    format_ns,
    invalid_packets_warning,
    packet_durations,
    read_capture,
)
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._errors import BitstreamError, PacketError
from opus_dred.bitstream._extensions import find_dred, find_dred_extension
from opus_dred.bitstream._inspect import inspect_packet
from opus_dred.bitstream._packet import Toc
from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.bitstream._rangecoder import RangeDecoder
from opus_dred.bitstream._rtp import OPUS_CLOCK, interarrival_jitter

#: samples at 48 kHz per latent (40 ms), and per ``dred_offset`` unit (2.5 ms): opus_dred_parse's arithmetic
_LATENT_48K = 48000 // 25
_OFFSET_48K = 48000 // 400
#: packets looked at (spread over the stream) to find the profile when none is given
PROFILE_PROBE = 2000
#: the profile whose syntax locates DRED in a stream that carries none (to tell Opus packets from others)
FALLBACK_PROFILE = "libopus-1.6.1"


# --------------------------------------------------------------------------------------------------------------
# DRED per packet
# --------------------------------------------------------------------------------------------------------------
_DRED_FIELDS = ("q0", "dq", "qmax", "extended_offset", "extra", "off", "dred_frame_offset", "dred_offset",
                "nb_latents", "payload_bytes", "payload_offset", "end_tell")


@dataclass
class DredColumns:
    """The DRED of N packets as columns [N]: ``found``, ``error`` (the packet, its extensions or its payload
    could not be read) and the header and counts under the names ``inspect`` writes (``dq``, ``extra`` = the
    coded ``uint(256)``, ``off`` = the coded ``uint(32)``; ``payload_offset`` from the packet's start). ``errors``:
    ``(index, error)`` of every packet that failed."""

    found: np.ndarray
    error: np.ndarray
    q0: np.ndarray
    dq: np.ndarray
    qmax: np.ndarray
    extended_offset: np.ndarray
    extra: np.ndarray
    off: np.ndarray
    dred_frame_offset: np.ndarray
    dred_offset: np.ndarray
    nb_latents: np.ndarray
    payload_bytes: np.ndarray
    payload_offset: np.ndarray
    end_tell: np.ndarray
    errors: list[tuple[int, BitstreamError]] = field(default_factory=list)

    @classmethod
    def empty(cls, n: int) -> DredColumns:
        z = {k: np.zeros(n, np.int64) for k in _DRED_FIELDS}
        return cls(found=np.zeros(n, bool), error=np.zeros(n, bool), **z)

    def available_48k(self) -> np.ndarray:
        """What ``opus_dred_parse`` returns at 48 kHz: ``max(0, nb*48000/25 - dred_offset*48000/400)`` (exact)."""
        return np.where(self.found, np.maximum(0, self.nb_latents * _LATENT_48K - self.dred_offset * _OFFSET_48K), 0)

    def end_48k(self) -> np.ndarray:
        """``*dred_end`` at 48 kHz: ``max(0, -dred_offset*48000/400)``."""
        return np.where(self.found, np.maximum(0, -self.dred_offset * _OFFSET_48K), 0)


#: reads the DRED of packets (``None``: no packet) under one profile
DredReader = Callable[[Sequence[bytes | None], Profile], DredColumns]


def scalar_dred_reader(packets: Sequence[bytes | None], profile: Profile) -> DredColumns:
    """:func:`~opus_dred.bitstream._extensions.find_dred_extension` then
    :func:`~opus_dred.bitstream._dred.read_dred_payload` (every chunk the profile allows, as ``inspect`` reads a
    packet), packet by packet; a packet's typed error goes to ``errors``."""
    out = DredColumns.empty(len(packets))
    for k, p in enumerate(packets):
        if p is None:
            continue
        try:
            loc = find_dred_extension(p, profile)
            if loc is None:
                continue
            pl = read_dred_payload(loc.payload, profile, dred_frame_offset=loc.dred_frame_offset,
                                   decoder=RangeDecoder(loc.payload))
        except BitstreamError as exc:
            out.error[k] = True
            out.errors.append((k, exc))
            continue
        out.found[k] = True
        h = pl.header_dict()
        for name in ("q0", "dq", "qmax", "extended_offset", "extra", "off", "dred_frame_offset", "dred_offset"):
            getattr(out, name)[k] = int(h[name])
        out.nb_latents[k] = pl.nb_latents
        out.payload_bytes[k] = len(loc.payload)
        out.payload_offset[k] = loc.payload_offset
        out.end_tell[k] = pl.end_tell
    return out


def stream_profile(packets: Sequence[bytes | None]) -> Profile | None:
    """The profile whose DRED the stream carries: the first of up to :data:`PROFILE_PROBE` packets (spread over
    the stream) whose DRED extension's version byte names one (:func:`~opus_dred.bitstream._extensions.find_dred`)."""
    n = len(packets)
    step = max(1, n // PROFILE_PROBE)
    for k in list(range(min(n, PROFILE_PROBE // 2))) + list(range(0, n, step)):
        p = packets[k]
        if p is None:
            continue
        try:
            prof, loc = find_dred(p)
        except BitstreamError:
            continue
        if prof is not None and loc is not None:
            return prof
    return None


# --------------------------------------------------------------------------------------------------------------
# one stream's report
# --------------------------------------------------------------------------------------------------------------
def _toc_fields(b0: int) -> dict:
    t = Toc.from_byte(b0)
    return {"config": t.config, "mode": t.mode, "bandwidth": t.bandwidth, "frame_ms": t.frame_ms,
            "stereo": t.stereo, "code": t.code}


_TOCS = [None] * 256


def _toc(b0: int) -> dict:
    t = _TOCS[b0]
    if t is None:
        t = _TOCS[b0] = _toc_fields(b0)
    return t


@dataclass
class StreamInspection:
    """One Opus stream's report (``report``: JSON-able) and its per-packet columns (arrival order), from which
    :meth:`rows` makes the light rows."""

    stream: OpusStream
    profile: str | None
    dred: DredColumns
    durations: np.ndarray
    report: dict
    frames: np.ndarray
    seqs16: np.ndarray
    ts32: np.ndarray
    markers: np.ndarray
    pts: np.ndarray
    items: list = field(default_factory=list)  # detail: PacketInspection with an "rtp" dict

    def rows(self):
        """One light row per packet, arrival order: RTP fields, length, TOC, DRED header and coverage."""
        o, d = self.stream, self.dred
        avail = d.available_48k()
        errors = {k: e.to_dict() for k, e in d.errors}
        for k in range(len(o)):
            p = o.opus[k]
            dred = None
            if d.found[k]:
                dred = {"q0": int(d.q0[k]), "dq": int(d.dq[k]), "qmax": int(d.qmax[k]),
                        "dred_offset": int(d.dred_offset[k]), "nb_latents": int(d.nb_latents[k]),
                        "coverage_ms": 40.0 * int(d.nb_latents[k]), "available_ms": int(avail[k]) / 48.0,
                        "payload_bytes": int(d.payload_bytes[k])}
            yield {"ssrc": o.ssrc, "index": k, "frame": int(self.frames[k]), "offset": o.opus_offset[k],
                   "arrival": format_ns(int(o.arrival_ns[k])), "seq": int(self.seqs16[k]),
                   "ext_seq": int(o.ext_seq[k]), "timestamp": int(self.ts32[k]), "ext_timestamp": int(o.ext_ts[k]),
                   "pt": int(self.pts[k]), "marker": bool(self.markers[k]), "length": 0 if p is None else len(p),
                   "duration_ms": int(self.durations[k]) / 48.0, "toc": _toc(p[0]) if p else None, "dred": dred,
                   "duplicate": bool(o.duplicate[k]), "reordered": bool(o.reordered[k]), "usable": p is not None,
                   "error": errors.get(k)}


def _percentiles(x: np.ndarray) -> dict:
    if not len(x):
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(x.max())}


def _interval_overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def _loss_runs(o: OpusStream, seqs: np.ndarray, idx: np.ndarray, ts_seq: np.ndarray, dur_seq: np.ndarray,
               d: DredColumns, lost_seqs: set, t0: int, frames: np.ndarray) -> list[dict]:
    """The runs of packets missing from the sequence (lost, cut or not Opus) and what could have covered them."""
    missing = idx < 0
    usable = np.array([i >= 0 and o.opus[i] is not None for i in idx.tolist()], bool)
    gone = ~usable
    runs = []
    if not gone.any():
        return runs
    edges = np.flatnonzero(np.diff(np.concatenate([[0], gone.astype(np.int8), [0]])))
    avail = d.available_48k()
    dend = d.end_48k()
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
        nxt = b if b < len(seqs) else None
        prev = a - 1 if a > 0 else None
        if nxt is not None:
            t_next = int(ts_seq[nxt])
            t_start = int(ts_seq[prev] + dur_seq[prev]) if prev is not None else t_next - (b - a) * int(dur_seq[nxt])
        else:
            t_start = int(ts_seq[prev] + dur_seq[prev])
            t_next = t_start + (b - a) * int(dur_seq[prev])
        lost = max(0, t_next - t_start)
        run: dict[str, Any] = {
            "first_seq": int(seqs[a]) & 0xFFFF, "ext_first_seq": int(seqs[a]), "count": b - a,
            "network_lost": int(sum(1 for s in seqs[a:b].tolist() if s in lost_seqs)),
            "unusable": int(np.count_nonzero(~missing[a:b])), "t_s": (t_start - t0) / OPUS_CLOCK,
            "lost_ms": lost / 48.0, "next_seq": None, "next_frame": None, "dred_available_ms": 0.0,
            "dred_end_ms": 0.0, "dred_covered_ms": 0.0, "red_covered_ms": 0.0, "covered_ms": 0.0, "covered": "none"}
        if nxt is not None:
            k = int(idx[nxt])
            run["next_seq"] = int(seqs[nxt]) & 0xFFFF
            run["next_frame"] = int(frames[k])
            av, de = int(avail[k]), int(dend[k])
            run["dred_available_ms"] = av / 48.0
            run["dred_end_ms"] = de / 48.0
            dred_cov = _interval_overlap(t_next - av, t_next - de, t_start, t_next) if av else 0
            run["dred_covered_ms"] = dred_cov / 48.0
            # RED: redundant blocks of the next few usable packets
            red_iv = []
            for j in range(nxt, min(len(seqs), nxt + 3)):
                kk = int(idx[j])
                if kk < 0 or o.opus[kk] is None:
                    continue
                for ts_off, blk in o.redundant[kk]:
                    dur = int(packet_durations([blk])[0]) if blk else 0
                    s0 = int(ts_seq[j]) - ts_off
                    red_iv.append((max(s0, t_start), min(s0 + dur, t_next)))
            red_cov = _union_length(red_iv)
            run["red_covered_ms"] = red_cov / 48.0
            both = _union_length(red_iv + ([(max(t_next - av, t_start), min(t_next - de, t_next))] if av else []))
            run["covered_ms"] = both / 48.0
            run["covered"] = "full" if lost and both >= lost else ("partial" if both > 0 else "none")
        runs.append(run)
    return runs


def _union_length(iv: list[tuple[int, int]]) -> int:
    total, end = 0, None
    for a, b in sorted((a, b) for a, b in iv if b > a):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def _timeline(ts_seq: np.ndarray, t0: int, gone: np.ndarray, found: np.ndarray, cov: np.ndarray,
              avail: np.ndarray, bucket_s: float) -> list[dict]:
    """Per bucket of media time: packets, losses, packets with DRED, their coverage (mean, min) and the smallest
    ``available_ms`` among the packets that carry DRED."""
    if not len(ts_seq):
        return []
    b = ((ts_seq - t0) // round(bucket_s * OPUS_CLOCK)).astype(np.int64)
    b -= b.min()
    nb = int(b.max()) + 1
    count = np.bincount(b, minlength=nb)
    lost = np.bincount(b, weights=gone.astype(np.float64), minlength=nb)
    withd = np.bincount(b, weights=found.astype(np.float64), minlength=nb)
    covsum = np.bincount(b, weights=np.where(found, cov, 0.0), minlength=nb)
    covmin = np.full(nb, np.inf)
    np.minimum.at(covmin, b[found], cov[found])
    avmin = np.full(nb, np.inf)
    np.minimum.at(avmin, b[found], avail[found])
    out = []
    for i in range(nb):
        w = int(withd[i])
        out.append({"t_s": i * bucket_s, "packets": int(count[i] - lost[i]), "lost": int(lost[i]), "with_dred": w,
                    "coverage_ms_mean": float(covsum[i] / w) if w else 0.0,
                    "coverage_ms_min": float(covmin[i]) if w else 0.0,
                    "available_ms_min": float(avmin[i]) if w else 0.0})
    return out


def inspect_stream(o: OpusStream, capture: RtpCapture, *, profile: Profile | None = None,
                   dred_reader: DredReader | None = None, detail: int = 200, bits: bool = False,
                   bucket_s: float = 1.0, warnings: list | None = None) -> StreamInspection:
    """The report of one Opus stream (see the module docstring). ``profile``: the DRED profile (default: the
    stream's version byte, :func:`stream_profile`); ``detail``: packets given in detail (-1: all); warnings about
    packets that are no Opus packets are appended to ``warnings``."""
    reader = dred_reader or scalar_dred_reader
    prof = profile if profile is not None else stream_profile(o.opus)
    d = reader(o.opus, prof if prof is not None else get_profile(FALLBACK_PROFILE))
    not_opus = [(k, e) for k, e in d.errors if isinstance(e, PacketError)]
    for k, _ in not_opus:
        o.opus[k] = None
        d.error[k] = False
    w = invalid_packets_warning(o, not_opus)
    if w is not None and warnings is not None:
        warnings.append(w)
    rtp = capture.rtp
    r_idx = o.rtp
    durations = packet_durations(o.opus)
    seqs, items, _, idx = o.in_sequence()
    # media time of every packet in sequence order (a lost one's from its neighbours)
    have = idx >= 0
    ts_seq = np.zeros(len(seqs), np.int64)
    ts_seq[have] = o.ext_ts[idx[have]]
    if (~have).any() and have.any():
        ts_seq[~have] = np.round(np.interp(seqs[~have], seqs[have], ts_seq[have])).astype(np.int64)
    dur_seq = np.where(have, durations[np.maximum(idx, 0)], 0)
    fill = int(np.median(durations[durations > 0])) if (durations > 0).any() else 960
    dur_seq = np.where(dur_seq > 0, dur_seq, fill)
    t0 = int(ts_seq[0]) if len(ts_seq) else 0
    gone = np.array([p is None for p in items], bool)
    found_seq = np.where(have, d.found[np.maximum(idx, 0)], False)
    cov_seq = np.where(have, 40.0 * d.nb_latents[np.maximum(idx, 0)], 0.0)
    av_seq = np.where(have, d.available_48k()[np.maximum(idx, 0)] / 48.0, 0.0)
    frames = rtp.record[r_idx] + 1
    lost_seqs = set(o.lost.tolist())
    runs = _loss_runs(o, seqs, idx, ts_seq, dur_seq, d, lost_seqs, t0, frames)
    # arrival delays: transit time (arrival less media time) above the smallest one
    transit = o.arrival_ns / 1e6 - o.ext_ts / (OPUS_CLOCK / 1000)
    usable = ~o.duplicate
    delay = transit[usable] - transit[usable].min() if usable.any() else np.zeros(0)
    jit = interarrival_jitter(o.ext_ts[usable], o.arrival_ns[usable])
    fd = d.found
    cov = 40.0 * d.nb_latents[fd]
    av = d.available_48k()[fd] / 48.0
    frame_ms = float(np.median(durations[durations > 0]) / 48.0) if (durations > 0).any() else 0.0
    full = sum(1 for r in runs if r["covered"] == "full")
    partial = sum(1 for r in runs if r["covered"] == "partial")
    n_lost = len(o.lost)
    expected = int(seqs[-1] - seqs[0] + 1) if len(seqs) else 0
    report = {
        "ssrc": o.ssrc, "ssrc_hex": f"{o.ssrc:#010x}", "src": o.src, "dst": o.dst, "pt": o.pt, "red_pt": o.red_pt,
        "profile": prof.name if prof is not None else None, "packets": len(o),
        "received": int(np.count_nonzero(~o.duplicate)), "first_seq": int(seqs[0]) if len(seqs) else None,
        "last_seq": int(seqs[-1]) if len(seqs) else None, "expected": expected, "lost": n_lost,
        "lost_percent": 100.0 * n_lost / expected if expected else 0.0,
        "unusable": int(np.count_nonzero([p is None for i, p in enumerate(o.opus) if not o.duplicate[i]])),
        "duplicates": int(o.duplicate.sum()), "reordered": int(o.reordered.sum()),
        "seq_wraps": int((o.ext_seq.max() >> 16) - (o.ext_seq.min() >> 16)) if len(o) else 0,
        "ts_wraps": int((o.ext_ts.max() >> 32) - (o.ext_ts.min() >> 32)) if len(o) else 0,
        "frame_ms": frame_ms,
        "duration_s": float((ts_seq[-1] + dur_seq[-1] - ts_seq[0]) / OPUS_CLOCK) if len(seqs) else 0.0,
        "jitter_ms": 1000.0 * float(jit[-1]) / OPUS_CLOCK if len(jit) else 0.0,
        "max_jitter_ms": 1000.0 * float(jit.max()) / OPUS_CLOCK if len(jit) else 0.0,
        "delay_ms": _percentiles(delay),
        "dred": {"packets": int(fd.sum()), "share": float(fd.mean()) if len(fd) else 0.0,
                 "bytes": int(d.payload_bytes[fd].sum()), "errors": int(d.error.sum()),
                 "coverage_ms_mean": float(cov.mean()) if len(cov) else 0.0,
                 "coverage_ms_min": float(cov.min()) if len(cov) else 0.0,
                 "coverage_ms_max": float(cov.max()) if len(cov) else 0.0,
                 "available_ms_mean": float(av.mean()) if len(av) else 0.0},
        "loss_runs": runs,
        "losses": {"runs": len(runs), "packets": int(gone.sum()), "lost_ms": float(sum(r["lost_ms"] for r in runs)),
                   "covered_full": full, "covered_partial": partial, "covered_none": len(runs) - full - partial,
                   "covered_ms": float(sum(r["covered_ms"] for r in runs)),
                   "dred_covered_ms": float(sum(r["dred_covered_ms"] for r in runs)),
                   "longest_run": max((r["count"] for r in runs), default=0)},
        "bucket_s": bucket_s,
        "timeline": _timeline(ts_seq, t0, gone, found_seq, cov_seq, av_seq, bucket_s),
    }
    si = StreamInspection(o, prof.name if prof is not None else None, d, durations, report, frames,
                          rtp.seq[r_idx], rtp.timestamp[r_idx], rtp.marker[r_idx], rtp.pt[r_idx])
    n_detail = len(o) if detail < 0 else min(detail, len(o))
    for k in range(n_detail):
        p = o.opus[k]
        it = inspect_packet(p if p is not None else b"", prof, index=k, offset=o.opus_offset[k], bits=bits)
        si.items.append((it, rtp.packet(int(r_idx[k]))))
    return si


# --------------------------------------------------------------------------------------------------------------
# the whole capture
# --------------------------------------------------------------------------------------------------------------
@dataclass
class CaptureInspection:
    """A capture's inspection: the header (format, link types, every SSRC), the error where the file broke
    off, the warnings, and one :class:`StreamInspection` per Opus stream reported."""

    name: str
    format: str
    size: int
    profile: str | None
    profile_source: str
    header: dict
    error: dict | None
    warnings: list[dict]
    streams: list[StreamInspection]

    def summary(self) -> dict:
        s: dict[str, Any] = {"streams": len(self.streams), "packets": 0, "lost": 0, "with_dred": 0,
                             "loss_runs": 0, "covered_full": 0, "covered_partial": 0, "covered_none": 0,
                             "warnings": len(self.warnings)}
        for st in self.streams:
            r = st.report
            s["packets"] += r["packets"]
            s["lost"] += r["lost"]
            s["with_dred"] += r["dred"]["packets"]
            for k in ("covered_full", "covered_partial", "covered_none"):
                s[k] += r["losses"][k]
            s["loss_runs"] += r["losses"]["runs"]
        return s

    def to_json(self, *, rows: bool = True) -> dict:
        """Everything as JSON-able values; ``rows``: the light row of every packet under ``packets``."""
        return {
            "name": self.name, "format": self.format, "size": self.size, "profile": self.profile,
            "profile_source": self.profile_source, "header": self.header, "error": self.error,
            "warnings": self.warnings, "summary": self.summary(),
            "streams": [st.report for st in self.streams],
            "items": [{**it.to_json(), "rtp": rtp} for st in self.streams for it, rtp in st.items],
            "packets": [row for st in self.streams for row in st.rows()] if rows else [],
        }


def inspect_capture(data: bytes, *, name: str = "<bytes>", profile=None, options: CaptureOptions | None = None,
                    detail: int = 200, bits: bool = False, dred_reader: DredReader | None = None, map=map,
                    bucket_s: float = 1.0, capture: RtpCapture | None = None) -> CaptureInspection:
    """Inspect a pcap or pcapng capture (see the module docstring). Every Opus stream is reported, or only
    ``options.ssrc``'s. A file that breaks off keeps the packets before the break (``error``). Raises the
    capture's typed errors (:func:`~opus_dred.bitstream._capture.read_capture`): no capture, a payload type
    no packet carries or that is not Opus, an SSRC that is no Opus stream's."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    cap = capture if capture is not None else read_capture(data, options, map=map)
    warnings = list(cap.warnings)
    streams = [cap.selected] if (options is not None and options.ssrc is not None) else cap.opus
    out = []
    for o in streams:
        if o is None:
            continue
        out.append(inspect_stream(o, cap, profile=prof, dred_reader=dred_reader, detail=detail, bits=bits,
                                  bucket_s=bucket_s, warnings=warnings))
    detected = next((st.profile for st in out if st.profile), None)
    source = "given" if prof is not None else ("version byte" if detected else "none")
    return CaptureInspection(name, cap.fmt, len(data), prof.name if prof is not None else detected, source,
                             cap.header(), cap.error.to_dict() if cap.error is not None else None,
                             [w.to_dict() for w in warnings], out)
