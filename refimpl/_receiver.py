"""The DRED receiver: a sans-IO state machine that decides how each frame is decoded.

A receiver of Opus with DRED must choose, frame by frame, between normal decoding, LBRR (the
one-frame in-band FEC of SILK), DRED (Deep REDundancy, draft-ietf-mlcodec-opus-dred) and
packet-loss concealment (PLC). This module makes that choice and nothing else, in the spirit of
python-hyper/h11: *events* go in (:class:`PacketArrived`, :class:`PacketLost`,
:class:`EndOfStream`), *actions* come out (:class:`Normal`, :class:`Lbrr`, :class:`Dred`,
:class:`DredPlc`, :class:`Plc`, :class:`Drop`), and no audio, codec or I/O is involved. The caller executes the actions with a
decoder: ``opus_dred.libopus._receiver`` drives libopus' decoder, and our own decoder can
do the same later.

What the receiver needs to know of a packet comes in the event: its duration in samples, whether it
carries LBRR (``opus_packet_has_lbrr``) and its DRED header as read by a full parse (the number of
latents and the ``dred_offset`` in 2.5 ms units, as ``opus_dred_parse`` leaves them in
``OpusDRED``). From those two numbers ``opus_dred.bitstream._arith.dred_parse_return`` computes,
exactly as ``src/opus_decoder.c:opus_dred_parse`` does, the coverage in samples that any smaller
parse request would report, which is what the opus_demo policies need.

All durations, offsets and coverages are in samples at the caller's decoding rate.

The protocol is data: :data:`TRANSITIONS` maps each :class:`State` and event type to the next state,
by whether the event leaves frames missing (:class:`After`). :meth:`Receiver.send` looks the
transition up before it acts; an event the table has no entry for raises :class:`ReceiverError`.

Policies (see ``docs/receiver.md`` for the reasons):

* :data:`OPUS_DEMO_1_5_2` and :data:`OPUS_DEMO_1_6_1` reproduce the decode loop of libopus'
  ``src/opus_demo.c`` of each release: lost frames wait for the next packet that arrives; its DRED
  is parsed with ``max_dred_samples = min(cap, lost * last_duration)`` (cap 48000 in 1.5.2 whatever
  the rate, the sampling rate in 1.6.1); the newest lost frame is decoded from that packet's LBRR if
  it has some, the others through its DRED if the parse returned more than 0 samples, otherwise by
  PLC; losses before the first packet are "concealed" with the decoder's last packet duration, which
  is 0; losses at the end of the stream are never concealed (:class:`Drop`). A DRED call for a frame
  the parsed DRED has no feature for is the action :class:`DredPlc` (libopus conceals it exactly as
  PLC), so a :class:`Dred` action always takes features from its packet.
* :data:`BEST` uses every packet in hand: LBRR from the packet right after the lost frame, else DRED
  from the arrived packet with the most feature vectors for the frame (libopus' own indexing,
  ``_arith.dred_feature_frames``, which reaches up to 10 ms past the parse's coverage), parsed with the
  smallest request that gives them, else :class:`DredPlc` through a packet with DRED, else PLC; with
  a jitter-buffer depth it waits for up to ``depth`` further packets before deciding; it conceals
  losses at the start (with the first packet's duration) and at the end of the stream.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable, Union

from opus_dred.bitstream._arith import (
    DRED_MAX_LATENTS,
    dred_feature_frames,
    dred_latents_read,
    dred_parse_return,
    dred_window,
    frame_request,
)
from opus_dred.errors import OpusDredError


class ReceiverError(OpusDredError):
    """An event the protocol does not allow: one :data:`TRANSITIONS` has no entry for (anything after
    EndOfStream, an object that is no event), or one whose fields are out of range (a negative sequence
    number, a duration that is not a multiple of 2.5 ms, more than 26 latents). Carries the offending
    event."""

    def __init__(self, message: str, event: object = None):
        super().__init__(message)
        self.event = event


# ------------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class PacketArrived:
    """Packet ``seq`` arrived. ``samples``: its duration; ``has_lbrr``: ``opus_packet_has_lbrr`` is
    non-zero; ``dred_latents`` / ``dred_offset``: ``nb_latents`` and ``dred_offset`` of a full
    ``opus_dred_parse`` (0 / 0 for no DRED)."""

    seq: int
    samples: int
    has_lbrr: bool = False
    dred_latents: int = 0
    dred_offset: int = 0

    def dred_window(self, rate: int) -> tuple[int, int]:
        return dred_window(self.dred_latents, self.dred_offset, rate)


@dataclass(frozen=True)
class PacketLost:
    """Packet ``seq`` is known to be lost (or was empty). It tells the receiver that frame ``seq``
    exists; it is concealed when its deadline comes (or dropped at the end, per policy)."""

    seq: int


@dataclass(frozen=True)
class EndOfStream:
    """No more events. Frames still undecided are decided now."""


Event = Union[PacketArrived, PacketLost, EndOfStream]


# ------------------------------------------------------------------------------------------------
# Actions: one per frame, in frame order


@dataclass(frozen=True)
class Normal:
    """Decode packet ``seq`` (frame ``seq``) normally: ``opus_decode(packet, ...)``."""

    seq: int
    samples: int

    @property
    def frame(self) -> int:
        return self.seq


@dataclass(frozen=True)
class Lbrr:
    """Recover frame ``frame`` (= ``seq - 1``) from the LBRR of packet ``seq``:
    ``opus_decode(packet, frame_size=samples, decode_fec=1)``."""

    seq: int
    frame: int
    samples: int


@dataclass(frozen=True)
class Dred:
    """Recover frame ``frame`` from the DRED of packet ``seq``: parse it with ``max_dred_samples``
    (``None``: the full request), then ``opus_decoder_dred_decode(dred, offset_samples, samples)``,
    where ``offset_samples`` is the frame's start, counted back from the start of packet ``seq``.

    Validity (every policy): at least one of the frame's feature vectors comes from the DRED that
    this parse reads (``dred_feature_frames(...)[0] >= 1``): DRED only inside the window of the
    packet it comes from."""

    seq: int
    offset_samples: int
    frame: int
    samples: int
    max_dred_samples: int | None = None


@dataclass(frozen=True)
class DredPlc:
    """Conceal frame ``frame`` through the DRED entry point although packet ``seq``'s DRED has no
    feature for it: the same libopus calls as :class:`Dred` (parse with ``max_dred_samples``, then
    ``opus_decoder_dred_decode(dred, offset_samples, samples)``).

    What libopus does (``src/opus_decoder.c:opus_decode_native``, ``dnn/lpcnet_plc.c``): it clears
    the DRED feature queue (``lpcnet_plc_fec_clear``) and queues only "skip" markers (index beyond
    ``4*nb_latents - 1``) or nothing (negative index); ``get_fec_or_pred`` then finds no queued
    feature and the neural PLC predicts every vector (``compute_plc_pred`` on zeros), exactly as
    ``opus_decode(NULL)`` does. The only difference from :class:`Plc` is that clearing: a plain PLC
    call would first consume features that an earlier DRED call left unread. On real streams
    (1.5.2 and 1.6.1, 16 and 48 kHz) it gave PCM identical to :class:`Plc` sample for sample
    (``docs/receiver.md``); it does *not* continue a prediction from the DRED features.
    opus_demo makes this call for every lost frame older than the DRED window of the packet that
    ends the gap.

    Validity: the packet has DRED and the parse returns more than 0 samples, and none of the
    frame's feature vectors comes from it (``dred_feature_frames(...)[0] == 0``)."""

    seq: int
    offset_samples: int
    frame: int
    samples: int
    max_dred_samples: int | None = None


