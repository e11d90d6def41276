"""The loss experiment (``opus-dred simulate``) on a short piece of real speech, libopus 1.6.1.

Properties: without loss every configuration decodes exactly as ``opus_demo -d`` decodes the stream
(shifted by the encoder lookahead, which the cross-correlation with the input confirms); one loss
pattern reaches every configuration; LBRR and DRED actions occur exactly in the configurations that
carry them; PESQ/STOI of the input against itself are the maxima; nested loss patterns (more loss
on top of the same losses) lower the score; the bitrate matching reaches the total; the loss
specification parser; the command writes its table, WAVs and plots. The jitter model is seeded,
reorders packets at the rate its distribution predicts, and never lets the receiver use a packet
before it arrives; a deeper jitter buffer leaves fewer packets late.
"""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from opus_dred.bitstream import _arith as ar
from opus_dred.bitstream._errors import FormatError
from opus_dred.experiments import _simulate as S
from opus_dred.speech import _corpus as speech
from opus_dred.libopus import _upstream as upstream
from opus_dred.libopus._oracle import Oracle
from opus_dred.libopus._receiver import run_opus_demo
from opus_dred.experiments import _loss as lossmod
from opus_dred.refimpl import _receiver as rx

BUILD = "libopus-1.6.1"
RATE = 16000
BITRATE = 48000  # enough for DRED next to LBRR at 20 % (libopus writes none at 24 kb/s with LBRR on)


@pytest.fixture(scope="module")
def oracle():
    return Oracle.for_build(BUILD)


@pytest.fixture(scope="module")
def clip():
    return speech.load_clip(None, RATE)[: 3 * RATE]


@pytest.fixture(scope="module")
def streams(oracle, clip):
    return {name: S.encode_config(oracle, clip, RATE, cfg, BITRATE, 20) for name, cfg in S.CONFIGS.items()}


def _policy(oracle):
    return S.resolve_policy(oracle, "opus_demo")


def test_configurations_carry_what_they_claim(streams):
    assert streams["plc"].lbrr_fraction == 0 and streams["plc"].dred_fraction == 0
    assert streams["lbrr"].lbrr_fraction > 0.5 and streams["lbrr"].dred_fraction == 0
    assert streams["dred"].lbrr_fraction == 0 and streams["dred"].dred_fraction > 0.9
    assert streams["lbrr+dred"].lbrr_fraction > 0.5 and streams["lbrr+dred"].dred_fraction > 0.9
    assert streams["dred"].dred_ms > 40


@pytest.mark.parametrize("name", list(S.CONFIGS))
def test_no_loss_equals_opus_demo(oracle, clip, streams, name):
    packets = streams[name].packets
    d = S.decode_with_loss(oracle, packets, np.zeros(len(packets), np.uint8), RATE, len(clip),
                           policy=_policy(oracle), complexity=5)
    assert set(d.counts) == {"Normal"} and d.counts["Normal"] == len(packets)
    ref = run_opus_demo(upstream.get_build(BUILD).build_dir, packets, None, RATE, complexity=5)
    la = S.lookahead(RATE)
    assert np.array_equal(d.pcm, ref[la : la + len(clip)])


def test_lookahead_aligns_with_input(oracle, clip, streams):
    packets = streams["plc"].packets
    d = S.decode_with_loss(oracle, packets, np.zeros(len(packets), np.uint8), RATE, len(clip),
                           policy=_policy(oracle), complexity=5)
    x, y = clip.astype(np.float64), d.pcm.astype(np.float64)
    lags = range(-60, 61)
    c = [float(np.dot(x[100 + k : len(x) - 100 + k], y[100 : len(y) - 100])) for k in lags]
    # SILK's real delay is about half a sample (16 kHz) under the nominal lookahead; PESQ aligns
    # itself, STOI's 25 ms frames do not notice
    assert abs(list(lags)[int(np.argmax(c))]) <= 1


def _check_dred_calls(d) -> None:
    """Every DRED call of ``d`` against the packet's DRED header (as the receiver got it): a ``Dred``
    frame lies inside the window of its packet (at least one feature vector from the parse it asks
    for); a ``DredPlc`` frame lies beyond it (the gap is longer than the DRED: its start is past
    the packet's full coverage and the packet has no feature for it)."""
    pk = {e.seq: e for e in d.events if isinstance(e, rx.PacketArrived)}
    for a in d.actions:
        if isinstance(a, (rx.Dred, rx.DredPlc)):
            e = pk[a.seq]
            n = ar.dred_latents_read(e.dred_latents, RATE, a.max_dred_samples)
            used, _ = ar.dred_feature_frames(a.offset_samples, a.samples, n, e.dred_offset, RATE)
            full, _ = ar.dred_feature_frames(a.offset_samples, a.samples, e.dred_latents, e.dred_offset, RATE)
            if isinstance(a, rx.Dred):
                assert used >= 1, a
            else:
                assert used == 0 and full == 0 and a.offset_samples > e.dred_window(RATE)[1], a


