"""libopus' neural packet-loss concealment (the "deep PLC") at 16 kHz: the prediction network in pure JAX, its
bookkeeping in Python, Burg's analysis and the LPCNet features in numpy, FARGAN to synthesise.

Our formulation of ``dnn/lpcnet_plc.c`` of libopus 1.5.2 and 1.6.1 (``lpcnet_plc_init``/``lpcnet_plc_reset``,
``lpcnet_plc_update``, ``lpcnet_plc_conceal``, ``lpcnet_plc_fec_add``/``lpcnet_plc_fec_clear``, and the static
``compute_plc_pred``, ``get_fec_or_pred``, ``queue_features``), the same code in both releases but for two
details that follow the model pack's release:

* the attenuation floor of the first cepstral coefficient: -10 (1.5.2) or -15 (1.6.1);
* a full DRED queue (``fec_add`` with ``PLC_MAX_FEC`` frames queued: 100 in 1.5.2, 104 in 1.6.1): 1.5.2 moves the
  unread frames to the front first; 1.6.1 only asserts that it is not full (its release builds write past the
  queue). Both refuse here what would overflow (:class:`PlcError`).

**The network** (``compute_plc_pred``, :func:`plc_step`): 57 inputs, the 36 Burg cepstral values of a frame
(:mod:`opus_dred.refimpl._burg`), its 20 features and a flag (+1: the frame was analysed, -1: DRED features
without Burg values, 0 with all-zero inputs: a blind prediction) -> ``plc_dense_in`` (float layer, 128, tanh) ->
``plc_gru1`` (192 units) -> ``plc_gru2`` (192) -> ``plc_dense_out`` (float layer, 20, linear): the predicted
features of the next frame. The state is the two GRU states. The layers are those of
:mod:`opus_dred.refimpl._nnet` with a :class:`~opus_dred.refimpl._nnet.Numerics` preset; the int8 GRUs and the
float layers' input-by-input ``sgemv`` reproduce a libopus build bit for bit with its preset (``docs/numerics.md``,
"The neural PLC").

**The bookkeeping** (:class:`NeuralPlc`): a history of the last 2400 samples (15 frames of 10 ms, scaled by
1/32768); ``update`` shifts a good frame in; the first ``conceal`` after good frames (``blend == 0``) restarts
the network from the state saved two predictions before the last (``plc_bak[0]``), runs the LPCNet feature
extractor (libopus' ``LPCNetEncState``, :class:`~opus_dred.refimpl._features.FeatureExtractor`) and Burg's
analysis over the frames of the history not analysed yet (``analysis_pos``), feeds the network the frames after
``predict_pos`` (skipping the first after a gap in the analysis), predicts two more frames (or takes them from
the DRED queue), and primes FARGAN with the last 320 samples and the last five feature vectors; every
``conceal`` then predicts (or dequeues) one frame, attenuates its energy with the loss count (``att_table``:
0, 0, -0.2, -0.2, -0.4, -0.4, -0.8, -0.8, -1.6, -1.6, then 2 more per frame), synthesises 160 samples with
FARGAN and shifts them into the history. DRED features reach it through ``fec_add`` (``None``: a frame DRED does
not cover, which makes the next dequeue a prediction instead), as ``src/opus_decoder.c:opus_decode_native``
queues them before each concealed frame.

**The vocoder** is injected: any object with ``cont(pcm0 [320] float, features0 [5, 20])`` and
``synthesize_int(features [20]) -> int16 [160]``: by default the reference FARGAN
(:class:`~opus_dred.refimpl._fargan.Fargan`, same numerics), or libopus' own through the oracle.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from typing import Any

import numpy as np

import jax
import jax.numpy as jnp

from opus_dred.bitstream._profiles import Profile, UnknownProfileError, get_profile
from opus_dred.errors import OpusDredError
from opus_dred.models._pack import load_pack
from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl._burg import NB_BURG, burg_cepstral_analysis
from opus_dred.refimpl._fargan import Fargan
from opus_dred.refimpl._features import FRAME_SIZE, NB_TOTAL_FEATURES, FeatureExtractor, tables
from opus_dred.refimpl._nnet import LIBOPUS_AVX2, NUMERICS, Numerics
from opus_dred.refimpl._pitchdnn import PitchDNN

#: features per 10 ms frame that the PLC predicts and queues (dnn/lpcnet.h NB_FEATURES)
NB_FEATURES = 20
#: network inputs: Burg cepstrum, features, flag
NB_INPUTS = NB_BURG + NB_FEATURES + 1
#: dnn/lpcnet_private.h: CONT_VECTORS, PLC_BUF_SIZE
CONT_VECTORS = 5
PLC_BUF_SIZE = (CONT_VECTORS + 10) * FRAME_SIZE
#: dnn/fargan.h: FARGAN_CONT_SAMPLES
CONT_SAMPLES = 320
#: dnn/lpcnet_plc.c: att_table (double literals stored as float)
ATT_TABLE = np.array([0, 0, -.2, -.2, -.4, -.4, -.8, -.8, -1.6, -1.6], np.float32)

LAYERS = ("plc_dense_in", "plc_gru1_input", "plc_gru1_recurrent", "plc_gru2_input", "plc_gru2_recurrent",
          "plc_dense_out")

Params = dict[str, dict[str, Any]]
_f32 = np.float32


class PlcError(OpusDredError, ValueError):
    """A bad argument to the PLC or a model that does not fit; ``parameter`` names the offending one."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {message}")