@dataclass(frozen=True)
class Plc:
    """Conceal frame ``frame``: ``opus_decode(NULL, frame_size=samples)``."""

    frame: int
    samples: int


@dataclass(frozen=True)
class Drop:
    """Frame ``frame`` is not decoded at all (opus_demo never conceals losses at the end of a file)."""

    frame: int
    samples: int = 0


Action = Union[Normal, Lbrr, Dred, DredPlc, Plc, Drop]


# ------------------------------------------------------------------------------------------------
# States and the transition table


class State(enum.Enum):
    START = "START"  # no frame decided yet and none missing
    DECODING = "DECODING"  # every frame so far decided; nothing missing
    GAP = "GAP"  # at least one frame is missing and waits for its deadline
    CLOSED = "CLOSED"  # EndOfStream received; every frame decided


class After(enum.Enum):
    """What an event leaves behind, which picks the next state among those the table allows."""

    ALL_DECIDED = "nothing missing"  # every frame any event named so far is decided
    FRAMES_MISSING = "frames missing"  # some wait for their deadline


#: The protocol as data: ``TRANSITIONS[state][event type][after]`` is ``(next state, why)``. The receiver
#: looks every transition up here; a (state, event type) with no entry is a :class:`ReceiverError`.
TRANSITIONS: dict[State, dict[type, dict[After, tuple[State, str]]]] = {
    State.START: {
        PacketArrived: {
            After.ALL_DECIDED: (State.DECODING, "the first packet: it is decoded at once if it is frame 0, or once "
                                "the frames before it are concealed"),
            After.FRAMES_MISSING: (State.GAP, "frames before it are missing and their deadline has not come "
                                   "(jitter buffer)"),
        },
        PacketLost: {
            After.FRAMES_MISSING: (State.GAP, "the stream starts with a loss; it waits for the next packet"),
        },
        EndOfStream: {
            After.ALL_DECIDED: (State.CLOSED, "an empty stream, or losses only"),
        },
    },
    State.DECODING: {
        PacketArrived: {
            After.ALL_DECIDED: (State.DECODING, "the next packet in order (or a late or duplicate one, which is "
                                "ignored); or a packet after a gap whose deadline it reaches: LBRR / DRED / PLC "
                                "for the gap, then normal decoding"),
            After.FRAMES_MISSING: (State.GAP, "a packet after a gap whose deadline has not come"),
        },
        PacketLost: {
            After.ALL_DECIDED: (State.DECODING, "a loss already decided (late news), ignored"),
            After.FRAMES_MISSING: (State.GAP, "a loss: the frame waits for the next packet(s)"),
        },
        EndOfStream: {
            After.ALL_DECIDED: (State.CLOSED, "all frames are decided"),
        },
    },
    State.GAP: {
        PacketArrived: {
            After.ALL_DECIDED: (State.DECODING, "a packet that reaches the deadline of every missing frame: they "
                                "are decided (LBRR for the newest if it carries some, DRED within coverage, else "
                                "PLC), then normal decoding resumes"),
            After.FRAMES_MISSING: (State.GAP, "frames are still missing and waiting (more losses, or the jitter "
                                   "buffer is not full)"),
        },
        PacketLost: {
            After.FRAMES_MISSING: (State.GAP, "the gap grows"),
        },
        EndOfStream: {
            After.ALL_DECIDED: (State.CLOSED, "the missing frames are decided with what arrived; a trailing loss "
                                "is concealed by PLC or dropped, per policy"),
        },
    },
    State.CLOSED: {},
}


