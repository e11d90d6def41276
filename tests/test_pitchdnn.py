"""PitchDNN in pure JAX (opus_dred.refimpl._pitchdnn) against libopus' compute_pitchdnn, and its properties.

Agreement: five clips of real speech (2.75 s each, 275 frames) go through each libopus build's feature extractor
(``lpcnet_compute_single_frame_features_float``: one extractor per clip, so its PitchDNN state runs through the
clip); the if/xcorr features it computed go through our PitchDNN, frame by frame with state, and our
``dnn_pitch`` is compared with the build's. 1375 frames per build, four builds (default and generic of 1.5.2
and 1.6.1). Off the speech distribution, random inputs go through ``compute_pitchdnn`` directly.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl import _pitchdnn as pd

RELEASES = ("1.5.2", "1.6.1")
#: each libopus build of the oracle and the preset that emulates it on this CPU (its RCPPS table)
BUILDS = (("default", "avx2"), ("generic", "sse2"))
CLIPS = ("codec2-speech-orig-16k", "ps-librivox-0870", "ps-numbers", "ps-something", "ps-goforward")
FS = 16000
#: 10 ms frames per clip (the shortest clip, ps-goforward, has 278)
FRAMES = 275


@functools.cache
def params(release: str):
    return pd.pitchdnn_params(f"libopus-{release}")


def _oracle(release: str, build: str):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(f"libopus-{release}" + ("" if build == "default" else f"-{build}"))


#: a whole ``[FRAMES, streams]`` run in one compiled call (``num`` static)
_frames = jax.jit(pd.pitchdnn_frames, static_argnames="num")


def _run(release: str, if_features, xcorr, preset: str) -> np.ndarray:
    num = nnet.for_host(nnet.NUMERICS[preset])
    return np.asarray(_frames(params(release), if_features, xcorr, num=num)[1])


# ---------------------------------------------------------------------------------------------------
# Oracle agreement
# ---------------------------------------------------------------------------------------------------


@functools.cache
def speech(release: str, build: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The build's own ``(if_features [T, S, 88], xcorr [T, S, 224], dnn_pitch [T, S])`` on the clips."""
    from opus_dred.libopus._encoder import LibopusFeatureExtractor
    from opus_dred.speech._corpus import load_clip

    oracle = _oracle(release, build)
    per_clip = []
    for clip in CLIPS:
        pcm = load_clip(clip, rate=FS)[: FRAMES * 160].astype(np.float32)
        per_clip.append(LibopusFeatureExtractor(oracle).frames(pcm))
    iff = np.stack([[f.if_features for f in fr] for fr in per_clip], axis=1)
    xc = np.stack([[f.xcorr_features for f in fr] for fr in per_clip], axis=1)
    pitch = np.array([[f.dnn_pitch for f in fr] for fr in per_clip], np.float32).T
    assert iff.shape == (FRAMES, len(CLIPS), pd.NB_IF_FEATURES) and xc.shape == (FRAMES, len(CLIPS), 224)
    return iff, xc, pitch


