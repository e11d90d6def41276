"""The DRED encoder's input side (``refimpl._features``) against libopus, frame by frame, on real speech.

Oracles: ``LibopusFeatureExtractor`` (``lpcnet_compute_single_frame_features_float`` on an ``LPCNetEncState``)
and ``LibopusDredEncoder`` (``dred_compute_latents``; its ``input_buffer`` holds the 16 kHz samples that
``dred_convert_to_16k`` produced). PitchDNN is injected: the DSP tests take libopus' own ``dnn_pitch`` of the
same frame (lockstep), so they check the feature DSP alone; one test runs the chain with the reference PitchDNN.

What is claimed bit-exact, and where:

* ``kernels="c"`` equals the ``-generic`` builds (plain C DSP) on any x86-64 host;
* ``kernels="x86"`` equals the default builds where libopus dispatches ``celt_pitch_xcorr`` to its AVX2 kernel,
  i.e. on a CPU with AVX2 and FMA (skipped elsewhere, with the reason);
* the 16 kHz conversion equals both kinds of build (plain C in both).

Where a claim is skipped, a companion test holds the difference inside libopus' own spread (default build vs
``-generic`` build on the same input), measured in the test.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from opus_dred.libopus import Oracle
from opus_dred.libopus._encoder import LibopusDredEncoder, LibopusFeatureExtractor
from opus_dred.refimpl import _features as F
from opus_dred.speech import load_clip

BUILDS = {"libopus-1.5.2": ("libopus-1.5.2", "x86"), "libopus-1.5.2-generic": ("libopus-1.5.2", "c"),
          "libopus-1.6.1": ("libopus-1.6.1", "x86"), "libopus-1.6.1-generic": ("libopus-1.6.1", "c")}
#: feature groups of the agreement table: name -> (array, slice)
GROUPS = {"cepstrum": ("features", slice(0, 18)), "pitch": ("features", slice(18, 19)),
          "corr": ("features", slice(19, 20)), "lpc": ("features", slice(20, 36)),
          "if": ("if_features", slice(None)), "xcorr": ("xcorr_features", slice(None))}
N_FRAMES = 200  # 2 s of speech, starting with the clip's leading silence


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@pytest.fixture(scope="module")
def require_avx2_dispatch() -> None:
    """Skip a claim about the default builds' AVX2 kernel where libopus would not run it."""
    missing = {"avx2", "fma"} - _cpu_flags()
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(sorted(missing))}: libopus' default build does not run "
                    f"celt_pitch_xcorr_avx2 here, so kernels='x86' is not claimed bit-exact with it")


@pytest.fixture(scope="module")
def speech16k() -> np.ndarray:
    return load_clip(None, 16000)[: 160 * N_FRAMES].astype(np.float32)


def _oracle_frames(build: str, pcm16k: np.ndarray) -> dict[str, np.ndarray]:
    fr = LibopusFeatureExtractor(Oracle.for_build(build)).frames(pcm16k)
    return {"features": np.stack([f.features for f in fr]), "if_features": np.stack([f.if_features for f in fr]),
            "xcorr_features": np.stack([f.xcorr_features for f in fr]),
            "dnn_pitch": np.array([f.dnn_pitch for f in fr], np.float32)}


def _lockstep(dnn_pitch: np.ndarray):
    """A pitch source giving libopus' ``dnn_pitch`` of each frame in turn (``dnn_pitch [F]`` or ``[F, B]``)."""
    it = iter(np.asarray(dnn_pitch, np.float32).reshape(len(dnn_pitch), -1))

    def pitch(if_features, xcorr_features):
        return next(it)
    return pitch


def _ours(profile: str, kernels: str, pcm16k: np.ndarray, dnn_pitch: np.ndarray) -> dict[str, np.ndarray]:
    out = F.FeatureExtractor(profile, kernels=kernels, pitch=_lockstep(dnn_pitch)).frames(pcm16k)
    return {"features": out.features, "if_features": out.if_features, "xcorr_features": out.xcorr_features}


