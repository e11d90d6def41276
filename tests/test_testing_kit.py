"""``opus_dred.testing``: the strategies make what our parsers and libopus' parsers accept (the mutations what they
answer without crashing); the pytest plugin runs the suite as one test per case, inert without its option,
passing on the reference and naming the field where a wrong adapter differs; the C adapter over libopus' public
API passes what it implements and skips the rest."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.bitstream._dred import read_dred_payload, write_dred_payload
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import find_dred_extension, parse_extensions, write_extensions
from opus_dred.bitstream._packet import parse_packet
from opus_dred.bitstream._profiles import get_profile
from opus_dred.refimpl import _receiver as rx
from opus_dred.testing import (
    describe,
    dred_payloads,
    extension_lists,
    mutations,
    opus_packets,
    receiver_events,
    truncations,
)
from opus_dred.vectors._format import suite_root

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]
BUILD = {"libopus-1.5.2": "libopus-1.5.2", "libopus-1.6.1": "libopus-1.6.1"}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@functools.cache
def _oracle(name):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(name)


# -- the strategies against our parsers ------------------------------------------------------------


@pytest.mark.parametrize("profile", [None, *PROFILES])
@FAST
@given(data=st.data(), sd=st.booleans())
def test_packets_are_valid_framing(profile, data, sd):
    raw = data.draw(opus_packets(profile, self_delimited=sd))
    pkt = parse_packet(raw + b"next" if sd else raw, self_delimited=sd)
    assert pkt.length == len(raw)
    assert 1 <= pkt.nb_frames <= 48 and pkt.nb_frames * pkt.toc.frame_size_48k <= 5760


@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_dred_packets_carry_a_payload_the_profile_finds(profile, data):
    raw = data.draw(opus_packets(profile, dred=True))
    loc = find_dred_extension(raw, profile)
    assert loc is not None
    p = read_dred_payload(loc.payload, profile)
    assert not p.read_past_end


@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_extension_lists_round_trip(profile, data):
    exts, nb = data.draw(extension_lists(profile))
    syntax = get_profile(profile).extension_syntax
    assert parse_extensions(write_extensions(exts, nb, syntax=syntax), nb, syntax=syntax) == exts


@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_dred_payloads_are_read_back(profile, data):
    p = data.draw(dred_payloads(profile))
    got = read_dred_payload(write_dred_payload(p), profile)
    assert (got.q0, got.dQ, got.qmax, got.extended_offset, got.extra_offset, got.offset) == \
        (p.q0, p.dQ, p.qmax, p.extended_offset, p.extra_offset, p.offset)
    assert np.array_equal(got.state_q, p.state_q)
    assert np.array_equal(got.latents_q, p.latents_q[: got.nb_latents])  # trailing chunks under 8 bits are lost


@FAST
@given(events=receiver_events())
def test_receiver_events_are_accepted(events):
    actions = rx.run(events, rx.BEST)
    frames = {e.seq for e in events}
    assert len(actions) == max(frames) + 1  # one action per frame, every frame up to the last one heard of


@FAST
@given(data=st.data())
def test_mutations_and_truncations_break_packets_into_typed_errors(data):
    whole = data.draw(opus_packets("libopus-1.6.1"))
    cut = data.draw(truncations(whole))
    assert len(cut) < len(whole) and whole.startswith(cut)
    for raw in (cut, data.draw(mutations(whole)), data.draw(mutations(opus_packets("libopus-1.5.2")))):
        try:
            parse_packet(raw)
        except BitstreamError:
            pass


# -- the strategies against libopus' parsers (oracle) ------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_libopus_parses_the_packets(profile, data):
    raw = data.draw(opus_packets(profile))
    r = _oracle(BUILD[profile]).packet_parse(raw)
    pkt = parse_packet(raw)
    assert r.ret == pkt.nb_frames and list(r.sizes) == [len(f) for f in pkt.frames]
    assert r.padding_len == len(pkt.padding)


@pytest.mark.oracle
@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_libopus_parses_the_extension_lists(profile, data):
    exts, nb = data.draw(extension_lists(profile))
    pad = write_extensions(exts, nb, syntax=get_profile(profile).extension_syntax)
    r = _oracle(BUILD[profile]).ext_parse(pad, nb)
    assert r.ret >= 0
    assert sorted((e.frame, e.id, e.data) for e in r.extensions) == sorted((e.frame, e.id, e.data) for e in exts)


@pytest.mark.oracle
@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_libopus_parses_the_dred_packets(profile, data):
    raw = data.draw(opus_packets(profile, dred=True))
    loc = find_dred_extension(raw, profile)
    ours = read_dred_payload(loc.payload, profile)
    d = _oracle(BUILD[profile]).dred_parse(raw, defer_processing=True)
    try:
        assert d.ret >= 0
        assert d.nb_latents == ours.nb_latents
    finally:
        d.close()
