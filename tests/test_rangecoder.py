"""The range coder (bitstream/rangecoder.py): RFC 6716 §4.1 facts, encoder→decoder properties, and
bit-exactness against libopus' celt/entenc.c, entdec.c and laplace.c through the oracle."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.bitstream._errors import RangeCoderError
from opus_dred.bitstream._rangecoder import (
    RangeDecoder,
    RangeEncoder,
    TracingDecoder,
    laplace_decode_p0,
    laplace_encode_p0,
    laplace_p0_icdfs,
)

# -- RFC 6716 facts --------------------------------------------------------------------------------


def test_fresh_decoder_on_zeros():
    # RFC 6716 §4.1.1: rng starts at 128, val = 127 - (b0 >> 1), then normalisation reads three more
    # bytes; zeros put 255 into val each time, so val = 2**31 - 1, rng = 2**31, and tell() is 1 bit.
    d = RangeDecoder(bytes(8))
    assert d.rng == 1 << 31
    assert d.val == (1 << 31) - 1
    assert d.tell() == 1
    assert d.tell_frac() == 8
    # a zero code value lies in the lowest-probability end: bit_logp decodes 0.
    assert d.dec_bit_logp(1) == 0


def test_fresh_encoder_tell_is_one_bit():
    e = RangeEncoder(10)
    assert e.tell() == 1 and e.tell_frac() == 8


def test_raw_bits_come_from_the_end_lsb_first():
    # RFC 6716 §4.1.4: raw bits are read backwards from the last byte, least significant bit first.
    d = RangeDecoder(bytes([0, 0, 0x12, 0x5A]))
    assert d.dec_bits(4) == 0xA
    assert d.dec_bits(4) == 0x5
    assert d.dec_bits(8) == 0x12
    # encoder: 1 in 3 bits then 3 in 2 bits -> window 0b11001 in the last byte, coding order "100" "11"
    e = RangeEncoder(4)
    e.enc_bits(0x1, 3)
    e.enc_bits(0x3, 2)
    assert e.raw_bits_tail().bin == "10011"
    assert e.done() == bytes([0, 0, 0, 0x19])
    d = RangeDecoder(bytes([0, 0, 0, 0x19]))
    assert (d.dec_bits(3), d.dec_bits(2)) == (1, 3)


def test_reading_past_the_end_reads_zeros_and_tell_grows():
    d = RangeDecoder(b"\x80")
    for _ in range(20):
        d.dec_uint(200)
    assert d.tell() > 8
    assert d.past_end


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.decode(0),
        lambda d: d.update(3, 3, 10),
        lambda d: d.dec_uint(1),
        lambda d: d.dec_bits(26),
        lambda d: d.dec_icdf([200, 100], 8),  # does not end with 0
        lambda d: d.dec_icdf16([100, 200, 0], 15),  # increasing
    ],
)
def test_bad_decoder_arguments(call):
    with pytest.raises(RangeCoderError):
        call(RangeDecoder(b"abc"))


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.encode(2, 1, 10),
        lambda e: e.enc_uint(5, 5),
        lambda e: e.enc_bits(4, 2),
        lambda e: e.enc_icdf(1, [128, 128, 0], 8),  # zero-probability symbol
        lambda e: laplace_encode_p0(e, -1, 32767, 100),  # p0 = 32767 leaves '-' no probability
        lambda e: laplace_encode_p0(e, 1, 40000, 100),
    ],
)
def test_bad_encoder_arguments(call):
    with pytest.raises(RangeCoderError):
        call(RangeEncoder(100))


def test_overflow_sets_error():
    e = RangeEncoder(2)
    for _ in range(40):
        e.enc_uint(1000, 65536)
    e.done()
    assert e.error


def test_laplace_icdf_tables():
    # celt/laplace.c: sign {32768-p0, (32768-p0)/2, 0}; magnitude max(7, decay) then
    # max(7-i, prev*decay >> 15) and 0.
    sign, mag = laplace_p0_icdfs(16384, 16384)
    assert sign == (16384, 8192, 0)
    assert mag == (16384, 8192, 4096, 2048, 1024, 512, 256, 0)
    _, mag0 = laplace_p0_icdfs(0, 0)
    assert mag0 == (7, 6, 5, 4, 3, 2, 1, 0)


# -- properties ------------------------------------------------------------------------------------

_icdf8 = st.lists(st.integers(1, 255), min_size=1, max_size=7, unique=True).map(
    lambda xs: tuple(sorted(xs, reverse=True)) + (0,))
_icdf16 = st.lists(st.integers(1, 32767), min_size=1, max_size=7, unique=True).map(
    lambda xs: tuple(sorted(xs, reverse=True)) + (0,))


@st.composite
def _ops(draw):
    """Encoder operations in the oracle's op format."""
    kind = draw(st.sampled_from(["uint", "encode", "encode_bin", "bits", "icdf", "icdf16", "laplace_p0", "bit_logp"]))
    if kind == "uint":
        ft = draw(st.one_of(st.integers(2, 300), st.integers(2, 2**32 - 1)))
        return ("uint", draw(st.integers(0, ft - 1)), ft)
    if kind == "encode":
        ft = draw(st.integers(1, 65535))
        fl = draw(st.integers(0, ft - 1))
        return ("encode", fl, draw(st.integers(fl + 1, ft)), ft)
    if kind == "encode_bin":
        bits = draw(st.integers(1, 16))
        fl = draw(st.integers(0, (1 << bits) - 1))
        return ("encode_bin", fl, draw(st.integers(fl + 1, 1 << bits)), bits)
    if kind == "bits":
        n = draw(st.integers(1, 24))
        return ("bits", draw(st.integers(0, (1 << n) - 1)), n)
    if kind in ("icdf", "icdf16"):
        t = draw(_icdf8 if kind == "icdf" else _icdf16)
        return (kind, draw(st.integers(0, len(t) - 1)), t, 8 if kind == "icdf" else 15)
    if kind == "laplace_p0":
        p0 = draw(st.integers(1, 254)) << 7
        decay = draw(st.integers(1, 255)) << 7
        return ("laplace_p0", draw(st.integers(-60, 60)), p0, decay)
    return ("bit_logp", draw(st.integers(0, 1)), draw(st.integers(1, 15)))