def test_same_pattern_and_expected_actions(oracle, clip, streams):
    n = len(streams["plc"].packets)
    flags = lossmod.GE_PRESETS["bursty-20"].generate(n, 3)
    flags[0] = 0  # opus_demo writes nothing for a loss before the first packet
    flags[-1] = 0
    flags[80:120] = 1  # one gap of 800 ms, longer than any packet's DRED here
    assert 0.1 < flags.mean() < 0.45
    lost = set(np.flatnonzero(flags).tolist())
    kinds = {}
    for name, enc in streams.items():
        d = S.decode_with_loss(oracle, enc.packets, flags, RATE, len(clip), policy=_policy(oracle), complexity=5)
        assert len(d.pcm) == len(clip)
        non_normal = {a.frame for a in d.actions if type(a).__name__ != "Normal"}
        assert non_normal == lost
        _check_dred_calls(d)
        kinds[name] = d.counts
    assert set(kinds["plc"]) == {"Normal", "Plc"}
    assert set(kinds["lbrr"]) == {"Normal", "Lbrr", "Plc"}
    # DredPlc only for the frames older than the DRED of the packet that ends the long gap
    assert set(kinds["dred"]) == {"Normal", "Dred", "DredPlc"}
    assert 0 < kinds["dred"]["DredPlc"] < 40 - 1
    assert {"Normal", "Lbrr", "Dred"} <= set(kinds["lbrr+dred"]) <= {"Normal", "Lbrr", "Dred", "DredPlc", "Plc"}
    # the newest frame of every run is LBRR in both LBRR configurations (the packets carry it here)
    assert kinds["lbrr"]["Lbrr"] == kinds["lbrr+dred"]["Lbrr"] > 0


# ------------------------------------------------------------------------------------------------
# network jitter


def _synthetic_events(n: int, lost=()) -> list:
    return [rx.PacketLost(i) if i in lost else rx.PacketArrived(i, 320) for i in range(n)] + [rx.EndOfStream()]


