"""The DRED compliance metric (opus_dred.conformance._metric) against libopus 1.6.1's compiled
``dred_compare`` on the same files: features decoded from real DRED packets by the default and the
generic build, the vocoder's output (``fargan_demo -fargan-synthesis``) and decoded Opus, plus copies
perturbed across the thresholds. Our printed figures must equal the tool's, and so must the verdict
and the exit status, in both directions.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from opus_dred.conformance import _metric as m
from opus_dred.libopus import _upstream as upstream
from opus_dred.libopus._oracle import Oracle
from opus_dred.speech._corpus import load_clip

pytestmark = pytest.mark.oracle

FS = 16000


@pytest.fixture(scope="module")
def build():
    return upstream.ensure_build("libopus-1.6.1")


@pytest.fixture(scope="module")
def tool(build):
    path = build.build_dir / "dred_compare"
    assert path.is_file(), f"{path} missing: the upstream manager keeps libopus' extra programs"

    def run(*args: str) -> tuple[int, list[str]]:
        r = subprocess.run([str(path), *map(str, args)], capture_output=True, text=True, timeout=60)
        return r.returncode, r.stderr.strip().splitlines()

    return run


@pytest.fixture(scope="module")
def data(tmp_path_factory, build):
    """Real DRED features from both 1.6.1 builds on the same packets, vocoder output and decoded Opus."""
    d = tmp_path_factory.mktemp("metric")
    speech = load_clip(None, rate=FS)[: 3 * FS]
    oa = Oracle.for_build("libopus-1.6.1")
    ob = Oracle.for_build("libopus-1.6.1-generic")
    pk = oa.encode(speech, fs=FS, bitrate=24000, frame_ms=20, loss_perc=20, dred_duration=100)
    fa, fb = [], []
    for p in pk:
        da = oa.dred_parse(p.data, max_dred_samples=FS, sampling_rate=FS)
        db = ob.dred_parse(p.data, max_dred_samples=FS, sampling_rate=FS)
        if da.ret > 0 and da.features is not None:
            assert db.features is not None and db.features.shape == da.features.shape
            fa.append(da.features)
            fb.append(db.features)
    assert len(fa) > 100
    A, B = np.concatenate(fa), np.concatenate(fb)
    A.astype("<f4").tofile(d / "a.f32")
    B.astype("<f4").tofile(d / "b.f32")
    # one time series per build: the two newest 10 ms frames of each packet, oldest first
    for name, fs_ in (("sa", fa), ("sb", fb)):
        np.concatenate([f[:2][::-1] for f in fs_]).astype("<f4").tofile(d / f"{name}.f32")
        subprocess.run([str(build.build_dir / "fargan_demo"), "-fargan-synthesis", str(d / f"{name}.f32"),
                        str(d / f"{name}.sw")], check=True, capture_output=True, timeout=120)
    speech.astype("<i2").tofile(d / "orig.sw")
    with oa.decoder(FS) as dec:
        out = np.concatenate([dec.decode(p.data, 320) for p in pk])
    out.astype("<i2").tofile(d / "dec.sw")
    return d, A, B


def _agree(tool_out: tuple[int, list[str]], r) -> None:
    rc, lines = tool_out
    assert lines[0] == r.report_line()
    assert lines[1] == r.verdict_line()
    assert rc == r.exit_status == (0 if r.passed else 1)


# -- feature mode -----------------------------------------------------------------------------


def test_default_vs_generic_features_pass_like_the_tool(data, tool):
    d, A, B = data
    assert not np.array_equal(A, B)  # the two builds round differently
    r = m.compare_features(d / "a.f32", d / "b.f32")
    _agree(tool("-features", "-thresholds", ".5", ".15", ".02", d / "a.f32", d / "b.f32"), r)
    assert r.passed and r.frames == len(A) and 0 < r.total < 0.5 and r.pitch_frames > 0


def _perturbed(A: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    out = {"same": A.copy()}
    for s in (0.005, 0.02, 0.05, 0.2):
        out[f"noise{s}"] = A + rng.normal(0, s, A.shape).astype(np.float32)
    for dp in (0.015, 0.025):  # around the pitch threshold 0.02
        C = A.copy()
        C[:, m.PITCH_INDEX] += np.float32(dp)
        out[f"pitch{dp}"] = C
    for dc in (0.1, 0.16):  # one cepstral dimension around the max threshold 0.15
        C = A.copy()
        C[:, 3] += np.float32(dc)
        out[f"c3+{dc}"] = C
    C = A.copy()  # total over 0.5 with every dimension under max: 19 x 0.13^2 -> total 0.57
    C[:, [i for i in range(20) if i != m.PITCH_INDEX]] += np.float32(0.13)
    out["all+0.13"] = C
    return out


def test_perturbed_features_agree_with_the_tool_both_ways(data, tool, tmp_path):
    d, A, _ = data
    verdicts = {}
    for name, C in _perturbed(A).items():
        f = tmp_path / f"{name}.f32"
        C.astype("<f4").tofile(f)
        r = m.compare_features(d / "a.f32", f)
        _agree(tool("-features", "-thresholds", ".5", ".15", ".02", d / "a.f32", f), r)
        verdicts[name] = r.passed
    assert verdicts["same"] and verdicts["noise0.005"] and verdicts["pitch0.015"] and verdicts["c3+0.1"]
    assert not verdicts["noise0.2"] and not verdicts["pitch0.025"] and not verdicts["c3+0.16"]
    assert not verdicts["all+0.13"]


def test_other_thresholds_and_no_thresholds(data, tool, tmp_path):
    d, A, _ = data
    C = A + np.random.default_rng(3).normal(0, 0.05, A.shape).astype(np.float32)
    C.astype("<f4").tofile(tmp_path / "c.f32")
    th = m.FeatureThresholds(1.0, 0.3, 0.05)
    r = m.compare_features(d / "a.f32", tmp_path / "c.f32", th)
    _agree(tool("-features", "-thresholds", "1.0", "0.3", "0.05", d / "a.f32", tmp_path / "c.f32"), r)
    assert r.passed
    rc, lines = tool("-features", d / "a.f32", tmp_path / "c.f32")  # no thresholds: figures only, status 0
    assert rc == 0 and lines == [r.report_line()]
    assert not m.compare_features(d / "a.f32", tmp_path / "c.f32").passed


def test_feature_lengths_as_the_tool(data, tool, tmp_path):
    d, A, B = data
    n = len(A) // 2
    ref = tmp_path / "ref.f32"
    ref.write_bytes(A[:n].astype("<f4").tobytes() + b"\x01\x02\x03")  # trailing partial frame: ignored
    r = m.compare_features(ref, d / "b.f32")  # longer test: the extra frames are ignored
    _agree(tool("-features", "-thresholds", ".5", ".15", ".02", ref, d / "b.f32"), r)
    assert r.frames == n
    short = tmp_path / "short.f32"
    B[: n - 5].astype("<f4").tofile(short)
    rc, lines = tool("-features", "-thresholds", ".5", ".15", ".02", ref, short)
    assert rc == 1 and lines == ["Error: truncated test file"]
    with pytest.raises(m.MetricError) as ei:
        m.compare_features(ref, short)
    assert ei.value.byte_offset == (n - 5) * 80
    with pytest.raises(m.MetricError):
        m.compare_features(tmp_path / "missing.f32", short)
    (tmp_path / "empty.f32").write_bytes(b"")  # no reference frame: 0/0 everywhere, and a failure
    r = m.compare_features(tmp_path / "empty.f32", short)
    assert r.frames == 0 and np.isnan(r.total) and np.isnan(r.max) and not r.passed
    _agree(tool("-features", "-thresholds", ".5", ".15", ".02", tmp_path / "empty.f32", short), r)


def test_unvoiced_reference_gives_nan_pitch_and_fails_like_the_tool(data, tool, tmp_path):
    _, A, B = data
    B.astype("<f4").tofile(tmp_path / "b.f32")
    R = A.copy()
    # float32(0.2) is just above the double 0.2 the tool compares with: such frames still count
    R[:, m.VOICING_INDEX] = np.maximum(R[:, m.VOICING_INDEX], np.float32(0.2))
    R.astype("<f4").tofile(tmp_path / "r.f32")
    r = m.compare_features(tmp_path / "r.f32", tmp_path / "b.f32")
    assert r.pitch_frames == len(R)
    _agree(tool("-features", "-thresholds", ".5", ".15", ".02", tmp_path / "r.f32", tmp_path / "b.f32"), r)
    R[:, m.VOICING_INDEX] = np.minimum(R[:, m.VOICING_INDEX], np.float32(0.19))  # no voiced frame: 0/0
    R.astype("<f4").tofile(tmp_path / "r.f32")
    r = m.compare_features(tmp_path / "r.f32", tmp_path / "b.f32")
    assert r.pitch_frames == 0 and np.isnan(r.pitch) and not r.passed
    _agree(tool("-features", "-thresholds", ".5", ".15", ".02", tmp_path / "r.f32", tmp_path / "b.f32"), r)
    assert m.compare_features(tmp_path / "r.f32", tmp_path / "b.f32").to_json()["pitch"] is None


def test_arrays_equal_files(data):
    d, A, B = data
    assert m.compare_features(A, B) == m.compare_features(d / "a.f32", d / "b.f32")
    with pytest.raises(m.MetricError):
        m.compare_features(A[:, :19], B)


# -- audio mode -------------------------------------------------------------------------------


def test_vocoder_outputs_of_both_builds_agree_with_the_tool(data, tool):
    d, _, _ = data
    r = m.compare_audio(d / "sa.sw", d / "sb.sw", m.AUDIO_VOCODER_THRESHOLDS)
    _agree(tool("-audio", "-thresholds", "0.25", "1.0", "0.15", d / "sa.sw", d / "sb.sw"), r)
    # the verdict itself depends on the CPU (FARGAN's and the DRED decoder's activations use its RCPPS):
    # err4 0.2 on AMD Zen 4 (a pass), 0.30 on an Intel Xeon; what must hold is that it is the tool's
    assert r.pitch_frames > 0 and r.err4 < 1.0


def test_decoded_opus_fails_vocoder_passes_system_like_the_tool(data, tool):
    d, _, _ = data
    r = m.compare_audio(d / "orig.sw", d / "dec.sw", m.AUDIO_VOCODER_THRESHOLDS)
    _agree(tool("-audio", "-thresholds", "0.25", "1.0", "0.15", d / "orig.sw", d / "dec.sw"), r)
    assert not r.passed
    r = m.compare_audio(d / "orig.sw", d / "dec.sw", m.AUDIO_SYSTEM_THRESHOLDS)
    _agree(tool("-audio", "-thresholds", "1.0", "3.0", "0.25", d / "orig.sw", d / "dec.sw"), r)
    assert r.passed


def test_noisy_vocoder_output_fails_like_the_tool(data, tool, tmp_path):
    d, _, _ = data
    x = np.fromfile(d / "sb.sw", "<i2").astype(np.float64)
    noisy = np.clip(x + np.random.default_rng(5).normal(0, 300, x.shape), -32768, 32767).astype("<i2")
    noisy.tofile(tmp_path / "noisy.sw")
    r = m.compare_audio(d / "sa.sw", tmp_path / "noisy.sw")
    _agree(tool("-audio", "-thresholds", "0.25", "1.0", "0.15", d / "sa.sw", tmp_path / "noisy.sw"), r)
    assert not r.passed


def test_formats_skip_and_lengths_as_the_tool(data, tool, tmp_path):
    d, _, _ = data
    ref = np.fromfile(d / "orig.sw", "<i2")
    dec = np.fromfile(d / "dec.sw", "<i2")
    # f32 and s24 hold the same signal; -skip drops the start of the test; a longer test is cut
    (ref.astype(np.float32) / 32768).astype("<f4").tofile(tmp_path / "ref.f32")
    (dec.astype(np.float32) / 32768).astype("<f4").tofile(tmp_path / "dec.f32")
    r = m.compare_audio(tmp_path / "ref.f32", tmp_path / "dec.f32", m.AUDIO_SYSTEM_THRESHOLDS, fmt="f32")
    _agree(tool("-audio", "-f32", "-thresholds", "1.0", "3.0", "0.25", tmp_path / "ref.f32", tmp_path / "dec.f32"), r)

    def s24(a: np.ndarray) -> bytes:
        v = a.astype(np.int32) * 256 + 17
        return np.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], axis=1).astype(np.uint8).tobytes()

    (tmp_path / "ref.s24").write_bytes(s24(ref[:-160]))
    (tmp_path / "dec.s24").write_bytes(s24(dec))
    r = m.compare_audio(tmp_path / "ref.s24", tmp_path / "dec.s24", m.AUDIO_SYSTEM_THRESHOLDS, fmt="s24", skip=80)
    _agree(tool("-audio", "-s24", "-skip", "80", "-thresholds", "1.0", "3.0", "0.25",
                tmp_path / "ref.s24", tmp_path / "dec.s24"), r)
    assert r.samples == len(ref) - 160

    # a test shorter than the reference: the tool refuses, and so do we
    rc, lines = tool("-audio", "-skip", "80", "-thresholds", "1.0", "3.0", "0.25", d / "orig.sw", d / "dec.sw")
    assert rc == 1 and lines[0].startswith("Sample counts do not match")
    with pytest.raises(m.MetricError) as ei:
        m.compare_audio(d / "orig.sw", d / "dec.sw", skip=80)
    assert ei.value.byte_offset == 2 * len(dec)
    ref[:600].astype("<i2").tofile(tmp_path / "tiny.sw")
    rc, lines = tool("-audio", tmp_path / "tiny.sw", tmp_path / "tiny.sw")
    assert rc == 1 and lines[0].startswith("Insufficient sample data")
    with pytest.raises(m.MetricError):
        m.compare_audio(tmp_path / "tiny.sw", tmp_path / "tiny.sw")


def test_identical_audio_is_zero(data):
    d, _, _ = data
    r = m.compare_audio(d / "sa.sw", d / "sa.sw")
    assert r.err4 == 0 and r.err16 == 0 and r.pitch == 0 and r.passed


# -- CLI --------------------------------------------------------------------------------------


def test_cli_prints_the_tools_figures_and_exit_status(data, tool):
    import json

    from opus_dred.cli._metric import app

    d, _, _ = data
    runner = CliRunner()
    res = runner.invoke(app, ["features", str(d / "a.f32"), str(d / "b.f32")])
    rc, lines = tool("-features", "-thresholds", ".5", ".15", ".02", d / "a.f32", d / "b.f32")
    assert res.exit_code == rc == 0 and res.output.splitlines()[0] == lines[0]
    res = runner.invoke(app, ["features", str(d / "a.f32"), str(d / "b.f32"), "--max", "0.001", "--json"])
    assert res.exit_code == 1 and json.loads(res.output)["passed"] is False
    res = runner.invoke(app, ["audio", str(d / "orig.sw"), str(d / "dec.sw"), "--preset", "system"])
    rc, lines = tool("-audio", "-thresholds", "1.0", "3.0", "0.25", d / "orig.sw", d / "dec.sw")
    assert res.exit_code == rc == 0 and res.output.splitlines()[0] == lines[0]
    res = runner.invoke(app, ["audio", str(d / "orig.sw"), str(d / "dec.sw"), "--err4", "0.1"])
    assert res.exit_code == 1
    res = runner.invoke(app, ["features", str(d / "a.f32"), str(d / "sa.f32"), "--json"])
    assert res.exit_code == 2 and json.loads(res.output)["error"] == "MetricError"
