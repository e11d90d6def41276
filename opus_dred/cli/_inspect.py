"""``opus-dred inspect``: what a .bit file, a DRED-only stream, an Ogg Opus file, raw packets or a hex packet hold.

Only the bitstream layer is imported here (no JAX): the command starts in well under a second.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._formats import FORMATS, StreamInput, load_input
from opus_dred.bitstream._inspect import inspect_bytes
from opus_dred.bitstream._profiles import ProfileError, get_profile

#: files with more items than this get a progress bar (on a terminal only)
PROGRESS_MIN_ITEMS = 2000


def _load(file: str, fmt: Optional[str]) -> StreamInput:
    try:
        return load_input(file, fmt)
    except ValueError:
        raise typer.BadParameter(f"{file} is neither a file nor a packet in hex", param_hint="FILE") from None


def format_error(e: dict) -> str:
    """An error dict (:meth:`~opus_dred.bitstream._errors.BitstreamError.to_dict`) in one line: class,
    message, byte/bit offset, rule."""
    where = []
    if e.get("byte_offset") is not None:
        where.append(f"byte {e['byte_offset']}")
    if e.get("bit_offset") is not None:
        where.append(f"bit {e['bit_offset']}")
    rule = f" [{e['rule']}]" if e.get("rule") else ""
    return f"{e['error']}: {e['message']}" + (f" at {', '.join(where)}" if where else "") + rule


def _exts(p: dict) -> str:
    parts = []
    for e in p["extensions"][:6]:
        rep = "r" if e["repeated"] else ""
        parts.append(f"{e['id']}@{e['frame']}{rep}:{e['length']}B")
    more = len(p["extensions"]) - 6
    return " ".join(parts) + (f" +{more}" if more > 0 else "")


def inspect(
    file: str = typer.Argument(..., help="An opus_demo .bit file, a DRED-only stream, an Ogg Opus file, a raw packet file, a folder of *.bin packets, or one packet in hex."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Profile (default: from the DRED version byte)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help=f"{' | '.join(FORMATS)} (default: detected)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole inspection as JSON."),
    bits: bool = typer.Option(False, "--bits", help="Show the bit-level view: TOC, frame-count byte, extension ID bytes, payload bits."),
    limit: int = typer.Option(200, "--limit", help="Rows of the per-packet table (0: summary only; -1: all)."),
    fields: bool = typer.Option(False, "--fields", help="Show each DRED field's bit positions (with --bits: always)."),
) -> None:
    """Per packet: TOC, frames, padding, extensions, DRED header and coverage in ms; then a summary table.

    Errors are shown per packet with their byte/bit offset and the rule violated; a file that breaks off
    is read up to that point.
    """

    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        inp = _load(file, fmt)
    except BitstreamError as exc:  # a folder without packets
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    name = inp.name
    if profile is not None:
        try:
            get_profile(profile)
        except ProfileError as exc:
            raise typer.BadParameter(str(exc), param_hint="--profile") from None

    progress = None
    bar = None
    if not as_json and sys.stderr.isatty():
        from rich.progress import Progress

        state: dict = {}

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if total < PROGRESS_MIN_ITEMS:
                return
            if bar is None:
                bar = Progress(transient=True)
                bar.start()
                state["task"] = bar.add_task(f"inspect {name}", total=total)
            if done % 256 == 0 or done == total:
                bar.update(state["task"], completed=done)

    try:
        res = inspect_bytes(inp.data, name=name, profile=profile, fmt=inp.fmt, bits=bits, progress=progress,
                            packets=inp.packets)
    except BitstreamError as exc:  # not expected: inspect_bytes records errors; never show a traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        typer.echo(json.dumps(res.to_json()))
        raise typer.Exit(1 if res.error and not res.items else 0)
    _print(res, limit=limit, bits=bits, fields=fields or bits)
    if res.error and not res.items:
        raise typer.Exit(1)


def _print(res, *, limit: int, bits: bool, fields: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console()
    if not c.is_terminal:
        c = Console(width=200)  # a pipe or a file: do not fold the rows at 80 columns
    j = res.to_json()
    items = j["items"]
    shown = items if limit < 0 else items[:limit]
    c.print(f"[bold]{res.name}[/bold]: {res.format}, {res.size} bytes, profile {res.profile or 'none'}"
            f" ({res.profile_source})")
    if res.header:
        h = res.header
        c.print(f"OpusHead: {h['channels']} ch, pre-skip {h['pre_skip']}, input rate {h['input_sample_rate']} Hz, "
                f"gain {h['output_gain']}, mapping {h['mapping_family']}; {h['pages']} pages"
                + (f", vendor {h['vendor']!r}" if h.get("vendor") else ""))
    if res.format == "dred" and shown:
        t = Table(title="DRED-only records")
        for col in ("#", "offset", "q0", "chunks", "bytes", "latents", "coverage ms", "bits used", "error"):
            t.add_column(col, justify="right" if col not in ("error",) else "left")
        for r in shown:
            t.add_row(str(r["index"]), str(r["offset"]), str(r["q0"]), str(r["nb_chunks"]), str(r["nb_bytes"]),
                      str(r["nb_latents"]), f"{r['coverage_ms']:g}", str(r["end_tell"]),
                      format_error(r["error"]) if r["error"] else "")
        c.print(t)
    elif shown:
        t = Table(title="packets")
        for col in ("#", "offset", "bytes", "TOC", "frames", "pad", "extensions", "DRED", "cover ms", "error"):
            t.add_column(col, justify="right" if col in ("#", "offset", "bytes", "pad", "cover ms") else "left")
        for p in shown:
            toc = p["toc"]
            if p["lost"]:
                tocs = "lost"
            elif toc and "mode" in toc:
                tocs = f"c{toc['config']} {toc['mode']} {toc['bandwidth']} {toc['frame_ms']:g}ms{' st' if toc['stereo'] else ''} #{toc['code']}"
            elif toc:
                tocs = f"0x{toc['byte']:02x}"
            else:
                tocs = ""
            fr = p["frames"]
            frs = f"{fr['count']}{' vbr' if fr['vbr'] else ''} {fr['sizes'] if fr['count'] <= 4 else ''}" if fr else ""
            d = p["dred"]
            if d and d.get("found") and "q0" in d:
                ds = (f"v{d['version']} f{d['frame']} q0={d['q0']} dQ={d['dq']} qmax={d['qmax']} "
                      f"off={d['dred_offset']} n={d['nb_latents']} ({d['payload_bytes']}B)")
                cov = f"{d['coverage_ms']:g}"
            elif d and d.get("note"):
                ds, cov = d["note"], ""
            else:
                ds, cov = "", ""
            errs = [x for x in (p["error"], p["extension_error"]) if x]
            t.add_row(str(p["index"]), "" if p["offset"] is None else str(p["offset"]), str(p["length"]), tocs,
                      frs, str(p["padding"]["length"]) if p["padding"] else "", _exts(p), ds, cov,
                      "; ".join(format_error(e) for e in errs))
        c.print(t)
        if bits or fields:
            for p in shown:
                b = p.get("bits") or {}
                d = p["dred"] or {}
                if not b and not d.get("fields"):
                    continue
                c.print(f"[bold]packet {p['index']}[/bold]")
                if b.get("toc"):
                    c.print(f"  TOC            {b['toc']}   (config:5 s:1 c:2)")
                if b.get("count_byte"):
                    c.print(f"  frame count    {b['count_byte']}   (v p M:6)")
                if b.get("padding_chain"):
                    c.print(f"  padding length {' '.join(b['padding_chain'])}")
                for e in p["extensions"]:
                    if e.get("id_byte_bits"):
                        c.print(f"  ext id byte    {e['id_byte_bits']}   (id {e['id']} L {e.get('L')}) at byte {e['id_offset']}")
                if b.get("dred_payload"):
                    c.print(f"  DRED bits      {b['dred_payload']}…")
                if fields and d.get("fields"):
                    c.print("  DRED fields    " + ", ".join(f"{n} [{a},{z})" for n, a, z in d["fields"]))
    if len(items) > len(shown):
        c.print(f"… {len(items) - len(shown)} more (use --limit -1 or --json)")
    s = j["summary"]
    t = Table(title="summary", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    for k, v in s.items():
        if k == "configs":
            v = ", ".join(f"{name} ×{n}" for name, n in v.items()) or "—"
        elif isinstance(v, float):
            v = f"{v:.1f}"
        t.add_row(k.replace("_", " "), str(v))
    c.print(t)
    if res.error:
        c.print(f"[red]file error[/red]: {format_error(j['error'])}"
                + (f" (the {len(items)} items before it are shown)" if items else ""))


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
