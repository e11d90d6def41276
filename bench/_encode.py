"""Encode-speed benchmark: the DRED half of libopus' encoder against the reference, on the same PCM.

One run takes ``streams`` streams of real speech (corpus clips, each stream its own clip or offset), cut into
20 ms frames, and makes the DRED payload of every frame of every stream twice:

* **libopus**: per stream, one ``DREDEnc`` of the oracle build (:class:`~opus_dred.libopus._encoder.
  LibopusDredEncoder`): ``dred_compute_latents`` on each frame, then ``dred_encode_silk_frame`` with the settings
  below; streams one after another on one core, the ctypes overhead of two calls per frame included.
* **ours**: the reference, batched over the streams (its leading batch axis): the 16 kHz conversion and the
  feature frames (:class:`~opus_dred.refimpl._features.Resampler`, :class:`~opus_dred.refimpl._features.
  FeatureExtractor` with :class:`~opus_dred.refimpl._pitchdnn.PitchDNN`), the RDO-VAE encoder
  (:func:`~opus_dred.refimpl._rdovae_enc.encode_steps`, jitted once, over blocks of :data:`BLOCK_STEPS` steps),
  then per frame the quantizer (:func:`~opus_dred.refimpl._dred_encoder.quantize`, every stream's chunks in one
  jitted call) and the range coding (:func:`~opus_dred.bitstream._dred_encode.code_dred_frame`, per stream).
  The offsets are :class:`~opus_dred.refimpl._dred_encoder.DredEncoder`'s: every stream has the same length, so
  they are the same for all, and with every frame active the plan
  (:func:`~opus_dred.bitstream._dred_encode.plan_dred_frame`) is too.

Compilation is excluded from the times: everything jitted runs once on the timed shapes before the clock
starts (its seconds are reported apart). The settings are libopus' encoder's for ``bitrate`` and ``loss``
(:func:`~opus_dred.bitstream._budget.compute_dred_bitrate`: q0, dQ, qmax, the chunk cap in VBR), ``max_bytes``
what a 1500-byte opus_demo packet leaves next to an Opus frame at the bitrate left. The payloads are compared
byte for byte while timing: the report gives the share that is identical to libopus'.
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from opus_dred.bitstream._budget import compute_dred_bitrate, dred_chunks, dred_max_bytes
from opus_dred.bitstream._dred_encode import code_dred_frame, plan_dred_frame
from opus_dred.bitstream._formats import OPUS_DEMO_MAX_PACKET
from opus_dred.bitstream._profiles import get_profile
from opus_dred.libopus._encoder import LibopusDredEncoder
from opus_dred.libopus._oracle import Oracle
from opus_dred.models._pack import load_pack
from opus_dred.speech._corpus import list_clips, load_clip

#: RDO-VAE steps (20 ms each) per jitted call: one compiled shape for any input length
BLOCK_STEPS = 50
#: presets of the reference's arithmetic the benchmark offers, and the libopus build each is compared with
NUMERICS_CHOICES = ("avx2", "sse2")


def cpu_model() -> str:
    """This machine's CPU model as Linux names it (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kernels_for(numerics: str) -> str:
    """The feature extractor's DSP kernels that go with a numerics preset: a default x86 build's (``"x86"``)
    with the AVX2 presets, plain C (``"c"``, what a ``-generic`` build runs) with the others."""
    return "x86" if "avx2" in numerics else "c"


@functools.cache
def _encode_steps_jit():
    import jax  # lazy: loads JAX
    from opus_dred.refimpl import _rdovae_enc as enc  # lazy: loads JAX

    return jax.jit(enc.encode_steps, static_argnames=("num", "linear"))


@functools.cache
def _encoder_params(profile: str):
    from opus_dred.refimpl import _rdovae_enc as enc  # lazy: loads JAX

    return enc.encoder_params_from_pack(load_pack(get_profile(profile).model_pack))


