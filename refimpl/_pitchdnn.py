"""PitchDNN, the pitch estimator of libopus' LPCNet feature extractor, in pure JAX.

Our formulation of ``dnn/pitchdnn.c:compute_pitchdnn`` (the same code in libopus 1.5.2 and 1.6.1; only the
weights, ``dnn/pitchdnn_data.c``, differ) on top of the layer primitives of :mod:`opus_dred.refimpl._nnet`.
Per 10 ms frame it takes the 88 instantaneous-frequency features and the 224 normalised cross-correlations
that ``dnn/lpcnet_enc.c`` computes and returns ``dnn_pitch``:

* IF branch: ``dense_if_upsampler_1`` (88 -> 64, tanh), ``dense_if_upsampler_2`` (64 -> 64, tanh);
* xcorr branch: the 224 values, padded with one zero on each side, go through ``conv2d_1`` (1 -> 4 channels,
  3x3 over (time, lag), tanh), whose outputs are padded the same way, then ``conv2d_2`` (4 -> 1, 3x3, tanh);
  each convolution keeps its last two input frames as state;
* ``dense_downsampler`` ([xcorr branch 224 | IF branch 64] -> 64, tanh), ``gru_1`` (64 units) and
  ``dense_final_upsampler`` (64 -> 192, linear);
* the estimate: ``pos``, the first index of the largest of the first 180 outputs that exceeds -1 (0 if none
  does); softmax weights ``exp(out[i])`` over ``i = pos-2 .. pos+2`` clipped to [0, 179]; ``dnn_pitch =
  (sum_i i e^out[i] / sum_i e^out[i]) / 60 - 1.5``: a log2 pitch scale, bin ``i`` standing for a period of
  ``256 / 2^(i/60)`` samples at 16 kHz (the commented-out alternative return of compute_pitchdnn).

Parameters are a pytree ``{layer name: layer dict}`` keyed by the libopus names; the state is a pytree
``{"gru": [..., 64], "conv1": [..., 2, 1, 226], "conv2": [..., 2, 4, 226]}`` (the GRU state and the two
``xcorr_mem`` buffers of ``PitchDNNState``, as padded frames). :func:`pitchdnn_step` is pure: ``jax.jit``
(``num`` static) and ``jax.vmap`` over streams apply from outside, and leading batch axes work directly.
:class:`PitchDNN` is a small stateful wrapper for a batch of streams.

Arithmetic (``docs/numerics.md``, "PitchDNN"): the emulation presets reproduce libopus' int8 dense and GRU
layers as the decoder does, the convolutions in the compiled order (:func:`~opus_dred.refimpl._nnet.conv2d`),
and the estimate's ``(float) exp((double) x)`` with :func:`exp_rounded`, a float32 computation of the
correctly rounded exponential (XLA's own ``exp`` is off by an ulp for about one float32 in ten).
"""

from __future__ import annotations

import decimal
import functools
import math
from typing import Any

import numpy as np

import jax
import jax.numpy as jnp

from opus_dred.bitstream._profiles import Profile, UnknownProfileError, get_profile
from opus_dred.errors import OpusDredError
from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl._nnet import FLOAT, LIBOPUS_AVX2, NUMERICS, Numerics

#: inputs per frame (dnn/lpcnet_private.h PITCH_IF_FEATURES, dnn/pitchdnn.h NB_XCORR_FEATURES)
NB_IF_FEATURES = 88
NB_XCORR_FEATURES = 224
#: outputs of ``dense_final_upsampler`` that the estimate reads (the loop bound of compute_pitchdnn)
PITCH_BINS = 180

LINEAR_LAYERS = ("dense_if_upsampler_1", "dense_if_upsampler_2", "dense_downsampler", "dense_final_upsampler",
                 "gru_1_input", "gru_1_recurrent")
CONV_LAYERS = ("conv2d_1", "conv2d_2")

Params = dict[str, dict[str, Any]]


class PitchDNNError(OpusDredError, ValueError):
    """A PitchDNN model, state or input that does not fit (missing layers, wrong widths, batch sizes)."""


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


