"""How closely the reference decoder agrees with libopus, next to libopus' own spread between its builds.

For each profile and each encoder setting, real speech is encoded once by the profile's default libopus
build; every DRED packet is then decoded by libopus' default build (AVX2 dispatch on x86-64), by its generic
build (``--disable-intrinsics --disable-rtcd``), and by the reference (``opus_dred.refimpl._decode.decode_dred``).
Integers (nb_latents, dred_offset, the parse's return value) must be equal everywhere; features are compared
with libopus' compliance metric (``dred_compare -features``: total, max, pitch) and by max and 99th-percentile
absolute error. The pair "default vs generic" is libopus' own spread: the reference must sit inside it.

``opus-dred agreement`` runs it and prints (or writes, with ``--markdown``) the table of ``docs/agreement.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from opus_dred.conformance._metric import compare_features
from opus_dred.libopus._oracle import Oracle
from opus_dred.refimpl._decode import decode_dred
from opus_dred.speech._corpus import load_clip


@dataclass(frozen=True)
class Setting:
    sample_rate: int
    frame_ms: float
    bitrate: int
    loss_perc: int
    dred_duration: int  # 10 ms units
    vbr: bool = True

    @property
    def label(self) -> str:
        mode = "VBR" if self.vbr else "CBR"
        return (f"{self.sample_rate // 1000} kHz, {self.frame_ms:g} ms, {self.bitrate // 1000} kb/s {mode}, "
                f"loss {self.loss_perc} %, DRED {self.dred_duration * 10} ms")

    @property
    def short(self) -> str:
        mode = "vbr" if self.vbr else "cbr"
        return (f"{self.sample_rate // 1000}k {self.frame_ms:g}ms {self.bitrate // 1000}k{mode} "
                f"L{self.loss_perc} D{self.dred_duration * 10}")


#: Seven settings per profile; each makes libopus write DRED in both releases (measured here: with loss 0 %
#: neither release writes DRED, in VBR or in CBR).
SETTINGS: tuple[Setting, ...] = (
    Setting(16000, 20, 24000, 20, 100),
    Setting(16000, 20, 32000, 10, 100),
    Setting(16000, 40, 32000, 20, 50),
    Setting(16000, 60, 48000, 20, 104),
    Setting(48000, 20, 32000, 20, 100),
    Setting(48000, 10, 64000, 30, 104),
    Setting(16000, 20, 24000, 10, 100, vbr=False),
)


@dataclass
class PairFigures:
    """One comparison (reference file first) over all the DRED packets of a setting."""

    total: float
    max: float
    pitch: float
    passed: bool
    max_abs: float
    p99_abs: float
    frames: int


@dataclass
class Row:
    profile: str
    setting: Setting
    packets: int
    dred_packets: int
    integers_equal: bool
    ref_vs_default: PairFigures | None = None
    ref_vs_generic: PairFigures | None = None
    default_vs_generic: PairFigures | None = None
    float_vs_default: PairFigures | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["setting"] = {**asdict(self.setting), "label": self.setting.label}
        return d


def _pair(ref: np.ndarray, test: np.ndarray) -> PairFigures:
    cmp = compare_features(ref, test)
    diff = np.abs(ref.astype(np.float64) - test.astype(np.float64))
    return PairFigures(
        total=float(cmp.total),
        max=float(cmp.max),
        pitch=float(cmp.pitch),
        passed=bool(cmp.passed),
        max_abs=float(diff.max(initial=0.0)),
        p99_abs=float(np.percentile(diff, 99)) if diff.size else 0.0,
        frames=int(ref.shape[0]),
    )


def measure(profiles=("libopus-1.5.2", "libopus-1.6.1"), settings=SETTINGS, *, seconds: float | None = None,
            clip: str | None = None, progress=None) -> list[Row]:
    """Encode, decode three ways, compare. ``seconds`` cuts the speech (None: the whole clip)."""

    rows: list[Row] = []
    for profile in profiles:
        default = Oracle.for_build(profile)
        generic = Oracle.for_build(f"{profile}-generic")
        for s in settings:
            pcm = load_clip(clip, rate=s.sample_rate)
            if seconds is not None:
                pcm = pcm[: int(seconds * s.sample_rate)]
            packets = default.encode(pcm, fs=s.sample_rate, bitrate=s.bitrate, frame_ms=s.frame_ms,
                                     loss_perc=s.loss_perc, dred_duration=s.dred_duration, vbr=s.vbr)
            feats = {"default": [], "generic": [], "ref": [], "float": []}
            equal = True
            n_dred = 0
            max_samples = s.sample_rate  # ask for everything up to 1 s, as opus_demo does on a long loss
            for e in packets:
                a = default.dred_parse(e.data, max_dred_samples=max_samples, sampling_rate=s.sample_rate)
                if a.ret <= 0:
                    continue
                b = generic.dred_parse(e.data, max_dred_samples=max_samples, sampling_rate=s.sample_rate)
                r = decode_dred(e.data, profile, max_dred_samples=max_samples, sampling_rate=s.sample_rate,
                                numerics="libopus-avx2-host")
                f = decode_dred(e.data, profile, max_dred_samples=max_samples, sampling_rate=s.sample_rate,
                                numerics="float")
                ints = {(x.nb_latents, x.dred_offset, x.ret, x.dred_end) for x in (a, b, r)}
                equal &= len(ints) == 1
                n_dred += 1
                feats["default"].append(a.features)
                feats["generic"].append(b.features)
                feats["ref"].append(r.features)
                feats["float"].append(f.features)
            row = Row(profile, s, len(packets), n_dred, equal)
            if n_dred:
                cat = {k: np.concatenate(v) for k, v in feats.items()}
                row.ref_vs_default = _pair(cat["default"], cat["ref"])
                row.ref_vs_generic = _pair(cat["generic"], cat["ref"])
                row.default_vs_generic = _pair(cat["default"], cat["generic"])
                row.float_vs_default = _pair(cat["default"], cat["float"])
            else:
                row.notes.append("libopus wrote no DRED at this setting")
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def _fmt(p: PairFigures | None) -> str:
    if p is None:
        return "–"
    return f"{p.total:.4f} / {p.max:.4f} / {p.pitch:.4f} · {p.max_abs:.3g} / {p.p99_abs:.3g}"


def _fmt_short(p: PairFigures | None) -> str:
    if p is None:
        return "–"
    return f"{p.total:.3f} {'✓' if p.passed else '✗'} · {p.max_abs:.3g}/{p.p99_abs:.2g}"


def to_markdown(rows: list[Row]) -> str:
    """The agreement table: per cell ``total / max / pitch · max abs / p99 abs``."""
    head = ("| profile | setting | DRED packets | integers equal | reference vs default build | "
            "reference vs generic build | libopus default vs generic | float path vs default build |\n"
            "|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r.profile} | {r.setting.label} | {r.dred_packets}/{r.packets} | {'yes' if r.integers_equal else '**no**'} | "
        f"{_fmt(r.ref_vs_default)} | {_fmt(r.ref_vs_generic)} | {_fmt(r.default_vs_generic)} | "
        f"{_fmt(r.float_vs_default)} |\n"
        for r in rows
    )
    return head + body
