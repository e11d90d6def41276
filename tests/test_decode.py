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


@pytest.fixture(scope="module", params=[1000, 120, 10], ids=lambda ms: f"{ms}ms")
def decoded(stream, request):
    """The first 30 packets decoded by libopus' ``opus_dred_parse`` and by ``decode_dred`` with this CPU's
    ``RCPPS`` (``libopus-avx2-host``), asking for ``max_ms`` of DRED: ``(ours, libopus')`` per packet."""
    ver, oracle, packets = stream
    max_samples = 16 * request.param
    return [(decode_dred(e.data, f"libopus-{ver}", max_dred_samples=max_samples, sampling_rate=16000,
                         numerics="libopus-avx2-host"),
             oracle.dred_parse(e.data, max_dred_samples=max_samples, sampling_rate=16000))
            for e in packets[:30]]


def _with_dred(decoded):
    """The packets where both found DRED, after checking libopus' integers are ours on every packet."""
    found = []
    for ours, ref in decoded:
        assert ours.ret == ref.ret and ours.dred_end == ref.dred_end
        if not ours.found:
            assert ref.ret == 0
            continue
        assert (ours.nb_latents, ours.dred_offset) == (ref.nb_latents, ref.dred_offset)
        assert ours.features.shape == ref.features.shape
        found.append((ours, ref))
    assert len(found) >= 20
    return found


def test_matches_libopus_on_real_speech(decoded):
    """Integers equal; features within libopus' own default-vs-generic spread (it reaches 0.26,
    docs/agreement.md) and within dred_compare's thresholds, on any CPU."""
    from opus_dred.conformance._metric import compare_features

    found = _with_dred(decoded)
    worst = max(float(np.abs(ours.features - ref.features).max(initial=0)) for ours, ref in found)
    assert worst < 0.3
    m = compare_features(np.concatenate([r.features for _, r in found]),
                         np.concatenate([o.features for o, _ in found]))
    assert m.passed, m


def test_bit_exact_with_libopus_on_real_speech(decoded, require_native_emulation):
    """With this CPU's own RCPPS table the features are libopus' default build's, bit for bit."""
    for ours, ref in _with_dred(decoded):
        np.testing.assert_array_equal(ours.features.view(np.uint32), ref.features.view(np.uint32))


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


def _canonical_packet() -> bytes:
    """The longest DRED packet of the canonical suite's 1.6.1 features cases (longer than a file name may be)."""
    from pathlib import Path

    import opus_dred.vectors

    suite = Path(opus_dred.vectors.__file__).parent / "suite" / "libopus-1.6.1" / "dred_features"
    pkt = max((p.read_bytes() for p in suite.rglob("packet.bin")), key=len)
    assert len(pkt.hex()) > 255
    return pkt


def _run_decode(runner, pkt: bytes, out):
    """``opus-dred decode HEX --numerics libopus-avx2-host --json -o OUT``: (JSON row, features read back)."""
    import json

    from opus_dred.cli import app

    r = runner.invoke(app, ["decode", pkt.hex(), "--max-ms", "1000", "--numerics", "libopus-avx2-host", "--json",
                            "-o", str(out)])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output.splitlines()[0])
    feats = np.fromfile(out, "<f4").reshape(-1, 20)
    np.testing.assert_array_equal(feats, np.asarray(row["features"], np.float32))
    return row, feats


def test_decode_command_on_a_hex_packet(tmp_path):
    """``opus-dred decode HEX``: a real packet of the canonical suite, libopus' integers and features within
    libopus' own build-to-build spread, written as dred_compare's .f32; bad arguments are usage errors, not
    tracebacks."""
    from typer.testing import CliRunner

    from opus_dred.cli import app
    from opus_dred.libopus._oracle import Oracle

    pkt = _canonical_packet()
    ref = Oracle.for_build("libopus-1.6.1").dred_parse(pkt, max_dred_samples=48000, sampling_rate=48000)
    assert ref.nb_latents > 0
    runner = CliRunner()
    row, feats = _run_decode(runner, pkt, tmp_path / "f.f32")
    assert (row["profile"], row["nb_latents"], row["dred_offset"]) == ("libopus-1.6.1", ref.nb_latents,
                                                                      ref.dred_offset)
    assert feats.shape == ref.features.shape
    assert float(np.abs(feats - ref.features).max()) < 0.3
    for bad in (["decode", pkt.hex(), "--numerics", "bogus"], ["decode", "zz" * 200],
                ["decode", pkt.hex(), "-o", str(tmp_path / "f.wav")]):
        r = runner.invoke(app, bad)
        assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (bad, r.output)


