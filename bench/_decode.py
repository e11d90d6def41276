"""Decode-speed benchmark: libopus' ``opus_dred_parse`` (with processing) against our reference.

One run measures, on the same stream of DRED-carrying packets:

* **libopus**: ``opus_dred_parse(..., defer_processing=0)`` of the oracle build in a tight loop (one
  ``OpusDRED`` reused, the shim's ctypes entry point called directly; the per-call ctypes overhead,
  about 1 µs, is included and small next to the 50-80 µs a packet costs).
* **ours**: :func:`opus_dred.accel._decode.decode_packets`: per batch, locating the DRED payloads
  (:func:`opus_dred.accel._bitstream.locate_dred_payloads`), batched entropy decoding
  (:func:`opus_dred.accel._reader.read_dred_payloads_jax`, one XLA computation) and the batched decoder
  (:func:`opus_dred.accel._decode.decode_batch`, scanning the longest packet's latents), with batches
  spread over worker threads (default two per core; libopus runs on one core), warm: compiled on a first
  pass, then timed (wall time of the whole stream). Every batch has the same size (the last one padded
  with empty payloads) so that shapes repeat. ``pipeline="numpy"`` is a serial loop with
  numpy's :func:`opus_dred.accel._bitstream.read_dred_payloads`. The command (``opus-dred bench decode``)
  also has XLA compile small ``while`` loops natively in its own process (:func:`hoist_small_loops`).

It reports packets/s of each, their ratio, peak memory, and the DRED compliance metric
(:func:`opus_dred.conformance._metric.compare_features`) of our features against libopus' on every
packet. The stream (real speech from the corpus, looped, encoded once by the oracle) is cached under
``cache_dir()/bench/``, keyed by its parameters and the build.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import os
import resource
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opus_dred.accel._bitstream import locate_dred_payloads, read_dred_payloads
from opus_dred.bitstream._arith import min_feature_frames_for
from opus_dred.bitstream._extensions import find_dred_extension
from opus_dred.bitstream._profiles import get_profile
from opus_dred.conformance._metric import compare_features
from opus_dred.libopus._builds import cache_dir
from opus_dred.libopus._oracle import DredParse, Oracle
from opus_dred.models._pack import load_pack
from opus_dred.speech._corpus import load_clip

#: XLA's CPU backend option that compiles a ``while`` loop holding no matrix product as one native loop
#: (``xla_cpu_small_while_loop_byte_threshold``, a backend extra option; its default hoists only loops touching
#: under 1 KiB). The batched entropy decoder is ~200 symbol steps of a dozen tiny kernels each, which the
#: default runtime dispatches one by one: hoisted, it runs 11.7 -> 7.4 us per packet on one core
#: (docs/benchmarks.md).
HOIST_LOOPS_FLAG = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000"


def hoist_small_loops() -> bool:
    """Add :data:`HOIST_LOOPS_FLAG` to ``XLA_FLAGS`` for this process, before JAX starts its backend.

    Only the benchmark's process does this (``opus-dred bench decode``): it is a compilation strategy, and
    for the decoder it is not neutral. The int8 emulation relies on XLA contracting ``a*b + c`` into an FMA
    where libopus fuses (docs/numerics.md), and a hoisted loop is compiled by another emitter that contracts
    differently: ``jax.jit(rdovae.decode_features)`` of one packet (whose scan holds only matrix-vector
    products, which XLA rewrites as reductions, so it qualifies) then differs from libopus by 1 ulp here
    and there. The batched decoder's scan holds real matrix products and is never hoisted; the benchmark
    checks its features against libopus' bit for bit on every packet. Returns whether the flag is in force
    (False when JAX is already running or ``XLA_FLAGS`` already sets backend options).
    """
    import sys

    flags = os.environ.get("XLA_FLAGS", "")
    if HOIST_LOOPS_FLAG in flags.split():
        return True
    if "xla_backend_extra_options" in flags or "jax" in sys.modules:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {HOIST_LOOPS_FLAG}".strip()
    return True


NUMERICS_CHOICES = ("avx2", "float")
PIPELINE_CHOICES = ("jax", "numpy")


@dataclass(frozen=True)
class StreamSpec:
    """What to encode: ``packets`` 20 ms packets of looped corpus speech at ``fs``."""

    profile: str = "libopus-1.6.1"
    packets: int = 3000
    fs: int = 16000
    bitrate: int = 32000
    loss_perc: int = 20
    dred_duration: int = 100
    complexity: int = 10
    clip: str | None = None

    def key(self, build_id: str) -> str:
        raw = json.dumps({**asdict(self), "build": build_id}, sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


def _build_id(oracle) -> str:
    b = oracle.build
    return f"{b.name}:{getattr(b, 'sha256', '') or ''}:{oracle.info().version_string}"


def _write_packets(path: Path, packets: list[bytes]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for p in packets:
            f.write(struct.pack("<H", len(p)))
            f.write(p)
    tmp.replace(path)


def _read_packets(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<H", data, pos)
        out.append(data[pos + 2: pos + 2 + n])
        pos += 2 + n
    return out


def build_stream(spec: StreamSpec, oracle=None, *, refresh: bool = False) -> list[bytes]:
    """``spec.packets`` packets that carry DRED (packets without it are dropped), cached on disk."""

    oracle = oracle or Oracle.for_build(spec.profile)
    d = cache_dir() / "bench"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"stream-{spec.key(_build_id(oracle))}.bin"
    if path.exists() and not refresh:
        return _read_packets(path)
    pcm = np.asarray(load_clip(spec.clip, rate=spec.fs))
    frame = spec.fs // 50
    need = int(spec.packets * 1.15 + 50) * frame  # some packets (silence, the first) carry no DRED
    reps = -(-need // len(pcm))
    pcm = np.tile(pcm, reps)[:need]

    enc = oracle.encode(pcm, fs=spec.fs, bitrate=spec.bitrate, frame_ms=20, complexity=spec.complexity,
                        loss_perc=spec.loss_perc, dred_duration=spec.dred_duration)
    packets = [e.data for e in enc if find_dred_extension(e.data, spec.profile) is not None]
    if len(packets) < spec.packets:
        raise RuntimeError(f"only {len(packets)} DRED packets from {len(enc)} encoded")
    packets = packets[: spec.packets]
    _write_packets(path, packets)
    return packets


@dataclass
class DecodeBench:
    """Figures of one ``bench decode`` run (times in seconds; rates in packets/s)."""

    profile: str
    build: str
    numerics: str
    packets: int
    latents: int
    batch: int
    repeats: int
    libopus_s: float
    ours_s: float
    ours_parse_s: float
    ours_entropy_s: float
    ours_network_s: float
    compile_s: float
    libopus_pps: float
    ours_pps: float
    ratio: float
    maxrss_mib: float
    tracemalloc_peak_mib: float
    metric: dict = field(default_factory=dict)
    bit_exact_packets: int = 0
    nb_latents_agree: bool = True
    device: str = ""
    pipeline: str = "jax"
    #: threads decoding batches at once (``fast.decode_packets``; 1 for the numpy pipeline) and the cores this
    #: process may use; libopus runs on one of them
    workers: int = 1
    cores: int = 1
    #: whether :data:`HOIST_LOOPS_FLAG` was in force (``XLA_FLAGS``)
    hoisted_loops: bool = False
    #: 1-minute load average before and after the run (``os.getloadavg``): the machine is shared, and
    #: XLA's threads suffer from other work more than libopus' single thread does
    load_avg: tuple = ()

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Stream:
    """The benchmark's input: the packets, their profile, and the decoding bounds both decoders get."""

    packets: list
    profile: Any
    fs: int
    max_samples: int  # 1 s: every latent a packet holds (26 at most)
    min_feature_frames: int  # the same bound, as libopus derives it from max_samples
    width: int  # bytes per payload buffer: the longest packet's, rounded up to 64 (one compiled shape)


