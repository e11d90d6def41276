"""The conformance runner: every case of a suite through each implementation, compared with the expected values.

For one case an adapter (:mod:`opus_dred.conformance._adapters`) returns a :class:`Result`: the handler's outputs
named as in the case's ``expected`` (``meta.json``), or the error the implementation reported. The runner
compares them (:func:`compare_case`), field by field in the handler's order (``Handler.fields`` of
:mod:`opus_dred.vectors._handlers`, so that the first difference reported is the one that explains the others:
``found`` before ``dred_end``), and records a :class:`Outcome`:

``pass``
    every expected field the implementation reported is equal (exact: same bytes, same integers, same float32
    bit patterns), features within the case's ``dred_compare`` tolerance (``docs/metric.md``). ``partial`` lists
    fields the implementation could not report (e.g. libopus gives no byte offset for an invalid packet); a
    pass needs at least one compared field. With ``strict`` a partial answer fails instead, at the first
    field not reported (the handler registry says which fields are optional; strictness takes them all).
``fail``
    the first differing field (a path such as ``payload.latents_q[3][7]``), its offset (byte offset for bytes,
    row/frame for arrays, index for lists), what was expected and what came.
``behaviour``
    the implementation departs from the case only where the case's profile names a behaviour rule and the
    implementation follows another variant of it (``chunk_bound``: how many latents a bounded request decodes;
    :data:`opus_dred.bitstream._profiles.BEHAVIOUR_RULES`), and agrees with the case on everything both variants
    decode: an API difference, not a decoding failure. ``rule`` names it (``chunk_bound=master-2026-06``). Which
    fields of a case are normative and which behaviour is the case's ``checks``
    (:func:`opus_dred.vectors._checks.case_checks`; stored in ``meta.json`` by the generator).
``skip``
    the implementation does not support this handler or profile (the adapter says so, never an error).
``error``
    the implementation crashed, hung past its timeout, or answered outside the protocol.

``dred_compare`` figures (total, max, pitch; the per-frame error for plots) are attached wherever features are
compared. The reports are in :mod:`opus_dred.conformance._report`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from opus_dred.bitstream._profiles import get_profile
from opus_dred.conformance._metric import AudioThresholds, FeatureThresholds, MetricError, compare_audio, compare_features
from opus_dred.vectors._checks import COUNT_FIELDS, case_checks
from opus_dred.vectors._handlers import HANDLERS, in_compare_order

from opus_dred import __version__

STATUSES = ("pass", "behaviour", "fail", "skip", "error")
FEATURE_METRIC = "dred_compare-features"
AUDIO_METRIC = "dred_compare-audio"


@dataclass
class ErrorInfo:
    """An error an implementation reported for its input: ``cls`` is the class name of
    :mod:`opus_dred.bitstream._errors` (``PacketError``, ``ExtensionError``, ``DredPayloadError``,
    ``TruncatedError``, ...) or ``None`` when the implementation only says "rejected" (libopus' return
    codes); ``byte_offset`` ``None`` when not known; ``code`` a native code (e.g. ``OPUS_INVALID_PACKET``)."""

    cls: str | None
    byte_offset: int | None = None
    message: str = ""
    code: str | None = None

    def to_json(self) -> dict:
        return {"class": self.cls, "byte_offset": self.byte_offset, "message": self.message, "code": self.code}


@dataclass
class Result:
    """What an adapter returns for one case: ``values`` (named as the case's ``expected``), or ``error`` (the
    implementation rejected the input), or ``unsupported``; ``not_reported`` names expected fields the
    implementation cannot produce (compared as *partial*, never as failures); ``failure`` is an adapter-level
    failure (crash, timeout, protocol violation) and makes the outcome ``error``; ``stderr_tail`` the last lines
    the implementation wrote to its standard error before a failure (bounded; empty when none)."""

    values: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    unsupported: bool = False
    reason: str = ""
    not_reported: tuple[str, ...] = ()
    failure: str | None = None
    stderr_tail: str = ""


@dataclass
class Difference:
    """The first difference found: ``field`` a path into the expected values, ``offset`` the byte offset
    (bytes), row/frame (arrays) or index (lists) where it is, ``expected``/``got`` short renderings."""

    field: str
    offset: int | None
    expected: str
    got: str
    detail: str = ""

    def __str__(self) -> str:
        at = f" at offset {self.offset}" if self.offset is not None else ""
        d = f" ({self.detail})" if self.detail else ""
        return f"{self.field}{at}: expected {self.expected}, got {self.got}{d}"


@dataclass
class Outcome:
    """One case run by one implementation."""

    impl: str
    case: str  # profile/handler/suite/name
    profile: str
    handler: str
    suite: str
    name: str
    status: str
    partial: tuple[str, ...] = ()
    field: str | None = None
    offset: int | None = None
    detail: str = ""
    metric: dict | None = None
    frame_error: list[float] | None = None
    seconds: float = 0.0
    stderr_tail: str = ""  # an ``error``'s last lines of the implementation's standard error
    #: for ``behaviour``: the profile rule and the variant the implementation follows (``chunk_bound=...``)
    rule: str | None = None
    #: the features the implementation answered (float32 ``[frames, 20]``) where a case compares features,
    #: kept in memory for the numerics fingerprint, never written to the reports
    features: np.ndarray | None = None

    @property
    def bit_exact(self) -> bool:
        """Features compared and equal bit for bit."""
        return bool(self.metric and self.metric.get("bit_exact"))

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("features")
        d["partial"] = list(self.partial)
        return _json_safe(d)


@dataclass
class ImplRun:
    impl: str
    description: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        c = {s: 0 for s in STATUSES}
        for o in self.outcomes:
            c[o.status] += 1
        return c

    def matrix(self) -> dict[str, dict[str, int]]:
        """handler → status → count."""
        m: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            m.setdefault(o.handler, {s: 0 for s in STATUSES})[o.status] += 1
        return m

    def quality(self) -> dict[str, dict[str, int | None]]:
        """handler → ``pass``, ``partial`` (passes with a field not reported), ``compared_features`` (cases whose
        features were compared, pass or fail) and ``bit_exact`` (of those, equal bit for bit); the two feature
        counts are ``None`` for a handler none of whose cases compared features. Key ``total`` sums them."""
        q: dict[str, dict[str, int | None]] = {}
        for o in self.outcomes:
            c = q.setdefault(o.handler, {"pass": 0, "partial": 0, "compared_features": 0, "bit_exact": 0})
            c["pass"] += o.status == "pass"
            c["partial"] += o.status == "pass" and bool(o.partial)
            c["compared_features"] += o.metric is not None
            c["bit_exact"] += o.bit_exact
        total = {k: sum(c[k] for c in q.values()) for k in ("pass", "partial", "compared_features", "bit_exact")}
        for c in list(q.values()) + [total]:
            if not c["compared_features"]:
                c["compared_features"] = c["bit_exact"] = None
        return {**q, "total": total}


@dataclass
class RunReport:
    suite: str
    impls: list[ImplRun]
    profiles: list[str]
    handlers: list[str]
    cases: int
    generator: str = ""
    created: str = ""
    strict: bool = False
    #: implementation → its numerics fingerprint (:mod:`opus_dred.conformance._fingerprint`), when computed
    fingerprints: dict[str, dict] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "format": "opus-dred-conform-report/1",
            "suite": self.suite,
            "generator": self.generator,
            "created": self.created,
            "profiles": self.profiles,
            "handlers": self.handlers,
            "cases": self.cases,
            "strict": self.strict,
            "implementations": [
                {
                    "name": r.impl,
                    "description": r.description,
                    "seconds": round(r.seconds, 3),
                    "counts": r.counts(),
                    "matrix": r.matrix(),
                    "quality": r.quality(),
                    "fingerprint": _json_safe(self.fingerprints.get(r.impl)),
                    "outcomes": [o.to_json() for o in r.outcomes],
                }
                for r in self.impls
            ],
        }


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        return _json_safe(v.item())
    return v


def case_id(case: Any) -> str:
    return f"{case.profile}/{case.handler}/{case.suite}/{case.name}"


# ------------------------------------------------------------------------------------------------
# Comparison


def _short(v: Any, limit: int = 60) -> str:
    if isinstance(v, (bytes, bytearray)):
        s = bytes(v).hex()
        return f"{len(v)} bytes {s[:limit]}{'…' if len(s) > limit else ''}"
    if isinstance(v, np.ndarray):
        return f"array{list(v.shape)} {v.dtype}"
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "…"


def _as_array(got: Any, like: np.ndarray) -> np.ndarray | None:
    try:
        return np.asarray(got, dtype=like.dtype)
    except (TypeError, ValueError):
        return None


def per_frame_error(ref: np.ndarray, test: np.ndarray) -> list[float]:
    """RMS difference per feature frame over the 19 non-pitch features (pitch taken on its own by
    ``dred_compare``), for the error-per-frame plot. Frames past the shorter array are left out."""
    n = min(ref.shape[0], test.shape[0])
    if n == 0 or ref.ndim != 2:
        return []
    d = (np.asarray(ref[:n], np.float64) - np.asarray(test[:n], np.float64))
    cols = [i for i in range(d.shape[1]) if i != 18]
    return [float(x) for x in np.sqrt(np.mean(d[:, cols] ** 2, axis=1))]


def _compare_features(exp: np.ndarray, got: np.ndarray, tol: dict, path: str, extra: dict) -> Difference | None:
    g = _as_array(got, exp)
    if g is None:
        return Difference(path, None, _short(exp), _short(got), "not an array of numbers")
    if g.ndim == 1 and exp.ndim == 2 and g.size % exp.shape[1] == 0:
        g = g.reshape(-1, exp.shape[1])
    if g.ndim != exp.ndim or g.shape[1:] != exp.shape[1:]:
        return Difference(path, None, f"shape {list(exp.shape)}", f"shape {list(g.shape)}")
    bit_exact = g.shape == exp.shape and np.array_equal(exp.view(np.uint32), g.astype(np.float32).view(np.uint32))
    extra["frame_error"] = per_frame_error(exp, g)
    extra["features"] = g.astype(np.float32)
    if exp.shape[0] != g.shape[0]:
        return Difference(path, min(exp.shape[0], g.shape[0]), f"{exp.shape[0]} frames", f"{g.shape[0]} frames",
                          "frame count")
    if exp.shape[0] == 0:
        extra["metric"] = {"frames": 0, "bit_exact": True, "passed": True}
        return None
    th = FeatureThresholds(float(tol.get("total", 0.5)), float(tol.get("max", 0.15)), float(tol.get("pitch", 0.02)))
    try:
        m = compare_features(exp.astype(np.float32), g.astype(np.float32), th)
    except MetricError as exc:  # pragma: no cover - shapes are checked above
        return Difference(path, None, _short(exp), _short(g), str(exc))
    passed = m.passed
    if m.pitch_frames == 0:
        # no voiced reference frame: the tool divides 0 by 0 (pitch = NaN, comparison fails); here the pitch
        # error is not defined and the verdict rests on total and max
        passed = bool(m.total <= th.total and m.max <= th.max)
    passed = passed or bool(bit_exact)
    fig = {"total": m.total, "max": m.max, "pitch": m.pitch if m.pitch_frames else None, "frames": m.frames,
           "pitch_frames": m.pitch_frames, "thresholds": [th.total, th.max, th.pitch], "passed": passed,
           "tool_passed": m.passed, "bit_exact": bool(bit_exact)}
    max_abs = tol.get("max_abs")
    diff = np.abs(exp.astype(np.float64) - g.astype(np.float64))
    fig["max_abs"] = float(np.nanmax(diff)) if diff.size else 0.0
    extra["metric"] = fig
    worst = int(np.argmax(np.nan_to_num(np.asarray(extra["frame_error"]), nan=np.inf))) if extra["frame_error"] else None
    if not passed:
        return Difference(path, worst, "within dred_compare thresholds " + " ".join(f"{t:g}" for t in fig["thresholds"]),
                          f"total {m.total:.4g}, max {m.max:.4g}, pitch {m.pitch:.4g}", "worst frame at offset")
    if max_abs is not None and not fig["max_abs"] <= float(max_abs):
        return Difference(path, worst, f"max |Δ| <= {max_abs}", f"max |Δ| = {fig['max_abs']:.4g}")
    return None


def _compare_audio(exp: np.ndarray, got: Any, tol: dict, path: str, extra: dict) -> Difference | None:
    """16 kHz int16 audio: equal samples pass; otherwise ``dred_compare -audio`` of the expected signal (the
    reference) and the answer, within the case's thresholds (err4, err16, pitch)."""
    g = _as_array(got, exp)
    if g is None or g.ndim != 1:
        return Difference(path, None, _short(exp), _short(got), "not 1-D int16 samples")
    if g.shape != exp.shape:
        return Difference(path, min(len(exp), len(g)), f"{len(exp)} samples", f"{len(g)} samples", "length")
    th = AudioThresholds(float(tol.get("err4", 0.25)), float(tol.get("err16", 1.0)), float(tol.get("pitch", 0.15)))
    fig: dict = {"thresholds": [th.err4, th.err16, th.pitch], "samples": int(len(exp))}
    if np.array_equal(exp, g):
        extra["metric"] = {**fig, "err4": 0.0, "err16": 0.0, "pitch": 0.0, "passed": True, "bit_exact": True}
        return None
    try:
        m = compare_audio(exp, g, th)
    except MetricError as exc:
        return Difference(path, None, _short(exp), _short(g), str(exc))
    first = int(np.argmax(exp != g))
    extra["metric"] = {**fig, "err4": m.err4, "err16": m.err16, "pitch": m.pitch, "frames": m.frames,
                       "pitch_frames": m.pitch_frames, "passed": m.passed, "bit_exact": False,
                       "first_difference": first}
    if not m.passed:
        return Difference(path, first, "within dred_compare -audio thresholds " +
                          " ".join(f"{t:g}" for t in fig["thresholds"]),
                          f"err4 {m.err4:.4g}, err16 {m.err16:.4g}, pitch {m.pitch:.4g}", "first differing sample at offset")
    return None


