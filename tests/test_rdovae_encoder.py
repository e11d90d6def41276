"""The pure-JAX RDO-VAE encoder (opus_dred.refimpl._rdovae_enc) against the libopus oracle, and its JAX
properties.

Agreement: 10 s of real speech go through libopus' feature extractor (``lpcnet_compute_single_frame_features_float``
of the default build of each release), and the 20 DRED features of each frame, with two random feature streams,
go through our encoder and through ``dred_rdovae_encode_dframe`` of the default (AVX2 dispatch) and generic
builds of 1.5.2 and 1.6.1, one libopus encoder state per stream, 20 ms per step.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl import _rdovae_enc as enc

RELEASES = ("1.5.2", "1.6.1")
FS = 16000
SPEECH_S = 10
#: feature frames per stream: 10 s of speech, 500 encoder steps
FRAMES = SPEECH_S * 100
#: each libopus build of the oracle and the preset that emulates it on this CPU (its RCPPS table)
BUILDS = (("default", "avx2"), ("generic", "sse2"))


@functools.cache
def params(release: str):
    return enc.encoder_params_from_pack(load_pack(f"libopus-{release}"))


#: every stream of a batch in one compiled call (``num`` static)
_batched = jax.jit(jax.vmap(enc.encode_features, in_axes=(None, 0, None)), static_argnums=2)


def _random_streams(like: np.ndarray, seed: int) -> np.ndarray:
    """Two random feature streams shaped like ``like``: Gaussian with its per-feature mean and spread, and
    zero-mean with three times the spread (out of the training distribution)."""
    rng = np.random.default_rng(seed)
    mu, sd = like.mean(0), like.std(0)
    return np.stack([mu + sd * rng.standard_normal(like.shape),
                     3 * sd * rng.standard_normal(like.shape)]).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Oracle agreement
# ---------------------------------------------------------------------------------------------------


@functools.cache
def streams(release: str) -> np.ndarray:
    """``[3, FRAMES, 20]``: the speech features of the release's own extractor, then two random streams."""
    from opus_dred.libopus._encoder import LibopusFeatureExtractor
    from opus_dred.libopus._oracle import Oracle
    from opus_dred.speech._corpus import load_clip

    pcm = load_clip(None, rate=FS)[: SPEECH_S * FS].astype(np.float32)
    frames = LibopusFeatureExtractor(Oracle.for_build(f"libopus-{release}")).frames(pcm)
    speech = np.stack([f.features[: enc.NUM_FEATURES] for f in frames])
    assert speech.shape == (FRAMES, enc.NUM_FEATURES)
    return np.concatenate([speech[None], _random_streams(speech, seed=3)])


@functools.cache
def reference(release: str, build: str) -> tuple[np.ndarray, np.ndarray]:
    """libopus' ``(latents, states)``, ``[3, FRAMES // 2, dim]`` oldest first, one fresh encoder per stream."""
    from opus_dred.libopus._encoder import LibopusDredEncoder
    from opus_dred.libopus._oracle import Oracle

    name = f"libopus-{release}" + ("" if build == "default" else f"-{build}")
    oracle = Oracle.for_build(name)
    lat, st = [], []
    for x in streams(release):
        e = LibopusDredEncoder(oracle, FS)
        steps = [e.rdovae_encode_step(x[i:i + 2]) for i in range(0, len(x) - 1, 2)]
        lat.append(np.stack([s[0] for s in steps]))
        st.append(np.stack([s[1] for s in steps]))
    return np.stack(lat), np.stack(st)


@functools.cache
def ours(release: str, preset: str) -> tuple[np.ndarray, np.ndarray]:
    num = nnet.for_host(nnet.NUMERICS[preset])
    lat, st = _batched(params(release), streams(release), num)
    return np.asarray(lat), np.asarray(st)


