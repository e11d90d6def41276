"""The batched decoder of opus_dred.accel (the reference's decoder step with int8 layers as bf16/float32 GEMMs
of exact integer sums) computes what opus_dred.refimpl._rdovae computes, for every numerics preset.

Real speech DRED payloads are entropy-decoded (opus_dred.accel._bitstream), decoded by the batched path, and
every packet's features are compared bit for bit with ``rdovae.decode_features`` on that packet alone, under
each preset of ``nnet.NUMERICS``; the bf16 operand path is also checked per layer on worst-case inputs. The
features are compared with libopus' own (opus_dred_parse of the default build): bit for bit where this CPU's
RCPPS is the emulated table (a visible skip elsewhere), and within thresholds everywhere.

``reader.read_dred_payloads_jax`` (the entropy decoder as one XLA computation) is compared field by field
with ``bitstream.batch.read_dred_payloads`` (itself checked against the scalar decoder and libopus'
``dred_ec_decode``) on real payloads, cut ones, and random bytes.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opus_dred.accel import _decode as fast
from opus_dred.accel import _reader as reader
from opus_dred.accel._bitstream import read_dred_payloads
from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl import _rdovae as rdovae

FS = 16000
N = 16  # packets compared one by one against the unbatched reference
RELEASES = ("1.5.2", "1.6.1")
#: every numerics preset of the reference
PRESETS = tuple(nnet.NUMERICS)


@functools.cache
def _data(release: str):
    from opus_dred.bitstream._extensions import find_dred_extension
    from opus_dred.libopus._oracle import Oracle
    from opus_dred.speech._corpus import load_clip

    o = Oracle.for_build(f"libopus-{release}")
    pcm = load_clip(None, rate=FS)[: 2 * FS]
    pkts = [p.data for p in o.encode(pcm, fs=FS, bitrate=32000, frame_ms=20, loss_perc=20, dred_duration=100)]
    pkts = [p for p in pkts if find_dred_extension(p, f"libopus-{release}") is not None][:N]
    pays = [find_dred_extension(p, f"libopus-{release}").payload for p in pkts]
    b = read_dred_payloads(pays, f"libopus-{release}", min_feature_frames=102)
    params = rdovae.params_from_pack(load_pack(f"libopus-{release}"))
    return o, pkts, b, params


@functools.cache
def _reference(release: str, num: nnet.Numerics):
    """``rdovae.decode_features`` of each packet alone, compiled once per (release, numerics) for latents
    zero-padded to the batch's longest packet (the decoder is causal, so rows ``< 4 nb`` are the packet's own);
    returns each packet's ``[4 nb, 20]`` rows."""
    _, _, b, params = _data(release)
    t = int(b.nb_latents.max())
    f = jax.jit(lambda s, z: rdovae.decode_features(params, s, z, num))
    return [np.asarray(f(b.state[i], b.latents[i, :t]))[: 4 * int(b.nb_latents[i])] for i in range(len(b))]


@functools.cache
def _batched(release: str, num: nnet.Numerics, per_batch: int, dot: str = "auto"):
    """``fast.decode_batch`` of the release's packets, ``per_batch`` at a time: each packet's ``[4 nb, 20]`` rows."""
    _, _, b, params = _data(release)
    t = int(b.nb_latents.max())
    fp = fast.prepare(params, num, dot=dot)
    out = np.concatenate([np.asarray(fast.decode_batch_jit(fp, b.state[s:s + per_batch],
                                                           b.latents[s:s + per_batch, :t], num=num))
                          for s in range(0, len(b), per_batch)])
    return [out[i, : 4 * int(b.nb_latents[i])] for i in range(len(b))]


def _per_batch(num: nnet.Numerics) -> int:
    """How many packets the bit-exact comparison decodes at once: all of them for the int8 presets (exact
    integer sums, float layers summed input by input: no row depends on another), one for FLOAT, whose float
    GEMMs XLA sums in an order that depends on the batch (see test_float_batch_within_float32_rounding)."""
    return N if num.matmul == "int8" else 1


