"""The encoder's handlers (``features``, ``dred_encode``) and their cases in the canonical suite.

What the suite's cases are (rates, frame sizes, silence, budgets, quantizer settings) is checked on the stored
files, and every stored payload is read back with our own DRED reader (header and chunk count follow from the
case's settings). libopus, through the adapter, is the oracle: a default build reproduces every ``avx2`` case
byte for byte and the ``-generic`` builds every ``sse2`` one, where the host's arithmetic is that preset;
builds whose arithmetic is another preset skip, naming both. The ``features`` tolerance is libopus' own
default-vs-generic spread on the suite's inputs, measured again here. The reference recomputes a sample of the
stored cases (``opus-dred vectors verify`` recomputes them all), and the JSON-lines protocol carries both
handlers' inputs and answers.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from opus_dred.bitstream._arith import qmax_is_coded
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._dred_encode import DredSettingsError
from opus_dred.bitstream._profiles import get_profile
from opus_dred.conformance._runner import compare_case, run_case, run_suite
from opus_dred.vectors._expected import ENCODER_FEATURE_TOLERANCE
from opus_dred.vectors._format import Part, encode_part, iter_cases, suite_root
from opus_dred.vectors._handlers import HANDLERS, Needs, expected_for

SUITE = suite_root()
PROFILES = ("libopus-1.5.2", "libopus-1.6.1")


def _cases(handler, profile=None):
    return list(iter_cases(SUITE, profile=profile, handler=handler))


def _payloads(case) -> list[bytes]:
    return [bytes.fromhex(h) for h in case.expected["payloads"]]


def _oracle(build):
    from opus_dred.libopus._oracle import Oracle

    try:
        return Oracle.for_build(build)
    except Exception as exc:  # pragma: no cover - a machine without the builds
        pytest.skip(f"libopus build {build} unavailable: {exc}")


# ---------------------------------------------------------------------------------------------------------
# the registry and the stored cases


def test_registry_has_both_encoder_handlers():
    assert HANDLERS["features"].needs is Needs.ENCODER and HANDLERS["features"].fields == ("features",)
    assert HANDLERS["dred_encode"].needs is Needs.ENCODER and HANDLERS["dred_encode"].fields == ("payloads",)


@pytest.mark.parametrize("profile", PROFILES)
def test_suite_covers_rates_frame_sizes_and_settings(profile):
    enc = _cases("dred_encode", profile)
    feats = _cases("features", profile)
    assert len(enc) == 19 and len(feats) == 5
    rates = {c.parameters["sampling_rate"] for c in enc}
    assert rates == {c.parameters["sampling_rate"] for c in feats} == {8000, 12000, 16000, 24000, 48000}
    assert {c.parameters["frame_size"] * 1000 // c.parameters["sampling_rate"] for c in enc} == {10, 20, 40, 60}
    assert {c.parameters["numerics"] for c in enc} == {"avx2", "sse2"}
    assert {c.parameters["q0"] for c in enc} >= {0, 3, 4, 6, 9, 15}
    assert {c.parameters["dq"] for c in enc} >= {0, 2, 3, 5, 7}
    assert {c.parameters["qmax"] for c in enc} == {9, 15}
    assert min(c.parameters["max_bytes"] for c in enc) <= 16 and {c.parameters["extra_delay"] for c in enc} >= {0}
    assert {a for c in enc for a in c.inputs["activity"]} == {0, 1, 255}
    for c in enc + feats:
        pcm = c.inputs["pcm"]
        assert pcm.dtype == np.int16 and 0.5 <= pcm.shape[0] / c.parameters["sampling_rate"] <= 2.0, c.id
        assert not pcm[: c.parameters["sampling_rate"] // 5].any(), c.id  # digital silence first
    assert all(c.tolerance == ENCODER_FEATURE_TOLERANCE for c in feats)
    assert all(c.expected["features"].shape == (150, 20) for c in feats)


@pytest.mark.parametrize("profile", PROFILES)
def test_stored_payloads_read_back_with_the_cases_settings(profile):
    """Every stored payload is a DRED payload of the profile whose header carries the case's q0, dQ and qmax
    (15 where q0 >= 14 leaves it uncoded), at most max_chunks latents and max_bytes bytes; leading silence
    gives no payload, and the speech after it does."""
    prof = get_profile(profile)
    for c in _cases("dred_encode", profile):
        p = c.parameters
        pays = _payloads(c)
        assert len(pays) == c.inputs["pcm"].shape[0] // p["frame_size"] == len(c.inputs["activity"]), c.id
        assert not pays[0] and sum(bool(x) for x in pays) >= (len(pays) // 2 if p["max_bytes"] > 16 else 1), c.id
        for i, data in enumerate(pays):
            if not data:
                continue
            assert len(data) <= p["max_bytes"], (c.id, i)
            d = read_dred_payload(data, prof)
            assert (d.q0, d.dQ) == (p["q0"], p["dq"]), (c.id, i)
            assert d.qmax == (p["qmax"] if qmax_is_coded(p["q0"], p["dq"]) else 15), (c.id, i)
            assert 1 <= d.nb_latents <= p["max_chunks"], (c.id, i)


@pytest.mark.parametrize("profile", PROFILES)
def test_budget_quantizer_and_activity_change_the_payloads(profile):
    """The settings matter: a budget cuts payloads, q0 0 gives the longest, q0 15 the shortest, one chunk
    short ones; the same speech and settings with activity 255 where the other case has 0 give other
    payloads (255 counts as voice for the delay rule, not for dred_voice_active)."""
    cases = {c.name: c for c in _cases("dred_encode", profile)}
    by = {k: _payloads(c) for k, c in cases.items()}
    longest = {k: max(len(x) for x in v) for k, v in by.items()}
    assert longest["budget_16.avx2"] <= 16 < longest["budget_30.avx2"] <= 30 < longest["q0_3_dq7_qmax9.avx2"]
    assert longest["q0_0_dq0.avx2"] > 4 * longest["q0_15.avx2"]
    assert longest["chunks_1.avx2"] < longest["q0_3_dq7_qmax9.avx2"]
    energy, nodec = cases["activity_energy.avx2"], cases["activity_no_decision.avx2"]
    assert np.array_equal(energy.inputs["pcm"], nodec.inputs["pcm"]) and energy.parameters == nodec.parameters
    a, b = np.array(energy.inputs["activity"]), np.array(nodec.inputs["activity"])
    assert set(a[b == 255]) == {0} and np.array_equal(a[b != 255], b[b != 255]) and (a == 0).sum() > (b == 0).sum()
    assert by["activity_energy.avx2"] != by["activity_no_decision.avx2"]


def test_settings_errors_name_the_parameter():
    pcm = np.zeros(3200, np.int16)
    base = {"sampling_rate": 16000, "frame_size": 320, "q0": 6, "dq": 3, "qmax": 15, "max_chunks": 4,
            "max_bytes": 100, "extra_delay": 64, "numerics": "avx2"}
    for change, inputs, param in (({"frame_size": 300}, None, "frame_size"),
                                  ({"numerics": "avx512"}, None, "numerics"),
                                  ({"sampling_rate": 44100}, None, "sampling_rate"),
                                  ({}, {"activity": [1] * 9}, "activity"),
                                  ({}, {"activity": [2] * 10}, "activity"),
                                  ({}, {"pcm": pcm.astype(np.float32)}, "pcm")):
        case = {"pcm": pcm, "activity": [1] * 10, **(inputs or {})}
        with pytest.raises(DredSettingsError) as ei:
            expected_for("dred_encode", "libopus-1.6.1", case, {**base, **change})
        assert ei.value.parameter == param, (change, inputs)


# ---------------------------------------------------------------------------------------------------------
# the reference recomputes the stored values (a sample; `opus-dred vectors verify` does them all)


def test_reference_recomputes_a_sample_of_the_stored_cases():
    cases = [c for c in _cases("dred_encode", "libopus-1.6.1") if c.name in ("budget_30.avx2", "q0_15.avx2")]
    cases += [c for c in _cases("features", "libopus-1.6.1") if c.name == "sr16000"]
    assert len(cases) == 3
    for c in cases:
        exp, tol = expected_for(c.handler, c.profile, c.inputs, c.parameters)
        assert tol == c.tolerance
        for v in exp.values():
            assert isinstance(v, Part) and encode_part(v.filename, v.value) == (c.path / v.filename).read_bytes(), c.id


# ---------------------------------------------------------------------------------------------------------
# libopus, through the adapter


@pytest.mark.oracle
@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1", "libopus-1.5.2-generic", "libopus-1.6.1-generic"])
def test_libopus_reproduces_every_case_of_its_arithmetic(build, require_default_numerics_host):
    """Each build runs the dred_encode cases of its host preset (default: avx2, -generic: sse2 here) and
    passes them byte for byte; the others are skipped with both presets named. Its features are bit-exact
    with the avx2 cases (default builds) or within the tolerance (-generic)."""
    from opus_dred.conformance._adapters import LibopusAdapter

    _oracle(build)
    a = LibopusAdapter(build)
    profile = build[:13]
    preset, _ = a.encoder_numerics()
    assert preset == ("sse2" if build.endswith("generic") else "avx2")
    rep = run_suite([a], _cases("dred_encode", profile) + _cases("features", profile))
    out = rep.impls[0].outcomes
    bad = [(o.case, o.detail) for o in out if o.status in ("fail", "error")]
    assert not bad, bad
    ran = [o for o in out if o.handler == "dred_encode" and o.status == "pass"]
    assert len(ran) == (2 if preset == "sse2" else 17) and all(o.name.endswith("." + preset) for o in ran)
    for o in out:
        if o.status == "skip":
            assert o.handler == "dred_encode" and "'avx2'" in o.detail and "'sse2'" in o.detail, o.detail
    feats = [o for o in out if o.handler == "features"]
    assert len(feats) == 5 and all(o.status == "pass" for o in feats)
    assert all(o.bit_exact for o in feats) == (preset == "avx2")


def _round_up(x: float, digits: int = 2) -> float:
    if x <= 0:
        return 0.0
    e = math.floor(math.log10(x)) - digits + 1
    return round(math.ceil(round(x / 10 ** e, 6)) * 10 ** e, 12)


@pytest.mark.oracle
def test_feature_tolerance_is_libopus_default_vs_generic_spread(require_default_numerics_host):
    """The features tolerance is the largest dred_compare figures between libopus' default and -generic
    builds on the suite's features inputs, both releases, rounded up to two significant digits (measured on
    a CPU with the RCPPS table of the cases' numerics, as the constant was)."""
    from opus_dred.conformance._adapters import LibopusAdapter
    from opus_dred.conformance._metric import compare_features

    worst = {"total": 0.0, "max": 0.0, "pitch": 0.0}
    for profile in PROFILES:
        _oracle(profile)
        _oracle(profile + "-generic")
        default, generic = LibopusAdapter(profile), LibopusAdapter(profile + "-generic")
        for c in _cases("features", profile):
            x = default._features(c).values["features"]
            y = generic._features(c).values["features"]
            m = compare_features(x, y)
            worst = {k: max(v, getattr(m, k)) for k, v in worst.items()}
    assert worst["total"] > 0  # the builds do differ on these inputs
    assert {k: _round_up(v) for k, v in worst.items()} == {k: ENCODER_FEATURE_TOLERANCE[k] for k in worst}, worst


