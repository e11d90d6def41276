"""Vocoder-speed benchmark: libopus' FARGAN against ours (:mod:`opus_dred.refimpl._fargan`) on the same features.

One run takes ``streams`` streams of real speech (corpus clips, each its own clip or offset), ``seconds`` long,
computes their 20 features per 10 ms once (libopus' ``lpcnet_compute_single_frame_features`` through the
oracle, outside every timing), and synthesizes 16 kHz audio from them three ways, each primed alike
(``fargan_cont`` on 320 zero samples and five copies of the first vector, as ``fargan_demo`` does):

* **libopus**: per stream, one ``FARGANState`` of the oracle build (:class:`~opus_dred.libopus._listen.
  LibopusFargan`): ``fargan_synthesize`` per frame, streams one after another on one core, the ctypes call per
  frame included;
* **ours, one stream** (the first :data:`SINGLE_STREAMS` streams): ``path="reference"``: :func:`~opus_dred.refimpl._fargan.vocode` jitted (one ``lax.scan``
  over the frames), each stream in turn; ``path="accel"``: :func:`opus_dred.accel._fargan.vocode` (the same
  numbers, float GEMMs for the int8 products, float layers unrolled) on a batch of one;
* **ours, batched**: the reference ``vmap``-ed over all the streams, or the accelerated one on the whole batch:
  one computation.

Compilation is excluded (each jitted shape runs once before the clock starts; its seconds are reported apart);
each timing is the best of ``repeats`` passes. Figures: ``x real time`` = seconds of audio / wall-clock seconds
(above 1: faster than real time), and per core = seconds of audio / CPU seconds of the process (all its threads:
what one core of each costs). The targets: ours batched at least libopus' per core; ours on one stream faster
than real time. The outputs are compared with libopus' sample for sample (bit-exact where this CPU's arithmetic is
the preset's) and by ``dred_compare -audio``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from opus_dred.bench._machine import cpu_model
from opus_dred.conformance._metric import compare_audio
from opus_dred.libopus._encoder import LibopusFeatureExtractor
from opus_dred.libopus._listen import LibopusFargan
from opus_dred.libopus._oracle import Oracle
from opus_dred.speech._corpus import load_clip

#: the reference's presets the benchmark offers, and the libopus build each is compared with
NUMERICS_CHOICES = ("avx2", "sse2")
#: what "ours" is: the reference FARGAN jitted (refimpl._fargan.vocode), or the accelerated one (accel._fargan)
PATH_CHOICES = ("accel", "reference")
#: streams the one-stream-at-a-time timing runs (the first ones of the batch)
SINGLE_STREAMS = 4
#: clips the streams are cut from (real recorded speech, 16 kHz), in turn
CLIPS = ("codec2-speech-orig-16k", "ps-librivox-0870", "ps-librivox-0880", "ps-numbers", "ps-goforward",
         "ps-librivox-0890", "ps-librivox-0920", "ps-librivox-0930")
FRAME = 160
FS = 16000


@dataclass
class Timing:
    """One way of synthesizing: wall-clock and CPU seconds of the best pass, and the figures they give."""

    wall_s: float
    cpu_s: float
    audio_s: float

    @property
    def realtime(self) -> float:
        """Seconds of audio per wall-clock second."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else float("inf")

    @property
    def per_core(self) -> float:
        """Seconds of audio per CPU second."""
        return self.audio_s / self.cpu_s if self.cpu_s > 0 else float("inf")

    def to_json(self) -> dict:
        return {**asdict(self), "realtime": self.realtime, "per_core": self.per_core}


@dataclass
class VocoderBench:
    profile: str
    build: str
    numerics: str
    path: str
    streams: int
    frames: int
    cpu: str
    cores: int
    libopus: Timing
    single: Timing
    batched: Timing
    compile_s: float
    bit_exact_streams: int
    metric: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)

    @property
    def batched_vs_libopus_per_core(self) -> float:
        return self.batched.per_core / self.libopus.per_core

    @property
    def single_vs_libopus_per_core(self) -> float:
        return self.single.per_core / self.libopus.per_core

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("libopus", "single", "batched"):
            d[k] = getattr(self, k).to_json()
        d["batched_vs_libopus_per_core"] = self.batched_vs_libopus_per_core
        d["single_vs_libopus_per_core"] = self.single_vs_libopus_per_core
        d["targets"] = {"batched_per_core_at_least_libopus": self.batched_vs_libopus_per_core >= 1.0,
                        "single_faster_than_real_time": self.single.realtime > 1.0}
        return d


