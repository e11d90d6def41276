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
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from opus_dred.models._pack import PackError, load_manifest, load_pack

from opus_dred.errors import OpusDredError

PROFILES_ENV = "OPUS_DRED_PROFILES_PATH"
PACKAGED_DIR = Path(__file__).resolve().parent / "profiles"
EXTENSION_SYNTAXES = ("v1", "rte")
EXPERIMENTAL_MAGIC = b"D"


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
    source: str | None = None  # file the description was read from
    notes: tuple[str, ...] = field(default=(), compare=False)

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
        return _stats_for(self.model_pack, self.quant_levels, self.latent_dim, self.state_dim,
                          os.environ.get("OPUS_DRED_PACKS_PATH", ""))

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
            "source": self.source,
            "notes": list(self.notes),
        }


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


def profile_dirs() -> list[Path]:
    """Directories searched for descriptions, in order: ``$OPUS_DRED_PROFILES_PATH``, then the packaged one."""
    dirs = [Path(p).expanduser() for p in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if p]
    dirs.append(PACKAGED_DIR)
    return dirs


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
    return _load(str(path), st.st_mtime_ns, st.st_size, os.environ.get("OPUS_DRED_PACKS_PATH", ""))


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
    return {"a": a.name, "b": b.name, "constants": constants, "payload_layout": layout, "tables": tables,
            "model_pack": model,
            "identical": not constants and not layout and model is None and all(t["equal"] for t in tables.values())}
