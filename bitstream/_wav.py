"""WAV files of mono 16-bit PCM: the input of ``opus-dred encode``.

A RIFF/WAVE file (the ``fmt `` and ``data`` chunks) is read with Python's :mod:`wave` module and checked for
what the DRED encoder takes: one channel, 16-bit linear PCM, a sampling rate libopus' DRED encoder converts to
16 kHz (``dnn/dred_encoder.c:dred_convert_to_16k``: 8, 12, 16, 24 or 48 kHz), at least one sample, and a
``data`` chunk as long as its header says. Each failure is a :class:`WavError` naming the offending parameter
and, where it is known, the byte offset of the chunk concerned.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from opus_dred.bitstream._errors import FormatError

#: sampling rates the DRED encoder accepts (``dred_convert_to_16k``)
WAV_RATES = (8000, 12000, 16000, 24000, 48000)


class WavError(FormatError):
    """A WAV file that is not mono 16-bit PCM at a supported rate, or that is cut short.

    ``parameter`` names what is wrong (``"file"``, ``"format"``, ``"channels"``, ``"sample_width"``,
    ``"sample_rate"``, ``"data"``) and ``value`` what the file holds there (``None`` where there is no value)."""

    def __init__(self, parameter: str, value, message: str, *, byte_offset: int | None = None) -> None:
        self.parameter = parameter
        self.value = value
        super().__init__(f"{parameter}: {message}", byte_offset=byte_offset, rule=f"wav: {parameter}")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "parameter": self.parameter, "value": self.value}


@dataclass(frozen=True)
class WavAudio:
    """The samples of a mono WAV file (int16) and their sampling rate in Hz."""

    pcm: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return self.pcm.shape[0] / self.sample_rate


def _chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """``{chunk id: (offset of its header, size its header announces)}`` of the RIFF chunks after ``WAVE``
    (the first of each id); the walk stops where a header no longer fits."""
    out: dict[bytes, tuple[int, int]] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        out.setdefault(cid, (pos, size))
        pos += 8 + size + (size & 1)
    return out


def read_wav(source) -> WavAudio:
    """Read a mono 16-bit PCM WAV file (a path, bytes, or a binary file object).

    Raises :class:`WavError` for a file that is no RIFF/WAVE file or no PCM (``format``), has more than one
    channel (``channels``), samples other than 16-bit (``sample_width``), a rate outside :data:`WAV_RATES`
    (``sample_rate``), no samples, or a ``data`` chunk shorter than its header says (``data``).
    """
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = source.read()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("format", None, "not a RIFF/WAVE file (no 'RIFF' ... 'WAVE' header)", byte_offset=0)
    chunks = _chunks(data)
    fmt_at = chunks.get(b"fmt ", (None, 0))[0]
    data_at, data_size = chunks.get(b"data", (None, 0))
    if fmt_at is None:
        raise WavError("format", None, "no 'fmt ' chunk", byte_offset=12)
    if len(data) >= fmt_at + 10:
        (tag,) = struct.unpack_from("<H", data, fmt_at + 8)
        if tag not in (1, 0xFFFE):
            raise WavError("format", tag, f"format tag {tag} is not linear PCM (1)", byte_offset=fmt_at + 8)
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate, nframes = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(nframes) if channels == 1 and width == 2 else b""
    except (wave.Error, EOFError, struct.error) as exc:
        raise WavError("format", None, f"not a readable WAV file ({str(exc) or type(exc).__name__}: cut short?)",
                       byte_offset=fmt_at) from None
    if channels != 1:
        raise WavError("channels", channels, f"{channels} channels; the encoder takes mono", byte_offset=fmt_at + 10)
    if width != 2:
        raise WavError("sample_width", 8 * width, f"{8 * width}-bit samples; the encoder takes 16-bit PCM",
                       byte_offset=fmt_at + 22)
    if rate not in WAV_RATES:
        raise WavError("sample_rate", rate, f"{rate} Hz; the encoder takes {', '.join(map(str, WAV_RATES))} Hz",
                       byte_offset=fmt_at + 12)
    if nframes == 0:
        raise WavError("data", 0, "the data chunk holds no samples", byte_offset=data_at)
    if len(raw) < 2 * nframes:
        raise WavError("data", len(raw), f"the data chunk announces {data_size} bytes ({nframes} samples) but "
                       f"the file holds {len(raw)}", byte_offset=data_at)
    return WavAudio(np.frombuffer(raw, "<i2").astype(np.int16), rate)


def write_wav(path_or_file, pcm, sample_rate: int) -> bytes:
    """Write int16 mono ``pcm`` as a 16-bit PCM WAV file (a path, a binary file object, or ``None``); returns
    the bytes."""
    x = np.asarray(pcm)
    if x.ndim != 1:
        raise ValueError(f"pcm must be one channel ([n] samples), got shape {x.shape}")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(x.astype("<i2").tobytes())
    out = buf.getvalue()
    if isinstance(path_or_file, (str, Path)):
        Path(path_or_file).write_bytes(out)
    elif path_or_file is not None:
        path_or_file.write(out)
    return out
