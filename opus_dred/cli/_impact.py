"""``opus-dred impact A B``: each profile's suite on the other's implementations, what breaks by handler and
rule; ``opus-dred interop``: who reads whose DRED. A top-level command: the root CLI calls :func:`register`.
See ``docs/profiles.md``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from opus_dred.conformance._impact import impact as run_impact
from opus_dred.conformance._impact import interop as run_interop
from opus_dred.conformance._report import (
    IMPACT_COLUMNS,
    impact_table_rows,
    interop_markdown,
    render_impact_html,
    write_reports,
)
from opus_dred.errors import OpusDredError


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    return lambda msg: print(f"\r{msg[:110]:<110}", end="", file=sys.stderr, flush=True)


def _print_table(title: str, columns, rows) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    c = Console()
    if not c.is_terminal:
        c = Console(width=max(c.width, 150))
    t = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True)
    for col in columns:
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(*r)
    c.print(t)


def impact(
    a: str = typer.Argument(..., help="A profile (opus-dred profiles list)."),
    b: str = typer.Argument(..., help="Another profile."),
    handler: list[str] = typer.Option(None, "--handler", help="Only these handlers (repeatable)."),
    suite: list[str] = typer.Option(None, "--suite", help="Only these vector suites (repeatable)."),
    impl: list[str] = typer.Option(None, "--impl", help="PROFILE=NAME: run PROFILE's side with these "
                                   "implementations only (repeatable; reference@PROFILE or a build)."),
    report: Path = typer.Option(None, "--report", help="Write impact.json, impact.html and each direction's "
                                "conformance report here."),
    with_interop: bool = typer.Option(True, "--interop/--no-interop", help="Add the interoperability table."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the tables."),
) -> None:
    """Run A's suite on B's implementations and B's on A's (the reference reading as the other profile, and every
    built libopus build of it); print what breaks by handler and by the profile rule that explains it, and who
    reads whose DRED. A profile without vectors gets them generated into the derived area first."""
    chosen: dict[str, list[str]] = {}
    for spec in impl or []:
        if "=" not in spec:
            raise typer.BadParameter(f"{spec!r}: expected PROFILE=NAME", param_hint="--impl")
        k, v = spec.split("=", 1)
        chosen.setdefault(k, []).append(v)
    prog = _progress(as_json)
    try:
        imp = run_impact(a, b, handlers=handler or None, suites=suite or None, impls=chosen or None, progress=prog)
        inter = run_interop() if with_interop else None
    except OpusDredError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if prog:
        print(file=sys.stderr)
    links: dict[str, str] = {}
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        for i, d in enumerate(imp.directions):
            sub = report / f"{i + 1}-{d.suite}-on-{d.impls}"
            write_reports(d.report, sub)
            links[f"{d.suite} suite on {d.impls}'s implementations"] = f"{sub.name}/report.html"
        (report / "impact.json").write_text(json.dumps({**imp.to_json(), "interop": inter}, indent=1,
                                                       allow_nan=False, default=str) + "\n")
        (report / "impact.html").write_text(render_impact_html(imp, inter, links), encoding="utf-8")
    if as_json:
        out = {**imp.to_json(), "interop": inter}
        for d in out["directions"]:
            d.pop("report")
        typer.echo(json.dumps(out, indent=1, default=str))
        return
    _print_table(f"opus-dred impact: {a} ↔ {b}", IMPACT_COLUMNS, impact_table_rows(imp))
    typer.echo("by rule: " + (", ".join(f"{k} {n}" for k, n in imp.by_rule().items()) or "nothing breaks"))
    if inter:
        _print_table("who reads whose DRED (rows: reader; columns: whose DRED)", ["reader", *inter["profiles"]],
                     [[i, *(inter["cells"][i][p] for p in inter["profiles"])] for i in inter["impls"]])
    if report is not None:
        typer.echo(f"report: {report / 'impact.html'}")


def interop(
    markdown: bool = typer.Option(False, "--markdown", help="Print the table as Markdown."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Who reads whose DRED: every known profile's probe packets through every implementation of every profile
    (reads, reads with a behaviour rule differing, ignores, misreads)."""
    t = run_interop()
    if as_json:
        typer.echo(json.dumps(t, indent=1))
    elif markdown:
        typer.echo(interop_markdown(t))
    else:
        _print_table("who reads whose DRED (rows: reader; columns: whose DRED)", ["reader", *t["profiles"]],
                     [[i, *(t["cells"][i][p] for p in t["profiles"])] for i in t["impls"]])


def register(app: typer.Typer) -> None:
    """Add ``impact`` and ``interop`` to the root CLI."""
    app.command("impact")(impact)
    app.command("interop")(interop)
