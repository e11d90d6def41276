"""Derive a bitstream profile and a model pack from a libopus source tree.

A profile (:mod:`opus_dred.bitstream._profiles`) fixes a DRED variant's constants and behaviour rules; a model
pack (:mod:`opus_dred.models._pack`) holds its weights and statistics tables. Both can be read off a libopus tree
(a release tarball unpacked, a git checkout with its model files, a draft's reference tree), so a new variant
needs no code: :func:`derive` reads

* the constants, as data: ``dnn/dred_config.h`` (``DRED_EXTENSION_ID``, ``DRED_EXPERIMENTAL_VERSION``,
  ``DRED_EXPERIMENTAL_BYTES``, ``DRED_NUM_REDUNDANCY_FRAMES``) and ``dnn/dred_rdovae_constants.h`` (dimensions,
  quantizer levels), through :func:`opus_dred.models._extract.extract`, which also reads the pack's arrays;
* the ``dQ`` table: the initialiser of ``dQ_table`` in ``dnn/dred_coding.c:compute_quantizer``;
* the q feature: the latent stride ``DRED_LATENT_DIM+1`` of ``dnn/dred_decoder.c:dred_ec_decode``, checked
  against the decoder's input width in the pack (``dec_dense1`` nb_inputs);
* the behaviour rules, by recognising the statements that make each known variant
  (:data:`RULE_SIGNATURES`): the extension syntax in ``src/extensions.c`` (the *Repeat These Extensions* state
  of libopus' extension iterator), the chunk bound in ``src/opus_decoder.c:opus_dred_parse`` and
  ``dnn/dred_decoder.c:dred_ec_decode``, the handling of a foreign version byte in
  ``src/opus_decoder.c:dred_find_payload``. A tree whose statements match no known variant is refused, naming
  the file and what it holds: such a rule is new behaviour, to be named in
  :data:`opus_dred.bitstream._profiles.BEHAVIOUR_RULES` (or given by hand, ``chunk_bound=``).

Statements are matched with comments removed and any spacing, so a reformatted tree derives the same profile.
Every value comes with where it was read (:class:`Finding`), and the description's ``notes`` list them.

:func:`write_derivation` writes the description to ``profiles/`` and, when no known pack holds the same arrays,
constants and layers, the pack to ``packs/`` of the derived area (:func:`opus_dred.models._pack.derived_dir`),
never into the repository. This module lives in the libopus layer because it reads libopus trees (as the
upstream manager, which calls it from ``register``, does) and needs both layers below it: the pack's extraction
(``models``) and the profile's schema and checks (``bitstream``).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from opus_dred.bitstream._arith import CHUNK_BOUND_RULES
from opus_dred.bitstream._profiles import (
    BEHAVIOUR_RULES,
    ProfileError,
    derived_profiles_dir,
    get_profile,
    is_packaged,
    list_profiles,
    profile_for_version,
    profile_from_dict,
)
from opus_dred.models._extract import DATA_FILES, HEADER_FILES, ExtractError, Extracted, extract
from opus_dred.models._pack import (
    ModelPack,
    PackError,
    compare_with_extracted,
    derived_dir,
    find_pack,
    list_packs,
    load_manifest,
    write_pack,
)

from opus_dred.errors import OpusDredError

#: the source files the rules are read from, relative to the tree's root
RULE_FILES = ("src/opus_decoder.c", "dnn/dred_decoder.c", "dnn/dred_coding.c", "src/extensions.c")
#: the files without which no pack can be extracted (a git checkout lacks them until its model is added)
MODEL_FILES = DATA_FILES + ("dnn/dred_rdovae_constants.h",)

#: Each known variant of a behaviour rule, as the statements (file, function, statement) a tree holds when it
#: follows it; a variant matches when all its statements are found. ``None`` as function: anywhere in the file.
RULE_SIGNATURES: dict[str, dict[str, tuple[tuple[str, str | None, str], ...]]] = {
    "chunk_bound": {
        "release-1.5": (
            ("src/opus_decoder.c", "opus_dred_parse", "offset = 100*max_dred_samples/sampling_rate;"),
            ("src/opus_decoder.c", "opus_dred_parse",
             "min_feature_frames = IMIN(2 + offset, 2*DRED_NUM_REDUNDANCY_FRAMES);"),
            ("dnn/dred_decoder.c", "dred_ec_decode", "i < IMIN(DRED_NUM_REDUNDANCY_FRAMES, (min_feature_frames+1)/2)"),
        ),
        "master-2026-06": (
            ("src/opus_decoder.c", "opus_dred_parse",
             "max_dred_features = (100*max_dred_samples + sampling_rate - 1)/sampling_rate;"),
            ("dnn/dred_decoder.c", "dred_ec_decode",
             "min_feature_frames = (4*max_dred_features + dec->dred_offset + 3)/4;"),
            ("dnn/dred_decoder.c", "dred_ec_decode", "min_feature_frames = IMAX(0, min_feature_frames);"),
            ("dnn/dred_decoder.c", "dred_ec_decode", "i < IMIN(DRED_NUM_REDUNDANCY_FRAMES, (min_feature_frames+1)/2)"),
        ),
    },
    "foreign_version": {
        # the version test sits inside the scan of the padding: a mismatch goes on to the next extension
        "skip": (
            ("src/opus_decoder.c", "dred_find_payload", "[1] == DRED_EXPERIMENTAL_VERSION"),
        ),
    },
    "extension_syntax": {
        # 1.6.x: libopus' extension iterator keeps the state of a Repeat These Extensions (id 2)
        "rte": (("src/extensions.c", None, "iter->repeat_frame"),),
        # 1.5.x: extensions are walked one at a time, id 2 an ordinary short extension
        "v1": (("src/extensions.c", "skip_extension", "if (id == 0 && L == 1)"),),
    },
}
#: the statements whose presence without a known variant's signature means a rule this module does not know
_RULE_HINTS = {"chunk_bound": ("min_feature_frames", "max_dred_features"),
               "foreign_version": ("DRED_EXPERIMENTAL_VERSION",),
               "extension_syntax": ("id == 2", "repeat")}
#: which variant wins when two signatures match (``rte`` trees still have a short-extension test)
_PRECEDENCE = {"extension_syntax": ("rte", "v1")}


class DeriveError(OpusDredError):
    """A libopus tree a profile cannot be derived from; the message names the file (and line) and what is
    missing or unknown there."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.message, self.file, self.line = message, file, line
        where = f" ({file}" + (f":{line}" if line else "") + ")" if file else ""
        super().__init__(message + where)


