"""Model packs: the committed packs, the C data parser, integrity checks and re-extraction."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from opus_dred.errors import OpusDredError
from opus_dred.libopus._upstream import source_for_pack
from opus_dred.models import _extract as ex
from opus_dred.models._pack import (
    PackError,
    PackIntegrityError,
    UnknownPackError,
    array_sha256,
    compare_with_extracted,
    list_packs,
    load_pack,
)

PACKS = ["libopus-1.5.2", "libopus-1.6.1"]


def _upstream():
    try:
        from opus_dred.libopus import _upstream as upstream
    except ImportError:
        return None
    return upstream


def _source_or_skip(pack):
    src = source_for_pack(pack)
    if src is None:
        pytest.skip(f"no libopus {pack.source['release']} source (run `opus-dred upstream fetch`)")
    return src


# ------------------------------------------------------------------------------------------
# committed packs


def test_both_packs_are_listed():
    assert set(PACKS) <= set(list_packs())


@pytest.mark.parametrize("pid", PACKS)
def test_pack_matches_its_manifest(pid):
    p = load_pack(pid)
    p.verify()
    m = p.manifest
    assert m["id"] == pid and p.id == pid
    assert set(p.arrays) == {e["name"] for e in m["arrays"]}
    for e in m["arrays"]:
        a = p.arrays[e["name"]]
        assert a.ndim == 1 and list(a.shape) == e["shape"]
        assert a.dtype.name == ex.C_TYPES[e["ctype"]] == e["dtype"]
        assert array_sha256(a) == e["sha256"]
        assert not a.flags.writeable
    assert m["source"]["release"] == pid.split("-", 1)[1]
    assert m["source"]["dred_experimental_version"] == p.constants["DRED_EXPERIMENTAL_VERSION"]
    lic = m["licence"]
    assert lic["spdx"] == "BSD-3-Clause"
    assert lic["statement"] == f"BSD-3-Clause, extracted from libopus {m['source']['release']} release tarball"
    assert "Xiph.Org" in lic["copyright_holders"] and "Amazon" in lic["copyright_holders"]


@pytest.mark.parametrize("pid", PACKS)
def test_layer_sizes_follow_linear_init(pid):
    """Every linear layer's arrays have the sizes dnn/parse_lpcnet_weights.c:linear_init demands."""
    p = load_pack(pid)
    assert p.layer("dec_dense1")["nb_outputs"] == 96
    for name, L in p.layers.items():
        if L["kind"] != "linear":
            continue
        nin, nout = L["nb_inputs"], L["nb_outputs"]
        for k in ("bias", "subias", "scale"):
            if L[k] and L[k] not in L["absent"]:
                assert p.array(L[k]).size == nout, (name, k)
        if L["weights_idx"]:
            idx = p.array(L["weights_idx"])
            assert idx.dtype == np.int32
            want = 32 * L["sparse_blocks"]
        else:
            want = nin * nout
        for k in ("weights", "float_weights"):
            if L[k] and L[k] not in L["absent"]:
                assert p.array(L[k]).size == want, (name, k)
        # only the optional float copy of an int8 layer may be compiled out
        assert all(a.endswith("_weights_float") for a in L["absent"])


@pytest.mark.parametrize("pid", PACKS)
def test_stats_tables_shapes(pid):
    p = load_pack(pid)
    c = p.constants
    for kind, dim in (("latent", c["DRED_LATENT_DIM"]), ("state", c["DRED_STATE_DIM"])):
        for t in ("quant_scales", "dead_zone", "r", "p0"):
            a = p.array(f"dred_{kind}_{t}_q8")
            assert a.dtype == np.uint8 and a.size == c["DRED_NUM_QUANTIZATION_LEVELS"] * dim


def test_unknown_pack_is_a_typed_error():
    with pytest.raises(UnknownPackError) as ei:
        load_pack("libopus-0.0")
    assert isinstance(ei.value, OpusDredError)
    assert "libopus-1.6.1" in str(ei.value)


# ------------------------------------------------------------------------------------------
# integrity


