"""The vector format, the canonical suite, the generator's determinism and the official export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from opus_dred.bitstream._errors import FormatError
from opus_dred.vectors._handlers import expected_for
from opus_dred.vectors._format import (FORMAT, Part, check_manifest, iter_case_dirs, iter_cases, load_case,
                                      load_manifest, suite_root, write_case, write_manifest)

SUITE = suite_root()


def test_round_trip_and_determinism(tmp_path):
    case = {"profile": "libopus-1.6.1", "handler": "dred_features", "suite": "s", "case": "c.1",
            "inputs": {"packet": b"\x01\x02\x03"}, "parameters": {"max_dred_samples": 960},
            "expected": {"features": Part("features.f32", np.arange(40, dtype=np.float32).reshape(2, 20)),
                         "nb_latents": 1, "latents": np.ones((1, 3), np.float32)},
            "provenance": {"seed": 0}}
    a = write_case(tmp_path / "a", case)
    b = write_case(tmp_path / "b", case)
    for f in sorted(p.name for p in a.iterdir()):
        assert (a / f).read_bytes() == (b / f).read_bytes()
    c = load_case(a)
    assert c.inputs["packet"] == b"\x01\x02\x03" and c.expected["nb_latents"] == 1
    assert c.expected["features"].shape == (2, 20) and c.expected["features"][1, 0] == 20.0
    assert c.files["expected.features"] == "features.f32"
    again = write_case(tmp_path / "c", c)  # a loaded case writes back to the same bytes
    assert (again / "meta.json").read_bytes() == (a / "meta.json").read_bytes()


def test_malformed_parts_raise_typed_errors(tmp_path):
    d = write_case(tmp_path, {"profile": "p", "handler": "h", "suite": "s", "case": "c",
                              "expected": {"f": Part("f.f32", np.zeros((1, 20), np.float32))}})
    (d / "f.f32").write_bytes(b"\0" * 10)
    with pytest.raises(FormatError) as ei:
        load_case(d)
    assert ei.value.byte_offset == 0
    (d / "meta.json").write_text('{"format": "other"}')
    with pytest.raises(FormatError):
        load_case(d)


def test_manifest_detects_a_changed_file(tmp_path):
    root = tmp_path / "suite"
    shutil.copytree(SUITE / "libopus-1.6.1" / "packet", root / "libopus-1.6.1" / "packet")
    write_manifest(root)
    assert check_manifest(root) == []
    victim = next(root.rglob("packet.bin"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert check_manifest(root) == [f"changed: {victim.relative_to(root).as_posix()}"]


def test_canonical_suite_is_intact_and_sized():
    m = load_manifest()
    assert check_manifest() == []
    assert set(m["profiles"]) == {"libopus-1.5.2", "libopus-1.6.1"}
    assert sum(f["size"] for f in m["files"].values()) < 15 * 2**20
    handlers = {d.relative_to(SUITE).parts[1] for d in iter_case_dirs(SUITE)}
    assert handlers == {"range_coder", "packet", "extensions", "dred_payload", "dred_features", "receiver", "invalid",
                        "features", "dred_encode", "vocoder", "plc"}


def test_grid_covers_both_sides_of_dred_presence():
    for profile in ("libopus-1.5.2", "libopus-1.6.1"):
        present = {c.provenance["dred_present"] for c in iter_cases(SUITE, profile, "dred_payload", "speech_grid")}
        assert present == {True, False}
        for c in iter_cases(SUITE, profile, "dred_payload", "speech_grid"):
            assert c.expected["found"] == c.provenance["dred_present"]


@pytest.mark.parametrize("handler", ["range_coder", "packet", "extensions", "dred_payload", "receiver", "invalid"])
def test_stored_expected_values_are_what_the_reference_computes(handler):
    """verify's second step for the non-neural handlers (all cases; dred_features: see the next test)."""
    from opus_dred.vectors._format import encode_part

    cases = list(iter_cases(SUITE, handler=handler))
    assert cases
    for c in cases:
        exp, _ = expected_for(c.handler, c.profile, c.inputs, c.parameters)
        assert set(exp) == set(c.expected), c.id
        for k, v in exp.items():
            if isinstance(v, Part):
                assert c.files[f"expected.{k}"] == v.filename, (c.id, k)
                assert encode_part(v.filename, v.value) == (c.path / v.filename).read_bytes(), (c.id, k)
            else:
                assert _json_eq(v, c.expected[k]), (c.id, k)