def test_every_numerics_name_is_a_tested_preset():
    """The names ``decode``/``--numerics`` accept (``-host`` ones included) all resolve to a preset tested here."""
    from opus_dred.refimpl._decode import NUMERICS, _numerics

    assert len(PRESETS) >= 6 and all(_numerics(name) in nnet.NUMERICS.values() for name in NUMERICS)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("release", RELEASES)
def test_fast_path_is_the_reference_bit_for_bit(release, preset):
    """Every packet's features from ``decode_batch`` equal ``rdovae.decode_features`` of that packet alone."""
    num = nnet.NUMERICS[preset]
    _, _, b, _ = _data(release)
    assert int(b.nb_latents.max()) > 2 and len(set(b.nb_latents.tolist())) > 1
    ours, ref = _batched(release, num, _per_batch(num)), _reference(release, num)
    for i in range(len(b)):
        np.testing.assert_array_equal(ours[i], ref[i], err_msg=f"packet {i}")


@pytest.mark.parametrize("release", RELEASES)
def test_float_batch_within_float32_rounding(release):
    """FLOAT decoded as one batch: within float32 rounding of the reference (a float GEMM over a batch sums
    in another order than a matrix-vector product)."""
    ours, ref = _batched(release, nnet.FLOAT, N), _reference(release, nnet.FLOAT)
    assert max(float(np.abs(a - r).max()) for a, r in zip(ours, ref)) < 1e-4


def test_float32_gemm_gives_the_same_integers_as_bf16():
    """``dot="f32"`` (the float32 GEMM) decodes bit for bit as the bfloat16 operands (or as the reference,
    where bfloat16 is not exact here)."""
    num = nnet.LIBOPUS_AVX2
    for i, (ours, ref) in enumerate(zip(_batched("1.6.1", num, N, "f32"), _reference("1.6.1", num))):
        np.testing.assert_array_equal(ours, ref, err_msg=f"packet {i}")


def test_prepared_layers_are_the_reference_layers():
    """``prepare`` changes only the type the integer weights are held in: same layers and keys (less the
    dequantised weight of int8 layers), same integers, no zero-size leaf; sizes read from the weights."""
    params = _data("1.6.1")[3]
    fp = fast.prepare(params, nnet.LIBOPUS_AVX2)
    assert set(fp) == set(params)
    for name, p in fp.items():
        want = set(params[name]) - ({"weight"} if "weight_q" in params[name] else set())
        assert set(p) == want, name
        assert all(np.size(v) > 0 for v in p.values()), name
        assert nnet.nb_inputs(p) == nnet.nb_inputs(params[name])
        if "weight_q" in p:
            assert p["weight_q"].dtype in (jax.numpy.bfloat16, np.float32), name  # every layer passed the bound
            np.testing.assert_array_equal(np.asarray(p["weight_q"]).astype(np.int64), params[name]["weight_q"])
    assert (rdovae.latent_dim(fp), rdovae.state_dim(fp)) == (rdovae.latent_dim(params), rdovae.state_dim(params))
    same = fast.prepare(params, nnet.FLOAT)
    assert all(same[n][k] is v for n, p in params.items() for k, v in p.items()) and same.keys() == params.keys()
    with pytest.raises(ValueError, match="dot"):
        fast.prepare(params, nnet.LIBOPUS_AVX2, dot="int4")


def _libopus_sample(release):
    """(our features, libopus' features) for every 6th packet: the fast path with this host's RCPPS table."""
    o, pkts, b, _ = _data(release)
    ours = _batched(release, nnet.for_host(nnet.LIBOPUS_AVX2), N)
    pairs = []
    for i in range(0, len(pkts), 6):
        d = o.dred_parse(pkts[i], max_dred_samples=FS, sampling_rate=FS)
        assert d.nb_latents == b.nb_latents[i]
        pairs.append((ours[i], d.features))
    return pairs


