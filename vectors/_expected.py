"""Expected values of every handler, computed from a case's inputs by the reference.

One function per handler, ``expected_<handler>(profile, inputs, parameters) -> (expected, tolerance)``; the
handler registry (:mod:`opus_dred.vectors._handlers`, ``expected_for``) names them, and the generator
(:mod:`opus_dred.vectors._generate`), ``opus-dred vectors verify`` (which recomputes them from the stored inputs
and checks the bytes) and the reference adapter of ``opus-dred conform`` call them through it. Only opus-dred's
own layers are used: the bitstream layer (range coder, packet framing, extensions, DRED payloads, DRED-only
streams), the reference decoder (``refimpl._decode``, ``refimpl._receiver``) and the reference encoder
(``refimpl._features``, ``refimpl._pitchdnn``, ``refimpl._dred_encoder``: ``features`` and ``dred_encode``,
under the numerics preset a case names). Nothing here calls libopus.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from opus_dred.bitstream import _rangecoder as rc
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._dred_encode import DredSettingsError
from opus_dred.bitstream._dredstream import chronological, read_stream_record
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import Extension, find_dred_extension, parse_extensions, write_extensions
from opus_dred.bitstream._formats import read_dred_stream
from opus_dred.bitstream._packet import parse_packet
from opus_dred.bitstream._profiles import get_profile
from opus_dred.refimpl import _receiver as rx
from opus_dred.refimpl._decode import DEFAULT_NUMERICS, decode_dred, features_of
from opus_dred.refimpl._features import FeatureExtractor, Resampler
from opus_dred.refimpl._receiver import run
from opus_dred.vectors._format import Part

#: Thresholds of libopus' DRED decoding conformance test (tests/dred_vectors.sh: dred_compare -features
#: -thresholds .5 .15 .02).
FEATURE_TOLERANCE = {"metric": "dred_compare-features", "total": 0.5, "max": 0.15, "pitch": 0.02}


# ----------------------------------------------------------------------------------------------------------
# range_coder
# ----------------------------------------------------------------------------------------------------------
def run_ops(direction: str, ops: list[dict], *, stream: bytes | None = None, size: int = 0) -> dict[str, Any]:
    """Run range-coder ``ops`` (the ``ops.json`` schema of docs/vector-format.md) with our coder."""
    if direction == "encode":
        coder = rc.RangeEncoder(size)
    elif direction == "decode":
        coder = rc.RangeDecoder(stream or b"")
    else:
        raise ValueError(f"direction {direction!r}")
    enc = direction == "encode"
    values: list[int] = []
    trace: list[dict[str, int]] = []
    for op in ops:
        kind = op["op"]
        if kind == "uint":
            v = coder.enc_uint(op["value"], op["ft"]) if enc else coder.dec_uint(op["ft"])
        elif kind == "bits":
            v = coder.enc_bits(op["value"], op["bits"]) if enc else coder.dec_bits(op["bits"])
        elif kind == "encode":
            if enc:
                v = coder.encode(op["fl"], op["fh"], op["ft"])
            else:
                v = coder.decode(op["ft"])
                coder.update(op["fl"], op["fh"], op["ft"])
        elif kind == "icdf":
            v = coder.enc_icdf(op["value"], op["icdf"], op["ftb"]) if enc else coder.dec_icdf(op["icdf"], op["ftb"])
        elif kind == "laplace_p0":
            if enc:
                v = rc.laplace_encode_p0(coder, op["value"], op["p0"], op["decay"])
            else:
                v = rc.laplace_decode_p0(coder, op["p0"], op["decay"])
        elif kind == "bit_logp":
            v = coder.enc_bit_logp(op["value"], op["logp"]) if enc else coder.dec_bit_logp(op["logp"])
        else:
            raise ValueError(f"unknown range-coder op {kind!r}")
        if not enc:
            values.append(int(v))
        trace.append({"tell": coder.tell(), "tell_frac": coder.tell_frac(), "rng": int(coder.rng)})
    out: dict[str, Any] = {"trace": trace, "final_rng": int(coder.rng), "error": int(coder.error)}
    if enc:
        out["stream"] = coder.done()
        out["error"] = int(coder.error)
    else:
        out["values"] = values
    return out


def expected_range_coder(profile, inputs, params):
    direction = params["direction"]
    r = run_ops(direction, inputs["ops"], stream=inputs.get("stream"), size=int(params.get("size", 0)))
    exp: dict[str, Any] = {"trace": Part("trace.json", r["trace"]), "final_rng": r["final_rng"], "error": r["error"]}
    if direction == "encode":
        exp["stream"] = Part("stream.bin", r["stream"])
    else:
        exp["values"] = Part("values.json", r["values"])
    return exp, None


# ----------------------------------------------------------------------------------------------------------
# packet, extensions
# ----------------------------------------------------------------------------------------------------------
def packet_record(data: bytes, self_delimited: bool = False) -> dict[str, Any]:
    p = parse_packet(data, self_delimited=self_delimited)
    return {
        "toc": p.toc.to_byte(),
        "config": p.toc.config,
        "stereo": bool(p.toc.stereo),
        "code": p.code,
        "mode": p.toc.mode,
        "bandwidth": p.toc.bandwidth,
        "frame_size_48k": p.toc.frame_size_48k,
        "nb_frames": p.nb_frames,
        "frame_sizes": [len(f) for f in p.frames],
        "frame_offsets": list(p.frame_offsets),
        "vbr": bool(p.vbr),
        "has_padding": bool(p.has_padding),
        "padding_offset": p.padding_offset,
        "padding_length": len(p.padding),
        "payload_offset": p.payload_offset,
        "length": p.length,
    }


def expected_packet(profile, inputs, params):
    return {"packet": Part("packet.json", packet_record(inputs["packet"], bool(params.get("self_delimited"))))}, None


def extensions_record(exts) -> list[dict[str, Any]]:
    return [{"id": e.id, "frame": e.frame, "data": bytes(e.data).hex(), "data_offset": e.data_offset} for e in exts]


def expected_extensions(profile, inputs, params):
    syntax = params.get("syntax") or get_profile(profile).extension_syntax
    nb_frames = int(params["nb_frames"])
    if params["direction"] == "parse":
        exts = parse_extensions(inputs["padding"], nb_frames, syntax=syntax)
        return {"extensions": Part("extensions.json", extensions_record(exts))}, None
    exts = [Extension(int(e["id"]), int(e["frame"]), bytes.fromhex(e["data"])) for e in inputs["extensions"]]
    pad = write_extensions(exts, nb_frames, syntax=syntax, pad_to=params.get("pad_to"))
    return {"padding": Part("padding.bin", pad)}, None


# ----------------------------------------------------------------------------------------------------------
# DRED
# ----------------------------------------------------------------------------------------------------------
def expected_dred_payload(profile, inputs, params):

    prof = get_profile(profile)
    loc = find_dred_extension(inputs["packet"], prof)
    if loc is None:
        return {"found": False}, None
    p = read_dred_payload(loc.payload, prof, max_dred_samples=params.get("max_dred_samples"),
                          sampling_rate=int(params.get("sampling_rate", 48000)),
                          dred_frame_offset=loc.dred_frame_offset)
    rec = {
        **p.header_dict(),
        "extension_frame": loc.frame, "payload_offset": loc.payload_offset, "payload_bytes": len(loc.payload),
        "nb_latents": p.nb_latents, "q_levels": [int(x) for x in p.q_levels],
        "state_q": [int(x) for x in p.state_q], "latents_q": [[int(x) for x in r] for r in p.latents_q],
    }
    return {"found": True, "payload": Part("payload.json", rec),
            "state": Part("state.npy", np.asarray(p.state, np.float32)),
            "latents": Part("latents.npy", np.asarray(p.latents, np.float32).reshape(p.nb_latents, prof.latent_stride))}, None


def expected_dred_features(profile, inputs, params):
    r = decode_dred(inputs["packet"], profile, max_dred_samples=params.get("max_dred_samples"),
                    sampling_rate=int(params.get("sampling_rate", 48000)))
    if not r.found:
        return {"found": False, "nb_latents": 0, "ret": 0, "dred_end": 0}, None
    return {"found": True, "features": Part("features.f32", np.asarray(r.features, np.float32)),
            "nb_latents": r.nb_latents, "dred_offset": r.dred_offset, "dred_end": r.dred_end,
            "ret": r.ret}, dict(FEATURE_TOLERANCE)


def dred_stream_features(profile: str, stream: bytes, numerics: str | None = None) -> np.ndarray:
    """Every record of a DRED-only stream decoded, features in time order as ``fargan_demo -dred-decoding``
    writes them (the official layout's DRED decoding vector)."""
    prof = get_profile(profile)
    out = []
    for rec in read_dred_stream(stream, quant_levels=prof.quant_levels):
        p = read_stream_record(rec, prof)
        out.append(chronological(features_of(prof, p.state, p.latents, numerics=numerics or DEFAULT_NUMERICS)))
    return (np.concatenate(out) if out else np.zeros((0, 20), np.float32)).astype(np.float32)


def expected_dred_stream(profile, inputs, params):
    features = dred_stream_features(profile, inputs["stream"])
    return {"features": Part("features.f32", features)}, dict(FEATURE_TOLERANCE)


# ----------------------------------------------------------------------------------------------------------
# receiver
# ----------------------------------------------------------------------------------------------------------
def events_from_json(events: list[dict]) -> list:
    out = []
    for e in events:
        t = e["type"]
        if t == "arrived":
            out.append(rx.PacketArrived(int(e["seq"]), int(e["samples"]), bool(e.get("has_lbrr", False)),
                                        int(e.get("dred_latents", 0)), int(e.get("dred_offset", 0))))
        elif t == "lost":
            out.append(rx.PacketLost(int(e["seq"])))
        elif t == "end":
            out.append(rx.EndOfStream())
        else:
            raise ValueError(f"unknown event type {t!r}")
    return out


def actions_to_json(actions) -> list[dict]:
    return [{"action": type(a).__name__.lower(), **asdict(a)} for a in actions]


def expected_receiver(profile, inputs, params):
    actions = run(events_from_json(inputs["events"]), params["policy"], rate=int(params["sampling_rate"]),
                  depth=int(params.get("jitter_depth", 0)))
    return {"actions": Part("actions.json", actions_to_json(actions))}, None


# ----------------------------------------------------------------------------------------------------------
# invalid
# ----------------------------------------------------------------------------------------------------------
def error_record(exc: BitstreamError) -> dict[str, Any]:
    return {"class": type(exc).__name__, "byte_offset": exc.byte_offset, "rule": exc.rule}


def parse_layer(profile: str, layer: str, data: bytes, params: dict) -> Any:
    """Read ``data`` as ``layer`` with the reference; returns what was read or raises a BitstreamError."""
    prof = get_profile(profile)
    if layer == "packet":
        return parse_packet(data, self_delimited=bool(params.get("self_delimited")))
    if layer == "extensions":
        return parse_extensions(data, int(params.get("nb_frames", 48)), syntax=prof.extension_syntax)
    if layer == "dred":

        loc = find_dred_extension(data, prof)
        if loc is None:
            return None
        return read_dred_payload(loc.payload, prof, max_dred_samples=params.get("max_dred_samples"),
                                 sampling_rate=int(params.get("sampling_rate", 48000)),
                                 dred_frame_offset=loc.dred_frame_offset)
    if layer == "dred_stream":

        return [read_stream_record(r, prof) for r in read_dred_stream(data, quant_levels=prof.quant_levels)]
    raise ValueError(f"unknown layer {layer!r}")


def expected_invalid(profile, inputs, params):
    try:
        parse_layer(profile, params["layer"], inputs["data"], params)
    except BitstreamError as exc:
        return {"error": error_record(exc)}, None
    raise ValueError(f"the reference accepts these bytes as {params['layer']}: not an invalid case")


# ----------------------------------------------------------------------------------------------------------
# the encoder: features, dred_encode
# ----------------------------------------------------------------------------------------------------------
#: The tolerance of a ``features`` case: the largest ``dred_compare -features`` figures (total, max, pitch) that
#: libopus' own default (AVX2) and ``-generic`` (SSE2, plain-C DSP) builds give against each other on the
#: canonical suite's ``features`` inputs (both releases, an AMD Zen 4 core), each rounded up to two significant
#: digits: measured 0.00445, 0.00445 (one frame's correlation feature, where PitchDNN's two arithmetics pick
#: another period) and 2.31e-05. ``tests/test_encoder_vectors.py`` measures the spread again and checks these
#: figures against it.
ENCODER_FEATURE_TOLERANCE = {"metric": "dred_compare-features", "total": 0.0045, "max": 0.0045, "pitch": 2.4e-05}

#: One byte of ``OpusEncoder.activity_mem`` per 2.5 ms (``src/opus_encoder.c``): frame sizes in samples at
#: ``fs`` are whole multiples of ``fs / 400``.
ACTIVITY_RATE = 400

#: The input rates of libopus' DRED encoder (``dnn/dred_encoder.c:dred_convert_to_16k``).
ENCODER_RATES = (8000, 12000, 16000, 24000, 48000)


def encoder_numerics(name: str):
    """The ``Numerics`` preset ``name`` of :data:`opus_dred.refimpl._nnet.NUMERICS` (``"avx2"``: a default
    x86 libopus build on an AMD core; ``"sse2"``: a ``-generic`` build there; ...) and the feature extractor's
    DSP kernels that go with it: a default build's (``"x86"``) with the AVX2 presets, plain C (``"c"``) with
    the others."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    if name not in nnet.NUMERICS:
        raise DredSettingsError("numerics", name, f"must be one of {', '.join(nnet.NUMERICS)}")
    return nnet.NUMERICS[name], ("x86" if name.startswith("avx2") else "c")


def encoder_pcm(profile: str, pcm, fs: int) -> np.ndarray:
    """``pcm`` as libopus' float API takes it (int16 / 32768), after checking it is int16 mono at a DRED rate
    and a whole number of 16 kHz samples long."""
    if fs not in ENCODER_RATES:
        raise DredSettingsError("sampling_rate", fs, f"must be one of {', '.join(map(str, ENCODER_RATES))} "
                                "(dred_convert_to_16k)", profile=profile)
    a = np.asarray(pcm)
    if a.ndim != 1 or a.dtype != np.int16:
        raise DredSettingsError("pcm", f"{a.dtype}{list(a.shape)}", "must be 1-D int16 samples (mono)",
                                profile=profile)
    if (a.shape[0] * 16000) % fs:
        raise DredSettingsError("pcm", a.shape[0], f"samples at {fs} Hz are not a whole number of 16 kHz samples",
                                profile=profile)
    return a.astype(np.float32) / np.float32(32768)


def encoder_features(profile: str, pcm, fs: int, numerics: str) -> np.ndarray:
    """The 20 features of every 10 ms frame the DRED encoder computes from ``pcm`` (int16 mono at ``fs``), with
    the reference (:class:`~opus_dred.refimpl._features.Resampler`,
    :class:`~opus_dred.refimpl._features.FeatureExtractor` and its PitchDNN under ``numerics``): the 16 kHz
    conversion (``dred_convert_to_16k``), ``DRED_SILK_ENCODER_DELAY`` zero samples before it (as
    ``dred_encoder_reset`` leaves the input buffer), then ``lpcnet_compute_single_frame_features_float`` on
    each whole 160 samples; float32 ``[frames, 20]``."""
    from opus_dred.refimpl._dred_encoder import DRED_FRAME_SIZE, DRED_SILK_ENCODER_DELAY  # lazy: loads JAX

    prof = get_profile(profile)
    x = encoder_pcm(profile, pcm, fs)
    _, kernels = encoder_numerics(numerics)
    s16 = np.concatenate([np.zeros(DRED_SILK_ENCODER_DELAY, np.float32),
                          np.asarray(Resampler(fs, prof).process(x), np.float32)])
    n = s16.shape[0] // DRED_FRAME_SIZE
    feats = FeatureExtractor(prof, kernels=kernels, pitch=numerics).frames(s16[:n * DRED_FRAME_SIZE]).features
    return np.asarray(feats, np.float32).reshape(n, -1)[:, :prof.num_features]


def expected_features(profile, inputs, params):
    feats = encoder_features(profile, inputs["pcm"], int(params["sampling_rate"]), str(params["numerics"]))
    return {"features": Part("features.f32", feats)}, dict(ENCODER_FEATURE_TOLERANCE)


def encoder_frames(profile: str, pcm, activity, params: dict):
    """The frames of a ``dred_encode`` case, each as libopus' encoder hands them to its DRED half: ``(float
    PCM of the frame, activity memory after it)``. The memory (``OpusEncoder.activity_mem``, one byte per
    2.5 ms, newest first, zero at the start) moves by the frame's 2.5 ms count and takes the frame's
    ``activity`` value in front, as ``opus_encode_native`` does after ``dred_compute_latents``
    (:func:`opus_dred.refimpl._dred_encoder.update_activity`)."""
    from opus_dred.refimpl._dred_encoder import ACTIVITY_MEMORY, update_activity  # lazy: loads JAX

    fs = int(params["sampling_rate"])
    x = encoder_pcm(profile, pcm, fs)
    size = check_frames(profile, x.shape[0], activity, params)
    mem = np.zeros(ACTIVITY_MEMORY, np.int64)
    for i, a in enumerate(activity):
        mem = update_activity(mem, int(a), size, fs)
        yield x[i * size:(i + 1) * size], mem.astype(np.uint8)


def check_frames(profile: str, n_samples: int, activity, params: dict) -> int:
    """The frame size of a ``dred_encode`` case, after checking it (a whole number of 2.5 ms at the case's
    rate, at most 120 ms, dividing the PCM) and the activity (one of 0, 1, 255 per frame)."""
    fs = int(params["sampling_rate"])
    size = params["frame_size"]
    if not isinstance(size, int) or size <= 0 or (size * ACTIVITY_RATE) % fs or size > fs * 120 // 1000:
        raise DredSettingsError("frame_size", size, f"must be a multiple of 2.5 ms at {fs} Hz "
                                f"({fs // ACTIVITY_RATE} samples), at most 120 ms", profile=profile)
    if n_samples % size:
        raise DredSettingsError("pcm", n_samples, f"samples are not a whole number of {size}-sample frames",
                                profile=profile)
    act = np.asarray(activity)
    if act.shape != (n_samples // size,) or not np.isin(act, (0, 1, 255)).all():
        raise DredSettingsError("activity", f"{act.dtype}{list(act.shape)}", f"must be one of 0, 1, 255 per frame "
                                f"({n_samples // size} frames)", profile=profile)
    return size


def encode_payloads(profile: str, pcm, activity, params: dict) -> list[bytes]:
    """The DRED payload (range-coded bytes, without ``'D'`` and the version; ``b""`` where there is none) of
    every frame of ``pcm`` from the reference encoder (:func:`opus_dred.refimpl._dred_encoder.encode_dred`:
    ``dred_compute_latents``, the activity memory, then ``dred_encode_silk_frame`` per frame), under the case's
    settings: ``sampling_rate``, ``frame_size``, ``q0``, ``dq``, ``qmax``, ``max_chunks``, ``max_bytes``,
    ``extra_delay`` and ``numerics`` (:func:`encoder_numerics`)."""
    from opus_dred.refimpl._dred_encoder import encode_dred  # lazy: loads JAX

    fs = int(params["sampling_rate"])
    x = encoder_pcm(profile, pcm, fs)
    check_frames(profile, x.shape[0], activity, params)
    _, kernels = encoder_numerics(str(params["numerics"]))
    return encode_dred(np.asarray(pcm), profile, fs, q0=int(params["q0"]), dq=int(params["dq"]),
                       qmax=int(params["qmax"]), frame_size=int(params["frame_size"]),
                       extra_delay=int(params["extra_delay"]), activity=list(activity),
                       max_chunks=int(params["max_chunks"]), max_bytes=int(params["max_bytes"]),
                       numerics=str(params["numerics"]), kernels=kernels)


def expected_dred_encode(profile, inputs, params):
    payloads = encode_payloads(profile, inputs["pcm"], inputs["activity"], params)
    return {"payloads": Part("payloads.json", [p.hex() for p in payloads])}, None


# ----------------------------------------------------------------------------------------------------------
# the listening side: vocoder, plc
# ----------------------------------------------------------------------------------------------------------
#: The tolerance of a ``vocoder`` or ``plc`` case: libopus' vocoder rule (tests/dred_vectors.sh: dred_compare
#: -audio -thresholds 0.25 1.0 0.15), applied between the expected audio and the implementation's. Equal samples
#: pass whatever the figures.
AUDIO_TOLERANCE = {"metric": "dred_compare-audio", "err4": 0.25, "err16": 1.0, "pitch": 0.15}

#: ``fargan_demo -fargan-synthesis`` halves its first and last frames (it writes from sample 80 of the first one)
DEMO_SKIP = 80
#: the reference runs the vocoder over a whole number of these frames (the sequence padded with its last feature
#: vector, the padding's samples dropped), so that a few compiled lengths serve every input
VOCODER_BUCKET = 64


class ListeningInputError(BitstreamError):
    """Vocoder or PLC input a case (or a command) cannot run: too few feature frames, an unknown event, a
    numerics preset that does not exist; ``parameter`` names the offending input, ``value`` what it was."""

    def __init__(self, parameter: str, value, message: str, *, byte_offset: int | None = None) -> None:
        self.parameter = parameter
        self.value = value
        super().__init__(f"{parameter}={value!r}: {message}", byte_offset=byte_offset, rule="listening: input")


def listening_numerics(name: str):
    """The ``Numerics`` preset ``name`` of :data:`opus_dred.refimpl._nnet.NUMERICS` for FARGAN and the PLC (typed
    error for another name)."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    if name not in nnet.NUMERICS:
        raise ListeningInputError("numerics", name, f"must be one of {', '.join(nnet.NUMERICS)}")
    return nnet.NUMERICS[name]