def compare_values(expected: Any, got: Any, path: str = "", *, tolerance: dict | None = None,
                   extra: dict | None = None, missing: list[str] | None = None) -> Difference | None:
    """First difference between ``expected`` and ``got`` (``None`` if equal), walking dicts in key order, lists
    and arrays in index order. Floats compare by float32/float64 bit pattern unless ``tolerance`` names the
    ``dred_compare-features`` metric, which then applies to arrays of 20 columns (features). Keys of a dict
    that ``got`` lacks are appended to ``missing`` when it is given (reported as partial), else differ."""
    tol = tolerance or {}
    extra = extra if extra is not None else {}
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return Difference(path or "(value)", None, "an object", _short(got))
        for k in expected:
            p = f"{path}.{k}" if path else str(k)
            if k not in got:
                if missing is not None:
                    missing.append(p)
                    continue
                return Difference(p, None, _short(expected[k]), "nothing", "field not reported")
            d = compare_values(expected[k], got[k], p, tolerance=tol, extra=extra, missing=missing)
            if d:
                return d
        return None
    if isinstance(expected, np.ndarray):
        if tol.get("metric") == FEATURE_METRIC and expected.dtype.kind == "f" and expected.ndim == 2 \
                and expected.shape[1] == 20:
            return _compare_features(expected, got, tol, path, extra)
        if tol.get("metric") == AUDIO_METRIC and expected.dtype == np.int16 and expected.ndim == 1:
            return _compare_audio(expected, got, tol, path, extra)
        g = _as_array(got, expected)
        if g is None:
            return Difference(path, None, _short(expected), _short(got), "not an array")
        if g.size == expected.size and g.shape != expected.shape:
            g = g.reshape(expected.shape)
        if g.shape != expected.shape:
            return Difference(path, None, f"shape {list(expected.shape)}", f"shape {list(g.shape)}")
        if expected.size == 0:
            return None
        if expected.dtype.kind == "f":
            ibits = np.dtype(f"u{expected.dtype.itemsize}")
            ne = np.ascontiguousarray(expected).view(ibits) != np.ascontiguousarray(g).view(ibits)
        else:
            ne = expected != g
        if np.any(ne):
            idx = tuple(int(i) for i in np.argwhere(ne)[0])
            return Difference(f"{path}{list(idx)}", idx[0], repr(expected[idx].item()), repr(g[idx].item()),
                              f"{int(ne.sum())} of {ne.size} values differ")
        return None
    if isinstance(expected, (bytes, bytearray)):
        if isinstance(got, str):
            try:
                got = bytes.fromhex(got)
            except ValueError:
                return Difference(path, None, _short(expected), _short(got), "not bytes")
        if not isinstance(got, (bytes, bytearray)):
            return Difference(path, None, _short(expected), _short(got), "not bytes")
        e, g = bytes(expected), bytes(got)
        if e == g:
            return None
        i = next((j for j in range(min(len(e), len(g))) if e[j] != g[j]), min(len(e), len(g)))
        return Difference(path, i, e[i:i + 8].hex() or "end", g[i:i + 8].hex() or "end",
                          f"lengths {len(e)} and {len(g)}")
    if isinstance(expected, (list, tuple)):
        if isinstance(got, np.ndarray):
            got = got.tolist()
        if not isinstance(got, (list, tuple)):
            return Difference(path, None, f"a list of {len(expected)}", _short(got))
        for i, (e, g) in enumerate(zip(expected, got)):
            d = compare_values(e, g, f"{path}[{i}]", tolerance=tol, extra=extra, missing=missing)
            if d:
                if d.offset is None:
                    d.offset = i
                return d
        if len(expected) != len(got):
            n = min(len(expected), len(got))
            return Difference(f"{path}[{n}]", n, f"{len(expected)} items", f"{len(got)} items", "length")
        return None
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        if isinstance(got, np.generic):
            got = got.item()
        if got == expected and type(got) is type(expected):
            return None
        return Difference(path, None, _short(expected), _short(got))
    if isinstance(expected, (int, np.integer)):
        if isinstance(got, np.generic):
            got = got.item()
        if isinstance(got, (int, np.integer)) and not isinstance(got, bool) and int(got) == int(expected):
            return None
        return Difference(path, None, repr(int(expected)), _short(got))
    if isinstance(expected, (float, np.floating)):
        if isinstance(got, np.generic):
            got = got.item()
        if isinstance(got, (int, float)) and not isinstance(got, bool):
            e, g = float(expected), float(got)
            if e == g or (math.isnan(e) and math.isnan(g)):
                return None
        return Difference(path, None, repr(float(expected)), _short(got))
    return None if expected == got else Difference(path, None, _short(expected), _short(got))