def load_pitchdnn_params(arrays, layers) -> Params:
    """Unpack PitchDNN's C arrays (``dnn/pitchdnn_data.c`` names) into dense JAX parameters, once, in numpy.

    ``layers`` is a model pack's ``manifest["layers"]`` mapping (the ``linear_init`` / ``conv2d_init`` calls
    of ``init_pitchdnn``); only the layers of :data:`LINEAR_LAYERS` and :data:`CONV_LAYERS` are read.
    """
    missing = [n for n in LINEAR_LAYERS + CONV_LAYERS if n not in layers]
    if missing:
        raise PitchDNNError(f"model lacks PitchDNN layers: {', '.join(missing)}")
    params: Params = {}
    for name in LINEAR_LAYERS + CONV_LAYERS:
        d = layers[name]
        try:
            if name in CONV_LAYERS:
                if d.get("kind") != "conv2d":
                    raise ValueError(f"kind {d.get('kind')!r}, expected 'conv2d'")
                params[name] = nnet.unpack_conv2d(arrays, name, int(d["in_channels"]), int(d["out_channels"]),
                                                  int(d["ktime"]), int(d["kheight"]))
            else:
                params[name] = nnet.unpack_linear(arrays, name, int(d["nb_inputs"]), int(d["nb_outputs"]))
        except (KeyError, ValueError) as exc:
            raise PitchDNNError(f"layer {name}: {exc}") from None
    _check_architecture(params)
    return params


def _check_architecture(params: Params) -> None:
    """The wiring compute_pitchdnn assumes, checked on the shapes (raises :class:`PitchDNNError`)."""
    c1, c2 = params["conv2d_1"]["weight"].shape, params["conv2d_2"]["weight"].shape
    n_if = _nb_outputs(params["dense_if_upsampler_2"])
    gru = nnet.nb_inputs(params["gru_1_recurrent"])
    checks = [
        ("dense_if_upsampler_1 inputs", nnet.nb_inputs(params["dense_if_upsampler_1"]), NB_IF_FEATURES),
        ("conv2d_1 input channels", c1[1], 1),
        ("conv2d_2 input channels", c2[1], c1[0]),
        ("conv2d_2 output channels", c2[0], 1),
        ("dense_downsampler inputs", nnet.nb_inputs(params["dense_downsampler"]), NB_XCORR_FEATURES + n_if),
        ("gru_1_input inputs", nnet.nb_inputs(params["gru_1_input"]), _nb_outputs(params["dense_downsampler"])),
        ("gru_1_input outputs", _nb_outputs(params["gru_1_input"]), 3 * gru),
        ("dense_final_upsampler inputs", nnet.nb_inputs(params["dense_final_upsampler"]), gru),
    ]
    if _nb_outputs(params["dense_final_upsampler"]) < PITCH_BINS:
        checks.append(("dense_final_upsampler outputs", _nb_outputs(params["dense_final_upsampler"]),
                       f">= {PITCH_BINS}"))
    bad = [f"{what} is {got}, expected {want}" for what, got, want in checks if got != want]
    if bad:
        raise PitchDNNError("not the PitchDNN architecture: " + "; ".join(bad))


def _nb_outputs(p: dict) -> int:
    return int(np.shape(p["bias"])[0])


def pitchdnn_params(pack_or_profile: Any) -> Params:
    """PitchDNN's parameters from a model pack (an ``opus_dred.models`` pack object or id) or a profile (a
    ``Profile`` or its name: its ``model_pack`` is read). A name is looked up as a profile first."""
    src = pack_or_profile
    if isinstance(src, Profile):
        src = load_pack(src.model_pack)
    elif isinstance(src, str):
        try:
            src = load_pack(get_profile(src).model_pack)
        except UnknownProfileError:
            src = load_pack(src)
    if not hasattr(src, "arrays") or not hasattr(src, "manifest"):
        raise PitchDNNError(f"pack_or_profile must be a model pack, a pack id, a Profile or a profile name, "
                            f"got {type(pack_or_profile).__name__}")
    return load_pitchdnn_params(src.arrays, src.manifest["layers"])


@functools.cache
def _cached_params(name: str) -> Params:
    return pitchdnn_params(name)


def gru_size(params: Params) -> int:
    return nnet.nb_inputs(params["gru_1_recurrent"])


