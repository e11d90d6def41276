"""FARGAN, libopus' neural vocoder (20 features per 10 ms -> 160 samples at 16 kHz), in pure JAX.

Our formulation of ``dnn/fargan.c`` on top of the layer primitives of :mod:`opus_dred.refimpl._nnet`. libopus
1.5.2 and 1.6.1 have the same ``fargan.c`` and the same weights (their ``dnn/fargan_data.c`` differ only in
white space; both model packs hold them):

* **Conditioning** (``compute_fargan_cond``, once per 10 ms frame): the pitch period ``P`` is read from the
  pitch feature (:func:`pitch_period`); the 12-value embedding row ``clip(P - 32, 0, 223)`` of
  ``cond_net_pembed`` is appended to the 20 features; ``cond_net_fdense1`` (float layer, 32 -> 64, tanh),
  ``cond_net_fconv1`` (a kernel-3 convolution over the last three frames, 192 -> 128, tanh) and
  ``cond_net_fdense2`` (128 -> 320, tanh) give 80 conditioning values for each of the four 40-sample subframes.
* **Subframe** (``run_fargan_subframe``): ``gain = e^(sig_net_cond_gain_dense(cond))``; the pitch prediction
  ``pred`` (44 past excitation samples one period back, repeated with the period, divided by the gain and
  clipped to [-1, 1]) and ``prev`` (the last 40 samples, likewise); ``sig_net_fwc0_conv`` (kernel 2 over
  ``[cond | pred | prev]``, tanh) and its GLU; four pitch gates (``sig_net_gain_dense_out``, float layer,
  sigmoid); three GRUs, each fed ``[previous output | gate * pred | prev]`` and followed by its GLU;
  ``sig_net_skip_dense`` over all of them (tanh) with its GLU; ``sig_net_sig_dense_out`` (40, tanh) times the
  gain is the excitation, which enters the pitch buffer; the output is its de-emphasis (``y[n] = x[n] +
  0.85 y[n-1]``).
* **Priming** (``fargan_cont``) from 320 known samples and 5 feature vectors, and **synthesis**
  (``fargan_synthesize``, ``fargan_synthesize_int``) of one frame per feature vector.

Parameters are a pytree ``{layer name: layer dict}`` keyed by the libopus names; the state is a pytree of the
fields of libopus' ``FARGANState`` (:func:`init_fargan_state`). Every function is pure: ``jax.jit`` (``num``
static) and ``jax.vmap`` over streams apply from outside, and leading batch axes work directly.
:class:`Fargan` is a small stateful wrapper.

Arithmetic (``docs/numerics.md``, "FARGAN"): the emulation presets run libopus' int8 and float layers as the
decoder does (the float layers' ``sgemv`` in its order, fused on AVX2); ``fargan.c`` itself is built without FMA,
so every product outside the kernels is rounded on its own; the gain's ``(float) exp((double) x)`` is the
correctly rounded :func:`~opus_dred.refimpl._pitchdnn.exp_rounded`; the period's double-precision ``pow`` is
replaced by an exact table of float32 thresholds (:func:`period_thresholds`).
"""

from __future__ import annotations

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
from opus_dred.refimpl._pitchdnn import exp_rounded

#: features per frame FARGAN reads (dnn/lpcnet.h NB_FEATURES) and the index of the pitch feature (NB_BANDS)
NB_FEATURES = 20
PITCH_FEATURE = 18
#: dnn/fargan.h
CONT_SAMPLES = 320
CONT_VECTORS = 5
NB_SUBFRAMES = 4
SUBFRAME_SIZE = 40
FRAME_SIZE = NB_SUBFRAMES * SUBFRAME_SIZE
DEEMPHASIS = np.float32(0.85)
#: dnn/lpcnet_private.h PITCH_MAX_PERIOD: the length of the excitation history
PITCH_MAX_PERIOD = 256
#: samples of pitch prediction per subframe (the subframe and two on each side)
PRED_SIZE = SUBFRAME_SIZE + 4
#: rows of the pitch embedding (periods 32 .. 255)
PEMBED_ROWS = 224
#: every period from this one up behaves alike: the embedding row is the last one, and all 44 prediction
#: positions ``254 - P + i`` are negative, so they all read the oldest sample (see :func:`pitch_period`)
PERIOD_CLAMP = PITCH_MAX_PERIOD - 2 + PRED_SIZE

