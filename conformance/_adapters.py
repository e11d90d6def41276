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
    :func:`opus_dred.refimpl._decode.decode_dred` (features), :mod:`opus_dred.refimpl._receiver` (the
    receiver's actions) and the reference encoder (``features``, ``dred_encode``: under the numerics preset
    the case names).
``libopus-*``  (:class:`LibopusAdapter`)
    a libopus build of the upstream manager (``opus-dred upstream list``: 1.5.2, 1.6.1, their generic
    builds, any registered tree) through the oracle (:class:`opus_dred.libopus._oracle.Oracle`). A build
    supports only the profile of its own DRED version; ``receiver`` is skipped (libopus has no receiver
    object: its one policy lives in ``opus_demo``'s main loop, which :mod:`opus_dred.refimpl._receiver` models;
    running our model would not test libopus). libopus cannot report quantized values, error classes,
    error offsets or where empty padding starts: those fields are reported as *partial*, never as failures.
    A ``dred_encode`` case runs only where the build's arithmetic on this host is the case's numerics preset
    (:meth:`LibopusAdapter.encoder_numerics`); elsewhere it is skipped, with both named.
``external:CMD``  (:class:`ExternalAdapter`)
    any program speaking the JSON-lines protocol of ``docs/conformance.md`` on stdin/stdout, with a
    timeout per case; a crash or a hang is reported as an ``error`` for that case, with the tail of the
    program's standard error, and the program is restarted for the next one, a bounded number of times:
    after a few consecutive start failures or timeouts, or past the run's deadline, it is marked broken and
    its remaining cases are errors at once.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from opus_dred.bitstream._arith import compute_dred_frame_offset
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import DRED_EXPERIMENTAL_BYTES, dred_version_in
from opus_dred.bitstream._profiles import get_profile
from opus_dred.conformance._runner import ErrorInfo, Result
from opus_dred.libopus import _upstream as upstream
from opus_dred.libopus._builds import cache_dir
from opus_dred.libopus._encoder import LibopusDredEncoder, LibopusFeatureExtractor
from opus_dred.libopus._listen import LibopusFargan, LibopusPlc
from opus_dred.libopus._oracle import Oracle
from opus_dred.refimpl._decode import DEFAULT_NUMERICS
from opus_dred.vectors._expected import (
    ListeningInputError,
    check_vocoder_features,
    demo_output,
    demo_sequence,
    dred_stream_features,
    encoder_frames,
    encoder_pcm,
    parse_layer,
    plc_events,
)
from opus_dred.vectors._handlers import HANDLERS, Needs, expected_for

#: the JSON-lines protocol spoken by :class:`ExternalAdapter`: its name (which carries the major version) and
#: the version, (major, minor), this runner speaks (``docs/conformance.md``, "Version negotiation")
PROTOCOL = "opus-dred-conform/1"
PROTOCOL_VERSION = (1, 1)
#: how much of an external program's standard error goes with a fault's outcome: its last lines, at most
STDERR_TAIL_LINES = 20
STDERR_TAIL_BYTES = 4096


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
        persistent_jax_cache()

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