def _json_eq(a, b) -> bool:
    import json

    from opus_dred.vectors._format import dumps_json

    return json.loads(dumps_json(a)) == json.loads(dumps_json(b))


def test_features_of_a_few_cases_are_bit_identical():
    cases = [c for c in iter_cases(SUITE, "libopus-1.6.1", "dred_features") if c.expected.get("found")][::25]
    assert cases
    for c in cases:
        exp, tol = expected_for(c.handler, c.profile, c.inputs, c.parameters)
        assert exp["features"].value.tobytes() == c.expected["features"].tobytes(), c.id
        assert exp["nb_latents"] == c.expected["nb_latents"] and exp["ret"] == c.expected["ret"]
        assert tol["metric"] == "dred_compare-features"


@pytest.mark.oracle
def test_invalid_cases_agree_with_libopus_on_rejection():
    """Every invalid case the oracle could run is also rejected by libopus (recorded provenance, re-run)."""
    from opus_dred.vectors._generate import _libopus_says

    for c in iter_cases(SUITE, handler="invalid"):
        rec = c.provenance["libopus"]
        if rec is None:
            continue
        now = _libopus_says(c.profile, c.parameters["layer"], c.inputs["data"], c.parameters)
        assert now == rec and rec["return"] < 0, c.id


#: The RCPPS of the CPU that made the committed suite's encoder-made inputs (AMD Zen 4; docs/vectors.md).
SUITE_RCPPS = "rcp12"


@pytest.mark.oracle
def test_generator_is_deterministic(tmp_path):
    """Regenerating two suites gives the committed bytes: the seeded one everywhere, the one made through the
    libopus encoder on a CPU with the suite's RCPPS (the encoder's neural parts use it, so its packets differ
    on other CPUs); elsewhere two regenerations of that one must equal each other."""
    from opus_dred.libopus._cpu import matching_rcpps_table
    from opus_dred.vectors._generate import generate

    def files(root, sub):
        found = sorted(p.relative_to(root) for p in (root / "libopus-1.6.1" / sub).rglob("*") if p.is_file())
        assert found
        return found

    generate(["libopus-1.6.1"], tmp_path, suite="mutations", manifest=False)
    generate(["libopus-1.6.1"], tmp_path, suite="basic", manifest=False)
    for rel in files(tmp_path, "range_coder/basic"):
        assert (tmp_path / rel).read_bytes() == (SUITE / rel).read_bytes(), rel
    if matching_rcpps_table() == SUITE_RCPPS:
        other, where = SUITE, "the committed suite"
    else:
        other, where = tmp_path / "again", "a second regeneration"
        generate(["libopus-1.6.1"], other, suite="mutations", manifest=False)
    for rel in files(tmp_path, "invalid/mutations"):
        assert (tmp_path / rel).read_bytes() == (other / rel).read_bytes(), (rel, where)


#: Where the user points the tests at a libopus tree holding ``tests/dred_vectors.sh`` (a checkout or a git
#: directory, e.g. of libopus master); docs/upstream.md.
TREE_ENV = "OPUS_DRED_LIBOPUS_TREE"
_SCRIPT = "tests/dred_vectors.sh"


def _script_from(tree: Path, dest: Path) -> Path | None:
    """``tests/dred_vectors.sh`` of ``tree``, copied to ``dest``: from its files (a checkout, or a registered
    build's copied source), else from ``HEAD`` of it as a git directory (bare, or a checkout's ``.git``)."""
    if (tree / _SCRIPT).is_file():
        shutil.copyfile(tree / _SCRIPT, dest)
        return dest
    for git_dir in (tree, tree / ".git"):
        if not git_dir.is_dir() or shutil.which("git") is None:
            continue
        r = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{_SCRIPT}"], capture_output=True)
        if r.returncode == 0:
            dest.write_bytes(r.stdout)
            return dest
    return None


def _libopus_script(tmp_path: Path) -> Path:
    """libopus' own ``tests/dred_vectors.sh`` (never committed here), from the tree named by
    ``$OPUS_DRED_LIBOPUS_TREE``, else from the source of a build the user registered (``opus-dred upstream
    register NAME PATH``) or a pinned release that ships it; skips, saying how to provide one, otherwise."""
    from opus_dred.libopus import _upstream as up

    dest = tmp_path / "dred_vectors.sh"
    named = os.environ.get(TREE_ENV)
    if named:
        got = _script_from(Path(named).expanduser(), dest)
        if got is None:
            pytest.skip(f"{TREE_ENV}={named} holds no {_SCRIPT} (neither in its files nor at HEAD of it as a git "
                        f"directory)")
        return got
    for name in up.known_builds():
        src = Path(up.status(name)["source_dir"])
        if src.is_dir() and (got := _script_from(src, dest)) is not None:
            return got
    pytest.skip(f"no libopus tree with {_SCRIPT} registered: run `opus-dred upstream register NAME PATH` "
                f"(e.g. a libopus master checkout) or set {TREE_ENV}")


