"""``opus-dred conform``: run implementations against the test vectors and report where they depart.

A top-level command: the root CLI calls :func:`register`. See ``docs/conformance.md``.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import find_dred
from opus_dred.bitstream._formats import load_input, read_input
from opus_dred.cli._inspect import capture_options, format_error, pool_map, print_warnings
from opus_dred.conformance._adapters import adapter_names, make_adapter
from opus_dred.conformance._fingerprint import fingerprint_report
from opus_dred.conformance._report import print_summary, write_reports
from opus_dred.conformance._runner import run_suite
from opus_dred.vectors._expected import FEATURE_TOLERANCE
from opus_dred.vectors._format import Case, iter_cases, load_case, suite_root, write_case
from opus_dred.vectors._handlers import expected_for
from opus_dred.vectors._official import read_official

_OFFICIAL_RE = re.compile(r"^vector(\d+)_dred\.bit$")


def is_official_dir(path: Path) -> bool:
    """Whether ``path`` holds vectors in libopus' official layout (``vectorN_dred.bit`` …)."""
    return path.is_dir() and any(_OFFICIAL_RE.match(p.name) for p in path.iterdir())


def official_cases(path: Path, profile: str = "libopus-1.6.1") -> list[Any]:
    """Cases of handler ``dred_stream`` from an official-layout directory: ``vectorN_dred.bit`` (a DRED-only
    stream) against ``vectorN_dred_dec.f32`` (the features ``fargan_demo -dred-decoding`` must produce), judged
    as the libopus script judges them (``dred_compare -features -thresholds .5 .15 .02``). The vocoder and
    whole-decoder parts of the script (``vectorN_features.f32``, ``vectorN_opus.bit`` against
    ``vectorN_orig.sw``) need a vocoder and are not run here. The stream carries no version byte: ``profile``
    says which DRED version it is."""

    out = []
    for v in read_official(path):
        if v.dred_bit is None or v.dred_dec is None:
            continue
        out.append(Case(profile=profile, handler="dred_stream", suite="official", name=f"vector{v.n}", path=path,
                        description=f"official layout: vector{v.n}_dred.bit against vector{v.n}_dred_dec.f32",
                        inputs={"stream": v.dred_bit}, parameters={},
                        expected={"features": np.asarray(v.dred_dec, np.float32)},
                        tolerance=dict(FEATURE_TOLERANCE), provenance={"layout": "libopus tests/dred_vectors.sh"},
                        files={"inputs.stream": f"vector{v.n}_dred.bit", "expected.features": f"vector{v.n}_dred_dec.f32"}))
    return out


#: the handlers a stream's DRED packets become cases of
STREAM_HANDLERS = ("dred_payload", "dred_features")
#: the sampling rate the cases of a stream ask for (Opus' RTP clock, RFC 7587 §4.1)
STREAM_RATE = 48000


def _case_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.") or "stream"