def persistent_jax_cache(min_compile_secs: float = 1.0) -> None:
    """Keep JAX's compiled decoders, PLC, FARGAN and feature-extractor steps in ``<cache>/jax`` between runs
    (each shape takes seconds to compile; the executable is the same, so results are unchanged): those that took
    ``min_compile_secs`` or more to compile. ``OPUS_DRED_JAX_CACHE=0`` turns it off; a cache directory set
    elsewhere is left alone."""
    if os.environ.get("OPUS_DRED_JAX_CACHE", "1") == "0":
        return
    try:
        import jax  # lazy: loads JAX

        if not jax.config.jax_compilation_cache_dir:
            d = cache_dir() / "jax"
            d.mkdir(parents=True, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", str(d))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_secs)
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

    #: what libopus offers: its parsers and range coder, its DRED decoder, the DRED half of its encoder
    #: (``DREDEnc``, the LPCNet feature extractor) and its listening side (FARGAN, the neural PLC, through the
    #: shim: :mod:`opus_dred.libopus._listen`); no receiver object (its one policy lives in opus_demo's main loop)
    NEEDS_MET = frozenset({Needs.BITSTREAM, Needs.DECODER, Needs.ENCODER, Needs.VOCODER})
    #: the numerics preset (``opus_dred.refimpl._nnet.NUMERICS``) each build variant's neural arithmetic is on
    #: an x86 CPU with AVX2 and FMA, before the ``RCPPS`` table is set for the CPU (``nnet.for_host``)
    VARIANT_NUMERICS: ClassVar[dict[str, str]] = {"default": "avx2", "generic": "sse2"}
    #: why a handler whose need libopus does not meet is skipped, where there is more to say
    UNMET = {Needs.RECEIVER: "libopus has no receiver object (its policy lives in opus_demo)"}

    def __init__(self, build: str):
        self.name = build
        st = upstream.status(build)  # raises UnknownBuildError for a name the manager does not know
        self.dred_version = st.get("dred_version")
        self.release = st.get("release", "")
        self.variant = st.get("variant", "")
        self.description = f"libopus {self.release} ({self.variant}), DRED version {self.dred_version}"
        self._oracle = None
        self._numerics: tuple[str | None, str] | None = None

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

    # -- the listening side --

    def _listening_skip(self, case: Any) -> Result | None:
        """A ``vocoder`` or ``plc`` case runs only where this build's arithmetic on this host is the case's
        numerics preset: FARGAN is chaotic, so libopus' own default and ``-generic`` builds end up further apart
        than the audio rule allows (docs/vector-format.md); elsewhere it is skipped with both presets named."""
        want = str(case.parameters.get("numerics"))
        have, how = self.encoder_numerics()
        if have != want:
            return Result(unsupported=True, reason=f"the case's audio is made with numerics {want!r}; "
                                                   f"{self.name} on this host computes {how}")
        return None

    def _vocoder(self, case: Any) -> Result:
        """``fargan_demo -fargan-synthesis`` through the shim (:class:`~opus_dred.libopus._listen.LibopusFargan`):
        ``fargan_init``, ``fargan_cont`` on zeros and five copies of the first vector, ``fargan_synthesize`` of
        each vector that program synthesizes, rounded as it rounds them."""
        skip = self._listening_skip(case)
        if skip is not None:
            return skip
        try:
            first = check_vocoder_features(case.inputs["features"])[:1]
            seq = demo_sequence(case.inputs["features"])
        except ListeningInputError as exc:
            return Result(error=_error_info(exc))
        v = LibopusFargan(self.oracle)
        v.cont(np.zeros(v.layout.cont_samples, np.float32), np.repeat(first, v.layout.cont_vectors, axis=0))
        synth = np.concatenate([v.synthesize_int(f) for f in seq])
        return Result(values={"audio": demo_output(synth, seq.shape[0] - 1)})

    def _plc(self, case: Any) -> Result:
        """The case's events on one ``LPCNetPLCState`` of the build (:class:`~opus_dred.libopus._listen.LibopusPlc`):
        ``lpcnet_plc_update``, ``lpcnet_plc_conceal``, ``lpcnet_plc_fec_add``, ``lpcnet_plc_fec_clear``."""
        skip = self._listening_skip(case)
        if skip is not None:
            return skip
        try:
            events = plc_events(case.inputs["events"], case.inputs["pcm"], case.inputs.get("features"))
        except ListeningInputError as exc:
            return Result(error=_error_info(exc))
        plc = LibopusPlc(self.oracle)
        out = []
        for e in events:
            if e[0] == "good":
                plc.update(e[1])
                out.append(np.asarray(e[1], np.int16))
            elif e[0] == "lost":
                out.append(plc.conceal())
            elif e[0] == "fec":
                plc.fec_add(e[1])
            else:
                plc.fec_clear()
        return Result(values={"audio": np.concatenate(out) if out else np.zeros(0, np.int16)})

    # -- the encoder half --

    def encoder_numerics(self) -> tuple[str | None, str]:
        """The numerics preset (a name of ``opus_dred.refimpl._nnet.NUMERICS``) this build's DRED encoder
        computes with on this host, and how that was decided, in words; ``None`` where no preset describes it.

        A default build dispatches at run time to its AVX2 kernels where the CPU has AVX2 and FMA, a
        ``-generic`` one always runs its SSE2 path; both divide with the CPU's ``RCPPS``, whose table
        ``nnet.for_host`` picks by vendor. So: default → ``for_host(avx2)``, ``-generic`` → ``for_host(sse2)``
        (``avx2`` / ``sse2`` on AMD, ``avx2-intel`` / ``sse2-intel`` on Intel); a default build on a CPU
        without AVX2 or FMA, or a build of another variant, has none."""
        if self._numerics is None:
            self._numerics = _build_numerics(self.variant, self.VARIANT_NUMERICS)
        return self._numerics

    def _dred_encode(self, case: Any) -> Result:
        """``dred_compute_latents`` and ``dred_encode_silk_frame`` of one ``DREDEnc`` per case, frame by frame,
        with the activity memory the handler defines (:func:`opus_dred.vectors._expected.encoder_frames`)."""
        p = case.parameters
        want = str(p.get("numerics"))
        have, how = self.encoder_numerics()
        if have != want:
            return Result(unsupported=True, reason=f"the case's payloads are made with numerics {want!r}; "
                                                   f"{self.name} on this host computes {how}")
        frames = list(encoder_frames(case.profile, case.inputs["pcm"], case.inputs["activity"], dict(p)))
        enc = LibopusDredEncoder(self.oracle, int(p["sampling_rate"]))
        payloads = []
        for frame, mem in frames:
            enc.compute_latents(frame, int(p["extra_delay"]))
            payloads.append(enc.encode(max_chunks=int(p["max_chunks"]), max_bytes=int(p["max_bytes"]),
                                       q0=int(p["q0"]), dq=int(p["dq"]), qmax=int(p["qmax"]), activity=mem))
        return Result(values={"payloads": [b.hex() for b in payloads]})

    def _features(self, case: Any) -> Result:
        """The 16 kHz conversion of the build's ``DREDEnc`` (:func:`libopus_to_16k`), its
        ``DRED_SILK_ENCODER_DELAY`` zeros first, then ``lpcnet_compute_single_frame_features_float`` per 160
        samples; the first 20 of the 36 values.

        The case's tolerance is the spread between libopus' default and ``-generic`` builds on a CPU with the
        ``RCPPS`` table of the case's numerics; a build whose arithmetic here uses another table (an Intel
        core for an AMD case) differs from the expected features by more than that, for a reason the
        tolerance does not cover, and is skipped."""
        from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

        want = str(case.parameters.get("numerics"))
        have, how = self.encoder_numerics()
        if have is None or want not in nnet.NUMERICS or \
                nnet.NUMERICS[have].reciprocal != nnet.NUMERICS[want].reciprocal:
            return Result(unsupported=True, reason=f"the case's features are made with numerics {want!r}, its "
                                                   f"tolerance is libopus' default-vs-generic spread with that "
                                                   f"RCPPS table; {self.name} on this host computes {how}")
        fs = int(case.parameters["sampling_rate"])
        pcm = encoder_pcm(case.profile, case.inputs["pcm"], fs)
        x16, delay = libopus_to_16k(self.oracle, fs, pcm)
        s16 = np.concatenate([np.zeros(delay, np.float32), x16])
        fe = LibopusFeatureExtractor(self.oracle)
        nf = _profile(case.profile).num_features
        rows = [fe.frame(s16[i:i + 160]).features[:nf] for i in range(0, s16.shape[0] - 159, 160)]
        return Result(values={"features": np.stack(rows).astype(np.float32) if rows
                              else np.zeros((0, nf), np.float32)})


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _build_numerics(variant: str, by_variant: dict[str, str]) -> tuple[str | None, str]:
    """:meth:`LibopusAdapter.encoder_numerics` for a build of ``variant``."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    base = by_variant.get(variant)
    if base is None:
        return None, f"with the arithmetic of a {variant!r} build, which no numerics preset describes"
    if variant == "default":
        flags = _cpu_flags()
        if not flags:
            return None, ("with the kernels libopus' run-time dispatch picks, and this system does not say "
                          "whether the CPU has AVX2 and FMA")
        missing = {"avx2", "fma"} - flags
        if missing:
            return None, (f"with the kernels libopus' run-time dispatch picks on a CPU without "
                          f"{', '.join(sorted(missing))}, which no numerics preset describes")
    num = nnet.for_host(nnet.NUMERICS[base])
    name = next((k for k, v in nnet.NUMERICS.items() if v == num), None)
    if name is None:  # pragma: no cover - for_host always lands on a preset of the table
        return None, f"as {base} with this CPU's RCPPS table {num.reciprocal!r}, which no numerics preset names"
    return name, f"as {name!r} (a {variant} build; this CPU's RCPPS table: {num.reciprocal})"


def libopus_to_16k(oracle: Oracle, fs: int, pcm: np.ndarray) -> tuple[np.ndarray, int]:
    """libopus' ``dred_convert_to_16k`` of float PCM at ``fs`` (the samples in int16 scale, as they enter a
    ``DREDEnc``'s input buffer) and the build's ``DRED_SILK_ENCODER_DELAY``.

    The conversion is a static function of ``dnn/dred_encoder.c``; it is read from the input buffer of a fresh
    ``DREDEnc`` fed through ``dred_compute_latents``: each call appends its converted samples at
    ``input_buffer_fill`` and, once 320 are there, processes them and moves the rest to the front, so the
    calls are sized to read every sample before it is overwritten (4 samples at 16 kHz at a time past the
    processing point: a whole number of input samples at every rate)."""
    enc = LibopusDredEncoder(oracle, fs)
    full = enc.layout.input_buffer // 2  # 2 * DRED_FRAME_SIZE: what one processing step consumes
    x = np.ascontiguousarray(pcm, np.float32).reshape(-1)
    if (x.shape[0] * 16000) % fs:
        raise ValueError(f"{x.shape[0]} samples at {fs} Hz are not a whole number of 16 kHz samples")
    st = enc.state()
    delay, fill = enc.layout.silk_encoder_delay, st.input_buffer_fill
    out: list[np.ndarray] = []
    pos = 0
    while pos < x.shape[0]:
        n16 = max((full - fill) // 4 * 4, 4)
        n = min(n16 * fs // 16000, x.shape[0] - pos)
        n16 = n * 16000 // fs
        enc.compute_latents(x[pos:pos + n], 0)
        st = enc.state()
        if fill + n16 < full:
            out.append(st.input_buffer[fill:fill + n16].copy())
        else:  # processed: [fill, full) is intact, the samples past ``full`` moved to the front
            out += [st.input_buffer[fill:full].copy(), st.input_buffer[:fill + n16 - full].copy()]
        fill = st.input_buffer_fill
        pos += n
    return (np.concatenate(out) if out else np.zeros(0, np.float32)), delay


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


class _Fault(Exception):
    """An adapter-level fault in one exchange: ``kind`` ``timeout`` (no answer in time), ``exit`` (the process
    ended or closed its pipes) or ``protocol`` (an answer outside the protocol)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


_DEADLINE_CUT = " (the rest of the run deadline)"


def _seconds(t: float) -> str:
    return f"{t:g}" if t == round(t, 2) else f"{t:.2f}"


class _WriteFailed(str):
    """Put on the answer queue when a request could not be written."""


_EOF = object()  # the program closed its standard output
_TOO_LONG = object()  # an answer line past the size limit


class _StderrTail:
    """The last lines of a process's standard error (at most ``lines`` lines and ``nbytes`` bytes), read by a
    thread as they come, so that a program writing a flood to its standard error never blocks on it."""

    def __init__(self, stream: Any, lines: int = STDERR_TAIL_LINES, nbytes: int = STDERR_TAIL_BYTES):
        self._lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._nbytes = nbytes
        self._read_so_far = 0  # lines read, to tell when the stream has gone quiet
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        try:
            for raw in iter(lambda: stream.readline(self._nbytes), b""):
                with self._lock:
                    self._lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                    self._read_so_far += 1
        except (OSError, ValueError):  # the pipe closed under the thread
            pass

    def settle(self, quiet: float = 0.05, limit: float = 0.5) -> None:
        """Wait until nothing new has come for ``quiet`` seconds (at most ``limit``): what a running program
        wrote just before its answer has then been read."""
        end = time.monotonic() + limit
        seen = -1
        while time.monotonic() < end and seen != self._read_so_far:
            seen = self._read_so_far
            self._thread.join(quiet)

    def text(self, wait: float = 0.0) -> str:
        """The tail, newest line last; ``wait`` seconds for the reader to reach the end of the stream first."""
        if wait:
            self._thread.join(wait)
        with self._lock:
            lines = list(self._lines)
        out: list[str] = []
        size = 0
        for line in reversed(lines):
            size += len(line.encode("utf-8")) + 1
            if size > self._nbytes:
                if not out:
                    out.append(line.encode("utf-8")[-self._nbytes:].decode("utf-8", "ignore"))
                break
            out.append(line)
        return "\n".join(reversed(out))


class _Process:
    """One run of the adapter program: its standard output read line by line by a thread into a small queue
    (a program flooding it waits on the pipe, memory stays bounded), its standard error into a
    :class:`_StderrTail`, requests written by a thread (a program that does not read cannot block the runner).
    The program runs in a session of its own, so that killing it kills what it started."""

    def __init__(self, argv: list[str], cwd: Any, max_line: int):
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      cwd=cwd, start_new_session=os.name == "posix")
        self.max_line = max_line
        self.stderr = _StderrTail(self.popen.stderr)
        self._answers: queue.Queue = queue.Queue(maxsize=16)
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._answers.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read_stdout(self) -> None:
        out = self.popen.stdout
        try:
            while True:
                raw = out.readline(self.max_line + 1)  # type: ignore[union-attr]
                if not raw:
                    break
                if len(raw) > self.max_line and not raw.endswith(b"\n"):
                    self._put(_TOO_LONG)
                    return
                if not self._put(raw.decode("utf-8", "replace")):
                    return
        except (OSError, ValueError):
            pass
        self._put(_EOF)

    def running(self) -> bool:
        return self.popen.poll() is None

    def send(self, msg: dict) -> None:
        if not self.running():
            raise _Fault("exit", f"process not running (exit status {self.popen.returncode})")
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode("utf-8")

        def write() -> None:
            try:
                self.popen.stdin.write(data)  # type: ignore[union-attr]
                self.popen.stdin.flush()  # type: ignore[union-attr]
            except (OSError, ValueError) as exc:
                self._put(_WriteFailed(exc))

        self._writer = threading.Thread(target=write, daemon=True)
        self._writer.start()

    def answer(self, rid: int, timeout: float, why: str = "") -> dict:
        """The answer to request ``rid`` within ``timeout`` seconds, or a :class:`_Fault`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self._answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise _Fault("timeout", f"no answer within {_seconds(timeout)} s{why}") from None
            if item is _EOF:
                try:
                    status = self.popen.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    raise _Fault("exit", "closed its standard output without answering (still running)") from None
                raise _Fault("exit", f"process exited (status {status}) without answering")
            if item is _TOO_LONG:
                raise _Fault("protocol", f"an answer line longer than {self.max_line} bytes")
            if isinstance(item, _WriteFailed):
                raise _Fault("exit", f"cannot write request: {item}")
            line = item.strip()
            if not line:
                continue
            try:
                resp = json.loads(line)
            except ValueError:
                raise _Fault("protocol", f"not JSON: {line[:120]!r}") from None
            got = resp.get("id") if isinstance(resp, dict) else None
            if not isinstance(got, int) or isinstance(got, bool) or got != rid:
                raise _Fault("protocol", f"answer for another request (expected id {rid}): {line[:120]!r}")
            return resp

    def kill(self, grace: float) -> str:
        """End the program: close its standard input and wait ``grace`` seconds for it to exit (none when a
        request is still being written: it is not reading), then SIGKILL its session. Its stderr tail."""
        p = self.popen
        self._stop.set()
        if grace > 0 and not (self._writer is not None and self._writer.is_alive()):
            try:
                p.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        _kill_session(p)
        return self.stderr.text(wait=0.5)


def _kill_session(p: subprocess.Popen) -> None:
    if p.poll() is None and not hasattr(os, "killpg"):
        p.kill()
    elif hasattr(os, "killpg"):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        p.wait(timeout=5.0)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process SIGKILL does not end
        pass
    for f in (p.stdin, p.stdout, p.stderr):
        try:
            if f is not None:
                f.close()
        except (OSError, ValueError):
            pass


def negotiate_version(answer: dict) -> tuple[int, int]:
    """The protocol version both sides speak, from the hello answer: ``protocol`` ``"opus-dred-conform/MAJOR"``
    and, optionally, ``version`` ``"MAJOR.MINOR"`` (an answer without it speaks MINOR 0). The major versions
    must match; the minor spoken is the smaller of the two. Raises ``ValueError`` saying why not."""
    proto = answer.get("protocol")
    m = re.fullmatch(r"opus-dred-conform/(\d+)", proto) if isinstance(proto, str) else None
    mine = f"{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}"
    if m is None:
        raise ValueError(f"protocol {proto!r} is not opus-dred-conform/<major>; this runner speaks "
                         f"{PROTOCOL} (version {mine})")
    major, minor = int(m[1]), 0
    v = answer.get("version")
    if v is not None:
        mv = re.fullmatch(r"(\d+)\.(\d+)", v) if isinstance(v, str) else None
        if mv is None or int(mv[1]) != major:
            raise ValueError(f"version {v!r} is not \"{major}.<minor>\" (protocol {proto})")
        minor = int(mv[2])
    if major != PROTOCOL_VERSION[0]:
        raise ValueError(f"the adapter speaks protocol version {major}.{minor}, this runner {mine}: the major "
                         f"versions differ, so the adapter is refused")
    return major, min(minor, PROTOCOL_VERSION[1])


class ExternalAdapter:
    """A program speaking the JSON-lines protocol (``docs/conformance.md``) over stdin/stdout, at a bounded cost
    per fault.

    Each case has ``timeout`` seconds, each start (the hello exchange) ``start_timeout``. After a crash, a
    timeout or an answer outside the protocol the program is killed and started again for the next case, at
    most ``max_restarts`` times. ``max_faults`` consecutive faults that cost a timeout (start failures and case
    timeouts, counted until a case is answered) mark it *broken*; so do a hello it cannot pass (a major
    version of the protocol this runner does not speak, a ``failure`` answer, a program that cannot be
    executed), too many restarts, and the run's ``deadline`` (seconds spent in this adapter, starts included;
    a case's timeout is cut to what is left of it). Every case after that is an ``error`` at once, with the
    reason. The last lines of the program's standard error (20 lines, 4 KiB) go with each fault's outcome."""

    def __init__(self, command: str | list[str], *, timeout: float = 20.0, start_timeout: float = 30.0,
                 name: str | None = None, cwd: str | Path | None = None, max_faults: int = 3,
                 max_restarts: int = 100, deadline: float = 3600.0, kill_grace: float = 1.0,
                 max_line: int = 64 << 20):
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("external: empty command")
        self.timeout, self.start_timeout, self.cwd = timeout, start_timeout, cwd
        self.max_faults, self.max_restarts, self.deadline = max_faults, max_restarts, deadline
        self.kill_grace, self.max_line = kill_grace, max_line
        self.capabilities: dict[str, Any] | None = None
        self.version: tuple[int, int] | None = None
        self._proc: _Process | None = None
        self._next_id = 0
        self._starts = 0
        self._faults = 0  # consecutive start failures and timeouts
        self._spent = 0.0  # seconds spent in this adapter
        self._broken: str | None = None
        self._pending: Result | None = None  # the first start's failure, reported on the first case
        self.name = name or "external"
        self.description = f"external: {shlex.join(self.argv)}"
        t0 = time.monotonic()
        self._pending = self._start()
        self._spent += time.monotonic() - t0
        if self.capabilities is not None:
            self.name = name or f"external:{self.capabilities.get('name', Path(self.argv[0]).name)}"
            impl = self.capabilities.get("implementation", "")
            self.description = f"external {impl}: {shlex.join(self.argv)}".strip()

    @property
    def broken(self) -> str | None:
        """Why the adapter is no longer run (``None`` while it is)."""
        return self._broken

    # -- process management --

    def _left(self) -> float:
        return self.deadline - self._spent

    def _bounded(self, timeout: float) -> tuple[float, str]:
        """A timeout cut to what is left of the run deadline, and the note that says so."""
        left = self._left()
        return (timeout, "") if timeout <= left else (max(left, 0.0), _DEADLINE_CUT)

    def _start(self) -> Result | None:
        """Start the program and exchange hello: ``None``, or the failure as a :class:`Result`."""
        self._kill(0.0)
        self._starts += 1
        try:
            self._proc = _Process(self.argv, self.cwd, self.max_line)
        except OSError as exc:
            return self._start_failed(f"cannot start {self.argv[0]}: {exc}", fatal=True)
        timeout, why = self._bounded(self.start_timeout)
        try:
            self._proc.send({"id": 0, "type": "hello", "protocol": PROTOCOL,
                             "version": f"{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}"})
            resp = self._proc.answer(0, timeout, why)
        except _Fault as f:
            self._deadline_reached(f, why)
            return self._start_failed(f"hello: {f.message}", fatal=False)
        if "failure" in resp:
            return self._start_failed(f"hello: the adapter reported a failure: {resp['failure']}", fatal=True)
        try:
            self.version = negotiate_version(resp)
        except ValueError as exc:
            return self._start_failed(f"hello: {exc}", fatal=True)
        for key in ("handlers", "profiles"):
            v = resp.get(key)
            if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                return self._start_failed(f"hello: {key!r} must be a list of names or null, not {v!r:.80}",
                                          fatal=True)
        self.capabilities = resp
        return None

    def _deadline_reached(self, fault: _Fault, why: str) -> None:
        if fault.kind == "timeout" and why == _DEADLINE_CUT:
            self._broken = f"the run deadline of {self.deadline:g} s has passed"

    def _start_failed(self, why: str, *, fatal: bool) -> Result:
        tail = self._kill(0.0)
        self._faults += 1
        if self._broken is None and fatal:
            self._broken = why
        elif self._broken is None and self._faults >= self.max_faults:
            self._broken = f"{self._faults} consecutive start failures or timeouts (last: {why})"
        return self._failure(why, tail)

    def _failure(self, why: str, tail: str) -> Result:
        if self._broken is not None and self._broken != why:
            why = f"{why}; adapter marked broken: {self._broken}"
        elif self._broken is not None:
            why = f"{why}; adapter marked broken"
        return Result(failure=why, stderr_tail=tail)

    def _kill(self, grace: float) -> str:
        p, self._proc = self._proc, None
        return p.kill(grace) if p is not None else ""

    def close(self) -> None:
        self._kill(self.kill_grace)

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
        t0 = time.monotonic()
        try:
            return self._run(case)
        finally:
            self._spent += time.monotonic() - t0

    def _run(self, case: Any) -> Result:
        if self._pending is not None:
            r, self._pending = self._pending, None
            return r
        if self._broken is None and self._left() <= 0:
            self._broken = f"the run deadline of {self.deadline:g} s has passed"
        if self._broken is None and (self._proc is None or not self._proc.running()) \
                and self._starts > self.max_restarts:
            self._broken = f"restarted {self._starts - 1} times (the limit)"
        if self._broken is not None:
            return Result(failure=f"not run: the adapter is broken: {self._broken}")
        if self._proc is None or not self._proc.running():
            failed = self._start()
            if failed is not None:
                return failed
        return self._exchange(case)

    def _exchange(self, case: Any) -> Result:
        self._next_id += 1
        timeout, why = self._bounded(self.timeout)
        try:
            self._proc.send(request_for(case, self._next_id))  # type: ignore[union-attr]
            resp = self._proc.answer(self._next_id, timeout, why)  # type: ignore[union-attr]
        except _Fault as f:
            tail = self._kill(0.0 if f.kind == "timeout" else self.kill_grace)
            self._deadline_reached(f, why)
            if f.kind == "timeout" and self._broken is None:
                self._faults += 1
                if self._faults >= self.max_faults:
                    self._broken = f"{self._faults} consecutive start failures or timeouts (last: {f.message})"
            return self._failure(f.message, tail)
        self._faults = 0
        return self._result(resp)

    def _result(self, resp: dict) -> Result:
        if "failure" in resp:
            tail = ""
            if self._proc is not None:
                self._proc.stderr.settle()
                tail = self._proc.stderr.text()
            return Result(failure=f"the adapter reported a failure: {resp['failure']}", stderr_tail=tail)
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
        return Result(failure="answer has none of result, error, unsupported, failure")


# ------------------------------------------------------------------------------------------------


def adapter_names() -> list[str]:
    """``reference`` and every libopus build the upstream manager knows."""
    return ["reference", *upstream.known_builds()]


def make_adapter(spec: str, *, timeout: float = 20.0, **limits: Any) -> Any:
    """An adapter from a ``--impl`` value: ``reference``, a build name, or ``external:CMD ARGS``; ``timeout``
    and ``limits`` (``start_timeout``, ``max_faults``, ``max_restarts``, ``deadline``: see
    :class:`ExternalAdapter`) apply to an external program only."""
    if spec == "reference":
        return ReferenceAdapter()
    if spec.startswith("external:"):
        return ExternalAdapter(spec[len("external:"):], timeout=timeout, **limits)
    return LibopusAdapter(spec)