def test_jitter_is_seeded_and_has_its_mean():
    j = S.Jitter(20.0)
    a, b, c = j.arrival_ms(4000, 3), j.arrival_ms(4000, 3), j.arrival_ms(4000, 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    delay = a - np.arange(4000) * 20.0 - j.base_ms
    assert delay.min() >= 0
    assert 18.0 < delay.mean() < 22.0  # exponential, mean 20: the mean of 4000 draws has sd 0.32
    assert 0.55 < np.mean(delay < 20.0) < 0.71  # P(X < mean) = 1 - 1/e = 0.632
    # the draws do not depend on the loss pattern: the same seed gives the same delay to every packet
    assert np.array_equal(S.Jitter(20.0).arrival_ms(100, 3), a[:100])
    assert np.array_equal(S.Jitter(0.0).arrival_ms(50, 3), np.arange(50) * 20.0 + j.base_ms)
    with pytest.raises(S.SimulateError):
        S.Jitter(-1.0)
    with pytest.raises(S.SimulateError):
        S.Jitter(float("nan"))


def test_jitter_reorders_as_predicted():
    n = 4000
    ev = _synthetic_events(n)
    assert S.jitter_events(ev, S.Jitter(0.0).arrival_ms(n, 1)) == ev  # no jitter: in order
    assert S.reordered_packets(ev) == 0
    t = S.Jitter(20.0).arrival_ms(n, 1)
    out = S.jitter_events(ev, t)
    assert sorted(out[:-1], key=lambda e: e.seq) == ev[:-1] and isinstance(out[-1], rx.EndOfStream)
    assert all(t[x.seq] <= t[y.seq] for x, y in zip(out[:-2], out[1:-1]))  # arrival order
    order = [e.seq for e in out[:-1]]
    pos = {s: i for i, s in enumerate(order)}
    swapped = np.mean([pos[k + 1] < pos[k] for k in range(n - 1)])
    assert 0.15 < swapped < 0.22  # two neighbours swap with probability exp(-20/20) / 2 = 0.184
    assert S.reordered_packets(out) > 0.15 * n
    # a lost packet's report sits where the packet would have arrived
    lost_out = S.jitter_events(_synthetic_events(n, lost={5, 6}), t)
    assert [e.seq for e in lost_out[:-1]] == order


def test_edge_losses():
    assert S.edge_losses([1, 1, 0, 1, 0, 1, 1, 1]) == (2, 3)
    assert S.edge_losses([0, 1, 0]) == (0, 0)
    assert S.edge_losses([1, 1]) == (2, 0)


def test_jitter_decode_never_uses_a_packet_before_it_arrives(oracle, clip, streams):
    """libopus decoding of a jittered stream: each action comes after the arrival of the packet it
    reads; the late packets (after their frame's deadline) are not decoded; a deeper buffer leaves
    fewer packets late; zero jitter is the in-order decode."""
    enc = streams["lbrr+dred"]
    n = len(enc.packets)
    flags = lossmod.GE_PRESETS["bursty-20"].generate(n, 5)
    kept = {i for i in range(n) if not flags[i]}
    plain = S.decode_with_loss(oracle, enc.packets, flags, RATE, len(clip), policy=rx.BEST, complexity=5)
    zero = S.decode_with_loss(oracle, enc.packets, flags, RATE, len(clip), policy=rx.BEST, complexity=5,
                              jitter=S.Jitter(0.0), seed=5)
    assert zero.events == plain.events and np.array_equal(zero.pcm, plain.pcm) and zero.late == []
    late = {}
    for policy, depth in ((_policy(oracle), 0), (rx.BEST, 0), (rx.BEST, 2)):
        d = S.decode_with_loss(oracle, enc.packets, flags, RATE, len(clip), policy=policy, complexity=5,
                               depth=depth, jitter=S.Jitter(20.0), seed=5)
        assert d.reordered > 0
        arrival = {e.seq: i for i, e in enumerate(d.events) if isinstance(e, rx.PacketArrived)}
        assert len(d.after) == len(d.actions) == n
        for a, i in zip(d.actions, d.after):
            if not isinstance(a, (rx.Plc, rx.Drop)):
                assert arrival[a.seq] <= i, (a, arrival[a.seq], i)
        assert [a.frame for a in d.actions] == list(range(n))
        normal = {a.frame for a in d.actions if isinstance(a, rx.Normal)}
        assert normal == kept - set(d.late) and set(d.late) <= kept
        late[(policy.name, depth)] = set(d.late)
    assert late[("best", 2)] < late[("best", 0)] == late[(_policy(oracle).name, 0)]
    with pytest.raises(S.SimulateError):
        S.decode_with_loss(oracle, enc.packets, flags, RATE, len(clip), policy=_policy(oracle), depth=2)


def test_clean_against_itself_is_the_maximum(oracle, clip, streams):
    m = S.metrics(clip, clip, RATE)
    assert m["pesq"] > 4.6 and m["stoi"] == pytest.approx(1.0)
    packets = streams["plc"].packets
    d = S.decode_with_loss(oracle, packets, np.zeros(len(packets), np.uint8), RATE, len(clip),
                           policy=_policy(oracle), complexity=5)
    md = S.metrics(clip, d.pcm, RATE)
    assert md["pesq"] < m["pesq"] and md["stoi"] < m["stoi"]


def test_more_loss_scores_lower(oracle, clip, streams):
    """Nested patterns (every loss at 5 % is also lost at 30 %): the larger loss scores lower, by a
    margin well above PESQ's noise, in every configuration."""
    n = len(streams["plc"].packets)
    u = np.random.default_rng(7).random(n)
    lo, hi = (u < 0.05).astype(np.uint8), (u < 0.30).astype(np.uint8)
    lo[0] = hi[0] = 0
    assert np.all(hi >= lo) and hi.sum() > lo.sum() + 0.15 * n
    for name, enc in streams.items():
        p = []
        for f in (np.zeros(n, np.uint8), lo, hi):
            d = S.decode_with_loss(oracle, enc.packets, f, RATE, len(clip), policy=_policy(oracle), complexity=5)
            p.append(S.metrics(clip, d.pcm, RATE)["pesq"])
        assert p[0] > p[1] > p[2] + 0.2, (name, p)


def test_matched_bitrate(oracle, clip):
    for cfg in S.CONFIGS.values():
        m = S.encode_matched(oracle, clip, RATE, cfg, 32000, 20, rule="measured")
        t = S.encode_matched(oracle, clip, RATE, cfg, 32000, 20, rule="target")
        assert t.target_bitrate == 32000
        assert abs(m.mean_bitrate - 32000) <= max(0.02 * 32000, abs(t.mean_bitrate - 32000)), cfg.name


def test_simulate_applies_one_pattern(oracle, clip):
    r = S.simulate([("c", clip[: 2 * RATE])], loss=S.parse_loss("bernoulli:20"), rates=(10,), bitrate=BITRATE,
                   configs=("plc", "dred"), oracle=oracle, seed=1)
    assert [c.spec.label for c in r.conditions] == ["bernoulli:10", "bernoulli:20"]
    assert len(r.rows) == 4
    for cond in r.conditions:
        rows = [x for x in r.rows if x.loss == cond.spec.label]
        kept = int((cond.flags == 0).sum())
        assert all(x.counts["Normal"] == kept for x in rows)
        assert all(x.loss_percent == pytest.approx(100 * cond.flags.mean()) for x in rows)
    s = S.summarize(r.rows)
    assert len(s) == 4 and all(d["pesq_drop"] == pytest.approx(d["pesq_clean_noloss"] - d["pesq_clean"]) for d in s)
    assert {e["loss"] for e in S.claims(s)} == {"bernoulli:10", "bernoulli:20"}


def test_simulate_with_jitter_counts_late_and_edge_losses(oracle, clip):
    x = clip[: 2 * RATE]
    with pytest.raises(S.SimulateError):  # opus_demo has no jitter buffer
        S.simulate([("c", x)], loss=S.parse_loss("bernoulli:20"), policy="opus_demo", depth=2, oracle=oracle)
    r = S.simulate([("c", x)], loss=S.parse_loss("ge:bursty-30"), bitrate=BITRATE, configs=("dred",),
                   oracle=oracle, seed=2, policy="best", depth=1, jitter_ms=20.0)
    (row,) = r.rows
    flags = r.conditions[0].flags
    assert (row.leading_lost, row.trailing_lost) == S.edge_losses(flags)
    assert row.reordered > 0 and row.late > 0
    assert row.counts["Normal"] == int((flags == 0).sum()) - row.late
    assert sum(row.counts.values()) == len(flags) and "Drop" not in row.counts  # BEST conceals the ends
    j = r.to_json()
    assert j["jitter_ms"] == 20.0 and j["depth"] == 1 and j["policy"] == "best"
    assert j["summary"][0]["late"] == row.late and j["rows"][0]["reordered"] == row.reordered


def test_parse_loss(tmp_path):
    assert S.parse_loss("bernoulli:20").percent == 20
    g = S.parse_loss("ge:bursty-20")
    assert g.ge == lossmod.GE_PRESETS["bursty-20"] and g.label == "ge:bursty-20"
    assert S.parse_loss("ge:bursty-20").at_rate(30).ge == lossmod.GE_PRESETS["bursty-30"]
    c = S.parse_loss("ge:0.1,0.5,0.9,1")
    assert c.ge.loss_bad == pytest.approx(0.1) and c.ge.loss_good == 0
    c2 = S.parse_loss("ge:0.1,0.5,0,1").at_rate(25)
    assert c2.ge.loss_rate == pytest.approx(0.25) and c2.ge.r == 0.5
    assert S.parse_loss("lossgen:15").kind == "lossgen"
    t = tmp_path / "t.txt"
    t.write_text("0\n1\n1\n0\n")
    ts = S.parse_loss(f"trace:{t}")
    assert ts.percent == 50 and list(ts.generate(6)) == [0, 1, 1, 0, 0, 1]
    with pytest.raises(S.SimulateError):
        ts.at_rate(10)
    for bad in ("bernoulli", "bernoulli:abc", "bernoulli:120", "ge:1,2", "ge:bursty-90", "foo:1",
                f"trace:{tmp_path / 'missing'}"):
        with pytest.raises(S.SimulateError):
            S.parse_loss(bad)
    t.write_text("0\n0\n2\n")
    with pytest.raises(FormatError) as e:
        S.parse_loss(f"trace:{t}")
    assert e.value.byte_offset == 4


def test_cli_writes_table_wavs_and_plots(tmp_path, clip):
    import typer
    from typer.testing import CliRunner

    from opus_dred.cli import _simulate as simulate_cli

    app = typer.Typer()
    simulate_cli.register(app)

    @app.command("other")
    def _other() -> None:  # a second command keeps "simulate" a subcommand
        pass

    wav = tmp_path / "in.wav"
    S.write_wav(wav, clip[: int(1.5 * RATE)], RATE)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["simulate", str(wav), "--configs", "plc,lbrr", "--rates", "10,30",
                                   "--loss", "bernoulli:10", "--bitrate", "32000", "--out", str(out)])
    assert res.exit_code == 0, res.output
    j = json.loads((out / "results.json").read_text())
    assert len(j["rows"]) == 4 and j["build"] == BUILD and j["policy"] == "opus_demo-1.6.1"
    md = (out / "results.md").read_text()
    assert "| bernoulli:10" in md and "frames N/L/D/DP/P/drop" in md
    for d in j["summary"]:  # the frames cell counts every frame once, DredPlc included
        cell = simulate_cli.frames_cell(d["counts"])
        assert f"| {cell} |" in md and sum(map(int, cell.split("/"))) == sum(d["counts"].values())
    assert simulate_cli.frames_cell({"Normal": 5, "DredPlc": 2, "Drop": 1}) == "5/0/0/2/0/1"
    for f in ("signals.png", "quality.png"):
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with wave.open(str(out / "bernoulli_30-lbrr.wav")) as w:
        assert w.getframerate() == RATE and w.getnframes() == int(1.5 * RATE)
