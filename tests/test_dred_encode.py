"""The DRED encoder's payload: the integer rules and coding (bitstream/_dred_encode.py), the quantizer and the
streaming DREDEnc (refimpl/_dred_encoder.py), each against libopus' own DRED encoder through the shim
(``LibopusDredEncoder``: dred_compute_latents, dred_encode_silk_frame), and the payload in a packet against what
libopus' encoder emits and what its parsers read."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opus_dred.bitstream import attach_dred, parse_packet, write_packet
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._dred_encode import (
    ACTIVITY_ENTRIES,
    DredSettingsError,
    dred_chunks_for_duration,
    encode_dred_frame,
    plan_dred_frame,
)
from opus_dred.bitstream._errors import ExtensionError, PacketError
from opus_dred.bitstream._extensions import Extension, find_dred_extension, parse_extensions, write_extensions
from opus_dred.bitstream._packet import Toc
from opus_dred.bitstream._profiles import get_profile

pytestmark = pytest.mark.oracle

PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]
#: build -> (profile, quantizer numerics preset, whether it is the default build)
BUILDS = {
    "libopus-1.5.2": ("libopus-1.5.2", "avx2", True),
    "libopus-1.6.1": ("libopus-1.6.1", "avx2", True),
    "libopus-1.5.2-generic": ("libopus-1.5.2", "sse2", False),
    "libopus-1.6.1-generic": ("libopus-1.6.1", "sse2", False),
}
#: the activity memory handed to both encoders: libopus' 416 entries and the 8 its silence scan can read beyond
ACT_LEN = ACTIVITY_ENTRIES + 8


@functools.cache
def _oracle(build):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(build)


@functools.cache
def _speech() -> np.ndarray:
    """3.5 s of real speech at 16 kHz with 0.6 s of digital silence inside (float, int16 scale / 32768)."""
    from opus_dred.speech import load_clip

    x = load_clip(None, rate=16000).astype(np.float32) / np.float32(32768)
    return np.concatenate([x[:16000], np.zeros(9600, np.float32), x[16000:48000]])


@functools.cache
def _snapshots(build):
    """libopus' DREDEnc after each 20 ms frame of :func:`_speech` (dred_compute_latents, 48 kHz look-ahead of
    the Opus encoder at 16 kHz: 64 samples)."""
    from opus_dred.libopus._encoder import LibopusDredEncoder

    enc = LibopusDredEncoder(_oracle(build), 16000)
    x = _speech()
    out = []
    for i in range(len(x) // 320):
        enc.compute_latents(x[i * 320:(i + 1) * 320], 64)
        out.append(enc.state())
    return enc, out


def _numerics(build, request):
    from opus_dred.refimpl import _nnet as nnet

    _, preset, default = BUILDS[build]
    if default:
        request.getfixturevalue("require_default_numerics_host")
        return nnet.NUMERICS[preset]
    request.getfixturevalue("require_native_emulation")
    return nnet.for_host(nnet.NUMERICS[preset])


@functools.cache
def _encoder(profile, numerics):
    from opus_dred.refimpl._dred_encoder import DredEncoder

    return DredEncoder(profile, 16000, numerics=numerics)


# -- strategies -------------------------------------------------------------------------------------------


@st.composite
def _settings(draw, prof):
    q0 = draw(st.integers(0, 15))
    dq = draw(st.integers(0, 7))
    if q0 < 14 and dq > 0:
        qmax = draw(st.integers(q0 + 1, 15))
    else:
        qmax = draw(st.integers(q0, 15))  # not coded: libopus uses it for the levels, the reader takes 15
    return {"q0": q0, "dq": dq, "qmax": qmax, "max_chunks": draw(st.integers(0, prof.max_latents)),
            "max_bytes": draw(st.one_of(st.integers(0, 40), st.integers(0, 400), st.just(998)))}


@st.composite
def _activity(draw):
    """The activity memory, newest first: random bytes, speech-like runs of 20 ms frames, a silence stretch
    before or after speech, all silent, all active, and 1.5.x's undecided frames (255)."""
    kind = draw(st.sampled_from(["random", "runs", "silence_first", "speech_first", "silent", "active", "undecided"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "random":
        a = (rng.random(ACT_LEN) < draw(st.floats(0.05, 0.95))).astype(np.uint8)
    elif kind in ("runs", "undecided"):
        stay = draw(st.floats(0.5, 0.98))
        frames, v = [], int(rng.random() < 0.5)
        for _ in range(ACT_LEN // 8):
            frames.append(v)
            if rng.random() > stay:
                v = 1 - v
        a = np.repeat(np.array(frames, np.uint8), 8)
        if kind == "undecided":
            a[rng.random(ACT_LEN) < 0.2] = 255
    elif kind in ("silence_first", "speech_first"):
        n = draw(st.integers(0, ACT_LEN))
        a = np.zeros(ACT_LEN, np.uint8)
        if kind == "silence_first":
            a[n:] = 1
        else:
            a[:n] = 1
    else:
        a = np.full(ACT_LEN, int(kind == "active"), np.uint8)
    return a


@st.composite
def _buffer_state(draw, snap, prof):
    """The DREDEnc offsets: libopus' own, or others it reaches (a later latent offset, a remembered silence
    skip, a partly filled buffer, a dred_offset far enough back to need the extended offset)."""
    fill = draw(st.one_of(st.just(snap.latents_buffer_fill), st.integers(0, snap.latents_buffer_fill)))
    return {
        "latents_buffer_fill": fill,
        "dred_offset": draw(st.one_of(st.just(snap.dred_offset), st.integers(-60, 16))),
        "latent_offset": draw(st.one_of(st.just(snap.latent_offset), st.integers(0, 4))),
        "last_extra_dred_offset": draw(st.one_of(st.just(0), st.integers(0, 8), st.integers(0, 2 * prof.max_latents))),
    }


def _offsets(snap) -> dict:
    """libopus' own offsets after a frame, with no silence skip remembered."""
    return {"latents_buffer_fill": snap.latents_buffer_fill, "dred_offset": snap.dred_offset,
            "latent_offset": snap.latent_offset, "last_extra_dred_offset": 0}


def _libopus_payload(enc, latents, states, buf, act, s):
    enc.set_buffers(latents, states, fill=buf["latents_buffer_fill"], dred_offset=buf["dred_offset"],
                    latent_offset=buf["latent_offset"], last_extra_dred_offset=buf["last_extra_dred_offset"])
    ref = enc.encode(activity=act, **s)
    return ref, enc.state().last_extra_dred_offset


# -- quantizer + coder on libopus' latents, bit for bit -----------------------------------------------------


@pytest.mark.parametrize("build", list(BUILDS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_payload_equals_dred_encode_silk_frame(build, request, data):
    """Latents and states libopus computed from real speech, quantized by the reference and coded by the
    bitstream layer: the same bytes and the same ``last_extra_dred_offset`` as ``dred_encode_silk_frame``,
    for any q0/dQ/qmax, chunk and byte limits, activity and encoder offsets."""
    profile, _, _ = BUILDS[build]
    prof = get_profile(profile)
    num = _numerics(build, request)
    enc, snaps = _snapshots(build)
    snap = snaps[data.draw(st.integers(5, len(snaps) - 1))]
    s = data.draw(_settings(prof))
    act = data.draw(_activity())
    buf = data.draw(_buffer_state(snap, prof))
    ref, ref_extra = _libopus_payload(enc, snap.latents, snap.states, buf, act, s)
    mine = _encoder(profile, num)
    mine.set_buffers(snap.latents, snap.states, **buf)
    got = mine.payload(activity=act, **s)
    assert got == ref
    assert mine.last_extra_dred_offset == ref_extra
    event(f"payload {'sent' if ref else 'none'}")


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
def test_facade_codes_the_quantized_buffers(build, request):
    """``encode_dred_frame`` on the reference's quantized buffers (arrays, and functions of entry and level)
    gives libopus' payloads on every frame of the speech."""
    profile, _, _ = BUILDS[build]
    num = _numerics(build, request)
    enc, snaps = _snapshots(build)
    mine = _encoder(profile, num)
    sent = 0
    for i, snap in enumerate(snaps[::4]):
        s = {"q0": 4 + i % 8, "dq": 3, "qmax": 15, "max_chunks": 26, "max_bytes": 120 + 7 * i}
        buf = _offsets(snap)
        act = np.ones(ACT_LEN, np.uint8)
        act[8 * (i % 9):8 * (i % 9) + 24] = 0
        ref, ref_extra = _libopus_payload(enc, snap.latents, snap.states, buf, act, s)
        mine.set_buffers(snap.latents, snap.states, **buf)
        sq, lq = mine.quantized(s["q0"])
        got = encode_dred_frame(profile, state_q=sq, latents_q=lq, activity=act, **buf, **s)
        assert got == (ref, ref_extra)
        got_fn = encode_dred_frame(profile, state_q=lambda e, sq=sq: sq[e],
                                   latents_q=lambda e, lv, lq=lq: lq[lv, e], activity=act, **buf, **s)
        assert got_fn.payload == ref
        sent += bool(ref)
    assert sent > 20


# -- the integer rules on every host: all-zero buffers quantize to zero under any numerics ------------------


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1-generic"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_rules_on_zero_buffers_equal_libopus(build, data):
    """The silence skip, delayed DRED, budget loop with its rollback, trailing-inactive drop and "no empty
    DRED": with buffers of zeros (quantized to 0 whatever the tanh) the payload and ``last_extra_dred_offset``
    equal libopus' on any host."""
    profile, _, _ = BUILDS[build]
    prof = get_profile(profile)
    enc, _ = _snapshots(build)
    s = data.draw(_settings(prof))
    act = data.draw(_activity())
    fill = data.draw(st.integers(0, 2 * prof.max_latents))
    buf = {"latents_buffer_fill": fill, "dred_offset": data.draw(st.integers(-60, 16)),
           "latent_offset": data.draw(st.integers(0, 4)), "last_extra_dred_offset": data.draw(st.integers(0, 10))}
    zl = np.zeros((104, prof.latent_dim), np.float32)
    zs = np.zeros((104, prof.state_dim), np.float32)
    ref, ref_extra = _libopus_payload(enc, zl, zs, buf, act, s)
    got = encode_dred_frame(profile, state_q=np.zeros((104, prof.state_dim), np.int32),
                            latents_q=np.zeros((prof.quant_levels, 104, prof.latent_dim), np.int32),
                            activity=act, **buf, **s)
    assert got == (ref, ref_extra)


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
def test_float_quantizer_within_one_of_libopus(build):
    """The quantizer with exact ``tanh`` (``FLOAT``, any host): the integers libopus codes (read back from its
    payloads) differ from the reference's by at most 1, and in at most 1 value in 10 000."""
    from opus_dred.refimpl import _nnet as nnet

    profile, _, _ = BUILDS[build]
    enc, snaps = _snapshots(build)
    mine = _encoder(profile, nnet.FLOAT)
    diff = total = 0
    for i, snap in enumerate(snaps[52::2]):
        q0 = (3 * i) % 16
        buf = _offsets(snap)
        ref, _ = _libopus_payload(enc, snap.latents, snap.states, buf, np.ones(ACT_LEN, np.uint8),
                                  {"q0": q0, "dq": 0, "qmax": 15, "max_chunks": 26, "max_bytes": 998})
        p = read_dred_payload(ref, profile)
        mine.set_buffers(snap.latents, snap.states, **buf)
        sq, lq = mine.quantized(q0)
        o = snap.latent_offset
        theirs = np.concatenate([p.state_q, p.latents_q.reshape(-1)])
        ours = np.concatenate([sq[o], lq[q0, o:o + 2 * p.nb_latents:2].reshape(-1)])
        d = np.abs(ours.astype(np.int64) - theirs)
        assert d.max() <= 1
        diff += int((d > 0).sum())
        total += d.size
    assert total > 30_000 and diff <= total // 10_000


def test_quantizer_is_pure_under_vmap_and_jit():
    """A jitted call on a buffer against every level (broadcast) equals ``vmap`` over the levels, and
    zero-probability positions come out 0."""
    import jax
    from opus_dred.refimpl._dred_encoder import quantize

    prof = get_profile("libopus-1.6.1")
    st_ = prof.stats
    x = np.random.default_rng(0).normal(0, 8, (7, prof.latent_dim)).astype(np.float32)
    tabs = [st_.latent_scale, st_.latent_dead_zone, st_.latent_r, st_.latent_p0]
    broadcast = np.asarray(jax.jit(quantize)(x[None], *(t[:, None, :] for t in tabs)))
    mapped = np.asarray(jax.jit(jax.vmap(lambda s, d, r, p: quantize(x, s, d, r, p)))(*tabs))
    np.testing.assert_array_equal(broadcast, mapped)
    impossible = (st_.latent_r == 0) | (st_.latent_p0 == 255)
    assert (broadcast[np.broadcast_to(impossible[:, None, :], broadcast.shape)] == 0).all()
    assert (broadcast[np.broadcast_to(~impossible[:, None, :], broadcast.shape)] != 0).any()


# -- the streaming encoder: dred_compute_latents' bookkeeping -----------------------------------------------


def _to_16k_at_16k(profile):
    """``dred_convert_to_16k`` at 16 kHz, mono: ``FLOAT2INT16`` (round to nearest even, saturated), plus 1.6.x's
    ``VERY_SMALL`` (1e-30)."""
    tiny = np.float32(1e-30) if get_profile(profile).has_q_feature else np.float32(0)

    def convert(x):
        return np.clip(np.rint(np.asarray(x, np.float32) * np.float32(32768)), -32768, 32767).astype(np.float32) + tiny

    return convert


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
@pytest.mark.parametrize("extra_delay", [0, 64])
def test_streaming_encoder_follows_dredenc(build, extra_delay, request):
    """:class:`DredEncoder` fed frames of 2.5 to 60 ms (speech and silence) with libopus' feature extractor and
    RDO-VAE step injected: after every frame its offsets, input buffer, latent and state buffers equal those
    of libopus' DREDEnc, and its payloads (carrying ``last_extra_dred_offset`` from frame to frame, with an
    activity memory kept as the Opus encoder keeps it) are libopus' bytes."""
    from opus_dred.libopus._encoder import LibopusDredEncoder, LibopusFeatureExtractor
    from opus_dred.refimpl._dred_encoder import DredEncoder

    profile, _, _ = BUILDS[build]
    num = _numerics(build, request)
    o = _oracle(build)
    ref = LibopusDredEncoder(o, 16000)
    net = LibopusDredEncoder(o, 16000)
    feat = LibopusFeatureExtractor(o)
    mine = DredEncoder(profile, 16000, numerics=num, to_16k=_to_16k_at_16k(profile),
                       features=lambda x: feat.frame(x).features, encoder_step=net.rdovae_encode_step)
    rng = np.random.default_rng(7 + extra_delay)
    x = _speech()
    act = np.zeros(ACT_LEN, np.uint8)
    pos = frames = sent = 0
    while pos + 960 <= x.shape[0] and frames < 120:
        n = int(rng.choice([40, 80, 160, 320, 640, 960]))
        frame = x[pos:pos + n]
        pos += n
        ref.compute_latents(frame, extra_delay)
        mine.push(frame, extra_delay)
        s = ref.state()
        assert (mine.input_buffer_fill, mine.dred_offset, mine.latent_offset, mine.latents_buffer_fill) == \
            (s.input_buffer_fill, s.dred_offset, s.latent_offset, s.latents_buffer_fill)
        np.testing.assert_array_equal(mine.input_buffer[:mine.input_buffer_fill], s.input_buffer[:s.input_buffer_fill])
        np.testing.assert_array_equal(mine.latents, s.latents)
        np.testing.assert_array_equal(mine.states, s.states)
        n400 = n * 400 // 16000
        act = np.concatenate([np.full(n400, int(np.abs(frame).max() > 0 and rng.random() < 0.8), np.uint8),
                              act[:-n400]])
        kw = {"q0": int(rng.integers(0, 16)), "dq": 0, "qmax": 15, "max_chunks": int(rng.integers(1, 27)),
              "max_bytes": int(rng.integers(8, 300))}
        want = ref.encode(activity=act, **kw)
        assert mine.payload(activity=act, **kw) == want
        assert mine.last_extra_dred_offset == ref.state().last_extra_dred_offset
        frames += 1
        sent += bool(want)
    assert frames == 120 and sent > 40


@pytest.mark.parametrize("build", ["libopus-1.6.1"])
def test_streaming_encoder_with_the_reference_rdovae(build, request):
    """With the reference RDO-VAE encoder (the default ``encoder_step``) and libopus' features, the buffers
    and payloads of 40 frames of speech are libopus' (the build's numerics for both the network and the
    quantizer; the network alone is compared with every build in test_rdovae_encoder.py)."""
    from opus_dred.libopus._encoder import LibopusDredEncoder, LibopusFeatureExtractor
    from opus_dred.refimpl._dred_encoder import DredEncoder

    profile, _, _ = BUILDS[build]
    num = _numerics(build, request)
    ref = LibopusDredEncoder(_oracle(build), 16000)
    feat = LibopusFeatureExtractor(_oracle(build))
    mine = DredEncoder(profile, 16000, numerics=num, to_16k=_to_16k_at_16k(profile),
                       features=lambda x: feat.frame(x).features)
    x = _speech()
    for i in range(40):
        ref.compute_latents(x[320 * i:320 * (i + 1)], 64)
        mine.push(x[320 * i:320 * (i + 1)], 64)
        s = ref.state()
        np.testing.assert_array_equal(mine.latents, s.latents)
        np.testing.assert_array_equal(mine.states, s.states)
        kw = {"q0": 5, "dq": 3, "qmax": 15, "max_chunks": 26, "max_bytes": 100 + 3 * i}
        assert mine.payload(**kw) == ref.encode(**kw)


@pytest.mark.parametrize("fs", [8000, 12000, 24000, 48000])
def test_streaming_offsets_at_every_rate(fs):
    """At every input rate the offsets ``dred_compute_latents`` keeps (fill, dred_offset, latent_offset,
    latents_buffer_fill) follow libopus' frame by frame (they depend on sizes alone, so the 16 kHz conversion is
    a stand-in here)."""
    from opus_dred.libopus._encoder import LibopusDredEncoder
    from opus_dred.refimpl._dred_encoder import DredEncoder

    prof = get_profile("libopus-1.6.1")
    ref = LibopusDredEncoder(_oracle("libopus-1.6.1"), fs)
    mine = DredEncoder(prof, fs, to_16k=lambda x: np.zeros(x.shape[0] * 16000 // fs, np.float32),
                       features=lambda x: np.zeros(prof.num_features, np.float32),
                       encoder_step=lambda f: (np.zeros(prof.latent_dim), np.zeros(prof.state_dim)))
    rng = np.random.default_rng(fs)
    delay = fs // 250
    for _ in range(80):
        n = int(rng.choice([fs // 400, fs // 200, fs // 100, fs // 50, fs // 25, 3 * fs // 50]))
        frame = np.zeros(n, np.float32)
        ref.compute_latents(frame, delay)
        mine.push(frame, delay)
        s = ref.state()
        assert (mine.input_buffer_fill, mine.dred_offset, mine.latent_offset, mine.latents_buffer_fill) == \
            (s.input_buffer_fill, s.dred_offset, s.latent_offset, s.latents_buffer_fill)


# -- the payload in the packet -------------------------------------------------------------------------------


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
@pytest.mark.parametrize("vbr", [True, False])
@pytest.mark.parametrize("frame_ms,bitrate", [(10, 64000), (20, 32000), (60, 24000)])
def test_attach_dred_rebuilds_libopus_packets(build, vbr, frame_ms, bitrate):
    """Every DRED-carrying packet of libopus' encoder (VBR; CBR, padded to its length) is rebuilt byte for byte
    from its frames and its DRED payload."""
    pcm = _speech()[:16000] * np.float32(32768)
    packets = _oracle(build).encode(pcm.astype(np.int16), fs=16000, bitrate=bitrate, frame_ms=frame_ms,
                                    loss_perc=20, dred_duration=100, vbr=vbr)
    n = 0
    for p in packets:
        loc = find_dred_extension(p.data, build)
        if loc is None:
            continue
        pkt = parse_packet(p.data)
        bare = write_packet(pkt.toc, pkt.frames)
        assert attach_dred(bare, loc.payload, build, pad_to=None if vbr else len(p.data)) == p.data
        n += 1
    assert n >= len(packets) // 2


@pytest.mark.parametrize("profile", PROFILES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_attach_dred_keeps_extensions_and_libopus_finds_it(profile, data):
    """Into packets of 1 to 3 frames with extensions of their own: libopus' packet parser and extension parser
    read the result, the extensions are the new DRED then the old ones, and ``opus_dred_parse`` decodes the
    payload and offset the bitstream layer wrote (also at a later frame, and padded to a length)."""
    prof = get_profile(profile)
    o = _oracle(profile)
    nb = data.draw(st.integers(1, 3))
    sizes = data.draw(st.lists(st.integers(1, 300), min_size=nb, max_size=nb))
    frames = [bytes([(7 * i + j) % 256 for j in range(sz)]) for i, sz in enumerate(sizes)]
    old = [Extension(data.draw(st.sampled_from([5, 9, 33, 60])), data.draw(st.integers(0, nb - 1)),
                     bytes(data.draw(st.integers(0, 1)))) for _ in range(data.draw(st.integers(0, 3)))]
    old = [e if e.id >= 32 else Extension(e.id, e.frame, e.data[:1]) for e in old]
    old.sort(key=lambda e: e.frame)
    toc = Toc(data.draw(st.sampled_from([1, 9, 13, 16, 19])), False, 0)
    base = write_packet(toc, frames, padding=write_extensions(old, nb, syntax=prof.extension_syntax)) if old \
        else write_packet(toc, frames)
    frame = data.draw(st.integers(0, nb - 1))
    lat = np.zeros((prof.quant_levels, 104, prof.latent_dim), np.int32)
    payload, _ = encode_dred_frame(profile, q0=data.draw(st.integers(0, 15)), dq=0, qmax=15,
                                   dred_offset=data.draw(st.integers(-40, 16)),
                                   state_q=np.zeros((104, prof.state_dim), np.int32), latents_q=lat,
                                   latents_buffer_fill=data.draw(st.integers(2, 52)), max_chunks=26, max_bytes=998)
    assert payload
    min_len = len(attach_dred(base, payload, profile, frame=frame))
    pad_to = data.draw(st.one_of(st.none(), st.integers(min_len, min_len + 600)))
    out = attach_dred(base, payload, profile, frame=frame, pad_to=pad_to)
    if pad_to is not None:
        assert len(out) == pad_to
    parsed = o.packet_parse(out)
    assert parsed.ret == nb and parsed.frames == frames
    ext = o.ext_parse(parsed.padding, nb)
    assert ext.ret >= 0
    got = [(e.id, e.frame, e.data) for e in ext.extensions]
    want = [(e.id, e.frame, e.data) for e in parse_extensions(parsed.padding, nb, syntax=prof.extension_syntax)]
    assert got == want
    dred = (prof.extension_id, frame, prof.experimental_prefix + payload)
    assert sorted(got, key=lambda t: t[1]) == sorted([dred] + [(e.id, e.frame, e.data) for e in old],
                                                      key=lambda t: t[1])
    ours = read_dred_payload(payload, prof, dred_frame_offset=frame * toc.frame_size_48k // 120)
    ref = o.dred_parse(out, defer_processing=True)
    try:
        assert ref.nb_latents == ours.nb_latents and ref.dred_offset == ours.dred_offset
        np.testing.assert_array_equal(np.asarray(ref.state, np.float32), ours.state)
    finally:
        ref.close()


@pytest.mark.parametrize("profile", PROFILES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_empty_payload_pads_as_opus_packet_pad(profile, data):
    """No payload: the packet unchanged, or with ``pad_to`` exactly ``opus_packet_pad``'s bytes (extensions
    kept, zeros when there are none)."""
    prof = get_profile(profile)
    nb = data.draw(st.integers(1, 3))
    sizes = data.draw(st.lists(st.integers(0, 300), min_size=nb, max_size=nb))
    frames = [bytes([(3 * i + j) % 256 for j in range(sz)]) for i, sz in enumerate(sizes)]
    old = [Extension(40, data.draw(st.integers(0, nb - 1)), b"xyz")] if data.draw(st.booleans()) else []
    toc = Toc(16, False, 0)
    base = write_packet(toc, frames, padding=write_extensions(old, nb, syntax=prof.extension_syntax)) if old \
        else write_packet(toc, frames)
    assert attach_dred(base, b"", profile) == base
    new_len = len(base) + data.draw(st.integers(0, 700))
    ret, want = _oracle(profile).packet_pad(base, new_len)
    assert ret == 0
    assert attach_dred(base, b"", profile, pad_to=new_len) == want


def test_attach_dred_refusals():
    base = write_packet(Toc(16, False, 0), [b"\x01\x02\x03"])
    with pytest.raises(ExtensionError):
        attach_dred(base, b"\x05" * 10, "libopus-1.6.1", frame=1)
    with pytest.raises(PacketError):
        attach_dred(base, b"\x05" * 10, "libopus-1.6.1", pad_to=len(base) + 5)
    with pytest.raises(PacketError):
        attach_dred(base, b"", "libopus-1.6.1", pad_to=len(base) - 1)
    bad_padding = write_packet(Toc(16, False, 0), [b"\x01"], padding=bytes([65, 20]))  # id 32, 20 bytes: none
    with pytest.raises(ExtensionError):
        attach_dred(bad_padding, b"\x05" * 10, "libopus-1.6.1")


# -- settings refused, naming the parameter -------------------------------------------------------------------


@pytest.mark.parametrize("bad,param", [
    ({"q0": 16}, "q0"), ({"q0": -1}, "q0"), ({"dq": 8}, "dq"), ({"qmax": 5}, "qmax"), ({"qmax": 16}, "qmax"),
    ({"qmax": 6}, "qmax"), ({"max_chunks": 27}, "max_chunks"), ({"max_chunks": -1}, "max_chunks"),
    ({"latents_buffer_fill": 53}, "latents_buffer_fill"), ({"latent_offset": -1}, "latent_offset"),
    ({"dred_offset": 17}, "dred_offset"), ({"activity": np.full(8, 300)}, "activity"),
])
def test_settings_errors_name_the_parameter(bad, param):
    kw = {"q0": 6, "dq": 3, "qmax": 15, "dred_offset": 9, "latents_buffer_fill": 52, "max_chunks": 26}
    plan_dred_frame("libopus-1.5.2", **kw)
    with pytest.raises(DredSettingsError) as exc:
        plan_dred_frame("libopus-1.5.2", **{**kw, **bad})
    assert exc.value.parameter == param and param in str(exc.value)


def test_other_settings_errors():
    from opus_dred.refimpl._dred_encoder import DredEncoder

    assert [dred_chunks_for_duration(d) for d in (0, 1, 3, 4, 100, 104)] == [0, 1, 2, 2, 26, 26]
    for d in (-1, 105):
        with pytest.raises(DredSettingsError, match="duration"):
            dred_chunks_for_duration(d)
    with pytest.raises(DredSettingsError, match="fs"):
        DredEncoder("libopus-1.6.1", 44100)
    e = DredEncoder("libopus-1.6.1", 16000)
    with pytest.raises(DredSettingsError, match="max_bytes"):
        e.payload(q0=6, dq=3, qmax=15, max_chunks=26, max_bytes=-1)
    prof = get_profile("libopus-1.6.1")
    with pytest.raises(DredSettingsError, match="latents_q"):
        encode_dred_frame(prof, q0=6, dq=0, qmax=15, dred_offset=9, state_q=np.zeros((104, prof.state_dim), int),
                          latents_q=np.zeros((104, prof.latent_dim), int), latents_buffer_fill=52, max_chunks=26,
                          max_bytes=100)
