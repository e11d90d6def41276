"""``opus-dred encode``: a WAV file of real speech -> an opus_demo ``.bit`` stream (or a DRED-only stream), read
back by our reader and by libopus (``opus_dred_parse``, ``opus_decode`` with its final range), and its payloads
against libopus' own DRED encoder half fed the same PCM with the same settings."""

from __future__ import annotations

import functools
import io
import json
import wave

import numpy as np
import pytest
from opus_dred.bitstream._budget import dred_max_bytes
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._dredstream import read_stream_record
from opus_dred.bitstream._extensions import find_dred_extension
from opus_dred.bitstream._formats import OPUS_DEMO_MAX_PACKET, read_dred_stream, read_opus_demo_bit
from opus_dred.bitstream._packet import parse_packet, write_packet
from opus_dred.bitstream._wav import WavError, read_wav, write_wav
from typer.testing import CliRunner

pytestmark = pytest.mark.oracle

PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]
SECONDS = 1.0


@functools.cache
def _oracle(name):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(name)


@functools.cache
def _speech(rate: int) -> np.ndarray:
    from opus_dred.speech._corpus import load_clip

    return load_clip(None, rate=rate)[: int(rate * SECONDS)]


def _app():
    import typer

    from opus_dred.cli._encode import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


def _run(args: list[str]):
    return CliRunner().invoke(_app(), ["encode", *args])


def _wav_bytes(pcm: np.ndarray, rate: int, *, channels: int = 1, width: int = 2) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm).astype(f"<i{width}" if width > 1 else "u1").tobytes())
    return buf.getvalue()


# -- bad input: a typed error naming the parameter, exit status 2 --------------------------------------------

def _bad_files() -> dict[str, tuple[bytes, str]]:
    pcm = _speech(16000)[:1600]
    good = write_wav(None, pcm, 16000)
    return {
        "stereo": (_wav_bytes(np.repeat(pcm, 2), 16000, channels=2), "channels"),
        "44.1 kHz": (write_wav(None, pcm, 44100), "sample_rate"),
        "8-bit": (_wav_bytes(np.zeros(1600, np.uint8), 16000, width=1), "sample_width"),
        "not a WAV": (b"this is plain text, not a RIFF file", "format"),
        "float WAV": (good[:20] + (3).to_bytes(2, "little") + good[22:], "format"),
        "empty": (write_wav(None, np.zeros(0, np.int16), 16000), "data"),
        "truncated": (good[:-100], "data"),
    }


@pytest.mark.parametrize("case", list(_bad_files()))
def test_bad_wav_is_a_typed_error(case, tmp_path):
    data, parameter = _bad_files()[case]
    path = tmp_path / "in.wav"
    path.write_bytes(data)
    with pytest.raises(WavError) as exc:
        read_wav(path)
    assert exc.value.parameter == parameter
    r = _run([str(path), "-o", str(tmp_path / "out.bit")])
    assert r.exit_code == 2, r.output
    assert f"WavError: {parameter}:" in r.output
    assert not (tmp_path / "out.bit").exists()


def test_truncated_wav_names_the_data_chunk(tmp_path):
    good = write_wav(None, _speech(16000)[:1600], 16000)
    with pytest.raises(WavError) as exc:
        read_wav(good[:-100])
    assert exc.value.byte_offset == 36  # the data chunk's header, after RIFF (12) and fmt (24)
    assert "announces 3200 bytes (1600 samples) but the file holds 3100" in exc.value.message


@pytest.mark.parametrize("args,parameter", [
    (["--q0", "16"], "q0=16"),
    (["--q0", "-1"], "q0=-1"),
    (["--dq", "8"], "dq=8"),
    (["--q0", "10", "--qmax", "5"], "qmax=5"),
    (["--duration", "0"], "duration=0"),
    (["--duration", "105"], "duration=105"),
    (["--frame-ms", "30"], "frame_ms=30"),
    (["--frame-ms", "5"], "frame_ms=5"),
    (["--profile", "libopus-1.4"], "profile='libopus-1.4'"),
    (["--numerics", "bogus"], "numerics='bogus'"),
    (["--loss", "101"], "loss=101"),
    (["--bitrate", "0"], "bitrate=0"),
])
def test_bad_option_is_a_typed_error(args, parameter, tmp_path):
    path = tmp_path / "in.wav"
    write_wav(path, _speech(16000)[:1600], 16000)
    r = _run([str(path), "-o", str(tmp_path / "out.bit"), *args])
    assert r.exit_code == 2, r.output
    assert f"DredSettingsError: {parameter}:" in r.output
    assert not (tmp_path / "out.bit").exists()


