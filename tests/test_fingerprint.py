"""The numerics fingerprint (``conformance/_fingerprint.py``): the preset an implementation's features match
bit for bit, checked against the reference decoder run under each preset and against libopus builds."""

from __future__ import annotations

import numpy as np
import pytest

from opus_dred.conformance._adapters import LibopusAdapter
from opus_dred.conformance._fingerprint import PRESETS, X86, _rank, expected_features, fingerprint_report
from opus_dred.conformance._runner import Result, case_id, run_suite
from opus_dred.vectors._format import iter_cases, suite_root

N = 6


@pytest.fixture(scope="module")
def feature_cases():
    cases = [c for c in iter_cases(suite_root(), profile="libopus-1.6.1", handler="dred_features")
             if c.expected.get("found")]
    if not cases:
        pytest.skip("no canonical dred_features cases")
    return sorted(cases, key=lambda c: _rank(case_id(c)))[:16]


_CACHE: dict = {}


def _features(case, preset: str) -> np.ndarray:
    key = (case_id(case), preset)
    if key not in _CACHE:
        _CACHE[key] = expected_features(case, preset)
    return _CACHE[key]


class _ReferenceAt:
    """The reference decoder under one numerics preset, as an adapter of the feature cases."""

    def __init__(self, preset: str):
        self.name, self.preset = f"reference@{preset}", preset

    def supports(self, handler: str, profile: str) -> bool:
        return handler == "dred_features"

    def run(self, case) -> Result:
        return Result(values={"features": _features(case, self.preset)})


def _same_as(preset: str, cases) -> list[str]:
    """The presets whose features equal ``preset``'s on every case (what no fingerprint can tell apart)."""
    return [p for p in PRESETS if all(np.array_equal(_features(c, preset).view(np.uint32),
                                                     _features(c, p).view(np.uint32)) for c in cases)]


@pytest.mark.parametrize("preset", PRESETS)
def test_reference_under_each_preset_is_fingerprinted_as_that_preset(feature_cases, preset):
    rep = run_suite([_ReferenceAt(preset)], feature_cases)
    fp = fingerprint_report(rep, feature_cases, n=N)[rep.impls[0].impl]
    assert len(fp["sampled"]) == N and fp["closest"] is None
    # exactly the presets no case of the subset tells apart from this one
    assert fp["matched"] == _same_as(preset, feature_cases), fp["summary"]
    # a preset no x86-64 build runs is told why; one an x86-64 build runs is not
    assert bool(fp["why"]) == (not set(fp["matched"]) & set(X86))


def _libopus_fingerprint(build: str, cases):
    rep = run_suite([LibopusAdapter(build)], cases)
    return fingerprint_report(rep, cases, n=N)[build]


@pytest.mark.parametrize("build,preset", [("libopus-1.6.1", "libopus-avx2"), ("libopus-1.6.1-generic", "libopus-sse2")])
def test_libopus_build_is_fingerprinted_as_the_hosts_preset(feature_cases, require_default_numerics_host, build, preset):
    fp = _libopus_fingerprint(build, feature_cases)
    assert fp["matched"] == _same_as(preset, feature_cases), fp["summary"]
    assert not fp["why"]


def test_libopus_build_fingerprint_names_a_preset_or_the_closest_with_figures(feature_cases):
    fp = _libopus_fingerprint("libopus-1.6.1", feature_cases)
    if fp["matched"]:
        assert fp["closest"] is None and all(fp["scores"][p]["bit_exact"] == N for p in fp["matched"])
    else:
        sc = fp["scores"][fp["closest"]]
        assert sc["total"] is not None and sc["max"] is not None and fp["closest"] in fp["summary"]
    assert set(fp["scores"]) == set(PRESETS)


def test_no_feature_case_no_fingerprint():
    rep = run_suite([_ReferenceAt("float")], [])
    assert fingerprint_report(rep, [])["reference@float"]["matched"] == []
