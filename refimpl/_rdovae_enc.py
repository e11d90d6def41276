"""The RDO-VAE encoder of DRED in pure JAX: feature frames -> latents and initial states, 20 ms per step.

Our formulation of libopus' ``dnn/dred_rdovae_enc.c`` (``dred_rdovae_encode_dframe``) as
``dnn/dred_encoder.c:dred_process_frame`` drives it, for both model generations:

* **libopus 1.5.2** (DRED experimental version 10): latent 21, state 19, GRUs of 64 units; ``enc_conv{b}`` is
  a kernel-2 convolution over the whole buffer built so far (``compute_generic_conv1d`` for block 1,
  ``compute_generic_conv1d_dilation`` with dilation 2 for blocks 2 to 5).
* **libopus 1.6.1** (version 12): latent 25, state 50, GRUs of 32 units; ``enc_conv_dense{b}`` (64, tanh)
  squeezes the buffer first, and ``enc_conv{b}`` convolves squeezes (dilation 1 for block 1, 2 after).

One step (:func:`encode_dframe`) takes two 10 ms frames of the 20 DRED features (the first 20 of the 36
``lpcnet_compute_single_frame_features_float`` writes), older frame first, as ``dred_process_frame`` concatenates
them. The buffer starts as ``tanh(enc_dense1(frames))``; each block ``b`` appends ``GRU_b(buffer)`` and a
convolution output; ``enc_zdense`` maps the whole buffer linearly to the latent, and
``gdense2(tanh(gdense1(buffer)))`` to the initial state.

The architecture is read from the parameter shapes, so one code path serves both generations; only the
dilations (1, 2, 2, 2, 2) are libopus' code rather than data. Parameters are a pytree ``{layer name: layer
dict}`` (:mod:`opus_dred.refimpl._nnet`) keyed by libopus' layer names (``enc_dense1``,
``enc_gru{b}_input``, ``enc_gru{b}_recurrent``, ``enc_conv_dense{b}``, ``enc_conv{b}``, ``enc_zdense``,
``gdense1``, ``gdense2``). libopus pads ``enc_zdense`` and ``gdense2`` to ``DRED_PADDED_LATENT_DIM`` and
``DRED_PADDED_STATE_DIM`` outputs and copies out the first ``DRED_LATENT_DIM`` / ``DRED_STATE_DIM``; the
loader keeps only those outputs (each output of a layer is computed on its own, so the kept ones are
unchanged).

The carry is libopus' ``RDOVAEEncState`` without its ``initialized`` flag (the state starts zeroed, so the
first call's ``conv1_cond_init`` changes nothing): ``{"gru": (s1..s5), "conv": (m1..m5)}``, each conv memory
flat and oldest frame first, ``(k - 1) * dilation`` frames of the conv's input width, as libopus lays it out.

Order: :func:`encode_features` takes feature frames oldest first and returns one latent and one state per
20 ms step, oldest first. libopus keeps its ``latents_buffer`` and ``state_buffer`` newest first (row 0 is
the latest step), so row ``i`` of libopus' buffers is row ``-1 - i`` of ours.

Everything is a pure function: ``jax.jit`` (``num`` static), ``jax.vmap`` over streams and ``jax.grad`` (with
:data:`~opus_dred.refimpl._nnet.FLOAT` numerics) apply from outside; :func:`encode_dframe` also takes a batch
of streams as leading axes and the implementation of the layers' products (``linear``), as the decoder does.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

import jax
import jax.numpy as jnp

from opus_dred.errors import OpusDredError
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl._nnet import FLOAT, Numerics
from opus_dred.refimpl._rdovae import layer_shapes

NUM_FEATURES = 20
#: feature frames per encoder step (20 ms)
FRAMES_PER_STEP = 2
#: the 36 values per frame of ``lpcnet_compute_single_frame_features_float`` (20 features, then 16 LPC)
NB_TOTAL_FEATURES = 36
NB_BLOCKS = 5
#: each block's conv dilation (dnn/dred_rdovae_enc.c: ``compute_generic_conv1d`` for block 1, then
#: ``compute_generic_conv1d_dilation(..., 2, ...)``)
DILATIONS = (1, 2, 2, 2, 2)

Params = dict[str, dict[str, Any]]


class EncoderError(OpusDredError, ValueError):
    """An encoder model or input that does not fit (missing layers, wrong widths)."""


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


def _is_encoder_layer(name: str) -> bool:
    return name.startswith("enc_") or name in ("gdense1", "gdense2")


def _keep_outputs(p: dict, n: int) -> dict:
    """A layer restricted to its first ``n`` outputs (the last axis of every leaf)."""
    return {k: v[..., :n] for k, v in p.items()}


def load_encoder_params(arrays: Mapping[str, np.ndarray], layers: Mapping[str, tuple[int, int]],
                        latent_dim: int, state_dim: int) -> Params:
    """Unpack the encoder's C arrays (``dnn/dred_rdovae_enc_data.c`` names) into dense JAX parameters.

    ``layers`` maps each layer name to ``(nb_inputs, nb_outputs)``; only ``enc_*``, ``gdense1`` and ``gdense2``
    are read. ``enc_zdense`` keeps its first ``latent_dim`` outputs and ``gdense2`` its first ``state_dim``
    (``DRED_LATENT_DIM`` / ``DRED_STATE_DIM``, the values libopus copies out). Done once, in numpy.
    """
    params = {name: nnet.unpack_linear(arrays, name, nb_in, nb_out)
              for name, (nb_in, nb_out) in layers.items() if _is_encoder_layer(name)}
    names = ["enc_dense1", "enc_zdense", "gdense1", "gdense2"]
    names += [f"enc_gru{b}_{s}" for b in range(1, NB_BLOCKS + 1) for s in ("input", "recurrent")]
    names += [f"enc_conv{b}" for b in range(1, NB_BLOCKS + 1)]
    if "enc_conv_dense1" in params:
        names += [f"enc_conv_dense{b}" for b in range(1, NB_BLOCKS + 1)]
    missing = [n for n in names if n not in params]
    if missing:
        raise EncoderError(f"model lacks encoder layers: {', '.join(missing)}")
    for name, dim, what in (("enc_zdense", latent_dim, "latent_dim"), ("gdense2", state_dim, "state_dim")):
        if not 0 < dim <= _nb_outputs(params[name]):
            raise EncoderError(f"{what}={dim} does not fit {name}'s {_nb_outputs(params[name])} outputs")
        params[name] = _keep_outputs(params[name], dim)
    return params


def encoder_params_from_pack(pack: Any) -> Params:
    """Encoder parameters from an ``opus_dred.models`` pack (``.arrays``, the encoder's entries of
    ``.manifest["layers"]`` and the ``DRED_LATENT_DIM`` / ``DRED_STATE_DIM`` of ``.manifest["constants"]``)."""
    constants = pack.manifest["constants"]
    layers = pack.manifest["layers"]
    items = layers.items() if isinstance(layers, Mapping) else ((d["name"], d) for d in layers)
    shapes = layer_shapes({name: d for name, d in items if _is_encoder_layer(name)})
    return load_encoder_params(pack.arrays, shapes, int(constants["DRED_LATENT_DIM"]),
                               int(constants["DRED_STATE_DIM"]))


def _nb_outputs(p: dict) -> int:
    return int(np.shape(p["bias"])[-1])


def latent_dim(params: Params) -> int:
    """Width of one latent (21 for 1.5.2, 25 for 1.6.1; 1.6.1's decoder appends the quantiser feature)."""
    return _nb_outputs(params["enc_zdense"])


def state_dim(params: Params) -> int:
    """Width of one initial state (19 for 1.5.2, 50 for 1.6.1)."""
    return _nb_outputs(params["gdense2"])


def _gru_size(params: Params, b: int) -> int:
    return nnet.nb_inputs(params[f"enc_gru{b}_recurrent"])


def _conv_input_width(params: Params, b: int) -> int:
    """What block ``b``'s conv takes per frame: the squeeze (1.6.1) or the buffer built so far (1.5.2)."""
    if "enc_conv_dense1" in params:
        return _nb_outputs(params[f"enc_conv_dense{b}"])
    width = _nb_outputs(params["enc_dense1"])
    for j in range(1, b + 1):
        width += _gru_size(params, j) + (_nb_outputs(params[f"enc_conv{j}"]) if j < b else 0)
    return width


def _conv_mem_size(params: Params, b: int) -> int:
    """``(k - 1) * dilation * width`` values: libopus' ``conv{b}_state`` (``2 * ENC_CONV{b}_STATE_SIZE`` when
    dilated)."""
    width = _conv_input_width(params, b)
    nb_in = nnet.nb_inputs(params[f"enc_conv{b}"])
    if nb_in % width:
        raise EncoderError(f"enc_conv{b} takes {nb_in} inputs, not a multiple of its input width {width}")
    return (nb_in // width - 1) * DILATIONS[b - 1] * width


# ---------------------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------------------


def init_encoder_carry(params: Params, batch_shape: tuple[int, ...] = (), dtype=jnp.float32) -> dict:
    """The zeroed ``RDOVAEEncState`` (``dred_encoder_reset``): ``{"gru": (s1..s5), "conv": (m1..m5)}``, with
    leading axes ``batch_shape`` (one carry per stream)."""
    batch_shape = tuple(batch_shape)
    grus = tuple(jnp.zeros(batch_shape + (_gru_size(params, b),), dtype) for b in range(1, NB_BLOCKS + 1))
    convs = tuple(jnp.zeros(batch_shape + (_conv_mem_size(params, b),), dtype) for b in range(1, NB_BLOCKS + 1))
    return {"gru": grus, "conv": convs}


def encode_dframe(params: Params, carry: dict, frames, num: Numerics = FLOAT, *, linear=nnet.linear):
    """``dred_rdovae_encode_dframe``: two feature frames ``[..., 2, 20]`` (older first) -> (new carry,
    latent ``[..., latent_dim]``, initial state ``[..., state_dim]``).

    Leading axes of ``frames`` are streams, with a carry of the same leading axes (:func:`init_encoder_carry`);
    ``linear`` computes every layer's ``x @ W + b`` (:func:`~opus_dred.refimpl._nnet.linear` or another
    implementation of the same arithmetic).
    """
    frames = jnp.asarray(frames)
    if frames.shape[-2:] != (FRAMES_PER_STEP, NUM_FEATURES):
        raise EncoderError(f"frames must be [..., {FRAMES_PER_STEP}, {NUM_FEATURES}] (two 10 ms frames of the "
                           f"DRED features), got shape {frames.shape}")
    x = frames.reshape(frames.shape[:-2] + (FRAMES_PER_STEP * NUM_FEATURES,))
    has_conv_dense = "enc_conv_dense1" in params
    buf = nnet.dense(params["enc_dense1"], x, num, linear=linear)
    grus, convs = [], []
    for b in range(1, NB_BLOCKS + 1):
        s = nnet.gru(params[f"enc_gru{b}_input"], params[f"enc_gru{b}_recurrent"], carry["gru"][b - 1], buf, num,
                     linear=linear)
        grus.append(s)
        buf = jnp.concatenate([buf, s], axis=-1)
        conv_in = nnet.dense(params[f"enc_conv_dense{b}"], buf, num, linear=linear) if has_conv_dense else buf
        y, mem = nnet.conv1d_dilated(params[f"enc_conv{b}"], carry["conv"][b - 1], conv_in, num, DILATIONS[b - 1],
                                     linear=linear)
        convs.append(mem)
        buf = jnp.concatenate([buf, y], axis=-1)
    latent = nnet.dense(params["enc_zdense"], buf, num, activation="linear", linear=linear)
    hidden = nnet.dense(params["gdense1"], buf, num, linear=linear)
    state = nnet.dense(params["gdense2"], hidden, num, activation="linear", linear=linear)
    return {"gru": tuple(grus), "conv": tuple(convs)}, latent, state


def feature_pairs(features) -> jnp.ndarray:
    """``[T, 20]`` or ``[T, 36]`` feature frames (oldest first) -> ``[T // 2, 2, 20]`` encoder inputs.

    Of 36 values per frame only the first 20 are taken (``dred_process_frame`` drops the LPC); a trailing
    odd frame is left out (libopus runs the encoder once it holds two frames)."""
    features = jnp.asarray(features)
    if features.ndim != 2 or features.shape[-1] not in (NUM_FEATURES, NB_TOTAL_FEATURES):
        raise EncoderError(f"features must be [T, {NUM_FEATURES}] or [T, {NB_TOTAL_FEATURES}], "
                           f"got shape {features.shape}")
    steps = features.shape[0] // FRAMES_PER_STEP
    return features[:steps * FRAMES_PER_STEP, :NUM_FEATURES].reshape(steps, FRAMES_PER_STEP, NUM_FEATURES)


def encode_steps(params: Params, carry: dict, pairs, num: Numerics = FLOAT, *, linear=nnet.linear):
    """:func:`encode_dframe` over ``[S, 2, 20]`` steps, oldest first (``lax.scan``), from ``carry``:
    ``(final carry, latents [S, latent_dim], states [S, state_dim])``, for a stream that continues."""
    def step(c, frames):
        c, latent, state = encode_dframe(params, c, frames, num, linear=linear)
        return c, (latent, state)

    carry, (latents, states) = jax.lax.scan(step, carry, jnp.asarray(pairs))
    return carry, latents, states


def encode_features(params: Params, features, num: Numerics = FLOAT, *, linear=nnet.linear):
    """Encode a stream of feature frames from the zeroed state: ``[T, 20]`` (or ``[T, 36]``), oldest first ->
    ``(latents [T // 2, latent_dim], states [T // 2, state_dim])``, one per 20 ms step, oldest first.

    Step ``i`` encodes frames ``2 i`` and ``2 i + 1``, what libopus' ``dred_process_frame`` writes to row 0 of
    its newest-first ``latents_buffer`` / ``state_buffer`` at that step. ``num`` selects the arithmetic
    (static under jit), ``linear`` its implementation of the layers' products.
    """
    pairs = feature_pairs(features)
    carry = init_encoder_carry(params, dtype=pairs.dtype)
    _, latents, states = encode_steps(params, carry, pairs, num, linear=linear)
    return latents, states


#: ``jax.jit(encode_features)`` with ``num`` (and ``linear``) static.
encode_features_jit = jax.jit(encode_features, static_argnames=("num", "linear"))
