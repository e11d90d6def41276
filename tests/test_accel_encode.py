"""``opus_dred.accel`` encoder half against the reference and libopus.

- the block feature extractor (JAX) equals the reference extractor bit for bit on real speech, both releases,
  both kernel sets, with a block of digital silence (libopus 1.6's ``VERY_SMALL`` samples go through the
  reference; 1.5's exact zeros through XLA);
- ``encode_streams`` gives the reference's payloads (``reference_frontend`` + ``BatchCoder``) byte for byte,
  both profiles, libopus' settings for 32 kb/s and a byte budget tight enough to stop and roll back; and, where
  the reference's numerics are this CPU's, libopus' DRED encoder half's bytes;
- the lockstep range encoder equals ``bitstream``'s ``RangeEncoder`` on random symbol streams (masks,
  snapshots, rollbacks, overflow, shrink), and ``code_payloads`` equals ``code_dred_frame`` on random plans and
  values, budget stops and "no empty DRED" included.

The shapes (2 streams, 100-frame blocks) are the ones ``tests/test_bench_encode.py`` compiles too.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opus_dred.bitstream._arith import compute_quantizer
from opus_dred.bitstream._dred import CodingTables
from opus_dred.bitstream._dred_encode import DredSettingsError, code_dred_frame, plan_dred_frame
from opus_dred.bitstream._profiles import get_profile
from opus_dred.bitstream._rangecoder import RangeEncoder, laplace_encode_p0

STREAMS = 2
BLOCK = 100
PROFILES = ("libopus-1.5.2", "libopus-1.6.1")
KERNELS = {"libopus-1.5.2": "c", "libopus-1.6.1": "x86"}


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Two streams of corpus speech at 16 kHz, 2 s each (float, int16 scale)."""
    from opus_dred.bench._encode import speech_streams

    return speech_streams(STREAMS, 2.0, 16000).astype(np.float32)


def _num(kernels: str):
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    return nnet.for_host(nnet.LIBOPUS_AVX2 if kernels == "x86" else nnet.LIBOPUS_SSE2)


# ---------------------------------------------------------------------------------------------------------------
# features


@pytest.mark.parametrize("profile", PROFILES)
def test_block_features_equal_reference(profile, speech):
    """Two blocks of 100 frames of two streams, the second stream silent (all-zero samples, through libopus'
    16 kHz conversion) for 40 frames: features, IF features, xcorr features and dnn_pitch bit for bit."""
    from opus_dred.accel._features import BlockFeatureExtractor, tiny_runs
    from opus_dred.refimpl._features import FeatureExtractor, Resampler
    from opus_dred.refimpl._pitchdnn import PitchDNN

    kernels = KERNELS[profile]
    num = _num(kernels)
    pcm = speech[:, :2 * BLOCK * 160].copy()
    pcm[1, 130 * 160:170 * 160] = 0
    x16 = np.asarray(Resampler(16000, profile).process(pcm / np.float32(32768)), np.float32)
    want = FeatureExtractor(profile, kernels=kernels, pitch=PitchDNN(profile, num).step, streams=STREAMS).frames(x16)
    ours = BlockFeatureExtractor(profile, num, kernels=kernels, streams=STREAMS)
    blocks = [ours.frames(x16[:, i * BLOCK * 160:(i + 1) * BLOCK * 160]) for i in range(2)]
    for name in ("features", "if_features", "xcorr_features", "dnn_pitch"):
        got = np.concatenate([getattr(b, name) for b in blocks], axis=1)
        assert np.array_equal(got.view(np.uint32), getattr(want, name).view(np.uint32)), name
    # the silent block takes the reference's path in 1.6 (VERY_SMALL samples) and XLA's in 1.5 (exact zeros)
    assert tiny_runs(x16[1:, BLOCK * 160:]).tolist() == [profile == "libopus-1.6.1"]


