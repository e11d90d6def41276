"""``opus-dred profiles``: list, show, compare and derive bitstream profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from opus_dred.bitstream._profiles import PACKAGED_DIR, ProfileError, diff_profiles, get_profile, list_profiles
from opus_dred.errors import OpusDredError
from opus_dred.libopus._upstream import derive_source
from opus_dred.libopus._derive import write_derivation

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Bitstream profiles: DRED variants and their constants.")


def _get(name: str):
    try:
        return get_profile(name)
    except ProfileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the profiles (packaged and in $OPUS_DRED_PROFILES_PATH)."""
    rows = []
    for n in list_profiles():
        try:
            rows.append(get_profile(n).to_json())
        except ProfileError as exc:
            rows.append({"name": n, "error": str(exc)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        if "error" in r:
            typer.echo(f"{r['name']:<18} ERROR {r['error']}")
        else:
            origin = "packaged" if r["source"] and Path(r["source"]).parent == PACKAGED_DIR else "derived"
            typer.echo(f"{r['name']:<18} version {r['dred_version']:<3} prefix {r['experimental_prefix']}  "
                       f"latent {r['latent_dim']}{'+q' if r['has_q_feature'] else '  '} state {r['state_dim']:<3} "
                       f"ext {r['extension_syntax']:<3} bound {r['chunk_bound']:<14} pack {r['model_pack']:<14} "
                       f"{origin}")


@app.command("show")
def show_cmd(name: str = typer.Argument(..., help="Profile name, e.g. libopus-1.6.1."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a profile's constants."""
    p = _get(name)
    d = p.to_json()
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    for k, v in d.items():
        if k == "notes":
            for n in v:
                typer.echo(f"{'note':<20} {n}")
        else:
            typer.echo(f"{k:<20} {v}")


@app.command("diff")
def diff_cmd(a: str = typer.Argument(...), b: str = typer.Argument(...),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """What differs between two profiles: constants, statistics tables, model pack, payload layout."""
    pa, pb = _get(a), _get(b)
    try:
        d = diff_profiles(pa, pb)
    except ProfileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    typer.echo(f"{a} -> {b}" + ("  (identical)" if d["identical"] else ""))
    for k, v in d["constants"].items():
        typer.echo(f"  constant  {k:<20} {v['a']} -> {v['b']}")
    for k, v in d["payload_layout"].items():
        typer.echo(f"  layout    {k:<20} {v['a']} -> {v['b']}")
    for k, v in d["rules"].items():
        typer.echo(f"  rule      {k:<20} {v['a']} -> {v['b']}  ({v['summary']})")
        typer.echo(f"            {'':<20} {v['a']}: {v['a_means']}")
        typer.echo(f"            {'':<20} {v['b']}: {v['b_means']}")
        f = v.get("figures")
        if f:
            ex = f["example"]
            typer.echo(f"            {'':<20} differ at {f['differ']} of {f['points']} points ({f['grid']}); "
                       f"request not covered: {v['a']} {f['short'][v['a']]}, {v['b']} {f['short'][v['b']]}")
            if ex:
                typer.echo(f"            {'':<20} e.g. {ex['request_ms']:g} ms at dred_offset {ex['dred_offset']}: "
                           f"{v['a']} reads {ex[v['a']]} chunk(s), {v['b']} {ex[v['b']]}; "
                           f"{ex['fewest_covering']} cover the request")
    if d["model_pack"]:
        typer.echo(f"  model     {d['model_pack']['a']} -> {d['model_pack']['b']}")
    for k, t in d["tables"].items():
        if t["equal"]:
            typer.echo(f"  table     {k:<20} equal")
            continue
        mad = "" if t["max_abs_diff"] is None else f", max |diff| {t['max_abs_diff']}"
        typer.echo(f"  table     {k:<20} {t['a']['shape']} {t['a']['sha256'][:12]} -> "
                   f"{t['b']['shape']} {t['b']['sha256'][:12]}{mad}")


@app.command("derive")
def derive_cmd(
    source: Path = typer.Argument(..., help="A libopus tree (release, git checkout, a draft's reference tree) or "
                                  "tarball."),
    name: Optional[str] = typer.Option(None, "--name", help="Profile name (default: libopus-<package_version>)."),
    chunk_bound: Optional[str] = typer.Option(None, "--chunk-bound", help="Name the chunk-bound rule by hand "
                                              "(for a tree whose statements match no known variant)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what was derived; write nothing."),
    force: bool = typer.Option(False, "--force", help="Replace a different derived profile of the same name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Derive a profile (and a model pack) from a libopus source by reading its headers and data files; write
    them to the derived area (never the repository), where list, show, diff and the vector generator find
    them."""
    try:
        d = derive_source(source, name=name, chunk_bound=chunk_bound)
        out = {"profile": None, "pack": None, "matches": None} if dry_run else write_derivation(d, force=force)
    except OpusDredError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    res = {"name": d.name, "description": d.profile, "pack_reused": d.pack_reused,
           "findings": [f.__dict__ for f in d.findings],
           "written": {k: (str(v) if v is not None else None) for k, v in out.items()}}
    if as_json:
        typer.echo(json.dumps(res, indent=2, default=str))
        return
    typer.echo(f"{d.name}: derived from {source}")
    for f in d.findings:
        typer.echo(f"  {f.note()}")
    typer.echo(f"  model pack {d.pack_id} ({'an existing pack' if d.pack_reused else 'extracted'})")
    if out["matches"]:
        typer.echo(f"the tree matches the packaged profile {out['matches']}: nothing written")
    elif out["profile"]:
        typer.echo(f"written: {out['profile']}" + (f", pack {out['pack']}" if out["pack"] else ""))
