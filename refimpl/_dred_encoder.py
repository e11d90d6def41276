"""The DRED encoder's float half: the quantizer of ``dred_encode_latents`` and the streaming ``DREDEnc``.

``dnn/dred_encoder.c`` (1.5.2 and 1.6.1 alike, apart from the 16 kHz conversion) keeps, per encoder, a 16 kHz
input buffer, the RDO-VAE's latent and state outputs (one of each per 20 ms, newest first, ``DRED_MAX_FRAMES``
deep) and the offsets that tie them to the Opus frame. :class:`DredEncoder` is that state;
:meth:`DredEncoder.push` is ``dred_compute_latents`` and :meth:`DredEncoder.payload` is
``dred_encode_silk_frame``, whose integer part is :func:`opus_dred.bitstream._dred_encode.plan_dred_frame` and
:func:`~opus_dred.bitstream._dred_encode.code_dred_frame`. Between them sits :func:`quantize`, a pure JAX
function of the values and one level's statistics:

* ``delta = dead_zone / 256``, ``xq = x * scale / 256``;
* ``xq -= delta * tanh(xq / (delta + 0.1))`` (a soft dead zone; ``tanh`` under the :class:`Numerics` given,
  as libopus runs its ``compute_activation`` kernel there);
* ``q = floor(0.5 + xq)``, and 0 where the statistics give the position zero probability (``r == 0`` or
  ``p0 == 255``), which are not coded.

Every step is float32 in libopus' order, each product rounded on its own (libopus compiles this file without
fused multiply-adds), so with the numerics of a build (``avx2`` for the default builds on x86 with AVX2,
``sse2`` for the ``-generic`` ones) the integers are libopus'.

The 16 kHz conversion, the LPCNet features and the RDO-VAE encoder step are given to :class:`DredEncoder` as
callables (see its docstring), so that each can be the reference's or libopus' own; the RDO-VAE step defaults to
the reference's (:func:`rdovae_step`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from opus_dred.bitstream._dred_encode import DRED_MAX_FRAMES, DredSettingsError, code_dred_frame, plan_dred_frame
from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl import _rdovae_enc as rdovae_enc
from opus_dred.refimpl._nnet import FLOAT, Numerics

#: ``DRED_SILK_ENCODER_DELAY`` of ``dnn/dred_config.h`` (``79 + 12 - 80``): 16 kHz samples the input buffer
#: starts with, so that the features line up with SILK's look-ahead
DRED_SILK_ENCODER_DELAY = 79 + 12 - 80

#: ``DRED_FRAME_SIZE``: samples at 16 kHz per feature frame (10 ms); the RDO-VAE runs on two at a time
DRED_FRAME_SIZE = 160

#: ``2 * DRED_DFRAME_SIZE``: the input buffer's length at 16 kHz
INPUT_BUFFER = 4 * DRED_FRAME_SIZE

#: the rates ``dred_convert_to_16k`` accepts (``celt_assert`` otherwise; 96 kHz only in QEXT builds)
RATES = (8000, 12000, 16000, 24000, 48000)

#: ``eps`` of ``dred_encode_latents``
_EPS = np.float32(0.1)
_INV256 = np.float32(1.0 / 256.0)


def quantize(x, scale, dead_zone, r, p0, numerics: Numerics = FLOAT):
    """``dred_encode_latents``' quantizer (``dnn/dred_encoder.c``), element-wise: float values ``x`` and one
    level's statistics (uint8 ``scale``, ``dead_zone``, ``r``, ``p0``, broadcast against ``x``) to int32.

    Pure and shape-polymorphic: ``jit``, ``vmap`` and broadcasting apply (a whole buffer at every level at
    once: ``x[None]`` against tables ``[levels, 1, dim]``)."""
    x = jnp.asarray(x, jnp.float32)
    scale = jnp.asarray(scale).astype(jnp.float32)
    dzone = jnp.asarray(dead_zone).astype(jnp.float32)
    delta = dzone * _INV256
    xq = nnet._unfused(x * scale) * _INV256
    soft = nnet.tanh(xq / (delta + _EPS), numerics)
    xq = xq - nnet._unfused(delta * soft)
    q = jnp.floor(np.float32(0.5) + xq).astype(jnp.int32)
    impossible = (jnp.asarray(r) == 0) | (jnp.asarray(p0) == 255)
    return jnp.where(impossible, 0, q)


@functools.partial(jax.jit, static_argnames=("numerics",))
def _quantize_buffers(states, latents, state_tables, latent_tables, numerics: Numerics):
    """The state buffer at one level (``state_tables``: 4 rows of ``[dim]``) and the latent buffer at every
    level (``latent_tables``: 4 arrays ``[levels, dim]``): ``[n, state_dim]`` and ``[levels, n, latent_dim]``."""
    sq = quantize(states, *state_tables, numerics=numerics)
    lq = quantize(latents[None], *(t[:, None, :] for t in latent_tables), numerics=numerics)
    return sq, lq


@functools.cache
def _encoder_params(model_pack: str):
    return rdovae_enc.encoder_params_from_pack(load_pack(model_pack))


@functools.partial(jax.jit, static_argnames=("numerics",))
def _encode_dframe(params, carry, frames, numerics: Numerics):
    return rdovae_enc.encode_dframe(params, carry, frames, numerics)


def rdovae_step(profile, numerics: Numerics = FLOAT) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The reference RDO-VAE encoder (:func:`opus_dred.refimpl._rdovae_enc.encode_dframe`, the profile's model
    pack) as a :class:`DredEncoder` ``encoder_step``: a callable that keeps the network state from call to
    call, starting zeroed as ``dred_encoder_reset`` leaves it."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    params = _encoder_params(prof.model_pack)
    carry = [rdovae_enc.init_encoder_carry(params)]

    def step(frames):
        carry[0], latent, state = _encode_dframe(params, carry[0], jnp.asarray(frames, jnp.float32), numerics)
        return np.asarray(latent), np.asarray(state)

    return step


def _tables(stats, kind: str):
    return tuple(np.asarray(stats.table(f"{kind}_{n}")) for n in ("scale", "dead_zone", "r", "p0"))


@dataclass
class _Offsets:
    input_buffer_fill: int = DRED_SILK_ENCODER_DELAY
    dred_offset: int = 0
    latent_offset: int = 0
    last_extra_dred_offset: int = 0
    latents_buffer_fill: int = 0


class DredEncoder:
    """libopus' ``DREDEnc`` for one profile and input rate (``dred_encoder_init``), without the networks.

    ``to_16k(pcm) -> samples``: the 16 kHz conversion of ``dred_convert_to_16k`` (it keeps its own filter
    memory; given mono float PCM at ``fs``, int16 scale / 32768, it returns the 16 kHz samples in int16
    scale). ``features(samples160) -> values``: one 10 ms feature frame
    (``lpcnet_compute_single_frame_features_float``; the first ``num_features`` values are used).
    ``encoder_step(frames) -> (latent, state)``: one ``dred_rdovae_encode_dframe`` on two feature frames
    ``[2, num_features]``, with its own network state; by default the reference's (:func:`rdovae_step`, under
    ``numerics``). ``numerics`` is also the quantizer's (:func:`quantize`). :meth:`reset` resets the buffers and
    offsets only; give a fresh ``encoder_step`` (and feature extractor) with it to start a new stream.

    The buffers, newest first: :attr:`latents` ``[DRED_MAX_FRAMES, latent_dim]`` and :attr:`states`
    ``[DRED_MAX_FRAMES, state_dim]``; :attr:`input_buffer` at 16 kHz; the offsets as libopus names them.
    """

    def __init__(self, profile, fs: int, *, numerics: Numerics = FLOAT,
                 to_16k: Callable[[np.ndarray], np.ndarray] | None = None,
                 features: Callable[[np.ndarray], np.ndarray] | None = None,
                 encoder_step: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        prof = get_profile(profile) if isinstance(profile, str) else profile
        if fs not in RATES:
            raise DredSettingsError("fs", fs, f"must be one of {RATES}", profile=prof.name)
        self.profile: Profile = prof
        self.fs = fs
        self.numerics = numerics
        self.to_16k = to_16k
        self.features = features
        self.encoder_step = encoder_step if encoder_step is not None else rdovae_step(prof, numerics)
        st = prof.stats
        self._state_tables = _tables(st, "state")
        self._latent_tables = _tables(st, "latent")
        self.reset()

    def reset(self) -> None:
        """``dred_encoder_reset``: empty buffers, the input buffer holding ``DRED_SILK_ENCODER_DELAY`` zeros."""
        prof = self.profile
        self._o = _Offsets()
        self.input_buffer = np.zeros(INPUT_BUFFER, np.float32)
        self.latents = np.zeros((DRED_MAX_FRAMES, prof.latent_dim), np.float32)
        self.states = np.zeros((DRED_MAX_FRAMES, prof.state_dim), np.float32)

    # libopus' names for the offsets
    input_buffer_fill = property(lambda self: self._o.input_buffer_fill)
    dred_offset = property(lambda self: self._o.dred_offset)
    latent_offset = property(lambda self: self._o.latent_offset)
    last_extra_dred_offset = property(lambda self: self._o.last_extra_dred_offset)
    latents_buffer_fill = property(lambda self: self._o.latents_buffer_fill)

    def set_buffers(self, latents, states, *, latents_buffer_fill: int, dred_offset: int, latent_offset: int = 0,
                    last_extra_dred_offset: int = 0) -> None:
        """Replace the buffers (newest first; shorter ones are zero-filled) and offsets, to code given values."""
        self.latents[:] = 0
        self.states[:] = 0
        lat = np.asarray(latents, np.float32)
        sta = np.asarray(states, np.float32)
        self.latents[: len(lat)] = lat
        self.states[: len(sta)] = sta
        o = self._o
        o.latents_buffer_fill = int(latents_buffer_fill)
        o.dred_offset = int(dred_offset)
        o.latent_offset = int(latent_offset)
        o.last_extra_dred_offset = int(last_extra_dred_offset)

    def push(self, pcm_frame, extra_delay: int = 0) -> None:
        """``dred_compute_latents`` on one Opus frame of mono float PCM at ``fs`` (int16 scale / 32768).

        ``extra_delay`` is the encoder's look-ahead at ``fs`` (``total_buffer`` in ``opus_encode_native``). The
        offsets are libopus': ``dred_offset = floor((40 + extra_delay*16000/fs - fill + 20) / 40)``, and for
        each 20 ms processed, 8 more while below 6, else one more ``latent_offset``."""
        if self.to_16k is None or self.features is None or self.encoder_step is None:
            raise DredSettingsError("to_16k/features/encoder_step", None, "push needs all three callables")
        x = np.asarray(pcm_frame, np.float32).reshape(-1)
        fs = self.fs
        if (x.shape[0] * 16000) % fs:
            raise DredSettingsError("pcm_frame", x.shape[0], f"is not a whole number of 16 kHz samples at {fs} Hz")
        o = self._o
        left16 = x.shape[0] * 16000 // fs
        curr = 40 + int(extra_delay) * 16000 // fs - o.input_buffer_fill
        o.dred_offset = (curr + 20) // 40
        o.latent_offset = 0
        pos = 0
        while left16 > 0:
            n16 = min(2 * DRED_FRAME_SIZE, left16)
            n = n16 * fs // 16000
            out = np.asarray(self.to_16k(x[pos:pos + n]), np.float32).reshape(-1)
            if out.shape[0] != n16:
                raise DredSettingsError("to_16k", out.shape[0], f"returned {out.shape[0]} samples, expected {n16}")
            self.input_buffer[o.input_buffer_fill:o.input_buffer_fill + n16] = out
            o.input_buffer_fill += n16
            if o.input_buffer_fill >= 2 * DRED_FRAME_SIZE:
                curr += 2 * DRED_FRAME_SIZE
                self._process_frame()
                o.input_buffer_fill -= 2 * DRED_FRAME_SIZE
                rest = self.input_buffer[2 * DRED_FRAME_SIZE:2 * DRED_FRAME_SIZE + o.input_buffer_fill].copy()
                self.input_buffer[:o.input_buffer_fill] = rest
                if o.dred_offset < 6:
                    o.dred_offset += 8
                else:
                    o.latent_offset += 1
            pos += n
            left16 -= n16

    def _process_frame(self) -> None:
        """``dred_process_frame``: shift the buffers, two feature frames, one RDO-VAE step into entry 0."""
        nf = self.profile.num_features
        self.latents[1:] = self.latents[:-1].copy()
        self.states[1:] = self.states[:-1].copy()
        f0 = np.asarray(self.features(self.input_buffer[:DRED_FRAME_SIZE].copy()), np.float32).reshape(-1)[:nf]
        f1 = np.asarray(self.features(self.input_buffer[DRED_FRAME_SIZE:2 * DRED_FRAME_SIZE].copy()),
                        np.float32).reshape(-1)[:nf]
        latent, state = self.encoder_step(np.stack([f0, f1]))
        self.latents[0] = np.asarray(latent, np.float32).reshape(-1)[: self.profile.latent_dim]
        self.states[0] = np.asarray(state, np.float32).reshape(-1)[: self.profile.state_dim]
        self._o.latents_buffer_fill = min(self._o.latents_buffer_fill + 1, 2 * self.profile.max_latents)

    def quantized(self, q0: int) -> tuple[np.ndarray, np.ndarray]:
        """The state buffer quantized at ``q0`` ``[DRED_MAX_FRAMES, state_dim]`` and the latent buffer at every
        level ``[quant_levels, DRED_MAX_FRAMES, latent_dim]`` (:func:`quantize`)."""
        st = tuple(t[q0] for t in self._state_tables)
        sq, lq = _quantize_buffers(self.states, self.latents, st, self._latent_tables, self.numerics)
        return np.asarray(sq), np.asarray(lq)

    def payload(self, *, q0: int, dq: int, qmax: int, max_chunks: int, max_bytes: int, activity=None) -> bytes:
        """``dred_encode_silk_frame``: this frame's payload (without ``'D'``, version), or ``b""``; updates
        :attr:`last_extra_dred_offset`. ``activity``: the activity memory, 2.5 ms per entry, newest first
        (``None``: all active)."""
        o = self._o
        plan = plan_dred_frame(self.profile, q0=q0, dq=dq, qmax=qmax, dred_offset=o.dred_offset,
                               latents_buffer_fill=o.latents_buffer_fill, latent_offset=o.latent_offset,
                               last_extra_dred_offset=o.last_extra_dred_offset, activity=activity,
                               max_chunks=max_chunks)
        o.last_extra_dred_offset = plan.last_extra_dred_offset
        if not plan.chunks:
            return code_dred_frame(self.profile, plan, None, [], max_bytes=max_bytes)  # checks max_bytes: b""
        sq, lq = self.quantized(q0)
        rows = [lq[lv, e] for e, lv in zip(plan.chunks, plan.levels)]
        return code_dred_frame(self.profile, plan, sq[plan.latent_offset], rows, max_bytes=max_bytes)


#: ``activity_mem``'s length in ``OpusEncoder`` (src/opus_encoder.c): ``DRED_MAX_FRAMES * 4`` entries of 2.5 ms
ACTIVITY_MEMORY = 4 * DRED_MAX_FRAMES


def update_activity(memory: np.ndarray, active: int, frame_size: int, fs: int) -> np.ndarray:
    """``opus_encode_frame_native``'s activity memory after one frame: shifted by the frame's 2.5 ms count
    (``frame_size * 400 / fs``), newest first, the new entries set to ``active`` (1, 0, or libopus'
    ``VAD_NO_DECISION`` stored as 255)."""
    n = frame_size * 400 // fs
    out = np.empty_like(memory)
    out[n:] = memory[: memory.shape[0] - n]
    out[:n] = active
    return out


def _frame_activity(activity, n_frames: int) -> np.ndarray:
    if activity is None:
        return np.ones(n_frames, np.int64)
    a = np.asarray(activity).reshape(-1)
    if a.shape[0] != n_frames or not np.isin(a, (0, 1, 255)).all():
        raise DredSettingsError("activity", f"shape {a.shape}", f"must hold one of 0, 1, 255 per Opus frame "
                                f"({n_frames} frames)")
    return a.astype(np.int64)


def encode_dred(pcm, profile, fs: int = 16000, *, duration: int = DRED_MAX_FRAMES, q0: int = 6, dq: int = 3,
                qmax: int = 15, frame_size: int | None = None, extra_delay: int | None = None, activity=None,
                max_chunks: int | None = None, max_bytes: int = 1000 - 2, numerics: Numerics | str = "avx2",
                kernels: str | None = None) -> list[bytes]:
    """The DRED payload of every Opus frame of mono ``pcm`` (int16 samples, or floats in ±1) at ``fs``, as libopus'
    encoder writes it for the same PCM and settings: one ``bytes`` per frame (without ``'D'``, version; ``b""``
    where no DRED is sent).

    Per frame, as ``opus_encode_frame_native`` does with DRED on: :meth:`DredEncoder.push` (``dred_compute_latents``
    with the encoder's look-ahead ``extra_delay``, by default ``fs/250`` as libopus' voip and audio modes), the
    activity memory update (``activity``: one value per frame, 1 active, 0 inactive; ``None``: all active), then
    :meth:`DredEncoder.payload` with ``max_chunks`` (default ``min((duration + 5) / 4, 26)``, the CBR cap; VBR
    also caps it at the budget's ``target_chunks``, see :mod:`opus_dred.bitstream._budget`) and ``max_bytes``
    (default what a 1000-byte extension leaves). ``frame_size`` defaults to 20 ms. ``numerics`` (a
    :class:`Numerics` or a name of ``refimpl._nnet.NUMERICS``) is PitchDNN's, the RDO-VAE encoder's and the
    quantizer's; ``kernels`` the feature extractor's DSP (``"x86"`` with the AVX2 presets, else ``"c"``).
    The tail is zero-padded to a whole frame.
    """
    from opus_dred.bitstream._dred_encode import check_settings, dred_chunks_for_duration  # lazy: keeps the list short
    from opus_dred.refimpl._features import FeatureExtractor, Resampler  # lazy: _features imports this layer's JAX

    prof = get_profile(profile) if isinstance(profile, str) else profile
    if fs not in RATES:
        raise DredSettingsError("fs", fs, f"must be one of {RATES}", profile=prof.name)
    check_settings(prof, q0, dq, qmax)
    chunks = dred_chunks_for_duration(duration) if max_chunks is None else int(max_chunks)
    name = numerics if isinstance(numerics, str) else None
    num = nnet.NUMERICS[numerics] if isinstance(numerics, str) else numerics
    if kernels is None:
        kernels = "x86" if (name or "").startswith("avx2") or (name is None and num.fma) else "c"
    frame_size = fs // 50 if frame_size is None else int(frame_size)
    if frame_size <= 0 or (frame_size * 400) % fs:
        raise DredSettingsError("frame_size", frame_size, f"must be a whole number of 2.5 ms at {fs} Hz")
    delay = fs // 250 if extra_delay is None else int(extra_delay)
    x = np.asarray(pcm)
    x = (x.astype(np.float32) / np.float32(32768.0)) if x.dtype.kind in "iu" else x.astype(np.float32)
    x = x.reshape(-1)
    n_frames = -(-x.shape[0] // frame_size)
    padded = np.zeros(n_frames * frame_size, np.float32)
    padded[: x.shape[0]] = x
    act = _frame_activity(activity, n_frames)

    resampler = Resampler(fs, prof)
    extractor = FeatureExtractor(prof, kernels=kernels, pitch=name or num, streams=1)
    enc = DredEncoder(prof, fs, numerics=num,
                      to_16k=lambda s: np.asarray(resampler.process(s[None]), np.float32).reshape(-1),
                      features=lambda f: np.asarray(extractor.frame(f[None]).features, np.float32).reshape(-1))
    memory = np.zeros(ACTIVITY_MEMORY, np.int64)
    out = []
    for i in range(n_frames):
        enc.push(padded[i * frame_size:(i + 1) * frame_size], delay)
        memory = update_activity(memory, int(act[i]), frame_size, fs)
        out.append(enc.payload(q0=q0, dq=dq, qmax=qmax, max_chunks=chunks, max_bytes=max_bytes, activity=memory))
    return out
