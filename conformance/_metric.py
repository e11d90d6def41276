"""The DRED compliance metric: libopus' ``dred_compare`` tool, reimplemented in numpy.

libopus 1.6 ships ``dnn/dred_compare.c`` (1.5.2 has no such tool) and its conformance script
(``tests/dred_vectors.sh`` on libopus master) judges a DRED decoder with it in two modes:

``features`` (``dnn/dred_compare.c:compare_features``)
    two files of float32 little-endian feature frames, 20 values a frame (``NB_FEATURES``: 18
    cepstral coefficients, then the pitch feature at index 18 and the voicing/correlation feature at
    index 19). The first file is the reference. For each of the 20 dimensions the mean squared error
    over the frames is taken; ``total`` is the square root of the sum of the 19 MSEs other than
    pitch, ``max`` the square root of the largest of those 19, and ``pitch`` the mean absolute
    pitch difference over the frames where the reference's voicing exceeds 0.2. The script runs
    ``dred_compare -features -thresholds .5 .15 .02 ref.f32 test.f32``.

``audio`` (``dnn/dred_compare.c:compare_audio``)
    two 16 kHz mono PCM files (s16 by default). Both are high-passed (``read_pcm``'s biquad), cut
    into 640-sample Blackman-Harris windows every 160 samples (``spectrum``), spread over frequency
    with a -25/-10 dB-per-Bark masking curve (``psydecay_init``) and over time (forward -3 dB,
    backward -10 dB per frame), and compared through a loudness power law (exponent 0.2) in 17
    bands: ``err4`` and ``err16`` are 4th- and 16th-power means over frames, scaled by the
    reference's loudness. ``pitch`` is the mean over voiced frames (normalised correlation of the
    pre-emphasised reference > 0.7 at its best lag in 32..256) of the difference between the
    reference's and the test's correlation at that lag (``compute_xcorr``). The script uses
    thresholds ``0.25 1.0 0.15`` for the vocoder (``fargan_demo -fargan-synthesis``) and
    ``1.0 3.0 0.25`` for the whole decoder (``opus_demo -d 16000 1``).

The arithmetic follows the C tool's types step by step (float32 where it stores floats, float64
where C promotes to double, sequential sums where C sums in a loop), so the figures agree with the
compiled tool to the printed precision; ``tests/test_metric.py`` checks this against the tool.

Differences from the tool, all on input the tool does not handle: where the tool would read out of
bounds (an audio reference of 640..799 samples, one analysis frame) or prints an error and exits
with status 1 (files that cannot be opened, a test feature file shorter than the reference, audio
lengths that do not match, fewer than 640 samples), :class:`MetricError` is raised. Where the tool
divides 0 by 0 (an empty reference, no voiced frame) the figure is NaN and the comparison fails,
as in the tool.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import numpy as np

from opus_dred.bitstream._errors import FormatError

# --- constants of dnn/dred_compare.c ------------------------------------------------------------
NB_FEATURES = 20  #: values per feature frame in a ``.f32`` file (``NB_FEATURES`` in ``dnn/lpcnet.h``)
PITCH_INDEX = 18  #: the pitch feature, left out of total/max and measured on its own
VOICING_INDEX = 19  #: the voicing (pitch correlation) feature that selects frames for the pitch error
VOICING_MIN = 0.2  #: reference voicing above which a frame counts for the pitch error

FRAME_BYTES = 4 * NB_FEATURES
WIN_SIZE = 640  #: analysis window, samples (``TEST_WIN_SIZE``)
WIN_STEP = 160  #: hop, samples (``TEST_WIN_STEP``)
NFREQS = 320  #: frequency bins compared (``NFREQS``)
BANDS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 272, 320)
PITCH_MIN, PITCH_MAX, PITCH_FRAME = 32, 256, 320
VOICED_CORR = 0.7  #: reference correlation above which a frame counts for the audio pitch error
LOUDNESS = np.float32(0.2)
SAMPLE_RATE = 16000  #: the rate ``psydecay_init`` is called with
FORMATS = {"s16": 2, "s24": 3, "f32": 4}

_F32 = np.float32
_PI_F = np.float32(3.14159265)  # OPUS_PI
# read_pcm's DC-blocking biquad (float constants)
_A_HP = (float(np.float32(-1.97354)), float(np.float32(0.97417)))
_B_HP = (-2.0, 1.0)


class MetricError(FormatError):
    """An input the comparison cannot be run on (the compiled tool exits with status 1 or would read
    out of bounds). ``byte_offset`` points into the file concerned where that is meaningful."""


# --- thresholds and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureThresholds:
    """Upper bounds for feature mode (``-thresholds tot max pitch``); the tool stores them as float."""

    total: float = 0.5
    max: float = 0.15
    pitch: float = 0.02


@dataclass(frozen=True)
class AudioThresholds:
    """Upper bounds for audio mode (``-thresholds err4 err16 pitch``); the tool stores them as double."""

    err4: float = 0.25
    err16: float = 1.0
    pitch: float = 0.15


#: what ``tests/dred_vectors.sh`` passes for DRED decoding (features)
FEATURE_THRESHOLDS = FeatureThresholds(0.5, 0.15, 0.02)
#: what the script passes for the vocoder test (``fargan_demo -fargan-synthesis`` output)
AUDIO_VOCODER_THRESHOLDS = AudioThresholds(0.25, 1.0, 0.15)
#: what the script passes for the whole decoder (``opus_demo -d 16000 1`` output; a failure there is
#: reported by the script as a warning that "does not prevent compliance")
AUDIO_SYSTEM_THRESHOLDS = AudioThresholds(1.0, 3.0, 0.25)
AUDIO_PRESETS = {"vocoder": AUDIO_VOCODER_THRESHOLDS, "system": AUDIO_SYSTEM_THRESHOLDS}


def _json_safe(d: dict) -> dict:
    """NaN and infinities (0/0 in the tool) become ``None`` so that the JSON is standard."""
    def fix(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        return v
    return fix(d)


def _c_float(v: float) -> str:
    """``printf("%f")`` of a value, as glibc writes it (``-nan`` for a NaN with the sign bit set)."""
    if math.isnan(v):
        return "-nan" if math.copysign(1.0, v) < 0 else "nan"
    if math.isinf(v):
        return "-inf" if v < 0 else "inf"
    return "%f" % v


@dataclass(frozen=True)
class FeatureComparison:
    """Feature-mode figures. ``total``, ``max`` and ``pitch`` are float32 values, as the tool has them;
    ``mse`` is the per-dimension mean squared error (20 values, pitch included); ``frames`` the
    number of reference frames compared; ``pitch_frames`` how many were voiced."""

    total: float
    max: float
    pitch: float
    mse: tuple[float, ...]
    frames: int
    pitch_frames: int
    thresholds: FeatureThresholds
    passed: bool

    @property
    def exit_status(self) -> int:
        """What ``dred_compare -features -thresholds ...`` returns for these files."""
        return 0 if self.passed else 1

    def report_line(self) -> str:
        """The tool's first line (it writes it to stderr)."""
        return f"total = {_c_float(self.total)}, max = {_c_float(self.max)}, pitch = {_c_float(self.pitch)}"

    def verdict_line(self) -> str:
        t = self.thresholds
        if self.passed:
            return "Comparison PASSED"
        return (f"*** Comparison FAILED *** (thresholds were {_c_float(float(_F32(t.total)))} "
                f"{_c_float(float(_F32(t.max)))} {_c_float(float(_F32(t.pitch)))})")

    def to_json(self) -> dict:
        d = asdict(self)
        d["mode"] = "features"
        d["mse"] = list(self.mse)
        d["exit_status"] = self.exit_status
        return _json_safe(d)


