"""File formats: write→read round trips, and every truncation or corruption gives a typed error."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opus_dred.bitstream.errors import BitstreamError, FormatError, TruncatedError
from opus_dred.bitstream.formats import (
    BitRecord,
    DredStreamRecord,
    OpusHead,
    detect_format,
    read_dred_stream,
    read_ogg_opus,
    read_opus_demo_bit,
    write_dred_stream,
    write_ogg_opus,
    write_opus_demo_bit,
)

packets = st.lists(st.binary(min_size=0, max_size=1275), min_size=0, max_size=12)


@given(packets, st.data())
def test_opus_demo_bit_round_trip(pkts, data):
    rngs = [data.draw(st.integers(0, 2**32 - 1)) for _ in pkts]
    raw = write_opus_demo_bit(list(zip(pkts, rngs)))
    recs = read_opus_demo_bit(raw)
    assert [r.data for r in recs] == pkts
    assert [r.final_range for r in recs] == rngs
    # offsets point at each record's header
    for r in recs:
        assert struct.unpack_from(">I", raw, r.offset)[0] == len(r.data)


@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=5), st.data())
def test_opus_demo_bit_truncation_is_typed(pkts, data):
    raw = write_opus_demo_bit([(p, 7) for p in pkts])
    cut = data.draw(st.integers(1, len(raw) - 1))
    boundaries = set()
    pos = 0
    for p in pkts:
        boundaries.add(pos)
        pos += 8 + len(p)
    try:
        recs = read_opus_demo_bit(raw[:cut])
    except TruncatedError as exc:
        assert cut not in boundaries
        assert exc.byte_offset is not None and 0 <= exc.byte_offset <= cut
    else:
        assert cut in boundaries  # only a cut between records reads cleanly
        assert sum(8 + len(r.data) for r in recs) == cut


def test_opus_demo_bit_oversized_length():
    raw = struct.pack(">II", 1501, 0) + bytes(1501)
    with pytest.raises(FormatError) as ei:
        read_opus_demo_bit(raw)
    assert ei.value.byte_offset == 0 and "1501" in str(ei.value)


@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 50), st.binary(max_size=300)), max_size=6))
def test_dred_stream_round_trip(recs):
    raw = write_dred_stream(recs)
    back = read_dred_stream(raw)
    assert [(r.q0, r.nb_chunks, r.data) for r in back] == recs


def test_dred_stream_rejects_bad_header_fields():
    with pytest.raises(FormatError) as ei:
        read_dred_stream(struct.pack(">III", 16, 2, 0))
    assert ei.value.rule == "dred-stream: q0"
    with pytest.raises(FormatError) as ei:
        read_dred_stream(struct.pack(">III", 3, 2, 0) + struct.pack(">III", 3, 51, 0))
    assert ei.value.byte_offset == 16
    with pytest.raises(TruncatedError):
        read_dred_stream(struct.pack(">III", 3, 2, 10) + b"abc")


@settings(max_examples=40)
@given(st.lists(st.binary(min_size=1, max_size=700), min_size=1, max_size=8), st.integers(1, 2))
def test_ogg_round_trip(pkts, channels):
    durations = [960] * len(pkts)
    raw = write_ogg_opus(None, pkts, durations, channels=channels)
    ogg = read_ogg_opus(raw)
    assert ogg.packets == pkts
    assert ogg.head.channels == channels and ogg.head.pre_skip == 312
    assert ogg.granules == [960 * (i + 1) for i in range(len(pkts))]
    assert detect_format(raw) == "ogg"


def test_ogg_packet_spanning_pages():
    # a 70 kB packet needs several pages (at most 255 segments of 255 bytes each); it must come back whole
    big = bytes(range(256)) * 280
    raw = write_ogg_opus(None, [b"\x08\x01", big, b"\x08\x02"], [960, 960, 960])
    ogg = read_ogg_opus(raw)
    assert ogg.packets == [b"\x08\x01", big, b"\x08\x02"]
    assert ogg.pages > 5


@settings(max_examples=60)
@given(st.data())
def test_ogg_corruption_is_typed(data):
    raw = bytearray(write_ogg_opus(None, [b"\x08abc", b"\x08" * 400], [960, 960]))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:cut]
    else:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    try:
        read_ogg_opus(bytes(raw))
    except BitstreamError as exc:
        assert exc.byte_offset is not None
    # a flip inside a packet's payload may still read (Ogg's CRC is not checked by readers that
    # re-assemble packets); what matters is that no other exception escapes


def test_opushead_fields_round_trip():
    head = OpusHead(1, 2, 3840, 16000, -256, 0)
    assert OpusHead.parse(head.to_bytes()) == head
    with pytest.raises(FormatError):
        OpusHead.parse(b"OpusTags" + bytes(11))


def test_detect_format_rejects_noise():
    with pytest.raises(FormatError):
        detect_format(b"\x00\x00\x00\x05ab")