@pytest.mark.oracle
def test_another_rcpps_skips_with_both_presets_named(monkeypatch):
    """On a CPU whose RCPPS table is Intel's, a default build computes as avx2-intel: the avx2 payload cases
    and the features cases (whose tolerance was measured with AMD's table) are skipped, never failed."""
    from opus_dred.conformance._adapters import LibopusAdapter
    from opus_dred.refimpl import _nnet as nnet

    _oracle("libopus-1.6.1")
    monkeypatch.setattr(nnet, "host_reciprocal", lambda: "rcp11")
    a = LibopusAdapter("libopus-1.6.1")
    assert a.encoder_numerics()[0] == "avx2-intel"
    for c in (_cases("dred_encode", "libopus-1.6.1")[0], _cases("features", "libopus-1.6.1")[0]):
        o = run_case(a, c)
        assert o.status == "skip" and "'avx2'" in o.detail and "'avx2-intel'" in o.detail, o.detail


# ---------------------------------------------------------------------------------------------------------
# the JSON-lines protocol

_ECHO = '''
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
for line in sys.stdin:
    req = json.loads(line)
    if req.get("type") == "hello":
        print(json.dumps({"id": 0, "protocol": "opus-dred-conform/1", "version": "1.1", "name": "echo",
                          "handlers": ["dred_encode", "features"], "profiles": None}), flush=True)
        continue
    folder = root.joinpath(*req["case"].split("/"))
    meta = json.loads((folder / "meta.json").read_text())
    if req["handler"] == "dred_encode":
        result = {"payloads": json.loads((folder / "payloads.json").read_text())}
    else:
        import base64
        raw = (folder / "features.f32").read_bytes()
        result = {"features": {"base64": base64.b64encode(raw).decode(), "dtype": "float32",
                               "shape": [len(raw) // 80, 20]}}
    print(json.dumps({"id": req["id"], "result": result}), flush=True)
'''


