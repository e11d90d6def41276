"""Implementations behind one adapter protocol, for ``opus-dred conform``.

An adapter has a ``name``, a ``description``, ``supports(handler, profile) -> bool`` and
``run(case) -> Result`` (:class:`opus_dred.conformance._runner.Result`): the handler's outputs named as in the
case's ``expected`` map (``docs/vector-format.md``), or the error the implementation reported for the input.
``close()`` releases what it holds. Which handlers exist and what each needs is the registry
:data:`opus_dred.vectors._handlers.HANDLERS`. No adapter reads a case's expected values: each answers from the
case's inputs and parameters (an external program is told only the names of the expected fields). Three kinds:

``reference``  (:class:`ReferenceAdapter`)
    opus-dred itself, in process: every handler with a reference function in the registry, i.e.
    :mod:`opus_dred.bitstream` (range coder, packet, extensions, DRED payload, DRED-only streams),
    :func:`opus_dred.refimpl._decode.decode_dred` (features) and :mod:`opus_dred.refimpl._receiver` (the
    receiver's actions).
``libopus-*``  (:class:`LibopusAdapter`)
    a libopus build of the upstream manager (``opus-dred upstream list``: 1.5.2, 1.6.1, their generic
    builds, any registered tree) through the oracle (:class:`opus_dred.libopus._oracle.Oracle`). A build
    supports only the profile of its own DRED version; ``receiver`` is skipped (libopus has no receiver
    object: its one policy lives in ``opus_demo``'s main loop, which :mod:`opus_dred.refimpl._receiver` models;
    running our model would not test libopus). libopus cannot report quantized values, error classes,
    error offsets or where empty padding starts: those fields are reported as *partial*, never as failures.
``external:CMD``  (:class:`ExternalAdapter`)
    any program speaking the JSON-lines protocol of ``docs/conformance.md`` on stdin/stdout, with a
    timeout per case; a crash or a hang is reported as an ``error`` for that case and the program is
    restarted for the next one.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shlex
import subprocess
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from opus_dred.bitstream._arith import compute_dred_frame_offset
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import DRED_EXPERIMENTAL_BYTES, dred_version_in
from opus_dred.bitstream._profiles import get_profile
from opus_dred.conformance._runner import ErrorInfo, Result
from opus_dred.libopus import _upstream as upstream
from opus_dred.libopus._builds import cache_dir
from opus_dred.libopus._oracle import Oracle
from opus_dred.refimpl._decode import DEFAULT_NUMERICS
from opus_dred.vectors._expected import dred_stream_features, parse_layer
from opus_dred.vectors._handlers import HANDLERS, Needs, expected_for

#: the JSON-lines protocol version spoken by :class:`ExternalAdapter`
PROTOCOL = "opus-dred-conform/1"


@runtime_checkable
class Adapter(Protocol):
    name: str
    description: str

    def supports(self, handler: str, profile: str) -> bool: ...

    def run(self, case: Any) -> Result: ...


def _profile(name: str):
    return get_profile(name)


def _error_info(exc: BaseException) -> ErrorInfo:
    return ErrorInfo(type(exc).__name__, getattr(exc, "byte_offset", None), getattr(exc, "message", str(exc)))


def _exts_from_json(items) -> list[tuple[int, int, bytes]]:
    out = []
    for e in items or []:
        d = e.get("data", "")
        out.append((int(e["id"]), int(e["frame"]), bytes.fromhex(d) if isinstance(d, str) else bytes(d)))
    return out


# ------------------------------------------------------------------------------------------------
# reference


class ReferenceAdapter:
    """opus-dred's bitstream layer and reference decoder, in process: every handler of the registry that has a
    reference (``Handler.expected``)."""

    name = "reference"

    def __init__(self, numerics: str | None = None):
        self.numerics = numerics or DEFAULT_NUMERICS
        self.description = f"opus-dred reference (bitstream + refimpl, numerics {self.numerics})"
        _persistent_jax_cache()

    @staticmethod
    def _has_reference(handler: str) -> bool:
        h = HANDLERS.get(handler)
        return h is not None and h.expected is not None

    def supports(self, handler: str, profile: str) -> bool:
        if not self._has_reference(handler):
            return False
        try:
            _profile(profile)
        except Exception:
            return False
        return True

    def skip_reason(self, handler: str, profile: str) -> str:
        return f"handler {handler} not implemented by the reference" if not self._has_reference(handler) \
            else f"unknown profile {profile}"

    def close(self) -> None:
        pass

    def run(self, case: Any) -> Result:
        try:
            if case.handler == "dred_stream":  # the one handler that takes this adapter's numerics
                feats = dred_stream_features(case.profile, case.inputs["stream"], self.numerics)
                return Result(values={"features": feats})
            if case.handler == "invalid":
                parse_layer(case.profile, str(case.parameters.get("layer")), bytes(case.inputs["data"]),
                            dict(case.parameters))
                return Result(values={"accepted": True})

            values, _tol = expected_for(case.handler, case.profile, dict(case.inputs), dict(case.parameters))
        except BitstreamError as exc:
            return Result(error=_error_info(exc))
        return Result(values={k: _unpart(v) for k, v in values.items()})


def _persistent_jax_cache() -> None:
    """Keep JAX's compiled decoders in ``<cache>/jax`` between runs (each shape takes seconds to compile; the
    executable is the same, so results are unchanged). ``OPUS_DRED_JAX_CACHE=0`` turns it off; a cache
    directory set elsewhere is left alone."""
    if os.environ.get("OPUS_DRED_JAX_CACHE", "1") == "0":
        return
    try:
        import jax  # lazy: loads JAX

        if not jax.config.jax_compilation_cache_dir:
            d = cache_dir() / "jax"
            d.mkdir(parents=True, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", str(d))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    except Exception:  # an older or newer JAX without these options: compile every run
        pass


def _unpart(v: Any) -> Any:
    return getattr(v, "value", v) if type(v).__name__ == "Part" else v


# ------------------------------------------------------------------------------------------------
# libopus through the oracle


_OPUS_ERR = {-1: "OPUS_BAD_ARG", -2: "OPUS_BUFFER_TOO_SMALL", -3: "OPUS_INTERNAL_ERROR", -4: "OPUS_INVALID_PACKET",
             -5: "OPUS_UNIMPLEMENTED", -6: "OPUS_INVALID_STATE", -7: "OPUS_ALLOC_FAIL"}


#: fields of the packet record libopus' parser may leave unreported (see ``LibopusAdapter._packet``)
_PACKET_UNREPORTED = ("mode", "bandwidth", "vbr", "has_padding", "frame_size_48k", "padding_offset")


def _rejected(ret: int, message: str) -> Result:
    return Result(error=ErrorInfo(None, None, message, _OPUS_ERR.get(ret, str(ret))))


class LibopusAdapter:
    """A libopus build through the oracle; only its own profile (DRED version). It runs the handlers whose need
    (``Handler.needs``) libopus meets, one method ``_<handler>`` each, from the case's inputs and parameters
    only: a field libopus cannot give is left out or named in ``not_reported``, never taken from the case."""

    #: what libopus offers: its parsers and range coder, and its DRED decoder; no receiver object (its one
    #: policy lives in opus_demo's main loop) and no vocoder entry point here
    NEEDS_MET = frozenset({Needs.BITSTREAM, Needs.DECODER})
    #: why a handler whose need libopus does not meet is skipped, where there is more to say
    UNMET = {Needs.RECEIVER: "libopus has no receiver object (its policy lives in opus_demo)"}

    def __init__(self, build: str):
        self.name = build
        st = upstream.status(build)  # raises UnknownBuildError for a name the manager does not know
        self.dred_version = st.get("dred_version")
        self.release = st.get("release", "")
        self.description = f"libopus {self.release} ({st.get('variant', '')}), DRED version {self.dred_version}"
        self._oracle = None

    @property
    def oracle(self):
        if self._oracle is None:
            self._oracle = Oracle.for_build(self.name)
            self.dred_version = self._oracle.layout.dred_version
        return self._oracle

    def _own_profile(self, profile: str) -> bool:
        try:
            return _profile(profile).dred_version == self.dred_version
        except Exception:
            return False

    def _meets(self, handler: str) -> bool:
        h = HANDLERS.get(handler)
        return h is not None and h.needs in self.NEEDS_MET

    def supports(self, handler: str, profile: str) -> bool:
        return self._meets(handler) and self._own_profile(profile)

    def skip_reason(self, handler: str, profile: str) -> str:
        if not self._meets(handler):
            h = HANDLERS.get(handler)
            return self.UNMET.get(h.needs if h else None, f"handler {handler} not available from libopus")
        return f"{profile} is not this build's DRED version ({self.dred_version})"

    def close(self) -> None:
        pass

    def run(self, case: Any) -> Result:
        return getattr(self, f"_{case.handler}")(case)

    def _range_coder(self, case: Any) -> Result:
        direction = str(case.parameters.get("direction"))
        ops = []
        for op in case.inputs["ops"]:
            k = op["op"]
            v = op.get("value") if direction == "encode" else None
            if k == "uint":
                ops.append(("uint", v, op["ft"]))
            elif k == "bits":
                ops.append(("bits", v, op["bits"]))
            elif k == "encode":
                ops.append(("encode", op["fl"], op["fh"], op["ft"]))
            elif k == "icdf":
                ops.append(("icdf", v, list(op["icdf"]), op["ftb"]))
            elif k == "laplace_p0":
                ops.append(("laplace_p0", v, op["p0"], op["decay"]))
            elif k == "bit_logp":
                ops.append(("bit_logp", v, op["logp"]))
            else:
                return Result(unsupported=True, reason=f"range-coder op {k}")
        try:
            if direction == "encode":
                r = self.oracle.ec_encode(ops, int(case.parameters.get("size", 0)))
            else:
                r = self.oracle.ec_decode(bytes(case.inputs.get("stream", b"")), ops)
        except ValueError as exc:  # arguments the oracle's op runner will not pass to libopus
            return Result(unsupported=True, reason=f"the oracle refuses an op: {exc}")
        kinds = [op[0] for op in ops]
        vals: dict[str, Any] = {
            "trace": [{"tell": t, "tell_frac": f, "rng": g} for t, f, g in zip(r.tell, r.tell_frac, r.rng)],
            "final_rng": r.final_rng, "error": r.error}
        if direction == "encode":
            vals["stream"] = r.data
        else:
            # uint and bits decode an opus_uint32; the shim hands values back as C ints
            vals["values"] = [v & 0xFFFFFFFF if k in ("uint", "bits") and v < 0 else v for k, v in zip(kinds, r.values)]
        return Result(values=vals)

    def _packet(self, case: Any) -> Result:
        data = bytes(case.inputs["packet"])
        sd = bool(case.parameters.get("self_delimited", False))
        o = self.oracle
        r = o.packet_parse(data, self_delimited=sd)
        if r.ret < 0:
            return _rejected(r.ret, "opus_packet_parse_impl")
        toc = r.toc
        nb48 = o.packet_get_nb_samples(data[: r.packet_offset] if sd else data, 48000)
        rec: dict[str, Any] = {
            "toc": toc, "config": toc >> 3, "stereo": bool(toc & 4), "code": toc & 3, "nb_frames": r.ret,
            "frame_sizes": list(r.sizes), "frame_offsets": list(r.frame_offsets),
            "padding_length": r.padding_len, "payload_offset": r.payload_offset,
            "length": r.packet_offset if r.packet_offset > 0 else len(data),
        }
        if r.padding_len:
            rec["padding_offset"] = r.padding_offset
        if nb48 > 0 and r.ret > 0:
            rec["frame_size_48k"] = nb48 // r.ret
        # mode and bandwidth are names for the TOC's config (RFC 6716 Table 2); vbr and the padding flag are
        # bits of the count byte: libopus' parser reports none of them. Without padding bytes it cannot say
        # where padding starts either: its padding pointer is the end of the frames, flag or no flag.
        missing = tuple(f"packet.{k}" for k in _PACKET_UNREPORTED if k not in rec)
        return Result(values={"packet": rec}, not_reported=missing)

    def _extensions(self, case: Any) -> Result:
        nb = int(case.parameters.get("nb_frames", 48))
        if case.parameters.get("direction") == "generate":
            exts = _exts_from_json(case.inputs.get("extensions"))
            pad_to = case.parameters.get("pad_to")
            if pad_to is None:
                ret, data = self.oracle.ext_generate(exts, nb_frames=nb)
            else:
                ret, data = self.oracle.ext_generate(exts, length=int(pad_to), nb_frames=nb, pad=True)
            if ret < 0:
                return _rejected(ret, "opus_packet_extensions_generate")
            return Result(values={"padding": data})
        r = self.oracle.ext_parse(bytes(case.inputs["padding"]), nb)
        if r.ret < 0:
            return _rejected(r.ret, "opus_packet_extensions_parse")
        return Result(values={"extensions": [
            {"id": e.id, "frame": e.frame, "data": e.data.hex(), "data_offset": e.offset if e.offset >= 0 else None}
            for e in r.extensions]})

    def _locate(self, packet: bytes):
        """libopus' own view of where the DRED payload is: its packet parser, then its extension parser; the
        first extension with the DRED id whose data claims this build's version (``dred_find_payload``'s test)."""
        o = self.oracle
        pp = o.packet_parse(packet)
        if pp.ret < 0 or not pp.padding:
            return None
        ep = o.ext_parse(pp.padding, pp.ret)
        fs = o.packet_get_nb_samples(packet, 48000) // max(1, pp.ret)
        for e in ep.extensions:
            if e.id == o.layout.extension_id and dred_version_in(e.data) == self.dred_version:
                return e, pp, fs
        return None

    def _parse(self, case: Any, *, defer: bool):
        mds = case.parameters.get("max_dred_samples")
        return self.oracle.dred_parse(bytes(case.inputs["packet"]),
                                      max_dred_samples=None if mds is None else int(mds),
                                      sampling_rate=int(case.parameters.get("sampling_rate", 48000)),
                                      defer_processing=defer)

    def _dred_payload(self, case: Any) -> Result:
        packet = bytes(case.inputs["packet"])
        d = self._parse(case, defer=True)
        try:
            if d.ret < 0:
                return _rejected(d.ret, "opus_dred_parse")
            loc = self._locate(packet)
            if loc is None:
                return Result(values={"found": False})
            e, pp, fs = loc
            h = self.oracle.dred_header(e.data[DRED_EXPERIMENTAL_BYTES:])
            rec = {"q0": h.q0, "dq": h.dQ, "qmax": h.qmax, "extended_offset": bool(h.extra_flag), "extra": h.extra,
                   "off": h.offset, "dred_frame_offset": compute_dred_frame_offset(e.frame, fs), "dred_offset": d.dred_offset,
                   "extension_frame": e.frame, "payload_offset": pp.padding_offset + e.offset + DRED_EXPERIMENTAL_BYTES,
                   "payload_bytes": len(e.data) - DRED_EXPERIMENTAL_BYTES, "nb_latents": d.nb_latents}
            # the quantized values and per-chunk levels stay in locals of libopus' dred_ec_decode
            missing = tuple(f"payload.{k}" for k in ("q_levels", "state_q", "latents_q"))
            lay = self.oracle.layout
            return Result(values={"found": True, "payload": rec,
                                  "state": d.state[: lay.state_dim].astype(np.float32),
                                  "latents": d.latents.astype(np.float32)}, not_reported=missing)
        finally:
            d.close()

    def _dred_features(self, case: Any) -> Result:
        d = self._parse(case, defer=False)
        try:
            if d.ret < 0:
                return _rejected(d.ret, "opus_dred_parse")
            if self._locate(bytes(case.inputs["packet"])) is None:
                return Result(values={"found": False, "nb_latents": 0, "ret": d.ret, "dred_end": d.dred_end})
            feats = d.features if d.features is not None else np.zeros((0, 20), np.float32)
            return Result(values={"found": True, "features": np.asarray(feats, np.float32),
                                  "nb_latents": d.nb_latents, "dred_offset": d.dred_offset, "dred_end": d.dred_end,
                                  "ret": d.ret})
        finally:
            d.close()

    def _dred_stream(self, case: Any) -> Result:
        """The official layout's DRED decoding vector through the build's ``fargan_demo -dred-decoding``."""
        import tempfile

        exe = Path(self.oracle.build.build_dir) / "fargan_demo"
        if not exe.is_file():
            return Result(unsupported=True, reason=f"{exe} not built")
        with tempfile.TemporaryDirectory() as td:
            src, dst = Path(td) / "in.bit", Path(td) / "out.f32"
            src.write_bytes(case.inputs["stream"])
            p = subprocess.run([str(exe), "-dred-decoding", str(src), str(dst)], capture_output=True, timeout=120)
            if p.returncode != 0 or not dst.is_file():
                return Result(failure=f"fargan_demo exited {p.returncode}: {p.stderr.decode(errors='replace')[-300:]}")
            feats = np.frombuffer(dst.read_bytes(), "<f4").astype(np.float32).reshape(-1, 20)
        return Result(values={"features": feats})

    def _invalid(self, case: Any) -> Result:
        data = bytes(case.inputs.get("data", b""))
        layer = str(case.parameters.get("layer"))
        o = self.oracle
        if layer == "packet":
            r = o.packet_parse(data, self_delimited=bool(case.parameters.get("self_delimited", False)))
            return _rejected(r.ret, "opus_packet_parse_impl") if r.ret < 0 else Result(values={"accepted": True})
        if layer == "extensions":
            r = o.ext_parse(data, int(case.parameters.get("nb_frames", 48)))
            return _rejected(r.ret, "opus_packet_extensions_parse") if r.ret < 0 else Result(values={"accepted": True})
        if layer == "dred":
            mds = case.parameters.get("max_dred_samples")
            d = o.dred_parse(data, max_dred_samples=None if mds is None else int(mds),
                             sampling_rate=int(case.parameters.get("sampling_rate", 48000)), defer_processing=True)
            try:
                return _rejected(d.ret, "opus_dred_parse") if d.ret < 0 else Result(values={"accepted": True})
            finally:
                d.close()
        return Result(unsupported=True, reason=f"layer {layer}")


# ------------------------------------------------------------------------------------------------
# external command, JSON lines


def encode_value(v: Any) -> Any:
    """A Python value as the protocol carries it: bytes → ``{"base64": …}``; a float32 array →
    ``{"base64": …, "dtype": "float32", "shape": […]}`` (little-endian); other arrays likewise with their dtype
    (``int16``, ``int32``, ``float64``…); dicts and lists element-wise; scalars as they are."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v)
        a = a.astype(a.dtype.newbyteorder("<"))
        return {"base64": base64.b64encode(a.tobytes()).decode("ascii"), "dtype": a.dtype.name, "shape": list(a.shape)}
    if isinstance(v, dict):
        return {str(k): encode_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [encode_value(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def decode_value(v: Any) -> Any:
    """The inverse of :func:`encode_value`."""
    if isinstance(v, dict):
        if "base64" in v and set(v) <= {"base64", "dtype", "shape"}:
            raw = base64.b64decode(v["base64"], validate=True)
            if "dtype" not in v:
                return raw
            dt = np.dtype(v["dtype"]).newbyteorder("<")
            a = np.frombuffer(raw, dtype=dt).astype(dt.newbyteorder("="))
            return a.reshape(v.get("shape", [-1]))
        return {k: decode_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode_value(x) for x in v]
    return v


def request_for(case: Any, req_id: int) -> dict:
    """The protocol request for one case."""
    return {"id": req_id, "case": case.id if hasattr(case, "id") else f"{case.profile}/{case.handler}/{case.suite}/{case.name}",
            "handler": case.handler, "profile": case.profile,
            "inputs": encode_value(dict(case.inputs)), "parameters": encode_value(dict(case.parameters)),
            "expected_keys": sorted(case.expected)}


class ExternalAdapter:
    """A program speaking the JSON-lines protocol (``docs/conformance.md``) over stdin/stdout."""

    def __init__(self, command: str | list[str], *, timeout: float = 20.0, start_timeout: float = 30.0,
                 name: str | None = None, cwd: str | Path | None = None):
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("external: empty command")
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.cwd = cwd
        self.capabilities: dict[str, Any] | None = None
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue | None = None
        self._next_id = 0
        self._start_error: str | None = None
        self.name = name or "external"
        self.description = f"external: {shlex.join(self.argv)}"
        self._start()
        if self.capabilities is not None:
            self.name = name or f"external:{self.capabilities.get('name', Path(self.argv[0]).name)}"
            impl = self.capabilities.get("implementation", "")
            self.description = f"external {impl}: {shlex.join(self.argv)}".strip()

    # -- process management --

    def _start(self) -> None:
        self._kill()
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, cwd=self.cwd, text=True, bufsize=1,
                                          encoding="utf-8", errors="replace")
        except OSError as exc:
            self._proc = None
            self._start_error = f"cannot start {self.argv[0]}: {exc}"
            return
        q: queue.Queue = queue.Queue()
        proc = self._proc

        def reader() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                q.put(line)
            q.put(None)

        threading.Thread(target=reader, daemon=True).start()
        self._lines = q
        resp = self._exchange({"id": 0, "type": "hello", "protocol": PROTOCOL}, self.start_timeout)
        if isinstance(resp, str):
            self._start_error = f"hello: {resp}"
            self._kill()
            return
        if resp.get("protocol") != PROTOCOL:
            self._start_error = f"hello: protocol {resp.get('protocol')!r}, expected {PROTOCOL!r}"
            self._kill()
            return
        self._start_error = None
        self.capabilities = resp

    def _kill(self) -> None:
        p = self._proc
        self._proc = None
        if p is None:
            return
        try:
            if p.stdin:
                p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(timeout=5.0)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass

    def close(self) -> None:
        self._kill()

    def _exchange(self, msg: dict, timeout: float) -> dict | str:
        """Send one request; the matching response, or a string saying what went wrong."""
        p = self._proc
        if p is None or p.poll() is not None:
            return f"process not running (exit status {None if p is None else p.returncode})"
        try:
            p.stdin.write(json.dumps(msg, separators=(",", ":")) + "\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError) as exc:
            return f"cannot write request: {exc}"
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return f"no answer within {timeout:g} s"
            try:
                line = self._lines.get(timeout=left)  # type: ignore[union-attr]
            except queue.Empty:
                return f"no answer within {timeout:g} s"
            if line is None:
                p.poll()
                return f"process exited (status {p.returncode}) without answering"
            line = line.strip()
            if not line:
                continue
            try:
                resp = json.loads(line)
            except ValueError:
                return f"not JSON: {line[:120]!r}"
            if not isinstance(resp, dict) or resp.get("id") != msg["id"]:
                return f"answer for another request: {line[:120]!r}"
            return resp

    # -- adapter protocol --

    def supports(self, handler: str, profile: str) -> bool:
        if self.capabilities is None:
            return True  # the failure to start is reported per case, as an error
        hs = self.capabilities.get("handlers")
        ps = self.capabilities.get("profiles")
        return (hs is None or handler in hs) and (ps is None or profile in ps)

    def skip_reason(self, handler: str, profile: str) -> str:
        return f"not in the implementation's capabilities ({handler}, {profile})"

    def run(self, case: Any) -> Result:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
            if self._proc is None:
                return Result(failure=self._start_error or "cannot start")
        self._next_id += 1
        resp = self._exchange(request_for(case, self._next_id), self.timeout)
        if isinstance(resp, str):
            self._kill()  # restart for the next case
            return Result(failure=resp)
        if resp.get("unsupported"):
            return Result(unsupported=True, reason=str(resp.get("reason", "unsupported")))
        if "error" in resp:
            e = resp["error"] if isinstance(resp["error"], dict) else {"message": str(resp["error"])}
            return Result(error=ErrorInfo(e.get("class"), e.get("byte_offset"), str(e.get("message", "")),
                                          e.get("code")))
        if "result" in resp and isinstance(resp["result"], dict):
            try:
                return Result(values=decode_value(resp["result"]),
                              not_reported=tuple(resp.get("not_reported", ())))
            except (ValueError, TypeError) as exc:
                return Result(failure=f"bad result encoding: {exc}")
        return Result(failure="answer has none of result, error, unsupported")


# ------------------------------------------------------------------------------------------------


def adapter_names() -> list[str]:
    """``reference`` and every libopus build the upstream manager knows."""
    return ["reference", *upstream.known_builds()]


def make_adapter(spec: str, *, timeout: float = 20.0) -> Any:
    """An adapter from a ``--impl`` value: ``reference``, a build name, or ``external:CMD ARGS``."""
    if spec == "reference":
        return ReferenceAdapter()
    if spec.startswith("external:"):
        return ExternalAdapter(spec[len("external:"):], timeout=timeout)
    return LibopusAdapter(spec)
