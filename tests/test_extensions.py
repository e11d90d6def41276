"""Padding extensions (bitstream/extensions.py): syntax facts, write→parse round trips, and libopus'
exact bytes and accept/reject for both syntaxes (1.5.2 "v1", 1.6.1 "rte"), plus DRED lookup."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.bitstream._errors import ExtensionError, PacketError
from opus_dred.bitstream._extensions import (
    Extension,
    find_dred_extension,
    id_byte,
    parse_extensions,
    parse_id_byte,
    write_extensions,
)
from opus_dred.bitstream._packet import Toc, write_packet

E = Extension
SYNTAX_BUILD = {"v1": "libopus-1.5.2", "rte": "libopus-1.6.1"}

# -- syntax facts (draft-ietf-mlcodec-opus-extension) ----------------------------------------------


def test_id_byte():
    assert id_byte(126, 1) == 0xFD and parse_id_byte(0xFC) == (126, 0)
    assert id_byte(1, 0) == 0x02 and id_byte(2, 1) == 0x05


def test_last_long_extension_has_no_length():
    assert write_extensions([E(126, 0, b"D\x0cxyz")], 1) == b"\xfcD\x0cxyz"
    # not last: L=1 and a length byte
    assert write_extensions([E(126, 0, b"ab"), E(5, 0, b"")], 1) == b"\xfd\x02ab\x0a"


def test_separators_and_fill():
    exts = [E(5, 0, b"\x07"), E(6, 1, b""), E(7, 4, b"")]
    out = write_extensions(exts, 5, syntax="v1")
    assert out == bytes([0x0B, 0x07, 0x02, 0x0C, 0x03, 0x03, 0x0E])
    padded = write_extensions(exts, 5, syntax="v1", pad_to=10)
    assert padded == b"\x01\x01\x01" + out  # filled by prepending one-byte padding
    assert parse_extensions(padded, 5, syntax="v1") == exts
    with pytest.raises(ExtensionError):
        write_extensions(exts, 5, syntax="v1", pad_to=6)


def test_long_lengths_use_255_chains():
    data = bytes(300)
    out = write_extensions([E(40, 0, data), E(3, 0, b"")], 1)
    assert out[:3] == bytes([0x51, 255, 45])
    assert parse_extensions(out, 1) == [E(40, 0, data), E(3, 0, b"")]


def test_rte_repeats_per_frame_extensions():
    exts = [E(126, f, bytes([f]) * 3) for f in range(3)]
    out = write_extensions(exts, 3, syntax="rte")
    # one ID byte, the RTE byte (L=0: the last repeated long runs to the end), payloads only
    assert out == bytes([0xFD, 3, 0, 0, 0, 0x04, 3, 1, 1, 1, 2, 2, 2])
    got = parse_extensions(out, 3, syntax="rte")
    assert got == exts and [e.repeated for e in got] == [False, True, True]
    # the same bytes under 1.5.2 rules: id 2 is an ordinary short extension
    v1 = parse_extensions(out, 3, syntax="v1")
    # (0x04 = id 2 with no payload, then 0x03 0x01 a separator, 0x01 padding, 0x02 separators)
    assert [(e.id, e.frame) for e in v1] == [(126, 0), (2, 0)]


def test_version_specific_limits():
    with pytest.raises(ExtensionError):
        parse_extensions(b"\x02\x0a", 1, syntax="rte")  # separator reaches nb_frames
    assert parse_extensions(b"\x02\x0a", 1, syntax="v1") == [E(5, 1, b"")]
    with pytest.raises(ExtensionError):
        parse_extensions(b"\x03\x30\x0a", 48, syntax="v1")  # frame 48
    assert parse_extensions(b"\x03\x00\x0a", 2, syntax="rte") == [E(5, 0, b"")]  # increment 0
    with pytest.raises(ExtensionError):
        write_extensions([E(2, 0, b"")], 1, syntax="rte")
    assert write_extensions([E(2, 0, b"")], 1, syntax="v1") == b"\x04"


# -- round trips -----------------------------------------------------------------------------------


@st.composite
def _ext_lists(draw, syntax):
    nb_frames = draw(st.integers(1, 48))
    exts = []
    for _ in range(draw(st.integers(0, 8))):
        ext_id = draw(st.one_of(st.integers(2 if syntax == "v1" else 3, 31), st.integers(32, 127)))
        data = draw(st.binary(max_size=1) if ext_id < 32 else st.binary(max_size=300))
        exts.append(E(ext_id, draw(st.integers(0, nb_frames - 1)), data))
    if exts and draw(st.booleans()):  # the same extensions on every frame (what RTE compresses)
        head = [e for e in exts if e.frame == 0] or exts[:1]
        exts = [E(e.id, f, draw(st.binary(min_size=len(e.data), max_size=len(e.data))) if e.id < 32
                  else draw(st.binary(max_size=40)))
                for f in range(nb_frames) for e in head]
    return exts, nb_frames


def _frame_order(exts):
    return sorted(exts, key=lambda e: e.frame)  # stable: order within a frame is kept


@pytest.mark.parametrize("syntax", ["v1", "rte"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_write_then_parse(syntax, data):
    exts, nb_frames = data.draw(_ext_lists(syntax))
    pad_to = data.draw(st.one_of(st.none(), st.integers(0, 40)))
    out = write_extensions(exts, nb_frames, syntax=syntax, pad_to=None)
    if pad_to is not None:
        pad_to += len(out)
        out = write_extensions(exts, nb_frames, syntax=syntax, pad_to=pad_to)
        assert len(out) == pad_to
    got = parse_extensions(out, nb_frames, syntax=syntax)
    assert _frame_order(got) == _frame_order(exts)
    for e in got:
        assert out[e.data_offset:e.data_offset + len(e.data)] == e.data


# -- against libopus -------------------------------------------------------------------------------


@functools.cache
def _oracle(name):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(name)


@pytest.mark.oracle
@pytest.mark.parametrize("syntax", ["v1", "rte"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generate_matches_libopus(syntax, data):
    exts, nb_frames = data.draw(_ext_lists(syntax))
    pad_to = data.draw(st.one_of(st.none(), st.integers(0, 700)))
    o = _oracle(SYNTAX_BUILD[syntax])
    ret, ref = o.ext_generate([(e.id, e.frame, e.data) for e in exts], length=pad_to if pad_to is not None else 1 << 16,
                              nb_frames=nb_frames, pad=pad_to is not None)
    try:
        out = write_extensions(exts, nb_frames, syntax=syntax, pad_to=pad_to)
    except ExtensionError:
        assert ret < 0
        return
    assert ret == len(out) and ref == out


@st.composite
def _paddings(draw, syntax):
    kind = draw(st.sampled_from(["generated", "mutated", "tokens"]))
    if kind == "tokens":  # ID bytes that matter most, random lengths
        return bytes(draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 9, 0x0A, 0xFC, 0xFD, 255, 0x30]),
                                   max_size=20)))
    exts, nb_frames = draw(_ext_lists(syntax))
    out = bytearray(write_extensions(exts, nb_frames, syntax=syntax))
    if kind == "mutated" and out:
        for _ in range(draw(st.integers(1, 3))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.sampled_from([0, 2, 3, 4, 5, 0xFD, 255, 7]))
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


@pytest.mark.oracle
@pytest.mark.parametrize("syntax", ["v1", "rte"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_parse_matches_libopus(syntax, data):
    padding = data.draw(_paddings(syntax))
    nb_frames = data.draw(st.integers(1, 48))
    ref = _oracle(SYNTAX_BUILD[syntax]).ext_parse(padding, nb_frames)
    try:
        got = parse_extensions(padding, nb_frames, syntax=syntax)
    except ExtensionError:
        assert ref.ret < 0
        return
    assert ref.ret >= 0
    assert [(e.id, e.frame, e.data, e.offset) for e in ref.extensions] == \
        [(e.id, e.frame, e.data, e.data_offset) for e in got]


# -- DRED lookup (src/opus_decoder.c:dred_find_payload) ---------------------------------------------


def _packet(padding: bytes, nb_frames: int = 1, config: int = 9) -> bytes:
    return write_packet(Toc(config, False, 0), [b"\x00\x00"] * nb_frames, padding=padding, code=3)


@pytest.mark.parametrize("profile", ["libopus-1.5.2", "libopus-1.6.1"])
def test_find_dred_picks_first_matching(profile):
    from opus_dred.bitstream._profiles import get_profile

    prof = get_profile(profile)
    prefix = prof.experimental_prefix
    pad = write_extensions([E(126, 0, b"D\x01abc"), E(126, 1, prefix), E(126, 1, prefix + b"\x55\x66")], 2,
                           syntax=prof.extension_syntax)
    loc = find_dred_extension(_packet(pad, 2), profile)
    assert loc.payload == b"\x55\x66"
    assert loc.frame == 1 and loc.dred_frame_offset == 960 // 120


def test_find_dred_malformed_padding_per_version():
    bad = b"\x03\x05" + write_extensions([E(126, 0, b"D\x0a\x01"), E(126, 0, b"D\x0c\x01")], 1)
    pkt = _packet(bad, 2)
    assert find_dred_extension(pkt, "libopus-1.5.2") is not None  # 1.5.2 has no frame-count check
    with pytest.raises(ExtensionError):
        find_dred_extension(pkt, "libopus-1.6.1")
    truncated = _packet(b"\xfd\x09abc")
    assert find_dred_extension(truncated, "libopus-1.5.2") is None
    with pytest.raises(ExtensionError):
        find_dred_extension(truncated, "libopus-1.6.1")
    with pytest.raises(PacketError):
        find_dred_extension(b"", "libopus-1.6.1")


@pytest.mark.oracle
@pytest.mark.parametrize("profile", ["libopus-1.5.2", "libopus-1.6.1"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_find_dred_matches_opus_dred_parse(profile, data):
    from opus_dred.bitstream._dred import read_dred_payload
    from opus_dred.bitstream._profiles import get_profile

    prof = get_profile(profile)
    syntax = prof.extension_syntax
    nb_frames = data.draw(st.integers(1, 4))
    body = data.draw(st.binary(min_size=1, max_size=40))
    exts, _ = data.draw(_ext_lists(syntax))
    exts = [e for e in exts if e.frame < nb_frames]
    exts.insert(data.draw(st.integers(0, len(exts))),
                E(126, data.draw(st.integers(0, nb_frames - 1)), prof.experimental_prefix + body))
    pad = bytearray(write_extensions(exts, nb_frames, syntax=syntax))
    if data.draw(st.booleans()):
        pad[data.draw(st.integers(0, len(pad) - 1))] = data.draw(st.sampled_from([2, 3, 5, 0xFD, 255]))
    pkt = _packet(bytes(pad), nb_frames, config=data.draw(st.sampled_from([1, 9, 13, 16, 19, 31])))
    ref = _oracle(profile).dred_parse(pkt, defer_processing=True)
    try:
        loc = find_dred_extension(pkt, prof)
    except (ExtensionError, PacketError):
        assert ref.ret < 0
        return
    if loc is None:
        assert ref.ret == 0 and ref.process_stage == -1
        return
    p = read_dred_payload(loc.payload, prof, dred_frame_offset=loc.dred_frame_offset)
    assert ref.dred_offset == p.dred_offset
    assert ref.nb_latents == p.nb_latents
    assert ref.ret == p.available_samples(48000)


def test_capacity_like_libopus_nb_extensions():
    """`max_extensions` bounds the list as libopus' caller-sized array does (OPUS_BUFFER_TOO_SMALL past it)."""
    from opus_dred.bitstream._errors import ExtensionError
    from opus_dred.bitstream._extensions import Extension, parse_extensions, write_extensions

    exts = [Extension(5, 0, b"") for _ in range(10)]
    padding = write_extensions(exts, 1, syntax="rte")
    assert len(parse_extensions(padding, 1, max_extensions=10)) == 10
    with pytest.raises(ExtensionError) as ei:
        parse_extensions(padding, 1, max_extensions=9)
    assert ei.value.rule == "ext: capacity" and ei.value.byte_offset == 9
    from opus_dred.libopus._oracle import Oracle

    for build in ("libopus-1.5.2", "libopus-1.6.1"):
        oracle = Oracle.for_build(build)
        assert oracle.ext_parse(padding, 1, capacity=9).ret == -2  # OPUS_BUFFER_TOO_SMALL
        assert oracle.ext_parse(padding, 1, capacity=10).ret == 0
