"""Bitstream profiles: the DRED variants and the constants each one fixes.

A *profile* names one bitstream variant (today: the DRED of a libopus release, identified on the wire
by the experimental version byte that follows ``'D'`` in extension 126). Each profile is a JSON
description in ``bitstream/profiles/`` (or in a directory of ``$OPUS_DRED_PROFILES_PATH``,
colon-separated, searched first) plus a model pack (:mod:`opus_dred.models._pack`) holding its
statistics tables and weights. A new variant (a new draft revision, a new libopus model) is added by
files alone: a pack directory and a description.

Where each constant comes from in libopus (1.5.2 and 1.6.1):

* ``extension_id`` 126, ``dred_version`` (10 / 12), the 2 experimental bytes ``'D', version``:
  ``dnn/dred_config.h`` (``DRED_EXTENSION_ID``, ``DRED_EXPERIMENTAL_VERSION``,
  ``DRED_EXPERIMENTAL_BYTES``); the check is ``src/opus_decoder.c:dred_find_payload``.
* ``latent_dim``, ``state_dim``, ``num_features``, ``quant_levels``:
  ``dnn/dred_rdovae_constants.h``; the statistics tables are ``dnn/dred_rdovae_stats_data.c``
  (``quant_levels`` rows of ``latent_dim`` / ``state_dim`` values).
* ``max_latents`` = ``DRED_NUM_REDUNDANCY_FRAMES / 2``: the chunk loop bound of
  ``dnn/dred_decoder.c:dred_ec_decode``.
* ``has_q_feature``: 1.6.x stores ``q_level * 0.125 - 1`` after each latent vector
  (``dnn/dred_decoder.c:dred_ec_decode``), so the RDO-VAE decoder input is ``latent_dim + 1`` wide
  (``dec_dense1`` nb_inputs in the pack).
* ``dq_table``: ``dnn/dred_coding.c:compute_quantizer``.
* ``extension_syntax``: ``"v1"`` = extension id 2 is an ordinary short extension (1.5.x
  ``src/extensions.c``); ``"rte"`` = id 2 is *Repeat These Extensions* (1.6.x ``src/extensions.c``,
  draft-ietf-mlcodec-opus-extension).

Besides the constants, a profile names its *behaviour rules* (:data:`BEHAVIOUR_RULES`): what libopus' API
does around the bitstream where releases differ without any change on the wire. ``chunk_bound`` is how
many latent chunks a bounded parse request decodes (:data:`opus_dred.bitstream._arith.CHUNK_BOUND_RULES`),
``foreign_version`` what a reader does with a DRED extension of another experimental version, and
``extension_syntax`` (above) how the padding is walked.

Descriptions are searched in ``$OPUS_DRED_PROFILES_PATH``, then the packaged directory, then
``profiles/`` of the derived area (:func:`opus_dred.models._pack.derived_dir`), where
``opus-dred profiles derive`` and ``opus-dred upstream register`` write what they derive from a libopus tree.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from opus_dred.models._pack import DERIVED_ENV, PackError, derived_dir, load_manifest, load_pack

from opus_dred.bitstream._arith import (
    CHUNK_BOUND_MASTER,
    CHUNK_BOUND_RELEASE,
    CHUNK_BOUND_RULES,
    latents_for_request,
    parse_return,
)
from opus_dred.errors import OpusDredError

PROFILES_ENV = "OPUS_DRED_PROFILES_PATH"
PACKAGED_DIR = Path(__file__).resolve().parent / "profiles"
EXTENSION_SYNTAXES = ("v1", "rte")
FOREIGN_VERSION_RULES = ("skip",)
EXPERIMENTAL_MAGIC = b"D"

#: The behaviour rules a profile names, each with its variants: what the variant does and where libopus does
#: it. ``chunk_bound`` and ``foreign_version`` are profile fields with the defaults ``"release-1.5"`` and
#: ``"skip"``; ``extension_syntax`` is a required field.
BEHAVIOUR_RULES: dict[str, dict] = {
    "chunk_bound": {
        "summary": "how many latent chunks a parse request of max_dred_samples decodes",
        "default": CHUNK_BOUND_RELEASE,
        "variants": {
            CHUNK_BOUND_RELEASE: "min_feature_frames = min(2 + 100*max_dred_samples/sampling_rate, 104), "
                                 "whatever the payload's dred_offset (src/opus_decoder.c:opus_dred_parse, "
                                 "libopus 1.5 to 1.6.1)",
            CHUNK_BOUND_MASTER: "max_dred_features = (100*max_dred_samples + sampling_rate - 1)/sampling_rate; "
                                "min_feature_frames = max(0, (4*max_dred_features + dred_offset + 3)/4), so the "
                                "chunks read cover the request from the payload's own offset "
                                "(dnn/dred_decoder.c:dred_ec_decode, libopus master commits 5a8a2be8 and "
                                "9bb5c28c, 2026-06-08)",
        },
    },
    "extension_syntax": {
        "summary": "how the padding's extensions are walked",
        "default": None,
        "variants": {
            "v1": "id 2 is an ordinary short extension; separators may go past the packet's frame count "
                  "(src/extensions.c, 1.5.x)",
            "rte": "id 2 is Repeat These Extensions; frames limited to the packet's frame count; malformed "
                   "padding before the DRED is an invalid packet (src/extensions.c, 1.6.x)",
        },
    },
    "foreign_version": {
        "summary": "a DRED extension whose experimental version byte is not the profile's",
        "default": "skip",
        "variants": {
            "skip": "passed over; the search goes on to the next DRED extension, and a packet with none of "
                    "the profile's version has no DRED, without an error (src/opus_decoder.c:"
                    "dred_find_payload, 1.5.x and 1.6.x)",
        },
    },
}


class ProfileError(OpusDredError):
    """A profile description that cannot be read, or that disagrees with its model pack."""

    def __init__(self, message: str, *, profile: str | None = None) -> None:
        self.message = message
        self.profile = profile
        super().__init__(message + (f" (profile {profile})" if profile else ""))


class UnknownProfileError(ProfileError):
    """No profile of that name; ``known`` lists the names there are."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.known = known
        super().__init__(f"unknown profile {name!r}; known: {', '.join(known) or 'none'}", profile=name)


