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
    find_dred,
    find_dred_extension,
    id_byte,
    parse_extensions,
    parse_id_byte,
    write_extensions,
)
from opus_dred.bitstream._packet import Toc, parse_packet, write_packet

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


# -- which profile owns a packet's DRED: one decision (find_dred), every caller -------------------------

PROFILES = ("libopus-1.5.2", "libopus-1.6.1")


def test_dred_version_in_is_dred_find_payloads_guard():
    from opus_dred.bitstream._extensions import dred_version_in

    # dnn/dred_config.h: DRED_EXPERIMENTAL_BYTES 2; src/opus_decoder.c:dred_find_payload wants len > 2
    assert dred_version_in(b"D\x0c\x00") == 12
    assert dred_version_in(b"D\x0c") is None  # the prefix alone is no DRED
    assert dred_version_in(b"E\x0c\x00") is None and dred_version_in(b"") is None


@given(st.binary(max_size=6))
def test_dred_version_in_on_any_bytes(data):
    from opus_dred.bitstream._extensions import dred_version_in

    assert dred_version_in(data) == (data[1] if len(data) > 2 and data[0] == ord("D") else None)


def _outcome(fn):
    """What ``fn()`` gives, or the typed error it raises as ``("error", class, byte offset)``."""
    from opus_dred.errors import OpusDredError

    try:
        return fn()
    except OpusDredError as e:
        return ("error", type(e).__name__, e.byte_offset)


def _loc(loc):
    return None if loc is None else (loc.payload, loc.frame, loc.dred_frame_offset, loc.payload_offset)


def _find(pkt, profile=None):
    from opus_dred.bitstream._extensions import find_dred

    def run():
        prof, loc = find_dred(pkt, profile)
        return (None if prof is None else prof.name, _loc(loc))

    return _outcome(run)


def _inspected(pkt, profile=None):
    """``inspect_packet``'s answer in the same shape (inspect never raises: a lookup error is in ``error``)."""
    from opus_dred.bitstream._inspect import inspect_packet

    r = inspect_packet(pkt, profile)
    d = r.dred
    if d is None or "profile" not in d:
        return ("error", r.error["error"], r.error["byte_offset"]) if r.error and r.frames is None else (None, None)
    if not d["found"] and r.error is not None:
        return ("error", r.error["error"], r.error["byte_offset"])
    if not d["found"]:
        return (d["profile"], None)
    start = d["payload_offset"]
    return (d["profile"], (pkt[start:start + d["payload_bytes"]], d["frame"], d["dred_frame_offset"], start))


def _located(pkt, profile):
    """``locate_dred_payloads``' answer (the batched fast path) in the same shape."""
    from opus_dred.accel._bitstream import locate_dred_payloads

    def run():
        r = locate_dred_payloads([pkt], profile)
        loc = (r.payload[0], int(r.frame[0]), int(r.dred_frame_offset[0]), int(r.payload_offset[0]))
        return (profile, loc if r.found[0] else None)

    return _outcome(run)


def _guessed(pkt):
    """The ``decode`` command's profile guess: a name, or None where it asks for --profile."""
    import typer

    from opus_dred.cli._decode import _guess_profile

    try:
        return _guess_profile([pkt])
    except typer.BadParameter:
        return None


def _strict(pkt, profile):
    """``decode --strict``'s complaint: the version and byte offset of another version's DRED, or None."""
    from opus_dred.bitstream._errors import ProfileMismatchError
    from opus_dred.refimpl._decode import _raise_if_other_version

    try:
        _raise_if_other_version(pkt, get_profile(profile))
    except ProfileMismatchError as e:
        return e.byte_offset
    return None


def get_profile(name):
    from opus_dred.bitstream._profiles import get_profile as gp

    return gp(name)


def _check_every_caller(pkt: bytes) -> None:
    """Every caller gives find_dred's answer: the owner without a profile, the location with one."""
    from opus_dred.bitstream._extensions import find_dred_extension, foreign_dred

    owner = _find(pkt)
    assert _inspected(pkt) == owner or (not pkt and _inspected(pkt) == (None, None))  # inspect: empty = lost
    assert _guessed(pkt) == (None if owner[0] in (None, "error") else owner[0])
    if owner[0] not in (None, "error"):
        assert owner == _find(pkt, owner[0])  # the owner's libopus finds what find_dred found
    for name in PROFILES:
        want = _find(pkt, name)
        assert want == _outcome(lambda: (name, _loc(find_dred_extension(pkt, name))))
        assert _inspected(pkt, name) == want or (not pkt and _inspected(pkt, name) == (None, None))
        assert _located(pkt, name) == want
        # decode --strict names the first DRED extension of another version where this profile's libopus
        # looks (its version byte's offset); libopus passes over it, so this profile's DRED lies beyond it
        e = foreign_dred(pkt, name)
        where = None if e is None else (parse_packet(pkt).padding_offset or 0) + e.data_offset
        assert _strict(pkt, name) == (None if e is None else where + 1)
        if e is not None and want[0] != "error" and want[1] is not None:
            assert want[1][3] > where + 2


