"""Fuzz campaigns across a Ray cluster, with a campaign directory that survives faults (``opus-dred fuzz --ray``).

The cases of a campaign (indices ``0..cases-1`` of a seed, for each profile) are cut into *shards* of
``shard`` consecutive indices; shard ``k`` of profile ``p`` is always cases ``k*shard .. (k+1)*shard-1``, so
the cutting depends only on the campaign's parameters, never on the cluster. Each shard is one Ray task
(:func:`opus_dred.conformance._fuzz.run_shard` on a :class:`~opus_dred.conformance._fuzz.Fuzzer` kept per
worker process). The shard results are merged in shard order into the
:class:`~opus_dred.conformance._fuzz.FuzzReport` that :func:`~opus_dred.conformance._fuzz.run_campaign` gives
for the same seed and cases (same counts, the same first ``keep`` disagreements by case index).

The campaign directory::

    campaign.json                      parameters (a restart with other parameters is refused)
    shards/<profile>/<start>-<stop>.json   one shard's result, written (atomically) once it is complete
    findings/<profile>/<seed>-<index>.json a disagreement's reproducer: seed, case index, case bytes, params

A disagreement is written to ``findings/`` by the worker that found it, as soon as it is found and before
the case is counted (on a cluster without a shared file system the driver writes it again from the shard's
result). A shard is counted only from its file, and only once: a worker killed mid-shard loses that shard's
partial work, which Ray runs again (``max_retries``); a driver killed mid-campaign and restarted with the same
directory runs only the shards that have no file yet.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

from opus_dred import __version__
from opus_dred.conformance._fuzz import Disagreement, Fuzzer, FuzzReport, default_build, run_shard

MANIFEST = "campaign.json"
#: cases per shard (a shard is the unit of work and of checkpointing)
DEFAULT_SHARD = 5000
_RETRIES = 3


class CampaignError(RuntimeError):
    """A campaign directory that does not fit the parameters, or shards that failed after their retries."""


# ---------------------------------------------------------------------------------------------------
# the campaign directory


def _write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` to ``path`` atomically (a temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def shard_ranges(cases: int, shard: int) -> list[tuple[int, int]]:
    """The case ranges ``[start, stop)`` of a campaign of ``cases`` cases cut into shards of ``shard``."""
    if cases < 1 or shard < 1:
        raise ValueError("cases and shard must be positive")
    return [(s, min(cases, s + shard)) for s in range(0, cases, shard)]


def shard_path(campaign: Path, profile: str, start: int, stop: int) -> Path:
    return Path(campaign) / "shards" / profile / f"{start:012d}-{stop:012d}.json"


def finding_path(campaign: Path, profile: str, seed: int, index: int) -> Path:
    return Path(campaign) / "findings" / profile / f"{seed}-{index:012d}.json"


def write_finding(campaign: Path, profile: str, build: str, d: Disagreement) -> Path:
    """Write a disagreement's reproducer (seed, case index, case bytes in hex, params) and return its path."""
    path = finding_path(campaign, profile, d.seed, d.index)
    rec = {"profile": profile, "build": build, **asdict(d),
           "replay": f"opus-dred fuzz --profile {profile} --build {build} --seed {d.seed} --case {d.index}"}
    _write_json(path, json.loads(json.dumps(rec, default=str)))
    return path


def open_campaign(campaign: Path, params: dict) -> dict:
    """Create the campaign directory with ``params`` or check that an existing one has the same parameters."""
    campaign = Path(campaign)
    m = campaign / MANIFEST
    if m.exists():
        have = json.loads(m.read_text())
        if have != params:
            diff = {k: (have.get(k), params.get(k)) for k in set(have) | set(params) if have.get(k) != params.get(k)}
            raise CampaignError(f"{campaign} holds another campaign (recorded vs asked: {diff})")
        return have
    campaign.mkdir(parents=True, exist_ok=True)
    _write_json(m, params)
    return params


def done_shards(campaign: Path, profile: str) -> dict[tuple[int, int], dict]:
    """The shard results recorded in the campaign directory for ``profile``, by case range."""
    out: dict[tuple[int, int], dict] = {}
    d = Path(campaign) / "shards" / profile
    if d.is_dir():
        for f in d.glob("*.json"):
            rec = json.loads(f.read_text())
            out[(rec["start"], rec["stop"])] = rec
    return out