@dataclass(frozen=True)
class DredStats:
    """The DRED statistics tables of a model, as read-only uint8 arrays shaped ``[quant_levels, dim]``.

    Row ``q`` holds the values for quantizer level ``q`` (``dnn/dred_decoder.c`` indexes them at
    ``q_level * DIM``). Names map to the libopus arrays ``dred_{latent,state}_{quant_scales,
    dead_zone,r,p0}_q8``.
    """

    latent_scale: np.ndarray
    latent_dead_zone: np.ndarray
    latent_r: np.ndarray
    latent_p0: np.ndarray
    state_scale: np.ndarray
    state_dead_zone: np.ndarray
    state_r: np.ndarray
    state_p0: np.ndarray

    #: attribute → C array name in the pack
    C_NAMES = {
        "latent_scale": "dred_latent_quant_scales_q8",
        "latent_dead_zone": "dred_latent_dead_zone_q8",
        "latent_r": "dred_latent_r_q8",
        "latent_p0": "dred_latent_p0_q8",
        "state_scale": "dred_state_quant_scales_q8",
        "state_dead_zone": "dred_state_dead_zone_q8",
        "state_r": "dred_state_r_q8",
        "state_p0": "dred_state_p0_q8",
    }

    def table(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))


@dataclass(frozen=True)
class Profile:
    """One bitstream variant and its constants (see the module docstring for their sources)."""

    name: str
    description: str
    draft: str | None
    dred_version: int
    extension_id: int
    extension_syntax: str
    latent_dim: int
    state_dim: int
    has_q_feature: bool
    max_latents: int
    num_features: int
    quant_levels: int
    model_pack: str
    dq_table: tuple[int, ...]
    chunk_bound: str = CHUNK_BOUND_RELEASE
    foreign_version: str = "skip"
    source: str | None = None  # file the description was read from
    notes: tuple[str, ...] = field(default=(), compare=False)

    def rules(self) -> dict[str, str]:
        """The behaviour rules (:data:`BEHAVIOUR_RULES`) and the variant this profile follows."""
        return {k: getattr(self, k) for k in BEHAVIOUR_RULES}

    @property
    def experimental_prefix(self) -> bytes:
        """The bytes that open the extension payload: ``'D'`` and the experimental version byte."""
        return EXPERIMENTAL_MAGIC + bytes([self.dred_version])

    @property
    def latent_stride(self) -> int:
        """Values stored per latent vector for the RDO-VAE decoder (latents plus the q feature)."""
        return self.latent_dim + (1 if self.has_q_feature else 0)

    @property
    def stats(self) -> DredStats:
        """The statistics tables, loaded from the model pack on first use."""
        return _stats_for(self.model_pack, self.quant_levels, self.latent_dim, self.state_dim, _packs_key())

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "draft": self.draft,
            "dred_version": self.dred_version,
            "extension_id": self.extension_id,
            "experimental_prefix": self.experimental_prefix.hex(),
            "extension_syntax": self.extension_syntax,
            "latent_dim": self.latent_dim,
            "state_dim": self.state_dim,
            "has_q_feature": self.has_q_feature,
            "latent_stride": self.latent_stride,
            "max_latents": self.max_latents,
            "num_features": self.num_features,
            "quant_levels": self.quant_levels,
            "model_pack": self.model_pack,
            "dq_table": list(self.dq_table),
            "chunk_bound": self.chunk_bound,
            "foreign_version": self.foreign_version,
            "source": self.source,
            "notes": list(self.notes),
        }