@dataclass(frozen=True)
class Finding:
    """One value of the profile and where it was read: ``file`` and ``line`` (1-based) in the tree."""

    field: str
    value: object
    file: str
    line: int | None
    how: str

    def note(self) -> str:
        at = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.field} = {json.dumps(self.value)}: {at}: {self.how}"


@dataclass
class Derivation:
    """What :func:`derive` read: the description (``profile``, as its JSON), the extracted pack data, each
    value's :class:`Finding`, and the pack the description names (``pack_reused``: an existing pack with the
    same arrays, constants and layers, so no pack is written)."""

    name: str
    profile: dict
    extracted: Extracted
    findings: list[Finding] = field(default_factory=list)
    pack_id: str = ""
    pack_reused: bool = False
    tree: str = ""

    def fields(self) -> dict:
        """The description's values that define the variant (everything but name, description and notes)."""
        return {k: v for k, v in self.profile.items() if k not in ("name", "description", "notes", "draft")}


# ------------------------------------------------------------------------------------------------
# reading C text


def _strip_comments(text: str) -> str:
    """``text`` with C comments blanked out, newlines kept (so offsets keep their line numbers)."""
    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    return re.sub(r"/\*.*?\*/|//[^\n]*", blank, text, flags=re.S)


def _statement_regex(statement: str) -> re.Pattern:
    """A regex for a C fragment that allows any spacing between its tokens."""
    tokens = re.findall(r"\w+|->|[^\w\s]", statement)
    return re.compile(r"\s*".join(re.escape(t) for t in tokens))