def merge(profile: str, build: str, seed: int, cases: int, parts: Sequence[dict], *, keep: int, seconds: float,
          jobs: int) -> FuzzReport:
    """Merge shard results (any order) into one report, as :func:`~opus_dred.conformance._fuzz.run_campaign`
    merges its chunks: counts summed, the first ``keep`` disagreements and exceptions by case index."""
    covered = sum(p["n"] for p in parts)
    if covered != cases:
        raise CampaignError(f"{profile}: the shards cover {covered} cases of {cases}")
    by_kind: dict[str, int] = {}
    by_stage: dict[str, int] = {}
    dis: list[Disagreement] = []
    une: list[Disagreement] = []
    nd = nu = 0
    cpu = 0.0
    for p in sorted(parts, key=lambda p: p["start"]):
        for k, v in p["by_kind"].items():
            by_kind[k] = by_kind.get(k, 0) + v
        for k, v in p["by_stage"].items():
            by_stage[k] = by_stage.get(k, 0) + v
        dis.extend(Disagreement(**d) for d in p["dis"])
        une.extend(Disagreement(**d) for d in p["une"])
        nd += p["nd"]
        nu += p["nu"]
        cpu += p["cpu"]
    dis.sort(key=lambda d: d.index)
    une.sort(key=lambda d: d.index)
    return FuzzReport(profile, build, seed, cases, seconds, jobs, by_kind, by_stage, dis[:keep], une[:keep], nd, nu, cpu)


# ---------------------------------------------------------------------------------------------------
# the work on a worker

_FUZZERS: dict[tuple[str, str], Fuzzer] = {}


def fuzz_shard(profile: str, build: str, seed: int, start: int, stop: int, keep: int, campaign: str | None,
               crash: dict | None = None) -> dict:
    """One shard on this process (a Ray worker, or the driver): its result as recorded in ``shards/``.

    Each disagreement is written to ``findings/`` (when ``campaign`` is reachable from here) as soon as it
    is found. ``crash`` is a test hook: ``{"index": i, "marker": path}`` ends this process with
    ``os._exit`` on reaching case ``i`` unless ``marker`` exists (it is created first), as a worker that
    dies mid-shard does once."""
    key = (profile, build)
    f = _FUZZERS.get(key)
    if f is None:
        f = _FUZZERS[key] = Fuzzer(profile, build)
    if crash is not None and start <= crash["index"] < stop and not os.path.exists(crash["marker"]):
        if start < crash["index"]:
            run_shard(f, seed, start, crash["index"], keep)  # partial work that the crash loses
        Path(crash["marker"]).touch()
        os._exit(17)
    root = Path(campaign) if campaign is not None and os.path.isdir(campaign) else None

    def found(d: Disagreement) -> None:
        if root is not None:
            write_finding(root, profile, build, d)

    part = run_shard(f, seed, start, stop, keep, on_disagreement=found)
    part["dis"] = [asdict(d) for d in part["dis"]]
    part["une"] = [asdict(d) for d in part["une"]]
    part.update(profile=profile, build=build, seed=seed, start=start, stop=stop, host=os.uname().nodename,
                pid=os.getpid())
    return json.loads(json.dumps(part, default=str))


# ---------------------------------------------------------------------------------------------------
# the driver


def connect(address: str) -> int:
    """Connect to the Ray cluster at ``address`` (``host:port`` or ``auto``); return its number of CPUs."""
    import logging

    import ray  # lazy: Ray is the optional [scale] extra, only campaigns on a cluster need it

    if not ray.is_initialized():
        host, sep, port = address.rpartition(":")
        if sep and port.isdigit():  # a host:port that does not answer fails now, not after Ray's long retries
            try:
                socket.create_connection((host, int(port)), timeout=5).close()
            except OSError as exc:
                raise ConnectionError(f"no Ray cluster answers at {address}: {exc}") from None
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
    return int(ray.cluster_resources().get("CPU", 0))


