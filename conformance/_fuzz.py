"""Differential fuzzing of the bitstream readers against libopus (``opus-dred fuzz``).

Every case is a byte string (and a few parameters) fed both to our readers and to the libopus build of
the profile through the oracle (:mod:`opus_dred.libopus._oracle`). The two must agree on
accept/reject and on every field:

``packet``
    :func:`~opus_dred.bitstream._packet.parse_packet` against ``src/opus.c:opus_packet_parse_impl``
    (plain and self-delimited): frame count, TOC, frames, frame offsets, payload offset, length, padding.
``extensions``
    :func:`~opus_dred.bitstream._extensions.parse_extensions` (the profile's syntax) on the padding of an
    accepted packet against ``opus_packet_extensions_parse``: return, ids, frames, data, data offsets.
``dred``
    :func:`~opus_dred.bitstream._extensions.find_dred_extension` then
    :func:`~opus_dred.bitstream._dred.read_dred_payload` against ``opus_dred_parse(...,
    defer_processing=1)``: return (samples), ``dred_end``, ``nb_latents``, ``dred_offset``, the
    dequantised state and latents (bit for bit), for a random ``max_dred_samples`` and sampling rate.
``payload``
    :func:`~opus_dred.bitstream._dred.read_dred_payload` on raw payload bytes against
    ``dnn/dred_decoder.c:dred_ec_decode`` (header fields too).
``rangecoder``
    random decoder operations (``ec_dec_uint``, ``ec_dec_bits``, ``ec_dec_bit_logp``,
    ``ec_laplace_decode_p0``) on random bytes: values, ``ec_tell`` and ``ec_tell_frac`` after each.
``writer``
    for writer-generated packets, libopus must read back what we wrote (extensions, DRED header
    and values), and ``write_extensions`` must produce ``opus_packet_extensions_generate``'s bytes.

Case generators (picked per case): random bytes; mutated real packets (libopus' own encoder output
of the profile's build: bit flips, byte writes, truncation, extension, padding-length chains, extension
runs, repeated or version-changed DRED extensions); writer-generated packets; raw payloads; range-coder
programs. Case ``i`` of seed ``s`` depends on ``(s, i)`` only (``random.Random``), so any case can be
replayed alone (:func:`run_case`).

Anything our readers raise other than a :class:`~opus_dred.bitstream._errors.BitstreamError` is an
*unexpected exception*; a ``BitstreamError`` must carry a byte offset (stage ``error-offset``) that lies
inside the input, as must its bit offset (stage ``error-offset-outside-input``).
"""

from __future__ import annotations

import os
import random
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from opus_dred.bitstream._arith import (
    compute_quantizer,
    dequantize,
    extra_offset_from_code,
    min_feature_frames_for,
    qmax_is_coded,
)
from opus_dred.bitstream._dred import (
    DredPayload,
    coding_tables,
    dred_extension_data,
    read_dred_payload,
    write_dred_payload,
)
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import Extension, find_dred_extension, parse_extensions, write_extensions
from opus_dred.bitstream._packet import Toc, parse_packet, write_packet
from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.bitstream._rangecoder import RangeDecoder, laplace_decode_p0
from opus_dred.libopus._oracle import Oracle
from opus_dred.speech._corpus import load_clip

#: case generators and their share of a campaign (weights)
KINDS: dict[str, int] = {"random": 20, "mutated": 48, "written": 12, "payload": 12, "rangecoder": 8}
_OPUS_INVALID_PACKET = -4
_OPUS_BUFFER_TOO_SMALL = -2
_EXT_CAPACITY = 512  # what the oracle's ext_parse passes as room for extensions
_RATES = (8000, 12000, 16000, 24000, 48000)


def default_build(profile: str) -> str:
    """The libopus build a profile is fuzzed against: the build of the same name."""
    return profile


@dataclass
class Disagreement:
    """One case where our reader and libopus differ (or ours raised something it must not)."""

    seed: int
    index: int
    kind: str
    stage: str
    detail: str
    input_hex: str
    params: dict = field(default_factory=dict)


