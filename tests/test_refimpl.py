"""The pure-JAX RDO-VAE decoder (opus_dred.refimpl) against the libopus oracle, and its JAX properties.

Agreement: real speech is encoded with DRED by libopus, the default build parses each packet, and the
dequantised state and latents go through our decoder and through ``DRED_rdovae_decode_all`` of the
default (AVX2 dispatch) and generic builds of 1.5.2 and 1.6.1.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl import _rdovae as rdovae

RELEASES = ("1.5.2", "1.6.1")
FS = 16000
MAX_LATENTS = 26


@functools.cache
def params(release: str):
    return rdovae.params_from_pack(load_pack(f"libopus-{release}"))


def _pad(latents: np.ndarray) -> np.ndarray:
    out = np.zeros((MAX_LATENTS, latents.shape[1]), np.float32)
    out[: len(latents)] = latents
    return out


_batched = jax.jit(jax.vmap(rdovae.decode_features, in_axes=(None, 0, 0, None)), static_argnums=3)


def decode_many(p, states, latents_list, num):
    """Our features for many packets in one compiled call: latents padded to 26 (the decoder is causal
    in latent order, so the first 4*nb rows do not depend on the padding), then trimmed."""
    out = np.asarray(_batched(p, np.stack(states), np.stack([_pad(z) for z in latents_list]), num))
    return [o[: 4 * len(z)] for o, z in zip(out, latents_list)]


# ---------------------------------------------------------------------------------------------------
# Oracle agreement
# ---------------------------------------------------------------------------------------------------


@functools.cache
def reference(release: str):
    """(states, latents, {build: features}) for every DRED-carrying packet of 3 s of speech."""
    from opus_dred.libopus._oracle import Oracle
    from opus_dred.speech._corpus import load_clip

    default = Oracle.for_build(f"libopus-{release}")
    generic = Oracle.for_build(f"libopus-{release}-generic")
    pcm = load_clip(None, rate=FS)[: 3 * FS]
    packets = default.encode(pcm, fs=FS, bitrate=32000, frame_ms=20, complexity=10, loss_perc=20,
                             dred_duration=104)
    states, latents, feats = [], [], {"default": [], "generic": []}
    for pkt in packets:
        d = default.dred_parse(pkt.data, max_dred_samples=FS, sampling_rate=FS)
        if d.ret <= 0 or d.nb_latents == 0:
            continue
        states.append(d.state.copy())
        latents.append(d.latents.copy())
        feats["default"].append(d.features.copy())
        feats["generic"].append(generic.rdovae_decode(d.state, d.latents))
    assert len(states) > 50 and max(len(z) for z in latents) > 3
    return states, latents, feats


def _err(ours, ref):
    d = np.concatenate([np.abs(a - b).ravel() for a, b in zip(ours, ref)])
    return float(d.max()), float(np.percentile(d, 99)), float(np.mean(d == 0))


#: each libopus build of the oracle and the preset that emulates it on this CPU (its RCPPS table)
BUILDS = (("default", "avx2"), ("generic", "sse2"))


@functools.cache
def emulated(release: str, build: str):
    """Our features for every packet of :func:`reference`, with the numerics that emulate ``build`` here."""
    states, latents, _ = reference(release)
    num = nnet.for_host(nnet.NUMERICS[dict(BUILDS)[build]])
    return decode_many(params(release), states, latents, num)


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_emulation_within_libopus_build_spread(release, build):
    """Everywhere (whatever this CPU's RCPPS): the libopus-emulating arithmetic reproduces each build's
    features within libopus' own AVX2-vs-generic spread."""
    _, _, feats = reference(release)
    spread_max, _, _ = _err(feats["default"], feats["generic"])
    mx, p99, _ = _err(emulated(release, build), feats[build])
    assert mx <= max(0.15, 1.5 * spread_max) and p99 <= 2e-3, (build, mx, p99)


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_emulation_bit_exact_with_libopus_builds(release, build, require_native_emulation):
    """Where this CPU's RCPPS is the emulated table (measured): every packet bit for bit as the build gives it."""
    _, _, feats = reference(release)
    for i, (ours, theirs) in enumerate(zip(emulated(release, build), feats[build])):
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{build}, packet {i}")


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_float_path_close_to_libopus(release):
    """The dequantised float model with exact activations stays near libopus (it lacks libopus' 8-bit
    activation quantisation, so it is looser than the emulation, but far from any wrong wiring)."""
    states, latents, feats = reference(release)
    ours = decode_many(params(release), states, latents, nnet.FLOAT)
    mx, p99, _ = _err(ours, feats["default"])
    assert mx < 0.5 and p99 < 0.1, (mx, p99)
    scale = np.concatenate([f.ravel() for f in feats["default"]])
    assert p99 < 0.05 * np.percentile(np.abs(scale), 99)


@pytest.mark.oracle
def test_out_of_distribution_inputs_match_libopus():
    """Random (non-bitstream) state and latents through both implementations: same arithmetic."""
    from opus_dred.libopus._oracle import Oracle

    o = Oracle.for_build("libopus-1.6.1")
    p = params("1.6.1")
    rng = np.random.default_rng(7)
    states = [rng.normal(0, 2, rdovae.state_dim(p)).astype(np.float32) for _ in range(6)]
    latents = [rng.normal(0, 2, (n, rdovae.latent_dim(p))).astype(np.float32) for n in (1, 3, 8, 12, 20, 26)]
    ref = [o.rdovae_decode(s, z) for s, z in zip(states, latents)]
    mx, p99, _ = _err(decode_many(p, states, latents, nnet.for_host(nnet.LIBOPUS_AVX2)), ref)
    assert mx <= 0.15 and p99 <= 2e-3, (mx, p99)


# ---------------------------------------------------------------------------------------------------
# Properties (no oracle)
# ---------------------------------------------------------------------------------------------------


def _inputs(p, nb, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 1, rdovae.state_dim(p)).astype(np.float32),
            rng.normal(0, 1, (nb, rdovae.latent_dim(p))).astype(np.float32))


