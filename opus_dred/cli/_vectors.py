"""``opus-dred vectors``: generate, verify, export and list the test vectors."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Optional

import typer

from opus_dred.bitstream._profiles import is_packaged, list_profiles
from opus_dred.models._pack import derived_dir
from opus_dred.vectors._checks import case_checks
from opus_dred.vectors._handlers import expected_for
from opus_dred.vectors._format import (
    Part,
    case_meta_and_parts,
    check_manifest,
    dumps_json,
    iter_case_dirs,
    load_case,
    load_manifest,
    suite_root,
)
from opus_dred.vectors._generate import SUITES
from opus_dred.vectors._generate import generate as gen
from opus_dred.vectors._official import export_official

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def verify_suite(root: Path, *, regenerate: bool = False, echo=typer.echo) -> dict:
    """Integrity (manifest), then expected values recomputed from stored inputs; optionally the inputs too.

    Returns ``{"manifest": [...problems], "expected": [...case ids that differ], "inputs": [...] or None}``.
    """

    out: dict = {"manifest": check_manifest(root), "expected": [], "inputs": None, "cases": 0}
    for folder in iter_case_dirs(root):
        case = load_case(folder)
        out["cases"] += 1
        try:
            exp, tol = expected_for(case.handler, case.profile, case.inputs, case.parameters)
        except Exception as exc:  # noqa: BLE001 - reported per case
            out["expected"].append(f"{case.id}: {type(exc).__name__}: {exc}")
            continue
        c = {"profile": case.profile, "handler": case.handler, "suite": case.suite, "case": case.name,
             "description": case.description,
             "inputs": {k: case.meta["inputs"][k] for k in case.meta.get("inputs", {})},
             "parameters": case.parameters, "expected": exp, "tolerance": tol, "provenance": case.provenance}
        if "checks" in case.meta:  # recomputed where the case states it
            c["checks"] = case_checks(case.handler, case.profile, case.inputs, case.parameters, exp)

        c["inputs"] = {k: (Part(case.files[f"inputs.{k}"], v) if f"inputs.{k}" in case.files else v)
                       for k, v in case.inputs.items()}
        meta, parts = case_meta_and_parts(c)

        same = (folder / "meta.json").read_bytes() == dumps_json(meta).encode("ascii") and all(
            (folder / f).is_file() and (folder / f).read_bytes() == b for f, b in parts.items())
        if not same:
            out["expected"].append(case.id)
    if regenerate:

        manifest = load_manifest(root)
        with tempfile.TemporaryDirectory() as tmp:
            gen(manifest["profiles"], tmp)
            fresh = json.loads((Path(tmp) / "manifest.json").read_text())["files"]
        old = manifest["files"]
        out["inputs"] = sorted(k for k in set(old) | set(fresh) if old.get(k, {}).get("sha256") != fresh.get(k, {}).get("sha256"))
    return out


@app.command()
def generate(
    profile: list[str] = typer.Option(None, "--profile", "-p", help="Profile(s); default: every packaged profile."),
    out: Optional[Path] = typer.Option(None, "--out", help="Root folder (default: the canonical suite, vectors/suite, "
                                       "for a packaged profile; vectors/ of the derived area for a derived one)."),
    suite: Optional[str] = typer.Option(None, "--suite", help=f"Only this suite ({', '.join(SUITES)})."),
) -> None:
    """Generate the vectors of a profile deterministically (same inputs, byte-identical files)."""

    profiles = list(profile) if profile else [p for p in list_profiles() if is_packaged(p)]
    roots: dict[Path, list[str]] = {}
    for p in profiles:  # a derived profile's vectors never go into the repository
        roots.setdefault(out or (suite_root() if is_packaged(p) else derived_dir() / "vectors"), []).append(p)
    for root, names in roots.items():
        n = gen(names, root, suite=suite)
        typer.echo(f"{n} cases of {', '.join(names)} written under {root}")


@app.command()
def verify(
    root: Optional[Path] = typer.Option(None, "--root", help="Suite root (default: the canonical suite)."),
    regenerate: bool = typer.Option(False, "--regenerate", help="Also re-run the encoder grid and compare inputs (reported, not failed)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check every file against the manifest and that the reference recomputes the expected values byte for byte."""
    r = verify_suite(root or suite_root(), regenerate=regenerate, echo=(lambda *a, **k: None) if as_json else typer.echo)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        raise typer.Exit(1 if r["manifest"] or r["expected"] else 0)
    typer.echo(f"{r['cases']} cases; manifest: {len(r['manifest'])} problem(s); expected values: "
               f"{len(r['expected'])} differ")
    for p in r["manifest"][:20] + r["expected"][:20]:
        typer.echo(f"  {p}")
    if r["inputs"] is not None:
        if r["inputs"]:
            typer.echo(f"regeneration: {len(r['inputs'])} file(s) differ (the libopus encoder may differ across CPUs):")
            for p in r["inputs"][:20]:
                typer.echo(f"  {p}")
        else:
            typer.echo("regeneration: every file came back identical")
    if r["manifest"] or r["expected"]:
        raise typer.Exit(1)


@app.command()
def export(
    official: Path = typer.Option(..., "--official", help="Folder to write vector1..8 into (libopus' layout)."),
    profile: str = typer.Option("libopus-1.6.1", "--profile", help="A profile whose build has fargan_demo -dred-decoding."),
    count: int = typer.Option(8, "--count", help="How many vectors (1..8)."),
) -> None:
    """Write vectors in the layout of libopus' tests/dred_vectors.sh."""
    files = export_official(official, profile, count=count)
    typer.echo(f"{len(files)} files written to {official}")


@app.command("list")
def list_(
    root: Optional[Path] = typer.Option(None, "--root"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Count the cases per profile, handler and suite."""
    base = root or suite_root()
    counts: dict[str, int] = {}
    for d in iter_case_dirs(base):
        key = "/".join(d.relative_to(base).parts[:3])
        counts[key] = counts.get(key, 0) + 1
    if as_json:
        typer.echo(json.dumps(counts, indent=1, sort_keys=True))
        return
    for k, v in sorted(counts.items()):
        typer.echo(f"{v:5d}  {k}")
    typer.echo(f"{sum(counts.values()):5d}  total")