def _error_expected(case: Any) -> dict | None:
    err = case.expected.get("error") if isinstance(case.expected, dict) else None
    return err if isinstance(err, dict) and "class" in err else None


def compare_case(case: Any, result: Result, impl: str, *, strict: bool = False) -> Outcome:
    """Judge one :class:`Result` against ``case.expected``; with ``strict``, a pass with a field not reported
    (partial) fails at that field."""
    o = _judge(case, result, impl)
    if strict and o.status == "pass" and o.partial:
        o.status, o.field = "fail", o.partial[0]
        o.detail = f"strict: {_not_reported(case.handler, o.partial)}"
    return o


def _not_reported(handler: str, fields: Sequence[str]) -> str:
    """"not reported: a, b; optional, not reported: c": the fields an answer left out, required ones first."""
    h = HANDLERS.get(handler)
    opt = [f for f in fields if h is not None and h.is_optional(f)]
    req = [f for f in fields if f not in opt]
    parts = ([f"not reported: {', '.join(req)}"] if req else []) + \
        ([f"optional, not reported: {', '.join(opt)}"] if opt else [])
    return "; ".join(parts)


def _judge(case: Any, result: Result, impl: str) -> Outcome:
    o = Outcome(impl=impl, case=case_id(case), profile=case.profile, handler=case.handler, suite=case.suite,
                name=case.name, status="pass")
    if result.failure is not None:
        o.status, o.detail, o.stderr_tail = "error", result.failure, result.stderr_tail
        return o
    if result.unsupported:
        o.status, o.detail = "skip", result.reason or "not supported"
        return o
    exp_err = _error_expected(case)
    if exp_err is not None:
        return _judge_error(o, exp_err, result)
    if result.error is not None:
        e = result.error
        o.status, o.field, o.offset = "fail", "(error)", e.byte_offset
        o.detail = f"rejected the input ({e.cls or e.code or 'error'}{': ' + e.message if e.message else ''}); expected values"
        return o
    got = result.values or {}
    missing: list[str] = []
    extra: dict = {}
    reported = {k: v for k, v in case.expected.items() if k not in result.not_reported}
    expected = in_compare_order(case.handler, reported)
    d = compare_values(expected, got, tolerance=case.tolerance or {}, extra=extra, missing=missing)
    o.metric = extra.get("metric")
    o.frame_error = extra.get("frame_error")
    o.features = extra.get("features")
    o.partial = tuple(dict.fromkeys(list(result.not_reported) + missing))
    if d is not None and (b := _behaviour(case, expected, got, d)) is not None:
        rule, variant, detail, bextra, d2 = b
        if d2 is None:
            o.status, o.field, o.rule, o.detail = "behaviour", d.field, f"{rule}={variant}", detail
            o.metric = bextra.get("metric", o.metric)
            return o
        d = Difference(d2.field, d2.offset, d2.expected, d2.got, (d2.detail + "; " if d2.detail else "") + detail)
    if d is not None:
        o.status, o.field, o.offset, o.detail = "fail", d.field, d.offset, str(d)
    elif case.expected and not any(k in got for k in expected):
        o.status, o.detail = "error", "no expected field was reported"
    elif o.partial:
        o.detail = "partial: " + _not_reported(case.handler, o.partial)
    return o