def _copy_pack(tmp_path: Path, pid: str, new_id: str) -> Path:
    src = load_pack(pid).path
    dst = tmp_path / new_id
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["id"] = new_id
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def _rewrite_npz(d: Path, change):
    with np.load(d / "arrays.npz") as z:
        arrs = {k: z[k].copy() for k in z.files}
    change(arrs)
    np.savez_compressed(d / "arrays.npz", **arrs)


def test_corrupted_array_is_detected(tmp_path):
    d = _copy_pack(tmp_path, "libopus-1.6.1", "corrupt")
    name = "dec_gru1_input_weights_int8"

    def flip(arrs):
        arrs[name][17] ^= 1

    _rewrite_npz(d, flip)
    p = load_pack(d)
    with pytest.raises(PackIntegrityError) as ei:
        p.verify()
    assert ei.value.array == name and name in str(ei.value)
    with pytest.raises(PackIntegrityError):
        load_pack(d, verify=True)


@pytest.mark.parametrize("how", ["missing", "dtype", "extra"])
def test_structural_damage_is_detected(tmp_path, how):
    d = _copy_pack(tmp_path, "libopus-1.5.2", f"damaged-{how}")
    name = "dred_state_p0_q8"

    def change(arrs):
        if how == "missing":
            del arrs[name]
        elif how == "dtype":
            arrs[name] = arrs[name].astype(np.int16)
        else:
            arrs["not_in_manifest"] = np.zeros(3, np.float32)

    _rewrite_npz(d, change)
    with pytest.raises(PackIntegrityError) as ei:
        load_pack(d).verify()
    assert ei.value.array == ("not_in_manifest" if how == "extra" else name)


