"""The handlers of the vector format, once: what each one tests, what it needs, what it compares.

A case's ``handler`` (``<profile>/<handler>/<suite>/<case>/``, ``docs/vector-format.md``) names one entry of
:data:`HANDLERS`. Each :class:`Handler` carries

- ``needs``: the layer an implementation must have to run it (:class:`Needs`); an adapter supports the handlers
  whose need it meets;
- ``fields``: the names of its expected values, in the order the conformance runner compares them: the first
  difference it reports is the first one a reader should look at (``found`` before the numbers that follow from
  it, the per-operation trace before the final state);
- ``expected``: the reference's function ``(profile, inputs, parameters) -> (expected, tolerance)``
  (:mod:`opus_dred.vectors._expected`), or ``None`` where opus-dred has no reference (``vocoder``).

The format (its documentation), the generator, ``opus-dred vectors verify``, the adapters and the runner all
read this table; nothing else lists the handlers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from opus_dred.vectors._expected import (
    expected_dred_features,
    expected_dred_payload,
    expected_dred_stream,
    expected_extensions,
    expected_invalid,
    expected_packet,
    expected_range_coder,
    expected_receiver,
)


class Needs(enum.Enum):
    """The layer of a DRED decoder a handler exercises."""

    BITSTREAM = "bitstream"  # reads or writes bits: range coder, framing, extensions, the DRED payload syntax
    DECODER = "decoder"  # the DRED decoder: quantized latents to 20 acoustic features per 10 ms
    RECEIVER = "receiver"  # a receiver's choice per frame of normal decoding, LBRR, DRED or PLC
    VOCODER = "vocoder"  # features to audio


@dataclass(frozen=True)
class Handler:
    """One handler of the vector format (see the module docstring)."""

    name: str
    needs: Needs
    fields: tuple[str, ...]
    expected: Callable[[str, dict, dict], tuple[dict, dict | None]] | None
    summary: str


#: Every handler of format 1, in the order ``docs/vector-format.md`` lists them.
HANDLERS: dict[str, Handler] = {h.name: h for h in (
    Handler("range_coder", Needs.BITSTREAM, ("trace", "values", "stream", "final_rng", "error"),
            expected_range_coder, "the range coder (RFC 6716 §4.1, §5.1): encode or decode a list of operations"),
    Handler("packet", Needs.BITSTREAM, ("packet",), expected_packet,
            "Opus packet framing (RFC 6716 §3): TOC, frame sizes and offsets, padding"),
    Handler("extensions", Needs.BITSTREAM, ("extensions", "padding"), expected_extensions,
            "padding extensions (draft-ietf-mlcodec-opus-extension): parse or generate"),
    Handler("dred_payload", Needs.BITSTREAM, ("found", "payload", "state", "latents"), expected_dred_payload,
            "the DRED payload of a packet (draft-ietf-mlcodec-opus-dred): header, quantized and dequantized values"),
    Handler("dred_features", Needs.DECODER, ("found", "nb_latents", "dred_offset", "dred_end", "ret", "features"),
            expected_dred_features, "a packet's DRED decoded to features, with opus_dred_parse's numbers"),
    Handler("receiver", Needs.RECEIVER, ("actions",), expected_receiver,
            "the receiver's action per frame for a stream of arrivals and losses"),
    Handler("invalid", Needs.BITSTREAM, ("error",), expected_invalid,
            "bytes a layer must reject: the error class and byte offset"),
    Handler("dred_stream", Needs.DECODER, ("features",), expected_dred_stream,
            "a DRED-only stream decoded to features in time order (libopus' official DRED decoding vectors)"),
    Handler("vocoder", Needs.VOCODER, ("audio",), None, "features to audio (no reference yet)"),
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


def in_compare_order(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the handler's fields first, in its order; any other key after them, as it came."""
    order = HANDLERS[name].fields if name in HANDLERS else ()
    out = {k: values[k] for k in order if k in values}
    out.update((k, v) for k, v in values.items() if k not in out)
    return out
