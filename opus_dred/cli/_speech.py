"""``opus-dred speech``: the real-speech corpus (see :mod:`.speech`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from opus_dred.speech import _corpus as sp

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
_err = Console(stderr=True)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show every clip: id, package, file, licence, speaker, duration, rate, PCM hash, cached or not."""
    rows = []
    for c in sp.list_clips():
        d = c.to_json()
        d["cached"] = sp.installed_version(c.package) is not None
        d["default"] = c.id == sp.DEFAULT_CLIP
        rows.append(d)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    t = Table(title=f"speech clips (cache: {sp.speech_dir()})")
    t.add_column("id", no_wrap=True)
    for col in ("package", "licence", "duration", "description"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["id"] + (" (default)" if r["default"] else ""), r["package"], r["licence"],
                  f"{r['duration_s']:.2f} s", r["description"])
    Console().print(t)


@app.command()
def fetch(as_json: bool = typer.Option(False, "--json", help="Print the package folders as JSON.")) -> None:
    """Download and unpack the corpus packages into the cache (once), then check every clip's hash."""
    try:
        dirs = sp.ensure_corpus()
        for c in sp.list_clips():
            sp.load_clip(c.id)
    except sp.SpeechError as exc:
        _err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1)
    out = {p: {"dir": str(d), "version": sp.installed_version(p)} for p, d in dirs.items()}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        for p, v in out.items():
            _err.print(f"{p} {v['version']}: {v['dir']}", highlight=False)
        _err.print(f"{len(sp.list_clips())} clips verified", highlight=False)


@app.command()
def export(
    clip_id: Optional[str] = typer.Argument(None, help="Clip id (default: the default clip)."),
    out: Path = typer.Option(..., "--out", "-o", help="WAV file to write."),
    rate: int = typer.Option(16000, "--rate", help="16000 or 48000."),
) -> None:
    """Write a clip as a 16-bit mono WAV file."""
    import wave

    try:
        pcm = sp.load_clip(clip_id, rate)
    except sp.SpeechError as exc:
        _err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    _err.print(f"wrote {out}: {len(pcm)} samples at {rate} Hz", highlight=False)