@functools.cache
def _suite_packets() -> tuple[tuple[str, str, bytes], ...]:
    """Every packet of the canonical suite (cases with a ``packet`` input, and invalid packet/DRED bytes), with
    the case's profile and suite."""
    from opus_dred.vectors._format import iter_cases

    out = []
    for case in iter_cases():
        pkt = case.inputs.get("packet")
        if pkt is None and case.handler == "invalid" and case.parameters.get("layer") in ("packet", "dred"):
            pkt = case.inputs.get("data")
        if isinstance(pkt, (bytes, bytearray)):
            out.append((case.profile, case.suite, bytes(pkt)))
    return tuple(out)


def test_find_dred_on_the_suite_packets_for_every_caller():
    pkts = _suite_packets()
    assert len(pkts) > 500
    owned = 0
    for profile, suite, pkt in pkts:
        _check_every_caller(pkt)
        prof, loc = _find(pkt) if _find(pkt)[0] != "error" else (None, None)
        if loc is not None:
            owned += 1
            # packets made for one profile carry its DRED; the limits suites put the same bytes (foreign
            # versions, several DRED extensions) in both profiles on purpose (docs/limits.md), and the
            # cross_version cases carry the other release's DRED only (docs/profiles.md)
            if suite == "cross_version":
                assert prof != profile
            else:
                assert prof == profile or suite == "limits"
    assert owned > 400


@st.composite
def _dred_packets(draw):
    """Packets whose padding holds DRED-id extensions of both versions, unknown versions, bare prefixes and
    other extensions, written with either syntax, then sometimes mutated."""
    syntax = draw(st.sampled_from(["v1", "rte"]))
    nb_frames = draw(st.integers(1, 3))
    exts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["dred", "dred", "prefix", "short_data", "other"]))
        frame = draw(st.integers(0, nb_frames - 1))
        version = draw(st.sampled_from([10, 12, 10, 12, 11, 99]))
        if kind == "dred":
            data = b"D" + bytes([version]) + draw(st.binary(min_size=1, max_size=8))
        elif kind == "prefix":
            data = b"D" + bytes([version])
        elif kind == "short_data":
            data = draw(st.binary(max_size=2))
        else:
            exts.append(E(draw(st.integers(32, 125)), frame, draw(st.binary(max_size=4))))
            continue
        exts.append(E(126, frame, data))
    exts.sort(key=lambda e: e.frame)
    pad = bytearray(write_extensions(exts, nb_frames, syntax=syntax))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        if pad:
            pad[draw(st.integers(0, len(pad) - 1))] = draw(st.sampled_from([2, 3, 4, 5, 0xFC, 0xFD, 255, 0x44]))
    pkt = _packet(bytes(pad), nb_frames, config=draw(st.sampled_from([1, 9, 16, 31])))
    if draw(st.integers(0, 9)) == 0:
        pkt = pkt[: draw(st.integers(0, len(pkt)))]
    return pkt


@settings(max_examples=300, deadline=None)
@given(_dred_packets())
def test_find_dred_on_fuzzed_packets_for_every_caller(pkt):
    _check_every_caller(pkt)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=30))
def test_find_dred_on_any_bytes_for_every_caller(pkt):
    _check_every_caller(pkt)


@pytest.mark.oracle
@settings(max_examples=120, deadline=None)
@given(_dred_packets())
def test_the_owner_find_dred_names_is_a_libopus_that_finds_the_dred(pkt):
    """Where find_dred names a profile and a location, that profile's libopus finds DRED there (the same
    dred_offset); where a profile's libopus finds DRED, find_dred with that profile finds it too."""
    from opus_dred.bitstream._dred import read_dred_payload
    from opus_dred.bitstream._extensions import find_dred

    for name in PROFILES:
        ref = _oracle(name).dred_parse(pkt, defer_processing=True)
        got = _find(pkt, name)
        if got[0] == "error":
            assert ref.ret < 0
            continue
        assert (got[1] is not None) == (ref.process_stage != -1)
        if got[1] is not None:
            p = read_dred_payload(got[1][0], name, dred_frame_offset=got[1][2])
            assert (p.dred_offset, p.nb_latents) == (ref.dred_offset, ref.nb_latents)
    owner = _find(pkt)
    if owner[0] not in (None, "error") and owner[1] is not None:
        prof, _ = find_dred(pkt)
        assert _oracle(prof.name).dred_parse(pkt, defer_processing=True).process_stage != -1


def test_find_dred_follows_the_1_5_scan_past_frame_48():
    """libopus 1.5.x's ``dred_find_payload`` walks the padding with no frame limit, so a DRED extension behind a
    separator to frame 60 is found with or without naming the profile (and the oracle agrees)."""
    from opus_dred.bitstream._packet import parse_packet
    from opus_dred.vectors._format import iter_cases

    pkts = (bytes(c.inputs["packet"]) for c in iter_cases()
            if c.profile == "libopus-1.5.2" and c.handler == "dred_payload" and c.suite == "speech_grid")
    prof, loc = next(r for r in map(find_dred, pkts) if r[1] is not None)
    pad = bytes([0x03, 60, 0xFC]) + bytes(loc.extension.data)  # separator +60, then id 126 with L = 0
    new = bytes([(5 << 3) | 3, 0x41, len(pad)]) + bytes(10) + pad
    assert parse_packet(new).nb_frames == 1
    named = find_dred(new, prof)[1]
    owner, found = find_dred(new)
    assert owner.name == "libopus-1.5.2" and found is not None and named is not None
    assert found.frame == named.frame == 60 and found.payload == loc.payload
