"""libopus' official DRED vector layout: export to it, read from it.

libopus' conformance script (``tests/dred_vectors.sh`` on libopus master) loops ``N = 1 … 8`` over a directory of

==========================  ===========================================================================
``vectorN_dred.bit``        a DRED-only stream (``opus_dred.bitstream._formats``), decoded by
                            ``fargan_demo -dred-decoding`` and compared, by ``dred_compare -features
                            -thresholds .5 .15 .02``, with
``vectorN_dred_dec.f32``    the expected features, chronological, 20 float32 per 10 ms frame;
``vectorN_features.f32``    vocoder input: ``fargan_demo -fargan-synthesis`` output is compared with
``vectorN_orig.sw``         the original speech (16 kHz, int16) by ``dred_compare -audio -thresholds 0.25 1.0 0.15``;
``vectorN_opus.bit``        an opus_demo bitstream decoded by ``opus_demo -d 16000 1`` and compared with
                            ``vectorN_orig.sw`` (thresholds ``1.0 3.0 0.25``; a warning only).
==========================  ===========================================================================

:func:`export_official` writes such a directory for a profile with a DRED-only stream format (1.6.x): real
speech from the corpus is encoded by the profile's libopus encoder (oracle) into ``vectorN_opus.bit``; the
DRED payloads of those packets are re-coded as DRED-only stream records at their ``q0`` (values the level's
statistics give zero probability set to 0) into ``vectorN_dred.bit``; ``vectorN_dred_dec.f32`` holds the
reference decoder's features of those records; ``vectorN_features.f32`` holds the reference feature extractor's
features of ``vectorN_orig.sw``, computed as ``fargan_demo -features`` computes them
(:func:`opus_dred.vectors._generate.listening_features`: ``lpcnet_compute_single_frame_features`` from a fresh
state, a default x86 build's kernels, PitchDNN under the avx2 preset), recorded in ``provenance.json``.
:func:`read_official` reads a directory in that layout (ours or libopus').
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from opus_dred.bitstream._dred import coding_tables, read_dred_payload
from opus_dred.bitstream._dredstream import chronological, read_stream_record, write_stream_record
from opus_dred.bitstream._errors import FormatError
from opus_dred.bitstream._extensions import find_dred_extension
from opus_dred.bitstream._formats import read_dred_stream, write_dred_stream, write_opus_demo_bit
from opus_dred.bitstream._profiles import get_profile
from opus_dred.libopus._oracle import Oracle
from opus_dred.refimpl._decode import features_of
from opus_dred.speech._corpus import list_clips, load_clip
from opus_dred.vectors._format import dumps_json
from opus_dred.vectors._generate import listening_features

from opus_dred import __version__

DRED_THRESHOLDS = (0.5, 0.15, 0.02)
VOCODER_THRESHOLDS = (0.25, 1.0, 0.15)
SYSTEM_THRESHOLDS = (1.0, 3.0, 0.25)
#: (clip, seconds, bitrate) per vector: real recorded speech of the corpus (docs/vectors.md). The vocoder part of
#: libopus' script compares FARGAN's synthesis from analysis features with the original at err4 < 0.25; of our
#: corpus only codec2's clip, from its start, meets that (LibriVox and pocketsphinx clips give err4 0.30-1.2 with
#: libopus' own fargan_demo), and how long it must be depends on the CPU that runs FARGAN (its activations use
#: RCPPS): at least 5 s on AMD Zen 4, at least 7 s on an Intel Xeon (err4 0.258 at 6 s, 0.232 at 7 s, 0.215 at
#: 8 s). So every vector uses it, 8 to 10.8 s long, at different bitrates.
OFFICIAL_CLIPS = tuple(("codec2-speech-orig-16k", sec, br) for sec, br in
                       ((10.8, 32000), (8.0, 24000), (9.0, 48000), (10.0, 64000),
                        (10.8, 20000), (8.0, 40000), (9.0, 28000), (10.0, 36000)))
#: Encoder settings of vectorN_opus.bit (bitrate per vector).
ENCODER = {"sample_rate": 16000, "frame_ms": 20, "loss_perc": 20, "dred_duration": 100,
           "complexity": 10, "vbr": True, "lbrr": False, "application": "voip"}
RECORD_EVERY = 5  # a DRED-only record from every 5th DRED packet


def official_files(n: int) -> dict[str, str]:
    return {k: f"vector{n}_{k}" for k in ("dred.bit", "dred_dec.f32", "features.f32", "orig.sw", "opus.bit")}


@dataclass
class OfficialVector:
    """One ``vectorN_*`` group; a missing file is ``None``."""

    n: int
    dred_bit: bytes | None = None
    dred_dec: np.ndarray | None = None
    features: np.ndarray | None = None
    orig: np.ndarray | None = None
    opus_bit: bytes | None = None
    paths: dict[str, Path] = field(default_factory=dict)


def read_official(directory: str | Path) -> list[OfficialVector]:
    """The vectors of an official-layout directory, N = 1 … 8 as libopus' script loops (missing N skipped)."""
    d = Path(directory)
    out = []
    for n in range(1, 9):
        files = {k: d / v for k, v in official_files(n).items()}
        if not any(p.is_file() for p in files.values()):
            continue
        v = OfficialVector(n, paths={k: p for k, p in files.items() if p.is_file()})
        if files["dred.bit"].is_file():
            v.dred_bit = files["dred.bit"].read_bytes()
        if files["dred_dec.f32"].is_file():
            v.dred_dec = np.fromfile(files["dred_dec.f32"], "<f4").reshape(-1, 20)
        if files["features.f32"].is_file():
            v.features = np.fromfile(files["features.f32"], "<f4").reshape(-1, 20)
        if files["orig.sw"].is_file():
            v.orig = np.fromfile(files["orig.sw"], "<i2")
        if files["opus.bit"].is_file():
            v.opus_bit = files["opus.bit"].read_bytes()
        out.append(v)
    return out