def _prepare_stream(spec: StreamSpec, oracle) -> _Stream:
    """The stream of :func:`build_stream` and the bounds its packets are decoded with."""
    prof = get_profile(spec.profile)
    packets = build_stream(spec, oracle)
    max_samples = spec.fs
    return _Stream(packets=packets, profile=prof, fs=spec.fs, max_samples=max_samples,
                   min_feature_frames=min_feature_frames_for(max_samples, spec.fs, prof.max_latents),
                   width=64 * -(-(max(len(p) for p in packets) + 1) // 64))


def _libopus_features(oracle, stream: _Stream) -> tuple[list, list]:
    """libopus' features and ``nb_latents`` of every packet (``opus_dred_parse``, not timed): what ours are
    checked against."""
    feats, nbs = [], []
    for p in stream.packets:
        d = oracle.dred_parse(p, max_dred_samples=stream.max_samples, sampling_rate=stream.fs)
        nbs.append(d.nb_latents)
        feats.append(d.features if d.features is not None else np.zeros((0, 20), np.float32))
        d.close()
    return feats, nbs


def _time_libopus(oracle, packets: list[bytes], fs: int, max_samples: int, repeats: int) -> float:
    """Seconds of libopus' best pass of ``opus_dred_parse`` (with processing) over the packets."""
    lib = oracle._lib
    dred = DredParse(oracle)
    end = ctypes.c_int(0)
    bufs = [bytes(p) for p in packets]
    lens = [len(p) for p in packets]
    fn, dec, ptr, endp = lib.opus_dred_parse, oracle._dred_dec, dred.ptr, ctypes.byref(end)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for b, n in zip(bufs, lens):
            fn(dec, ptr, b, n, max_samples, fs, endp, 0)
        best = min(best, time.perf_counter() - t)
    dred.close()
    return best


@dataclass
class _Pass:
    """One pass of our decoder over the stream: seconds per stage (summed over the workers), wall seconds,
    each packet's features (when collected) and ``nb_latents``, and the batch and workers it ran with."""

    parse_s: float
    entropy_s: float
    network_s: float
    wall_s: float
    features: list | None
    nb_latents: list
    batch: int
    workers: int


def _jax_pass(stream: _Stream, num, batch: int, workers: int | None, collect: bool) -> _Pass:
    """:func:`opus_dred.accel._decode.decode_packets` over the stream (its batches evened out over its workers)."""
    from opus_dred.accel import _decode as fast  # lazy: loads JAX

    r = fast.decode_packets(stream.packets, stream.profile, num, batch=batch, workers=workers,
                            min_feature_frames=stream.min_feature_frames, width=stream.width)
    st = r.stage_s
    return _Pass(st["locate"], st["entropy"], st["decoder"], r.wall_s, r.features if collect else None,
                 r.nb_latents.tolist(), r.batch, r.workers)


def _numpy_pass(stream: _Stream, fp, num, batch: int, collect: bool) -> _Pass:
    """One batch at a time on one thread: the numpy reader, then the batched decoder."""
    from opus_dred.accel import _decode as fast  # lazy: loads JAX

    t_parse = t_ent = t_net = 0.0
    feats = [] if collect else None
    nbs = []
    for s in range(0, len(stream.packets), batch):
        chunk = stream.packets[s:s + batch]
        pad = batch - len(chunk)  # keep one compiled shape
        t0 = time.perf_counter()
        loc = locate_dred_payloads(chunk, stream.profile)
        pays = loc.payload + [b""] * pad
        offs = np.concatenate([loc.dred_frame_offset, np.zeros(pad, np.int64)])
        t1 = time.perf_counter()
        bd = read_dred_payloads(pays, stream.profile, min_feature_frames=stream.min_feature_frames,
                                dred_frame_offset=offs)
        t2 = time.perf_counter()
        t = max(1, int(bd.nb_latents.max()))
        out = np.asarray(fast.decode_batch_jit(fp, bd.state, bd.latents[:, :t], num=num))
        t3 = time.perf_counter()
        t_parse += t1 - t0
        t_ent += t2 - t1
        t_net += t3 - t2
        nbs.extend(bd.nb_latents[: len(chunk)].tolist())
        if collect:
            feats.extend(out[i, : 4 * int(bd.nb_latents[i])] for i in range(len(chunk)))
    return _Pass(t_parse, t_ent, t_net, t_parse + t_ent + t_net, feats, nbs, batch, 1)


@dataclass
class _OursTimed:
    """Our decoder timed: the first pass (compiles; its features are the ones checked), the fastest of the
    timed passes, the first pass's seconds and the Python allocation peak of an untimed pass."""

    first: _Pass
    best: _Pass
    compile_s: float
    peak_bytes: int


def _time_ours(run, repeats: int) -> _OursTimed:
    """Warm up (``run(True)`` collects the features), then the best of ``repeats`` timed passes by wall
    time; the allocation peak comes from one more pass, untimed, since tracing every allocation slows the
    Python parts (payload lookup, result slicing) and, through the interpreter lock, the other workers too."""
    import tracemalloc

    tc = time.perf_counter()
    first = run(True)
    compile_s = time.perf_counter() - tc
    gc.collect()
    best = None
    for _ in range(repeats):
        r = run(False)
        if best is None or r.wall_s < best.wall_s:
            best = r
    tracemalloc.start()
    run(False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return _OursTimed(first=first, best=best, compile_s=compile_s, peak_bytes=peak)


def _check_against_libopus(ref_feats: list, ref_nb: list, feats: list, nbs: list) -> tuple[dict, int, bool]:
    """Every packet against libopus: (compliance metric over the whole stream, packets bit for bit equal,
    whether every ``nb_latents`` agrees). Features are compared only where the ``nb_latents`` all agree."""
    nb_ok = nbs == ref_nb
    if not nb_ok:
        return {}, 0, False
    ref_all = np.concatenate(ref_feats) if ref_feats else np.zeros((0, 20), np.float32)
    ours_all = np.concatenate(feats) if feats else np.zeros((0, 20), np.float32)
    cmp = compare_features(ref_all, ours_all)
    exact = sum(int(np.array_equal(a, b)) for a, b in zip(ref_feats, feats))
    metric = {"total": float(cmp.total), "max": float(cmp.max), "pitch": float(cmp.pitch),
              "passed": bool(cmp.passed), "frames": cmp.frames}
    return metric, exact, True


def bench_decode(
    spec: StreamSpec = StreamSpec(),
    *,
    batch: int = 1024,
    numerics: str = "avx2",
    repeats: int = 3,
    oracle=None,
    pipeline: str = "jax",
    workers: int | None = None,
) -> DecodeBench:
    """Run the benchmark (see the module docstring). ``repeats``: best of that many timed passes.
    ``pipeline``: ``"jax"`` (:func:`opus_dred.accel._decode.decode_packets`: entropy decoding by
    :func:`~opus_dred.accel._reader.read_dred_payloads_jax`, batches spread over ``workers`` threads, default
    two per core) or ``"numpy"`` (:func:`opus_dred.accel._bitstream.read_dred_payloads`, one batch at a
    time)."""
    import jax  # lazy: loads JAX

    from opus_dred.accel import _decode as fast  # lazy: loads JAX
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX
    from opus_dred.refimpl import _rdovae as rdovae  # lazy: loads JAX

    if numerics not in NUMERICS_CHOICES:
        raise ValueError(f"numerics must be one of {NUMERICS_CHOICES}")
    if pipeline not in PIPELINE_CHOICES:
        raise ValueError(f"pipeline must be one of {PIPELINE_CHOICES}")
    load0 = os.getloadavg()[0]
    # the host's RCPPS table: the features are checked bit for bit against libopus running on this CPU
    num = nnet.for_host(nnet.LIBOPUS_AVX2) if numerics == "avx2" else nnet.FLOAT
    oracle = oracle or Oracle.for_build(spec.profile)
    stream = _prepare_stream(spec, oracle)
    ref_feats, ref_nb = _libopus_features(oracle, stream)
    t_lib = _time_libopus(oracle, stream.packets, stream.fs, stream.max_samples, repeats)

    # prepared before any timing (it probes the bf16 dot once); decode_packets keeps its own per profile
    fp = fast.prepare(rdovae.params_from_pack(load_pack(stream.profile.model_pack)), num)
    n = len(stream.packets)
    batch = max(1, min(batch, n))
    if pipeline == "jax":
        ours = _time_ours(lambda collect: _jax_pass(stream, num, batch, workers, collect), repeats)
    else:
        ours = _time_ours(lambda collect: _numpy_pass(stream, fp, num, batch, collect), repeats)
    metric, exact, nb_ok = _check_against_libopus(ref_feats, ref_nb, ours.first.features, ours.first.nb_latents)

    best = ours.best  # wall time; with several workers the stages overlap and their sums exceed it
    return DecodeBench(
        profile=stream.profile.name, build=oracle.build.name, numerics=numerics, packets=n,
        latents=int(sum(ref_nb)), batch=best.batch, repeats=repeats, libopus_s=t_lib, ours_s=best.wall_s,
        ours_parse_s=best.parse_s, ours_entropy_s=best.entropy_s, ours_network_s=best.network_s,
        compile_s=ours.compile_s, libopus_pps=n / t_lib, ours_pps=n / best.wall_s,
        ratio=(n / best.wall_s) / (n / t_lib),
        maxrss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        tracemalloc_peak_mib=ours.peak_bytes / 2**20, metric=metric, bit_exact_packets=exact, nb_latents_agree=nb_ok,
        device=str(jax.devices()[0]), pipeline=pipeline, workers=best.workers, cores=fast.default_workers(),
        hoisted_loops=HOIST_LOOPS_FLAG in os.environ.get("XLA_FLAGS", "").split(),
        load_avg=(load0, os.getloadavg()[0]),
    )
