"""The vector generator: the canonical suite's cases, per profile, deterministic.

Inputs come from three places, each recorded in a case's provenance:

* the libopus encoder of the profile's build, through the oracle, on real recorded speech
  (``speech_grid``: a grid of encoder settings, with and without DRED);
* opus-dred's own writers (``writer_edges``: framings, extensions and DRED payloads libopus never emits);
* seeded pseudo-random generators (``basic`` range-coder operations, ``patterns`` of arrivals and losses,
  ``mutations`` of valid bytes);
* real recorded speech with digital silence around it (``encoder``: the PCM the encoder handlers take);
* the packets of another profile's writer and encoder (``cross_version``: another version's DRED is no DRED);
* real recorded speech and the reference feature extractor's features of it (``listening``: the vocoder's and
  the PLC's inputs).

Expected values are always computed by :mod:`opus_dred.vectors._expected` (the reference), never copied from
libopus. What libopus does with an ``invalid`` case's bytes is recorded in its provenance, as information.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from opus_dred import __version__
from opus_dred.bitstream._arith import compute_quantizer, extra_offset_from_code, qmax_is_coded
from opus_dred.bitstream._dred import (
    DredPayload,
    coding_tables,
    dred_extension_data,
    read_dred_payload,
    write_dred_payload,
)
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import Extension, find_dred_extension, id_byte, write_extensions
from opus_dred.bitstream._packet import Toc, parse_packet, write_packet
from opus_dred.bitstream._profiles import get_profile
from opus_dred.libopus._oracle import Oracle, error_name
from opus_dred.libopus._upstream import PINS, build_for_profile, status
from opus_dred.refimpl._receiver import POLICIES
from opus_dred.speech._corpus import list_clips, load_clip
from opus_dred.vectors._checks import CHECKED_HANDLERS, case_checks
from opus_dred.vectors._expected import parse_layer
from opus_dred.vectors._handlers import expected_for
from opus_dred.vectors._format import Part, write_case, write_manifest

SEED = 20250101
#: The real-speech clip the grid encodes (docs/vectors.md): codec2's 16 kHz reference speech.
GRID_CLIP = "codec2-speech-orig-16k"
#: Leading digital silence before the speech (so that one picked packet follows silence), and speech length.
SILENCE_S = 0.5
SPEECH_S = 3.0


def generator_name() -> str:
    return f"opus-dred {__version__}"


def _case(profile, handler, suite, name, description, inputs, parameters, provenance) -> dict:
    expected, tolerance = expected_for(handler, profile, _load_inputs(inputs), parameters)
    case = {"profile": profile, "handler": handler, "suite": suite, "case": name, "description": description,
            "inputs": inputs, "parameters": parameters, "expected": expected, "tolerance": tolerance,
            "provenance": {"generator": generator_name(),
                           "expected_from": "opus-dred reference (bitstream layer + refimpl, numerics libopus-avx2)",
                           **provenance}}
    if handler in CHECKED_HANDLERS:  # which fields are normative, which libopus API behaviour (vectors._checks)
        case["checks"] = case_checks(handler, profile, _load_inputs(inputs), parameters, expected)
    return case


def _load_inputs(inputs: dict) -> dict:
    """The values of ``inputs`` as a loaded case would hold them (Part → value)."""
    return {k: (v.value if isinstance(v, Part) else v) for k, v in inputs.items()}


# ----------------------------------------------------------------------------------------------------------
# range_coder/basic
# ----------------------------------------------------------------------------------------------------------
def _random_ops(rng: np.random.Generator, n: int) -> list[dict]:
    ops: list[dict] = []
    for _ in range(n):
        k = int(rng.integers(0, 6))
        if k == 0:
            ft = int(rng.choice([2, 3, 16, 255, 256, 1000, 65536, 1 << 20, (1 << 32) - 1]))
            ops.append({"op": "uint", "value": int(rng.integers(0, ft)), "ft": ft})
        elif k == 1:
            bits = int(rng.integers(1, 26))
            ops.append({"op": "bits", "value": int(rng.integers(0, 1 << bits)), "bits": bits})
        elif k == 2:
            ft = int(rng.integers(2, 1 << 15))
            fl = int(rng.integers(0, ft))
            fh = int(rng.integers(fl + 1, ft + 1))
            ops.append({"op": "encode", "fl": fl, "fh": fh, "ft": ft})
        elif k == 3:
            ftb = int(rng.integers(4, 9))
            cuts = sorted(set(int(x) for x in rng.integers(1, 1 << ftb, 4)))
            icdf = [(1 << ftb) - c for c in cuts] + [0]
            icdf = sorted(set(icdf), reverse=True)
            ops.append({"op": "icdf", "value": int(rng.integers(0, len(icdf))), "icdf": icdf, "ftb": ftb})
        elif k == 4:
            ops.append({"op": "laplace_p0", "value": int(rng.integers(-6, 7)), "p0": int(rng.integers(1, 255)) << 7,
                        "decay": int(rng.integers(1, 255)) << 7})
        else:
            ops.append({"op": "bit_logp", "value": int(rng.integers(0, 2)), "logp": int(rng.integers(1, 16))})
    return ops


def _range_coder(profile: str) -> Iterator[dict]:
    for i, (n, size) in enumerate([(8, 64), (40, 256), (200, 1275), (60, 24)]):
        seed = SEED + i
        ops = _random_ops(np.random.default_rng(seed), n)
        prov = {"inputs_from": "seeded pseudo-random operations", "seed": seed}
        enc = _case(profile, "range_coder", "basic", f"enc{i:02d}",
                    f"{n} random operations encoded into {size} bytes", {"ops": Part("ops.json", ops)},
                    {"direction": "encode", "size": size}, prov)
        yield enc
        stream = enc["expected"]["stream"].value
        if enc["expected"]["error"]:
            continue
        dec_ops = [{k: v for k, v in op.items() if k != "value"} for op in ops]
        yield _case(profile, "range_coder", "basic", f"dec{i:02d}", f"decoding the {n} operations of enc{i:02d}",
                    {"ops": Part("ops.json", dec_ops), "stream": Part("stream.bin", stream)},
                    {"direction": "decode"}, prov)


# ----------------------------------------------------------------------------------------------------------
# speech_grid
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GridPoint:
    sample_rate: int = 16000
    frame_ms: int = 20
    bitrate: int = 24000
    loss_perc: int = 20
    dred_duration: int = 100
    lbrr: bool = False
    complexity: int = 10
    vbr: bool = True

    @property
    def name(self) -> str:
        return (f"sr{self.sample_rate}_f{self.frame_ms}_br{self.bitrate}_loss{self.loss_perc}_dred{self.dred_duration}"
                f"_lbrr{int(self.lbrr)}_cx{self.complexity}" + ("" if self.vbr else "_cbr"))

    def encoder(self) -> dict:
        return {"sample_rate": self.sample_rate, "frame_ms": self.frame_ms, "bitrate": self.bitrate,
                "loss_perc": self.loss_perc, "dred_duration": self.dred_duration, "lbrr": self.lbrr,
                "complexity": self.complexity, "vbr": self.vbr, "application": "voip", "channels": 1}


_B = GridPoint()
#: The encoder grid: one base point and variations of one setting each.
GRID: tuple[GridPoint, ...] = tuple(dict.fromkeys([
    _B,
    *(replace(_B, bitrate=b) for b in (6000, 12000, 16000, 20000, 32000, 48000, 64000)),
    *(replace(_B, frame_ms=f) for f in (10, 40, 60)),
    *(replace(_B, sample_rate=48000, bitrate=b) for b in (24000, 32000, 64000)),
    replace(_B, sample_rate=48000, frame_ms=10, bitrate=32000),
    replace(_B, sample_rate=48000, frame_ms=60, bitrate=32000),
    *(replace(_B, sample_rate=r) for r in (8000, 12000)),
    *(replace(_B, dred_duration=d) for d in (0, 10, 50, 104)),
    *(replace(_B, loss_perc=p) for p in (0, 5, 50)),
    *(replace(_B, lbrr=True, bitrate=b) for b in (24000, 32000, 64000)),
    *(replace(_B, complexity=c) for c in (0, 5, 7)),
    replace(_B, vbr=False, bitrate=32000),
]))


def _speech(rate: int) -> tuple[np.ndarray, dict]:
    clip = next(c for c in list_clips() if c.id == GRID_CLIP)
    if rate in (16000, 48000):
        speech = load_clip(GRID_CLIP, rate=rate)[: int(SPEECH_S * rate)]
    else:  # 8 and 12 kHz: polyphase resampling of the 16 kHz clip (scipy.signal.resample_poly)
        from scipy.signal import resample_poly  # lazy: scipy is slow to import

        x = load_clip(GRID_CLIP, rate=16000)[: int(SPEECH_S * 16000)].astype(np.float64)
        g = np.gcd(rate, 16000)
        speech = np.clip(np.round(resample_poly(x, rate // g, 16000 // g)), -32768, 32767).astype(np.int16)
    pcm = np.concatenate([np.zeros(int(SILENCE_S * rate), np.int16), speech.astype(np.int16)])
    info = {"clip": clip.id, "package": clip.package, "package_version": clip.version, "file": clip.file,
            "licence": clip.licence, "pcm_sha256": clip.pcm_sha256, "leading_silence_s": SILENCE_S,
            "speech_s": SPEECH_S, "input_sha256": hashlib.sha256(pcm.astype("<i2").tobytes()).hexdigest()}
    return pcm, info


def encode_stream(profile: str, gp: GridPoint):
    """Encode the grid clip at ``gp`` with the profile's libopus build (oracle) → (packets, speech info)."""
    pcm, info = _speech(gp.sample_rate)
    enc = Oracle.for_build(build_for_profile(profile)).encode(
        pcm, fs=gp.sample_rate, bitrate=gp.bitrate, frame_ms=gp.frame_ms, complexity=gp.complexity,
        dred_duration=gp.dred_duration, loss_perc=gp.loss_perc, lbrr=gp.lbrr, vbr=gp.vbr, application="voip")
    return enc, info