def _agreement(a: dict, b: dict) -> dict[str, tuple[float, float]]:
    """Per group: (max |a - b|, share of frames whose values are identical bit for bit)."""
    res = {}
    for g, (key, sl) in GROUPS.items():
        x, y = a[key][:, sl], b[key][:, sl]
        same = np.all(x.view(np.uint32) == y.view(np.uint32), axis=1)
        res[g] = (float(np.max(np.abs(x.astype(np.float64) - y))), float(same.mean()))
    return res


@pytest.fixture(scope="module")
def oracle16k(speech16k) -> dict[str, dict[str, np.ndarray]]:
    return {b: _oracle_frames(b, speech16k) for b in BUILDS}


# ---------------------------------------------------------------------------------------------------------------
# frame features at 16 kHz


@pytest.fixture(scope="module")
def ours16k(speech16k, oracle16k) -> dict[str, dict[str, np.ndarray]]:
    """Ours with each build's kernels and libopus' own dnn_pitch of that build, per build."""
    return {b: _ours(*BUILDS[b], speech16k, oracle16k[b]["dnn_pitch"]) for b in BUILDS}


def _check_bit_exact(build, oracle16k, ours16k):
    agree = _agreement(ours16k[build], oracle16k[build])
    assert all(share == 1.0 for _, share in agree.values()), f"{build} kernels={BUILDS[build][1]}: {agree}"


@pytest.mark.parametrize("build", ["libopus-1.5.2-generic", "libopus-1.6.1-generic"])
def test_c_kernels_bit_exact_with_generic_build(build, oracle16k, ours16k):
    """Plain C kernels vs a --disable-intrinsics --disable-rtcd build: all 36 features, the 88 IF and the 224
    xcorr features, bit for bit, on every one of 200 frames (2 s of speech with its leading silence)."""
    _check_bit_exact(build, oracle16k, ours16k)


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
def test_x86_kernels_bit_exact_with_default_build(build, oracle16k, ours16k, require_avx2_dispatch):
    """SSE inner products and FIR, AVX2/FMA pitch xcorr vs the default build: bit for bit on 200 frames."""
    _check_bit_exact(build, oracle16k, ours16k)


@pytest.mark.parametrize("release", ["1.5.2", "1.6.1"])
def test_x86_kernels_within_libopus_spread(release, oracle16k, ours16k):
    """Everywhere: kernels='x86' vs the default build stays inside the default-vs-generic spread of libopus on
    the same input, per feature group (measured here; zero where libopus' builds agree)."""
    default, generic = oracle16k[f"libopus-{release}"], oracle16k[f"libopus-{release}-generic"]
    spread = _agreement(default, generic)
    ours = _agreement(ours16k[f"libopus-{release}"], default)
    for g in GROUPS:
        assert ours[g][0] <= spread[g][0], f"{g}: ours {ours[g][0]:.3g} > libopus' spread {spread[g][0]:.3g}"


@pytest.mark.parametrize("release", ["1.5.2", "1.6.1"])
def test_kernel_choice_matters(release, speech16k, oracle16k):
    """The two kernel emulations are not interchangeable: the C kernels do not reproduce the default build's
    pitch correlations, nor the x86 kernels the generic build's (so the bit-exact tests check the kernels)."""
    n = 100
    for build, kernels in [(f"libopus-{release}", "c"), (f"libopus-{release}-generic", "x86")]:
        ref = {k: v[:n] for k, v in oracle16k[build].items()}
        agree = _agreement(_ours(f"libopus-{release}", kernels, speech16k[: 160 * n], ref["dnn_pitch"]), ref)
        assert agree["xcorr"][1] < 0.5 and agree["cepstrum"][1] == 1.0, (build, kernels, agree)