def checks_of(case: Any) -> dict:
    """The case's ``checks`` (normative and behaviour fields, the rules it depends on): from its ``meta.json``,
    else computed from its inputs (:func:`opus_dred.vectors._checks.case_checks`)."""
    meta = getattr(case, "meta", None) or {}
    if isinstance(meta.get("checks"), dict):
        return meta["checks"]
    try:
        return case_checks(case.handler, case.profile, dict(case.inputs), dict(case.parameters), case.expected)
    except Exception:  # noqa: BLE001 - an unknown profile or unreadable input: no rule to name
        return {"normative": [], "behaviour": [], "rules": {}}


def _top(path: str) -> str:
    """The expected field a difference's path starts in (``payload.nb_latents`` for ``payload.nb_latents``,
    ``features`` for ``features[3][2]``, ``payload.latents_q`` for ``payload.latents_q[2][0]``)."""
    head = path.split("[", 1)[0]
    parts = head.split(".")
    return ".".join(parts[:2]) if parts[0] == "payload" else parts[0]


def _behaviour(case: Any, expected: dict, got: dict,
               d: Difference) -> tuple[str, str, str, dict, Difference | None] | None:
    """``(rule, variant, detail, extra, None)`` when the difference ``d`` is a behaviour difference: the case
    depends on the ``chunk_bound`` rule, the implementation's latent count is another variant's, and on the
    latents both variants decode it agrees with the case (every other field equal too). Where the count is
    another variant's but a value differs, the last item is that difference (a failure the rule does not
    explain). ``None`` when the count is no variant's."""
    if case.handler not in COUNT_FIELDS or _top(d.field) not in COUNT_FIELDS[case.handler]:
        return None
    rule = checks_of(case).get("rules", {}).get("chunk_bound")
    if not rule:
        return None
    own = rule.get("profile")
    for variant, vals in rule.get("variants", {}).items():
        if variant == own:
            continue
        n_own = rule["variants"].get(own, {}).get("nb_latents")
        n_var = vals.get("nb_latents")
        if n_own is None or n_var is None or _count(case.handler, got) != n_var:
            continue
        k = min(n_own, n_var)
        exp2, got2 = _clip(case.handler, expected, k, vals), _clip(case.handler, got, k, None)
        extra: dict = {}
        d2 = compare_values(exp2, got2, tolerance=case.tolerance or {}, extra=extra, missing=[])
        prof = case.profile
        if d2 is not None:
            return "chunk_bound", variant, f"the latent count follows chunk_bound={variant} ({n_var}; the profile " \
                f"{prof} says {own}: {n_own}), but a decoded value differs", extra, d2
        detail = (f"behaviour rule chunk_bound: the implementation follows {variant} ({n_var} latents, the "
                  f"profile {prof} says {own}: {n_own}); equal on the {k} latent(s) both decode")
        try:
            spec = get_profile(prof)
            detail += f" (profile rules: {', '.join(f'{a}={b}' for a, b in spec.rules().items())})"
        except Exception:  # noqa: BLE001 - the detail only
            pass
        return "chunk_bound", variant, detail, extra, None
    return None


