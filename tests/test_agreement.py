"""The agreement measurement: the reference agrees with both libopus builds within the compliance thresholds
everywhere, and sits inside libopus' own spread between its two builds where it is bit for bit with one."""

from __future__ import annotations

import pytest

from opus_dred.conformance._agreement import SETTINGS, measure, to_markdown

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module", params=["libopus-1.5.2", "libopus-1.6.1"])
def row(request):
    """One setting, two seconds of speech: the reference (this CPU's RCPPS) against both builds."""
    (r,) = measure((request.param,), SETTINGS[:1], seconds=2.0)
    return r


def test_reference_agrees_with_both_builds(row):
    """On any CPU: integers equal, features pass dred_compare's thresholds against the default and the
    generic build and stay within 0.3 of each (libopus' own spread reaches 0.26, docs/agreement.md)."""
    assert row.dred_packets > 80 and row.integers_equal
    for pair in (row.ref_vs_default, row.ref_vs_generic):
        assert pair.passed
        assert pair.max_abs <= 0.3
    assert row.default_vs_generic.max_abs > 0  # the two builds do differ: the comparison can fail
    assert "| " + row.profile in to_markdown([row])


def test_reference_inside_libopus_spread(row, require_native_emulation):
    """With this CPU's own RCPPS table the reference is the default build bit for bit, hence never further
    from either build than the two builds are from each other."""
    spread = row.default_vs_generic
    assert row.ref_vs_default.max_abs == 0.0
    for pair in (row.ref_vs_default, row.ref_vs_generic):
        assert pair.max_abs <= spread.max_abs + 1e-6
        assert pair.p99_abs <= spread.p99_abs + 1e-6
