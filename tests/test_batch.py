"""The batched range decoder (opus_dred.bitstream.batch) against the scalar decoder and libopus.

* symbol for symbol against :class:`RangeDecoder` on random streams written by :class:`RangeEncoder`
  (hypothesis), every lane running its own operation list, lanes masked at random;
* DRED payloads of real speech: every header field, quantised and dequantised value and nb_latents
  equal to the oracle's ``dred_ec_decode`` for both profiles, and to the scalar reader when it exists.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opus_dred.bitstream.batch import BatchRangeDecoder, read_dred_payloads
from opus_dred.bitstream.rangecoder import (
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
    from opus_dred.bitstream.extensions import find_dred_extension
    from opus_dred.conformance.oracle import Oracle
    from opus_dred.conformance.speech import load_clip

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
        assert (h.q0, h.dQ, h.extra_flag, h.extra, h.offset, h.qmax) == (
            b.q0[i], b.dQ[i], b.extra_flag[i], b.extra[i], b.offset[i], b.qmax[i])
        assert d.dred_offset == b.dred_offset[i]
        np.testing.assert_array_equal(d.state[:sd], b.state[i])
        np.testing.assert_array_equal(d.latents, b.latents[i, : d.nb_latents])
        assert not b.latents[i, d.nb_latents:].any()
        d.close()


@pytest.mark.parametrize("release", ["1.5.2", "1.6.1"])
def test_dred_payloads_match_scalar_reader(release):
    dred = pytest.importorskip("opus_dred.bitstream.dred")
    if not hasattr(dred, "read_dred_payload"):
        pytest.skip("scalar reader not written yet")
    _, pays = _payloads(release)
    b = read_dred_payloads(pays[:60], f"libopus-{release}")
    for i, pay in enumerate(pays[:60]):
        r = dred.read_dred_payload(pay, f"libopus-{release}")
        assert int(getattr(r, "nb_latents", len(getattr(r, "latents", [])))) == b.nb_latents[i]
        np.testing.assert_array_equal(np.asarray(r.state, np.float32), b.state[i])
        np.testing.assert_array_equal(np.asarray(r.latents, np.float32)[: b.nb_latents[i]],
                                      b.latents[i, : b.nb_latents[i]])
