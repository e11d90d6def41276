"""The agreement measurement: the reference sits inside libopus' own spread between its two builds."""

from __future__ import annotations

import pytest

from opus_dred.conformance._agreement import SETTINGS, measure, to_markdown

pytestmark = pytest.mark.oracle


@pytest.mark.parametrize("profile", ["libopus-1.5.2", "libopus-1.6.1"])
def test_reference_inside_libopus_spread(profile, emulation_is_native):
    rows = measure((profile,), SETTINGS[:1], seconds=2.0)
    (row,) = rows
    assert row.dred_packets > 80 and row.integers_equal
    spread = row.default_vs_generic
    for pair in (row.ref_vs_default, row.ref_vs_generic):
        assert pair.passed
        if emulation_is_native:
            # "inside the spread": never further from either build than the two builds are from each other
            assert pair.max_abs <= spread.max_abs + 1e-6
            assert pair.p99_abs <= spread.p99_abs + 1e-6
        else:
            assert pair.max_abs <= 0.3
    if emulation_is_native:
        assert row.ref_vs_default.max_abs == 0.0
    assert spread.max_abs > 0  # the two builds do differ: the comparison can fail
    assert "| " + profile in to_markdown(rows)
