"""Model packs: the RDO-VAE weights and DRED statistics tables of one libopus model, as data.

A pack is a directory ``<pack id>/`` holding

* ``manifest.json``: format version, pack id, source (release, tarball and its sha256, model hash,
  DRED experimental version), the constants of ``dnn/dred_rdovae_constants.h`` and
  ``dnn/dred_config.h`` under their C names, one entry per array (name, dtype, shape, sha256 of its
  little-endian bytes, the C file and type, the preprocessor conditions it sits under), the layers
  (``linear_init`` calls of ``init_rdovaedec`` / ``init_rdovaeenc``), and the licence of the data;
* ``arrays.npz``: every array under its C name, as a 1-D array of the C element type.

Packs are found in the packaged directory ``models/packs/`` and in the directories named by
``OPUS_DRED_PACKS_PATH`` (colon-separated; searched first), then in ``packs/`` of the derived area
(:func:`derived_dir`), so a pack is added by files alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from opus_dred.models._extract import extract

from opus_dred.errors import OpusDredError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
PACKS_ENV = "OPUS_DRED_PACKS_PATH"
DERIVED_ENV = "OPUS_DRED_DERIVED_DIR"
PACKAGED_DIR = Path(__file__).resolve().parent / "packs"


class PackError(OpusDredError):
    """A model pack that cannot be found, read or trusted."""

    def __init__(self, message: str, *, pack: str | None = None, array: str | None = None) -> None:
        self.message = message
        self.pack = pack
        self.array = array
        parts = [message]
        if array:
            parts.append(f"[array {array}]")
        if pack:
            parts.append(f"(pack {pack})")
        super().__init__(" ".join(parts))


class UnknownPackError(PackError):
    """No pack of that id in any pack directory."""

    def __init__(self, pack_id: str, known: list[str]) -> None:
        self.known = known
        super().__init__(f"unknown model pack {pack_id!r}; known: {', '.join(known) or 'none'}", pack=pack_id)


class PackIntegrityError(PackError):
    """An array whose bytes, dtype or shape differ from the manifest (or one missing/extra)."""


def array_sha256(a: np.ndarray) -> str:
    """sha256 of an array's little-endian C-order bytes."""
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian):
        a = a.astype(a.dtype.newbyteorder("<"))
    return hashlib.sha256(a.tobytes()).hexdigest()