def speech_streams(streams: int, frames: int) -> np.ndarray:
    """``[streams, frames * 160]`` int16 of corpus speech: clip ``s % 8`` from ``(s // 8) * 0.5`` s on, repeated
    where a clip is shorter."""
    out = []
    for s in range(streams):
        x = load_clip(CLIPS[s % len(CLIPS)], rate=FS)
        start = (s // len(CLIPS)) * FS // 2
        need = start + frames * FRAME
        if x.shape[0] < need:
            x = np.tile(x, need // x.shape[0] + 1)
        out.append(x[start:need].astype(np.int16))
    return np.stack(out)


def _features(oracle: Oracle, pcm: np.ndarray) -> np.ndarray:
    fe = LibopusFeatureExtractor(oracle)
    return np.array([f.features[:20] for f in fe.frames(pcm.astype(np.float32))], np.float32)


def _clock(fn, repeats: int) -> tuple[Timing, object]:
    best = None
    out = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if best is None or w < best[0]:
            best = (w, c)
    return Timing(best[0], best[1], 0.0), out


def bench_vocoder(*, streams: int = 256, seconds: float = 2.0, profile: str = "libopus-1.6.1",
                  numerics: str = "avx2", path: str = "accel", repeats: int = 3) -> VocoderBench:
    """Run the benchmark (module docstring); ``numerics`` ``avx2`` times the default build, ``sse2`` the
    ``-generic`` one."""
    import jax  # lazy: loads JAX
    import jax.numpy as jnp  # lazy: loads JAX

    from opus_dred.refimpl import _fargan as fg  # lazy: loads JAX
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    if numerics not in NUMERICS_CHOICES:
        raise ValueError(f"numerics must be one of {', '.join(NUMERICS_CHOICES)}")
    build = profile if numerics == "avx2" else f"{profile}-generic"
    oracle = Oracle.for_build(build)
    frames = max(2, int(round(seconds * 100)))
    pcm = speech_streams(streams, frames)
    feats = np.stack([_features(oracle, p) for p in pcm])  # [S, T, 20]
    first = np.repeat(feats[:, :1], fg.CONT_VECTORS, axis=1)  # [S, 5, 20]
    audio_s = streams * frames / 100

    def run_libopus():
        outs = []
        for s in range(streams):
            v = LibopusFargan(oracle)
            v.cont(np.zeros(fg.CONT_SAMPLES, np.float32), first[s])
            outs.append(np.concatenate([v.synthesize(f) for f in feats[s]]))
        return np.stack(outs)

    lib_t, lib_out = _clock(run_libopus, repeats)
    lib_t.audio_s = audio_s

    if path not in PATH_CHOICES:
        raise ValueError(f"path must be one of {', '.join(PATH_CHOICES)}")
    num = nnet.for_host(nnet.NUMERICS[numerics])
    params = fg._cached_params(profile)
    if path == "accel":
        from opus_dred.accel import _fargan as af  # lazy: loads JAX

        fast = af.prepare(params, num)

        def one(p, f, x0, f0):
            return af.vocode(fast, f[None], x0[None], f0[None], num=num)[0]

        def many(p, f, x0, f0):
            return af.vocode(fast, f, x0, f0, num=num)
    else:
        one = jax.jit(lambda p, f, x0, f0: fg.vocode(p, f, num, pcm0=x0, features0=f0))
        many = jax.jit(jax.vmap(lambda p, f, x0, f0: fg.vocode(p, f, num, pcm0=x0, features0=f0),
                                in_axes=(None, 0, 0, 0)))
    zeros1 = jnp.zeros(fg.CONT_SAMPLES, jnp.float32)
    zeros = jnp.zeros((streams, fg.CONT_SAMPLES), jnp.float32)
    fj, f0j = jnp.asarray(feats), jnp.asarray(first)
    t0 = time.perf_counter()
    one(params, fj[0], zeros1, f0j[0]).block_until_ready()
    many(params, fj, zeros, f0j).block_until_ready()
    compile_s = time.perf_counter() - t0

    n1 = min(streams, SINGLE_STREAMS)

    def run_single():
        return np.stack([np.asarray(one(params, fj[s], zeros1, f0j[s])) for s in range(n1)])

    def run_batched():
        return np.asarray(many(params, fj, zeros, f0j))

    single_t, single_out = _clock(run_single, repeats)
    single_t.audio_s = n1 * frames / 100
    batch_t, batch_out = _clock(run_batched, repeats)
    batch_t.audio_s = audio_s

    same = sum(bool(np.array_equal(a, c)) and (s >= n1 or bool(np.array_equal(a, single_out[s])))
               for s, (a, c) in enumerate(zip(lib_out, batch_out)))
    to16 = lambda x: np.asarray(fg.to_int16(x))  # noqa: E731
    worst = {"err4": 0.0, "err16": 0.0, "pitch": 0.0}
    for a, b in zip(lib_out, batch_out):
        if np.array_equal(a, b):
            continue
        m = compare_audio(to16(a), to16(b))
        worst = {k: max(worst[k], float(getattr(m, k))) for k in worst}
    return VocoderBench(profile=profile, build=build, numerics=num_name(num), path=path, streams=streams, frames=frames,
                        cpu=cpu_model(), cores=os.cpu_count() or 1, libopus=lib_t, single=single_t,
                        batched=batch_t, compile_s=compile_s, bit_exact_streams=same, metric=worst,
                        stages={"single_streams": n1, "libopus_cpu_s_per_audio_s": lib_t.cpu_s / audio_s,
                                "batched_cpu_s_per_audio_s": batch_t.cpu_s / audio_s,
                                "single_cpu_s_per_audio_s": single_t.cpu_s / single_t.audio_s})


def num_name(num) -> str:
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    return next((k for k, v in nnet.NUMERICS.items() if v == num), str(num))


def print_report(r: VocoderBench, *, as_json: bool = False) -> None:
    import json

    if as_json:
        print(json.dumps(r.to_json(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"bench vocoder: {r.streams} streams x {r.frames / 100:g} s of speech, {r.profile}, "
                    f"numerics {r.numerics}, ours: {r.path}")
    for col in ("vocoder", "wall s", "CPU s", "x real time", "x real time per core", "per core vs libopus"):
        t.add_column(col, justify="left" if col == "vocoder" else "right")
    for name, tm in ((f"libopus {r.build} (fargan_synthesize, one stream after another)", r.libopus),
                     (f"ours, one stream at a time ({r.stages.get('single_streams')} streams)", r.single),
                     (f"ours, batched over {r.streams} streams ({'vmap' if r.path == 'reference' else 'one batch'})", r.batched)):
        t.add_row(name, f"{tm.wall_s:.3f}", f"{tm.cpu_s:.3f}", f"{tm.realtime:.1f}", f"{tm.per_core:.1f}",
                  f"{tm.per_core / r.libopus.per_core:.2f}")
    c = Console()
    c.print(t)
    c.print(f"CPU: {r.cpu} ({r.cores} cores); compile (excluded) {r.compile_s:.1f} s; bit-exact with libopus: "
            f"{r.bit_exact_streams}/{r.streams} streams" +
            ("" if r.bit_exact_streams == r.streams else
             f"; dred_compare -audio worst err4 {r.metric['err4']:.3f}, err16 {r.metric['err16']:.3f}, "
             f"pitch {r.metric['pitch']:.3f}"))
    ok_b = r.batched_vs_libopus_per_core >= 1.0
    ok_s = r.single.realtime > 1.0
    c.print(f"targets: batched per core >= libopus: {'yes' if ok_b else 'NO'} ({r.batched_vs_libopus_per_core:.2f}); "
            f"one stream faster than real time: {'yes' if ok_s else 'NO'} ({r.single.realtime:.1f}x)")
