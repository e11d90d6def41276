"""Encoder/decoder interoperability between the reference and libopus, over real speech (issue 15, deliverable 5).

Hypothesis draws a segment of a corpus clip (leading and trailing digital silence around it), the profile, the
input rate and frame size, the DRED duration, q0/dQ/qmax, the payload budget and which frames are active. For each
draw:

* **encoder**: the reference's payloads (:func:`opus_dred.refimpl.encode_dred`) equal, byte for byte, what the DRED
  half of libopus' encoder (``dred_compute_latents`` + ``dred_encode_silk_frame`` through the shim) writes for the
  same PCM, settings and activity;
* **decoder**: in a real Opus packet (:func:`opus_dred.bitstream.attach_dred`), libopus' ``opus_dred_parse`` reads
  each of our payloads to the same offset, state, latents and features as the reference decoder, bit for bit;
* **distortion**: encode -> decode reaches the same dred_compare figures against the input features (the
  reference's, equal to libopus') as libopus' own encode -> decode.

Bit-exactness is this host's claim (``require_native_emulation`` + AVX2/FMA for the default build's kernels);
``test_distortion_within_libopus_spread`` holds the reference to libopus' own build-to-build spread anywhere. The
last test runs the receiver on a stream that carries our DRED and requires opus_demo's output, sample for sample.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.bitstream import attach_dred, find_dred, get_profile
from opus_dred.bitstream._dred_encode import dred_chunks_for_duration

pytestmark = pytest.mark.oracle

PROFILES = ("libopus-1.5.2", "libopus-1.6.1")
CLIPS = ("codec2-speech-orig-16k", "ps-cards-001", "ps-librivox-0870")


def _has_x86_kernels() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        return False
    return {"avx2", "fma"} <= set(flags.split(":", 1)[-1].split())


@pytest.fixture(scope="module")
def host_numerics(require_native_emulation):
    """The reference's numerics of libopus' default build on this CPU (its RCPPS table, AVX2 with FMA)."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    if not _has_x86_kernels():
        pytest.skip("libopus' default build dispatches to AVX2/FMA kernels only on a CPU that has them")
    return nnet.for_host(nnet.LIBOPUS_AVX2)


@pytest.fixture(scope="module")
def clips():
    from opus_dred.speech import load_clip  # lazy: the corpus is fetched on first use

    return {(c, r): load_clip(c, rate=r) for c in CLIPS for r in (16000, 48000)}


