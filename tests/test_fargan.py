"""FARGAN in pure JAX (opus_dred.refimpl._fargan) against libopus' fargan.c, and its properties.

Agreement: four clips of real speech go through each libopus build's feature extractor
(``lpcnet_compute_single_frame_features_float``); the vocoder is primed (``fargan_cont``) with the 320 real samples
before frame 20 and five feature vectors, then synthesizes 150 frames (1.5 s) per clip from the build's features:
600 frames (96 000 samples) per build, four builds (default and generic of 1.5.2 and 1.6.1). The features lag the
speech by about 1.5 frames (the extractor's look-ahead): frame ``t`` is synthesized from feature vector ``t + 1``
and the output is compared with the speech 80 samples later (``dred_compare -audio -skip 80``). Both releases
ship the same FARGAN weights (checked below); each release's own builds and feature extractor are compared.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from opus_dred.conformance._metric import compare_audio
from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _fargan as fg
from opus_dred.refimpl import _nnet as nnet

RELEASES = ("1.5.2", "1.6.1")
#: each libopus build of the oracle and the preset that emulates it on this CPU (its RCPPS table)
BUILDS = (("default", "avx2"), ("generic", "sse2"))
CLIPS = ("codec2-speech-orig-16k", "ps-librivox-0870", "ps-numbers", "ps-goforward")
#: the clips the dred_compare figures are computed on (the first METRIC_FRAMES frames of each)
METRIC_CLIPS = (0, 2)
METRIC_FRAMES = 100
FS = 16000
START = 20  #: the first synthesized frame (of the speech)
FRAMES = 150  #: synthesized frames per clip
LAG = 1  #: feature vector START + LAG + t drives output frame t
SKIP = 80  #: output samples ahead of the speech they match


@functools.cache
def params(release: str):
    return fg.fargan_params(f"libopus-{release}")


def _oracle(release: str, build: str):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(f"libopus-{release}" + ("" if build == "default" else f"-{build}"))


def _libopus_run(release: str, build: str, pcm0, features0, features, as_int: bool = False) -> np.ndarray:
    """One ``FARGANState`` per stream of the build: cont, then synthesize each frame: ``[S, T * 160]``."""
    from opus_dred.libopus._listen import LibopusFargan

    oracle = _oracle(release, build)
    out = []
    for s in range(features.shape[0]):
        v = LibopusFargan(oracle)
        v.cont(pcm0[s], features0[s])
        synth = v.synthesize_int if as_int else v.synthesize
        out.append(np.concatenate([synth(f) for f in features[s]]))
    return np.stack(out)


@functools.cache
def speech(release: str, build: str) -> dict:
    """The build's own features of the clips, the priming inputs and the build's vocoder output on them."""
    from opus_dred.libopus._encoder import LibopusFeatureExtractor
    from opus_dred.speech._corpus import load_clip

    oracle = _oracle(release, build)
    p0, f0, fe, orig = [], [], [], []
    for clip in CLIPS:
        pcm = load_clip(clip, rate=FS).astype(np.float32)
        n = START + LAG + FRAMES
        feats = np.array([f.features for f in LibopusFeatureExtractor(oracle).frames(pcm[: n * 160])], np.float32)
        assert feats.shape == (n, 36)
        p0.append(pcm[START * 160 - fg.CONT_SAMPLES: START * 160] / 32768)
        f0.append(feats[START + LAG - fg.CONT_VECTORS: START + LAG, : fg.NB_FEATURES])
        fe.append(feats[START + LAG: n, : fg.NB_FEATURES])
        orig.append(pcm[START * 160: (START + FRAMES) * 160].astype(np.int16))
    case = {"pcm0": np.stack(p0), "features0": np.stack(f0), "features": np.stack(fe), "speech": np.stack(orig)}
    case["ref"] = _libopus_run(release, build, case["pcm0"], case["features0"], case["features"])
    case["ref_int"] = _libopus_run(release, build, case["pcm0"], case["features0"], case["features"], as_int=True)
    return case


@functools.cache
def other_build_on(release: str, build: str) -> np.ndarray:
    """The *other* build's vocoder on this build's inputs."""
    c = speech(release, build)
    other = "generic" if build == "default" else "default"
    return _libopus_run(release, other, c["pcm0"], c["features0"], c["features"])


@functools.partial(jax.jit, static_argnums=0)
def _vocode_streams(num, p, features, pcm0, features0):
    """``vocode`` mapped over streams with ``jax.vmap``: the form the default preset runs in."""
    return jax.vmap(lambda f, x0, f0: fg.vocode(p, f, num, pcm0=x0, features0=f0))(features, pcm0, features0)


@functools.cache
def ours(release: str, build: str, preset: str) -> np.ndarray:
    """Our vocoder on the build's inputs, all clips at once, ``[S, T * 160]``: the avx2 preset as ``vocode``
    vmapped over the streams, the others through :class:`Fargan` with the streams as a leading batch axis."""
    c = speech(release, build)
    num = nnet.for_host(nnet.NUMERICS[preset])
    if preset == "avx2":
        return np.asarray(_vocode_streams(num, params(release), c["features"], c["pcm0"], c["features0"]))
    model = fg.Fargan(f"libopus-{release}", num)
    model.cont(c["pcm0"], c["features0"])
    return np.concatenate([model.synthesize(c["features"][:, t]) for t in range(FRAMES)], axis=-1)


def _as_int(x) -> np.ndarray:
    return np.asarray(fg.to_int16(x))


_FIGURES: dict[tuple, tuple[float, float, float]] = {}


def figures(ref: np.ndarray, test: np.ndarray, skip: int = 0) -> tuple[float, float, float]:
    """``dred_compare -audio -skip skip`` (err4, err16, pitch) of int16 signals ``[S, n]``, the worst over
    :data:`METRIC_CLIPS` and their first :data:`METRIC_FRAMES` frames; computed once per pair of signals."""
    n = METRIC_FRAMES * 160
    worst = np.zeros(3)
    for s in METRIC_CLIPS:
        r, t = ref[s][: n - skip], test[s][:n]
        if skip == 0 and np.array_equal(r, t):
            continue  # identical signals: every figure is 0
        key = (r.tobytes(), t.tobytes(), skip)
        if key not in _FIGURES:
            c = compare_audio(r, t, skip=skip)
            _FIGURES[key] = (c.err4, c.err16, c.pitch)
        worst = np.maximum(worst, _FIGURES[key])
    return tuple(float(v) for v in worst)


def spread(release: str) -> tuple[float, float, float]:
    """libopus' own build-to-build spread in those figures: the generic build's vocoder against the default
    build's, on the default build's inputs."""
    return figures(_as_int(speech(release, "default")["ref"]), _as_int(other_build_on(release, "default")))


# ---------------------------------------------------------------------------------------------------
# Oracle agreement
# ---------------------------------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_bit_exact_with_libopus_on_speech(release, build, require_native_emulation):
    """Where this CPU's RCPPS is the emulated table (measured): every one of the 96 000 samples (4 clips x 150
    frames, primed with the real speech) as the build's fargan_synthesize computes it, and as int16 as its
    fargan_synthesize_int rounds them (avx2 preset: default build; sse2: generic)."""
    c = speech(release, build)
    mine = ours(release, build, dict(BUILDS)[build])
    assert mine.shape == c["ref"].shape == (len(CLIPS), FRAMES * 160)
    assert np.sqrt(np.mean(c["ref"] ** 2)) > 0.02  # speech, not silence
    np.testing.assert_array_equal(mine, c["ref"])
    np.testing.assert_array_equal(_as_int(mine), c["ref_int"])


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_int16_conversion_is_libopus(release):
    """fargan_synthesize_int is fargan_synthesize and ``floor(.5 + clip(32768 x))``: libopus' int16 output is
    :func:`to_int16` of its own float output, sample for sample (96 000 samples); and :func:`to_int16` agrees with
    that double-precision expression on values around every rounding boundary and the clipping ends."""
    c = speech(release, "default")
    np.testing.assert_array_equal(_as_int(c["ref"]), c["ref_int"])
    k = np.arange(-33000, 33000, 7, dtype=np.float64)
    x = np.concatenate([(k + 0.5) / 32768, np.nextafter(((k + 0.5) / 32768).astype(np.float32), np.float32(0)),
                        np.nextafter(((k + 0.5) / 32768).astype(np.float32), np.float32(2)), [-2.0, 2.0, -1e-12, 0.0]])
    x = x.astype(np.float32)
    want = np.floor(0.5 + np.clip(np.float32(32768) * x, -32767, 32767).astype(np.float64)).astype(np.int16)
    np.testing.assert_array_equal(_as_int(x), want)


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_emulation_within_libopus_build_spread(release, build):
    """Everywhere (whatever this CPU's RCPPS): the build's preset is no further from the build, in the
    dred_compare -audio figures, than libopus' generic build is from its default one (:func:`spread`). The
    vocoder is chaotic: the other build's output departs from the waveform within frames (measured here,
    err4 / err16 / pitch, worst of two clips' first second: 1.5.2 0.27 / 1.00 / 0.011, 1.6.1 0.20 / 0.40 /
    0.007; the same, to 1 %, on the generic build's inputs); the emulation is within 1.5 times that (0 where it
    is bit-exact)."""
    c = speech(release, build)
    ref = _as_int(c["ref"])
    bound = spread(release)
    mine = figures(ref, _as_int(ours(release, build, dict(BUILDS)[build])))
    assert bound[0] > 0  # the builds do differ, so the bound is not vacuous
    for name, m, s in zip(("err4", "err16", "pitch"), mine, bound):
        assert m <= 1.5 * s + 1e-3, f"{name} {m:.4f} vs libopus' spread {s:.4f}"


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_float_close_to_libopus(release):
    """The FLOAT preset (dequantised weights, exact activations, XLA's exp and arithmetic) against the default
    build, in the dred_compare -audio figures: within twice libopus' own default-vs-generic spread (measured
    here: err4 / err16 / pitch 0.26 / 0.82 / 0.013 (1.5.2), 0.27 / 0.70 / 0.011 (1.6.1)); and as close to the
    real speech as libopus (measured: FLOAT 0.65 / 2.01 / 0.064, libopus 0.74 / 2.35 / 0.063 (1.5.2), 0.66 /
    2.04 / 0.064 and 0.65 / 2.04 / 0.067 (1.6.1); white noise scores 7 / 9 / 0.9)."""
    c = speech(release, "default")
    ref = _as_int(c["ref"])
    flt = _as_int(ours(release, "default", "float"))
    close = figures(ref, flt)
    for name, m, s in zip(("err4", "err16", "pitch"), close, spread(release)):
        assert m <= 2 * s + 1e-3, f"{name} {m:.4f} vs libopus' spread {s:.4f}"
    lib_vs_speech = figures(c["speech"], ref, SKIP)
    flt_vs_speech = figures(c["speech"], flt, SKIP)
    assert lib_vs_speech[0] < 1.0 and lib_vs_speech[1] < 3.0  # aligned (noise or another clip: err4 > 7)
    for name, m, s in zip(("err4", "err16", "pitch"), flt_vs_speech, lib_vs_speech):
        assert m <= 1.25 * s + 0.02, f"{name} against the speech: FLOAT {m:.4f}, libopus {s:.4f}"


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_emulation_as_close_to_speech_as_libopus(release):
    """The dred_compare -audio figures of the default preset's output against the real speech are libopus'
    (identical where bit-exact; within 1.25 times elsewhere): measured err4 0.74 / 0.65, err16 2.35 / 2.04,
    pitch 0.063 / 0.067 (1.5.2 / 1.6.1, worst of two clips' first second)."""
    c = speech(release, "default")
    lib = figures(c["speech"], _as_int(c["ref"]), SKIP)
    mine = figures(c["speech"], _as_int(ours(release, "default", "avx2")), SKIP)
    for name, m, s in zip(("err4", "err16", "pitch"), mine, lib):
        assert m <= 1.25 * s + 0.02, f"{name} against the speech: ours {m:.4f}, libopus {s:.4f}"


# ---------------------------------------------------------------------------------------------------
# The pitch period, the state, extreme inputs
# ---------------------------------------------------------------------------------------------------


def test_period_table_is_the_c_expression():
    """``pitch_period`` (float32 comparisons with the threshold table) equals fargan.c's double-precision
    expression (``period_of``) on 200 000 random float32 pitch features, on each threshold and its float32
    neighbours, and on the special values."""
    rng = np.random.default_rng(7)
    t = fg.period_thresholds()
    x = np.concatenate([rng.uniform(-3, 8, 150_000), rng.normal(0, 1, 50_000)]).astype(np.float32)
    x = np.concatenate([x, t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf)),
                        np.array([-np.inf, np.inf, np.nan, -30, -24.5, -1.5, 0, 7.5, 100], np.float32)])
    got = np.asarray(jax.jit(fg.pitch_period)(x))
    want = np.array([fg.period_of(v) for v in x])
    np.testing.assert_array_equal(got, want)
    assert {fg.INT_MIN, 0, 1, 91, 256, fg.PERIOD_CLAMP} <= set(got.tolist())  # every branch of the C expression


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_state_after_cont_and_period_are_libopus(release):
    """After fargan_cont and after each frame, ``last_period`` and ``deemph`` are libopus' (``FARGANState``), for
    pitch features over the whole range: periods 0 (features above 7.5), 1..297, the larger ones (we hold
    :data:`PERIOD_CLAMP`, which behaves alike) and the int conversion's overflow below -24.5 (INT_MIN)."""
    from opus_dred.libopus._listen import LibopusFargan

    c = speech(release, "default")
    model = fg.Fargan(f"libopus-{release}", nnet.for_host(nnet.LIBOPUS_AVX2))
    lib = LibopusFargan(_oracle(release, "default"))
    model.cont(c["pcm0"][0], c["features0"][0])
    lib.cont(c["pcm0"][0], c["features0"][0])
    assert int(model.state["last_period"]) == lib.info()["last_period"]
    assert np.float32(model.state["deemph"]) == np.float32(lib.info()["deemph_mem"])
    for pitch in (-1.5, 0.3, 7.6, 6.0, -1.69, -3.0, -30.0, 1.0):
        f = c["features"][0, 0].copy()
        f[fg.PITCH_FEATURE] = pitch
        model.synthesize(f)
        lib.synthesize(f)
        want = lib.info()["last_period"]
        want = min(want, fg.PERIOD_CLAMP) if want >= 0 else want
        assert int(model.state["last_period"]) == want == fg.period_of(np.float32(pitch)), pitch


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_extreme_periods_bit_exact(release, require_native_emulation):
    """Where bit-exactness holds: frames whose pitch feature gives period 0 (libopus then reads 42 floats past
    its pitch buffer, the conditioning convolution's memory, which we read too), periods below the
    prediction's 44 samples, beyond the embedding's last row, and the int conversion's overflow (INT_MIN:
    embedding row 0 as GCC compiles the overflowing clip, every prediction from the oldest sample), each
    followed by ordinary frames: the samples are libopus' default build's."""
    from opus_dred.libopus._listen import LibopusFargan

    c = speech(release, "default")
    model = fg.Fargan(f"libopus-{release}", nnet.for_host(nnet.LIBOPUS_AVX2))
    lib = LibopusFargan(_oracle(release, "default"))
    model.cont(c["pcm0"][2], c["features0"][2])
    lib.cont(c["pcm0"][2], c["features0"][2])
    pitches = [None, 9.0, None, None, 3.2, 5.0, None, -30.0, None, None, -2.5, 7.5, 8.0, None, None]
    for k, pitch in enumerate(pitches):
        f = c["features"][2, 40 + k].copy()
        if pitch is not None:
            f[fg.PITCH_FEATURE] = pitch
        np.testing.assert_array_equal(model.synthesize(f), lib.synthesize(f), err_msg=f"frame {k}, pitch {pitch}")