def _packs_key() -> str:
    """What decides where packs are found (the cache key of what is read from them)."""
    return os.environ.get("OPUS_DRED_PACKS_PATH", "") + "|" + os.environ.get(DERIVED_ENV, "") + "|" + \
        os.environ.get("OPUS_DRED_CACHE", "")


@functools.lru_cache(maxsize=None)
def _stats_for(pack_id: str, levels: int, latent_dim: int, state_dim: int, _packs_path: str) -> DredStats:
    try:
        pack = load_pack(pack_id)
    except PackError as exc:
        raise ProfileError(f"cannot load model pack {pack_id!r}: {exc}") from None
    out = {}
    for attr, cname in DredStats.C_NAMES.items():
        dim = latent_dim if attr.startswith("latent") else state_dim
        try:
            a = pack.array(cname)
        except PackError:
            raise ProfileError(f"model pack {pack_id!r} lacks {cname}") from None
        if a.dtype != np.uint8 or a.size != levels * dim:
            raise ProfileError(f"model pack {pack_id!r}: {cname} is {a.dtype}[{a.size}], expected uint8[{levels}*{dim}]")
        t = a.reshape(levels, dim).copy()
        t.flags.writeable = False
        out[attr] = t
    return DredStats(**out)


# --------------------------------------------------------------------------------------------
# loading

_REQUIRED = ("name", "description", "dred_version", "extension_id", "extension_syntax", "latent_dim",
             "state_dim", "has_q_feature", "max_latents", "num_features", "quant_levels", "model_pack",
             "dq_table")


def derived_profiles_dir() -> Path:
    """Where derived descriptions are written and found: ``profiles/`` of the derived area."""
    return derived_dir() / "profiles"


def profile_dirs() -> list[Path]:
    """Directories searched for descriptions, in order: ``$OPUS_DRED_PROFILES_PATH``, the packaged one, then the
    derived area's (a derived description never hides a packaged one of the same name)."""
    dirs = [Path(p).expanduser() for p in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if p]
    dirs.append(PACKAGED_DIR)
    dirs.append(derived_profiles_dir())
    return dirs


def is_packaged(name: str) -> bool:
    """Whether ``name`` is one of the descriptions shipped in ``bitstream/profiles/``."""
    return (PACKAGED_DIR / f"{name}.json").is_file()


def _description_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in profile_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.json")):
            found.setdefault(p.stem, p)
    return found


def list_profiles() -> list[str]:
    """Names of every profile described (packaged and in ``$OPUS_DRED_PROFILES_PATH``)."""
    return sorted(_description_files())


def get_profile(name: str) -> Profile:
    """The profile of that name, checked against its model pack's constants.

    Raises :class:`UnknownProfileError` (listing the known names) or :class:`ProfileError`.
    """
    files = _description_files()
    path = files.get(name)
    if path is None:
        raise UnknownProfileError(name, sorted(files))
    st = path.stat()
    return _load(str(path), st.st_mtime_ns, st.st_size, _packs_key())