@dataclasses.dataclass(frozen=True)
class Release:
    """What differs between the releases' ``dnn/lpcnet_plc.c``."""

    max_fec: int  # PLC_MAX_FEC
    compacts: bool  # lpcnet_plc_fec_add moves the unread frames to the front of a full queue (1.5.x)
    floor: np.float32  # the attenuation floor of features[0]


def release_rules(release: tuple[int, ...]) -> Release:
    if release < (1, 6):
        return Release(max_fec=100, compacts=True, floor=_f32(-10))
    return Release(max_fec=104, compacts=False, floor=_f32(-15))


# ---------------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------------


def load_plc_params(arrays, layers) -> Params:
    """Unpack the PLC model's C arrays (``dnn/plc_data.c`` names) into dense JAX parameters, once, in numpy.
    ``layers``: a model pack's ``manifest["layers"]`` (the ``linear_init`` calls of ``init_plcmodel``)."""
    missing = [n for n in LAYERS if n not in layers]
    if missing:
        raise PlcError("profile", f"model lacks PLC layers: {', '.join(missing)}")
    params: Params = {}
    for name in LAYERS:
        d = layers[name]
        try:
            params[name] = nnet.unpack_linear(arrays, name, int(d["nb_inputs"]), int(d["nb_outputs"]))
        except (KeyError, ValueError) as exc:
            raise PlcError("profile", f"layer {name}: {exc}") from None
    _check_architecture(params)
    return params


def _nb_outputs(p: dict) -> int:
    return int(np.shape(p["bias"])[0])


def _check_architecture(params: Params) -> None:
    n1, n2 = nnet.nb_inputs(params["plc_gru1_recurrent"]), nnet.nb_inputs(params["plc_gru2_recurrent"])
    checks = [
        ("plc_dense_in inputs", nnet.nb_inputs(params["plc_dense_in"]), NB_INPUTS),
        ("plc_gru1_input inputs", nnet.nb_inputs(params["plc_gru1_input"]), _nb_outputs(params["plc_dense_in"])),
        ("plc_gru1_input outputs", _nb_outputs(params["plc_gru1_input"]), 3 * n1),
        ("plc_gru1_recurrent outputs", _nb_outputs(params["plc_gru1_recurrent"]), 3 * n1),
        ("plc_gru2_input inputs", nnet.nb_inputs(params["plc_gru2_input"]), n1),
        ("plc_gru2_input outputs", _nb_outputs(params["plc_gru2_input"]), 3 * n2),
        ("plc_gru2_recurrent outputs", _nb_outputs(params["plc_gru2_recurrent"]), 3 * n2),
        ("plc_dense_out inputs", nnet.nb_inputs(params["plc_dense_out"]), n2),
        ("plc_dense_out outputs", _nb_outputs(params["plc_dense_out"]), NB_FEATURES),
    ]
    bad = [f"{what} is {got}, expected {want}" for what, got, want in checks if got != want]
    if bad:
        raise PlcError("profile", "not the PLC architecture: " + "; ".join(bad))


def _profile(profile: Any) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str):
        try:
            return get_profile(profile)
        except UnknownProfileError as exc:
            raise PlcError("profile", str(exc)) from None
    raise PlcError("profile", f"a Profile or a profile name, got {type(profile).__name__}")


