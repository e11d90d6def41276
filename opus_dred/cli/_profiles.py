"""``opus-dred profiles``: list, show and compare bitstream profiles."""

from __future__ import annotations

import json

import typer

from opus_dred.bitstream._profiles import ProfileError, diff_profiles, get_profile, list_profiles

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
            typer.echo(f"{r['name']:<18} version {r['dred_version']:<3} prefix {r['experimental_prefix']}  "
                       f"latent {r['latent_dim']}{'+q' if r['has_q_feature'] else '  '} state {r['state_dim']:<3} "
                       f"ext {r['extension_syntax']:<3} pack {r['model_pack']}")


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
    if d["model_pack"]:
        typer.echo(f"  model     {d['model_pack']['a']} -> {d['model_pack']['b']}")
    for k, t in d["tables"].items():
        if t["equal"]:
            typer.echo(f"  table     {k:<20} equal")
            continue
        mad = "" if t["max_abs_diff"] is None else f", max |diff| {t['max_abs_diff']}"
        typer.echo(f"  table     {k:<20} {t['a']['shape']} {t['a']['sha256'][:12]} -> "
                   f"{t['b']['shape']} {t['b']['sha256'][:12]}{mad}")