# ------------------------------------------------------------------------------------------------
# Policies


class DredFrom(enum.Enum):
    """Which packets may give a lost frame its DRED, and so when the frame is decided."""

    NEXT = "next"  # only the packet that ends the gap, decided when it arrives (opus_demo)
    ANY = "any"  # any arrived packet, decided at the jitter-buffer deadline (BEST)


class DredCap(enum.Enum):
    """A parse-request cap that depends on the decoding rate."""

    RATE = "rate"  # the decoding rate in samples, i.e. one second (opus_demo 1.6.1)


@dataclass(frozen=True)
class Policy:
    """How the receiver chooses. Every field is one decision of the protocol.

    - ``dred_cap``: the cap of opus_demo's parse request ``min(cap, lost * duration)``: samples (``48000``
      in 1.5.2, whatever the rate), :attr:`DredCap.RATE` (1.6.1), or ``None``: parse everything the packet has.
    - ``dred_from``: :attr:`DredFrom.NEXT` (only the packet that ends the gap) or :attr:`DredFrom.ANY` (the
      arrived packet with the most DRED features for the frame).
    - ``frame_request``: parse the packet anew for each frame with the smallest request that gives the
      frame every DRED feature the packet has for it (``_arith.frame_request``), and pick, among the
      arrived packets, the one giving the most such features (ties: the nearest); opus_demo parses
      once per gap with ``min(cap, lost * duration)`` and uses the packet that ends the gap.
    - ``conceal_trailing``: conceal losses at the end of the stream (opus_demo drops them).
    - ``leading_from_packet``: losses before the first packet take that packet's duration
      (opus_demo uses the decoder's last packet duration, which is then 0).
    - ``allow_depth``: whether a jitter-buffer depth > 0 is meaningful for this policy.

    ``dred_from`` picks the decision procedure (opus_demo's with ``NEXT``, BEST's with ``ANY``); the
    procedure fixes ``frame_request`` and ``leading_from_packet``, and opus_demo's takes no depth: a policy
    that names another combination is refused rather than silently decided otherwise.
    """

    name: str
    dred_cap: int | DredCap | None
    dred_from: DredFrom
    frame_request: bool
    conceal_trailing: bool
    leading_from_packet: bool
    allow_depth: bool
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        cap = self.dred_cap
        if not (cap is None or isinstance(cap, DredCap) or (type(cap) is int and cap >= 0)):
            raise ValueError(f"policy {self.name}: dred_cap {cap!r} is not a sample count, DredCap or None")
        if not isinstance(self.dred_from, DredFrom):
            raise ValueError(f"policy {self.name}: dred_from {self.dred_from!r} is not a DredFrom")
        per_frame = self.dred_from is DredFrom.ANY
        if self.frame_request != per_frame or self.leading_from_packet != per_frame or \
                (self.allow_depth and not per_frame):
            raise ValueError(f"policy {self.name}: dred_from {self.dred_from.name} decides with frame_request "
                             f"and leading_from_packet {per_frame}" + ("" if per_frame else " and no depth"))

    def cap(self, rate: int) -> int | None:
        """The parse-request cap in samples at ``rate`` (``None``: no cap)."""
        return rate if self.dred_cap is DredCap.RATE else self.dred_cap


