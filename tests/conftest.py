"""Test-wide settings.

Hypothesis: no per-example deadline and no "too slow" health check, since CI is a shared 2-core machine whose
speed swings; under CI (``CI`` set) examples are also derandomized, so that a run is reproducible from the commit
alone. Tests that need more or fewer examples set them with their own ``@settings``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "opus-dred",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "opus-dred-ci",
    parent=settings.get_profile("opus-dred"),
    derandomize=True,
)
settings.load_profile("opus-dred-ci" if os.environ.get("CI") else "opus-dred")


import pytest


@pytest.fixture(scope="session")
def emulation_is_native() -> bool:
    """Whether the ``RCPPS`` table that ``nnet.for_host`` picks for this CPU is the CPU's own, as measured by
    running the instruction (``opus_dred.libopus._cpu``; docs/numerics.md). There the reference with
    ``for_host`` numerics must equal libopus' default build bit for bit; elsewhere it can only be held to the
    compliance thresholds and libopus' own build-to-build spread."""
    from opus_dred.libopus._cpu import matching_rcpps_table
    from opus_dred.refimpl import _nnet as nnet

    return matching_rcpps_table() == nnet.host_reciprocal()
