"""Packet-loss models: seeded generators of one 0/1 flag per packet (1 = lost).

Every generator is a pure function of its parameters and a ``numpy.random.Generator`` (or a seed):
the same seed gives the same flags. The flags feed :mod:`opus_dred.refimpl._receiver` (as
``PacketLost`` / ``PacketArrived`` events) and opus_demo's ``-lossfile`` (:func:`write_trace`).

* :func:`bernoulli`: independent losses with probability ``p``.
* :class:`GilbertElliott`: the two-state Markov model of Gilbert (1960) and Elliott (1963) in the
  four-parameter form used by Hasslinger and Hohlfeld, "The Gilbert-Elliott Model for Packet Loss in
  Real Time Services on the Internet" (MMB 2008) and ITU-T G.1050: a Good and a Bad state, ``p`` =
  P(Good -> Bad), ``r`` = P(Bad -> Good), and a loss probability in each state (``loss_good`` =
  1 - k, ``loss_bad`` = 1 - h in their notation). Stationary P(Bad) = p / (p + r); loss rate =
  (1 - P(Bad)) * loss_good + P(Bad) * loss_bad; with ``loss_good = 0`` and ``loss_bad = 1`` (the
  "simple Gilbert" model) loss bursts are geometric with mean 1 / r packets.
  :data:`GE_PRESETS` "bursty-10/20/30" are simple-Gilbert models with mean burst length 3 packets
  and loss rates 10, 20, 30 %: r = 1/3, p = L r / (1 - L). (Our choice of burst length; it is the
  order of magnitude of the bursts in the loss traces that libopus' generative model was trained on.)
* :class:`LibopusLossGen`: libopus' generative loss model (``dnn/lossgen.c``, the one ``opus_demo
  -sim_loss <perc>`` uses): a small GRU network, given the previous flag and the target percentage,
  outputs the probability that the next packet is lost. The network runs in libopus through the
  oracle (``Oracle.lossgen()``); the uniform draws come from our numpy generator, or from glibc's
  ``rand()`` sequence (:class:`LibcRand`), which reproduces opus_demo's flags exactly; the warm-up
  (steps discarded before the first flag) follows each release (100 in 1.5.2, 1000 in 1.6.1).
* :func:`read_trace` / :func:`write_trace`: trace files, one 0/1 per line per packet (the format
  opus_demo's ``-lossfile`` reads with ``fscanf("%d")``).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from opus_dred.bitstream._errors import FormatError


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def bernoulli(n: int, p: float, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """``n`` independent flags, each 1 with probability ``p``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"loss probability {p} not in [0, 1]")
    if n < 0:
        raise ValueError("n must be >= 0")
    return (_rng(seed).random(n) < p).astype(np.uint8)