def test_xcorr_contraction_checked(require_avx2_dispatch_here):
    """On an FMA host XLA contracts the AVX2 xcorr's chains (the check passes), and ``xcorr`` equals the
    reference's exact emulation on random windows, windows with tiny values (recomputed by the reference)
    included."""
    from opus_dred.accel import _features as af
    from opus_dred.refimpl._features import pitch_xcorr

    rng = np.random.default_rng(7)
    w = (rng.standard_normal((STREAMS, 3, 416)) * 300).astype(np.float32)
    w[1, 2, ::3] = np.float32(3e-30)  # products with these fall into float32's subnormal range
    assert af.xcorr_exact(w.shape)
    got = af.xcorr(w, "x86")
    flat = w.reshape(-1, 416)
    want = pitch_xcorr(flat[:, 256:], flat[:, :383], 224, "x86").reshape(STREAMS, 3, 224)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.fixture(scope="module")
def require_avx2_dispatch_here() -> None:
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if {"avx2", "fma"} - flags:
        pytest.skip("this CPU has no FMA: XLA has no fused multiply-add to contract the AVX2 xcorr into")


# ---------------------------------------------------------------------------------------------------------------
# payloads


def _settings(profile: str, tight: bool):
    from opus_dred.bench._encode import settings_for

    s = settings_for(profile, 16000, bitrate=32000, loss=20, duration=100)
    return dataclasses.replace(s, max_chunks=26, max_bytes=30) if tight else s


def _encode(profile, speech, s, num, kernels):
    from opus_dred.accel._encode import encode_streams

    return encode_streams(speech[:, :16000] / np.float32(32768), 16000, profile, q0=s.q0, dq=s.dq, qmax=s.qmax,
                          max_chunks=s.max_chunks, max_bytes=s.max_bytes, numerics=num, kernels=kernels,
                          extra_delay=s.extra_delay, block_frames=BLOCK)


@pytest.mark.parametrize("tight", [False, True], ids=["32kbps", "tight-budget"])
@pytest.mark.parametrize("profile", PROFILES)
def test_payloads_equal_reference(profile, tight, speech):
    """1 s of two streams: every frame's payload is the reference's (its frontend over the streams, then
    ``dred_encode_silk_frame`` per stream), with libopus' settings and with 30 bytes for up to 26 chunks."""
    from opus_dred.refimpl._encode import BatchCoder, frame_offsets, reference_frontend

    kernels = KERNELS[profile]
    num = _num(kernels)
    s = _settings(profile, tight)
    ours = _encode(profile, speech, s, num, kernels)
    x = (speech[:, :16000] / np.float32(32768)).reshape(STREAMS, 50, 320)
    fr = reference_frontend(x, 16000, profile, num, kernels=kernels)
    coder = BatchCoder(profile, fr.latents, fr.states, s, num)
    want = [list(r) for r in zip(*[coder.frame(o) for o in frame_offsets(profile, 16000, 320, 50, s.extra_delay)])]
    assert ours == want
    assert sum(len(p) > 0 for row in want for p in row) >= STREAMS * 45
    if tight:
        assert max(len(p) for row in want for p in row) <= 30


@pytest.mark.oracle
@pytest.mark.parametrize("profile", PROFILES)
def test_payloads_equal_libopus(profile, speech, require_native_emulation):
    """The same 1 s through libopus' DRED encoder half (the default build, ``dred_compute_latents`` then
    ``dred_encode_silk_frame`` per frame): byte-identical, with the reference's numerics for this CPU."""
    from opus_dred.libopus._encoder import LibopusDredEncoder
    from opus_dred.libopus._oracle import Oracle

    s = _settings(profile, False)
    ours = _encode(profile, speech, s, _num("x86"), "x86")
    oracle = Oracle.for_build(profile)
    x = (speech[:, :16000] / np.float32(32768)).reshape(STREAMS, 50, 320)
    for b in range(STREAMS):
        enc = LibopusDredEncoder(oracle, 16000)
        for f in range(50):
            enc.compute_latents(x[b, f], extra_delay=s.extra_delay)
            theirs = enc.encode(max_chunks=s.max_chunks, max_bytes=s.max_bytes, q0=s.q0, dq=s.dq, qmax=s.qmax)
            assert ours[b][f] == theirs, (b, f)


