"""The handlers of the vector format, once: what each one tests, what it needs, what it compares.

A case's ``handler`` (``<profile>/<handler>/<suite>/<case>/``, ``docs/vector-format.md``) names one entry of
:data:`HANDLERS`. Each :class:`Handler` carries

- ``needs``: the layer an implementation must have to run it (:class:`Needs`); an adapter supports the handlers
  whose need it meets;
- ``fields``: the names of its expected values, in the order the conformance runner compares them: the first
  difference it reports is the first one a reader should look at. The order follows what the fields mean:
  whether there is anything (``found``), the return value, counts, offsets, then arrays (a header value
  before the counts and offsets that follow from it; a final state after the trace that produced it);
- ``nested``: the same order for the keys of a field that is an object, or a list of objects
  (``packet.toc`` before ``packet.frame_sizes``; each extension's ``id`` before its ``data``);
- ``optional``: the fields (dotted paths) an implementation may leave unreported because they are internal
  to a decoder or derived from other fields (libopus keeps the quantized values in locals): a pass without
  them is *partial*. Every other field is required; ``opus-dred conform --strict`` fails a case with any
  expected field not reported, required or optional;
- ``expected``: the reference's function ``(profile, inputs, parameters) -> (expected, tolerance)``
  (:mod:`opus_dred.vectors._expected`), or ``None`` where opus-dred has no reference. The encoder's handlers
  (``features``, ``dred_encode``) and the listening ones (``vocoder``, ``plc``) take the numerics preset from
  the case's parameters: neither the encoder nor the vocoder is normative, and their output depends on the
  arithmetic that made it.

The format (its documentation), the generator, ``opus-dred vectors verify``, the adapters and the runner all
read this table; nothing else lists the handlers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from opus_dred.vectors._expected import (
    expected_dred_encode,
    expected_dred_features,
    expected_dred_payload,
    expected_dred_stream,
    expected_extensions,
    expected_features,
    expected_invalid,
    expected_packet,
    expected_plc,
    expected_range_coder,
    expected_receiver,
    expected_vocoder,
)


class Needs(enum.Enum):
    """The layer of a DRED decoder a handler exercises."""

    BITSTREAM = "bitstream"  # reads or writes bits: range coder, framing, extensions, the DRED payload syntax
    DECODER = "decoder"  # the DRED decoder: quantized latents to 20 acoustic features per 10 ms
    RECEIVER = "receiver"  # a receiver's choice per frame of normal decoding, LBRR, DRED or PLC
    VOCODER = "vocoder"  # features to audio: the vocoder, and the PLC that drives it
    ENCODER = "encoder"  # the DRED encoder: PCM to the 20 features per 10 ms, and to the payload of each frame


@dataclass(frozen=True)
class Handler:
    """One handler of the vector format (see the module docstring)."""

    name: str
    needs: Needs
    fields: tuple[str, ...]
    expected: Callable[[str, dict, dict], tuple[dict, dict | None]] | None
    summary: str
    nested: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    optional: tuple[str, ...] = ()

    def is_optional(self, path: str) -> bool:
        """Whether ``path`` (``payload.q_levels``, ``error.byte_offset``) is one of the optional fields."""
        return path in self.optional


#: Every handler of format 1, in the order ``docs/vector-format.md`` lists them.
HANDLERS: dict[str, Handler] = {h.name: h for h in (
    Handler("range_coder", Needs.BITSTREAM, ("error", "values", "trace", "stream", "final_rng"),
            expected_range_coder, "the range coder (RFC 6716 §4.1, §5.1): encode or decode a list of operations",
            nested={"trace": ("tell", "tell_frac", "rng")}),
    Handler("packet", Needs.BITSTREAM, ("packet",), expected_packet,
            "Opus packet framing (RFC 6716 §3): TOC, frame sizes and offsets, padding",
            nested={"packet": ("toc", "config", "code", "stereo", "mode", "bandwidth", "vbr", "has_padding",
                               "nb_frames", "frame_size_48k", "length", "padding_length", "payload_offset",
                               "padding_offset", "frame_sizes", "frame_offsets")},
            optional=("packet.mode", "packet.bandwidth", "packet.vbr", "packet.has_padding",
                      "packet.frame_size_48k", "packet.padding_offset")),
    Handler("extensions", Needs.BITSTREAM, ("extensions", "padding"), expected_extensions,
            "padding extensions (draft-ietf-mlcodec-opus-extension): parse or generate",
            nested={"extensions": ("id", "frame", "data_offset", "data")}),
    Handler("dred_payload", Needs.BITSTREAM, ("found", "payload", "state", "latents"), expected_dred_payload,
            "the DRED payload of a packet (draft-ietf-mlcodec-opus-dred): header, quantized and dequantized values",
            nested={"payload": ("q0", "dq", "qmax", "extended_offset", "extra", "off", "nb_latents",
                                "payload_bytes", "dred_offset", "dred_frame_offset", "extension_frame",
                                "payload_offset", "q_levels", "state_q", "latents_q")},
            optional=("payload.q_levels", "payload.state_q", "payload.latents_q")),
    Handler("dred_features", Needs.DECODER, ("found", "ret", "nb_latents", "dred_offset", "dred_end", "features"),
            expected_dred_features, "a packet's DRED decoded to features, with opus_dred_parse's numbers"),
    Handler("receiver", Needs.RECEIVER, ("actions",), expected_receiver,
            "the receiver's action per frame for a stream of arrivals and losses",
            nested={"actions": ("action", "seq", "frame", "samples", "offset_samples", "max_dred_samples")}),
    Handler("invalid", Needs.BITSTREAM, ("error",), expected_invalid,
            "bytes a layer must reject: the error class and byte offset",
            nested={"error": ("class", "byte_offset")},
            optional=("error.class", "error.byte_offset")),
    Handler("dred_stream", Needs.DECODER, ("features",), expected_dred_stream,
            "a DRED-only stream decoded to features in time order (libopus' official DRED decoding vectors)"),
    Handler("vocoder", Needs.VOCODER, ("audio",), expected_vocoder,
            "features to 16 kHz audio as fargan_demo -fargan-synthesis makes it (FARGAN)"),
    Handler("plc", Needs.VOCODER, ("audio",), expected_plc,
            "good frames, DRED feature rows and losses to 16 kHz audio (the neural PLC, lpcnet_plc_*)"),
    Handler("features", Needs.ENCODER, ("features",), expected_features,
            "PCM to the DRED encoder's 20 features per 10 ms (16 kHz conversion, LPCNet features, PitchDNN)"),
    Handler("dred_encode", Needs.ENCODER, ("payloads",), expected_dred_encode,
            "PCM frames to the DRED payload of each frame, for given quantizer, budget and activity"),
)}


def handler(name: str) -> Handler:
    """The handler called ``name`` (``ValueError`` for a name format 1 does not define)."""
    try:
        return HANDLERS[name]
    except KeyError:
        raise ValueError(f"unknown handler {name!r}; one of {', '.join(HANDLERS)}") from None


def expected_for(name: str, profile: str, inputs: dict, parameters: dict) -> tuple[dict, dict | None]:
    """``(expected, tolerance)`` of a case of handler ``name``, from the reference."""
    h = HANDLERS.get(name)
    if h is None or h.expected is None:
        raise ValueError(f"no reference for handler {name!r}")
    return h.expected(profile, inputs, parameters)


def _ordered(keys: tuple[str, ...], value: Any) -> Any:
    """An object with ``keys`` first, in that order, then the rest as they came; a list of objects likewise,
    element by element; anything else unchanged."""
    if isinstance(value, Mapping):
        out = {k: value[k] for k in keys if k in value}
        out.update((k, v) for k, v in value.items() if k not in out)
        return out
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return [_ordered(keys, v) for v in value]
    return value


def in_compare_order(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the handler's fields first, in its order, any other key after them as it came; the keys
    of a nested object (or of each object of a nested list) in the handler's ``nested`` order."""
    h = HANDLERS.get(name)
    out = _ordered(h.fields if h else (), values)
    if h:
        out = {k: _ordered(h.nested[k], v) if k in h.nested else v for k, v in out.items()}
    return out
