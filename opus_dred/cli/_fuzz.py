"""``opus-dred fuzz``: the long differential campaign of the bitstream readers against libopus."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from opus_dred.conformance._fuzz import Fuzzer, FuzzReport, run_campaign


def fuzz(
    profile: str = typer.Option("libopus-1.6.1", "--profile", "-p", help="Profile; fuzzed against the libopus build of the same name."),
    cases: int = typer.Option(100_000, "--cases", "-n", help="Number of cases (indices 0..N-1 of the seed)."),
    seed: int = typer.Option(0, "--seed", help="Seed: case i of seed s is always the same input."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Worker processes."),
    build: Optional[str] = typer.Option(None, "--build", help="libopus build to compare with (default: the profile's)."),
    case: Optional[int] = typer.Option(None, "--case", help="Replay this one case index and print it in full."),
    keep: int = typer.Option(20, "--keep", help="Disagreements and exceptions kept in the report (all are counted)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS|auto",
                                      help="Run on the Ray cluster at ADDRESS (host:port, or auto); --profile may then "
                                           "name several profiles, comma-separated. Needs the \\[scale] extra."),
    campaign: Optional[str] = typer.Option(None, "--campaign", metavar="DIR",
                                           help="With --ray: the campaign directory (checkpoints per shard, "
                                                "reproducers in findings/); running again with it finishes the campaign."),
    shard: int = typer.Option(5000, "--shard", help="With --ray: cases per shard (the unit of work and checkpoint)."),
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

    profiles = [p for p in profile.split(",") if p]
    if ray is None and (campaign is not None or len(profiles) != 1):
        raise typer.BadParameter("--campaign and several profiles need --ray")
    if shard < 1:
        raise typer.BadParameter("--shard must be positive")

    progress = None
    bar = None
    if not as_json and sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), transient=True)
        bar.start()
        where = f" on Ray ({ray})" if ray is not None else ""
        task = bar.add_task(f"fuzz {profile}{where}", total=cases * len(profiles))

        def progress(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done)

    try:
        if ray is not None:
            reports = _run_on_ray(profiles, cases, ray, campaign, seed=seed, build=build, shard=shard, keep=keep,
                                  progress=progress)
        else:
            reports = [run_campaign(profile, cases, seed=seed, jobs=jobs, build=build, keep=keep, progress=progress)]
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        out = [r.to_json() for r in reports]
        typer.echo(json.dumps(out[0] if ray is None else out, indent=2))
    else:
        for r in reports:
            _print_report(r, on_ray=ray is not None)
        if campaign is not None:
            typer.echo(f"campaign: {campaign} (reproducers of any disagreement in findings/)")
    if any(r.disagreement_count or r.unexpected_count for r in reports):
        raise typer.Exit(1)


def _run_on_ray(profiles, cases, address, campaign, **kw) -> list[FuzzReport]:
    import tempfile

    from opus_dred.conformance._campaign import CampaignError, run_ray_campaign  # lazy: imports Ray when run

    try:
        import ray  # noqa: F401  # lazy: Ray is the optional [scale] extra
    except ImportError:
        typer.echo("--ray needs Ray: pip install 'opus-dred[scale]'", err=True)
        raise typer.Exit(2)
    if campaign is None:
        campaign = tempfile.mkdtemp(prefix="opus-dred-campaign-")
    try:
        return run_ray_campaign(profiles, cases, address=address, campaign=campaign, **kw)
    except CampaignError as exc:
        typer.echo(f"campaign {campaign}: {exc}", err=True)
        raise typer.Exit(2)
    except ConnectionError as exc:  # no cluster at the address
        typer.echo(f"--ray {address}: {exc}", err=True)
        raise typer.Exit(2)


def _print_report(r: FuzzReport, *, on_ray: bool) -> None:
    who = f"{r.jobs} CPUs of the Ray cluster" if on_ray else f"{r.jobs} jobs"
    typer.echo(f"fuzz {r.profile} against {r.build}: {r.cases:,} cases (seed {r.seed}) in {r.seconds:.1f} s "
               f"with {who} = {r.cases_per_s:,.0f} cases/s ({r.cases_per_cpu_s:,.0f} cases per CPU second "
               f"of one worker, {r.cpu_seconds:.0f} CPU s in all)")
    typer.echo("  by generator: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r.by_kind.items())))
    typer.echo("  by last stage: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r.by_stage.items())))
    typer.echo(f"  disagreements: {r.disagreement_count}   unexpected exceptions: {r.unexpected_count}")
    for d in [*r.disagreements, *r.unexpected]:
        typer.echo(f"  - case {d.index} (seed {d.seed}, {d.kind}) [{d.stage}] {d.detail}")
        typer.echo(f"    input {d.input_hex}  params {json.dumps(d.params)}")
        typer.echo(f"    replay: opus-dred fuzz --profile {r.profile} --seed {d.seed} --case {d.index}")


def register(app: typer.Typer) -> None:
    app.command("fuzz")(fuzz)