def init_pitch_state(params: Params, batch: int | tuple[int, ...] | None = None, dtype=jnp.float32) -> dict:
    """``pitchdnn_init``'s state: the GRU state and both convolution memories at zero.

    ``batch``: ``None`` for one stream, an int or a shape for leading batch axes.
    """
    shape = () if batch is None else ((batch,) if isinstance(batch, int) else tuple(batch))
    w1, w2 = params["conv2d_1"]["weight"], params["conv2d_2"]["weight"]
    return {
        "gru": jnp.zeros(shape + (gru_size(params),), dtype),
        "conv1": jnp.zeros(shape + (w1.shape[2] - 1, w1.shape[1], NB_XCORR_FEATURES + w1.shape[3] - 1), dtype),
        "conv2": jnp.zeros(shape + (w2.shape[2] - 1, w2.shape[1], NB_XCORR_FEATURES + w2.shape[3] - 1), dtype),
    }


# ---------------------------------------------------------------------------------------------------
# The correctly rounded exponential, in float32
# ---------------------------------------------------------------------------------------------------

#: the range exp_rounded works on; below, every result rounds to 0, above, to infinity
_EXP_LO, _EXP_HI = -104, 89
#: 2^-8 steps of the second table
_EXP_STEP = 256


def _hi_lo(values) -> tuple[np.ndarray, np.ndarray]:
    """Decimals as float32 pairs ``hi + lo`` (``hi`` the float32 nearest the double nearest, ``lo`` the rest)."""
    hi = np.array([np.float32(float(v)) for v in values], np.float32)
    lo = np.array([np.float32(float(v - decimal.Decimal(float(h)))) for v, h in zip(values, hi)], np.float32)
    return hi, lo