def test_release_arithmetic_matters(speech16k, oracle16k):
    """1.6's celt_log2 is not 1.5's: the 1.5.2 profile's arithmetic does not give the 1.6.1 build's features
    (the IF log-energies and the cepstrum change in every non-silent frame)."""
    n = 100
    ref = {k: v[:n] for k, v in oracle16k["libopus-1.6.1-generic"].items()}
    agree = _agreement(_ours("libopus-1.5.2", "c", speech16k[: 160 * n], ref["dnn_pitch"]), ref)
    assert agree["cepstrum"][1] < 0.5 and agree["if"][1] < 0.5, agree


def test_batch_of_streams_equals_each_stream(speech16k):
    """32 streams in one extractor (different segments of speech; a batch this wide takes the loop path of the
    sequential sums) give each stream's libopus features bit for bit (generic build, C kernels)."""
    n, frames = 32, 12
    pcm = load_clip("ps-librivox-all", 16000)
    segs = np.stack([pcm[i * 4000: i * 4000 + 160 * frames] for i in range(n)]).astype(np.float32)
    refs = [_oracle_frames("libopus-1.6.1-generic", s) for s in segs]
    pitch = np.stack([r["dnn_pitch"] for r in refs], axis=1)  # [F, B]
    ex = F.FeatureExtractor("libopus-1.6.1", kernels="c", pitch=_lockstep(pitch))
    got = [ex.frame(segs[:, i * 160:(i + 1) * 160]) for i in range(frames)]
    for b, r in enumerate(refs):
        feats = np.stack([g.features[b] for g in got])
        xc = np.stack([g.xcorr_features[b] for g in got])
        assert np.array_equal(feats.view(np.uint32), r["features"].view(np.uint32)), b
        assert np.array_equal(xc.view(np.uint32), r["xcorr_features"].view(np.uint32)), b


# ---------------------------------------------------------------------------------------------------------------
# the 16 kHz conversion, and the features through it