def test_external_protocol_carries_both_handlers(tmp_path):
    """A request carries the PCM as an int16 array, the activity as a list and every parameter; a JSON-lines
    program's answers (payloads as hex strings, features as a float32 array; this one reads them from the case
    folder, to test the transport alone) pass, and a changed payload fails at that frame."""
    from opus_dred.conformance._adapters import ExternalAdapter, request_for

    prog = tmp_path / "echo.py"
    prog.write_text(_ECHO)
    cases = [_cases("dred_encode", "libopus-1.5.2")[0], _cases("features", "libopus-1.5.2")[0]]
    req = request_for(cases[0], 1)
    assert req["inputs"]["pcm"]["dtype"] == "int16" and req["inputs"]["pcm"]["shape"] == [cases[0].inputs["pcm"].size]
    assert set(req["parameters"]) == {"sampling_rate", "frame_size", "q0", "dq", "qmax", "max_chunks", "max_bytes",
                                      "extra_delay", "numerics"}
    assert req["expected_keys"] == ["payloads"] and req["inputs"]["activity"] == cases[0].inputs["activity"]
    a = ExternalAdapter([sys.executable, str(prog), str(SUITE)], timeout=20)
    try:
        for c in cases:
            o = compare_case(c, a.run(c), a.name)
            assert o.status == "pass", o.detail
        c = cases[0]
        res = a.run(c)
        k = next(i for i, h in enumerate(res.values["payloads"]) if h)
        h = res.values["payloads"][k]
        res.values["payloads"][k] = f"{int(h[:2], 16) ^ 1:02x}" + h[2:]
        o = compare_case(c, res, a.name)
        assert o.status == "fail" and o.field == f"payloads[{k}]", o.detail
    finally:
        a.close()
