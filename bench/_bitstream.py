"""Bitstream-reading benchmark (``opus-dred bench bitstream``): our parser against libopus' on the same packets.

One run, on the same DRED-carrying packets (libopus' own encoder output over corpus speech, the stream of
:func:`opus_dred.bench._decode.build_stream`):

* **libopus**: ``opus_dred_parse(..., defer_processing=1)`` of the profile's build (packet parse, extension
  lookup, ``dred_ec_decode``; no neural decoding), one ``OpusDRED`` reused, the ctypes entry point called
  directly in a tight loop.
* **ours, scalar**: :func:`~opus_dred.bitstream._packet.parse_packet`,
  :func:`~opus_dred.bitstream._extensions.parse_extensions`, then
  :func:`~opus_dred.bitstream._extensions.find_dred_extension` and
  :func:`~opus_dred.bitstream._dred.read_dred_payload`: the readable reference path, packet by packet.
* **ours, batched native**: :func:`~opus_dred.accel._bitstream.read_dred_packets` (locate and read in one batch
  of every packet, the C kernel of :mod:`opus_dred.accel._native` over the cores), the path ``decode``,
  ``inspect``, ``fuzz`` and ``conform`` take for many packets.
* **ours, batched numpy**: :func:`~opus_dred.accel._bitstream.locate_dred_payloads` and
  :func:`~opus_dred.accel._bitstream.read_dred_payloads` with ``native=False`` (numpy lanes in lockstep).

Every one of ours is checked against libopus' ``nb_latents`` and ``dred_offset`` on every packet before timing.
Packets/s of each, the batch size, the cores and the ratios are reported, plus the cold time of ``opus-dred inspect`` on a 500-packet
``.bit`` file (a fresh interpreter per run: wall and CPU time of the child).
"""

from __future__ import annotations

import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from opus_dred.accel import _native
from opus_dred.accel._bitstream import locate_dred_payloads, read_dred_packets, read_dred_payloads
from opus_dred.bench._decode import StreamSpec, build_stream
from opus_dred.bitstream._arith import min_feature_frames_for
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._extensions import find_dred_extension, parse_extensions
from opus_dred.bitstream._formats import write_opus_demo_bit
from opus_dred.bitstream._packet import parse_packet
from opus_dred.bitstream._profiles import get_profile
from opus_dred.libopus._oracle import Oracle
from opus_dred.bench._machine import cpu_model