def test_unreadable_pack_is_a_typed_error(tmp_path):
    d = _copy_pack(tmp_path, "libopus-1.5.2", "broken")
    (d / "arrays.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(PackError):
        load_pack(d)
    (d / "manifest.json").write_text("{")
    with pytest.raises(PackError):
        load_pack(d)


def test_pack_added_by_files_alone(tmp_path, monkeypatch):
    _copy_pack(tmp_path, "libopus-1.6.1", "my-pack")
    monkeypatch.setenv("OPUS_DRED_PACKS_PATH", str(tmp_path))
    assert "my-pack" in list_packs()
    p = load_pack("my-pack", verify=True)
    assert p.path == tmp_path / "my-pack"
    assert np.array_equal(p.array("dec_output_bias"), load_pack("libopus-1.6.1").array("dec_output_bias"))


# ------------------------------------------------------------------------------------------
# the C data parser


_SAMPLE = """/* generated */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef USE_WEIGHTS_FILE
#define WEIGHTS_a_float_DEFINED
#define WEIGHTS_a_float_TYPE WEIGHT_TYPE_float
static const float a_float[3] = {
1.5,-2.0e-3,
0.1
};
#endif /* USE_WEIGHTS_FILE */
#ifndef USE_WEIGHTS_FILE
#endif /* USE_WEIGHTS_FILE */
#ifndef USE_WEIGHTS_FILE
#define WEIGHTS_b_int8_DEFINED
#define WEIGHTS_b_int8_TYPE WEIGHT_TYPE_int8
static const opus_int8 b_int8[4] = {
-128, 127, 0, -1,
};
#endif /* USE_WEIGHTS_FILE */
const opus_uint8 c_q8[2] = {255, 0};
#ifndef USE_WEIGHTS_FILE
const WeightArray t_arrays[] = {
#ifdef WEIGHTS_a_float_DEFINED
{"a_float", WEIGHTS_a_float_TYPE,sizeof(a_float),a_float},
#endif
#ifdef WEIGHTS_a_weights_float_DEFINED
{"a_weights_float", WEIGHTS_a_weights_float_TYPE,sizeof(a_weights_float),a_weights_float},
#endif
#ifdef WEIGHTS_b_int8_DEFINED
{"b_int8", WEIGHTS_b_int8_TYPE,sizeof(b_int8),b_int8},
#endif
{NULL,0,0,NULL}
};
#endif
"""


def test_parser_reads_arrays_conditions_and_tables():
    out = ex.parse_c_data(_SAMPLE, "sample.c")
    a = out.arrays["a_float"]
    assert a.dtype == "float32" and a.conditions == ("!USE_WEIGHTS_FILE",) and a.weight_type == "WEIGHT_TYPE_float"
    assert np.array_equal(a.values, np.array([1.5, -2.0e-3, 0.1], np.float32))
    assert out.arrays["b_int8"].values.tolist() == [-128, 127, 0, -1]
    assert out.arrays["c_q8"].values.dtype == np.uint8 and out.arrays["c_q8"].conditions == ()
    # the entry for a never-generated array is compiled out and so not listed
    assert [e["name"] for e in out.tables["t_arrays"]] == ["a_float", "b_int8"]


@pytest.mark.parametrize(
    "bad, what",
    [
        ("static const float x[3] = {1.0, 2.0};", "declared length 3, found 2"),
        ("static const float x[2] = {1.0, zz};", "bad float32 literal"),
        ("static const opus_int8 x[1] = {200};", "out of range"),
        ("static const float x[1] = {1.0,", "no closing"),
        ("#ifndef USE_WEIGHTS_FILE\nstatic const float x[1] = {1.0};", "unterminated"),
        ("static const double x[1] = {1.0};", "unknown element type"),
        ("const WeightArray t[] = {\n{\"y\", WEIGHT_TYPE_float,sizeof(y),y},\n};", "not defined"),
        ("static const int x[1] = {1};\nconst WeightArray t[] = {\n{\"x\", WEIGHT_TYPE_float,sizeof(x),x},\n};",
         "does not match"),
    ],
)
def test_parser_rejects_malformed_input(bad, what):
    with pytest.raises(ex.ExtractError) as ei:
        ex.parse_c_data("/* x */\n" + bad + "\n", "bad.c")
    assert what in str(ei.value) and "bad.c" in str(ei.value)


def test_parser_reads_init_calls():
    text = ("static const float d_bias[8] = {0,0,0,0,0,0,0,0};\nstatic const float d_weights_float[16] = {"
            + ",".join(["0"] * 16) + "};\nint init_m(M *model,const WeightArray *arrays) {\n"
            'if (linear_init(&model->d,arrays,"d_bias",NULL,NULL,"d_weights_float",NULL,NULL,NULL,2,8)) return 1;\n'
            "return 0;\n}\n")
    out = ex.parse_c_data(text, "m.c")
    assert out.init_function == "init_m"
    assert out.layers == [{"name": "d", "kind": "linear", "bias": "d_bias", "subias": None, "weights": None,
                           "float_weights": "d_weights_float", "weights_idx": None, "diag": None, "scale": None,
                           "nb_inputs": 2, "nb_outputs": 8}]


def test_sparse_index_walk():
    # 16 outputs = 2 groups of 8: 2 blocks at inputs 0 and 4, then 1 block at 8
    idx = np.array([2, 0, 4, 1, 8], np.int32)
    assert ex._sparse_blocks(idx, 12, 16, "l", "f") == 3
    with pytest.raises(ex.ExtractError):
        ex._sparse_blocks(idx, 8, 16, "l", "f")  # block at 8 runs past 8 inputs
    with pytest.raises(ex.ExtractError):
        ex._sparse_blocks(np.array([1, 2], np.int32), 12, 8, "l", "f")  # not a multiple of 4


def test_define_evaluation():
    d = ex.parse_defines("#define A 26\n#define B (2*A)\n#define C (79+12-80) /* c */\n#define S \"x\"\n")
    assert d == {"A": 26, "B": 52, "C": 11}


# ------------------------------------------------------------------------------------------
# re-extraction from the pinned release sources


@pytest.mark.parametrize("pid", PACKS)
def test_reextraction_matches_committed_pack(pid):
    p = load_pack(pid)
    src = _source_or_skip(p)
    fresh = ex.extract(src, release=p.source["release"])
    assert compare_with_extracted(p, fresh) == []
    assert fresh.source["dred_experimental_version"] == p.source["dred_experimental_version"]
    assert fresh.licence == p.licence


@pytest.mark.parametrize("pid", PACKS)
def test_extraction_from_the_release_tarball(pid):
    up = _upstream()
    release = pid.split("-", 1)[1]
    tb = up.cached_tarball(release) if up is not None else None
    if tb is None:
        pytest.skip(f"no cached libopus {release} tarball")
    p = load_pack(pid)
    fresh = ex.extract(tb, release=release)
    assert fresh.source["kind"] == "tarball" and fresh.source["tarball_sha256"] == up.sha256_file(tb)
    assert compare_with_extracted(p, fresh) == []


def _object_symbols(obj: Path) -> dict[str, bytes]:
    """Bytes of every data object in an ELF .o, via readelf."""
    secs = subprocess.run(["readelf", "-SW", str(obj)], capture_output=True, text=True, check=True).stdout
    offsets = {int(m.group(1)): int(m.group(2), 16)
               for m in re.finditer(r"\[\s*(\d+)\]\s+\S+\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)\s+[0-9a-f]+", secs)}
    syms = subprocess.run(["readelf", "-sW", str(obj)], capture_output=True, text=True, check=True).stdout
    data = obj.read_bytes()
    out = {}
    for line in syms.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] == "OBJECT" and f[6].isdigit() and int(f[6]) in offsets:
            start = offsets[int(f[6])] + int(f[1], 16)
            out[f[7]] = data[start:start + int(f[2], 0)]
    return out


