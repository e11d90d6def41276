"""``opus-dred decode``: DRED in a file → features, with the reference decoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from opus_dred.bitstream._dredstream import chronological, read_stream_record
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import find_dred
from opus_dred.bitstream._formats import FORMATS, StreamContents, load_input, read_input
from opus_dred.cli._inspect import capture_options, format_error, pool_map, print_warnings
from opus_dred.cli._vocode import check_audio_out, synthesize, write_audio


def _contents_of(path: str, fmt: Optional[str], options=None) -> StreamContents:
    """The packets (``.bit``/``.opus``/raw/hex/capture) or records (DRED-only) of FILE, and where it broke off;
    a capture's warnings are printed on stderr (as ``inspect`` words them)."""
    try:
        inp = load_input(path, fmt)
    except ValueError:
        raise typer.BadParameter(f"{path} is neither a file nor a hex packet") from None
    with pool_map(0, len(inp.data)) as pmap:
        contents = read_input(inp, capture_options=options, map=pmap)
    print_warnings(contents.warnings)
    return contents


def _fail(exc: BitstreamError, where: str = ""):
    """Report a typed error on stderr and stop with decode's error status."""
    typer.echo(f"error: {where}{exc}", err=True)
    raise typer.Exit(2)


def _file_error(exc: BitstreamError):
    """A file that is no format, or that breaks off: the error named as ``inspect`` names it."""
    typer.echo(f"error: {format_error(exc.to_dict())}", err=True)
    raise typer.Exit(2)


def _guess_profile(packets) -> str:
    """The profile that owns the first DRED found (:func:`~opus_dred.bitstream._extensions.find_dred`)."""
    for data in packets:
        try:
            prof, _ = find_dred(data)
        except BitstreamError:
            continue
        if prof is not None:
            return prof.name
    raise typer.BadParameter("no DRED extension of a known profile found; name one with --profile")


