"""``opus-dred metric``: the DRED compliance metric (libopus' ``dred_compare``, see :mod:`.metric`).

Exit status as the tool's: 0 when the comparison passes, 1 when it fails; 2 when an input cannot be
compared (unreadable file, truncated test, lengths that do not match).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from opus_dred.conformance import _metric as m

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _fail(exc: Exception, as_json: bool) -> None:
    if as_json and hasattr(exc, "to_dict"):
        typer.echo(json.dumps(exc.to_dict(), indent=2))  # type: ignore[attr-defined]
    else:
        typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def features(
    reference: Path = typer.Argument(..., help="Reference features (.f32: float32 LE, 20 per frame)."),
    test: Path = typer.Argument(..., help="Features to judge (at least as many frames as the reference)."),
    total: float = typer.Option(0.5, "--total", help="Threshold on sqrt(sum of per-feature MSE), pitch excluded."),
    max_: float = typer.Option(0.15, "--max", help="Threshold on sqrt(largest per-feature MSE), pitch excluded."),
    pitch: float = typer.Option(0.02, "--pitch", help="Threshold on mean |pitch difference| over voiced frames."),
    as_json: bool = typer.Option(False, "--json", help="Print every figure as JSON."),
) -> None:
    """Compare DRED feature files as `dred_compare -features -thresholds TOTAL MAX PITCH` does."""
    try:
        r = m.compare_features(reference, test, m.FeatureThresholds(total, max_, pitch))
    except m.MetricError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        typer.echo(json.dumps(r.to_json(), indent=2))
    else:
        typer.echo(r.report_line())
        typer.echo(f"frames = {r.frames}, voiced = {r.pitch_frames}")
        typer.echo(r.verdict_line())
    raise typer.Exit(r.exit_status)


@app.command()
def audio(
    reference: Path = typer.Argument(..., help="Reference 16 kHz mono PCM."),
    test: Path = typer.Argument(..., help="PCM to judge (cut to the reference's length)."),
    preset: str = typer.Option("vocoder", "--preset",
                               help="Thresholds of libopus' script: 'vocoder' (0.25 1.0 0.15) or 'system' (1.0 3.0 0.25)."),
    err4: Optional[float] = typer.Option(None, "--err4", help="Threshold on err4 (overrides the preset)."),
    err16: Optional[float] = typer.Option(None, "--err16", help="Threshold on err16 (overrides the preset)."),
    pitch: Optional[float] = typer.Option(None, "--pitch", help="Threshold on the pitch error (overrides the preset)."),
    fmt: str = typer.Option("s16", "--format", help="Sample format: s16, s24 or f32 (little-endian)."),
    skip: int = typer.Option(0, "--skip", help="Drop this many samples from the start of TEST."),
    as_json: bool = typer.Option(False, "--json", help="Print every figure as JSON."),
) -> None:
    """Compare PCM files as `dred_compare -audio [-FORMAT] [-skip N] -thresholds ERR4 ERR16 PITCH` does."""
    if preset not in m.AUDIO_PRESETS:
        typer.echo(f"error: unknown preset {preset!r}; use one of {sorted(m.AUDIO_PRESETS)}", err=True)
        raise typer.Exit(2)
    base = m.AUDIO_PRESETS[preset]
    th = m.AudioThresholds(
        base.err4 if err4 is None else err4,
        base.err16 if err16 is None else err16,
        base.pitch if pitch is None else pitch,
    )
    try:
        r = m.compare_audio(reference, test, th, fmt=fmt, skip=skip)
    except m.MetricError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        typer.echo(json.dumps(r.to_json(), indent=2))
    else:
        typer.echo(r.report_line())
        typer.echo(f"frames = {r.frames}, voiced = {r.pitch_frames}, samples = {r.samples}")
        typer.echo(r.verdict_line())
    raise typer.Exit(r.exit_status)