def stream_cases(path: Path, root: Path, *, options=None, profile: Optional[str] = None,
                 handler: Optional[str] = None, max_packets: int = 0) -> list[Case]:
    """The DRED packets of a stream file (a capture, a ``.bit``, an Ogg Opus file, raw packets) as cases of
    :data:`STREAM_HANDLERS` in a suite written under ``root`` (suite ``stream``), each packet's expected values
    from the reference (:func:`~opus_dred.vectors._handlers.expected_for`, as the generator computes them), the
    whole request (every latent) at 48 kHz. A capture's packets are its Opus stream in sequence order
    (``options``: :class:`~opus_dred.bitstream._capture.CaptureOptions`), each case's provenance naming the SSRC,
    sequence number, timestamp, arrival and byte offset. ``max_packets`` (0: all) bounds the packets taken."""
    inp = load_input(str(path))
    with pool_map(0, len(inp.data)) as pmap:
        contents = read_input(inp, capture_options=options, map=pmap)
    print_warnings(contents.warnings)
    if contents.error is not None:
        typer.echo(f"warning: {format_error(contents.error.to_dict())} (the packets before it are used)", err=True)
    if contents.kind != "packets":
        raise typer.BadParameter(f"{path} holds DRED-only records, not Opus packets: give it as an official-layout "
                                 "directory", param_hint="--suite")
    stream = contents.stream
    rtp = idx = seqs = None
    if stream is not None:
        seqs, _, _, idx = stream.in_sequence()
        rtp = contents.capture.rtp
    stem = _case_name(Path(path).stem)
    handlers = [h for h in STREAM_HANDLERS if handler in (None, h)]
    made = 0
    for k, pkt in enumerate(contents.items):
        if not pkt:
            continue
        try:
            prof, loc = find_dred(pkt, profile)
        except BitstreamError:
            continue
        if loc is None:
            continue
        prov: dict[str, Any] = {"inputs_from": f"{contents.fmt} file {Path(path).name}", "packet_index": k}
        if stream is not None:
            i = int(idx[k])
            r = rtp.packet(int(stream.rtp[i]))
            prov.update(ssrc=stream.ssrc, seq=r["seq"], ext_seq=int(seqs[k]), timestamp=r["timestamp"],
                        arrival=r["arrival"], frame=r["frame"], opus_offset=stream.opus_offset[i])
            name = f"{stem}.{stream.ssrc:08x}.s{int(seqs[k])}"
        else:
            name = f"{stem}.p{k:06d}"
        params = {"max_dred_samples": prof.max_latents * 4 * STREAM_RATE // 100, "sampling_rate": STREAM_RATE}
        for h in handlers:
            expected, tolerance = expected_for(h, prof.name, {"packet": pkt}, params)
            write_case(root, {"profile": prof.name, "handler": h, "suite": "stream", "case": name,
                              "description": f"DRED of packet {k} of {Path(path).name}", "inputs": {"packet": pkt},
                              "parameters": params, "expected": expected, "tolerance": tolerance,
                              "provenance": {**prov, "expected_from": "opus-dred reference"}})
        made += 1
        if max_packets and made >= max_packets:
            break
    if not made:
        raise typer.BadParameter(f"{path}: no packet carries DRED of a known profile", param_hint="--suite")
    return list(iter_cases(root))


def load_suite(suite: Optional[Path], profile: Optional[str], handler: Optional[str] = None, *,
               scratch: Optional[Path] = None, options=None, max_packets: int = 0) -> tuple[str, list[Any]]:
    """(suite label, cases) from a format-1 suite root, one case folder, an official-layout directory, or a stream
    file (a capture, ``.bit``, Ogg Opus, raw packet: :func:`stream_cases`, written under ``scratch``)."""
    if suite is not None and Path(suite).is_file():
        if scratch is None:
            raise typer.BadParameter("a stream file needs a folder for its cases", param_hint="--suite")
        cases = stream_cases(Path(suite), scratch, options=options, profile=profile, handler=handler,
                             max_packets=max_packets)
        if profile:
            cases = [c for c in cases if c.profile == profile]
        return str(suite), cases
    root = Path(suite) if suite is not None else suite_root()
    if not root.exists():
        raise typer.BadParameter(f"{root}: no such directory", param_hint="--suite")
    if is_official_dir(root):
        cases = official_cases(root, profile or "libopus-1.6.1")
    elif (root / "meta.json").is_file():
        cases = [load_case(root)]
    else:
        cases = list(iter_cases(root, profile=profile, handler=handler))
    if handler:
        cases = [c for c in cases if c.handler == handler]
    if profile:
        cases = [c for c in cases if c.profile == profile]
    return str(root), cases


def resolve_impls(impls: list[str]) -> list[str]:
    out: list[str] = []
    for i in impls or ["reference"]:
        for name in (adapter_names() if i == "all" else [i]):
            if name not in out:
                out.append(name)
    return out


def run_conform(impls: list[str], suite: Optional[Path], profile: Optional[str], handler: Optional[str] = None,
                timeout: float = 20.0, progress: bool = False, *, strict: bool = False, fingerprint: bool = False,
                capture=None, max_packets: int = 0, ray: Optional[str] = None, **limits: Any):
    """Run and return the :class:`~opus_dred.conformance._runner.RunReport` (``strict``: a partial pass fails;
    ``fingerprint``: with every implementation's numerics fingerprint); ``limits`` bound an external
    implementation (``start_timeout``, ``max_faults``, ``max_restarts``, ``deadline``: see
    :class:`~opus_dred.conformance._adapters.ExternalAdapter`). A stream file as ``suite`` becomes a temporary
    suite (:func:`stream_cases`; ``capture``: its capture options, ``max_packets``: how many DRED packets);
    ``ray``: the address of a Ray cluster that runs implementations × profiles × handlers as tasks."""
    with tempfile.TemporaryDirectory(prefix="opus-dred-stream-") as scratch:
        return _run_conform(impls, suite, profile, handler, timeout, progress, strict=strict,
                            fingerprint=fingerprint, scratch=Path(scratch), capture=capture, max_packets=max_packets,
                            ray=ray, **limits)


def _run_conform(impls, suite, profile, handler, timeout, progress, *, strict, fingerprint, scratch, capture,
                 max_packets, ray=None, **limits):
    label, cases = load_suite(suite, profile, handler, scratch=scratch, options=capture, max_packets=max_packets)
    if ray is not None:
        rep = _run_on_ray(resolve_impls(impls), cases, ray, suite=label, strict=strict, timeout=timeout,
                          progress=progress, **limits)
        if fingerprint:
            fingerprint_report(rep, cases)
        return rep
    adapters = []
    for name in resolve_impls(impls):
        try:
            adapters.append(make_adapter(name, timeout=timeout, **limits))
        except Exception as exc:  # an unknown build name: a usage error
            raise typer.BadParameter(f"{name}: {exc}", param_hint="--impl") from None
    cb = None
    import sys

    if progress and sys.stderr.isatty():
        def cb(impl: str, i: int, n: int) -> None:
            if i == n or i % 25 == 0:
                print(f"\r{impl}: {i}/{n}", end="\n" if i == n else "", file=sys.stderr, flush=True)

    rep = run_suite(adapters, cases, suite=label, progress=cb, strict=strict)
    if fingerprint:
        fingerprint_report(rep, cases)
    return rep


def _run_on_ray(impls, cases, address, *, progress, **kw):
    try:
        from opus_dred.conformance._campaign import run_suite_on_ray  # lazy: imports Ray when run
    except ImportError:
        typer.echo("--ray needs Ray: pip install 'opus-dred[scale]'", err=True)
        raise typer.Exit(2)
    import sys

    cb = None
    if progress and sys.stderr.isatty():
        def cb(done: int, total: int) -> None:
            print(f"\rconform on Ray ({address}): {done}/{total}", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)

    return run_suite_on_ray(impls, cases, address=address, progress=cb, **kw)


def conform(
    impl: list[str] = typer.Option(["reference"], "--impl", help="reference, a libopus build (opus-dred upstream "
                                   "list), external:'CMD ARGS', or all (reference + every build). Repeatable."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Only this profile's cases."),
    handler: Optional[str] = typer.Option(None, "--handler", help="Only this handler's cases."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write report.json and report.html here."),
    suite: Optional[Path] = typer.Option(None, "--suite", help="Suite root, case folder, a directory in libopus' "
                                         "official layout (vectorN_dred.bit …), or a stream file (pcap/pcapng "
                                         "capture, .bit, .opus): its DRED packets become cases. Default: the "
                                         "canonical suite."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead of the table."),
    timeout: float = typer.Option(20.0, "--timeout", help="Seconds an external implementation has per case."),
    start_timeout: float = typer.Option(30.0, "--start-timeout", help="Seconds an external implementation has "
                                        "to answer the hello, at each (re)start."),
    max_faults: int = typer.Option(3, "--max-faults", help="Consecutive start failures or timeouts after which "
                                   "an external implementation is marked broken (its remaining cases: errors)."),
    max_restarts: int = typer.Option(100, "--max-restarts", help="Restarts of an external implementation after "
                                     "which it is marked broken."),
    deadline: float = typer.Option(3600.0, "--deadline", help="Seconds an external implementation has for the "
                                   "whole run; past it its remaining cases are errors."),
    strict: bool = typer.Option(False, "--strict", help="Fail a case whose expected fields were not all "
                                "reported (by default such a pass is partial)."),
    fingerprint: bool = typer.Option(False, "--fingerprint/--no-fingerprint", help="Add each implementation's "
                                     "numerics fingerprint (which preset its features match bit for bit; about "
                                     "15 s on the canonical suite for the reference)."),
    max_packets: int = typer.Option(0, "--max-packets", help="Stream file: DRED packets made into cases (0: all)."),
    pt: Optional[int] = typer.Option(None, "--pt", help="Capture: the RTP payload type of the Opus packets."),
    sdp: Optional[Path] = typer.Option(None, "--sdp", help="Capture: a session description naming the Opus payload types."),
    ssrc: Optional[str] = typer.Option(None, "--ssrc", help="Capture: the Opus stream (default: the one with the most packets)."),
    port: Optional[int] = typer.Option(None, "--port", help="Capture: only UDP datagrams to or from this port."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS|auto", help="Run implementations × profiles × "
                                      "handlers as tasks on the Ray cluster at ADDRESS (host:port, or auto); the same "
                                      "report apart from timings. Needs the \\[scale] extra."),
) -> None:
    """Run implementations against the test vectors: pass/fail per case, the first differing field and its
    offset, dred_compare figures; a pass table, and JSON + HTML reports with --report. Exit status 1 when
    any case fails or errs."""
    if max_packets < 0:
        raise typer.BadParameter("must not be negative", param_hint="--max-packets")
    opts = capture_options(pt, sdp, ssrc, port)
    try:
        rep = run_conform(impl, suite, profile, handler, timeout, progress=not as_json, start_timeout=start_timeout,
                          max_faults=max_faults, max_restarts=max_restarts, deadline=deadline, strict=strict,
                          fingerprint=fingerprint, capture=opts, max_packets=max_packets, ray=ray)
    except BitstreamError as exc:  # a stream file that is no format, or a capture's typed error
        typer.echo(f"error: {format_error(exc.to_dict())}", err=True)
        raise typer.Exit(2) from None
    if not rep.cases:
        typer.echo("no cases found", err=True)
        raise typer.Exit(2)
    paths = write_reports(rep, report) if report is not None else {}
    if as_json:
        typer.echo(json.dumps(rep.to_json(), indent=1, allow_nan=False))
    else:
        print_summary(rep)
        for kind, p in paths.items():
            typer.echo(f"{kind} report: {p}")
    bad = sum(r.counts()["fail"] + r.counts()["error"] for r in rep.impls)
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``conform`` to the root CLI."""
    app.command("conform")(conform)
