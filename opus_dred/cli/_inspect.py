"""``opus-dred inspect``: what a .bit file, a DRED-only stream, an Ogg Opus file, raw packets, a hex packet or a
packet capture (pcap/pcapng of RTP) hold.

Only the bitstream layer and accel's numpy DRED reader are imported here (no JAX): the command starts in well
under a second. A capture's records are scanned, and its DRED payloads read, in worker processes (one per core,
``--workers``) by :func:`batched_dred_reader`: :func:`~opus_dred.accel._bitstream.locate_dred_payloads` and
:func:`~opus_dred.accel._bitstream.read_dred_payloads`, chunk by chunk.

The capture options (``--pt``, ``--sdp``, ``--ssrc``, ``--port``) and the warning lines are shared with
``decode``, ``conform`` and ``simulate`` (:func:`capture_options`, :func:`print_warnings`), so every command
names a capture's problems alike.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from opus_dred.accel import _native
from opus_dred.accel._bitstream import read_dred_packets, read_dred_payloads
from opus_dred.bitstream import _errors as bitstream_errors
from opus_dred.bitstream._arith import extra_offset_to_code
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import find_dred_extension
from opus_dred.bitstream._formats import CAPTURE_FORMATS, FORMATS, StreamInput, detect_format, load_input
from opus_dred.bitstream._inspect import inspect_bytes
from opus_dred.bitstream._profiles import Profile, ProfileError, get_profile

#: files with more items than this get a progress bar (on a terminal only)
PROGRESS_MIN_ITEMS = 2000
#: DRED payloads per chunk of the batched reader (numpy lanes; ~4096 is where a lane costs least here)
DRED_CHUNK = 4096
#: captures with fewer records than this are read in this process (a pool costs more than it saves)
POOL_MIN_BYTES = 2_000_000


# ------------------------------------------------------------------------------------------------
# shared with decode, conform and simulate: capture options, warnings, worker pools


def capture_options(pt: Optional[int] = None, sdp: Optional[Path] = None, ssrc: Optional[str] = None,
                    port: Optional[int] = None):
    """:class:`~opus_dred.bitstream._capture.CaptureOptions` from the command-line options (``--ssrc`` in
    decimal or ``0x`` hex); a bad value is a usage error naming the option."""
    from opus_dred.bitstream._capture import CaptureOptions  # lazy: dpkt takes ~60 ms to import
    from opus_dred.bitstream._rtp import parse_sdp  # lazy: with the capture reader

    if pt is not None and not 0 <= pt < 128:
        raise typer.BadParameter("a payload type is 0..127", param_hint="--pt")
    if port is not None and not 0 < port < 65536:
        raise typer.BadParameter("a UDP port is 1..65535", param_hint="--port")
    info = None
    if sdp is not None:
        try:
            info = parse_sdp(Path(sdp).read_text(errors="replace"))
        except OSError as exc:
            raise typer.BadParameter(f"{sdp}: {exc.strerror or exc}", param_hint="--sdp") from None
        if not info.opus and not info.red:
            raise typer.BadParameter(f"{sdp} names no opus/48000 payload type (a=rtpmap)", param_hint="--sdp")
    value = None
    if ssrc is not None:
        try:
            value = int(ssrc, 0)
        except ValueError:
            raise typer.BadParameter(f"{ssrc!r} is not a number (decimal or 0x hex)", param_hint="--ssrc") from None
        if not 0 <= value < 1 << 32:
            raise typer.BadParameter("an SSRC is 32 bits", param_hint="--ssrc")
    return CaptureOptions(pt=pt, sdp=info, ssrc=value, port=port)


def format_warning(w: dict) -> str:
    """A warning dict (:meth:`~opus_dred.bitstream._rtp.CaptureWarning.to_dict`) in one line, as errors are."""
    return format_error(w)


def print_warnings(warnings) -> None:
    """Each warning of a capture on stderr, ``warning: <class>: <message> at byte N [rule]``."""
    for w in warnings:
        d = w if isinstance(w, dict) else w.to_dict()
        typer.echo(f"warning: {format_warning(d)}", err=True)


def worker_count(workers: int) -> int:
    """``--workers``: 0 means one per core."""
    return workers if workers > 0 else max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def pool_map(workers: int, size: int = POOL_MIN_BYTES):
    """A ``map`` over ``workers`` processes (forked: nothing here has threads or JAX), or the builtin ``map`` for
    one worker or an input under :data:`POOL_MIN_BYTES`."""
    n = worker_count(workers)
    if n == 1 or size < POOL_MIN_BYTES:
        yield map
        return
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as ex:
        yield ex.map


# ------------------------------------------------------------------------------------------------
# the batched DRED reader of captures

_ERROR_CLASSES = {name: getattr(bitstream_errors, name) for name in dir(bitstream_errors)
                  if isinstance(getattr(bitstream_errors, name), type)
                  and issubclass(getattr(bitstream_errors, name), BitstreamError)}


def _error_of(d: dict) -> BitstreamError:
    cls = _ERROR_CLASSES.get(d["error"], BitstreamError)
    return cls(d["message"], byte_offset=d["byte_offset"], bit_offset=d["bit_offset"], rule=d["rule"],
               profile=d["profile"])


def _locate_each(packets: list[bytes], prof: Profile):
    """Each packet through :func:`~opus_dred.bitstream._extensions.find_dred_extension` (when the lean batch
    locator stops at a packet's error): ``(payloads, frame offsets, payload offsets, found, errors)``."""
    n = len(packets)
    pay, fo, po = [b""] * n, np.zeros(n, np.int64), np.zeros(n, np.int64)
    found = np.zeros(n, bool)
    errors = []
    for k, p in enumerate(packets):
        try:
            loc = find_dred_extension(p, prof)
        except BitstreamError as exc:
            errors.append((k, exc.to_dict()))
            continue
        if loc is not None:
            pay[k], fo[k], po[k], found[k] = loc.payload, loc.dred_frame_offset, loc.payload_offset, True
    return pay, fo, po, found, errors


def read_dred_chunk(args: tuple[str, list[bytes]]) -> dict:
    """One chunk of packets of one profile: located (:func:`~opus_dred.accel._bitstream.locate_dred_payloads`,
    or packet by packet where a packet has an error) and read by the numpy lanes; plain arrays back (a worker
    process may run it)."""
    name, packets = args
    prof = get_profile(name)
    b = None
    try:
        loc, b = read_dred_packets(packets, prof)
        pay, fo, po, found, errors = loc.payload, loc.dred_frame_offset, loc.payload_offset, loc.found, []
    except BitstreamError:
        pay, fo, po, found, errors = _locate_each(packets, prof)
    ids = np.flatnonzero(found)
    out = {"ids": ids, "fo": fo[ids], "po": po[ids], "bytes": np.array([len(pay[i]) for i in ids], np.int64),
           "errors": errors}
    if len(ids):
        if b is None:
            b = read_dred_payloads([pay[i] for i in ids], prof, dred_frame_offset=fo[ids])
        out.update(q0=b.q0, dq=b.dQ, qmax=b.qmax, ext=b.extended_offset, extra=extra_offset_to_code(b.extra_offset),
                   off=b.offset, dred_offset=b.dred_offset, nb=b.nb_latents, tell=b.end_tell)
    return out


def batched_dred_reader(map=map, chunk: int = DRED_CHUNK, native: bool | None = None):
    """A :data:`~opus_dred.bitstream._capture_inspect.DredReader` that reads chunks of ``chunk`` packets with
    :func:`read_dred_chunk` through ``map`` (a process pool's, to use every core): the same columns as
    :func:`~opus_dred.bitstream._capture_inspect.scalar_dred_reader` (``tests/test_capture.py`` checks it).
    Where accel's native kernel builds (``native=None``: its default) every packet is read in one call in this
    process instead."""
    if native is None:
        native = _native.library() is not None

    def reader(packets, profile: Profile):
        from opus_dred.bitstream._capture_inspect import DredColumns  # lazy: dpkt takes ~60 ms to import

        out = DredColumns.empty(len(packets))
        have = [k for k, p in enumerate(packets) if p is not None]
        # the native kernel reads every packet in one call on this process' threads: no chunks, no pool
        step, pmap = (max(1, len(have)), builtins.map) if native else (chunk, map)
        parts = [have[a:a + step] for a in range(0, len(have), step)]
        for part, res in zip(parts, pmap(read_dred_chunk, [(profile.name, [packets[k] for k in part])
                                                          for part in parts])):
            where = np.asarray(part, np.int64)
            for k, d in res["errors"]:
                out.error[where[k]] = True
                out.errors.append((int(where[k]), _error_of(d)))
            ids = where[res["ids"]]
            if not len(ids):
                continue
            out.found[ids] = True
            out.dred_frame_offset[ids] = res["fo"]
            out.payload_offset[ids] = res["po"]
            out.payload_bytes[ids] = res["bytes"]
            for col, key in (("q0", "q0"), ("dq", "dq"), ("qmax", "qmax"), ("extended_offset", "ext"),
                             ("extra", "extra"), ("off", "off"), ("dred_offset", "dred_offset"),
                             ("nb_latents", "nb"), ("end_tell", "tell")):
                getattr(out, col)[ids] = res[key]
        out.errors.sort(key=lambda e: e[0])
        return out

    return reader


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


def _esc(text: str) -> str:
    """``text`` for rich's markup: a rule in brackets (``[pcap: snaplen]``) is printed, not read as a style."""
    from rich.markup import escape

    return escape(text)


def _exts(p: dict) -> str:
    parts = []
    for e in p["extensions"][:6]:
        rep = "r" if e["repeated"] else ""
        parts.append(f"{e['id']}@{e['frame']}{rep}:{e['length']}B")
    more = len(p["extensions"]) - 6
    return " ".join(parts) + (f" +{more}" if more > 0 else "")


def inspect(
    file: str = typer.Argument(..., help="An opus_demo .bit file, a DRED-only stream, an Ogg Opus file, a pcap/pcapng capture of RTP, a raw packet file, a folder of *.bin packets, or one packet in hex."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Profile (default: from the DRED version byte)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help=f"{' | '.join(FORMATS)} (default: detected)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole inspection as JSON."),
    bits: bool = typer.Option(False, "--bits", help="Show the bit-level view: TOC, frame-count byte, extension ID bytes, payload bits."),
    limit: int = typer.Option(200, "--limit", help="Rows of the per-packet table (0: summary only; -1: all)."),
    fields: bool = typer.Option(False, "--fields", help="Show each DRED field's bit positions (with --bits: always)."),
    pt: Optional[int] = typer.Option(None, "--pt", help="Capture: the RTP payload type of the Opus packets (default: the SDP's, or detected)."),
    sdp: Optional[Path] = typer.Option(None, "--sdp", help="Capture: a session description whose a=rtpmap names the Opus (and RED) payload types."),
    ssrc: Optional[str] = typer.Option(None, "--ssrc", help="Capture: report only this SSRC (decimal or 0x hex; default: every Opus stream)."),
    port: Optional[int] = typer.Option(None, "--port", help="Capture: only UDP datagrams to or from this port."),
    bucket: float = typer.Option(1.0, "--bucket", help="Capture: seconds of media time per row of the DRED coverage timeline."),
    workers: int = typer.Option(1, "--workers", help="Capture: processes scanning the records (1: this process, the fastest on 2 shared cores, where the DRED is read on threads; 0: one per core)."),
) -> None:
    """Per packet: TOC, frames, padding, extensions, DRED header and coverage in ms; then a summary table.

    A capture (pcap/pcapng of RTP over UDP) is reported per Opus stream (SSRC): packets, losses, duplicates,
    reordering, jitter, DRED coverage over time, and every run of lost packets with whether the DRED (and RED)
    of the packet after it could have covered it.

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
    if inp.packets is None and (inp.fmt or _sniff(inp)) in CAPTURE_FORMATS:
        if bucket <= 0:
            raise typer.BadParameter("must be more than 0", param_hint="--bucket")
        opts = capture_options(pt, sdp, ssrc, port)
        _inspect_capture(inp, profile=profile, options=opts, as_json=as_json, bits=bits, limit=limit,
                         fields=fields or bits, bucket=bucket, workers=workers)
        return

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
                      _esc(format_error(r["error"])) if r["error"] else "")
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
                      _esc("; ".join(format_error(e) for e in errs)))
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
        c.print(f"[red]file error[/red]: {_esc(format_error(j['error']))}"
                + (f" (the {len(items)} items before it are shown)" if items else ""))


def _sniff(inp: StreamInput) -> str | None:
    try:
        return detect_format(inp.data, inp.name)
    except BitstreamError:
        return None


# ------------------------------------------------------------------------------------------------
# captures


def inspect_capture_file(data: bytes, *, name: str, profile=None, options=None, detail: int = 200,
                         bits: bool = False, bucket: float = 1.0, workers: int = 0):
    """:func:`~opus_dred.bitstream._capture_inspect.inspect_capture` as the command runs it: records scanned and
    DRED read by ``workers`` processes (:func:`pool_map`), DRED by :func:`batched_dred_reader`. Raises the
    capture's typed errors; :class:`~opus_dred.bitstream._rtp.NotOpusError` when no stream is Opus."""
    from opus_dred.bitstream._capture import read_capture, require_opus  # lazy: dpkt takes ~60 ms to import
    from opus_dred.bitstream._capture_inspect import inspect_capture  # lazy: with the capture reader

    with pool_map(workers, len(data)) as pmap:
        cap = read_capture(data, options, map=pmap)
        require_opus(cap)
        return inspect_capture(data, name=name, profile=profile, options=options, detail=detail, bits=bits,
                               dred_reader=batched_dred_reader(pmap), bucket_s=bucket, capture=cap)


def _inspect_capture(inp: StreamInput, *, profile, options, as_json: bool, bits: bool, limit: int, fields: bool,
                     bucket: float, workers: int) -> None:
    try:
        res = inspect_capture_file(inp.data, name=inp.name, profile=profile, options=options,
                                   detail=-1 if limit < 0 else limit, bits=bits, bucket=bucket, workers=workers)
    except BitstreamError as exc:
        if as_json:
            typer.echo(json.dumps({"name": inp.name, "format": inp.fmt or _sniff(inp), "size": len(inp.data),
                                   "error": exc.to_dict(), "warnings": [], "streams": [], "items": [],
                                   "packets": []}))
        else:
            typer.echo(f"error: {format_error(exc.to_dict())}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(res.to_json()))
        return
    _print_capture(res, limit=limit, bits=bits, fields=fields)


def _ms(v: float) -> str:
    return f"{v:g}"


def _print_capture(res, *, limit: int, bits: bool, fields: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console()
    if not c.is_terminal:
        c = Console(width=200)
    h = res.header
    c.print(f"[bold]{res.name}[/bold]: {res.format}, {res.size} bytes, {h['records']} records, {h['udp_datagrams']} "
            f"UDP, {h['rtp_packets']} RTP; link {', '.join(h['link_types'])}, snaplen {h['snaplen']}; "
            f"{h['span_s']:.3f} s; profile {res.profile or 'none'} ({res.profile_source})")
    t = Table(title="RTP streams (SSRC)")
    for col in ("SSRC", "from → to", "packets", "payload types", "Opus", "why"):
        t.add_column(col, justify="right" if col == "packets" else "left")
    for s in h["ssrcs"]:
        pts = ", ".join(f"{k}×{v}" for k, v in s["payload_types"].items())
        opus = "" if s["codec"] != "opus" else (f"pt {s['opus_pt']}" + (f", RED {s['red_pt']}" if s["red_pt"] else ""))
        t.add_row(s["ssrc_hex"], f"{s['src']} → {s['dst']}", str(s["packets"]), pts, opus, _esc(s["reason"]))
    c.print(t)
    for w in res.warnings:
        c.print(f"[yellow]warning[/yellow]: {_esc(format_warning(w))}")
    for st in res.streams:
        r = st.report
        d = r["dred"]
        loss = r["losses"]
        c.print(f"[bold]stream {r['ssrc_hex']}[/bold] ({r['src']} → {r['dst']}, pt {r['pt']}"
                + (f", RED {r['red_pt']}" if r["red_pt"] else "") + f", {r['profile'] or 'no DRED'}): "
                f"{r['packets']} packets, seq {r['first_seq']}..{r['last_seq']} (extended), {r['lost']} lost "
                f"({r['lost_percent']:.2f} %), {r['unusable']} unusable, {r['duplicates']} duplicated, "
                f"{r['reordered']} reordered, {r['seq_wraps']} seq / {r['ts_wraps']} timestamp wraps; "
                f"{r['frame_ms']:g} ms frames, {r['duration_s']:.2f} s; jitter {r['jitter_ms']:.2f} ms (max "
                f"{r['max_jitter_ms']:.2f}), delay p50/p95/max {r['delay_ms']['p50']:.1f}/{r['delay_ms']['p95']:.1f}/"
                f"{r['delay_ms']['max']:.1f} ms")
        c.print(f"  DRED in {d['packets']} packets ({100 * d['share']:.1f} %), {d['bytes']} bytes, coverage "
                f"{d['coverage_ms_mean']:.1f} ms mean ({_ms(d['coverage_ms_min'])}..{_ms(d['coverage_ms_max'])}), "
                f"available {d['available_ms_mean']:.1f} ms mean; {loss['runs']} loss runs ({loss['packets']} "
                f"packets, {loss['lost_ms']:g} ms): {loss['covered_full']} fully covered, {loss['covered_partial']} "
                f"partly, {loss['covered_none']} not; longest {loss['longest_run']} packets")
        runs = r["loss_runs"] if limit < 0 else r["loss_runs"][:limit]
        if runs:
            t = Table(title=f"loss runs of {r['ssrc_hex']}")
            for col in ("first seq", "t (s)", "lost", "ms", "next seq", "next frame", "DRED avail ms",
                        "DRED covers ms", "RED covers ms", "covered"):
                t.add_column(col, justify="left" if col == "covered" else "right")
            for x in runs:
                t.add_row(str(x["first_seq"]), f"{x['t_s']:.2f}", str(x["count"]), _ms(x["lost_ms"]),
                          "" if x["next_seq"] is None else str(x["next_seq"]),
                          "" if x["next_frame"] is None else str(x["next_frame"]), _ms(x["dred_available_ms"]),
                          _ms(x["dred_covered_ms"]), _ms(x["red_covered_ms"]), x["covered"])
            c.print(t)
            if len(r["loss_runs"]) > len(runs):
                c.print(f"… {len(r['loss_runs']) - len(runs)} more loss runs (use --limit -1 or --json)")
        tl = r["timeline"]
        if tl and limit != 0:
            # at most 24 rows: the buckets merged in groups
            group = max(1, -(-len(tl) // 24))
            t = Table(title=f"DRED coverage over media time of {r['ssrc_hex']} ({group * r['bucket_s']:g} s per row)")
            for col in ("t (s)", "packets", "lost", "with DRED", "coverage ms mean", "coverage ms min",
                        "available ms min"):
                t.add_column(col, justify="right")
            for a in range(0, len(tl), group):
                g = tl[a:a + group]
                w = sum(x["with_dred"] for x in g)
                mins = [x["coverage_ms_min"] for x in g if x["with_dred"]]
                avs = [x["available_ms_min"] for x in g if x["with_dred"]]
                t.add_row(f"{g[0]['t_s']:g}", str(sum(x["packets"] for x in g)), str(sum(x["lost"] for x in g)),
                          str(w), f"{sum(x['coverage_ms_mean'] * x['with_dred'] for x in g) / w:.1f}" if w else "—",
                          _ms(min(mins)) if mins else "—", _ms(min(avs)) if avs else "—")
            c.print(t)
        items = st.items if limit < 0 else st.items[:limit]
        if items:
            t = Table(title=f"packets of {r['ssrc_hex']}")
            for col in ("#", "frame", "arrival", "seq", "timestamp", "M", "bytes", "TOC", "DRED", "cover ms", "error"):
                t.add_column(col, justify="right" if col in ("#", "frame", "seq", "timestamp", "bytes", "cover ms")
                             else "left")
            for it, rtp in items:
                p = it.to_json()
                toc = p["toc"]
                tocs = (f"c{toc['config']} {toc['mode']} {toc['bandwidth']} {toc['frame_ms']:g}ms #{toc['code']}"
                        if toc and "mode" in toc else ("unusable" if p["lost"] else ""))
                dd = p["dred"] or {}
                ds = (f"q0={dd['q0']} dQ={dd['dq']} off={dd['dred_offset']} n={dd['nb_latents']}"
                      if dd.get("found") and "q0" in dd else "")
                errs = [x for x in (p["error"], p["extension_error"]) if x]
                t.add_row(str(p["index"]), str(rtp["frame"]), rtp["arrival"], str(rtp["seq"]), str(rtp["timestamp"]),
                          "M" if rtp["marker"] else "", str(p["length"]), tocs, ds,
                          _ms(dd["coverage_ms"]) if "coverage_ms" in dd else "",
                          _esc("; ".join(format_error(e) for e in errs)))
            c.print(t)
            if fields:
                for it, _ in items:
                    dd = it.dred or {}
                    if dd.get("fields"):
                        c.print(f"  packet {it.index}: " + ", ".join(f"{n} [{a},{z})" for n, a, z in dd["fields"]))
    s = res.summary()
    c.print("summary: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in s.items()))
    if res.error:
        c.print(f"[red]file error[/red]: {_esc(format_error(res.error))} (the packets before it are shown)")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
