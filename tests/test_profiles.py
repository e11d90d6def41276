"""Bitstream profiles: descriptions, agreement with the model packs and the libopus sources, diff."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from opus_dred.errors import OpusDredError
from opus_dred.bitstream._profiles import (
    Profile,
    ProfileError,
    UnknownProfileError,
    diff_profiles,
    get_profile,
    list_profiles,
    profile_for_version,
)
from opus_dred.libopus._upstream import source_for_pack
from opus_dred.models._pack import load_pack

NAMES = ["libopus-1.5.2", "libopus-1.6.1"]


def test_both_profiles_listed_and_load():
    assert set(NAMES) <= set(list_profiles())
    for n in NAMES:
        p = get_profile(n)
        assert isinstance(p, Profile) and p.name == n and p.model_pack == n


def test_profile_is_frozen():
    p = get_profile("libopus-1.6.1")
    with pytest.raises(AttributeError):
        p.latent_dim = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_constants_agree_with_the_pack(name):
    p = get_profile(name)
    c = load_pack(p.model_pack).constants
    assert p.dred_version == c["DRED_EXPERIMENTAL_VERSION"]
    assert p.extension_id == c["DRED_EXTENSION_ID"] == 126
    assert p.experimental_prefix == b"D" + bytes([c["DRED_EXPERIMENTAL_VERSION"]])
    assert len(p.experimental_prefix) == c["DRED_EXPERIMENTAL_BYTES"]
    assert p.latent_dim == c["DRED_LATENT_DIM"]
    assert p.state_dim == c["DRED_STATE_DIM"]
    assert p.num_features == c["DRED_NUM_FEATURES"]
    assert p.quant_levels == c["DRED_NUM_QUANTIZATION_LEVELS"]
    assert p.max_latents == c["DRED_NUM_REDUNDANCY_FRAMES"] // 2
    # the RDO-VAE decoder's first layer takes the latents plus, in 1.6.x, the quantizer feature
    assert load_pack(p.model_pack).layer("dec_dense1")["nb_inputs"] == p.latent_stride


def test_known_values_of_the_two_releases():
    a, b = get_profile("libopus-1.5.2"), get_profile("libopus-1.6.1")
    assert (a.dred_version, a.latent_dim, a.state_dim, a.has_q_feature, a.extension_syntax) == (10, 21, 19, False, "v1")
    assert (b.dred_version, b.latent_dim, b.state_dim, b.has_q_feature, b.extension_syntax) == (12, 25, 50, True, "rte")
    assert b.experimental_prefix == b"D\x0c"


@pytest.mark.parametrize("name", NAMES)
def test_stats_are_the_pack_tables(name):
    p = get_profile(name)
    pack = load_pack(p.model_pack)
    s = p.stats
    for attr, cname in type(s).C_NAMES.items():
        t = getattr(s, attr)
        dim = p.latent_dim if attr.startswith("latent") else p.state_dim
        assert t.dtype == np.uint8 and t.shape == (p.quant_levels, dim)
        assert np.array_equal(t.ravel(), pack.array(cname))
        assert not t.flags.writeable
    assert p.stats is s  # loaded once


@pytest.mark.parametrize("name", NAMES)
def test_constants_against_the_libopus_sources(name):
    """dq_table (dnn/dred_coding.c), the q feature (dnn/dred_decoder.c) and RTE (src/extensions.c)."""
    p = get_profile(name)
    src = source_for_pack(load_pack(p.model_pack))
    if src is None:
        pytest.skip("no libopus source (run `opus-dred upstream fetch`)")
    coding = (src / "dnn" / "dred_coding.c").read_text()
    m = re.search(r"dQ_table\s*\[\s*8\s*\]\s*=\s*\{([^}]*)\}", coding)
    assert m and tuple(int(x) for x in m.group(1).split(",")) == p.dq_table
    dec = (src / "dnn" / "dred_decoder.c").read_text()
    assert ("DRED_LATENT_DIM+1" in dec.replace(" ", "")) == p.has_q_feature
    assert re.search(r"i\s*<\s*IMIN\(\s*DRED_NUM_REDUNDANCY_FRAMES", dec)
    exts = (src / "src" / "extensions.c").read_text()
    assert ("repeat" in exts.lower()) == (p.extension_syntax == "rte")


def test_profile_for_version():
    assert profile_for_version(10).name == "libopus-1.5.2"
    assert profile_for_version(12).name == "libopus-1.6.1"
    assert profile_for_version(11) is None


def test_unknown_profile_lists_known_names():
    with pytest.raises(UnknownProfileError) as ei:
        get_profile("libopus-9")
    assert isinstance(ei.value, OpusDredError)
    assert all(n in str(ei.value) for n in NAMES) and set(NAMES) <= set(ei.value.known)


def _new_pack(tmp_path, new_id, version):
    """A copy of the 1.6.1 pack under another id and experimental version (a 'new model')."""
    src = load_pack("libopus-1.6.1").path
    d = tmp_path / "packs" / new_id
    shutil.copytree(src, d)
    m = json.loads((d / "manifest.json").read_text())
    m["id"] = new_id
    m["constants"]["DRED_EXPERIMENTAL_VERSION"] = version
    (d / "manifest.json").write_text(json.dumps(m))
    return d


def _describe(tmp_path, name, **over):
    with open(get_profile("libopus-1.6.1").source) as f:
        base = json.load(f)
    base.update(name=name, **over)
    d = tmp_path / "profiles"
    d.mkdir(exist_ok=True)
    (d / f"{name}.json").write_text(json.dumps(base))
    return d


def test_new_profile_from_files_alone(tmp_path, monkeypatch):
    _new_pack(tmp_path, "draft-x-model", 13)
    _describe(tmp_path, "draft-x", dred_version=13, model_pack="draft-x-model", draft="draft-ietf-mlcodec-opus-dred-99")
    monkeypatch.setenv("OPUS_DRED_PACKS_PATH", str(tmp_path / "packs"))
    monkeypatch.setenv("OPUS_DRED_PROFILES_PATH", str(tmp_path / "profiles"))
    assert "draft-x" in list_profiles()
    p = get_profile("draft-x")
    assert p.experimental_prefix == b"D\x0d" and p.draft == "draft-ietf-mlcodec-opus-dred-99"
    assert profile_for_version(13) == p
    assert profile_for_version(12).name == "libopus-1.6.1"
    assert np.array_equal(p.stats.state_r, get_profile("libopus-1.6.1").stats.state_r)
    d = diff_profiles(get_profile("libopus-1.6.1"), p)
    assert d["constants"]["dred_version"] == {"a": 12, "b": 13} and all(t["equal"] for t in d["tables"].values())


@pytest.mark.parametrize(
    "over, what",
    [
        ({"latent_dim": 24}, "DRED_LATENT_DIM"),
        ({"state_dim": 19}, "DRED_STATE_DIM"),
        ({"dred_version": 10}, "DRED_EXPERIMENTAL_VERSION"),
        ({"has_q_feature": False}, "decoder input width"),
        ({"max_latents": 25}, "max_latents"),
        ({"model_pack": "no-such-pack"}, "no-such-pack"),
        ({"extension_syntax": "v2"}, "extension_syntax"),
        ({"dq_table": [0, 1]}, "dq_table"),
        ({"dred_version": 300}, "one byte"),
    ],
)
def test_description_disagreeing_with_its_pack_is_an_error(tmp_path, monkeypatch, over, what):
    _describe(tmp_path, "bad", **over)
    monkeypatch.setenv("OPUS_DRED_PROFILES_PATH", str(tmp_path / "profiles"))
    with pytest.raises(ProfileError) as ei:
        get_profile("bad")
    assert what in str(ei.value)


def test_unreadable_description_is_an_error(tmp_path, monkeypatch):
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "junk.json").write_text("{not json")
    (d / "misnamed.json").write_text(json.dumps({"name": "other"}))
    monkeypatch.setenv("OPUS_DRED_PROFILES_PATH", str(d))
    for n in ("junk", "misnamed"):
        with pytest.raises(ProfileError):
            get_profile(n)


def test_diff_reports_the_known_differences():
    d = diff_profiles(get_profile("libopus-1.5.2"), get_profile("libopus-1.6.1"))
    assert d["constants"]["latent_dim"] == {"a": 21, "b": 25}
    assert d["constants"]["state_dim"] == {"a": 19, "b": 50}
    assert d["constants"]["dred_version"] == {"a": 10, "b": 12}
    assert "dq_table" not in d["constants"] and "num_features" not in d["constants"]
    assert d["payload_layout"]["latent_stride"] == {"a": 21, "b": 26}
    assert d["payload_layout"]["extension_syntax"] == {"a": "v1", "b": "rte"}
    assert d["model_pack"] == {"a": "libopus-1.5.2", "b": "libopus-1.6.1"}
    assert d["tables"]["latent_p0"]["a"]["shape"] == [16, 21] and d["tables"]["latent_p0"]["max_abs_diff"] is None
    assert not d["identical"]
    same = diff_profiles(get_profile("libopus-1.6.1"), get_profile("libopus-1.6.1"))
    assert same["identical"] and all(t["max_abs_diff"] == 0 for t in same["tables"].values())


def test_cli_list_show_diff():
    from opus_dred.cli._profiles import app

    r = CliRunner().invoke(app, ["list", "--json"])
    assert r.exit_code == 0 and {x["name"] for x in json.loads(r.output)} >= set(NAMES)
    r = CliRunner().invoke(app, ["show", "libopus-1.6.1", "--json"])
    assert json.loads(r.output)["experimental_prefix"] == "440c"
    r = CliRunner().invoke(app, ["diff", "libopus-1.5.2", "libopus-1.6.1", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["constants"]["state_dim"] == {"a": 19, "b": 50}
    r = CliRunner().invoke(app, ["diff", "libopus-1.5.2", "libopus-1.6.1"])
    assert "latent_dim" in r.output and "21 -> 25" in r.output
    r = CliRunner().invoke(app, ["show", "nope"])
    assert r.exit_code == 1
