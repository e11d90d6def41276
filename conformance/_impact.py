"""What a change of profile breaks: each side's suite on the other's implementations, and who reads whose DRED.

``impact(A, B)`` runs A's vectors through B's implementations and B's through A's, and sorts every case that
does not pass by handler and by the profile rule that explains it (:func:`attribute`), from what
:func:`opus_dred.bitstream._profiles.diff_profiles` says differs between the two:

``dred_version``
    the experimental version byte differs, and a reader passes a DRED extension of another version over
    (``foreign_version`` = ``skip``): the other side's DRED is no DRED (``found`` false, no error);
``extension_syntax``
    the padding is walked differently (``v1`` against ``rte``: id 2, separators past the frame count,
    malformed padding before the DRED);
``chunk_bound``
    a bounded request decodes another number of latents (a *behaviour* outcome of the runner: the decoded
    values agree on the latents both decode);
``constants and tables``, ``model``
    dimensions, quantizer statistics or weights differ, so the same payload reads or decodes to other values;
``encoder``
    the encoder's handlers (``features``, ``dred_encode``): the implementations' DRED encoders differ, which
    no profile rule describes (the encoder is not normative);
``unattributed``
    anything the profiles' differences do not explain: a regression to look at.

A profile's implementations are the reference reading as that profile (``reference@<profile>``: opus-dred's
bitstream layer and decoder with the profile's constants and rules, whatever the case's profile) and every
built libopus build that follows it (:func:`opus_dred.libopus._derive.profile_for_build`), each run on every
case whatever its profile, as libopus reads any packet it is given.

:func:`interop` is the table of who reads whose DRED over every known profile and implementation: each
profile's probe packets (its writer's 26-chunk payload, read with the full request and with a 20 ms request)
through every implementation: ``reads`` (found, every value equal), ``reads (chunk_bound)`` (equal but for the
latents a bounded request decodes), ``ignores`` (no DRED, no error: another version), ``misreads`` or ``error``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from opus_dred.bitstream._profiles import diff_profiles, get_profile, list_profiles
from opus_dred.conformance._adapters import LibopusAdapter, ReferenceAdapter
from opus_dred.conformance._runner import Outcome, RunReport, run_suite
from opus_dred.libopus import _upstream as upstream
from opus_dred.libopus._derive import profile_for_build
from opus_dred.models._pack import derived_dir
from opus_dred.vectors._checks import COUNT_FIELDS
from opus_dred.vectors._expected import parse_layer
from opus_dred.vectors._format import Case, iter_cases, load_case, suite_root, write_case
from opus_dred.vectors._generate import LIMIT_RATE, SUITES, dred_writer_packet, generate, generate_cases
from opus_dred.vectors._handlers import HANDLERS, expected_for

#: the encoder's handlers (not normative: an implementation's encoder may differ from the reference's)
ENCODER_HANDLERS = ("features", "dred_encode")
#: the order rules are listed in
RULE_ORDER = ("dred_version", "extension_syntax", "chunk_bound", "constants and tables", "model", "encoder",
              "unattributed")


# ------------------------------------------------------------------------------------------------
# implementations of a profile


class ProfileReference(ReferenceAdapter):
    """The reference reading every case as ``profile`` (its constants, tables, model and rules), whatever the
    case's own profile: what an implementation of ``profile`` written from the specification does."""

    def __init__(self, profile: str, numerics: str | None = None):
        super().__init__(numerics)
        get_profile(profile)
        self.profile = profile
        self.name = f"reference@{profile}"
        self.description = f"opus-dred reference as profile {profile} (numerics {self.numerics})"

    def supports(self, handler: str, profile: str) -> bool:
        return super().supports(handler, self.profile)

    def skip_reason(self, handler: str, profile: str) -> str:
        return super().skip_reason(handler, self.profile)

    def run(self, case: Any):
        return super().run(dataclasses.replace(case, profile=self.profile))


