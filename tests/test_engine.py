"""The receiver's engines (opus_dred.experiments._engine, ``simulate --engine``) on real speech with bursty loss.

The ``jax`` engine lets libopus decode every packet and replaces the neural concealment's 16 kHz samples by our
PLC's and FARGAN's (the build's tapped decoder, ``opus_dred.libopus._plctap``). Where this host's numerics match
the preset that reproduces the build, its PCM is the ``libopus`` engine's bit for bit; under another preset it
differs, within the experiment's own measure (PESQ, STOI). The splice's counts are checked against the tap's own
record of libopus' calls, and a bookkeeping difference between our PLC and libopus' stops the decode with a typed
error.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from opus_dred import speech
from opus_dred.experiments import _engine as E
from opus_dred.experiments import _simulate as S

BUILD = "libopus-1.6.1"
RATE = 16000
SECONDS = 2.0


@functools.cache
def _oracle():
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(BUILD)


@functools.cache
def _stream() -> tuple:
    """The default clip (real speech) with DRED 1 s at 32 kb/s, and a bursty loss pattern over its packets."""
    o = _oracle()
    clip = speech.load_clip(None, RATE)[: int(SECONDS * RATE)]
    enc = S.encode_config(o, clip, RATE, S.CONFIGS["dred"], 32000, 30)
    flags = S.parse_loss("ge:bursty-30").generate(len(enc.packets), 3)
    return clip, tuple(enc.packets), flags


def _decode(engine: str = "libopus", numerics: str | None = None, oracle=None, flags=None) -> S.Decoded:
    clip, packets, f = _stream()
    o = oracle or _oracle()
    return S.decode_with_loss(o, packets, f if flags is None else flags, RATE, len(clip),
                              policy=S.resolve_policy(o, "opus_demo"), complexity=5, engine=engine,
                              numerics=numerics)


@functools.cache
def _libopus() -> S.Decoded:
    return _decode("libopus")


@functools.cache
def _jax() -> S.Decoded:
    return _decode("jax")


@functools.cache
def _tap_record() -> tuple:
    """libopus' own decode through the tapped build with a listener that only records: the calls by kind, the
    DRED rows queued (``fec_add`` with features) and the PCM."""
    from opus_dred.libopus._plctap import TappedOracle

    tapped = TappedOracle.for_build(BUILD)
    kinds: dict[str, int] = {}
    rows = [0]

    def listen(call):
        kinds[call.kind] = kinds.get(call.kind, 0) + 1
        rows[0] += call.kind == "fec_add" and call.features is not None

    with tapped.tap(listen):
        d = _decode("libopus", oracle=tapped)
    return kinds, rows[0], d.pcm


def _other_preset() -> str:
    """A preset that is not the build's on this host: the default build's arithmetic with the other vendor's
    ``RCPPS`` table."""
    name, _ = E.build_numerics(_oracle())
    return "avx2" if name == "avx2-intel" else "avx2-intel"


def test_stream_has_bursts_and_dred():
    clip, packets, flags = _stream()
    assert 0.15 < flags.mean() < 0.5
    assert max(S.lossmod.burst_lengths(flags)) >= 2
    d = _libopus()
    assert d.counts.get("Dred", 0) > 0 and d.engine == "libopus" and d.engine_stats == {}


def test_tap_changes_nothing_and_sees_the_plc():
    """A listener that replaces nothing leaves libopus' decode as it is; libopus conceals and queues DRED."""
    kinds, rows, pcm = _tap_record()
    assert np.array_equal(pcm, _libopus().pcm)
    assert kinds.get("conceal", 0) > 0 and kinds.get("update", 0) > 0 and rows > 0
    assert kinds.get("fec_clear", 0) == sum(1 for a in _libopus().actions if isinstance(a, (S.rx.Dred, S.rx.DredPlc))
                                            and a.samples > 0)


def test_splice_counts_match_libopus_calls():
    """Every libopus concealment was ours, every update and DRED row was mirrored."""
    kinds, rows, _ = _tap_record()
    st = _jax().engine_stats
    assert _jax().engine == "jax"
    assert st["concealed"] == kinds["conceal"] > 0
    assert st["updates"] == kinds["update"]
    assert st["dred_rows"] == rows > 0
    assert 0 < st["from_dred"] <= st["concealed"]


def test_jax_engine_equals_libopus_engine(require_native_emulation):
    st = _jax().engine_stats
    assert np.array_equal(_jax().pcm, _libopus().pcm)
    assert st["identical"] == st["concealed"] and st["max_abs_diff"] == 0
    assert st["dred_rows_identical"] == st["dred_rows"]


def test_other_numerics_differ_within_tolerance():
    """Under a preset that is not the build's (the other vendor's ``RCPPS`` table), our concealment parts from
    libopus' from its first frame on, and the decode scores as libopus' does within 0.25 PESQ and 0.02 STOI on
    this 2 s clip: FARGAN's output, once apart, is another waveform of the same speech, and one short clip's
    PESQ moves by up to 0.17 with it (means over clips: docs/simulate.md, the engine table)."""
    clip = _stream()[0]
    d = _decode("jax", numerics=_other_preset())
    st = d.engine_stats
    assert st["concealed"] == _jax().engine_stats["concealed"]
    assert st["identical"] < st["concealed"] and not np.array_equal(d.pcm, _libopus().pcm)
    a, b = S.metrics(clip, _libopus().pcm, RATE), S.metrics(clip, d.pcm, RATE)
    assert abs(a["pesq"] - b["pesq"]) <= 0.25 and abs(a["stoi"] - b["stoi"]) <= 0.02, (a, b)


