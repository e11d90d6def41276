"""The neural PLC (opus_dred.refimpl._plc) and Burg's cepstral analysis (refimpl._burg) against libopus'
lpcnet_plc.c and burg_cepstral_analysis, through the shim, on real speech at 16 kHz.

The PLC runs in lockstep with the build's ``LPCNetPLCState``: after every event the concealed samples, the eight
counters of its bookkeeping, its 36 last features and its 2400-sample history must be the build's, bit for bit.
FARGAN is libopus' own (``LibopusFargan``, injected), so these tests hold the PLC's own part to the build; the
reference FARGAN, the default, is held to libopus by its own tests (tests/test_fargan.py) and end to end here once.
DRED features are queued as ``opus_decode_native`` queues them (``fec_clear``, then one ``fec_add`` per frame it
needs, ``None`` for frames the packet does not cover), from the DRED that the release's default build put into
the packet after a burst, as its ``opus_dred_parse`` decodes it (the same features for every build compared).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opus_dred.refimpl import _nnet as nnet
from opus_dred.refimpl import _plc
from opus_dred.refimpl._burg import burg_cepstral_analysis, silk_burg_analysis
from opus_dred.refimpl._features import _PREEMPH, tables
from opus_dred.refimpl._plc import NeuralPlc, PlcError, apply_event

RELEASES = ("1.5.2", "1.6.1")
#: each libopus build of the oracle and the preset that emulates it on this CPU (its RCPPS table)
BUILDS = (("default", "avx2"), ("generic", "sse2"))
FS = 16000
F10 = 160


@functools.cache
def _oracle(release: str, build: str = "default"):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(f"libopus-{release}" + ("" if build == "default" else f"-{build}"))


@functools.cache
def _frames(clip: str, n: int) -> np.ndarray:
    from opus_dred.speech import load_clip

    return load_clip(clip, rate=FS)[: n * F10].astype(np.int16).reshape(n, F10)


@functools.cache
def _dred(release: str, clip: str, n: int) -> tuple:
    """The clip through the build's encoder (20 ms packets, DRED on), each packet's DRED as its
    ``opus_dred_parse`` decodes it at 16 kHz (``None`` where a packet carries none)."""
    oracle = _oracle(release)
    packets = oracle.encode(_frames(clip, n).reshape(-1), fs=FS, bitrate=48000, frame_ms=20, dred_duration=104,
                            loss_perc=25)
    out = []
    for p in packets:
        d = oracle.dred_parse(p.data, sampling_rate=FS)
        out.append(None if d.ret <= 0 or d.features is None else (d.features.copy(), d.dred_offset, d.nb_latents))
    return tuple(out)


def _queue_dred(dred, samples_before: int, blend: int) -> list:
    """The events ``opus_decode_native`` makes of a DRED packet for one lost 10 ms frame ``samples_before``
    samples before the packet's audio: ``fec_clear``, then a feature frame (or ``None``) per frame needed."""
    features, dred_offset, nb_latents = dred
    init = 2 if blend == 0 else 0
    base = math.floor((np.float32(samples_before) + np.float32(int(dred_offset * F10 / 4))) / np.float32(F10))
    events = [("fec_clear",)]
    for i in range(init + 1):
        off = init - i - 2 + base
        if 0 <= off <= 4 * nb_latents - 1:
            events.append(("fec", features[off]))
        elif off >= 0:
            events.append(("fec", None))
    return events


def _script(release: str, clip: str, runs: list[tuple[str, int]], n: int) -> list:
    """Events over the clip's frames: ``("good", k)`` runs of good frames, ``("lost", k)`` bursts concealed
    blind, ``("dred", k)`` bursts with the DRED of the packet holding the next good frame queued."""
    frames = _frames(clip, n)
    events, i, blend = [], 0, 0
    for kind, k in runs:
        if kind == "good":
            events += [("good", frames[i + j]) for j in range(k)]
            blend = 0
        else:
            pkt = (i + k) // 2
            dred = _dred(release, clip, n)[pkt] if kind == "dred" else None
            assert kind == "lost" or dred is not None, f"packet {pkt} of {clip} carries no DRED"
            for j in range(k):
                if dred is not None:
                    events += _queue_dred(dred, pkt * 2 * F10 - (i + j) * F10, blend)
                events.append(("lost",))
                blend = 1
        i += k
    assert i <= n
    return events