@pytest.mark.parametrize("release", RELEASES)
def test_int8_products_cannot_saturate(release):
    """AVX2's ``maddubs`` sums each pair of adjacent u8 x s8 products into a saturated int16, which the emulation
    does not model: it need not, since for every int8 FARGAN layer the same-signed weights of each adjacent pair
    sum to at most 129 in magnitude, so with inputs in [-1, 1] (u8 at most 254) a pair stays within 32 766."""
    for name, p in params(release).items():
        if "weight_q" not in p:
            continue
        w = np.asarray(p["weight_q"]).astype(np.int64)
        pos = np.maximum(w[0::2], 0) + np.maximum(w[1::2], 0)
        neg = np.minimum(w[0::2], 0) + np.minimum(w[1::2], 0)
        assert 254 * max(pos.max(), -neg.min()) <= 32767, name


def test_both_releases_ship_the_same_weights():
    """libopus 1.5.2 and 1.6.1 have the same fargan.c and the same FARGAN arrays (their fargan_data.c differ only
    in white space): all 66 ``cond_net_*`` / ``sig_net_*`` arrays of the two packs are equal."""
    a, b = load_pack("libopus-1.5.2"), load_pack("libopus-1.6.1")
    names = sorted(k for k in a.arrays if k.startswith(("cond_net_", "sig_net_")))
    assert len(names) == 66 and names == sorted(k for k in b.arrays if k.startswith(("cond_net_", "sig_net_")))
    for k in names:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k], err_msg=k)


