"""``opus_dred.testing``: the strategies make what our parsers and libopus' parsers accept (the mutations what they
answer without crashing); the pytest plugin runs the suite as one test per case, inert without its option,
passing on the reference and naming the field where a wrong adapter differs; the C adapter over libopus' public
API passes what it implements and skips the rest."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.bitstream._dred import read_dred_payload, write_dred_payload
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import find_dred_extension, parse_extensions, write_extensions
from opus_dred.bitstream._packet import parse_packet
from opus_dred.bitstream._profiles import get_profile
from opus_dred.refimpl import _receiver as rx
from opus_dred.testing import (
    describe,
    dred_payloads,
    extension_lists,
    mutations,
    opus_packets,
    receiver_events,
    truncations,
)
from opus_dred.vectors._format import suite_root

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]
BUILD = {"libopus-1.5.2": "libopus-1.5.2", "libopus-1.6.1": "libopus-1.6.1"}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@functools.cache
def _oracle(name):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(name)


# -- the strategies against our parsers ------------------------------------------------------------


@pytest.mark.parametrize("profile", [None, *PROFILES])
@FAST
@given(data=st.data(), sd=st.booleans())
def test_packets_are_valid_framing(profile, data, sd):
    raw = data.draw(opus_packets(profile, self_delimited=sd))
    pkt = parse_packet(raw + b"next" if sd else raw, self_delimited=sd)
    assert pkt.length == len(raw)
    assert 1 <= pkt.nb_frames <= 48 and pkt.nb_frames * pkt.toc.frame_size_48k <= 5760


@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_dred_packets_carry_a_payload_the_profile_finds(profile, data):
    raw = data.draw(opus_packets(profile, dred=True))
    loc = find_dred_extension(raw, profile)
    assert loc is not None
    p = read_dred_payload(loc.payload, profile)
    assert not p.read_past_end


@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_extension_lists_round_trip(profile, data):
    exts, nb = data.draw(extension_lists(profile))
    syntax = get_profile(profile).extension_syntax
    assert parse_extensions(write_extensions(exts, nb, syntax=syntax), nb, syntax=syntax) == exts


@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_dred_payloads_are_read_back(profile, data):
    p = data.draw(dred_payloads(profile))
    got = read_dred_payload(write_dred_payload(p), profile)
    assert (got.q0, got.dQ, got.qmax, got.extended_offset, got.extra_offset, got.offset) == \
        (p.q0, p.dQ, p.qmax, p.extended_offset, p.extra_offset, p.offset)
    assert np.array_equal(got.state_q, p.state_q)
    assert np.array_equal(got.latents_q, p.latents_q[: got.nb_latents])  # trailing chunks under 8 bits are lost


@FAST
@given(events=receiver_events())
def test_receiver_events_are_accepted(events):
    actions = rx.run(events, rx.BEST)
    frames = {e.seq for e in events}
    assert len(actions) == max(frames) + 1  # one action per frame, every frame up to the last one heard of


@FAST
@given(data=st.data())
def test_mutations_and_truncations_break_packets_into_typed_errors(data):
    whole = data.draw(opus_packets("libopus-1.6.1"))
    cut = data.draw(truncations(whole))
    assert len(cut) < len(whole) and whole.startswith(cut)
    for raw in (cut, data.draw(mutations(whole)), data.draw(mutations(opus_packets("libopus-1.5.2")))):
        try:
            parse_packet(raw)
        except BitstreamError:
            pass


# -- the strategies against libopus' parsers (oracle) ------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_libopus_parses_the_packets(profile, data):
    raw = data.draw(opus_packets(profile))
    r = _oracle(BUILD[profile]).packet_parse(raw)
    pkt = parse_packet(raw)
    assert r.ret == pkt.nb_frames and list(r.sizes) == [len(f) for f in pkt.frames]
    assert r.padding_len == len(pkt.padding)


@pytest.mark.oracle
@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_libopus_parses_the_extension_lists(profile, data):
    exts, nb = data.draw(extension_lists(profile))
    pad = write_extensions(exts, nb, syntax=get_profile(profile).extension_syntax)
    r = _oracle(BUILD[profile]).ext_parse(pad, nb)
    assert r.ret >= 0
    assert sorted((e.frame, e.id, e.data) for e in r.extensions) == sorted((e.frame, e.id, e.data) for e in exts)


@pytest.mark.oracle
@pytest.mark.parametrize("profile", PROFILES)
@FAST
@given(data=st.data())
def test_libopus_parses_the_dred_packets(profile, data):
    raw = data.draw(opus_packets(profile, dred=True))
    loc = find_dred_extension(raw, profile)
    ours = read_dred_payload(loc.payload, profile)
    d = _oracle(BUILD[profile]).dred_parse(raw, defer_processing=True)
    try:
        assert d.ret >= 0
        assert d.nb_latents == ours.nb_latents
    finally:
        d.close()


# -- the pytest plugin ------------------------------------------------------------------------------

#: a small subset of the canonical suite: packet framings of every code (no JAX decoding needed)
SUBSET = suite_root() / "libopus-1.6.1" / "packet" / "writer_edges"

WRONG_ADAPTER = textwrap.dedent('''
    """Answers packet cases with one frame too many: a wrong implementation for the plugin's tests."""
    import base64, json, sys
    from opus_dred.bitstream._packet import parse_packet

    for line in sys.stdin:
        req = json.loads(line)
        if req.get("type") == "hello":
            out = {"id": 0, "protocol": req["protocol"], "name": "wrong", "handlers": ["packet"], "profiles": None}
        else:
            p = parse_packet(base64.b64decode(req["inputs"]["packet"]["base64"]))
            out = {"id": req["id"], "result": {"packet": {"toc": p.toc.to_byte(), "nb_frames": p.nb_frames + 1}}}
        print(json.dumps(out), flush=True)