def test_bookkeeping_mismatch_is_a_typed_error(monkeypatch):
    """Our PLC missing one good frame parts its counters from libopus': the decode stops with EngineError
    naming the counters, and the build's tap is free again afterwards."""
    from opus_dred.libopus._plctap import TappedOracle
    from opus_dred.refimpl._plc import NeuralPlc

    real = NeuralPlc.update
    seen = [0]

    def skip_third(self, pcm160):
        seen[0] += 1
        if seen[0] != 3:
            real(self, pcm160)

    monkeypatch.setattr(NeuralPlc, "update", skip_third)
    with pytest.raises(E.EngineError, match=r"before lpcnet_plc_update: our PLC's analysis_pos"):
        _decode("jax")
    monkeypatch.setattr(NeuralPlc, "update", real)
    tapped = TappedOracle.for_build(BUILD)
    assert tapped._listener is None
    assert np.array_equal(_decode("libopus", oracle=tapped).pcm, _libopus().pcm)


def test_celt_only_stream_at_48k(emulation_is_native):
    """CELT (the restricted low-delay application, 48 kHz): libopus feeds its PLC the downsampled history at
    the start of a concealment, and resets ``blend`` by a direct write when a packet arrives, which the splice
    mirrors; where the host's numerics match, the PCM is libopus' bit for bit."""
    o, rate = _oracle(), 48000
    clip = speech.load_clip("ps-numbers", rate)[: int(1.5 * rate)]
    x = np.concatenate([clip, np.zeros(S.lookahead(rate), np.int16)])
    packets = [e.data for e in o.encode(x, fs=rate, bitrate=64000, frame_ms=20, complexity=10, dred_duration=100,
                                        loss_perc=30, application="lowdelay")]
    assert all(p[0] >> 3 >= 16 for p in packets)  # TOC configurations 16-31: CELT only
    flags = S.parse_loss("ge:bursty-30").generate(len(packets), 1)
    pol = S.resolve_policy(o, "opus_demo")
    a, b = (S.decode_with_loss(o, packets, flags, rate, len(clip), policy=pol, complexity=5, engine=e)
            for e in ("libopus", "jax"))
    st = b.engine_stats
    assert st["blend_resets"] > 0 and st["dred_rows"] > 0 and st["from_dred"] > 0
    assert st["concealed"] > st["from_dred"]  # CELT reads ahead past the DRED frames of a call
    if emulation_is_native:
        assert np.array_equal(a.pcm, b.pcm) and st["identical"] == st["concealed"]


def test_dred_queue_rows():
    """``opus_decode_native``'s queue, worked by hand from its formula (the splice also checks it against every
    DRED decode libopus makes, above): after good frames (blend 0) two extra rows, one per 10 ms, the packet's
    ``dred_offset`` in 2.5 ms units; rows past the payload are ``None``, rows before it are left out."""
    assert E.dred_queue(0, 320, RATE, 640, 4, 2) == [5, 4, 3, 2]
    assert E.dred_queue(0, 320, RATE, 640, 4, 1) == [None, None, 3, 2]
    assert E.dred_queue(0, 320, RATE, 320, -4, 2) == [1, 0]
    assert E.dred_queue(1, 160, RATE, 160, 0, 1) == []
    assert E.dred_queue(1, 960, 48000, 1920, 2, 3) == [2, 1]


def test_bad_choices_are_typed_errors():
    with pytest.raises(E.EngineError, match="engine 'vocoder'"):
        S.check_engines("libopus,vocoder")
    with pytest.raises(E.EngineError, match="only the jax engine"):
        S.check_engines("libopus", "avx2")
    with pytest.raises(E.EngineError, match="numerics 'avx3'"):
        S.check_engines("jax", "avx3")
    with pytest.raises(E.EngineError, match="each engine once"):
        S.check_engines("jax,jax")
    assert S.check_engines("libopus, jax") == ["libopus", "jax"]
    with pytest.raises(E.EngineError):
        with E.executor("opus_demo", _oracle(), RATE):
            pass


def test_simulate_cli_writes_both_engines_wavs(tmp_path):
    """``simulate --engine libopus,jax``: one stream and loss pattern, both decodes scored and written."""
    from typer.testing import CliRunner

    from opus_dred.cli import app

    wav = tmp_path / "in.wav"
    S.write_wav(wav, _stream()[0], RATE)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["simulate", str(wav), "--engine", "libopus,jax", "--configs", "dred",
                                   "--loss", "ge:bursty-30", "--seed", "3", "--match", "target", "--no-plots", "--out", str(out),
                                   "--json"])
    assert res.exit_code == 0, res.output
    j = json.loads((out / "results.json").read_text())
    assert j["engines"] == ["libopus", "jax"] and [r["engine"] for r in j["rows"]] == ["libopus", "jax"]
    (cmp,) = j["engine_comparison"]
    assert cmp["engine_stats"]["concealed"] > 0 and cmp["engine_stats"]["dred_rows"] > 0
    a = S.read_wav(out / "ge_bursty-30-dred-libopus.wav", RATE)
    b = S.read_wav(out / "ge_bursty-30-dred-jax.wav", RATE)
    assert len(a) == len(b) == len(_stream()[0])
    assert cmp["identical_pcm"] == bool(np.array_equal(a, b))
    assert abs(cmp["pesq_clean_diff"]) <= 0.25