class AnyProfileLibopus(LibopusAdapter):
    """A libopus build on every case whatever its profile: libopus reads what it is given, a DRED of another
    version included (it finds none)."""

    def _own_profile(self, profile: str) -> bool:
        return True


def implementations(profile: str) -> list[str]:
    """The implementations of ``profile``: ``reference@<profile>``, then every built libopus build that follows
    it (pinned and registered)."""
    out = [f"reference@{profile}"]
    for b in upstream.known_builds():
        st = upstream.status(b)
        if st["state"] == "built" and profile_for_build(b, st.get("dred_version")) == profile:
            out.append(b)
    return out


def make_impl(name: str) -> Any:
    """The adapter of an implementation named by :func:`implementations`."""
    if name.startswith("reference@"):
        return ProfileReference(name.split("@", 1)[1])
    return AnyProfileLibopus(name)


# ------------------------------------------------------------------------------------------------
# suites


def vectors_root(profile: str) -> Path:
    """Where a profile's vectors are: the canonical suite for the packaged profiles, else ``vectors/`` of the
    derived area."""
    canonical = suite_root()
    return canonical if (canonical / profile).is_dir() else derived_dir() / "vectors"


def ensure_vectors(profile: str, suites: Iterable[str] | None = None,
                   progress: Callable[[str], None] | None = None) -> Path:
    """The root holding ``profile``'s vectors; where the profile has none of a suite asked for (default: every
    suite of the generator), that suite is generated into the derived area first."""
    root = vectors_root(profile)
    if root == suite_root():
        return root
    have = {p.parent.parent.name for p in (root / profile).glob("*/*/*/meta.json")} if (root / profile).is_dir() \
        else set()
    for s in suites or SUITES:
        if s not in have and s in SUITES:
            if progress:
                progress(f"generating the {s} vectors of {profile} into {root}")
            generate([profile], root, suite=s)
    return root


def suite_cases(profile: str, *, handlers: Iterable[str] | None = None, suites: Iterable[str] | None = None,
                work: Path | None = None, progress: Callable[[str], None] | None = None) -> list[Case]:
    """``profile``'s cases (its vectors, plus its ``cross_version`` cases, generated into ``work`` where its
    vectors lack them), filtered by handler and suite."""
    root = ensure_vectors(profile, suites, progress)
    hs = set(handlers) if handlers else None
    ss = set(suites) if suites else None
    cases = [c for c in iter_cases(root, profile=profile) if (hs is None or c.handler in hs)
             and (ss is None or c.suite in ss)]
    if (ss is None or "cross_version" in ss) and not any(c.suite == "cross_version" for c in cases):
        d = Path(work or tempfile.mkdtemp(prefix="opus-dred-impact-"))
        for c in generate_cases(profile, "cross_version"):
            folder = write_case(d, c)
            lc = load_case(folder)
            if hs is None or lc.handler in hs:
                cases.append(lc)
    return cases


# ------------------------------------------------------------------------------------------------
# attribution


def attribute(o: Outcome, case: Any, diff: dict) -> str | None:
    """The rule (:data:`RULE_ORDER`) that explains an outcome of a case of one profile on an implementation of
    another whose differences are ``diff`` (:func:`diff_profiles`); ``None`` for a pass or a skip."""
    if o.status in ("pass", "skip"):
        return None
    if o.status == "behaviour":
        return (o.rule or "chunk_bound").split("=", 1)[0]
    h = case.handler
    fld = o.field or ""
    top = fld.split("[", 1)[0].split(".", 1)[0]
    layer = case.parameters.get("layer")
    consts, rules = diff["constants"], diff["rules"]
    tables_differ = any(not t["equal"] for t in diff["tables"].values())
    if h in ENCODER_HANDLERS:
        return "model" if diff["model_pack"] else "encoder"
    if "dred_version" in consts and h in ("dred_payload", "dred_features") and top in ("found", "(error)"):
        return "dred_version"
    if "dred_version" in consts and h == "invalid" and layer == "dred":
        return "dred_version"
    if "extension_syntax" in rules and (h == "extensions" or (h == "invalid" and layer in ("extensions", "dred"))
                                        or (h in ("dred_payload", "dred_features") and top in ("found", "(error)"))):
        return "extension_syntax"
    if h in ("dred_payload", "dred_features") and (set(consts) - {"draft"} or tables_differ or diff["payload_layout"]):
        return "constants and tables" if h == "dred_payload" or not diff["model_pack"] else "model"
    if h in ("dred_features", "dred_stream") and diff["model_pack"]:
        return "model"
    head = fld.split("[", 1)[0]
    where = ".".join(head.split(".")[:2]) if head.startswith("payload.") else top
    if "chunk_bound" in rules and where in COUNT_FIELDS.get(h, ()):
        return "chunk_bound"
    return "unattributed"


