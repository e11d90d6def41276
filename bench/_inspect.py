"""Capture-inspection benchmark (``opus-dred bench inspect``): an hour of a call, as ``inspect`` reads it.

The capture is synthesised here from real speech: the default corpus clip encoded by libopus (the profile's
build, through the oracle: 16 kHz, 20 ms, 32 kb/s, DRED 1 s, 20 % expected loss), its packets repeated for as
many 20 ms packets as asked (180,000: one hour) as RTP (RFC 3550, RFC 7587: payload type 111, one SSRC, the
sequence number and timestamp running on, so both wrap) over UDP/IPv4/Ethernet in a pcap file, each packet
arriving 20 ms after the one before with a little jitter, a few packets lost (runs of 1 to 3) and one duplicated.
The link, IP and UDP headers of a payload length are built once (``dpkt``, through
:func:`~opus_dred.bitstream._capture.udp_frame`) and the RTP headers packed per packet.

Timed, in one run:

* **ours**: ``opus-dred inspect FILE --limit 0`` as a user runs it, in a fresh interpreter (start-up, the
  records and RTP scan and the DRED reading in worker processes, the report): wall time, best of ``repeats``;
  then its work in this process, stage by stage (records, RTP scan, streams, the DRED reading as the command
  does it: accel's native kernel in one call on this process' threads where it builds, else accel's numpy lanes
  in chunks in the pool; the pool as the command's), for where the time goes.
* **libopus**: ``opus_dred_parse(..., defer_processing=1)`` of the profile's build on the same Opus payloads
  (the DRED reading alone: packet parse, extension lookup, entropy decoding), one ``OpusDRED`` reused, the
  ctypes entry point called in a tight loop.

The figures are checked first: the capture read (``read_capture``) holds the packets, losses, duplicate and
wraps sent, and accel's reader (what ``inspect`` runs) reads libopus' ``nb_latents`` from every distinct
payload.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from opus_dred.accel import _native
from opus_dred.accel._bitstream import read_dred_packets
from opus_dred.bench._machine import cpu_model
from opus_dred.bitstream._capture import read_capture, read_records, scan_capture, udp_frame
from opus_dred.bitstream._profiles import get_profile
from opus_dred.libopus._oracle import Oracle
from opus_dred.speech._corpus import load_clip

#: packets of one hour of 20 ms packets
HOUR_PACKETS = 180_000
#: the target: an hour's capture inspected in under this many seconds
TARGET_S = 10.0
PT, SSRC = 111, 0x5EED0DED
T0_NS = 1_790_000_000_000_000_000
SEQ0, TS0 = 65_000, (1 << 32) - 960 * 1000  # both wrap within the first minute
#: packets per chunk of the DRED reading (as ``inspect``'s)
DRED_CHUNK = 4096


@dataclass
class InspectBench:
    """Figures of one ``bench inspect`` run (seconds)."""

    profile: str
    build: str
    cpu: str
    cores: int
    packets: int
    distinct_payloads: int
    capture_bytes: int
    lost: int
    dred_packets: int
    repeats: int
    command_s: float  # ``opus-dred inspect FILE --limit 0`` in a fresh interpreter, best of repeats
    command_runs_s: list[float]
    command_cpu_s: float  # CPU seconds (user + system, workers included) of that best run
    startup_s: float  # ``opus-dred --help`` in a fresh interpreter: the command's start-up alone
    stages_s: dict[str, float]  # the same work in this process, stage by stage
    libopus_s: float  # opus_dred_parse (deferred) on every payload
    load_avg: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after
    target_s: float = TARGET_S

    @property
    def packets_per_s(self) -> float:
        return self.packets / self.command_s

    @property
    def libopus_pps(self) -> float:
        return self.packets / self.libopus_s

    @property
    def ratio(self) -> float:
        """Our whole inspection's packets/s over libopus' DRED parsing's (above 1: faster than libopus)."""
        return self.libopus_s / self.command_s

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(packets_per_s=self.packets_per_s, libopus_pps=self.libopus_pps, ratio=self.ratio,
                 media_s=self.packets * 0.02, under_target=self.command_s < self.target_s)
        return d


def speech_packets(profile: str, oracle: Oracle | None = None) -> list[bytes]:
    """libopus' packets of the default corpus clip (16 kHz, 20 ms, 32 kb/s, DRED 1 s, 20 % expected loss)."""
    oracle = oracle or Oracle.for_build(profile)
    pcm = np.asarray(load_clip(None, rate=16000))
    enc = oracle.encode(pcm, fs=16000, bitrate=32000, frame_ms=20, complexity=10, dred_duration=100,
                        loss_perc=20, application="voip")
    return [e.data for e in enc]