def check_vocoder_features(features, what: str = "features") -> np.ndarray:
    """``features`` as float32 ``[T, 20]`` with ``T >= 2`` (``fargan_demo`` primes on the first frame and
    synthesizes from the second; with fewer it reads uninitialised memory)."""
    a = np.asarray(features, np.float32)
    if a.ndim == 1 and a.size % 20 == 0:
        a = a.reshape(-1, 20)
    if a.ndim != 2 or a.shape[1] != 20:
        raise ListeningInputError(what, f"shape {list(a.shape)}", "must be feature frames of 20 values")
    if a.shape[0] < 2:
        raise ListeningInputError(what, a.shape[0], "frames: the vocoder needs at least 2 (the first primes it)",
                                  byte_offset=a.shape[0] * 80)
    return a


def demo_sequence(features: np.ndarray) -> np.ndarray:
    """The feature vectors ``fargan_demo -fargan-synthesis`` synthesizes, in order, for a file of ``T`` vectors:
    vectors 1 .. T-1, then the last one twice more (after the end of the file the previous vector stays)."""
    f = check_vocoder_features(features)
    return np.concatenate([f[1:], f[-1:], f[-1:]])


def demo_output(synth: np.ndarray, frames: int) -> np.ndarray:
    """The int16 samples ``fargan_demo`` writes from the ``frames + 1`` synthesized frames ``synth`` (flat): from
    sample 80 of the first, ``160 * frames`` in all (the last frame's first half)."""
    return np.asarray(synth, np.int16)[DEMO_SKIP:DEMO_SKIP + 160 * frames]


