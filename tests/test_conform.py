"""The conformance runner, its adapters and the conform command.

A small suite is written in a temporary directory with the vector format's own writer and the reference's
expected values (``opus_dred.vectors._expected``), from packets of the libopus encoder (oracle). Then: the
reference passes it; each libopus default build passes its own profile's cases and skips the others (partial
where libopus cannot report a field); a corrupted expected value fails with the right field and offset, and no
adapter's answer depends on the expected values; fields are compared in the handler registry's order; the
external JSON-lines adapter (docs/examples/external_adapter.py) agrees with the reference and survives a crash,
a hang and a garbage line.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from opus_dred.conformance._runner import (
    ErrorInfo, Result, compare_case, compare_values, run_suite,
)
from opus_dred.vectors._format import Part, iter_cases, load_case, write_case
from opus_dred.vectors._handlers import HANDLERS, Needs, expected_for

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "external_adapter.py"
PROFILES = {"libopus-1.5.2": "libopus-1.5.2", "libopus-1.6.1": "libopus-1.6.1"}


def _oracle(build):
    from opus_dred.libopus._oracle import Oracle

    try:
        return Oracle.for_build(build)
    except Exception as exc:  # pragma: no cover - a machine without the builds
        pytest.skip(f"libopus build {build} unavailable: {exc}")


def _put(root, profile, handler, name, inputs, params):
    raw = {k: (v.value if isinstance(v, Part) else v) for k, v in inputs.items()}
    exp, tol = expected_for(handler, profile, raw, params)
    return write_case(root, dict(profile=profile, handler=handler, suite="t", case=name, inputs=inputs,
                                 parameters=params, expected=exp, tolerance=tol, provenance={"generator": "test"}))


def _speechlike(n=16000 * 2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 12))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2
    return (0.08 * x * env + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    pcm = _speechlike()
    for profile, build in PROFILES.items():
        o = _oracle(build)
        pkts = [p.data for p in o.encode(pcm, fs=16000, bitrate=24000, frame_ms=20, loss_perc=20, dred_duration=100)]
        dred = [i for i, p in enumerate(pkts) if o.dred_parse(p, sampling_rate=16000).nb_latents > 0]
        assert dred, "the encoder wrote no DRED"
        p = pkts[dred[len(dred) // 2]]
        _put(root, profile, "dred_features", "f1", {"packet": Part("packet.bin", p)},
             {"max_dred_samples": 16000, "sampling_rate": 16000})
        _put(root, profile, "dred_features", "nodred", {"packet": Part("packet.bin", pkts[0][:1] + b"\x00" * 5)},
             {"max_dred_samples": 16000, "sampling_rate": 16000})
        _put(root, profile, "dred_payload", "p1", {"packet": Part("packet.bin", p)},
             {"max_dred_samples": 48000, "sampling_rate": 16000})
        _put(root, profile, "packet", "k1", {"packet": Part("packet.bin", p)}, {"self_delimited": False})
        _put(root, profile, "invalid", "code3_no_count", {"data": Part("data.bin", bytes([p[0] | 3]))},
             {"layer": "packet"})
        _put(root, profile, "extensions", "gen", {"extensions": [{"id": 33, "frame": 0, "data": "0102"},
                                                                 {"id": 5, "frame": 1, "data": "aa"}]},
             {"direction": "generate", "nb_frames": 2})
        _put(root, profile, "extensions", "parse", {"padding": Part("padding.bin", bytes([0x42, 0x02, 0x0b, 0xaa]))},
             {"direction": "parse", "nb_frames": 2})
        _put(root, profile, "range_coder", "enc", {"ops": Part("ops.json", [
            {"op": "uint", "value": 5, "ft": 10}, {"op": "bits", "value": 3, "bits": 2},
            {"op": "laplace_p0", "value": -2, "p0": 100 << 7, "decay": 120 << 7}])}, {"direction": "encode", "size": 20})
        _put(root, profile, "receiver", "r", {"events": Part("events.json", [
            {"type": "arrived", "seq": 0, "samples": 960}, {"type": "lost", "seq": 1},
            {"type": "arrived", "seq": 2, "samples": 960, "dred_latents": 5, "dred_offset": 4}, {"type": "end"}])},
             {"policy": "best", "sampling_rate": 48000})
    return root


# ---------------------------------------------------------------------------------------------------------
# comparison facts


def test_compare_bytes_reports_first_differing_offset():
    d = compare_values({"s": b"\x00\x01\x02\x03"}, {"s": b"\x00\x01\x09\x03"})
    assert d.field == "s" and d.offset == 2
    d = compare_values({"s": b"\x00\x01"}, {"s": b"\x00\x01\x02"})
    assert d.offset == 2 and "lengths 2 and 3" in d.detail
    assert compare_values({"s": b"ab"}, {"s": "6162"}) is None  # hex in JSON results


def test_compare_floats_by_bit_pattern_and_arrays_by_row():
    a = np.zeros((4, 3), np.float32)
    b = a.copy()
    b[2, 1] = -0.0  # equal as numbers, different bit pattern: exact means bit-exact
    d = compare_values({"x": a}, {"x": b})
    assert d is not None and d.field == "x[2, 1]" and d.offset == 2
    assert compare_values({"x": a}, {"x": a.tolist()}) is None


def test_compare_lists_nested_path_and_missing_fields():
    exp = {"packet": {"frame_sizes": [10, 20, 30], "mode": "SILK"}}
    d = compare_values(exp, {"packet": {"frame_sizes": [10, 21, 30], "mode": "SILK"}})
    assert d.field == "packet.frame_sizes[1]" and d.offset == 1
    missing: list[str] = []
    assert compare_values(exp, {"packet": {"frame_sizes": [10, 20, 30]}}, missing=missing) is None
    assert missing == ["packet.mode"]
    assert compare_values({"n": 3}, {"n": True}) is not None  # a bool is not an integer
    assert compare_values({"n": 3}, {"n": 3.5}) is not None


def test_invalid_judging_class_offset_and_partial():
    class C:
        profile, handler, suite, name = "libopus-1.6.1", "invalid", "t", "x"
        expected = {"error": {"class": "PacketError", "byte_offset": 3, "rule": "RFC6716 R5"}}
        tolerance = None

    assert compare_case(C, Result(error=ErrorInfo("PacketError", 3)), "i").status == "pass"
    o = compare_case(C, Result(error=ErrorInfo("PacketError", 2)), "i")
    assert o.status == "fail" and o.field == "error.byte_offset"
    assert compare_case(C, Result(error=ErrorInfo("ExtensionError", 3)), "i").field == "error.class"
    o = compare_case(C, Result(error=ErrorInfo(None, None, code="OPUS_INVALID_PACKET")), "i")
    assert o.status == "pass" and set(o.partial) == {"error.class", "error.byte_offset"}
    assert compare_case(C, Result(values={"accepted": True}), "i").status == "fail"
    assert compare_case(C, Result(failure="crashed"), "i").status == "error"
    assert compare_case(C, Result(unsupported=True), "i").status == "skip"


# ---------------------------------------------------------------------------------------------------------
# reference and libopus


def _by_case(run):
    return {o.case: o for o in run.outcomes}


def test_reference_passes_its_own_suite(suite):
    from opus_dred.conformance._adapters import ReferenceAdapter

    rep = run_suite([ReferenceAdapter()], iter_cases(suite))
    r = rep.impls[0]
    assert r.counts()["pass"] == rep.cases, [o.detail for o in r.outcomes if o.status != "pass"]
    feats = [o for o in r.outcomes if o.metric and o.metric.get("frames")]
    assert feats and all(o.metric["bit_exact"] for o in feats)


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
def test_libopus_build_passes_its_own_profile_and_skips_the_other(suite, build):
    from opus_dred.conformance._adapters import LibopusAdapter

    _oracle(build)
    rep = run_suite([LibopusAdapter(build)], iter_cases(suite))
    out = _by_case(rep.impls[0])
    for cid, o in out.items():
        if cid.startswith(build + "/") and "/receiver/" not in cid:
            assert o.status == "pass", (cid, o.detail)
        else:
            assert o.status == "skip", (cid, o.status)
    assert "libopus has no receiver" in out[f"{build}/receiver/t/r"].detail
    # libopus cannot say which error or where: partial, not failed
    assert set(out[f"{build}/invalid/t/code3_no_count"].partial) == {"error.class", "error.byte_offset"}
    assert "payload.latents_q" in out[f"{build}/dred_payload/t/p1"].partial
    m = out[f"{build}/dred_features/t/f1"].metric
    assert m["frames"] > 0 and m["passed"]


def _corrupt(src: Path, dst_root: Path, edit) -> Path:
    import shutil

    dst = dst_root / src.name
    shutil.copytree(src, dst)
    edit(dst)
    return dst


def test_corrupted_expected_values_fail_at_the_right_place(suite, tmp_path):
    from opus_dred.conformance._adapters import ReferenceAdapter

    prof = "libopus-1.6.1"

    def bump_frame_size(d: Path) -> None:
        p = json.loads((d / "packet.json").read_text())
        p["frame_sizes"][0] += 1
        (d / "packet.json").write_text(json.dumps(p))

    def shift_frame(d: Path) -> None:
        f = np.fromfile(d / "features.f32", "<f4").reshape(-1, 20)
        f[5, :18] += 1.0
        f.astype("<f4").tofile(d / "features.f32")

    a = ReferenceAdapter()
    c1 = load_case(_corrupt(suite / prof / "packet" / "t" / "k1", tmp_path, bump_frame_size))
    o = compare_case(c1, a.run(c1), a.name)
    assert o.status == "fail" and o.field == "packet.frame_sizes[0]" and o.offset == 0
    c2 = load_case(_corrupt(suite / prof / "dred_features" / "t" / "f1", tmp_path, shift_frame))
    o = compare_case(c2, a.run(c2), a.name)
    assert o.status == "fail" and o.field == "features" and o.offset == 5
    assert o.metric["total"] > 0.5 and not o.metric["bit_exact"]
    assert max(range(len(o.frame_error)), key=o.frame_error.__getitem__) == 5


def _garbled(v):
    """Every leaf of an expected value changed (type kept), so that nothing in it is right."""
    if isinstance(v, dict):
        return {k: _garbled(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_garbled(x) for x in v] + [0]
    if isinstance(v, np.ndarray):
        return (v + 1).astype(v.dtype) if v.size else np.ones((1,) + v.shape[1:], v.dtype)
    if isinstance(v, (bytes, bytearray)):
        return bytes(b ^ 0xFF for b in v) + b"\x00"
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v + 1
    if isinstance(v, str):
        return v + "?"
    return 0 if v is None else None


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return type(a) is type(b) and a == b


def _answers_alike(adapter, case) -> None:
    import dataclasses

    right = adapter.run(case)
    for expected in (_garbled(case.expected), {}):
        wrong = adapter.run(dataclasses.replace(case, expected=expected))
        for f in dataclasses.fields(right):
            assert _same(getattr(right, f.name), getattr(wrong, f.name)), (case.id, f.name)


def test_no_adapter_reads_the_expected_values(suite):
    """Given a case whose expected values are all wrong (or absent), each adapter answers exactly as it does
    with the right ones: the reference, and each libopus build on every case of its profile in this suite
    and in the canonical suite (which has packets with and without padding)."""
    from opus_dred.conformance._adapters import LibopusAdapter, ReferenceAdapter
    from opus_dred.vectors._format import suite_root

    ref = ReferenceAdapter()
    for c in iter_cases(suite):
        _answers_alike(ref, c)
    canonical = list(iter_cases(suite_root())) if (suite_root() / "manifest.json").is_file() else []
    for build in PROFILES.values():
        _oracle(build)
        a = LibopusAdapter(build)
        cases = [c for c in list(iter_cases(suite)) + canonical if a.supports(c.handler, c.profile)]
        assert {c.handler for c in cases} >= {"packet", "dred_payload", "dred_features", "invalid"}
        for c in cases:
            _answers_alike(a, c)


def test_libopus_reports_padding_offset_only_where_padding_bytes_say_where(suite, tmp_path):
    """libopus' parser points at the end of the frames whether or not the padding flag is set: with padding
    bytes that is where padding starts; without, libopus cannot say, and the field is partial."""
    from opus_dred.conformance._adapters import LibopusAdapter

    build = "libopus-1.6.1"
    _oracle(build)
    a = LibopusAdapter(build)
    padded = load_case(suite / build / "packet" / "t" / "k1")
    assert padded.expected["packet"]["padding_length"] > 0
    o = compare_case(padded, a.run(padded), a.name)
    assert o.status == "pass" and "packet.padding_offset" not in o.partial
    pkt = bytes(padded.inputs["packet"])
    for name, data in (("code0", bytes([pkt[0] & 0xFC]) + bytes(10)),  # no padding flag
                       ("flag_empty", bytes([pkt[0] | 3, 0x41, 0]) + bytes(10))):  # padding flag, 0 bytes
        c = load_case(_put(tmp_path, build, "packet", name, {"packet": Part("packet.bin", data)},
                           {"self_delimited": False}))
        o = compare_case(c, a.run(c), a.name)
        assert o.status == "pass" and "packet.padding_offset" in o.partial, (name, o.detail)


def test_fields_compare_in_the_registry_order(suite):
    """A features case answered with 'no DRED' fails at ``found``, the field that explains the others, not
    at ``dred_end`` (the first in alphabetical order)."""
    c = load_case(suite / "libopus-1.6.1" / "dred_features" / "t" / "f1")
    assert sorted(c.expected) == list(c.expected)  # stored alphabetically
    o = compare_case(c, Result(values={"found": False, "nb_latents": 0, "ret": 0, "dred_end": 1}), "x")
    assert o.status == "fail" and o.field == "found"
    assert HANDLERS["dred_features"].fields[0] == "found"


def test_one_handler_registry():
    """The canonical suite, the expected-value code, the adapters and docs/vector-format.md all name the
    registry's handlers."""
    from opus_dred.conformance._adapters import LibopusAdapter, ReferenceAdapter
    from opus_dred.vectors._format import load_manifest, suite_root

    if (suite_root() / "manifest.json").is_file():
        for counts in load_manifest()["counts"].values():
            assert set(counts) <= set(HANDLERS)
    ref = ReferenceAdapter()
    for name, h in HANDLERS.items():
        assert len(set(h.fields)) == len(h.fields) > 0
        assert ref.supports(name, "libopus-1.6.1") == (h.expected is not None)
        if h.needs in LibopusAdapter.NEEDS_MET:
            assert callable(getattr(LibopusAdapter, f"_{name}", None)), name
    assert not ref.supports("no_such_handler", "libopus-1.6.1")
    with pytest.raises(ValueError):
        expected_for("no_such_handler", "libopus-1.6.1", {}, {})
    assert HANDLERS["receiver"].needs is Needs.RECEIVER
    # the format's handler table: one row per handler, in the registry's order, naming each field
    rows = []
    for line in (ROOT / "docs" / "vector-format.md").read_text().split("## Handlers", 1)[1].splitlines():
        if line.startswith("| `"):
            rows.append((line.split("`")[1], line))
        elif rows and not line.startswith("|"):
            break
    assert [r[0] for r in rows] == list(HANDLERS)
    for name, line in rows:
        expected_cell = re.split(r"(?<!\\)\|", line.strip().strip("|"))[3]
        for f in HANDLERS[name].fields:
            assert f"`{f}`" in expected_cell or f"`{f}." in expected_cell, (name, f)