@pytest.mark.parametrize("release,shapes", [("1.5.2", (21, 19)), ("1.6.1", (26, 50))])
def test_architecture_from_pack(release, shapes):
    p = params(release)
    assert (rdovae.latent_dim(p), rdovae.state_dim(p)) == shapes
    assert ("dec_conv_dense1" in p) == (release == "1.6.1")
    s, z = _inputs(p, 3)
    assert rdovae.decode_features(p, s, z).shape == (12, 20)


def test_layouts_unpacked_as_libopus_indexes_them():
    """Dense int8 ``w[(i/8)][(j/4)][i%8][j%4]`` and block-sparse (idx lists) storage, element by element."""
    pack = load_pack("libopus-1.6.1")
    a = pack.arrays
    lay = pack.manifest["layers"]["dec_glu1"]
    n_in, n_out = lay["nb_inputs"], lay["nb_outputs"]
    wq = np.asarray(nnet.unpack_linear(a, "dec_glu1", n_in, n_out)["weight_q"])
    raw = a["dec_glu1_weights_int8"]
    for i, j in [(0, 0), (5, 3), (17, 62), (63, 63), (40, 9)]:  # output i, input j
        assert wq[j, i] == raw[((i // 8) * (n_in // 4) + j // 4) * 32 + (i % 8) * 4 + j % 4]
    lay = pack.manifest["layers"]["dec_gru3_input"]
    n_in, n_out = lay["nb_inputs"], lay["nb_outputs"]
    wq = np.asarray(nnet.unpack_linear(a, "dec_gru3_input", n_in, n_out)["weight_q"])
    idx, raw = a["dec_gru3_input_weights_idx"], a["dec_gru3_input_weights_int8"]
    pos, blk = 0, 0
    seen = np.zeros_like(wq, bool)
    for row in range(0, n_out, 8):
        for _ in range(idx[pos]):
            col = idx[pos + 1]
            pos += 1
            seen[col:col + 4, row:row + 8] = True
            assert wq[col + 2, row + 5] == raw[blk * 32 + 5 * 4 + 2]
            blk += 1
        pos += 1
    assert not np.any(wq[~seen]) and blk * 32 == len(raw)


def test_unfused_multiply_add_under_jit():
    """The emulation's bit-exactness relies on keeping a*b+c as two roundings under XLA (which would
    otherwise contract it into an FMA) and on the fused form matching one rounding."""
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(4096).astype(np.float32) for _ in range(3))
    two = np.asarray(jax.jit(lambda a, b, c: nnet._mad(a, b, c, False))(a, b, c))
    np.testing.assert_array_equal(two, a * b + c)


@pytest.mark.parametrize("mode,bits", [("rcp12", 12), ("rcp11", 11)])
def test_rcpps_tables_are_12_bit_reciprocals(mode, bits):
    """Each emulated RCPPS: relative error within Intel's documented 1.5*2^-12, depends only on the top
    ``bits`` mantissa bits (and not on fewer), scales exactly with powers of two."""
    x = (1.0 + np.arange(1 << 16, dtype=np.float64) / (1 << 16)).astype(np.float32)
    r = np.asarray(nnet.recip(jnp.asarray(x), mode)).astype(np.float64)
    assert np.max(np.abs(r * x - 1.0)) <= 1.5 * 2.0 ** -12
    g = r.reshape(1 << bits, -1)
    assert np.all(g == g[:, :1])
    g = r.reshape(1 << (bits - 1), -1)
    assert not np.all(g == g[:, :1])
    for e in (-20, -3, 7, 30):
        r2 = np.asarray(nnet.recip(jnp.asarray(x * np.float32(2.0 ** e)), mode)).astype(np.float64)
        np.testing.assert_array_equal(r2, r * 2.0 ** -e)


@pytest.mark.parametrize("mode", nnet.RCPPS_TABLES)
def test_rcpps_data_files_are_the_recorded_measurements(mode):
    """Each measured table is shipped as a data file whose sha256 is the one its provenance records
    (``refimpl/data/rcpps.json``), with the entry count the mode indexes by, and says where it was measured."""
    import hashlib

    entry = nnet.rcpps_provenance()["tables"][mode]
    path = nnet.RCPPS_DATA / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert entry["entries"] == {"rcp12": 4096, "rcp11": 2048}[mode] and entry["cpu"]
    raw = np.load(path, allow_pickle=False)
    np.testing.assert_array_equal(raw, nnet.rcpps_measured(mode))
    assert raw.dtype == np.dtype("<u2") and int(raw.max()) < 4096


def test_rcpps_table_with_another_checksum_is_refused(tmp_path, monkeypatch):
    """A table file that is not the recorded measurement is refused, not emulated."""
    import shutil

    for f in nnet.RCPPS_DATA.iterdir():
        shutil.copy(f, tmp_path / f.name)
    raw = np.load(tmp_path / "rcpps_amd_zen4.npy")
    raw[7] ^= 1
    np.save(tmp_path / "rcpps_amd_zen4.npy", raw)
    monkeypatch.setattr(nnet, "RCPPS_DATA", tmp_path)
    nnet.rcpps_measured.cache_clear()
    nnet.rcpps_provenance.cache_clear()
    try:
        with pytest.raises(ValueError, match="sha256"):
            nnet.rcpps_measured("rcp12")
    finally:
        nnet.rcpps_measured.cache_clear()
        nnet.rcpps_provenance.cache_clear()


def test_intel_rcpps_formula_is_the_measured_table():
    """``recip(., "rcp11")`` computes Intel's RCPPS by formula; it must give every measured entry."""
    m = np.arange(4096, dtype=np.uint32)
    x = (np.uint32(0x3F800000) | (m << np.uint32(11))).view(np.float32)
    got = np.asarray(jax.jit(lambda v: nnet.recip(v, "rcp11"))(jnp.asarray(x))).view(np.uint32)
    np.testing.assert_array_equal(got, nnet.rcpps_table("rcp11"))
    # inputs with low mantissa bits set, and at the exponents the activations meet
    x2 = (np.uint32(0x3F800000) | (m << np.uint32(11)) | np.uint32(0x7FF)).view(np.float32)
    for e in (0, 9, 10, 20):
        got = np.asarray(nnet.recip(jnp.asarray(x2 * np.float32(2.0 ** e)), "rcp11")).view(np.uint32)
        np.testing.assert_array_equal(got, nnet.rcpps_table("rcp11") - np.uint32(e << 23))


def test_host_rcpps_is_the_table_chosen_for_it():
    """The CPU's own RCPPS, measured by running the instruction, is the built-in table that ``for_host``
    picks by vendor (a CPU with a table of its own fails here: measure it and add it)."""
    from opus_dred.libopus._cpu import matching_rcpps_table, measure_rcpps

    if measure_rcpps() is None:
        pytest.skip("no x86 RCPPS here (or no C compiler to probe it)")
    assert matching_rcpps_table() == nnet.host_reciprocal()
    assert nnet.for_host(nnet.LIBOPUS_AVX2).reciprocal == nnet.host_reciprocal()
    assert nnet.for_host(nnet.FLOAT) == nnet.FLOAT


def test_approx_activations_track_exact():
    x = jnp.linspace(-12, 12, 20001, dtype=jnp.float32)
    for recip in ("exact", "rcp12", "rcp11"):
        assert float(jnp.max(jnp.abs(nnet.tanh_approx(x, recip) - jnp.tanh(x)))) < 5e-4
        assert float(jnp.max(jnp.abs(nnet.sigmoid_approx(x, recip) - jax.nn.sigmoid(x)))) < 3e-4


@pytest.mark.parametrize("num", [nnet.FLOAT, nnet.LIBOPUS_AVX2], ids=["float", "avx2"])
def test_jit_vmap_and_causality(num):
    """vmap over packets equals one-by-one; the first k latents' rows do not depend on later latents;
    step-by-step decoding (init_carry + decode_step) equals the scan."""
    p = params("1.6.1")
    s, z = _inputs(p, 6, seed=3)
    s2, z2 = _inputs(p, 6, seed=4)
    one = np.asarray(rdovae.decode_features_jit(p, s, z, num=num))
    two = np.asarray(rdovae.decode_features_jit(p, s2, z2, num=num))
    assert one.shape == (24, 20) and not np.allclose(one, two)
    both = np.asarray(_batched(p, np.stack([s, s2]), np.stack([z, z2]), num))
    np.testing.assert_allclose(both[0], one, atol=1e-5)
    np.testing.assert_allclose(both[1], two, atol=1e-5)
    np.testing.assert_allclose(np.asarray(rdovae.decode_features_jit(p, s, z[:2], num=num)), one[:8], atol=1e-5)
    step = jax.jit(rdovae.decode_step, static_argnums=3)
    carry = jax.jit(rdovae.init_carry, static_argnums=2)(p, jnp.asarray(s), num)
    rows = []
    for k in range(len(z)):
        carry, out = step(p, carry, jnp.asarray(z[k]), num)
        rows.append(np.asarray(out).reshape(4, 20))
    np.testing.assert_allclose(np.concatenate(rows), one, atol=1e-5)


def test_grad_matches_finite_differences_in_float64():
    p = params("1.5.2")
    s, z = _inputs(p, 3, seed=5)
    with jax.enable_x64(True):
        s64, z64 = jnp.asarray(s, jnp.float64), jnp.asarray(z, jnp.float64)
        w = jnp.asarray(np.random.default_rng(6).normal(size=(12, 20)))

        @jax.jit
        def loss(s, z):
            return jnp.sum(w * rdovae.decode_features(p, s, z))

        gs, gz = jax.jit(jax.grad(loss, argnums=(0, 1)))(s64, z64)
        assert gs.dtype == jnp.float64 and bool(jnp.all(jnp.isfinite(gz)))
        eps = 1e-6
        for i, j in [(0, 0), (1, 7), (2, 20)]:
            dz = jnp.zeros_like(z64).at[i, j].set(eps)
            fd = (loss(s64, z64 + dz) - loss(s64, z64 - dz)) / (2 * eps)
            assert abs(float(fd) - float(gz[i, j])) <= 1e-6 * max(1.0, abs(float(fd)))
        ds = jnp.zeros_like(s64).at[4].set(eps)
        fd = (loss(s64 + ds, z64) - loss(s64 - ds, z64)) / (2 * eps)
        assert abs(float(fd) - float(gs[4])) <= 1e-6 * max(1.0, abs(float(fd)))
        # float64 and float32 agree to float32 precision on the same inputs
        f64 = np.asarray(rdovae.decode_features_jit(p, s64, z64))
    f32 = np.asarray(rdovae.decode_features_jit(p, s, z))
    np.testing.assert_allclose(f32, f64, atol=1e-4)


def test_grad_with_respect_to_parameters():
    p = rdovae.float_params(params("1.6.1"))
    s, z = _inputs(p, 2, seed=8)
    g = jax.jit(jax.grad(lambda q: jnp.sum(rdovae.decode_features(q, s, z) ** 2)))(p)
    assert set(g) == set(p)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))
    assert float(jnp.abs(g["dec_output"]["bias"]).sum()) > 0


def test_bad_shapes_rejected():
    p = params("1.6.1")
    s, z = _inputs(p, 2)
    with pytest.raises(ValueError, match="quantiser feature"):
        rdovae.decode_features(p, s, z[:, :25])
    with pytest.raises(ValueError, match="initial state"):
        rdovae.decode_features(p, s[:19], z)
    with pytest.raises(ValueError):
        rdovae.load_params({}, {"dec_dense1": (26, 96)})