@dataclass
class BitstreamBench:
    profile: str
    build: str
    packets: int
    repeats: int
    libopus_s: float
    scalar_s: float
    batched_s: float
    inspect_packets: int
    inspect_wall_s: list[float]
    inspect_cpu_s: list[float]
    native_s: float | None = None
    batch: int = 0
    cores: int = 1
    threads: int = 1
    cpu: str = ""
    load_avg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def libopus_pps(self) -> float:
        return self.packets / self.libopus_s

    @property
    def scalar_pps(self) -> float:
        return self.packets / self.scalar_s

    @property
    def batched_pps(self) -> float:
        return self.packets / self.batched_s

    @property
    def native_ratio(self) -> float | None:
        return self.libopus_s / self.native_s if self.native_s else None

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(libopus_pps=self.libopus_pps, scalar_pps=self.scalar_pps, batched_pps=self.batched_pps,
                 native_pps=self.packets / self.native_s if self.native_s else None, native_ratio=self.native_ratio,
                 scalar_ratio=self.scalar_pps / self.libopus_pps, batched_ratio=self.batched_pps / self.libopus_pps,
                 inspect_wall_median_s=statistics.median(self.inspect_wall_s) if self.inspect_wall_s else None,
                 inspect_cpu_median_s=statistics.median(self.inspect_cpu_s) if self.inspect_cpu_s else None)
        return d


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def cold_inspect(packets: list[bytes], runs: int = 5) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``python -m opus_dred.cli inspect FILE --json`` on a ``.bit`` of ``packets``."""
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "stream.bit"
        f.write_bytes(write_opus_demo_bit([(p, 0) for p in packets]))
        cmd = [sys.executable, "-m", "opus_dred.cli", "inspect", str(f), "--json"]
        for _ in range(runs):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "JAX_PLATFORMS": "cpu"})
            walls.append(time.perf_counter() - t)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    return walls, cpus


def bench_bitstream(profile: str = "libopus-1.6.1", packets: int = 3000, repeats: int = 3,
                    inspect_packets: int = 500, inspect_runs: int = 5) -> BitstreamBench:

    prof = get_profile(profile)
    oracle = Oracle.for_build(profile)
    pk = build_stream(StreamSpec(profile=profile, packets=packets), oracle)
    sr = 48000
    mds = prof.max_latents * 4 * sr // 100
    mff = min_feature_frames_for(mds, sr, prof.max_latents)

    # the same answers first
    ref = []
    for p in pk:
        d = oracle.dred_parse(p, max_dred_samples=mds, sampling_rate=sr, defer_processing=True)
        ref.append((d.nb_latents, d.dred_offset))
        d.close()

    def scalar():
        out = []
        for p in pk:
            pkt = parse_packet(p)
            parse_extensions(pkt.padding, pkt.nb_frames, syntax=prof.extension_syntax)
            loc = find_dred_extension(p, prof)
            r = read_dred_payload(loc.payload, prof, min_feature_frames=mff, dred_frame_offset=loc.dred_frame_offset)
            out.append((r.nb_latents, r.dred_offset))
        return out

    def batched():
        loc = locate_dred_payloads(pk, prof, native=False)
        b = read_dred_payloads(loc.payload, prof, min_feature_frames=mff, dred_frame_offset=loc.dred_frame_offset,
                               native=False)
        return list(zip(b.nb_latents.tolist(), b.dred_offset.tolist()))

    lib_native = _native.library()

    def native():
        _, b = read_dred_packets(pk, prof, min_feature_frames=mff, native=True)
        return list(zip(b.nb_latents.tolist(), b.dred_offset.tolist()))

    if scalar() != ref or batched() != ref or (lib_native is not None and native() != ref):
        raise RuntimeError("our readers and libopus disagree on this stream; not timing")

    lib = oracle._lib
    dred = oracle.dred_parse(pk[0], defer_processing=True)
    end = ctypes.c_int(0)
    fn, dec, ptr, endp = lib.opus_dred_parse, oracle._dred_dec, dred.ptr, ctypes.byref(end)
    bufs = [(bytes(p), len(p)) for p in pk]

    def libopus():
        for b, n in bufs:
            fn(dec, ptr, b, n, mds, sr, endp, 1)

    lib_s = _best(libopus, repeats)
    sc_s = _best(scalar, repeats)
    ba_s = _best(batched, repeats)
    na_s = _best(native, repeats) if lib_native is not None else None
    dred.close()
    load = os.getloadavg()
    walls, cpus = cold_inspect(pk[:inspect_packets], inspect_runs) if inspect_runs > 0 else ([], [])
    return BitstreamBench(profile, oracle.build.name, len(pk), repeats, lib_s, sc_s, ba_s,
                          min(inspect_packets, len(pk)), walls, cpus, native_s=na_s, batch=len(pk),
                          cores=_native.cores(), threads=_native.threads_for(len(pk)), cpu=cpu_model(), load_avg=tuple(round(x, 2) for x in load))


def print_report(r: BitstreamBench, *, as_json: bool = False) -> None:
    """The figures of one run as a table (or JSON)."""
    import json

    if as_json:
        print(json.dumps(r.to_json(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    j = r.to_json()
    t = Table(title=f"bench bitstream: {r.packets} DRED packets, {r.profile} (best of {r.repeats}); {r.cpu}, "
                    f"{r.cores} cores, load average {r.load_avg[0]:.2f}")
    for col in ("reader", "seconds", "packets/s", "µs/packet", "vs libopus"):
        t.add_column(col, justify="left" if col == "reader" else "right")
    rows = [(f"libopus {r.build} opus_dred_parse (deferred), one thread", r.libopus_s),
            ("ours, scalar (packet, extensions, DRED payload)", r.scalar_s),
            ("ours, batched numpy (locate + read_dred_payloads)", r.batched_s)]
    if r.native_s:
        rows.append((f"ours, batched native (read_dred_packets, batch {r.batch}, {r.threads} thread{'s' if r.threads > 1 else ''})", r.native_s))
    for name, s in rows:
        t.add_row(name, f"{s:.3f}", f"{r.packets / s:,.0f}", f"{1e6 * s / r.packets:.1f}", f"{r.libopus_s / s:.3f}")
    c = Console()
    if not c.is_terminal:
        c = Console(width=160)
    c.print(t)
    if r.native_s:
        c.print(f"batched native reader: {r.native_ratio:.2f}x libopus' opus_dred_parse per packet "
                f"({r.packets / r.native_s:,.0f} against {r.libopus_pps:,.0f} packets/s), batch of {r.batch} packets")
    if r.inspect_wall_s:
        c.print(f"cold `opus-dred inspect --json` on {r.inspect_packets} packets: wall median "
                f"{j['inspect_wall_median_s']:.2f} s (min {min(r.inspect_wall_s):.2f}), CPU median "
                f"{j['inspect_cpu_median_s']:.2f} s over {len(r.inspect_wall_s)} runs")
