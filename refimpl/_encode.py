"""The reference DRED encoder over whole streams: the parts of libopus' encoder half computed ahead of the
per-frame coding, and that coding for a batch of streams.

libopus' ``dred_compute_latents`` (``dnn/dred_encoder.c``) feeds each Opus frame to the 16 kHz conversion, cuts
the result into 10 ms feature frames and runs one RDO-VAE encoder step per 20 ms; ``dred_encode_silk_frame``
then codes the buffers. The conversion, the feature frames and the encoder are causal, so computing them over
the whole input first (:func:`reference_frontend`) gives what the streaming encoder
(:class:`~opus_dred.refimpl._dred_encoder.DredEncoder`) computes frame by frame; the offsets that tie the
buffers to each Opus frame depend on sample counts alone (:func:`frame_offsets`). :class:`BatchCoder` is
``dred_encode_silk_frame`` for ``B`` streams of equal length: the reference's quantizer
(:func:`~opus_dred.refimpl._dred_encoder.quantize`) and the payload writer of the bitstream layer
(:func:`~opus_dred.bitstream._dred_encode.code_dred_frame`), per stream.

JAX loads on first use (the feature extractor and the resampler are numpy).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np
from opus_dred.bitstream._dred_encode import code_dred_frame, plan_dred_frame
from opus_dred.bitstream._profiles import get_profile
from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _features as feat

#: RDO-VAE steps (20 ms each) per jitted call: one compiled shape for any input length
BLOCK_STEPS = 50

#: ``DRED_SILK_ENCODER_DELAY`` and ``DRED_FRAME_SIZE`` of ``dnn/dred_config.h`` (also in ``_dred_encoder``)
DRED_SILK_ENCODER_DELAY = 79 + 12 - 80
DRED_FRAME_SIZE = 160


def kernels_for(numerics: str) -> str:
    """The feature extractor's DSP kernels that go with a numerics preset name: a default x86 build's
    (``"x86"``) with the AVX2 presets, plain C (``"c"``, what a ``-generic`` build runs) with the others."""
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
    """What the reference computes ahead of the per-frame coding, for ``B`` streams: the 16 kHz signal
    ``x16 [B, m]``, the encoder's input buffer (``DRED_SILK_ENCODER_DELAY`` zeros first) cut in feature frames
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
    ``dred_compute_latents`` feeds it; ``num``: a :class:`~opus_dred.refimpl._nnet.Numerics` (PitchDNN's and
    the RDO-VAE encoder's arithmetic); ``kernels``: the feature extractor's (``"x86"`` or ``"c"``).
    """
    import jax.numpy as jnp  # lazy: loads JAX
    from opus_dred.refimpl import _rdovae_enc as enc  # lazy: loads JAX
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
    :func:`~opus_dred.bitstream._dred_encode.code_dred_frame` per stream.

    ``settings``: any object with ``q0``, ``dq``, ``qmax``, ``max_chunks`` and ``max_bytes``; ``num``: the
    quantizer's :class:`~opus_dred.refimpl._nnet.Numerics`; ``latents``/``states`` oldest first, as
    :func:`reference_frontend` gives them."""

    def __init__(self, profile: str, latents: np.ndarray, states: np.ndarray, settings, num) -> None:
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


__all__ = ["BLOCK_STEPS", "BatchCoder", "Frontend", "frame_offsets", "kernels_for", "reference_frontend"]
