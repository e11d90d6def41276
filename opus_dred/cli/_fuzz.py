"""``opus-dred fuzz``: the long differential campaign of the bitstream readers against libopus."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from opus_dred.conformance._fuzz import Fuzzer, run_campaign


def fuzz(
    profile: str = typer.Option("libopus-1.6.1", "--profile", "-p", help="Profile; fuzzed against the libopus build of the same name."),
    cases: int = typer.Option(100_000, "--cases", "-n", help="Number of cases (indices 0..N-1 of the seed)."),
    seed: int = typer.Option(0, "--seed", help="Seed: case i of seed s is always the same input."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Worker processes."),
    build: Optional[str] = typer.Option(None, "--build", help="libopus build to compare with (default: the profile's)."),
    case: Optional[int] = typer.Option(None, "--case", help="Replay this one case index and print it in full."),
    keep: int = typer.Option(20, "--keep", help="Disagreements and exceptions kept in the report (all are counted)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Feed random, mutated and writer-generated packets, payloads and range-coder programs to our readers and to
    libopus (oracle); print cases/s, disagreements and unexpected exceptions (input in hex, seed and case index).

    Exit status 1 if there is any disagreement or unexpected exception.
    """
    if case is not None:
        f = Fuzzer(profile, build)
        kind, data, params = f.case(seed, case)
        _, stage, d = f.run_case(seed, case)
        out = {"seed": seed, "case": case, "kind": kind, "input_hex": data.hex(), "stage": stage,
               "params": {k: (v if k != "ops" else [list(o) for o in v]) for k, v in params.items() if not k.startswith("_")},
               "disagreement": None if d is None else d.__dict__}
        typer.echo(json.dumps(out, indent=2))
        raise typer.Exit(1 if d is not None else 0)
    if cases < 1 or jobs < 1:
        raise typer.BadParameter("--cases and --jobs must be positive")

    progress = None
    bar = None
    if not as_json and sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), transient=True)
        bar.start()
        task = bar.add_task(f"fuzz {profile}", total=cases)

        def progress(done: int) -> None:
            bar.update(task, completed=done)

    try:
        r = run_campaign(profile, cases, seed=seed, jobs=jobs, build=build, keep=keep, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        typer.echo(json.dumps(r.to_json(), indent=2))
    else:
        typer.echo(f"fuzz {r.profile} against {r.build}: {r.cases:,} cases (seed {r.seed}) in {r.seconds:.1f} s "
                   f"with {r.jobs} jobs = {r.cases_per_s:,.0f} cases/s ({r.cases_per_cpu_s:,.0f} cases per CPU second "
                   f"of one worker, {r.cpu_seconds:.0f} CPU s in all)")
        typer.echo("  by generator: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r.by_kind.items())))
        typer.echo("  by last stage: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r.by_stage.items())))
        typer.echo(f"  disagreements: {r.disagreement_count}   unexpected exceptions: {r.unexpected_count}")
        for d in [*r.disagreements, *r.unexpected]:
            typer.echo(f"  - case {d.index} (seed {d.seed}, {d.kind}) [{d.stage}] {d.detail}")
            typer.echo(f"    input {d.input_hex}  params {json.dumps(d.params)}")
            typer.echo(f"    replay: opus-dred fuzz --profile {r.profile} --seed {d.seed} --case {d.index}")
    if r.disagreement_count or r.unexpected_count:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("fuzz")(fuzz)
