"""The receiver, executed on libopus' decoder, reproduces opus_demo's output sample for sample.

Real speech is encoded by each release (LBRR and 500 ms of DRED, then DRED only, then neither),
written as an opus_demo ``.bit`` file with a loss file holding isolated losses, runs of 2 to 30
frames (longer than the DRED coverage), a loss at the very start and losses at the end; ``opus_demo -d <rate> 1
-lossfile`` decodes it, and the receiver's actions executed by :class:`LibopusExecutor` must give the
same PCM, for 1.5.2 and 1.6.1 at 16 and 48 kHz.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from opus_dred.bitstream import _arith as ar
from opus_dred.speech import _corpus as speech
from opus_dred.libopus import _upstream as upstream
from opus_dred.libopus._oracle import Oracle
from opus_dred.libopus._receiver import (
    LibopusExecutor,
    decode_like_opus_demo,
    packet_events,
    run_opus_demo,
)
from opus_dred.refimpl import _receiver as rx

BUILDS = ["libopus-1.5.2", "libopus-1.6.1"]
RATES = [16000, 48000]


def _lost(n: int) -> np.ndarray:
    lost = np.zeros(n, np.int64)
    runs = [(0, 1), (5, 1), (9, 2), (20, 5), (30, 1), (52, 3), (58, 30), (90, 1), (105, 1), (110, 3), (120, 2)]
    for start, length in runs:
        lost[start : start + length] = 1
    lost[n - 3 :] = 1  # a loss at the end is never concealed by opus_demo
    return lost


@pytest.fixture(scope="module", params=BUILDS)
def build(request):
    return request.param


_CACHE: dict = {}


def _stream(name: str, rate: int):
    key = (name, rate)
    if key not in _CACHE:
        o = Oracle.for_build(name)
        x = speech.load_clip(None, rate=rate)[: rate * 3]
        frame = rate // 50
        third = (len(x) // frame // 3) * frame
        # LBRR and 500 ms of DRED, then DRED only, then neither
        pk = o.encode(x[:third], fs=rate, bitrate=32000, loss_perc=20, dred_duration=50, lbrr=True)
        pk += o.encode(x[third : 2 * third], fs=rate, bitrate=32000, loss_perc=20, dred_duration=50)
        pk += o.encode(x[2 * third :], fs=rate, bitrate=32000, loss_perc=20)
        _CACHE[key] = (o, [p.data for p in pk], [p.final_range for p in pk])
    return _CACHE[key]


@pytest.mark.parametrize("rate", RATES)
def test_bit_exact_with_opus_demo(build, rate):
    o, packets, ranges = _stream(build, rate)
    lost = _lost(len(packets))
    ref = run_opus_demo(upstream.get_build(build).build_dir, packets, lost, rate, final_ranges=ranges)
    ours, actions = decode_like_opus_demo(o, packets, lost, rate)
    kinds = Counter(type(a).__name__ for a in actions)
    # the stream exercises every path
    assert kinds["Lbrr"] >= 3 and kinds["Dred"] >= 10 and kinds["Plc"] >= 5 and kinds["Drop"] == 3
    # the 30-frame run reaches past the 500 ms of DRED: opus_demo's calls there are DredPlc
    assert kinds["DredPlc"] >= 5 and kinds["Dred"] + kinds["DredPlc"] >= 30
    assert kinds["Normal"] == int((lost == 0).sum())
    assert len(ours) == len(ref)
    assert np.array_equal(ours, ref)


def test_policy_matters(build):
    """The check above can fail: plain PLC everywhere gives other PCM than opus_demo; the BEST
    policy conceals the leading and trailing losses (and, on this in-order stream at depth 0, recovers
    the same frames from the same features as opus_demo in between)."""
    rate = 16000
    o, packets, ranges = _stream(build, rate)
    lost = _lost(len(packets))
    ref = run_opus_demo(upstream.get_build(build).build_dir, packets, lost, rate)
    events = packet_events(o, packets, lost, rate)
    with LibopusExecutor(o, rate) as ex:
        for a in rx.run(events, rx.OPUS_DEMO_1_6_1, rate=rate):
            if isinstance(a, (rx.Dred, rx.Lbrr)):
                a = rx.Plc(a.frame, a.samples)
            ex.execute(a, packets)
        plc_only = ex.pcm()
    assert len(plc_only) == len(ref) and not np.array_equal(plc_only, ref)
    best, _ = decode_like_opus_demo(o, packets, lost, rate, policy=rx.BEST)
    assert len(best) == len(ref) + 4 * (rate // 50)  # the leading and trailing losses are concealed
    # BEST conceals the three trailing losses that opus_demo drops: there is sound where it has none
    assert np.abs(best[len(ref) + rate // 50 :].astype(np.int32)).max() > 100


def test_no_loss_file_equals_plain_decoding(build):
    rate = 48000
    o, packets, ranges = _stream(build, rate)
    ref = run_opus_demo(upstream.get_build(build).build_dir, packets, None, rate, final_ranges=ranges)
    ours, actions = decode_like_opus_demo(o, packets, [], rate)
    assert all(isinstance(a, rx.Normal) for a in actions)
    assert np.array_equal(ours, ref)


def test_dred_parse_return_matches_libopus(build):
    """dred_parse_return (what the opus_demo policies use) equals opus_dred_parse's return for every
    request size opus_demo can make."""
    rate = 16000
    o, packets, _ = _stream(build, rate)
    checked = 0
    for pkt in packets[::7]:
        with o.dred_parse(pkt, sampling_rate=rate) as full:
            if full.ret <= 0:
                continue
            nb, off = full.nb_latents, full.dred_offset
            assert full.ret == ar.dred_parse_return(nb, off, rate)
            assert full.dred_end == ar.dred_window(nb, off, rate)[0]
        for req in (0, 320, 640, 960, 3200, 9600, 16000, 48000):
            with o.dred_parse(pkt, max_dred_samples=req, sampling_rate=rate) as d:
                assert d.ret == ar.dred_parse_return(nb, off, rate, req), (req, nb, off)
                checked += 1
    assert checked > 50


def test_libopus_lossgen(build):
    """libopus' generative loss model (opus_demo -sim_loss) through the oracle: rate near the target,
    burstier than Bernoulli, deterministic by seed."""
    from opus_dred.experiments import _loss as loss

    o = Oracle.for_build(build)
    gen = loss.LibopusLossGen(o)
    for pct in (10, 30):
        x = gen.generate(20000, pct, seed=1)
        assert abs(x.mean() - pct / 100) < 0.5 * pct / 100
        assert loss.burst_lengths(x).mean() > 1.0 / (1 - pct / 100)
    assert np.array_equal(gen.generate(500, 20, seed=3), gen.generate(500, 20, seed=3))
    p = gen.probabilities([0] * 50 + [1] * 5, 20)
    assert p.shape == (55,) and np.all((p >= 0) & (p <= 1))
    assert p[50:].mean() > 2 * p[:50].mean()  # a loss makes the next one likelier


@pytest.mark.parametrize("pct", [20, 40])
def test_sim_loss_flags_equal_opus_demo(build, pct):
    """``opus_demo -sim_loss`` (opus_demo.c and lossgen.c compiled with ENABLE_LOSSGEN against the
    build's libopus.a, as ``--enable-lossgen`` would) decodes exactly what our receiver decodes with
    the flags of LibopusLossGen(draws="libc") and opus_demo's (absent) seed; another seed differs."""
    from opus_dred.libopus._oracle import build_lossgen_opus_demo
    from opus_dred.experiments import _loss as loss

    rate = 16000
    o, packets, ranges = _stream(build, rate)
    exe = build_lossgen_opus_demo(upstream.get_build(build))
    ref = run_opus_demo(upstream.get_build(build).build_dir, packets, None, rate, final_ranges=ranges,
                        extra=["-sim_loss", str(pct)], opus_demo=exe)
    gen = loss.LibopusLossGen(o)
    flags = gen.generate(len(packets), pct, seed=0, draws="libc")
    assert flags.sum() >= 5
    ours, _ = decode_like_opus_demo(o, packets, flags, rate)
    assert len(ours) == len(ref) and np.array_equal(ours, ref)
    other = gen.generate(len(packets), pct, seed=5, draws="libc")
    assert not np.array_equal(other, flags)
    theirs, _ = decode_like_opus_demo(o, packets, other, rate)
    assert len(theirs) != len(ref) or not np.array_equal(theirs, ref)


@pytest.mark.parametrize("rate", RATES)
def test_dred_plc_is_plc_after_clearing_the_queue(build, rate):
    """What libopus does for a DRED call beyond the packet's features (DredPlc): clear the DRED
    feature queue, then conceal by prediction. With the neural PLC on (decoder complexity 5),
    replacing every DredPlc of opus_demo's policy by a plain Plc gives the same PCM sample for sample
    (it does not continue any prediction from DRED features); replacing the Dred actions as well does
    not. At complexity 0 (opus_demo's default) the clearing shows: libopus never clears the queue
    outside a DRED call, so a plain Plc after an earlier DRED run still finds
    ``fec_fill_pos != 0`` and runs the neural PLC (silk/PLC.c ``run_deep_plc``), where DredPlc runs
    the classic one."""
    o, packets, _ = _stream(build, rate)
    lost = _lost(len(packets))
    for cx in (5, 0):
        ref, actions = decode_like_opus_demo(o, packets, lost, rate, complexity=cx)
        assert sum(isinstance(a, rx.DredPlc) for a in actions) >= 5

        def run_with(swap):
            with LibopusExecutor(o, rate, complexity=cx) as ex:
                for a in actions:
                    ex.execute(rx.Plc(a.frame, a.samples) if isinstance(a, swap) else a, packets)
                return ex.pcm()

        same = run_with(rx.DredPlc)
        assert len(same) == len(ref)
        if cx == 5:
            assert np.array_equal(same, ref)
            other = run_with((rx.DredPlc, rx.Dred))
            assert len(other) == len(ref) and not np.array_equal(other, ref)
        elif rate == 16000:  # SILK's deep-PLC switch is at 16 kHz (psDec->sPLC.fs_kHz == 16)
            assert not np.array_equal(same, ref)


def test_best_recovers_every_frame_opus_demo_recovers(build):
    """On the real stream, BEST decodes from DRED every frame opus_demo decodes from DRED (libopus'
    feature window, not the parse's coverage), and conceals the leading and trailing losses."""
    rate = 16000
    o, packets, _ = _stream(build, rate)
    lost = _lost(len(packets))
    _, demo = decode_like_opus_demo(o, packets, lost, rate)
    _, best = decode_like_opus_demo(o, packets, lost, rate, policy=rx.BEST)
    by = {a.frame: a for a in best}
    dred_demo = {a.frame for a in demo if isinstance(a, rx.Dred) and a.samples > 0}
    assert dred_demo and all(isinstance(by[f], rx.Dred) for f in dred_demo)
    assert not any(isinstance(a, rx.Drop) for a in best)
