"""The RDO-VAE decoder of DRED in pure JAX: initial state + dequantised latents -> feature frames.

Our formulation of libopus' ``dnn/dred_rdovae_dec.c`` (``dred_rdovae_dec_init_states``,
``dred_rdovae_decode_qframe``, ``DRED_rdovae_decode_all``), for both model generations:

* **libopus 1.5.2** (DRED experimental version 10): latent 21, state 19, GRUs of 96 units; each
  ``dec_conv{b}`` is a kernel-2 convolution over ``[previous buffer prefix, current buffer prefix]``.
* **libopus 1.6.1** (version 12): latent 25 + 1 quantiser feature (``q_level/8 - 1``, the last column of
  the dequantised latents), state 50, GRUs of 64 units; ``dec_conv_dense{b}`` (32, tanh) squeezes the
  buffer first, and ``dec_conv{b}`` convolves ``[previous squeeze, current squeeze]``.

The architecture is read from the parameter shapes, so one code path serves both. Parameters are a
pytree ``{layer name: layer dict}`` (see :mod:`opus_dred.refimpl._nnet`) keyed by the libopus layer names
(``dec_dense1``, ``dec_hidden_init``, ``dec_gru_init``, ``dec_gru{b}_input``, ``dec_gru{b}_recurrent``,
``dec_glu{b}``, ``dec_conv_dense{b}``, ``dec_conv{b}``, ``dec_output``).

Per latent (newest first) the decoder emits 80 values: four 20-dim feature frames, newest first, exactly
the slice ``fec_features[80 k : 80 k + 80]`` of libopus' ``OpusDRED`` (``DRED_rdovae_decode_all`` writes
latent ``k`` at ``2 * (2 k) * 20``). :func:`decode_features` returns them reshaped to ``[4 * nb, 20]``.

Everything is a pure function: ``jax.jit`` (``num`` static), ``jax.vmap`` over packets and ``jax.grad``
(with :data:`~opus_dred.refimpl._nnet.FLOAT` numerics) apply from outside. :func:`init_carry` and
:func:`decode_step` also take a batch of packets (leading axes) and the implementation of the layers' products
(``linear``), so that a faster path can run this same step with its own kernels (``opus_dred.accel``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

import jax
import jax.numpy as jnp

from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl._nnet import FLOAT, Numerics

NUM_FEATURES = 20
FRAMES_PER_LATENT = 4
NB_BLOCKS = 5

Params = dict[str, dict[str, Any]]


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


def layer_shapes(manifest_layers: Any) -> dict[str, tuple[int, int]]:
    """``{layer: (nb_inputs, nb_outputs)}`` from a model pack's ``manifest["layers"]``.

    Accepts a mapping ``name -> {"nb_inputs", "nb_outputs", ...}`` or a list of such dicts with a
    ``"name"`` key (the ``linear_init`` calls of ``init_rdovaedec``).
    """
    if isinstance(manifest_layers, Mapping):
        items = manifest_layers.items()
    else:
        items = ((d["name"], d) for d in manifest_layers)
    out = {}
    for name, d in items:
        if isinstance(d, Mapping):
            if d.get("kind", "linear") != "linear":
                continue  # PitchDNN's conv2d layers carry their own shape fields
            out[name] = (int(d["nb_inputs"]), int(d["nb_outputs"]))
        else:
            nb_in, nb_out = d
            out[name] = (int(nb_in), int(nb_out))
    return out


def load_params(arrays: Mapping[str, np.ndarray], layers: Mapping[str, tuple[int, int]]) -> Params:
    """Unpack the decoder's C arrays (``dnn/dred_rdovae_dec_data.c`` names) into dense JAX parameters.

    ``layers`` maps each ``dec_*`` layer name to ``(nb_inputs, nb_outputs)``; layers not starting with
    ``dec_`` are ignored. Done once, in numpy.
    """
    params = {}
    for name, (nb_in, nb_out) in layers.items():
        if not name.startswith("dec_"):
            continue
        params[name] = nnet.unpack_linear(arrays, name, nb_in, nb_out)
    missing = [n for n in ("dec_dense1", "dec_hidden_init", "dec_gru_init", "dec_output") if n not in params]
    missing += [f"dec_{k}{b}" for b in range(1, NB_BLOCKS + 1)
                for k in ("glu", "conv") if f"dec_{k}{b}" not in params]
    missing += [f"dec_gru{b}_{s}" for b in range(1, NB_BLOCKS + 1) for s in ("input", "recurrent")
                if f"dec_gru{b}_{s}" not in params]
    if missing:
        raise ValueError(f"model lacks decoder layers: {', '.join(missing)}")
    return params


def params_from_pack(pack: Any) -> Params:
    """Parameters from an ``opus_dred.models._pack`` object (``.arrays`` and ``.manifest["layers"]``)."""
    return load_params(pack.arrays, layer_shapes(pack.manifest["layers"]))


def float_params(params: Params) -> Params:
    """The float-path subset of ``params`` (drops the integer ``weight_q`` leaves), for ``jax.grad``."""
    return {k: {n: v for n, v in p.items() if n == "weight" or n == "bias"} for k, p in params.items()}


def latent_dim(params: Params) -> int:
    """Width of one dequantised latent as the decoder takes it (21 for 1.5.2, 25 + 1 for 1.6.1)."""
    return nnet.nb_inputs(params["dec_dense1"])


def state_dim(params: Params) -> int:
    """Width of the initial state (19 for 1.5.2, 50 for 1.6.1)."""
    return nnet.nb_inputs(params["dec_hidden_init"])


def _gru_size(params: Params, b: int) -> int:
    return nnet.nb_inputs(params[f"dec_gru{b}_recurrent"])


def _conv_mem_size(params: Params, b: int) -> int:
    return nnet.nb_inputs(params[f"dec_conv{b}"]) // 2


# ---------------------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------------------


def init_carry(params: Params, state, num: Numerics = FLOAT, *, linear=nnet.linear) -> dict:
    """``dred_rdovae_dec_init_states``: GRU states from the initial state, conv memories zero.

    ``hidden = tanh(dec_hidden_init(state))``; ``tanh(dec_gru_init(hidden))`` is split into the five
    GRU states in order. Returns ``{"gru": (s1..s5), "conv": (m1..m5)}``. ``state`` may carry leading
    batch axes; ``linear`` computes every layer's ``x @ W + b`` (:func:`~opus_dred.refimpl._nnet.linear`,
    or another implementation of the same arithmetic).
    """
    state = jnp.asarray(state)
    if state.shape[-1] != state_dim(params):
        raise ValueError(f"initial state has width {state.shape[-1]}, the model takes {state_dim(params)}")
    hidden = nnet.dense(params["dec_hidden_init"], state, num, linear=linear)
    g = nnet.dense(params["dec_gru_init"], hidden, num, linear=linear)
    grus, off = [], 0
    for b in range(1, NB_BLOCKS + 1):
        n = _gru_size(params, b)
        grus.append(g[..., off:off + n])
        off += n
    if off != g.shape[-1]:
        raise ValueError("dec_gru_init output does not match the GRU sizes")
    convs = tuple(jnp.zeros(state.shape[:-1] + (_conv_mem_size(params, b),), state.dtype)
                  for b in range(1, NB_BLOCKS + 1))
    return {"gru": tuple(grus), "conv": convs}


def decode_step(params: Params, carry: dict, latent, num: Numerics = FLOAT, *, linear=nnet.linear):
    """``dred_rdovae_decode_qframe``: one latent -> (new carry, 80 outputs = 4 frames newest first).

    The buffer starts as ``tanh(dec_dense1(latent))``; each block b appends ``glu_b(GRU_b(buffer))`` and
    a conv output (1.6.1: ``conv_b([mem, tanh(conv_dense_b(buffer))])``; 1.5.2: ``conv_b([mem, buffer])``);
    ``dec_output`` maps the whole buffer linearly to the 80 outputs. Works on ``[..., latent_dim]`` latents
    with a carry of the same leading axes (a batch of packets); ``linear`` as in :func:`init_carry`.
    """
    has_conv_dense = "dec_conv_dense1" in params
    buf = nnet.dense(params["dec_dense1"], latent, num, linear=linear)
    grus, convs = [], []
    for b in range(1, NB_BLOCKS + 1):
        s = nnet.gru(params[f"dec_gru{b}_input"], params[f"dec_gru{b}_recurrent"], carry["gru"][b - 1], buf, num,
                     linear=linear)
        grus.append(s)
        buf = jnp.concatenate([buf, nnet.glu(params[f"dec_glu{b}"], s, num, linear=linear)], axis=-1)
        conv_in = nnet.dense(params[f"dec_conv_dense{b}"], buf, num, linear=linear) if has_conv_dense else buf
        y, mem = nnet.conv1d(params[f"dec_conv{b}"], carry["conv"][b - 1], conv_in, num, linear=linear)
        convs.append(mem)
        buf = jnp.concatenate([buf, y], axis=-1)
    out = nnet.dense(params["dec_output"], buf, num, activation="linear", linear=linear)
    return {"gru": tuple(grus), "conv": tuple(convs)}, out


def decode_latents(params: Params, state, latents, num: Numerics = FLOAT, *, linear=nnet.linear):
    """``DRED_rdovae_decode_all`` for one packet: ``[nb, latent_dim]`` -> ``[nb, 80]`` (``lax.scan``)."""
    latents = jnp.asarray(latents)
    if latents.ndim != 2:
        raise ValueError(f"latents must be [nb_latents, {latent_dim(params)}], got shape {latents.shape}")
    if latents.shape[-1] != latent_dim(params):
        raise ValueError(f"latents have width {latents.shape[-1]}, the model takes {latent_dim(params)}"
                         " (1.6.1 latents carry the quantiser feature as their last column)")
    state = jnp.asarray(state, latents.dtype)
    carry = init_carry(params, state, num, linear=linear)

    def step(c, z):
        return decode_step(params, c, z, num, linear=linear)

    _, outs = jax.lax.scan(step, carry, latents)
    return outs


def decode_features(params: Params, state, latents, num: Numerics = FLOAT, *, linear=nnet.linear):
    """Features of one DRED payload in ``OpusDRED.fec_features`` order: ``[4 * nb_latents, 20]``.

    ``state``: ``[state_dim]`` dequantised initial state; ``latents``: ``[nb_latents, latent_dim]``
    dequantised latents, newest first (1.6.1: the quantiser feature last). Row ``4 k + j`` is the
    j-th newest 10 ms frame covered by latent k. ``num`` selects the arithmetic (static under jit), ``linear``
    its implementation of the layers' products (:func:`init_carry`).
    """
    outs = decode_latents(params, state, latents, num, linear=linear)
    return outs.reshape(-1, NUM_FEATURES)


#: ``jax.jit(decode_features)`` with ``num`` (and ``linear``) static.
decode_features_jit = jax.jit(decode_features, static_argnames=("num", "linear"))