@dataclass(frozen=True)
class AudioComparison:
    """Audio-mode figures: ``err4``, ``err16`` (float64, as the tool has them), ``pitch`` (float32);
    ``frames`` analysis frames, ``pitch_frames`` of them voiced; ``samples`` compared."""

    err4: float
    err16: float
    pitch: float
    frames: int
    pitch_frames: int
    samples: int
    thresholds: AudioThresholds
    passed: bool
    skip: int = 0
    format: str = "s16"

    @property
    def exit_status(self) -> int:
        return 0 if self.passed else 1

    def report_line(self) -> str:
        return f"err4 = {_c_float(self.err4)}, err16 = {_c_float(self.err16)}, pitch = {_c_float(self.pitch)}"

    def verdict_line(self) -> str:
        t = self.thresholds
        if self.passed:
            return "Comparison PASSED"
        return (f"*** Comparison FAILED *** (thresholds were {_c_float(t.err4)} {_c_float(t.err16)} "
                f"{_c_float(t.pitch)})")

    def to_json(self) -> dict:
        d = asdict(self)
        d["mode"] = "audio"
        d["exit_status"] = self.exit_status
        return _json_safe(d)


# --- input --------------------------------------------------------------------------------------

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]


def _read_bytes(src: Source, what: str) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    p = Path(src)  # type: ignore[arg-type]
    try:
        return p.read_bytes()
    except OSError as exc:
        raise MetricError(f"cannot open {what} {str(p)!r}: {exc.strerror or exc}", rule="dred_compare: open") from exc