# -- a real encoding, read back --------------------------------------------------------------------------


def _encode(tmp_path, profile: str, rate: int = 16000, *extra: str):
    src = tmp_path / f"speech{rate}.wav"
    write_wav(src, _speech(rate), rate)
    out = tmp_path / "out.bit"
    r = _run([str(src), "-o", str(out), "--profile", profile, "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout), out.read_bytes()


@pytest.fixture(scope="module", params=PROFILES)
def encoded(request, tmp_path_factory):
    """One second of speech at 16 kHz, 32 kb/s, 20 % expected loss, 20 ms: ``(profile, summary, .bit bytes)``."""
    summary, data = _encode(tmp_path_factory.mktemp("enc"), request.param)
    return request.param, summary, data


def test_output_reads_back_in_libopus(encoded):
    """Every packet decodes in libopus with the encoder's final range (opus_demo's check), libopus'
    ``opus_dred_parse`` finds the DRED our reader finds, with as many latents, and the ``--json`` figures are
    what the file holds."""
    profile, summary, data = encoded
    o = _oracle(profile)
    recs = read_opus_demo_bit(data)
    frame = 16000 // 50
    assert summary["packets"] == summary["frames"] == len(recs) == int(SECONDS * 50)
    dec = o.decoder(16000)
    ours_bytes, ours_chunks = [], []
    for rec in recs:
        assert len(rec.data) <= OPUS_DEMO_MAX_PACKET
        assert dec.decode(rec.data, frame).shape[0] == frame
        assert dec.final_range == rec.final_range
        loc = find_dred_extension(rec.data, profile)
        ref = o.dred_parse(rec.data, sampling_rate=16000)
        if loc is None:
            assert ref.ret == 0 and ref.nb_latents == 0
            ours_bytes.append(0)
            ours_chunks.append(0)
            continue
        p = read_dred_payload(loc.payload, profile)
        assert ref.ret > 0 and ref.nb_latents == p.nb_latents
        assert (p.q0, p.dQ, p.qmax) == (summary["settings"]["q0"], summary["settings"]["dq"],
                                        summary["settings"]["qmax"])
        ours_bytes.append(len(loc.payload))
        ours_chunks.append(p.nb_latents)
        ref.close()
    assert summary["dred_bytes"] == ours_bytes and summary["chunks"] == ours_chunks
    assert summary["dred_packets"] == sum(b > 0 for b in ours_bytes) >= len(recs) - 2
    assert summary["dred_bytes_total"] == sum(ours_bytes)
    assert summary["coverage_ms"] == [40.0 * c for c in ours_chunks]
    assert max(ours_chunks) == summary["settings"]["max_chunks"]


def _libopus_payloads(profile: str, pcm: np.ndarray, fs: int, frame: int, at) -> list[bytes]:
    """libopus' ``dred_compute_latents`` + ``dred_encode_silk_frame`` on ``pcm``, frame by frame, with the voip
    look-ahead; ``at(i)`` gives ``encode``'s keyword arguments for frame ``i``."""
    from opus_dred.libopus._encoder import LibopusDredEncoder

    enc = LibopusDredEncoder(_oracle(profile), fs)
    n = -(-len(pcm) // frame)
    x = np.zeros(n * frame, np.float32)
    x[:len(pcm)] = pcm / np.float32(32768)
    out = []
    for i in range(n):
        enc.compute_latents(x[i * frame:(i + 1) * frame], extra_delay=fs // 250)
        out.append(enc.encode(**at(i)))
    return out


def _assert_libopus_payloads(profile: str, pcm: np.ndarray, fs: int, frame: int, s: dict, data: bytes) -> None:
    """Each packet's DRED payload is what libopus' DRED encoder half writes for the same PCM and settings, with
    the byte budget a 1500-byte packet leaves next to that Opus frame."""
    recs = read_opus_demo_bit(data)
    plain = [len(write_packet(pk.toc, pk.frames)) for pk in (parse_packet(r.data) for r in recs)]
    ref = _libopus_payloads(profile, pcm, fs, frame, lambda i: {
        "max_chunks": s["max_chunks"], "max_bytes": dred_max_bytes(OPUS_DEMO_MAX_PACKET, plain[i]), "q0": s["q0"],
        "dq": s["dq"], "qmax": s["qmax"]})
    locs = [find_dred_extension(r.data, profile) for r in recs]
    assert [loc.payload if loc else b"" for loc in locs] == ref
    assert sum(len(p) > 0 for p in ref) >= 0.9 * len(recs)  # all but the first 40 ms


def test_payloads_are_libopus_dred_encoders(encoded, require_native_emulation):
    """Each packet's DRED is byte for byte what libopus' DRED encoder half writes for the same PCM, settings and
    byte budget (the one left in a 1500-byte packet next to that Opus frame)."""
    profile, summary, data = encoded
    _assert_libopus_payloads(profile, _speech(16000), 16000, 320, summary["settings"], data)


@pytest.mark.parametrize("rate,frame_ms", [(8000, 10), (12000, 60), (24000, 20), (48000, 10)])
def test_every_rate_and_frame_size(rate, frame_ms, tmp_path, require_native_emulation):
    """The other input rates (the 16 kHz conversion of each) and frame sizes: payloads still libopus'."""
    from scipy.signal import resample_poly  # lazy: scipy is slow to import

    pcm = np.clip(np.rint(resample_poly(_speech(16000).astype(np.float64), rate, 16000)), -32768, 32767)
    pcm = pcm.astype(np.int16)
    src = tmp_path / "in.wav"
    write_wav(src, pcm, rate)
    out = tmp_path / "out.bit"
    r = _run([str(src), "-o", str(out), "--frame-ms", str(frame_ms), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["packets"] == -(-int(SECONDS * 1000) // frame_ms)  # the last frame zero-padded
    _assert_libopus_payloads("libopus-1.6.1", pcm, rate, rate * frame_ms // 1000, summary["settings"],
                             out.read_bytes())


def test_dred_only_stream(encoded, tmp_path, require_native_emulation):
    """``--dred-only`` writes fargan_demo's records: each one's state and latents are, quantized at q0, what
    libopus' DRED encoder codes with dQ = 0 (every chunk at q0) and room for all of them."""
    profile = encoded[0]
    summary, data = _encode(tmp_path, profile, 16000, "--dred-only", "--duration", "40")
    recs = read_dred_stream(data)
    assert summary["format"] == "dred" and summary["packets"] == summary["dred_packets"] == len(recs)
    s = summary["settings"]
    assert s["max_chunks"] == 11  # (40 + 5) / 4
    ref = _libopus_payloads(profile, _speech(16000), 16000, 320, lambda i: {
        "max_chunks": s["max_chunks"], "max_bytes": 900, "q0": s["q0"], "dq": 0, "qmax": s["q0"]})
    ref = [read_dred_payload(p, profile) for p in ref if p]
    assert len(ref) == len(recs) >= summary["frames"] - 2
    for rec, exp, nbytes, chunks in zip(recs, ref, summary["dred_bytes"], summary["chunks"]):
        got = read_stream_record(rec, profile)
        assert rec.q0 == s["q0"] and len(rec.data) == nbytes and got.nb_latents == chunks == exp.nb_latents
        assert np.array_equal(got.state_q, exp.state_q) and np.array_equal(got.latents_q, exp.latents_q)


def test_cbr_48k_40ms(tmp_path):
    """CBR at 48 kHz with 40 ms frames: every packet exactly the CBR size, decoded by libopus with its final
    range, DRED found by libopus wherever our reader finds it."""
    profile = "libopus-1.6.1"
    summary, data = _encode(tmp_path, profile, 48000, "--cbr", "--frame-ms", "40", "--bitrate", "24000")
    s = summary["settings"]
    assert s["packet_bytes"] == 24000 * 40 // 8000
    recs = read_opus_demo_bit(data)
    assert len(recs) == int(SECONDS * 25)
    o = _oracle(profile)
    dec = o.decoder(48000)
    found = 0
    for rec in recs:
        assert len(rec.data) == s["packet_bytes"]
        assert dec.decode(rec.data, 1920).shape[0] == 1920 and dec.final_range == rec.final_range
        loc = find_dred_extension(rec.data, profile)
        ref = o.dred_parse(rec.data, sampling_rate=48000)
        assert (ref.nb_latents > 0) == (loc is not None)
        found += loc is not None
    assert found == summary["dred_packets"] >= len(recs) - 2
