"""Deriving a profile and a model pack from a libopus tree (``opus-dred profiles derive``, ``upstream register``).

The pinned release trees reproduce the committed profiles field for field; fabricated variants of the 1.6.1 tree
(another version byte; master's chunk-bound statements; a chunk bound no variant describes) derive as their
statements say; what is derived goes to the derived area, is listed, shown and diffed, gets vectors, and reads
packets as its rules say (the master rule: never short of the request, equal to a registered master build where
there is one).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil

import pytest
from typer.testing import CliRunner

from opus_dred.bitstream._arith import latents_for_request, parse_return
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._extensions import find_dred_extension
from opus_dred.bitstream._profiles import diff_profiles, get_profile, list_profiles, profile_for_version
from opus_dred.cli._profiles import app
from opus_dred.libopus import _upstream as up
from opus_dred.libopus._derive import (
    MODEL_FILES,
    RULE_FILES,
    RULE_SIGNATURES,
    DeriveError,
    derive,
    write_derivation,
)
from opus_dred.libopus._upstream import source_for_pack
from opus_dred.models._extract import HEADER_FILES, TABLE_FILES
from opus_dred.models._pack import load_pack
from opus_dred.vectors._format import iter_cases, suite_root

RELEASES = ("1.5.2", "1.6.1")


def _tree(rel: str):
    src = source_for_pack(load_pack(f"libopus-{rel}"))
    if src is None:
        pytest.skip(f"no libopus {rel} source (run `opus-dred upstream fetch`)")
    return src


@pytest.fixture
def area(tmp_path, monkeypatch):
    """An empty derived area of this test's own."""
    d = tmp_path / "derived"
    monkeypatch.setenv("OPUS_DRED_DERIVED_DIR", str(d))
    return d


def _fabricate(dest, rel="1.6.1", replace=()):
    """A copy of the files of a release tree that derivation reads, with (file, old, new) text replacements."""
    src = _tree(rel)
    for f in set(RULE_FILES + MODEL_FILES + HEADER_FILES + TABLE_FILES + ("COPYING",)):
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / f, dest / f)
    for f, old, new in replace:
        text = (dest / f).read_text()
        assert old in text, (f, old)
        (dest / f).write_text(text.replace(old, new, 1))
    return dest


def _master_edits():
    """Master's chunk-bound statements in place of the release's (from the recognisers' own statements)."""
    rel = RULE_SIGNATURES["chunk_bound"]["release-1.5"]
    mas = RULE_SIGNATURES["chunk_bound"]["master-2026-06"]
    loop = "for (i = 0; i < IMIN(DRED_NUM_REDUNDANCY_FRAMES"
    return (("src/opus_decoder.c", rel[0][2], mas[0][2]),
            ("dnn/dred_decoder.c", loop, f"{mas[1][2]}\n  {mas[2][2]}\n  {loop}"))


@pytest.mark.parametrize("rel", RELEASES)
def test_release_trees_reproduce_the_committed_profiles(rel, area):
    d = derive(_tree(rel))
    committed = get_profile(f"libopus-{rel}").to_json()
    assert d.name == f"libopus-{rel}"
    assert d.fields() == {k: committed[k] for k in d.fields()}
    assert set(d.fields()) >= {"dred_version", "extension_id", "extension_syntax", "latent_dim", "state_dim",
                               "has_q_feature", "max_latents", "num_features", "quant_levels", "dq_table",
                               "chunk_bound", "foreign_version", "model_pack"}
    assert d.pack_reused and d.pack_id == f"libopus-{rel}"
    assert all(f.file and f.line for f in d.findings), [f.note() for f in d.findings if not f.line]
    assert write_derivation(d) == {"profile": None, "pack": None, "matches": f"libopus-{rel}"}
    assert not area.exists()  # nothing written for a packaged profile


def test_release_tarball_derives_as_its_tree(area):
    tarball = up.cached_tarball("1.5.2")
    if tarball is None:
        pytest.skip("no libopus 1.5.2 tarball in the cache")
    assert up.derive_source(tarball).fields() == derive(_tree("1.5.2")).fields()


@pytest.fixture
def draft_tree(tmp_path):
    return _fabricate(tmp_path / "draft", replace=(("dnn/dred_config.h", "DRED_EXPERIMENTAL_VERSION 12",
                                                      "DRED_EXPERIMENTAL_VERSION 13"),))


