"""Plots of the loss experiment (matplotlib, Agg backend, PNG files).

* :func:`plot_signals`: waveform and spectrogram of the clean input and of each configuration decoded
  with loss, lost frames shaded.
* :func:`plot_quality`: PESQ and STOI against the measured loss rate, one line per configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _plt():
    import matplotlib  # lazy: matplotlib is slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib is slow to import

    return plt


def _loss_spans(flags: np.ndarray, frame_s: float) -> list[tuple[float, float]]:
    spans, start = [], None
    for i, f in enumerate(np.asarray(flags).tolist() + [0]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            spans.append((start * frame_s, i * frame_s))
            start = None
    return spans


def plot_signals(path: str | Path, clean: np.ndarray, decoded: Mapping[str, np.ndarray], flags: np.ndarray,
                 rate: int, *, frame_ms: float = 20.0, title: str = "", max_seconds: float | None = 8.0) -> Path:
    """One row per signal (clean first, then ``decoded`` in order): waveform left, spectrogram right,
    lost frames shaded red on both. ``max_seconds`` limits the time axis (None: everything)."""
    plt = _plt()
    sigs = [("clean input", np.asarray(clean))] + [(k, np.asarray(v)) for k, v in decoded.items()]
    n = len(sigs[0][1]) if max_seconds is None else min(len(sigs[0][1]), int(max_seconds * rate))
    spans = [(a, b) for a, b in _loss_spans(flags, frame_ms / 1000.0) if a < n / rate]
    fig, axes = plt.subplots(len(sigs), 2, figsize=(14, 2.0 * len(sigs)), sharex=True, squeeze=False)
    t = np.arange(n) / rate
    for row, (name, x) in enumerate(sigs):
        x = x[:n].astype(np.float64) / 32768.0
        aw, asp = axes[row]
        aw.plot(t[: len(x)], x, lw=0.4, color="k")
        aw.set_ylim(-1, 1)
        aw.set_ylabel(name, fontsize=8)
        asp.specgram(x + 1e-9, NFFT=512, Fs=rate, noverlap=384, cmap="magma", vmin=-140)
        asp.set_ylim(0, rate / 2)
        if row > 0:
            for a, b in spans:
                aw.axvspan(a, b, color="red", alpha=0.25, lw=0)
                asp.axvspan(a, b, color="cyan", alpha=0.25, lw=0)
    axes[0][0].set_title("waveform (shaded: lost packets)", fontsize=9)
    axes[0][1].set_title("spectrogram", fontsize=9)
    axes[-1][0].set_xlabel("s")
    axes[-1][1].set_xlabel("s")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_quality(path: str | Path, summary: Sequence[Mapping], *, title: str = "",
                 clean: Mapping[str, float] | None = None) -> Path:
    """PESQ (left) and STOI (right) against the measured loss rate, one line per configuration, from
    :func:`opus_dred.experiments._simulate.summarize` rows. Dotted: the configuration without loss."""
    plt = _plt()
    by: dict[str, list[Mapping]] = {}
    for d in summary:
        by.setdefault(d["label"], []).append(d)
    fig, (ap, as_) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, ds) in enumerate(by.items()):
        ds = sorted(ds, key=lambda d: d["loss_percent"])
        x = [d["loss_percent"] for d in ds]
        c = f"C{i}"
        ap.plot(x, [d["pesq_clean"] for d in ds], "o-", color=c, label=label)
        as_.plot(x, [d["stoi_clean"] for d in ds], "o-", color=c, label=label)
        ap.plot(x, [d["pesq_clean_noloss"] for d in ds], ":", color=c, lw=1)
        as_.plot(x, [d["stoi_clean_noloss"] for d in ds], ":", color=c, lw=1)
    ap.set_xlabel("packet loss (%)")
    ap.set_ylabel("PESQ-WB (MOS-LQO) vs clean")
    as_.set_xlabel("packet loss (%)")
    as_.set_ylabel("STOI vs clean")
    ap.grid(alpha=0.3)
    as_.grid(alpha=0.3)
    ap.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