def profile_for_version(version_byte: int) -> Profile | None:
    """The profile whose experimental version byte is ``version_byte`` (packaged profiles first,
    then by name), or ``None``. Descriptions that cannot be read are passed over here."""
    files = _description_files()
    key = tuple(sorted((n, str(p), p.stat().st_mtime_ns) for n, p in files.items()))
    name = _version_map(key).get(version_byte)
    return get_profile(name) if name is not None else None


@functools.lru_cache(maxsize=16)
def _version_map(key: tuple) -> dict[int, str]:
    out: dict[int, str] = {}
    order = sorted(key, key=lambda t: (Path(t[1]).parent != PACKAGED_DIR, t[0]))
    for n, path, _ in order:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        v = raw.get("dred_version") if isinstance(raw, dict) else None
        if isinstance(v, int) and v not in out:
            out[v] = n
    return out


@functools.lru_cache(maxsize=64)
def _load(path_s: str, _mtime: int, _size: int, _packs_path: str) -> Profile:
    path = Path(path_s)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read {path}: {exc}", profile=path.stem) from None
    return profile_from_dict(raw, source=str(path), expected_name=path.stem)


def profile_from_dict(raw: dict, *, source: str | None = None, expected_name: str | None = None,
                      check_pack: bool = True) -> Profile:
    """Build a :class:`Profile` from a description and check it against its model pack."""
    pname = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise ProfileError("a profile description must be a JSON object", profile=expected_name)
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ProfileError(f"description lacks {missing}", profile=pname or expected_name)
    if expected_name is not None and pname != expected_name:
        raise ProfileError(f"file {expected_name}.json names the profile {pname!r}", profile=expected_name)
    ints = ("dred_version", "extension_id", "latent_dim", "state_dim", "max_latents", "num_features", "quant_levels")
    for k in ints:
        if not isinstance(raw[k], int) or isinstance(raw[k], bool) or raw[k] < 0:
            raise ProfileError(f"{k} must be a non-negative integer, not {raw[k]!r}", profile=pname)
    if not 0 <= raw["dred_version"] <= 255:
        raise ProfileError("dred_version must fit in one byte", profile=pname)
    if not 32 <= raw["extension_id"] <= 127:
        raise ProfileError("extension_id must be a long-extension id (32..127)", profile=pname)
    if raw["extension_syntax"] not in EXTENSION_SYNTAXES:
        raise ProfileError(f"extension_syntax must be one of {EXTENSION_SYNTAXES}", profile=pname)
    if not isinstance(raw["has_q_feature"], bool):
        raise ProfileError("has_q_feature must be true or false", profile=pname)
    dq = raw["dq_table"]
    if not (isinstance(dq, list) and len(dq) == 8 and all(isinstance(x, int) and x >= 0 for x in dq)):
        raise ProfileError("dq_table must be a list of 8 non-negative integers (dQ is coded on 3 bits)", profile=pname)
    draft = raw.get("draft")
    if draft is not None and not isinstance(draft, str):
        raise ProfileError("draft must be a string or null", profile=pname)
    chunk_bound = raw.get("chunk_bound", CHUNK_BOUND_RELEASE)
    if chunk_bound not in CHUNK_BOUND_RULES:
        raise ProfileError(f"chunk_bound must be one of {CHUNK_BOUND_RULES}, not {chunk_bound!r}", profile=pname)
    foreign = raw.get("foreign_version", "skip")
    if foreign not in FOREIGN_VERSION_RULES:
        raise ProfileError(f"foreign_version must be one of {FOREIGN_VERSION_RULES}, not {foreign!r}", profile=pname)
    prof = Profile(
        name=pname,
        description=str(raw["description"]),
        draft=draft,
        dred_version=raw["dred_version"],
        extension_id=raw["extension_id"],
        extension_syntax=raw["extension_syntax"],
        latent_dim=raw["latent_dim"],
        state_dim=raw["state_dim"],
        has_q_feature=raw["has_q_feature"],
        max_latents=raw["max_latents"],
        num_features=raw["num_features"],
        quant_levels=raw["quant_levels"],
        model_pack=str(raw["model_pack"]),
        dq_table=tuple(dq),
        chunk_bound=chunk_bound,
        foreign_version=foreign,
        source=source,
        notes=tuple(str(n) for n in raw.get("notes", [])),
    )
    if check_pack:
        check_against_pack(prof)
    return prof