def _pick(profile: str, packets: list[bytes], gp: GridPoint) -> tuple[list[tuple[str, int]], int]:
    """Packets to keep: (role, index). First DRED packet, first after the silence, one mid-speech."""
    prof = get_profile(profile)
    dred = [i for i, p in enumerate(packets) if find_dred_extension(p, prof) is not None]
    n = len(packets)
    speech_start = int(round(SILENCE_S * 1000 / gp.frame_ms))
    if not dred:
        return [("nodred", n // 2)], 0
    picks = [("first", dred[0])]
    after = next((i for i in dred if i >= speech_start + 2), None)
    if after is not None and after != dred[0]:
        picks.append(("speech", after))
    mid = next((i for i in dred if i >= (speech_start + n) // 2), None)
    if mid is not None and mid not in [p for _, p in picks]:
        picks.append(("mid", mid))
    return picks, len(dred)


def _speech_grid(profile: str, *, only: str | None = None) -> Iterator[dict]:
    prof = get_profile(profile)
    full = prof.max_latents * 4  # 10 ms frames: the largest request that changes anything
    for gp in GRID:
        encoded, speech = encode_stream(profile, gp)
        packets = [e.data for e in encoded]
        picks, nb_dred = _pick(profile, packets, gp)
        sr = gp.sample_rate
        prov = {"inputs_from": f"{profile} encoder through the oracle", "speech": speech, "encoder": gp.encoder(),
                "stream_packets": len(packets), "stream_dred_packets": nb_dred,
                "stream_sha256": hashlib.sha256(b"".join(len(p).to_bytes(4, "big") + p for p in packets)).hexdigest(),
                "seed": 0}
        for j, (role, idx) in enumerate(picks):
            pkt = Part("packet.bin", packets[idx])
            base = f"{gp.name}.p{idx:04d}"
            pprov = {**prof_pick(prov, idx, role), "dred_present": nb_dred > 0}
            what = f"packet {idx} ({role}) of real speech, {profile} encoder, {gp.name}"
            if j == 0:
                yield _case(profile, "packet", "speech_grid", base, what, {"packet": pkt}, {"self_delimited": False},
                            pprov)
            yield _case(profile, "dred_payload", "speech_grid", base, what, {"packet": pkt},
                        {"max_dred_samples": full * sr // 100, "sampling_rate": sr}, pprov)
            requests = [2 * sr // 100, sr // 2, full * sr // 100] if j == 0 else [full * sr // 100]
            if role == "nodred":
                requests = [full * sr // 100]
            for m in requests:
                yield _case(profile, "dred_features", "speech_grid", f"{base}.m{m}",
                            f"{what}; max_dred_samples {m} at {sr} Hz", {"packet": pkt},
                            {"max_dred_samples": m, "sampling_rate": sr}, pprov)


def prof_pick(prov: dict, idx: int, role: str) -> dict:
    return {**prov, "packet_index": idx, "pick": role}


# ----------------------------------------------------------------------------------------------------------
# writer_edges: packets our writer builds
# ----------------------------------------------------------------------------------------------------------
def _base_payload(profile: str):
    """A real DRED payload (mid-speech packet of the base grid point) and the packet's TOC and SILK frame."""

    prof = get_profile(profile)
    encoded, speech = encode_stream(profile, _B)
    packets = [e.data for e in encoded]
    picks, _ = _pick(profile, packets, _B)
    idx = dict(picks).get("mid", picks[-1][1])
    pkt = packets[idx]
    loc = find_dred_extension(pkt, prof)
    payload = read_dred_payload(loc.payload, prof, dred_frame_offset=loc.dred_frame_offset)
    parsed = parse_packet(pkt)
    return payload, parsed.toc, parsed.frames[0], {"speech": speech, "encoder": _B.encoder(), "packet_index": idx}


def _codable(prof, state_q, latents_q, q0: int, dQ: int, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero the values the statistics of their quantizer level give zero probability."""
    t = coding_tables(prof)
    s = np.array(state_q, np.int32)
    s[[i for i, par in enumerate(t.state[q0]) if par is None]] = 0
    lat = np.array(latents_q, np.int32)
    for k in range(lat.shape[0]):
        lvl = compute_quantizer(q0, dQ, qmax, k, prof.dq_table)
        lat[k, [i for i, par in enumerate(t.latent[lvl]) if par is None]] = 0
    return s, lat


def _dred_ext_data(prof, payload, **changes) -> bytes:
    p = DredPayload(profile=prof.name, q0=payload.q0, dQ=payload.dQ, qmax=payload.qmax,
                    extended_offset=payload.extended_offset, extra_offset=payload.extra_offset, offset=payload.offset,
                    state_q=payload.state_q, latents_q=payload.latents_q)
    p = replace(p, **changes)  # an unknown field name raises
    p.q_levels = np.zeros(0, np.int32)
    p.state_q, p.latents_q = _codable(prof, p.state_q, p.latents_q, p.q0, p.dQ, p.qmax)
    return dred_extension_data(write_dred_payload(p, prof), prof)


def _writer_edges(profile: str) -> Iterator[dict]:

    prof = get_profile(profile)
    base, toc, frame, src = _base_payload(profile)
    eid = prof.extension_id
    rte = prof.extension_syntax == "rte"
    lat = np.asarray(base.latents_q)
    many = np.concatenate([lat] * (-(-prof.max_latents // max(1, lat.shape[0]))))[: prof.max_latents]
    prov = {"inputs_from": "opus-dred writer (bitstream.packet/extensions/dred), values of a real payload",
            "source_payload": src, "seed": 0}

    def packet(exts, nb_frames=1, frames=None) -> bytes:
        frames = frames if frames is not None else [frame] * nb_frames
        pad = write_extensions(exts, len(frames), syntax=prof.extension_syntax)
        return write_packet(Toc(toc.config, toc.stereo, 3), frames, padding=pad, code=3)

    d = lambda **kw: _dred_ext_data(prof, base, **kw)  # noqa: E731
    cases: list[tuple[str, str, bytes]] = [
        ("max_latents", f"{prof.max_latents} latent chunks (the most a payload holds)",
         packet([Extension(eid, 0, d(latents_q=many))])),
        ("max_latents_q0_0_dq0", "26 chunks at the finest quantizer, dQ 0",
         packet([Extension(eid, 0, d(latents_q=many, q0=0, dQ=0, qmax=15))])),
        ("q0_15", "q0 15 (qmax not coded)", packet([Extension(eid, 0, d(q0=15, dQ=3, qmax=15))])),
        ("dq7_qmax14", "dQ 7, qmax 14", packet([Extension(eid, 0, d(q0=4, dQ=7, qmax=14))])),
        ("off0", "offset field 0 (dred_offset 16)", packet([Extension(eid, 0, d(offset=0, extended_offset=False, extra_offset=0))])),
        ("off31", "offset field 31 (negative dred_offset)",
         packet([Extension(eid, 0, d(offset=31, extended_offset=False, extra_offset=0))])),
        ("extended_extra0", "extended offset flag with extra 0",
         packet([Extension(eid, 0, d(extended_offset=True, extra_offset=0, offset=8))])),
        ("extended_extra1", "extended offset, extra 1 (32 units further back)",
         packet([Extension(eid, 0, d(extended_offset=True, extra_offset=extra_offset_from_code(1), offset=0))])),
        ("extended_extra255", "extended offset, extra 255 (coverage entirely in the past)",
         packet([Extension(eid, 0, d(extended_offset=True, extra_offset=extra_offset_from_code(255), offset=31))])),
        ("no_latents", "a payload with the state and no latent", packet([Extension(eid, 0, d(latents_q=lat[:0]))])),
        ("prefix_only", "a DRED extension holding only the 'D', version prefix (no DRED)",
         packet([Extension(eid, 0, bytes(prof.experimental_prefix))])),
        ("wrong_version_then_dred", "a DRED-id extension of another version, then the real one",
         packet([Extension(eid, 0, b"D" + bytes([(prof.dred_version + 1) & 0xFF]) + d()[2:]),
                 Extension(eid, 0, d(offset=3))])),
        ("two_dred", "two DRED extensions in frame 0 (the first counts)",
         packet([Extension(eid, 0, d(offset=2)), Extension(eid, 0, d(offset=9))])),
        ("dred_frame2_of3", "DRED only in the last frame of a 3-frame packet",
         packet([Extension(eid, 2, d())], nb_frames=3)),
        ("dred_every_frame", "DRED in every frame of a 3-frame packet",
         packet([Extension(eid, f, d(offset=f + 1)) for f in range(3)], nb_frames=3)),
        ("long_ext_before", "a 300-byte long extension (id 33) and a short one (id 5) before DRED",
         packet([Extension(33, 0, bytes(range(256)) + bytes(44)), Extension(5, 0, b"\x07"), Extension(eid, 0, d())])),
        ("many_exts_after", "DRED followed by ten other extensions",
         packet([Extension(eid, 0, d())] + [Extension(3 + i, 0, bytes([i])) for i in range(10)])),
    ]
    if rte:
        cases.append(("rte_repeated", "the same extensions in every frame of a 4-frame packet (RTE repeat)",
                      packet([e for f in range(4) for e in (Extension(7, f, b"\x01"), Extension(eid, f, d()))],
                             nb_frames=4)))
    sr = 48000
    for name, what, pkt in cases:
        for m, tag in ((prof.max_latents * 4 * sr // 100, "full"), (sr // 10, "m100ms")):
            yield _case(profile, "dred_features", "writer_edges", f"{name}.{tag}", what, {"packet": Part("packet.bin", pkt)},
                        {"max_dred_samples": m, "sampling_rate": sr}, prov)
        yield _case(profile, "dred_payload", "writer_edges", name, what, {"packet": Part("packet.bin", pkt)},
                    {"max_dred_samples": prof.max_latents * 4 * sr // 100, "sampling_rate": sr}, prov)
        yield _case(profile, "packet", "writer_edges", name, what, {"packet": Part("packet.bin", pkt)},
                    {"self_delimited": False}, prov)

    # packet framings
    t = Toc(toc.config, toc.stereo, 0)
    f2 = frame[: len(frame) // 2]
    framings = [
        ("code0", write_packet(t, [frame])),
        ("code1", write_packet(t, [f2, f2])),
        ("code2", write_packet(t, [frame, f2])),
        ("code3_cbr", write_packet(t, [f2, f2, f2], code=3)),
        ("code3_vbr_pad", write_packet(t, [frame, f2, f2], padding=b"\x01" * 300, code=3)),
        ("code3_pad_chain", write_packet(t, [f2], padding=b"\x01" * 254, padding_chain=[255, 0], code=3)),
        ("code3_empty_frames", write_packet(t, [b"", b"", b""], code=3)),
        ("self_delimited_code0", write_packet(t, [frame], self_delimited=True)),
        ("self_delimited_code3", write_packet(t, [frame, f2], code=3, self_delimited=True)),
    ]
    for name, pkt in framings:
        yield _case(profile, "packet", "writer_edges", name, f"framing: {name}", {"packet": Part("packet.bin", pkt)},
                    {"self_delimited": name.startswith("self_delimited")}, prov)

    # extensions, both directions
    ext_sets = [
        ("short_long_mix", 3, [Extension(5, 0, b""), Extension(6, 0, b"\x11"), Extension(40, 1, bytes(300)),
                               Extension(eid, 2, d())]),
        ("frame_skip", 20, [Extension(9, 0, b"\x01"), Extension(9, 17, b"\x02"), Extension(9, 19, b"\x03")]),
        ("long_last_no_length", 2, [Extension(4, 0, b"\x05"), Extension(100, 1, bytes(range(200)))]),
        ("repeated_all_frames", 6, [e for f in range(6) for e in (Extension(8, f, b"\xaa"), Extension(50, f, b"xyz"))]),
    ]
    for name, nbf, exts in ext_sets:
        ext_json = [{"id": e.id, "frame": e.frame, "data": e.data.hex()} for e in exts]
        gen = _case(profile, "extensions", "writer_edges", f"{name}.generate", f"generate: {name}",
                    {"extensions": Part("extensions.json", ext_json)},
                    {"direction": "generate", "nb_frames": nbf, "pad_to": None}, prov)
        yield gen
        pad = gen["expected"]["padding"].value
        yield _case(profile, "extensions", "writer_edges", f"{name}.parse", f"parse: {name}",
                    {"padding": Part("padding.bin", pad)}, {"direction": "parse", "nb_frames": nbf}, prov)
        padded = write_extensions(exts, nbf, syntax=prof.extension_syntax, pad_to=len(pad) + 7)
        yield _case(profile, "extensions", "writer_edges", f"{name}.padded.parse", f"parse: {name} after 7 padding bytes",
                    {"padding": Part("padding.bin", padded)}, {"direction": "parse", "nb_frames": nbf}, prov)


# ----------------------------------------------------------------------------------------------------------
# receiver/patterns
# ----------------------------------------------------------------------------------------------------------
#: the profiles shipped with opus-dred (the other-version DRED of the ``limits`` suite comes from one of them)
PACKAGED_PROFILES = ("libopus-1.5.2", "libopus-1.6.1")


def _own_policy(profile: str) -> str:
    """The opus_demo policy of a profile's release (``opus_demo-<release>``); a derived profile without one takes
    the policy of the release its inputs' build comes from, else the newest pinned release's."""
    for release in (profile.split("-", 1)[-1], str(status(build_for_profile(profile)).get("release"))):
        if f"opus_demo-{release}" in POLICIES:
            return f"opus_demo-{release}"
    return f"opus_demo-{max(PINS)}"


def _receiver(profile: str) -> Iterator[dict]:

    prof = get_profile(profile)
    gp = replace(_B, lbrr=True, bitrate=32000)
    encoded, speech = encode_stream(profile, gp)
    packets = [e.data for e in encoded][:60]
    oracle = Oracle.for_build(build_for_profile(profile))
    sr = gp.sample_rate
    info = []
    for p in packets:

        loc = find_dred_extension(p, prof)
        nl, off = 0, 0
        if loc is not None:
            pl = read_dred_payload(loc.payload, prof, dred_frame_offset=loc.dred_frame_offset)
            nl, off = pl.nb_latents, pl.dred_offset
        info.append({"samples": sr * gp.frame_ms // 1000, "has_lbrr": bool(oracle.packet_has_lbrr(p)),
                     "dred_latents": nl, "dred_offset": off})
    own_policy = _own_policy(profile)
    patterns: list[tuple[str, list[int]]] = [
        ("single_loss", [10]), ("burst3", [10, 11, 12]), ("burst12", list(range(20, 32))),
        ("leading", [0, 1]), ("trailing", [57, 58, 59]), ("alternate", list(range(30, 50, 2))),
    ]
    for i in range(3):
        rng = np.random.default_rng(SEED + 100 + i)
        patterns.append((f"bernoulli{i}", [int(x) for x in np.flatnonzero(rng.random(len(packets)) < 0.2)]))
    for name, lost in patterns:
        lost_set = set(lost)
        events: list[dict] = []
        for s in range(len(packets)):
            events.append({"type": "lost", "seq": s} if s in lost_set else {"type": "arrived", "seq": s, **info[s]})
        events.append({"type": "end"})
        for policy, depth in ((own_policy, 0), ("best", 0), ("best", 2)):
            seed = {"seed": SEED + 100 + int(name[-1])} if name.startswith("bernoulli") else {"seed": 0}
            yield _case(profile, "receiver", "patterns", f"{name}.{policy}.d{depth}",
                        f"loss pattern {name}: frames {lost[:12]}{'…' if len(lost) > 12 else ''}; policy {policy}, depth {depth}",
                        {"events": Part("events.json", events)},
                        {"policy": policy, "sampling_rate": sr, "jitter_depth": depth},
                        {"inputs_from": f"packet facts of {profile} encoder output (oracle), loss pattern",
                         "speech": speech, "encoder": gp.encoder(), **seed})


# ----------------------------------------------------------------------------------------------------------
# invalid/mutations
# ----------------------------------------------------------------------------------------------------------
def _libopus_says(profile: str, layer: str, data: bytes, params: dict) -> dict | None:
    o = Oracle.for_build(build_for_profile(profile))
    if layer == "packet":
        r = o.packet_parse(data, self_delimited=bool(params.get("self_delimited"))).ret
        fn = "opus_packet_parse_impl"
    elif layer == "extensions":
        r = o.ext_parse(data, int(params.get("nb_frames", 48))).ret
        fn = "opus_packet_extensions_parse"
    elif layer == "dred":
        r = o.dred_parse(data, max_dred_samples=params.get("max_dred_samples"),
                         sampling_rate=int(params.get("sampling_rate", 48000))).ret
        fn = "opus_dred_parse"
    else:
        return None
    return {"function": fn, "return": int(r), "name": error_name(r) if r < 0 else "OK"}


def _invalid(profile: str) -> Iterator[dict]:

    prof = get_profile(profile)
    base, toc, frame, src = _base_payload(profile)
    eid = prof.extension_id
    t0 = Toc(toc.config, toc.stereo, 0).to_byte()
    c3 = Toc(toc.config, toc.stereo, 3).to_byte()
    dred = _dred_ext_data(prof, base)
    good = write_packet(Toc(toc.config, toc.stereo, 3), [frame],
                        padding=write_extensions([Extension(eid, 0, dred)], 1, syntax=prof.extension_syntax), code=3)
    hand: list[tuple[str, str, bytes, dict]] = [
        ("packet", "empty", b"", {}),
        ("packet", "code1_odd", bytes([t0 | 1]) + frame[:5], {}),
        ("packet", "code2_len_past_end", bytes([t0 | 2, 250]) + frame[:10], {}),
        ("packet", "code3_no_count", bytes([c3]), {}),
        ("packet", "code3_zero_frames", bytes([c3, 0]), {}),
        ("packet", "code3_over_120ms", bytes([c3, 49]) + bytes(49), {}),
        ("packet", "code3_padding_past_end", bytes([c3, 0x41, 200]) + frame[:20], {}),
        ("packet", "code3_cbr_uneven", bytes([c3, 3]) + frame[:10], {}),
        ("packet", "frame_over_1275", bytes([t0 | 2, 255, 255]) + bytes(1400), {}),
        ("packet", "self_delimited_short", bytes([t0, 100]) + frame[:20], {"self_delimited": True}),
        ("extensions", "long_len_past_end", bytes([(40 << 1) | 1, 200]) + bytes(10), {"nb_frames": 1}),
        ("extensions", "short_past_end", bytes([(5 << 1) | 1]), {"nb_frames": 1}),
        ("extensions", "separator_beyond_frames", bytes([0x06, 0x01, 0x03, 60, 0x06, 0x02]), {"nb_frames": 2}),
        ("extensions", "frame_increment_past_end", bytes([0x02] * 5 + [0x06, 0x01]), {"nb_frames": 3}),
        ("dred", "dred_after_bad_extension", bytes([c3, 0x41]) + bytes([4 + len(dred)]) + frame
         + bytes([(40 << 1) | 1, 255]) + dred[:2], {"sampling_rate": 48000}),
        ("dred_stream", "odd_chunks", (3).to_bytes(4, "big") + (5).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(4), {}),
        ("dred_stream", "q0_16", (16).to_bytes(4, "big") + (2).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(4), {}),
        ("dred_stream", "truncated", (3).to_bytes(4, "big") + (2).to_bytes(4, "big") + (40).to_bytes(4, "big") + bytes(4), {}),
        ("dred_stream", "header_short", bytes(7), {}),
    ]
    rng = np.random.default_rng(SEED + 7)
    found = 0
    for trial in range(400):
        if found >= 12:
            break
        data = bytearray(good)
        kind = trial % 3
        if kind == 0:
            data = data[: int(rng.integers(1, len(data)))]
        elif kind == 1:
            pos = int(rng.integers(0, min(len(data), 8)))
            data[pos] = int(rng.integers(0, 256))
        else:
            pos = int(rng.integers(len(data) - len(dred) - 4, len(data)))
            data[pos] ^= 1 << int(rng.integers(0, 8))
        layer = "dred"
        params = {"sampling_rate": 48000}
        try:
            parse_layer(profile, layer, bytes(data), params)
            continue
        except BitstreamError:
            pass
        hand.append((layer, f"mutation{trial:03d}", bytes(data), {**params, "seed": SEED + 7}))
        found += 1
    seen = set()
    for layer, name, data, params in hand:
        params = dict(params)
        seed = params.pop("seed", 0)
        params["layer"] = layer
        try:
            parse_layer(profile, layer, data, params)
            continue  # the reference accepts these bytes for this profile: not an invalid case here
        except BitstreamError:
            pass
        if (layer, data) in seen:
            continue
        seen.add((layer, data))
        prov = {"inputs_from": "hand-written bytes" if seed == 0 else "seeded mutation of a valid DRED packet",
                "seed": seed, "libopus": _libopus_says(profile, layer, data, params)}
        yield _case(profile, "invalid", "mutations", f"{layer}.{name}", f"{layer}: {name}",
                    {"data": Part("data.bin", data)}, params, prov)


# ----------------------------------------------------------------------------------------------------------
# limits: what a decoder must accept (or reject) at every limit of the syntax, made with our writers
# (docs/limits.md lists each limit with its source and cases)
# ----------------------------------------------------------------------------------------------------------
LIMITS_SEED = SEED + 500
#: TOC configs (RFC 6716 §3.1, Table 2): SILK WB 20 ms carries the DRED cases; CELT FB 2.5/5/10/20 ms and
#: SILK WB 40/60 ms make the 120 ms packets
_SILK_WB_20MS, _SILK_WB_40MS, _SILK_WB_60MS = 9, 10, 11
_CELT_FB = {"2p5ms": 28, "5ms": 29, "10ms": 30, "20ms": 31}
_LIMIT_SR = 48000
_LIMIT_PROV = {"inputs_from": "opus-dred writers (bitstream packet/extensions/dred) and hand-written bytes",
               "seed": LIMITS_SEED}


def _limit_frame(size: int, salt: int = 0) -> bytes:
    """Deterministic frame bytes (their content is never decoded by these cases)."""
    return bytes((37 * i + 11 * salt + 5) & 0xFF for i in range(size))


def _limit_values(prof, nb_chunks: int, seed: int, amp: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded quantized state and latents in [-amp, amp]."""
    rng = np.random.default_rng(LIMITS_SEED + seed)
    state = rng.integers(-amp, amp + 1, prof.state_dim)
    lat = rng.integers(-amp, amp + 1, (nb_chunks, prof.latent_dim))
    return state, lat


def _limit_payload(prof, *, q0=6, dQ=3, qmax=15, extended=False, extra_code=0, offset=4, chunks=8, amp=2,
                   seed=0) -> bytes:
    """A DRED payload (range-coded bytes, no prefix) with every header field given."""
    state, lat = _limit_values(prof, chunks, seed, amp)
    p = DredPayload(profile=prof.name, q0=q0, dQ=dQ, qmax=qmax, extended_offset=extended,
                    extra_offset=extra_offset_from_code(extra_code), offset=offset, state_q=state, latents_q=lat)
    p.state_q, p.latents_q = _codable(prof, p.state_q, p.latents_q, q0, dQ, qmax)
    return write_dred_payload(p, prof)


def _dred_data(prof, payload: bytes, version: int | None = None) -> bytes:
    """The DRED extension's data: ``'D'``, the version (the profile's unless given), the payload."""
    v = prof.dred_version if version is None else version
    return bytes(prof.experimental_prefix[:1]) + bytes([v]) + payload


def _dred_packet(prof, exts, nb_frames: int = 1, config: int = _SILK_WB_20MS, syntax: str | None = None) -> bytes:
    pad = write_extensions(exts, nb_frames, syntax=syntax or prof.extension_syntax)
    frames = [_limit_frame(40, i) for i in range(nb_frames)]
    return write_packet(Toc(config, False, 3), frames, padding=pad, code=3)


def _limit_case(profile: str, layer: str, name: str, what: str, data: bytes, params: dict, prov: dict) -> dict:
    """The case for ``data`` read as ``layer`` by the profile: the layer's handler where the reference accepts
    it, ``invalid`` where it rejects it (so the same bytes can be accepted by one profile, rejected by the other)."""
    handler = {"packet": "packet", "extensions": "extensions", "dred": "dred_payload"}[layer]
    try:
        parse_layer(profile, layer, data, {"layer": layer, **params})
    except BitstreamError:
        params = {**params, "layer": layer}
        return _case(profile, "invalid", "limits", name, what, {"data": Part("data.bin", data)}, params,
                     {**prov, "libopus": _libopus_says(profile, layer, data, params)})
    key = {"packet": "packet", "extensions": "padding", "dred": "packet"}[layer]
    return _case(profile, handler, "limits", name, what, {key: Part(f"{key}.bin", data)}, params, prov)


def _limits_packets() -> list[tuple[str, str, bytes, bool]]:
    """(name, what, bytes, self_delimited): RFC 6716 §3.2 framings at their limits."""
    big = _limit_frame(1275)
    out: list[tuple[str, str, bytes, bool]] = []
    counts = [("48x2p5ms", _CELT_FB["2p5ms"], 48), ("24x5ms", _CELT_FB["5ms"], 24), ("12x10ms", _CELT_FB["10ms"], 12),
              ("6x20ms", _CELT_FB["20ms"], 6), ("3x40ms", _SILK_WB_40MS, 3), ("2x60ms", _SILK_WB_60MS, 2)]
    for tag, cfg, n in counts:
        out.append((f"code3_cbr_{tag}", f"code 3 CBR, {n} frames: 120 ms, the longest packet",
                    write_packet(Toc(cfg, False, 3), [_limit_frame(10, i) for i in range(n)], code=3, vbr=False), False))
        over = bytes([Toc(cfg, False, 3).to_byte(), n + 1]) + bytes(10 * (n + 1))
        out.append((f"code3_over_120ms_{n + 1}x{tag.split('x')[1]}", f"code 3, {n + 1} frames: over 120 ms (R5)", over, False))
    t28 = Toc(_CELT_FB["2p5ms"], False, 3)
    edges = [0, 1, 251, 252, 253, 254, 255, 256, 1019, 1020, 1023, 1024, 1275]
    sizes = edges + [0] * (48 - len(edges))
    out += [
        ("code0_1275", "code 0, one frame of 1275 bytes (the largest frame)", write_packet(Toc(9, False, 0), [big]), False),
        ("code0_1276", "code 0, an implicit frame of 1276 bytes (R2)", bytes([Toc(9, False, 0).to_byte()]) + _limit_frame(1276), False),
        ("code1_2x1275", "code 1, two frames of 1275 bytes", write_packet(Toc(9, False, 0), [big, big], code=1), False),
        ("code1_2x1276", "code 1, two frames of 1276 bytes (R2)", bytes([Toc(9, False, 1).to_byte()]) + bytes(2552), False),
        ("code2_1275_1275", "code 2, 1275 + 1275 bytes (two-byte length 252+3, 255)",
         write_packet(Toc(9, False, 0), [big, big], code=2), False),
        ("code2_0_1275", "code 2, an empty frame then 1275 bytes", write_packet(Toc(9, False, 0), [b"", big], code=2), False),
        ("code2_1275_1276", "code 2, a last frame of 1276 bytes (R2)",
         bytes([Toc(9, False, 2).to_byte(), 255, 255]) + big + _limit_frame(1276), False),
        ("code3_cbr_48x1275", "code 3 CBR, 48 frames of 1275 bytes (the largest CBR packet, 61202 bytes)",
         write_packet(t28, [big] * 48, code=3, vbr=False), False),
        ("code3_vbr_48x1275", "code 3 VBR, 48 frames of 1275 bytes (the largest packet without padding, 61296 bytes)",
         write_packet(t28, [big] * 48, code=3, vbr=True), False),
        ("code3_vbr_48_length_edges", "code 3 VBR, 48 frames whose lengths sit at the one/two-byte coding edges",
         write_packet(t28, [_limit_frame(s, i) for i, s in enumerate(sizes)], code=3, vbr=True), False),
        ("code3_cbr_1_frame", "code 3 CBR with one frame", write_packet(Toc(9, False, 3), [big], code=3, vbr=False), False),
        ("code3_vbr_1_frame", "code 3 VBR with one frame", write_packet(Toc(9, False, 3), [big], code=3, vbr=True), False),
        ("pad_0", "padding flag with a padding length of 0", write_packet(Toc(9, False, 3), [big], padding=b"", code=3), False),
        ("pad_254", "254 padding bytes (one length byte 254)", write_packet(Toc(9, False, 3), [big], padding=bytes(254), code=3), False),
        ("pad_255", "255 padding bytes (length bytes 255, 1)", write_packet(Toc(9, False, 3), [big], padding=bytes(255), code=3), False),
        ("pad_508", "508 padding bytes (length bytes 255, 255, 0)", write_packet(Toc(9, False, 3), [big], padding=bytes(508), code=3), False),
        ("pad_chain_20x255", "a chain of 20 length bytes 255 then 0: 5080 padding bytes",
         write_packet(Toc(9, False, 3), [big], padding=bytes(5080), padding_chain=[255] * 20 + [0], code=3), False),
        ("pad_cbr_48x20", "code 3 CBR, 48 frames, with 508 bytes of padding",
         write_packet(t28, [big[:20]] * 48, padding=bytes(508), code=3, vbr=False), False),
        ("pad_chain_past_end", "a padding chain of 255s that runs past the end (R6)",
         bytes([Toc(9, False, 3).to_byte(), 0x41]) + bytes([255] * 8), False),
        ("sd_code0_1275", "self-delimited code 0, 1275 bytes", write_packet(Toc(9, False, 0), [big], self_delimited=True), True),
        ("sd_code1_2x1275", "self-delimited code 1, 2 x 1275 bytes",
         write_packet(Toc(9, False, 0), [big, big], code=1, self_delimited=True), True),
        ("sd_code2_1275_0", "self-delimited code 2, 1275 + 0 bytes",
         write_packet(Toc(9, False, 0), [big, b""], code=2, self_delimited=True), True),
        ("sd_code3_cbr_48x20", "self-delimited code 3 CBR, 48 frames of 20 bytes",
         write_packet(t28, [big[:20]] * 48, code=3, vbr=False, self_delimited=True), True),
        ("sd_code3_vbr_pad", "self-delimited code 3 VBR with a 255-chain of padding",
         write_packet(t28, [_limit_frame(s, i) for i, s in enumerate(sizes)], padding=bytes(300), code=3, vbr=True,
                      self_delimited=True), True),
        ("sd_then_next_packet", "a self-delimited packet followed by another one (length < data)",
         write_packet(Toc(9, False, 0), [big], self_delimited=True) + write_packet(Toc(9, False, 0), [big[:9]],
                                                                                   self_delimited=True), True),
        ("sd_length_past_end", "a self-delimited length past the end (App. B)",
         bytes([Toc(9, False, 0).to_byte(), 252, 255]) + _limit_frame(300), True),
    ]
    return out


def _limits_paddings(prof) -> list[tuple[str, str, bytes, int]]:
    """(name, what, padding bytes, nb_frames): extension-syntax limits. The same bytes go to every profile:
    where the syntaxes differ (id 2, separators past the frame count) one profile reads what the other rejects
    or reads otherwise."""
    short_l0 = bytes(id_byte(i, 0) for i in range(3, 32))
    short_l1 = b"".join(bytes([id_byte(i, 1), i]) for i in range(3, 32))
    long_ids = b"".join(bytes([id_byte(i, 1), 1, i]) for i in range(32, 127)) + bytes([id_byte(127, 0)]) + b"end"
    tail = bytes([id_byte(5, 1), 0x55])

    def long_len(n: int) -> bytes:
        return bytes([id_byte(40, 1)]) + bytes([255] * (n // 255) + [n % 255]) + _limit_frame(n, 3) + tail

    per_frame = b"\x02".join(bytes([id_byte(3 + f % 29, 1), f]) for f in range(48))
    rte48 = write_extensions([e for f in range(48) for e in (Extension(5, f, b"a"), Extension(40, f, b"xy"))], 48,
                             syntax="rte")
    rte_long_last = write_extensions([e for f in range(3) for e in (Extension(40, f, b"A" + bytes([f])),
                                                                    Extension(7, f, b"q"))], 3, syntax="rte")
    v1_id2 = write_extensions([Extension(2, 0, b""), Extension(2, 0, b"\x07"), Extension(2, 3, b"\x09"),
                               Extension(6, 3, b"\x01")], 48, syntax="v1")
    return [
        ("ext_short_ids_l0", "ids 3..31 with L=0 (no payload)", short_l0, 1),
        ("ext_short_ids_l1", "ids 3..31 with L=1 (one payload byte)", short_l1, 1),
        ("ext_long_ids", "ids 32..126 with L=1 and 1-byte lengths, then 127 with L=0 (to the end)", long_ids, 1),
        ("ext_long_l0_to_end", "a long extension with L=0 holding the 1000 bytes to the end",
         bytes([id_byte(40, 0)]) + _limit_frame(1000, 4), 1),
        *((f"ext_long_len_{n}", f"a long extension of {n} bytes (length bytes: 255 x {n // 255}, {n % 255})",
           long_len(n), 1) for n in (254, 255, 256, 510, 1000)),
        ("ext_long_len_past_end", "a long length of 255, 255, 10 with fewer bytes left",
         bytes([id_byte(40, 1), 255, 255, 10]) + bytes(100), 1),
        ("ext_padding_l1_run", "100 one-byte paddings (id 0, L=1) then an extension",
         bytes([id_byte(0, 1)] * 100) + tail, 1),
        ("ext_padding_l0_rest", "an extension, then id 0 with L=0: the rest is padding, even a bad long length",
         tail + bytes([id_byte(0, 0), id_byte(40, 1), 255, 255]), 1),
        ("ext_sep_l0_48_frames", "an extension in each of 48 frames, 47 separators 0x02", per_frame, 48),
        ("ext_sep_l1_inc47", "one separator with increment 47 (0x03 47) to the last frame",
         bytes([id_byte(1, 1), 47]) + tail, 48),
        ("ext_sep_l1_inc0", "a separator with increment 0 (frame unchanged)",
         tail + bytes([id_byte(1, 1), 0]) + bytes([id_byte(6, 1), 0x66]), 2),
        ("ext_sep_to_frame48", "separators reaching frame 48", bytes([id_byte(1, 1), 47, id_byte(1, 0)]) + tail, 48),
        ("ext_sep_l1_truncated", "a separator with L=1 as the last byte", tail + bytes([id_byte(1, 1)]), 2),
        ("ext_sep_past_frame_count", "a separator to frame 5 of a 2-frame packet (1.5.x: allowed below 48; "
         "1.6.x: beyond the frame count)", bytes([id_byte(1, 1), 5]) + tail, 2),
        ("ext_id2_l0", "id 2 with L=0 after a short extension, 4 frames (1.5.x: a short extension; 1.6.x: repeat "
         "and end)", bytes([id_byte(5, 1), 0x61, id_byte(2, 0), 0x62, 0x63, 0x64]), 4),
        ("ext_id2_l1", "id 2 with L=1 after a short extension, 4 frames (1.5.x: a short extension with one byte; "
         "1.6.x: repeat, more follows)", bytes([id_byte(5, 1), 0x61, id_byte(2, 1), 0x62, 0x63, 0x64, id_byte(6, 1), 0x65]), 4),
        ("ext_repeat_48_frames", "a short and a long extension repeated over all 48 frames by one id 2 "
         "(1.6.x writer's bytes)", rte48, 48),
        ("ext_id2_short_v1", "id 2 as a short extension with and without payload, in frames 0 and 3 (1.5.x writer's "
         "bytes)", v1_id2, 48),
        ("ext_repeat_long_last_l0", "1.6.x: a repeat with L=0 whose last long extension runs to the end, with "
         "short ones after it",
         rte_long_last, 3),
    ]


def _limits_extensions(profile: str) -> Iterator[dict]:
    prof = get_profile(profile)
    for name, what, pad, nbf in _limits_paddings(prof):
        yield _limit_case(profile, "extensions", name, what, pad, {"direction": "parse", "nb_frames": nbf},
                          {**_LIMIT_PROV, "limit": "extensions"})
    min_id = 2 if prof.extension_syntax == "v1" else 3
    gens = [
        ("gen_every_id", 1, [Extension(i, 0, bytes([i]) if i < 32 else bytes([i, i])) for i in range(min_id, 128)]),
        ("gen_all_48_frames", 48, [e for f in range(48) for e in (Extension(9, f, b"\x01"), Extension(60, f, b"ab"))]),
        ("gen_long_600", 2, [Extension(50, 0, _limit_frame(600, 5)), Extension(6, 1, b"\x06")]),
    ]
    for name, nbf, exts in gens:
        ext_json = [{"id": e.id, "frame": e.frame, "data": e.data.hex()} for e in exts]
        yield _case(profile, "extensions", "limits", name, f"generate: {name}",
                    {"extensions": Part("extensions.json", ext_json)},
                    {"direction": "generate", "nb_frames": nbf, "pad_to": None}, {**_LIMIT_PROV, "limit": "extensions"})


def _limits_dred_packets(profile: str) -> list[tuple[str, str, bytes, bool]]:
    """(name, what, packet, with features): DRED payloads at their limits, each in a whole packet."""
    prof = get_profile(profile)
    eid = prof.extension_id
    one = lambda payload, **kw: _dred_packet(prof, [Extension(eid, 0, _dred_data(prof, payload))], **kw)  # noqa: E731
    pl = lambda **kw: _limit_payload(prof, **kw)  # noqa: E731
    out: list[tuple[str, str, bytes, bool]] = []
    for q0 in range(16):
        qmax = q0 + 1 if qmax_is_coded(q0, 7) else 15
        out.append((f"q0_{q0:02d}_dq7_qmax{qmax}", f"q0 {q0}, dQ 7, qmax {qmax} (the lowest allowed)",
                    one(pl(q0=q0, dQ=7, qmax=qmax, seed=q0)), q0 in (0, 7, 15)))
    for dq in range(8):
        out.append((f"q0_00_dq{dq}_qmax15", f"q0 0, dQ {dq}, qmax 15 ({'not coded' if dq == 0 else 'coded'})",
                    one(pl(q0=0, dQ=dq, qmax=15, seed=20 + dq)), dq in (0, 7)))
    out += [
        ("q0_00_dq1_qmax14", "qmax 14 (the highest coded value) at q0 0", one(pl(q0=0, dQ=1, qmax=14, seed=30)), False),
        ("q0_13_dq1_qmax14", "q0 13: a one-value qmax symbol (ft 2), qmax 14", one(pl(q0=13, dQ=1, qmax=14, seed=31)), False),
        ("q0_13_dq1_qmax15", "q0 13, qmax 15 (the lower half of the ft-2 symbol)", one(pl(q0=13, dQ=1, qmax=15, seed=32)), False),
    ]
    for off in (0, 1, 15, 16, 17, 30, 31):
        out.append((f"offset_{off:02d}", f"offset field {off} (dred_offset {16 - off})",
                    one(pl(offset=off, seed=40 + off)), off in (0, 31)))
    for code, off in ((0, 0), (1, 0), (128, 16), (255, 0), (255, 31)):
        out.append((f"extra_{code:03d}_offset_{off:02d}", f"extended offset, extra {code} (x32), offset {off}",
                    one(pl(extended=True, extra_code=code, offset=off, seed=50 + code % 7)), code == 255))
    lat26 = dict(chunks=prof.max_latents, seed=60)
    full = pl(**lat26)
    out += [
        ("max_latents_26", f"{prof.max_latents} latent chunks (the most a payload holds)", one(full), True),
        ("max_latents_26_trailing", "26 chunks followed by 200 more bytes (not read)", one(full + _limit_frame(200, 6)), True),
        ("max_latents_26_finest", "26 chunks at q0 0, dQ 0 (the finest quantizer everywhere)",
         one(pl(q0=0, dQ=0, chunks=prof.max_latents, amp=6, seed=61)), True),
        ("payload_1_byte", "a 1-byte payload (the smallest that is DRED)", one(full[:1]), True),
        ("payload_2_bytes", "a 2-byte payload", one(full[:2]), False),
        ("payload_big_values", "26 chunks of values up to +-40 (a long payload)",
         one(pl(q0=0, dQ=0, chunks=prof.max_latents, amp=40, seed=62)), True),
        ("payload_61000_bytes", "a 61000-byte payload (26 chunks then zeros) in a 48-frame 120 ms packet",
         _dred_packet(prof, [Extension(eid, 0, _dred_data(prof, full + bytes(61000 - len(full))))], nb_frames=48,
                      config=_CELT_FB["2p5ms"]), False),
    ]
    # truncation inside every field: cut the 26-chunk payload in the middle of each coded field
    fields = read_dred_payload(full, prof).fields
    for fname, start, end in fields:
        if fname.startswith("latent[") and int(fname[7:-1]) not in (0, 1, 12, prof.max_latents - 1):
            continue
        cut = max(1, (start + end) // 16)
        tag = fname.replace("[", "_").replace("]", "")
        out.append((f"truncated_in_{tag}", f"the payload cut to {cut} bytes, inside field {fname} (bits {start}..{end})",
                    one(full[:cut]), fname in ("q0", "state", "latent[1]")))
    data = lambda **kw: _dred_data(prof, pl(**kw))  # noqa: E731
    other = next(get_profile(n) for n in PACKAGED_PROFILES if get_profile(n).dred_version != prof.dred_version)
    foreign = _dred_data(other, _limit_payload(other, seed=70))
    out += [
        ("frame_1_of_2", "DRED in frame 1 of 2 (dred_frame_offset 8)",
         _dred_packet(prof, [Extension(eid, 1, data(seed=71))], nb_frames=2), True),
        ("frame_5_of_6", "DRED in frame 5 of 6 (120 ms; dred_frame_offset 40)",
         _dred_packet(prof, [Extension(eid, 5, data(seed=72))], nb_frames=6), True),
        ("frame_47_of_48_offset0", "DRED in frame 47 of 48 (2.5 ms frames), offset 0: dred_offset 63, the latest",
         _dred_packet(prof, [Extension(eid, 47, data(offset=0, seed=73))], nb_frames=48, config=_CELT_FB["2p5ms"]), True),
        ("frame_beyond_count", "DRED behind a separator to frame 3 of a 1-frame packet (1.5.x finds it; 1.6.x: invalid)",
         _dred_packet(prof, [Extension(eid, 3, data(seed=74))], nb_frames=1, syntax="v1"), True),
        ("three_dred_first_wins", "three DRED extensions in frames 0, 0, 1: the first counts",
         _dred_packet(prof, [Extension(eid, 0, data(offset=2, seed=75)), Extension(eid, 0, data(offset=9, seed=76)),
                             Extension(eid, 1, data(offset=1, seed=77))], nb_frames=2, syntax="v1"), True),
        ("prefix_only_then_dred", "a DRED id holding only 'D', version, then a real one (the first with a payload wins)",
         _dred_packet(prof, [Extension(eid, 0, _dred_data(prof, b"")), Extension(eid, 0, data(seed=78))]), False),
        ("foreign_version_only", "only a DRED extension of version 0x7f: no DRED",
         _dred_packet(prof, [Extension(eid, 0, _dred_data(prof, pl(seed=79), version=0x7F))]), False),
        ("other_profile_then_own", f"{other.name}'s DRED (version {other.dred_version}) before this profile's",
         _dred_packet(prof, [Extension(eid, 0, foreign), Extension(eid, 0, data(seed=80))], syntax="v1"), True),
        ("wrong_magic", "id 126 data 'E', version: not DRED", _dred_packet(prof, [Extension(eid, 0, b"E" + data(seed=81)[1:])]), False),
        ("dred_on_id_125", "a DRED payload on id 125 (not the DRED id)", _dred_packet(prof, [Extension(125, 0, data(seed=82))]), False),
        ("long_length_past_end", "a DRED extension whose long length runs past the end (1.5.x: no DRED; 1.6.x: invalid)",
         write_packet(Toc(9, False, 3), [_limit_frame(40)], padding=bytes([id_byte(eid, 1), 255, 10]) + data(seed=83), code=3),
         False),
    ]
    return out


def _limits_dred(profile: str) -> Iterator[dict]:
    prof = get_profile(profile)
    full_req = prof.max_latents * 4 * _LIMIT_SR // 100
    for name, what, pkt, features in _limits_dred_packets(profile):
        params = {"max_dred_samples": full_req, "sampling_rate": _LIMIT_SR}
        prov = {**_LIMIT_PROV, "limit": "dred"}
        case = _limit_case(profile, "dred", name, what, pkt, params, prov)
        yield case
        if features and case["handler"] == "dred_payload":
            yield _case(profile, "dred_features", "limits", name, what, {"packet": Part("packet.bin", pkt)}, params, prov)


def _limits(profile: str) -> Iterator[dict]:
    for name, what, data, sd in _limits_packets():
        yield _limit_case(profile, "packet", name, what, data, {"self_delimited": sd}, {**_LIMIT_PROV, "limit": "packet"})
    yield from _limits_extensions(profile)
    yield from _limits_dred(profile)


# ----------------------------------------------------------------------------------------------------------
# encoder: the reference encoder's features and payloads of short real speech (docs/vectors.md)
# ----------------------------------------------------------------------------------------------------------
#: RMS (int16 scale) from which a frame counts as active under the ``"energy"`` activity rule
ENERGY_ACTIVE = 1000.0
#: What 1500-byte opus_demo packets leave the DRED payload beside a 37-byte Opus frame (24 kb/s less DRED's
#: 9 kb/s, 20 ms): ``bitstream._budget.dred_max_bytes(1500, 37)``
ENCODER_MAX_BYTES = 995


@dataclass(frozen=True)
class EncoderPoint:
    """One ``dred_encode`` case: the PCM (digital silence ``lead`` s, the clip's ``speech`` segments (start s,
    length s) with ``gap`` s of silence between them, ``trail`` s of silence, zero-padded to whole frames), the
    frame size and the settings of every frame; ``extra_delay`` ``None`` is ``fs / 250`` (libopus' look-ahead,
    ``delay_compensation``, in the VoIP application); ``activity``: ``"silence"`` (0 for a digitally silent
    frame, else 1: ``is_digital_silence`` of 16-bit input), ``"energy"`` (1 where the frame's RMS reaches
    :data:`ENERGY_ACTIVE`, else 0) or ``"no_decision"`` (0 where silent, 1 where the RMS reaches it, else 255,
    ``VAD_NO_DECISION``); ``numerics``: the presets, one case each."""

    name: str
    what: str
    rate: int = 16000
    frame_ms: int = 20
    speech: tuple[tuple[float, float], ...] = ((0.1, 0.6),)
    lead: float = 0.2
    gap: float = 0.0
    trail: float = 0.0
    q0: int = 6
    dq: int = 3
    qmax: int = 15
    max_chunks: int = 26
    max_bytes: int = ENCODER_MAX_BYTES
    extra_delay: int | None = None
    activity: str = "silence"
    numerics: tuple[str, ...] = ("avx2",)


#: The ``dred_encode`` cases of each profile. Settings named after a bitrate are what libopus' encoder takes
#: there with 20 % loss, DRED 1 s, VBR (``bitstream._budget.compute_dred_bitrate``, ``dred_chunks``).
ENCODER_POINTS: tuple[EncoderPoint, ...] = (
    EncoderPoint("sr16000_f20_24k", "16 kHz, 20 ms, 24 kb/s settings (q0 9, dQ 5, 4 chunks), 0.3 s of silence "
                 "before and after the speech", speech=((0.1, 1.0),), lead=0.3, trail=0.3, q0=9, dq=5,
                 max_chunks=4, numerics=("avx2", "sse2")),
    EncoderPoint("sr48000_f20_32k", "48 kHz, 20 ms, 32 kb/s settings (q0 6, dQ 5, 5 chunks)", rate=48000,
                 speech=((1.1, 0.8),), trail=0.2, q0=6, dq=5, max_chunks=5, numerics=("avx2", "sse2")),
    EncoderPoint("sr08000_f20", "8 kHz, 20 ms, no look-ahead (extra_delay 0), every chunk", rate=8000,
                 speech=((2.8, 0.7),), extra_delay=0),
    EncoderPoint("sr12000_f20_48k", "12 kHz, 20 ms, 48 kb/s settings (q0 4, dQ 5, 12 chunks)", rate=12000,
                 speech=((5.7, 0.8),), q0=4, dq=5, max_chunks=12),
    EncoderPoint("sr24000_f20", "24 kHz, 20 ms, q0 9, dQ 5, 8 chunks", rate=24000, speech=((8.0, 0.8),), q0=9,
                 dq=5, max_chunks=8),
    EncoderPoint("sr16000_f10", "16 kHz, 10 ms frames (a payload every 10 ms, the buffer moves every other)",
                 frame_ms=10, speech=((0.1, 0.8),), q0=6, dq=5, max_chunks=5),
    EncoderPoint("sr16000_f40", "16 kHz, 40 ms frames, dQ 2", frame_ms=40, speech=((2.8, 0.8),), q0=5, dq=2,
                 max_chunks=10),
    EncoderPoint("sr48000_f60_64k", "48 kHz, 60 ms frames, 64 kb/s settings (q0 4, dQ 3, 16 chunks)", rate=48000,
                 frame_ms=60, speech=((1.1, 1.2),), lead=0.24, q0=4, dq=3, max_chunks=16),
    EncoderPoint("budget_16", "16 bytes per payload at q0 9: the header and state fit in few frames", q0=9, dq=5,
                 max_bytes=16),
    EncoderPoint("budget_30", "30 bytes per payload: the budget cuts the chunks", q0=4, max_bytes=30),
    EncoderPoint("q0_0_dq0", "q0 0, dQ 0: the finest quantizer for every chunk (long payloads)", q0=0, dq=0),
    EncoderPoint("q0_15", "q0 15: the coarsest, qmax not coded", q0=15, dq=7),
    EncoderPoint("q0_3_dq7_qmax9", "q0 3, dQ 7, qmax 9: the levels capped below 15", q0=3, dq=7, qmax=9),
    EncoderPoint("gap", "speech, 0.4 s of silence, speech: trailing inactive chunks dropped, then delayed DRED "
                 "after the gap", speech=((0.1, 0.5), (1.1, 0.5)), gap=0.4, q0=6, dq=5, max_chunks=8),
    EncoderPoint("chunks_1", "one chunk per payload (none just after skipped silence)", max_chunks=1),
    EncoderPoint("activity_energy", "activity by frame energy (RMS >= 1000): inactive frames inside the speech",
                 speech=((5.7, 0.8),), activity="energy", q0=6, dq=5, max_chunks=10),
    EncoderPoint("activity_no_decision", "activity 255 (VAD_NO_DECISION, which libopus 1.5 stores when its "
                 "analysis is not valid) on the quieter speech frames, 1 on the louder ones",
                 speech=((5.7, 0.8),), activity="no_decision", q0=6, dq=5, max_chunks=10),
)

#: The ``features`` cases of each profile: (rate, clip segment start s, length s); 0.2 s of digital silence
#: before the speech, 0.1 s after it.
FEATURE_POINTS: tuple[tuple[int, float, float], ...] = (
    (8000, 2.8, 1.2), (12000, 5.7, 1.2), (16000, 0.1, 1.2), (24000, 8.0, 1.2), (48000, 1.1, 1.2),
)


def _clip_at(rate: int) -> np.ndarray:
    """The grid clip at ``rate``: the corpus' own 16 and 48 kHz, else polyphase resampling of the 16 kHz clip
    (``scipy.signal.resample_poly``), rounded and clipped to int16."""
    if rate in (16000, 48000):
        return load_clip(GRID_CLIP, rate=rate)
    from scipy.signal import resample_poly  # lazy: scipy is slow to import

    x = load_clip(GRID_CLIP, rate=16000).astype(np.float64)
    g = np.gcd(rate, 16000)
    return np.clip(np.round(resample_poly(x, rate // g, 16000 // g)), -32768, 32767).astype(np.int16)


def _encoder_pcm(rate: int, segments, lead: float, gap: float, trail: float, frame: int) -> np.ndarray:
    clip = _clip_at(rate)
    parts = [np.zeros(round(lead * rate), np.int16)]
    for i, (start, length) in enumerate(segments):
        if i:
            parts.append(np.zeros(round(gap * rate), np.int16))
        parts.append(clip[round(start * rate):round((start + length) * rate)])
    parts.append(np.zeros(round(trail * rate), np.int16))
    pcm = np.concatenate(parts)
    return np.concatenate([pcm, np.zeros(-len(pcm) % frame, np.int16)])


def _activity(pcm: np.ndarray, frame: int, rule: str) -> list[int]:
    frames = pcm.reshape(-1, frame)
    silent = ~np.any(frames != 0, axis=1)
    if rule == "silence":
        return [int(not s) for s in silent]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    if rule == "no_decision":
        return [0 if s else (1 if r >= ENERGY_ACTIVE else 255) for s, r in zip(silent, rms)]
    return [int(r >= ENERGY_ACTIVE) for r in rms]


_ACTIVITY_RULES = {
    "silence": "1 per frame with a non-zero sample, 0 for a digitally silent one (src/opus_encoder.c: "
               "is_digital_silence of 16-bit input)",
    "energy": f"1 per frame whose RMS (int16 scale) is at least {ENERGY_ACTIVE:g}, else 0",
    "no_decision": f"0 for a digitally silent frame, 1 where the RMS (int16 scale) is at least {ENERGY_ACTIVE:g}, "
                   "255 (VAD_NO_DECISION) for the others",
}


def _speech_info(rate: int, segments, lead: float, gap: float, trail: float, pcm: np.ndarray) -> dict:
    clip = next(c for c in list_clips() if c.id == GRID_CLIP)
    return {"clip": clip.id, "package": clip.package, "package_version": clip.version, "file": clip.file,
            "licence": clip.licence, "pcm_sha256": clip.pcm_sha256,
            "resampled": None if rate in (16000, 48000) else "scipy.signal.resample_poly of the 16 kHz clip",
            "segments_s": [list(s) for s in segments], "leading_silence_s": lead, "gap_s": gap,
            "trailing_silence_s": trail, "input_sha256": hashlib.sha256(pcm.astype("<i2").tobytes()).hexdigest()}


def _encoder(profile: str) -> Iterator[dict]:
    for ep in ENCODER_POINTS:
        frame = ep.rate * ep.frame_ms // 1000
        pcm = _encoder_pcm(ep.rate, ep.speech, ep.lead, ep.gap, ep.trail, frame)
        activity = _activity(pcm, frame, ep.activity)
        for num in ep.numerics:
            params = {"sampling_rate": ep.rate, "frame_size": frame, "q0": ep.q0, "dq": ep.dq, "qmax": ep.qmax,
                      "max_chunks": ep.max_chunks, "max_bytes": ep.max_bytes,
                      "extra_delay": ep.rate // 250 if ep.extra_delay is None else ep.extra_delay, "numerics": num}
            prov = {"inputs_from": "real speech (corpus), digital silence", "seed": 0,
                    "speech": _speech_info(ep.rate, ep.speech, ep.lead, ep.gap, ep.trail, pcm),
                    "activity_rule": _ACTIVITY_RULES[ep.activity],
                    "expected_from": f"opus-dred reference encoder (refimpl DredEncoder, numerics {num})"}
            yield _case(profile, "dred_encode", "encoder", f"{ep.name}.{num}",
                        f"{ep.what}; {len(activity)} frames of {ep.frame_ms} ms; numerics {num}",
                        {"pcm": Part("pcm.sw", pcm), "activity": Part("activity.json", activity)}, params, prov)
    for rate, start, length in FEATURE_POINTS:
        segments = ((start, length),)
        pcm = _encoder_pcm(rate, segments, 0.2, 0.0, 0.1, rate // 100)
        prov = {"inputs_from": "real speech (corpus), digital silence", "seed": 0,
                "speech": _speech_info(rate, segments, 0.2, 0.0, 0.1, pcm),
                "expected_from": "opus-dred reference encoder front end (refimpl Resampler, FeatureExtractor, "
                                 "PitchDNN; numerics avx2)"}
        yield _case(profile, "features", "encoder", f"sr{rate:05d}",
                    f"{length:g} s of real speech at {rate} Hz after 0.2 s of silence: the DRED encoder's features",
                    {"pcm": Part("pcm.sw", pcm)}, {"sampling_rate": rate, "numerics": "avx2"}, prov)


# ----------------------------------------------------------------------------------------------------------
# listening: vocoder, plc
# ----------------------------------------------------------------------------------------------------------
#: The presets the listening cases are made with (one case each): a default x86 build's and a ``-generic`` one's
LISTENING_NUMERICS = ("avx2", "sse2")
#: ``vocoder`` cases: (name, clip, start s, length s, leading digital silence s)
VOCODER_POINTS: tuple[tuple[str, str, float, float, float], ...] = (
    ("codec2_start", "codec2-speech-orig-16k", 0.0, 1.5, 0.0),
    ("librivox_0870", "ps-librivox-0870", 1.0, 1.5, 0.0),
    ("numbers", "ps-numbers", 0.5, 1.5, 0.0),
    ("goforward_after_silence", "ps-goforward", 0.3, 1.2, 0.3),
)
#: ``plc`` cases: (name, clip, start s, description, frames (10 ms), plan); a plan is a list of (frame, what):
#: ``("lost", n)`` n frames lost, ``("dred", n, rows)`` a new DRED batch (``fec_clear``, then ``rows`` queued:
#: offsets from the frame, ``None`` for a frame DRED does not cover) and n frames lost
PLC_POINTS: tuple = (
    ("isolated", "codec2-speech-orig-16k", 0.2, "single lost frames and one pair, no DRED", 100,
     ((25, ("lost", 1)), (50, ("lost", 2)), (80, ("lost", 1)))),
    ("burst_12", "ps-librivox-0870", 1.0, "12 frames lost: the attenuation table and beyond, no DRED", 100,
     ((40, ("lost", 12)),)),
    ("dred_burst", "ps-numbers", 0.5, "8 frames lost, each covered by a queued DRED frame", 100,
     ((40, ("dred", 8, tuple(range(8)))),)),
    ("dred_gap", "ps-goforward", 0.3, "two DRED batches: one with an uncovered frame and fewer rows than losses "
     "(predictions after them), then a short one", 100,
     ((30, ("dred", 8, (0, 1, None, 3))), (70, ("dred", 3, (0, 1, 2))))),
    ("start_and_long", "ps-librivox-0880", 0.5, "the first 4 frames lost (no history), then 24 lost: the "
     "attenuation floor", 100, ((0, ("lost", 4)), (55, ("lost", 24)))),
)


def _listening_clip(clip: str, start: float, length: float, lead: float = 0.0) -> np.ndarray:
    x = load_clip(clip, rate=16000)
    pcm = np.concatenate([np.zeros(round(lead * 16000), np.int16),
                          x[round(start * 16000):round((start + length) * 16000)]]).astype(np.int16)
    return pcm[: len(pcm) // 160 * 160]


def _listening_speech(clip: str, start: float, length: float, lead: float, pcm: np.ndarray) -> dict:
    c = next(c for c in list_clips() if c.id == clip)
    return {"clip": c.id, "package": c.package, "package_version": c.version, "file": c.file, "licence": c.licence,
            "pcm_sha256": c.pcm_sha256, "segment_s": [start, length], "leading_silence_s": lead,
            "input_sha256": hashlib.sha256(pcm.astype("<i2").tobytes()).hexdigest()}


def listening_features(profile: str, pcm: np.ndarray) -> np.ndarray:
    """The 20 features of each 10 ms frame of 16 kHz int16 ``pcm`` as ``fargan_demo -features`` computes them
    (``lpcnet_compute_single_frame_features`` from a fresh ``LPCNetEncState``), with the reference extractor
    (:class:`~opus_dred.refimpl._features.FeatureExtractor`, a default x86 build's kernels, PitchDNN avx2)."""
    from opus_dred.refimpl._features import FeatureExtractor  # lazy: loads JAX

    fe = FeatureExtractor(get_profile(profile), kernels="x86", pitch="avx2")
    return np.asarray(fe.frames(np.asarray(pcm, np.float32)).features, np.float32)[:, :20]


def _plc_plan(frames: int, plan) -> tuple[list[dict], list[int], list[int]]:
    """(events, the frames whose pcm the good events take, the frames whose features the DRED rows hold)."""
    at = dict(plan)
    events: list[dict] = []
    good: list[int] = []
    rows: list[int] = []
    k = 0
    while k < frames:
        if k in at:
            what = at[k]
            n = what[1]
            if what[0] == "dred":
                events.append({"type": "fec_clear"})
                for off in what[2]:
                    if off is None:
                        events.append({"type": "fec", "row": None})
                    else:
                        events.append({"type": "fec", "row": len(rows)})
                        rows.append(k + off)
            events += [{"type": "lost"}] * n
            k += n
            continue
        events.append({"type": "good", "frame": len(good)})
        good.append(k)
        k += 1
    return events, good, rows


def _listening(profile: str) -> Iterator[dict]:
    for name, clip, start, length, lead in VOCODER_POINTS:
        pcm = _listening_clip(clip, start, length, lead)
        feats = listening_features(profile, pcm)
        for num in LISTENING_NUMERICS:
            prov = {"inputs_from": "real speech (corpus): the reference feature extractor's features of it (as "
                                   "fargan_demo -features computes them; refimpl FeatureExtractor, x86 kernels, "
                                   "PitchDNN avx2)", "seed": 0, "speech": _listening_speech(clip, start, length, lead, pcm),
                    "expected_from": f"opus-dred reference FARGAN (refimpl._fargan, numerics {num}) as "
                                     "fargan_demo -fargan-synthesis runs it"}
            yield _case(profile, "vocoder", "listening", f"{name}.{num}",
                        f"{feats.shape[0]} feature frames of real speech ({clip}) to 16 kHz audio; numerics {num}",
                        {"features": Part("features.f32", feats)}, {"numerics": num}, prov)
    for name, clip, start, what, frames, plan in PLC_POINTS:
        pcm = _listening_clip(clip, start, frames / 100)
        feats = listening_features(profile, pcm)
        events, good, rows = _plc_plan(frames, plan)
        x = pcm.reshape(-1, 160)
        for num in LISTENING_NUMERICS:
            prov = {"inputs_from": "real speech (corpus): the good frames' samples; the DRED rows are the reference "
                                   "feature extractor's features of the lost frames' speech (what DRED carries, "
                                   "unquantized)", "seed": 0, "speech": _listening_speech(clip, start, frames / 100, 0.0, pcm),
                    "good_frames": good, "dred_rows_of_frames": rows,
                    "expected_from": f"opus-dred reference PLC (refimpl._plc.run_plc with its FARGAN, numerics {num})"}
            yield _case(profile, "plc", "listening", f"{name}.{num}",
                        f"{frames} frames of real speech ({clip}), {what}; numerics {num}",
                        {"events": Part("events.json", events), "pcm": Part("pcm.sw", x[good].reshape(-1)),
                         "features": Part("features.f32", feats[rows] if rows else np.zeros((0, 20), np.float32))},
                        {"numerics": num}, prov)


# ----------------------------------------------------------------------------------------------------------
# cross_version: another profile's DRED
# ----------------------------------------------------------------------------------------------------------
CROSS_SEED = SEED + 900


def _cross_version(profile: str) -> Iterator[dict]:
    """The DRED of every packaged profile of another experimental version in this profile's cases: a 26-chunk
    payload of that profile's writer and a mid-speech packet of its libopus encoder. libopus passes a DRED
    extension of another version over (``src/opus_decoder.c:dred_find_payload``; the profile rule
    ``foreign_version`` = ``skip``): no DRED, without an error, whichever of the two reads the other's."""
    prof = get_profile(profile)
    full = prof.max_latents * 4 * _LIMIT_SR // 100
    for name in PACKAGED_PROFILES:
        other = get_profile(name)
        if other.dred_version == prof.dred_version:
            continue
        written = _dred_packet(other, [Extension(other.extension_id, 0, _dred_data(
            other, _limit_payload(other, chunks=other.max_latents, seed=CROSS_SEED - LIMITS_SEED)))])
        encoded, speech = encode_stream(other.name, _B)
        packets = [e.data for e in encoded]
        picks, _ = _pick(other.name, packets, _B)
        idx = dict(picks).get("mid", picks[-1][1])
        inputs = (("writer", written, {"inputs_from": f"opus-dred writer, profile {other.name}", "seed": CROSS_SEED}),
                  ("speech", packets[idx], {"inputs_from": f"{other.name} encoder through the oracle",
                                            "speech": speech, "encoder": _B.encoder(), "packet_index": idx}))
        for kind, pkt, prov in inputs:
            what = (f"{other.name}'s DRED (version {other.dred_version}, {kind}) read as {profile} "
                    f"(version {prof.dred_version}): no DRED, no error")
            base = f"from_{other.name}.{kind}"
            for handler, requests in (("dred_payload", (full,)), ("dred_features", (full, 2 * _LIMIT_SR // 100))):
                for m in requests:
                    yield _case(profile, handler, "cross_version", base if m == full else f"{base}.m{m}", what,
                                {"packet": Part("packet.bin", pkt)},
                                {"max_dred_samples": m, "sampling_rate": _LIMIT_SR}, prov)


#: the sampling rate of the ``limits`` and ``cross_version`` cases' requests
LIMIT_RATE = _LIMIT_SR


def dred_writer_packet(profile: str, *, chunks: int | None = None, offset: int = 4, seed: int = 0) -> bytes:
    """A one-frame packet carrying one DRED extension of ``profile``: its writer's payload of ``chunks`` latent
    chunks (the profile's most by default) of seeded values, q0 6, dQ 3, the offset field ``offset``."""
    prof = get_profile(profile)
    payload = _limit_payload(prof, chunks=prof.max_latents if chunks is None else chunks, offset=offset, seed=seed)
    return _dred_packet(prof, [Extension(prof.extension_id, 0, _dred_data(prof, payload))])


SUITES: dict[str, Callable[[str], Iterator[dict]]] = {
    "basic": _range_coder,
    "speech_grid": _speech_grid,
    "writer_edges": _writer_edges,
    "patterns": _receiver,
    "mutations": _invalid,
    "limits": _limits,
    "encoder": _encoder,
    "cross_version": _cross_version,
    "listening": _listening,
}


def generate_cases(profile: str, suite: str | None = None) -> Iterator[dict]:
    get_profile(profile)
    for name, fn in SUITES.items():
        if suite is None or suite == name:
            yield from fn(profile)


def generate(profiles: list[str], out: str | Path, *, suite: str | None = None, manifest: bool = True,
             progress: Callable[[str], None] | None = None) -> int:
    """Write the cases of ``profiles`` under ``out`` (replacing those folders) and the manifest; returns the count."""
    import shutil

    out = Path(out)
    n = 0
    for profile in profiles:
        if suite is None and (out / profile).exists():
            shutil.rmtree(out / profile)
        for case in generate_cases(profile, suite):
            write_case(out, case)
            n += 1
            if progress:
                progress(f"{case['profile']}/{case['handler']}/{case['suite']}/{case['case']}")
    if manifest:
        write_manifest(out, generator=generator_name())
    return n