def _count(handler: str, values: dict) -> int | None:
    v = values.get("payload", {}).get("nb_latents") if handler == "dred_payload" else values.get("nb_latents")
    if isinstance(v, np.generic):
        v = v.item()
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _rows(v: Any, n: int) -> Any:
    if isinstance(v, np.ndarray):
        return v[:n]
    if isinstance(v, list):
        return v[:n]
    return v


def _clip(handler: str, values: dict, k: int, variant: dict | None) -> dict:
    """``values`` cut to the first ``k`` latents (4 feature frames each), with the variant's counts put in."""
    out = dict(values)
    if handler == "dred_payload":
        pl = dict(out.get("payload", {}))
        for key in ("q_levels", "latents_q"):
            if key in pl:
                pl[key] = _rows(pl[key], k)
        if variant is not None:
            pl["nb_latents"] = variant["nb_latents"]
        out["payload"] = pl
        if "latents" in out:
            out["latents"] = _rows(np.asarray(out["latents"]), k)
    else:
        if "features" in out:
            out["features"] = _rows(np.asarray(out["features"], np.float32), 4 * k)
        if variant is not None:
            out["nb_latents"] = variant["nb_latents"]
            if "ret" in out:
                out["ret"] = variant["ret"]
    return out


def _judge_error(o: Outcome, exp: dict, result: Result) -> Outcome:
    """``invalid`` cases: class and byte offset exact; a class-only or "rejected"-only answer is partial."""
    e = result.error
    if e is None and result.values and isinstance(result.values.get("error"), dict):
        v = result.values["error"]
        e = ErrorInfo(v.get("class"), v.get("byte_offset"), v.get("message", ""), v.get("code"))
    want = f"{exp.get('class')} at byte {exp.get('byte_offset')}"
    if e is None:
        o.status, o.field, o.offset = "fail", "error.class", exp.get("byte_offset")
        o.detail = f"accepted the input; expected {want}"
        return o
    partial = []
    if e.cls is None:
        partial.append("error.class")
    elif e.cls != exp.get("class"):
        o.status, o.field, o.offset = "fail", "error.class", exp.get("byte_offset")
        o.detail = f"error.class: expected {exp.get('class')}, got {e.cls}"
        return o
    if "byte_offset" in exp:
        if e.byte_offset is None:
            partial.append("error.byte_offset")
        elif exp["byte_offset"] is not None and int(e.byte_offset) != int(exp["byte_offset"]):
            o.status, o.field, o.offset = "fail", "error.byte_offset", exp["byte_offset"]
            o.detail = f"error.byte_offset: expected {exp['byte_offset']}, got {e.byte_offset} ({e.cls})"
            return o
    o.partial = tuple(partial)
    if partial:
        o.detail = f"partial: rejected ({e.code or e.cls}); {_not_reported('invalid', partial)}"
    return o