def check_against_pack(prof: Profile) -> None:
    """Raise :class:`ProfileError` where the profile's constants differ from its model pack's."""
    try:
        m = load_manifest(prof.model_pack)
    except PackError as exc:
        raise ProfileError(f"model pack {prof.model_pack!r}: {exc}", profile=prof.name) from None
    c = m.get("constants", {})
    expect = {
        "DRED_EXPERIMENTAL_VERSION": prof.dred_version,
        "DRED_EXTENSION_ID": prof.extension_id,
        "DRED_LATENT_DIM": prof.latent_dim,
        "DRED_STATE_DIM": prof.state_dim,
        "DRED_NUM_FEATURES": prof.num_features,
        "DRED_NUM_QUANTIZATION_LEVELS": prof.quant_levels,
    }
    bad = [f"{k}: profile {v}, pack {c.get(k)}" for k, v in expect.items() if c.get(k) != v]
    if "DRED_NUM_REDUNDANCY_FRAMES" in c and c["DRED_NUM_REDUNDANCY_FRAMES"] // 2 != prof.max_latents:
        bad.append(f"max_latents: profile {prof.max_latents}, pack DRED_NUM_REDUNDANCY_FRAMES/2 "
                   f"{c['DRED_NUM_REDUNDANCY_FRAMES'] // 2}")
    if c.get("DRED_EXPERIMENTAL_BYTES", 2) != len(prof.experimental_prefix):
        bad.append(f"DRED_EXPERIMENTAL_BYTES: pack {c.get('DRED_EXPERIMENTAL_BYTES')}, profile prefix has 2 bytes")
    dense1 = m.get("layers", {}).get("dec_dense1")
    if dense1 is not None and dense1.get("nb_inputs") != prof.latent_stride:
        bad.append(f"decoder input width: pack dec_dense1 takes {dense1.get('nb_inputs')}, profile latent_dim "
                   f"{prof.latent_dim} + q feature {int(prof.has_q_feature)}")
    sizes = {e["name"]: (e["dtype"], e["shape"]) for e in m.get("arrays", [])}
    for attr, cname in DredStats.C_NAMES.items():
        dim = prof.latent_dim if attr.startswith("latent") else prof.state_dim
        got = sizes.get(cname)
        if got is None:
            bad.append(f"{cname}: not in the pack")
        elif got[0] != "uint8" or got[1] != [prof.quant_levels * dim]:
            bad.append(f"{cname}: pack {got[0]}{got[1]}, profile needs uint8[{prof.quant_levels * dim}]")
    if bad:
        raise ProfileError("constants disagree with model pack " + repr(prof.model_pack) + ": " + "; ".join(bad),
                           profile=prof.name)