def test_another_version_byte_is_a_new_profile_with_its_own_pack(draft_tree, area):
    with pytest.raises(DeriveError, match="give the profile a name"):
        derive(draft_tree)  # no package_version in the fabricated tree
    d = derive(draft_tree, name="draft-x")
    assert d.profile["dred_version"] == 13 and not d.pack_reused and d.pack_id == "draft-x"
    out = write_derivation(d)
    assert out["profile"] == area / "profiles" / "draft-x.json" and out["pack"] == area / "packs" / "draft-x"
    assert "draft-x" in list_profiles()
    p = get_profile("draft-x")
    assert profile_for_version(13) == p and profile_for_version(12).name == "libopus-1.6.1"
    diff = diff_profiles(get_profile("libopus-1.6.1"), p)
    assert set(diff["constants"]) == {"dred_version", "experimental_prefix"} and not diff["rules"]
    assert all(t["equal"] for t in diff["tables"].values()) and diff["model_pack"] == {"a": "libopus-1.6.1",
                                                                                       "b": "draft-x"}
    # the same payload under the two version bytes: each profile finds only its own
    from opus_dred.vectors._generate import dred_writer_packet

    pkt = dred_writer_packet("draft-x")
    assert find_dred_extension(pkt, p) is not None and find_dred_extension(pkt, get_profile("libopus-1.6.1")) is None
    with pytest.raises(DeriveError, match="a different derived profile"):
        write_derivation(derive(_fabricate(draft_tree.parent / "other", replace=(
            ("dnn/dred_config.h", "DRED_EXPERIMENTAL_VERSION 12", "DRED_EXPERIMENTAL_VERSION 14"),)), name="draft-x"))


def test_master_statements_derive_the_master_chunk_bound(tmp_path, area):
    d = derive(_fabricate(tmp_path / "m", replace=_master_edits()), name="libopus-m")
    assert d.profile["chunk_bound"] == "master-2026-06" and d.pack_reused and d.pack_id == "libopus-1.6.1"
    write_derivation(d)
    diff = diff_profiles(get_profile("libopus-1.6.1"), get_profile("libopus-m"))
    assert not diff["constants"] and list(diff["rules"]) == ["chunk_bound"] and not diff["model_pack"]
    fig = diff["rules"]["chunk_bound"]["figures"]
    assert fig["short"]["master-2026-06"] == 0 < fig["short"]["release-1.5"] and fig["differ"] > 0


def test_a_chunk_bound_no_variant_describes_is_refused(tmp_path, area):
    # master's first commit alone (5a8a2be8): max_dred_features rounded down
    rel = RULE_SIGNATURES["chunk_bound"]["release-1.5"][0][2]
    edits = _master_edits()
    trunc = (edits[0][0], rel, "max_dred_features = 100*max_dred_samples/sampling_rate;")
    tree = _fabricate(tmp_path / "t", replace=(trunc, edits[1]))
    with pytest.raises(DeriveError, match=r"chunk_bound: the tree follows no known variant.*src/opus_decoder.c:\d+"):
        derive(tree, name="t")
    assert derive(tree, name="t", chunk_bound="master-2026-06").profile["chunk_bound"] == "master-2026-06"


def _speech_packets(n=40):
    """(packet, DRED location) of the first ``n`` speech packets with DRED of the 1.6.1 suite."""
    prof = get_profile("libopus-1.6.1")
    out = []
    for c in iter_cases(suite_root(), profile="libopus-1.6.1", handler="dred_payload", suite="speech_grid"):
        loc = find_dred_extension(bytes(c.inputs["packet"]), prof)
        if loc is not None:
            out.append((bytes(c.inputs["packet"]), loc))
    return out[:n]


def test_the_master_rule_reads_what_covers_the_request():
    """Over real payloads and requests at every rate: the master rule's parse covers the request whenever the
    payload holds enough latents, and reads no more than one chunk past the fewest that do; the release rule
    falls short on some (the bug 5a8a2be8 fixes)."""
    rel = get_profile("libopus-1.6.1")
    mas = dataclasses.replace(rel, name="libopus-1.6.1-master-rule", chunk_bound="master-2026-06")
    rng = random.Random(7)
    short = {"release-1.5": 0, "master-2026-06": 0}
    n = 0
    for _pkt, loc in _speech_packets():
        full = read_dred_payload(loc.payload, rel, dred_frame_offset=loc.dred_frame_offset)
        for _ in range(8):
            rate = rng.choice((8000, 12000, 16000, 24000, 48000))
            mds = rng.randint(0, rate)
            for prof in (rel, mas):
                got = read_dred_payload(loc.payload, prof, max_dred_samples=mds, sampling_rate=rate,
                                        dred_frame_offset=loc.dred_frame_offset)
                assert got.nb_latents == min(full.nb_latents, latents_for_request(
                    mds, rate, rule=prof.chunk_bound, dred_offset=full.dred_offset))
                if parse_return(full.nb_latents, full.dred_offset, rate) >= mds:
                    short[prof.chunk_bound] += got.available_samples(rate) < mds
                    if prof is mas:
                        fewest = next(k for k in range(full.nb_latents + 1)
                                      if parse_return(k, full.dred_offset, rate) >= mds)
                        assert got.nb_latents <= fewest + 1
            n += 1
    assert n >= 200 and short["master-2026-06"] == 0 < short["release-1.5"], short