# ---------------------------------------------------------------------------------------------------
# Batching, the class, errors
# ---------------------------------------------------------------------------------------------------


def test_vmap_and_single_streams_agree():
    """``jax.vmap`` of ``vocode`` over the 4 streams gives the bits of one stream at a time through
    :class:`Fargan` (1.6.1, avx2 preset, the first 30 frames; int16 as ``synthesize_int`` rounds them)."""
    c = speech("1.6.1", "default")
    mapped = ours("1.6.1", "default", "avx2")
    model = fg.Fargan("libopus-1.6.1", nnet.for_host(nnet.LIBOPUS_AVX2))
    for s in range(len(CLIPS)):
        model.reset()
        model.cont(c["pcm0"][s], c["features0"][s])
        one = np.concatenate([model.synthesize(f) for f in c["features"][s, :30]])
        np.testing.assert_array_equal(one, mapped[s, : 30 * 160])
        np.testing.assert_array_equal(model.synthesize_int(c["features"][s, 30]), _as_int(mapped[s, 4800:4960]))


def test_params_from_profile_or_pack_and_errors():
    """A profile name, a pack id and a pack object give the same parameters; wrong inputs raise FarganError
    naming the offending parameter."""
    by_profile = fg.fargan_params("libopus-1.6.1")
    pack = load_pack("libopus-1.6.1")
    by_pack = fg.fargan_params(pack)
    assert set(by_profile) == set(fg.LINEAR_LAYERS)
    for name in fg.LINEAR_LAYERS:
        np.testing.assert_array_equal(np.asarray(by_profile[name]["weight"]), np.asarray(by_pack[name]["weight"]))
    with pytest.raises(fg.FarganError, match="lacks FARGAN layers"):
        fg.load_fargan_params(pack.arrays, {k: v for k, v in pack.manifest["layers"].items()
                                            if k != "sig_net_skip_dense"})
    with pytest.raises(fg.FarganError, match="pack_or_profile"):
        fg.fargan_params(3)
    with pytest.raises(fg.FarganError, match="numerics"):
        fg.Fargan("libopus-1.6.1", "avx3")
    p = params("1.6.1")
    st = fg.init_fargan_state(p, 2)
    with pytest.raises(fg.FarganError, match="features"):
        fg.fargan_synthesize(p, st, jnp.zeros((2, 19)))
    with pytest.raises(fg.FarganError, match="leading shape"):
        fg.fargan_synthesize(p, st, jnp.zeros((3, 20)))
    with pytest.raises(fg.FarganError, match="pcm0"):
        fg.fargan_cont(p, st, jnp.zeros((2, 300)), jnp.zeros((2, 5, 20)))
    with pytest.raises(fg.FarganError, match="features0"):
        fg.fargan_cont(p, st, jnp.zeros((2, 320)), jnp.zeros((2, 4, 20)))
    with pytest.raises(fg.FarganError, match="give both or neither"):
        fg.vocode(p, jnp.zeros((3, 20)), pcm0=jnp.zeros(320))
    model = fg.Fargan("libopus-1.6.1", "float")
    model.state = fg.init_fargan_state(model.params, 2)
    with pytest.raises(fg.FarganError, match="reset"):
        model.synthesize(np.zeros(20, np.float32))
