"""``opus-dred vocode``: a file of features -> speech through the reference FARGAN, to listen to."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from opus_dred.bitstream._errors import BitstreamError, FormatError
from opus_dred.bitstream._profiles import UnknownProfileError, get_profile

#: bytes per feature frame of a ``.f32`` file (20 float32, libopus' ``dred_compare -features`` layout)
ROW_BYTES = 80
AUDIO_SUFFIXES = (".wav", ".sw")


def read_feature_file(path: Path) -> np.ndarray:
    """The feature frames of ``path`` (float32 little-endian, 20 a frame) as ``[T, 20]``; a size that is no whole
    number of frames, a non-finite value or fewer than 2 frames is a :class:`FormatError` at its byte offset."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror or exc}", byte_offset=0, rule="features: file") from None
    if len(data) % ROW_BYTES:
        raise FormatError(f"{len(data)} bytes is not a whole number of {ROW_BYTES}-byte feature frames (20 float32)",
                          byte_offset=len(data) - len(data) % ROW_BYTES, rule="features: .f32 frames")
    f = np.frombuffer(data, "<f4").astype(np.float32).reshape(-1, 20)
    bad = np.flatnonzero(~np.isfinite(f.reshape(-1)))
    if bad.size:
        raise FormatError(f"feature value {int(bad[0]) % 20} of frame {int(bad[0]) // 20} is not finite",
                          byte_offset=4 * int(bad[0]), rule="features: finite values")
    if f.shape[0] < 2:
        raise FormatError(f"{f.shape[0]} feature frame(s): the vocoder needs at least 2 (the first primes it)",
                          byte_offset=len(data), rule="features: at least 2 frames")
    return f


def write_audio(path: Path, pcm: np.ndarray, rate: int = 16000) -> None:
    """int16 mono samples to a WAV file (``.wav``) or raw little-endian (``.sw``)."""
    x = np.ascontiguousarray(np.asarray(pcm, np.int16), "<i2")
    if Path(path).suffix.lower() == ".sw":
        Path(path).write_bytes(x.tobytes())
        return
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())


def check_audio_out(out: Path, hint: str = "--out") -> None:
    if out.suffix.lower() not in AUDIO_SUFFIXES:
        raise typer.BadParameter(f"must end in {' or '.join(AUDIO_SUFFIXES)}", param_hint=hint)


def check_numerics(numerics: str) -> None:
    from opus_dred.refimpl._nnet import NUMERICS  # lazy: loads JAX

    if numerics not in NUMERICS:
        raise typer.BadParameter(f"must be one of {', '.join(NUMERICS)}", param_hint="--numerics")


def synthesize(profile: str, features: np.ndarray, numerics: str) -> np.ndarray:
    """``fargan_demo -fargan-synthesis`` with the reference FARGAN (:func:`opus_dred.vectors._expected.
    vocoder_synthesis`): int16 at 16 kHz, 160 samples per frame."""
    from opus_dred.vectors._expected import vocoder_synthesis  # lazy: loads JAX

    return vocoder_synthesis(profile, features, numerics)


def vocode(
    features: Path = typer.Argument(..., help="Features: float32 little-endian, 20 per 10 ms frame (fargan_demo -features, opus-dred decode -o X.f32)."),
    out: Path = typer.Option(..., "--out", "-o", help="Audio to write: .wav (16 kHz mono, 16-bit) or .sw (raw int16)."),
    profile: str = typer.Option("libopus-1.6.1", "--profile", "-p", help="Profile whose model pack's FARGAN is used."),
    numerics: str = typer.Option("avx2", "--numerics", help="FARGAN's arithmetic: avx2 (a default x86 libopus build), sse2 (a -generic one), float, ... (opus_dred.refimpl._nnet.NUMERICS)."),
) -> None:
    """Synthesize speech from FEATURES with the reference FARGAN, as libopus' `fargan_demo -fargan-synthesis`
    does (primed on silence and the first frame; 160 samples per frame), and write it as 16 kHz audio."""
    check_audio_out(out)
    check_numerics(numerics)
    try:
        get_profile(profile)
    except UnknownProfileError as exc:
        raise typer.BadParameter(str(exc), param_hint="--profile") from None
    try:
        f = read_feature_file(features)
    except BitstreamError as exc:
        typer.echo(f"error: {features}: {exc}", err=True)
        raise typer.Exit(2)
    pcm = synthesize(profile, f, numerics)
    write_audio(out, pcm)
    typer.echo(f"{features}: {f.shape[0]} feature frames → {out} ({pcm.shape[0] / 16000:.2f} s at 16 kHz, "
               f"FARGAN of {profile}, numerics {numerics})")


def register(app: typer.Typer, name: Optional[str] = None) -> None:
    app.command(name or "vocode")(vocode)