def test_settings_errors_name_the_parameter(speech):
    from opus_dred.accel._encode import encode_streams

    num = _num("x86")
    x = speech[:, :3200] / np.float32(32768)
    good = {"q0": 6, "dq": 5, "qmax": 15, "max_chunks": 5, "max_bytes": 100, "numerics": num}
    for bad, parameter in (({"fs": 44100}, "fs"), ({"q0": 16}, "q0"), ({"max_chunks": 27}, "max_chunks"),
                           ({"max_bytes": -1}, "max_bytes"), ({"frame_size": 0}, "frame_size"),
                           ({"block_frames": 3}, "block_frames")):
        kw = {**good, **bad}
        fs = kw.pop("fs", 16000)
        with pytest.raises(DredSettingsError) as e:
            encode_streams(x, fs, "libopus-1.6.1", **kw)
        assert e.value.parameter == parameter


# ---------------------------------------------------------------------------------------------------------------
# the lockstep range encoder


def _laplace_params(prof, data):
    """A (p0 << 7, r << 7) pair of the profile's statistics, as DRED codes them."""
    tables = CodingTables.of(prof)
    level = data.draw(st.integers(0, prof.quant_levels - 1))
    row = tables.latent[level]
    coded = [p for p in row if p is not None]
    return data.draw(st.sampled_from(coded))