def plc_params(pack_or_profile: Any) -> Params:
    """The PLC network's parameters from a model pack (an ``opus_dred.models`` pack object or id) or a profile
    (a ``Profile`` or its name: its ``model_pack`` is read). A name is looked up as a profile first."""
    src = pack_or_profile
    if isinstance(src, Profile):
        src = load_pack(src.model_pack)
    elif isinstance(src, str):
        try:
            src = load_pack(get_profile(src).model_pack)
        except UnknownProfileError:
            src = load_pack(src)
    if not hasattr(src, "arrays") or not hasattr(src, "manifest"):
        raise PlcError("profile", f"a model pack, a pack id, a Profile or a profile name, got "
                                  f"{type(pack_or_profile).__name__}")
    return load_plc_params(src.arrays, src.manifest["layers"])


@functools.cache
def _cached_params(pack_id: str) -> Params:
    return plc_params(load_pack(pack_id))


def init_net_state(params: Params, batch: int | tuple[int, ...] | None = None, dtype=jnp.float32) -> dict:
    """``PLCNetState`` at zero (as ``lpcnet_plc_reset`` leaves it): ``{"gru1": [..., 192], "gru2": [..., 192]}``."""
    shape = () if batch is None else ((batch,) if isinstance(batch, int) else tuple(batch))
    return {"gru1": jnp.zeros(shape + (nnet.nb_inputs(params["plc_gru1_recurrent"]),), dtype),
            "gru2": jnp.zeros(shape + (nnet.nb_inputs(params["plc_gru2_recurrent"]),), dtype)}


def plc_step(params: Params, state: dict, x, num: Numerics = nnet.FLOAT, *, linear=nnet.linear_looped):
    """``compute_plc_pred``: network state and 57 inputs ``[..., 57]`` -> (new state, 20 predicted features).

    ``plc_dense_in`` (tanh), ``plc_gru1`` on it, ``plc_gru2`` on ``plc_gru1``'s new state, ``plc_dense_out``
    (linear) on ``plc_gru2``'s. Pure; leading batch axes work directly, ``num`` is static under ``jit``.
    ``linear`` computes the layers' products (:func:`~opus_dred.refimpl._nnet.linear_looped`: the float layers'
    input-by-input sums as a loop, the same roundings as ``nnet.linear`` in a smaller graph)."""
    x = jnp.asarray(x)
    if x.shape[-1] != NB_INPUTS:
        raise PlcError("x", f"the PLC network takes {NB_INPUTS} inputs (36 Burg, 20 features, 1 flag), got "
                            f"{x.shape[-1]}")
    h = nnet.dense(params["plc_dense_in"], x, num, linear=linear)
    g1 = nnet.gru(params["plc_gru1_input"], params["plc_gru1_recurrent"], state["gru1"], h, num, linear=linear)
    g2 = nnet.gru(params["plc_gru2_input"], params["plc_gru2_recurrent"], state["gru2"], g1, num, linear=linear)
    out = nnet.dense(params["plc_dense_out"], g2, num, activation="linear", linear=linear)
    return {"gru1": g1, "gru2": g2}, out


#: ``jax.jit(plc_step)`` with ``num`` (and ``linear``) static.
plc_step_jit = jax.jit(plc_step, static_argnames=("num", "linear"))


def plc_steps(params: Params, state: dict, xs, num: Numerics = nnet.FLOAT, *, linear=nnet.linear_looped):
    """:func:`plc_step` over inputs ``[T, ..., 57]`` (``lax.scan``) -> (final state, outputs ``[T, ..., 20]``)."""
    def step(s, x):
        return plc_step(params, s, x, num, linear=linear)

    return jax.lax.scan(step, state, jnp.asarray(xs))


# ---------------------------------------------------------------------------------------------------
# The stateful PLC
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlcInfo:
    """The bookkeeping of ``LPCNetPLCState`` after a call, with its last features (36) and the history (2400
    samples, scaled by 1/32768)."""

    blend: int
    loss_count: int
    analysis_gap: int
    analysis_pos: int
    predict_pos: int
    fec_read_pos: int
    fec_fill_pos: int
    fec_skip: int
    features: np.ndarray
    pcm: np.ndarray

    COUNTERS = ("blend", "loss_count", "analysis_gap", "analysis_pos", "predict_pos", "fec_read_pos",
                "fec_fill_pos", "fec_skip")

    def counters(self) -> dict[str, int]:
        """The eight integers, by libopus' names."""
        return {k: getattr(self, k) for k in self.COUNTERS}


