"""The batched range decoder (opus_dred.accel._bitstream) against the scalar decoder and libopus.

* symbol for symbol against :class:`RangeDecoder` on random streams written by :class:`RangeEncoder`
  (hypothesis), every lane running its own operation list, lanes masked at random;
* the bulk DRED locator against ``find_dred_extension`` (payload, frame offset, None, or the same typed
  error) on generated packets, mutated packets and real encoder output, both profiles;
* DRED payloads of real speech: every header field, quantised and dequantised value and nb_latents
  equal to the oracle's ``dred_ec_decode`` for both profiles, and to the scalar reader when it exists.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opus_dred.accel._bitstream import BatchRangeDecoder, locate_dred_payloads, read_dred_payloads
from opus_dred.bitstream._rangecoder import (
    RangeDecoder,
    RangeEncoder,
    laplace_decode_p0,
    laplace_encode_p0,
    laplace_p0_icdfs,
)

# -- random streams -------------------------------------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("uint"), st.integers(2, 2**32 - 1), st.floats(0, 1)),
    st.tuples(st.just("bits"), st.integers(1, 25), st.floats(0, 1)),
    st.tuples(st.just("logp"), st.integers(1, 15), st.floats(0, 1)),
    st.tuples(st.just("laplace"), st.integers(0, 32767), st.integers(0, 32767), st.integers(-40, 40)),
    st.tuples(st.just("dec"), st.integers(2, 65536), st.floats(0, 1)),
)


def _encode(ops):
    """A 1275-byte stream for ``ops`` and the values coded (a Laplace value the tables cannot code is
    replaced by one they can)."""
    enc = RangeEncoder(1275)
    vals = []
    for op in ops:
        kind = op[0]
        if kind == "uint":
            v = int(op[2] * (op[1] - 1))
            enc.enc_uint(v, op[1])
        elif kind == "bits":
            v = int(op[2] * ((1 << op[1]) - 1))
            enc.enc_bits(v, op[1])
        elif kind == "logp":
            v = int(op[2] < 0.3)
            enc.enc_bit_logp(v, op[1])
        elif kind == "dec":
            v = int(op[2] * (op[1] - 1))
            enc.encode(v, v + 1, op[1])
        else:
            _, p0, decay, v = op
            sign, mag = laplace_p0_icdfs(p0, decay)
            if v != 0 and sign[0] == sign[1]:  # nonzero values impossible
                v = 0
            if v == 0 and sign[0] == 32768:  # zero impossible
                v = 1
            try:
                probe = RangeEncoder(64)
                laplace_encode_p0(probe, v, p0, decay)
            except Exception:
                v = 0 if sign[0] != 32768 else 1
            laplace_encode_p0(enc, v, p0, decay)
        vals.append(v)
    data = enc.done()
    assert not enc.error
    return data, vals


def _scalar(data, ops):
    dec = RangeDecoder(data)
    out = []
    for op in ops:
        kind = op[0]
        if kind == "uint":
            out.append(dec.dec_uint(op[1]))
        elif kind == "bits":
            out.append(dec.dec_bits(op[1]))
        elif kind == "logp":
            out.append(dec.dec_bit_logp(op[1]))
        elif kind == "dec":
            s = dec.decode(op[1])
            dec.update(s, s + 1, op[1])
            out.append(s)
        else:
            out.append(laplace_decode_p0(dec, op[1], op[2]))
        out.append((dec.tell(), dec.tell_frac(), dec.rng, dec.val))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_op, min_size=1, max_size=25), min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_lanes_match_scalar_decoder(streams, rnd):
    """Lane i runs stream i's operations; at each step lanes whose list has ended (or a random subset)
    are masked and must stay put. Every value and tell/tell_frac/rng/val equals the scalar decoder's."""
    coded = [_encode(ops) for ops in streams]
    datas = [c[0] for c in coded]
    for i, (data, vals) in enumerate(coded):  # the encoder/decoder pair itself round-trips
        got = _scalar(data, streams[i])[0::2]
        assert got == vals
    expected = [_scalar(d, ops) for d, ops in zip(datas, streams)]
    bd = BatchRangeDecoder(datas)
    n = len(datas)
    pos = [0] * n
    steps = max(len(o) for o in streams) * 2
    for _ in range(steps):
        # all lanes whose next op has the same kind and argument run together
        pending = [i for i in range(n) if pos[i] < len(streams[i]) and rnd.random() < 0.8]
        if not pending:
            pending = [i for i in range(n) if pos[i] < len(streams[i])]
            if not pending:
                break
        lead = streams[pending[0]][pos[pending[0]]]
        group = [i for i in pending if streams[i][pos[i]][0] == lead[0]]
        mask = np.zeros(n, bool)
        mask[group] = True
        kind = lead[0]
        arg = np.array([streams[i][pos[i]][1] if i in group else 2 for i in range(n)], np.int64)
        before = (bd.rng.copy(), bd.val.copy(), bd.tell().copy())
        if kind == "uint":
            v = bd.dec_uint(arg, mask)
        elif kind == "bits":
            v = bd.dec_bits(np.where(mask, arg, 0), mask)
        elif kind == "logp":
            lp = int(lead[1])
            group = [i for i in group if streams[i][pos[i]][1] == lp]
            mask[:] = False
            mask[group] = True
            v = bd.dec_bit_logp(lp, mask)
        elif kind == "dec":
            s = bd.decode(arg, mask)
            bd.update(s, s + 1, arg, mask)
            v = s
        else:
            sign = np.zeros((n, 3), np.int64)
            mag = np.zeros((n, 8), np.int64)
            for i in group:
                sg, mg = laplace_p0_icdfs(streams[i][pos[i]][1], streams[i][pos[i]][2])
                sign[i], mag[i] = sg, mg
            v = bd.laplace_p0(sign, mag, mask)
        tell, tf = bd.tell(), bd.tell_frac()
        for i in range(n):
            if mask[i]:
                exp = expected[i][2 * pos[i]: 2 * pos[i] + 2]
                assert int(v[i]) == exp[0]
                assert (int(tell[i]), int(tf[i]), int(bd.rng[i]), int(bd.val[i])) == exp[1]
                pos[i] += 1
            else:
                assert bd.rng[i] == before[0][i] and bd.val[i] == before[1][i] and tell[i] == before[2][i]