def _function_span(code: str, name: str) -> tuple[int, int] | None:
    """``(start, end)`` of the body of the C function ``name`` (a definition: its parameter list followed by
    ``{``), braces matched; ``None`` if the file defines no such function."""
    for m in re.finditer(rf"\b{re.escape(name)}\s*\(", code):
        depth, i = 0, m.end() - 1
        while i < len(code):  # the parameter list
            depth += code[i] == "("
            depth -= code[i] == ")"
            i += 1
            if depth == 0:
                break
        rest = code[i:]
        k = len(rest) - len(rest.lstrip())
        if rest[k:k + 1] != "{":
            continue  # a call or a prototype
        start = i + k
        depth, j = 0, start
        while j < len(code):
            depth += code[j] == "{"
            depth -= code[j] == "}"
            j += 1
            if depth == 0:
                return start, j
        return None
    return None


class _Tree:
    """The rule files of a tree, read once, comments removed."""

    def __init__(self, root: Path):
        self.root = root
        self.code: dict[str, str] = {}
        for rel in RULE_FILES:
            p = root / rel
            if not p.is_file():
                raise DeriveError("missing from the tree; a profile's rules are read from it", file=rel)
            self.code[rel] = _strip_comments(p.read_text(encoding="utf-8", errors="replace"))

    def find(self, rel: str, function: str | None, statement: str) -> int | None:
        """The line of ``statement`` in ``function`` of file ``rel`` (anywhere in the file for ``None``)."""
        code = self.code[rel]
        lo, hi = 0, len(code)
        if function is not None:
            span = _function_span(code, function)
            if span is None:
                return None
            lo, hi = span
        m = _statement_regex(statement).search(code, lo, hi)
        return None if m is None else code.count("\n", 0, m.start()) + 1

    def mentions(self, rel: str, word: str) -> list[int]:
        code = self.code[rel]
        return [code.count("\n", 0, m.start()) + 1 for m in re.finditer(re.escape(word), code)][:5]


def read_rule(tree: _Tree, rule: str) -> Finding:
    """The variant of ``rule`` the tree follows (:data:`RULE_SIGNATURES`); :class:`DeriveError` if none or two
    unranked ones match."""
    matched: dict[str, list[tuple[str, int]]] = {}
    for variant, statements in RULE_SIGNATURES[rule].items():
        where = []
        for rel, fn, st in statements:
            line = tree.find(rel, fn, st)
            if line is None:
                break
            where.append((rel, line))
        else:
            matched[variant] = where
    if not matched:
        hints = []
        for rel in sorted({s[0] for sig in RULE_SIGNATURES[rule].values() for s in sig}):
            for w in _RULE_HINTS.get(rule, ()):
                lines = tree.mentions(rel, w)
                if lines:
                    hints.append(f"{rel}:{','.join(map(str, lines))} ({w})")
        first = next(iter(RULE_SIGNATURES[rule].values()))[0][0]
        raise DeriveError(f"{rule}: the tree follows no known variant ({', '.join(RULE_SIGNATURES[rule])}); "
                          f"look at {'; '.join(hints) or 'the files named in RULE_SIGNATURES'} and name the rule by "
                          f"hand or add the variant", file=first)
    order = _PRECEDENCE.get(rule, ())
    ranked = sorted(matched, key=lambda v: order.index(v) if v in order else len(order))
    if len(ranked) > 1 and not order:
        raise DeriveError(f"{rule}: the tree matches several variants: {', '.join(ranked)}")
    variant = ranked[0]
    rel, line = matched[variant][0]
    return Finding(rule, variant, rel, line, BEHAVIOUR_RULES[rule]["variants"][variant])


def _dq_table(tree: _Tree) -> Finding:
    rel = "dnn/dred_coding.c"
    code = tree.code[rel]
    m = re.search(r"\bdQ_table\s*\[\s*(\d*)\s*\]\s*=\s*\{([^}]*)\}", code)
    if m is None:
        raise DeriveError("no dQ_table initialiser (compute_quantizer)", file=rel)
    vals = [int(v, 0) for v in m.group(2).replace("\n", " ").split(",") if v.strip()]
    if m.group(1) and int(m.group(1)) != len(vals):
        raise DeriveError(f"dQ_table declares {m.group(1)} values and holds {len(vals)}", file=rel)
    return Finding("dq_table", vals, rel, code.count("\n", 0, m.start()) + 1, "compute_quantizer's dQ_table")