LINEAR_LAYERS = ("cond_net_pembed", "cond_net_fdense1", "cond_net_fconv1", "cond_net_fdense2",
                 "sig_net_cond_gain_dense", "sig_net_fwc0_conv", "sig_net_fwc0_glu_gate", "sig_net_gain_dense_out",
                 "sig_net_gru1_input", "sig_net_gru1_recurrent", "sig_net_gru1_glu_gate",
                 "sig_net_gru2_input", "sig_net_gru2_recurrent", "sig_net_gru2_glu_gate",
                 "sig_net_gru3_input", "sig_net_gru3_recurrent", "sig_net_gru3_glu_gate",
                 "sig_net_skip_dense", "sig_net_skip_glu_gate", "sig_net_sig_dense_out")

Params = dict[str, dict[str, Any]]


class FarganError(OpusDredError, ValueError):
    """A FARGAN model, state or input that does not fit (missing layers, wrong widths, batch shapes)."""


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


def load_fargan_params(arrays, layers) -> Params:
    """Unpack FARGAN's C arrays (``dnn/fargan_data.c`` names) into dense JAX parameters, once, in numpy.

    ``layers`` is a model pack's ``manifest["layers"]`` mapping (the ``linear_init`` calls of ``init_fargan``);
    only the layers of :data:`LINEAR_LAYERS` are read.
    """
    missing = [n for n in LINEAR_LAYERS if n not in layers]
    if missing:
        raise FarganError(f"model lacks FARGAN layers: {', '.join(missing)}")
    params: Params = {}
    for name in LINEAR_LAYERS:
        d = layers[name]
        try:
            params[name] = nnet.unpack_linear(arrays, name, int(d["nb_inputs"]), int(d["nb_outputs"]))
        except (KeyError, ValueError) as exc:
            raise FarganError(f"layer {name}: {exc}") from None
    _check_architecture(params)
    return params


def _nb_outputs(p: dict) -> int:
    return int(np.shape(p["bias"])[0])


def cond_size(params: Params) -> int:
    """Conditioning values per subframe (``FARGAN_COND_SIZE``: 80)."""
    return _nb_outputs(params["cond_net_fdense2"]) // NB_SUBFRAMES


def _gru(params: Params, k: int) -> int:
    return nnet.nb_inputs(params[f"sig_net_gru{k}_recurrent"])


def _check_architecture(params: Params) -> None:
    """The wiring ``dnn/fargan.c`` assumes, checked on the shapes (raises :class:`FarganError`)."""
    n = nnet.nb_inputs
    emb = _nb_outputs(params["cond_net_pembed"])
    fd1 = _nb_outputs(params["cond_net_fdense1"])
    cond = cond_size(params)
    sig_in = cond + PRED_SIZE + SUBFRAME_SIZE
    fwc0 = _nb_outputs(params["sig_net_fwc0_conv"])
    g1, g2, g3 = _gru(params, 1), _gru(params, 2), _gru(params, 3)
    checks = [
        ("cond_net_pembed inputs", n(params["cond_net_pembed"]), PEMBED_ROWS),
        ("cond_net_pembed", "float" if "weight_q" not in params["cond_net_pembed"] else "int8", "float"),
        ("cond_net_fdense1 inputs", n(params["cond_net_fdense1"]), NB_FEATURES + emb),
        ("cond_net_fconv1 inputs", n(params["cond_net_fconv1"]) % fd1, 0),
        ("cond_net_fdense2 inputs", n(params["cond_net_fdense2"]), _nb_outputs(params["cond_net_fconv1"])),
        ("cond_net_fdense2 outputs", _nb_outputs(params["cond_net_fdense2"]) % NB_SUBFRAMES, 0),
        ("sig_net_cond_gain_dense", (n(params["sig_net_cond_gain_dense"]),
                                     _nb_outputs(params["sig_net_cond_gain_dense"])), (cond, 1)),
        ("sig_net_fwc0_conv inputs", n(params["sig_net_fwc0_conv"]), 2 * sig_in),
        ("sig_net_fwc0_glu_gate", (n(params["sig_net_fwc0_glu_gate"]),
                                   _nb_outputs(params["sig_net_fwc0_glu_gate"])), (fwc0, fwc0)),
        ("sig_net_gain_dense_out", (n(params["sig_net_gain_dense_out"]),
                                    _nb_outputs(params["sig_net_gain_dense_out"])), (fwc0, 4)),
        ("sig_net_gru1_input inputs", n(params["sig_net_gru1_input"]), fwc0 + 2 * SUBFRAME_SIZE),
        ("sig_net_gru2_input inputs", n(params["sig_net_gru2_input"]), g1 + 2 * SUBFRAME_SIZE),
        ("sig_net_gru3_input inputs", n(params["sig_net_gru3_input"]), g2 + 2 * SUBFRAME_SIZE),
        ("sig_net_skip_dense inputs", n(params["sig_net_skip_dense"]), g1 + g2 + g3 + fwc0 + 2 * SUBFRAME_SIZE),
        ("sig_net_skip_glu_gate inputs", n(params["sig_net_skip_glu_gate"]),
         _nb_outputs(params["sig_net_skip_dense"])),
        ("sig_net_sig_dense_out", (n(params["sig_net_sig_dense_out"]), _nb_outputs(params["sig_net_sig_dense_out"])),
         (_nb_outputs(params["sig_net_skip_dense"]), SUBFRAME_SIZE)),
    ]
    for k, g in ((1, g1), (2, g2), (3, g3)):
        checks.append((f"sig_net_gru{k}_input outputs", _nb_outputs(params[f"sig_net_gru{k}_input"]), 3 * g))
        checks.append((f"sig_net_gru{k}_glu_gate inputs", n(params[f"sig_net_gru{k}_glu_gate"]), g))
    bad = [f"{what} is {got}, expected {want}" for what, got, want in checks if got != want]
    if bad:
        raise FarganError("not the FARGAN architecture: " + "; ".join(bad))