def _apply_ref(ref, event):
    kind = event[0]
    if kind == "good":
        ref.update(event[1])
        return None
    if kind == "lost":
        return ref.conceal()
    if kind == "fec":
        ref.fec_add(event[1])
    else:
        ref.fec_clear()
    return None


def _lockstep(plc: NeuralPlc, ref, events) -> tuple[int, int]:
    """Both PLCs through ``events``; asserts the same output and state after each one. Returns (frames
    concealed, of which with DRED features)."""
    lost = used = 0
    for k, ev in enumerate(events):
        mine = apply_event(plc, ev)
        theirs = _apply_ref(ref, ev)
        a, b = plc.info(), ref.info()
        where = f"event {k} ({ev[0]})"
        if ev[0] == "lost":
            lost += 1
            used += a.loss_count == 0
            np.testing.assert_array_equal(mine, theirs, err_msg=f"concealed samples, {where}")
        assert a.counters() == {c: getattr(b, c) for c in a.COUNTERS}, where
        np.testing.assert_array_equal(a.features.view(np.uint32), b.features.view(np.uint32),
                                      err_msg=f"features, {where}")
        np.testing.assert_array_equal(a.pcm, b.pcm, err_msg=f"history, {where}")
    return lost, used


def _pair(release: str, build: str, preset: str | None = None, **kw) -> tuple[NeuralPlc, object]:
    from opus_dred.libopus._listen import LibopusFargan, LibopusPlc

    oracle = _oracle(release, build)
    num = nnet.for_host(nnet.NUMERICS[preset or dict(BUILDS)[build]])
    kw.setdefault("fargan", LibopusFargan(oracle))
    return NeuralPlc(f"libopus-{release}", numerics=num, **kw), LibopusPlc(oracle)


#: good runs, single losses, bursts of 2-30 frames (blind and with DRED), resumption after each
RUNS = [("good", 22), ("lost", 1), ("good", 6), ("lost", 2), ("good", 9), ("dred", 5), ("good", 18), ("lost", 30),
        ("good", 4), ("lost", 1), ("good", 17), ("dred", 12), ("good", 3), ("lost", 3), ("good", 12)]
CLIP, NFRAMES = "ps-librivox-0870", 170

# ---------------------------------------------------------------------------------------------------
# Burg's cepstral analysis
# ---------------------------------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_burg_bit_exact_on_speech(release):
    """burg_cepstral_analysis on 2 x 150 frames of speech (and on silence, a full-scale square-ish noise and a pure
    tone, whose 16th-order fit reaches the maximum prediction gain and stops early), bit for bit as both builds
    of the release compute it (the same code, compiled without FMA or SIMD in both)."""
    from opus_dred.libopus._listen import burg_cepstrum

    t = tables(f"libopus-{release}")
    speech = np.concatenate([_frames("ps-numbers", 150), _frames("codec2-speech-orig-16k", 150)]).astype(np.float32)
    rng = np.random.default_rng(7)
    tone = np.round(20000 * np.sin(0.3 * np.arange(4 * F10))).reshape(4, F10)
    noise = np.sign(rng.normal(size=(4, F10))) * 32767
    x = np.concatenate([speech, np.zeros((1, F10)), noise, tone]).astype(np.float32)
    ours = burg_cepstral_analysis(x, t)
    assert ours.shape == (x.shape[0], 36)
    half = x[-1, :80]
    coeffs, _ = silk_burg_analysis(half[1:] - _PREEMPH * half[:-1], 16)
    assert np.count_nonzero(coeffs) == 2 and coeffs[0] != 0  # the early stop: the tone needs two coefficients
    for build in ("default", "generic"):
        ref = np.array([burg_cepstrum(_oracle(release, build), f) for f in x])
        np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32), err_msg=build)
    assert np.ptp(ours[:300, 0]) > 5  # speech: the analysis is not constant


# ---------------------------------------------------------------------------------------------------
# The PLC in lockstep with libopus
# ---------------------------------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("build", [b for b, _ in BUILDS])
@pytest.mark.parametrize("release", RELEASES)
def test_plc_bit_exact_with_libopus_on_speech(release, build, require_native_emulation):
    """170 frames of speech with 7 losses (1 to 30 frames, two with DRED queued), resuming after each: every
    concealed frame, counter, feature and history sample equals the build's (avx2 preset: default build; sse2:
    generic)."""
    plc, ref = _pair(release, build)
    lost, used = _lockstep(plc, ref, _script(release, CLIP, RUNS, NFRAMES))
    assert lost == 54 and used >= 8  # DRED features did replace predictions