@st.composite
def cases(draw):
    profile = draw(st.sampled_from(PROFILES))
    fs = draw(st.sampled_from((16000, 48000)))
    frame_ms = draw(st.sampled_from((10, 20, 60)))
    q0 = draw(st.integers(0, 15))
    dq = draw(st.integers(0, 7))
    coded = q0 < 14 and dq > 0
    qmax = draw(st.integers(q0 + 1, 15)) if coded else 15
    n_frames = draw(st.integers(8, 60 // frame_ms * 10))
    lead = draw(st.integers(0, n_frames // 3))
    tail = draw(st.integers(0, n_frames // 4))
    return {
        "profile": profile, "fs": fs, "frame_ms": frame_ms, "q0": q0, "dq": dq, "qmax": qmax,
        "duration": draw(st.integers(1, 104)), "max_bytes": draw(st.sampled_from((12, 40, 120, 998))),
        "clip": draw(st.sampled_from(CLIPS)), "start_s": draw(st.floats(0.0, 2.0)),
        "n_frames": n_frames, "lead": lead, "tail": tail,
        "inactive": draw(st.sets(st.integers(0, n_frames - 1), max_size=n_frames // 4)),
    }


def _pcm_and_activity(case, clips):
    fs, frame = case["fs"], case["fs"] * case["frame_ms"] // 1000
    clip = clips[(case["clip"], fs)]
    start = int(case["start_s"] * fs)
    pcm = np.zeros(case["n_frames"] * frame, np.int16)
    body = slice(case["lead"] * frame, (case["n_frames"] - case["tail"]) * frame)
    seg = clip[start:start + body.stop - body.start]
    pcm[body.start:body.start + len(seg)] = seg
    active = np.ones(case["n_frames"], np.int64)
    active[: case["lead"]] = 0
    active[case["n_frames"] - case["tail"]:] = 0
    active[sorted(case["inactive"])] = 0
    return pcm, active, frame


def _libopus_payloads(build, pcm, active, frame, case):
    from opus_dred.libopus import Oracle  # lazy: builds the shim on first use
    from opus_dred.libopus._encoder import LibopusDredEncoder  # lazy: builds the shim on first use
    from opus_dred.refimpl._dred_encoder import ACTIVITY_MEMORY, update_activity  # lazy: loads JAX

    fs = case["fs"]
    enc = LibopusDredEncoder(Oracle.for_build(build), fs)
    x = pcm.astype(np.float32) / np.float32(32768.0)
    memory = np.zeros(ACTIVITY_MEMORY, np.int64)
    out = []
    for i in range(case["n_frames"]):
        enc.compute_latents(x[i * frame:(i + 1) * frame], fs // 250)
        memory = update_activity(memory, int(active[i]), frame, fs)
        out.append(enc.encode(max_chunks=dred_chunks_for_duration(case["duration"]), max_bytes=case["max_bytes"],
                              q0=case["q0"], dq=case["dq"], qmax=case["qmax"], activity=memory.astype(np.uint8)))
    return out


def _ours(pcm, active, frame, case, numerics):
    from opus_dred.refimpl import encode_dred  # lazy: loads JAX

    return encode_dred(pcm, case["profile"], case["fs"], duration=case["duration"], q0=case["q0"], dq=case["dq"],
                       qmax=case["qmax"], frame_size=frame, activity=active, max_bytes=case["max_bytes"],
                       numerics=numerics, kernels="x86")


def _opus_packet(oracle, fs, frame_ms):
    """A real (DTX-free) Opus packet of the frame size, to carry a payload."""
    tone = (3000 * np.sin(np.arange(fs * frame_ms // 1000) * 0.05)).astype(np.int16)
    return oracle.encode(tone, fs=fs, bitrate=24000, frame_ms=frame_ms)[0].data


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
def test_payloads_and_decoding_interoperate(case, clips, host_numerics):
    from opus_dred.libopus import Oracle  # lazy: builds the shim on first use
    from opus_dred.refimpl import decode_payload  # lazy: loads JAX

    pcm, active, frame = _pcm_and_activity(case, clips)
    build = case["profile"]
    ours = _ours(pcm, active, frame, case, host_numerics)
    theirs = _libopus_payloads(build, pcm, active, frame, case)
    assert len(ours) == len(theirs) == case["n_frames"]
    assert ours == theirs

    oracle = Oracle.for_build(build)
    carrier = _opus_packet(oracle, case["fs"], case["frame_ms"])
    for payload in {p for p in ours if p}:
        packet = attach_dred(carrier, payload, build)
        prof, loc = find_dred(packet)
        assert prof is not None and prof.name == build and loc.payload == payload
        ref = oracle.dred_parse(packet, sampling_rate=16000)
        mine = decode_payload(payload, build, sampling_rate=16000, numerics="libopus-avx2-host")
        assert (ref.ret, ref.nb_latents, ref.dred_offset) == (mine.ret, mine.nb_latents, mine.dred_offset)
        lat = get_profile(build).latent_dim
        np.testing.assert_array_equal(ref.state, mine.payload.state)
        np.testing.assert_array_equal(ref.latents[:, :lat], mine.payload.latents[:, :lat])
        np.testing.assert_array_equal(ref.features, mine.features)


def _input_features(pcm16k, profile, numerics):
    from opus_dred.refimpl import FeatureExtractor  # lazy: loads JAX

    fx = FeatureExtractor(profile, kernels="x86", pitch=numerics, streams=1)
    return np.asarray(fx.frames(pcm16k.astype(np.float32)[None]).features, np.float32)[0, :, :20]


def _figures(decoded, target):
    """dred_compare -features figures of decoded features (newest first) against the input frames they describe."""
    from opus_dred.conformance._metric import compare_features  # lazy: the metric is a conformance tool

    c = compare_features(target, np.asarray(decoded[: target.shape[0]], np.float32))
    return {"total": c.total, "max": c.max, "pitch": c.pitch}


def _target(decoded, feats):
    """The input feature frames a payload's decoded features describe, newest first: the run of
    ``len(decoded)`` frames ending where the cepstra agree best (the look-ahead puts the newest frame up to a
    few frames before the end)."""
    n = decoded.shape[0]
    best = None
    for end in range(feats.shape[0] - 1, feats.shape[0] - 12, -1):
        cand = feats[end - n + 1:end + 1][::-1]
        err = float(np.mean((cand[:, :18] - decoded[:, :18]) ** 2))
        if best is None or err < best[0]:
            best = (err, cand)
    return best[1]


def _two_seconds(profile, clips, numerics, builds):
    case = {"profile": profile, "fs": 16000, "frame_ms": 20, "q0": 6, "dq": 3, "qmax": 15, "duration": 104,
            "max_bytes": 998, "n_frames": 100}
    pcm = clips[("codec2-speech-orig-16k", 16000)][:100 * 320]
    active = np.ones(100, np.int64)
    ours = _ours(pcm, active, 320, case, numerics)
    theirs = {b: _libopus_payloads(b, pcm, active, 320, case) for b in builds}
    return pcm, ours, theirs


def _libopus_decode(build, payload, profile):
    from opus_dred.libopus import Oracle  # lazy: builds the shim on first use

    oracle = Oracle.for_build(build)
    return oracle.dred_parse(attach_dred(_opus_packet(oracle, 16000, 20), payload, profile), sampling_rate=16000)


@pytest.mark.parametrize("profile", PROFILES)
def test_encode_decode_distortion_equals_libopus(profile, clips, host_numerics):
    """Encode 2 s of speech, decode the last payload: our figures against the input features equal libopus'."""
    from opus_dred.refimpl import decode_payload  # lazy: loads JAX

    pcm, ours, theirs = _two_seconds(profile, clips, host_numerics, [profile])
    mine = decode_payload(ours[-1], profile, sampling_rate=16000, numerics="libopus-avx2-host").features
    ref = _libopus_decode(profile, theirs[profile][-1], profile).features
    target = _target(ref, _input_features(pcm, profile, host_numerics))
    a, b = _figures(mine, target), _figures(ref, target)
    assert a == b
    assert a["total"] < 5 and a["max"] < 3  # a sanity bound: these are speech cepstra, not noise


@pytest.mark.parametrize("profile", PROFILES)
def test_distortion_within_libopus_spread(profile, clips):
    """On any host: the reference (default numerics) encodes and decodes 2 s of speech with figures against the
    input features no worse than libopus' default and -generic builds do on the same input plus their gap."""
    from opus_dred.refimpl import decode_payload  # lazy: loads JAX

    builds = [profile, profile + "-generic"]
    pcm, ours, theirs = _two_seconds(profile, clips, "avx2", builds)
    decoded = {b: _libopus_decode(b, theirs[b][-1], profile).features for b in builds}
    target = _target(decoded[profile], _input_features(pcm, profile, "avx2"))
    a = _figures(decode_payload(ours[-1], profile, sampling_rate=16000).features, target)
    d, g = (_figures(decoded[b], target) for b in builds)
    for key in ("total", "max", "pitch"):
        assert a[key] <= max(d[key], g[key]) + abs(d[key] - g[key]) + 1e-6, key


@pytest.mark.parametrize("profile", PROFILES)
def test_receiver_and_simulate_on_a_stream_with_our_dred(profile, clips):
    """Opus frames from libopus (DRED off), DRED from the reference (default numerics: any host), attached with
    attach_dred; under a loss pattern the receiver with libopus' decoder reproduces the real opus_demo binary sample
    for sample, conceals with our DRED, and the loss experiment's decoder runs the same stream."""
    from opus_dred.experiments._simulate import decode_with_loss, resolve_policy  # lazy: experiments load plots
    from opus_dred.libopus import Oracle, decode_like_opus_demo, get_build, run_opus_demo  # lazy: shim
    from opus_dred.refimpl import encode_dred  # lazy: loads JAX

    oracle = Oracle.for_build(profile)
    pcm = clips[("codec2-speech-orig-16k", 16000)][16000: 16000 * 4]
    opus = [e.data for e in oracle.encode(pcm, fs=16000, bitrate=24000, frame_ms=20)]
    payloads = encode_dred(pcm, profile, 16000, duration=100, q0=6, dq=5, qmax=15, max_chunks=10)
    packets = [attach_dred(o, p, profile) if p else o for o, p in zip(opus, payloads)]
    assert len(payloads) == len(opus) == 150 and sum(bool(p) for p in payloads) >= 148
    lost = np.zeros(len(packets), np.int64)
    for start, n in ((20, 1), (40, 5), (70, 12), (110, 3)):
        lost[start:start + n] = 1
    ref = run_opus_demo(get_build(profile).build_dir, packets, lost, 16000)
    ours, actions = decode_like_opus_demo(oracle, packets, lost, 16000)
    kinds = {type(a).__name__ for a in actions}
    assert "Dred" in kinds
    assert np.array_equal(ours, ref)
    sim = decode_with_loss(oracle, packets, lost, 16000, len(pcm), policy=resolve_policy(oracle, "opus_demo"))
    assert sim.counts.get("Dred", 0) >= sum(n - 1 for _, n in ((20, 1), (40, 5), (70, 12), (110, 3)))
    assert len(sim.pcm) == len(pcm)
