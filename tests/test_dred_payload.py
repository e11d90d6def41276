"""The DRED payload (bitstream/dred.py): writer→reader properties, libopus' dred_ec_decode on any
bytes, and libopus' own encoder output re-written byte for byte (oracle)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.bitstream._arith import compute_quantizer, min_feature_frames_for, requested_chunks
from opus_dred.bitstream._dred import (
    DredPayload,
    read_dred_payload,
    write_dred_payload,
)
from opus_dred.bitstream._errors import DredPayloadError
from opus_dred.bitstream._profiles import get_profile

PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]


def test_quantizer_schedule():
    # dnn/dred_coding.c: min(qmax, q0 + (dq_table[dQ]*k + 8) / 16), dq_table = {0,2,3,4,6,8,12,16}
    assert [compute_quantizer(6, 5, 15, k) for k in range(5)] == [6, 7, 7, 8, 8]
    assert compute_quantizer(6, 7, 9, 10) == 9
    assert compute_quantizer(4, 0, 15, 25) == 4


def test_requested_amount_like_opus_dred_parse():
    # min_feature_frames = min(2 + 100*max_dred_samples/sr, 104); chunks = ceil(min(52, (mff+1)/2) / 2)
    assert min_feature_frames_for(48000, 48000) == 102
    assert min_feature_frames_for(10**6, 16000) == 104
    assert requested_chunks(104) == 26
    assert requested_chunks(min_feature_frames_for(960, 48000)) == 1  # 20 ms lost -> 4 frames -> 1 chunk
    assert requested_chunks(0) == 0


def _random_payload(draw, prof):
    q0 = draw(st.integers(0, 15))
    dq = draw(st.integers(0, 7))
    qmax = draw(st.integers(q0 + 1, 15)) if (q0 < 14 and dq > 0) else 15
    ext = draw(st.booleans())
    nb = draw(st.integers(0, prof.max_latents))
    stats = prof.stats
    levels = [compute_quantizer(q0, dq, qmax, k, prof.dq_table) for k in range(nb)]

    def values(r, p0, n):
        return [0 if (r[i] == 0 or p0[i] == 255) else draw(st.integers(-12, 12)) for i in range(n)]

    state = values(stats.state_r[q0], stats.state_p0[q0], prof.state_dim)
    lat = [values(stats.latent_r[lv], stats.latent_p0[lv], prof.latent_dim) for lv in levels]
    return DredPayload(
        profile=prof.name, q0=q0, dQ=dq, qmax=qmax, extended_offset=ext,
        extra_offset=32 * draw(st.integers(0, 255)) if ext else 0, offset=draw(st.integers(0, 31)),
        state_q=np.array(state, np.int32), latents_q=np.array(lat, np.int32).reshape(nb, prof.latent_dim),
    )


@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_write_then_read(name, data):
    prof = get_profile(name)
    p = _random_payload(data.draw, prof)
    raw = write_dred_payload(p)
    got = read_dred_payload(raw, prof)
    assert (got.q0, got.dQ, got.qmax, got.extended_offset, got.extra_offset, got.offset) == \
        (p.q0, p.dQ, p.qmax, p.extended_offset, p.extra_offset, p.offset)
    assert np.array_equal(got.state_q, p.state_q)
    # libopus stops when fewer than 8 bits remain, so trailing chunks coded in under 8 bits are lost
    # (dred_ec_decode's FIXME); everything read is what was written.
    assert got.nb_latents <= p.nb_latents
    assert np.array_equal(got.latents_q, p.latents_q[: got.nb_latents])
    if got.nb_latents < p.nb_latents:
        assert got.stop_reason == "bits" and 8 * len(raw) - got.end_tell <= 7
    assert not got.read_past_end
    if got.nb_latents == p.nb_latents:
        assert write_dred_payload(got) == raw
    # dequantization as libopus: q*256/scale in float32, and the q feature column in 1.6.x
    scale = prof.stats.state_scale[p.q0].astype(np.float32)
    assert np.array_equal(got.state, np.float32(256) * p.state_q.astype(np.float32) / np.where(scale == 0, 1, scale))
    assert got.latents.shape == (got.nb_latents, prof.latent_stride)
    if prof.has_q_feature and got.nb_latents:
        assert np.array_equal(got.latents[:, -1], got.q_levels.astype(np.float32) * np.float32(0.125) - 1)


@pytest.mark.parametrize("name", PROFILES)
def test_writer_refuses_what_cannot_be_coded(name):
    prof = get_profile(name)
    base = dict(profile=name, q0=6, dQ=3, qmax=15, state_q=np.zeros(prof.state_dim, np.int32),
                latents_q=np.zeros((1, prof.latent_dim), np.int32))
    write_dred_payload(DredPayload(**base))
    for bad in ({"q0": 16}, {"dQ": 8}, {"qmax": 6}, {"q0": 14, "qmax": 14}, {"offset": 32},
                {"extra_offset": 96}, {"extra_offset": 40, "extended_offset": True},
                {"extra_offset": 32 * 256, "extended_offset": True},
                {"latents_q": np.zeros((27, prof.latent_dim), np.int32)},
                {"state_q": np.zeros(prof.state_dim + 1, np.int32)}):
        with pytest.raises(DredPayloadError):
            write_dred_payload(DredPayload(**{**base, **bad}))
    # a position the statistics give zero probability cannot hold a non-zero value
    st_ = prof.stats
    zero = [(q, i) for q in range(16) for i in range(prof.latent_dim)
            if st_.latent_r[q, i] == 0 or st_.latent_p0[q, i] == 255]
    if zero:
        q, i = zero[0]
        lat = np.zeros((1, prof.latent_dim), np.int32)
        lat[0, i] = 1
        with pytest.raises(DredPayloadError):
            write_dred_payload(DredPayload(**{**base, "q0": q, "dQ": 0, "qmax": 15, "latents_q": lat}))


def test_field_positions_cover_the_header():
    p = read_dred_payload(bytes(range(1, 60)), "libopus-1.6.1")
    names = [f[0] for f in p.fields]
    assert names[:2] == ["q0", "dq"] and "state" in names
    assert all(a <= b for _, a, b in p.fields)
    assert p.fields[0][1] == 1  # a fresh decoder has used 1 bit


# -- against libopus -------------------------------------------------------------------------------


@functools.cache
def _oracle(name):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(name)


@pytest.mark.oracle
@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(min_size=1, max_size=160), mff=st.one_of(st.just(104), st.integers(-4, 110)),
       frame_offset=st.integers(-8, 40))
def test_reader_matches_dred_ec_decode(name, payload, mff, frame_offset):
    ref = _oracle(name).dred_ec_decode(payload, min_feature_frames=mff, dred_frame_offset=frame_offset)
    got = read_dred_payload(payload, name, min_feature_frames=mff, dred_frame_offset=frame_offset)
    h = ref.header
    assert (h.q0, h.dQ, h.qmax, h.extra_flag, h.offset) == (got.q0, got.dQ, got.qmax, int(got.extended_offset), got.offset)
    assert 32 * h.extra == got.extra_offset  # libopus' extra_offset: the coded uint(256) times 32
    assert ref.ret == got.nb_latents == ref.nb_latents
    assert ref.dred_offset == got.dred_offset
    assert np.array_equal(np.asarray(ref.state, np.float32), got.state)
    assert np.array_equal(np.asarray(ref.latents, np.float32)[: got.nb_latents], got.latents)


@pytest.mark.oracle
@pytest.mark.parametrize("name", PROFILES)
def test_rewrites_libopus_encoder_output_byte_for_byte(name):
    from opus_dred.bitstream._extensions import find_dred_extension
    from opus_dred.speech._corpus import load_clip

    pcm = load_clip(None, rate=16000)[:16000]
    packets = _oracle(name).encode(pcm, fs=16000, bitrate=24000, frame_ms=20, complexity=10, loss_perc=20,
                                   dred_duration=100)
    same = 0
    for pkt in packets:
        loc = find_dred_extension(pkt.data, name)
        if loc is None:
            continue
        p = read_dred_payload(loc.payload, name)
        w = write_dred_payload(p)
        if w == loc.payload:
            same += 1
        else:
            # the encoder coded a last chunk in under 8 bits, which dred_ec_decode (and so the reader)
            # does not read: then, and only then, the rewrite lacks it
            assert p.stop_reason == "bits" and 8 * len(loc.payload) - p.end_tell <= 7
            assert len(w) <= len(loc.payload)
    assert same > 10


# -- the DRED arithmetic (bitstream._arith): properties, then against opus_dred_parse ------------------


@given(st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=20), st.lists(st.integers(-2**40, 2**40), min_size=1,
                                                                           max_size=20))
def test_imin_is_min_on_ints_and_arrays(a, b):
    from opus_dred.bitstream._arith import imin

    n = min(len(a), len(b))
    assert [imin(x, y) for x, y in zip(a, b)] == [min(x, y) for x, y in zip(a, b)]
    np.testing.assert_array_equal(imin(np.array(a[:n]), np.array(b[:n])), np.minimum(a[:n], b[:n]))


def test_header_arithmetic_is_the_same_on_ints_and_arrays():
    """What the batched readers call on arrays is what the scalar reader calls on ints, element for element."""
    from opus_dred.bitstream._arith import (
        DQ_TABLE,
        compute_dred_offset,
        extra_offset_from_code,
        extra_offset_to_code,
        q_feature,
        qmax_is_coded,
        qmax_nvals,
        qmax_of_symbol,
        qmax_symbol,
    )

    q0, dq, qmax, k = np.meshgrid(np.arange(16), np.arange(8), np.arange(16), np.arange(26), indexing="ij")
    q0, dq, qmax, k = (a.ravel() for a in (q0, dq, qmax, k))
    got = compute_quantizer(q0, dq, qmax, k, np.asarray(DQ_TABLE))
    assert got.tolist() == [compute_quantizer(*map(int, t)) for t in zip(q0, dq, qmax, k)]
    assert qmax_is_coded(q0, dq).tolist() == [bool(a < 14 and b > 0) for a, b in zip(q0, dq)]
    for q in range(14):  # the qmax symbol: ft = 2 * nvals; nvals + j codes q0 + 1 + j (up to 14), below 15
        nvals = qmax_nvals(q)
        assert [qmax_symbol(q, m) for m in range(q + 1, 15)] == list(range(nvals, 2 * nvals))
        assert [qmax_of_symbol(q, s) for s in range(nvals, 2 * nvals)] == list(range(q + 1, 15))
    codes = np.arange(256)
    assert extra_offset_from_code(codes).tolist() == [32 * c for c in range(256)]
    assert extra_offset_to_code(extra_offset_from_code(codes)).tolist() == codes.tolist()
    assert compute_dred_offset(np.array([0, 31]), np.array([0, 32 * 255]), np.array([0, 8])).tolist() == \
        [compute_dred_offset(0, 0, 0), compute_dred_offset(31, 32 * 255, 8)] == [16, 16 - 31 - 8160 + 8]
    levels = np.arange(16)
    f = np.float32(q_feature(levels))
    assert f.tolist() == [np.float32(q) * np.float32(0.125) - np.float32(1) for q in range(16)]
    assert f.tolist() == [q_feature(q) for q in range(16)]  # exact in float32


@given(st.lists(st.integers(-2**20, 2**20), min_size=1, max_size=30), st.integers(0, 255))
def test_dequantize_is_dred_decode_latents(q, scale):
    from opus_dred.bitstream._arith import dequant_divisor, dequantize

    div = dequant_divisor(np.full(len(q), scale, np.uint8))
    want = [np.float32(np.float32(v) * np.float32(256.0)) / np.float32(scale or 1) for v in q]
    np.testing.assert_array_equal(dequantize(np.array(q, np.int32), div), np.array(want, np.float32))


@functools.cache
def _toc_frame_size(config: int) -> int:
    from opus_dred.bitstream._packet import Toc

    return Toc(config, False, 0).frame_size_48k


@pytest.mark.oracle
@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_arith_matches_opus_dred_parse(name, data):
    """The frame offset, extra offset and dred_offset, the latents a request reads, the parse return and
    dred_end, the quantizer schedule, the q feature and dequantization, against ``opus_dred_parse`` on payloads
    with any header (extended offsets included), at any frame of the packet, for any request and rate."""
    from opus_dred.bitstream._arith import (
        compute_dred_frame_offset,
        compute_dred_offset,
        dequantize,
        dred_end,
        dred_latents_read,
        dred_parse_return,
        parse_return,
        q_feature,
    )
    from opus_dred.bitstream._dred import coding_tables, dred_extension_data
    from opus_dred.bitstream._extensions import Extension, write_extensions
    from opus_dred.bitstream._packet import Toc, write_packet

    prof = get_profile(name)
    p = _random_payload(data.draw, prof)
    nb_frames = data.draw(st.integers(1, 3))
    frame = data.draw(st.integers(0, nb_frames - 1))
    config = data.draw(st.sampled_from([1, 9, 13, 16, 19]))
    pad = write_extensions([Extension(prof.extension_id, frame, dred_extension_data(write_dred_payload(p), prof))],
                           nb_frames, syntax=prof.extension_syntax)
    pkt = write_packet(Toc(config, False, 0), [b"\x00\x00"] * nb_frames, padding=pad, code=3)
    rate = data.draw(st.one_of(st.sampled_from([8000, 12000, 16000, 24000, 48000]), st.integers(1, 96000)))
    request = data.draw(st.one_of(st.integers(-3000, 70000), st.integers(0, 2**31 - 1)))
    o = _oracle(name)
    full = o.dred_parse(pkt, sampling_rate=rate, defer_processing=True)
    ref = o.dred_parse(pkt, max_dred_samples=request, sampling_rate=rate, defer_processing=True)
    try:
        frame_offset = compute_dred_frame_offset(frame, _toc_frame_size(config))
        assert ref.dred_offset == compute_dred_offset(p.offset, p.extra_offset, frame_offset)
        assert ref.nb_latents == min(full.nb_latents, requested_chunks(min_feature_frames_for(request, rate)))
        if request >= 0 and full.nb_latents:  # the receiver's arithmetic, from the full parse
            assert ref.nb_latents == dred_latents_read(full.nb_latents, rate, request)
            assert ref.ret == dred_parse_return(full.nb_latents, full.dred_offset, rate, request)
        assert ref.ret == parse_return(ref.nb_latents, ref.dred_offset, rate)
        assert ref.dred_end == dred_end(ref.dred_offset, rate)
        levels = np.array([compute_quantizer(p.q0, p.dQ, p.qmax, k, prof.dq_table) for k in range(ref.nb_latents)])
        tabs = coding_tables(prof)
        np.testing.assert_array_equal(ref.state[: prof.state_dim], dequantize(p.state_q, tabs.state_div[p.q0]))
        if ref.nb_latents:
            np.testing.assert_array_equal(ref.latents[:, : prof.latent_dim],
                                          dequantize(p.latents_q[: ref.nb_latents], tabs.latent_div[levels]))
            if prof.has_q_feature:
                np.testing.assert_array_equal(ref.latents[:, -1], q_feature(levels).astype(np.float32))
    finally:
        full.close()
        ref.close()


@pytest.mark.parametrize("request_samples", [-1000, -481, -480, 0, 479, 480])
def test_arith_coverage_equals_the_reader_for_any_request(request_samples):
    """``dred_latents_read`` and ``dred_parse_return`` give what the reader reads and returns for the same request,
    negative ones included (libopus does not clamp ``max_dred_samples``)."""
    from opus_dred.bitstream import _arith as ar
    from opus_dred.bitstream._extensions import find_dred
    from opus_dred.vectors._format import iter_cases

    pkts = (bytes(c.inputs["packet"]) for c in iter_cases()
            if c.profile == "libopus-1.6.1" and c.handler == "dred_payload" and c.suite == "speech_grid")
    prof, loc = next(r for r in map(find_dred, pkts) if r[1] is not None)
    full = read_dred_payload(loc.payload, prof)
    got = read_dred_payload(loc.payload, prof, max_dred_samples=request_samples, sampling_rate=48000)
    assert ar.dred_latents_read(full.nb_latents, 48000, request_samples) == got.nb_latents
    assert ar.dred_parse_return(full.nb_latents, full.dred_offset, 48000, request_samples) == got.available_samples(48000)