def _random_inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``[FRAMES, 5]`` frames of uniform noise in [-1, 1] (two streams), of speech inputs with noise added
    (two), and (one) if features at +-1, the ends of their range, with xcorr noise at three times it."""
    rng = np.random.default_rng(seed)
    iff, xc, _ = speech("1.6.1", "default")
    shape_if, shape_xc = (FRAMES, 5, pd.NB_IF_FEATURES), (FRAMES, 5, pd.NB_XCORR_FEATURES)
    a = rng.uniform(-1, 1, shape_if).astype(np.float32)
    b = rng.uniform(-1, 1, shape_xc).astype(np.float32)
    a[:, 2:4] = np.clip(iff[:, :2] + 0.2 * a[:, 2:4], -1, 1)  # lpcnet_enc.c keeps them in [-1, 1]
    b[:, 2:4] = xc[:, :2] + 0.2 * b[:, 2:4]
    a[:, 4] = np.sign(a[:, 4])
    b[:, 4] *= 3
    return a, b


@functools.cache
def libopus_on(release: str, build: str, seed: int) -> np.ndarray:
    """The build's ``compute_pitchdnn`` on :func:`_random_inputs`, one PitchDNN state per stream."""
    from opus_dred.libopus._encoder import LibopusFeatureExtractor

    iff, xc = _random_inputs(seed)
    oracle = _oracle(release, build)
    out = np.zeros(iff.shape[:2], np.float32)
    for s in range(iff.shape[1]):
        ex = LibopusFeatureExtractor(oracle)
        out[:, s] = [ex.pitchdnn(iff[t, s], xc[t, s]) for t in range(iff.shape[0])]
    return out


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_bit_exact_with_libopus_on_speech(release, build, require_native_emulation):
    """Where this CPU's RCPPS is the emulated table (measured): the dnn_pitch of every one of the 1375 speech
    frames, bit for bit as the build computes it (avx2 preset: default build; sse2: generic)."""
    iff, xc, ref = speech(release, build)
    mine = _run(release, iff, xc, dict(BUILDS)[build])
    assert mine.shape == ref.shape == (FRAMES, len(CLIPS))
    assert np.ptp(ref) > 0.5  # the clips span pitches: not a constant output
    np.testing.assert_array_equal(mine, ref)


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_bit_exact_with_libopus_off_distribution(release, build, require_native_emulation):
    """The same on 1375 frames of random and perturbed inputs through ``compute_pitchdnn`` itself (five fresh
    states), including if features all at +-1 (the int8 inputs 0 and 254) and xcorr values up to 3."""
    iff, xc = _random_inputs(seed=5)
    ref = libopus_on(release, build, seed=5)
    np.testing.assert_array_equal(_run(release, iff, xc, dict(BUILDS)[build]), ref)


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_emulation_within_libopus_build_spread(release, build):
    """Everywhere (whatever this CPU's RCPPS): on the speech inputs of one build, each preset's dnn_pitch is
    no further from that build than the other build is (``compute_pitchdnn`` of the other build on the same
    inputs; measured here: 8.7 % (1.5.2) and 14 % (1.6.1) of the frames differ, 99th percentile 1.2e-4 and
    1.4e-4): 99th percentile within twice the spread's (or 1e-3), frames off by more than 0.05 (three pitch
    bins, where the arg-max moves) at most twice as many as the spread's (or 1 %)."""
    iff, xc, ref = speech(release, build)
    other = "generic" if build == "default" else "default"
    from opus_dred.libopus._encoder import LibopusFeatureExtractor

    oracle = _oracle(release, other)
    alt = np.zeros_like(ref)
    for s in range(ref.shape[1]):
        ex = LibopusFeatureExtractor(oracle)
        alt[:, s] = [ex.pitchdnn(iff[t, s], xc[t, s]) for t in range(FRAMES)]
    spread = np.abs(alt - ref)
    assert 0 < spread.max() < 0.5 and (spread > 0).mean() > 0.02  # the two builds differ, by little
    d = np.abs(_run(release, iff, xc, dict(BUILDS)[build]) - ref)
    assert np.percentile(d, 99) <= max(2 * np.percentile(spread, 99), 1e-3), np.percentile(d, 99)
    assert (d > 0.05).mean() <= max(2 * (spread > 0.05).mean(), 0.01), (d > 0.05).mean()


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_float_path_close_to_libopus(release):
    """The dequantised model with exact activations and XLA's exp stays near libopus' default build on speech:
    median error below 1e-3 and 90th percentile below 2e-3 (1/60 is one pitch bin), at most 5 % of frames off
    by more than 0.05, none by more than 1.2 (measured on this host: medians 1.6e-4, 90th percentiles 5e-4,
    1.0 and 1.6 % of frames above 0.05, where the arg-max bin moves, max 0.87)."""
    iff, xc, ref = speech(release, "default")
    d = np.abs(_run(release, iff, xc, "float") - ref)
    assert np.median(d) < 1e-3 and np.percentile(d, 90) < 2e-3, (np.median(d), np.percentile(d, 90))
    assert (d > 0.05).mean() < 0.05 and d.max() < 1.2, ((d > 0.05).mean(), d.max())
    assert (d > 0).all()  # the float model is not libopus' arithmetic: a zero means a wrong comparison