@dataclass(frozen=True)
class GilbertElliott:
    """Four-parameter Gilbert-Elliott model (see the module docstring for the source).

    p: P(Good -> Bad) per packet; r: P(Bad -> Good); loss_good / loss_bad: loss probability in each
    state. The first state is drawn from the stationary distribution."""

    p: float
    r: float
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        for name in ("p", "r", "loss_good", "loss_bad"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}={v} not in [0, 1]")
        if self.p + self.r == 0:
            raise ValueError("p + r must be > 0")

    @classmethod
    def simple(cls, loss_rate: float, mean_burst: float) -> "GilbertElliott":
        """Simple Gilbert model with the given loss rate and mean burst length (packets)."""
        if not 0.0 < loss_rate < 1.0 or mean_burst < 1.0:
            raise ValueError("need 0 < loss_rate < 1 and mean_burst >= 1")
        r = 1.0 / mean_burst
        p = loss_rate * r / (1.0 - loss_rate)
        if p > 1.0:
            raise ValueError("loss_rate too high for this burst length")
        return cls(p=p, r=r)

    @property
    def p_bad(self) -> float:
        return self.p / (self.p + self.r)

    @property
    def loss_rate(self) -> float:
        b = self.p_bad
        return (1.0 - b) * self.loss_good + b * self.loss_bad

    def generate(self, n: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
        if n < 0:
            raise ValueError("n must be >= 0")
        g = _rng(seed)
        u_state = g.random(n)
        u_loss = g.random(n)
        bad = g.random() < self.p_bad
        out = np.zeros(n, np.uint8)
        for i in range(n):
            out[i] = u_loss[i] < (self.loss_bad if bad else self.loss_good)
            bad = (u_state[i] >= self.r) if bad else (u_state[i] < self.p)
        return out


#: "bursty" presets: simple Gilbert, mean burst 3 packets.
GE_PRESETS: dict[str, GilbertElliott] = {
    f"bursty-{pct}": GilbertElliott.simple(pct / 100.0, 3.0) for pct in (10, 20, 30)
}


# ------------------------------------------------------------------------------------------------
# libopus' generative model (dnn/lossgen.c) through the oracle

#: glibc's ``RAND_MAX`` (what ``dnn/lossgen.c`` divides ``rand()`` by).
RAND_MAX = 2147483647


class LossGenUnavailable(RuntimeError):
    """The oracle cannot provide libopus' loss model, or libc draws are not available here."""


class LibcRand:
    """The sequence of glibc's ``rand()`` after ``srand(seed)``, from a private state.

    glibc's ``rand()`` is ``random()`` (the additive feedback generator, TYPE_3, 128-byte state);
    ``initstate_r(seed, buf, 128, data)`` starts an identical generator that no other code in the
    process shares, and ``random_r`` steps it. opus_demo never calls ``srand``, so its draws are
    those of ``srand(1)`` (glibc maps seed 0 to 1 as well). Needs glibc (``random_r``); elsewhere
    :class:`LossGenUnavailable` is raised, as other C libraries' ``rand()`` differ anyway.
    """

    def __init__(self, seed: int = 1):
        try:
            libc = ctypes.CDLL(None)
            self._init = libc.initstate_r
            self._next = libc.random_r
        except (OSError, AttributeError) as e:
            raise LossGenUnavailable(f"libc rand() draws need glibc's initstate_r/random_r: {e}") from e
        self._init.argtypes = [ctypes.c_uint, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
        self._init.restype = ctypes.c_int
        self._next.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]
        self._next.restype = ctypes.c_int
        self._state = ctypes.create_string_buffer(128)
        self._data = ctypes.create_string_buffer(128)  # struct random_data (48 bytes on LP64), zeroed
        if self._init(int(seed) & 0xFFFFFFFF, self._state, 128, self._data) != 0:
            raise LossGenUnavailable("initstate_r failed")
        self._out = ctypes.c_int32(0)

    def rand(self) -> int:
        self._next(self._data, ctypes.byref(self._out))
        return int(self._out.value)

    def uniform(self) -> np.float32:
        """``(float)rand()/(float)RAND_MAX`` in float32, as ``dnn/lossgen.c:sample_loss_impl``."""
        return np.float32(self.rand()) / np.float32(RAND_MAX)


class LibopusLossGen:
    """libopus' generative loss model, run by one libopus build.

    ``oracle`` is anything with a ``lossgen()`` method returning the model of one build (the
    conformance oracle's ``Oracle.lossgen()``): ``new_state()``, ``prob(state, last_loss, frac)``
    (one step of ``dnn/lossgen.c:sample_loss_impl`` without its draw), ``frac(percent)``
    (opus_demo's ``percent * .01f``) and ``warmup`` (steps ``sample_loss`` discards on first use).
    """

    def __init__(self, oracle: Any):
        try:
            self.model = oracle.lossgen()
        except Exception as e:  # noqa: BLE001 - any failure to build or load it
            raise LossGenUnavailable(f"libopus' loss model is not available: {e}") from e
        self.warmup = int(self.model.warmup)

    def probabilities(self, flags: Iterable[int], percent: float) -> np.ndarray:
        """The model's loss probability for each packet given the previous flags (teacher forcing,
        starting from a fresh state and last_loss = 0, without warm-up)."""
        m = self.model
        st = m.new_state()
        frac = m.frac(percent)
        out, last = [], 0
        for f in flags:
            out.append(m.prob(st, last, frac))
            last = int(f)
        return np.asarray(out, np.float32)

    def generate(
        self, n: int, percent: float, seed: int | np.random.Generator | None = 0, *, draws: str = "numpy"
    ) -> np.ndarray:
        """``n`` flags for a target loss of ``percent`` % (``opus_demo -sim_loss <percent>``),
        after the release's warm-up, each drawn as ``u < p``.

        ``draws="numpy"``: ``u`` from a numpy generator seeded with ``seed``.
        ``draws="libc"``: ``u = (float)rand()/(float)RAND_MAX`` from glibc's ``rand()`` after
        ``srand(seed)`` (:class:`LibcRand`); ``seed`` 0 or 1 gives opus_demo's own draws (it never
        seeds), so the flags equal ``opus_demo -sim_loss`` flag for flag."""
        if not 0.0 <= percent <= 100.0:
            raise ValueError("percent must be in [0, 100]")
        if n < 0:
            raise ValueError("n must be >= 0")
        m = self.model
        total = self.warmup + n
        if draws == "numpy":
            u = _rng(seed).random(total, dtype=np.float32)
            draw = iter(u).__next__
        elif draws == "libc":
            if isinstance(seed, np.random.Generator):
                raise ValueError('draws="libc" needs an integer seed (srand)')
            draw = LibcRand(1 if seed is None else int(seed)).uniform
        else:
            raise ValueError(f"draws must be 'numpy' or 'libc', not {draws!r}")
        st = m.new_state()
        frac = m.frac(percent)
        out = np.zeros(n, np.uint8)
        last = 0
        for i in range(total):
            p = m.prob(st, last, frac)
            last = int(draw() < p)
            if i >= self.warmup:
                out[i - self.warmup] = last
        return out


# ------------------------------------------------------------------------------------------------
# trace files


def parse_trace(text: str) -> np.ndarray:
    """One 0 or 1 per line (blank lines ignored). Anything else raises :class:`FormatError` with
    the byte offset of the offending line."""
    flags: list[int] = []
    off = 0
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        s = line.strip()
        if s:
            if s not in ("0", "1"):
                raise FormatError(f"loss trace line {lineno}: {s[:20]!r} is not 0 or 1", byte_offset=off,
                                  rule="loss trace: one 0/1 per line")
            flags.append(int(s))
        off += len(line.encode())
    return np.asarray(flags, np.uint8)


def format_trace(flags: Iterable[int]) -> str:
    out = []
    for i, f in enumerate(flags):
        if int(f) not in (0, 1):
            raise ValueError(f"flag {i} is {f}, not 0 or 1")
        out.append(f"{int(f)}\n")
    return "".join(out)


def read_trace(path: str | Path) -> np.ndarray:
    return parse_trace(Path(path).read_text())


def write_trace(path: str | Path, flags: Iterable[int]) -> None:
    Path(path).write_text(format_trace(flags))


def burst_lengths(flags: Iterable[int]) -> np.ndarray:
    """Lengths of the runs of consecutive 1s."""
    runs, cur = [], 0
    for f in flags:
        if f:
            cur += 1
        elif cur:
            runs.append(cur)
            cur = 0
    if cur:
        runs.append(cur)
    return np.asarray(runs, np.int64)