@settings(max_examples=120)
@given(data=st.data())
def test_lockstep_encoder_equals_range_encoder(data):
    """N encoders, each its own random stream of ``ec_encode`` and Laplace symbols under random masks, with
    snapshots and restores (``ec_bak``): after every step each encoder's ``tell`` is the scalar encoder's, and
    ``done`` (after ``shrink`` where it applies) returns the same bytes and errors, overflows included."""
    from opus_dred.accel._encode import LockstepEncoder

    prof = get_profile("libopus-1.6.1")
    n = data.draw(st.integers(1, 5))
    size = data.draw(st.integers(0, 24))
    ref = [RangeEncoder(size) for _ in range(n)]
    ours = LockstepEncoder(n, size)
    saved_ref = [{k: getattr(e, k) for k in type(e).__slots__ if k != "buf"} for e in ref]
    saved = ours.snapshot()
    for _ in range(data.draw(st.integers(0, 40))):
        kind = data.draw(st.sampled_from(["encode", "laplace", "laplace", "snapshot", "restore"]))
        mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
        if kind == "encode":
            ft = np.array(data.draw(st.lists(st.integers(1, 1 << 16), min_size=n, max_size=n)))
            fl = np.array([data.draw(st.integers(0, int(f) - 1)) for f in ft])
            fh = np.array([data.draw(st.integers(int(a) + 1, int(f))) for a, f in zip(fl, ft)])
            ours.encode(fl, fh, ft, mask)
            for i in np.nonzero(mask)[0]:
                ref[i].encode(int(fl[i]), int(fh[i]), int(ft[i]))
        elif kind == "laplace":
            p0, decay = _laplace_params(prof, data)
            v = np.array(data.draw(st.lists(st.integers(-40, 40), min_size=n, max_size=n)))
            ours.laplace_p0(v, np.full(n, p0), np.full(n, decay), mask)
            for i in np.nonzero(mask)[0]:
                laplace_encode_p0(ref[i], int(v[i]), p0, decay)
        elif kind == "snapshot":
            ours.update_snapshot(saved, mask)
            for i in np.nonzero(mask)[0]:
                saved_ref[i] = {k: getattr(ref[i], k) for k in type(ref[i]).__slots__ if k != "buf"}
        else:
            ours.restore(saved, mask)
            for i in np.nonzero(mask)[0]:
                for k, v in saved_ref[i].items():
                    setattr(ref[i], k, v)
        assert ours.tell().tolist() == [e.tell() for e in ref]
    shrink = np.array([(e.tell() + 7) // 8 if e.offs <= (e.tell() + 7) // 8 <= e.storage else -1 for e in ref])
    ours.shrink(np.maximum(shrink, 0), shrink >= 0)
    for i in np.nonzero(shrink >= 0)[0]:
        ref[i].shrink(int(shrink[i]))
    out = ours.done(np.ones(n, bool))
    assert out == [e.done() for e in ref]
    assert ours.error.tolist() == [e.error for e in ref]


@settings(max_examples=60)
@given(data=st.data())
def test_code_payloads_equal_code_dred_frame(data):
    """Random plans (offsets, buffer fills, activity with leading silence, delayed DRED) sharing one quantizer
    schedule, random quantized values (0 where the statistics forbid a value) and a small byte budget:
    ``code_payloads`` returns ``code_dred_frame``'s bytes for every plan."""
    from opus_dred.accel._encode import PayloadPlan, code_payloads

    prof = get_profile(data.draw(st.sampled_from(PROFILES)))
    q0 = data.draw(st.integers(0, 13))
    dq = data.draw(st.integers(0, 7))
    qmax = 15 if dq == 0 else data.draw(st.integers(q0 + 1, 15))
    max_chunks = data.draw(st.integers(0, prof.max_latents))
    max_bytes = data.draw(st.integers(0, 60))
    n = data.draw(st.integers(1, 6))
    tables = CodingTables.of(prof)
    plans, states, chunks = [], [], []
    for _ in range(n):
        fill = data.draw(st.integers(0, 2 * prof.max_latents))
        act = np.array(data.draw(st.lists(st.sampled_from([0, 1, 1, 1]), min_size=0, max_size=60)), np.uint8)
        plan = plan_dred_frame(prof, q0=q0, dq=dq, qmax=qmax, dred_offset=data.draw(st.integers(-40, 16)),
                               latents_buffer_fill=fill, latent_offset=data.draw(st.integers(0, 3)),
                               last_extra_dred_offset=data.draw(st.integers(0, 4)),
                               activity=act if data.draw(st.booleans()) else None, max_chunks=max_chunks)
        plans.append(plan)
        states.append(_values(data, tables.state[q0]))
        chunks.append([_values(data, tables.latent[lv]) for lv in plan.levels])
    cap = max(1, max(len(p.chunks) for p in plans))
    lat = np.zeros((n, cap, prof.latent_dim), np.int64)
    active = np.zeros((n, cap), bool)
    for i, (p, c) in enumerate(zip(plans, chunks)):
        if c:
            lat[i, :len(c)] = c
            active[i, :len(c)] = p.active
    levels = np.array([compute_quantizer(q0, dq, qmax, k, prof.dq_table) for k in range(cap)])
    pp = PayloadPlan(q0=q0, dq=dq, qmax=qmax, total_offset=np.array([p.total_offset for p in plans]),
                     extra_dred_offset=np.array([p.extra_dred_offset for p in plans]),
                     chunks=np.array([len(p.chunks) for p in plans]), levels=levels, active=active,
                     max_bytes=max_bytes)
    got = code_payloads(prof, pp, np.array(states), lat)
    want = [code_dred_frame(prof, p, s, c, max_bytes=max_bytes) for p, s, c in zip(plans, states, chunks)]
    assert got == want


def _values(data, params) -> np.ndarray:
    v = data.draw(st.lists(st.integers(-12, 12), min_size=len(params), max_size=len(params)))
    return np.array([x if p is not None else 0 for x, p in zip(v, params)], np.int64)
