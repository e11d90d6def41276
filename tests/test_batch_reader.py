"""The native batched DRED reader (opus_dred.accel._native through accel._bitstream) against the scalar reader
and the numpy lanes.

* every packet of the canonical suite (both profiles; DRED payload, DRED features, packet and invalid cases):
  located alike (payload, frame offset, or the same typed error with its offset) and every field read equal to
  :func:`~opus_dred.bitstream._dred.read_dred_payload`'s, in one batch, whole and cut short;
* hypothesis payloads (random bytes, real payloads cut and with bytes changed) and packets (random bytes, real
  packets mutated): the native arrays equal the numpy lanes' (shape, dtype, value) and the scalar reader's rows;
* a batch large enough to be split over threads equals the numpy lanes too.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.accel import _native
from opus_dred.accel._bitstream import BatchDred, locate_dred_payloads, read_dred_packets, read_dred_payloads
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._extensions import find_dred_extension
from opus_dred.errors import OpusDredError

PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]

pytestmark = pytest.mark.skipif(_native.library() is None, reason="the native reader does not build here (no C compiler)")

#: BatchDred's fields that are DredPayload's, row by row (the latent axis cut at nb_latents)
_SHARED = ("q0", "dQ", "qmax", "extended_offset", "extra_offset", "offset", "dred_frame_offset", "dred_offset",
           "nb_latents", "state_q", "latents_q", "q_levels", "state", "latents", "num_bytes", "end_tell",
           "read_past_end")


@functools.cache
def _suite_packets(profile: str) -> tuple[bytes, ...]:
    from opus_dred.vectors._format import iter_cases

    out = []
    for case in iter_cases(profile=profile):
        for key in ("packet", "data"):
            v = case.inputs.get(key)
            if isinstance(v, bytes):
                out.append(v)
    return tuple(out)


def _reference_location(pkt: bytes, profile: str):
    try:
        loc = find_dred_extension(pkt, profile)
    except OpusDredError as e:
        return ("error", type(e), e.message, e.byte_offset, e.rule)
    return None if loc is None else (loc.payload, loc.frame, loc.dred_frame_offset, loc.payload_offset)


def _native_location(pkt: bytes, profile: str):
    try:
        r = locate_dred_payloads([pkt], profile, native=True)
    except OpusDredError as e:
        return ("error", type(e), e.message, e.byte_offset, e.rule)
    return (r.payload[0], int(r.frame[0]), int(r.dred_frame_offset[0]), int(r.payload_offset[0])) if r.found[0] else None


def _assert_rows_equal_scalar(b: BatchDred, payloads, profile: str, mff: int, offsets) -> None:
    for i, pay in enumerate(payloads):
        r = read_dred_payload(pay, profile, min_feature_frames=mff, dred_frame_offset=int(offsets[i]))
        assert b.profile == r.profile
        for name in _SHARED:
            ours, batched = np.asarray(getattr(r, name)), np.asarray(getattr(b, name))[i]
            if name in ("latents_q", "q_levels", "latents"):
                assert not batched[r.nb_latents:].any(), name
                batched = batched[: r.nb_latents]
            np.testing.assert_array_equal(ours, batched, err_msg=f"{name} of payload {i}")


def _assert_batches_equal(a: BatchDred, b: BatchDred) -> None:
    for f in dataclasses.fields(BatchDred):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "profile":
            assert x == y
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, f.name
        np.testing.assert_array_equal(x, y, err_msg=f.name)


@pytest.mark.parametrize("profile", PROFILES)
def test_canonical_suite_packets(profile):
    pkts = list(_suite_packets(profile))
    assert len(pkts) > 300
    refs = [_reference_location(p, profile) for p in pkts]
    assert sum(isinstance(r, tuple) and r[0] == "error" for r in refs) > 10  # the invalid cases
    found = [i for i, r in enumerate(refs) if r is not None and r[0] != "error"]
    assert len(found) > 200
    for p, ref in zip(pkts, refs):
        assert _native_location(p, profile) == ref
    good = [pkts[i] for i in found]
    for mff in (104, 9):
        loc, b = read_dred_packets(good, profile, min_feature_frames=mff, native=True)
        assert loc.found.all() and loc.fast.any()
        assert [loc.payload[i] for i in range(len(good))] == [refs[i][0] for i in found]
        _assert_rows_equal_scalar(b, [refs[i][0] for i in found], profile, mff, [refs[i][2] for i in found])
        _, c = read_dred_packets(good, profile, min_feature_frames=mff, native=False)
        _assert_batches_equal(b, c)
    # payloads cut short: the chunk stop rule and reads past the end
    pays = [refs[i][0] for i in found]
    cut = [p[: len(p) * k // 4] for p in pays[::3] for k in (0, 1, 2, 3)]
    b = read_dred_payloads(cut, profile, dred_frame_offset=2, native=True)
    assert b.read_past_end.any()
    _assert_rows_equal_scalar(b, cut, profile, 104, [2] * len(cut))
    _assert_batches_equal(b, read_dred_payloads(cut, profile, dred_frame_offset=2, native=False))


@functools.cache
def _real_payloads(profile: str) -> tuple[bytes, ...]:
    return tuple(r[0] for r in map(lambda p: _reference_location(p, profile), _suite_packets(profile))
                 if r is not None and r[0] != "error")


@st.composite
def _payload_batch(draw):
    profile = draw(st.sampled_from(PROFILES))
    real = _real_payloads(profile)
    pays = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["random", "cut", "mutated"]))
        if kind == "random":
            pays.append(draw(st.binary(min_size=0, max_size=80)))
            continue
        p = bytearray(real[draw(st.integers(0, len(real) - 1))])
        if kind == "cut":
            del p[draw(st.integers(0, len(p))):]
        else:
            for _ in range(draw(st.integers(1, 4))):
                if p:
                    p[draw(st.integers(0, len(p) - 1))] = draw(st.integers(0, 255))
        pays.append(bytes(p))
    mff = draw(st.sampled_from([104, 52, 9, 1, 0]))
    offs = draw(st.lists(st.integers(-64, 64), min_size=len(pays), max_size=len(pays)))
    return profile, pays, mff, np.array(offs, np.int64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_payload_batch())
def test_fuzzed_payloads(case):
    profile, pays, mff, offs = case
    b = read_dred_payloads(pays, profile, min_feature_frames=mff, dred_frame_offset=offs, native=True)
    _assert_batches_equal(b, read_dred_payloads(pays, profile, min_feature_frames=mff, dred_frame_offset=offs,
                                                native=False))
    _assert_rows_equal_scalar(b, pays, profile, mff, offs)


@st.composite
def _packet(draw):
    profile = draw(st.sampled_from(PROFILES))
    if draw(st.booleans()):
        return profile, draw(st.binary(min_size=0, max_size=40))
    pkts = _suite_packets(profile)
    p = bytearray(pkts[draw(st.integers(0, len(pkts) - 1))])
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "append"]))
        if op in ("flip", "set") and p:
            i = draw(st.integers(0, len(p) - 1))
            p[i] = p[i] ^ (1 << draw(st.integers(0, 7))) if op == "flip" else draw(st.integers(0, 255))
        elif op == "truncate":
            del p[draw(st.integers(0, len(p))):]
        else:
            p += draw(st.binary(min_size=1, max_size=4))
    return profile, bytes(p)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_packet())
def test_fuzzed_packets(case):
    """Located as find_dred_extension does (or the same typed error), and read as the scalar reader reads."""
    profile, pkt = case
    ref = _reference_location(pkt, profile)
    assert _native_location(pkt, profile) == ref
    if ref is not None and ref[0] != "error":
        loc, b = read_dred_packets([pkt], profile, native=True)
        assert loc.payload[0] == ref[0]
        _assert_rows_equal_scalar(b, [ref[0]], profile, 104, [ref[2]])


@pytest.mark.parametrize("threads", [2, 3])
def test_a_batch_split_over_threads(monkeypatch, threads):
    monkeypatch.setattr(_native, "threads_for", lambda n: threads)
    profile = "libopus-1.6.1"
    real = list(_real_payloads(profile))
    pays = (real * (5000 // len(real) + 1))[:5000]
    rnd = np.random.default_rng(7)
    pays = [p[: int(rnd.integers(0, len(p) + 1))] if k % 3 == 0 else p for k, p in enumerate(pays)]
    b = read_dred_payloads(pays, profile, native=True)
    _assert_batches_equal(b, read_dred_payloads(pays, profile, native=False))


def test_native_forced_where_it_cannot_build(monkeypatch):
    monkeypatch.setenv("OPUS_DRED_NATIVE", "0")
    assert _native.library() is None
    with pytest.raises(RuntimeError, match="native DRED reader"):
        read_dred_payloads([b"\x00"], "libopus-1.6.1", native=True)
    # the numpy lanes answer instead
    assert read_dred_payloads([b"\x00"], "libopus-1.6.1").nb_latents.shape == (1,)