# ------------------------------------------------------------------------------------------------
# impact


@dataclass
class Direction:
    """One profile's suite on the other's implementations."""

    suite: str
    impls: str
    report: RunReport
    cases: list[Case] = field(default_factory=list)

    def rows(self, diff: dict) -> list[dict]:
        """One row per implementation and handler: counts by status and by rule."""
        by_id = {c.id: c for c in self.cases}
        out = []
        for r in self.report.impls:
            per: dict[str, dict] = {}
            for o in r.outcomes:
                row = per.setdefault(o.handler, {"suite": self.suite, "impl": r.impl, "handler": o.handler,
                                                 "cases": 0, "pass": 0, "behaviour": 0, "fail": 0, "skip": 0,
                                                 "error": 0, "rules": {}})
                row["cases"] += 1
                row[o.status] += 1
                rule = attribute(o, by_id.get(o.case), diff) if o.case in by_id else None
                if rule:
                    row["rules"][rule] = row["rules"].get(rule, 0) + 1
            out.extend(per[h] for h in sorted(per, key=_handler_order))
        return out


def _handler_order(h: str) -> int:
    names = list(HANDLERS)
    return names.index(h) if h in names else len(names)


@dataclass
class Impact:
    a: str
    b: str
    diff: dict
    directions: list[Direction]

    def rows(self) -> list[dict]:
        return [r for d in self.directions for r in d.rows(self.diff)]

    def by_rule(self) -> dict[str, int]:
        """Cases that do not pass, per rule, over both directions and every implementation."""
        tot: dict[str, int] = {}
        for r in self.rows():
            for k, n in r["rules"].items():
                tot[k] = tot.get(k, 0) + n
        return {k: tot[k] for k in sorted(tot, key=lambda k: RULE_ORDER.index(k) if k in RULE_ORDER else 99)}

    def to_json(self) -> dict:
        return {"format": "opus-dred-impact/1", "a": self.a, "b": self.b, "diff": _slim(self.diff),
                "by_rule": self.by_rule(), "rows": self.rows(),
                "directions": [{"suite": d.suite, "impls": d.impls, "report": d.report.to_json()}
                               for d in self.directions]}


def _slim(diff: dict) -> dict:
    """The diff without the tables' hashes (kept: whether each is equal)."""
    d = dict(diff)
    d["tables"] = {k: t["equal"] for k, t in diff["tables"].items()}
    return d


def impact(a: str, b: str, *, handlers: Iterable[str] | None = None, suites: Iterable[str] | None = None,
           impls: dict[str, list[str]] | None = None, progress: Callable[[str], None] | None = None) -> Impact:
    """``a``'s suite on ``b``'s implementations and ``b``'s on ``a``'s (:func:`implementations`, or ``impls``:
    profile → implementation names), restricted to ``handlers`` and vector ``suites``."""
    pa, pb = get_profile(a), get_profile(b)
    diff = diff_profiles(pa, pb)
    dirs = []
    with tempfile.TemporaryDirectory(prefix="opus-dred-impact-") as work:
        for src, dst in ((a, b), (b, a)):
            cases = suite_cases(src, handlers=handlers, suites=suites, work=Path(work) / src, progress=progress)
            names = (impls or {}).get(dst) or implementations(dst)
            adapters = [make_impl(n) for n in names]
            cb = None
            if progress:
                def cb(impl: str, i: int, n: int, _src=src) -> None:
                    if i == n or i % 100 == 0:
                        progress(f"{_src} suite on {impl}: {i}/{n}")
            rep = run_suite(adapters, cases, suite=f"{src} on {dst}'s implementations", progress=cb)
            dirs.append(Direction(src, dst, rep, cases))
    return Impact(a, b, diff, dirs)