@pytest.mark.parametrize("release", RELEASES)
def test_fast_path_bit_exact_with_libopus(release, require_native_emulation):
    for ours, theirs in _libopus_sample(release):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("release", RELEASES)
def test_fast_path_within_libopus_thresholds(release):
    """Everywhere (whatever this CPU's RCPPS): within the emulation's bound against libopus' builds."""
    assert max(float(np.abs(a - b).max()) for a, b in _libopus_sample(release)) <= 0.15


def test_gemm_bound_rejects_layers_that_could_round():
    """A layer whose partial sums can exceed 2**24 keeps int8 weights and the exact int32 product."""
    wq = np.full((608, 8), 127, np.int8)  # 255 * 608 * 127 > 2**24
    p = {"weight_q": wq, "scale": np.ones(8, np.float32), "bias": np.zeros(8, np.float32),
         "subias": np.zeros(8, np.float32), "weight": wq.astype(np.float32)}
    fp = fast.prepare({"x": p}, nnet.LIBOPUS_AVX2)
    assert fp["x"]["weight_q"].dtype == np.int8 and "weight" not in fp["x"]
    small = dict(p, weight_q=np.ones((16, 8), np.int8))
    assert fast.prepare({"x": small}, nnet.LIBOPUS_AVX2)["x"]["weight_q"].dtype != np.int8
    x = np.linspace(-1, 1, 608 * 3, dtype=np.float32).reshape(3, 608)
    np.testing.assert_array_equal(np.asarray(fast.linear(fp["x"], x, nnet.LIBOPUS_AVX2)),
                                  np.asarray(nnet.linear(p, x, nnet.LIBOPUS_AVX2)))


ROWS, WIDTH = 32, 256  # one compiled shape per (profile, mff) for every entropy test


def _compare_entropy(pays, profile, mff, fo):
    assert len(pays) <= ROWS and max(map(len, pays)) < WIDTH
    pays = list(pays) + [b""] * (ROWS - len(pays))  # empty lanes: shared compiled shape
    fo = np.resize(np.asarray(fo, np.int64), ROWS)
    b = read_dred_payloads(pays, profile, min_feature_frames=mff, dred_frame_offset=fo)
    packed = reader.pack_payloads(pays, width=WIDTH)
    j = reader.read_dred_payloads_jax(None, profile, min_feature_frames=mff, dred_frame_offset=fo, packed=packed)
    assert j.profile == b.profile
    for k in [k for k in vars(b) if k != "profile"] + ["dred_offset", "read_past_end"]:
        a, v = getattr(b, k), np.asarray(getattr(j, k))
        if a.ndim >= 2 and a.shape[1] != v.shape[1]:  # the JAX rows stop at the chunk bound
            assert not a[:, v.shape[1]:].any()
            a = a[:, : v.shape[1]]
        np.testing.assert_array_equal(a, v, err_msg=k)
    return b