@dataclass
class Frontend:
    """What the reference computes ahead of the per-frame coding, for ``B`` streams: the 16 kHz signal as the
    encoder's input buffer sees it (``DRED_SILK_ENCODER_DELAY`` zeros first) cut in feature frames
    ``frames16 [B, 2P, 160]``, the 20 DRED features of each ``[B, 2P, 20]`` and the RDO-VAE outputs
    ``latents [B, P, latent_dim]``, ``states [B, P, state_dim]`` (oldest first), ``P`` the 20 ms steps the
    streaming encoder completes; and the seconds each stage took."""

    x16: np.ndarray
    frames16: np.ndarray
    features: np.ndarray
    latents: np.ndarray
    states: np.ndarray
    seconds: dict = field(default_factory=dict)


def reference_frontend(pcm_frames: np.ndarray, fs: int, profile: str, num, *, kernels: str = "x86") -> Frontend:
    """The reference's 16 kHz conversion, feature frames and RDO-VAE encoder over whole streams.

    ``pcm_frames``: ``[B, n, frame]`` float PCM (±1) in Opus frames, fed to the converter frame by frame as
    ``dred_compute_latents`` feeds it; ``num``: a :class:`~opus_dred.refimpl._nnet.Numerics`. All three stages
    are causal, so their outputs equal what the streaming encoder computes frame by frame.
    """
    import jax.numpy as jnp  # lazy: loads JAX
    from opus_dred.refimpl import _features as feat  # lazy: loads JAX
    from opus_dred.refimpl import _rdovae_enc as enc  # lazy: loads JAX
    from opus_dred.refimpl._dred_encoder import DRED_FRAME_SIZE, DRED_SILK_ENCODER_DELAY  # lazy: loads JAX
    from opus_dred.refimpl._pitchdnn import PitchDNN  # lazy: loads JAX

    prof = get_profile(profile)
    x = np.asarray(pcm_frames, np.float32)
    b = x.shape[0]
    t0 = time.perf_counter()
    resampler = feat.Resampler(fs, prof)
    x16 = np.concatenate([np.asarray(resampler.process(x[:, i]), np.float32).reshape(b, -1)
                          for i in range(x.shape[1])], axis=1)
    s16 = np.concatenate([np.zeros((b, DRED_SILK_ENCODER_DELAY), np.float32), x16], axis=1)
    pairs = s16.shape[1] // (2 * DRED_FRAME_SIZE)
    frames16 = s16[:, :2 * DRED_FRAME_SIZE * pairs].reshape(b, 2 * pairs, DRED_FRAME_SIZE)
    t1 = time.perf_counter()
    pitch = PitchDNN(prof, numerics=num)
    extractor = feat.FeatureExtractor(prof, kernels=kernels, pitch=pitch.step, streams=b)
    feats = np.asarray(extractor.frames(frames16.reshape(b, -1)).features, np.float32)
    feats = feats.reshape(b, 2 * pairs, -1)[:, :, :prof.num_features]
    t2 = time.perf_counter()
    params = _encoder_params(prof.name)
    step = _encode_steps_jit()
    carry = enc.init_encoder_carry(params, (b,))
    steps = feats.reshape(b, pairs, 2, prof.num_features).transpose(1, 0, 2, 3)  # [P, B, 2, 20]
    lat, sta = [], []
    for s in range(0, pairs, BLOCK_STEPS):
        blk = steps[s:s + BLOCK_STEPS]
        n = blk.shape[0]
        if n < BLOCK_STEPS:  # the encoder is causal: padding after the end changes nothing before it
            blk = np.concatenate([blk, np.zeros((BLOCK_STEPS - n,) + blk.shape[1:], np.float32)])
        carry, lt, st = step(params, carry, jnp.asarray(blk), num=num)
        lat.append(np.asarray(lt)[:n])
        sta.append(np.asarray(st)[:n])
    latents = np.concatenate(lat).transpose(1, 0, 2) if lat else np.zeros((b, 0, prof.latent_dim), np.float32)
    states = np.concatenate(sta).transpose(1, 0, 2) if sta else np.zeros((b, 0, prof.state_dim), np.float32)
    t3 = time.perf_counter()
    return Frontend(x16, frames16, feats, latents, states,
                    {"resample": t1 - t0, "features": t2 - t1, "network": t3 - t2})


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