def _q_feature(tree: _Tree, ex: Extracted, latent_dim: int) -> Finding:
    rel = "dnn/dred_decoder.c"
    line = tree.find(rel, "dred_ec_decode", "(DRED_LATENT_DIM+1)")
    has_q = line is not None
    if not has_q:
        line = tree.find(rel, "dred_ec_decode", "(i/2)*DRED_LATENT_DIM")
    width = ex.layers.get("dec_dense1", {}).get("nb_inputs")
    if width is not None and width != latent_dim + int(has_q):
        stride = "DRED_LATENT_DIM+1" if has_q else "DRED_LATENT_DIM"
        raise DeriveError(f"the latent stride of dred_ec_decode ({stride}) "
                          f"disagrees with the decoder's input width dec_dense1 nb_inputs {width}", file=rel, line=line)
    how = ("each latent vector stored with stride DRED_LATENT_DIM+1, the last value the quantizer feature" if has_q
           else "latent vectors stored with stride DRED_LATENT_DIM")
    return Finding("has_q_feature", has_q, rel, line, how + f"; dec_dense1 takes {width}")


def _constant(ex: Extracted, name: str, rel: str) -> int:
    v = ex.constants.get(name)
    if not isinstance(v, int):
        raise DeriveError(f"no integer #define {name}", file=rel)
    return v


# ------------------------------------------------------------------------------------------------
# derivation