@pytest.mark.parametrize("release", ["1.5.2", "1.6.1"])
@pytest.mark.parametrize("mff", [102, 9, 0])
def test_jax_entropy_decoder_equals_numpy_on_real_payloads(release, mff):
    _, pkts, b, _ = _data(release)
    from opus_dred.accel._bitstream import locate_dred_payloads

    pays = locate_dred_payloads(pkts, f"libopus-{release}").payload
    pays = pays + [p[: len(p) // 2] for p in pays[::3]] + [p[:1] for p in pays[:3]] + [b""]
    got = _compare_entropy(pays, f"libopus-{release}", mff, np.arange(len(pays)) % 5)
    if mff == 0:  # a request for no feature frame reads no latent, in every reader
        assert not got.nb_latents.any()
    else:
        assert len(set(got.nb_latents.tolist())) > 2


@pytest.mark.parametrize("release", ["1.5.2", "1.6.1"])
@settings(max_examples=15, deadline=None)
@given(data=st.lists(st.binary(min_size=0, max_size=60), min_size=16, max_size=16))
def test_jax_entropy_decoder_equals_numpy_on_any_bytes(release, data):
    _compare_entropy(data, f"libopus-{release}", 102, 0)


@pytest.mark.parametrize("release", ["1.5.2", "1.6.1"])
def test_bf16_dot_is_the_exact_integer_product_on_worst_case_inputs(release):
    """Every int8 layer's prepared product equals numpy's int64 product on its extreme inputs.

    For each output column, one input row is 255 wherever that column's weight is positive (its largest
    sum) and one wherever it is negative (its most negative sum); then signed-bias extremes (+-127 by
    weight sign) and random 0..255 rows, to the benchmark's batch of 1024 rows (the kernel XLA picks
    depends on the shape).
    """
    params = _data(release)[3]
    fp = fast.prepare(params, nnet.LIBOPUS_AVX2)
    dot = jax.jit(fast._dot_bf16)
    rng = np.random.default_rng(7)
    n = 0
    for name, p in fp.items():
        if p.get("weight_q", np.int8(0)).dtype == np.int8:
            continue
        if fast.bf16_dot_exact():
            assert p["weight_q"].dtype == jax.numpy.bfloat16, name
        w = np.asarray(params[name]["weight_q"]).astype(np.int64)
        k = w.shape[0]
        q = np.concatenate([255 * (w > 0).T, 255 * (w < 0).T, 127 * np.sign(w).T, -127 * np.sign(w).T])
        q = np.concatenate([q, rng.integers(0, 256, (max(0, 1024 - len(q)), k))])
        got = np.asarray(dot(q, jax.numpy.asarray(w, jax.numpy.bfloat16)))
        np.testing.assert_array_equal(got.astype(np.int64), q @ w, err_msg=name)
        n += 1
    assert n > 20


def test_bf16_probe_rejects_a_narrow_accumulator(monkeypatch):
    """A dot that rounded its sums through bfloat16 fails the probe: prepare then keeps float32 weights, and
    refuses ``dot="bf16"``; ``dot="f32"`` is float32 whatever the probe says."""
    wide = fast._dot_bf16
    monkeypatch.setattr(fast, "_dot_bf16", lambda q, w: wide(q, w).astype(jax.numpy.bfloat16).astype(np.float32))
    monkeypatch.setattr(fast, "_BF16_OK", {})
    assert not fast.bf16_dot_exact()
    p = {"weight_q": np.ones((16, 8), np.int8), "scale": np.ones(8, np.float32), "bias": np.zeros(8, np.float32),
         "subias": np.zeros(8, np.float32)}
    assert fast.prepare({"x": p}, nnet.LIBOPUS_AVX2)["x"]["weight_q"].dtype == np.float32
    with pytest.raises(ValueError, match="exact"):
        fast.prepare({"x": p}, nnet.LIBOPUS_AVX2, dot="bf16")
    monkeypatch.setattr(fast, "_dot_bf16", wide)
    monkeypatch.setattr(fast, "_BF16_OK", {})
    assert fast.bf16_dot_exact()
    assert fast.prepare({"x": p}, nnet.LIBOPUS_AVX2)["x"]["weight_q"].dtype == jax.numpy.bfloat16
    assert fast.prepare({"x": p}, nnet.LIBOPUS_AVX2, dot="bf16")["x"]["weight_q"].dtype == jax.numpy.bfloat16
    assert fast.prepare({"x": p}, nnet.LIBOPUS_AVX2, dot="f32")["x"]["weight_q"].dtype == np.float32


@functools.cache
def _stream_decodes():
    """Whole packets (with and without DRED, several padded batches) through ``decode_packets`` with 1 and 3
    workers, and libopus' ``opus_dred_parse`` of each."""
    from opus_dred.speech._corpus import load_clip

    o, pkts, _, _ = _data("1.6.1")
    plain = [e.data for e in o.encode(load_clip(None, rate=FS)[: FS // 5], fs=FS, bitrate=32000, frame_ms=20)]
    stream = list(pkts[:7]) + plain[:3] + list(pkts[7:])
    num = nnet.for_host(nnet.LIBOPUS_AVX2)
    one = fast.decode_packets(stream, "libopus-1.6.1", num, batch=4, workers=1, min_feature_frames=102)
    three = fast.decode_packets(stream, "libopus-1.6.1", num, batch=4, workers=3, min_feature_frames=102)
    theirs = []
    for p in stream:
        d = o.dred_parse(p, max_dred_samples=FS, sampling_rate=FS)
        theirs.append((d.nb_latents, d.dred_offset, d.features if d.nb_latents else None))
    return stream, one, three, theirs


def test_decode_packets_equals_libopus_whatever_the_workers():
    """nb_latents, dred_offset and presence as libopus' ``opus_dred_parse`` gives them, the same answer for 1
    and 3 workers, features within libopus' own build spread (bit for bit: the next test)."""
    stream, one, three, theirs = _stream_decodes()
    assert one.workers == 1 and three.workers == 3 and len(one.features) == len(stream)
    worst = 0.0
    for i, (nb, off, feats) in enumerate(theirs):
        assert bool(one.found[i]) == (nb > 0)
        assert (one.nb_latents[i], one.dred_offset[i]) == ((nb, off) if nb else (0, 0))
        np.testing.assert_array_equal(one.features[i], three.features[i])
        assert one.features[i].shape == (4 * nb, 20)
        if nb:
            worst = max(worst, float(np.abs(one.features[i] - feats).max()))
    np.testing.assert_array_equal(one.nb_latents, three.nb_latents)
    assert worst < 0.3


def test_decode_packets_bit_exact_with_libopus(require_native_emulation):
    _, one, _, theirs = _stream_decodes()
    for i, (nb, _, feats) in enumerate(theirs):
        if nb:
            np.testing.assert_array_equal(one.features[i], feats, err_msg=f"packet {i}")


def test_decode_packets_raises_the_typed_error_of_a_bad_packet():
    from opus_dred.bitstream._errors import BitstreamError
    from opus_dred.bitstream._extensions import find_dred_extension

    o, pkts, _, _ = _data("1.6.1")
    bad = bytes([pkts[0][0] | 3, 0xFF])  # code 3, VBR with padding flag, count 63: truncated
    with pytest.raises(BitstreamError) as want:
        find_dred_extension(bad, "libopus-1.6.1")
    with pytest.raises(type(want.value)) as got:
        fast.decode_packets([pkts[0], bad], "libopus-1.6.1", nnet.for_host(nnet.LIBOPUS_AVX2), batch=2, workers=2)
    assert got.value.byte_offset == want.value.byte_offset


@functools.cache
def _bench_decode_command() -> dict:
    """``opus-dred bench decode --json`` in its own process (small XLA loops hoisted there)."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "opus_dred.cli", "bench", "decode", "--packets", "60", "--batch", "16",
           "--workers", "4", "--repeats", "1", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


@pytest.mark.oracle
def test_bench_decode_command_checks_every_packet():
    """Every packet's nb_latents as libopus', the features within the compliance metric (bit for bit: the next
    test), the batches evened out over the workers."""
    d = _bench_decode_command()
    assert d["hoisted_loops"] and d["workers"] == 4 and d["batch"] == 15  # 60 packets: 4 batches of 15
    assert d["nb_latents_agree"] and d["metric"]["passed"] and d["metric"]["max"] < 0.15


@pytest.mark.oracle
def test_bench_decode_command_is_bit_exact_with_libopus(require_native_emulation):
    assert _bench_decode_command()["bit_exact_packets"] == 60


def test_hoisting_is_left_alone_once_jax_runs(monkeypatch):
    """``hoist_small_loops`` never changes XLA_FLAGS in a process where JAX is already imported."""
    from opus_dred.bench._decode import HOIST_LOOPS_FLAG, hoist_small_loops

    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert hoist_small_loops() is False
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"
    monkeypatch.setenv("XLA_FLAGS", HOIST_LOOPS_FLAG)
    assert hoist_small_loops() is True
