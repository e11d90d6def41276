"""DRED-only stream records (the official vectors' format): our reader and writer against libopus' fargan_demo."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opus_dred.bitstream._dredstream import chronological, read_stream_record, write_stream_record
from opus_dred.bitstream._errors import FormatError
from opus_dred.bitstream._formats import DredStreamRecord, read_dred_stream, write_dred_stream
from opus_dred.bitstream._profiles import get_profile

PROFILE = "libopus-1.6.1"  # fargan_demo -dred-decoding exists from 1.6 on


def _random_values(rng, prof, q0, n):
    """Small quantized values, zero where the level's statistics allow only zero."""
    st_ = prof.stats
    state = rng.integers(-3, 4, prof.state_dim) * ((st_.state_r[q0] != 0) & (st_.state_p0[q0] != 255))
    lat = rng.integers(-3, 4, (n, prof.latent_dim)) * ((st_.latent_r[q0] != 0) & (st_.latent_p0[q0] != 255))
    return state, lat


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 15), st.integers(0, 25), st.integers(0, 2**32 - 1))
def test_write_read_round_trip(q0, n, seed):
    prof = get_profile(PROFILE)
    state, lat = _random_values(np.random.default_rng(seed), prof, q0, n)
    rec = write_stream_record(state, lat, q0, prof)
    back = read_stream_record(read_dred_stream(write_dred_stream([rec]))[0], prof)
    assert np.array_equal(back.state_q, state) and np.array_equal(back.latents_q, lat)
    assert back.nb_latents == n and set(back.q_levels.tolist()) <= {q0}
    assert not back.read_past_end


def test_more_latents_than_fargan_demo_holds_are_refused():
    prof = get_profile(PROFILE)
    with pytest.raises(FormatError) as ei:
        write_stream_record(np.zeros(prof.state_dim), np.zeros((26, prof.latent_dim)), 3, prof)
    assert ei.value.rule == "dred-stream: nb_chunks"


def test_odd_chunk_count_is_refused():
    with pytest.raises(FormatError) as ei:
        read_stream_record(DredStreamRecord(3, 5, b"\x00" * 20, offset=24), PROFILE)
    assert ei.value.byte_offset == 28 and "odd" in ei.value.message


@pytest.mark.oracle
def test_features_match_fargan_demo(tmp_path):
    """Records made from real DRED packets, decoded by libopus' fargan_demo and by the reference."""
    from opus_dred.conformance._metric import compare_features
    from opus_dred.libopus._oracle import Oracle
    from opus_dred.speech._corpus import load_clip
    from opus_dred.libopus._upstream import get_build
    from opus_dred.bitstream._dred import read_dred_payload
    from opus_dred.bitstream._extensions import find_dred_extension
    from opus_dred.refimpl._decode import features_of

    prof = get_profile(PROFILE)
    oracle = Oracle.for_build(PROFILE)
    pcm = load_clip(None, rate=16000)[: 16000 * 3]
    packets = oracle.encode(pcm, fs=16000, bitrate=32000, frame_ms=20, dred_duration=100, loss_perc=20)
    records = []
    for e in packets[10:60:5]:
        loc = find_dred_extension(e.data, prof)
        assert loc is not None
        p = read_dred_payload(loc.payload, prof)
        # one level for the whole record: re-code the packet's values at its q0
        records.append(write_stream_record(p.state_q, p.latents_q, p.q0, prof))
    stream = tmp_path / "dred.bit"
    stream.write_bytes(write_dred_stream(records))
    out = tmp_path / "ref.f32"
    fargan = get_build(PROFILE).build_dir / "fargan_demo"
    subprocess.run([str(fargan), "-dred-decoding", str(stream), str(out)], check=True, capture_output=True)
    ref = np.fromfile(out, "<f4").reshape(-1, 20)

    ours = []
    for rec in read_dred_stream(stream.read_bytes()):
        p = read_stream_record(rec, prof)
        ours.append(chronological(features_of(prof, p.state, p.latents, numerics="libopus-avx2-host")))
    ours = np.concatenate(ours)
    assert ours.shape == ref.shape
    cmp = compare_features(ref, ours)
    assert cmp.passed, cmp
    # the int8 emulation tracks libopus' own arithmetic: far inside the compliance thresholds
    assert np.abs(ours - ref).max() < 0.15