def derived_dir() -> Path:
    """The user's area for what is derived from a libopus tree (``opus-dred profiles derive``, ``opus-dred
    upstream register``), never the repository: ``$OPUS_DRED_DERIVED_DIR``, else ``derived/`` in the cache folder
    (``$OPUS_DRED_CACHE``, else the XDG cache directory ``~/.cache/opus-dred``). It holds ``profiles/``,
    ``packs/`` and ``vectors/``."""
    env = os.environ.get(DERIVED_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("OPUS_DRED_CACHE")
    if cache:
        return Path(cache).expanduser() / "derived"
    from platformdirs import user_cache_dir  # lazy: a third-party import only where no folder is named

    return Path(user_cache_dir("opus-dred")) / "derived"


def pack_dirs() -> list[Path]:
    """Directories searched for packs, in order: ``$OPUS_DRED_PACKS_PATH`` entries, the packaged one, then
    ``packs/`` of the derived area (:func:`derived_dir`; a derived pack never hides a packaged one)."""
    dirs = [Path(p).expanduser() for p in os.environ.get(PACKS_ENV, "").split(os.pathsep) if p]
    dirs.append(PACKAGED_DIR)
    dirs.append(derived_dir() / "packs")
    return dirs


def _find(pack_id: str) -> Path | None:
    for d in pack_dirs():
        p = d / pack_id
        if (p / MANIFEST).is_file():
            return p
    return None


def list_packs() -> list[str]:
    """Ids of every pack found (each once; the first directory holding an id wins)."""
    seen: list[str] = []
    for d in pack_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if (p / MANIFEST).is_file() and p.name not in seen:
                seen.append(p.name)
    return sorted(seen)


@dataclass
class ModelPack:
    """One loaded model pack. ``arrays`` are read-only numpy arrays keyed by their C names."""

    id: str
    path: Path
    manifest: dict
    arrays: dict[str, np.ndarray] = field(repr=False)

    @property
    def constants(self) -> dict[str, int]:
        """The C constants (``DRED_LATENT_DIM`` …) of the release the pack was extracted from."""
        return dict(self.manifest["constants"])

    @property
    def source(self) -> dict:
        return dict(self.manifest["source"])

    @property
    def licence(self) -> dict:
        return dict(self.manifest["licence"])

    @property
    def layers(self) -> dict[str, dict]:
        return dict(self.manifest["layers"])

    def layer(self, name: str) -> dict:
        """The ``linear_init`` description of a layer: arrays used, nb_inputs, nb_outputs."""
        try:
            return dict(self.manifest["layers"][name])
        except KeyError:
            raise PackError(f"no layer {name!r}", pack=self.id) from None

    def array(self, name: str) -> np.ndarray:
        try:
            return self.arrays[name]
        except KeyError:
            raise PackError(f"no array {name!r}", pack=self.id, array=name) from None

    def array_info(self, name: str) -> dict:
        for e in self.manifest["arrays"]:
            if e["name"] == name:
                return dict(e)
        raise PackError(f"no array {name!r}", pack=self.id, array=name)

    def verify(self) -> None:
        """Recompute every array's sha256 (and check dtype, shape, presence) against the manifest.

        Raises :class:`PackIntegrityError` naming the first array that differs.
        """
        listed = {e["name"] for e in self.manifest["arrays"]}
        for extra in sorted(set(self.arrays) - listed):
            raise PackIntegrityError("array not listed in the manifest", pack=self.id, array=extra)
        for e in self.manifest["arrays"]:
            name = e["name"]
            a = self.arrays.get(name)
            if a is None:
                raise PackIntegrityError("array listed in the manifest is missing", pack=self.id, array=name)
            if a.dtype.name != e["dtype"]:
                raise PackIntegrityError(f"dtype {a.dtype.name}, manifest says {e['dtype']}", pack=self.id, array=name)
            if list(a.shape) != list(e["shape"]):
                raise PackIntegrityError(f"shape {list(a.shape)}, manifest says {e['shape']}", pack=self.id, array=name)
            got = array_sha256(a)
            if got != e["sha256"]:
                raise PackIntegrityError(f"sha256 {got} differs from the manifest's {e['sha256']}", pack=self.id, array=name)


def find_pack(pack_id: str) -> Path:
    """The directory of a pack id (first match in :func:`pack_dirs`)."""
    found = _find(pack_id)
    if found is None:
        raise UnknownPackError(pack_id, list_packs())
    return found


def load_manifest(pack_id: str) -> dict:
    """A pack's manifest alone (cheap: the arrays are not read)."""
    path = find_pack(pack_id)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise PackError(f"cannot read {path / MANIFEST}: {exc}", pack=pack_id) from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise PackError(f"unsupported pack format (expected {FORMAT_VERSION})", pack=pack_id)
    return manifest


def load_pack(pack: str | os.PathLike, *, verify: bool = False) -> ModelPack:
    """Load a pack by id (searched in :func:`pack_dirs`) or from a pack directory path."""
    p = Path(pack)
    if (p / MANIFEST).is_file() and (os.sep in str(pack) or not _find(str(pack))):
        path = p
    else:
        found = _find(str(pack))
        if found is None:
            raise UnknownPackError(str(pack), list_packs())
        path = found
    return _load_dir(path, verify=verify)


def _load_dir(path: Path, *, verify: bool) -> ModelPack:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise PackError(f"cannot read {path / MANIFEST}: {exc}", pack=path.name) from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise PackError(f"unsupported pack format {manifest.get('format_version') if isinstance(manifest, dict) else '?'}"
                        f" (expected {FORMAT_VERSION})", pack=path.name)
    pid = manifest.get("id", path.name)
    for key in ("arrays", "constants", "layers", "source", "licence"):
        if key not in manifest:
            raise PackError(f"manifest lacks {key!r}", pack=pid)
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path / ARRAYS, allow_pickle=False) as z:
            for name in z.files:
                a = z[name]
                a.flags.writeable = False
                arrays[name] = a
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise PackError(f"cannot read {path / ARRAYS}: {exc}", pack=pid) from None
    mp = ModelPack(id=pid, path=path, manifest=manifest, arrays=arrays)
    if verify:
        mp.verify()
    return mp