def _python_loops(build_dir: Path, vec: Path, work: Path) -> str:
    """The three loops of dred_vectors.sh, reproduced: same programs, arguments and thresholds."""
    out = []
    for part, inp, mode, ref, thr, cmp_mode in (
        ("DRED decoding", "dred.bit", "-dred-decoding", "dred_dec.f32", (".5", ".15", ".02"), "-features"),
        ("vocoder", "features.f32", "-fargan-synthesis", "orig.sw", ("0.25", "1.0", "0.15"), "-audio"),
    ):
        for n in range(1, 9):
            tmp = work / ("tmp.f32" if cmp_mode == "-features" else "tmp.sw")
            subprocess.run([str(build_dir / "fargan_demo"), mode, str(vec / f"vector{n}_{inp}"), str(tmp)], check=True,
                           capture_output=True)
            cmd = [str(build_dir / "dred_compare"), cmp_mode, "-thresholds", *thr]
            cmd += [str(vec / f"vector{n}_{ref}"), str(tmp)] if cmp_mode == "-features" else \
                   [str(vec / f"vector{n}_orig.sw"), str(tmp)]
            if subprocess.run(cmd, capture_output=True).returncode:
                return f"ERROR: {part} vector{n}"
    return "Conformance tests passed"


def _export(tmp_path: Path) -> Path:
    """The official export of 1.6.1 (vector1..8), in tests/dred_vectors.sh's layout."""
    from opus_dred.vectors._official import export_official, read_official

    vec = tmp_path / "vectors"
    export_official(vec, "libopus-1.6.1")
    vs = read_official(vec)
    assert [v.n for v in vs] == list(range(1, 9))
    assert all(v.dred_dec.shape[1] == 20 and v.orig.dtype == np.int16 for v in vs)
    return vec


@pytest.mark.oracle
def test_official_export_passes_the_script_loops(tmp_path):
    """The official export passes dred_vectors.sh's checks, run here with the same programs, arguments and
    thresholds (no libopus tree needed)."""
    from opus_dred.libopus._upstream import get_build

    vec = _export(tmp_path)
    assert _python_loops(get_build("libopus-1.6.1").build_dir, vec, tmp_path) == "Conformance tests passed"


@pytest.mark.oracle
def test_official_export_passes_libopus_script(tmp_path):
    """The official export passes libopus' own tests/dred_vectors.sh, taken from a tree the user provides."""
    from opus_dred.libopus._upstream import get_build

    script = _libopus_script(tmp_path)
    vec = _export(tmp_path)
    build_dir = get_build("libopus-1.6.1").build_dir
    r = subprocess.run(["sh", str(script), str(build_dir), str(vec)], capture_output=True, text=True, cwd=tmp_path)
    text = r.stdout
    assert "ERROR" not in text, text
    assert text.count("output matches reference") >= 16  # DRED decoding and vocoder, 8 each
    assert "Conformance tests passed" in text


@pytest.mark.oracle
def test_official_features_come_from_the_reference(tmp_path, require_default_numerics_host):
    """vectorN_features.f32 of the export is the reference extractor's (provenance says so), and where this CPU
    computes the default numerics it is what the 1.6.1 build's fargan_demo -features writes, bit for bit."""
    from opus_dred.libopus._upstream import get_build
    from opus_dred.vectors._official import export_official

    vec = tmp_path / "v"
    export_official(vec, "libopus-1.6.1", count=1)
    prov = json.loads((vec / "provenance.json").read_text())
    assert "opus-dred reference feature extractor" in prov["vectors"]["vector1"]["features.f32"]
    ref = tmp_path / "ref.f32"
    subprocess.run([str(get_build("libopus-1.6.1").build_dir / "fargan_demo"), "-features",
                    str(vec / "vector1_orig.sw"), str(ref)], check=True, capture_output=True)
    assert (vec / "vector1_features.f32").read_bytes() == ref.read_bytes()