def test_decode_command_is_bit_exact_with_libopus(tmp_path, require_native_emulation):
    """With this CPU's own RCPPS table, ``opus-dred decode`` writes libopus' features bit for bit."""
    from typer.testing import CliRunner

    from opus_dred.libopus._oracle import Oracle

    pkt = _canonical_packet()
    ref = Oracle.for_build("libopus-1.6.1").dred_parse(pkt, max_dred_samples=48000, sampling_rate=48000)
    _, feats = _run_decode(CliRunner(), pkt, tmp_path / "f.f32")
    np.testing.assert_array_equal(feats.view(np.uint32), ref.features.view(np.uint32))


def _decode_cli(args, out):
    """``opus-dred decode ARGS --json -o OUT`` (this CPU's RCPPS): (exit code, JSON rows, features, output)."""
    import json

    from typer.testing import CliRunner

    from opus_dred.cli import app

    r = CliRunner().invoke(app, ["decode", *args, "--max-ms", "1000", "--numerics", "libopus-avx2-host", "--json",
                                 "-o", str(out)])
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    feats = np.fromfile(out, "<f4").reshape(-1, 20) if out.exists() else None
    return r.exit_code, rows, feats, r.output


def test_decode_raw_packet_file_is_its_hex_and_libopus(tmp_path, require_native_emulation):
    """``opus-dred decode packet.bin`` (a raw packet file) writes what ``decode HEX`` writes, and that is
    libopus' features bit for bit."""
    from opus_dred.libopus._oracle import Oracle

    pkt = _canonical_packet()
    f = tmp_path / "packet.bin"
    f.write_bytes(pkt)
    code, rows, feats, output = _decode_cli([str(f)], tmp_path / "raw.f32")
    assert code == 0, output
    code_hex, rows_hex, feats_hex, _ = _decode_cli([pkt.hex()], tmp_path / "hex.f32")
    assert code_hex == 0 and rows == rows_hex
    np.testing.assert_array_equal(feats, feats_hex)
    ref = Oracle.for_build("libopus-1.6.1").dred_parse(pkt, max_dred_samples=48000, sampling_rate=48000)
    np.testing.assert_array_equal(feats.view(np.uint32), ref.features.view(np.uint32))


def test_truncated_bit_same_error_from_decode_and_inspect(tmp_path):
    """A ``.bit`` cut inside its last packet: ``decode`` decodes the complete packets (as it decodes them in
    a whole file), then fails with the error ``inspect`` reports: same class, same byte offset, same words."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    import opus_dred.vectors
    from opus_dred.bitstream._formats import OPUS_DEMO_MAX_PACKET, write_opus_demo_bit
    from opus_dred.cli import app
    from opus_dred.cli._inspect import format_error

    suite = Path(opus_dred.vectors.__file__).parent / "suite" / "libopus-1.6.1" / "dred_features"
    pk = [p.read_bytes() for p in sorted(suite.rglob("packet.bin"))]
    pk = [p for p in pk if len(p) <= OPUS_DEMO_MAX_PACKET][:3]
    data = write_opus_demo_bit([(p, 0) for p in pk])
    whole, cut = tmp_path / "whole.bit", tmp_path / "cut.bit"
    whole.write_bytes(data)
    cut.write_bytes(data[:-5])

    r = CliRunner().invoke(app, ["inspect", str(cut), "--json"])
    err = json.loads(r.stdout)["error"]
    assert err["error"] == "TruncatedError" and err["byte_offset"] == 2 * 8 + len(pk[0]) + len(pk[1]) + 8

    code, rows, feats, output = _decode_cli([str(cut)], tmp_path / "cut.f32")
    assert code == 2 and f"error: {format_error(err)}" in output, output
    code_whole, rows_whole, feats_whole, _ = _decode_cli([str(whole)], tmp_path / "whole.f32")
    assert code_whole == 0 and len(rows_whole) == 3
    assert rows == rows_whole[:2]
    np.testing.assert_array_equal(feats, feats_whole[: feats.shape[0]])
    assert feats.shape[0] == sum(len(row["features"]) for row in rows)