# ---------------------------------------------------------------------------------------------------------
# external JSON-lines adapter


def _external(*args, timeout=20.0):
    from opus_dred.conformance._adapters import ExternalAdapter

    return ExternalAdapter([sys.executable, str(EXAMPLE), *args], timeout=timeout)


def test_external_example_agrees_with_the_reference(suite):
    cases = [c for c in iter_cases(suite) if c.handler in ("packet", "invalid", "range_coder")]
    ext = _external()
    assert ext.capabilities["protocol"] == "opus-dred-conform/1" and ext.name == "external:example"
    rep = run_suite([ext], cases)
    out = _by_case(rep.impls[0])
    for cid, o in out.items():
        if "/range_coder/" in cid:
            assert o.status == "skip"  # not in its capabilities
        else:
            assert o.status == "pass" and not o.partial, (cid, o.detail)


def test_external_crash_hang_and_garbage_are_errors_and_the_next_case_runs(suite):
    cases = [c for c in iter_cases(suite) if c.handler in ("packet", "invalid")]
    assert len(cases) == 4
    ids = [c.id for c in cases]
    ext = _external("--crash-on", ids[0], "--hang-on", ids[1], "--garbage-on", ids[2], timeout=2.0)
    rep = run_suite([ext], cases)
    o = rep.impls[0].outcomes
    assert [x.status for x in o] == ["error", "error", "error", "pass"], [x.detail for x in o]
    assert "exited" in o[0].detail and "no answer within 2 s" in o[1].detail and "not JSON" in o[2].detail


