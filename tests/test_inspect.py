"""``opus-dred inspect`` and the inspection data model (bitstream/inspect.py, bitstream/cli.py).

Files come from libopus itself (the build's ``opus_demo`` binary and the oracle's encoder), from
opus-tools' ``opusenc``, from our Ogg muxer with DRED packets, and from our DRED-only stream writer; every
packet-level figure is checked against the libopus oracle."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest
from typer.testing import CliRunner

from opus_dred.bitstream._formats import write_dred_stream, write_ogg_opus, write_opus_demo_bit
from opus_dred.bitstream._inspect import PacketInspection, inspect_bytes, inspect_packet
from opus_dred.bitstream._packet import Toc, parse_packet, write_packet

PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]


@functools.cache
def _oracle(name):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(name)


@functools.cache
def _speech16(seconds: float = 3.0) -> np.ndarray:
    from opus_dred.speech._corpus import load_clip

    return load_clip(None, rate=16000)[: int(16000 * seconds)]


def _app():
    import typer

    from opus_dred.cli._inspect import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


def _check_against_libopus(res, packets: list[bytes], name: str) -> None:
    """Every packet's framing, DRED header and coverage as libopus reads them."""
    o = _oracle(name)
    assert len(res.items) == len(packets)
    for it, data in zip(res.items, packets):
        assert isinstance(it, PacketInspection)
        ref = o.packet_parse(data)
        if not data:
            assert it.lost
            continue
        assert it.error is None and ref.ret == it.frames["count"]
        assert it.frames["sizes"] == ref.sizes
        assert it.duration_ms * 48 == o.packet_get_nb_samples(data, 48000)
        d = o.dred_parse(data, defer_processing=True)
        if d.nb_latents == 0 and d.ret == 0:
            assert not (it.dred and it.dred.get("found") and it.dred["nb_latents"] > 0)
        else:
            assert it.dred["found"] and it.dred["profile"] == name
            assert it.dred["nb_latents"] == d.nb_latents
            assert it.dred["dred_offset"] == d.dred_offset
            assert it.dred["coverage_ms"] == 40.0 * d.nb_latents
            assert it.dred["available_ms"] * 48 == d.ret
        d.close()


# -- libopus files -------------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("name", PROFILES)
def test_opus_demo_bit_file(tmp_path, name):
    """A .bit file written by the build's own opus_demo, with DRED."""
    from opus_dred.libopus._upstream import get_build

    demo = get_build(name).build_dir / "opus_demo"
    pcm = tmp_path / "in.pcm"
    _speech16(2.0).astype("<i2").tofile(pcm)
    bit = tmp_path / "out.bit"
    subprocess.run([str(demo), "-e", "voip", "16000", "1", "24000", "-loss", "20", "-dred", "100", str(pcm), str(bit)],
                   check=True, capture_output=True)
    from opus_dred.bitstream._formats import read_opus_demo_bit

    data = bit.read_bytes()
    res = inspect_bytes(data, name=str(bit))
    assert res.format == "bit" and res.error is None
    assert res.profile == name and res.profile_source == "version byte"
    recs = read_opus_demo_bit(data)
    assert [it.final_range for it in res.items] == [r.final_range for r in recs]
    _check_against_libopus(res, [r.data for r in recs], name)
    assert res.summary["with_dred"] > len(recs) // 2


