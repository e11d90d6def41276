"""``opus-dred bench encode`` at a tiny size: the report's structure, both of "ours" paths, and that every payload
was compared with libopus' (all byte-identical where the reference's numerics are this CPU's own)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.oracle

FIELDS = {"profile", "build", "path", "numerics", "kernels", "cpu", "cores", "workers", "streams", "seconds",
          "sample_rate", "frames", "q0", "dq", "qmax", "max_chunks", "max_bytes", "libopus_s", "libopus_cpu_s",
          "ours_s", "ours_cpu_s", "ours_stages_s", "compile_s", "libopus_per_audio_s", "ours_per_audio_s", "speed",
          "speed_per_core", "payloads", "dred_payloads", "identical_payloads", "identical_share", "maxrss_mib",
          "ours_rss_growth_mib", "load_avg", "notes"}
STAGES = {"resample", "features", "network", "quantize+code"}


def _run(*args: str) -> dict:
    from opus_dred.cli._bench import app

    r = CliRunner().invoke(app, ["encode", "--streams", "2", "--seconds", "0.5", "--json", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def report():
    """The default path (accel), one worker: the shapes ``tests/test_accel_encode.py`` compiles too."""
    return _run("--workers", "1")


@pytest.fixture(scope="module")
def reference_report():
    return _run("--path", "reference")


def test_report_structure(report):
    assert set(report) == FIELDS
    assert report["path"] == "accel" and report["workers"] == 1
    assert (report["streams"], report["frames"], report["seconds"]) == (2, 25, 0.5)
    assert report["payloads"] == 2 * 25
    assert STAGES <= set(report["ours_stages_s"])
    assert report["libopus_s"] > 0 and report["ours_s"] > 0 and report["compile_s"] > 0
    assert report["libopus_cpu_s"] > 0 and report["ours_cpu_s"] > 0
    assert report["speed"] == pytest.approx(report["libopus_s"] / report["ours_s"])
    assert report["speed_per_core"] == pytest.approx(report["libopus_cpu_s"] / report["ours_cpu_s"])
    assert report["libopus_per_audio_s"] == pytest.approx(report["libopus_s"] / (2 * 0.5))
    assert report["cpu"] and report["cores"] >= 1 and report["maxrss_mib"] > 0
    assert any("compile" in n for n in report["notes"]) and any("per_core" in n for n in report["notes"])
    # the settings are libopus' encoder's for 32 kb/s and 20 % loss (q0 6, dQ 5, five chunks in VBR)
    assert (report["q0"], report["dq"], report["qmax"], report["max_chunks"]) == (6, 5, 15, 5)


def test_payloads_compared_with_libopus(report, require_native_emulation):
    """Every payload was compared; with this CPU's RCPPS all are libopus' bytes (the first frame has none)."""
    assert report["dred_payloads"] >= report["payloads"] - 2 * 2
    assert report["identical_payloads"] == report["payloads"]
    assert report["identical_share"] == 1.0


def test_reference_path(reference_report, require_native_emulation):
    """``--path reference`` times the reference composed over the batch; its payloads are libopus' too."""
    r = reference_report
    assert set(r) == FIELDS and r["path"] == "reference" and r["workers"] == 1
    assert set(r["ours_stages_s"]) == STAGES
    assert r["identical_payloads"] == r["payloads"] == 50


def test_bad_options_exit_2():
    from opus_dred.cli._bench import app

    for bad in (["encode", "--numerics", "float"], ["encode", "--rate", "44100"], ["encode", "--streams", "0"],
                ["encode", "--path", "fast"], ["encode", "--workers", "-1"]):
        r = CliRunner().invoke(app, bad)
        assert r.exit_code == 2, (bad, r.output)


def test_corpus_comparison_counts_each_clips_own_frames(require_native_emulation):
    """``compare_corpus`` on two clips of different lengths (the shorter looped to the longer in our batch):
    one packet per whole 20 ms frame of each clip, every one libopus' bytes, the first frame of each without
    DRED."""
    from opus_dred.bench._encode import compare_corpus
    from opus_dred.speech import load_clip

    clips = ["ps-cards-001", "ps-cards-003"]
    r = compare_corpus("libopus-1.6.1", "avx2", clips=clips, workers=1)
    frames = [len(load_clip(c, rate=16000)) // 320 for c in clips]
    assert (r.clips, r.packets, r.build) == (2, sum(frames), "libopus-1.6.1")
    assert r.nonempty == r.packets - 2
    assert r.identical == r.packets and r.differing == [] and r.share == 1.0