# --------------------------------------------------------------------------------------------
# comparison


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def diff_profiles(a: Profile, b: Profile) -> dict:
    """What differs between two profiles: constants, statistics tables, model pack, payload layout."""
    consts = ("dred_version", "extension_id", "latent_dim", "state_dim", "num_features", "quant_levels",
              "max_latents", "dq_table", "draft")
    constants = {}
    for k in consts:
        va, vb = getattr(a, k), getattr(b, k)
        if isinstance(va, tuple):
            va, vb = list(va), list(vb)
        if va != vb:
            constants[k] = {"a": va, "b": vb}
    if a.experimental_prefix != b.experimental_prefix:
        constants["experimental_prefix"] = {"a": a.experimental_prefix.hex(), "b": b.experimental_prefix.hex()}
    layout = {}
    for k in ("latent_stride", "has_q_feature", "extension_syntax"):
        va, vb = getattr(a, k), getattr(b, k)
        if va != vb:
            layout[k] = {"a": va, "b": vb}
    tables = {}
    sa, sb = a.stats, b.stats
    for name in sa.names():
        ta, tb = sa.table(name), sb.table(name)
        entry = {"a": {"sha256": _sha(ta), "shape": list(ta.shape)},
                 "b": {"sha256": _sha(tb), "shape": list(tb.shape)}}
        entry["equal"] = entry["a"]["sha256"] == entry["b"]["sha256"] and ta.shape == tb.shape
        if ta.shape == tb.shape:
            entry["max_abs_diff"] = int(np.max(np.abs(ta.astype(np.int16) - tb.astype(np.int16)))) if ta.size else 0
        else:
            entry["max_abs_diff"] = None
        tables[name] = entry
    model = None
    if a.model_pack != b.model_pack:
        model = {"a": a.model_pack, "b": b.model_pack}
    rules = {}
    for k, spec in BEHAVIOUR_RULES.items():
        va, vb = getattr(a, k), getattr(b, k)
        if va != vb:
            rules[k] = {"a": va, "b": vb, "summary": spec["summary"], "a_means": spec["variants"].get(va, ""),
                        "b_means": spec["variants"].get(vb, "")}
            if k == "chunk_bound":
                rules[k]["figures"] = chunk_bound_figures(va, vb, max_latents=min(a.max_latents, b.max_latents))
    return {"a": a.name, "b": b.name, "constants": constants, "payload_layout": layout, "rules": rules,
            "tables": tables, "model_pack": model,
            "identical": not constants and not layout and not rules and model is None
            and all(t["equal"] for t in tables.values())}


#: the grid :func:`chunk_bound_figures` measures on: requests of 0 to 1040 ms in 2.5 ms steps at 48 kHz, and the
#: offsets a one-frame packet codes without the extended offset (``dred_offset`` 16 - offset for offset 0..31)
FIGURE_RATE = 48000
FIGURE_REQUESTS_MS = tuple(x * 2.5 for x in range(0, 417))
FIGURE_OFFSETS = tuple(range(-15, 17))


def chunk_bound_figures(rule_a: str, rule_b: str, *, max_latents: int = 26) -> dict:
    """How two ``chunk_bound`` rules differ on a payload holding ``max_latents`` chunks, over
    :data:`FIGURE_REQUESTS_MS` x :data:`FIGURE_OFFSETS` at 48 kHz: the points where they read a different number
    of chunks; per rule the points whose coverage (``opus_dred_parse``'s return) falls short of the request
    although the payload holds enough chunks ("short"), and the chunks read beyond the fewest that cover the
    request ("excess"); one example point where they differ."""
    pts = diff = 0
    short = {rule_a: 0, rule_b: 0}
    excess = {rule_a: 0, rule_b: 0}
    example = None
    for ms in FIGURE_REQUESTS_MS:
        req = int(ms * FIGURE_RATE / 1000)
        for off in FIGURE_OFFSETS:
            pts += 1
            need = _fewest_covering(req, off, max_latents)
            got = {}
            for r in (rule_a, rule_b):
                n = latents_for_request(req, FIGURE_RATE, max_latents, rule=r, dred_offset=off)
                got[r] = n
                if need is not None and n < need:
                    short[r] += 1
                if need is not None and n > need:
                    excess[r] += n - need
            if got[rule_a] != got[rule_b]:
                diff += 1
                if example is None or (off > 0 and example["dred_offset"] <= 0 and ms >= 20):
                    example = {"request_ms": ms, "dred_offset": off, "fewest_covering": need,
                               rule_a: got[rule_a], rule_b: got[rule_b]}
    return {"points": pts, "differ": diff, "short": short, "excess_chunks": excess, "example": example,
            "grid": f"requests 0..1040 ms in 2.5 ms steps x dred_offset {FIGURE_OFFSETS[0]}..{FIGURE_OFFSETS[-1]}, "
                    f"48 kHz, {max_latents} chunks in the payload"}


def _fewest_covering(req: int, dred_offset: int, max_latents: int) -> int | None:
    """The fewest chunks whose coverage ``n*rate/25 - dred_offset*rate/400`` reaches ``req`` samples, ``None``
    when even ``max_latents`` do not (``src/opus_decoder.c:opus_dred_parse``'s return value)."""
    for n in range(0, max_latents + 1):
        if parse_return(n, dred_offset, FIGURE_RATE) >= req:
            return n
    return None