@dataclass
class FuzzReport:
    profile: str
    build: str
    seed: int
    cases: int
    seconds: float
    jobs: int
    by_kind: dict[str, int]
    by_stage: dict[str, int]
    disagreements: list[Disagreement]
    unexpected: list[Disagreement]
    disagreement_count: int = 0
    unexpected_count: int = 0
    #: CPU seconds the workers spent on cases (on a shared machine, a fairer speed than wall time)
    cpu_seconds: float = 0.0

    @property
    def cases_per_s(self) -> float:
        return self.cases / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        d = asdict(self)
        d["cases_per_s"] = self.cases_per_s
        d["cases_per_cpu_s"] = self.cases_per_cpu_s
        return d

    @property
    def cases_per_cpu_s(self) -> float:
        """Cases per CPU second of one worker."""
        return self.cases / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


class _Mismatch(Exception):
    def __init__(self, stage: str, detail: str):
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = detail


def _eq(stage: str, what: str, ours: Any, ref: Any) -> None:
    if ours != ref:
        raise _Mismatch(stage, f"{what}: ours {ours!r} != libopus {ref!r}")


def _check_error(stage: str, exc: BitstreamError, data: bytes) -> None:
    """A typed error must say where: a byte offset, and a bit offset, inside the input it was given
    (``0 <= byte_offset <= len(data)``, ``0 <= bit_offset <= 8 * len(data)``; the end itself is where a
    truncated input fails). No offset is an ``error-offset`` disagreement, one outside the input an
    ``error-offset-outside-input`` one."""
    name = type(exc).__name__
    if exc.byte_offset is None:
        raise _Mismatch("error-offset", f"{stage}: {name} without a byte offset: {exc}")
    if not 0 <= exc.byte_offset <= len(data):
        raise _Mismatch("error-offset-outside-input",
                        f"{stage}: {name} at byte {exc.byte_offset} of a {len(data)}-byte input: {exc}")
    if exc.bit_offset is not None and not 0 <= exc.bit_offset <= 8 * len(data):
        raise _Mismatch("error-offset-outside-input",
                        f"{stage}: {name} at bit {exc.bit_offset} of a {8 * len(data)}-bit input: {exc}")