def vocoder_synthesis(profile: str, features, numerics: str = "avx2", *, batch: bool = False) -> np.ndarray:
    """``fargan_demo -fargan-synthesis`` with the reference FARGAN (:mod:`opus_dred.refimpl._fargan` under the
    preset ``numerics``): ``fargan_cont`` on 320 zero samples and five copies of the first vector,
    ``fargan_synthesize`` of each vector of :func:`demo_sequence`, the samples as ``fargan_synthesize_int``
    rounds them, cut as the program writes them (:func:`demo_output`): int16 ``[160 T]`` at 16 kHz.

    ``batch``: ``features`` is ``[S, T, 20]`` (S streams of one length) and the result ``[S, 160 T]``, the
    streams synthesized together (a leading batch axis). The frames run :data:`VOCODER_BUCKET` at a time (one
    ``lax.scan`` each, the state carried over), the last block padded with the last vector, so one compiled
    block serves every length."""
    import jax.numpy as jnp  # lazy: loads JAX

    from opus_dred.refimpl import _fargan as fg  # lazy: loads JAX

    num = listening_numerics(numerics)
    streams = [check_vocoder_features(s) for s in features] if batch else [check_vocoder_features(features)]
    if len({s.shape[0] for s in streams}) != 1:
        raise ListeningInputError("features", [s.shape[0] for s in streams], "frames: batched streams must be "
                                  "of one length")
    seqs = np.stack([demo_sequence(s) for s in streams])
    frames = seqs.shape[1] - 1
    pad = -seqs.shape[1] % VOCODER_BUCKET
    seqs = np.concatenate([seqs, np.repeat(seqs[:, -1:], pad, axis=1)], axis=1)
    params = fg._cached_params(get_profile(profile).name)
    state = fg.init_fargan_state(params, seqs.shape[:1])
    f0 = np.repeat(np.stack([s[:1] for s in streams]), fg.CONT_VECTORS, axis=1)
    state = fg.fargan_cont_jit(params, state, jnp.zeros((seqs.shape[0], fg.CONT_SAMPLES), jnp.float32),
                               jnp.asarray(f0), num=num)
    out = []
    for k in range(0, seqs.shape[1], VOCODER_BUCKET):
        state, pcm = _block(params, state, jnp.asarray(seqs[:, k:k + VOCODER_BUCKET]), num)
        out.append(np.asarray(pcm))
    synth = np.concatenate(out, axis=-1)
    res = np.stack([demo_output(o, frames) for o in synth])
    return res if batch else res[0]


