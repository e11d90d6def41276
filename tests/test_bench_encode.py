"""``opus-dred bench encode`` at a tiny size: the report's structure, and that it compared every payload with
libopus' (all byte-identical where the reference's numerics are this CPU's own)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.oracle

FIELDS = {"profile", "build", "numerics", "kernels", "cpu", "cores", "streams", "seconds", "sample_rate", "frames",
          "q0", "dq", "qmax", "max_chunks", "max_bytes", "libopus_s", "ours_s", "ours_stages_s", "compile_s",
          "libopus_per_audio_s", "ours_per_audio_s", "speed", "payloads", "dred_payloads", "identical_payloads",
          "identical_share", "maxrss_mib", "ours_rss_growth_mib", "load_avg", "notes"}


@pytest.fixture(scope="module")
def report():
    from opus_dred.cli._bench import app

    r = CliRunner().invoke(app, ["encode", "--streams", "2", "--seconds", "0.5", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_report_structure(report):
    assert set(report) == FIELDS
    assert (report["streams"], report["frames"], report["seconds"]) == (2, 25, 0.5)
    assert report["payloads"] == 2 * 25
    assert set(report["ours_stages_s"]) == {"resample", "features", "network", "quantize+code"}
    assert report["libopus_s"] > 0 and report["ours_s"] > 0 and report["compile_s"] > 0
    assert report["speed"] == pytest.approx(report["libopus_s"] / report["ours_s"])
    assert report["libopus_per_audio_s"] == pytest.approx(report["libopus_s"] / (2 * 0.5))
    assert report["cpu"] and report["cores"] >= 1 and report["maxrss_mib"] > 0
    assert any("compile" in n for n in report["notes"])
    # the settings are libopus' encoder's for 32 kb/s and 20 % loss (q0 6, dQ 5, five chunks in VBR)
    assert (report["q0"], report["dq"], report["qmax"], report["max_chunks"]) == (6, 5, 15, 5)


def test_payloads_compared_with_libopus(report, require_native_emulation):
    """Every payload was compared; with this CPU's RCPPS all are libopus' bytes (the first frame has none)."""
    assert report["dred_payloads"] >= report["payloads"] - 2 * 2
    assert report["identical_payloads"] == report["payloads"]
    assert report["identical_share"] == 1.0


def test_bad_options_exit_2():
    from opus_dred.cli._bench import app

    for bad in (["encode", "--numerics", "float"], ["encode", "--rate", "44100"], ["encode", "--streams", "0"]):
        r = CliRunner().invoke(app, bad)
        assert r.exit_code == 2, (bad, r.output)
