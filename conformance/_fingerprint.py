"""The numerics fingerprint of an implementation: which arithmetic path its DRED features match bit for bit.

libopus itself gives different features on different builds and CPUs (``docs/numerics.md``): the AVX2 path of
a default x86-64 build, the SSE2 path of a generic one, each with its CPU's ``RCPPS`` (AMD's and Intel's
differ), libopus' plain-C arithmetic, and the float network with exact activations. The reference decoder
emulates each of them (``refimpl._decode.NUMERICS``). For the feature cases an implementation answered (a
sample of at most :data:`SAMPLE`, chosen by a hash of the case id, so the same cases for every
implementation and every run), the expected features are recomputed under every preset (:data:`PRESETS`;
once per case and preset, shared by the implementations of a run) and compared with the implementation's:
the fingerprint names the presets it matches bit for bit on every sampled case, or else the closest by the
``dred_compare`` figures (mean total, then mean max). An implementation that matches no x86-64 libopus
build is told why, in one sentence from ``docs/numerics.md``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable

import numpy as np
from opus_dred.conformance._metric import FeatureThresholds, MetricError, compare_features
from opus_dred.conformance._runner import Outcome, RunReport, case_id
from opus_dred.refimpl._decode import decode_dred
from opus_dred.vectors._expected import dred_stream_features

#: At most this many feature cases per implementation.
SAMPLE = 24

#: The presets told apart, closest to a default x86-64 libopus build first (the ``-host`` names of
#: ``refimpl._decode.NUMERICS`` are one of these on any machine).
PRESETS = ("libopus-avx2", "libopus-avx2-intel", "libopus-sse2", "libopus-sse2-intel", "libopus-c", "float")

#: What each preset is, in a reader's words.
LABELS = {
    "libopus-avx2": "libopus AVX2 on AMD (a default x86-64 build; the canonical vectors' numerics)",
    "libopus-avx2-intel": "libopus AVX2 on Intel (a default x86-64 build)",
    "libopus-sse2": "libopus SSE2 on AMD (an x86-64 build with --disable-intrinsics --disable-rtcd)",
    "libopus-sse2-intel": "libopus SSE2 on Intel (an x86-64 build with --disable-intrinsics --disable-rtcd)",
    "libopus-c": "libopus' plain-C arithmetic (no SIMD; not an x86-64 build)",
    "float": "the float network with exact activations",
}

#: The presets an x86-64 libopus build runs.
X86 = PRESETS[:4]

#: Why an implementation whose features match (or come closest to) a preset is not bit-exact with an
#: x86-64 libopus build (docs/numerics.md §3).
WHY = {
    "float": "your network runs in float with exact tanh/sigmoid; libopus quantises the input of every int8 "
             "layer to 8 bits, multiplies by the int8 weights exactly, and uses rational tanh/sigmoid "
             "approximations that divide with RCPPS, an approximate reciprocal",
    "libopus-c": "you compute as libopus' plain C does (signed 8-bit inputs, the plain bias, the rational "
                 "activations with an exact division, sigmoid as ½ + ½ tanh(x/2)); x86-64 builds quantise to "
                 "unsigned 8-bit inputs with the su-bias and divide with RCPPS",
    "x86": "your features are close to an x86-64 build's but not equal bit for bit: the usual causes are the "
           "RCPPS reciprocal (AMD's and Intel's differ in about half their entries), fused multiply-adds "
           "where the AVX2 kernels fuse and not elsewhere, the rounding of 127·x ties (even for AVX2, up for "
           "SSE2), and the input-by-input summation of the float layers",
}

_THRESHOLDS = FeatureThresholds()


def expected_features(case: Any, preset: str) -> np.ndarray:
    """The features a case expects under the numerics ``preset`` (float32 ``[frames, 20]``)."""
    if case.handler == "dred_stream":
        return dred_stream_features(case.profile, bytes(case.inputs["stream"]), preset)
    p = case.parameters
    mds = p.get("max_dred_samples")
    r = decode_dred(bytes(case.inputs["packet"]), case.profile, max_dred_samples=None if mds is None else int(mds),
                    sampling_rate=int(p.get("sampling_rate", 48000)), numerics=preset)
    return np.asarray(r.features, np.float32)


def _rank(cid: str) -> str:
    return hashlib.sha256(cid.encode()).hexdigest()


#: the handlers whose features fingerprint a decoder's arithmetic
FINGERPRINT_HANDLERS = ("dred_features", "dred_stream")


def answered_in_order(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """The decoder's feature cases (``dred_features``, ``dred_stream``) an implementation answered with at least one
    frame, ordered by a hash of the case id (the same order for every implementation that answered them). The
    encoder's ``features`` cases say nothing about a decoder's arithmetic and are left out."""
    answered = [o for o in outcomes if o.handler in FINGERPRINT_HANDLERS and o.features is not None and o.metric
                and o.metric.get("frames")]
    return sorted(answered, key=lambda o: _rank(o.case))


def sample_outcomes(outcomes: Iterable[Outcome], n: int = SAMPLE) -> list[Outcome]:
    """The first ``n`` of :func:`answered_in_order`."""
    return answered_in_order(outcomes)[:n]


def _figures(exp: np.ndarray, got: np.ndarray) -> tuple[bool, dict | None]:
    """(bit-exact, dred_compare figures or None when the frame counts differ)."""
    exact = exp.shape == got.shape and np.array_equal(exp.view(np.uint32), got.view(np.uint32))
    if exp.shape != got.shape:
        return False, None
    try:
        m = compare_features(exp, got, _THRESHOLDS)
    except MetricError:
        return False, None
    return exact, {"total": m.total, "max": m.max, "pitch": m.pitch if m.pitch_frames else None}


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(xs)) if xs else None


def _expected(o: Outcome, preset: str, cases: dict[str, Any], cache: dict) -> np.ndarray:
    key = (o.case, preset)
    if key not in cache:
        cache[key] = expected_features(cases[o.case], preset)
    return cache[key]


def score_presets(picked: list[Outcome], cases: dict[str, Any], cache: dict) -> dict[str, dict]:
    """Per preset: how many sampled cases are bit-exact, and the mean ``dred_compare`` figures."""
    out = {}
    for preset in PRESETS:
        exact, figs = 0, []
        for o in picked:
            e, f = _figures(_expected(o, preset, cases, cache), np.asarray(o.features, np.float32))
            exact += e
            figs.append(f or {"total": math.inf, "max": math.inf, "pitch": None})
        out[preset] = {"bit_exact": exact, "total": _mean([f["total"] for f in figs]),
                       "max": _mean([f["max"] for f in figs]), "pitch": _mean([f["pitch"] for f in figs]),
                       "comparable": sum(1 for f in figs if math.isfinite(f["total"]))}
    return out


def break_tie(matched: list[str], rest: list[Outcome], cases: dict[str, Any], cache: dict) -> tuple[list[str], int]:
    """Presets bit-exact on the whole sample can agree on it (AVX2 and SSE2 differ only at exact ties of
    ``127·x`` and where the AVX2 kernels fuse: a few cases of a suite): the further answered cases, in order,
    for those presets only, until one is left or the cases run out. Returns (the presets still bit-exact,
    cases looked at)."""
    seen = 0
    for o in rest:
        if len(matched) <= 1:
            break
        seen += 1
        got = np.asarray(o.features, np.float32)
        still = [p for p in matched if _figures(_expected(o, p, cases, cache), got)[0]]
        if still:  # bit-exact with none of them here: they stay tied, the case is not theirs to settle
            matched = still
    return matched, seen


def _closest(scores: dict[str, dict]) -> str:
    def key(p: str) -> tuple:
        s = scores[p]
        return (-s["bit_exact"], -s["comparable"], s["total"] if s["total"] is not None else math.inf,
                s["max"] if s["max"] is not None else math.inf)
    return min(PRESETS, key=key)


def _why(matched: list[str], closest: str) -> str:
    """The sentence for an implementation bit-exact with no x86-64 build ("" when it is with one)."""
    if any(p in X86 for p in matched):
        return ""
    basis = matched[0] if matched else closest
    return WHY.get(basis, WHY["x86"])


def fingerprint(outcomes: Iterable[Outcome], cases: dict[str, Any], *, n: int = SAMPLE,
                cache: dict | None = None) -> dict:
    """The fingerprint of one implementation's outcomes (``cases``: case id → case): ``matched`` (presets
    bit-exact on every sampled case), ``closest`` (when none is), ``scores`` per preset, ``summary`` and
    ``why`` (sentences), ``sampled`` (the case ids)."""
    ordered = answered_in_order(outcomes)
    picked = ordered[:n]
    if not picked:
        return {"sampled": [], "matched": [], "closest": None, "scores": {}, "why": "", "tie_break": 0,
                "summary": "no feature case answered: no numerics fingerprint"}
    cache = {} if cache is None else cache
    scores = score_presets(picked, cases, cache)
    matched = [p for p in PRESETS if scores[p]["bit_exact"] == len(picked)]
    matched, seen = break_tie(matched, ordered[n:], cases, cache)
    closest = None if matched else _closest(scores)
    if matched:
        what = matched[0] + f" ({LABELS[matched[0]]})" if len(matched) == 1 else " = ".join(matched)
        summary = f"bit-exact with {what} on all {len(picked)} sampled feature cases"
        if seen:
            summary += (f"; {seen} more looked at to tell them apart" if len(matched) == 1 else
                        f"; none of {seen} more answered cases tells them apart")
    else:
        s = scores[closest]
        summary = (f"bit-exact with no preset on all {len(picked)} sampled feature cases; closest {closest} "
                   f"({LABELS[closest]}): {s['bit_exact']}/{len(picked)} bit-exact, mean total "
                   f"{_fmt(s['total'])}, mean max {_fmt(s['max'])}, mean pitch {_fmt(s['pitch'])}")
    return {"sampled": [o.case for o in picked], "matched": matched, "closest": closest, "scores": scores,
            "tie_break": seen, "summary": summary, "why": _why(matched, closest)}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def fingerprint_report(report: RunReport, cases: Iterable[Any], *, n: int = SAMPLE) -> dict[str, dict]:
    """Fill ``report.fingerprints`` for every implementation of a run (one cache for the whole run)."""
    by_id = {case_id(c): c for c in cases}
    cache: dict = {}
    for r in report.impls:
        report.fingerprints[r.impl] = fingerprint(r.outcomes, by_id, n=n, cache=cache)
    return report.fingerprints