OPUS_DEMO_1_5_2 = Policy(
    "opus_demo-1.5.2", dred_cap=48000, dred_from=DredFrom.NEXT, frame_request=False, conceal_trailing=False,
    leading_from_packet=False, allow_depth=False,
    description="src/opus_demo.c decode loop of libopus 1.5.2",
)
OPUS_DEMO_1_6_1 = Policy(
    "opus_demo-1.6.1", dred_cap=DredCap.RATE, dred_from=DredFrom.NEXT, frame_request=False,
    conceal_trailing=False, leading_from_packet=False, allow_depth=False,
    description="src/opus_demo.c decode loop of libopus 1.6.1",
)
BEST = Policy(
    "best", dred_cap=None, dred_from=DredFrom.ANY, frame_request=True, conceal_trailing=True,
    leading_from_packet=True, allow_depth=True,
    description="LBRR, else DRED from the packet in the jitter buffer with the most features for the frame "
    "(parsed for that frame), else PLC through that packet's DRED entry point (DredPlc) or plain PLC; "
    "leading and trailing losses concealed",
)
#: The policies by name (the names the CLI, the loss experiment and the test vectors use).
POLICIES: dict[str, Policy] = {p.name: p for p in (OPUS_DEMO_1_5_2, OPUS_DEMO_1_6_1, BEST)}


def policy_named(policy: Policy | str) -> Policy:
    """``policy`` itself, or the policy of that name in :data:`POLICIES`."""
    if isinstance(policy, Policy):
        return policy
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; one of {sorted(POLICIES)}")
    return POLICIES[policy]


# ------------------------------------------------------------------------------------------------
# The receiver