@pytest.mark.oracle
def test_plc_preset_matters():
    """The generic build's preset on the default build departs from it (the test above can fail)."""
    plc, ref = _pair("1.6.1", "default", preset="sse2")
    with pytest.raises(AssertionError):
        _lockstep(plc, ref, _script("1.6.1", CLIP, RUNS, NFRAMES))


@pytest.mark.oracle
def test_full_dred_queue_per_release(require_native_emulation):
    """1.5.2 moves the unread DRED frames to the front of a full queue (100) and goes on, as libopus does
    (lockstep); 1.6.1 (104 frames) asserts instead, and writes past the queue in release builds: refused."""
    feats = _dred("1.5.2", CLIP, NFRAMES)[10][0]
    frames = _frames(CLIP, NFRAMES)
    events = [("good", f) for f in frames[:20]] + [("fec_clear",)]
    events += [("fec", feats[i % len(feats)]) for i in range(100)] + [("lost",)] * 2
    events += [("fec", feats[i % len(feats)]) for i in range(4)] + [("lost",)] * 3  # moved at the first: 96 + 4
    events += [("fec", feats[3]), ("lost",), ("good", frames[20])]  # moved again: 97 + 1
    plc, ref = _pair("1.5.2", "default")
    assert _lockstep(plc, ref, events) == (6, 6)
    assert (plc.info().fec_read_pos, plc.info().fec_fill_pos) == (1, 98)
    plc.fec_clear()
    for _ in range(100):
        plc.fec_add(feats[0])
    with pytest.raises(PlcError, match="PLC_MAX_FEC"):  # 100 frames, none read: libopus would write past them
        plc.fec_add(feats[0])

    plc, _ = _pair("1.6.1", "default")
    for i in range(104):
        plc.fec_add(feats[0])
    with pytest.raises(PlcError, match="PLC_MAX_FEC"):
        plc.fec_add(feats[0])
    plc.fec_add(None)  # a skipped frame takes no room
    assert plc.info().fec_skip == 1


@pytest.mark.oracle
def test_end_to_end_with_the_reference_fargan(require_native_emulation):
    """The default vocoder, the reference FARGAN (refimpl._fargan) with the same preset: 93 frames with losses of
    1, 2, 5 (DRED) and 30 frames, in lockstep with the 1.6.1 default build, FARGAN and all."""
    from opus_dred.libopus._listen import LibopusPlc
    from opus_dred.refimpl._fargan import Fargan

    plc = NeuralPlc("libopus-1.6.1", numerics=nnet.for_host(nnet.LIBOPUS_AVX2))
    assert isinstance(plc.fargan, Fargan)
    lost, used = _lockstep(plc, LibopusPlc(_oracle("1.6.1")), _script("1.6.1", CLIP, RUNS[:8], NFRAMES))
    assert lost == 38 and used >= 3


_KINDS = st.sampled_from(["good"] * 5 + ["lost"] * 4 + ["fec"] * 2 + ["none", "clear"])


@pytest.mark.oracle
@settings(max_examples=6)
@given(release=st.sampled_from(RELEASES), start=st.integers(0, NFRAMES - 60),
       kinds=st.lists(_KINDS, min_size=4, max_size=36), picks=st.lists(st.integers(0, 10 ** 6), min_size=36,
                                                                         max_size=36))
def test_plc_random_event_sequences_bit_exact(release, start, kinds, picks, require_native_emulation):
    """Any sequence of good frames, losses, DRED frames (drawn from the speech's own DRED), uncovered frames and
    clears: the default build's PLC and ours stay equal, bit for bit, at every event."""
    frames = _frames(CLIP, NFRAMES)
    pool = np.concatenate([d[0] for d in _dred(release, CLIP, NFRAMES) if d is not None])
    events, i = [], start
    for kind, pick in zip(kinds, picks):
        if kind == "good":
            events.append(("good", frames[i]))
        elif kind == "lost":
            events.append(("lost",))
        elif kind == "fec":
            events.append(("fec", pool[pick % len(pool)]))
        else:
            events.append(("fec", None) if kind == "none" else ("fec_clear",))
        i += kind in ("good", "lost")
    plc, ref = _pair(release, "default")
    _lockstep(plc, ref, events)