def _records(profile: str, packets: list[bytes]):

    prof = get_profile(profile)
    tables = coding_tables(prof)
    out = []
    dred_packets = [p for p in packets if find_dred_extension(p, prof) is not None]
    for p in dred_packets[RECORD_EVERY::RECORD_EVERY]:
        loc = find_dred_extension(p, prof)
        pl = read_dred_payload(loc.payload, prof)
        if pl.nb_latents == 0:
            continue
        q0 = pl.q0
        s = np.array(pl.state_q, np.int64)
        s[[i for i, par in enumerate(tables.state[q0]) if par is None]] = 0
        lat = np.array(pl.latents_q, np.int64)
        lat[:, [i for i, par in enumerate(tables.latent[q0]) if par is None]] = 0
        while True:
            try:
                rec = write_stream_record(s, lat, q0, prof)
                break
            except FormatError:
                lat = lat[:-1]
        out.append(rec)
    return out


def export_official(directory: str | Path, profile: str = "libopus-1.6.1", *, count: int = len(OFFICIAL_CLIPS)
                    ) -> list[Path]:
    """Write ``vector1 … vector<count>`` of ``profile`` in the official layout under ``directory``."""
    prof = get_profile(profile)
    if not 1 <= count <= min(8, len(OFFICIAL_CLIPS)):
        raise ValueError(f"count must be within 1..{min(8, len(OFFICIAL_CLIPS))}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    oracle = Oracle.for_build(profile)
    clips = {c.id: c for c in list_clips()}
    written: list[Path] = []
    provenance: dict = {"profile": profile, "generator": _generator(), "vectors": {}}
    for n, (clip_id, seconds, bitrate) in enumerate(OFFICIAL_CLIPS[:count], start=1):
        files = {k: d / v for k, v in official_files(n).items()}
        pcm = load_clip(clip_id, rate=16000)[: int(seconds * 16000) // 160 * 160].astype(np.int16)
        files["orig.sw"].write_bytes(pcm.astype("<i2").tobytes())
        enc = oracle.encode(pcm, fs=16000, bitrate=bitrate, frame_ms=ENCODER["frame_ms"],
                            complexity=ENCODER["complexity"], dred_duration=ENCODER["dred_duration"],
                            loss_perc=ENCODER["loss_perc"], lbrr=ENCODER["lbrr"], vbr=ENCODER["vbr"],
                            application=ENCODER["application"])
        files["opus.bit"].write_bytes(write_opus_demo_bit([(e.data, e.final_range) for e in enc]))
        records = _records(profile, [e.data for e in enc])
        stream = write_dred_stream(records)
        files["dred.bit"].write_bytes(stream)
        feats = []
        for rec in read_dred_stream(stream, quant_levels=prof.quant_levels):
            p = read_stream_record(rec, prof)
            feats.append(chronological(features_of(prof, p.state, p.latents)))
        dec = np.concatenate(feats) if feats else np.zeros((0, 20), np.float32)
        files["dred_dec.f32"].write_bytes(np.ascontiguousarray(dec, "<f4").tobytes())
        feats = listening_features(profile, pcm)
        files["features.f32"].write_bytes(np.ascontiguousarray(feats, "<f4").tobytes())
        c = clips[clip_id]
        provenance["vectors"][f"vector{n}"] = {
            "speech": {"clip": clip_id, "package": c.package, "package_version": c.version, "file": c.file,
                       "licence": c.licence, "seconds": seconds},
            "opus.bit": f"{profile} encoder through the oracle, {dict(ENCODER, bitrate=bitrate)}",
            "dred.bit": f"{len(records)} DRED-only records: the DRED payload of every {RECORD_EVERY}th DRED packet of "
                        "opus.bit, re-coded at its q0 (zero-probability values set to 0)",
            "dred_dec.f32": "opus-dred reference decoder (refimpl, numerics libopus-avx2), chronological order",
            "features.f32": "opus-dred reference feature extractor on orig.sw, as fargan_demo -features computes "
                            "them (refimpl FeatureExtractor, x86 kernels, PitchDNN avx2)",
            "sha256": {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in sorted(files.items())},
        }
        written += list(files.values())
    prov = d / "provenance.json"
    prov.write_text(dumps_json(provenance))
    written.append(prov)
    return written


def _generator() -> str:
    return f"opus-dred {__version__}"