class Receiver:
    """Events in, actions out. ``rate``: the decoding rate (samples are counted at it); ``depth``: the
    jitter-buffer depth in packets: a missing frame ``f`` is decided once a packet with sequence
    number ``>= f + 1 + depth`` has arrived (or at :class:`EndOfStream`). Frame numbers start at 0.

    >>> r = Receiver(BEST, rate=16000)
    >>> r.send(PacketArrived(0, 320))
    [Normal(seq=0, samples=320)]
    """

    def __init__(self, policy: Policy | str = BEST, *, rate: int = 48000, depth: int = 0):
        policy = policy_named(policy)
        if rate not in (8000, 12000, 16000, 24000, 48000):
            raise ValueError(f"rate {rate} is not an Opus decoding rate")
        if depth < 0 or (depth and not policy.allow_depth):
            raise ValueError(f"policy {policy.name} does not take a jitter-buffer depth of {depth}")
        self.policy = policy
        self.rate = rate
        self.depth = depth
        self.state = State.START
        self.next_frame = 0  # the first undecided frame
        self._arrived: dict[int, PacketArrived] = {}  # packets not yet decoded (seq >= next_frame)
        self._known_end = 0  # 1 + the highest sequence number any event named
        self._last_samples = 0  # OPUS_GET_LAST_PACKET_DURATION after the last decided frame
        self.late: list[int] = []  # packets that arrived after their frame was decided
        self.duplicates: list[int] = []

    # -- public ---------------------------------------------------------------------------------

    def send(self, event: Event) -> list[Action]:
        """Feed one event; return the actions it makes possible, in frame order. The event's row of
        :data:`TRANSITIONS` is looked up first (none: :class:`ReceiverError`, nothing changes); the
        event is handled; what it leaves behind (:class:`After`) picks the next state in that row."""
        row = self._transitions_for(event)
        handle = {PacketArrived: self._on_arrived, PacketLost: self._on_lost, EndOfStream: self._on_end}
        actions = handle[type(event)](event)
        self.state = self._next_state(row, event)
        return actions

    def send_all(self, events: Iterable[Event]) -> list[Action]:
        out: list[Action] = []
        for e in events:
            out.extend(self.send(e))
        return out

    # -- the table ------------------------------------------------------------------------------

    def _transitions_for(self, event: object) -> dict[After, tuple[State, str]]:
        row = TRANSITIONS[self.state].get(type(event))
        if row is not None:
            return row
        if not any(type(event) in rows for rows in TRANSITIONS.values()):
            raise ReceiverError(f"not a receiver event: {event!r}", event)
        if self.state is State.CLOSED:
            raise ReceiverError(f"{type(event).__name__} after EndOfStream", event)
        raise ReceiverError(f"{type(event).__name__} in state {self.state.name}: no transition", event)

    def _after(self) -> After:
        return After.FRAMES_MISSING if self.next_frame < self._known_end else After.ALL_DECIDED

    def _next_state(self, row: dict[After, tuple[State, str]], event: Event) -> State:
        after = self._after()
        if after not in row:
            raise ReceiverError(f"{type(event).__name__} in state {self.state.name} left {after.name}: "
                                "no transition", event)
        return row[after][0]

    # -- events ---------------------------------------------------------------------------------

    def _check_seq(self, event: PacketArrived | PacketLost) -> None:
        if not isinstance(event.seq, int) or isinstance(event.seq, bool) or event.seq < 0:
            raise ReceiverError(f"sequence number must be an int >= 0, got {event.seq!r}", event)

    def _on_arrived(self, ev: PacketArrived) -> list[Action]:
        self._check_seq(ev)
        if not isinstance(ev.samples, int) or ev.samples <= 0 or ev.samples % (self.rate // 400):
            raise ReceiverError(f"packet duration {ev.samples!r} is not a positive multiple of 2.5 ms", ev)
        if ev.dred_latents < 0 or ev.dred_latents > DRED_MAX_LATENTS:
            raise ReceiverError(f"dred_latents {ev.dred_latents} out of 0..{DRED_MAX_LATENTS}", ev)
        self._known_end = max(self._known_end, ev.seq + 1)
        if ev.seq < self.next_frame:
            self.late.append(ev.seq)
            return []
        if ev.seq in self._arrived:
            self.duplicates.append(ev.seq)
            return []
        self._arrived[ev.seq] = ev
        return self._advance(final=False)

    def _on_lost(self, ev: PacketLost) -> list[Action]:
        self._check_seq(ev)
        self._known_end = max(self._known_end, ev.seq + 1)
        # a loss report never decides anything by itself: frames wait for packets (opus_demo) or
        # for the jitter-buffer deadline, which only arrivals move.
        return []

    def _on_end(self, ev: EndOfStream) -> list[Action]:
        return self._advance(final=True)

    # -- decisions ------------------------------------------------------------------------------

    def _newest_arrival(self) -> int:
        return max(self._arrived) if self._arrived else -1

    def _advance(self, final: bool) -> list[Action]:
        out: list[Action] = []
        while self.next_frame < self._known_end:
            f = self.next_frame
            pkt = self._arrived.get(f)
            if pkt is not None:
                out.append(Normal(f, pkt.samples))
                del self._arrived[f]
                self._last_samples = pkt.samples
                self.next_frame += 1
                continue
            # frame f is missing: decide the whole run of missing frames up to the next arrival
            newest = self._newest_arrival()
            if self.policy.dred_from is DredFrom.NEXT:
                # opus_demo: the run is decided when the packet that ends it arrives
                if newest < 0:
                    if not final:
                        break
                    out.extend(self._trailing(f))
                    continue
                out.extend(self._decide_run_opus_demo(f, min(s for s in self._arrived if s > f)))
                continue
            if newest >= f + 1 + self.depth or final:
                if newest < f and final:
                    out.extend(self._trailing(f))
                    continue
                out.append(self._decide_best(f))
                continue
            break
        return out

    def _trailing(self, f: int) -> list[Action]:
        """Frames from ``f`` to the end with no packet after them (only at EndOfStream)."""
        out: list[Action] = []
        for g in range(f, self._known_end):
            if self.policy.conceal_trailing and self._last_samples > 0:
                out.append(Plc(g, self._last_samples))
            else:
                out.append(Drop(g))
        self.next_frame = self._known_end
        return out

    def _decide_run_opus_demo(self, f: int, p: int) -> list[Action]:
        """Frames ``f .. p-1`` are lost and packet ``p`` arrived (src/opus_demo.c decode loop)."""
        pkt = self._arrived[p]
        lost = p - f
        dur = self._last_samples  # OPUS_GET_LAST_PACKET_DURATION; unchanged by PLC/LBRR/DRED calls
        cap = self.policy.cap(self.rate)
        request = None if cap is None else min(cap, max(0, lost * dur))
        ret = dred_parse_return(pkt.dred_latents, pkt.dred_offset, self.rate, request)
        out: list[Action] = []
        n = dred_latents_read(pkt.dred_latents, self.rate, request)
        for fr in range(lost):
            g = f + fr
            if fr == lost - 1 and pkt.has_lbrr:
                out.append(Lbrr(p, g, dur))
            elif ret > 0:
                off = (lost - fr) * dur
                used, _ = dred_feature_frames(off, dur, n, pkt.dred_offset, self.rate)
                out.append((Dred if used else DredPlc)(p, off, g, dur, request))
            else:
                out.append(Plc(g, dur))
        self.next_frame = p
        return out

    def _decide_best(self, f: int) -> Action:
        """One missing frame ``f`` with every packet in hand (policy BEST)."""
        later = sorted(s for s in self._arrived if s > f)
        dur = self._last_samples or self._arrived[later[0]].samples
        self.next_frame = f + 1
        self._last_samples = dur
        nxt = self._arrived.get(f + 1)
        if nxt is not None and nxt.has_lbrr:
            return Lbrr(f + 1, f, dur)
        best: tuple[int, int, int] | None = None  # (features, packet, offset)
        fallback: tuple[int, int] | None = None  # nearest packet with DRED: (packet, offset)
        for p in later:
            pkt = self._arrived[p]
            if pkt.dred_latents <= 0:
                continue
            # offset of frame f's start before packet p: the frames f .. p-1, at their known duration
            # for arrived ones, the concealment duration for missing ones
            offset = sum(self._arrived[g].samples if g in self._arrived else dur for g in range(f, p))
            used, _ = dred_feature_frames(offset, dur, pkt.dred_latents, pkt.dred_offset, self.rate)
            if used and (best is None or used > best[0]):
                best = (used, p, offset)
            if fallback is None and dred_parse_return(pkt.dred_latents, pkt.dred_offset, self.rate, 0) > 0:
                fallback = (p, offset)
        if best is not None:
            _, p, offset = best
            pkt = self._arrived[p]
            return Dred(p, offset, f, dur, frame_request(offset, dur, pkt.dred_latents, pkt.dred_offset, self.rate))
        if fallback is not None:
            # no feature for f anywhere: libopus' DRED entry point conceals it (and clears any
            # DRED feature an earlier call left queued), parsed with the smallest request
            return DredPlc(fallback[0], fallback[1], f, dur, 0)
        return Plc(f, dur)


def run(events: Iterable[Event], policy: Policy | str = BEST, *, rate: int = 48000, depth: int = 0) -> list[Action]:
    """Feed ``events`` (an :class:`EndOfStream` is added if missing) and return all actions."""
    r = Receiver(policy, rate=rate, depth=depth)
    out: list[Action] = []
    for e in events:
        out.extend(r.send(e))
    if r.state is not State.CLOSED:
        out.extend(r.send(EndOfStream()))
    return out