def run_ray_campaign(
    profiles: Sequence[str],
    cases: int,
    *,
    address: str = "auto",
    campaign: str | Path,
    seed: int = 0,
    build: str | None = None,
    shard: int = DEFAULT_SHARD,
    keep: int = 20,
    progress: Callable[[int, int], None] | None = None,
    crash: dict | None = None,
) -> list[FuzzReport]:
    """Run (or finish) a campaign of ``cases`` cases of ``seed`` per profile on the Ray cluster at ``address``,
    checkpointed in ``campaign``; return one report per profile, equal (apart from timings and ``jobs``) to
    :func:`~opus_dred.conformance._fuzz.run_campaign` on the same profile, seed and cases.

    ``progress(done, total)`` is called with the cases done over all profiles (those already recorded
    included) after each shard. Raises :class:`CampaignError` if shards still fail after Ray's retries (the
    others are recorded: running it again finishes the campaign)."""
    import ray  # lazy: Ray is the optional [scale] extra, only campaigns on a cluster need it

    campaign = Path(campaign).resolve()
    builds = {p: (build or default_build(p)) for p in profiles}
    params = {"kind": "fuzz", "profiles": list(profiles), "builds": builds, "seed": seed, "cases": cases,
              "shard": shard}
    open_campaign(campaign, params)
    workers = connect(address)
    t0 = time.perf_counter()
    task = ray.remote(num_cpus=1, max_retries=_RETRIES, retry_exceptions=False)(fuzz_shard)
    total = cases * len(profiles)
    done = {p: done_shards(campaign, p) for p in profiles}
    ndone = sum(r["n"] for d in done.values() for r in d.values())
    if progress:
        progress(ndone, total)
    pending: dict = {}
    for p in profiles:
        for start, stop in shard_ranges(cases, shard):
            if (start, stop) not in done[p]:
                ref = task.remote(p, builds[p], seed, start, stop, keep, str(campaign), crash)
                pending[ref] = (p, start, stop)
    failed: list[str] = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            p, start, stop = pending.pop(ref)
            try:
                rec = ray.get(ref)
            except (ray.exceptions.RayError, OSError) as exc:  # retries spent: the shard stays to do
                failed.append(f"{p} {start}-{stop}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            for d in rec["dis"] + rec["une"]:  # again from the driver: a cluster may not share the directory
                write_finding(campaign, p, builds[p], Disagreement(**d))
            _write_json(shard_path(campaign, p, start, stop), rec)
            done[p][(start, stop)] = rec
            ndone += rec["n"]
            if progress:
                progress(ndone, total)
    if failed:
        raise CampaignError(f"{len(failed)} shards failed after {_RETRIES} retries (run again to finish): "
                            + "; ".join(failed[:5]))
    seconds = time.perf_counter() - t0
    return [merge(p, builds[p], seed, cases, list(done[p].values()), keep=keep, seconds=seconds, jobs=workers)
            for p in profiles]


# ---------------------------------------------------------------------------------------------------
# conformance runs (``opus-dred conform --ray``)

#: cases of one (implementation, profile, handler) group run by one task at most
CONFORM_CHUNK = 40


def conform_group(impl: str, cases: list, strict: bool, timeout: float, limits: dict) -> tuple[str, str, list]:
    """Run ``cases`` through a fresh adapter of ``impl`` on this process: (adapter name, description, outcomes)."""
    from opus_dred.conformance._adapters import make_adapter  # lazy: adapters load builds and JAX when made
    from opus_dred.conformance._runner import run_case  # lazy: only a conformance task needs the runner

    a = make_adapter(impl, timeout=timeout, **limits)
    try:
        return a.name, getattr(a, "description", ""), [run_case(a, c, strict=strict) for c in cases]
    finally:
        close = getattr(a, "close", None)
        if close:
            close()


def conform_tasks(impls: Sequence[str], cases: Sequence) -> list[tuple[str, list[int]]]:
    """The tasks of a conformance run: for each implementation, the case indices of each (profile, handler)
    group in suite order, cut into pieces of at most :data:`CONFORM_CHUNK`. Fixed by the suite alone."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault((c.profile, c.handler), []).append(i)
    out = []
    for impl in impls:
        for idx in groups.values():
            for s in range(0, len(idx), CONFORM_CHUNK):
                out.append((impl, idx[s:s + CONFORM_CHUNK]))
    return out


def run_suite_on_ray(impls: Sequence[str], cases: Sequence, *, address: str = "auto", suite: str = "",
                     strict: bool = False, timeout: float = 20.0, progress: Callable[[int, int], None] | None = None,
                     **limits) -> "RunReport":
    """:func:`~opus_dred.conformance._runner.run_suite` with implementations × profiles × handlers as Ray tasks:
    the same report (outcomes in suite order per implementation) apart from timings and ``created``."""
    import datetime

    import ray  # lazy: Ray is the optional [scale] extra, only runs on a cluster need it

    from opus_dred.conformance._runner import ImplRun, RunReport  # lazy: only a conformance run needs the runner

    cases = list(cases)
    connect(address)
    task = ray.remote(num_cpus=1, max_retries=_RETRIES, retry_exceptions=False)(conform_group)
    pending = {}
    for impl, idx in conform_tasks(impls, cases):
        ref = task.remote(impl, [cases[i] for i in idx], strict, timeout, limits)
        pending[ref] = (impl, idx)
    outcomes: dict[str, list] = {impl: [None] * len(cases) for impl in impls}
    names: dict[str, tuple[str, str]] = {}
    total, done = len(impls) * len(cases), 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            impl, idx = pending.pop(ref)
            name, desc, outs = ray.get(ref)
            names[impl] = (name, desc)
            for i, o in zip(idx, outs):
                outcomes[impl][i] = o
            done += len(idx)
            if progress:
                progress(done, total)
    runs = []
    for impl in impls:
        name, desc = names.get(impl, (impl, ""))
        run = ImplRun(name, desc, outcomes[impl])
        run.seconds = sum(o.seconds for o in run.outcomes)
        runs.append(run)
    return RunReport(
        suite=suite, impls=runs, profiles=sorted({c.profile for c in cases}),
        handlers=sorted({c.handler for c in cases}), cases=len(cases), generator=f"opus-dred {__version__}",
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), strict=strict)