def derive(tree: str | Path, *, name: str | None = None, model_tree: str | Path | None = None,
           chunk_bound: str | None = None, origin: str | None = None) -> Derivation:
    """A profile and a model pack read off the libopus source tree ``tree`` (a directory).

    ``name`` defaults to ``libopus-<version>`` from the tree's ``package_version``; a tree without one needs a
    name. ``model_tree`` supplies the model files the tree lacks (a git checkout: the release whose model hash
    its ``autogen.sh`` names); ``dnn/dred_config.h`` and the rule files always come from ``tree``.
    ``chunk_bound`` names the rule by hand for a tree whose statements match no known variant.
    """
    root = Path(tree)
    model_tree = Path(model_tree) if model_tree is not None else None
    if not root.is_dir():
        raise DeriveError(f"{root} is not a directory (unpack a tarball first)")
    if not (root / "dnn" / "dred_config.h").is_file():
        raise DeriveError(f"{root} is not a libopus tree with DRED", file="dnn/dred_config.h")
    if name is not None:
        _check_name(name)
    ex = _extract_merged(root, model_tree)
    t = _Tree(root)
    release = ex.source.get("release")
    if name is None:
        if not release:
            raise DeriveError(f"{root} has no package_version: give the profile a name")
        name = f"libopus-{release}"
    _check_name(name)

    cfg, consts = "dnn/dred_config.h", "dnn/dred_rdovae_constants.h"
    found: list[Finding] = []

    def add(fld: str, value, file: str, how: str):
        m = re.search(rf"^\s*#\s*define\s+{how.split('/')[0]}\b", _read(root, model_tree, file), re.M)
        found.append(Finding(fld, value, file, None if m is None else m.string.count("\n", 0, m.start()) + 1, how))
        return value

    version = add("dred_version", _constant(ex, "DRED_EXPERIMENTAL_VERSION", cfg), cfg, "DRED_EXPERIMENTAL_VERSION")
    ext_id = add("extension_id", _constant(ex, "DRED_EXTENSION_ID", cfg), cfg, "DRED_EXTENSION_ID")
    nbytes = _constant(ex, "DRED_EXPERIMENTAL_BYTES", cfg)
    if nbytes != 2:
        raise DeriveError(f"DRED_EXPERIMENTAL_BYTES {nbytes}: profiles describe a 2-byte prefix ('D', version)",
                          file=cfg)
    latent_dim = add("latent_dim", _constant(ex, "DRED_LATENT_DIM", consts), consts, "DRED_LATENT_DIM")
    add("state_dim", _constant(ex, "DRED_STATE_DIM", consts), consts, "DRED_STATE_DIM")
    add("num_features", _constant(ex, "DRED_NUM_FEATURES", consts), consts, "DRED_NUM_FEATURES")
    add("quant_levels", _constant(ex, "DRED_NUM_QUANTIZATION_LEVELS", consts), consts, "DRED_NUM_QUANTIZATION_LEVELS")
    add("max_latents", _constant(ex, "DRED_NUM_REDUNDANCY_FRAMES", cfg) // 2, cfg, "DRED_NUM_REDUNDANCY_FRAMES/2")
    found.append(_q_feature(t, ex, latent_dim))
    found.append(_dq_table(t))
    found.append(read_rule(t, "extension_syntax"))
    if chunk_bound is None:
        found.append(read_rule(t, "chunk_bound"))
    else:
        if chunk_bound not in CHUNK_BOUND_RULES:
            raise DeriveError(f"chunk_bound must be one of {', '.join(CHUNK_BOUND_RULES)}, not {chunk_bound!r}")
        found.append(Finding("chunk_bound", chunk_bound, "src/opus_decoder.c", None, "named by hand"))
    found.append(read_rule(t, "foreign_version"))

    values = {f.field: f.value for f in found}
    pack_id, reused = _pack_for(name, ex)
    where = origin or str(root)
    desc = {
        "name": name,
        "description": f"DRED as the libopus tree {where} (version {release or 'unknown'}) reads and writes it: "
                       f"experimental version {version}, extension {ext_id}, {latent_dim} latents, "
                       f"{values['state_dim']} state values, chunk bound {values['chunk_bound']}; derived by "
                       f"opus-dred profiles derive.",
        "draft": None,
        **{k: values[k] for k in ("dred_version", "extension_id", "extension_syntax", "latent_dim", "state_dim",
                                  "has_q_feature", "max_latents", "num_features", "quant_levels")},
        "model_pack": pack_id,
        "dq_table": values["dq_table"],
        "chunk_bound": values["chunk_bound"],
        "foreign_version": values["foreign_version"],
        "notes": [f.note() for f in found] + [
            f"model pack {pack_id}: " + ("an existing pack with the same arrays, constants and layers" if reused
                                         else f"extracted from {where} (model hash {ex.source.get('model_hash')})")],
    }
    return Derivation(name=name, profile=desc, extracted=ex, findings=found, pack_id=pack_id, pack_reused=reused,
                      tree=str(root))


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):  # a profile name is a path of its vectors' cases
        raise DeriveError(f"invalid profile name {name!r} (lower-case letters, digits, . _ - only)")


def _read(root: Path, model_tree: Path | None, rel: str) -> str:
    """A header of the tree (of ``model_tree`` where the tree lacks it), for the line numbers of findings."""
    for base in (root, model_tree):
        if base is not None and (base / rel).is_file():
            return (base / rel).read_text(encoding="utf-8", errors="replace")
    return ""


def _extract_merged(root: Path, model_tree: Path | None) -> Extracted:
    """The pack data of ``root``; model files it lacks are read from ``model_tree``, the headers of
    ``dnn/dred_config.h`` always from ``root``."""
    missing = [f for f in MODEL_FILES if not (root / f).is_file()]
    try:
        if not missing:
            return extract(root)
        if model_tree is None:
            raise DeriveError(f"the tree lacks its model files ({', '.join(missing)}); a git checkout needs the "
                              f"files of the model its autogen.sh names", file=missing[0])
        with tempfile.TemporaryDirectory(prefix="opus-dred-derive-") as tmp:
            merged = Path(tmp)
            wanted = set(DATA_FILES + HEADER_FILES + ("dnn/lpcnet_tables.c", "autogen.sh", "COPYING",
                                                       "package_version"))
            for rel in sorted(wanted):
                own = rel in ("package_version", "autogen.sh", "dnn/dred_config.h")  # never the model tree's
                src = root / rel if (root / rel).is_file() or own else model_tree / rel
                if src.is_file():
                    (merged / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, merged / rel)
            return extract(merged)
    except ExtractError as exc:
        raise DeriveError(f"cannot read the model data: {exc.message}", file=exc.file, line=exc.line) from None


