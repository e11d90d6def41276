"""Packet framing (bitstream/packet.py): RFC 6716 §3 facts, write→parse round trips, and the same
accept/reject and fields as libopus' opus_packet_parse_impl (oracle)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.bitstream._errors import PacketError
from opus_dred.bitstream._packet import Toc, encode_frame_length, encode_padding_length, parse_packet, write_packet

# -- RFC 6716 facts --------------------------------------------------------------------------------


def test_toc_fields():
    # RFC 6716 §3.1 Table 2: config 0 = SILK NB 10 ms; 31 = CELT FB 20 ms; 13 = Hybrid SWB 20 ms.
    t = Toc.from_byte(0x00)
    assert (t.config, t.mode, t.bandwidth, t.frame_ms, t.stereo, t.code) == (0, "SILK", "NB", 10.0, False, 0)
    t = Toc.from_byte(0xFC | 0x01)
    assert (t.config, t.mode, t.bandwidth, t.frame_size_48k, t.stereo, t.code) == (31, "CELT", "FB", 960, True, 1)
    t = Toc.from_byte((13 << 3) | 3)
    assert (t.mode, t.bandwidth, t.frame_ms, t.code) == ("Hybrid", "SWB", 20.0, 3)
    assert Toc.from_byte(0x4B).to_byte() == 0x4B
    assert Toc(3, False, 0).frame_ms == 60.0
    assert Toc(16, False, 0).frame_size_48k == 120


def test_frame_and_padding_lengths():
    # RFC 6716 §3.2.1: 0..251 in one byte; 252..1275 as 252 + (n & 3), then (n - first) / 4.
    assert encode_frame_length(251) == b"\xfb"
    assert encode_frame_length(252) == b"\xfc\x00"
    assert encode_frame_length(1275) == bytes([255, 255])
    # §3.2.5: 255 adds 254 and continues; the last byte adds itself.
    assert encode_padding_length(0) == b"\x00"
    assert encode_padding_length(254) == b"\xfe"
    assert encode_padding_length(255) == b"\xff\x01"
    assert encode_padding_length(508) == b"\xff\xfe"


@pytest.mark.parametrize(
    "data, rule",
    [
        (b"", "RFC6716 R1"),
        (bytes([0x01, 1, 2, 3]), "RFC6716 R3"),  # code 1, 3 bytes left
        (bytes([0x02]), "RFC6716 R4"),  # code 2 without a length
        (bytes([0x02, 5, 1]), "RFC6716 R4"),  # length 5, 1 byte left
        (bytes([0x03, 0x00]), "RFC6716 R5"),  # M = 0
        (bytes([0x03 | (3 << 3), 0x03]), "RFC6716 R5"),  # 3 x 60 ms
        (bytes([0x03, 0x02, 1, 2, 3]), "RFC6716 R6"),  # CBR 3 bytes in 2 frames
        (bytes([0x03, 0x41, 9, 1]), "RFC6716 R6"),  # padding longer than the packet
        (bytes([0x03, 0x82, 9, 1]), "RFC6716 R7"),  # VBR length past the end
        (bytes([0x00]) + bytes(1276), "RFC6716 R2"),
    ],
)
def test_violations_name_their_rule(data, rule):
    with pytest.raises(PacketError) as ei:
        parse_packet(data)
    assert ei.value.rule == rule
    assert ei.value.byte_offset is not None


def test_code3_offsets():
    frames = [b"abc", b"de", b""]
    pkt = parse_packet(write_packet(Toc(1, False, 0), frames, padding=b"\x01" * 300))
    assert pkt.frames == frames and pkt.vbr and pkt.has_padding
    assert pkt.count_byte().bin == "11" + format(3, "06b")
    assert pkt.padding_length_offsets == [2, 3]  # 255, then 46
    assert pkt.frame_offsets[0] == 4 + 2  # after two frame lengths
    assert pkt.padding == b"\x01" * 300


# -- round trips -----------------------------------------------------------------------------------


@st.composite
def _framings(draw):
    config = draw(st.integers(0, 31))
    frame = Toc(config, False, 0).frame_size_48k
    max_frames = min(48, 5760 // frame)
    n = draw(st.integers(1, max_frames))
    same = draw(st.booleans())
    size = draw(st.integers(0, 40))
    frames = [draw(st.binary(min_size=size, max_size=size)) if same else draw(st.binary(max_size=300))
              for _ in range(n)]
    padding = draw(st.one_of(st.none(), st.binary(max_size=600)))
    return Toc(config, draw(st.booleans()), 0), frames, padding, draw(st.booleans())


@settings(max_examples=200, deadline=None)
@given(_framings())
def test_write_then_parse(framing):
    toc, frames, padding, sd = framing
    data = write_packet(toc, frames, padding=padding, self_delimited=sd)
    pkt = parse_packet(data + b"trailing" if sd else data, self_delimited=sd)
    assert pkt.frames == frames
    assert pkt.padding == (padding or b"")
    assert (pkt.toc.config, pkt.toc.stereo) == (toc.config, toc.stereo)
    assert pkt.length == len(data)
    for off, f in zip(pkt.frame_offsets, frames):
        assert data[off:off + len(f)] == f
    if padding is None and len(frames) <= 2:
        # libopus' repacketizer choice: code 0 for one frame, 1 for equal lengths, 2 otherwise
        assert pkt.code == (0 if len(frames) == 1 else (1 if len(frames[0]) == len(frames[1]) else 2))


def test_non_minimal_padding_chain():
    data = write_packet(Toc(0, False, 0), [b"x"], padding=b"\x00" * 254, padding_chain=[255, 0])
    assert parse_packet(data).padding == bytes(254)
    with pytest.raises(PacketError):
        write_packet(Toc(0, False, 0), [b"x"], padding=b"\x00" * 5, padding_chain=[255, 0])


# -- against libopus -------------------------------------------------------------------------------


@functools.cache
def _oracle(name):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(name)


@st.composite
def _any_packet(draw):
    kind = draw(st.sampled_from(["random", "framed", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=64))
    toc, frames, padding, sd = draw(_framings())
    data = bytearray(write_packet(toc, frames, padding=padding, self_delimited=sd))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@pytest.mark.oracle
@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_any_packet(), sd=st.booleans())
def test_parse_matches_libopus(build, data, sd):
    ref = _oracle(build).packet_parse(data, self_delimited=sd)
    try:
        pkt = parse_packet(data, self_delimited=sd)
    except PacketError:
        assert ref.ret < 0
        return
    assert ref.ret == pkt.nb_frames
    assert ref.frames == pkt.frames
    assert ref.frame_offsets == pkt.frame_offsets
    assert ref.payload_offset == pkt.payload_offset
    assert ref.packet_offset == pkt.length
    assert (ref.padding or b"") == pkt.padding
    assert ref.toc == data[0]
