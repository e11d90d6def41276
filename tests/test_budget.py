"""The DRED bit allocation (bitstream/_budget.py) against what libopus' encoder does with the same settings.

compute_dred_bitrate is static in src/opus_encoder.c, so its decisions are observed in the packets: whether
DRED is sent at all, the q0/dQ in every payload header, and, once a second of speech fills the latent buffer, the
number of chunks (capped by target_chunks in VBR).
"""

from __future__ import annotations

import numpy as np
import pytest

from opus_dred.bitstream import find_dred, read_dred_payload
from opus_dred.bitstream._budget import (
    DRED_BITS_TABLE,
    compute_dred_bitrate,
    dred_bytes_left,
    dred_chunks,
    dred_max_bytes,
    ec_ilog,
    estimate_dred_bits,
)

pytestmark = pytest.mark.oracle

BUILDS = {"libopus-1.5.2": "1.5", "libopus-1.6.1": "1.6"}


@pytest.fixture(scope="module")
def speech():
    from opus_dred.speech import load_clip  # lazy: the corpus is fetched on first use

    return load_clip(None, rate=16000)[: 16000 * 3]


def _payloads(oracle, pcm, **kw):
    out = []
    for e in oracle.encode(pcm, fs=16000, application="voip", **kw):
        prof, loc = find_dred(e.data)
        out.append(None if loc is None else read_dred_payload(loc.payload, prof))
    return out


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.parametrize("bitrate,loss,duration,fec", [
    (16000, 20, 100, False), (24000, 20, 100, False), (24000, 3, 100, False), (24000, 1, 100, False),
    (32000, 10, 50, False), (32000, 0, 100, False), (48000, 25, 104, False), (64000, 5, 30, False),
    (24000, 20, 100, True), (40000, 15, 100, True), (40000, 10, 100, True), (36000, 15, 100, True),
    (44000, 15, 100, True), (96000, 40, 104, False),
])
def test_dred_presence_schedule_and_chunks_match_libopus(build, bitrate, loss, duration, fec, speech):
    from opus_dred.libopus import Oracle  # lazy: builds the shim on first use

    oracle = Oracle.for_build(build)
    budget = compute_dred_bitrate(bitrate, fs=16000, frame_size=320, duration=duration, loss_perc=loss,
                                  inband_fec=fec, version=BUILDS[build])
    got = _payloads(oracle, speech, bitrate=bitrate, loss_perc=loss, dred_duration=duration, lbrr=fec)
    present = [p for p in got if p is not None]
    if not budget.sends(vbr=True):
        assert present == []
        return
    assert budget.reserves_bits == (budget.target_chunks >= 2)
    assert len(present) > len(got) // 2
    assert {(p.q0, p.dQ, p.qmax) for p in present} == {(budget.q0, budget.dq, budget.qmax)}
    cap = dred_chunks(duration, vbr=True, target_chunks=budget.target_chunks)
    assert max(p.nb_latents for p in present) == cap
    assert all(p.nb_latents <= cap for p in present)


def test_bits_estimate_by_hand():
    """estimate_dred_bitrate at q0 = 15, dQ = 0: 40 + 50 + 6.4 bits, then 6.4 per chunk."""
    bits, chunks = estimate_dred_bits(15, 0, 15, 8, target_bits=110)
    assert bits == int(np.floor(np.float32(0.5) + np.float32(40 + 50 + 6.4 * 4))) and chunks == 2
    assert DRED_BITS_TABLE[0] == np.float32(73.2)
    assert ec_ilog(1) == 1 and ec_ilog(255) == 8 and ec_ilog(256) == 9


def test_bytes_left_and_chunk_cap():
    assert dred_bytes_left(1500, 60) == 1000 - (1000 + 3) // 255
    assert dred_bytes_left(100, 60) == 37
    assert dred_max_bytes(100, 60) == 35 and dred_max_bytes(70, 60) == 0
    assert dred_chunks(104, vbr=False, target_chunks=3) == 26 and dred_chunks(104, vbr=True, target_chunks=3) == 3
    assert dred_chunks(10, vbr=True, target_chunks=26) == 3