def _pack_for(name: str, ex: Extracted) -> tuple[str, bool]:
    """An existing pack equal to ``ex`` (arrays, constants, layers), else ``name`` (a pack to write)."""
    for pid in list_packs():
        try:
            manifest_only = ModelPack(id=pid, path=find_pack(pid), manifest=load_manifest(pid), arrays={})
            if not compare_with_extracted(manifest_only, ex):
                return pid, True
        except PackError:
            continue
    return name, False


def write_derivation(d: Derivation, *, force: bool = False) -> dict:
    """Write ``d``'s description (and its pack, unless reused) into the derived area and check the description
    against its pack. A packaged profile's name is never written: if ``d`` equals the packaged description the
    result says so (``"matches"``), otherwise it is a :class:`DeriveError`. An existing derived description of
    the same name is replaced only with ``force`` or when it is equal.

    Returns ``{"profile": path | None, "pack": path | None, "matches": packaged name | None}``.
    """
    if is_packaged(d.name):
        packaged = get_profile(d.name).to_json()
        differ = {k: (packaged.get(k), v) for k, v in d.fields().items() if packaged.get(k) != v}
        if differ:
            raise DeriveError(f"{d.name} is a packaged profile and the tree differs from it in "
                              f"{', '.join(f'{k} ({a!r} -> {b!r})' for k, (a, b) in differ.items())}; "
                              f"give the derived profile another name")
        return {"profile": None, "pack": None, "matches": d.name}
    out = derived_profiles_dir()
    path = out / f"{d.name}.json"
    if path.is_file() and not force:
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if old is not None and {k: v for k, v in old.items() if k not in ("description", "notes")} != \
                {k: v for k, v in d.profile.items() if k not in ("description", "notes")}:
            raise DeriveError(f"a different derived profile {d.name!r} exists ({path}); replace it with --force")
    pack_path = None
    if not d.pack_reused:
        pack_path = write_pack(derived_dir() / "packs", d.pack_id, d.extracted)
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(d.profile, indent=2) + "\n")
    try:
        profile_from_dict(json.loads(tmp.read_text()), source=str(path), expected_name=d.name)
    except ProfileError as exc:
        tmp.unlink()
        raise DeriveError(f"the derived description does not hold: {exc}") from None
    tmp.replace(path)
    return {"profile": path, "pack": pack_path, "matches": None}


def remove_derived(name: str) -> list[Path]:
    """Delete a derived description (and its own pack, if no other derived description names it); returns what
    was removed. Packaged profiles are never touched."""
    removed: list[Path] = []
    path = derived_profiles_dir() / f"{name}.json"
    if not path.is_file():
        return removed
    try:
        pack = json.loads(path.read_text()).get("model_pack")
    except ValueError:
        pack = None
    path.unlink()
    removed.append(path)
    pdir = derived_dir() / "packs" / str(pack)
    if pack and pdir.is_dir() and not any(
            _names_pack(p, pack) for p in derived_profiles_dir().glob("*.json")):
        shutil.rmtree(pdir)
        removed.append(pdir)
    return removed


def _names_pack(path: Path, pack: str) -> bool:
    try:
        return json.loads(path.read_text()).get("model_pack") == pack
    except (OSError, ValueError):
        return False


def derived_profiles() -> list[str]:
    """The names of the profiles whose descriptions are in the derived area."""
    d = derived_profiles_dir()
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def profile_for_build(build: str, dred_version: int | None = None) -> str | None:
    """The profile a libopus build follows: the profile of the build's name, else of its name without a variant
    suffix (``-generic``), else the packaged profile of its DRED version; ``None`` if none."""
    names = set(list_profiles())
    for cand in (build, re.sub(r"-generic$", "", build)):
        if cand in names:
            return cand
    if dred_version is not None:
        p = profile_for_version(dred_version)
        return p.name if p is not None else None
    return None
