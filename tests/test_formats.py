"""File formats: write→read round trips, and every truncation or corruption gives a typed error."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opus_dred.bitstream._errors import BitstreamError, FormatError, TruncatedError
from opus_dred.bitstream._formats import (
    BitRecord,
    DredStreamRecord,
    OpusHead,
    detect_format,
    load_input,
    read_dred_stream,
    read_input,
    read_ogg_opus,
    read_opus_demo_bit,
    read_packet_folder,
    read_raw_packet,
    write_dred_stream,
    write_ogg_opus,
    write_opus_demo_bit,
)
from opus_dred.bitstream._packet import Toc, write_packet

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
    """Bytes that are no container and no Opus packet (code 1 with an odd payload, RFC 6716 R3): a FormatError
    naming the formats tried and the packet parser's reason."""
    with pytest.raises(FormatError) as info:
        detect_format(b"\x01\x00\x00\x05ab")
    msg = str(info.value)
    assert info.value.byte_offset == 0 and info.value.rule == "format"
    for name in ("Ogg Opus", "opus_demo .bit", "DRED-only stream", "raw Opus packet", "PacketError", "R3"):
        assert name in msg, (name, msg)


def test_detect_format_takes_a_packet_as_raw_last():
    """A code-0 packet (TOC 0x00 holds any length of one frame) is no container: it is one raw packet."""
    assert detect_format(b"\x00\x00\x00\x05ab") == "raw"
    pkt = write_packet(Toc(9, False, 0), [b"abc", b"de"], padding=bytes([0x01, 0x01]))
    assert detect_format(pkt) == "raw"
    assert read_raw_packet(pkt) == [pkt]


def _opus_tools():
    import shutil
    import subprocess

    if not (shutil.which("opusenc") and shutil.which("opusinfo")):
        # the Makefile's set-up installs Debian's opus-tools; install here too if a user skipped it
        subprocess.run(["apt-get", "install", "-y", "-q", "opus-tools"], capture_output=True)
    assert shutil.which("opusenc") and shutil.which("opusinfo"), "opus-tools (opusenc, opusinfo) is needed"


def test_reads_what_opusenc_writes_as_opusinfo_reports(tmp_path):
    """An .opus file from opus-tools: our header fields, packet count and playback length agree with opusinfo."""
    import re
    import subprocess
    import wave

    import numpy as np

    _opus_tools()
    rate, seconds = 16000, 2
    t = np.arange(rate * seconds)
    pcm = (6000 * np.sin(2 * np.pi * 220 * t / rate) * (1 + np.sin(2 * np.pi * 3 * t / rate))).astype("<i2")
    with wave.open(str(tmp_path / "in.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    subprocess.run(
        ["opusenc", "--quiet", "--bitrate", "24", "--framesize", "20", str(tmp_path / "in.wav"), str(tmp_path / "o.opus")],
        check=True,
    )
    info = subprocess.run(["opusinfo", str(tmp_path / "o.opus")], capture_output=True, text=True, check=True).stdout
    ogg = read_ogg_opus(tmp_path / "o.opus")
    assert ogg.head.pre_skip == int(re.search(r"Pre-skip: (\d+)", info).group(1))
    assert ogg.head.channels == int(re.search(r"Channels: (\d+)", info).group(1))
    assert ogg.head.input_sample_rate == int(re.search(r"Original sample rate: (\d+)", info).group(1))
    m = re.search(r"Playback length: (\d+)m:([\d.]+)s", info)
    playback = int(m.group(1)) * 60 + float(m.group(2))
    last_granule = max(g for g in ogg.granules if g >= 0)
    assert abs((last_granule - ogg.head.pre_skip) / 48000 - playback) < 1e-3
    # every packet is 20 ms (TOC code 0, config with 20 ms frames), so the granule counts packets
    assert len(ogg.packets) * 960 >= last_granule > (len(ogg.packets) - 1) * 960
    assert all(len(p) > 0 for p in ogg.packets)


def _three_packets() -> list[bytes]:
    return [write_packet(Toc(9, False, 0), [bytes(range(i, i + 20))]) for i in range(3)]


def test_folder_of_packets_equals_the_same_packets_in_a_bit_file(tmp_path):
    """A folder of ``*.bin`` packets reads in sorted name order (other files ignored), as the same packets
    written to an opus_demo ``.bit`` read."""
    pk = _three_packets()
    folder = tmp_path / "pk"
    folder.mkdir()
    for i, p in reversed(list(enumerate(pk))):
        (folder / f"{i:03d}.bin").write_bytes(p)
    (folder / "notes.txt").write_text("not a packet")
    assert [name for name, _ in read_packet_folder(folder)] == ["000.bin", "001.bin", "002.bin"]
    bit = tmp_path / "same.bit"
    bit.write_bytes(write_opus_demo_bit([(p, 0) for p in pk]))
    from_folder, from_bit = read_input(load_input(str(folder))), read_input(load_input(str(bit)))
    assert (from_folder.fmt, from_bit.fmt) == ("raw", "bit")
    assert from_folder.items == from_bit.items == pk
    assert from_folder.error is None and from_bit.error is None


def test_folder_without_packets_is_a_format_error(tmp_path):
    with pytest.raises(FormatError):
        load_input(str(tmp_path))


def test_raw_packet_file_and_its_hex_read_alike(tmp_path):
    pkt = _three_packets()[0]
    f = tmp_path / "packet.bin"
    f.write_bytes(pkt)
    raw, hexed = read_input(load_input(str(f))), read_input(load_input(pkt.hex()))
    assert (raw.fmt, hexed.fmt) == ("raw", "hex")
    assert raw.items == hexed.items == [pkt]
    assert read_input(load_input(str(f), "raw")).items == [pkt]
    with pytest.raises(ValueError):
        load_input("zz-not-hex")


def test_truncated_bit_keeps_the_records_before_the_break(tmp_path):
    """A ``.bit`` cut inside its last packet: the complete packets, and the TruncatedError at that packet's
    payload offset (its header is 8 bytes into the record)."""
    pk = _three_packets()
    data = write_opus_demo_bit([(p, 7) for p in pk])
    f = tmp_path / "cut.bit"
    f.write_bytes(data[:-5])
    got = read_input(load_input(str(f)))
    assert got.fmt == "bit" and got.items == pk[:2]
    assert isinstance(got.error, TruncatedError) and got.error.byte_offset == 2 * 29 + 8