def test_external_that_cannot_start_is_an_error_per_case(suite):
    from opus_dred.conformance._adapters import ExternalAdapter

    ext = ExternalAdapter([str(ROOT / "no-such-program")], timeout=2.0)
    rep = run_suite([ext], [c for c in iter_cases(suite, handler="packet")])
    assert {o.status for o in rep.impls[0].outcomes} == {"error"}


def test_protocol_value_round_trip():
    from opus_dred.conformance._adapters import decode_value, encode_value

    v = {"b": b"\x00\xff", "f": np.arange(40, dtype=np.float32).reshape(2, 20), "i": np.array([1, -2], np.int16),
         "n": [1, {"x": 2.5}]}
    enc = json.loads(json.dumps(encode_value(v)))
    assert enc["f"]["dtype"] == "float32" and enc["f"]["shape"] == [2, 20]
    back = decode_value(enc)
    assert back["b"] == v["b"] and np.array_equal(back["f"], v["f"]) and back["i"].dtype == np.int16
    assert back["n"] == v["n"]


# ---------------------------------------------------------------------------------------------------------
# the command


def _app():
    import typer

    from opus_dred.cli._conform import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing the group
        pass

    return app


def test_conform_command_json_report_and_exit_status(suite, tmp_path):
    from typer.testing import CliRunner

    r = CliRunner().invoke(_app(), ["conform", "--impl", "libopus-1.6.1", "--profile", "libopus-1.6.1",
                                    "--suite", str(suite), "--json", "--report", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout[r.stdout.index("{"):])
    impl = rep["implementations"][0]
    assert impl["name"] == "libopus-1.6.1" and impl["counts"]["fail"] == 0 and impl["counts"]["pass"] > 0
    assert impl["matrix"]["receiver"]["skip"] == 1
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["cases"] == rep["cases"]
    assert (tmp_path / "rep" / "report.html").read_text().startswith("<!DOCTYPE html>")
    # a corrupted copy fails: exit status 1, and the table names the case
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(suite / "libopus-1.6.1" / "packet", bad / "libopus-1.6.1" / "packet")
    pj = bad / "libopus-1.6.1" / "packet" / "t" / "k1" / "packet.json"
    d = json.loads(pj.read_text())
    d["payload_offset"] += 1
    pj.write_text(json.dumps(d))
    r = CliRunner().invoke(_app(), ["conform", "--impl", "libopus-1.6.1", "--suite", str(bad)])
    assert r.exit_code == 1 and "packet.payload_offset" in r.output


def test_official_layout_suite(tmp_path):
    """A directory in libopus' layout: vectorN_dred.bit against vectorN_dred_dec.f32 (features in time order),
    run by libopus 1.6.1's own fargan_demo; a wrong frame fails at that frame."""
    from opus_dred.bitstream._dredstream import chronological, read_stream_record, write_stream_record
    from opus_dred.bitstream._formats import write_dred_stream
    from opus_dred.bitstream._profiles import get_profile
    from opus_dred.conformance._adapters import LibopusAdapter
    from opus_dred.cli._conform import is_official_dir, load_suite

    o = _oracle("libopus-1.6.1")
    prof = get_profile("libopus-1.6.1")
    pkts = [p.data for p in o.encode(_speechlike(seed=1), fs=16000, bitrate=24000, frame_ms=20, loss_perc=20,
                                     dred_duration=100)]
    from opus_dred.bitstream._dred import read_dred_payload
    from opus_dred.bitstream._extensions import find_dred_extension

    recs, feats = [], []
    for p in pkts:
        loc = find_dred_extension(p, prof)
        if loc is None:
            continue
        pl = read_dred_payload(loc.payload, prof)
        q0 = pl.q0
        lq = np.where(pl.q_levels[:, None] == q0, pl.latents_q, 0)[:4]
        try:
            rec = write_stream_record(pl.state_q, lq, q0, prof)
        except Exception:
            continue
        recs.append(rec)
        d = read_stream_record(rec, prof)
        feats.append(chronological(o.rdovae_decode(d.state, d.latents)))  # libopus' decoder: the expected values
        if len(recs) == 3:
            break
    assert len(recs) == 3
    (tmp_path / "vector1_dred.bit").write_bytes(write_dred_stream(recs))
    f = np.concatenate(feats).astype("<f4")
    f.tofile(tmp_path / "vector1_dred_dec.f32")
    assert is_official_dir(tmp_path)
    label, cases = load_suite(tmp_path, None)
    assert [c.name for c in cases] == ["vector1"] and cases[0].handler == "dred_stream"
    a = LibopusAdapter("libopus-1.6.1")
    out = compare_case(cases[0], a.run(cases[0]), a.name)
    assert out.status == "pass" and out.metric["bit_exact"], out.detail
    from opus_dred.conformance._adapters import ReferenceAdapter

    ref = ReferenceAdapter()
    out = compare_case(cases[0], ref.run(cases[0]), ref.name)  # the reference decodes every record too
    assert out.status == "pass" and out.metric["frames"] == f.shape[0], out.detail
    f[7, :18] += 1.0
    f.tofile(tmp_path / "vector1_dred_dec.f32")
    case = load_suite(tmp_path, None)[1][0]
    out = compare_case(case, a.run(case), a.name)
    assert out.status == "fail" and out.offset == 7


@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1", "libopus-1.5.2-generic", "libopus-1.6.1-generic"])
def test_each_libopus_build_passes_its_own_profile_of_the_canonical_suite(build):
    """Every case of the build's own profile that libopus can run passes (features within
    dred_compare's thresholds, everything else exact or partial); the rest is skipped, never failed."""
    from opus_dred.conformance._adapters import LibopusAdapter
    from opus_dred.vectors._format import suite_root

    if not (suite_root() / "manifest.json").is_file():
        pytest.skip("the canonical suite is not in this checkout")
    _oracle(build)
    a = LibopusAdapter(build)
    cases = list(iter_cases(suite_root()))
    rep = run_suite([a], cases)
    r = rep.impls[0]
    bad = [(o.case, o.detail) for o in r.outcomes if o.status in ("fail", "error")]
    assert not bad, bad[:10]
    own = [o for o in r.outcomes if o.profile.endswith(build.split("-")[1]) and o.handler != "receiver"]
    # cases made under another build's numerics preset (encoder, vocoder, PLC) are skipped by design
    own = [o for o in own if not (o.status == "skip" and "numerics" in o.detail)]
    assert own and sum(o.status == "pass" for o in own) >= 0.95 * len(own)
    assert {o.handler for o in own if o.status == "pass"} >= {"dred_features", "dred_payload", "packet", "invalid"}


# ---------------------------------------------------------------------------------------------------------
# strictness and counts


def test_strict_fails_a_partial_pass_and_the_counts_are_the_outcomes(suite):
    from opus_dred.conformance._adapters import LibopusAdapter

    cases = list(iter_cases(suite, profile="libopus-1.6.1"))
    loose = run_suite([LibopusAdapter("libopus-1.6.1")], cases)
    strict = run_suite([LibopusAdapter("libopus-1.6.1")], cases, strict=True)
    partial = [o for o in loose.impls[0].outcomes if o.status == "pass" and o.partial]
    assert partial, "libopus leaves some field unreported"
    by_case = {o.case: o for o in strict.impls[0].outcomes}
    for o in partial:
        s = by_case[o.case]
        assert s.status == "fail" and s.field == o.partial[0] and s.detail.startswith("strict: "), s
    assert strict.impls[0].counts()["pass"] == loose.impls[0].counts()["pass"] - len(partial)
    for rep in (loose, strict):
        j = rep.to_json()
        assert j["strict"] is (rep is strict)
        for impl in j["implementations"]:
            outs = impl["outcomes"]
            for h, q in impl["quality"].items():
                mine = outs if h == "total" else [o for o in outs if o["handler"] == h]
                assert q["pass"] == sum(o["status"] == "pass" for o in mine)
                assert q["partial"] == sum(o["status"] == "pass" and bool(o["partial"]) for o in mine)
                n_feat = sum(o["metric"] is not None for o in mine)
                assert q["compared_features"] == (n_feat or None)
                assert q["bit_exact"] == (sum(bool(o["metric"] and o["metric"].get("bit_exact")) for o in mine)
                                          if n_feat else None)