# ---------------------------------------------------------------------------------------------------
# Properties (no oracle)
# ---------------------------------------------------------------------------------------------------


def _noise(seed: int, frames: int, streams: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (frames, streams, pd.NB_IF_FEATURES)).astype(np.float32),
            rng.uniform(-1, 1, (frames, streams, pd.NB_XCORR_FEATURES)).astype(np.float32))


def test_vmap_equals_per_stream_and_batch_axes():
    """``jax.vmap`` over streams, leading batch axes, and one stream at a time give the same bits (avx2
    preset; 5 streams of 275 frames of noise)."""
    p, num = params("1.6.1"), nnet.for_host(nnet.LIBOPUS_AVX2)
    iff, xc = _noise(7, FRAMES, 5)
    vmapped = jax.jit(jax.vmap(lambda a, b: pd.pitchdnn_frames(p, a, b, num)[1], in_axes=1, out_axes=1))(iff, xc)
    batched = _frames(p, iff, xc, num=num)[1]
    single = np.stack([np.asarray(_frames(p, iff[:, s], xc[:, s], num=num)[1]) for s in range(5)], axis=1)
    assert vmapped.shape == batched.shape == single.shape == (FRAMES, 5)
    np.testing.assert_array_equal(np.asarray(vmapped), single)
    np.testing.assert_array_equal(np.asarray(batched), single)
    assert len(np.unique(single)) > 100


def test_pitchdnn_class_steps_streams():
    """``PitchDNN.step`` carries each stream's state: frame by frame it equals the scan over the frames (sse2
    preset, 5 streams of 275 frames); ``reset`` starts afresh; a different batch size needs ``reset``; bad
    inputs and presets raise PitchDNNError."""
    from opus_dred.refimpl import PitchDNN

    assert PitchDNN is pd.PitchDNN  # the facade's name
    iff, xc = _noise(11, FRAMES, 5)
    model = PitchDNN("libopus-1.5.2", "sse2")
    got = np.stack([model.step(iff[t], xc[t]) for t in range(FRAMES)])
    assert got.shape == (FRAMES, 5) and got.dtype == np.float32
    want = np.asarray(_frames(params("1.5.2"), iff, xc, num=nnet.LIBOPUS_SSE2)[1])
    np.testing.assert_array_equal(got, want)
    with pytest.raises(pd.PitchDNNError, match="batch of 3 streams, the state holds 5"):
        model.step(np.zeros((3, 88), np.float32), np.zeros((3, 224), np.float32))
    model.reset()
    np.testing.assert_array_equal(model.step(iff[0], xc[0]), want[0])
    with pytest.raises(pd.PitchDNNError, match=r"\[B, 224\], got \(88,\) and \(224,\)"):
        model.step(iff[0, 0], xc[0, 0])
    with pytest.raises(pd.PitchDNNError, match="xcorr_features has width 200"):
        model.step(iff[0], np.zeros((5, 200), np.float32))
    with pytest.raises(pd.PitchDNNError, match="numerics 'avx3'"):
        pd.PitchDNN("libopus-1.5.2", "avx3")
    with pytest.raises(pd.PitchDNNError, match="xcorr_features has width 200"):
        pd.pitchdnn_step(params("1.5.2"), pd.init_pitch_state(params("1.5.2")), iff[0, 0], np.zeros(200))