class Fuzzer:
    """Runs cases for one profile against one libopus build (one per process)."""

    def __init__(self, profile: str, build: str | None = None, corpus: list[bytes] | None = None):
        self.profile: Profile = get_profile(profile)
        self.build = build or default_build(profile)
        self.oracle = Oracle.for_build(self.build)
        lay = self.oracle.layout
        if lay.dred_version != self.profile.dred_version:
            raise ValueError(f"build {self.build} has DRED version {lay.dred_version}, profile {profile} "
                             f"{self.profile.dred_version}")
        self.syntax = self.profile.extension_syntax
        self.tables = coding_tables(self.profile)
        self.corpus = corpus if corpus is not None else real_packets(self.oracle)
        self.payload_corpus = []
        for p in self.corpus:
            loc = find_dred_extension(p, self.profile)
            if loc is not None:
                self.payload_corpus.append(loc.payload)
        if not self.payload_corpus:
            self.payload_corpus = [bytes(8)]
        self._read_cache: dict[tuple, DredPayload] = {}
        self.kind_names = list(KINDS)
        self.kind_cum = list(np.cumsum([KINDS[k] for k in self.kind_names]))

    # -- generators ----------------------------------------------------------------------------------

    def _kind(self, r: random.Random) -> str:
        x = r.random() * self.kind_cum[-1]
        for name, c in zip(self.kind_names, self.kind_cum):
            if x < c:
                return name
        return self.kind_names[-1]

    def _random_bytes(self, r: random.Random) -> bytes:
        n = min(int(r.expovariate(1 / 40)), 2000)
        data = bytearray(r.getrandbits(8) for _ in range(n))
        if data and r.random() < 0.5:  # a code 3 packet with padding is where extensions live
            data[0] = (data[0] & ~3) | 3
            if len(data) > 1:
                data[1] |= 0x40
        return bytes(data)

    def _ext_run(self, r: random.Random, n: int) -> bytearray:
        """Extension bytes biased toward the interesting: separators, RTE, long lengths, DRED ids."""
        out = bytearray()
        prefix = self.profile.experimental_prefix
        ext_id = self.profile.extension_id
        while len(out) < n:
            c = r.random()
            if c < 0.15:
                out.append(0x02)  # next frame
            elif c < 0.25:
                out += bytes([0x03, r.choice((0, 1, 2, 47, 48, 255, r.getrandbits(8)))])
            elif c < 0.35:
                out.append(0x04 | r.getrandbits(1))  # id 2: RTE in 1.6, a short extension in 1.5
            elif c < 0.45:
                out.append(0x01)  # one byte of padding
            elif c < 0.6:
                sid = r.randint(3, 31)
                out.append(sid << 1 | r.getrandbits(1))
                out.append(r.getrandbits(8))
            elif c < 0.8:
                lid = ext_id if r.random() < 0.6 else r.randint(32, 127)
                flag = r.getrandbits(1)
                out.append(lid << 1 | flag)
                body = bytes(prefix if r.random() < 0.7 else bytes([ord("D"), r.getrandbits(8)]))
                body += bytes(r.getrandbits(8) for _ in range(r.randint(0, 12)))
                if flag:
                    ln = len(body) + r.choice((0, 0, 0, -1, 1, 255))
                    ln = max(0, ln)
                    out += bytes([255] * (ln // 255) + [ln % 255])
                out += body
            elif c < 0.9:
                out += bytes([255] * r.randint(1, 4))  # long-length chains / id 127
            else:
                out.append(r.getrandbits(8))
        return out[: max(n, 0)] if r.random() < 0.3 else out

    def _mutate(self, r: random.Random, data: bytes) -> bytes:
        d = bytearray(data)
        for _ in range(r.randint(1, 3)):
            op = r.random()
            if not d:
                d += bytes([r.getrandbits(8)])
                continue
            if op < 0.25:  # bit flips
                for _ in range(r.randint(1, 4)):
                    i = r.randrange(len(d))
                    d[i] ^= 1 << r.randrange(8)
            elif op < 0.35:  # byte writes
                d[r.randrange(len(d))] = r.choice((0, 1, 2, 3, 0x7F, 0x80, 0xFC, 0xFD, 0xFE, 0xFF, r.getrandbits(8)))
            elif op < 0.45:  # truncation
                del d[r.randrange(len(d) + 1):]
            elif op < 0.5:  # extension with junk
                d += bytes(r.getrandbits(8) for _ in range(r.randint(1, 30)))
            elif op < 0.65:  # padding-length chain / frame-count byte of a code 3 packet
                if len(d) > 2 and d[0] & 3 == 3:
                    i = r.choice((1, 2, 2, 3))
                    if i < len(d):
                        d[i] = r.choice((0, 1, 0xFE, 0xFF, d[i] ^ 0x40, d[i] ^ 0x80, r.getrandbits(8)))
                else:
                    d[0] = (d[0] & ~3) | 3
            elif op < 0.8:  # replace the padding with an extension run
                try:
                    pkt = parse_packet(bytes(d))
                except BitstreamError:
                    continue
                run = self._ext_run(r, r.randint(1, 60))
                frames = pkt.frames
                if r.random() < 0.3 and len(frames) > 1:
                    frames = frames[:r.randint(1, len(frames))]
                try:
                    d = bytearray(write_packet(pkt.toc, frames, padding=bytes(run), code=3))
                except BitstreamError:
                    continue
            elif op < 0.9:  # repeat or rewrite the DRED extension
                loc = None
                try:
                    loc = find_dred_extension(bytes(d), self.profile)
                except BitstreamError:
                    pass
                if loc is None:
                    continue
                s = loc.payload_offset - 2
                if r.random() < 0.5 and s + 1 < len(d):
                    d[s + 1] = r.choice((10, 12, d[s + 1] ^ 1, r.getrandbits(8)))  # version byte
                else:
                    d[s:s] = bytes([self.profile.extension_id << 1 | 1, 2]) + bytes(self.profile.experimental_prefix)
            else:  # repeat a slice
                i = r.randrange(len(d))
                j = min(len(d), i + r.randint(1, 16))
                d[i:i] = d[i:j] * r.randint(1, 8)
        return bytes(d)

    def _written(self, r: random.Random) -> tuple[bytes, dict]:
        """A packet from our writers: frames, extensions (DRED among them), DRED payload."""
        prof = self.profile
        q0 = r.randrange(prof.quant_levels)
        dq = r.randrange(8)
        qmax = r.randint(q0 + 1, 15) if qmax_is_coded(q0, dq) else 15
        extended = r.random() < 0.3
        extra = r.randrange(256) if extended else 0
        nb = min(prof.max_latents, int(r.expovariate(1 / 3)))  # mostly short; now and then the most
        levels = [compute_quantizer(q0, dq, qmax, k, prof.dq_table) for k in range(nb)]

        def values(params):
            return [0 if p is None or r.random() < 0.4 else r.randint(-3, 3) for p in params]

        state_q = np.array(values(self.tables.state[q0]), np.int32)
        lat = np.array([values(self.tables.latent[q]) for q in levels], np.int32).reshape(nb, prof.latent_dim)
        payload = DredPayload(prof.name, q0=q0, dQ=dq, qmax=qmax, extended_offset=extended,
                              extra_offset=extra_offset_from_code(extra), offset=r.randrange(32), state_q=state_q, latents_q=lat,
                              q_levels=np.array(levels, np.int32))
        pbytes = write_dred_payload(payload, prof)
        config = r.randrange(32)
        toc = Toc(config, bool(r.getrandbits(1)), 0)
        max_frames = max(1, 5760 // toc.frame_size_48k)
        nfr = r.randint(1, min(max_frames, 6))
        same = r.random() < 0.5
        size = r.randint(0, 40)
        frames = [bytes(r.getrandbits(8) for _ in range(size if same else r.randint(0, 40))) for _ in range(nfr)]
        dred_frame = r.randrange(nfr)
        exts = []
        lo = 3 if self.syntax == "rte" else 2
        for f in range(nfr):
            for _ in range(r.choice((0, 0, 1, 2))):
                eid = r.randint(lo, 127)
                if eid == prof.extension_id:
                    eid = 125
                data = bytes(r.getrandbits(8) for _ in range(r.randint(0, 1) if eid < 32 else r.randint(0, 8)))
                exts.append(Extension(eid, f, data))
            if f == dred_frame:
                exts.append(Extension(prof.extension_id, f, dred_extension_data(pbytes, prof)))
        exts.sort(key=lambda e: e.frame)
        padding = write_extensions(exts, nfr, syntax=self.syntax)
        if r.random() < 0.2:
            padding = write_extensions(exts, nfr, syntax=self.syntax, pad_to=len(padding) + r.randint(1, 20))
        pkt = write_packet(toc, frames, padding=padding, code=3)
        info = {"exts": exts, "payload": payload, "payload_bytes": pbytes, "nb_frames": nfr, "padding": padding}
        return pkt, info

    # -- one case --------------------------------------------------------------------------------------

    def case(self, seed: int, index: int) -> tuple[str, bytes, dict]:
        """The case ``index`` of ``seed``: (kind, bytes, parameters)."""
        r = random.Random((seed << 40) ^ index)
        kind = self._kind(r)
        params: dict[str, Any] = {}
        if kind == "random":
            data = self._random_bytes(r)
        elif kind == "mutated":
            data = self._mutate(r, r.choice(self.corpus))
        elif kind == "written":
            data, info = self._written(r)
            params["_info"] = info
        elif kind == "payload":
            if r.random() < 0.5:
                data = self._mutate_payload(r, r.choice(self.payload_corpus))
            else:
                data = bytes(r.getrandbits(8) for _ in range(r.randint(0, 120)))
            params["min_feature_frames"] = r.choice((104, 104, r.randint(-4, 110)))
            params["dred_frame_offset"] = r.randint(-8, 40)
        else:
            data = bytes(r.getrandbits(8) for _ in range(r.randint(0, 24)))
            params["ops"] = self._rc_ops(r)
        if kind in ("random", "mutated", "written"):
            params["self_delimited"] = r.random() < 0.1
            params["sampling_rate"] = r.choice(_RATES) if r.random() < 0.9 else r.randint(1, 96000)
            params["max_dred_samples"] = r.choice((None, None, r.randint(-2000, 60000)))
        return kind, data, params

    def _mutate_payload(self, r: random.Random, p: bytes) -> bytes:
        d = bytearray(p)
        if d:
            for _ in range(r.randint(0, 3)):
                d[r.randrange(len(d))] ^= 1 << r.randrange(8)
        if r.random() < 0.4:
            del d[r.randint(0, len(d)):]
        return bytes(d)

    def _rc_ops(self, r: random.Random) -> list[tuple]:
        ops = []
        for _ in range(r.randint(1, 30)):
            c = r.random()
            if c < 0.25:
                ops.append(("uint", None, r.choice((2, 3, 8, 16, 32, 256, 257, 1 << 16, (1 << 32) - 1,
                                                     r.randint(2, (1 << 32) - 1)))))
            elif c < 0.45:
                ops.append(("bits", None, r.randint(1, 24)))
            elif c < 0.6:
                ops.append(("bit_logp", None, r.randint(1, 15)))
            else:
                ops.append(("laplace_p0", None, r.randint(0, 32767), r.randint(0, 32767)))
        return ops

    def run_case(self, seed: int, index: int) -> tuple[str, str | None, Disagreement | None]:
        """Run one case: (kind, stage reached, disagreement or ``None``). Unexpected exceptions are
        returned as a disagreement of stage ``"exception"``."""
        kind, data, params = self.case(seed, index)
        shown = {k: v for k, v in params.items() if not k.startswith("_") and k != "ops"}
        if "ops" in params:
            shown["ops"] = [list(op) for op in params["ops"]]
        try:
            stage = self._compare(kind, data, params)
            return kind, stage, None
        except _Mismatch as m:
            return kind, m.stage, Disagreement(seed, index, kind, m.stage, m.detail, data.hex(), shown)
        except Exception as exc:  # noqa: BLE001 - anything else is what the campaign looks for
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            where = traceback.extract_tb(exc.__traceback__)[-1]
            detail = f"{tb} at {os.path.basename(where.filename)}:{where.lineno}"
            return kind, "exception", Disagreement(seed, index, kind, "exception", detail, data.hex(), shown)

    # -- comparisons -------------------------------------------------------------------------------------

    def _compare(self, kind: str, data: bytes, params: dict) -> str:
        if kind == "payload":
            self._cmp_payload(data, params["min_feature_frames"], params["dred_frame_offset"])
            return "payload"
        if kind == "rangecoder":
            self._cmp_rc(data, params["ops"])
            return "rangecoder"
        o = self.oracle
        sd = params.get("self_delimited", False)
        ref = o.packet_parse(data, self_delimited=sd)
        try:
            pkt = parse_packet(data, self_delimited=sd)
        except BitstreamError as exc:
            _check_error("packet", exc, data)
            if ref.ret >= 0:
                raise _Mismatch("packet", f"ours rejects ({exc}), libopus accepts ({ref.ret} frames)") from None
            pkt = None
        if pkt is not None:
            if ref.ret < 0:
                raise _Mismatch("packet", f"ours accepts ({pkt.nb_frames} frames), libopus returns {ref.ret}")
            _eq("packet", "nb_frames", pkt.nb_frames, ref.ret)
            _eq("packet", "toc", data[0], ref.toc)
            _eq("packet", "frame_offsets", pkt.frame_offsets, ref.frame_offsets)
            _eq("packet", "frames", pkt.frames, ref.frames)
            _eq("packet", "payload_offset", pkt.payload_offset, ref.payload_offset)
            _eq("packet", "length", pkt.length, ref.packet_offset)
            _eq("packet", "padding", pkt.padding, ref.padding or b"")
            if pkt.padding:
                self._cmp_extensions(pkt.padding, pkt.nb_frames)
        stage = "packet"
        if not sd:
            self._cmp_dred(data, params)
            stage = "dred"
        info = params.get("_info")
        if info is not None:
            self._cmp_written(data, info, params)
            stage = "written"
        return stage

    def _cmp_extensions(self, padding: bytes, nb_frames: int) -> None:
        ref = self.oracle.ext_parse(padding, nb_frames)
        try:
            got = parse_extensions(padding, nb_frames, syntax=self.syntax)
        except BitstreamError as exc:
            _check_error("extensions", exc, padding)
            if ref.ret != _OPUS_INVALID_PACKET:
                raise _Mismatch("extensions", f"ours rejects ({exc}), libopus returns {ref.ret}") from None
            return
        if len(got) > _EXT_CAPACITY:
            _eq("extensions", "return (more extensions than room)", _OPUS_BUFFER_TOO_SMALL, ref.ret)
            return
        if ref.ret < 0:
            raise _Mismatch("extensions", f"ours accepts {len(got)} extensions, libopus returns {ref.ret}")
        _eq("extensions", "count", len(got), ref.count)
        ours = [(e.id, e.frame, e.data, e.data_offset) for e in got]
        theirs = [(e.id, e.frame, e.data, e.offset) for e in ref.extensions]
        _eq("extensions", "extensions", ours, theirs)

    def _cmp_dred(self, data: bytes, params: dict) -> None:
        prof = self.profile
        sr = params.get("sampling_rate", 48000)
        mds = params.get("max_dred_samples")
        if mds is None:
            mds = prof.max_latents * 4 * sr // 100
        ref = self.oracle.dred_parse(data, max_dred_samples=mds, sampling_rate=sr, defer_processing=True)
        try:
            try:
                loc = find_dred_extension(data, prof)
            except BitstreamError as exc:
                _check_error("dred", exc, data)
                _eq("dred", f"return (ours: {exc})", _OPUS_INVALID_PACKET, ref.ret)
                return
            if loc is None:
                _eq("dred", "return (no DRED)", 0, ref.ret)
                _eq("dred", "dred_end (no DRED)", 0, ref.dred_end)
                return
            mff = min_feature_frames_for(mds, sr, prof.max_latents)
            key = (loc.payload, mff, loc.dred_frame_offset)
            p = self._read_cache.get(key)
            if p is None:  # mutations often leave the payload alone: read each distinct one once
                p = read_dred_payload(loc.payload, prof, min_feature_frames=mff, dred_frame_offset=loc.dred_frame_offset)
                if len(self._read_cache) >= 50_000:
                    self._read_cache.clear()
                self._read_cache[key] = p
            _eq("dred", "return", p.available_samples(sr), ref.ret)
            _eq("dred", "dred_end", p.dred_end(sr), ref.dred_end)
            _eq("dred", "nb_latents", p.nb_latents, ref.nb_latents)
            _eq("dred", "dred_offset", p.dred_offset, ref.dred_offset)
            _eq("dred", "process_stage", 1, ref.process_stage)
            if not np.array_equal(p.state, ref.state[: prof.state_dim]):
                raise _Mismatch("dred", "state differs")
            if not np.array_equal(p.latents, ref.latents[: p.nb_latents]):
                raise _Mismatch("dred", "latents differ")
        finally:
            ref.close()

    def _cmp_payload(self, data: bytes, mff: int, frame_offset: int) -> None:
        ref = self.oracle.dred_ec_decode(data, min_feature_frames=mff, dred_frame_offset=frame_offset)
        try:
            got = read_dred_payload(data, self.profile, min_feature_frames=mff, dred_frame_offset=frame_offset)
            h = ref.header
            _eq("payload", "header", (got.q0, got.dQ, got.qmax, int(got.extended_offset), got.extra_offset, got.offset),
                (h.q0, h.dQ, h.qmax, h.extra_flag, extra_offset_from_code(h.extra), h.offset))
            _eq("payload", "nb_latents", got.nb_latents, ref.ret)
            _eq("payload", "dred_offset", got.dred_offset, ref.dred_offset)
            if not np.array_equal(got.state, ref.state[: self.profile.state_dim]):
                raise _Mismatch("payload", "state differs")
            if not np.array_equal(got.latents, ref.latents[: got.nb_latents]):
                raise _Mismatch("payload", "latents differ")
        finally:
            ref.close()

    def _cmp_rc(self, data: bytes, ops: list[tuple]) -> None:
        ref = self.oracle.ec_decode(data, ops)
        dec = RangeDecoder(data)
        for i, op in enumerate(ops):
            name = op[0]
            if name == "uint":
                v = dec.dec_uint(op[2])
            elif name == "bits":
                v = dec.dec_bits(op[2])
            elif name == "bit_logp":
                v = dec.dec_bit_logp(op[2])
            else:
                v = laplace_decode_p0(dec, op[2], op[3])
            rv = ref.values[i] & 0xFFFFFFFF if name == "uint" else ref.values[i]  # the C side holds an int
            _eq("rangecoder", f"op {i} {name} value", v, rv)
            _eq("rangecoder", f"op {i} {name} tell", dec.tell(), ref.tell[i])
            _eq("rangecoder", f"op {i} {name} tell_frac", dec.tell_frac(), ref.tell_frac[i])

    def _cmp_written(self, data: bytes, info: dict, params: dict) -> None:
        """libopus reads back what our writers wrote."""
        o = self.oracle
        exts: list[Extension] = info["exts"]
        nb_frames = info["nb_frames"]
        ref = o.ext_parse(info["padding"], nb_frames)
        if ref.ret < 0:
            raise _Mismatch("written", f"libopus rejects our extensions ({ref.ret})")
        # what libopus returns is in bitstream order, ours in frame order: the same multiset per frame
        got = sorted((e.frame, e.id, e.data) for e in ref.extensions)
        _eq("written", "extensions read back", got, sorted((e.frame, e.id, e.data) for e in exts))
        if all(e.id >= (3 if self.syntax == "rte" else 2) for e in exts):
            r, gen = o.ext_generate([(e.id, e.frame, e.data) for e in exts], nb_frames=nb_frames)
            _eq("written", "opus_packet_extensions_generate bytes", write_extensions(exts, nb_frames, syntax=self.syntax).hex(),
                gen.hex() if r >= 0 else f"error {r}")
        pl: DredPayload = info["payload"]
        prof = self.profile
        h = o.dred_header(info["payload_bytes"])
        _eq("written", "DRED header", (pl.q0, pl.dQ, pl.qmax, int(pl.extended_offset), pl.extra_offset, pl.offset),
            (h.q0, h.dQ, h.qmax, h.extra_flag, extra_offset_from_code(h.extra), h.offset))
        d = o.dred_parse(data, defer_processing=True)
        try:
            n = pl.latents_q.shape[0]
            if d.nb_latents > n:
                raise _Mismatch("written", f"libopus reads {d.nb_latents} latents of {n} written")
            if d.nb_latents < n:
                # only the chunk-loop rule may cut the tail: chunks coded in under 8 bits are not read
                mine = read_dred_payload(info["payload_bytes"], prof)
                if mine.stop_reason != "bits" or 8 * mine.num_bytes - mine.end_tell > 7:
                    raise _Mismatch("written", f"libopus reads {d.nb_latents} latents of {n} written")
            tabs = self.tables
            state = dequantize(pl.state_q, tabs.state_div[pl.q0])
            if not np.array_equal(state, d.state[: prof.state_dim]):
                raise _Mismatch("written", "libopus reads another initial state than written")
            k = d.nb_latents
            lat = dequantize(pl.latents_q[:k], tabs.latent_div[pl.q_levels[:k]])
            if not np.array_equal(lat, d.latents[:k, : prof.latent_dim]):
                raise _Mismatch("written", "libopus reads other latents than written")
        finally:
            d.close()


# ---------------------------------------------------------------------------------------------------
# corpus


def real_packets(oracle, *, seconds: float = 2.0) -> list[bytes]:
    """Packets of libopus' own encoder (the oracle's build) over speech, in several configurations:
    SILK/hybrid/CELT, 10-120 ms, mono/stereo, DRED on and off, LBRR. Deterministic."""
    try:
        base16 = load_clip(None, rate=16000)
    except Exception:  # noqa: BLE001 - no corpus on this machine: a synthetic signal will do
        t = np.arange(int(16000 * 10.8)) / 16000.0
        base16 = (8000 * np.sin(2 * np.pi * (120 + 60 * np.sin(2 * np.pi * 0.7 * t)) * t)).astype(np.int16)
    n16 = int(16000 * seconds)
    pcm16 = base16[:n16]
    pcm48 = np.repeat(pcm16, 3)
    configs = [
        dict(fs=16000, bitrate=24000, frame_ms=20, dred_duration=100, loss_perc=20),
        dict(fs=16000, bitrate=16000, frame_ms=10, dred_duration=50, loss_perc=10),
        dict(fs=16000, bitrate=12000, frame_ms=60, dred_duration=104, loss_perc=30, lbrr=True),
        dict(fs=48000, bitrate=32000, frame_ms=40, dred_duration=100, loss_perc=20),
        dict(fs=48000, bitrate=64000, frame_ms=120, dred_duration=60, loss_perc=15),
        dict(fs=48000, bitrate=48000, frame_ms=20, dred_duration=30, loss_perc=5, channels=2, application="audio"),
        dict(fs=48000, bitrate=64000, frame_ms=10, application="lowdelay"),
    ]
    out: list[bytes] = []
    for c in configs:
        ch = c.pop("channels", 1)
        fs = c["fs"]
        x = pcm16 if fs == 16000 else pcm48
        if ch == 2:
            x = np.stack([x, x[::-1]], axis=1)
        c.pop("fs")
        out.extend(e.data for e in oracle.encode(x, fs=fs, channels=ch, **c))
    return out


# ---------------------------------------------------------------------------------------------------
# campaigns

_WORKER: Fuzzer | None = None


def _init_worker(profile: str, build: str) -> None:
    global _WORKER
    _WORKER = Fuzzer(profile, build)


def _run_range(args: tuple[int, int, int, int]) -> dict:
    seed, start, stop, keep = args
    assert _WORKER is not None
    return run_shard(_WORKER, seed, start, stop, keep)


def run_shard(f: Fuzzer, seed: int, start: int, stop: int, keep: int, on_disagreement=None) -> dict:
    """Run cases ``start..stop-1`` of ``seed`` on ``f``: counts by generator and last stage, the first ``keep``
    disagreements and unexpected exceptions (all counted), CPU seconds. ``on_disagreement(d)`` is called on
    each one as soon as it is found, before the case is counted (campaigns write the reproducer there)."""
    by_kind: dict[str, int] = {}
    by_stage: dict[str, int] = {}
    dis: list[Disagreement] = []
    une: list[Disagreement] = []
    nd = nu = 0
    cpu0 = time.process_time()
    for i in range(start, stop):
        kind, stage, d = f.run_case(seed, i)
        if d is not None and on_disagreement is not None:
            on_disagreement(d)
        by_kind[kind] = by_kind.get(kind, 0) + 1
        by_stage[stage] = by_stage.get(stage, 0) + 1
        if d is not None:
            if d.stage == "exception":
                nu += 1
                if len(une) < keep:
                    une.append(d)
            else:
                nd += 1
                if len(dis) < keep:
                    dis.append(d)
    return {"n": stop - start, "by_kind": by_kind, "by_stage": by_stage, "dis": dis, "une": une, "nd": nd, "nu": nu,
            "cpu": time.process_time() - cpu0}


def run_campaign(
    profile: str,
    cases: int,
    *,
    seed: int = 0,
    jobs: int = 1,
    build: str | None = None,
    chunk: int = 2000,
    keep: int = 20,
    progress=None,
) -> FuzzReport:
    """Run ``cases`` cases (indices ``0..cases-1`` of ``seed``) over ``jobs`` processes.

    ``progress(done)`` is called after each chunk. At most ``keep`` disagreements and unexpected
    exceptions are kept in the report (all are counted).
    """
    build = build or default_build(profile)
    t0 = time.perf_counter()
    ranges = [(seed, s, min(cases, s + chunk), keep) for s in range(0, cases, chunk)]
    parts: list[dict] = []
    if jobs <= 1:
        _init_worker(profile, build)
        t0 = time.perf_counter()
        for rg in ranges:
            parts.append(_run_range(rg))
            if progress:
                progress(sum(p["n"] for p in parts))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(profile, build)) as pool:
            for part in pool.imap_unordered(_run_range, ranges):
                parts.append(part)
                if progress:
                    progress(sum(p["n"] for p in parts))
            pool.close()
            pool.join()
    seconds = time.perf_counter() - t0
    by_kind: dict[str, int] = {}
    by_stage: dict[str, int] = {}
    dis: list[Disagreement] = []
    une: list[Disagreement] = []
    nd = nu = 0
    for p in parts:
        for k, v in p["by_kind"].items():
            by_kind[k] = by_kind.get(k, 0) + v
        for k, v in p["by_stage"].items():
            by_stage[k] = by_stage.get(k, 0) + v
        dis.extend(p["dis"])
        une.extend(p["une"])
        nd += p["nd"]
        nu += p["nu"]
    dis.sort(key=lambda d: d.index)
    une.sort(key=lambda d: d.index)
    cpu = sum(p["cpu"] for p in parts)
    return FuzzReport(profile, build, seed, cases, seconds, jobs, by_kind, by_stage, dis[:keep], une[:keep], nd, nu, cpu)


def run_case(profile: str, seed: int, index: int, build: str | None = None) -> tuple[str, str | None, Disagreement | None]:
    """Replay one case alone (same bytes and parameters as in the campaign)."""
    return Fuzzer(profile, build).run_case(seed, index)