def _block_impl(params, state, feats, num):
    """``fargan_synthesize_int`` of each frame of ``feats [S, N, 20]``: (state, ``[S, 160 N]`` int16)."""
    import jax  # lazy: loads JAX
    import jax.numpy as jnp  # lazy: loads JAX

    from opus_dred.refimpl import _fargan as fg  # lazy: loads JAX

    def step(s, f):
        return fg.fargan_synthesize(params, s, f, num)

    state, pcm = jax.lax.scan(step, state, jnp.moveaxis(feats, 1, 0))
    pcm = fg.to_int16(pcm)  # [N, S, 160]
    return state, pcm.transpose(1, 0, 2).reshape(pcm.shape[1], -1)


_BLOCK_JIT: dict = {}


def _block(params, state, feats, num):
    """:func:`_block_impl`, jitted once (``num`` static)."""
    import jax  # lazy: loads JAX

    fn = _BLOCK_JIT.get("fn")
    if fn is None:
        fn = _BLOCK_JIT["fn"] = jax.jit(_block_impl, static_argnums=3)
    return fn(params, state, feats, num)


def expected_vocoder(profile, inputs, params):
    audio = vocoder_synthesis(profile, inputs["features"], str(params["numerics"]))
    return {"audio": Part("audio.sw", audio)}, dict(AUDIO_TOLERANCE)