def read_features(src: Source) -> np.ndarray:
    """Feature frames of a ``.f32`` file as float32 [frames, 20].

    The file is float32 little-endian, 20 values a frame (what ``fargan_demo -dred-decoding`` and
    ``-features`` write); a trailing partial frame is ignored, as the tool's ``fread`` of whole
    80-byte records ignores it. An array is taken as it is (shape [frames, 20] or flat)."""
    if isinstance(src, np.ndarray):
        a = np.asarray(src, dtype=np.float32)
        if a.ndim == 1 and a.size % NB_FEATURES == 0:
            a = a.reshape(-1, NB_FEATURES)
        if a.ndim != 2 or a.shape[1] != NB_FEATURES:
            raise MetricError(f"feature array must have shape [frames, {NB_FEATURES}], got {a.shape}",
                              rule="dred_compare: features layout")
        return a
    data = _read_bytes(src, "feature file")
    n = len(data) // FRAME_BYTES
    return np.frombuffer(data[: n * FRAME_BYTES], dtype="<f4").astype(np.float32).reshape(n, NB_FEATURES)


def read_pcm(src: Source, fmt: str = "s16") -> np.ndarray:
    """Samples of a mono PCM file as float32, scaled as ``dred_compare.c:read_pcm`` scales them
    (s16 as is, s24 divided by 256, f32 times 32768), before the high-pass filter. A trailing
    partial sample is ignored. Arrays: int16 as s16, int32 as s24 (24-bit values), floats as f32."""
    if fmt not in FORMATS:
        raise MetricError(f"unknown PCM format {fmt!r}; use one of {sorted(FORMATS)}", rule="dred_compare: format")
    if isinstance(src, np.ndarray):
        a = np.asarray(src).reshape(-1)
        if a.dtype == np.int16:
            return a.astype(np.float32)
        if a.dtype.kind in "iu":
            return (np.float32(1.0 / 256.0) * a.astype(np.float32)).astype(np.float32)
        if a.dtype.kind == "f":
            return (a.astype(np.float32) * np.float32(32768)).astype(np.float32)
        raise MetricError(f"PCM array of dtype {a.dtype} not understood", rule="dred_compare: format")
    data = _read_bytes(src, "PCM file")
    size = FORMATS[fmt]
    n = len(data) // size
    data = data[: n * size]
    if fmt == "s16":
        return np.frombuffer(data, "<i2").astype(np.float32)
    if fmt == "f32":
        return np.frombuffer(data, "<f4").astype(np.float32) * np.float32(32768)
    b = np.frombuffer(data, np.uint8).reshape(n, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    v = ((v & 0xFFFFFF) ^ 0x800000) - 0x800000
    return (np.float32(1.0 / 256.0) * v.astype(np.float32)).astype(np.float32)


def highpass(x: np.ndarray) -> np.ndarray:
    """The DC blocker ``read_pcm`` runs over a whole file (``dred_compare.c:biquad``: zeros at DC,
    poles from ``a = {-1.97354, 0.97417}``), with the tool's float32 storage and float64 updates."""
    f32 = np.float32
    a0, a1 = _A_HP
    b0, b1 = _B_HP
    m0 = m1 = 0.0
    out = np.empty(len(x), np.float32)
    vals = np.asarray(x, np.float32).astype(np.float64).tolist()
    res = [0.0] * len(vals)
    with np.errstate(over="ignore", invalid="ignore"):
        for i, xi in enumerate(vals):
            yi = float(f32(xi + m0))
            m0 = float(f32(m1 + (b0 * xi - a0 * yi)))
            m1 = float(f32(b1 * xi - a1 * yi))
            res[i] = yi
    out[:] = res
    return out


# --- feature mode -------------------------------------------------------------------------------


def _seq_sum_f32(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """A float32 sum taken element after element along ``axis``, as a C loop over a float
    accumulator does (numpy's ``sum`` adds pairwise and rounds differently)."""
    a = np.asarray(a, np.float32)
    if a.shape[axis] == 0:
        return np.zeros(np.delete(a.shape, axis), np.float32)
    return np.take(np.add.accumulate(a, axis=axis, dtype=np.float32), -1, axis=axis)


def compare_features(
    reference: Source,
    test: Source,
    thresholds: FeatureThresholds = FEATURE_THRESHOLDS,
) -> FeatureComparison:
    """``dred_compare -features``: compare decoded DRED features against reference features.

    Mirrors ``dnn/dred_compare.c:compare_features``. Every frame of ``reference`` is compared with
    the frame at the same index of ``test``; frames of ``test`` past the end of ``reference`` are
    ignored, and a ``test`` shorter than ``reference`` raises :class:`MetricError` (the tool prints
    "Error: truncated test file" and exits with status 1).
    """
    x = read_features(reference)
    y_all = read_features(test)
    n = x.shape[0]
    if y_all.shape[0] < n:
        raise MetricError(
            f"truncated test file: {y_all.shape[0]} feature frames for the reference's {n}",
            byte_offset=y_all.shape[0] * FRAME_BYTES, rule="dred_compare: truncated test file")
    y = y_all[:n]
    with np.errstate(all="ignore"):
        e = (x - y).astype(np.float32)
        sq = (e * e).astype(np.float32)
        mse_sum = _seq_sum_f32(sq, axis=0) if n else np.zeros(NB_FEATURES, np.float32)
        voiced = x[:, VOICING_INDEX].astype(np.float64) > VOICING_MIN
        dp = np.abs(x[voiced, PITCH_INDEX] - y[voiced, PITCH_INDEX]).astype(np.float32)
        pcount = int(voiced.sum())
        pitch = np.float32(_seq_sum_f32(dp)) / np.float32(pcount)
        mse = (mse_sum / np.float32(n)).astype(np.float32)
        tot = np.float32(0)
        mx = np.float32(0)
        for i in range(NB_FEATURES):
            if i != PITCH_INDEX:
                tot = np.float32(tot + mse[i])
                mx = mx if mx > mse[i] else mse[i]  # the tool's MAX(a, b): (a > b ? a : b)
        tot = np.float32(np.sqrt(np.float64(tot)))
        mx = np.float32(np.sqrt(np.float64(mx)))
    t = thresholds
    passed = bool(tot <= _F32(t.total) and mx <= _F32(t.max) and pitch <= _F32(t.pitch))
    return FeatureComparison(
        total=float(tot), max=float(mx), pitch=float(pitch), mse=tuple(float(v) for v in mse),
        frames=n, pitch_frames=pcount, thresholds=t, passed=passed)


# --- audio mode ---------------------------------------------------------------------------------


def _psydecay(nfreqs: int = NFREQS, fs: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin spreading decays (``dred_compare.c:psydecay_init``): the derivative of the Vorbis
    frequency-to-Bark mapping, turned into -25 dB/Bark downwards (``decayL``) and -10 dB/Bark
    upwards (``decayR``) per bin."""
    f32 = np.float32
    step = f32(1) / f32(2 * nfreqs)
    tenth, m25 = float(f32(0.1)), float(f32(0.0031623))
    dl = np.empty(nfreqs, np.float32)
    dr = np.empty(nfreqs, np.float32)
    for i in range(nfreqs):
        f = float(f32(f32(fs * i) * step))
        deriv = (8.288e-8 * f) / (3.4225e-16 * f * f * f * f + 1) + .009694 / (5.476e-7 * f * f + 1) + 1e-4
        deriv = f32(f32(deriv) * f32(f32(fs) * step))
        dr[i] = f32(math.pow(tenth, float(deriv)))
        dl[i] = f32(math.pow(m25, float(deriv)))
    return dl, dr


def _window() -> np.ndarray:
    """The Blackman-Harris analysis window of ``dred_compare.c:spectrum`` (float32)."""
    two_pi = float(np.float32(2) * _PI_F)
    four_pi = float(np.float32(4) * _PI_F)
    six_pi = float(np.float32(6) * _PI_F)
    w = np.empty(WIN_SIZE, np.float32)
    for j in range(WIN_SIZE):
        n = (j + .5) / WIN_SIZE
        w[j] = 0.35875 - 0.48829 * math.cos(two_pi * n) + 0.14128 * math.cos(four_pi * n) - 0.01168 * math.cos(six_pi * n)
    return w


def _power_spectrum(x: np.ndarray, nframes: int, window: np.ndarray) -> np.ndarray:
    """[nframes, 320] float32 power per bin, plus 0.1 (``dred_compare.c:spectrum``)."""
    idx = np.arange(nframes)[:, None] * WIN_STEP + np.arange(WIN_SIZE)[None, :]
    frames = (x[idx] * window[None, :]).astype(np.float32)
    spec = np.fft.rfft(frames.astype(np.float64), axis=1)[:, :NFREQS]
    re = spec.real.astype(np.float32)
    im = spec.imag.astype(np.float32)
    p = (re * re + im * im).astype(np.float32)
    return (p.astype(np.float64) + .1).astype(np.float32)


def _pitch_error(x: np.ndarray, y: np.ndarray, nframes: int) -> tuple[np.float32, int]:
    """Mean |Δ normalised correlation| at the reference's best lag over its voiced frames
    (``dred_compare.c:compute_xcorr`` and the loop over frames 2..nframes-3 in ``compare_audio``)."""
    f32 = np.float32

    def pre(v: np.ndarray) -> np.ndarray:
        # filtered[k] = v[k] - .8 v[k-1], computed in double, stored as float
        v64 = v.astype(np.float64)
        out = np.zeros_like(v)
        out[1:] = (v64[1:] - .8 * v64[:-1]).astype(np.float32)
        return out

    fx, fy = pre(x), pre(y)
    frames = list(range(2, nframes - 2))
    err = f32(0)
    count = 0
    seg_len = PITCH_FRAME + PITCH_MAX
    lagidx = np.arange(PITCH_MAX + 1)
    chunk = 8
    with np.errstate(all="ignore"):
        for c0 in range(0, len(frames), chunk):
            fr = np.array(frames[c0:c0 + chunk])
            base = fr * WIN_STEP - PITCH_MAX
            sx = fx[base[:, None] + np.arange(seg_len)[None, :]]  # [F, 576]
            sy = fy[base[:, None] + np.arange(seg_len)[None, :]]
            cur = sx[:, PITCH_MAX:]
            win = np.lib.stride_tricks.sliding_window_view(sx, PITCH_FRAME, axis=1)  # [F, 257, 320]; start s = 256 - lag
            lagged = win[:, PITCH_MAX - lagidx, :]  # [F, lag, 320]
            xx = _seq_sum_f32(cur * cur)
            xy = _seq_sum_f32(cur[:, None, :] * lagged)
            yy = _seq_sum_f32(lagged * lagged)
            den = (xx[:, None] * yy + f32(PITCH_FRAME)).astype(np.float32)
            xc = (xy.astype(np.float64) / np.sqrt(den.astype(np.float64))).astype(np.float32)
            for k in range(len(fr)):
                row = xc[k]
                pitch, best = 0, -1.0
                cand = row[PITCH_MIN:].astype(np.float64)
                cand = np.where(np.isnan(cand), -np.inf, cand)
                j = int(np.argmax(cand))
                if cand[j] > best:
                    pitch = PITCH_MIN + j
                if float(row[pitch]) > VOICED_CORR:
                    ycur = sy[k, PITCH_MAX:]
                    ylag = sy[k, PITCH_MAX - pitch: PITCH_MAX - pitch + PITCH_FRAME]
                    yxx = _seq_sum_f32(ycur * ycur)
                    yxy = _seq_sum_f32(ycur * ylag)
                    yyy = _seq_sum_f32(ylag * ylag)
                    yden = f32(f32(yxx * yyy) + f32(PITCH_FRAME))
                    yc = f32(np.float64(yxy) / np.sqrt(np.float64(yden)))
                    err = f32(err + f32(abs(f32(row[pitch] - yc))))
                    count += 1
        return f32(err / f32(count)), count


def compare_audio(
    reference: Source,
    test: Source,
    thresholds: AudioThresholds = AUDIO_VOCODER_THRESHOLDS,
    *,
    fmt: str = "s16",
    skip: int = 0,
) -> AudioComparison:
    """``dred_compare -audio``: a perceptual comparison of two 16 kHz mono signals.

    Mirrors ``dnn/dred_compare.c:compare_audio``: both inputs are read with ``read_pcm`` (format
    ``fmt``, high-passed); the first ``skip`` samples of ``test`` are dropped (``-skip``); a test
    longer than the reference is cut to the reference's length, a shorter one raises
    :class:`MetricError` ("Sample counts do not match"), as does a reference of fewer than 640
    samples ("Insufficient sample data") or of a single analysis frame (where the tool would read
    outside its buffers).
    """
    if skip < 0:
        raise MetricError(f"skip must be >= 0, got {skip}", rule="dred_compare: skip")
    x = highpass(read_pcm(reference, fmt))
    y = highpass(read_pcm(test, fmt))
    size = FORMATS[fmt]
    if skip > len(y):
        raise MetricError(f"skip {skip} is past the end of the test signal ({len(y)} samples)",
                          byte_offset=len(y) * size, rule="dred_compare: skip")
    y = y[skip:]
    xlength = len(x)
    if len(y) > xlength:
        y = y[:xlength]
    if len(y) != xlength:
        raise MetricError(f"sample counts do not match ({xlength} != {len(y)})",
                          byte_offset=(skip + len(y)) * size, rule="dred_compare: sample counts")
    if xlength < WIN_SIZE:
        raise MetricError(f"insufficient sample data ({xlength} < {WIN_SIZE})",
                          byte_offset=xlength * size, rule="dred_compare: insufficient data")
    nframes = (xlength - WIN_SIZE + WIN_STEP) // WIN_STEP
    if nframes < 2:
        raise MetricError(f"{xlength} samples give one analysis frame; the comparison needs at least "
                          f"{WIN_SIZE + WIN_STEP} samples", byte_offset=xlength * size,
                          rule="dred_compare: insufficient data")

    pitch, pcount = _pitch_error(x, y, nframes)

    f32 = np.float32
    win = _window()
    X = _power_spectrum(x, nframes, win)
    Y = _power_spectrum(y, nframes, win)
    dl, dr = _psydecay()
    norm = np.empty(NFREQS, np.float32)
    norm[0] = 1
    for j in range(1, NFREQS):
        norm[j] = f32(1) + f32(dr[j] * norm[j - 1])
    for j in range(NFREQS - 2, -1, -1):
        norm[j] = f32(norm[j] + f32(dl[j] * norm[j + 1]))
    norm = (f32(1) / norm).astype(np.float32)
    with np.errstate(all="ignore"):
        for S in (X, Y):  # spreading over frequency, every frame at once
            for j in range(1, NFREQS):
                S[:, j] = S[:, j] + dr[j] * S[:, j - 1]
            for j in range(NFREQS - 2, -1, -1):
                S[:, j] = S[:, j] + dl[j] * S[:, j + 1]
            S *= norm[None, :]
        for i in range(nframes):
            floor = 1e-8 * max(0.0, float(np.max(X[i])))
            for S in (X, Y):
                row = S[i]
                S[i] = np.where(floor > row.astype(np.float64), f32(floor), row)
                if i > 0:
                    S[i] = S[i] + f32(.5) * S[i - 1]
        for i in range(nframes - 3, -1, -1):  # the tool's `for (xi=nframes-2; xi-->0;)`
            X[i] = X[i] + f32(.1) * X[i + 1]
            Y[i] = Y[i] + f32(.1) * Y[i + 1]

        bins = np.arange(NFREQS)
        f = ((bins.astype(np.float32) * _PI_F).astype(np.float32) / f32(960)).astype(np.float32)
        thresh = (.1 / (.15 * .15 + (f * f).astype(np.float32).astype(np.float64))).astype(np.float32)
        thresh10 = (f32(10) * thresh).astype(np.float32)
        lo = float(LOUDNESS)
        lo2 = float(f32(2) * LOUDNESS)
        Xa = (X + thresh[None, :]).astype(np.float64)
        Ya = (Y + thresh[None, :]).astype(np.float64)
        Xb = (X + thresh10[None, :]).astype(np.float64)
        Yb = (Y + thresh10[None, :]).astype(np.float64)
        nb = len(BANDS) - 1
        Ef2 = np.zeros(nframes)
        Ef4 = np.zeros(nframes)
        Tf2 = np.zeros(nframes)
        for b in range(nb):
            lo_b, hi_b = BANDS[b], BANDS[b + 1]
            width = hi_b - lo_b
            w = float(f32(1) / f32(width))
            sl = slice(lo_b, hi_b)
            re = (np.power(Ya[:, sl], lo) - np.power(Xa[:, sl], lo)).astype(np.float32)
            im = (re * re).astype(np.float32)
            t = w * np.power(Xa[:, sl], lo2)
            im = (im.astype(np.float64) * w).astype(np.float32).astype(np.float64)
            eb2 = np.add.accumulate(im, axis=1)[:, -1]
            tb2 = np.add.accumulate(t, axis=1)[:, -1]
            re = (np.power(Yb[:, sl], lo) - np.power(Xb[:, sl], lo)).astype(np.float32)
            im = (re * re).astype(np.float32)
            im = (im.astype(np.float64) * w).astype(np.float32).astype(np.float64)
            eb4 = np.add.accumulate(im, axis=1)[:, -1]
            eb2 /= width
            eb4 /= width
            tb2 /= width
            Ef2 += eb2
            Ef4 += eb4 * eb4
            Tf2 += tb2
        Ef2 /= nb
        Ef4 /= nb
        Ef4 *= Ef4
        Tf2 /= nb
        err4 = float(np.add.accumulate(Ef2 * Ef2)[-1])
        err16 = float(np.add.accumulate(Ef4 * Ef4)[-1])
        T2 = float(np.add.accumulate(Tf2)[-1])
        err4 = 100 * math.pow(err4 / nframes, 1.0 / 4) / math.sqrt(T2)
        err16 = 100 * math.pow(err16 / nframes, 1.0 / 16) / math.sqrt(T2)
    t = thresholds
    passed = bool(err4 <= t.err4 and err16 <= t.err16 and float(pitch) <= t.pitch)
    return AudioComparison(err4=err4, err16=err16, pitch=float(pitch), frames=nframes, pitch_frames=pcount,
                           samples=xlength, thresholds=t, passed=passed, skip=skip, format=fmt)


