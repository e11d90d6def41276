"""Listening: ``opus-dred vocode``, ``decode --audio``, ``bench vocoder`` and the accelerated FARGAN.

The vocoder command's audio is checked against the reference FARGAN called directly
(:func:`opus_dred.refimpl._fargan.vocode`, primed and cut as ``fargan_demo -fargan-synthesis`` does) and, where
this CPU computes the default numerics, against libopus' own ``fargan_demo`` on the same file. The float preset
keeps compilation short where only the command's plumbing is under test.
"""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.oracle

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "vectors" / "suite" / "libopus-1.6.1" / "vocoder" / "listening" / "numbers.avx2"
FRAMES = 60


def _cli(*args: str):
    from opus_dred.cli import app

    return CliRunner().invoke(app, list(args))


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """The first 60 frames of a canonical vocoder case's features (real speech, the reference extractor's)."""
    f = np.fromfile(CASE / "features.f32", "<f4").reshape(-1, 20)[:FRAMES]
    p = tmp_path_factory.mktemp("voc") / "speech.f32"
    f.astype("<f4").tofile(p)
    return p


def _direct(features: np.ndarray, preset: str) -> np.ndarray:
    """The reference FARGAN called directly: fargan_cont on zeros and five copies of frame 0, then frames 1 ..
    T-1 and the last twice more, int16, from sample 80 on."""
    import jax.numpy as jnp

    from opus_dred.refimpl import _fargan as fg
    from opus_dred.refimpl import _nnet as nnet

    p = fg.fargan_params("libopus-1.6.1")
    seq = np.concatenate([features[1:], features[-1:], features[-1:]])
    y = fg.vocode_jit(p, jnp.asarray(seq), nnet.NUMERICS[preset], pcm0=jnp.zeros(320),
                      features0=jnp.asarray(np.repeat(features[:1], 5, axis=0)))
    return np.asarray(fg.to_int16(y))[80:80 + 160 * features.shape[0]]


def test_vocode_writes_the_reference_fargan(features, tmp_path):
    out = tmp_path / "out.wav"
    r = _cli("vocode", str(features), "-o", str(out), "--numerics", "float")
    assert r.exit_code == 0, r.output
    got = _wav(out)
    f = np.fromfile(features, "<f4").reshape(-1, 20)
    assert got.shape == (160 * FRAMES,)
    np.testing.assert_array_equal(got, _direct(f, "float"))
    assert np.sqrt(np.mean(got.astype(np.float64) ** 2)) > 100  # speech, not silence
    raw = tmp_path / "out.sw"
    assert _cli("vocode", str(features), "-o", str(raw), "--numerics", "float").exit_code == 0
    np.testing.assert_array_equal(np.fromfile(raw, "<i2"), got)


def test_vocode_is_fargan_demo(features, tmp_path, require_default_numerics_host):
    """The default preset's WAV is what libopus 1.6.1's own fargan_demo -fargan-synthesis writes, sample for
    sample, where this CPU computes the default numerics."""
    from opus_dred.libopus._upstream import get_build

    out, ref = tmp_path / "out.wav", tmp_path / "ref.sw"
    assert _cli("vocode", str(features), "-o", str(out)).exit_code == 0
    subprocess.run([str(get_build("libopus-1.6.1").build_dir / "fargan_demo"), "-fargan-synthesis", str(features),
                    str(ref)], check=True, capture_output=True)
    np.testing.assert_array_equal(_wav(out), np.fromfile(ref, "<i2"))


def test_vocode_bad_input(tmp_path, features):
    """A size that is no whole number of 80-byte frames, a non-finite value, fewer than 2 frames: a typed error
    with its byte offset and exit status 2, no file written; a bad suffix, preset or profile: a usage error."""
    data = features.read_bytes()
    cases = {"partial.f32": (data[:250], "byte 240"), "one.f32": (data[:80], "at least 2"),
             "empty.f32": (b"", "at least 2")}
    nan = np.fromfile(features, "<f4").copy()
    nan[47] = np.nan
    cases["nan.f32"] = (nan.astype("<f4").tobytes(), "byte 188")
    for name, (blob, words) in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        out = tmp_path / f"{name}.wav"
        r = _cli("vocode", str(p), "-o", str(out))
        assert r.exit_code == 2 and "error:" in r.output and words in r.output, (name, r.output)
        assert not out.exists()
    r = _cli("vocode", str(tmp_path / "missing.f32"), "-o", str(tmp_path / "m.wav"))
    assert r.exit_code == 2 and "cannot read" in r.output
    for args in (("-o", str(tmp_path / "x.mp3")), ("-o", str(tmp_path / "x.wav"), "--numerics", "fast"),
                 ("-o", str(tmp_path / "x.wav"), "--profile", "libopus-0.9")):
        r = _cli("vocode", str(features), *args)
        assert r.exit_code == 2 and "Invalid value" in r.output, (args, r.output)