''')


def test_plugin_is_inert_without_its_option(pytester):
    pytester.makepyfile("def test_one():\n    pass\n")
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    r.assert_outcomes(passed=1)
    out = r.stdout.str()
    assert "opus-dred-" in out and "collected 1 item" in out  # loaded by its entry point, and adds nothing
    assert "--opus-dred-impl" in pytester.runpytest_subprocess("--help").stdout.str()


def test_plugin_runs_the_suite_on_the_reference(pytester):
    n = len(list(SUBSET.glob("*/meta.json")))
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--opus-dred-impl", "reference",
                                      "--opus-dred-suite", str(SUBSET), "-v")
    r.assert_outcomes(passed=n)
    assert n >= 10 and "opus-dred[reference][libopus-1.6.1/packet/writer_edges/" in r.stdout.str()


def test_plugin_names_the_field_a_wrong_adapter_gets_wrong(pytester):
    adapter = pytester.makefile(".py", wrong_adapter=WRONG_ADAPTER)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--opus-dred-impl",
                                      f"external:{sys.executable} {adapter}", "--opus-dred-suite", str(SUBSET),
                                      "--opus-dred-timeout", "10", "-k", "code0 or code3")
    out = r.stdout.str()
    assert r.ret == 1 and "passed" not in out.splitlines()[-1]
    assert "first difference: packet.nb_frames" in out
    assert "expected 1, got 2" in out


def test_plugin_failure_text_gives_the_dred_compare_figures():
    from opus_dred.conformance import Outcome

    o = Outcome(impl="external:x", case="libopus-1.6.1/dred_features/s/c", profile="libopus-1.6.1",
                handler="dred_features", suite="s", name="c", status="fail", field="features", offset=3,
                detail="features at offset 3: expected within dred_compare thresholds 0.5 0.15 0.02, got total 0.9",
                metric={"total": 0.9, "max": 0.4, "pitch": 0.01, "thresholds": [0.5, 0.15, 0.02], "bit_exact": False})
    text = describe(o)
    assert "first difference: features at offset 3" in text
    assert "dred_compare: total 0.9, max 0.4, pitch 0.01 (thresholds 0.5 0.15 0.02), bit_exact False" in text


# -- the C adapter over libopus' public API (oracle: built against each libopus build) ----------------

C_ADAPTER = ROOT / "docs" / "examples" / "c_adapter" / "adapter.c"
C_HANDLERS = {"packet", "dred_features", "invalid"}


def _build_c_adapter(build_name: str, out: Path, *, struct: bool) -> Path:
    """Compile the example as its README says: the public header and the static library; with ``struct``, also
    the build's internal headers, to read ``struct OpusDRED``."""
    from opus_dred.libopus import get_build

    b = get_build(build_name)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    flags = [f"-I{Path(b.source_dir) / 'include'}"]
    if struct:
        flags = ["-DREAD_OPUSDRED_STRUCT", "-DHAVE_CONFIG_H", "-w", *(f"-I{d}" for d in [b.source_dir, *b.include_dirs])]
    exe = out / f"adapter-{build_name}{'-struct' if struct else ''}"
    subprocess.run([cc, "-O2", "-std=gnu99", *flags, str(C_ADAPTER), str(b.static_lib), "-lm", "-o", str(exe)],
                   check=True, capture_output=True, timeout=120)
    return exe


@pytest.mark.oracle
@pytest.mark.parametrize("struct", [False, True], ids=["public", "struct"])
@pytest.mark.parametrize("build", ["libopus-1.5.2", "libopus-1.6.1"])
def test_c_adapter_passes_what_it_implements(tmp_path, build, struct):
    exe = _build_c_adapter(build, tmp_path, struct=struct)
    r = subprocess.run([sys.executable, "-m", "opus_dred.cli", "conform", "--impl", f"external:{exe}", "--profile",
                        build, "--json", "--timeout", "10"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    outcomes = json.loads(r.stdout)["implementations"][0]["outcomes"]
    by = {}
    for o in outcomes:
        by.setdefault(o["handler"], []).append(o)
    for handler, os_ in by.items():
        statuses = {o["status"] for o in os_}
        if handler in C_HANDLERS:
            assert statuses <= {"pass", "skip"} and "pass" in statuses, (handler, statuses)
        else:
            assert statuses == {"skip"}, (handler, statuses)
    features = [o for o in by["dred_features"] if o["metric"]]
    if struct:  # the features themselves are compared, within dred_compare's thresholds
        assert len(features) > 50 and all(o["metric"]["passed"] for o in features)
    else:  # OpusDRED is opaque to the public API: features are not reported, found/ret/dred_end are compared
        assert not features and all("features" in o["partial"] for o in by["dred_features"] if o["status"] == "pass"
                                    and o["partial"])
