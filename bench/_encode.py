"""Encode-speed benchmark: the DRED half of libopus' encoder against ours, on the same PCM.

One run takes ``streams`` streams of real speech (corpus clips, each stream its own clip or offset), cut into
20 ms frames, and makes the DRED payload of every frame of every stream twice:

* **libopus**: per stream, one ``DREDEnc`` of the oracle build (:class:`~opus_dred.libopus._encoder.
  LibopusDredEncoder`): ``dred_compute_latents`` on each frame, then ``dred_encode_silk_frame`` with the settings
  below; streams one after another on one core, the ctypes overhead of two calls per frame included.
* **ours**, ``path="accel"`` (the default): :func:`opus_dred.accel._encode.encode_streams`, every stage over the
  whole batch (the feature frames a block at a time in XLA, the RDO-VAE with exact GEMMs, one quantizer call, the
  lockstep range encoder), ``workers`` threads sharing the streams; ``path="reference"``: the reference batched
  over the streams as :mod:`opus_dred.refimpl._encode` composes it (:func:`~opus_dred.refimpl._encode.
  reference_frontend`: the numpy feature extractor frame by frame, the RDO-VAE jitted over blocks of
  :data:`~opus_dred.refimpl._encode.BLOCK_STEPS` steps; then per frame
  :class:`~opus_dred.refimpl._encode.BatchCoder`: one quantizer call, the range coding per stream).

Compilation is excluded from the times: everything jitted runs once on the timed shapes before the clock
starts (its seconds are reported apart). Two ratios come from the same run: ``speed`` = libopus' wall-clock time
/ ours (ours may use every core the process has; this is the figure the target of >= 1.0 refers to), and
``speed_per_core`` = libopus' CPU time / ours (CPU seconds over all our threads: what one core of each costs).
The settings are libopus' encoder's for ``bitrate`` and ``loss``
(:func:`~opus_dred.bitstream._budget.compute_dred_bitrate`: q0, dQ, qmax, the chunk cap in VBR), ``max_bytes``
what a 1500-byte opus_demo packet leaves next to an Opus frame at the bitrate left. The payloads are compared
byte for byte while timing: the report gives the share that is identical to libopus'.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from opus_dred.bitstream._budget import compute_dred_bitrate, dred_chunks, dred_max_bytes
from opus_dred.bitstream._formats import OPUS_DEMO_MAX_PACKET
from opus_dred.libopus._encoder import LibopusDredEncoder
from opus_dred.libopus._oracle import Oracle
from opus_dred.refimpl._encode import BLOCK_STEPS, BatchCoder, frame_offsets, kernels_for, reference_frontend
from opus_dred.speech._corpus import list_clips, load_clip
from opus_dred.bench._machine import cpu_model

#: presets of the reference's arithmetic the benchmark offers, and the libopus build each is compared with
NUMERICS_CHOICES = ("avx2", "sse2")
#: what "ours" is: the accelerated encoder (default) or the reference composed over the batch
PATH_CHOICES = ("accel", "reference")


# -- the per-frame part, batched over the streams ---------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The DRED settings both encoders get, per frame: quantizer schedule, chunk cap and byte budget."""

    q0: int
    dq: int
    qmax: int
    max_chunks: int
    max_bytes: int
    extra_delay: int