def test_params_from_pack_profile_and_errors():
    """A profile name, a pack id and a pack object give the same parameters; a pack without PitchDNN's layers
    or with other widths is refused, naming what is wrong."""
    by_profile = pd.pitchdnn_params("libopus-1.6.1")
    pack = load_pack("libopus-1.6.1")
    by_pack = pd.pitchdnn_params(pack)
    assert set(by_profile) == set(pd.LINEAR_LAYERS + pd.CONV_LAYERS)
    for name in by_profile:
        for leaf in by_profile[name]:
            np.testing.assert_array_equal(by_profile[name][leaf], by_pack[name][leaf])
    assert by_profile["conv2d_1"]["weight"].shape == (4, 1, 3, 3)
    with pytest.raises(pd.PitchDNNError, match="gru_1_recurrent"):
        layers = {k: v for k, v in pack.layers.items() if k != "gru_1_recurrent"}
        pd.pitchdnn_params(SimpleNamespace(arrays=pack.arrays, manifest={"layers": layers}))
    with pytest.raises(pd.PitchDNNError, match="layer dense_if_upsampler_1: .*bias has"):
        layers = dict(pack.layers)
        layers["dense_if_upsampler_1"] = dict(layers["dense_if_upsampler_1"], nb_inputs=64, nb_outputs=88)
        pd.pitchdnn_params(SimpleNamespace(arrays=pack.arrays, manifest={"layers": layers}))
    with pytest.raises(pd.PitchDNNError, match="dense_if_upsampler_1 inputs is 64, expected 88"):
        layers = dict(pack.layers)  # the second IF layer's weights in the first one's place
        layers["dense_if_upsampler_1"] = dict(layers["dense_if_upsampler_2"], name="dense_if_upsampler_1")
        arrays = dict(pack.arrays)
        for key in [k for k in arrays if k.startswith("dense_if_upsampler_2_")]:
            arrays[key.replace("_2_", "_1_")] = arrays[key]
        pd.pitchdnn_params(SimpleNamespace(arrays=arrays, manifest={"layers": layers}))
    with pytest.raises(pd.PitchDNNError, match="int"):
        pd.pitchdnn_params(3)


def test_exp_rounded_is_the_rounded_exponential():
    """``exp_rounded`` against float64 ``exp`` rounded to float32 (what libopus' ``(float) exp((double) x)``
    is) on 2^20 random float32 in [-87, 88.7] and 2^18 in [-1, 1]: at most 2^-16 of them differ, by one ulp
    (measured: 1 in 2^22 over [-30, 30]); zero, infinities, NaN and the overflow edge exactly. XLA's own exp
    differs on about a tenth of them."""
    rng = np.random.default_rng(2)
    exp = jax.jit(pd.exp_rounded)
    for lo, hi, n in ((-87.0, 88.7, 1 << 20), (-1.0, 1.0, 1 << 18)):
        x = rng.uniform(lo, hi, n).astype(np.float32)
        ref = np.exp(x.astype(np.float64)).astype(np.float32)
        got = np.asarray(exp(x))
        bad = got != ref
        assert bad.mean() <= 2.0 ** -16, bad.sum()
        ulps = np.abs(got.view(np.int32).astype(np.int64) - ref.view(np.int32).astype(np.int64))
        assert ulps.max() <= 1
        if lo < -2:
            assert (np.asarray(jax.jit(jnp.exp)(x)) != ref).mean() > 0.01
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.72, 88.73, 89.0, 200.0, -104.0, -1000.0, 1e-30,
                        -1e-30], np.float32)
    with np.errstate(over="ignore"):
        ref = np.exp(special.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(exp(special)), ref)


