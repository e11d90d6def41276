"""``opus-dred models``: list, show, verify and extract model packs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from opus_dred.libopus._upstream import source_for_pack
from opus_dred.models._extract import ExtractError, extract
from opus_dred.models._pack import PackError, list_packs, load_pack, verify_against_source, write_pack

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Model packs: RDO-VAE weights and DRED statistics tables.")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def _summary(p) -> dict:
    src = p.source
    return {
        "id": p.id,
        "path": str(p.path),
        "release": src.get("release"),
        "dred_version": src.get("dred_experimental_version"),
        "model_hash": src.get("model_hash"),
        "arrays": len(p.manifest["arrays"]),
        "layers": len(p.manifest["layers"]),
        "latent_dim": p.constants.get("DRED_LATENT_DIM"),
        "state_dim": p.constants.get("DRED_STATE_DIM"),
    }


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the packs found (packaged and in $OPUS_DRED_PACKS_PATH)."""
    rows = []
    for pid in list_packs():
        try:
            rows.append(_summary(load_pack(pid)))
        except PackError as exc:
            rows.append({"id": pid, "error": str(exc)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        if "error" in r:
            typer.echo(f"{r['id']:<20} ERROR {r['error']}")
        else:
            typer.echo(f"{r['id']:<20} libopus {r['release']:<8} DRED v{r['dred_version']:<3} latent {r['latent_dim']:<3} "
                       f"state {r['state_dim']:<3} {r['arrays']} arrays, {r['layers']} layers  {r['path']}")


@app.command("show")
def show_cmd(pack_id: str = typer.Argument(..., help="Pack id, e.g. libopus-1.6.1, or a pack directory."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON (the whole manifest).")) -> None:
    """Show a pack: source, licence, constants, layers, arrays (dtype, shape, sha256)."""
    try:
        p = load_pack(pack_id)
    except PackError as exc:
        _fail(exc)
    if as_json:
        out = dict(p.manifest)
        out["path"] = str(p.path)
        typer.echo(json.dumps(out, indent=2))
        return
    m = p.manifest
    typer.echo(f"pack      {p.id}  ({p.path})")
    typer.echo(f"about     {m.get('description', '')}")
    for k, v in m["source"].items():
        if k != "files":
            typer.echo(f"source    {k}: {v}")
    lic = m["licence"]
    typer.echo(f"licence   {lic.get('statement')}")
    typer.echo(f"          Copyright {lic.get('copyright_years')} {', '.join(lic.get('copyright_holders', []))}")
    typer.echo("constants " + ", ".join(f"{k}={v}" for k, v in m["constants"].items()))
    typer.echo(f"layers ({len(m['layers'])}):")
    for name, L in m["layers"].items():
        if L.get("kind") == "linear":
            used = [L[k] for k in ("weights", "float_weights", "weights_idx", "bias", "subias", "scale", "diag") if L.get(k)]
            typer.echo(f"  {name:<24} linear {L['nb_inputs']:>5} -> {L['nb_outputs']:<5} {' '.join(used)}")
        else:
            typer.echo(f"  {name:<24} {L.get('kind')}")
    typer.echo(f"arrays ({len(m['arrays'])}):")
    for e in m["arrays"]:
        cond = f"  [{' && '.join(e['conditional'])}]" if e.get("conditional") else ""
        typer.echo(f"  {e['name']:<36} {e['dtype']:<8} {str(e['shape']):<9} {e['sha256'][:16]}…{cond}")


@app.command("verify")
def verify_cmd(
    pack_ids: Optional[list[str]] = typer.Argument(None, help="Pack ids (default: every pack found)."),
    against_source: bool = typer.Option(False, "--against-source",
                                        help="Also re-extract from the pinned release sources and compare."),
    source: Optional[Path] = typer.Option(None, "--source",
                                          help="libopus source tree or release tarball to compare with "
                                               "(default: the upstream manager's tree of the pack's release)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check every array's sha256 against the manifest (and optionally against the release sources)."""

    ids = pack_ids or list_packs()
    results = []
    ok = True
    for pid in ids:
        r: dict = {"id": pid}
        try:
            p = load_pack(pid)
            p.verify()
            r["manifest"] = "ok"
            if against_source or source is not None:
                diffs = verify_against_source(p, source if source is not None else source_for_pack(p))
                r["source"] = "ok" if not diffs else "differs"
                r["differences"] = diffs
                ok &= not diffs
        except PackError as exc:
            r["error"] = str(exc)
            ok = False
        results.append(r)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                typer.echo(f"{r['id']:<20} FAIL  {r['error']}")
                continue
            line = f"{r['id']:<20} manifest ok"
            if "source" in r:
                line += f", source {r['source']}"
            typer.echo(line)
            for d in r.get("differences", []):
                typer.echo(f"    {d}")
    if not ok:
        raise typer.Exit(1)


@app.command("extract")
def extract_cmd(
    src: Path = typer.Argument(..., help="libopus source tree or release tarball."),
    pack_id: str = typer.Option(..., "--id", help="Id of the new pack, e.g. libopus-1.6.1."),
    out: Path = typer.Option(..., "--out", help="Directory to write <id>/ into."),
    release: Optional[str] = typer.Option(None, help="Release label (default: the tree's package_version)."),
) -> None:
    """Extract a pack from a libopus source tree or release tarball."""

    try:
        ex = extract(src, release=release)
        d = write_pack(out, pack_id, ex)
        load_pack(d, verify=True)
    except (ExtractError, PackError) as exc:
        _fail(exc)
    typer.echo(f"wrote {d} ({len(ex.arrays)} arrays, {len(ex.layers)} layers, DRED v{ex.source['dred_experimental_version']})")