def settings_for(profile: str, fs: int, *, bitrate: int, loss: int, duration: int, frame_ms: int = 20,
                 vbr: bool = True) -> Settings:
    """libopus' encoder's DRED settings for ``bitrate`` and ``loss`` (:func:`compute_dred_bitrate`), the chunk cap
    (:func:`dred_chunks`) and the bytes a 1500-byte packet leaves next to an Opus frame at the bitrate left."""
    frame = fs * frame_ms // 1000
    budget = compute_dred_bitrate(bitrate, fs=fs, frame_size=frame, duration=duration, loss_perc=loss,
                                  version="1.5" if profile.startswith("libopus-1.5") else "1.6")
    opus_bytes = (bitrate - budget.dred_bitrate) * frame_ms // 8000
    chunks = dred_chunks(duration, vbr=vbr, target_chunks=budget.target_chunks)
    return Settings(budget.q0, budget.dq, budget.qmax, max(chunks, 1),
                    dred_max_bytes(OPUS_DEMO_MAX_PACKET, opus_bytes), fs // 250)


# -- inputs and the two timed runs ---------------------------------------------------------------------


def speech_streams(streams: int, seconds: float, fs: int) -> np.ndarray:
    """``[streams, n]`` int16 real speech: stream ``i`` is clip ``i mod (number of clips)`` of the corpus, looped
    to the length and started ``i // (number of clips)`` seconds in."""
    clips = [c.id for c in list_clips()]
    n = round(seconds * fs)
    out = np.zeros((streams, n), np.int16)
    cache: dict[str, np.ndarray] = {}
    for i in range(streams):
        cid = clips[i % len(clips)]
        x = cache.get(cid)
        if x is None:
            x = cache[cid] = np.asarray(load_clip(cid, rate=fs))
        start = (i // len(clips)) * fs
        out[i] = np.resize(np.roll(x, -start), n)
    return out


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    """CPU seconds of this process so far, every thread (user and system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _libopus_pass(oracle, pcm_frames: np.ndarray, fs: int, s: Settings) -> tuple[float, float, list[list[bytes]]]:
    """Wall and CPU seconds and payloads of libopus' DRED half, stream after stream."""
    out = []
    t, c = time.perf_counter(), _cpu_s()
    for x in pcm_frames:
        enc = LibopusDredEncoder(oracle, fs)
        row = []
        for f in x:
            enc.compute_latents(f, extra_delay=s.extra_delay)
            row.append(enc.encode(max_chunks=s.max_chunks, max_bytes=s.max_bytes, q0=s.q0, dq=s.dq, qmax=s.qmax))
        out.append(row)
    return time.perf_counter() - t, _cpu_s() - c, out


@dataclass
class EncodeBench:
    """Figures of one ``bench encode`` run (seconds; ``*_per_audio_s``: seconds per second of audio per stream;
    ``speed``: libopus' wall time / ours, the target's figure; ``speed_per_core``: libopus' CPU time / ours)."""

    profile: str
    build: str
    path: str
    numerics: str
    kernels: str
    cpu: str
    cores: int
    workers: int
    streams: int
    seconds: float
    sample_rate: int
    frames: int
    q0: int
    dq: int
    qmax: int
    max_chunks: int
    max_bytes: int
    libopus_s: float
    libopus_cpu_s: float
    ours_s: float
    ours_cpu_s: float
    ours_stages_s: dict
    compile_s: float
    libopus_per_audio_s: float
    ours_per_audio_s: float
    speed: float
    speed_per_core: float
    payloads: int
    dred_payloads: int
    identical_payloads: int
    identical_share: float
    maxrss_mib: float
    ours_rss_growth_mib: float
    load_avg: tuple = ()
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _reference_pass(pcm_frames, fs, profile, num, kernels, s: Settings, offsets) -> tuple[dict, list]:
    """Seconds per stage and payloads (``[stream][frame]``) of the reference, batched over the streams."""
    fr = reference_frontend(pcm_frames, fs, profile, num, kernels=kernels)
    t2 = time.perf_counter()
    coder = BatchCoder(profile, fr.latents, fr.states, s, num)
    per_frame = [coder.frame(off) for off in offsets]
    return {**fr.seconds, "quantize+code": time.perf_counter() - t2}, [list(r) for r in zip(*per_frame)]


def _accel_pass(pcm_frames, fs, profile, num, kernels, s: Settings, workers: int) -> tuple[dict, list]:
    """Seconds per stage (summed over the workers) and payloads of :func:`opus_dred.accel._encode.
    encode_streams`."""
    from opus_dred.accel._encode import encode_streams_timed  # lazy: loads JAX

    b = pcm_frames.shape[0]
    run = encode_streams_timed(pcm_frames.reshape(b, -1), fs, profile, q0=s.q0, dq=s.dq, qmax=s.qmax,
                               max_chunks=s.max_chunks, max_bytes=s.max_bytes, numerics=num,
                               frame_size=pcm_frames.shape[2], extra_delay=s.extra_delay, kernels=kernels,
                               workers=workers)
    return run.seconds, run.payloads


def default_workers() -> int:
    """Threads for the accelerated path: one per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def bench_encode(*, streams: int = 16, seconds: float = 5.0, profile: str = "libopus-1.6.1", fs: int = 16000,
                 numerics: str = "avx2", bitrate: int = 32000, loss: int = 20, duration: int = 100,
                 vbr: bool = True, path: str = "accel", workers: int | None = None, oracle=None) -> EncodeBench:
    """Run the benchmark (module docstring). ``numerics``: ``"avx2"`` (the reference bit-exact with the default
    build on this CPU; that build is timed) or ``"sse2"`` (the ``-generic`` build's arithmetic; that build is
    timed). ``path``: ``"accel"`` or ``"reference"`` (:data:`PATH_CHOICES`); ``workers``: the accelerated path's
    threads (default one per core; the reference path uses one)."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    if numerics not in NUMERICS_CHOICES:
        raise ValueError(f"numerics must be one of {NUMERICS_CHOICES}")
    if path not in PATH_CHOICES:
        raise ValueError(f"path must be one of {PATH_CHOICES}")
    if streams < 1 or seconds <= 0:
        raise ValueError("streams must be positive and seconds more than 0")
    load0 = os.getloadavg()[0]
    build = profile if numerics == "avx2" else f"{profile}-generic"
    oracle = oracle or Oracle.for_build(build)
    num = nnet.for_host(nnet.LIBOPUS_AVX2 if numerics == "avx2" else nnet.LIBOPUS_SSE2)
    kernels = kernels_for(numerics)
    workers = 1 if path == "reference" else max(1, min(streams, workers or default_workers()))
    frame = fs // 50
    pcm = speech_streams(streams, seconds, fs)
    nframes = pcm.shape[1] // frame
    pcm_frames = (pcm[:, :nframes * frame].astype(np.float32) / np.float32(32768)).reshape(streams, nframes, frame)
    s = settings_for(profile, fs, bitrate=bitrate, loss=loss, duration=duration, vbr=vbr)
    offsets = frame_offsets(profile, fs, frame, nframes, s.extra_delay)

    # compile everything on the timed shapes, untimed
    tc = time.perf_counter()
    if path == "reference":
        warm = reference_frontend(pcm_frames[:, :BLOCK_STEPS], fs, profile, num, kernels=kernels)
        warm_coder = BatchCoder(profile, warm.latents, warm.states, s, num)
        for off in offsets[:min(len(offsets), BLOCK_STEPS)]:
            if off[3] <= warm.latents.shape[1]:
                warm_coder.frame(off)
    else:
        _accel_pass(pcm_frames[:, :min(nframes, 2 * BLOCK_STEPS)], fs, profile, num, kernels, s, workers)
    compile_s = time.perf_counter() - tc

    t_lib, c_lib, lib_payloads = _libopus_pass(oracle, pcm_frames, fs, s)
    rss0 = _maxrss_mib()
    t0, c0 = time.perf_counter(), _cpu_s()
    if path == "reference":
        stages, our_payloads = _reference_pass(pcm_frames, fs, profile, num, kernels, s, offsets)
    else:
        stages, our_payloads = _accel_pass(pcm_frames, fs, profile, num, kernels, s, workers)
    t_ours, c_ours = time.perf_counter() - t0, _cpu_s() - c0
    rss1 = _maxrss_mib()

    total = streams * nframes
    identical = sum(int(a == b) for ra, rb in zip(our_payloads, lib_payloads) for a, b in zip(ra, rb))
    with_dred = sum(int(len(b) > 0) for rb in lib_payloads for b in rb)
    audio = streams * nframes * 0.02
    notes = ["compile time excluded (jitted parts run once on the timed shapes first; compile_s)",
             ("speed = libopus wall time / ours (all our threads; the target's figure); speed_per_core = libopus "
             "CPU time / ours (CPU seconds summed over our threads)"),
             ("libopus runs the streams one after another on one core; ours batches them "
             f"({path}; {workers} worker thread(s), XLA's own threads)"),
             "peak RSS is the process' (getrusage); its growth during our pass is reported apart"]
    if workers > 1:
        notes.append("stage seconds are summed over the worker threads, which overlap")
    return EncodeBench(
        profile=profile, build=oracle.build.name, path=path, numerics=numerics, kernels=kernels, cpu=cpu_model(),
        cores=os.cpu_count() or 1, workers=workers, streams=streams, seconds=nframes * 0.02, sample_rate=fs,
        frames=nframes, q0=s.q0, dq=s.dq, qmax=s.qmax, max_chunks=s.max_chunks, max_bytes=s.max_bytes,
        libopus_s=t_lib, libopus_cpu_s=c_lib, ours_s=t_ours, ours_cpu_s=c_ours, ours_stages_s=stages,
        compile_s=compile_s, libopus_per_audio_s=t_lib / audio, ours_per_audio_s=t_ours / audio,
        speed=t_lib / t_ours, speed_per_core=c_lib / c_ours if c_ours > 0 else 0.0, payloads=total,
        dred_payloads=with_dred, identical_payloads=identical, identical_share=identical / total if total else 0.0,
        maxrss_mib=rss1, ours_rss_growth_mib=rss1 - rss0, load_avg=(load0, os.getloadavg()[0]), notes=notes)


@dataclass
class CorpusComparison:
    """Payloads of the whole speech corpus, ours (:func:`opus_dred.accel._encode.encode_streams`) against libopus'
    DRED half (the build of ``profile`` and ``numerics`` as :func:`bench_encode` picks it), for one setting:
    ``packets`` 20 ms frames over ``clips`` clips, ``identical`` of them byte for byte, ``nonempty`` with a
    libopus payload; ``differing`` lists ``(clip, frame)`` of each difference."""

    profile: str
    build: str
    numerics: str
    settings: dict
    clips: int
    packets: int
    nonempty: int
    identical: int
    differing: list
    cpu: str

    @property
    def share(self) -> float:
        return self.identical / self.packets if self.packets else 0.0


def compare_corpus(profile: str = "libopus-1.6.1", numerics: str = "avx2", *, fs: int = 16000,
                   settings: Settings | None = None, clips: list[str] | None = None, workers: int | None = None,
                   oracle=None) -> CorpusComparison:
    """Every 20 ms frame of every corpus clip (:func:`~opus_dred.speech._corpus.list_clips`, each from its
    start, the last part frame dropped) through both encoders with ``settings`` (default: libopus' for 32 kb/s,
    20 % loss, 1 s of DRED, VBR: :func:`settings_for`). Ours encodes all clips as one batch, each looped to the
    longest (the encoder is causal: a frame's payload depends only on the samples up to it; looping, not zeros,
    keeps libopus 1.6's ``VERY_SMALL`` silence off the reference fallback), and only each clip's own frames are
    compared; libopus encodes each clip alone. ``clips``: clip ids (default: the whole corpus); ``workers``:
    the accelerated path's threads (default one per core)."""
    from opus_dred.accel._encode import encode_streams  # lazy: loads JAX
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    build = profile if numerics == "avx2" else f"{profile}-generic"
    oracle = oracle or Oracle.for_build(build)
    num = nnet.for_host(nnet.LIBOPUS_AVX2 if numerics == "avx2" else nnet.LIBOPUS_SSE2)
    s = settings or settings_for(profile, fs, bitrate=32000, loss=20, duration=100)
    frame = fs // 50
    clips = list(clips) if clips else [c.id for c in list_clips()]
    pcm = [np.asarray(load_clip(c, rate=fs)).astype(np.float32) / np.float32(32768) for c in clips]
    nf = [len(x) // frame for x in pcm]
    batch = np.stack([np.resize(x[:n * frame], max(nf) * frame) for x, n in zip(pcm, nf)])
    ours = encode_streams(batch, fs, profile, q0=s.q0, dq=s.dq, qmax=s.qmax, max_chunks=s.max_chunks,
                          max_bytes=s.max_bytes, numerics=num, frame_size=frame, extra_delay=s.extra_delay,
                          kernels=kernels_for(numerics), workers=workers or default_workers())
    _, _, theirs = _libopus_pass(oracle, [batch[i, :nf[i] * frame].reshape(nf[i], frame)
                                          for i in range(len(pcm))], fs, s)
    identical, nonempty, differing = 0, 0, []
    for c, n, a, b in zip(clips, nf, ours, theirs):
        for f in range(n):
            identical += int(a[f] == b[f])
            nonempty += int(len(b[f]) > 0)
            if a[f] != b[f]:
                differing.append((c, f))
    return CorpusComparison(profile=profile, build=oracle.build.name, numerics=numerics, settings=asdict(s),
                            clips=len(clips), packets=sum(nf), nonempty=nonempty, identical=identical,
                            differing=differing, cpu=cpu_model())


def print_report(r: EncodeBench, *, as_json: bool = False) -> None:
    """The figures as a table (rich) or as JSON on stdout."""
    import json

    if as_json:
        print(json.dumps(r.to_json(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    audio = r.streams * r.seconds
    t = Table(title=f"bench encode: {r.streams} streams x {r.seconds:g} s at {r.sample_rate} Hz, {r.profile}, "
                    f"q0 {r.q0} dQ {r.dq} qmax {r.qmax}, <= {r.max_chunks} chunks, <= {r.max_bytes} bytes")
    for col in ("encoder", "seconds", "CPU seconds", "ms per s of audio", "x real time"):
        t.add_column(col, justify="left" if col == "encoder" else "right")
    t.add_row(f"libopus {r.build} (dred_compute_latents + dred_encode_silk_frame)", f"{r.libopus_s:.3f}",
              f"{r.libopus_cpu_s:.3f}", f"{1e3 * r.libopus_per_audio_s:.2f}", f"{audio / r.libopus_s:,.0f}")
    what = "accel.encode_streams" if r.path == "accel" else "reference"
    t.add_row(f"ours: {what} ({r.numerics}, kernels {r.kernels}, batch {r.streams}, {r.workers} worker(s))",
              f"{r.ours_s:.3f}", f"{r.ours_cpu_s:.3f}", f"{1e3 * r.ours_per_audio_s:.2f}", f"{audio / r.ours_s:,.0f}")
    for name, sec in r.ours_stages_s.items():
        t.add_row(f"  {name}", f"{sec:.3f}", "", f"{1e3 * sec / audio:.2f}", "")
    c = Console()
    c.print(t)
    c.print(f"CPU: {r.cpu} ({r.cores} cores). speed (libopus wall time / ours, all cores; the target >= 1.0): "
            f"[bold]{r.speed:.3f}[/bold]; per core (CPU time): [bold]{r.speed_per_core:.3f}[/bold]")
    c.print(f"compile {r.compile_s:.1f} s (excluded); peak RSS {r.maxrss_mib:.0f} MiB, of which "
            f"{r.ours_rss_growth_mib:.0f} MiB during our pass; load average {r.load_avg[0]:.1f} -> {r.load_avg[1]:.1f}")
    c.print(f"payloads identical to libopus': {r.identical_payloads}/{r.payloads} ({100 * r.identical_share:.1f} %), "
            f"{r.dred_payloads} of them non-empty")
