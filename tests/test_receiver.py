"""Properties of the sans-IO receiver (opus_dred.refimpl._receiver): no audio, no libopus."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.bitstream import _arith as ar
from opus_dred.bitstream._errors import FormatError
from opus_dred.experiments import _loss as loss
from opus_dred.refimpl import _receiver as rx

ROOT = Path(__file__).resolve().parents[1]

RATE = 16000
F20 = RATE // 50
POLICIES = [rx.OPUS_DEMO_1_5_2, rx.OPUS_DEMO_1_6_1, rx.BEST]


# ------------------------------------------------------------------------------------------------
# strategies


@st.composite
def packets(draw, seq: int, samples: int | None = None):
    dur = samples if samples is not None else draw(st.sampled_from([F20 // 2, F20, 2 * F20, 3 * F20]))
    nb = draw(st.integers(0, ar.DRED_MAX_LATENTS))
    return rx.PacketArrived(
        seq, dur, draw(st.booleans()), nb, draw(st.integers(-8, 40)) if nb else 0
    )


@st.composite
def loss_patterns(draw):
    """Alternating runs of received and lost frames: losses of 1..60 at the start, the middle and
    the end."""
    flags: list[bool] = []
    lost = draw(st.booleans())
    for _ in range(draw(st.integers(1, 8))):
        flags += [lost] * draw(st.integers(1, 60))
        lost = not lost
    return flags


@st.composite
def streams(draw, reorder: bool = True):
    """(events, deliveries): the events in delivery order, with reordering, duplicates and omitted
    loss reports when ``reorder``."""
    flags = draw(loss_patterns())
    fixed = draw(st.sampled_from([None, F20]))
    events: list[rx.Event] = []
    for i, lost in enumerate(flags):
        if lost:
            if not reorder or draw(st.integers(0, 4)):
                events.append(rx.PacketLost(i))
        else:
            events.append(draw(packets(i, fixed)))
    if reorder and len(events) > 1:
        for _ in range(draw(st.integers(0, 6))):
            k = draw(st.integers(0, len(events) - 2))
            d = draw(st.integers(1, 3))
            j = min(len(events) - 1, k + d)
            events[k], events[j] = events[j], events[k]
        for _ in range(draw(st.integers(0, 3))):
            k = draw(st.integers(0, len(events) - 1))
            events.insert(draw(st.integers(k, len(events))), events[k])
    return events


def libopus_features_used(offset: int, samples: int, nb_latents: int, dred_offset: int, rate: int = RATE) -> int:
    """How many of the frame's 10 ms feature vectors libopus takes from the DRED, written directly
    from src/opus_decoder.c:opus_decode_native (float floor, C int division, the -2 lag; the
    init_frames vectors before a first loss are not the frame's)."""
    f10 = rate // 100
    if samples <= 0:  # opus_decoder_dred_decode returns OPUS_BAD_ARG before touching the queue
        return 0
    count = 0
    for i in range(max(1, samples // f10)):
        idx = -i - 2 + math.floor((float(offset) + int(dred_offset * f10 / 4)) / f10)
        if 0 <= idx <= 4 * nb_latents - 1:
            count += 1
    return count


# ------------------------------------------------------------------------------------------------
# the checker


def check(events: list[rx.Event], policy: rx.Policy, depth: int = 0) -> list[rx.Action]:
    r = rx.Receiver(policy, rate=RATE, depth=depth)
    arrived: dict[int, rx.PacketArrived] = {}
    decided_before_arrival: set[int] = set()
    decided: set[int] = set()
    actions: list[rx.Action] = []
    known_end = 0
    for ev in events + [rx.EndOfStream()]:
        if isinstance(ev, rx.PacketArrived):
            if ev.seq in decided and ev.seq not in arrived:
                decided_before_arrival.add(ev.seq)
            arrived.setdefault(ev.seq, ev)
        if isinstance(ev, (rx.PacketArrived, rx.PacketLost)):
            known_end = max(known_end, ev.seq + 1)
        out = r.send(ev)
        for a in out:
            # no action uses a packet before it arrives
            if isinstance(a, (rx.Normal, rx.Lbrr, rx.Dred, rx.DredPlc)):
                assert a.seq in arrived, a
            decided.add(a.frame)
        actions += out
        # the state says what is left: closed at the end, else a gap exactly while frames are missing
        missing = set(range(known_end)) - decided
        want = rx.State.CLOSED if isinstance(ev, rx.EndOfStream) else rx.State.GAP if missing else rx.State.DECODING
        assert r.state is want, (ev, r.state)
    assert r.state is rx.State.CLOSED

    # every frame is decided exactly once and in order
    assert [a.frame for a in actions] == list(range(known_end))
    for a in actions:
        if isinstance(a, rx.Normal):
            assert arrived[a.seq].samples == a.samples
        elif isinstance(a, rx.Lbrr):
            # LBRR only for the frame just before a packet that carries it
            assert a.frame == a.seq - 1 and arrived[a.seq].has_lbrr
            assert a.frame not in arrived or a.frame in decided_before_arrival
        elif isinstance(a, (rx.Dred, rx.DredPlc)):
            pkt = arrived[a.seq]
            assert a.seq > a.frame and pkt.dred_latents > 0
            if not policy.frame_request or isinstance(a, rx.DredPlc):
                # opus_demo makes the DRED call only when the parse returns > 0 samples; BEST makes
                # a DredPlc call only through such a packet (a Dred of BEST may draw features from
                # a packet whose parse returns 0: libopus' window reaches past the coverage)
                assert ar.dred_parse_return(pkt.dred_latents, pkt.dred_offset, RATE, a.max_dred_samples) > 0
            n = ar.dred_latents_read(pkt.dred_latents, RATE, a.max_dred_samples)
            used = libopus_features_used(a.offset_samples, a.samples, n, pkt.dred_offset)
            if isinstance(a, rx.Dred):
                # DRED only inside the window of the packet it comes from
                assert used >= 1, a
            else:
                # DredPlc only where that parse has no feature for the frame
                assert used == 0, a
            if policy.frame_request and isinstance(a, rx.Dred):
                # BEST: every feature the packet has for the frame, with the smallest request
                full = libopus_features_used(a.offset_samples, a.samples, pkt.dred_latents, pkt.dred_offset)
                assert used == full
                if a.max_dred_samples:
                    fewer = ar.dred_latents_read(pkt.dred_latents, RATE, a.max_dred_samples) - 1
                    assert libopus_features_used(a.offset_samples, a.samples, fewer, pkt.dred_offset) < full
        elif isinstance(a, rx.Drop):
            # only opus_demo drops; BEST drops only when no packet ever gave a duration
            assert not policy.conceal_trailing or not any(isinstance(b, rx.Normal) for b in actions)
    # a packet that arrived before its frame was decided is decoded normally (normal decoding
    # resumes at the arriving packet); trailing drops only after the last packet
    normal = {a.seq for a in actions if isinstance(a, rx.Normal)}
    assert normal == set(arrived) - decided_before_arrival
    drops = [a.frame for a in actions if isinstance(a, rx.Drop)]
    if drops:
        assert min(drops) > max(normal, default=-1)
    return actions


# ------------------------------------------------------------------------------------------------
# an independent model of opus_demo's decode loop (src/opus_demo.c), for in-order streams


def latents_for_request(max_dred_samples: int) -> int:
    """dnn/dred_decoder.c:dred_ec_decode's loop bound for opus_dred_parse's min_feature_frames."""
    mff = min(2 + 100 * max_dred_samples // RATE, 4 * ar.DRED_MAX_LATENTS)
    return len(range(0, min(2 * ar.DRED_MAX_LATENTS, (mff + 1) // 2), 2))


def opus_demo_model(events: list[rx.Event], cap: int) -> list[rx.Action]:
    out: list[rx.Action] = []
    lost_count = 0
    last = 0
    for ev in events:
        if isinstance(ev, rx.PacketLost):
            lost_count += 1
            continue
        dur = last
        ret = 0
        request = min(cap, max(0, lost_count * dur))
        if lost_count:
            ret = ar.dred_parse_return(ev.dred_latents, ev.dred_offset, RATE, request)
        for fr in range(lost_count):
            frame = ev.seq - lost_count + fr
            if fr == lost_count - 1 and ev.has_lbrr:
                out.append(rx.Lbrr(ev.seq, frame, dur))
            elif ret > 0:
                off = (lost_count - fr) * dur
                n = min(ev.dred_latents, latents_for_request(request))
                kind = rx.Dred if libopus_features_used(off, dur, n, ev.dred_offset) else rx.DredPlc
                out.append(kind(ev.seq, off, frame, dur, request))
            else:
                out.append(rx.Plc(frame, dur))
        out.append(rx.Normal(ev.seq, ev.samples))
        last = ev.samples
        lost_count = 0
    first = len(out)
    out += [rx.Drop(f) for f in range(first, first + lost_count)]
    return out


# ------------------------------------------------------------------------------------------------
# properties

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(streams(reorder=False), st.sampled_from(POLICIES))
def test_in_order_streams_valid(events, policy):
    check(events, policy)


@SETTINGS
@given(streams(reorder=True), st.sampled_from(POLICIES))
def test_reordered_and_duplicated_streams_valid(events, policy):
    check(events, policy)


@SETTINGS
@given(streams(reorder=True), st.integers(0, 5))
def test_jitter_depth_valid(events, depth):
    check(events, rx.BEST, depth)


@SETTINGS
@given(streams(reorder=False), st.sampled_from([(rx.OPUS_DEMO_1_5_2, 48000), (rx.OPUS_DEMO_1_6_1, RATE)]))
def test_opus_demo_policy_equals_model(events, pc):
    policy, cap = pc
    assert rx.run(events, policy, rate=RATE) == opus_demo_model(events, cap)


@SETTINGS
@given(streams(reorder=False))
def test_best_uses_lbrr_dred_at_least_as_often(events):
    """BEST never falls back to PLC where opus_demo recovered a frame from data that BEST accepts
    (LBRR, or DRED inside the window), and it only conceals frames opus_demo drops at the end."""
    demo = rx.run(events, rx.OPUS_DEMO_1_6_1, rate=RATE)
    best = rx.run(events, rx.BEST, rate=RATE)
    assert len(best) == len(demo)
    by_frame = {a.frame: a for a in best}
    for a in demo:
        b = by_frame[a.frame]
        if isinstance(a, (rx.Normal, rx.Lbrr)):
            assert type(b) is type(a) and b.seq == a.seq
        if isinstance(a, rx.Dred) and a.samples > 0:
            # a frame opus_demo recovers from DRED, BEST recovers from the same packet, with at
            # least as many of its feature vectors
            assert isinstance(b, rx.Dred) and b.seq == a.seq and b.offset_samples == a.offset_samples
            pkt = next(e for e in events if isinstance(e, rx.PacketArrived) and e.seq == a.seq)
            na = ar.dred_latents_read(pkt.dred_latents, RATE, a.max_dred_samples)
            nb = ar.dred_latents_read(pkt.dred_latents, RATE, b.max_dred_samples)
            assert (libopus_features_used(b.offset_samples, b.samples, nb, pkt.dred_offset)
                    >= libopus_features_used(a.offset_samples, a.samples, na, pkt.dred_offset))
        if isinstance(a, (rx.DredPlc, rx.Plc)):
            # where opus_demo conceals, BEST conceals too or finds features opus_demo did not parse
            assert isinstance(b, (rx.Dred, rx.DredPlc, rx.Plc))
        if isinstance(a, rx.Drop):
            assert isinstance(b, (rx.Plc, rx.Drop))


@SETTINGS
@given(streams(reorder=True), st.integers(1, 5))
def test_depth_never_worse(events, depth):
    """With 20 ms packets, waiting for more packets never trades a frame's normal decoding, LBRR or
    DRED for something weaker: the packets in hand at a later deadline are a superset."""
    events = [
        rx.PacketArrived(e.seq, F20, e.has_lbrr, e.dred_latents, e.dred_offset) if isinstance(e, rx.PacketArrived) else e
        for e in events
    ]
    rank = {rx.Normal: 3, rx.Lbrr: 2, rx.Dred: 1, rx.DredPlc: 0, rx.Plc: 0, rx.Drop: 0}
    a0 = {a.frame: a for a in rx.run(events, rx.BEST, rate=RATE, depth=0)}
    a1 = {a.frame: a for a in rx.run(events, rx.BEST, rate=RATE, depth=depth)}
    assert a0.keys() == a1.keys()
    for f in a0:
        assert rank[type(a1[f])] >= rank[type(a0[f])], (a0[f], a1[f])


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("run", [1, 2, 3, 25, 26, 51, 52, 60])
@pytest.mark.parametrize("where", ["start", "middle", "end", "all"])
def test_loss_runs_at_every_position(policy, run, where):
    n = 70
    lost = {
        "start": set(range(run)),
        "middle": set(range(5, 5 + run)),
        "end": set(range(n - run, n)),
        "all": set(range(n)),
    }[where]
    events: list[rx.Event] = [
        rx.PacketLost(i) if i in lost else rx.PacketArrived(i, F20, i % 2 == 0, 26, 4) for i in range(n)
    ]
    acts = check(events, policy)
    if where == "middle":
        # the gap ends at packet 5 + run: LBRR for the newest if the packet has it, then DRED
        p = 5 + run
        gap = acts[5:p]
        if p % 2 == 0:
            assert isinstance(gap[-1], rx.Lbrr) and gap[-1].seq == p
        assert all(isinstance(a, (rx.Lbrr, rx.Dred, rx.DredPlc, rx.Plc)) for a in gap)
        assert isinstance(acts[p], rx.Normal)
        pkt = events[p]
        for a in gap:
            if isinstance(a, (rx.Dred, rx.DredPlc)):
                # Dred exactly where libopus has features for the frame in the parsed latents
                n = ar.dred_latents_read(26, RATE, a.max_dred_samples)
                assert isinstance(a, rx.Dred) == bool(libopus_features_used(a.offset_samples, F20, n, 4))
        if policy.frame_request:
            # every frame the packet's DRED has features for is DRED; the older ones DredPlc
            for a in gap:
                if not isinstance(a, rx.Lbrr):
                    has = libopus_features_used((p - a.frame) * F20, F20, pkt.dred_latents, pkt.dred_offset) > 0
                    assert isinstance(a, rx.Dred if has else rx.DredPlc), a
            _, cov = ar.dred_window(26, 4, RATE)
            # libopus' window reaches one 10 ms vector past the parse's coverage
            assert any(isinstance(a, rx.Dred) and a.offset_samples > cov for a in gap) == (run * F20 > cov)
        else:
            assert all(isinstance(a, (rx.Dred, rx.DredPlc)) for a in gap[: run - 1])
    if where == "all":
        assert all(isinstance(a, rx.Drop) for a in acts)
    if where == "end":
        kinds = {type(a) for a in acts[n - run :]}
        assert kinds == ({rx.Plc} if policy.conceal_trailing else {rx.Drop})


def test_alternating_losses():
    events = [rx.PacketLost(i) if i % 2 else rx.PacketArrived(i, F20, True, 3, 0) for i in range(40)]
    for policy in POLICIES:
        acts = check(events, policy)
        assert all(isinstance(a, rx.Lbrr) for a in acts[1:-1:2])


def test_protocol_errors():
    r = rx.Receiver(rx.BEST, rate=RATE)
    with pytest.raises(rx.ReceiverError):
        r.send(rx.PacketLost(-1))
    with pytest.raises(rx.ReceiverError):
        r.send(rx.PacketArrived(0, 100))  # not a multiple of 2.5 ms
    with pytest.raises(rx.ReceiverError):
        r.send(rx.PacketArrived(0, F20, dred_latents=27))
    with pytest.raises(rx.ReceiverError):
        r.send("packet")  # type: ignore[arg-type]
    r.send(rx.EndOfStream())
    with pytest.raises(rx.ReceiverError) as ei:
        r.send(rx.PacketArrived(0, F20))
    assert isinstance(ei.value.event, rx.PacketArrived)
    with pytest.raises(ValueError):
        rx.Receiver(rx.OPUS_DEMO_1_6_1, rate=RATE, depth=2)
    with pytest.raises(ValueError):
        rx.Receiver("nope")


def test_dred_parse_return_arithmetic():
    # 1 latent = 40 ms; dred_offset in 2.5 ms units, C division toward zero
    assert ar.dred_parse_return(1, 0, RATE) == 640
    assert ar.dred_parse_return(1, 16, RATE) == 0
    assert ar.dred_parse_return(2, -3, 48000) == 2 * 1920 + 360
    assert ar.dred_parse_return(0, 0, RATE) == 0
    # a request of 0 still reads one latent (min_feature_frames = 2)
    assert ar.dred_parse_return(26, 4, RATE, 0) == 640 - 160
    assert ar.dred_parse_return(26, 4, RATE, 10**6) == ar.dred_parse_return(26, 4, RATE)
    assert ar.dred_window(5, -4, RATE) == (160, 5 * 640 + 160)


def test_transition_table_reads_like_the_protocol():
    """Every live state answers every event; CLOSED answers none; every entry has its reason."""
    events = {rx.PacketArrived, rx.PacketLost, rx.EndOfStream}
    assert set(rx.TRANSITIONS) == set(rx.State)
    assert rx.TRANSITIONS[rx.State.CLOSED] == {}
    for state, row in rx.TRANSITIONS.items():
        if state is not rx.State.CLOSED:
            assert set(row) == events
        for event, targets in row.items():
            assert targets and set(targets) <= set(rx.After)
            assert all(isinstance(t, rx.State) and why for t, why in targets.values())
            # EndOfStream closes; nothing else does
            closes = {t is rx.State.CLOSED for t, _ in targets.values()}
            assert closes == {event is rx.EndOfStream}
            # the state says whether frames are missing
            for after, (t, _) in targets.items():
                assert (t is rx.State.GAP) == (after is rx.After.FRAMES_MISSING)


class _Spy(rx.Receiver):
    """A receiver that records the table entry of every step."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.steps: list[tuple[rx.State, type, rx.After, rx.State]] = []

    def send(self, event):
        before = self.state
        out = super().send(event)
        self.steps.append((before, type(event), self._after(), self.state))
        return out


@SETTINGS
@given(streams(reorder=True), st.sampled_from(POLICIES))
def test_the_table_drives_every_step(events, policy):
    """Each step's next state is the table's entry for (state, event type, what it leaves behind)."""
    r = _Spy(policy, rate=RATE)
    for e in events + [rx.EndOfStream()]:
        r.send(e)
    for before, event, after, state in r.steps:
        assert rx.TRANSITIONS[before][event][after][0] is state


def test_an_event_without_a_table_entry_is_refused_and_changes_nothing():
    r = rx.Receiver(rx.BEST, rate=RATE)
    r.send(rx.PacketArrived(0, F20))
    r.send(rx.EndOfStream())
    for ev in (rx.PacketArrived(1, F20), rx.PacketLost(1), rx.EndOfStream()):
        with pytest.raises(rx.ReceiverError, match="after EndOfStream") as ei:
            r.send(ev)
        assert ei.value.event is ev and r.state is rx.State.CLOSED and r.next_frame == 1
    with pytest.raises(rx.ReceiverError, match="not a receiver event"):
        rx.Receiver(rx.BEST, rate=RATE).send(rx.Normal(0, F20))  # type: ignore[arg-type]
    # an event refused for its fields leaves the state as it was
    r = rx.Receiver(rx.OPUS_DEMO_1_6_1, rate=RATE)
    r.send(rx.PacketLost(0))
    with pytest.raises(rx.ReceiverError):
        r.send(rx.PacketArrived(1, 100))
    assert r.state is rx.State.GAP and r.next_frame == 0


def _transitions_markdown() -> str:
    lines = ["| state | event | after it | next state | why |", "|---|---|---|---|---|"]
    for state, row in rx.TRANSITIONS.items():
        for event, targets in row.items():
            for after, (target, why) in targets.items():
                lines.append(f"| `{state.name}` | `{event.__name__}` | {after.value} | `{target.name}` | {why} |")
    return "\n".join(lines) + "\n"


def test_docs_show_the_transition_table():
    """docs/receiver.md holds the table as the receiver has it (rendered here, row for row)."""
    assert _transitions_markdown() in (ROOT / "docs" / "receiver.md").read_text()


def test_docs_show_the_policy_fields():
    """docs/receiver.md's policy table gives each field's value in each policy as the code has it."""
    def shown(v):
        return f"`{v.name}`" if isinstance(v, rx.DredFrom) else f"`DredCap.{v.name}`" if isinstance(v, rx.DredCap) \
            else f"`{v}`"

    rows = {}
    for line in (ROOT / "docs" / "receiver.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and "`:" in cells[0]:
            rows[cells[0][1:cells[0].index("`:")]] = cells[1:]
    fields = [f for f in rx.Policy.__dataclass_fields__ if f not in ("name", "description")]
    assert sorted(rows) == sorted(fields)
    for f in fields:
        assert rows[f] == [shown(getattr(p, f)) for p in POLICIES], f


def test_policies_are_typed():
    assert rx.OPUS_DEMO_1_5_2.dred_cap == 48000 and rx.OPUS_DEMO_1_5_2.cap(RATE) == 48000
    assert rx.OPUS_DEMO_1_6_1.dred_cap is rx.DredCap.RATE and rx.OPUS_DEMO_1_6_1.cap(RATE) == RATE
    assert rx.BEST.dred_cap is None and rx.BEST.cap(RATE) is None
    assert {p.dred_from for p in POLICIES} == set(rx.DredFrom)
    assert rx.POLICIES == {p.name: p for p in POLICIES}
    assert rx.policy_named("best") is rx.BEST and rx.policy_named(rx.BEST) is rx.BEST
    assert rx.run([rx.PacketArrived(0, F20)], "opus_demo-1.6.1", rate=RATE) == \
        rx.run([rx.PacketArrived(0, F20)], rx.OPUS_DEMO_1_6_1, rate=RATE)
    fields = dict(dred_from=rx.DredFrom.NEXT, frame_request=False, conceal_trailing=False,
                  leading_from_packet=False, allow_depth=False)
    for bad in ("48000", -1, 4.8e4, True):
        with pytest.raises(ValueError):
            rx.Policy("x", dred_cap=bad, **fields)
    with pytest.raises(ValueError):
        rx.Policy("x", dred_cap=None, **{**fields, "dred_from": "next"})
    with pytest.raises(ValueError):  # the opus_demo procedure has no per-frame request
        rx.Policy("x", dred_cap=None, **{**fields, "frame_request": True})
    with pytest.raises(ValueError):  # nor a jitter buffer
        rx.Policy("x", dred_cap=None, **{**fields, "allow_depth": True})


# ------------------------------------------------------------------------------------------------
# loss models (opus_dred.experiments._loss)


N = 200_000


@pytest.mark.parametrize("p", [0.0, 0.05, 0.3, 1.0])
def test_bernoulli_rate_and_bursts(p):
    x = loss.bernoulli(N, p, seed=1)
    assert x.dtype == np.uint8 and set(np.unique(x)) <= {0, 1}
    assert abs(x.mean() - p) < 0.01
    b = loss.burst_lengths(x)
    if 0 < p < 1:
        assert abs(b.mean() - 1 / (1 - p)) < 0.05 * (1 / (1 - p))  # geometric bursts


@pytest.mark.parametrize("name,rate", [("bursty-10", 0.10), ("bursty-20", 0.20), ("bursty-30", 0.30)])
def test_gilbert_elliott_presets(name, rate):
    m = loss.GE_PRESETS[name]
    assert m.loss_rate == pytest.approx(rate)
    x = m.generate(N, seed=7)
    assert abs(x.mean() - rate) < 0.02
    b = loss.burst_lengths(x)
    assert abs(b.mean() - 3.0) < 0.2  # mean burst 1/r
    # burstier than Bernoulli at the same rate
    assert b.mean() > 1.5 * loss.burst_lengths(loss.bernoulli(N, rate, seed=7)).mean()


def test_gilbert_elliott_four_parameters():
    m = loss.GilbertElliott(p=0.02, r=0.25, loss_good=0.01, loss_bad=0.6)
    x = m.generate(N, seed=3)
    assert abs(x.mean() - m.loss_rate) < 0.01
    with pytest.raises(ValueError):
        loss.GilbertElliott(p=1.5, r=0.1)
    with pytest.raises(ValueError):
        loss.GilbertElliott(p=0.0, r=0.0)


def test_loss_models_deterministic_by_seed():
    m = loss.GE_PRESETS["bursty-20"]
    assert np.array_equal(m.generate(5000, seed=11), m.generate(5000, seed=11))
    assert not np.array_equal(m.generate(5000, seed=11), m.generate(5000, seed=12))
    assert np.array_equal(loss.bernoulli(5000, 0.2, 5), loss.bernoulli(5000, 0.2, np.random.default_rng(5)))
    assert not np.array_equal(loss.bernoulli(5000, 0.2, 5), loss.bernoulli(5000, 0.2, 6))


@given(st.lists(st.integers(0, 1), max_size=300))
@settings(max_examples=50, deadline=None)
def test_trace_roundtrip(flags):
    text = loss.format_trace(flags)
    assert loss.parse_trace(text).tolist() == flags
    assert int(loss.burst_lengths(flags).sum()) == sum(flags)


def test_trace_files(tmp_path):
    flags = loss.GE_PRESETS["bursty-30"].generate(1000, seed=2)
    loss.write_trace(tmp_path / "t.txt", flags)
    assert np.array_equal(loss.read_trace(tmp_path / "t.txt"), flags)
    with pytest.raises(FormatError) as ei:
        loss.parse_trace("0\n1\n2\n")
    assert ei.value.byte_offset == 4
    with pytest.raises(ValueError):
        loss.format_trace([0, 3])


def test_loss_trace_drives_the_receiver():
    flags = loss.GE_PRESETS["bursty-30"].generate(500, seed=4)
    events = [rx.PacketLost(i) if f else rx.PacketArrived(i, F20, True, 26, 4) for i, f in enumerate(flags)]
    acts = check(events, rx.BEST)
    assert sum(isinstance(a, rx.Normal) for a in acts) == int((flags == 0).sum())