#: the events of a ``plc`` case (``events.json``)
PLC_EVENTS = ("good", "lost", "fec", "fec_clear")


def plc_events(events, pcm, features) -> list[tuple]:
    """The events of a ``plc`` case as :func:`opus_dred.refimpl._plc.apply_event` takes them: ``{"type": "good",
    "frame": k}`` (frame ``k`` of ``pcm``, 160 samples), ``{"type": "lost"}``, ``{"type": "fec", "row": k}``
    (row ``k`` of ``features``; ``null``: a frame DRED does not cover) and ``{"type": "fec_clear"}``. Raises
    :class:`ListeningInputError` naming the event for anything else."""
    x = np.asarray(pcm)
    if x.ndim != 1 or x.dtype != np.int16 or x.shape[0] % 160:
        raise ListeningInputError("pcm", f"{x.dtype}{list(x.shape)}", "must be int16 frames of 160 samples")
    frames = x.reshape(-1, 160)
    f = np.zeros((0, 20), np.float32) if features is None else np.asarray(features, np.float32).reshape(-1, 20)
    out: list[tuple] = []
    for i, e in enumerate(events):
        t = e.get("type") if isinstance(e, dict) else None
        if t not in PLC_EVENTS:
            raise ListeningInputError(f"events[{i}]", repr(e)[:60], f"type must be one of {', '.join(PLC_EVENTS)}")
        if t == "good":
            k = e.get("frame")
            if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < frames.shape[0]:
                raise ListeningInputError(f"events[{i}].frame", k, f"must index the {frames.shape[0]} pcm frames")
            out.append(("good", frames[k]))
        elif t == "fec":
            k = e.get("row")
            if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < f.shape[0]):
                raise ListeningInputError(f"events[{i}].row", k, f"must be null or index the {f.shape[0]} feature rows")
            out.append(("fec", None if k is None else f[k]))
        else:
            out.append((t,))
    return out


def plc_audio(profile: str, events, pcm, features, numerics: str = "avx2") -> np.ndarray:
    """A fresh reference PLC (:func:`opus_dred.refimpl._plc.run_plc`, FARGAN, PitchDNN and the network under
    ``numerics``, the feature extractor's kernels of that build) through the case's events: int16, 160 samples
    per ``good`` (the frame) and ``lost`` (the concealment) event."""
    from opus_dred.refimpl._plc import run_plc  # lazy: loads JAX

    listening_numerics(numerics)
    return run_plc(get_profile(profile).name, plc_events(events, pcm, features), numerics=numerics)


def expected_plc(profile, inputs, params):
    audio = plc_audio(profile, inputs["events"], inputs["pcm"], inputs.get("features"), str(params["numerics"]))
    return {"audio": Part("audio.sw", audio)}, dict(AUDIO_TOLERANCE)
