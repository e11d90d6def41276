"""libopus' default builds on the canonical suite, bit for bit where the host lets them be.

The canonical suite's expected features are the reference's under its default numerics (``libopus-avx2``:
``nnet.LIBOPUS_AVX2``, AMD's ``RCPPS`` table, fused multiply-adds; docs/vectors.md, docs/numerics.md). A
libopus default build takes its AVX2 kernels through run-time dispatch and multiplies by the ``RCPPS`` of the
CPU it runs on; so it reproduces those values bit for bit exactly where this CPU's ``RCPPS`` is AMD's table
(measured by ``opus_dred.libopus._cpu``) and the CPU has AVX2 and FMA. Elsewhere (an Intel core, a CPU
without AVX2) it is held to dred_compare's thresholds only, which
``tests/test_conform.py::test_each_libopus_build_passes_its_own_profile_of_the_canonical_suite`` checks
everywhere. The generic builds (``--disable-intrinsics --disable-rtcd``: the SSE2 path, no fused
multiply-adds) are another arithmetic than the expected values' and are not claimed bit-exact anywhere. The
encoder's cases name their numerics preset: a default build runs the ``avx2`` ones (byte-identical payloads,
bit-exact features here) and skips the ``sse2`` ones (``tests/test_encoder_vectors.py`` runs those with the
generic builds).
"""

from __future__ import annotations

import pytest

from opus_dred.conformance._runner import run_suite
from opus_dred.vectors._format import iter_cases

pytestmark = pytest.mark.oracle


def _oracle(build):
    from opus_dred.libopus._oracle import Oracle

    try:
        return Oracle.for_build(build)
    except Exception as exc:  # pragma: no cover - a machine without the builds
        pytest.skip(f"libopus build {build} unavailable: {exc}")


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
def test_default_build_is_bit_exact_on_its_own_profile_of_the_canonical_suite(build, require_default_numerics_host):
    """Every feature comparison of the build's own profile is bit-exact (``metric["bit_exact"]``), where this
    CPU's ``RCPPS`` is the default numerics' table (AMD's) and libopus runs its AVX2 kernels."""
    from opus_dred.conformance._adapters import LibopusAdapter
    from opus_dred.vectors._format import suite_root

    if not (suite_root() / "manifest.json").is_file():
        pytest.skip("the canonical suite is not in this checkout")
    _oracle(build)
    rep = run_suite([LibopusAdapter(build)], list(iter_cases(suite_root())))
    compared = [o for o in rep.impls[0].outcomes if o.metric and "bit_exact" in o.metric]
    assert compared and all(o.profile == build for o in compared)
    # every found-DRED features case of the profile is compared (about 140 to 160 per release)
    assert len(compared) >= 100
    not_exact = [(o.case, o.metric.get("max_abs")) for o in compared if not o.metric["bit_exact"]]
    assert not not_exact, not_exact[:10]
    # the encoder's cases: every avx2 payload case byte for byte, the sse2 ones skipped (another arithmetic)
    enc = [o for o in rep.impls[0].outcomes if o.handler == "dred_encode" and o.profile == build]
    assert len(enc) >= 10 and all(o.status == ("pass" if o.name.endswith(".avx2") else "skip") for o in enc), \
        [(o.case, o.status, o.detail) for o in enc if o.status != ("pass" if o.name.endswith(".avx2") else "skip")]
