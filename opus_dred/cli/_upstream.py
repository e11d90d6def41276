"""``opus-dred upstream``: fetch, build and locate the pinned libopus releases (see :mod:`.upstream`)."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console

from opus_dred.libopus import _upstream as up

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
_err = Console(stderr=True)


@contextmanager
def _progress(label: str, enabled: bool = True) -> Iterator:
    """A rich spinner whose text follows the manager's progress messages."""
    if not enabled:
        yield lambda msg: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[label]}[/] {task.description}"),
                  TimeElapsedColumn(), console=_err, transient=False) as prog:
        task = prog.add_task("", label=label)

        def update(msg: str) -> None:
            prog.update(task, description=msg)

        yield update


def _fail(exc: Exception) -> None:
    _err.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
    raise typer.Exit(1)


def _names(names: Optional[List[str]]) -> list[str]:
    return list(names) if names else list(up.DEFAULT_BUILDS)


@app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    paths: bool = typer.Option(False, "--paths", help="Add the build directories to the table."),
) -> None:
    """Show every build (pinned and registered): release, variant, pin, state, DRED version, paths."""
    rows = [up.status(n) for n in up.known_builds()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    t = Table(title=f"libopus builds (cache: {up.cache_dir()})")
    t.add_column("name", no_wrap=True)
    for col in ("release", "variant", "sha256 (pin)", "state", "DRED") + (("build dir",) if paths else ()):
        t.add_column(col, overflow="fold")
    colours = {"built": "green", "fetched": "yellow", "missing": "red"}
    for r in rows:
        t.add_row(r["name"], r["release"], r["variant"], (r["sha256"] or "-")[:12] + ("…" if r["sha256"] else ""),
                  f"[{colours[r['state']]}]{r['state']}[/]", str(r["dred_version"] or "?"),
                  *((r["build_dir"],) if paths else ()))
    Console().print(t)


@app.command()
def fetch(
    releases: Optional[List[str]] = typer.Argument(None, help="Releases to fetch (default: all pinned)."),
    source: Optional[Path] = typer.Option(None, "--source", help="A tarball, or a folder holding one."),
    no_apt: bool = typer.Option(False, "--no-apt", help="Do not try the distribution's source archive."),
    no_network: bool = typer.Option(False, "--no-network", help="Do not try the official release URL."),
    as_json: bool = typer.Option(False, "--json", help="Print the fetched tarballs as JSON."),
) -> None:
    """Fetch and verify release tarballs (cache, --source, $OPUS_DRED_LIBOPUS_SOURCES, apt, official URL)."""
    out = {}
    for rel in releases or list(up.PINS):
        try:
            with _progress(f"libopus {rel}", not as_json) as prog:
                p = up.fetch_release(rel, source, use_apt=False if no_apt else None,
                                     use_url=False if no_network else None, progress=prog)
                up.ensure_source(rel, progress=prog)
                prog(f"ok: {p}")
        except up.UpstreamError as exc:
            _fail(exc)
        out[rel] = {"tarball": str(p), "sha256": up.PINS[rel].sha256, "source_dir": str(up.source_dir(rel))}
    if as_json:
        typer.echo(json.dumps(out, indent=2))


@app.command()
def build(
    names: Optional[List[str]] = typer.Argument(None, help="Builds to make (default: the four pinned builds)."),
    source: Optional[Path] = typer.Option(None, "--source", help="A tarball or folder to fetch from if needed."),
    as_json: bool = typer.Option(False, "--json", help="Print the build records as JSON."),
) -> None:
    """Fetch, unpack and build libopus; a build that exists already is left alone."""
    records = []
    for n in _names(names):
        try:
            if up.status(n)["state"] == "built":
                b = up.get_build(n)
                if not as_json:
                    _err.print(f"{n}: already built in {b.build_dir} (nothing to do)", highlight=False)
            else:
                t0 = time.monotonic()
                with _progress(n, not as_json) as prog:
                    b = up.ensure_build(n, prog, source=source)
                    prog(f"built in {time.monotonic() - t0:.0f} s: {b.static_lib}")
        except up.UpstreamError as exc:
            _fail(exc)
        records.append(b.to_json())
    if as_json:
        typer.echo(json.dumps(records, indent=2))


@app.command()
def path(
    name: str = typer.Argument(..., help="A build name (see `opus-dred upstream list`)."),
    lib: bool = typer.Option(False, "--lib", help="Print the path of libopus.a."),
    src: bool = typer.Option(False, "--source", help="Print the source tree."),
) -> None:
    """Print a build's folder (or its libopus.a, or its source tree)."""
    try:
        if lib:
            typer.echo(str(up.get_build(name).static_lib))
        elif src:
            typer.echo(up.status(name)["source_dir"])
        else:
            typer.echo(str(up.build_dir(up._spec(name)["name"])))
    except up.UpstreamError as exc:
        _fail(exc)


@app.command("register")
def register_cmd(
    name: str = typer.Argument(..., help="Name for the new implementation, e.g. libopus-master."),
    source: Path = typer.Argument(..., help="A libopus tarball or source folder (a git checkout works)."),
    label: Optional[str] = typer.Option(None, "--label", help="Release label (default: from the source)."),
    generic: bool = typer.Option(False, "--generic", help="Build without intrinsics and CPU detection."),
    cmake: bool = typer.Option(False, "--cmake", help="Build with cmake even if autotools would work."),
    as_json: bool = typer.Option(False, "--json", help="Print the build record as JSON."),
    no_profile: bool = typer.Option(False, "--no-profile", help="Do not derive the tree's bitstream profile."),
) -> None:
    """Add a libopus source as an extra implementation and build it; derive its bitstream profile (written to
    the derived area: `opus-dred profiles list`)."""
    try:
        with _progress(name, not as_json) as prog:
            b = up.register(name, source, label=label, variant="generic" if generic else "default",
                            build_system="cmake" if cmake else None, derive_profile=not no_profile, progress=prog)
    except up.UpstreamError as exc:
        _fail(exc)
    st = up.status(name)
    if as_json:
        typer.echo(json.dumps({**b.to_json(), "profile": st.get("profile"), "profile_error": st.get("profile_error")},
                              indent=2))
    else:
        _err.print(f"registered {name}: {b.static_lib} (DRED version {b.dred_version})", highlight=False)
        if st.get("profile"):
            _err.print(f"profile: {st['profile']} (opus-dred profiles show {st['profile']})", highlight=False)
        elif st.get("profile_error"):
            _err.print(f"[yellow]no profile derived:[/] {st['profile_error']}", highlight=False)


@app.command()
def unregister(name: str = typer.Argument(..., help="A registered build.")) -> None:
    """Forget a registered build and delete its copies."""
    try:
        up.unregister(name)
    except up.UpstreamError as exc:
        _fail(exc)