def _numerics(numerics: Numerics | str) -> Numerics:
    if isinstance(numerics, str):
        if numerics not in NUMERICS:
            raise PlcError("numerics", f"{numerics!r} is none of {', '.join(NUMERICS)}")
        return NUMERICS[numerics]
    if not isinstance(numerics, Numerics):
        raise PlcError("numerics", f"a Numerics or a preset name, got {type(numerics).__name__}")
    return numerics


def _pcm16(pcm160, parameter: str = "pcm160") -> np.ndarray:
    a = np.asarray(pcm160)
    if a.shape != (FRAME_SIZE,):
        raise PlcError(parameter, f"a PLC frame is {FRAME_SIZE} samples at 16 kHz, got shape {a.shape}")
    if a.dtype.kind not in "iuf" or (a.dtype.kind == "f" and not np.all(np.isfinite(a) & (a == np.round(a)))):
        raise PlcError(parameter, f"int16 samples expected, got {a.dtype} values that are not whole numbers")
    if a.size and (a.min() < -32768 or a.max() > 32767):
        raise PlcError(parameter, f"samples out of the int16 range: [{a.min()}, {a.max()}]")
    return a.astype(np.int16)


class NeuralPlc:
    """libopus' ``LPCNetPLCState`` at 16 kHz for one stream (``lpcnet_plc_init``).

    ``profile``: a profile or its name (its model pack gives the weights, the feature extractor's tables and the
    release). ``numerics``: a :class:`~opus_dred.refimpl._nnet.Numerics` or a preset name of ``NUMERICS``,
    for the PLC network, PitchDNN and the default vocoder. ``kernels``: the feature extractor's DSP kernels
    (``"x86"``: a default x86 build, ``"c"``: a ``--disable-intrinsics --disable-rtcd`` one); ``None`` takes
    ``"x86"`` for presets with fused multiply-adds (AVX2) and ``"c"`` otherwise. ``fargan``: the vocoder (module
    docstring); ``None`` builds the reference FARGAN (:class:`~opus_dred.refimpl._fargan.Fargan`) with
    ``numerics``.
    """

    def __init__(self, profile: Any, *, numerics: Numerics | str = LIBOPUS_AVX2, fargan: Any = None,
                 kernels: str | None = None) -> None:
        self.profile = _profile(profile)
        self.numerics = _numerics(numerics)
        self.kernels = kernels if kernels is not None else ("x86" if self.numerics.fma else "c")
        self.tables = tables(self.profile.model_pack)
        self.rules = release_rules(self.tables.release)
        self.params = _cached_params(self.profile.model_pack)
        self._pitch = PitchDNN(self.profile.name, self.numerics)
        self._enc = FeatureExtractor(self.profile, kernels=self.kernels, pitch=self._pitch.step, streams=1)
        if fargan is None:
            fargan = Fargan(self.profile.name, self.numerics)
        for method in ("cont", "synthesize_int"):
            if not callable(getattr(fargan, method, None)):
                raise PlcError("fargan", f"the vocoder needs a {method}() method, {type(fargan).__name__} has none")
        self.fargan = fargan
        self.reset()

    # -- libopus' entry points ---------------------------------------------------------------------------

    def reset(self) -> None:
        """``lpcnet_plc_reset``: the queue, history, features, counters and network states cleared, the feature
        extractor (and its PitchDNN) re-initialised; the vocoder is kept."""
        self._fec = np.zeros((self.rules.max_fec, NB_FEATURES), _f32)
        self.fec_read_pos = self.fec_fill_pos = self.fec_skip = 0
        self.pcm = np.zeros(PLC_BUF_SIZE, _f32)
        self.features = np.zeros(NB_TOTAL_FEATURES, _f32)
        self.cont_features = np.zeros((CONT_VECTORS, NB_FEATURES), _f32)
        self.blend = 0
        self.loss_count = 0
        self.analysis_gap = 1
        self.analysis_pos = PLC_BUF_SIZE
        self.predict_pos = PLC_BUF_SIZE
        zero = init_net_state(self.params)
        self._net = zero
        self._bak = [zero, zero]
        self._enc.reset()
        self._pitch.reset()

    def update(self, pcm160) -> None:
        """``lpcnet_plc_update``: a good 10 ms frame (160 int16 samples) into the history."""
        x = _pcm16(pcm160)
        if self.analysis_pos - FRAME_SIZE >= 0:
            self.analysis_pos -= FRAME_SIZE
        else:
            self.analysis_gap = 1
        if self.predict_pos - FRAME_SIZE >= 0:
            self.predict_pos -= FRAME_SIZE
        self._push(x)
        self.loss_count = 0
        self.blend = 0

    def conceal(self) -> np.ndarray:
        """``lpcnet_plc_conceal``: 160 int16 samples for a lost frame."""
        if self.blend == 0:
            self._restart()
        self._juggle()
        if self._fec_or_pred():
            self.loss_count = 0
        else:
            self.loss_count += 1
        self.features[0] = self._attenuated(self.features[0])
        out = np.asarray(self.fargan.synthesize_int(self.features[:NB_FEATURES].copy()))
        if out.shape != (FRAME_SIZE,):
            raise PlcError("fargan", f"synthesize_int returned shape {out.shape}, expected ({FRAME_SIZE},)")
        out = out.astype(np.int16)
        self._queue(self.features)
        if self.analysis_pos - FRAME_SIZE >= 0:
            self.analysis_pos -= FRAME_SIZE
        else:
            self.analysis_gap = 1
        self.predict_pos = PLC_BUF_SIZE
        self._push(out)
        self.blend = 1
        return out

    def fec_add(self, features) -> None:
        """``lpcnet_plc_fec_add``: queue one frame of DRED features (20 values, more are ignored), or ``None``
        for a frame DRED does not cover."""
        if features is None:
            self.fec_skip += 1
            return
        f = np.asarray(features, _f32).reshape(-1)
        if f.shape[0] < NB_FEATURES:
            raise PlcError("features", f"a DRED feature frame has {NB_FEATURES} values, got {f.shape[0]}")
        if self.fec_fill_pos == self.rules.max_fec and self.rules.compacts:
            n = self.fec_fill_pos - self.fec_read_pos
            self._fec[:n] = self._fec[self.fec_read_pos:self.fec_fill_pos].copy()
            self.fec_fill_pos = n
            self.fec_read_pos = 0
        if self.fec_fill_pos >= self.rules.max_fec:
            raise PlcError("features", f"the DRED queue holds {self.rules.max_fec} frames (PLC_MAX_FEC) and is full; "
                                       f"libopus {'.'.join(map(str, self.tables.release))} would write past it")
        self._fec[self.fec_fill_pos] = f[:NB_FEATURES]
        self.fec_fill_pos += 1

    def fec_clear(self) -> None:
        """``lpcnet_plc_fec_clear``: forget the queued DRED features."""
        self.fec_read_pos = self.fec_fill_pos = self.fec_skip = 0

    def info(self) -> PlcInfo:
        return PlcInfo(self.blend, self.loss_count, self.analysis_gap, self.analysis_pos, self.predict_pos,
                       self.fec_read_pos, self.fec_fill_pos, self.fec_skip, self.features.copy(), self.pcm.copy())

    # -- the steps of lpcnet_plc.c -------------------------------------------------------------------------

    def _push(self, pcm: np.ndarray) -> None:
        self.pcm[:-FRAME_SIZE] = self.pcm[FRAME_SIZE:].copy()
        self.pcm[-FRAME_SIZE:] = _f32(1 / 32768) * pcm.astype(_f32)

    def _queue(self, features: np.ndarray) -> None:
        """``queue_features``: the newest of the five feature vectors FARGAN is primed with."""
        self.cont_features[:-1] = self.cont_features[1:].copy()
        self.cont_features[-1] = features[:NB_FEATURES]

    def _juggle(self) -> None:
        """``plc_bak[0] = plc_bak[1]; plc_bak[1] = plc_net``, before each prediction."""
        self._bak = [self._bak[1], self._net]

    def _predict(self, x: np.ndarray) -> np.ndarray:
        self._net, out = plc_step_jit(self.params, self._net, jnp.asarray(x, jnp.float32), num=self.numerics)
        return np.asarray(out, _f32)

    def _fec_or_pred(self) -> bool:
        """``get_fec_or_pred`` into ``features[:20]``: the next queued DRED frame (the network is run on it, flag
        -1, its prediction discarded) unless the queue is empty or a skipped frame is pending; else the network's
        blind prediction (all-zero inputs), one pending skip consumed. Returns whether DRED features were used."""
        if self.fec_read_pos != self.fec_fill_pos and self.fec_skip == 0:
            f = self._fec[self.fec_read_pos].copy()
            self.fec_read_pos += 1
            x = np.zeros(NB_INPUTS, _f32)
            x[NB_BURG:NB_BURG + NB_FEATURES] = f
            x[-1] = -1
            self._predict(x)
            self.features[:NB_FEATURES] = f
            return True
        self.features[:NB_FEATURES] = self._predict(np.zeros(NB_INPUTS, _f32))
        if self.fec_skip > 0:
            self.fec_skip -= 1
        return False

    def _restart(self) -> None:
        """The first concealed frame after good ones: analyse the history, run the network over it, predict two
        frames and prime the vocoder."""
        count = 0
        self._net = self._bak[0]
        while self.analysis_pos + FRAME_SIZE <= PLC_BUF_SIZE:
            x = _f32(32768) * self.pcm[self.analysis_pos:self.analysis_pos + FRAME_SIZE]
            burg = burg_cepstral_analysis(x, self.tables)
            self.features = np.asarray(self._enc.frame(x).features, _f32).copy()
            if (not self.analysis_gap or count > 0) and self.analysis_pos >= self.predict_pos:
                self._queue(self.features)
                inp = np.concatenate([burg, self.features[:NB_FEATURES], np.ones(1, _f32)])
                self._juggle()
                self.features[:NB_FEATURES] = self._predict(inp)
            self.analysis_pos += FRAME_SIZE
            count += 1
        for _ in range(2):
            self._juggle()
            self._fec_or_pred()
            self._queue(self.features)
        self.fargan.cont(self.pcm[PLC_BUF_SIZE - CONT_SAMPLES:].copy(), self.cont_features.copy())
        self.analysis_gap = 0

    def _attenuated(self, f0: np.float32) -> np.float32:
        """``features[0]`` lowered by ``att_table`` (beyond ten lost frames, 2 more per frame), floored."""
        if self.loss_count >= 10:
            v = (f0 + ATT_TABLE[9]) - _f32(2 * (self.loss_count - 9))
        else:
            v = f0 + ATT_TABLE[self.loss_count]
        v = _f32(v)
        return max(v, self.rules.floor)  # MAX16(floor, v): v unless the floor is larger


