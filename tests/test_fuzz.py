"""The differential fuzzing campaign (conformance/fuzz.py): a small budget per profile must agree with
libopus everywhere, the harness must notice a reader that disagrees, and cases replay from (seed, index).

The long campaign (1,000,000 cases per profile) is ``opus-dred fuzz``, run outside the suite
(docs/fuzzing.md)."""

from __future__ import annotations

import functools
import json

import pytest

PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]
BUDGET = 2000

pytestmark = pytest.mark.oracle


@functools.cache
def _fuzzer(name):
    from opus_dred.conformance._fuzz import Fuzzer

    return Fuzzer(name)


@pytest.mark.parametrize("name", PROFILES)
def test_small_campaign_agrees(name):
    f = _fuzzer(name)
    counts: dict[str, int] = {}
    bad = []
    for i in range(BUDGET):
        kind, stage, d = f.run_case(11, i)
        counts[stage] = counts.get(stage, 0) + 1
        if d is not None:
            bad.append(d)
    assert not bad, [(d.index, d.kind, d.stage, d.detail, d.input_hex) for d in bad[:5]]
    # every stage is reached, DRED payloads included
    for stage in ("packet", "dred", "payload", "rangecoder", "written"):
        assert counts.get(stage, 0) > 20, counts


def test_cases_are_deterministic():
    f = _fuzzer("libopus-1.6.1")
    for i in (0, 1, 77, 1999):
        k1, d1, p1 = f.case(3, i)
        k2, d2, p2 = f.case(3, i)
        assert (k1, d1) == (k2, d2)
    assert [f.case(3, i)[1] for i in range(20)] != [f.case(4, i)[1] for i in range(20)]


def test_harness_reports_a_wrong_reader(monkeypatch):
    """A packet reader that drops the padding must show up as disagreements, with the input in hex."""
    import opus_dred.conformance._fuzz as fz
    from opus_dred.bitstream._packet import parse_packet as real

    def wrong(data, **kw):
        p = real(data, **kw)
        p.padding = p.padding[:-1]
        return p

    monkeypatch.setattr(fz, "parse_packet", wrong)
    f = _fuzzer("libopus-1.6.1")
    found = []
    for i in range(300):
        _, _, d = f.run_case(11, i)
        if d is not None:
            found.append(d)
    assert found and all(d.stage in ("packet", "exception", "written") for d in found)
    d = found[0]
    assert bytes.fromhex(d.input_hex) == f.case(11, d.index)[1]


def test_harness_reports_a_foreign_exception(monkeypatch):
    import opus_dred.conformance._fuzz as fz

    def broken(*a, **kw):
        raise IndexError("boom")

    monkeypatch.setattr(fz, "read_dred_payload", broken)
    f = _fuzzer("libopus-1.5.2")
    f._read_cache.clear()
    stages = {f.run_case(11, i)[1] for i in range(200)}
    assert "exception" in stages
    f._read_cache.clear()


def _packet_error_at(monkeypatch, byte_offset, bit_offset=None):
    """Make the fuzzer's packet reader reject every packet, at ``byte_offset(data)`` (and ``bit_offset(data)``)."""
    import opus_dred.conformance._fuzz as fz
    from opus_dred.bitstream._errors import PacketError

    def rejects(data, **kw):
        raise PacketError("deliberately misplaced", byte_offset=byte_offset(data),
                          bit_offset=None if bit_offset is None else bit_offset(data))

    monkeypatch.setattr(fz, "parse_packet", rejects)


def test_campaign_catches_an_error_offset_past_the_input(monkeypatch):
    """A reader whose typed error points past the end of its input: every packet case of a tiny campaign is an
    ``error-offset-outside-input`` disagreement, the detail says where and how long the input was."""
    from opus_dred.conformance._fuzz import run_campaign

    _packet_error_at(monkeypatch, lambda data: len(data) + 3)
    r = run_campaign("libopus-1.6.1", 40, seed=2, jobs=1, chunk=20, keep=40)
    packet_cases = sum(r.by_kind.get(k, 0) for k in ("random", "mutated", "written"))
    assert packet_cases > 0 and r.unexpected_count == 0
    assert r.disagreement_count == packet_cases == r.by_stage["error-offset-outside-input"]
    d = r.disagreements[0]
    n = len(bytes.fromhex(d.input_hex))
    assert d.stage == "error-offset-outside-input" and f"byte {n + 3} of a {n}-byte input" in d.detail


def test_harness_catches_a_bit_offset_past_the_input(monkeypatch):
    """The bit offset is held to the input too, and the end itself (where a truncated input fails) is inside:
    there the case goes on to the comparison with libopus."""
    f = _fuzzer("libopus-1.6.1")
    i = next(i for i in range(100) if f.case(11, i)[0] == "mutated")
    _packet_error_at(monkeypatch, lambda data: len(data), lambda data: 8 * len(data) + 1)
    _, stage, d = f.run_case(11, i)
    assert stage == "error-offset-outside-input" and "bit" in d.detail
    _packet_error_at(monkeypatch, lambda data: len(data))
    _, stage, d = f.run_case(11, i)
    assert stage == "packet" and "ours rejects" in d.detail  # libopus accepts the (real, mutated) packet


def test_campaign_and_cli_replay():
    import typer
    from typer.testing import CliRunner

    from opus_dred.conformance._fuzz import run_campaign
    from opus_dred.cli._fuzz import register

    r = run_campaign("libopus-1.6.1", 300, seed=2, jobs=1, chunk=100)
    assert r.cases == 300 and sum(r.by_kind.values()) == 300
    assert r.disagreement_count == 0 and r.unexpected_count == 0 and r.cases_per_s > 0
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    out = CliRunner().invoke(app, ["fuzz", "--profile", "libopus-1.6.1", "--seed", "2", "--case", "5"])
    assert out.exit_code == 0, out.output
    j = json.loads(out.output)
    assert j["case"] == 5 and j["disagreement"] is None and isinstance(j["input_hex"], str)