def _resolve_pack(pack_or_profile: Any):
    src = pack_or_profile
    if isinstance(src, Profile):
        src = load_pack(src.model_pack)
    elif isinstance(src, str):
        try:
            src = load_pack(get_profile(src).model_pack)
        except UnknownProfileError:
            src = load_pack(src)
    if not hasattr(src, "arrays") or not hasattr(src, "manifest"):
        raise FarganError(f"pack_or_profile must be a model pack, a pack id, a Profile or a profile name, "
                          f"got {type(pack_or_profile).__name__}")
    return src


def fargan_params(pack_or_profile: Any) -> Params:
    """FARGAN's parameters from a model pack (an ``opus_dred.models`` pack object or id) or a profile (a
    ``Profile`` or its name: its ``model_pack`` is read). A name is looked up as a profile first."""
    src = _resolve_pack(pack_or_profile)
    return load_fargan_params(src.arrays, src.manifest["layers"])


@functools.cache
def _cached_params(name: str) -> Params:
    return fargan_params(name)


def init_fargan_state(params: Params, batch: int | tuple[int, ...] | None = None, dtype=jnp.float32) -> dict:
    """``fargan_init``'s state, all zero: ``pitch_buf`` (the last 256 excitation samples), ``cond_conv`` (the
    conditioning convolution's last two input frames, oldest first), ``fwc0`` (the first signal convolution's
    last input), the three GRU states ``gru1``..``gru3``, ``deemph`` (the last output sample) and
    ``last_period`` (int32: the period the next frame's subframes use).

    ``batch``: ``None`` for one stream, an int or a shape for leading batch axes.
    """
    shape = () if batch is None else ((batch,) if isinstance(batch, int) else tuple(batch))
    conv_in = _nb_outputs(params["cond_net_fdense1"])
    conv_mem = nnet.nb_inputs(params["cond_net_fconv1"]) - conv_in
    return {
        "pitch_buf": jnp.zeros(shape + (PITCH_MAX_PERIOD,), dtype),
        "cond_conv": jnp.zeros(shape + (conv_mem,), dtype),
        "fwc0": jnp.zeros(shape + (nnet.nb_inputs(params["sig_net_fwc0_conv"]) // 2,), dtype),
        "gru1": jnp.zeros(shape + (_gru(params, 1),), dtype),
        "gru2": jnp.zeros(shape + (_gru(params, 2),), dtype),
        "gru3": jnp.zeros(shape + (_gru(params, 3),), dtype),
        "deemph": jnp.zeros(shape, dtype),
        "last_period": jnp.zeros(shape, jnp.int32),
    }


# ---------------------------------------------------------------------------------------------------
# The pitch period
# ---------------------------------------------------------------------------------------------------


#: what x86's conversion of an out-of-range double to int gives (``cvttsd2si``), and so ``fargan.c``'s period of
#: NaN, -inf and every pitch feature below about -24.5
INT_MIN = -(2 ** 31)


def period_of(f: float) -> int:
    """The period ``fargan.c`` computes from the pitch feature ``f`` (a float32 value), in IEEE double as the
    C code does: ``(int) floor(.5 + 256 / pow(2, (1/60) ((f + 1.5) 60)))`` with the C library's ``pow``
    (``math.pow``); :data:`INT_MIN` where the double is out of the int range or NaN (x86's conversion).
    Periods above :data:`PERIOD_CLAMP` come back as it (they all behave alike)."""
    f = float(f)
    if math.isnan(f):
        return INT_MIN
    try:
        p = math.pow(2.0, (1.0 / 60.0) * ((f + 1.5) * 60))
    except OverflowError:  # C: inf, and 256 / inf = 0
        return 0
    if p == 0.0:  # C: 256 / 0 = inf
        return INT_MIN
    v = math.floor(0.5 + 256.0 / p)
    if v >= 2 ** 31:
        return INT_MIN
    return min(int(v), PERIOD_CLAMP)


def _f32_key(x: float) -> int:
    b = int(np.array(x, np.float32).view(np.uint32))
    return b if b < 0x80000000 else -(b & 0x7FFFFFFF)


def _f32_from_key(k: int) -> np.float32:
    b = k if k >= 0 else (0x80000000 | -k)
    return np.array(b, np.uint32).view(np.float32)[()]


@functools.cache
def period_thresholds() -> np.ndarray:
    """``T[p]`` for ``p = 0 .. PERIOD_CLAMP``: the smallest float32 pitch feature whose period (:func:`period_of`,
    with :data:`INT_MIN` taken as the largest) is at most ``p``, found by bisection over the ordered float32
    values (the period does not increase with the feature). Then for every float32 ``f`` the period is
    ``PERIOD_CLAMP - #{p < PERIOD_CLAMP : f >= T[p]}`` if ``f >= T[PERIOD_CLAMP]``, else ``INT_MIN``: the
    double-precision ``pow`` of ``fargan.c`` becomes float32 comparisons."""
    def order(period: int) -> int:
        return PERIOD_CLAMP + 1 if period == INT_MIN else period

    lo_all, hi_all = _f32_key(-np.inf), _f32_key(np.inf)
    out = np.empty(PERIOD_CLAMP + 1, np.float32)
    for p in range(PERIOD_CLAMP + 1):
        lo, hi = lo_all, hi_all  # order(period(lo)) > p >= order(period(hi))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if order(period_of(_f32_from_key(mid))) <= p:
                hi = mid
            else:
                lo = mid
        out[p] = _f32_from_key(hi)
    return out


def pitch_period(f):
    """``fargan.c``'s period of each float32 pitch feature ``f`` (int32, same shape), exactly as the C code
    computes it (:func:`period_of`): 0 for features above about 7.5, where ``256 / 2^t`` rounds to 0; clamped
    at :data:`PERIOD_CLAMP`, as every larger period behaves alike; :data:`INT_MIN` for NaN and features below
    about -24.5. Compares ``f`` with the thresholds of :func:`period_thresholds`."""
    f = jnp.asarray(f, jnp.float32)
    t = jnp.asarray(period_thresholds())
    reached = jnp.sum((f[..., None] >= t[:-1]).astype(jnp.int32), axis=-1)
    return jnp.where(f >= t[-1], PERIOD_CLAMP - reached, INT_MIN).astype(jnp.int32)


def pembed_row(period):
    """The row of ``cond_net_pembed`` a period selects: ``clip(P - 32, 0, 223)`` (``compute_fargan_cond``). For
    :data:`INT_MIN` the C expression ``P - 32`` overflows; GCC compiles it as ``P <= 31 ? 0 : min(P, 255) - 32``
    (read from the builds' ``fargan.o``), which gives row 0, and so does this."""
    return jnp.where(period > 31, jnp.minimum(period, PEMBED_ROWS + 31) - 32, 0)


# ---------------------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------------------


def _emulate(num: Numerics) -> bool:
    return num.matmul == "int8"


def _mul_add(a, b, c, num: Numerics):
    """``a * b + c`` as ``fargan.c`` computes it: two roundings on the emulation paths (no FMA in that file)."""
    return nnet._unfused(a * b) + c if _emulate(num) else a * b + c


def compute_cond(params: Params, conv_mem, features, period, num: Numerics = FLOAT):
    """``compute_fargan_cond``: one frame's 20 features and its period -> (``[..., 320]`` conditioning, four
    subframes of 80 in order; the new convolution memory)."""
    emb = params["cond_net_pembed"]["weight"].astype(features.dtype)
    x = jnp.concatenate([features, emb[pembed_row(period)]], axis=-1)
    h = nnet.dense(params["cond_net_fdense1"], x, num, linear=nnet.linear_looped)
    c, conv_mem = nnet.conv1d_dilated(params["cond_net_fconv1"], conv_mem, h, num)
    return nnet.dense(params["cond_net_fdense2"], c, num), conv_mem


def _pitch_positions(period):
    """``run_fargan_subframe``'s 44 read positions into the pitch buffer, ``[..., 44]``: from ``254 - P`` on,
    stepping back by the period each time 256 is reached, and at least 0. For ``P = 0`` the step back is
    none, so the positions run on to 297, past the buffer (:func:`subframe` reads what libopus' struct holds
    there). For :data:`INT_MIN` the C start ``254 - P`` wraps to a large negative int: every position is 0."""
    p = period[..., None]
    raw = jnp.where(p < 0, -1, PITCH_MAX_PERIOD - 2 - jnp.maximum(p, 0) + jnp.arange(PRED_SIZE, dtype=jnp.int32))
    wrapped = PITCH_MAX_PERIOD - p + (raw - PITCH_MAX_PERIOD) % jnp.maximum(p, 1)
    return jnp.maximum(jnp.where((raw >= PITCH_MAX_PERIOD) & (p > 0), wrapped, raw), 0)


def deemphasis(x, mem, num: Numerics = FLOAT):
    """``fargan_deemphasis``: ``y[n] = x[n] + 0.85 y[n-1]`` over the last axis from ``y[-1] = mem``, each
    product rounded before the sum on the emulation paths. Returns (``y``, its last sample)."""
    def step(m, xn):
        m = _mul_add(DEEMPHASIS, m, xn, num)
        return m, m

    mem, y = jax.lax.scan(step, mem, jnp.moveaxis(x, -1, 0))
    return jnp.moveaxis(y, 0, -1), mem


def subframe(params: Params, state: dict, cond, period, num: Numerics = FLOAT):
    """``run_fargan_subframe``: 80 conditioning values and the period -> (new state, 40 output samples).

    The state's ``pitch_buf`` gains the 40 excitation samples (before de-emphasis); ``deemph`` follows the
    output. ``state["cond_conv"]`` must already hold this frame's convolution memory: for ``period = 0``
    libopus reads the 42 floats after its pitch buffer, which are the first values of that memory
    (``FARGANState`` has ``cond_conv1_state`` right after ``pitch_buf``).
    """
    dt = cond.dtype
    g = nnet.dense(params["sig_net_cond_gain_dense"], cond, num, "linear", linear=nnet.linear_looped)[..., 0]
    gain = exp_rounded(g).astype(dt) if _emulate(num) else jnp.exp(g)
    gain_1 = 1.0 / (np.float32(1e-5) + gain)
    buf = state["pitch_buf"]
    ext = jnp.concatenate([buf, state["cond_conv"][..., :PRED_SIZE - 2]], axis=-1)
    past = jnp.take_along_axis(ext, _pitch_positions(period), axis=-1)
    pred = jnp.clip(gain_1[..., None] * past, -1.0, 1.0)
    prev = jnp.clip(gain_1[..., None] * buf[..., PITCH_MAX_PERIOD - SUBFRAME_SIZE:], -1.0, 1.0)
    mid = pred[..., 2:2 + SUBFRAME_SIZE]

    y, fwc0 = nnet.conv1d(params["sig_net_fwc0_conv"], state["fwc0"], jnp.concatenate([cond, pred, prev], axis=-1),
                          num)
    g1 = nnet.glu(params["sig_net_fwc0_glu_gate"], y, num)
    gate = nnet.dense(params["sig_net_gain_dense_out"], g1, num, "sigmoid", linear=nnet.linear_looped)

    def gated(k):
        return gate[..., k:k + 1] * mid

    s1 = nnet.gru(params["sig_net_gru1_input"], params["sig_net_gru1_recurrent"], state["gru1"],
                  jnp.concatenate([g1, gated(0), prev], axis=-1), num)
    g2 = nnet.glu(params["sig_net_gru1_glu_gate"], s1, num)
    s2 = nnet.gru(params["sig_net_gru2_input"], params["sig_net_gru2_recurrent"], state["gru2"],
                  jnp.concatenate([g2, gated(1), prev], axis=-1), num)
    g3 = nnet.glu(params["sig_net_gru2_glu_gate"], s2, num)
    s3 = nnet.gru(params["sig_net_gru3_input"], params["sig_net_gru3_recurrent"], state["gru3"],
                  jnp.concatenate([g3, gated(2), prev], axis=-1), num)
    g4 = nnet.glu(params["sig_net_gru3_glu_gate"], s3, num)
    skip = nnet.dense(params["sig_net_skip_dense"], jnp.concatenate([g2, g3, g4, g1, gated(3), prev], axis=-1), num)
    skip = nnet.glu(params["sig_net_skip_glu_gate"], skip, num)
    exc = nnet.dense(params["sig_net_sig_dense_out"], skip, num) * gain[..., None]
    if _emulate(num):  # stored before the de-emphasis adds to it: no FMA
        exc = nnet._unfused(exc)
    pcm, deemph = deemphasis(exc, state["deemph"], num)
    new = dict(state, pitch_buf=jnp.concatenate([buf[..., SUBFRAME_SIZE:], exc], axis=-1), fwc0=fwc0,
               gru1=s1, gru2=s2, gru3=s3, deemph=deemph)
    return new, pcm


def _check_features(features, what: str, trailing: tuple[int, ...]):
    x = jnp.asarray(features)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    if x.shape[x.ndim - len(trailing):] != trailing or x.ndim < len(trailing):
        raise FarganError(f"{what} must be [..., {', '.join(map(str, trailing))}], got shape {x.shape}")
    return x


def _check_state(state: dict, batch: tuple[int, ...], what: str) -> None:
    have = tuple(np.shape(state["deemph"]))
    if have != batch:
        raise FarganError(f"{what} has leading shape {batch}, the state holds {have}")


def synthesize_prepare(params: Params, state: dict, features, num: Numerics = FLOAT):
    """The start of ``fargan_synthesize_impl``: the frame's period and conditioning. Returns (the state with the
    new convolution memory, the four subframes' conditioning ``[..., 80]`` as a tuple, the period)."""
    period = pitch_period(features[..., PITCH_FEATURE])
    cond, conv = compute_cond(params, state["cond_conv"], features, period, num)
    c = cond_size(params)
    return dict(state, cond_conv=conv), tuple(cond[..., k * c:(k + 1) * c] for k in range(NB_SUBFRAMES)), period


def fargan_synthesize(params: Params, state: dict, features, num: Numerics = FLOAT):
    """``fargan_synthesize``: one frame's 20 features ``[..., 20]`` -> (new state, ``[..., 160]`` float samples
    at 16 kHz, ±1 full scale). The four subframes use the previous frame's period (``last_period``); this
    frame's period becomes the next one's."""
    x = _check_features(features, "features", (NB_FEATURES,))
    _check_state(state, x.shape[:-1], "features")
    st, conds, period = synthesize_prepare(params, state, x, num)

    def step(s, c):
        return subframe(params, s, c, s["last_period"], num)

    st, pcm = jax.lax.scan(step, st, jnp.stack(conds))
    st["last_period"] = period
    return st, jnp.moveaxis(pcm, 0, -2).reshape(pcm.shape[1:-1] + (FRAME_SIZE,))


def to_int16(pcm):
    """``fargan_synthesize_int``'s conversion: ``floor(.5 + clip(32768 x, -32767, 32767))`` as int16. The
    double-precision ``.5 +`` of the C code is exact; here ``floor`` and a comparison of the exact fraction
    with one half give the same integer in float32."""
    x = jnp.clip(np.float32(32768.0) * jnp.asarray(pcm, jnp.float32), -32767.0, 32767.0)
    fl = jnp.floor(x)
    return (fl + (x - fl >= 0.5).astype(x.dtype)).astype(jnp.int16)


def fargan_synthesize_int(params: Params, state: dict, features, num: Numerics = FLOAT):
    """``fargan_synthesize_int``: as :func:`fargan_synthesize`, the samples as int16 (:func:`to_int16`)."""
    state, pcm = fargan_synthesize(params, state, features, num)
    return state, to_int16(pcm)


def preemphasis(pcm0, num: Numerics = FLOAT):
    """``fargan_cont``'s ``x0``: ``x[0] = 0``, ``x[n] = s[n] - 0.85 s[n-1]`` (product rounded first when emulating)."""
    prod = DEEMPHASIS * pcm0[..., :-1]
    if _emulate(num):
        prod = nnet._unfused(prod)
    return jnp.concatenate([jnp.zeros_like(pcm0[..., :1]), pcm0[..., 1:] - prod], axis=-1)


def _cont_inputs(state: dict, pcm0, features0):
    p0 = _check_features(pcm0, "pcm0", (CONT_SAMPLES,))
    f0 = _check_features(features0, "features0", (CONT_VECTORS, NB_FEATURES)).astype(p0.dtype)
    if p0.shape[:-1] != f0.shape[:-2]:
        raise FarganError(f"pcm0 {p0.shape} and features0 {f0.shape} disagree in their leading shape")
    _check_state(state, p0.shape[:-1], "pcm0")
    return p0, f0


def cont_prepare(params: Params, state: dict, pcm0, features0, num: Numerics = FLOAT):
    """The start of ``fargan_cont``: the five conditioning steps and the pre-emphasised samples in the pitch
    buffer. Returns (the state, the fifth vector's four subframe conditionings as a tuple, the four blocks of 40
    known pre-emphasised samples that follow each subframe, as a tuple)."""
    periods = pitch_period(features0[..., PITCH_FEATURE])

    def cond_step(mem, frame):
        cond, mem = compute_cond(params, mem, frame[0], frame[1], num)
        return mem, cond

    conv, conds = jax.lax.scan(cond_step, state["cond_conv"],
                               (jnp.moveaxis(features0, -2, 0), jnp.moveaxis(periods, -1, 0)))
    x0 = preemphasis(pcm0, num)
    half = PITCH_MAX_PERIOD - FRAME_SIZE
    st = dict(state, cond_conv=conv, last_period=periods[..., CONT_VECTORS - 2],
              pitch_buf=jnp.concatenate([state["pitch_buf"][..., :half], x0[..., :FRAME_SIZE]], axis=-1))
    c = cond_size(params)
    subconds = tuple(conds[-1][..., k * c:(k + 1) * c] for k in range(NB_SUBFRAMES))
    known = tuple(x0[..., FRAME_SIZE + k * SUBFRAME_SIZE:FRAME_SIZE + (k + 1) * SUBFRAME_SIZE]
                  for k in range(NB_SUBFRAMES))
    return st, subconds, known


def _overwrite_last(state: dict, x) -> dict:
    """``fargan_cont`` after each subframe: the known samples replace the 40 it put into the pitch buffer."""
    buf = state["pitch_buf"]
    return dict(state, pitch_buf=jnp.concatenate([buf[..., :PITCH_MAX_PERIOD - SUBFRAME_SIZE], x], axis=-1))


def fargan_cont(params: Params, state: dict, pcm0, features0, num: Numerics = FLOAT) -> dict:
    """``fargan_cont``: prime the vocoder from ``pcm0 [..., 320]`` (the last samples before the first frame to
    synthesize, ±1 full scale) and ``features0 [..., 5, 20]`` (the feature vectors that lead to it).

    The five feature vectors run the conditioning network in order; ``last_period`` ends as the period of the
    fourth (the fifth's only enters the conditioning). The pre-emphasised samples fill the last 160 of the
    pitch buffer, then the four subframes run on the fifth vector's conditioning, each followed by the next
    40 pre-emphasised samples overwriting what it produced; ``deemph`` ends as ``pcm0``'s last sample. The
    rest of ``state`` (GRUs, convolutions, the older pitch buffer) carries on from what it was.
    """
    p0, f0 = _cont_inputs(state, pcm0, features0)
    st, subconds, known = cont_prepare(params, state, p0, f0, num)

    def step(s, inputs):
        c, x = inputs
        s, _ = subframe(params, s, c, s["last_period"], num)
        return _overwrite_last(s, x), None

    st, _ = jax.lax.scan(step, st, (jnp.stack(subconds), jnp.stack(known)))
    st["deemph"] = p0[..., -1]
    return st


def vocode(params: Params, features, num: Numerics = FLOAT, *, pcm0=None, features0=None, state=None):
    """Features ``[..., T, 20]`` -> samples ``[..., T * 160]`` (float, ±1), one :func:`fargan_synthesize` per
    frame (``lax.scan``), after :func:`fargan_cont` on ``pcm0 [..., 320]`` and ``features0 [..., 5, 20]`` when
    given, from ``state`` or a fresh one. Without priming the vocoder starts from the zero state (libopus
    asserts that it was primed, in builds with assertions)."""
    x = _check_features(features, "features", (NB_FEATURES,))
    if x.ndim < 2:
        raise FarganError(f"features must be [..., T, {NB_FEATURES}], got shape {x.shape}")
    if (pcm0 is None) != (features0 is None):
        raise FarganError("pcm0 and features0 go together: give both or neither")
    batch = x.shape[:-2]
    if state is None:
        state = init_fargan_state(params, batch, x.dtype)
    if pcm0 is not None:
        state = fargan_cont(params, state, pcm0, features0, num)

    def step(s, f):
        return fargan_synthesize(params, s, f, num)

    _, pcm = jax.lax.scan(step, state, jnp.moveaxis(x, -2, 0))
    return jnp.moveaxis(pcm, 0, -2).reshape(batch + (-1,))


#: jitted forms, ``num`` static (:class:`Fargan` runs the pieces, so that it compiles one subframe)
_synthesize_prepare_jit = jax.jit(synthesize_prepare, static_argnames=("num",))
_cont_prepare_jit = jax.jit(cont_prepare, static_argnames=("num",))
_subframe_jit = jax.jit(subframe, static_argnames=("num",))
fargan_cont_jit = jax.jit(fargan_cont, static_argnames=("num",))
fargan_synthesize_jit = jax.jit(fargan_synthesize, static_argnames=("num",))
fargan_synthesize_int_jit = jax.jit(fargan_synthesize_int, static_argnames=("num",))
vocode_jit = jax.jit(vocode, static_argnames=("num",))


# ---------------------------------------------------------------------------------------------------
# A stateful wrapper
# ---------------------------------------------------------------------------------------------------


class Fargan:
    """FARGAN for one stream or a batch of streams, frame by frame (libopus' ``FARGANState`` per stream).

    ``profile``: a profile or pack (see :func:`fargan_params`); ``numerics``: a :class:`Numerics` or the name
    of a preset of ``opus_dred.refimpl._nnet.NUMERICS`` (``"avx2"``, ``"sse2"``, ``"float"``, ...). The state
    is made on the first call, for its leading shape (none: one stream; ``[B, ...]``: B streams).
    """

    def __init__(self, profile: Any, numerics: Numerics | str = LIBOPUS_AVX2):
        if isinstance(numerics, str):
            if numerics not in NUMERICS:
                raise FarganError(f"numerics {numerics!r} is none of {', '.join(NUMERICS)}")
            numerics = NUMERICS[numerics]
        if not isinstance(numerics, Numerics):
            raise FarganError(f"numerics must be a Numerics or a preset name, got {type(numerics).__name__}")
        self.numerics = numerics
        self.params = _cached_params(profile) if isinstance(profile, str) else fargan_params(profile)
        self.state: dict | None = None

    def reset(self) -> None:
        """Forget the state (``fargan_init``: the next call starts from zero)."""
        self.state = None

    def _state_for(self, batch: tuple[int, ...]) -> dict:
        if self.state is None:
            self.state = init_fargan_state(self.params, batch)
        elif tuple(np.shape(self.state["deemph"])) != batch:
            raise FarganError(f"leading shape {batch}, the state holds {tuple(np.shape(self.state['deemph']))} "
                              f"(call reset() to change it)")
        return self.state

    def cont(self, pcm0, features0) -> None:
        """``fargan_cont``: ``pcm0 [..., 320]`` (±1 full scale) and ``features0 [..., 5, 20]``."""
        p = np.asarray(pcm0, np.float32)
        f = np.asarray(features0, np.float32)[..., :NB_FEATURES]
        state = self._state_for(p.shape[:-1])
        p0, f0 = _cont_inputs(state, p, f)
        st, subconds, known = _cont_prepare_jit(self.params, state, p0, f0, num=self.numerics)
        for c, x in zip(subconds, known):
            st, _ = _subframe_jit(self.params, st, c, st["last_period"], num=self.numerics)
            st = _overwrite_last(st, x)
        st["deemph"] = p0[..., -1]
        self.state = st

    def synthesize(self, features) -> np.ndarray:
        """``fargan_synthesize``: features ``[..., >= 20]`` (the first 20 are read) -> ``[..., 160]`` float32."""
        f = np.asarray(features, np.float32)[..., :NB_FEATURES]
        state = self._state_for(f.shape[:-1])
        x = _check_features(f, "features", (NB_FEATURES,))
        st, conds, period = _synthesize_prepare_jit(self.params, state, x, num=self.numerics)
        out = []
        for c in conds:
            st, pcm = _subframe_jit(self.params, st, c, st["last_period"], num=self.numerics)
            out.append(np.asarray(pcm))
        st["last_period"] = period
        self.state = st
        return np.concatenate(out, axis=-1)

    def synthesize_int(self, features) -> np.ndarray:
        """``fargan_synthesize_int``: the same frame as int16."""
        return np.asarray(to_int16(self.synthesize(features)))