@pytest.mark.oracle
@pytest.mark.parametrize("name", PROFILES)
def test_encoder_packets_multiframe_and_bits(name):
    """Oracle-encoded 60 ms and 120 ms packets (code 3, several frames; DRED in one of them), with --bits."""
    o = _oracle(name)
    pcm = np.repeat(_speech16(2.0), 3)
    pk = [e.data for e in o.encode(pcm, fs=48000, bitrate=32000, frame_ms=120, dred_duration=60, loss_perc=20)]
    pk += [e.data for e in o.encode(pcm, fs=48000, bitrate=16000, frame_ms=60, dred_duration=100, loss_perc=20)]
    res = inspect_bytes(write_opus_demo_bit([(p, 0) for p in pk]), bits=True)
    _check_against_libopus(res, pk, name)
    for it, data in zip(res.items, pk):
        b = it.bits
        assert b["toc"].replace(" ", "") == format(data[0], "08b")
        if it.toc["code"] == 3:
            assert b["count_byte"].replace(" ", "") == format(data[1], "08b")
            assert int(b["count_byte"].split()[2], 2) == it.frames["count"]
        for e in it.extensions:
            if e["id_offset"] is not None:
                id_bits, flag = e["id_byte_bits"].split()
                assert int(id_bits, 2) == e["id"] and int(flag) == e["L"] == data[e["id_offset"]] & 1
        if it.dred and it.dred.get("found"):
            payload = data[it.dred["payload_offset"]:]
            assert b["dred_payload"] == "".join(format(x, "08b") for x in payload)[: len(b["dred_payload"])]
            names = [f[0] for f in it.dred["fields"]]
            assert names[:2] == ["q0", "dq"] and names.count("state") == 1
            # each field starts where the previous one ended (ec_tell: 1 bit used before the first)
            assert it.dred["fields"][0][1] == 1
            assert all(a[2] == b_[1] for a, b_ in zip(it.dred["fields"], it.dred["fields"][1:]))


@pytest.mark.oracle
def test_opusenc_ogg_file(tmp_path):
    """An .opus file from opus-tools' opusenc (Debian's libopus: no DRED) reads through the Ogg path."""
    opusenc = shutil.which("opusenc")
    if opusenc is None:
        pytest.skip("opusenc (opus-tools) not installed")
    wav = tmp_path / "in.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(_speech16(2.0).astype("<i2").tobytes())
    out = tmp_path / "out.opus"
    subprocess.run([opusenc, "--quiet", "--bitrate", "24", str(wav), str(out)], check=True, capture_output=True)
    from opus_dred.bitstream._formats import read_ogg_opus

    data = out.read_bytes()
    res = inspect_bytes(data, name=str(out))
    assert res.format == "ogg" and res.error is None
    assert res.header["channels"] == 1 and res.header["input_sample_rate"] == 16000
    assert res.header["vendor"].startswith("libopus")
    assert res.summary["with_dred"] == 0 and res.profile is None
    ogg = read_ogg_opus(data)
    _check_against_libopus(res, ogg.packets, "libopus-1.6.1")
    # the granule position of the last page counts every sample of the stream
    total = sum(it.duration_ms * 48 for it in res.items)
    assert total >= res.header["last_granule"] - res.header["pre_skip"]


@pytest.mark.oracle
@pytest.mark.parametrize("name", PROFILES)
def test_ogg_we_mux_with_dred(name):
    o = _oracle(name)
    pk = [e.data for e in o.encode(_speech16(2.0), fs=16000, bitrate=24000, frame_ms=20, dred_duration=100, loss_perc=20)]
    data = write_ogg_opus(None, pk, [parse_packet(p).duration_48k for p in pk])
    res = inspect_bytes(data, name="x.opus")
    assert res.format == "ogg" and res.profile == name
    _check_against_libopus(res, pk, name)
    assert res.summary["with_dred"] >= len(pk) - 2


# -- DRED-only streams ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["libopus-1.6.1"])
def test_dred_only_stream(name):
    from opus_dred.bitstream._dredstream import read_stream_record, write_stream_record
    from opus_dred.bitstream._profiles import get_profile

    prof = get_profile(name)
    rng = np.random.default_rng(3)
    recs = []
    for q0, n in ((3, 2), (9, 5), (15, 25)):
        state = rng.integers(-2, 3, prof.state_dim)
        lat = rng.integers(-2, 3, (n, prof.latent_dim))
        # positions the statistics give zero probability must hold 0
        from opus_dred.bitstream._dred import coding_tables

        t = coding_tables(prof)
        state = np.where([p is None for p in t.state[q0]], 0, state)
        lat = np.where([[p is None for p in t.latent[q0]]] * n, 0, lat)
        recs.append(write_stream_record(state, lat, q0, prof))
    data = write_dred_stream(recs)
    res = inspect_bytes(data, name="v.bit")
    assert res.format == "dred" and res.profile == name and res.error is None
    assert [r.q0 for r in res.items] == [3, 9, 15]
    assert [r.nb_latents for r in res.items] == [2, 5, 25]
    assert [r.coverage_ms for r in res.items] == [80.0, 200.0, 1000.0]
    for r, rec in zip(res.items, recs):
        p = read_stream_record(rec, name)
        assert r.end_tell == p.end_tell and r.fields == [list(f) for f in p.fields]
    assert res.summary["latents"] == 32