def loss_plan(n: int, seed: int = 1) -> tuple[np.ndarray, int]:
    """``(indices of the packets sent, in arrival order, index duplicated)``: about 1 % lost in runs of 1 to 3,
    one packet sent twice (the copy right after it)."""
    rng = np.random.default_rng(seed)
    keep = np.ones(n, bool)
    starts = rng.choice(np.arange(1, n - 4), size=max(1, n // 200), replace=False)
    for s, r in zip(starts, rng.integers(1, 4, len(starts))):
        keep[s:s + r] = False
    sent = np.flatnonzero(keep)
    dup = int(sent[len(sent) // 2])
    return np.insert(sent, len(sent) // 2 + 1, dup), dup


def synth_capture(speech: list[bytes], n: int, *, seed: int = 1) -> tuple[bytes, dict]:
    """A pcap of ``n`` RTP packets of ``speech`` repeated (see the module docstring) and what it holds:
    ``{"sent", "lost", "duplicate", "seq_wraps", "ts_wraps"}``."""
    order, dup = loss_plan(n, seed)
    rng = np.random.default_rng(seed + 1)
    jitter = rng.integers(0, 2_000_000, len(order))  # up to 2 ms late
    heads: dict[int, bytes] = {}
    rec = struct.Struct("<IIII").pack
    rtp = struct.Struct(">BBHII").pack
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for j, k in enumerate(order.tolist()):
        p = speech[k % len(speech)]
        h = heads.get(len(p))
        if h is None:  # Ethernet, IPv4, UDP for this length (dpkt's headers and IP checksum), RTP left out
            f = udp_frame(bytes(12 + len(p)))
            h = heads[len(p)] = f[:len(f) - 12 - len(p)]
        t = T0_NS + 20_000_000 * k + int(jitter[j])
        sec, ns = divmod(t, 1_000_000_000)
        body = rtp(0x80, PT | (0x80 if k == 0 else 0), (SEQ0 + k) & 0xFFFF, (TS0 + 960 * k) & 0xFFFFFFFF, SSRC)
        size = len(h) + 12 + len(p)
        out.append(rec(sec, ns // 1000, size, size))
        out += (h, body, p)
    last = n - 1
    return b"".join(out), {"sent": len(order), "lost": n - len(set(order.tolist())), "duplicate": dup,
                           "seq_wraps": ((SEQ0 + last) >> 16) - (SEQ0 >> 16),
                           "ts_wraps": ((TS0 + 960 * last) >> 32) - (TS0 >> 32)}


def _run(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the child and its workers) of ``python -m opus_dred.cli ARGS``."""
    cmd = [sys.executable, "-m", "opus_dred.cli", *args]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def read_dred_chunk(args: tuple[str, list[bytes]]) -> tuple[np.ndarray, np.ndarray]:
    """``(found, nb_latents)`` of one chunk of packets by accel's batched reader (a worker process may run it)."""
    name, packets = args
    prof = get_profile(name)
    loc, b = read_dred_packets(packets, prof)
    nb = np.zeros(len(packets), np.int64)
    nb[np.flatnonzero(loc.found)] = b.nb_latents
    return loc.found, nb


def _warm(_: int) -> int:
    """A worker's first task: it imports this module (and the readers) before anything is timed."""
    return os.getpid()


def _stages(data: bytes, profile: str, workers: int) -> tuple[dict[str, float], object, np.ndarray, np.ndarray]:
    """The command's work in this process, stage by stage, in a pool of ``workers`` processes (0: the command's
    default, none) as the command's: ``(seconds per stage, the capture read, found and nb_latents per packet of
    its stream)``."""
    st: dict[str, float] = {}
    n = workers or 1
    with contextlib.ExitStack() as stack:
        pmap = map
        if n > 1:
            # forkserver: the benchmark's process may hold JAX's threads (a test's), which a fork must not copy
            ex = stack.enter_context(ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("forkserver")))
            t = time.perf_counter()
            list(ex.map(_warm, range(4 * n)))
            st["pool start (not in the command's figure)"] = time.perf_counter() - t
            pmap = ex.map
        t = time.perf_counter()
        rf = read_records(data)
        st["records"] = time.perf_counter() - t
        t = time.perf_counter()
        scan_capture(data, rf.records, map=pmap)
        st["RTP scan"] = time.perf_counter() - t
        t = time.perf_counter()
        cap = read_capture(data, map=pmap)
        st["records, RTP scan and streams (read_capture)"] = time.perf_counter() - t
        pk = cap.selected.opus
        t = time.perf_counter()
        if _native.library() is not None:  # as the command: one call, this process' threads
            parts = [read_dred_chunk((profile, pk))]
            st["DRED reading (accel's native kernel, one call)"] = time.perf_counter() - t
        else:
            parts = list(pmap(read_dred_chunk, [(profile, pk[a:a + DRED_CHUNK]) for a in range(0, len(pk), DRED_CHUNK)]))
            st["DRED reading (accel's numpy lanes, in chunks)"] = time.perf_counter() - t
    return st, cap, np.concatenate([f for f, _ in parts]), np.concatenate([nb for _, nb in parts])


def _libopus(oracle: Oracle, packets: list[bytes], profile: str) -> float:
    prof = get_profile(profile)
    sr = 48000
    mds = prof.max_latents * 4 * sr // 100
    lib = oracle._lib
    dred = oracle.dred_parse(packets[0], defer_processing=True)
    end = ctypes.c_int(0)
    fn, dec, ptr, endp = lib.opus_dred_parse, oracle._dred_dec, dred.ptr, ctypes.byref(end)
    bufs = [(bytes(p), len(p)) for p in packets]
    t = time.perf_counter()
    for b, n in bufs:
        fn(dec, ptr, b, n, mds, sr, endp, 1)
    s = time.perf_counter() - t
    dred.close()
    return s


def bench_inspect(packets: int = HOUR_PACKETS, profile: str = "libopus-1.6.1", repeats: int = 3,
                  workers: int = 0) -> InspectBench:
    """One run (see the module docstring)."""
    load0 = os.getloadavg()[0]
    oracle = Oracle.for_build(profile)
    speech = speech_packets(profile, oracle)
    data, truth = synth_capture(speech, packets)
    # the same answers first: what the capture holds is what was sent, and libopus' latents are ours on every
    # distinct payload
    st, cap, found, nb = _stages(data, profile, workers)
    o = cap.selected
    got = (len(o), len(o.lost), int(o.duplicate.sum()), int((o.ext_seq.max() >> 16) - (o.ext_seq.min() >> 16)),
           int((o.ext_ts.max() >> 32) - (o.ext_ts.min() >> 32)))
    want = (truth["sent"], truth["lost"], 1, truth["seq_wraps"], truth["ts_wraps"])
    if got != want:
        raise RuntimeError(f"inspect found (packets, lost, duplicates, seq wraps, ts wraps) {got}, {want} were sent")
    seen: dict[bytes, int] = {}
    for k, p in enumerate(o.opus):
        seen.setdefault(p, k)
    for p, k in seen.items():
        with oracle.dred_parse(p, sampling_rate=48000, defer_processing=True) as ref:
            if ref.nb_latents != (int(nb[k]) if found[k] else 0):
                raise RuntimeError(f"packet {k}: libopus reads {ref.nb_latents} latents, ours {int(nb[k])}; "
                                   "not timing")
    payloads = [speech[k % len(speech)] for k in range(packets)]
    lib_s = min(_libopus(oracle, payloads, profile) for _ in range(repeats))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hour.pcap"
        path.write_bytes(data)
        opts = ["--workers", str(workers)] if workers > 0 else []  # 0: the command's default
        runs = [_run(["inspect", str(path), "--limit", "0", *opts]) for _ in range(repeats)]
    startup = min(_run(["--help"])[0] for _ in range(repeats))
    best = min(runs)
    return InspectBench(profile, oracle.build.name, cpu_model(), os.cpu_count() or 1, packets, len(speech),
                        len(data), truth["lost"], int(found.sum()), repeats, best[0], [w for w, _ in runs],
                        best[1], startup, st, lib_s, (load0, os.getloadavg()[0]))


def print_report(b: InspectBench, *, as_json: bool = False) -> None:
    """The figures of one run as a table (or JSON)."""
    if as_json:
        print(json.dumps(b.to_json(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    c = Console()
    if not c.is_terminal:
        c = Console(width=160)
    t = Table(title=f"bench inspect: {b.packets:,} RTP packets ({b.packets * 0.02 / 3600:.2f} h of 20 ms Opus with "
                    f"DRED, {b.capture_bytes / 1e6:.1f} MB pcap), {b.profile}")
    for col in ("what", "seconds", "packets/s"):
        t.add_column(col, justify="left" if col == "what" else "right")
    t.add_row(f"opus-dred inspect FILE --limit 0 (fresh process, best of {b.repeats})", f"{b.command_s:.2f}",
              f"{b.packets_per_s:,.0f}")
    t.add_row(f"  its CPU time (user + system, workers included; {b.cores} core(s))", f"{b.command_cpu_s:.2f}", "")
    t.add_row("  its start-up (opus-dred --help)", f"{b.startup_s:.2f}", "")
    for name, s in b.stages_s.items():
        t.add_row(f"  in process: {name}", f"{s:.2f}", "")
    t.add_row(f"libopus {b.build} opus_dred_parse (deferred), the same payloads", f"{b.libopus_s:.2f}",
              f"{b.libopus_pps:,.0f}")
    c.print(t)
    verdict = "[green]under[/green]" if b.command_s < b.target_s else "[red]over[/red]"
    c.print(f"ratio (our whole inspection / libopus' DRED parsing, packets/s): [bold]{b.ratio:.2f}[/bold]; "
            f"{verdict} the {b.target_s:g} s target; {b.lost} lost, {b.dred_packets:,} packets with DRED; "
            f"CPU {b.cpu}, {b.cores} core(s), load average {b.load_avg[0]:.1f} -> {b.load_avg[1]:.1f}")