def test_pitch_estimate_rules():
    """compute_pitchdnn's arg-max rule: the first of equal maxima wins, a maximum of -1 or below falls back to
    bin 0, the window is clipped at the ends; only the first 180 outputs count."""
    for num in (nnet.LIBOPUS_AVX2, nnet.FLOAT):
        logits = np.full((4, 192), -3.0, np.float32)
        logits[0, [40, 100]] = 2.0  # tie: bin 40, symmetric window
        logits[1, :] = -1.0  # nothing above -1: bin 0, window 0..2, all equal weights
        logits[2, 179] = 5.0  # last bin: window 177..179
        logits[2, 185] = 9.0  # beyond the 180 bins read
        logits[3, 0], logits[3, 1] = 0.0, 0.0  # two maxima at the start: bin 0, window 0..2
        got = np.asarray(jax.jit(pd.pitch_estimate, static_argnums=1)(jnp.asarray(logits), num))
        e = np.exp(np.float64(-8.0))
        want = np.array([40 / 60, 1 / 60, ((177 + 178) * e + 179) / (2 * e + 1) / 60,
                         (1 + 2 * np.exp(-3.0)) / (2 + np.exp(-3.0)) / 60]) - 1.5
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def _conv_reference(w, b, frames):
    """conv2d over ``frames [kt, in, H + kh - 1]`` in numpy float32, every product and sum rounded, in the
    order of libopus' loops without FMA."""
    n_out, n_in, kt, kh = w.shape
    height = frames.shape[-1] - kh + 1
    out = np.zeros((n_out, height), np.float32)
    for o in range(n_out):
        acc = np.zeros(height, np.float32)
        for m in range(n_in):
            if kt == kh == 3:
                s = None
                for t in range(kt):
                    for h in range(kh):
                        prod = np.float32(w[o, m, t, h]) * frames[t, m, h:h + height]
                        s = prod if s is None else (s + prod).astype(np.float32)
                acc = (acc + s).astype(np.float32)
            else:
                for t in range(kt):
                    for h in range(kh):
                        acc = (acc + np.float32(w[o, m, t, h]) * frames[t, m, h:h + height]).astype(np.float32)
        out[o] = (acc + b[o]).astype(np.float32)
    return out


@pytest.mark.parametrize("shape", [(2, 3, 3, 3), (3, 2, 2, 4)])
def test_conv2d_orders(shape):
    """``nnet.conv2d``: without FMA, the emulation's sums are bit for bit numpy's float32 sums in libopus'
    order (the 3x3 kernel's per-channel sum, and the generic kernel's one product at a time); the float path
    equals a float64 convolution to 1e-5; the memory keeps the last ``ktime - 1`` frames."""
    rng = np.random.default_rng(sum(shape))
    n_out, n_in, kt, kh = shape
    p = {"weight": jnp.asarray(rng.standard_normal(shape).astype(np.float32)),
         "bias": jnp.asarray(rng.standard_normal(n_out).astype(np.float32))}
    mem = rng.standard_normal((kt - 1, n_in, 30)).astype(np.float32)
    x = rng.standard_normal((n_in, 30)).astype(np.float32)
    frames = np.concatenate([mem, x[None]])
    conv = jax.jit(nnet.conv2d, static_argnames=("num", "activation"))
    y, new_mem = conv(p, mem, x, num=nnet.LIBOPUS_SSE2, activation="linear")
    np.testing.assert_array_equal(np.asarray(y), _conv_reference(np.asarray(p["weight"]), np.asarray(p["bias"]),
                                                                 frames))
    np.testing.assert_array_equal(np.asarray(new_mem), frames[1:])
    w64 = np.asarray(p["weight"], np.float64)
    want = np.stack([sum(w64[o, m, t, h] * frames[t, m, h:h + 30 - kh + 1] for m in range(n_in)
                         for t in range(kt) for h in range(kh)) for o in range(n_out)]) + np.asarray(p["bias"])[:, None]
    yf, _ = conv(p, mem, x, num=nnet.FLOAT, activation="linear")
    np.testing.assert_allclose(np.asarray(yf), want, rtol=0, atol=1e-5)
    yt, _ = conv(p, mem, x, num=nnet.FLOAT, activation="tanh")
    np.testing.assert_allclose(np.asarray(yt), np.tanh(want), rtol=0, atol=1e-5)