# -- DRED field positions: the tracing range decoder -----------------------------------------------------

#: ``inspect``'s DRED field positions for the canonical suite's ``extended_extra0`` packets (an extended offset,
#: a coded qmax) as ``inspect`` reported them when the syntax tracked ``ec_tell`` itself
_PINNED_FIELDS = {
    "libopus-1.5.2": ([["q0", 1, 5], ["dq", 5, 8], ["extended_offset", 8, 9], ["extra", 9, 17], ["off", 17, 22],
                       ["qmax", 22, 23], ["state", 23, 90], ["latent[0]", 90, 110], ["latent[1]", 110, 122],
                       ["latent[2]", 122, 141], ["latent[3]", 141, 155]], 155),
    "libopus-1.6.1": ([["q0", 1, 5], ["dq", 5, 8], ["extended_offset", 8, 9], ["extra", 9, 17], ["off", 17, 22],
                       ["qmax", 22, 23], ["state", 23, 108], ["latent[0]", 108, 127], ["latent[1]", 127, 133],
                       ["latent[2]", 133, 146]], 146),
}


def _suite_packet(name: str, case: str) -> bytes:
    from opus_dred.vectors._format import suite_root

    return (suite_root() / name / "dred_features" / "writer_edges" / case / "packet.bin").read_bytes()


@pytest.mark.parametrize("name", PROFILES)
def test_dred_field_positions_from_the_tracer_are_the_pinned_ones(name):
    it = inspect_packet(_suite_packet(name, "extended_extra0.full"))
    fields, end_tell = _PINNED_FIELDS[name]
    assert it.dred["found"] and it.dred["profile"] == name
    assert it.dred["fields"] == fields and it.dred["end_tell"] == end_tell


