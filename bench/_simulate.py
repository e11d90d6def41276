"""``opus-dred bench simulate``: speed of the whole loss experiment and how it scales with input length.

The default speech clip is repeated to each length (5, 10, 20, 40 s by default) and the experiment of
:func:`opus_dred.experiments._simulate.simulate` runs once per length on one loss condition with all
four configurations: encoding at the matched bitrate (including the matching passes), loss pattern,
receiver + libopus decoding (with and without loss), and the metrics (three PESQ and three STOI
calls per configuration). Frames/s counts 20 ms packets over all configurations: one configuration
of a 10 s input is 500 frames. The exponent is the slope of log(time) against log(length) between
the shortest and the longest input (1: linear).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from opus_dred.experiments import _simulate as S
from opus_dred.libopus._oracle import Oracle
from opus_dred.speech import _corpus as speech


@dataclass
class BenchPoint:
    seconds: float  # input length
    frames: int  # 20 ms frames over all configurations
    total_s: float
    encode_s: float
    decode_s: float
    metrics_s: float

    @property
    def fps(self) -> float:
        return self.frames / self.total_s

    @property
    def fps_without_metrics(self) -> float:
        return self.frames / max(1e-9, self.encode_s + self.decode_s)

    def to_json(self) -> dict:
        return dict(asdict(self), fps=self.fps, fps_without_metrics=self.fps_without_metrics)


def _input(seconds: float, rate: int) -> np.ndarray:
    x = speech.load_clip(None, rate)
    n = int(round(seconds * rate))
    return np.resize(x, n).astype(np.int16)


def bench_simulate(lengths: Sequence[float] = (5, 10, 20, 40), *, build: str = "libopus-1.6.1",
                   bitrate: int = 32000, loss: str = "ge:bursty-20", match: str = "measured",
                   rate: int = 16000, progress=None) -> list[BenchPoint]:
    """One timed run of the experiment per input length (after a short warm-up run that builds and
    loads everything)."""

    oracle = Oracle.for_build(build)
    spec = S.parse_loss(loss)
    S.simulate([("warm-up", _input(1.0, rate))], loss=spec, rate=rate, bitrate=bitrate, match=match,
               oracle=oracle, configs=("plc",))
    out = []
    for sec in lengths:
        x = _input(sec, rate)
        t0 = time.perf_counter()
        r = S.simulate([("bench", x)], loss=spec, rate=rate, bitrate=bitrate, match=match, oracle=oracle)
        total = time.perf_counter() - t0
        t = r.timings
        out.append(BenchPoint(float(sec), int(t["frames"]), total, t["encode_s"], t["decode_s"], t["metrics_s"]))
        if progress:
            progress(sec)
    return out


def scaling_exponent(points: Sequence[BenchPoint]) -> float:
    """Slope of log(total time) against log(length), shortest to longest."""
    a, b = min(points, key=lambda p: p.seconds), max(points, key=lambda p: p.seconds)
    if a.seconds == b.seconds:
        return float("nan")
    return math.log(b.total_s / a.total_s) / math.log(b.seconds / a.seconds)


def print_report(points: Sequence[BenchPoint], *, as_json: bool = False, title: str = "") -> None:
    """The table (rich) or JSON of :func:`bench_simulate`'s points, with the scaling exponent."""
    import json

    if as_json:
        print(json.dumps({"points": [p.to_json() for p in points], "exponent": scaling_exponent(points)}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title or "bench simulate")
    for c in ("input s", "frames", "total s", "frames/s", "encode s", "decode s", "metrics s",
              "frames/s w/o metrics"):
        t.add_column(c, justify="right")
    for p in points:
        t.add_row(f"{p.seconds:g}", str(p.frames), f"{p.total_s:.2f}", f"{p.fps:,.0f}", f"{p.encode_s:.2f}",
                  f"{p.decode_s:.2f}", f"{p.metrics_s:.2f}", f"{p.fps_without_metrics:,.0f}")
    c = Console()
    c.print(t)
    c.print(f"time ∝ length^{scaling_exponent(points):.2f} (1 = linear)")
