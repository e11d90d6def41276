"""The real-speech corpus: clips load, verify, look like speech, resample, and the cache is reused."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from scipy.signal import resample_poly
from typer.testing import CliRunner

from opus_dred.speech import _corpus as sp
from opus_dred.cli._speech import app


@pytest.fixture(scope="module")
def corpus():
    return sp.ensure_corpus()


def _frame_db(x: np.ndarray, n: int = 320) -> np.ndarray:
    f = x[: len(x) // n * n].astype(np.float64).reshape(-1, n)
    return 10 * np.log10(np.mean(f**2, axis=1) + 1e-9)


def test_default_clip_is_real_speech(corpus):
    x = sp.load_clip()
    assert x.dtype == np.int16 and x.ndim == 1
    assert len(x) / 16000 >= 10.0
    d = x.astype(np.float64)
    rms = np.sqrt(np.mean(d**2))
    assert 300 < rms < 12000, rms  # neither silence nor a clipped square wave
    zcr = np.mean(np.signbit(d[1:]) != np.signbit(d[:-1]))
    assert 0.02 < zcr < 0.4, zcr  # voiced speech crosses zero far less than noise (~0.5)
    db = _frame_db(x)
    # speech has syllables and pauses: loud and quiet 20 ms frames, tens of dB apart
    assert np.percentile(db, 90) - np.percentile(db, 10) > 20
    # and is not one stationary tone: the spectrum's peak moves between loud frames
    loud = np.argsort(db)[-40:]
    peaks = {int(np.argmax(np.abs(np.fft.rfft(x[i * 320:(i + 1) * 320])))) for i in loud}
    assert len(peaks) > 5


def test_48k_resample(corpus):
    x16 = sp.load_clip(None, 16000)
    x48 = sp.load_clip(None, 48000)
    assert x48.dtype == np.int16 and len(x48) == 3 * len(x16)
    back = resample_poly(x48.astype(np.float64), 1, 3)
    err = back - x16
    snr = 10 * np.log10(np.sum(x16.astype(np.float64) ** 2) / np.sum(err**2))
    assert snr > 30, snr


def test_every_clip_matches_its_record(corpus):
    ids = [c.id for c in sp.list_clips()]
    assert len(ids) == len(set(ids)) and sp.DEFAULT_CLIP in ids
    for c in sp.list_clips():
        assert "tidigits" not in c.file  # LDC-licensed, excluded
        x = sp.load_clip(c.id)  # checks the PCM sha256 recorded in the table
        assert len(x) == c.num_samples and abs(len(x) / c.sample_rate - c.duration_s) < 1e-9
        assert c.package in sp.PACKAGES and c.licence


def test_joined_clip_is_its_parts_in_order(corpus):
    whole = sp.load_clip("ps-librivox-all")
    parts = [sp.load_clip(f"ps-librivox-{n}") for n in ("0870", "0880", "0890", "0920", "0930")]
    assert np.array_equal(whole, np.concatenate(parts))


def test_cache_is_reused(corpus, monkeypatch):
    marks = {p: (d / ".unpacked").stat().st_mtime_ns for p, d in corpus.items()}

    def no_subprocess(*a, **k):
        raise AssertionError(f"fetched again: {a}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    again = sp.ensure_corpus()
    assert again == corpus
    assert {p: (d / ".unpacked").stat().st_mtime_ns for p, d in again.items()} == marks
    sp.load_clip()


def test_changed_file_is_refused(corpus, tmp_path, monkeypatch):
    src = corpus["pocketsphinx-testdata"]
    monkeypatch.setenv("OPUS_DRED_CACHE", str(tmp_path))
    shutil.copytree(src, sp.package_dir("pocketsphinx-testdata"))
    clip = sp.get_clip("ps-cards-001")
    f = sp.package_dir(clip.package) / clip.file
    data = bytearray(f.read_bytes())
    data[1000] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(sp.SpeechError, match=clip.pcm_sha256):
        sp.load_clip(clip.id)


def test_bad_arguments():
    with pytest.raises(sp.SpeechError, match="unknown speech clip"):
        sp.load_clip("no-such-clip")
    with pytest.raises(sp.SpeechError, match="unsupported rate"):
        sp.load_clip(None, 44100)


def test_cli_list_json(corpus):
    r = CliRunner().invoke(app, ["list", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [row["id"] for row in rows] == [c.id for c in sp.list_clips()]
    assert all(row["cached"] for row in rows)
    assert [row["id"] for row in rows if row["default"]] == [sp.DEFAULT_CLIP]
