"""The receiver's engines: who synthesises the DRED and PLC frames of a decode (``simulate --engine``).

``libopus``: the build's decoder does everything (:class:`~opus_dred.libopus._receiver.LibopusExecutor`).

``jax``: libopus still decodes every packet and runs every concealment, so that its SILK and CELT state is its
own, but the neural concealment's samples are ours. The decoder is the build's tapped one
(:class:`~opus_dred.libopus._plctap.TappedOracle`), and :class:`JaxSplice` listens to its neural-PLC calls:

* each ``lpcnet_plc_update`` (the good frames at 16 kHz, where libopus takes them: SILK's 16 kHz output frame by
  frame from ``silk/PLC.c:silk_PLC``; the downsampled CELT history at the start of a CELT concealment,
  ``celt/celt_decoder.c:update_plc_state``) is fed to our :class:`~opus_dred.refimpl._plc.NeuralPlc`;
* a DRED decode's ``lpcnet_plc_fec_clear`` and ``lpcnet_plc_fec_add`` calls (``src/opus_decoder.c:
  opus_decode_native``) are checked against the queue :func:`dred_queue` computes from the call's arguments,
  and our PLC queues the rows of *our* RDO-VAE features of that packet
  (:func:`opus_dred.refimpl._decode.decode_dred`) at the same offsets;
* each ``lpcnet_plc_conceal`` (``silk/PLC.c:silk_PLC_conceal``, ``celt/celt_decoder.c:celt_decode_lost``) runs
  our PLC (its network, the DRED queue, FARGAN) and our 160 samples replace the 160 libopus' concealment wrote,
  before libopus reads them.

What is spliced is therefore the neural PLC's 16 kHz output, at the point where it enters the codec: in SILK,
the concealed frame that ``silk_PLC_conceal`` returns (from which SILK also re-derives its LPC state, then adds
its comfort noise and resamples to the API rate); in CELT, the 16 kHz frames ``celt_decode_lost`` upsamples to
48 kHz, pre-emphasises and cross-fades with its pitch PLC over the first 2.5 ms of a loss. The transition at
resumption is libopus' own, run on our samples: SILK's ``silk_PLC_glue_frames`` energy matching of the first
good frame, CELT's overlap-add from the concealed MDCT history; the good frames after it are libopus' decode
(which depends on the concealment only through that state). libopus' own neural PLC keeps running on its own
history (its samples are discarded); before each call the splice checks that our PLC's eight counters equal
libopus' (``blend`` excepted: ``celt_decode_with_ec_dred`` resets it by a direct write when a CELT packet
arrives, which is mirrored), so a bookkeeping difference stops the decode instead of passing unnoticed.

With the numerics preset that reproduces the build on this host (the default: the build's variant with this
CPU's ``RCPPS`` table), our samples equal libopus' bit for bit wherever that table is the CPU's own
(``tests/test_engine.py``), and the two engines give the same PCM; :class:`SpliceStats` counts the frames and how many were equal.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from opus_dred.bitstream._profiles import get_profile
from opus_dred.conformance._adapters import persistent_jax_cache
from opus_dred.errors import OpusDredError
from opus_dred.libopus._oracle import DredParse, Oracle
from opus_dred.libopus._plctap import COUNTERS, TapCall, TapError, TappedOracle
from opus_dred.libopus._receiver import LibopusExecutor
from opus_dred.refimpl import _receiver as rx
from opus_dred.refimpl._decode import decode_dred

ENGINES = ("libopus", "jax")
#: the numerics preset (``opus_dred.refimpl._nnet.NUMERICS``) of each build variant before ``for_host``, and the
#: matching name of the DRED decoder's numerics (``opus_dred.refimpl._decode.NUMERICS``)
VARIANT_NUMERICS = {"default": ("avx2", "libopus-avx2-host"), "generic": ("sse2", "libopus-sse2-host")}
#: ``opus_dred.refimpl._decode`` numerics names for presets of ``opus_dred.refimpl._nnet.NUMERICS``
_DECODE_NUMERICS = {"avx2": "libopus-avx2", "avx2-intel": "libopus-avx2-intel", "sse2": "libopus-sse2",
                    "sse2-intel": "libopus-sse2-intel", "c": "libopus-c", "float": "float"}


class EngineError(OpusDredError, ValueError):
    """A bad engine choice, or our PLC's bookkeeping parted from libopus' during a spliced decode."""


def dred_queue(blend: int, frame_size: int, rate: int, dred_offset_samples: int, dred_offset: int,
               nb_latents: int) -> list[int | None]:
    """The DRED feature rows ``opus_decode_native`` queues before a DRED decode of ``frame_size`` samples at
    ``rate``, ``dred_offset_samples`` before the packet: ``init_frames = 2`` when the PLC's ``blend`` is 0 (its
    last call was an update), then one row per 10 ms (at least one); row ``init - i - 2 + floor((offset +
    dred_offset F10 / 4) / F10)`` (the packet's ``dred_offset`` in 2.5 ms units, times ``F10 = rate / 100``,
    divided by 4 in C's integer arithmetic; the sum and quotient in float32), ``None`` (a frame DRED does not
    cover) past the last row, nothing before the first."""
    f10 = rate // 100
    init = 2 if blend == 0 else 0
    needed = init + max(1, frame_size // f10)
    base = math.floor((np.float32(dred_offset_samples) + np.float32(int(dred_offset * f10 / 4))) / np.float32(f10))
    out: list[int | None] = []
    for i in range(needed):
        off = init - i - 2 + base
        if 0 <= off <= 4 * nb_latents - 1:
            out.append(off)
        elif off >= 0:
            out.append(None)
    return out


@dataclass
class SpliceStats:
    """What a spliced decode did: 10 ms frames our PLC concealed (``concealed``; ``from_dred``: those whose
    call read DRED features from the queue), how many equal libopus' own concealment bit for bit (``identical``) and the largest sample
    difference; DRED rows queued (``dred_rows``, ``dred_rows_identical`` equal to libopus' features);
    ``blend_resets``: CELT's direct resets of ``blend`` mirrored."""

    concealed: int = 0
    from_dred: int = 0
    identical: int = 0
    max_abs_diff: int = 0
    dred_rows: int = 0
    dred_rows_identical: int = 0
    updates: int = 0
    blend_resets: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def build_numerics(oracle: Oracle) -> tuple[str, str]:
    """``(PLC preset, DRED decoder numerics)`` that reproduce ``oracle``'s build on this host: the variant's
    preset with this CPU's ``RCPPS`` table (``nnet.for_host``)."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX, which the libopus engine does not need

    variant = getattr(oracle.build, "variant", "default")
    if variant not in VARIANT_NUMERICS:
        raise EngineError(f"engine jax: no numerics preset describes a {variant!r} build ({oracle.build.name}); "
                          f"pass numerics=")
    base, dec = VARIANT_NUMERICS[variant]
    num = nnet.for_host(nnet.NUMERICS[base])
    name = next((k for k, v in nnet.NUMERICS.items() if v == num), base)
    return name, _DECODE_NUMERICS.get(name, dec)


class JaxSplice:
    """The listener of a tapped decode (module docstring): one :class:`NeuralPlc` per libopus PLC state.

    ``profile``: the profile whose model pack our PLC and DRED decoder use (default: the build's release);
    ``numerics``: a preset name of ``opus_dred.refimpl._nnet.NUMERICS`` (default: the build's on this host).
    ``strict``: raise :class:`EngineError` when a counter of our PLC differs from libopus' before a call."""

    def __init__(self, oracle: Oracle, rate: int, *, profile: str | None = None, numerics: str | None = None,
                 strict: bool = True):
        self.oracle = oracle
        self.rate = rate
        self.profile = get_profile(profile or _profile_of(oracle))
        persistent_jax_cache(0.5)
        from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX, which the libopus engine does not need

        plc_num, dec_num = build_numerics(oracle) if numerics is None else (numerics, None)
        if plc_num not in nnet.NUMERICS:
            raise EngineError(f"numerics {plc_num!r} is none of {', '.join(nnet.NUMERICS)}")
        self.numerics = plc_num
        self.decode_numerics = dec_num or _DECODE_NUMERICS.get(plc_num, "float")
        self.strict = strict
        self.stats = SpliceStats()
        self._plcs: dict[int, Any] = {}
        self._dred: tuple[DredParse, np.ndarray] | None = None
        self._queue: list[int | None] | None = None
        self._expected_queue: list[int | None] | None = None
        self._queue_args: tuple[int, ...] | None = None
        self._decoded: dict[bytes, Any] = {}  # packet -> our whole DRED decode of it

    def plc_for(self, state: int):
        """Our :class:`~opus_dred.refimpl._plc.NeuralPlc` mirroring the libopus PLC state at ``state``."""
        from opus_dred.refimpl._plc import NeuralPlc  # lazy: loads JAX, which the libopus engine does not need

        p = self._plcs.get(state)
        if p is None:
            p = self._plcs[state] = NeuralPlc(self.profile, numerics=self.numerics)
        return p

    # -- the DRED decode the executor is about to run -------------------------------------------------

    def begin_dred(self, packet: bytes, parse: DredParse, action: rx.Action) -> None:
        """Before ``opus_decoder_dred_decode``: our features of ``packet`` for the queue; the queue
        :func:`dred_queue` expects is computed at the decode's first ``lpcnet_plc_fec_clear``, with the
        ``blend`` libopus then reads.

        Each packet's DRED is decoded once, whole (``max_dred_samples=None``), and cut to the latents libopus'
        parse kept for this action: the RDO-VAE decoder runs from the newest latent to the oldest, so a parse
        bounded by ``max_dred_samples`` has the first rows of the whole one."""
        ours = self._decoded.get(packet)
        if ours is None:
            ours = self._decoded[packet] = decode_dred(packet, self.profile, max_dred_samples=None,
                                                       sampling_rate=self.rate, numerics=self.decode_numerics)
        if ours.nb_latents < parse.nb_latents or ours.dred_offset != parse.dred_offset:
            raise EngineError(f"packet {action.seq}: our DRED decoder reads {ours.nb_latents} latents at offset "
                              f"{ours.dred_offset}, libopus {parse.nb_latents} at {parse.dred_offset}")
        self._dred = (parse, ours.features[: 4 * parse.nb_latents])
        self._queue = []
        self._expected_queue = None
        self._queue_args = (int(action.samples), self.rate, int(action.offset_samples), parse.dred_offset,
                            parse.nb_latents)

    def end_dred(self) -> None:
        """After the DRED decode: the rows libopus queued must be :func:`dred_queue`'s. A call libopus refused
        before reaching ``opus_decode_native``'s DRED block (a ``frame_size`` of 0: losses before the first
        packet) queues nothing and clears nothing."""
        queue, expected = self._queue, self._expected_queue
        self._dred = self._queue = self._expected_queue = self._queue_args = None
        if queue is None:
            return
        if expected is None:
            if queue:
                raise EngineError(f"opus_decode_native queued DRED rows {queue} without lpcnet_plc_fec_clear")
        elif queue != expected:
            raise EngineError(f"opus_decode_native queued DRED rows {queue}, dred_queue gives {expected}")

    # -- the listener ---------------------------------------------------------------------------------

    def _sync(self, plc: Any, call: TapCall) -> None:
        ours = {k: int(getattr(plc, k)) for k in COUNTERS}
        bad = [f"{k} {ours[k]} (libopus {call.counters[k]})" for k in COUNTERS
               if k != "blend" and ours[k] != call.counters[k]]
        if bad and self.strict:
            raise EngineError(f"before lpcnet_plc_{call.kind}: our PLC's " + ", ".join(bad))
        if ours["blend"] != call.counters["blend"]:
            plc.blend = call.counters["blend"]
            self.stats.blend_resets += 1

    def _dred_row(self, call: TapCall) -> np.ndarray | None:
        if call.features is None:
            if self._queue is not None:
                self._queue.append(None)
            return None
        if self._dred is None:
            raise EngineError("lpcnet_plc_fec_add outside a DRED decode")
        parse, ours = self._dred
        lay = self.oracle.layout
        stride = 4 * lay.num_features
        rel = call.features_address - (parse.ptr + lay.offset_fec_features)
        row, rem = divmod(rel, stride)
        if rem or not 0 <= row < ours.shape[0]:
            raise EngineError(f"lpcnet_plc_fec_add of features at byte {rel} of fec_features, not a row of the "
                              f"{ours.shape[0]} decoded")
        self._queue.append(row)
        self.stats.dred_rows += 1
        self.stats.dred_rows_identical += int(np.array_equal(ours[row], call.features))
        return ours[row]

    def __call__(self, call: TapCall) -> np.ndarray | None:
        plc = self.plc_for(call.state)
        self._sync(plc, call)
        if call.kind == "update":
            plc.update(call.pcm)
            self.stats.updates += 1
        elif call.kind == "fec_add":
            plc.fec_add(self._dred_row(call))
        elif call.kind == "fec_clear":
            if self._queue_args is not None and self._expected_queue is None:
                self._expected_queue = dred_queue(call.counters["blend"], *self._queue_args)
            plc.fec_clear()
        elif call.kind == "reset":
            plc.reset()
        elif call.kind == "conceal":
            read = plc.fec_read_pos
            out = plc.conceal()
            s = self.stats
            s.concealed += 1
            s.from_dred += int(plc.fec_read_pos != read)
            diff = int(np.max(np.abs(out.astype(np.int32) - call.pcm.astype(np.int32))))
            s.identical += int(diff == 0)
            s.max_abs_diff = max(s.max_abs_diff, diff)
            return out
        return None


def _profile_of(oracle: Oracle) -> str:
    name = f"libopus-{oracle.build.release}"
    try:
        get_profile(name)
    except Exception:  # noqa: BLE001 - any lookup failure: the build has no profile of its release
        raise EngineError(f"engine jax: build {oracle.build.name} (release {oracle.build.release}) has no profile "
                          f"{name}; pass profile=") from None
    return name


class SplicingExecutor(LibopusExecutor):
    """:class:`LibopusExecutor` on a tapped decoder, with :class:`JaxSplice` told of each DRED decode."""

    def __init__(self, oracle: TappedOracle, rate: int, splice: JaxSplice, *, complexity: int = 0):
        super().__init__(oracle, rate, complexity=complexity)
        self.splice = splice

    def execute(self, action: rx.Action, packets: Sequence[bytes]) -> int:
        if isinstance(action, (rx.Dred, rx.DredPlc)):
            d = self.dred(action.seq, packets[action.seq], action.max_dred_samples)
            if d.ret > 0 and d.process_stage == 2:
                self.splice.begin_dred(packets[action.seq], d, action)
            try:
                n = super().execute(action, packets)
            finally:
                self._check(action)
            self.splice.end_dred()
            return n
        n = super().execute(action, packets)
        self._check(action)
        return n

    def _check(self, action: rx.Action) -> None:
        """What the listener raised during the action's libopus calls: an :class:`EngineError` of the splice
        comes back as an :class:`EngineError` naming the action, anything else as the tap's ``TapError``."""
        try:
            self.oracle.check()
        except TapError as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            if isinstance(cause, EngineError):
                raise EngineError(f"{action}: {cause}") from cause
            raise


@contextlib.contextmanager
def executor(engine: str, oracle: Oracle, rate: int, *, complexity: int = 0, profile: str | None = None,
             numerics: str | None = None) -> Iterator[LibopusExecutor]:
    """An executor of receiver actions for ``engine`` (:data:`ENGINES`) on ``oracle``'s build; for ``jax`` its
    ``splice`` attribute holds the :class:`JaxSplice` (and its :class:`SpliceStats`) once the block ends."""
    if engine == "libopus":
        with LibopusExecutor(oracle, rate, complexity=complexity) as ex:
            yield ex
        return
    if engine != "jax":
        raise EngineError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    tapped = tapped_oracle(oracle)
    splice = JaxSplice(tapped, rate, profile=profile, numerics=numerics)
    with tapped.tap(splice), SplicingExecutor(tapped, rate, splice, complexity=complexity) as ex:
        yield ex


def tapped_oracle(oracle: Any) -> TappedOracle:
    """``oracle`` itself if it is tapped, else the tapped oracle of its build (one per build)."""
    if isinstance(oracle, TappedOracle):
        return oracle
    name = oracle.build.name
    inst = TappedOracle._instances.get(name)
    if inst is None:
        inst = TappedOracle._instances[name] = TappedOracle(oracle.build)
    return inst


__all__ = ["ENGINES", "EngineError", "JaxSplice", "SpliceStats", "SplicingExecutor", "build_numerics", "dred_queue",
           "executor", "tapped_oracle"]