def test_past_the_end_reads_zeros_like_the_scalar_decoder():
    data = [b"", b"\xff", bytes(range(7))]
    bd = BatchRangeDecoder(data)
    sc = [RangeDecoder(d) for d in data]
    for _ in range(40):
        v = bd.dec_uint(1000)
        assert v.tolist() == [d.dec_uint(1000) for d in sc]
        assert bd.tell().tolist() == [d.tell() for d in sc]


# -- real DRED payloads ---------------------------------------------------------------------------

FS = 16000


@functools.cache
def _payloads(release: str):
    from opus_dred.bitstream._extensions import find_dred_extension
    from opus_dred.libopus._oracle import Oracle
    from opus_dred.speech._corpus import load_clip

    o = Oracle.for_build(f"libopus-{release}")
    pcm = load_clip(None, rate=FS)[: 4 * FS]
    pays = []
    for bitrate in (16000, 32000):
        for p in o.encode(pcm, fs=FS, bitrate=bitrate, frame_ms=20, loss_perc=20, dred_duration=100):
            loc = find_dred_extension(p.data, f"libopus-{release}")
            if loc is not None:
                pays.append(loc.payload)
    assert len(pays) > 150
    return o, pays


@pytest.mark.parametrize("release", ["1.5.2", "1.6.1"])
@pytest.mark.parametrize("mff", [104, 9])
def test_dred_payloads_match_libopus(release, mff):
    o, pays = _payloads(release)
    # truncated payloads exercise the chunk stop rule
    pays = pays + [p[: len(p) // 2] for p in pays[::5]] + [p[:1] for p in pays[:3]]
    b = read_dred_payloads(pays, f"libopus-{release}", min_feature_frames=mff, dred_frame_offset=3)
    sd = o.layout.state_dim
    assert len(set(b.nb_latents.tolist())) > 1
    for i, pay in enumerate(pays):
        d = o.dred_ec_decode(pay, min_feature_frames=mff, dred_frame_offset=3)
        h = d.header
        assert d.ret == b.nb_latents[i] == d.nb_latents
        # the oracle's header holds the coded uint(256); extra_offset is libopus' 32 times it
        assert (h.q0, h.dQ, h.extra_flag, 32 * h.extra, h.offset, h.qmax) == (
            b.q0[i], b.dQ[i], b.extended_offset[i], b.extra_offset[i], b.offset[i], b.qmax[i])
        assert d.dred_offset == b.dred_offset[i]
        assert b.num_bytes[i] == len(pay) and b.read_past_end[i] == (b.end_tell[i] > 8 * len(pay))
        np.testing.assert_array_equal(d.state[:sd], b.state[i])
        np.testing.assert_array_equal(d.latents, b.latents[i, : d.nb_latents])
        assert not b.latents[i, d.nb_latents:].any()
        d.close()


#: BatchDred's fields that are DredPayload's, row by row (the latent axis cut at nb_latents)
_SHARED = ("q0", "dQ", "qmax", "extended_offset", "extra_offset", "offset", "dred_frame_offset", "dred_offset",
           "nb_latents", "state_q", "latents_q", "q_levels", "state", "latents", "num_bytes", "end_tell",
           "read_past_end")


@pytest.mark.parametrize("release", ["1.5.2", "1.6.1"])
@pytest.mark.parametrize("mff", [104, 9])
def test_dred_payloads_match_scalar_reader(release, mff):
    """Every field the two records share, under the same name and unit, on real, cut and random payloads."""
    from opus_dred.bitstream._dred import read_dred_payload

    _, pays = _payloads(release)
    rnd = np.random.default_rng(3)
    pays = pays[:60] + [p[: len(p) // 3] for p in pays[:10]] + [bytes(rnd.integers(0, 256, 40, np.uint8))
                                                               for _ in range(10)]
    b = read_dred_payloads(pays, f"libopus-{release}", min_feature_frames=mff, dred_frame_offset=5)
    for i, pay in enumerate(pays):
        r = read_dred_payload(pay, f"libopus-{release}", min_feature_frames=mff, dred_frame_offset=5)
        assert b.profile == r.profile
        for name in _SHARED:
            ours, batched = np.asarray(getattr(r, name)), np.asarray(getattr(b, name))[i]
            if name in ("latents_q", "q_levels", "latents"):
                assert not batched[r.nb_latents:].any(), name
                batched = batched[: r.nb_latents]
            np.testing.assert_array_equal(ours, batched, err_msg=name)


# -- locating DRED payloads in bulk ---------------------------------------------------------------

PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]


def _reference(pkt: bytes, profile: str):
    from opus_dred.errors import OpusDredError
    from opus_dred.bitstream._extensions import find_dred_extension

    try:
        loc = find_dred_extension(pkt, profile)
    except OpusDredError as e:
        return ("error", type(e), e.message, e.byte_offset, e.rule)
    return None if loc is None else (loc.payload, loc.frame, loc.dred_frame_offset, loc.payload_offset)


def _bulk(pkt: bytes, profile: str):
    from opus_dred.errors import OpusDredError

    try:
        r = locate_dred_payloads([pkt], profile)
    except OpusDredError as e:
        return ("error", type(e), e.message, e.byte_offset, e.rule), False
    out = (r.payload[0], int(r.frame[0]), int(r.dred_frame_offset[0]), int(r.payload_offset[0])) if r.found[0] else None
    return out, bool(r.fast[0])


@st.composite
def _packets(draw):
    """Code 0-3 packets whose padding carries DRED-like and other extensions, then mutated."""
    from opus_dred.bitstream._extensions import Extension, write_extensions
    from opus_dred.bitstream._packet import Toc, encode_padding_length, write_packet
    from opus_dred.bitstream._profiles import get_profile

    profile = draw(st.sampled_from(PROFILES))
    prof = get_profile(profile)
    prefix = bytes(prof.experimental_prefix)
    toc = Toc.from_byte(draw(st.integers(0, 255)) & ~3)
    max_count = max(1, min(4, 5760 // toc.frame_size_48k))
    count = draw(st.integers(1, max_count))
    vbr = draw(st.booleans())
    size = draw(st.integers(0, 30))
    frames = [bytes(draw(st.integers(0, 30)) if vbr else size) for _ in range(count)]
    exts = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["dred", "dred_other_prefix", "short", "long"]))
        frame = draw(st.integers(0, count - 1))
        if kind == "dred":
            data = prefix + draw(st.binary(min_size=0, max_size=12))
            exts.append(Extension(prof.extension_id, frame, data))
        elif kind == "dred_other_prefix":
            exts.append(Extension(prof.extension_id, frame, draw(st.binary(max_size=4))))
        elif kind == "short":
            exts.append(Extension(draw(st.integers(3, 31)), frame, draw(st.binary(min_size=0, max_size=1))))
        else:
            exts.append(Extension(draw(st.integers(32, 125)), frame, draw(st.binary(max_size=6))))
    exts.sort(key=lambda e: e.frame)
    fixed = []
    for e in exts:  # short extensions carry 0 or 1 byte
        fixed.append(e if e.id >= 32 or len(e.data) <= 1 else Extension(e.id, e.frame, e.data[:1]))
    try:
        padding = write_extensions(fixed, count, syntax=prof.extension_syntax,
                                   pad_to=draw(st.sampled_from([None, 0, 20, 300])))
    except Exception:
        padding = write_extensions([], count, syntax=prof.extension_syntax)
    encoder_like = draw(st.booleans())
    if encoder_like:  # the encoder's layout: DRED first, L=0, payload to the end of the padding
        head = prof.extension_id << 1 | draw(st.sampled_from([0, 0, 0, 1]))
        padding = bytes([head]) + prefix[: draw(st.sampled_from([len(prefix)] * 3 + [1]))] + draw(
            st.binary(min_size=0, max_size=12))
        if draw(st.booleans()):
            frames = frames[:1]
    use_padding = encoder_like or draw(st.booleans()) or bool(fixed)
    try:
        pkt = write_packet(toc, frames, padding=padding if use_padding else None,
                           code=3 if use_padding else None, vbr=vbr if count > 1 or use_padding else None)
    except Exception:
        pkt = write_packet(toc, frames[:1], padding=padding, code=3)
    pkt = bytearray(pkt)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):  # mutations
        op = draw(st.sampled_from(["flip", "set", "truncate", "append"]))
        if op in ("flip", "set") and pkt:
            i = draw(st.integers(0, len(pkt) - 1))
            pkt[i] = pkt[i] ^ (1 << draw(st.integers(0, 7))) if op == "flip" else draw(st.integers(0, 255))
        elif op == "truncate":
            del pkt[draw(st.integers(0, len(pkt))):]
        else:
            pkt += draw(st.binary(min_size=1, max_size=4))
    return profile, bytes(pkt)


@settings(max_examples=400, deadline=None)
@given(_packets())
def test_locator_matches_find_dred_extension(case):
    profile, pkt = case
    got, _ = _bulk(pkt, profile)
    assert got == _reference(pkt, profile)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PROFILES), st.binary(min_size=0, max_size=40))
