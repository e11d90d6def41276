"""Test-vector format 1: reading and writing case folders and the manifest (``docs/vector-format.md``).

A *case* is a folder ``<root>/<profile>/<handler>/<suite>/<case>/`` holding ``meta.json`` and plain data parts.
This module is the only place that knows how the files look; the generator writes through :func:`write_case`
and the conformance runner reads through :func:`load_case` / :func:`iter_cases`. The handlers a case may name,
with the fields each one compares, are the registry :data:`opus_dred.vectors._handlers.HANDLERS`.

Values in ``meta.json``'s ``inputs`` and ``expected`` maps are either inline JSON values or the name of a file
in the case folder; a string is a file name exactly when it matches :data:`FILE_NAME_RE` (a plain name ending in
one of :data:`EXTENSIONS`). Loading turns files into Python values:

=========  ==========================================================================
``.bin``   ``bytes``
``.bit``   ``bytes`` (an opus_demo bitstream or a DRED-only stream, as the case says)
``.f32``   ``np.ndarray`` float32, shape ``(-1, 20)`` (little-endian on disk)
``.sw``    ``np.ndarray`` int16, 1-D (little-endian on disk)
``.npy``   ``np.ndarray`` as stored (NumPy format 1.0)
``.json``  the parsed JSON value
=========  ==========================================================================

Everything written is deterministic: JSON with sorted keys, ASCII only, no NaN, Python's shortest round-trip
float formatting; arrays in little-endian C order; ``.npy`` header version 1.0.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
from opus_dred.bitstream._errors import FormatError

from opus_dred import __version__

#: The version string in every ``meta.json``.
FORMAT = "opus-dred-vector/1"
#: The version string of ``manifest.json``.
MANIFEST_FORMAT = "opus-dred-vectors/1"
#: Extensions a data part may have.
EXTENSIONS = (".bin", ".bit", ".f32", ".sw", ".npy", ".json")
#: A string value in ``inputs``/``expected`` that matches this is a file name in the case folder.
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.(bin|bit|f32|sw|npy|json)$")
#: Allowed profile, handler, suite and case names.
NAME_RE = re.compile(r"^[a-z0-9_.-]+$")
#: Floats per feature frame in ``.f32`` files.
NB_FEATURES = 20

META = "meta.json"
MANIFEST = "manifest.json"


def suite_root() -> Path:
    """The canonical suite committed in the repository (``vectors/suite``)."""
    return Path(__file__).resolve().parent / "suite"


# --------------------------------------------------------------------------------------------------------------
# JSON and data parts
# --------------------------------------------------------------------------------------------------------------
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any, *, indent: int | None = 1) -> str:
    """Canonical JSON text: sorted keys, ASCII, no NaN/Infinity, trailing newline; bytes become lowercase hex."""
    sep = (",", ": ") if indent is not None else (",", ":")
    return json.dumps(_jsonable(obj), sort_keys=True, indent=indent, separators=sep, ensure_ascii=True,
                      allow_nan=False) + "\n"


@dataclass(frozen=True)
class Part:
    """A value to be stored as a file of the case folder (``write_case``), named ``filename``."""

    filename: str
    value: Any


def encode_part(filename: str, value: Any) -> bytes:
    """The bytes of data part ``filename`` holding ``value`` (the extension decides the encoding)."""
    ext = Path(filename).suffix
    if ext in (".bin", ".bit"):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"{filename}: bytes expected, got {type(value).__name__}")
        return bytes(value)
    if ext == ".f32":
        a = np.asarray(value, dtype=np.float32)
        if a.ndim == 2 and a.shape[1] != NB_FEATURES:
            raise ValueError(f"{filename}: feature frames must hold {NB_FEATURES} values, got {a.shape}")
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if ext == ".sw":
        a = np.asarray(value)
        if a.dtype != np.int16:
            raise TypeError(f"{filename}: int16 samples expected, got {a.dtype}")
        return np.ascontiguousarray(a, dtype="<i2").tobytes()
    if ext == ".npy":
        a = np.asarray(value)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(a), version=(1, 0), allow_pickle=False)
        return buf.getvalue()
    if ext == ".json":
        return dumps_json(value, indent=None).encode("ascii")
    raise ValueError(f"{filename}: unknown data part extension {ext!r} (known: {', '.join(EXTENSIONS)})")


def decode_part(filename: str, data: bytes) -> Any:
    """Parse data part ``filename`` from its bytes; a malformed part raises :class:`FormatError`."""
    ext = Path(filename).suffix
    try:
        if ext in (".bin", ".bit"):
            return bytes(data)
        if ext == ".f32":
            if len(data) % (4 * NB_FEATURES):
                raise FormatError(f"{filename}: {len(data)} bytes is not a whole number of feature frames",
                                  byte_offset=len(data) - len(data) % (4 * NB_FEATURES), rule="vector: .f32 frames")
            return np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(-1, NB_FEATURES)
        if ext == ".sw":
            if len(data) % 2:
                raise FormatError(f"{filename}: odd byte count", byte_offset=len(data) - 1, rule="vector: .sw")
            return np.frombuffer(data, dtype="<i2").astype(np.int16)
        if ext == ".npy":
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        if ext == ".json":
            return json.loads(data.decode("utf-8"))
    except FormatError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{filename}: {exc}", byte_offset=0, rule=f"vector: {ext}") from exc
    raise FormatError(f"{filename}: unknown data part extension {ext!r}", byte_offset=0, rule="vector: extension")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One test case, with its data parts loaded.

    ``inputs`` and ``expected`` hold values (bytes, arrays, parsed JSON, inline values); ``files`` maps
    ``"inputs.<key>"`` / ``"expected.<key>"`` to the file name a value came from. ``meta`` is ``meta.json`` as
    stored.
    """

    profile: str
    handler: str
    suite: str
    name: str
    path: Path | None = None
    description: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    tolerance: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``profile/handler/suite/name``: unique within a suite root."""
        return f"{self.profile}/{self.handler}/{self.suite}/{self.name}"

    @property
    def relpath(self) -> str:
        return self.id


def _is_file_ref(value: Any) -> bool:
    return isinstance(value, str) and FILE_NAME_RE.match(value) is not None


def _load_map(folder: Path, raw: Any, where: str, files: dict[str, str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise FormatError(f"{folder / META}: {where!r} must be an object", byte_offset=0, rule=f"vector: {where}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if _is_file_ref(value):
            p = folder / value
            if not p.is_file():
                raise FormatError(f"{folder}: {where}.{key} names {value}, which is missing", byte_offset=0,
                                  rule="vector: missing part")
            out[key] = decode_part(value, p.read_bytes())
            files[f"{where}.{key}"] = value
        else:
            out[key] = value
    return out


def load_case(path: str | Path) -> Case:
    """Load the case in folder ``path`` (which holds ``meta.json``), reading every data part it names."""
    folder = Path(path)
    meta_path = folder / META
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise FormatError(f"{folder}: no {META}", byte_offset=0, rule="vector: meta") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{meta_path}: {exc}", byte_offset=0, rule="vector: meta") from exc
    if not isinstance(meta, dict):
        raise FormatError(f"{meta_path}: not an object", byte_offset=0, rule="vector: meta")
    if meta.get("format") != FORMAT:
        raise FormatError(f"{meta_path}: format {meta.get('format')!r}, this reader knows {FORMAT!r}",
                          byte_offset=0, rule="vector: format")
    for key in ("profile", "handler", "suite", "case"):
        if not isinstance(meta.get(key), str) or not NAME_RE.match(meta[key]):
            raise FormatError(f"{meta_path}: {key!r} missing or not a name", byte_offset=0, rule="vector: names")
    files: dict[str, str] = {}
    inputs = _load_map(folder, meta.get("inputs"), "inputs", files)
    expected = _load_map(folder, meta.get("expected"), "expected", files)
    return Case(
        profile=meta["profile"],
        handler=meta["handler"],
        suite=meta["suite"],
        name=meta["case"],
        path=folder,
        description=meta.get("description", ""),
        inputs=inputs,
        parameters=dict(meta.get("parameters") or {}),
        expected=expected,
        tolerance=meta.get("tolerance"),
        provenance=dict(meta.get("provenance") or {}),
        files=files,
        meta=meta,
    )


def iter_case_dirs(root: str | Path, profile: str | None = None, handler: str | None = None,
                   suite: str | None = None) -> Iterator[Path]:
    """Case folders under ``root`` (``<profile>/<handler>/<suite>/<case>/meta.json``), sorted by path."""
    root = Path(root)
    for meta in sorted(root.glob(f"{profile or '*'}/{handler or '*'}/{suite or '*'}/*/{META}")):
        yield meta.parent


def iter_cases(root: str | Path | None = None, profile: str | None = None, handler: str | None = None,
               suite: str | None = None) -> Iterator[Case]:
    """Load every case under ``root`` (default: the canonical suite), filtered, in sorted path order."""
    for folder in iter_case_dirs(suite_root() if root is None else root, profile, handler, suite):
        yield load_case(folder)


def _store_map(values: Mapping[str, Any] | None, where: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    meta: dict[str, Any] = {}
    parts: dict[str, bytes] = {}
    for key, value in (values or {}).items():
        if isinstance(value, Part):
            fname, data = value.filename, encode_part(value.filename, value.value)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            fname, data = f"{key}.bin", bytes(value)
        elif isinstance(value, np.ndarray):
            fname, data = f"{key}.npy", encode_part(f"{key}.npy", value)
        else:
            if _is_file_ref(value):
                raise ValueError(f"{where}.{key}: inline string {value!r} would read as a file name; use Part")
            meta[key] = _jsonable(value)
            continue
        if not FILE_NAME_RE.match(fname):
            raise ValueError(f"{where}.{key}: bad file name {fname!r}")
        if fname in parts:
            raise ValueError(f"{where}.{key}: file {fname} used twice")
        meta[key] = fname
        parts[fname] = data
    return meta, parts


def case_meta_and_parts(case: Case | Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """``meta.json`` (as a dict) and the data parts (file name → bytes) that :func:`write_case` would write."""
    if isinstance(case, Case):
        c = {"profile": case.profile, "handler": case.handler, "suite": case.suite, "case": case.name,
             "description": case.description, "inputs": case.inputs, "parameters": case.parameters,
             "expected": case.expected, "tolerance": case.tolerance, "provenance": case.provenance,
             "checks": case.meta.get("checks")}
        # values loaded from files go back to the same file names
        for where in ("inputs", "expected"):
            m = dict(c[where])
            for key, val in m.items():
                fname = case.files.get(f"{where}.{key}")
                if fname is not None and not isinstance(val, Part):
                    m[key] = Part(fname, val)
            c[where] = m
    else:
        c = dict(case)
        if "case" not in c and "name" in c:
            c["case"] = c.pop("name")
    for key in ("profile", "handler", "suite", "case"):
        if not isinstance(c.get(key), str) or not NAME_RE.match(c[key]):
            raise ValueError(f"case {key} {c.get(key)!r} is not a name ({NAME_RE.pattern})")
    in_meta, in_parts = _store_map(c.get("inputs"), "inputs")
    ex_meta, ex_parts = _store_map(c.get("expected"), "expected")
    clash = set(in_parts) & set(ex_parts)
    if clash or META in in_parts or META in ex_parts:
        raise ValueError(f"file names used twice in case {c['case']}: {sorted(clash) or [META]}")
    meta = {
        "format": FORMAT,
        "profile": c["profile"],
        "handler": c["handler"],
        "suite": c["suite"],
        "case": c["case"],
        "description": c.get("description", ""),
        "inputs": in_meta,
        "parameters": _jsonable(dict(c.get("parameters") or {})),
        "expected": ex_meta,
        "provenance": _jsonable(dict(c.get("provenance") or {})),
    }
    if c.get("tolerance") is not None:
        meta["tolerance"] = _jsonable(c["tolerance"])
    if c.get("checks") is not None:  # normative and behaviour fields (opus_dred.vectors._checks)
        meta["checks"] = _jsonable(c["checks"])
    return meta, {**in_parts, **ex_parts}


def write_case(root: str | Path, case: Case | Mapping[str, Any]) -> Path:
    """Write ``case`` under ``root`` and return its folder; an existing folder of that name is replaced.

    ``case`` is a :class:`Case` or a dict with ``profile, handler, suite, case`` (or ``name``), ``description``,
    ``inputs``, ``parameters``, ``expected``, ``tolerance``, ``provenance``. In ``inputs``/``expected``:
    a :class:`Part` is stored as its file, ``bytes`` as ``<key>.bin``, an ``np.ndarray`` as ``<key>.npy``,
    anything else inline.
    """
    meta, parts = case_meta_and_parts(case)
    folder = Path(root) / meta["profile"] / meta["handler"] / meta["suite"] / meta["case"]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / META).write_bytes(dumps_json(meta).encode("ascii"))
    for fname, data in sorted(parts.items()):
        (folder / fname).write_bytes(data)
    return folder


# --------------------------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------------------------
def build_manifest(root: str | Path, *, generator: str | None = None) -> dict[str, Any]:
    """The manifest of every file under ``root`` except ``manifest.json`` itself."""
    root = Path(root)
    if generator is None:
        generator = f"opus-dred {__version__}"
    files: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.relative_to(root).as_posix() != MANIFEST:
            data = p.read_bytes()
            files[p.relative_to(root).as_posix()] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    dirs = list(iter_case_dirs(root))
    profiles = sorted({d.relative_to(root).parts[0] for d in dirs})
    counts: dict[str, dict[str, int]] = {}
    for d in dirs:
        prof, handler = d.relative_to(root).parts[:2]
        counts.setdefault(prof, {}).setdefault(handler, 0)
        counts[prof][handler] += 1
    return {"format": MANIFEST_FORMAT, "generator": generator, "profiles": profiles, "cases": len(dirs),
            "counts": counts, "files": files}


def write_manifest(root: str | Path, *, generator: str | None = None) -> Path:
    path = Path(root) / MANIFEST
    path.write_bytes(dumps_json(build_manifest(root, generator=generator)).encode("ascii"))
    return path


def load_manifest(root: str | Path | None = None) -> dict[str, Any]:
    """``manifest.json`` of ``root`` (default: the canonical suite)."""
    path = Path(suite_root() if root is None else root) / MANIFEST
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise FormatError(f"{path}: missing", byte_offset=0, rule="vector: manifest") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: {exc}", byte_offset=0, rule="vector: manifest") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise FormatError(f"{path}: not a {MANIFEST_FORMAT} manifest", byte_offset=0, rule="vector: manifest")
    return manifest


def check_manifest(root: str | Path | None = None) -> list[str]:
    """Problems found comparing the files under ``root`` with its manifest (empty: intact)."""
    root = Path(suite_root() if root is None else root)
    manifest = load_manifest(root)
    problems: list[str] = []
    listed = manifest.get("files", {})
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {MANIFEST}
    for rel in sorted(set(listed) - present):
        problems.append(f"missing: {rel}")
    for rel in sorted(present - set(listed)):
        problems.append(f"not in manifest: {rel}")
    for rel in sorted(set(listed) & present):
        data = (root / rel).read_bytes()
        want = listed[rel]
        if len(data) != want.get("size") or hashlib.sha256(data).hexdigest() != want.get("sha256"):
            problems.append(f"changed: {rel}")
    return problems
