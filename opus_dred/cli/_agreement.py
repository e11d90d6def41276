"""``opus-dred agreement``: the reference decoder against libopus' two builds, next to libopus' own spread."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from opus_dred.conformance._agreement import _fmt_short, measure, to_markdown


def agreement(
    profile: Optional[List[str]] = typer.Option(None, "--profile", "-p", help="Profiles (default: both pinned)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Use only the first N seconds of speech."),
    clip: Optional[str] = typer.Option(None, "--clip", help="Speech clip id (default: the corpus' default clip)."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write the table as Markdown to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Compare the reference decoder with libopus' default and generic builds on real speech.

    Real speech is encoded at 7 settings per profile; every DRED packet is decoded by libopus' default build, its
    generic build and the reference, and compared (dred_compare total/max/pitch, max and p99 absolute error).
    """
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    profiles = tuple(profile) if profile else ("libopus-1.5.2", "libopus-1.6.1")

    def progress(row) -> None:
        console.print(f"[dim]{row.profile}: {row.setting.label}: {row.dred_packets} DRED packets[/]")

    rows = measure(profiles, seconds=seconds, clip=clip, progress=progress)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        t = Table(title="dred_compare total (✓ pass) · max abs / p99 abs error")
        for col in ("profile", "setting", "DRED", "ints", "ref vs default", "ref vs generic", "default vs generic"):
            t.add_column(col, overflow="fold")

        for r in rows:
            t.add_row(r.profile.removeprefix("libopus-"), r.setting.short, f"{r.dred_packets}/{r.packets}",
                      "yes" if r.integers_equal else "NO", _fmt_short(r.ref_vs_default), _fmt_short(r.ref_vs_generic),
                      _fmt_short(r.default_vs_generic))
        Console().print(t)
    if markdown is not None:
        markdown.write_text(to_markdown(rows))


def register(app: typer.Typer) -> None:
    app.command("agreement")(agreement)