def test_locator_on_any_bytes(profile, pkt):
    got, _ = _bulk(pkt, profile)
    assert got == _reference(pkt, profile)


@pytest.mark.parametrize("profile", PROFILES)
def test_locator_on_real_packets_takes_the_lean_path(profile):
    """libopus' encoder output: every packet with DRED answered by the lean path, equal to the reference;
    packets cut, extended and with their padding head changed agree too."""
    from opus_dred.libopus._oracle import Oracle
    from opus_dred.speech._corpus import load_clip

    o = Oracle.for_build(profile)
    pcm = load_clip(None, rate=FS)[: 2 * FS]
    pkts = [p.data for p in o.encode(pcm, fs=FS, bitrate=24000, frame_ms=20, loss_perc=20, dred_duration=100)]
    r = locate_dred_payloads(pkts, profile)
    ref = [_reference(p, profile) for p in pkts]
    assert sum(x is not None for x in ref) > 50
    for i, p in enumerate(pkts):
        got = (r.payload[i], int(r.frame[i]), int(r.dred_frame_offset[i]), int(r.payload_offset[i])) if r.found[i] else None
        assert got == ref[i]
        if ref[i] is not None:
            assert r.fast[i]
    rnd = np.random.default_rng(1)
    for p in pkts[::7]:
        variants = [p[: int(rnd.integers(0, len(p) + 1))], p + bytes([int(rnd.integers(0, 256))])]
        q = bytearray(p)
        q[int(rnd.integers(0, len(q)))] ^= 1 << int(rnd.integers(0, 8))
        variants.append(bytes(q))
        for v in variants:
            assert _bulk(v, profile)[0] == _reference(v, profile)