def _encode(ops, size):
    e = RangeEncoder(size)
    trace = []
    for op in ops:
        _apply(e, op)
        trace.append((e.tell(), e.tell_frac(), e.rng))
    return e.done(), trace, e


def _read_op(d, op):
    """Decode the symbol ``op`` was encoded with (the oracle's op format)."""
    k = op[0]
    if k == "uint":
        return d.dec_uint(op[2])
    if k == "encode":
        v = d.decode(op[3])
        d.update(op[1], op[2], op[3])
        return v
    if k == "encode_bin":
        v = d.decode_bin(op[3])
        d.update(op[1], op[2], 1 << op[3])
        return v
    if k == "bits":
        return d.dec_bits(op[2])
    if k == "icdf":
        return d.dec_icdf(op[2], op[3])
    if k == "icdf16":
        return d.dec_icdf16(op[2], op[3])
    if k == "laplace_p0":
        return laplace_decode_p0(d, op[2], op[3])
    return d.dec_bit_logp(op[2])


def _decode(data, ops):
    d = RangeDecoder(data)
    values, trace = [], []
    for op in ops:
        values.append(_read_op(d, op))
        trace.append((d.tell(), d.tell_frac(), d.rng))
    return values, trace, d


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ops(), max_size=40))
def test_encoder_then_decoder_round_trip(ops):
    data, etrace, enc = _encode(ops, 2000)
    assert not enc.error
    values, dtrace, _ = _decode(data, ops)
    for op, v in zip(ops, values):
        if op[0] in ("encode", "encode_bin"):
            assert op[1] <= v < op[2]
        else:
            assert v == op[1]
    # same tell, tell_frac and range after every symbol: the decoder tracks the encoder exactly
    assert dtrace == etrace


@settings(max_examples=60, deadline=None)
@given(st.lists(_ops(), max_size=30))
def test_shrink_to_tell_keeps_the_stream_decodable(ops):
    # dred_encode_silk_frame cuts the buffer to ceil(tell/8) bytes before ec_enc_done
    data = _encode_shrunk(ops)
    values, _, _ = _decode(data, ops)
    for op, v in zip(ops, values):
        if op[0] in ("encode", "encode_bin"):
            assert op[1] <= v < op[2]
        else:
            assert v == op[1]


