"""The upstream manager: the four pinned builds, no rebuilds, hash pinning, and failure reports.

The builds themselves are made once in the cache the environment names (CI runs
``opus-dred upstream build`` first; ``ensure_all`` here does the same if it has not). Tests that must not touch the real cache point
``$OPUS_DRED_CACHE`` at a temporary folder and never build there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opus_dred.libopus import _upstream as up
from opus_dred.libopus._builds import Build
from opus_dred.cli._upstream import app

EXPECTED_DRED_VERSION = {"1.5.2": 10, "1.6.1": 12}  # DRED_EXPERIMENTAL_VERSION of each release


@pytest.fixture(scope="module")
def builds() -> dict[str, Build]:
    return {b.name: b for b in up.ensure_all()}


@pytest.fixture
def real_tarball(builds) -> dict[str, str]:
    """Paths of the real cached tarballs, read before a test moves the cache elsewhere."""
    return {rel: str(up.cached_tarball(rel)) for rel in up.PINS}


@pytest.mark.oracle
def test_four_builds(builds):
    assert sorted(builds) == sorted(
        ["libopus-1.5.2", "libopus-1.5.2-generic", "libopus-1.6.1", "libopus-1.6.1-generic"]
    )
    for name, b in builds.items():
        assert b.dred_version == EXPECTED_DRED_VERSION[b.release]
        assert b.static_lib.is_file() and (b.build_dir / "build.json").is_file()
        assert (b.build_dir / "opus_demo").is_file()
        assert Build.load(b.build_dir / "build.json") == b == up.get_build(name)
        generic = "--disable-intrinsics" in b.configure_args and "--disable-rtcd" in b.configure_args
        assert generic == (b.variant == "generic") == name.endswith("-generic")
        assert "--with-pic" in b.configure_args and "--enable-dred" in b.configure_args
        config_h = (b.build_dir / "config.h").read_text()
        assert ("#define OPUS_HAVE_RTCD 1" in config_h) == (b.variant == "default")
        assert "#define ENABLE_DRED 1" in config_h
        assert up.read_dred_version(b.source_dir) == b.dred_version


@pytest.mark.oracle
@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_static_lib_links_into_shared_object(builds, tmp_path):
    """The oracle links libopus.a into a shared object: that needs position-independent code."""
    for name in ("libopus-1.5.2", "libopus-1.6.1-generic"):
        so = tmp_path / f"{name}.so"
        r = subprocess.run(["gcc", "-shared", "-o", str(so), "-Wl,--whole-archive", str(builds[name].static_lib),
                            "-Wl,--no-whole-archive", "-lm"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert so.stat().st_size > 100_000
    # the two releases are distinct trees, each shared by its two variants
    assert builds["libopus-1.5.2"].source_dir == builds["libopus-1.5.2-generic"].source_dir
    assert builds["libopus-1.5.2"].source_dir != builds["libopus-1.6.1"].source_dir


@pytest.mark.oracle
def test_second_build_does_nothing(builds, monkeypatch):
    b = builds["libopus-1.6.1-generic"]
    before = {p: p.stat().st_mtime_ns for p in (b.static_lib, b.build_dir / "build.json", b.build_dir / "config.h")}

    def no_subprocess(*a, **k):
        raise AssertionError(f"rebuilt: {a}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert up.ensure_build(b.name) == b
    r = CliRunner().invoke(app, ["build", b.name])
    assert r.exit_code == 0 and "already built" in r.output, r.output
    assert {p: p.stat().st_mtime_ns for p in before} == before


@pytest.mark.oracle
def test_list_json(builds):
    r = CliRunner().invoke(app, ["list", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    for name, b in builds.items():
        row = rows[name]
        assert row["state"] == "built" and row["dred_version"] == b.dred_version
        assert row["sha256"] == up.PINS[b.release].sha256 and row["static_lib"] == str(b.static_lib)
    r = CliRunner().invoke(app, ["path", "libopus-1.6.1", "--lib"])
    assert r.exit_code == 0 and r.output.strip() == str(builds["libopus-1.6.1"].static_lib)


@pytest.mark.oracle
def test_corrupted_tarball_refused(real_tarball, tmp_path, monkeypatch):
    monkeypatch.setenv("OPUS_DRED_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "opus-1.6.1.tar.xz"
    data = bytearray(open(real_tarball["1.6.1"], "rb").read())
    data[len(data) // 2] ^= 0x40
    bad.write_bytes(bytes(data))
    actual = up.sha256_file(bad)
    r = CliRunner().invoke(app, ["fetch", "1.6.1", "--source", str(bad), "--no-apt", "--no-network"])
    assert r.exit_code == 1
    msg = " ".join(r.output.split())
    assert up.PINS["1.6.1"].sha256 in msg and actual in msg and bad.name in msg
    assert up.cached_tarball("1.6.1") is None  # not cached
    assert not (tmp_path / "cache" / "tarballs").exists() or not any((tmp_path / "cache" / "tarballs").iterdir())


@pytest.mark.oracle
def test_good_tarball_from_source_folder(real_tarball, tmp_path, monkeypatch):
    monkeypatch.setenv("OPUS_DRED_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "downloads"
    folder.mkdir()
    shutil.copy(real_tarball["1.5.2"], folder / "whatever-name.tar.gz")
    monkeypatch.setenv("OPUS_DRED_LIBOPUS_SOURCES", f"{tmp_path / 'nothing-here'}:{folder}")
    p = up.fetch_release("1.5.2", use_apt=False, use_url=False)
    assert p.parent == tmp_path / "cache" / "tarballs" and up.sha256_file(p) == up.PINS["1.5.2"].sha256
    assert up.fetch_release("1.5.2", use_apt=False, use_url=False) == p  # then from the cache
    assert up.status("libopus-1.5.2")["state"] == "fetched"


def test_failed_fetch_names_every_source(tmp_path, monkeypatch):
    monkeypatch.setenv("OPUS_DRED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPUS_DRED_NO_APT", "1")
    monkeypatch.delenv("OPUS_DRED_NO_NETWORK", raising=False)
    monkeypatch.setenv("OPUS_DRED_LIBOPUS_URL_BASE", "http://127.0.0.1:9/releases")  # refused at once
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("OPUS_DRED_LIBOPUS_SOURCES", str(empty))
    with pytest.raises(up.FetchError) as ei:
        up.fetch_release("1.6.1", source=tmp_path / "missing-folder")
    sources = [s for s, _ in ei.value.attempts]
    assert len(sources) == 5
    text = str(ei.value)
    for needle in ("cache", "missing-folder", str(empty), "apt-get source", "http://127.0.0.1:9/releases/opus-1.6.1.tar.gz"):
        assert needle in text
    assert "disabled" in dict(ei.value.attempts)["apt-get source"]
    assert "refused" in text.lower() or "urlerror" in text.lower()


def test_not_built_and_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("OPUS_DRED_CACHE", str(tmp_path))
    with pytest.raises(up.NotBuiltError, match="opus-dred upstream build libopus-1.6.1"):
        up.get_build("libopus-1.6.1")
    with pytest.raises(up.UnknownBuildError, match="libopus-1.5.2-generic"):
        up.get_build("libopus-9.9")
    assert up.status("libopus-1.6.1")["state"] == "missing"
    assert up.known_builds() == up.DEFAULT_BUILDS


def test_archive_uri_from_system_config(tmp_path, monkeypatch):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    (etc / "sources.list.d" / "other.sources").write_text(
        "Types: deb\nURIs: https://vendor.example/apt\nSuites: stable\nComponents: main\n")
    (etc / "sources.list").write_text("deb [arch=amd64] http://other.example/debian/ bookworm main\n")
    monkeypatch.setenv("OPUS_DRED_APT_ETC", str(etc))
    assert up._system_archive_uris() == ["http://mirror.example/debian", "http://other.example/debian/"]


@pytest.mark.parametrize("deb, upstream", [
    ("1.5.2-2", "1.5.2"), ("1.6.1-1", "1.6.1"), ("1:1.6.1-1+b1", "1.6.1"), ("1.5.2+dfsg-1", "1.5.2"),
    ("1.6", "1.6"),
])
def test_debian_upstream_version(deb, upstream):
    assert up._deb_upstream_version(deb) == upstream


def test_register_refuses_unusable_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("OPUS_DRED_CACHE", str(tmp_path / "cache"))
    with pytest.raises(up.RegisterError, match="pinned build"):
        up.register("libopus-1.6.1", tmp_path)
    notopus = tmp_path / "notopus"
    notopus.mkdir()
    with pytest.raises(up.RegisterError, match="dred_config.h"):
        up.register("x", notopus)
    tree = tmp_path / "checkout"
    (tree / "dnn").mkdir(parents=True)
    (tree / "dnn" / "dred_config.h").write_text("#define DRED_EXPERIMENTAL_VERSION 99\n")
    (tree / "autogen.sh").write_text('dnn/download_model.sh "00ff00ff"\n')
    with pytest.raises(up.RegisterError, match="00ff00ff.*matches no pinned release"):
        up.register("future", tree)
    assert up.known_builds() == up.DEFAULT_BUILDS


@pytest.mark.oracle
def test_register_copies_model_files_by_hash(real_tarball, tmp_path, monkeypatch):
    """A checkout without model data gets the files of the release whose model hash it names."""
    monkeypatch.setenv("OPUS_DRED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPUS_DRED_LIBOPUS_SOURCES", os.path.dirname(real_tarball["1.6.1"]))
    tree = tmp_path / "checkout"
    (tree / "dnn").mkdir(parents=True)
    (tree / "dnn" / "dred_config.h").write_text("#define DRED_EXPERIMENTAL_VERSION 12\n")
    (tree / "autogen.sh").write_text(f'dnn/download_model.sh "{up.PINS["1.6.1"].model_hash}"\n')
    (tree / "CMakeLists.txt").write_text("option(OPUS_DRED x OFF)\n")
    assert up.register("libopus-checkout", tree, label="master", build=False) is None
    release = up.source_dir("1.6.1")
    copied = Path(up.status("libopus-checkout")["source_dir"])
    for name in ("dred_rdovae_dec_data.c", "dred_rdovae_stats_data.h", "dred_rdovae_constants.h", "fargan_data.c"):
        assert (copied / "dnn" / name).read_bytes() == (release / "dnn" / name).read_bytes()
    assert "libopus-checkout" in up.known_builds()
    st = up.status("libopus-checkout")
    assert st["state"] == "fetched" and st["release"] == "master" and st["registered"]
    with pytest.raises(up.NotBuiltError):
        up.get_build("libopus-checkout")
    up.unregister("libopus-checkout")
    assert up.known_builds() == up.DEFAULT_BUILDS and not copied.exists()
