#!/usr/bin/env python3
"""An example external implementation for ``opus-dred conform --impl external:'CMD'``.

It speaks the JSON-lines protocol of ``docs/conformance.md`` on stdin/stdout: one JSON object per line in,
one per line out. A Rust, Go or WASM decoder needs a wrapper of the same shape: read a request, decode its
base64 inputs, call the decoder, encode the outputs, print one line, flush.

The "implementation" wrapped here is opus-dred's own Python API (packet parsing and DRED feature decoding),
so that the example runs anywhere opus-dred is installed:

    opus-dred conform --impl external:'python docs/examples/external_adapter.py' --handler dred_features

It answers ``packet``, ``dred_features`` and ``invalid`` (packet layer) requests and says ``unsupported``
for the rest. The decoder rejecting its input is an ``error`` answer; the wrapper itself failing (any other
exception) is a ``failure`` answer, with the traceback on standard error (the runner keeps its last lines in
the report). For testing the runner's robustness, ``--crash-on``, ``--hang-on`` and ``--garbage-on`` make it
exit, hang or print a non-JSON line when a case id contains the given text.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import traceback

PROTOCOL = "opus-dred-conform/1"
VERSION = "1.1"  # major.minor of the protocol this wrapper speaks; the runner checks the major


def b64_bytes(v):
    """Inputs that are bytes arrive as {"base64": "..."}."""
    return base64.b64decode(v["base64"])


def features_value(rows):
    """Float32 arrays travel as little-endian bytes in base64 with their dtype and shape."""
    import numpy as np

    a = np.ascontiguousarray(rows, dtype="<f4")
    return {"base64": base64.b64encode(a.tobytes()).decode("ascii"), "dtype": "float32", "shape": list(a.shape)}


def handle_packet(req):
    from opus_dred.bitstream import parse_packet

    data = b64_bytes(req["inputs"]["packet"])
    p = parse_packet(data, self_delimited=bool(req["parameters"].get("self_delimited", False)))
    return {"packet": {
        "toc": p.toc.to_byte(), "config": p.toc.config, "stereo": bool(p.toc.stereo), "code": p.code,
        "mode": p.toc.mode, "bandwidth": p.toc.bandwidth, "frame_size_48k": p.toc.frame_size_48k,
        "nb_frames": p.nb_frames, "frame_sizes": [len(f) for f in p.frames], "frame_offsets": list(p.frame_offsets),
        "vbr": bool(p.vbr), "has_padding": bool(p.has_padding), "padding_offset": p.padding_offset,
        "padding_length": len(p.padding), "payload_offset": p.payload_offset, "length": p.length}}


def handle_dred_features(req):
    from opus_dred.refimpl import decode_dred

    prm = req["parameters"]
    r = decode_dred(b64_bytes(req["inputs"]["packet"]), req["profile"], max_dred_samples=prm.get("max_dred_samples"),
                    sampling_rate=int(prm.get("sampling_rate", 48000)))
    if not r.found:
        return {"found": False, "nb_latents": 0, "ret": 0, "dred_end": 0}
    return {"found": True, "features": features_value(r.features), "nb_latents": r.nb_latents,
            "dred_offset": r.dred_offset, "dred_end": r.dred_end, "ret": r.ret}


def handle_invalid(req):
    if req["parameters"].get("layer") != "packet":
        return None
    from opus_dred.bitstream import parse_packet

    parse_packet(b64_bytes(req["inputs"]["data"]), self_delimited=bool(req["parameters"].get("self_delimited", False)))
    return {"accepted": True}


HANDLERS = {"packet": handle_packet, "dred_features": handle_dred_features, "invalid": handle_invalid}


def answer(req, args):
    rid = req.get("id")
    if req.get("type") == "hello":
        try:  # a wrapper that cannot load its decoder says so at once: the runner then skips every case
            import opus_dred  # noqa: F401
        except ImportError as exc:
            traceback.print_exc(file=sys.stderr)
            return {"id": rid, "failure": f"cannot load the decoder: {exc}"}
        return {"id": rid, "protocol": PROTOCOL, "version": VERSION, "name": "example",
                "implementation": "opus-dred via JSON lines", "handlers": sorted(HANDLERS), "profiles": None}
    case = str(req.get("case", ""))
    if args.crash_on and args.crash_on in case:
        sys.exit(3)
    if args.hang_on and args.hang_on in case:
        time.sleep(3600)
    if args.garbage_on and args.garbage_on in case:
        return "this is not JSON"
    fn = HANDLERS.get(req.get("handler"))
    if fn is None:
        return {"id": rid, "unsupported": True, "reason": f"handler {req.get('handler')}"}
    from opus_dred.bitstream import BitstreamError

    try:
        result = fn(req)
    except BitstreamError as exc:  # the implementation rejects the input: class, byte offset, message
        return {"id": rid, "error": {"class": type(exc).__name__, "byte_offset": exc.byte_offset,
                                     "message": exc.message}}
    except Exception as exc:  # the wrapper itself failed: not a verdict on the input
        traceback.print_exc(file=sys.stderr)
        return {"id": rid, "failure": f"{type(exc).__name__}: {exc}"}
    if result is None:
        return {"id": rid, "unsupported": True}
    return {"id": rid, "result": result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crash-on", default="")
    ap.add_argument("--hang-on", default="")
    ap.add_argument("--garbage-on", default="")
    args = ap.parse_args()
    for line in sys.stdin:
        if not line.strip():
            continue
        out = answer(json.loads(line), args)
        sys.stdout.write((out if isinstance(out, str) else json.dumps(out)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
