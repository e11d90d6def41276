"""Fuzz campaigns on Ray (conformance/_campaign.py, ``opus-dred fuzz --ray``) on a real local cluster:
``ray start --head`` on loopback with two CPUs, started once for the file and stopped at the end.

A campaign through Ray must give exactly the report of the same campaign on one machine
(``run_campaign``: same counts, same disagreements), a worker killed mid-shard must cost nothing but the
shard's rerun, and a driver killed mid-campaign and started again must finish it without losing or
counting twice a shard. Disagreements found must be written with their reproducer as they are found."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is the optional [scale] extra (pip install 'opus-dred[scale]')")

from opus_dred.conformance import _campaign as cp  # noqa: E402
from opus_dred.conformance._fuzz import run_campaign  # noqa: E402

pytestmark = pytest.mark.oracle

PROFILE = "libopus-1.6.1"
SEED = 5
CASES = 1800
SHARD = 300
RAY = Path(sys.executable).with_name("ray")
CLI = Path(sys.executable).with_name("opus-dred")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """The address of a head node on loopback (two CPUs, no dashboard); the test process is connected."""
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
           "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=120)
    address = f"127.0.0.1:{port}"
    try:
        assert cp.connect(address) == 2
        yield address
    finally:
        ray.shutdown()
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def reference():
    """The same campaign on one machine, one process."""
    return run_campaign(PROFILE, CASES, seed=SEED, jobs=1, keep=20).to_json()


def _same(report, ref: dict) -> None:
    """``report`` (a FuzzReport or its JSON) is ``ref`` apart from timings."""
    got = json.loads(json.dumps(report if isinstance(report, dict) else report.to_json(), default=str))
    ref = json.loads(json.dumps(ref, default=str))
    for timing in ("seconds", "jobs", "cpu_seconds", "cases_per_s", "cases_per_cpu_s"):
        got.pop(timing), ref.pop(timing)
    assert got == ref


def _shard_files(campaign: Path) -> list[Path]:
    return sorted((campaign / "shards" / PROFILE).glob("*.json"))


def test_no_cluster_at_the_address_is_a_clear_error(tmp_path):
    """Runs before the cluster fixture connects this process: a closed port fails at once, exit status 2."""
    from typer.testing import CliRunner

    from opus_dred.cli import app

    assert not ray.is_initialized()
    t0 = time.monotonic()
    r = CliRunner().invoke(app, ["fuzz", "-n", "10", "--ray", f"127.0.0.1:{_free_port()}", "--campaign", str(tmp_path)])
    assert r.exit_code == 2 and "no Ray cluster answers" in r.output, r.output
    assert time.monotonic() - t0 < 30


def test_shards_are_fixed_by_the_parameters():
    assert cp.shard_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert cp.shard_ranges(8, 4) == [(0, 4), (4, 8)]
    with pytest.raises(ValueError):
        cp.shard_ranges(0, 4)


def test_shards_merge_to_the_single_machine_report_with_disagreements(monkeypatch, tmp_path):
    """A packet reader that drops a byte of padding disagrees with libopus: shards run in any order merge to
    run_campaign's report (counts and the first disagreements by index), and every disagreement has its
    reproducer file, written before the shard returns."""
    import opus_dred.conformance._fuzz as fz
    from opus_dred.bitstream._packet import parse_packet as real

    def wrong(data, **kw):
        p = real(data, **kw)
        p.padding = p.padding[:-1]
        return p

    monkeypatch.setattr(fz, "parse_packet", wrong)
    n, keep = 600, 5
    ref = run_campaign(PROFILE, n, seed=SEED, jobs=1, keep=keep)
    assert ref.disagreement_count > keep
    written: list[int] = []
    real_write = cp.write_finding
    monkeypatch.setattr(cp, "write_finding", lambda *a: written.append(a[-1].index) or real_write(*a))
    parts = [cp.fuzz_shard(PROFILE, PROFILE, SEED, a, b, keep, str(tmp_path)) for a, b in cp.shard_ranges(n, 170)[::-1]]
    _same(cp.merge(PROFILE, PROFILE, SEED, n, parts, keep=keep, seconds=1.0, jobs=1), ref.to_json())
    files = sorted((tmp_path / "findings" / PROFILE).glob("*.json"))
    assert len(files) == len(written) == ref.disagreement_count + ref.unexpected_count
    first = json.loads(files[0].read_text())
    d = ref.disagreements[0]
    assert (first["seed"], first["index"], first["input_hex"], first["stage"]) == (d.seed, d.index, d.input_hex, d.stage)
    kind, data, _ = fz.Fuzzer(PROFILE).case(first["seed"], first["index"])
    assert data.hex() == first["input_hex"]
    with pytest.raises(cp.CampaignError):  # a shard missing is never merged as done
        cp.merge(PROFILE, PROFILE, SEED, n, parts[1:], keep=keep, seconds=1.0, jobs=1)


def test_ray_campaign_equals_single_machine(cluster, reference, tmp_path):
    seen: list[int] = []
    (r,) = cp.run_ray_campaign([PROFILE], CASES, address=cluster, campaign=tmp_path, seed=SEED, shard=SHARD,
                               progress=lambda done, total: seen.append(done))
    _same(r, reference)
    assert seen[0] == 0 and seen[-1] == CASES and seen == sorted(seen)
    recs = [json.loads(f.read_text()) for f in _shard_files(tmp_path)]
    assert [(x["start"], x["stop"]) for x in recs] == cp.shard_ranges(CASES, SHARD)
    assert len({x["pid"] for x in recs}) == 2  # both workers took shards
    with pytest.raises(cp.CampaignError):  # the directory holds this campaign, not another
        cp.run_ray_campaign([PROFILE], CASES + 1, address=cluster, campaign=tmp_path, seed=SEED, shard=SHARD)


def test_worker_killed_mid_shard(cluster, reference, tmp_path):
    """The worker running the shard of case 1000 dies there (os._exit): Ray reruns that shard on another
    worker; the report is the single-machine one, each shard recorded once."""
    marker = tmp_path / "crashed"
    (r,) = cp.run_ray_campaign([PROFILE], CASES, address=cluster, campaign=tmp_path / "c", seed=SEED, shard=SHARD,
                               crash={"index": 1000, "marker": str(marker)})
    assert marker.exists()
    _same(r, reference)
    recs = [json.loads(f.read_text()) for f in _shard_files(tmp_path / "c")]
    assert [(x["start"], x["stop"]) for x in recs] == cp.shard_ranges(CASES, SHARD)
    assert sum(x["n"] for x in recs) == CASES


def test_driver_killed_and_restarted(cluster, reference, tmp_path):
    """``opus-dred fuzz --ray`` killed (SIGKILL) once some shards are recorded; the same command finishes the
    campaign, running only the shards not recorded (those recorded stay byte for byte), and prints the
    single-machine report."""
    camp = tmp_path / "c"
    cmd = [str(CLI), "fuzz", "-p", PROFILE, "-n", str(CASES), "--seed", str(SEED), "--ray", cluster,
           "--campaign", str(camp), "--shard", str(SHARD // 2), "--json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(_shard_files(camp)) < 3 and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        p.wait(timeout=30)
    before = {f.name: f.read_bytes() for f in _shard_files(camp)}
    total = len(cp.shard_ranges(CASES, SHARD // 2))
    assert 3 <= len(before) < total
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # the same command finishes it
    assert out.returncode == 0, out.stderr
    (again,) = json.loads(out.stdout)
    after = {f.name: f.read_bytes() for f in _shard_files(camp)}
    assert len(after) == total and all(after[k] == v for k, v in before.items())  # recorded shards not rerun
    _same(cp.merge(PROFILE, PROFILE, SEED, CASES, [json.loads(b) for b in after.values()], keep=20, seconds=1, jobs=1),
          reference)
    _same(again, reference)
    shutil.rmtree(camp)


def test_conform_on_ray_equals_run_suite(cluster):
    """``conform --ray``: two libopus builds × both profiles × three handlers as tasks give run_suite's report
    (every outcome, in suite order) apart from timings."""
    from opus_dred.conformance._adapters import make_adapter
    from opus_dred.conformance._runner import run_suite
    from opus_dred.vectors._format import iter_cases, suite_root

    impls = ["libopus-1.5.2", "libopus-1.6.1"]
    cases = [c for c in iter_cases(suite_root()) if c.handler in ("extensions", "range_coder", "invalid")]
    assert {c.profile for c in cases} == {"libopus-1.5.2", "libopus-1.6.1"}
    tasks = cp.conform_tasks(impls, cases)
    assert len(tasks) > 4 and sorted(i for _, idx in tasks for i in idx) == sorted(list(range(len(cases))) * 2)
    ref = run_suite([make_adapter(i) for i in impls], cases, suite="s")
    seen = []
    got = cp.run_suite_on_ray(impls, cases, address=cluster, suite="s", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (2 * len(cases), 2 * len(cases))

    def strip(rep):
        j = rep.to_json()
        j.pop("created")
        for impl in j["implementations"]:
            impl.pop("seconds")
            for o in impl["outcomes"]:
                o.pop("seconds")
        return j

    a, b = strip(got), strip(ref)
    assert a == b
    assert sum(o["status"] == "pass" for i in a["implementations"] for o in i["outcomes"]) > len(cases) // 2