def _rel_err(a: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max, 99th percentile) of ``|a - ref|`` over the 99th percentile of ``|ref|`` (a stream's scale)."""
    d = np.abs(a - ref)
    scale = float(np.percentile(np.abs(ref), 99))
    return float(d.max()) / scale, float(np.percentile(d, 99)) / scale


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_emulation_bit_exact_with_libopus_builds(release, build, require_native_emulation):
    """Where this CPU's RCPPS is the emulated table (measured): every latent and state of 500 steps of speech
    and of two random streams, bit for bit as the build computes them (avx2 preset: default build; sse2:
    generic)."""
    lat, st = ours(release, dict(BUILDS)[build])
    ref_lat, ref_st = reference(release, build)
    assert lat.shape == ref_lat.shape == (3, FRAMES // 2, enc.latent_dim(params(release)))
    assert st.shape == ref_st.shape == (3, FRAMES // 2, enc.state_dim(params(release)))
    for k, what in enumerate(("speech", "random", "random x3")):
        np.testing.assert_array_equal(lat[k], ref_lat[k], err_msg=f"{build}, {what}: latents")
        np.testing.assert_array_equal(st[k], ref_st[k], err_msg=f"{build}, {what}: states")


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_emulation_within_libopus_build_spread(release, build):
    """Everywhere (whatever this CPU's RCPPS): the emulating arithmetic stays within libopus' own
    default-vs-generic spread of each build's latents and states."""
    mine = ours(release, dict(BUILDS)[build])
    theirs = reference(release, build)
    other = reference(release, "generic" if build == "default" else "default")
    for a, ref, alt in zip(mine, theirs, other, strict=True):
        spread_max, spread_p99 = _rel_err(alt, ref)
        assert 0 < spread_max < 0.2, spread_max  # the two builds differ, by little
        mx, p99 = _rel_err(a, ref)
        assert mx <= 1.5 * spread_max and p99 <= max(1.5 * spread_p99, 1e-3), (mx, p99, spread_max, spread_p99)


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_float_path_close_to_libopus(release):
    """The dequantised model with exact activations stays near libopus' default build: relative to each
    stream's 99th-percentile magnitude, at most 0.15 and at the 99th percentile 0.03 (measured on this
    host: latents 0.083 / 0.017, states 0.026 / 0.008, both releases)."""
    mine = ours(release, "float")
    theirs = reference(release, "default")
    for what, a, ref in zip(("latents", "states"), mine, theirs, strict=True):
        for k in range(len(ref)):
            mx, p99 = _rel_err(a[k], ref[k])
            assert mx < 0.15 and p99 < 0.03, (what, k, mx, p99)
            assert mx > 0  # the float model is not libopus' arithmetic: a zero here means a wrong comparison


# ---------------------------------------------------------------------------------------------------
# Properties (no oracle)
# ---------------------------------------------------------------------------------------------------


def _features(nb: int, seed: int) -> np.ndarray:
    """Feature-like frames: the first cepstral value of speech spans about [-10, 16], the others a few units."""
    rng = np.random.default_rng(seed)
    sd = np.full(enc.NUM_FEATURES, 0.8, np.float32)
    sd[0] = 4.0
    return (sd * rng.standard_normal((nb, enc.NUM_FEATURES))).astype(np.float32)


@pytest.mark.parametrize("release,dims", [("1.5.2", (21, 19)), ("1.6.1", (25, 50))])
def test_architecture_from_pack(release, dims):
    """Latent and state widths are libopus' DRED_LATENT_DIM / DRED_STATE_DIM; the conv memories have the sizes of
    RDOVAEEncState (1.5.2: the whole buffer per frame; 1.6.1: the 64-wide squeeze; two frames once dilated)."""
    p = params(release)
    assert (enc.latent_dim(p), enc.state_dim(p)) == dims
    assert ("enc_conv_dense1" in p) == (release == "1.6.1")
    carry = enc.init_encoder_carry(p)
    widths = [m.shape[-1] for m in carry["conv"]]
    assert widths == ([128, 576, 896, 1216, 1536] if release == "1.5.2" else [64, 128, 128, 128, 128])
    assert [s.shape[-1] for s in carry["gru"]] == [64 if release == "1.5.2" else 32] * 5


@pytest.mark.parametrize("k,dilation", [(2, 1), (2, 2), (3, 2)])
def test_dilated_conv_sees_frames_dilation_apart(k, dilation):
    """``conv1d_dilated`` over a sequence: output t is ``tanh(W [x_{t-(k-1)d}, ..., x_{t-d}, x_t] + b)`` with
    frames before the start zero; with k=2, dilation 1 it is ``conv1d``."""
    n, out, steps = 4, 3, 7
    rng = np.random.default_rng(k * 10 + dilation)
    layer = {"weight": jnp.asarray(rng.normal(size=(k * n, out)), jnp.float32),
             "bias": jnp.asarray(rng.normal(size=out), jnp.float32)}
    xs = rng.normal(size=(steps, n)).astype(np.float32)
    mem = jnp.zeros((k - 1) * dilation * n, jnp.float32)
    padded = np.concatenate([np.zeros(((k - 1) * dilation, n), np.float32), xs])
    for t in range(steps):
        y, mem = nnet.conv1d_dilated(layer, mem, jnp.asarray(xs[t]), nnet.FLOAT, dilation)
        taps = padded[t + np.arange(k) * dilation].reshape(-1)
        np.testing.assert_allclose(np.asarray(y), np.tanh(taps @ np.asarray(layer["weight"]) + layer["bias"]),
                                   rtol=1e-5, atol=1e-6)
        if (k, dilation) == (2, 1):
            y1, _ = nnet.conv1d(layer, jnp.asarray(padded[t]), jnp.asarray(xs[t]))
            np.testing.assert_array_equal(np.asarray(y1), np.asarray(y))
    with pytest.raises(ValueError, match="memory"):
        nnet.conv1d_dilated(layer, jnp.zeros(n + 1), jnp.asarray(xs[0]), nnet.FLOAT, dilation)


_steps = jax.jit(enc.encode_steps, static_argnums=3)


def test_vmap_equals_per_stream_and_streaming():
    """vmap over streams equals each stream alone, bit for bit with the int8 emulation, where each stream runs
    as two halves (encode_steps from init_encoder_carry, then from the carry it returned); a 36-wide input
    gives its first 20 values and an odd last frame is left out."""
    p = params("1.6.1")
    num = nnet.LIBOPUS_AVX2
    x = np.stack([_features(FRAMES, seed) for seed in (1, 2, 3)])
    both = [np.asarray(a) for a in _batched(p, x, num)]
    assert not np.array_equal(both[0][0], both[0][1])
    half = FRAMES // 4
    for k in range(len(x)):
        pairs = np.asarray(enc.feature_pairs(x[k]))
        carry, lat1, st1 = _steps(p, enc.init_encoder_carry(p), pairs[:half], num)
        carry, lat2, st2 = _steps(p, carry, pairs[half:], num)
        np.testing.assert_array_equal(np.concatenate([lat1, lat2]), both[0][k], err_msg=f"stream {k}")
        np.testing.assert_array_equal(np.concatenate([st1, st2]), both[1][k], err_msg=f"stream {k}")
    wide = np.concatenate([x[0], np.full((FRAMES, 16), 7.0, np.float32)], axis=1)
    odd = np.concatenate([wide, wide[:1]])
    assert odd.shape == (FRAMES + 1, enc.NB_TOTAL_FEATURES)
    np.testing.assert_array_equal(np.asarray(enc.feature_pairs(odd)), x[0].reshape(FRAMES // 2, 2, enc.NUM_FEATURES))


def test_grad_of_a_latent_is_causal_and_matches_finite_differences():
    """With FLOAT numerics (float64): d latent[k] / d features is finite, nonzero on the frames up to step k
    (the recurrence reaches back to frame 0), zero on every later frame, and equals central differences."""
    p = params("1.6.1")
    k, nb = 3, 12
    with jax.enable_x64(True):
        x = jnp.asarray(_features(nb, seed=5), jnp.float64)
        w = jnp.asarray(np.random.default_rng(6).normal(size=enc.latent_dim(p)))

        @jax.jit
        def value_and_grad(x):
            return jax.value_and_grad(lambda f: jnp.sum(w * enc.encode_features(p, f, nnet.FLOAT)[0][k]))(x)

        v, g = value_and_grad(x)
        g = np.asarray(g)
        assert g.dtype == np.float64 and np.all(np.isfinite(g))
        assert np.all(np.abs(g[: 2 * k + 2]).sum(axis=1) > 0)
        assert not np.any(g[2 * k + 2:])
        eps = 1e-6
        for i, j in [(0, 0), (3, 5), (2 * k + 1, 19)]:
            dx = jnp.zeros_like(x).at[i, j].set(eps)
            fd = (float(value_and_grad(x + dx)[0]) - float(value_and_grad(x - dx)[0])) / (2 * eps)
            assert abs(fd - g[i, j]) <= 1e-5 * max(1.0, abs(fd)), (i, j, fd, g[i, j])
        assert np.isfinite(float(v))


def test_bad_inputs_rejected():
    p = params("1.6.1")
    carry = enc.init_encoder_carry(p)
    with pytest.raises(enc.EncoderError, match=r"\[\.\.\., 2, 20\]"):
        enc.encode_dframe(p, carry, np.zeros((3, 20), np.float32))
    with pytest.raises(enc.EncoderError, match="features must be"):
        enc.encode_features(p, np.zeros((8, 21), np.float32))
    with pytest.raises(enc.EncoderError, match="enc_conv3"):
        pack = load_pack("libopus-1.6.1")
        shapes = {n: (d["nb_inputs"], d["nb_outputs"]) for n, d in pack.manifest["layers"].items()
                  if enc._is_encoder_layer(n) and n != "enc_conv3"}
        enc.load_encoder_params(pack.arrays, shapes, 25, 50)
    with pytest.raises(enc.EncoderError, match="latent_dim=33"):
        enc.encoder_params_from_pack(type("P", (), {"arrays": load_pack("libopus-1.6.1").arrays, "manifest": {
            **load_pack("libopus-1.6.1").manifest,
            "constants": {"DRED_LATENT_DIM": 33, "DRED_STATE_DIM": 50}}})())
    assert issubclass(enc.EncoderError, ValueError)


def test_facade_exports_the_encoder():
    from opus_dred import refimpl

    for name in ("encoder_params_from_pack", "encode_features"):
        assert name in refimpl.__all__ and getattr(refimpl, name) is getattr(enc, name)
