"""Expected values of every handler, computed from a case's inputs by the reference.

One function per handler, ``expected_<handler>(profile, inputs, parameters) -> (expected, tolerance)``; the
handler registry (:mod:`opus_dred.vectors._handlers`, ``expected_for``) names them, and the generator
(:mod:`opus_dred.vectors._generate`), ``opus-dred vectors verify`` (which recomputes them from the stored inputs
and checks the bytes) and the reference adapter of ``opus-dred conform`` call them through it. Only opus-dred's
own layers are used: the bitstream layer (range coder, packet framing, extensions, DRED payloads, DRED-only
streams) and the reference decoder (``refimpl._decode``, ``refimpl._receiver``). Nothing here calls libopus.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from opus_dred.bitstream import _rangecoder as rc
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._dredstream import chronological, read_stream_record
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import Extension, find_dred_extension, parse_extensions, write_extensions
from opus_dred.bitstream._formats import read_dred_stream
from opus_dred.bitstream._packet import parse_packet
from opus_dred.bitstream._profiles import get_profile
from opus_dred.refimpl import _receiver as rx
from opus_dred.refimpl._decode import DEFAULT_NUMERICS, decode_dred, features_of
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
