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


def _rcpps_finding() -> tuple[str | None, str]:
    """This CPU's ``RCPPS`` as the tests see it: the built-in table it equals (``None`` if none) and, in
    words, what was measured against what ``nnet.for_host`` picks."""
    from opus_dred.libopus._cpu import matching_rcpps_table, measure_rcpps  # lazy: loads JAX
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    picked = nnet.host_reciprocal()
    if measure_rcpps() is None:
        return None, f"not measurable here (no C compiler or not x86); for_host picks {picked!r}"
    found = matching_rcpps_table()
    if found is None:
        return None, f"measured, equal to none of {', '.join(nnet.RCPPS_TABLES)}; for_host picks {picked!r}"
    return found, f"measured {found!r}, for_host picks {picked!r}"


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@pytest.fixture(scope="session")
def emulation_is_native() -> bool:
    """Whether the ``RCPPS`` table that ``nnet.for_host`` picks for this CPU is the CPU's own, as measured by
    running the instruction (``opus_dred.libopus._cpu``; docs/numerics.md). There the reference with
    ``for_host`` numerics must equal libopus' default build bit for bit; elsewhere it can only be held to the
    compliance thresholds and libopus' own build-to-build spread."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    found, _ = _rcpps_finding()
    return found is not None and found == nnet.host_reciprocal()


@pytest.fixture(scope="session")
def require_native_emulation(emulation_is_native) -> None:
    """Skip, with the reason shown, a test that claims bit-exactness with libopus running here: it holds only
    where the ``RCPPS`` table ``nnet.for_host`` picks is this CPU's own (``emulation_is_native``). Each such
    test has a companion tolerance test (thresholds, spread) that runs everywhere."""
    if emulation_is_native:
        return
    found, what = _rcpps_finding()
    if found is None:
        pytest.skip(f"this CPU's RCPPS table matches no built-in table ({what}); "
                    f"bit-exactness is claimed only where it does")
    pytest.skip(f"this CPU's RCPPS table is not the built-in one nnet.for_host picks for it ({what}); "
                f"bit-exactness is claimed only where it is")


@pytest.fixture(scope="session")
def require_default_numerics_host() -> None:
    """Skip, with the reason shown, a test that claims a libopus default build running here reproduces the
    reference's *default* numerics (``libopus-avx2``: ``nnet.LIBOPUS_AVX2``, AMD's ``RCPPS`` table, fused
    multiply-adds) bit for bit, as the canonical suite's expected values are computed. That holds only where
    this CPU's ``RCPPS`` is that table (measured) and libopus' run-time dispatch takes its AVX2 kernels
    (the CPU has AVX2 and FMA)."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    table = nnet.LIBOPUS_AVX2.reciprocal
    found, what = _rcpps_finding()
    if found != table:
        pytest.skip(f"this CPU's RCPPS table is not {table!r}, the one of the default numerics ({what}); "
                    f"bit-exactness with the canonical suite is claimed only where it is")
    missing = {"avx2", "fma"} - _cpu_flags()
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(sorted(missing))}, so libopus does not run its AVX2 kernels; "
                    f"bit-exactness with the canonical suite is claimed only where it does")