def _encode_shrunk(ops):
    e = RangeEncoder(4000)
    for op in ops:
        _apply(e, op)
    e.shrink(max((e.tell() + 7) // 8, e.offs + e.end_offs))
    out = e.done()
    assert not e.error
    return out


def _apply(e, op):
    k = op[0]
    if k == "uint":
        e.enc_uint(op[1], op[2])
    elif k == "encode":
        e.encode(op[1], op[2], op[3])
    elif k == "encode_bin":
        e.encode_bin(op[1], op[2], op[3])
    elif k == "bits":
        e.enc_bits(op[1], op[2])
    elif k == "icdf":
        e.enc_icdf(op[1], op[2], op[3])
    elif k == "icdf16":
        e.enc_icdf16(op[1], op[2], op[3])
    elif k == "laplace_p0":
        laplace_encode_p0(e, op[1], op[2], op[3])
    else:
        e.enc_bit_logp(op[1], op[2])


# -- the tracing decoder ----------------------------------------------------------------------------


def _state(d):
    return (d.rng, d.val, d.offs, d.end_offs, d.end_window, d.nend_bits, d.nbits_total, d.rem, d.error)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ops(), max_size=40))
def test_tracing_decoder_records_each_named_read(ops):
    data, etrace, _ = _encode(ops, 2000)
    t = TracingDecoder(RangeDecoder(data))
    values = [t.read(f"op{i}", _read_op, op) for i, op in enumerate(ops)]
    plain_values, _, plain = _decode(data, ops)
    # the tracer changes nothing: same values, same decoder state
    assert values == plain_values and _state(t.decoder) == _state(plain)
    # each span starts where the previous ended (a fresh decoder has used 1 bit, 8 eighths) and ends at
    # the encoder's ec_tell / ec_tell_frac after that symbol
    assert [r.name for r in t.reads] == [f"op{i}" for i in range(len(ops))]
    starts = [(1, 8)] + [(a, b) for a, b, _ in etrace]
    assert [(r.tell_before, r.frac_before) for r in t.reads] == starts[:len(ops)]
    assert [(r.tell_after, r.frac_after) for r in t.reads] == [(a, b) for a, b, _ in etrace]
    assert t.fields == [(r.name, r.tell_before, r.tell_after) for r in t.reads]


@settings(max_examples=80, deadline=None)
@given(st.lists(_ops(), max_size=30), st.binary(max_size=48))
def test_tracing_decoder_on_any_bytes_decodes_what_the_plain_one_does(ops, junk):
    t = TracingDecoder(RangeDecoder(junk))
    plain = RangeDecoder(junk)
    for i, op in enumerate(ops):
        assert t.read(str(i), _read_op, op) == plain.read(str(i), _read_op, op)
        assert t.tell() == plain.tell() and t.tell_frac() == plain.tell_frac()  # delegated to the wrapped decoder
    assert _state(t.decoder) == _state(plain)
    assert all(r.tell_before <= r.tell_after and r.frac_before <= r.frac_after for r in t.reads)


# -- against libopus -------------------------------------------------------------------------------


@functools.cache
def _oracle(name):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(name)


@pytest.mark.oracle
@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_ops(), max_size=40), size=st.one_of(st.integers(0, 24), st.just(1275)))
def test_encoder_matches_libopus(build, ops, size):
    o = _oracle(build)
    ref = o.ec_encode(ops, size=size)
    data, trace, enc = _encode(ops, size)
    assert data == ref.data
    assert enc.error == ref.error
    assert [t[0] for t in trace] == ref.tell
    assert [t[1] for t in trace] == ref.tell_frac
    assert [t[2] for t in trace] == ref.rng


@pytest.mark.oracle
@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_ops(), max_size=40), junk=st.binary(max_size=30), mode=st.sampled_from(["exact", "cut", "junk"]))
def test_decoder_matches_libopus_on_any_bytes(build, ops, junk, mode):
    o = _oracle(build)
    data, _, _ = _encode(ops, 1275)
    if mode == "cut":
        data = data[: len(junk) % (len(data) + 1)]
    elif mode == "junk":
        data = junk
    ref = o.ec_decode(data, ops)
    values, trace, d = _decode(data, ops)
    assert values == ref.values
    assert [t[0] for t in trace] == ref.tell
    assert [t[1] for t in trace] == ref.tell_frac
    assert [t[2] for t in trace] == ref.rng
    assert d.error == ref.error


@pytest.mark.oracle
def test_uint_above_2_to_the_31_decodes_unsigned_like_libopus():
    """``ec_dec_uint`` returns an ``opus_uint32``: a value of 2**31 or more (here from an empty buffer) is the same
    unsigned number on both sides, never a negative int."""
    ops = [("uint", 0, 107), ("encode_bin", 138, 139, 10), ("uint", 0, 2), ("uint", 0, 2), ("uint", 0, 2_248_146_945)]
    ref = _oracle("libopus-1.6.1").ec_decode(b"", ops)
    values, _, _ = _decode(b"", ops)
    assert values == ref.values and ref.values[-1] >= 1 << 31
