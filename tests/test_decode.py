"""decode_dred: bytes of an Opus packet → features, against libopus' opus_dred_parse (with processing)."""

from __future__ import annotations

import numpy as np
import pytest

from opus_dred.refimpl._decode import decode_dred, decode_payload

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module", params=["1.5.2", "1.6.1"])
def stream(request):
    from opus_dred.libopus._oracle import Oracle
    from opus_dred.speech._corpus import load_clip

    ver = request.param
    oracle = Oracle.for_build(f"libopus-{ver}")
    pcm = load_clip(None, rate=16000)[: 16000 * 2]
    packets = oracle.encode(pcm, fs=16000, bitrate=24000, frame_ms=20, dred_duration=100, loss_perc=20)
    return ver, oracle, packets


@pytest.mark.parametrize("max_ms", [1000, 120, 10])
def test_matches_libopus_on_real_speech(stream, max_ms, emulation_is_native):
    ver, oracle, packets = stream
    profile = f"libopus-{ver}"
    seen = 0
    worst = 0.0
    for e in packets[:30]:
        max_samples = 16 * max_ms
        ref = oracle.dred_parse(e.data, max_dred_samples=max_samples, sampling_rate=16000)
        ours = decode_dred(e.data, profile, max_dred_samples=max_samples, sampling_rate=16000,
                           numerics="libopus-avx2-host")
        assert ours.ret == ref.ret and ours.dred_end == ref.dred_end
        if not ours.found:
            assert ref.ret == 0
            continue
        assert (ours.nb_latents, ours.dred_offset) == (ref.nb_latents, ref.dred_offset)
        assert ours.features.shape == ref.features.shape
        worst = max(worst, float(np.abs(ours.features - ref.features).max(initial=0)))
        seen += 1
    assert seen >= 20
    if emulation_is_native:
        assert worst == 0.0  # bit for bit with libopus' default build
    else:
        assert worst < 0.3  # libopus' own default-vs-generic spread reaches 0.26 (docs/agreement.md)


def test_packet_without_dred(stream):
    ver, oracle, _ = stream
    from opus_dred.speech._corpus import load_clip

    pcm = load_clip(None, rate=16000)[:16000]
    plain = oracle.encode(pcm, fs=16000, bitrate=24000, frame_ms=20)  # no DRED asked for
    for e in plain[:5]:
        r = decode_dred(e.data, f"libopus-{ver}")
        assert not r.found and r.features.shape == (0, 20)
        assert oracle.dred_parse(e.data, max_dred_samples=48000, sampling_rate=48000).ret == 0


def test_other_profile_finds_no_dred(stream):
    ver, _, packets = stream
    other = "libopus-1.6.1" if ver == "1.5.2" else "libopus-1.5.2"
    assert not any(decode_dred(e.data, other).found for e in packets[:20])


def test_float64_and_float_paths_close(stream):
    ver, _, packets = stream
    from opus_dred.bitstream._extensions import find_dred_extension
    from opus_dred.bitstream._dred import read_dred_payload

    e = next(e for e in packets if find_dred_extension(e.data, f"libopus-{ver}"))
    p = read_dred_payload(find_dred_extension(e.data, f"libopus-{ver}").payload, f"libopus-{ver}")
    f32 = decode_payload(p, f"libopus-{ver}", numerics="float").features
    f64 = decode_payload(p, f"libopus-{ver}", numerics="float", dtype=np.float64).features
    assert f64.dtype == np.float64 and f32.dtype == np.float32
    assert np.abs(f64 - f32).max() < 1e-3
    avx = decode_payload(p, f"libopus-{ver}").features
    assert 0 < np.abs(avx - f32).max() < 0.5  # two different arithmetic paths, both close


def test_wrong_profile_is_a_typed_error_when_strict(stream):
    from opus_dred.bitstream._errors import ProfileMismatchError

    ver, _, packets = stream
    other = "libopus-1.6.1" if ver == "1.5.2" else "libopus-1.5.2"
    e = next(e for e in packets if decode_dred(e.data, f"libopus-{ver}").found)
    with pytest.raises(ProfileMismatchError) as ei:
        decode_dred(e.data, other, strict=True)
    err = ei.value
    # the offset points at the version byte inside the packet
    assert e.data[err.byte_offset] == (10 if ver == "1.5.2" else 12)
    assert f"libopus-{ver}" in err.message and err.profile == other


def test_decode_command_on_a_hex_packet(tmp_path, emulation_is_native):
    """``opus-dred decode HEX``: a real packet of the canonical suite (longer than a file name may be), features
    as libopus gives them (bit for bit with the host's RCPPS where that is native), written as dred_compare's
    .f32; bad arguments are usage errors, not tracebacks."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    import opus_dred.vectors
    from opus_dred.cli import app
    from opus_dred.libopus._oracle import Oracle

    suite = Path(opus_dred.vectors.__file__).parent / "suite" / "libopus-1.6.1" / "dred_features"
    pkt = max((p.read_bytes() for p in suite.rglob("packet.bin")), key=len)
    assert len(pkt.hex()) > 255
    ref = Oracle.for_build("libopus-1.6.1").dred_parse(pkt, max_dred_samples=48000, sampling_rate=48000)
    assert ref.nb_latents > 0
    runner = CliRunner()
    out = tmp_path / "f.f32"
    r = runner.invoke(app, ["decode", pkt.hex(), "--max-ms", "1000", "--numerics", "libopus-avx2-host", "--json",
                            "-o", str(out)])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output.splitlines()[0])
    assert (row["profile"], row["nb_latents"], row["dred_offset"]) == ("libopus-1.6.1", ref.nb_latents,
                                                                      ref.dred_offset)
    feats = np.fromfile(out, "<f4").reshape(-1, 20)
    np.testing.assert_array_equal(feats, np.asarray(row["features"], np.float32))
    err = float(np.abs(feats - ref.features).max())
    assert err == 0.0 if emulation_is_native else err < 0.3
    for bad in (["decode", pkt.hex(), "--numerics", "bogus"], ["decode", "zz" * 200],
                ["decode", pkt.hex(), "-o", str(tmp_path / "f.wav")]):
        r = runner.invoke(app, bad)
        assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (bad, r.output)