@pytest.mark.oracle
def test_the_master_rule_equals_a_registered_master_build():
    """Where a libopus tree whose derived profile has the master rule is registered and built (e.g.
    ``opus-dred upstream register libopus-master <checkout>``), its opus_dred_parse reads what the reader does."""
    from opus_dred.libopus._oracle import Oracle

    builds = [b for b in up.known_builds() if up.status(b).get("profile") and up.status(b)["state"] == "built"
              and get_profile(up.status(b)["profile"]).chunk_bound == "master-2026-06"]
    if not builds:
        pytest.skip("no built libopus tree with the master-2026-06 chunk bound is registered")
    o, prof = Oracle.for_build(builds[0]), get_profile(up.status(builds[0])["profile"])
    rng = random.Random(3)
    for pkt, loc in _speech_packets(20):
        for _ in range(5):
            rate, mds = rng.choice((16000, 48000)), rng.randint(-100, 60000)
            ref = read_dred_payload(loc.payload, prof, max_dred_samples=mds, sampling_rate=rate,
                                    dred_frame_offset=loc.dred_frame_offset)
            d = o.dred_parse(pkt, max_dred_samples=mds, sampling_rate=rate, defer_processing=True)
            try:
                assert (d.nb_latents, d.ret) == (ref.nb_latents, ref.available_samples(rate)), (mds, rate)
            finally:
                d.close()


def test_register_derives_and_unregister_removes_the_profile(draft_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("OPUS_DRED_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OPUS_DRED_DERIVED_DIR", raising=False)
    assert up.register("libopus-draft", draft_tree, build=False) is None
    st = up.status("libopus-draft")
    assert st["profile"] == "libopus-draft" and st["profile_error"] is None
    path = tmp_path / "cache" / "derived" / "profiles" / "libopus-draft.json"
    assert path.is_file() and get_profile("libopus-draft").dred_version == 13
    assert up.build_for_profile("libopus-draft") == "libopus-draft"
    up.unregister("libopus-draft")
    assert not path.exists() and "libopus-draft" not in list_profiles()


def test_cli_derive_list_show_diff(tmp_path, area):
    tree = _fabricate(tmp_path / "m", replace=_master_edits())
    r = CliRunner().invoke(app, ["derive", str(tree), "--name", "libopus-m", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["description"]["chunk_bound"] == "master-2026-06" and out["written"]["profile"]
    r = CliRunner().invoke(app, ["list"])
    assert r.exit_code == 0 and any(ln.startswith("libopus-m ") and ln.rstrip().endswith("derived")
                                    for ln in r.output.splitlines()), r.output
    r = CliRunner().invoke(app, ["show", "libopus-m"])
    assert "master-2026-06" in r.output and "src/opus_decoder.c:" in r.output
    r = CliRunner().invoke(app, ["diff", "libopus-1.6.1", "libopus-m"])
    assert r.exit_code == 0 and "rule      chunk_bound          release-1.5 -> master-2026-06" in r.output
    r = CliRunner().invoke(app, ["derive", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "neither a folder nor a tarball" in r.output


@pytest.mark.oracle
def test_a_derived_profile_gets_vectors(draft_tree, area):
    """The generator writes a derived profile's vectors into the derived area (inputs from the build of the
    packaged profile of its version, or the newest release's), and the reference passes them."""
    from opus_dred.conformance._impact import ensure_vectors
    from opus_dred.conformance._adapters import ReferenceAdapter
    from opus_dred.conformance._runner import run_suite

    write_derivation(derive(draft_tree, name="draft-x"))
    root = ensure_vectors("draft-x", ["cross_version", "basic"])
    assert root == area / "vectors"
    cases = list(iter_cases(root, profile="draft-x"))
    assert {c.suite for c in cases} == {"cross_version", "basic"}
    cross = [c for c in cases if c.suite == "cross_version"]
    assert len(cross) == 12 and all(c.expected["found"] is False for c in cross)
    assert all(c.meta["checks"]["rules"]["foreign_version"] for c in cross)
    rep = run_suite([ReferenceAdapter()], cases)
    assert rep.impls[0].counts()["pass"] == len(cases)