def _libopus_16k(build: str, fs: int, pcm: np.ndarray, channels: int = 1) -> np.ndarray:
    """libopus' 16 kHz samples for ``pcm`` at ``fs``, as ``dred_compute_latents`` buffers them (2.5 ms calls).

    Before a call ``input_buffer[:prev]`` holds the newest ``prev`` samples of the stream (which starts with
    ``DRED_SILK_ENCODER_DELAY`` zeros) and the call appends its ``new`` samples. Without a 20 ms frame done,
    ``input_buffer[:prev + new]`` is the stream's tail; with one, the buffer is moved down by 320 in place
    (``OPUS_MOVE``), so ``input_buffer[:fill]`` holds the stream from 320 on and ``input_buffer[fill:prev +
    new]`` still holds what was there, the stream from ``fill`` on: the samples up to 320 that the frame read.
    Every sample is read once (asserted)."""
    unit = fs // 400
    n16 = pcm.shape[0] // channels // unit * 40
    enc = LibopusDredEncoder(Oracle.for_build(build), fs, channels)
    st = enc.state()
    start = 0  # stream index of input_buffer[0]
    out = np.zeros(st.input_buffer_fill + n16, np.float32)
    seen = np.zeros(out.shape[0], bool)
    out[: st.input_buffer_fill] = st.input_buffer[: st.input_buffer_fill]
    seen[: st.input_buffer_fill] = True
    delay = st.input_buffer_fill
    for pos in range(0, n16 // 40 * unit, unit):
        prev = st.input_buffer_fill
        enc.compute_latents(pcm[pos * channels:(pos + unit) * channels])
        st = enc.state()
        end = prev + 40
        out[start + prev: start + end] = st.input_buffer[prev:end]  # as written (left in place by the move)
        seen[start + prev: start + end] = True
        if st.input_buffer_fill != end:  # a frame was done: the buffer moved down by 320
            fill = st.input_buffer_fill
            assert fill == end - 320
            assert np.array_equal(st.input_buffer[:fill], out[start + 320: start + end])
            start += 320
    assert seen.all(), "input_buffer did not show every sample"
    return out[delay:]


def _speech_at(fs: int, seconds: float) -> np.ndarray:
    """Real speech at ``fs`` as float PCM (±1), with 20 ms of digital silence first and a clipped stretch."""
    from scipy.signal import resample_poly  # lazy: scipy is slow to import

    x48 = load_clip(None, 48000)[40000: 40000 + int(48000 * seconds)].astype(np.float64)
    x = np.round(resample_poly(x48, fs, 48000)) / 32768.0
    x[len(x) // 2: len(x) // 2 + fs // 100] *= 4  # beyond ±1: FLOAT2INT16 clamps
    return np.concatenate([np.zeros(fs // 50), x]).astype(np.float32)


@pytest.mark.parametrize("fs", [8000, 12000, 16000, 24000, 48000])
@pytest.mark.parametrize("build", ["libopus-1.5.2-generic", "libopus-1.6.1-generic"])
def test_resampler_and_features_through_each_rate(build, fs):
    """0.6 s of speech at each input rate: our 16 kHz samples equal the ones libopus' DRED encoder buffers,
    bit for bit (silence, VERY_SMALL in 1.6, clipping included), and the feature frames of our conversion
    equal libopus' extractor on libopus' own conversion, frame by frame."""
    pcm = _speech_at(fs, 0.6)
    theirs = _libopus_16k(build, fs, pcm)
    ours = F.Resampler(fs, build.replace("-generic", "")).process(pcm)
    assert np.array_equal(theirs.view(np.uint32), ours.view(np.uint32)), \
        f"first difference at 16 kHz sample {int(np.argmax(theirs.view(np.uint32) != ours.view(np.uint32)))}"
    n = (ours.shape[0] // 160) * 160
    ref = _oracle_frames(build, theirs[:n])
    got = _ours(build.replace("-generic", ""), "c", ours[:n], ref["dnn_pitch"])
    agree = _agreement(got, ref)
    assert all(share == 1.0 for _, share in agree.values()), agree


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1-generic"])
def test_resampler_stereo(build):
    """Stereo at 48 kHz (``.5*up*(l+r)`` in double before the int16 rounding) equals libopus."""
    mono = _speech_at(48000, 0.2)
    pcm = np.stack([mono, np.roll(mono, 17) * np.float32(0.5)], axis=1).reshape(-1)
    theirs = _libopus_16k(build, 48000, pcm, channels=2)
    ours = F.Resampler(48000, build.replace("-generic", ""), channels=2).process(pcm)
    assert np.array_equal(theirs.view(np.uint32), ours.view(np.uint32))


def test_resampler_release_matters():
    """1.6's +VERY_SMALL is real: the 1.5.2 conversion does not give the 1.6.1 build's samples (silence)."""
    pcm = _speech_at(16000, 0.1)
    theirs = _libopus_16k("libopus-1.6.1-generic", 16000, pcm)
    old = F.Resampler(16000, "libopus-1.5.2").process(pcm)
    assert not np.array_equal(theirs.view(np.uint32), old.view(np.uint32))


# ---------------------------------------------------------------------------------------------------------------
# the chain with the reference PitchDNN


@pytest.mark.parametrize("build,pitch", [("libopus-1.5.2", None), ("libopus-1.6.1-generic", "sse2")])
def test_chain_with_reference_pitchdnn(build, pitch, speech16k, oracle16k, require_default_numerics_host):
    """With the reference PitchDNN (by default the preset of the kernels' build: avx2 with x86, or named) the
    extractor is libopus' whole ``lpcnet_compute_single_frame_features_float``: bit for bit on 60 frames."""
    profile, kernels = BUILDS[build]
    n = 60
    out = F.FeatureExtractor(profile, kernels=kernels, pitch=pitch).frames(speech16k[: 160 * n])
    ref = {k: v[:n] for k, v in oracle16k[build].items()}
    agree = _agreement({"features": out.features, "if_features": out.if_features,
                        "xcorr_features": out.xcorr_features}, ref)
    assert all(share == 1.0 for _, share in agree.values()), agree


# ---------------------------------------------------------------------------------------------------------------
# the arithmetic helpers


def _round_f32(q: Fraction) -> np.float32:
    """The float32 nearest the rational ``q`` (ties to even), by exact comparison."""
    near = np.float32(float(q))
    cands = [np.nextafter(near, np.float32(-np.inf)), near, np.nextafter(near, np.float32(np.inf))]
    return min(cands, key=lambda c: (abs(Fraction(float(c)) - q), int(np.asarray(c).view(np.uint32)) & 1))


def test_fma32_rounds_once():
    """``fma32`` equals the exactly rounded ``a·b + c`` where rounding through double would not: a normal
    result (``c = 1 + 2^-23``, ``a·b = 2^-24 - 2^-70``) and a subnormal one, plus random and random
    near-midpoint triples."""
    f = np.float32
    one_ulp = f(1) + f(2.0 ** -23)
    cases = [(f(1 + 2.0 ** -23), f(2.0 ** -24 * (1 - 2.0 ** -23)), one_ulp),
             (f(2.0 ** -75 * (1 + 2.0 ** -23)), f(2.0 ** -75 * (1 - 2.0 ** -23)), f(2.0 ** -140 + 2.0 ** -149))]
    for a, b, c in cases:
        naive = np.float32(float(a) * float(b) + float(c))
        exact = _round_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))
        assert naive != exact  # the case is one where double rounding fails
        assert F.fma32(np.array([a]), np.array([b]), np.array([c]))[0] == exact
    rng = np.random.default_rng(7)
    a = rng.standard_normal(3000).astype(np.float32)
    b = rng.standard_normal(3000).astype(np.float32)
    c = rng.standard_normal(3000).astype(np.float32)
    # near-midpoint triples: c chosen so that a*b + c sits just beside a float32 midpoint
    k = np.arange(1000)
    b[k] = np.float32(2.0 ** -24) * (1 + (rng.integers(-4, 5, 1000) * 2.0 ** -23)).astype(np.float32)
    a[k] = (1 + rng.integers(-4, 5, 1000) * 2.0 ** -23).astype(np.float32)
    c[k] = (1 + rng.integers(0, 2 ** 10, 1000) * 2.0 ** -23).astype(np.float32)
    got = F.fma32(a, b, c)
    want = np.array([_round_f32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))
                     for x, y, z in zip(a, b, c)], np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_c_float_rounds_decimal_once():
    """``c_float`` rounds a decimal literal once to float32, as a C compiler does; going through double rounds
    twice and would round this literal (a hair above the midpoint of 1 and 1 + 2^-23) down."""
    lit = format(1 + 2 ** -24, ".30f") + "000001"  # 1 + 2^-24 is exact in 30 decimals
    assert np.float32(float(lit)) == np.float32(1)
    assert F.c_float(lit) == np.float32(1) + np.float32(2.0 ** -23)
    assert F.c_float("0.85") == np.float32(0.85)


def test_seqsum_paths_are_sequential():
    """Both ways of ``_seqsum`` (cumsum over short rows, a loop over the terms for many rows) equal the
    plain sequential float32 sum."""
    rng = np.random.default_rng(3)
    for rows in (10, 5000):
        t = (rng.standard_normal((rows, 9)) * 10.0 ** rng.integers(-3, 4, (rows, 9))).astype(np.float32)
        init = rng.standard_normal(rows).astype(np.float32)
        want = init.copy()
        for j in range(t.shape[1]):
            want = want + t[:, j]
        assert np.array_equal(F._seqsum(init, t).view(np.uint32), want.view(np.uint32))


def _bitrev(factors: list[int]) -> np.ndarray:
    """kiss_fft's input permutation (``compute_bitrev_table``) for a factor plan ``[p0, m0, p1, m1, ...]``:
    ``bitrev[i]`` is the output position of input ``i``."""
    n = int(np.prod(factors[0::2]))
    perm = np.empty(n, np.intp)

    def walk(fout, fstride, start, fac):
        p, m = fac[0], fac[1]
        for j in range(p):
            if m == 1:
                perm[start + j * fstride] = fout + j
            else:
                walk(fout + j * m, fstride * p, start + j * fstride, fac[2:])
    walk(0, 1, 0, factors)
    return perm


def test_kiss_fft_radices_2_3_4_5():
    """The butterflies the 320-point plan does not use (radix 2 after a radix 4, radix 3) in a 120-point plan
    5·3·2·4 with kiss_fft's twiddles: equal to numpy's FFT (scaled by 1/n) within float32 rounding, and the
    pack's 320-point plan too."""
    factors = [5, 24, 3, 8, 2, 4, 4, 1]
    n = 120
    ph = -2 * np.pi * np.arange(n) / n
    base = F.tables("libopus-1.6.1")
    stages = []
    fstride, ms, radices = [1], factors[1::2], factors[0::2]
    for p in radices:
        fstride.append(fstride[-1] * p)
    m = ms[-1]
    for i in range(len(radices) - 1, -1, -1):
        m2 = ms[i - 1] if i else 1
        stages.append(F._Stage(radices[i], m, fstride[i], m2, fstride[i]))
        m = m2
    t = F.Tables(release=base.release, nfft=n, scale=np.float32(1 / n), bitrev=_bitrev(factors),
                 tw_r=np.cos(ph).astype(np.float32), tw_i=np.sin(ph).astype(np.float32), stages=tuple(stages),
                 half_window=base.half_window, dct=base.dct)
    rng = np.random.default_rng(5)
    for tab in (t, base):
        x = rng.standard_normal((3, tab.nfft)).astype(np.float32)
        y = rng.standard_normal((3, tab.nfft)).astype(np.float32)
        re, im = F.kiss_fft(x, y, tab)
        want = np.fft.fft(x.astype(np.float64) + 1j * y, axis=1) / tab.nfft
        err = np.max(np.abs(re + 1j * im - want))
        assert err < 8 * math.log2(tab.nfft) * 2.0 ** -24 * np.max(np.abs(want)), (tab.nfft, err)


# ---------------------------------------------------------------------------------------------------------------
# errors


def test_errors_name_the_parameter():
    pitch = _lockstep(np.zeros(4))
    with pytest.raises(F.FeatureError, match="^kernels:"):
        F.FeatureExtractor("libopus-1.6.1", kernels="avx512", pitch=pitch)
    ex = F.FeatureExtractor("libopus-1.6.1", pitch=lambda a, b: np.zeros(a.shape[0], np.float32))
    with pytest.raises(F.FeatureError, match="^pcm160:"):
        ex.frame(np.zeros(159, np.float32))
    ex.frame(np.zeros((2, 160), np.float32))
    with pytest.raises(F.FeatureError, match="^pcm160: 3 streams"):
        ex.frame(np.zeros((3, 160), np.float32))
    with pytest.raises(F.FeatureError, match="^pcm16k:"):
        ex.frames(np.zeros(161, np.float32))
    bad = F.FeatureExtractor("libopus-1.6.1", pitch=lambda a, b: np.full(a.shape[0], -2.0, np.float32))
    with pytest.raises(F.FeatureError, match="^pitch: .*outside"):
        bad.frame(np.zeros(160, np.float32))
    with pytest.raises(F.FeatureError, match="^pitch: the pitch source returned 1 values for 2 streams"):
        F.FeatureExtractor("libopus-1.6.1", pitch=pitch).frame(np.zeros((2, 160), np.float32))
    with pytest.raises(F.FeatureError, match="^fs:"):
        F.Resampler(44100, "libopus-1.6.1")
    with pytest.raises(F.FeatureError, match="^channels:"):
        F.Resampler(48000, "libopus-1.6.1", channels=3)
    with pytest.raises(F.FeatureError, match="^pcm: 10 samples at 12000"):
        F.Resampler(12000, "libopus-1.6.1").process(np.zeros(10, np.float32))