@functools.cache
def _exp_tables() -> dict[str, np.ndarray]:
    """``e^n = (n_hi + n_lo) 2^n_exp`` with ``n_hi`` in [1, 2) for the integers of [_EXP_LO, _EXP_HI], and
    ``e^(j/256) = j_hi + j_lo`` for j in [-128, 128]; computed in 40-digit decimal arithmetic."""
    ctx = decimal.Context(prec=40)
    mant, expo = [], []
    for n in range(_EXP_LO, _EXP_HI + 1):
        v = ctx.exp(decimal.Decimal(n))
        e = math.frexp(float(v))[1] - 1  # e^n is no power of two, so its double has the same exponent
        mant.append(ctx.divide(v, ctx.power(decimal.Decimal(2), e)))
        expo.append(e)
    n_hi, n_lo = _hi_lo(mant)
    j_hi, j_lo = _hi_lo([ctx.exp(ctx.divide(decimal.Decimal(j), _EXP_STEP))
                         for j in range(-_EXP_STEP // 2, _EXP_STEP // 2 + 1)])
    return {"n_hi": n_hi, "n_lo": n_lo, "n_exp": np.array(expo, np.int32), "j_hi": j_hi, "j_lo": j_lo}


def _split(a):
    """Veltkamp's split of a float32 into two halves of 12 significant bits, ``a = hi + lo`` exactly."""
    c = nnet._unfused(np.float32(4097.0) * a)
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    """Dekker's product: ``a b = p + e`` exactly, ``p`` the rounded product (no FMA needed)."""
    p = nnet._unfused(a * b)
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _fast_two_sum(a, b):
    """``a + b = s + e`` exactly, for ``|a| >= |b|``."""
    s = a + b
    return s, b - (s - a)


def _pow2(e):
    """``2^e`` as float32 for ``e`` in [-126, 127] (built from its bits)."""
    return jax.lax.bitcast_convert_type(((e + 127) << 23).astype(jnp.uint32), jnp.float32)


def exp_rounded(x):
    """``e^x`` for float32 ``x``, correctly rounded to float32 but in rare cases: what libopus'
    ``(float) exp((double) x)`` gives (dnn/pitchdnn.c calls the C library's double ``exp``).

    ``x = n + j/256 + g`` exactly (``n``, ``j`` integers, ``|g| <= 2^-9``); ``e^n`` and ``e^(j/256)`` come from
    tables of float32 pairs, ``e^g - 1`` from its Taylor series to ``g^4`` with ``g^2`` split exactly, and the
    three factors are multiplied in double-float32 arithmetic (Dekker's products, no FMA): about 45 correct
    bits before the final rounding, so a result can differ from the correctly rounded one only where the
    exact value lies within about 2^-45 (relative) of a rounding midpoint, or where it is a subnormal float32
    (``x < -87.3``, rounded twice). ``x`` above 89 gives infinity, below -104 zero, NaN NaN.
    """
    x = jnp.asarray(x, jnp.float32)
    t = {k: jnp.asarray(v) for k, v in _exp_tables().items()}
    xc = jnp.clip(x, float(_EXP_LO), float(_EXP_HI))
    n = jnp.round(xc)
    f = xc - n  # exact: the fraction of a float32
    j = jnp.round(f * _EXP_STEP)
    g = f - j / _EXP_STEP  # exact, |g| <= 2^-9
    ni = n.astype(jnp.int32) - _EXP_LO
    ji = j.astype(jnp.int32) + _EXP_STEP // 2
    # P = e^n e^(j/256) (without its power of two) as ph + pl
    eh, el = t["n_hi"][ni], t["n_lo"][ni]
    th, tl = t["j_hi"][ji], t["j_lo"][ji]
    ph, pe = _two_prod(eh, th)
    pl = pe + (eh * tl + el * th)
    # q = e^g - 1 = g + g^2/2 + g^3/6 + g^4/24 as qh + ql
    s, se = _two_prod(g, g)
    qh, qe = _fast_two_sum(g, 0.5 * s)
    ql = qe + (0.5 * se + (g * s * np.float32(1 / 6) + s * s * np.float32(1 / 24)))
    # P (1 + q) = ph + ph qh + (pl + ph ql + pl qh), rounded once
    a, ae = _two_prod(ph, qh)
    lo = pl + ae + ph * ql + pl * qh
    hi, he = _fast_two_sum(ph, a)
    r = hi + (he + lo)
    e = t["n_exp"][ni]
    e1 = e // 2
    y = (r * _pow2(e1)) * _pow2(e - e1)
    return jnp.where(jnp.isnan(x), jnp.nan, y)


# ---------------------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------------------


def _pad_height(x):
    """One zero before and after the last axis (compute_pitchdnn's ``conv1_tmp`` buffers)."""
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(1, 1)])


def pitch_estimate(logits, num: Numerics = FLOAT):
    """compute_pitchdnn's last lines: from ``dense_final_upsampler``'s outputs ``[..., >= 180]`` to ``dnn_pitch``.

    ``pos`` is the first index of the maximum of the first 180 outputs if that maximum exceeds -1, else 0;
    the estimate is the softmax-weighted mean index over ``pos-2 .. pos+2`` (clipped to [0, 179]) divided
    by 60, minus 1.5. The emulation presets accumulate in libopus' order with its roundings and
    :func:`exp_rounded`; ``FLOAT`` uses XLA's ``exp`` and arithmetic.
    """
    out = logits[..., :PITCH_BINS]
    emulate = num.matmul == "int8"
    top = jnp.max(out, axis=-1)
    pos = jnp.where(top > -1.0, jnp.argmax(out, axis=-1), 0).astype(jnp.int32)
    total = jnp.zeros(out.shape[:-1], out.dtype)
    count = jnp.zeros(out.shape[:-1], out.dtype)
    for k in range(-2, 3):
        i = pos + k
        inside = (i >= 0) & (i < PITCH_BINS)
        v = jnp.take_along_axis(out, jnp.clip(i, 0, PITCH_BINS - 1)[..., None], axis=-1)[..., 0]
        p = jnp.where(inside, exp_rounded(v) if emulate else jnp.exp(v), 0.0).astype(out.dtype)
        fi = i.astype(out.dtype)
        total = total + (nnet._unfused(p * fi) if emulate else p * fi)
        count = count + p
    mean = total / count
    c = np.float32(1.0 / 60.0)
    return (nnet._unfused(c * mean) if emulate else c * mean) - 1.5


def pitchdnn_step(params: Params, state: dict, if_features, xcorr_features, num: Numerics = FLOAT):
    """``compute_pitchdnn``: one 10 ms frame -> (new state, ``dnn_pitch``).

    ``if_features``: ``[..., 88]``; ``xcorr_features``: ``[..., 224]``; ``state`` from
    :func:`init_pitch_state` with the same leading axes. ``num`` selects the arithmetic (static under
    ``jit``).
    """
    iff = jnp.asarray(if_features)
    xc = jnp.asarray(xcorr_features, iff.dtype)
    if iff.shape[-1] != NB_IF_FEATURES:
        raise PitchDNNError(f"if_features has width {iff.shape[-1]}, PitchDNN takes {NB_IF_FEATURES}")
    if xc.shape[-1] != NB_XCORR_FEATURES:
        raise PitchDNNError(f"xcorr_features has width {xc.shape[-1]}, PitchDNN takes {NB_XCORR_FEATURES}")
    if1 = nnet.dense(params["dense_if_upsampler_1"], iff, num)
    if2 = nnet.dense(params["dense_if_upsampler_2"], if1, num)
    c1, mem1 = nnet.conv2d(params["conv2d_1"], state["conv1"], _pad_height(xc)[..., None, :], num)
    c2, mem2 = nnet.conv2d(params["conv2d_2"], state["conv2"], _pad_height(c1), num)
    down = nnet.dense(params["dense_downsampler"], jnp.concatenate([c2[..., 0, :], if2], axis=-1), num)
    gru = nnet.gru(params["gru_1_input"], params["gru_1_recurrent"], state["gru"], down, num)
    logits = nnet.dense(params["dense_final_upsampler"], gru, num, activation="linear")
    return {"gru": gru, "conv1": mem1, "conv2": mem2}, pitch_estimate(logits, num)


#: ``jax.jit(pitchdnn_step)`` with ``num`` static.
pitchdnn_step_jit = jax.jit(pitchdnn_step, static_argnames=("num",))


def pitchdnn_frames(params: Params, if_features, xcorr_features, num: Numerics = FLOAT, state: dict | None = None):
    """:func:`pitchdnn_step` over frames (``lax.scan`` over the first axis): ``[T, ..., 88]``, ``[T, ..., 224]``
    -> (final state, ``dnn_pitch [T, ...]``), from ``state`` or a fresh one."""
    iff = jnp.asarray(if_features)
    xc = jnp.asarray(xcorr_features, iff.dtype)
    if state is None:
        state = init_pitch_state(params, iff.shape[1:-1], iff.dtype)

    def step(s, frame):
        return pitchdnn_step(params, s, frame[0], frame[1], num)

    return jax.lax.scan(step, state, (iff, xc))


# ---------------------------------------------------------------------------------------------------
# A stateful wrapper
# ---------------------------------------------------------------------------------------------------


class PitchDNN:
    """PitchDNN for a batch of streams, frame by frame (libopus' ``PitchDNNState`` per stream).

    ``profile``: a profile or pack (see :func:`pitchdnn_params`); ``numerics``: a :class:`Numerics` or the
    name of a preset of ``opus_dred.refimpl._nnet.NUMERICS`` (``"avx2"``, ``"sse2"``, ``"float"``, ...).
    The state is made on the first :meth:`step`, for its batch size.
    """

    def __init__(self, profile: Any, numerics: Numerics | str = LIBOPUS_AVX2):
        if isinstance(numerics, str):
            if numerics not in NUMERICS:
                raise PitchDNNError(f"numerics {numerics!r} is none of {', '.join(NUMERICS)}")
            numerics = NUMERICS[numerics]
        if not isinstance(numerics, Numerics):
            raise PitchDNNError(f"numerics must be a Numerics or a preset name, got {type(numerics).__name__}")
        self.numerics = numerics
        self.params = _cached_params(profile) if isinstance(profile, str) else pitchdnn_params(profile)
        self.state: dict | None = None

    def reset(self) -> None:
        """Forget every stream's state (the next :meth:`step` starts afresh)."""
        self.state = None

    def step(self, if_features, xcorr_features) -> np.ndarray:
        """One 10 ms frame of each stream: ``[B, 88]`` and ``[B, 224]`` -> ``dnn_pitch [B]`` (float32)."""
        iff = np.asarray(if_features, np.float32)
        xc = np.asarray(xcorr_features, np.float32)
        if iff.ndim != 2 or xc.ndim != 2 or iff.shape[0] != xc.shape[0]:
            raise PitchDNNError(f"if_features and xcorr_features must be [B, {NB_IF_FEATURES}] and "
                                f"[B, {NB_XCORR_FEATURES}], got {iff.shape} and {xc.shape}")
        batch = iff.shape[0]
        if self.state is None:
            self.state = init_pitch_state(self.params, batch)
        elif self.state["gru"].shape[0] != batch:
            raise PitchDNNError(f"batch of {batch} streams, the state holds {self.state['gru'].shape[0]} "
                                f"(call reset() to change it)")
        self.state, pitch = pitchdnn_step_jit(self.params, self.state, iff, xc, num=self.numerics)
        return np.asarray(pitch)
