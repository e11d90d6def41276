"""The ``limits`` suites: docs/limits.md names exactly their cases, each libopus build agrees with every case of
its own profile (the known findings pinned), and the bytes whose meaning differs between the two extension
syntaxes are in both profiles, read differently by each release's libopus."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import id_byte, parse_extensions
from opus_dred.bitstream._packet import Toc, write_packet
from opus_dred.bitstream._profiles import get_profile
from opus_dred.vectors._expected import extensions_record
from opus_dred.vectors._format import iter_cases, suite_root

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "limits.md"
PROFILES = ("libopus-1.5.2", "libopus-1.6.1")
#: cases where a libopus build disagrees with the reference (docs/limits.md, "Findings"): none in the suite
KNOWN_FINDINGS: dict[str, set[str]] = {"libopus-1.5.2": set(), "libopus-1.6.1": set()}
#: padding bytes whose meaning differs between the "v1" (1.5.x) and "rte" (1.6.x) syntaxes
SYNTAX_DIFFERS = {"ext_id2_l0", "ext_id2_l1", "ext_id2_short_v1", "ext_repeat_48_frames", "ext_repeat_long_last_l0",
                  "ext_sep_past_frame_count"}


def _limits_cases(profile=None):
    root = suite_root()
    if not (root / "manifest.json").is_file():
        pytest.skip("the canonical suite is not in this checkout")
    return [c for c in iter_cases(root, profile) if c.suite == "limits"]


def _oracle(build):
    from opus_dred.libopus._oracle import Oracle

    try:
        return Oracle.for_build(build)
    except Exception as exc:  # pragma: no cover - a machine without the builds
        pytest.skip(f"libopus build {build} unavailable: {exc}")


def test_doc_names_every_limits_case_and_only_those():
    named = set(re.findall(r"`limits/([a-z0-9_.-]+)`", DOC.read_text()))
    cases = {c.name for c in _limits_cases()}
    assert named - cases == set(), "docs/limits.md names cases the suite does not have"
    assert cases - named == set(), "limits cases docs/limits.md does not name"


def test_limits_suites_are_in_both_profiles_and_modest():
    for profile in PROFILES:
        cases = _limits_cases(profile)
        assert 100 <= len(cases) <= 160, len(cases)
        assert {c.handler for c in cases} == {"packet", "extensions", "dred_payload", "dred_features", "invalid"}


@pytest.mark.parametrize("build", PROFILES)
def test_libopus_agrees_with_every_limits_case_of_its_profile(build):
    from opus_dred.conformance._adapters import LibopusAdapter
    from opus_dred.conformance._runner import run_suite

    _oracle(build)
    cases = _limits_cases(build)
    rep = run_suite([LibopusAdapter(build)], cases)
    outcomes = rep.impls[0].outcomes
    assert all(o.status != "skip" for o in outcomes)
    findings = {o.case.split("/limits/")[1] for o in outcomes if o.status in ("fail", "error")}
    assert findings == KNOWN_FINDINGS[build], [(o.case, o.detail) for o in outcomes if o.status in ("fail", "error")]


def _read(padding: bytes, nb_frames: int, syntax: str):
    try:
        return extensions_record(parse_extensions(padding, nb_frames, syntax=syntax))
    except BitstreamError:
        return "invalid"


def _padding_cases(profile):
    out = {}
    for c in _limits_cases(profile):
        if c.handler == "extensions" and c.parameters.get("direction") == "parse":
            out[c.name] = (bytes(c.inputs["padding"]), int(c.parameters["nb_frames"]))
        elif c.handler == "invalid" and c.parameters.get("layer") == "extensions":
            out[c.name] = (bytes(c.inputs["data"]), int(c.parameters["nb_frames"]))
    return out


def test_bytes_the_syntaxes_read_differently_are_in_every_profile():
    """Each profile holds the same padding bytes; a parser of the other syntax reads exactly the
    SYNTAX_DIFFERS ones otherwise (so a 1.5 decoder with the 1.6 parser, or the reverse, fails)."""
    per = {p: _padding_cases(p) for p in PROFILES}
    assert per["libopus-1.5.2"] == per["libopus-1.6.1"]
    for name, (pad, nbf) in per["libopus-1.5.2"].items():
        differs = _read(pad, nbf, "v1") != _read(pad, nbf, "rte")
        assert differs == (name in SYNTAX_DIFFERS), name


def test_each_release_of_libopus_reads_the_differing_bytes_as_its_profile_says():
    cases = _padding_cases("libopus-1.6.1")
    for build, syntax in (("libopus-1.5.2", "v1"), ("libopus-1.6.1", "rte")):
        o = _oracle(build)
        for name in SYNTAX_DIFFERS:
            pad, nbf = cases[name]
            r = o.ext_parse(pad, nbf)
            got = "invalid" if r.ret < 0 else [(e.id, e.frame, e.data.hex()) for e in r.extensions]
            ref = _read(pad, nbf, syntax)
            ref = ref if ref == "invalid" else [(e["id"], e["frame"], e["data"]) for e in ref]
            assert got == ref, (build, name)


def _dred_past_frame_48(profile: str) -> bytes:
    from opus_dred.vectors._generate import _dred_data, _limit_frame, _limit_payload

    prof = get_profile(profile)
    pad = bytes([id_byte(1, 1), 60, id_byte(prof.extension_id, 0)]) + _dred_data(prof, _limit_payload(prof, seed=84))
    return write_packet(Toc(9, False, 3), [_limit_frame(40)], code=3, padding=pad)


def test_finding_dred_behind_frame_48_in_1_5_2():
    """A finding kept out of the suite (docs/limits.md): libopus 1.5.2's opus_dred_parse finds DRED behind a
    separator to frame 60 (dred_find_payload has no frame limit) and agrees with the reference, but the
    conformance adapter locates DRED with opus_packet_extensions_parse, which stops at frame 48, and says
    found: false. When the adapter is fixed this test fails: add the vector to the limits suite then."""
    from opus_dred.conformance._adapters import LibopusAdapter
    from opus_dred.refimpl._decode import decode_dred

    build = "libopus-1.5.2"
    o = _oracle(build)
    pkt = _dred_past_frame_48(build)
    ref = decode_dred(pkt, build, max_dred_samples=49920, sampling_rate=48000)
    d = o.dred_parse(pkt, max_dred_samples=49920, sampling_rate=48000)
    try:
        assert ref.found and (d.nb_latents, d.dred_offset, d.ret) == (ref.nb_latents, ref.dred_offset, ref.ret)
    finally:
        d.close()
    assert ref.nb_latents > 0
    assert LibopusAdapter(build)._locate(pkt) is None