@pytest.mark.parametrize("name", PROFILES)
def test_dred_field_positions_are_the_encoders_tell(name):
    """Each traced span ends where the range encoder's ``ec_tell`` stood once that field was coded."""
    from opus_dred.bitstream._dred import DredPayload, coding_tables, read_dred_payload, write_dred_payload
    from opus_dred.bitstream._profiles import get_profile
    from opus_dred.bitstream._rangecoder import RangeEncoder, laplace_encode_p0

    prof = get_profile(name)
    t = coding_tables(prof)
    rng = np.random.default_rng(5)
    for q0, dq, qmax, extra, n in ((5, 3, 12, 0, 4), (9, 5, 15, 7, 2), (14, 2, 15, 0, 3), (0, 0, 15, 255, 1)):
        levels = [min(qmax, q0 + (prof.dq_table[dq] * k + 8) // 16) for k in range(n)]
        state = np.where([p is None for p in t.state[q0]], 0, rng.integers(-3, 4, prof.state_dim))
        lat = np.array([np.where([p is None for p in t.latent[q]], 0, rng.integers(-3, 4, prof.latent_dim))
                        for q in levels])
        pl = DredPayload(profile=name, q0=q0, dQ=dq, qmax=qmax, extended_offset=True, extra_offset=32 * extra,
                         offset=11, state_q=state, latents_q=lat)
        data = write_dred_payload(pl)
        # the same symbols through the encoder, its tell after each field
        e = RangeEncoder(4096)
        ends = []
        for v, ft in ((q0, 16), (dq, 8), (1, 2), (extra, 256), (11, 32)):
            e.enc_uint(v, ft)
            ends.append(e.tell())
        if q0 < 14 and dq > 0:
            nv = 14 - q0
            e.encode(*((0, nv) if qmax == 15 else (nv + qmax - q0 - 1, nv + qmax - q0)), 2 * nv)
            ends.append(e.tell())
        for values, params in [(state, t.state[q0])] + [(lat[k], t.latent[levels[k]]) for k in range(n)]:
            for v, par in zip(values, params):
                if par is not None:
                    laplace_encode_p0(e, int(v), par[0], par[1])
            ends.append(e.tell())
        got = read_dred_payload(data, prof, max_latents=n)
        assert [f[2] for f in got.fields] == ends
        assert [f[1] for f in got.fields] == [1] + ends[:-1]


def test_tracing_does_not_change_decoded_values():
    """Over the canonical suite's DRED packets: the payload read with a plain range decoder, with the default
    tracing one and with one passed in is the same, but for the field positions only the tracers have."""
    from opus_dred.bitstream._dred import read_dred_payload
    from opus_dred.bitstream._extensions import find_dred_extension
    from opus_dred.bitstream._rangecoder import RangeDecoder, TracingDecoder
    from opus_dred.vectors._format import suite_root

    n = 0
    for name in PROFILES:
        for f in sorted((suite_root() / name / "dred_payload").glob("*/*/packet.bin")):
            loc = find_dred_extension(f.read_bytes(), name)
            if loc is None:
                continue
            tracer = TracingDecoder(RangeDecoder(loc.payload))
            runs = [read_dred_payload(loc.payload, name, decoder=RangeDecoder(loc.payload)),
                    read_dred_payload(loc.payload, name),
                    read_dred_payload(loc.payload, name, decoder=tracer)]
            plain = runs[0].to_dict()
            assert plain.pop("fields") == []
            for p in runs[1:]:
                d = p.to_dict()
                assert d.pop("fields") == [list(x) for x in tracer.fields] and d == plain
                assert p.state.tobytes() == runs[0].state.tobytes() and p.latents.tobytes() == runs[0].latents.tobytes()
            n += 1
    assert n > 100


# -- errors and broken files ---------------------------------------------------------------------


def test_packet_errors_carry_offsets_and_rules():
    it = inspect_packet(bytes([0x03, 0x41, 9, 1]))  # padding longer than the packet
    assert it.error["error"] == "PacketError" and it.error["rule"] == "RFC6716 R6"
    assert it.error["byte_offset"] == 2 and it.error["bit_offset"] == 16
    # a frame separator past the packet's frame count (1.6 syntax) breaks the padding at its own byte
    pkt = write_packet(Toc(9, False, 0), [b"abc"], padding=bytes([0x02, 0x02]), code=3)
    it = inspect_packet(pkt, "libopus-1.6.1")
    e = it.extension_error
    assert e["error"] == "ExtensionError" and pkt[e["byte_offset"]] == 0x02
    assert e["byte_offset"] >= parse_packet(pkt).padding_offset


def test_truncated_bit_file_keeps_records_before():
    pk = [write_packet(Toc(9, False, 0), [bytes(range(20))]) for _ in range(3)]
    data = write_opus_demo_bit([(p, 7) for p in pk])
    res = inspect_bytes(data[:-5], name="cut.bit")
    assert res.format == "bit" and len(res.items) == 2
    assert res.error["error"] == "TruncatedError" and res.error["byte_offset"] == 2 * 29 + 8


def test_cli_hex_json_and_table():
    runner = CliRunner()
    pkt = write_packet(Toc(9, False, 0), [b"abc", b"de"], padding=bytes([0x01, 0x01]))
    r = runner.invoke(_app(), ["inspect", pkt.hex(), "--json"])
    assert r.exit_code == 0, r.output
    j = json.loads(r.output)
    assert j["format"] == "hex" and j["items"][0]["frames"]["sizes"] == [3, 2]
    r = runner.invoke(_app(), ["inspect", "0341090100", "--bits"])
    assert r.exit_code == 0 and "RFC6716 R6" in r.output and "Traceback" not in r.output
    assert "00000 0 11" in r.output  # the TOC bits
    r = runner.invoke(_app(), ["inspect", "zz-not-hex"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    # a packet longer than a file name may be (the OS says "name too long" when asked for it as a path)
    long = write_packet(Toc(9, False, 0), [bytes(range(200))])
    r = runner.invoke(_app(), ["inspect", long.hex(), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["items"][0]["frames"]["sizes"] == [200]
    r = runner.invoke(_app(), ["inspect", "zz" * 300])
    assert r.exit_code == 2 and "neither a file" in r.output and isinstance(r.exception, SystemExit)


def test_inspect_does_not_import_jax(tmp_path):
    """The inspect path stays off JAX (and the reference's networks), so it starts quickly."""
    pk = [write_packet(Toc(9, False, 0), [bytes(range(20))])] * 10
    f = tmp_path / "a.bit"
    f.write_bytes(write_opus_demo_bit([(p, 0) for p in pk]))
    code = ("import sys, runpy; sys.argv = ['opus-dred', 'inspect', sys.argv[1], '--json'];\n"
            "try:\n    runpy.run_module('opus_dred.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'scipy') or m in ('opus_dred.refimpl._nnet', 'opus_dred.refimpl._rdovae'))\n"
            "print('IMPORTED', bad, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout)["summary"]["packets"] == 10
    assert "IMPORTED []" in r.stderr


def _suite_packets(n: int) -> list:
    """The first ``n`` DRED packets of the canonical suite's 1.6.1 features cases (``packet.bin`` files) that
    opus_demo's ``.bit`` can hold."""
    from pathlib import Path

    import opus_dred.vectors
    from opus_dred.bitstream._formats import OPUS_DEMO_MAX_PACKET

    suite = Path(opus_dred.vectors.__file__).parent / "suite" / "libopus-1.6.1" / "dred_features"
    fits = [p for p in sorted(suite.rglob("packet.bin")) if p.stat().st_size <= OPUS_DEMO_MAX_PACKET]
    return fits[:n]


def _inspect_json(*args) -> dict:
    r = CliRunner().invoke(_app(), ["inspect", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_cli_raw_packet_file_reads_as_its_hex():
    """``inspect packet.bin`` (a raw packet, detected or named with --format raw) says what ``inspect HEX``
    says of the same bytes: every field but the name and the format."""
    path = _suite_packets(1)[0]
    by_hex = _inspect_json(path.read_bytes().hex())
    for args in ([str(path)], [str(path), "--format", "raw"]):
        raw = _inspect_json(*args)
        assert (raw["format"], by_hex["format"]) == ("raw", "hex")
        assert raw["items"][0]["dred"]["found"]
        assert {k: v for k, v in raw.items() if k not in ("name", "format")} == \
            {k: v for k, v in by_hex.items() if k not in ("name", "format")}


def test_cli_folder_of_packets_reads_as_the_same_bit_file(tmp_path):
    """A folder of packet files is inspected as the same packets in an opus_demo ``.bit`` (but the record
    offsets and final ranges, which only the ``.bit`` has)."""
    paths = _suite_packets(4)
    folder = tmp_path / "packets"
    folder.mkdir()
    for i, p in enumerate(paths):
        (folder / f"{i:02d}.bin").write_bytes(p.read_bytes())
    bit = tmp_path / "same.bit"
    bit.write_bytes(write_opus_demo_bit([(p.read_bytes(), 0) for p in paths]))
    from_folder, from_bit = _inspect_json(str(folder)), _inspect_json(str(bit))
    assert (from_folder["format"], from_bit["format"]) == ("raw", "bit")
    assert from_folder["summary"] == from_bit["summary"] and from_folder["profile"] == from_bit["profile"]
    drop = ("offset", "final_range")
    assert [{k: v for k, v in it.items() if k not in drop} for it in from_folder["items"]] == \
        [{k: v for k, v in it.items() if k not in drop} for it in from_bit["items"]]


def test_cli_no_format_names_the_formats_tried(tmp_path):
    f = tmp_path / "noise.dat"
    f.write_bytes(bytes([0x03, 0x41, 9, 1]))  # no container; as a packet its padding overruns (RFC 6716 R6)
    r = CliRunner().invoke(_app(), ["inspect", str(f), "--json"])
    assert r.exit_code == 1, r.output
    e = json.loads(r.output)["error"]
    assert e["error"] == "FormatError" and e["byte_offset"] == 0
    assert "raw Opus packet" in e["message"] and "R6" in e["message"]