# ------------------------------------------------------------------------------------------------
# interoperability


PROBE_REQUESTS = (("full", None), ("20ms", 2 * LIMIT_RATE // 100))
INTEROP_SEED = 40


def probe_cases(profile: str) -> list[Case]:
    """A profile's probe packets as ``dred_payload`` cases: its writer's 26-chunk payload at dred_offset 12
    (so that a 20 ms request decodes 1 latent under ``release-1.5`` and 2 under ``master-2026-06``), read with
    the full request and with 20 ms."""
    prof = get_profile(profile)
    pkt = dred_writer_packet(profile, offset=4, seed=INTEROP_SEED)
    out = []
    for tag, req in PROBE_REQUESTS:
        params = {"max_dred_samples": prof.max_latents * 4 * LIMIT_RATE // 100 if req is None else req,
                  "sampling_rate": LIMIT_RATE}
        parse_layer(profile, "dred", pkt, {"layer": "dred", **params})
        exp, tol = expected_for("dred_payload", profile, {"packet": pkt}, params)
        out.append(Case(profile=profile, handler="dred_payload", suite="interop", name=f"probe.{tag}",
                        inputs={"packet": pkt}, parameters=params,
                        expected={k: getattr(v, "value", v) for k, v in exp.items()}, tolerance=tol,
                        description=f"{profile}'s DRED, request {tag}"))
    return out


def interop(profiles: Iterable[str] | None = None, impl_names: Iterable[str] | None = None) -> dict:
    """Who reads whose DRED: ``{"profiles": [...], "impls": [...], "cells": {impl: {profile: verdict}},
    "details": {impl: {profile: [outcome details]}}}`` over every known profile (or ``profiles``) and every
    implementation of them (or ``impl_names``)."""
    profs = list(profiles) if profiles else list_profiles()
    names = list(impl_names) if impl_names else list(dict.fromkeys(n for p in profs for n in implementations(p)))
    cases = [c for p in profs for c in probe_cases(p)]
    rep = run_suite([make_impl(n) for n in names], cases, suite="interop probes")
    cells: dict[str, dict[str, str]] = {}
    details: dict[str, dict[str, list[str]]] = {}
    for r in rep.impls:
        for p in profs:
            os_ = [o for o in r.outcomes if o.profile == p]
            cells.setdefault(r.impl, {})[p] = _verdict(os_, [c for c in cases if c.profile == p])
            details.setdefault(r.impl, {})[p] = [f"{o.name}: {o.status} {o.detail}".strip() for o in os_]
    return {"profiles": profs, "impls": names, "cells": cells, "details": details}


def _verdict(outcomes: list[Outcome], cases: list[Case]) -> str:
    st = [o.status for o in outcomes]
    if all(s == "pass" for s in st):
        return "reads"
    if all(s in ("pass", "behaviour") for s in st):
        rules = sorted({(o.rule or "").split("=", 1)[0] for o in outcomes if o.status == "behaviour"})
        return f"reads ({', '.join(rules)})"
    if "error" in st:
        return "error"
    found_false = all(o.status == "fail" and o.field == "found" and "got False" in o.detail for o in outcomes)
    if found_false and all(c.expected.get("found") for c in cases):
        return "ignores"
    return "misreads"


def suites_known() -> list[str]:
    """The generator's suites (``--suite`` of ``impact``)."""
    return list(SUITES)
