"""``opus-dred bench``: speed benchmarks (a command group; more subcommands can join ``app``)."""

from __future__ import annotations

import json

import typer

from opus_dred.bench import _bitstream as bench_bitstream_mod
from opus_dred.bench import _encode as bench_encode_mod
from opus_dred.bench import _simulate as bench_simulate_mod
from opus_dred.bench import _vocoder as bench_vocoder_mod
from opus_dred.bench._decode import NUMERICS_CHOICES, PIPELINE_CHOICES, StreamSpec, bench_decode, hoist_small_loops
from opus_dred.cli._conform import run_conform

app = typer.Typer(no_args_is_help=True, help="Speed benchmarks against libopus.")


@app.callback()
def _group() -> None:
    """Speed benchmarks against libopus (the benchmark is a command, never a timed test)."""


@app.command("decode")
def decode(
    packets: int = typer.Option(3000, "--packets", help="DRED-carrying packets in the stream (>= 3000 for the issue's target)."),
    profile: str = typer.Option("libopus-1.6.1", "--profile", help="Profile; the libopus build of the same name is timed."),
    batch: int = typer.Option(1024, "--batch", help="Packets decoded in lockstep per batch by the reference."),
    numerics: str = typer.Option("avx2", "--numerics", help="Reference arithmetic: avx2 (bit-exact with the default build) or float."),
    bitrate: int = typer.Option(32000, "--bitrate", help="Encoder bitrate (b/s), 16 kHz, 20 ms, loss 20 %, DRED 100."),
    repeats: int = typer.Option(3, "--repeats", help="Timed passes; the best is reported."),
    pipeline: str = typer.Option("jax", "--pipeline", help="Entropy decoding: jax (one XLA computation) or numpy (bitstream.batch)."),
    workers: int = typer.Option(0, "--workers", help="Threads decoding batches at once (jax pipeline); 0: two per core."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Decode a long DRED stream with libopus (opus_dred_parse with processing) and with the reference
    (batched entropy decoding + fast JAX decoder, warm); print packets/s, ratio, memory and the
    compliance metric of our features against libopus'."""
    hoist_small_loops()  # before JAX starts: this process only (see its docstring)

    if numerics not in NUMERICS_CHOICES:
        raise typer.BadParameter(f"must be one of {', '.join(NUMERICS_CHOICES)}", param_hint="--numerics")
    if pipeline not in PIPELINE_CHOICES:
        raise typer.BadParameter(f"must be one of {', '.join(PIPELINE_CHOICES)}", param_hint="--pipeline")
    if packets < 1 or batch < 1 or repeats < 1 or workers < 0:
        raise typer.BadParameter("--packets, --batch and --repeats must be positive, --workers not negative")
    r = bench_decode(StreamSpec(profile=profile, packets=packets, bitrate=bitrate), batch=batch,
                     numerics=numerics, repeats=repeats, pipeline=pipeline, workers=workers or None)
    if as_json:
        typer.echo(json.dumps(r.to_json(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"bench decode: {r.packets} packets, {r.latents} latents, {r.profile}")
    t.add_column("decoder")
    t.add_column("seconds", justify="right")
    t.add_column("packets/s", justify="right")
    t.add_column("µs/packet", justify="right")
    t.add_row(f"libopus {r.build} (opus_dred_parse)", f"{r.libopus_s:.3f}", f"{r.libopus_pps:,.0f}",
              f"{1e6 / r.libopus_pps:.1f}")
    t.add_row(f"reference ({r.numerics}, batch {r.batch}, {r.workers} worker(s) on {r.cores} core(s), {r.device})",
              f"{r.ours_s:.3f}", f"{r.ours_pps:,.0f}", f"{1e6 / r.ours_pps:.1f}")
    if r.workers > 1:
        t.add_row(f"  stages: time summed over the {r.workers} workers, which overlap", "", "", "")
    for name, s in (("  extension lookup", r.ours_parse_s), ("  entropy decoding", r.ours_entropy_s),
                    ("  RDO-VAE decoder", r.ours_network_s)):
        t.add_row(name, f"{s:.3f}", "", f"{1e6 * s / r.packets:.1f}")
    c = Console()
    c.print(t)
    c.print(f"ratio (reference / libopus packets/s): [bold]{r.ratio:.2f}[/bold]   "
            f"peak RSS {r.maxrss_mib:.0f} MiB, tracemalloc peak {r.tracemalloc_peak_mib:.1f} MiB, "
            f"compile+first pass {r.compile_s:.1f} s, load average {r.load_avg[0]:.1f} -> {r.load_avg[1]:.1f}, "
            f"small XLA loops hoisted: {'yes' if r.hoisted_loops else 'no'}")
    m = r.metric
    if m:
        c.print(f"features vs libopus: total {m['total']:.4g}, max {m['max']:.4g}, pitch {m['pitch']:.4g} "
                f"-> {'PASS' if m['passed'] else 'FAIL'}; bit-exact packets {r.bit_exact_packets}/{r.packets}")
    else:
        c.print("[red]nb_latents differ from libopus: features not compared[/red]")


@app.command("conform")
def conform_bench(
    impl: list[str] = typer.Option(["all"], "--impl", help="Implementations to time (as for `opus-dred conform`)."),
    profile: str = typer.Option(None, "--profile", help="Only this profile's cases."),
    suite: str = typer.Option(None, "--suite", help="Suite root (default: the canonical suite)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Time a full conform run over the suite, per implementation (target: under 60 s each for the canonical
    suite). Each implementation's time includes its start-up (JAX compilation for the reference, loading
    the shim for a libopus build)."""
    from pathlib import Path

    rep = run_conform(impl, Path(suite) if suite else None, profile)
    rows = [{"impl": r.impl, "seconds": round(r.seconds, 3), "cases_run": sum(1 for o in r.outcomes if o.status != "skip"),
             **r.counts()} for r in rep.impls]
    if as_json:
        typer.echo(json.dumps({"suite": rep.suite, "cases": rep.cases, "implementations": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"bench conform: {rep.cases} cases in {rep.suite}")
    for col in ("implementation", "seconds", "cases run", "cases/s", "pass", "fail", "skip", "error", "< 60 s"):
        t.add_column(col, justify="left" if col == "implementation" else "right")
    for r in rows:
        rate = r["cases_run"] / r["seconds"] if r["seconds"] > 0 else 0.0
        t.add_row(r["impl"], f"{r['seconds']:.2f}", str(r["cases_run"]), f"{rate:,.0f}", str(r["pass"]),
                  str(r["fail"]), str(r["skip"]), str(r["error"]), "yes" if r["seconds"] < 60 else "[red]no[/red]")
    Console().print(t)


@app.command("simulate")
def simulate(
    lengths: str = typer.Option("5,10,20,40", "--lengths", help="Input lengths in seconds (the default clip repeated)."),
    bitrate: int = typer.Option(32000, "--bitrate", help="Total bitrate of the experiment (b/s)."),
    build: str = typer.Option("libopus-1.6.1", "--build", help="libopus build."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Frames/s of the whole ``opus-dred simulate`` pipeline (4 configurations, one loss condition) and
    how its time scales with the input length."""
    pts = bench_simulate_mod.bench_simulate([float(s) for s in lengths.split(",") if s.strip()], build=build, bitrate=bitrate)
    bench_simulate_mod.print_report(pts, as_json=as_json, title=f"bench simulate: {build}, {bitrate / 1000:g} kb/s, ge:bursty-20")


@app.command("bitstream")
def bitstream(
    packets: int = typer.Option(3000, "--packets", help="DRED-carrying packets read by each parser."),
    profile: str = typer.Option("libopus-1.6.1", "--profile", help="Profile; the libopus build of the same name is timed."),
    repeats: int = typer.Option(3, "--repeats", help="Timed passes; the best is reported."),
    inspect_runs: int = typer.Option(5, "--inspect-runs", help="Cold `inspect` runs on a 500-packet .bit file (0: none)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Our bitstream parser against libopus' opus_dred_parse (deferred) on the same packets, and cold inspect time."""
    bench_bitstream_mod.print_report(bench_bitstream_mod.bench_bitstream(profile, packets, repeats, inspect_runs=inspect_runs), as_json=as_json)


@app.command("encode")
def encode(
    streams: int = typer.Option(16, "--streams", help="Streams of real speech encoded at once (the reference's batch)."),
    seconds: float = typer.Option(5.0, "--seconds", help="Seconds of audio per stream."),
    profile: str = typer.Option("libopus-1.6.1", "--profile", help="Profile; the libopus build of the same name is timed."),
    numerics: str = typer.Option("avx2", "--numerics", help="avx2 (bit-exact with the default build, which is timed) or sse2 (the -generic build's arithmetic; that build is timed)."),
    rate: int = typer.Option(16000, "--rate", help="Input sampling rate: 16000 or 48000 (the corpus' rates)."),
    bitrate: int = typer.Option(32000, "--bitrate", help="Bitrate (b/s) whose DRED settings libopus' encoder would use."),
    loss: int = typer.Option(20, "--loss", help="Expected loss in % (drives q0/dQ and the chunk cap)."),
    duration: int = typer.Option(100, "--duration", help="DRED duration in 10 ms frames (1..104)."),
    cbr: bool = typer.Option(False, "--cbr", help="No VBR chunk cap: every chunk the duration asks for."),
    path: str = typer.Option("accel", "--path", help="Ours: accel (accel.encode_streams, the default) or reference (the reference composed over the batch)."),
    workers: int = typer.Option(0, "--workers", help="Threads of the accel path; 0: one per core."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """PCM of N streams -> a DRED payload per 20 ms, by libopus' DRED encoder half (per stream) and by ours
    (batched over the streams, compile excluded); time per second of audio, the speed ratio on all cores (wall
    time) and per core (CPU time), memory, the CPU, and the share of payloads byte-identical to libopus'."""
    if path not in bench_encode_mod.PATH_CHOICES:
        raise typer.BadParameter(f"must be one of {', '.join(bench_encode_mod.PATH_CHOICES)}", param_hint="--path")
    if workers < 0:
        raise typer.BadParameter("must not be negative", param_hint="--workers")
    if numerics not in bench_encode_mod.NUMERICS_CHOICES:
        raise typer.BadParameter(f"must be one of {', '.join(bench_encode_mod.NUMERICS_CHOICES)}",
                                 param_hint="--numerics")
    if rate not in (16000, 48000):
        raise typer.BadParameter("must be 16000 or 48000", param_hint="--rate")
    if streams < 1 or seconds <= 0 or not 1 <= duration <= 104:
        raise typer.BadParameter("--streams must be positive, --seconds more than 0, --duration 1..104")
    r = bench_encode_mod.bench_encode(streams=streams, seconds=seconds, profile=profile, fs=rate, numerics=numerics,
                                      bitrate=bitrate, loss=loss, duration=duration, vbr=not cbr, path=path,
                                      workers=workers or None)
    bench_encode_mod.print_report(r, as_json=as_json)


@app.command("inspect")
def inspect_bench(
    packets: int = typer.Option(180_000, "--packets", help="RTP packets of 20 ms Opus with DRED in the capture (180,000: one hour)."),
    profile: str = typer.Option("libopus-1.6.1", "--profile", help="Profile; the libopus build of the same name encodes the speech and is timed."),
    repeats: int = typer.Option(3, "--repeats", help="Timed runs of the command; the best is reported."),
    workers: int = typer.Option(0, "--workers", help="inspect's worker processes (0: the command's default, this process)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """`opus-dred inspect` on a synthesised capture of real speech (pcap, RTP, DRED): its time, packets/s and
    stages, against libopus' opus_dred_parse on the same payloads (target: one hour in under 10 s)."""
    from opus_dred.bench import _inspect as bench_inspect_mod  # lazy: dpkt takes ~60 ms to import

    if packets < 100 or repeats < 1 or workers < 0:
        raise typer.BadParameter("--packets must be at least 100, --repeats positive, --workers not negative")
    bench_inspect_mod.print_report(bench_inspect_mod.bench_inspect(packets, profile, repeats, workers),
                                   as_json=as_json)


@app.command("vocoder")
def vocoder(
    streams: int = typer.Option(256, "--streams", help="Streams of real speech vocoded (the batch of ours)."),
    seconds: float = typer.Option(2.0, "--seconds", help="Seconds of audio per stream."),
    profile: str = typer.Option("libopus-1.6.1", "--profile", help="Profile; the libopus build of the same name is timed."),
    numerics: str = typer.Option("avx2", "--numerics", help="avx2 (bit-exact with the default build, which is timed) or sse2 (the -generic build's arithmetic; that build is timed)."),
    path: str = typer.Option(bench_vocoder_mod.PATH_CHOICES[0], "--path", help=f"Ours: {' | '.join(bench_vocoder_mod.PATH_CHOICES)} (bench/_vocoder.py)."),
    repeats: int = typer.Option(3, "--repeats", help="Timed passes; the best is reported."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """FARGAN: features of N streams of real speech -> 16 kHz audio, by libopus (per stream) and by ours, one
    stream at a time and batched over the streams (compile excluded); x real time, per core (CPU time), the
    ratio against libopus in the same run, the CPU, and the streams bit-exact with libopus."""
    if numerics not in bench_vocoder_mod.NUMERICS_CHOICES:
        raise typer.BadParameter(f"must be one of {', '.join(bench_vocoder_mod.NUMERICS_CHOICES)}",
                                 param_hint="--numerics")
    if path not in bench_vocoder_mod.PATH_CHOICES:
        raise typer.BadParameter(f"must be one of {', '.join(bench_vocoder_mod.PATH_CHOICES)}", param_hint="--path")
    if streams < 1 or seconds < 0.02 or repeats < 1:
        raise typer.BadParameter("--streams and --repeats must be positive, --seconds at least 0.02")
    r = bench_vocoder_mod.bench_vocoder(streams=streams, seconds=seconds, profile=profile, numerics=numerics,
                                        path=path, repeats=repeats)
    bench_vocoder_mod.print_report(r, as_json=as_json)