@pytest.mark.oracle
@pytest.mark.parametrize("release", RELEASES)
def test_bookkeeping_and_spread_everywhere(release):
    """On any host: the counters follow libopus' default build at every event (they depend on no arithmetic), and
    the concealment with this host's preset is as close to that build as libopus' own generic build is (RMS over
    the concealed frames: within twice that spread, or 10 % of the signal)."""
    from opus_dred.libopus._listen import LibopusPlc

    events = _script(release, CLIP, RUNS, NFRAMES)
    plc, ref = _pair(release, "default")
    generic = LibopusPlc(_oracle(release, "generic"))
    ours, theirs, spread = [], [], []
    for ev in events:
        y = apply_event(plc, ev)
        z = _apply_ref(ref, ev)
        g = _apply_ref(generic, ev)
        a, b = plc.info(), ref.info()
        assert a.counters() == {c: getattr(b, c) for c in a.COUNTERS}
        if ev[0] == "lost":
            ours.append(y)
            theirs.append(z)
            spread.append(g)
    ours, theirs, spread = (np.asarray(v, np.float64) for v in (ours, theirs, spread))

    def rms(v):
        return float(np.sqrt(np.mean(v ** 2)))

    assert rms(theirs) > 300  # speech, not silence
    assert rms(ours - theirs) <= max(2 * rms(spread - theirs), 0.1 * rms(theirs))


# ---------------------------------------------------------------------------------------------------
# Properties and errors
# ---------------------------------------------------------------------------------------------------


def test_run_plc_is_the_event_loop():
    """``run_plc`` returns what the events give one PLC: the good frames as they are, the concealed ones in
    between (with a synthesiser whose output reveals what it was given)."""

    class Echo:
        def cont(self, pcm0, features0):
            self.primed = (np.asarray(pcm0).shape, np.asarray(features0).shape)

        def synthesize_int(self, features):
            return np.full(160, int(np.round(features[0] * 100)), np.int16)

    frames = _frames(CLIP, 40)
    events = [("good", f) for f in frames[:30]] + [("lost",)] * 3 + [("good", frames[33])]
    echo = Echo()
    out = _plc.run_plc("libopus-1.6.1", events, fargan=echo)
    assert out.dtype == np.int16 and out.shape == (34 * 160,)
    np.testing.assert_array_equal(out[:30 * 160], frames[:30].reshape(-1))
    np.testing.assert_array_equal(out[-160:], frames[33])
    assert echo.primed == ((320,), (5, 20))
    plc = NeuralPlc("libopus-1.6.1", fargan=Echo())
    for ev in events[:-1]:
        apply_event(plc, ev)
    concealed = out[30 * 160:33 * 160].reshape(3, 160)
    np.testing.assert_array_equal(concealed[-1], plc.info().pcm[-160:] * 32768)
    assert plc.info().loss_count == 3 and plc.info().blend == 1


def test_errors_name_the_parameter():
    class NoSynth:
        def cont(self, pcm0, features0):
            pass

    with pytest.raises(PlcError, match="fargan"):
        NeuralPlc("libopus-1.6.1", fargan=NoSynth())
    with pytest.raises(PlcError, match="numerics"):
        NeuralPlc("libopus-1.6.1", numerics="avx3", fargan=NoSynth())
    with pytest.raises(PlcError, match="profile"):
        NeuralPlc("no-such-profile", fargan=NoSynth())

    class Synth(NoSynth):
        def synthesize_int(self, features):
            return np.zeros(160, np.int16)

    plc = NeuralPlc("libopus-1.6.1", fargan=Synth())
    with pytest.raises(PlcError, match="pcm160"):
        plc.update(np.zeros(80, np.int16))
    with pytest.raises(PlcError, match="pcm160"):
        plc.update(np.full(160, 0.5))
    with pytest.raises(PlcError, match="pcm160"):
        plc.update(np.full(160, 40000))
    with pytest.raises(PlcError, match="features"):
        plc.fec_add(np.zeros(19, np.float32))
    with pytest.raises(PlcError, match="events"):
        apply_event(plc, ("late",))
    with pytest.raises(PlcError, match="events"):
        apply_event(plc, ("good",))
    with pytest.raises(PlcError, match="x"):
        _plc.plc_step(plc.params, _plc.init_net_state(plc.params), np.zeros(56, np.float32))
