"""``opus-dred impact`` and ``interop``: each profile's suite on the other's implementations, what breaks by
handler and rule; behaviour differences reported as such; cross-version vectors; who reads whose DRED.

A master-variant profile (1.6.1's description with ``chunk_bound`` = ``master-2026-06``, added by a file alone)
stands in for libopus master, which the tests never need.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from opus_dred.bitstream._profiles import get_profile
from opus_dred.conformance._adapters import LibopusAdapter, ReferenceAdapter
from opus_dred.conformance._impact import (
    Direction,
    ProfileReference,
    attribute,
    impact,
    interop,
    probe_cases,
)
from opus_dred.conformance._report import render_html, render_impact_html
from opus_dred.conformance._runner import Result, compare_case, run_suite
from opus_dred.bitstream._profiles import diff_profiles
from opus_dred.vectors._format import iter_cases, load_case, suite_root, write_case
from opus_dred.vectors._generate import generate_cases

MX = "libopus-mx"
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def mx(tmp_path, monkeypatch):
    """A profile equal to libopus-1.6.1 but for the master chunk bound, and an empty derived area."""
    d = tmp_path / "profiles"
    d.mkdir()
    desc = json.loads(Path(get_profile("libopus-1.6.1").source).read_text())
    desc.update(name=MX, chunk_bound="master-2026-06")
    (d / f"{MX}.json").write_text(json.dumps(desc))
    monkeypatch.setenv("OPUS_DRED_PROFILES_PATH", str(d))
    monkeypatch.setenv("OPUS_DRED_DERIVED_DIR", str(tmp_path / "derived"))
    return get_profile(MX)


@pytest.mark.oracle
def test_interop_table(mx):
    t = interop(["libopus-1.5.2", "libopus-1.6.1", MX], ["reference@libopus-1.5.2", "libopus-1.5.2",
                                                         "reference@libopus-1.6.1", "libopus-1.6.1",
                                                         f"reference@{MX}"])
    want = {
        "reference@libopus-1.5.2": ["reads", "ignores", "ignores"],
        "libopus-1.5.2": ["reads", "ignores", "ignores"],
        "reference@libopus-1.6.1": ["ignores", "reads", "reads (chunk_bound)"],
        "libopus-1.6.1": ["ignores", "reads", "reads (chunk_bound)"],
        f"reference@{MX}": ["ignores", "reads (chunk_bound)", "reads"],
    }
    assert {i: [t["cells"][i][p] for p in t["profiles"]] for i in t["impls"]} == want
    # the probes: a 20 ms request at dred_offset 12 decodes 1 latent under release-1.5, 2 under master-2026-06
    assert [c.expected["payload"]["nb_latents"] for c in probe_cases("libopus-1.6.1")] == [26, 1]
    assert [c.expected["payload"]["nb_latents"] for c in probe_cases(MX)] == [26, 2]


@pytest.mark.oracle
@pytest.mark.parametrize("profile", ["libopus-1.5.2", "libopus-1.6.1"])
def test_cross_version_vectors_pass_where_libopus_ignores_the_other_version(profile, tmp_path):
    """The other release's DRED (its writer's and its encoder's) read as this profile: found false, no error,
    from the reference and from both libopus builds of the profile."""
    cases = [load_case(write_case(tmp_path, c)) for c in generate_cases(profile, "cross_version")]
    assert len(cases) == 6 and all(c.expected["found"] is False for c in cases)
    other = "libopus-1.6.1" if profile == "libopus-1.5.2" else "libopus-1.5.2"
    from opus_dred.bitstream._extensions import find_dred_extension

    assert all(find_dred_extension(bytes(c.inputs["packet"]), get_profile(other)) for c in cases)
    rep = run_suite([ReferenceAdapter(), LibopusAdapter(profile), LibopusAdapter(f"{profile}-generic")], cases)
    for r in rep.impls:
        assert r.counts()["pass"] == len(cases), [(o.case, o.detail) for o in r.outcomes if o.status != "pass"]


@pytest.mark.oracle
def test_impact_of_the_releases_is_explained_by_their_rules():
    imp = impact("libopus-1.5.2", "libopus-1.6.1", handlers=["packet", "extensions", "dred_payload", "invalid"],
                 suites=["limits", "cross_version"],
                 impls={"libopus-1.5.2": ["reference@libopus-1.5.2", "libopus-1.5.2"],
                        "libopus-1.6.1": ["reference@libopus-1.6.1", "libopus-1.6.1"]})
    assert set(imp.by_rule()) == {"dred_version", "extension_syntax", "constants and tables"}, imp.by_rule()
    rows = imp.rows()
    assert all(r["pass"] == r["cases"] for r in rows if r["handler"] == "packet")
    # the extension cases that break are the ones docs/limits.md says the two syntaxes read differently
    text = (DOCS / "limits.md").read_text()
    section = text.split("### Where the two syntaxes differ")[1].split("\n## ")[0]
    section += next(ln for ln in text.splitlines() if "separators in 1.5.x, repeats in 1.6.x" in ln)  # generation
    named = set(re.findall(r"`limits/([a-z0-9_]+)`", section))
    for d in imp.directions:
        for r in d.report.impls:
            broken = {o.name for o in r.outcomes if o.handler in ("extensions", "invalid") and o.status != "pass"
                      and o.status != "skip"}
            assert broken and broken <= named, (d.suite, r.impl, broken - named)
            # the other release's DRED is no DRED: a case's DRED is not found, and a cross_version case's (the
            # implementation's own version) is
            for o in r.outcomes:
                if o.handler == "dred_payload" and o.status == "fail" and o.field == "found":
                    assert ("expected False, got True" if o.suite == "cross_version" else "got False") in o.detail
    html = render_impact_html(imp, None)
    assert 'id="impact"' in html and "dred_version" in html and "extension_syntax" in html


def _chunk_bound_cases():
    return [c for c in iter_cases(suite_root(), profile="libopus-1.6.1", handler="dred_payload")
            if c.suite in ("limits", "writer_edges")]


def test_a_chunk_bound_difference_is_behaviour_not_failure(mx):
    cases = _chunk_bound_cases()
    rep = run_suite([ProfileReference(MX), ProfileReference("libopus-1.6.1")], cases)
    master, own = rep.impls
    assert own.counts()["pass"] == len(cases)
    beh = [o for o in master.outcomes if o.status == "behaviour"]
    assert beh and master.counts()["fail"] == master.counts()["error"] == 0
    assert {o.rule for o in beh} == {"chunk_bound=master-2026-06"}
    assert all("chunk_bound" in o.detail and "release-1.5" in o.detail for o in beh)
    diff = diff_profiles(get_profile("libopus-1.6.1"), mx)
    rows = Direction("libopus-1.6.1", MX, rep, cases).rows(diff)
    assert rows[0]["rules"] == {"chunk_bound": len(beh)} and rows[0]["behaviour"] == len(beh)
    # a normative difference is still a failure, and no rule explains it
    case = next(c for c in cases if c.name == next(o.name for o in beh))
    values = ProfileReference(MX).run(case).values
    bad = dict(values, state=np.asarray(values["state"]).copy())
    bad["state"][0] += 1
    o = compare_case(case, Result(values=bad), "x")
    assert o.status == "fail" and o.field.startswith("state")
    assert attribute(o, case, diff) == "unattributed"
    page = render_html(rep)
    assert "Behaviour differences" in page and "chunk_bound=master-2026-06" in page


def test_features_cases_of_a_bounded_request(mx):
    """A dred_features case whose 100 ms request decodes 3 latents under release-1.5 and 4 under
    master-2026-06: behaviour, with the features of the 3 both decode equal."""
    case = load_case(suite_root() / "libopus-1.6.1" / "dred_features" / "writer_edges" / "max_latents.m100ms")
    rule = case.meta.get("checks", {}).get("rules") or None
    from opus_dred.conformance._runner import checks_of

    checks = checks_of(case)
    assert rule is None or rule == checks["rules"]
    assert checks["rules"]["chunk_bound"]["variants"] == {
        "release-1.5": {"nb_latents": 3, "ret": case.expected["ret"]},
        "master-2026-06": {"nb_latents": 4, "ret": checks["rules"]["chunk_bound"]["variants"]["master-2026-06"]["ret"]}}
    assert {"ret", "dred_end", "nb_latents"} <= set(checks["behaviour"]) and "features" in checks["behaviour"]
    o = run_suite([ProfileReference(MX)], [case]).impls[0].outcomes[0]
    assert o.status == "behaviour" and o.metric and o.metric["bit_exact"], o.detail


@pytest.mark.oracle
def test_impact_cli(mx, tmp_path):
    from opus_dred.cli import app

    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["impact", "libopus-1.6.1", MX, "--handler", "dred_payload", "--suite", "limits",
                                 "--impl", "libopus-1.6.1=reference@libopus-1.6.1", "--impl",
                                 f"{MX}=reference@{MX}", "--no-interop", "--report", str(out)])
    assert r.exit_code == 0, r.output
    assert "chunk_bound" in r.output and "by rule: chunk_bound" in r.output
    page = (out / "impact.html").read_text()
    assert 'id="impact"' in page and "master-2026-06" in page
    data = json.loads((out / "impact.json").read_text())
    assert set(data["by_rule"]) == {"chunk_bound"}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        f"1-libopus-1.6.1-on-{MX}", f"2-{MX}-on-libopus-1.6.1"]