def run_case(adapter: Any, case: Any, *, strict: bool = False) -> Outcome:
    """Run one case through ``adapter`` (skipped when it does not support the handler/profile); ``strict`` as
    for :func:`compare_case`."""
    t0 = time.perf_counter()
    try:
        if not adapter.supports(case.handler, case.profile):
            res = Result(unsupported=True, reason=adapter.skip_reason(case.handler, case.profile)
                         if hasattr(adapter, "skip_reason") else "not supported")
        else:
            res = adapter.run(case)
    except Exception as exc:  # an adapter bug or a crash of the implementation: an error, never a stop
        res = Result(failure=f"{type(exc).__name__}: {exc}")
    try:
        o = compare_case(case, res, adapter.name, strict=strict)
    except Exception as exc:  # a result the comparison cannot read: the implementation's answer is malformed
        o = compare_case(case, Result(failure=f"result not comparable: {type(exc).__name__}: {exc}"), adapter.name)
    o.seconds = time.perf_counter() - t0
    return o


def run_suite(adapters: Sequence[Any], cases: Iterable[Any], *, suite: str = "",
              progress: Callable[[str, int, int], None] | None = None, strict: bool = False) -> RunReport:
    """Every case through every adapter, in order; adapters are closed at the end. ``strict``: a pass with an
    expected field not reported fails (:func:`compare_case`)."""
    import datetime

    cases = list(cases)
    impls = []
    for a in adapters:
        run = ImplRun(a.name, getattr(a, "description", ""))
        t0 = time.perf_counter()
        try:
            for i, c in enumerate(cases):
                run.outcomes.append(run_case(a, c, strict=strict))
                if progress:
                    progress(a.name, i + 1, len(cases))
        finally:
            close = getattr(a, "close", None)
            if close:
                close()
        run.seconds = time.perf_counter() - t0
        impls.append(run)
    return RunReport(
        suite=suite,
        impls=impls,
        profiles=sorted({c.profile for c in cases}),
        handlers=sorted({c.handler for c in cases}),
        cases=len(cases),
        generator=f"opus-dred {__version__}",
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        strict=strict,
    )