def decode(
    file: str = typer.Argument(..., help="An opus_demo .bit file, an Ogg Opus file, a DRED-only stream, a pcap/pcapng capture of RTP, a raw packet file, a folder of *.bin packets, or a packet in hex."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write features to .f32 (dred_compare's layout), .npy or .json."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Profile (default: from the DRED version byte)."),
    max_ms: int = typer.Option(1040, "--max-ms", help="DRED requested per packet, in ms (libopus' max_dred_samples)."),
    sampling_rate: int = typer.Option(48000, "--rate", help="Sampling rate that max_dred_samples, ret and dred_end count in."),
    numerics: str = typer.Option("libopus-avx2", "--numerics", help="libopus-avx2 (AMD RCPPS, the same answer everywhere) | libopus-avx2-intel | libopus-avx2-host (this CPU's RCPPS) | libopus-sse2[-intel|-host] | libopus-c | float."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per DRED packet/record on stdout."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help=f"{' | '.join(FORMATS)} (default: detected)."),
    pt: Optional[int] = typer.Option(None, "--pt", help="Capture: the RTP payload type of the Opus packets (default: the SDP's, or detected)."),
    sdp: Optional[Path] = typer.Option(None, "--sdp", help="Capture: a session description naming the Opus (and RED) payload types."),
    ssrc: Optional[str] = typer.Option(None, "--ssrc", help="Capture: the Opus stream to decode (default: the one with the most packets)."),
    port: Optional[int] = typer.Option(None, "--port", help="Capture: only UDP datagrams to or from this port."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Also synthesize the features with the reference FARGAN and write them as speech: .wav (16 kHz mono) or .sw."),
) -> None:
    """Decode every DRED payload of FILE into acoustic features (20 per 10 ms frame) with the reference decoder.

    Opus packets: each packet's features in libopus' fec_features order (newest frame first), packets in file
    order. DRED-only streams: each record's features in time order, exactly what `fargan_demo -dred-decoding`
    writes, so `dred_compare -features` compares the two directly. A capture (pcap/pcapng of RTP): the
    packets of one Opus stream in sequence order (lost ones skipped), its warnings on stderr. A file that breaks
    off (a truncated .bit or capture) has its complete packets decoded, then its error reported.

    --audio: what the payloads carry, as speech: each packet's (or record's) features in time order, one
    packet after another in file order, through the reference FARGAN as `opus-dred vocode` runs it (the same
    --numerics preset; `float` runs the float vocoder).
    """
    import numpy as np

    from opus_dred.refimpl._decode import NUMERICS, decode_dred, decode_payload  # lazy: only this command needs the reference decoder (and JAX)

    if numerics not in NUMERICS:
        raise typer.BadParameter(f"must be one of {', '.join(NUMERICS)}", param_hint="--numerics")
    if out is not None and out.suffix.lower() not in (".f32", ".npy", ".json"):
        raise typer.BadParameter("must end in .f32, .npy or .json", param_hint="--out")
    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
    if audio is not None:
        check_audio_out(audio, "--audio")
    opts = capture_options(pt, sdp, ssrc, port)
    try:
        contents = _contents_of(file, fmt, opts)
    except BitstreamError as exc:
        _file_error(exc)
    if contents.error is not None and not contents.items:
        _file_error(contents.error)
    kind, items = contents.kind, contents.items
    try:
        if profile is None:
            profile = "libopus-1.6.1" if kind == "dred" else _guess_profile(items)
        rows = []
        chunks = []
        for i, item in enumerate(items):
            if kind == "dred":
                payload = read_stream_record(item, profile)
                r = decode_payload(payload, profile, numerics=numerics)
                feats = chronological(r.features)
            else:
                if not item:  # a lost packet (a .bit record of length 0, a capture's gap)
                    continue
                r = decode_dred(item, profile, max_dred_samples=max_ms * sampling_rate // 1000,
                                sampling_rate=sampling_rate, numerics=numerics, strict=True)
                if not r.found:
                    continue
                feats = r.features
            chunks.append(feats)
            row = {"index": i, **r.to_dict(with_features=False)}
            rows.append(row)
            if as_json:
                typer.echo(json.dumps({**row, "features": feats.tolist()}))
    except BitstreamError as exc:
        _fail(exc, f"packet {i}: " if "i" in locals() else "")
    allf = np.concatenate(chunks) if chunks else np.zeros((0, 20), np.float32)
    if out is not None:
        suffix = out.suffix.lower()
        if suffix == ".f32":
            allf.astype("<f4").tofile(out)
        elif suffix == ".npy":
            np.save(out, allf.astype(np.float32))
        else:
            out.write_text(json.dumps([{**row, "features": c.tolist()} for row, c in zip(rows, chunks)]) + "\n")
    if not as_json:
        typer.echo(
            f"{file}: profile {profile}, {len(rows)} DRED {'records' if kind == 'dred' else 'packets'} of "
            f"{len(items)}, {allf.shape[0]} feature frames" + (f" → {out}" if out else "")
        )
    if audio is not None:
        _write_audio(audio, profile, [c if kind == "dred" else chronological(c) for c in chunks], numerics)
    if contents.error is not None:
        _file_error(contents.error)


def _vocoder_numerics(numerics: str) -> str:
    """The vocoder preset (``opus_dred.refimpl._nnet.NUMERICS``) of a decoder numerics name (``libopus-avx2``,
    ``libopus-sse2-host`` (this CPU's RCPPS table), ``float``, ...)."""
    from opus_dred.refimpl._nnet import NUMERICS, for_host  # lazy: loads JAX

    name = numerics[len("libopus-"):] if numerics.startswith("libopus-") else numerics
    if name.endswith("-host"):
        return next(k for k, v in NUMERICS.items() if v == for_host(NUMERICS[name[:-len("-host")]]))
    return name


def _write_audio(path: Path, profile: str, chunks, numerics: str) -> None:
    """The features of ``chunks`` (time order within each) through the reference FARGAN into ``path``."""
    import numpy as np


    feats = np.concatenate(chunks) if chunks else np.zeros((0, 20), np.float32)
    if feats.shape[0] < 2:
        typer.echo(f"error: --audio: {feats.shape[0]} feature frame(s) decoded; the vocoder needs at least 2",
                   err=True)
        raise typer.Exit(2)
    voc = _vocoder_numerics(numerics)
    pcm = synthesize(profile, feats, voc)
    write_audio(path, pcm)
    typer.echo(f"{feats.shape[0]} feature frames → {path} ({pcm.shape[0] / 16000:.2f} s at 16 kHz, FARGAN of "
               f"{profile}, numerics {voc})", err=True)


def register(app: typer.Typer) -> None:
    app.command("decode")(decode)