def test_decode_audio_is_vocode_of_the_features(tmp_path):
    """decode --audio of a DRED-only stream is vocode of what decode -o writes (the records' features in time
    order), with the same preset."""
    from opus_dred.vectors._format import load_case, suite_root

    case = next((suite_root() / "libopus-1.6.1" / "dred_features" / "speech_grid").iterdir())
    pkt = tmp_path / "p.bin"
    pkt.write_bytes(load_case(case).inputs["packet"])
    feats, audio, again = tmp_path / "f.f32", tmp_path / "a.wav", tmp_path / "b.wav"
    r = _cli("decode", str(pkt), "-o", str(feats), "--audio", str(audio), "--numerics", "float")
    assert r.exit_code == 0, r.output
    f = np.fromfile(feats, "<f4").reshape(-1, 20)
    assert f.shape[0] >= 2
    assert _cli("vocode", str(_chrono(feats, tmp_path)), "-o", str(again), "--numerics", "float").exit_code == 0
    np.testing.assert_array_equal(_wav(audio), _wav(again))
    assert _wav(audio).shape == (160 * f.shape[0],)
    r = _cli("decode", str(pkt), "--audio", str(tmp_path / "a.ogg"))
    assert r.exit_code == 2 and "--audio" in r.output


def _chrono(path: Path, tmp_path: Path) -> Path:
    """A packet's features (newest first, as decode writes them) in time order."""
    out = tmp_path / "chrono.f32"
    np.fromfile(path, "<f4").reshape(-1, 20)[::-1].astype("<f4").tofile(out)
    return out


FIELDS = {"profile", "build", "numerics", "path", "streams", "frames", "cpu", "cores", "libopus", "single",
          "batched", "compile_s", "bit_exact_streams", "metric", "stages", "batched_vs_libopus_per_core",
          "single_vs_libopus_per_core", "targets"}


def test_bench_vocoder_tiny():
    """bench vocoder at 2 streams of 0.3 s: the report's fields, figures consistent with the timings, every
    stream compared with libopus."""
    from opus_dred.cli._bench import app

    r = CliRunner().invoke(app, ["vocoder", "--streams", "2", "--seconds", "0.3", "--repeats", "1", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert set(rep) == FIELDS
    assert (rep["streams"], rep["frames"], rep["path"]) == (2, 30, "accel")
    assert rep["cpu"] and rep["cores"] >= 1 and rep["compile_s"] > 0
    for k in ("libopus", "single", "batched"):
        t = rep[k]
        assert t["audio_s"] == pytest.approx(0.6) and t["wall_s"] > 0 and t["cpu_s"] > 0
        assert t["realtime"] == pytest.approx(t["audio_s"] / t["wall_s"])
        assert t["per_core"] == pytest.approx(t["audio_s"] / t["cpu_s"])
    assert rep["batched_vs_libopus_per_core"] == pytest.approx(rep["batched"]["per_core"] / rep["libopus"]["per_core"])
    assert set(rep["targets"]) == {"batched_per_core_at_least_libopus", "single_faster_than_real_time"}
    assert 0 <= rep["bit_exact_streams"] <= 2
    for bad in (("--numerics", "float"), ("--path", "gpu"), ("--streams", "0")):
        assert CliRunner().invoke(app, ["vocoder", *bad]).exit_code == 2


@pytest.mark.slow
def test_accel_fargan_equals_reference():
    """accel._fargan.vocode, on a batch of 3 streams of real-speech features, is the reference's vocode of each
    stream, sample for sample (avx2 and sse2 presets)."""
    import jax.numpy as jnp

    from opus_dred.accel import _fargan as af
    from opus_dred.refimpl import _fargan as fg
    from opus_dred.refimpl import _nnet as nnet

    f = np.fromfile(CASE / "features.f32", "<f4").reshape(-1, 20)
    feats = np.stack([f[:40], f[40:80], f[80:120]])
    pcm0 = np.stack([np.zeros(320, np.float32), np.linspace(-0.1, 0.1, 320, dtype=np.float32),
                     np.full(320, 0.01, np.float32)])
    f0 = np.stack([f[k:k + 5] for k in (0, 50, 100)])
    p = fg.fargan_params("libopus-1.6.1")
    for preset in ("avx2", "sse2"):
        num = nnet.NUMERICS[preset]
        got = np.asarray(af.vocode(af.prepare(p, num), feats, pcm0, f0, num=num))
        for s in range(3):
            want = np.asarray(fg.vocode_jit(p, jnp.asarray(feats[s]), num, pcm0=jnp.asarray(pcm0[s]),
                                            features0=jnp.asarray(f0[s])))
            np.testing.assert_array_equal(got[s], want, err_msg=f"{preset} stream {s}")