# ---------------------------------------------------------------------------------------------------
# Event sequences
# ---------------------------------------------------------------------------------------------------

EVENTS = ("good", "lost", "fec", "fec_clear")


def apply_event(plc: NeuralPlc, event) -> np.ndarray | None:
    """One event on ``plc``: ``("good", pcm160)`` (returns the frame as int16), ``("lost",)`` (returns the
    concealed frame), ``("fec", features | None)`` or ``("fec_clear",)`` (return ``None``)."""
    if not isinstance(event, (tuple, list)) or not event or event[0] not in EVENTS:
        raise PlcError("events", f"an event is ('good', pcm160), ('lost',), ('fec', features | None) or "
                                 f"('fec_clear',); got {event!r:.80}")
    kind = event[0]
    want = 2 if kind in ("good", "fec") else 1
    if len(event) != want:
        raise PlcError("events", f"a {kind!r} event has {want} element(s), got {len(event)}")
    if kind == "good":
        x = _pcm16(event[1], "events")
        plc.update(x)
        return x
    if kind == "lost":
        return plc.conceal()
    if kind == "fec":
        plc.fec_add(event[1])
    else:
        plc.fec_clear()
    return None


def run_plc(profile: Any, events: Iterable, *, numerics: Numerics | str = LIBOPUS_AVX2, fargan: Any = None,
            kernels: str | None = None) -> np.ndarray:
    """A fresh :class:`NeuralPlc` through ``events`` (see :func:`apply_event`): the int16 signal a listener hears,
    160 samples per ``"good"`` (the frame itself) or ``"lost"`` (the concealment) event, in order."""
    plc = NeuralPlc(profile, numerics=numerics, fargan=fargan, kernels=kernels)
    out = [y for y in (apply_event(plc, e) for e in events) if y is not None]
    return np.concatenate(out) if out else np.zeros(0, np.int16)


__all__ = ["ATT_TABLE", "CONT_SAMPLES", "CONT_VECTORS", "EVENTS", "LAYERS", "NB_FEATURES", "NB_INPUTS",
           "PLC_BUF_SIZE", "NeuralPlc", "PlcError", "PlcInfo", "apply_event", "init_net_state", "load_plc_params",
           "plc_params", "plc_step", "plc_step_jit", "plc_steps", "release_rules", "run_plc"]
