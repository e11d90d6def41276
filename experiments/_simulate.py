"""The loss experiment behind ``opus-dred simulate``: PLC, LBRR, DRED and LBRR + DRED on real speech.

Real speech is encoded by one libopus build (the oracle) in four configurations at a matched total
bitrate (:data:`CONFIGS`, :func:`encode_matched`); the same loss pattern (:func:`parse_loss`) is
applied to each stream; each is decoded by the receiver (:mod:`opus_dred.refimpl._receiver`, policy
of the build's ``opus_demo`` by default) executed on the build's decoder
(:class:`~opus_dred.libopus._receiver.LibopusExecutor`; with the ``jax`` engine,
:mod:`opus_dred.experiments._engine`, the neural concealment's samples are our PLC's and FARGAN's,
spliced into that decoder), and the result is scored with
wideband PESQ (ITU-T P.862.2, the ``pesq`` package) and STOI (Taal et al. 2011, ``pystoi``) against
the clean input and against the same configuration decoded without loss (:func:`metrics`).

Everything here returns data; the command (``simulate_cli``) prints, writes and plots it. The method
and the reasons for each choice are in ``docs/simulate.md``.

Network jitter (:class:`Jitter`, ``--jitter``): each packet that is not lost gets a seeded delay,
a fixed base plus an exponential jitter; the receiver sees the packets in arrival order, so some come
late or out of order. The receiver's own jitter buffer (``depth``) decides when a missing frame is
concealed; a packet that comes after that is late, and is not decoded (``Receiver.late``).

Alignment: the decoded signal lags the input by the encoder's lookahead, ``Fs/400 +
delay_compensation`` with ``delay_compensation = Fs/250`` for the VoIP application
(``src/opus_encoder.c:opus_encoder_ctl`` OPUS_GET_LOOKAHEAD, ``opus_encoder_init``); the decoded
PCM is placed on the frame grid (frame ``f`` at ``f * frame_size``; a frame the receiver drops, or a
call that writes nothing, is silence, which is what a player would play), then shifted back by the
lookahead and cut to the input's length.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from opus_dred.bitstream._errors import FormatError, OpusDredError
from opus_dred.experiments import _engine as engines
from opus_dred.experiments import _loss as lossmod
from opus_dred.libopus._oracle import Oracle
from opus_dred.libopus._receiver import opus_demo_policy, packet_events
from opus_dred.refimpl import _receiver as rx

#: Encoder application; the lookahead below assumes it.
APPLICATION = "voip"
#: DRED duration of the experiment, in 10 ms units (OPUS_SET_DRED_DURATION): 1 s.
DRED_1S = 100


class SimulateError(OpusDredError):
    """Bad experiment parameters (loss specification, configuration, input)."""


# ------------------------------------------------------------------------------------------------
# configurations


@dataclass(frozen=True)
class Config:
    """One encoder configuration: in-band FEC (LBRR) on/off and the DRED duration (10 ms units)."""

    name: str
    label: str
    lbrr: bool
    dred_duration: int


CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config("plc", "PLC only", False, 0),
        Config("lbrr", "LBRR", True, 0),
        Config("dred", "DRED 1 s", False, DRED_1S),
        Config("lbrr+dred", "LBRR + DRED 1 s", True, DRED_1S),
    )
}


# ------------------------------------------------------------------------------------------------
# loss patterns


@dataclass(frozen=True)
class LossSpec:
    """A loss model as given on the command line (see :func:`parse_loss`)."""

    kind: str  # "bernoulli" | "ge" | "lossgen" | "trace"
    percent: float  # nominal loss rate in % (trace: measured when generated; None-like -1 before)
    ge: lossmod.GilbertElliott | None = None
    preset: str | None = None
    path: str | None = None
    flags: tuple[int, ...] | None = None  # a trace's flags given directly (a capture's losses), not read from path

    @property
    def label(self) -> str:
        if self.kind == "ge":
            return f"ge:{self.preset}" if self.preset else (
                f"ge:{self.ge.p:.4g},{self.ge.r:.4g},{1 - self.ge.loss_bad:.4g},{1 - self.ge.loss_good:.4g}")
        if self.kind == "trace":
            return f"trace:{Path(self.path).name}"
        return f"{self.kind}:{self.percent:g}"

    def generate(self, n: int, seed: int = 0, oracle: Any = None) -> np.ndarray:
        """``n`` flags (1 = lost). ``lossgen`` needs the oracle (libopus' model of that build). A
        trace shorter than ``n`` is repeated; a longer one is cut."""
        if self.kind == "bernoulli":
            return lossmod.bernoulli(n, self.percent / 100.0, seed)
        if self.kind == "ge":
            return self.ge.generate(n, seed)
        if self.kind == "lossgen":
            if oracle is None:
                raise SimulateError("lossgen: needs a libopus build")
            return lossmod.LibopusLossGen(oracle).generate(n, self.percent, seed)
        if self.kind == "trace":
            t = np.asarray(self.flags, np.uint8) if self.flags is not None else lossmod.read_trace(self.path)
            if len(t) == 0:
                raise SimulateError(f"trace {self.path} is empty")
            return np.resize(t, n).astype(np.uint8)
        raise SimulateError(f"unknown loss kind {self.kind!r}")

    def at_rate(self, percent: float) -> "LossSpec":
        """The same family at another loss rate (for the sweep): Bernoulli and lossgen take the rate;
        a bursty preset becomes ``bursty-<percent>`` (mean burst 3 packets); other Gilbert-Elliott
        models keep ``r``, ``h`` and ``k`` and solve ``p``. Traces have no rate."""
        if not 0 < percent < 100:
            raise SimulateError(f"loss rate {percent} % not in (0, 100)")
        if self.kind in ("bernoulli", "lossgen"):
            return LossSpec(self.kind, float(percent))
        if self.kind == "ge":
            g = self.ge
            L = percent / 100.0
            if self.preset and self.preset.startswith("bursty-"):
                ge = lossmod.GilbertElliott.simple(L, 3.0)
                return LossSpec("ge", float(percent), ge, preset=f"bursty-{percent:g}")
            # L = (1-b) lg + b lb with b = p/(p+r)  =>  b = (L - lg)/(lb - lg), p = b r / (1 - b)
            if g.loss_bad == g.loss_good or not g.loss_good < L < g.loss_bad:
                raise SimulateError(f"{self.label} cannot reach a loss rate of {percent} %")
            b = (L - g.loss_good) / (g.loss_bad - g.loss_good)
            p = b * g.r / (1 - b)
            if p > 1:
                raise SimulateError(f"{self.label} cannot reach a loss rate of {percent} %")
            return LossSpec("ge", float(percent), lossmod.GilbertElliott(p, g.r, g.loss_good, g.loss_bad))
        raise SimulateError("a loss trace has no loss rate to sweep; drop --rates")


def _percent(text: str, spec: str) -> float:
    t = text.strip().rstrip("%")
    try:
        v = float(t)
    except ValueError:
        raise SimulateError(f"--loss {spec!r}: {text!r} is not a percentage") from None
    if not 0 <= v <= 100:
        raise SimulateError(f"--loss {spec!r}: {v} % not in [0, 100]")
    return v


def parse_loss(spec: str) -> LossSpec:
    """``bernoulli:P`` (P in %), ``ge:bursty-10|20|30`` (or ``ge:bursty-N`` for any N), ``ge:p,r,h,k``
    (Gilbert-Elliott, Hasslinger & Hohlfeld notation: loss in Bad = 1-h, loss in Good = 1-k),
    ``lossgen:P`` (libopus' generative model at P %), ``trace:FILE`` (one 0/1 per line)."""
    kind, sep, arg = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or not arg:
        raise SimulateError(f"--loss {spec!r}: expected KIND:ARG (bernoulli:P, ge:bursty-20, ge:p,r,h,k, "
                            "lossgen:P, trace:FILE)")
    if kind == "bernoulli":
        return LossSpec("bernoulli", _percent(arg, spec))
    if kind == "lossgen":
        return LossSpec("lossgen", _percent(arg, spec))
    if kind == "ge":
        m = re.fullmatch(r"bursty-(\d+(?:\.\d+)?)", arg.strip())
        if m:
            pct = float(m.group(1))
            if not 0 < pct < 75:
                raise SimulateError(f"--loss {spec!r}: bursty presets need 0 < rate < 75 %")
            ge = lossmod.GE_PRESETS.get(arg.strip()) or lossmod.GilbertElliott.simple(pct / 100.0, 3.0)
            return LossSpec("ge", pct, ge, preset=f"bursty-{pct:g}")
        parts = arg.split(",")
        if len(parts) != 4:
            raise SimulateError(f"--loss {spec!r}: ge takes bursty-N or four numbers p,r,h,k")
        try:
            p, r, h, k = (float(v) for v in parts)
            ge = lossmod.GilbertElliott(p, r, loss_good=1 - k, loss_bad=1 - h)
        except ValueError as e:
            raise SimulateError(f"--loss {spec!r}: {e}") from None
        return LossSpec("ge", 100.0 * ge.loss_rate, ge)
    if kind == "trace":
        path = Path(arg)
        if not path.is_file():
            raise SimulateError(f"--loss {spec!r}: no such file")
        flags = lossmod.read_trace(path)  # FormatError with the byte offset on a bad line
        pct = 100.0 * float(np.mean(flags)) if len(flags) else 0.0
        return LossSpec("trace", pct, path=str(path))
    raise SimulateError(f"--loss {spec!r}: unknown kind {kind!r}")


# ------------------------------------------------------------------------------------------------
# encoding at a matched bitrate


@dataclass
class Encoding:
    """One configuration's stream. ``mean_bitrate``: all bytes of all packets (DRED padding
    included) over the duration; ``dred_ms``: mean DRED coverage per packet (full parse)."""

    config: str
    target_bitrate: int
    mean_bitrate: float
    packets: list[bytes] = field(repr=False)
    lbrr_fraction: float = 0.0
    dred_fraction: float = 0.0
    dred_ms: float = 0.0
    tries: int = 1


def _stream_facts(oracle: Any, packets: Sequence[bytes], rate: int) -> tuple[float, float, float]:
    lb = dr = cov = 0
    for p in packets:
        lb += oracle.packet_has_lbrr(p) > 0
        with oracle.dred_parse(p, sampling_rate=rate) as d:
            if d.ret > 0:
                dr += 1
                cov += d.ret
    n = max(1, len(packets))
    return lb / n, dr / n, 1000.0 * cov / n / rate


def encode_config(oracle: Any, pcm: np.ndarray, rate: int, config: Config, bitrate: int, loss_perc: int,
                  *, frame_ms: float = 20.0, complexity: int = 10) -> Encoding:
    """Encode ``pcm`` with ``config`` at target ``bitrate`` (VBR, VoIP, OPUS_SET_PACKET_LOSS_PERC =
    ``loss_perc``, which LBRR and DRED both read to size their share). The input is padded with
    :func:`lookahead` zeros, so the stream decodes to every input sample."""
    # padded with the lookahead so that the decoder outputs every input sample
    x = np.concatenate([np.asarray(pcm, np.int16), np.zeros(lookahead(rate), np.int16)])
    enc = oracle.encode(x, fs=rate, bitrate=int(bitrate), frame_ms=frame_ms, complexity=complexity,
                        lbrr=config.lbrr, dred_duration=config.dred_duration, loss_perc=int(loss_perc),
                        application=APPLICATION)
    packets = [e.data for e in enc]
    dur = len(packets) * frame_ms / 1000.0
    mean = 8.0 * sum(len(p) for p in packets) / dur
    lb, dr, cov = _stream_facts(oracle, packets, rate)
    return Encoding(config.name, int(bitrate), mean, packets, lb, dr, cov)


def encode_matched(oracle: Any, pcm: np.ndarray, rate: int, config: Config, total: int, loss_perc: int,
                   *, rule: str = "measured", frame_ms: float = 20.0, tol: float = 0.01,
                   max_tries: int = 8) -> Encoding:
    """The configuration's stream at a matched total bitrate.

    ``rule="target"``: the encoder target is ``total`` for every configuration (libopus then takes
    the LBRR and DRED bits out of it, but its VBR may overshoot or undershoot).
    ``rule="measured"``: the target is adjusted until the stream's measured mean bitrate (every byte
    of every packet) is within ``tol`` of ``total``: fixed-point steps ``target += total - actual``,
    keeping the closest stream (the mean bitrate is not monotonic in the target once DRED turns on)."""
    if rule == "target":
        return encode_config(oracle, pcm, rate, config, total, loss_perc, frame_ms=frame_ms)
    if rule != "measured":
        raise SimulateError(f"matching rule {rule!r}: one of target, measured")
    best: Encoding | None = None
    target = int(total)
    seen: set[int] = set()
    for i in range(max_tries):
        e = encode_config(oracle, pcm, rate, config, target, loss_perc, frame_ms=frame_ms)
        e.tries = i + 1
        if best is None or abs(e.mean_bitrate - total) < abs(best.mean_bitrate - total):
            best = e
        if abs(e.mean_bitrate - total) <= tol * total:
            break
        seen.add(target)
        nxt = int(round(target + (total - e.mean_bitrate)))
        nxt = max(6000, min(510000, nxt))
        while nxt in seen:  # a cycle: nudge towards the total
            nxt += 250 if e.mean_bitrate < total else -250
        target = nxt
    assert best is not None
    best.tries = i + 1
    return best


# ------------------------------------------------------------------------------------------------
# receiver decode


def lookahead(rate: int) -> int:
    """The encoder's lookahead in samples for the VoIP application: ``Fs/400 + Fs/250``
    (OPUS_GET_LOOKAHEAD, ``src/opus_encoder.c``)."""
    return rate // 400 + rate // 250


def n_packets(n_samples: int, rate: int, frame_ms: float = 20.0) -> int:
    """Packets :func:`encode_config` makes for ``n_samples`` (input plus lookahead, whole frames)."""
    frame = int(round(rate * frame_ms / 1000.0))
    return -(-(n_samples + lookahead(rate)) // frame)


@dataclass(frozen=True)
class Jitter:
    """The network delay model of ``--jitter MS``.

    Packet ``k`` is sent at ``k * frame_ms`` and arrives at ``k * frame_ms + base_ms + X_k``, where the
    ``X_k`` are independent exponential draws of mean ``mean_ms`` (the sojourn time of an M/M/1
    queue: mostly small, with a tail). The receiver is given the packets in arrival order (ties in
    sequence order). ``base_ms`` shifts every arrival alike, so it changes no order and no result; it
    is kept to make the times readable. Two packets ``m`` frames apart swap with probability
    ``0.5 * exp(-m * frame_ms / mean_ms)``: at ``mean_ms = frame_ms``, 18 % of neighbours swap.

    The draws come from their own generator, seeded by ``seed`` alone (not by the loss pattern or the
    configuration): every configuration and loss rate of a run sees the same delays. A lost packet
    never arrives; its loss report (``PacketLost``, which decides nothing in the receiver) is placed
    where it would have arrived.
    """

    mean_ms: float
    base_ms: float = 50.0
    frame_ms: float = 20.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_ms) and self.mean_ms >= 0) or not math.isfinite(self.base_ms) \
                or self.base_ms < 0 or not self.frame_ms > 0:
            raise SimulateError(f"jitter {self.mean_ms} ms (base {self.base_ms} ms): must be finite and >= 0")

    def arrival_ms(self, n: int, seed: int = 0) -> np.ndarray:
        """Arrival times (ms) of packets ``0 .. n-1``."""
        rng = np.random.default_rng([0x6A177E, int(seed)])
        x = rng.exponential(self.mean_ms, n) if self.mean_ms > 0 else np.zeros(n)
        return np.arange(n) * self.frame_ms + self.base_ms + x


@dataclass(frozen=True)
class TraceJitter:
    """Arrival times measured in a capture (``simulate --trace CAPTURE``): packet ``k`` is sent at
    ``k * frame_ms`` and arrives ``delays_ms[k]`` later, the delays of the capture's packets in sequence order
    (repeated, like the loss trace, when the experiment has more packets; cut when it has fewer). The seed plays
    no part."""

    delays_ms: tuple[float, ...]
    frame_ms: float = 20.0
    source: str = "trace"

    def arrival_ms(self, n: int, seed: int = 0) -> np.ndarray:
        d = np.asarray(self.delays_ms, np.float64)
        if not len(d) or not np.isfinite(d).all() or (d < 0).any():
            raise SimulateError(f"arrival trace {self.source}: delays must be finite and >= 0")
        return np.arange(n) * self.frame_ms + np.resize(d, n)


def jitter_events(events: Sequence[rx.Event], arrival_ms: np.ndarray) -> list[rx.Event]:
    """``events`` (one ``PacketArrived``/``PacketLost`` per packet, then ``EndOfStream``) in arrival
    order: sorted by ``arrival_ms[seq]``, ties by ``seq`` (a stable sort); ``EndOfStream`` last."""
    body = [e for e in events if not isinstance(e, rx.EndOfStream)]
    body.sort(key=lambda e: (float(arrival_ms[e.seq]), e.seq))
    return body + [rx.EndOfStream()]


def reordered_packets(events: Sequence[rx.Event]) -> int:
    """Packets that arrive after a packet with a higher sequence number."""
    n, top = 0, -1
    for e in events:
        if isinstance(e, rx.PacketArrived):
            if e.seq < top:
                n += 1
            top = max(top, e.seq)
    return n


def edge_losses(flags: Sequence[int]) -> tuple[int, int]:
    """``(leading, trailing)``: lost packets before the first and after the last packet that is not
    lost (all of them count as leading when every packet is lost)."""
    f = np.asarray(flags) != 0
    if f.all():
        return (len(f), 0)
    kept = np.flatnonzero(~f)
    return (int(kept[0]), int(len(f) - 1 - kept[-1]))


@dataclass
class Decoded:
    pcm: np.ndarray  # int16, aligned with the input, same length
    actions: list  # receiver actions
    counts: dict  # action kind -> frames
    events: list = field(default_factory=list, repr=False)  # the events, in the order the receiver got them
    after: list = field(default_factory=list, repr=False)  # for each action, the index of the event that released it
    late: list = field(default_factory=list)  # packets that arrived after their frame was decided
    reordered: int = 0  # packets that arrived after a packet with a higher sequence number
    engine: str = "libopus"  # who synthesised the neural concealment (experiments._engine)
    engine_stats: dict = field(default_factory=dict)  # engine jax: the SpliceStats


def resolve_policy(oracle: Any, policy: str) -> rx.Policy:
    """``"opus_demo"``: the policy of this build's opus_demo; ``"best"`` or any receiver policy name."""
    if policy in ("opus_demo", "demo", "default"):
        return opus_demo_policy(oracle)
    if policy in rx.POLICIES:
        return rx.POLICIES[policy]
    raise SimulateError(f"policy {policy!r}: one of opus_demo, {', '.join(sorted(rx.POLICIES))}")


def _packet_used(a: Any) -> int | None:
    """The packet an action reads (``None`` for PLC and drops)."""
    return None if isinstance(a, (rx.Plc, rx.Drop)) else a.seq


def decode_with_loss(oracle: Any, packets: Sequence[bytes], flags: Iterable[int], rate: int, n_out: int, *,
                     policy: rx.Policy, complexity: int = 5, frame: int | None = None, depth: int = 0,
                     jitter: Jitter | TraceJitter | None = None, seed: int = 0, engine: str = "libopus",
                     numerics: str | None = None) -> Decoded:
    """Events from ``packets`` and ``flags`` (``receiver_oracle.packet_events``), put in arrival order
    by ``jitter`` (seeded by ``seed``; ``None``: in order), the receiver's actions (jitter-buffer
    ``depth``), executed on the build's decoder; the PCM on the frame grid, shifted by the
    lookahead, ``n_out`` samples long. ``engine`` (:data:`~opus_dred.experiments._engine.ENGINES`):
    ``"jax"`` splices our neural PLC and DRED synthesis into the decode (:mod:`opus_dred.experiments._engine`),
    with ``numerics`` (a preset of ``opus_dred.refimpl._nnet.NUMERICS``; default: the build's on this host).

    Every action that reads a packet is checked to come after that packet's arrival (the receiver
    guarantees it; a violation raises :class:`SimulateError`)."""
    frame = frame or rate // 50
    events = packet_events(oracle, packets, flags, rate)
    if jitter is not None:
        events = jitter_events(events, jitter.arrival_ms(len(packets), seed))
    try:
        r = rx.Receiver(policy, rate=rate, depth=depth)
    except ValueError as e:
        raise SimulateError(str(e)) from None
    actions: list = []
    after: list[int] = []
    arrived: set[int] = set()
    grid = np.zeros((len(packets) + 1) * frame + lookahead(rate) + n_out, np.int16)
    with engines.executor(engine, oracle, rate, complexity=complexity, numerics=numerics) as ex:
        for i, e in enumerate(events):
            if isinstance(e, rx.PacketArrived):
                arrived.add(e.seq)
            for a in r.send(e):
                p = _packet_used(a)
                if p is not None and p not in arrived:  # pragma: no cover - a receiver bug
                    raise SimulateError(f"{a} uses packet {p} before it arrived (event {i})")
                actions.append(a)
                after.append(i)
                ex.execute(a, packets)
        chunks = iter(ex.chunks)
        for a, n in ex.returns:
            if n > 0:
                c = next(chunks)
                start = a.frame * frame
                grid[start : start + len(c)] = c
    d = lookahead(rate)
    out = grid[d : d + n_out].copy()
    counts: dict[str, int] = {}
    for a in actions:
        k = type(a).__name__
        counts[k] = counts.get(k, 0) + 1
    stats = ex.splice.stats.to_json() if engine == "jax" else {}
    return Decoded(out, actions, counts, events, after, list(r.late), reordered_packets(events), engine, stats)


# ------------------------------------------------------------------------------------------------
# metrics


def metrics(ref: np.ndarray, deg: np.ndarray, rate: int) -> dict[str, float]:
    """Wideband PESQ (MOS-LQO, P.862.2; at 16 kHz, input at 48 kHz is resampled) and STOI of ``deg``
    against ``ref``. NaN where PESQ finds no utterance."""
    from pesq import pesq  # lazy: pesq and pystoi load scipy
    from pystoi import stoi  # lazy: pesq and pystoi load scipy

    r = np.asarray(ref, np.float64) / 32768.0
    g = np.asarray(deg, np.float64) / 32768.0
    n = min(len(r), len(g))
    r, g = r[:n], g[:n]
    if rate != 16000:
        from scipy.signal import resample_poly  # lazy: scipy is slow to import

        r16 = resample_poly(r, 16000 // math.gcd(16000, rate), rate // math.gcd(16000, rate))
        g16 = resample_poly(g, 16000 // math.gcd(16000, rate), rate // math.gcd(16000, rate))
    else:
        r16, g16 = r, g
    try:
        p = float(pesq(16000, r16, g16, "wb"))
    except Exception:  # noqa: BLE001 - pesq raises its own errors (no utterances, too short)
        p = float("nan")
    s = float(stoi(r, g, rate, extended=False))
    return {"pesq": p, "stoi": s}


# ------------------------------------------------------------------------------------------------
# the experiment


@dataclass
class Row:
    """One (clip, loss condition, configuration)."""

    clip: str
    loss: str
    loss_percent: float  # measured rate of the pattern
    config: str
    label: str
    target_kbps: float
    actual_kbps: float
    lbrr_fraction: float
    dred_fraction: float
    dred_ms: float
    counts: dict
    pesq_clean_noloss: float  # the configuration without loss, vs the clean input
    pesq_clean: float  # with loss vs clean
    pesq_noloss: float  # with loss vs the same configuration without loss
    stoi_clean_noloss: float
    stoi_clean: float
    stoi_noloss: float
    engine: str = "libopus"  # who synthesised the neural concealment (experiments._engine.ENGINES)
    engine_stats: dict = field(default_factory=dict)  # engine jax: the lossy decode's SpliceStats
    identical_pcm: bool | None = None  # several engines: this decode's PCM equals the first engine's
    leading_lost: int = 0  # lost packets before the first one that arrives
    trailing_lost: int = 0  # lost packets after the last one that arrives (opus_demo drops them)
    late: int = 0  # packets that arrived after their frame was decided (jitter)
    reordered: int = 0  # packets that arrived after a packet with a higher sequence number

    @property
    def pesq_drop(self) -> float:
        """PESQ lost to packet loss: without loss minus with loss (both against the clean input)."""
        return self.pesq_clean_noloss - self.pesq_clean

    def to_json(self) -> dict:
        return dict(asdict(self), pesq_drop=self.pesq_drop)


@dataclass
class Condition:
    """One loss pattern, applied to every configuration."""

    spec: LossSpec
    flags: np.ndarray
    decoded: dict  # config -> int16 PCM with loss (of the last clip), decoded by the first engine
    noloss: dict  # config -> int16 PCM without loss (of the last clip)
    by_engine: dict = field(default_factory=dict)  # engine -> config -> int16 PCM with loss (of the last clip)


@dataclass
class SimResult:
    rate: int
    bitrate: int
    match: str
    build: str
    version: str
    policy: str
    dec_complexity: int
    seed: int
    clips: list[str]
    rows: list[Row]
    conditions: list[Condition]
    clean: np.ndarray  # the last clip's input
    timings: dict = field(default_factory=dict)
    depth: int = 0
    jitter_ms: float | None = None  # mean exponential jitter; None: packets in order
    arrivals: str | None = None  # where measured arrival times came from (a capture), when they drive the jitter
    engines: tuple = ("libopus",)  # the engines of the lossy decodes (experiments._engine.ENGINES), in order
    numerics: str | None = None  # engine jax: the numerics preset given (None: the build's on this host)

    def to_json(self) -> dict:
        summary = summarize(self.rows)
        return {
            "rate": self.rate, "bitrate": self.bitrate, "match": self.match, "build": self.build,
            "version": self.version, "policy": self.policy, "dec_complexity": self.dec_complexity,
            "depth": self.depth, "jitter_ms": self.jitter_ms, "arrivals": self.arrivals, "seed": self.seed,
            "engines": list(self.engines), "numerics": self.numerics,
            "clips": self.clips, "rows": [r.to_json() for r in self.rows],
            "summary": summary, "claims": claims(summary), "engine_comparison": compare_engines(self.rows),
            "timings": self.timings,
        }


def summarize(rows: Sequence[Row]) -> list[dict]:
    """Means over clips for each (loss condition, configuration), in the rows' order."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.loss, r.config, r.engine), []).append(r)
    keys = ("loss_percent", "target_kbps", "actual_kbps", "lbrr_fraction", "dred_fraction", "dred_ms",
            "pesq_clean_noloss", "pesq_clean", "pesq_noloss", "stoi_clean_noloss", "stoi_clean", "stoi_noloss",
            "pesq_drop")
    out = []
    for (loss, config, engine), rs in groups.items():
        d: dict[str, Any] = {"loss": loss, "config": config, "engine": engine, "label": rs[0].label,
                             "clips": len(rs)}
        for k in keys:
            vals = [getattr(r, k) for r in rs]
            d[k] = float(np.nanmean(vals)) if not all(math.isnan(v) for v in vals) else float("nan")
        cnt: dict[str, int] = {}
        for r in rs:
            for a, n in r.counts.items():
                cnt[a] = cnt.get(a, 0) + n
        d["counts"] = cnt
        for k in ("leading_lost", "trailing_lost", "late", "reordered"):  # totals over clips
            d[k] = int(sum(getattr(r, k) for r in rs))
        st: dict[str, int] = {}
        for r in rs:
            for a, n in r.engine_stats.items():
                st[a] = max(st.get(a, 0), n) if a == "max_abs_diff" else st.get(a, 0) + n
        d["engine_stats"] = st
        out.append(d)
    return out


def compare_engines(rows: Sequence[Row], reference: str = "libopus") -> list[dict]:
    """For each (loss condition, configuration) decoded by ``reference`` and another engine: the means over
    clips of PESQ and STOI (with loss, against the clean input) of both, the differences (other minus
    reference), the largest difference of one clip, and whether the PCM of every clip was equal."""
    by: dict[tuple[str, str], dict[str, dict[str, Row]]] = {}
    for r in rows:
        by.setdefault((r.loss, r.config), {}).setdefault(r.engine, {})[r.clip] = r
    out = []
    for (loss, config), engs in by.items():
        ref = engs.get(reference)
        if ref is None:
            continue
        for eng, rs in engs.items():
            if eng == reference:
                continue
            clips = [c for c in rs if c in ref]
            if not clips:
                continue
            e: dict[str, Any] = {"loss": loss, "config": config, "label": rs[clips[0]].label, "engine": eng,
                                 "reference": reference, "clips": len(clips),
                                 "loss_percent": float(np.mean([rs[c].loss_percent for c in clips]))}
            for k in ("pesq_clean", "stoi_clean"):
                a = np.array([getattr(ref[c], k) for c in clips], np.float64)
                b = np.array([getattr(rs[c], k) for c in clips], np.float64)
                e[f"{k}_{reference}"] = float(np.nanmean(a)) if not np.isnan(a).all() else float("nan")
                e[f"{k}_{eng}"] = float(np.nanmean(b)) if not np.isnan(b).all() else float("nan")
                d = b - a
                e[f"{k}_diff"] = float(np.nanmean(d)) if not np.isnan(d).all() else float("nan")
                e[f"{k}_max_abs_diff"] = float(np.nanmax(np.abs(d))) if not np.isnan(d).all() else float("nan")
            e["identical_pcm"] = all(rs[c].identical_pcm for c in clips)
            st: dict[str, int] = {}
            for c in clips:
                for a, n in rs[c].engine_stats.items():
                    st[a] = max(st.get(a, 0), n) if a == "max_abs_diff" else st.get(a, 0) + n
            e["engine_stats"] = st
            out.append(e)
    return out


Progress = Callable[[str], None]


def simulate(
    clips: Sequence[tuple[str, np.ndarray]],
    *,
    loss: LossSpec,
    rates: Sequence[float] = (),
    rate: int = 16000,
    bitrate: int = 32000,
    match: str = "measured",
    build: str = "libopus-1.6.1",
    policy: str = "opus_demo",
    dec_complexity: int = 5,
    seed: int = 0,
    depth: int = 0,
    jitter_ms: float | None = None,
    configs: Sequence[str] = tuple(CONFIGS),
    oracle: Any = None,
    progress: Progress | None = None,
    arrivals: TraceJitter | None = None,
    engine: str | Sequence[str] = "libopus",
    numerics: str | None = None,
) -> SimResult:
    """Run the experiment on ``clips`` (``(id, int16 pcm at rate)``).

    Loss conditions: ``loss`` itself, then ``loss.at_rate(r)`` for each sweep rate (duplicates of
    ``loss`` skipped). For each clip and condition, every configuration is encoded with
    OPUS_SET_PACKET_LOSS_PERC = the condition's nominal rate, at the matched total ``bitrate``;
    one loss pattern (``seed``) is drawn for the clip and condition and applied to every
    configuration. ``jitter_ms`` (None: in order) reorders the arriving packets of the lossy decode
    (:class:`Jitter`, seeded by ``seed``); ``depth`` is the receiver's jitter-buffer depth in frames
    (policy ``best`` only). The no-loss decode is always in order at depth 0. ``progress`` is called once per step (encode+decode+score of one configuration).
    ``arrivals`` (a capture's measured arrival times, :class:`TraceJitter`) takes the place of ``jitter_ms``.
    ``engine``: one engine or several (:data:`~opus_dred.experiments._engine.ENGINES`); each lossy decode runs
    on each, from the same stream and loss pattern, and every row names its engine (the no-loss decode runs no
    concealment, so it is the build's decoder alone). ``numerics``: the ``jax`` engine's preset
    (``opus_dred.refimpl._nnet.NUMERICS``; ``None``: the one that reproduces the build on this host).
    """
    import time

    if rate not in (16000, 48000):
        raise SimulateError(f"rate {rate}: 16000 or 48000")
    for c in configs:
        if c not in CONFIGS:
            raise SimulateError(f"configuration {c!r}: one of {', '.join(CONFIGS)}")
    if not clips:
        raise SimulateError("no input")
    engs = check_engines(engine, numerics)
    oracle = oracle or Oracle.for_build(build)
    pol = resolve_policy(oracle, policy)
    if depth < 0 or (depth and not pol.allow_depth):
        raise SimulateError(f"policy {pol.name} takes no jitter-buffer depth (--depth {depth}); use --policy best")
    if arrivals is not None and jitter_ms is not None:
        raise SimulateError("measured arrival times and --jitter exclude each other")
    jit = arrivals if arrivals is not None else (Jitter(float(jitter_ms)) if jitter_ms is not None else None)
    specs = [loss] + [s for s in (loss.at_rate(r) for r in rates) if s.label != loss.label]
    specs.sort(key=lambda s: s.percent)
    frame = rate // 50
    rows: list[Row] = []
    conds = {s.label: Condition(s, np.zeros(0, np.uint8), {}, {}, {e: {} for e in engs}) for s in specs}
    t = {"encode_s": 0.0, "decode_s": 0.0, "metrics_s": 0.0, "frames": 0}
    for clip_id, pcm in clips:
        pcm = np.asarray(pcm, np.int16)
        if len(pcm) < frame * 10:
            raise SimulateError(f"{clip_id}: shorter than 10 frames")
        for spec in specs:
            loss_perc = int(round(spec.percent))
            nfr = n_packets(len(pcm), rate)
            flags = spec.generate(nfr, seed, oracle).astype(np.uint8)
            measured = 100.0 * float(flags.mean())
            lead, trail = edge_losses(flags)
            cond = conds[spec.label]
            cond.flags = flags
            for name in configs:
                cfg = CONFIGS[name]
                t0 = time.perf_counter()
                enc = encode_matched(oracle, pcm, rate, cfg, bitrate, loss_perc, rule=match)
                t1 = time.perf_counter()
                clean_dec = decode_with_loss(oracle, enc.packets, np.zeros(nfr, np.uint8), rate, len(pcm),
                                             policy=pol, complexity=dec_complexity)
                t["encode_s"] += t1 - t0
                t["decode_s"] += time.perf_counter() - t1
                t2 = time.perf_counter()
                m_nl = metrics(pcm, clean_dec.pcm, rate)
                t["metrics_s"] += time.perf_counter() - t2
                cond.noloss[name] = clean_dec.pcm
                first: np.ndarray | None = None
                for eng in engs:
                    t1 = time.perf_counter()
                    lossy = decode_with_loss(oracle, enc.packets, flags, rate, len(pcm), policy=pol,
                                             complexity=dec_complexity, depth=depth, jitter=jit, seed=seed,
                                             engine=eng, numerics=numerics)
                    t2 = time.perf_counter()
                    m_c = metrics(pcm, lossy.pcm, rate)
                    m_n = metrics(clean_dec.pcm, lossy.pcm, rate)
                    t3 = time.perf_counter()
                    t["decode_s"] += t2 - t1
                    t["metrics_s"] += t3 - t2
                    t[f"decode_{eng}_s"] = t.get(f"decode_{eng}_s", 0.0) + t2 - t1
                    t["frames"] += nfr
                    if first is None:
                        first = lossy.pcm
                        cond.decoded[name] = lossy.pcm
                    cond.by_engine[eng][name] = lossy.pcm
                    rows.append(Row(
                        clip=clip_id, loss=spec.label, loss_percent=measured, config=name, label=cfg.label,
                        target_kbps=enc.target_bitrate / 1000.0, actual_kbps=enc.mean_bitrate / 1000.0,
                        lbrr_fraction=enc.lbrr_fraction, dred_fraction=enc.dred_fraction, dred_ms=enc.dred_ms,
                        counts=lossy.counts, pesq_clean_noloss=m_nl["pesq"], pesq_clean=m_c["pesq"],
                        pesq_noloss=m_n["pesq"], stoi_clean_noloss=m_nl["stoi"], stoi_clean=m_c["stoi"],
                        stoi_noloss=m_n["stoi"], engine=eng, engine_stats=lossy.engine_stats,
                        identical_pcm=bool(np.array_equal(lossy.pcm, first)) if len(engs) > 1 else None,
                        leading_lost=lead, trailing_lost=trail, late=len(lossy.late), reordered=lossy.reordered))
                if progress:
                    progress(f"{clip_id} {spec.label} {cfg.label}")
    last = np.asarray(clips[-1][1], np.int16)
    return SimResult(rate, bitrate, match, oracle.build.name, oracle.info().version_string, pol.name,
                     dec_complexity, seed, [c for c, _ in clips], rows, [conds[s.label] for s in specs], last, t,
                     depth=depth, jitter_ms=jitter_ms, arrivals=arrivals.source if arrivals is not None else None,
                     engines=tuple(engs), numerics=numerics)


def check_engines(engine: str | Sequence[str], numerics: str | None = None) -> list[str]:
    """``engine`` as a list of distinct engine names (a string may list several, comma-separated), checked
    with ``numerics``: a preset name of ``opus_dred.refimpl._nnet.NUMERICS``, for the ``jax`` engine only."""
    names = [e.strip() for e in engine.split(",")] if isinstance(engine, str) else [str(e).strip() for e in engine]
    names = [e for e in names if e]
    if not names:
        raise engines.EngineError("no engine given: one or more of " + ", ".join(engines.ENGINES))
    for e in names:
        if e not in engines.ENGINES:
            raise engines.EngineError(f"engine {e!r}: one of {', '.join(engines.ENGINES)}")
    if len(set(names)) != len(names):
        raise engines.EngineError(f"engine {','.join(names)}: each engine once")
    if numerics is not None:
        if "jax" not in names:
            raise engines.EngineError(f"numerics {numerics!r}: only the jax engine takes a numerics preset")
        from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX, which the libopus engine does not need

        if numerics not in nnet.NUMERICS:
            raise engines.EngineError(f"numerics {numerics!r}: one of {', '.join(nnet.NUMERICS)}")
    return names


def steps(n_clips: int, loss: LossSpec, rates: Sequence[float], configs: Sequence[str] = tuple(CONFIGS)) -> int:
    """Number of progress steps :func:`simulate` makes."""
    labels = {loss.label} | {loss.at_rate(r).label for r in rates}
    return n_clips * len(labels) * len(configs)


def write_wav(path: str | Path, pcm: np.ndarray, rate: int) -> None:
    """16-bit mono WAV (stdlib ``wave``)."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, "<i2").tobytes())


def read_wav(path: str | Path, rate: int) -> np.ndarray:
    """A 16-bit WAV as int16 mono at ``rate`` (first channel; resampled if needed)."""
    import wave

    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise SimulateError(f"{path}: only 16-bit WAV is read")
            ch, fs = w.getnchannels(), w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, ch)[:, 0]
    except (wave.Error, EOFError) as e:
        raise FormatError(f"{path}: not a readable WAV file: {e}", byte_offset=0) from None
    if fs != rate:
        from scipy.signal import resample_poly  # lazy: scipy is slow to import

        g = math.gcd(rate, fs)
        x = np.clip(np.rint(resample_poly(x.astype(np.float64), rate // g, fs // g)), -32768, 32767)
    return x.astype(np.int16)


def claims(summary: Sequence[Mapping]) -> list[dict]:
    """For each loss condition, the figures the seed's claim is about: the configurations ordered by
    PESQ with loss (worst first), DRED's PESQ drop as a fraction of PLC's (the claim: about 0.5), and
    how far LBRR + DRED with loss stays below the codec without loss (the claim: about 0.1 MOS), both
    below its own no-loss decode and below the PLC-only (all bits to the primary) no-loss decode."""
    out = []
    by: dict[tuple[str, str], dict[str, Mapping]] = {}
    for d in summary:
        by.setdefault((d["loss"], d.get("engine", "libopus")), {})[d["config"]] = d
    for (loss, engine), cs in by.items():
        order = sorted(cs, key=lambda c: cs[c]["pesq_clean"])
        e: dict[str, Any] = {"loss": loss, "engine": engine, "loss_percent": next(iter(cs.values()))["loss_percent"],
                             "order": order}
        if "plc" in cs and "dred" in cs and cs["plc"]["pesq_drop"] > 0:
            e["dred_over_plc_drop"] = cs["dred"]["pesq_drop"] / cs["plc"]["pesq_drop"]
        if "lbrr+dred" in cs:
            b = cs["lbrr+dred"]
            e["lbrr_dred_below_own_noloss"] = b["pesq_clean_noloss"] - b["pesq_clean"]
            if "plc" in cs:
                e["lbrr_dred_below_plc_noloss"] = cs["plc"]["pesq_clean_noloss"] - b["pesq_clean"]
        out.append(e)
    return out


def write_trace_file(path: str | Path, flags: Iterable[int]) -> None:
    """The loss pattern as a trace file (``trace:FILE`` reads it back)."""
    lossmod.write_trace(path, flags)
