"""``opus-dred simulate``: the loss experiment (PLC, LBRR, DRED, LBRR + DRED) on real speech.

The experiment itself is :mod:`opus_dred.experiments._simulate`; this module reads the input, shows a
progress bar, prints the table and writes WAVs, JSON, Markdown and plots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._formats import CAPTURE_FORMATS, load_input, read_input
from opus_dred.cli._inspect import capture_options, format_error, pool_map, print_warnings
from opus_dred.errors import OpusDredError
from opus_dred.experiments import _plots as P
from opus_dred.experiments import _simulate as S
from opus_dred.experiments._simulate import read_wav
from opus_dred.speech import _corpus as speech

#: ``SPEECH`` = "corpus": the default clip and the LibriVox reading (the five utterances joined).
CORPUS = ("codec2-speech-orig-16k", "ps-librivox-all")


def _inputs(speech_args: List[str], rate: int) -> list:

    names: list[str] = []
    for a in speech_args or [speech.DEFAULT_CLIP]:
        names.extend(CORPUS if a == "corpus" else [a])
    out = []
    ids = {c.id for c in speech.list_clips()}
    for n in names:
        if n in ids:
            out.append((n, speech.load_clip(n, rate)))
        elif Path(n).is_file():
            out.append((Path(n).stem, read_wav(n, rate)))
        else:
            raise typer.BadParameter(f"{n!r} is neither a clip id ({', '.join(sorted(ids))}, corpus) "
                                     "nor a WAV file", param_hint="SPEECH")
    return out


def capture_trace(path: Path, options, frame_ms: float = 20.0) -> tuple[S.LossSpec, S.TraceJitter]:
    """A capture's Opus stream as the experiment's loss trace and arrival times: one flag per packet in sequence
    order (1 where the packet is missing, cut by the capture or no Opus packet) and each packet's delay
    (:meth:`~opus_dred.bitstream._capture.OpusStream.arrival_delays_ms`). Warnings on stderr; the capture's typed
    error (or a file that is no capture) is a usage error."""
    try:
        inp = load_input(str(path))
    except ValueError:
        raise typer.BadParameter(f"{path}: no such file", param_hint="--trace") from None
    try:
        with pool_map(0, len(inp.data)) as pmap:
            contents = read_input(inp, capture_options=options, map=pmap)
    except BitstreamError as exc:
        raise typer.BadParameter(format_error(exc.to_dict()), param_hint="--trace") from None
    if contents.fmt not in CAPTURE_FORMATS:
        raise typer.BadParameter(f"{path} is a {contents.fmt} file, not a pcap/pcapng capture (a 0/1 loss trace "
                                 "is --loss trace:FILE)", param_hint="--trace")
    print_warnings(contents.warnings)
    if contents.error is not None:
        typer.echo(f"warning: {format_error(contents.error.to_dict())} (the packets before it are used)", err=True)
    stream = contents.stream
    if stream is None or not contents.items:
        raise typer.BadParameter(f"{path}: no Opus packet before the file breaks off", param_hint="--trace")
    flags = tuple(int(not p) for p in contents.items)
    durations = [p for p in contents.items if p]
    from opus_dred.bitstream._capture import packet_durations  # lazy: dpkt takes ~60 ms to import

    frames = packet_durations(durations)
    if len(frames) and int(np.median(frames)) != int(frame_ms * 48):
        typer.echo(f"warning: the capture's packets last {np.median(frames) / 48:g} ms, the experiment's "
                   f"{frame_ms:g} ms: its flags and delays are taken packet for packet", err=True)
    pct = 100.0 * sum(flags) / len(flags)
    spec = S.LossSpec("trace", pct, path=str(path), flags=flags)
    delays = stream.arrival_delays_ms(frame_ms)
    return spec, S.TraceJitter(tuple(float(x) for x in delays), frame_ms, source=f"capture:{Path(path).name}")


def _clean(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def _fmt(v: float, spec: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


#: The frames column: receiver actions in this order (N normal, L LBRR, D Dred, DP DredPlc, P Plc, drop).
FRAME_KINDS = ("Normal", "Lbrr", "Dred", "DredPlc", "Plc", "Drop")

_COLS = ["loss", "configuration", "kb/s (target)", "LBRR", "DRED ms", "frames N/L/D/DP/P/drop",
         "lost lead/trail", "late (reord.)", "PESQ 0 %", "PESQ", "Δ PESQ", "PESQ vs 0 % dec", "STOI 0 %", "STOI"]


def frames_cell(counts: dict) -> str:
    """``N/L/D/DP/P/drop`` from an action-count dict."""
    return "/".join(str(counts.get(k, 0)) for k in FRAME_KINDS)


def _table_rows(summary: list[dict], engines: bool = False) -> list[list[str]]:
    rows = []
    for d in summary:
        acts = frames_cell(d["counts"])
        rows.append([
            f"{d['loss']} ({d['loss_percent']:.1f} %)", d["label"] + (f" ({d.get('engine', 'libopus')})" if engines else ""),
            f"{d['actual_kbps']:.1f} ({d['target_kbps']:.1f})", f"{100 * d['lbrr_fraction']:.0f} %",
            f"{d['dred_ms']:.0f}", acts, f"{d.get('leading_lost', 0)}/{d.get('trailing_lost', 0)}",
            f"{d.get('late', 0)} ({d.get('reordered', 0)})", _fmt(d["pesq_clean_noloss"], ".2f"), _fmt(d["pesq_clean"], ".2f"),
            _fmt(d["pesq_drop"], ".2f"), _fmt(d["pesq_noloss"], ".2f"), _fmt(d["stoi_clean_noloss"], ".3f"),
            _fmt(d["stoi_clean"], ".3f"),
        ])
    return rows


_ENGINE_COLS = ["loss", "configuration", "engine", "clips", "PESQ libopus", "PESQ engine", "Δ PESQ", "max |Δ PESQ|",
                "STOI libopus", "STOI engine", "Δ STOI", "max |Δ STOI|", "PCM", "concealed (DRED) / equal",
                "DRED rows"]


def engine_rows(comparison: list[dict]) -> list[list[str]]:
    """The engine comparison (``experiments._simulate.compare_engines``) as table cells: means over clips of
    each engine's PESQ and STOI with loss, their differences and the largest of one clip, whether the PCM was
    equal, and the splice's counts (10 ms frames concealed, of which from DRED, and equal to libopus')."""
    rows = []
    for e in comparison:
        eng, ref = e["engine"], e["reference"]
        st = e.get("engine_stats", {})
        rows.append([
            f"{e['loss']} ({e['loss_percent']:.1f} %)", e["label"], eng, str(e["clips"]),
            _fmt(e[f"pesq_clean_{ref}"], ".3f"), _fmt(e[f"pesq_clean_{eng}"], ".3f"), _fmt(e["pesq_clean_diff"], "+.3f"),
            _fmt(e["pesq_clean_max_abs_diff"], ".3f"), _fmt(e[f"stoi_clean_{ref}"], ".4f"),
            _fmt(e[f"stoi_clean_{eng}"], ".4f"), _fmt(e["stoi_clean_diff"], "+.4f"),
            _fmt(e["stoi_clean_max_abs_diff"], ".4f"), "equal" if e["identical_pcm"] else "differs",
            f"{st.get('concealed', 0)} ({st.get('from_dred', 0)}) / {st.get('identical', 0)}" if st else "—",
            str(st.get("dred_rows", 0)) if st else "—",
        ])
    return rows


def _claim_lines(cl: list[dict], labels: dict[str, str], engines: bool = False) -> list[str]:
    out = []
    for e in cl:
        s = (f"{e.get('engine', 'libopus')} engine, " if engines else "") + \
            f"{e['loss']} ({e['loss_percent']:.1f} %): order (worst → best) " + " < ".join(
            labels.get(c, c) for c in e["order"])
        if "dred_over_plc_drop" in e:
            s += f"; DRED's PESQ drop = {e['dred_over_plc_drop']:.2f} × PLC's"
        if "lbrr_dred_below_plc_noloss" in e:
            s += (f"; LBRR + DRED is {e['lbrr_dred_below_own_noloss']:.2f} MOS below its no-loss decode, "
                  f"{e['lbrr_dred_below_plc_noloss']:.2f} below PLC-only's")
        out.append(s)
    return out


def markdown(result_json: dict, command: str) -> str:
    """The Markdown report: settings, the table (means over clips), the claim figures."""
    j = result_json
    many = len(j.get("engines", ["libopus"])) > 1
    lines = [
        "# opus-dred simulate", "",
        f"`{command}`", "",
        f"Build {j['build']} ({j['version']}), receiver policy {j['policy']}, decoder complexity "
        f"{j['dec_complexity']}, jitter-buffer depth {j.get('depth', 0)}, "
        + (f"arrival times measured in {j['arrivals']}" if j.get("arrivals")
           else f"network jitter exponential, mean {j['jitter_ms']:g} ms" if j.get("jitter_ms") is not None
           else "no network jitter (packets in order)")
        + f", {j['rate']} Hz, 20 ms frames, total bitrate {j['bitrate'] / 1000:g} kb/s "
        f"matched by rule '{j['match']}', loss seed {j['seed']}; clips: {', '.join(j['clips'])}"
        + (" (means over clips)" if len(j["clips"]) > 1 else "") + "; " + engine_words(j) + ".", "",
        "| " + " | ".join(_COLS) + " |", "|" + "---|" * len(_COLS),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in _table_rows(j["summary"], many)]
    lines += ["", "Frames: N normal, L LBRR, D DRED, DP DRED call without a feature for the frame (libopus "
              "predicts it, as PLC), P PLC, drop (not decoded). Lost lead/trail: lost packets before the first and "
              "after the last packet that arrives. Late: packets that arrived after their frame was decided "
              "(not decoded); reord.: packets that arrived after a later one. PESQ: wideband (P.862.2) "
              "MOS-LQO against the clean input; '0 %': the same configuration decoded without loss; Δ = PESQ 0 % − PESQ; "
              "'PESQ vs 0 % dec': with loss against the no-loss decode. STOI against the clean input.", ""]
    labels = {d["config"]: d["label"] for d in j["summary"]}
    lines += [f"- {s}" for s in _claim_lines(j["claims"], labels, many)]
    if j.get("engine_comparison"):
        lines += ["", "## Engines", "",
                  "| " + " | ".join(_ENGINE_COLS) + " |", "|" + "---|" * len(_ENGINE_COLS)]
        lines += ["| " + " | ".join(r) + " |" for r in engine_rows(j["engine_comparison"])]
        lines += ["", "PESQ and STOI with loss against the clean input, means over clips; Δ = engine − libopus; "
                  "PCM: whether every clip's lossy decode was equal sample for sample; concealed: 10 ms frames of "
                  "the neural PLC the engine synthesised (from DRED: those that read DRED features), equal: of them, "
                  "equal to libopus' own bit for bit; DRED rows: DRED feature frames queued."]
    return "\n".join(lines) + "\n"


def engine_words(j: dict) -> str:
    """The engines of a result in words (``--engine``, ``--numerics``)."""
    engs = j.get("engines", ["libopus"])
    num = j.get("numerics")
    words = {"libopus": "the libopus engine (the build's decoder)",
             "jax": "the jax engine (our PLC and FARGAN spliced into the build's decoder, numerics "
                    + (f"preset {num!r}" if num else "of the build on this host") + ")"}
    return "lossy decodes by " + " and by ".join(words.get(e, e) for e in engs)


def simulate(
    speech: Optional[List[str]] = typer.Argument(None, help="Clip ids (opus-dred speech list), 'corpus' (default clip + ps-librivox-all) or 16-bit WAV files; default: the default clip."),
    loss: str = typer.Option("ge:bursty-20", "--loss", help="bernoulli:P | ge:bursty-N | ge:p,r,h,k | lossgen:P | trace:FILE (P in %)."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="A pcap/pcapng capture of an Opus RTP stream: its real losses and arrival times drive the experiment (instead of --loss and --jitter)."),
    pt: Optional[int] = typer.Option(None, "--pt", help="--trace: the RTP payload type of the Opus packets."),
    sdp: Optional[Path] = typer.Option(None, "--sdp", help="--trace: a session description naming the Opus payload types."),
    ssrc: Optional[str] = typer.Option(None, "--ssrc", help="--trace: the Opus stream (default: the one with the most packets)."),
    port: Optional[int] = typer.Option(None, "--port", help="--trace: only UDP datagrams to or from this port."),
    rates: str = typer.Option("", "--rates", help="Comma-separated loss rates (%) for the sweep, e.g. 10,20,30 (same loss family)."),
    bitrate: int = typer.Option(32000, "--bitrate", help="Total bitrate (b/s) every configuration is matched to."),
    match: str = typer.Option("measured", "--match", help="measured: adjust the encoder target until the mean packet bitrate is the total; target: same encoder target for all."),
    build: str = typer.Option("libopus-1.6.1", "--build", help="libopus build (encoder, decoder, opus_demo policy)."),
    policy: str = typer.Option("opus_demo", "--policy", help="Receiver policy: opus_demo (the build's) or best."),
    dec_complexity: int = typer.Option(5, "--dec-complexity", help="Decoder complexity; >= 5 enables the neural PLC (opus_demo's default 0 does not)."),
    rate: int = typer.Option(16000, "--rate", help="Sampling rate of encoding and decoding: 16000 or 48000."),
    seed: int = typer.Option(0, "--seed", help="Seed of the loss pattern (and of the jitter delays)."),
    jitter: Optional[float] = typer.Option(None, "--jitter", help="Network jitter: each packet's delay is 50 ms + an exponential draw of this mean (ms); the receiver gets packets in arrival order. Default: in order."),
    depth: int = typer.Option(0, "--depth", help="The receiver's jitter-buffer depth in frames (policy best only): a missing frame waits for this many more packets."),
    configs: str = typer.Option("plc,lbrr,dred,lbrr+dred", "--configs", help="Configurations to run."),
    out: Path = typer.Option(Path("reports/simulate"), "--out", help="Output folder."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots."),
    wavs: bool = typer.Option(True, "--wavs/--no-wavs", help="Write WAV files (the last clip)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON result instead of the table."),
    engine: str = typer.Option("libopus", "--engine", help="Who synthesises the neural PLC and DRED frames: libopus (the build's decoder) or jax (our PLC and FARGAN spliced into the build's decoder); libopus,jax runs both on the same streams and losses and compares them. The WAVs come from the engine(s) given."),
    numerics: Optional[str] = typer.Option(None, "--numerics", help="--engine jax: the numerics preset of our PLC, FARGAN and DRED decoder (avx2, sse2, c, float, avx2-intel, sse2-intel); default: the one that reproduces the build on this host."),
) -> None:
    """The loss experiment: PLC only, LBRR, DRED 1 s and LBRR + DRED under the same packet loss.

    Speech is encoded under each configuration at a matched total bitrate, the same loss pattern is applied to
    each, decoded through the receiver, and scored with wideband PESQ and STOI.
    """
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if dec_complexity < 0 or dec_complexity > 10:
        raise typer.BadParameter("0..10", param_hint="--dec-complexity")
    if depth < 0:
        raise typer.BadParameter(">= 0", param_hint="--depth")
    if jitter is not None and not (math.isfinite(jitter) and jitter >= 0):
        raise typer.BadParameter("a mean delay in ms, >= 0", param_hint="--jitter")
    arrivals = None
    if trace is not None:
        if jitter is not None or rates:
            raise typer.BadParameter("a capture's arrival times and losses replace --jitter and --rates",
                                     param_hint="--trace")
        spec, arrivals = capture_trace(trace, capture_options(pt, sdp, ssrc, port))
    try:
        if trace is None:
            spec = S.parse_loss(loss)
        sweep = [float(r) for r in rates.split(",") if r.strip()] if rates else []
        cfgs = [c.strip() for c in configs.split(",") if c.strip()]
        engs = S.check_engines(engine, numerics)
        clips = _inputs(speech or [], rate)
        total = S.steps(len(clips), spec, sweep, cfgs)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    except OpusDredError as e:
        raise typer.BadParameter(str(e)) from None
    if "jax" in engs and dec_complexity < 5:
        typer.echo(f"warning: --engine jax: libopus runs its neural PLC only at decoder complexity >= 5 "
                   f"(--dec-complexity {dec_complexity}), so the jax engine has nothing to synthesise", err=True)
    err = Console(stderr=True)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as prog:
        task = prog.add_task("simulate", total=total)
        try:
            res = S.simulate(clips, loss=spec, rates=sweep, rate=rate, bitrate=bitrate, match=match, build=build,
                             policy=policy, dec_complexity=dec_complexity, seed=seed, configs=cfgs,
                             depth=depth, jitter_ms=jitter, arrivals=arrivals, engine=engs, numerics=numerics,
                             progress=lambda s: prog.update(task, advance=1, description=s))
        except OpusDredError as e:
            raise typer.BadParameter(str(e)) from None
    j = _clean(res.to_json())
    command = "opus-dred simulate " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "opus-dred simulate"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(j, indent=2) + "\n")
    md = markdown(j, command.strip())
    (out / "results.md").write_text(md)
    if wavs:
        S.write_wav(out / "clean.wav", res.clean, rate)
        for cond in res.conditions:
            tag = cond.spec.label.replace(":", "_").replace("/", "_")
            S.write_trace_file(out / f"loss-{tag}.txt", cond.flags)
            for eng, decoded in cond.by_engine.items():
                for name, pcm in decoded.items():
                    suffix = f"-{eng}" if len(engs) > 1 else ""
                    S.write_wav(out / f"{tag}-{name}{suffix}.wav", pcm, rate)
        for name, pcm in res.conditions[0].noloss.items():
            S.write_wav(out / f"noloss-{name}.wav", pcm, rate)
    if plots:
        main = next((c for c in res.conditions if c.spec.label == spec.label), res.conditions[0])
        labels = {n: S.CONFIGS[n].label for n in cfgs}
        P.plot_signals(out / "signals.png", res.clean, {labels[k]: v for k, v in main.decoded.items()}, main.flags,
                       rate, title=f"{res.clips[-1]}, {main.spec.label}, {bitrate / 1000:g} kb/s, {res.build}")
        if len(res.conditions) > 1:
            P.plot_quality(out / "quality.png", j["summary"],
                           title=f"{', '.join(res.clips)}: {bitrate / 1000:g} kb/s, {res.build}, {res.policy}")
    if as_json:
        typer.echo(json.dumps(j, indent=2))
        return
    from rich.table import Table

    c = Console(width=max(Console().width, 200))
    t = Table(title=f"simulate: {', '.join(res.clips)} — {res.build}, {res.policy}, {bitrate / 1000:g} kb/s "
                    f"({match}), dec complexity {dec_complexity}, depth {depth}, "
                    + (f"arrivals of {trace.name}" if trace is not None
                       else f"jitter {jitter:g} ms" if jitter is not None else "no jitter")
                    + f", engine {','.join(engs)}" + (f" (numerics {numerics})" if numerics else ""))
    for col in _COLS:
        left = col in ("loss", "configuration")
        t.add_column(col, justify="left" if left else "right", no_wrap=not left)
    for r in _table_rows(j["summary"], len(engs) > 1):
        t.add_row(*r)
    c.print(t)
    for s in _claim_lines(j["claims"], {d["config"]: d["label"] for d in j["summary"]}, len(engs) > 1):
        c.print(s)
    if j.get("engine_comparison"):
        te = Table(title="engines: " + engine_words(j))
        for col in _ENGINE_COLS:
            te.add_column(col, justify="left" if col in ("loss", "configuration", "engine") else "right")
        for r in engine_rows(j["engine_comparison"]):
            te.add_row(*r)
        c.print(te)
    c.print(f"written to {out}/ (results.json, results.md" + (", WAVs" if wavs else "") +
            (", plots" if plots else "") + ")")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