@pytest.mark.oracle
@pytest.mark.parametrize("pid", PACKS)
def test_pack_bytes_equal_what_the_c_compiler_emitted(pid):
    """Every array equals, byte for byte, the symbol the C compiler built from the same file
    (this checks the decimal → float32 conversion of the parser against the compiler's)."""
    up = _upstream()
    if up is None or shutil.which("readelf") is None:
        pytest.skip("needs the upstream manager and readelf")
    try:
        build = up.get_build(pid + "-generic")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no build: {exc}")
    stems = [Path(f).stem for f in ex.DATA_FILES + ex.TABLE_FILES]
    objs = []
    for stem in stems:
        objs += list(Path(build.build_dir).glob(f"dnn/.libs/{stem}.o")) or \
            list(Path(build.build_dir).glob(f"dnn/{stem}.o"))
    if len(objs) < len(stems):
        pytest.skip("no object files of the model data in the build")
    found: dict[str, bytes] = {}
    for o in objs:
        found.update(_object_symbols(o))
    # the FFT plan is one struct (celt/kiss_fft.h:kiss_fft_state): int nfft, float scale, int shift,
    # opus_int16 factors[16], then pointers
    plan = found.pop("kfft")
    found["kfft_nfft"], found["kfft_scale"], found["kfft_shift"] = plan[0:4], plan[4:8], plan[8:12]
    found["kfft_factors"] = np.frombuffer(plan[12:44], "<i2").astype("<i4").tobytes()
    p = load_pack(pid)
    for name, a in p.arrays.items():
        assert found.get(name) == a.astype(a.dtype.newbyteorder("<")).tobytes(), name


# ------------------------------------------------------------------------------------------
# CLI


def test_cli_list_show_verify(tmp_path):
    from opus_dred.cli._models import app

    r = CliRunner().invoke(app, ["list", "--json"])
    assert r.exit_code == 0, r.output
    assert {row["id"] for row in json.loads(r.output)} >= set(PACKS)
    r = CliRunner().invoke(app, ["show", "libopus-1.5.2", "--json"])
    m = json.loads(r.output)
    assert m["layers"]["dec_dense1"]["nb_inputs"] == 21 and len(m["arrays"]) == len(load_pack("libopus-1.5.2").arrays)
    r = CliRunner().invoke(app, ["verify", *PACKS])
    assert r.exit_code == 0 and r.output.count("manifest ok") == 2
    r = CliRunner().invoke(app, ["show", "nope"])
    assert r.exit_code == 1


def test_cli_extract_writes_a_loadable_pack(tmp_path):
    from opus_dred.cli._models import app

    p = load_pack("libopus-1.6.1")
    src = _source_or_skip(p)
    r = CliRunner().invoke(app, ["extract", str(src), "--id", "again", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    q = load_pack(tmp_path / "again", verify=True)
    assert {e["sha256"] for e in q.manifest["arrays"]} == {e["sha256"] for e in p.manifest["arrays"]}