def write_pack(out_dir: str | os.PathLike, pack_id: str, extracted) -> Path:
    """Write ``<out_dir>/<pack_id>/{manifest.json,arrays.npz}`` from an
    :class:`opus_dred.models._extract.Extracted`. Returns the pack directory."""
    d = Path(out_dir) / pack_id
    d.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, a in extracted.arrays.items():
        info = extracted.array_info.get(name, {})
        entries.append({
            "name": name,
            "dtype": a.dtype.name,
            "shape": list(a.shape),
            "sha256": array_sha256(a),
            "file": info.get("file"),
            "ctype": info.get("ctype"),
            "weight_type": info.get("weight_type"),
            "table": info.get("table"),
            "conditional": list(info.get("conditional", [])),
        })
    manifest = {
        "format_version": FORMAT_VERSION,
        "id": pack_id,
        "description": f"DRED RDO-VAE decoder and encoder weights, statistics tables, PitchDNN, FARGAN and PLC "
                       f"weights and the LPCNet feature extractor's DSP tables of libopus "
                       f"{extracted.source.get('release')} (DRED experimental version "
                       f"{extracted.source.get('dred_experimental_version')})",
        "source": extracted.source,
        "licence": extracted.licence,
        "constants": extracted.constants,
        "weight_tables": extracted.tables,
        "layers": extracted.layers,
        "arrays": entries,
    }
    tmp = d / (ARRAYS + ".tmp.npz")
    np.savez_compressed(tmp, **{k: np.ascontiguousarray(v) for k, v in extracted.arrays.items()})
    tmp.replace(d / ARRAYS)
    (d / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return d


# --------------------------------------------------------------------------------------------
# comparison with the release sources


def compare_with_extracted(pack: ModelPack, extracted) -> list[str]:
    """Differences between a pack and a fresh extraction (empty when they agree exactly)."""
    diffs: list[str] = []
    listed = {e["name"]: e for e in pack.manifest["arrays"]}
    for name in sorted(set(listed) | set(extracted.arrays)):
        if name not in extracted.arrays:
            diffs.append(f"{name}: in the pack, not in the source")
        elif name not in listed:
            diffs.append(f"{name}: in the source, not in the pack")
        else:
            a = extracted.arrays[name]
            e = listed[name]
            if a.dtype.name != e["dtype"] or list(a.shape) != list(e["shape"]):
                diffs.append(f"{name}: {a.dtype.name}{list(a.shape)} in the source, {e['dtype']}{e['shape']} in the pack")
            elif array_sha256(a) != e["sha256"]:
                diffs.append(f"{name}: sha256 differs")
    if extracted.constants != pack.manifest["constants"]:
        keys = sorted(set(extracted.constants) | set(pack.manifest["constants"]))
        for k in keys:
            if extracted.constants.get(k) != pack.manifest["constants"].get(k):
                diffs.append(f"constant {k}: {extracted.constants.get(k)} in the source, "
                             f"{pack.manifest['constants'].get(k)} in the pack")
    if json.loads(json.dumps(extracted.layers)) != pack.manifest["layers"]:
        diffs.append("layers differ")
    return diffs


def verify_against_source(pack: ModelPack, source: str | os.PathLike | None) -> list[str]:
    """Re-extract the pack's release from ``source`` (a source tree or tarball; the upstream manager finds
    the release's own tree: ``opus_dred.libopus.source_for_pack``) and list the differences. Raises
    :class:`PackError` if there is no source."""
    if source is None:
        raise PackError("no libopus source for this release (run `opus-dred upstream fetch`, or pass one)", pack=pack.id)
    src = Path(source)
    ex = extract(src, release=pack.source.get("release"), tarball_name=pack.source.get("tarball"),
                 tarball_sha256=pack.source.get("tarball_sha256"))
    return compare_with_extracted(pack, ex)