def frame_offsets(profile: str, fs: int, frame_size: int, n_frames: int, extra_delay: int) -> list[tuple]:
    """``(dred_offset, latent_offset, latents_buffer_fill, steps done)`` after each frame's
    ``dred_compute_latents``: :class:`~opus_dred.refimpl._dred_encoder.DredEncoder`'s bookkeeping, run on
    zeros (the offsets depend on sample counts alone)."""
    from opus_dred.refimpl._dred_encoder import DredEncoder  # lazy: loads JAX

    prof = get_profile(profile)
    count = [0]

    def step(frames):
        count[0] += 1
        return np.zeros(prof.latent_dim, np.float32), np.zeros(prof.state_dim, np.float32)

    d = DredEncoder(prof, fs, to_16k=lambda pcm: np.zeros(len(pcm) * 16000 // fs, np.float32),
                    features=lambda f: np.zeros(prof.num_features, np.float32), encoder_step=step)
    zeros = np.zeros(frame_size, np.float32)
    out = []
    for _ in range(n_frames):
        d.push(zeros, extra_delay=extra_delay)
        out.append((d.dred_offset, d.latent_offset, d.latents_buffer_fill, count[0]))
    return out


class BatchCoder:
    """The reference's ``dred_encode_silk_frame`` for ``B`` streams of equal length, frame by frame: one plan
    (the streams share their offsets), one jitted quantizer call for every stream's state and chunks, then
    :func:`~opus_dred.bitstream._dred_encode.code_dred_frame` per stream."""

    def __init__(self, profile: str, latents: np.ndarray, states: np.ndarray, settings: Settings, num) -> None:
        import jax  # lazy: loads JAX
        import jax.numpy as jnp  # lazy: loads JAX
        from opus_dred.refimpl._dred_encoder import quantize  # lazy: loads JAX

        self.prof = get_profile(profile)
        self.latents, self.states, self.s = latents, states, settings
        st = self.prof.stats
        self._lat_tables = tuple(jnp.asarray(st.table(f"latent_{n}")) for n in ("scale", "dead_zone", "r", "p0"))
        self._state_tables = tuple(np.asarray(st.table(f"state_{n}"))[settings.q0]
                                   for n in ("scale", "dead_zone", "r", "p0"))

        def q_all(x_state, x_lat, levels):
            sq = quantize(x_state, *self._state_tables, numerics=num)
            lq = quantize(x_lat, *(t[levels][None] for t in self._lat_tables), numerics=num)
            return sq, lq

        self._q = jax.jit(q_all)

    def quantized(self, steps_done: int, plan) -> tuple[np.ndarray, np.ndarray]:
        """Every stream's state at ``plan.latent_offset`` (at q0) and its chunks at their levels, padded to
        ``max_chunks`` chunks (one compiled shape): ``[B, state_dim]``, ``[B, max_chunks, latent_dim]``."""
        cap = self.s.max_chunks
        idx = np.zeros(cap, np.intp)
        lv = np.zeros(cap, np.intp)
        c = len(plan.chunks)
        idx[:c] = steps_done - 1 - np.asarray(plan.chunks, np.intp)  # buffer entry e is step (done - 1 - e)
        lv[:c] = plan.levels
        sq, lq = self._q(self.states[:, steps_done - 1 - plan.latent_offset], self.latents[:, idx], lv)
        return np.asarray(sq), np.asarray(lq)

    def frame(self, offsets: tuple) -> list[bytes]:
        """Every stream's payload for one frame (``b""`` where none), given the frame's offsets."""
        dred_offset, latent_offset, fill, done = offsets
        s = self.s
        plan = plan_dred_frame(self.prof, q0=s.q0, dq=s.dq, qmax=s.qmax, dred_offset=dred_offset,
                               latents_buffer_fill=fill, latent_offset=latent_offset, max_chunks=s.max_chunks)
        if not plan.chunks:
            return [b""] * self.latents.shape[0]
        sq, lq = self.quantized(done, plan)
        c = len(plan.chunks)
        return [code_dred_frame(self.prof, plan, sq[i], lq[i, :c], max_bytes=s.max_bytes) for i in range(len(sq))]


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


def _libopus_pass(oracle, pcm_frames: np.ndarray, fs: int, s: Settings) -> tuple[float, list[list[bytes]]]:
    """Seconds and payloads of libopus' DRED half, stream after stream."""
    out = []
    t = time.perf_counter()
    for x in pcm_frames:
        enc = LibopusDredEncoder(oracle, fs)
        row = []
        for f in x:
            enc.compute_latents(f, extra_delay=s.extra_delay)
            row.append(enc.encode(max_chunks=s.max_chunks, max_bytes=s.max_bytes, q0=s.q0, dq=s.dq, qmax=s.qmax))
        out.append(row)
    return time.perf_counter() - t, out


@dataclass
class EncodeBench:
    """Figures of one ``bench encode`` run (seconds; ``*_per_audio_s``: seconds per second of audio per stream)."""

    profile: str
    build: str
    numerics: str
    kernels: str
    cpu: str
    cores: int
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
    ours_s: float
    ours_stages_s: dict
    compile_s: float
    libopus_per_audio_s: float
    ours_per_audio_s: float
    speed: float
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


def _ours_pass(pcm_frames, fs, profile, num, kernels, s: Settings, offsets) -> tuple[float, dict, list]:
    """Seconds, seconds per stage and payloads (``[stream][frame]``) of the reference, batched."""
    t0 = time.perf_counter()
    fr = reference_frontend(pcm_frames, fs, profile, num, kernels=kernels)
    t1 = time.perf_counter()
    coder = BatchCoder(profile, fr.latents, fr.states, s, num)
    per_frame = [coder.frame(off) for off in offsets]
    t2 = time.perf_counter()
    return t2 - t0, {**fr.seconds, "quantize+code": t2 - t1}, [list(r) for r in zip(*per_frame)]


def bench_encode(*, streams: int = 16, seconds: float = 5.0, profile: str = "libopus-1.6.1", fs: int = 16000,
                 numerics: str = "avx2", bitrate: int = 32000, loss: int = 20, duration: int = 100,
                 vbr: bool = True, oracle=None) -> EncodeBench:
    """Run the benchmark (module docstring). ``numerics``: ``"avx2"`` (the reference bit-exact with the default
    build on this CPU; that build is timed) or ``"sse2"`` (the ``-generic`` build's arithmetic; that build is
    timed)."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    if numerics not in NUMERICS_CHOICES:
        raise ValueError(f"numerics must be one of {NUMERICS_CHOICES}")
    if streams < 1 or seconds <= 0:
        raise ValueError("streams must be positive and seconds more than 0")
    load0 = os.getloadavg()[0]
    build = profile if numerics == "avx2" else f"{profile}-generic"
    oracle = oracle or Oracle.for_build(build)
    num = nnet.for_host(nnet.LIBOPUS_AVX2 if numerics == "avx2" else nnet.LIBOPUS_SSE2)
    kernels = kernels_for(numerics)
    frame = fs // 50
    pcm = speech_streams(streams, seconds, fs)
    nframes = pcm.shape[1] // frame
    pcm_frames = (pcm[:, :nframes * frame].astype(np.float32) / np.float32(32768)).reshape(streams, nframes, frame)
    s = settings_for(profile, fs, bitrate=bitrate, loss=loss, duration=duration, vbr=vbr)
    offsets = frame_offsets(profile, fs, frame, nframes, s.extra_delay)

    # compile everything on the timed shapes (one block of steps, one frame of every stream), untimed
    tc = time.perf_counter()
    warm = reference_frontend(pcm_frames[:, :BLOCK_STEPS], fs, profile, num, kernels=kernels)
    warm_coder = BatchCoder(profile, warm.latents, warm.states, s, num)
    for off in offsets[:min(len(offsets), BLOCK_STEPS)]:
        if off[3] <= warm.latents.shape[1]:
            warm_coder.frame(off)
    compile_s = time.perf_counter() - tc

    t_lib, lib_payloads = _libopus_pass(oracle, pcm_frames, fs, s)
    rss0 = _maxrss_mib()
    t_ours, stages, our_payloads = _ours_pass(pcm_frames, fs, profile, num, kernels, s, offsets)
    rss1 = _maxrss_mib()

    total = streams * nframes
    identical = sum(int(a == b) for ra, rb in zip(our_payloads, lib_payloads) for a, b in zip(ra, rb))
    with_dred = sum(int(len(b) > 0) for rb in lib_payloads for b in rb)
    audio = streams * nframes * 0.02
    notes = ["compile time excluded (jitted parts run once on the timed shapes first; compile_s)",
             "peak RSS is the process' (getrusage); its growth during our pass is reported apart",
             "libopus runs the streams one after another on one core; ours batches them (numpy, XLA threads)"]
    return EncodeBench(
        profile=profile, build=oracle.build.name, numerics=numerics, kernels=kernels, cpu=cpu_model(),
        cores=os.cpu_count() or 1, streams=streams, seconds=nframes * 0.02, sample_rate=fs, frames=nframes,
        q0=s.q0, dq=s.dq, qmax=s.qmax, max_chunks=s.max_chunks, max_bytes=s.max_bytes, libopus_s=t_lib,
        ours_s=t_ours, ours_stages_s=stages, compile_s=compile_s, libopus_per_audio_s=t_lib / audio,
        ours_per_audio_s=t_ours / audio, speed=t_lib / t_ours, payloads=total, dred_payloads=with_dred,
        identical_payloads=identical, identical_share=identical / total if total else 0.0,
        maxrss_mib=rss1, ours_rss_growth_mib=rss1 - rss0, load_avg=(load0, os.getloadavg()[0]), notes=notes)


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
    for col in ("encoder", "seconds", "ms per s of audio", "x real time"):
        t.add_column(col, justify="left" if col == "encoder" else "right")
    t.add_row(f"libopus {r.build} (dred_compute_latents + dred_encode_silk_frame)", f"{r.libopus_s:.3f}",
              f"{1e3 * r.libopus_per_audio_s:.2f}", f"{audio / r.libopus_s:,.0f}")
    t.add_row(f"reference ({r.numerics}, kernels {r.kernels}, batch {r.streams})", f"{r.ours_s:.3f}",
              f"{1e3 * r.ours_per_audio_s:.2f}", f"{audio / r.ours_s:,.0f}")
    for name, sec in r.ours_stages_s.items():
        t.add_row(f"  {name}", f"{sec:.3f}", f"{1e3 * sec / audio:.2f}", "")
    c = Console()
    c.print(t)
    c.print(f"CPU: {r.cpu} ({r.cores} cores); speed (libopus time / ours): [bold]{r.speed:.3f}[/bold] "
            f"(target >= 1.0); compile {r.compile_s:.1f} s (excluded); peak RSS {r.maxrss_mib:.0f} MiB, "
            f"of which {r.ours_rss_growth_mib:.0f} MiB during our pass; load average {r.load_avg[0]:.1f} -> "
            f"{r.load_avg[1]:.1f}")
    c.print(f"payloads identical to libopus': {r.identical_payloads}/{r.payloads} ({100 * r.identical_share:.1f} %), "
            f"{r.dred_payloads} of them non-empty")
