"""Extract a model pack from a libopus source tree or release tarball.

libopus ships the DRED model as generated C data files (``dnn/dred_rdovae_dec_data.c``,
``dnn/dred_rdovae_enc_data.c``, ``dnn/dred_rdovae_stats_data.c``) plus two headers of constants
(``dnn/dred_rdovae_constants.h``, ``dnn/dred_config.h``). This module reads those files as *data*:

* every ``[static] const <type> name[N] = { ... };`` array, kept under its C name as a 1-D numpy
  array of the C element type (``float`` → float32, ``opus_int8`` → int8, ``opus_uint8`` → uint8,
  ``int`` → int32), with its declared length checked and the preprocessor conditions around it
  recorded (``"!USE_WEIGHTS_FILE"`` for arrays compiled only when weights are built in);
* the ``WeightArray`` tables (``rdovaedec_arrays``, ``rdovaeenc_arrays``): entry names and types;
* the layer descriptions of ``init_rdovaedec`` / ``init_rdovaeenc``: the arguments of each
  ``linear_init`` call (which arrays, nb_inputs, nb_outputs), following
  ``dnn/parse_lpcnet_weights.c:linear_init``;
* the ``#define`` constants of the two headers, with simple integer expressions evaluated.

The weights and tables are data under BSD-3-Clause (libopus' COPYING); nothing of libopus' code is
copied. Every parse failure raises :class:`ExtractError` naming the file and line.
"""

from __future__ import annotations

import ast
import hashlib
import io
import operator
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opus_dred.errors import OpusDredError

#: the files a pack is made of, relative to the libopus source root
DATA_FILES = (
    "dnn/dred_rdovae_dec_data.c",
    "dnn/dred_rdovae_enc_data.c",
    "dnn/dred_rdovae_stats_data.c",
    "dnn/pitchdnn_data.c",
    "dnn/fargan_data.c",
    "dnn/plc_data.c",
)
#: the DSP tables of the LPCNet feature extractor (the 320-point FFT's plan, the analysis window, the DCT),
#: read by :func:`parse_lpcnet_tables`
TABLE_FILES = ("dnn/lpcnet_tables.c",)
HEADER_FILES = ("dnn/dred_rdovae_constants.h", "dnn/dred_config.h")
OTHER_FILES = ("autogen.sh", "COPYING", "package_version")

#: C element type → numpy dtype name
C_TYPES = {
    "float": "float32",
    "opus_int8": "int8",
    "signed char": "int8",
    "opus_uint8": "uint8",
    "unsigned char": "uint8",
    "opus_int16": "int16",
    "opus_uint16": "uint16",
    "int": "int32",
    "opus_int32": "int32",
    "opus_uint32": "uint32",
}
#: ``WEIGHT_TYPE_*`` (dnn/nnet.h) → the numpy dtypes it may describe
WEIGHT_TYPES = {
    "WEIGHT_TYPE_float": ("float32",),
    "WEIGHT_TYPE_int": ("int32",),
    "WEIGHT_TYPE_int8": ("int8",),
    "WEIGHT_TYPE_qweight": ("int8",),
    "WEIGHT_TYPE_uint8": ("uint8",),
}

#: Model tarball hashes named by ``autogen.sh`` at the release tags. Release tarballs carry the
#: generated model sources but not ``autogen.sh``, so when it is absent the hash comes from here.
#: 1.5.x: ``dnn/download_model.sh "735117b"``; 1.6.x: the full sha256 below (libopus git history).
KNOWN_MODEL_HASHES = {
    "1.5": "735117b",
    "1.5.1": "735117b",
    "1.5.2": "735117b",
    "1.6": "a5177ec6fb7d15058e99e57029746100121f68e4890b1467d4094aa336b6013e",
    "1.6.1": "a5177ec6fb7d15058e99e57029746100121f68e4890b1467d4094aa336b6013e",
}

#: Release tarballs of the pinned releases: file name and sha256, the same pins as the upstream manager's
#: (``opus_dred.libopus._upstream``), which fetches and verifies exactly these files. Used to
#: record where a tree came from when extracting from an unpacked directory; when extracting from
#: the tarball itself its sha256 is computed and must match.
KNOWN_TARBALLS = {
    "1.5.2": ("opus_1.5.2.orig.tar.gz", "65c1d2f78b9f2fb20082c38cbe47c951ad5839345876e46941612ee87f9a7ce1"),
    "1.6.1": ("opus_1.6.1.orig.tar.xz", "001ac615b9f8f8994b229ad2b1a5969ed12ab48b0d154d0af1016a5899cd6ba1"),
}


class ExtractError(OpusDredError):
    """A libopus source file that cannot be read as the model data expected."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        where = ""
        if file:
            where = f" ({file}" + (f":{line}" if line else "") + ")"
        super().__init__(message + where)


@dataclass
class CArray:
    """One array of a C data file."""

    name: str
    ctype: str
    dtype: str
    length: int
    values: np.ndarray
    conditions: tuple[str, ...]
    file: str
    line: int
    weight_type: str | None = None  # from ``#define WEIGHTS_<name>_TYPE``


@dataclass
class CDataFile:
    """What :func:`parse_c_data` found in one file."""

    arrays: dict[str, CArray] = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)  # WeightArray tables
    layers: list[dict] = field(default_factory=list)  # *_init calls of the init function
    init_function: str | None = None


# --------------------------------------------------------------------------------------------
# C data parsing

_ARRAY_RE = re.compile(
    r"^\s*(?:static\s+)?const\s+(?P<ctype>(?:unsigned\s+|signed\s+)?\w+)\s+(?P<name>\w+)\s*"
    r"\[\s*(?P<len>\d*)\s*\]\s*=\s*\{(?P<rest>.*)$"
)
_TABLE_RE = re.compile(r"^\s*(?:static\s+)?const\s+WeightArray\s+(?P<name>\w+)\s*\[\s*\]\s*=\s*\{")
_TABLE_ENTRY_RE = re.compile(r'^\s*\{\s*"(?P<name>\w+)"\s*,\s*(?P<type>\w+)\s*,\s*sizeof\((?P<sz>\w+)\)\s*,\s*(?P<ptr>\w+)\s*\}\s*,?\s*$')
_TYPE_DEFINE_RE = re.compile(r"^\s*#\s*define\s+WEIGHTS_(?P<name>\w+)_TYPE\s+(?P<type>\w+)\s*$")
_INIT_FN_RE = re.compile(r"^\s*int\s+(?P<name>init_\w+)\s*\(")
_INIT_CALL_RE = re.compile(r"^\s*if\s*\(\s*(?P<fn>\w+_init)\s*\((?P<args>.*)\)\s*\)\s*return\s+1\s*;\s*$")
_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)

#: argument names of dnn/nnet.h's layer initialisers, after (layer, arrays)
_INIT_ARGS = {
    "linear_init": ("bias", "subias", "weights", "float_weights", "weights_idx", "diag", "scale", "nb_inputs", "nb_outputs"),
    "conv2d_init": ("bias", "float_weights", "in_channels", "out_channels", "ktime", "kheight"),
}


def _parse_value(tok: str, dtype: str, file: str, line: int):
    t = tok.strip()
    try:
        if dtype.startswith("float"):
            if t.endswith(("f", "F")) and not t.lower().startswith("0x"):
                t = t[:-1]
            return float(t)
        return int(t, 0)
    except ValueError:
        raise ExtractError(f"bad {dtype} literal {tok.strip()!r}", file=file, line=line) from None


@dataclass
class _Scan:
    """A pass over a C file's lines, with the preprocessor state so far: the conditions of the enclosing
    ``#if`` blocks (e.g. ``"!USE_WEIGHTS_FILE"``), the macros ``#define``'d, and the ``WEIGHTS_<name>_TYPE``
    defines."""

    lines: list[str]
    file: str
    pos: int = 0  # index of the next line to read
    cond: list[str] = field(default_factory=list)
    defined: set[str] = field(default_factory=set)
    types: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.lines)

    def read(self) -> tuple[int, str]:
        """The next line and its 1-based number."""
        self.pos += 1
        return self.pos, self.lines[self.pos - 1]

    def conditions(self, *skip: str) -> list[str]:
        """The enclosing conditions, without ``HAVE_CONFIG_H`` (every file has it) and ``skip``."""
        return [c for c in self.cond if c not in ("HAVE_CONFIG_H", *skip)]


def parse_c_data(text: str, file: str = "<text>") -> CDataFile:
    """Parse a generated libopus model data file (see the module docstring): line by line, the
    preprocessor directives, then each ``WeightArray`` table, the init function's layer calls and every
    array declaration with its initialiser."""
    out = CDataFile()
    scan = _Scan(text.split("\n"), file)
    while not scan.done:
        lineno, raw = scan.read()
        s = raw.strip()
        if s.startswith("#"):
            _directive(scan, s, lineno)
        elif m := _TABLE_RE.match(raw):
            out.tables[m.group("name")] = _weight_array_table(scan)
        elif (m := _INIT_FN_RE.match(raw)) and raw.rstrip().endswith("{"):
            out.init_function = m.group("name")
            out.layers.extend(_layer_calls(scan, out.init_function))
        elif m := _ARRAY_RE.match(raw):
            arr = _array(scan, m, lineno)
            if arr.name in out.arrays:
                raise ExtractError(f"array {arr.name} defined twice", file=file, line=lineno)
            out.arrays[arr.name] = arr
    if scan.cond:
        raise ExtractError(f"unterminated #if blocks: {scan.cond}", file=file, line=len(scan.lines))
    _check_consistency(out, file)
    return out


def _directive(scan: _Scan, s: str, lineno: int) -> None:
    """One preprocessor line: ``#ifdef``/``#ifndef``/``#if``/``#elif``/``#else``/``#endif`` move the stack
    of conditions, ``#define`` records the macro (and a ``WEIGHTS_<name>_TYPE``); others are ignored."""
    d = re.match(r"#\s*(\w+)\s*(.*)$", s)
    kw, arg = (d.group(1), _COMMENT_RE.sub("", d.group(2)).strip()) if d else ("", "")
    if kw in ("ifdef", "if"):
        scan.cond.append(arg)
    elif kw == "ifndef":
        scan.cond.append("!" + arg)
    elif kw in ("else", "elif"):
        if not scan.cond:
            raise ExtractError(f"#{kw} without #if", file=scan.file, line=lineno)
        prev = scan.cond.pop()
        scan.cond.append(("!(" + prev + ")") if kw == "else" else arg)
    elif kw == "endif":
        if not scan.cond:
            raise ExtractError("#endif without #if", file=scan.file, line=lineno)
        scan.cond.pop()
    elif kw == "define":
        if arg:
            scan.defined.add(arg.split()[0])
        m = _TYPE_DEFINE_RE.match(s)
        if m:
            scan.types[m.group("name")] = m.group("type")


def _weight_array_table(scan: _Scan) -> list[dict]:
    """The entries of a ``WeightArray`` table, up to its ``};`` (``dnn/nnet.h``: name, type, size, data),
    each with its conditions; an entry whose ``WEIGHTS_<name>_DEFINED`` guard is not defined in this file is
    compiled out and left out."""
    entries: list[dict] = []
    while not scan.done:
        lineno, raw = scan.read()
        s = raw.strip()
        if s.startswith("#"):
            _directive(scan, s, lineno)
        elif s.startswith("};"):
            break
        elif m := _TABLE_ENTRY_RE.match(s):
            name = m.group("name")
            guard = f"WEIGHTS_{name}_DEFINED"
            if guard in scan.cond and guard not in scan.defined:
                continue  # entry compiled out: its array is not generated in this file
            if not (name == m.group("sz") == m.group("ptr")):
                raise ExtractError(f"WeightArray entry {name!r} points at another array", file=scan.file, line=lineno)
            entries.append({"name": name, "type": m.group("type"), "conditions": scan.conditions(guard)})
        elif not (re.match(r"^\{\s*NULL\s*,", s) or not s):
            raise ExtractError(f"unexpected line in WeightArray table: {s[:60]!r}", file=scan.file, line=lineno)
    return entries


def _layer_calls(scan: _Scan, function: str) -> list[dict]:
    """The layer initialiser calls of the init function (``if (linear_init(&model->x, arrays, ...)) return
    1;``), up to its closing brace; anything but those and ``return`` is an error."""
    layers: list[dict] = []
    while not scan.done:
        lineno, raw = scan.read()
        s = raw.strip()
        if s.startswith("#"):
            _directive(scan, s, lineno)
        elif s.startswith("}"):
            break
        elif m := _INIT_CALL_RE.match(s):
            layers.append(_parse_init_call(m.group("fn"), m.group("args"), scan.file, lineno))
        elif not (s.startswith("return") or not s):
            raise ExtractError(f"unexpected statement in {function}: {s[:60]!r}", file=scan.file, line=lineno)
    return layers


def _array(scan: _Scan, decl: re.Match, lineno: int) -> CArray:
    """One array: its declaration (element type and declared length), its initialiser's values, checked
    against both, and the conditions it is compiled under."""
    name = decl.group("name")
    ctype = re.sub(r"\s+", " ", decl.group("ctype"))
    if ctype not in C_TYPES:
        raise ExtractError(f"array {name}: unknown element type {ctype!r}", file=scan.file, line=lineno)
    dtype = C_TYPES[ctype]
    tokens = _initialiser_tokens(scan, name, decl.group("rest"), lineno)
    vals = [_parse_value(t, dtype, scan.file, lineno) for t in tokens]
    declared = int(decl.group("len")) if decl.group("len") else len(vals)
    if len(vals) != declared:
        raise ExtractError(f"array {name}: declared length {declared}, found {len(vals)} values",
                           file=scan.file, line=lineno)
    return CArray(name, ctype, dtype, declared, _typed_values(vals, name, ctype, dtype, scan.file, lineno),
                  tuple(scan.conditions()), scan.file, lineno, scan.types.get(name))


def _initialiser_tokens(scan: _Scan, name: str, first: str, lineno: int) -> list[str]:
    """The comma-separated elements of an initialiser ``{ ... };`` that starts with ``first`` (the text after
    the opening brace) and may run over the following lines; comments dropped, one trailing comma allowed."""
    body = [first]
    while "};" not in body[-1]:
        if scan.done:
            raise ExtractError(f"array {name}: no closing '}};'", file=scan.file, line=lineno)
        body.append(scan.read()[1])
    joined = "\n".join(body)
    joined = _COMMENT_RE.sub(" ", joined[: joined.rindex("};")])
    if "}" in joined or "{" in joined:
        raise ExtractError(f"array {name}: nested braces are not supported", file=scan.file, line=lineno)
    toks = joined.split(",")
    if toks and not toks[-1].strip():
        toks.pop()  # trailing comma
    if any(not t.strip() for t in toks):
        raise ExtractError(f"array {name}: empty element", file=scan.file, line=lineno)
    return toks


def _typed_values(vals: list, name: str, ctype: str, dtype: str, file: str, line: int) -> np.ndarray:
    """The values as a numpy array of the C element type: floats rounded once to float32, integers checked
    against the type's range."""
    if dtype.startswith("float"):
        return np.array(vals, dtype=np.float64).astype(np.float32)
    info = np.iinfo(dtype)
    bad = [v for v in vals if not info.min <= v <= info.max]
    if bad:
        raise ExtractError(f"array {name}: value {bad[0]} out of range for {ctype}", file=file, line=line)
    return np.array(vals, dtype=dtype)


def _parse_init_call(fn: str, args: str, file: str, line: int) -> dict:
    parts = [a.strip() for a in args.split(",")]
    if len(parts) < 2 or not parts[0].startswith("&model->"):
        raise ExtractError(f"cannot read {fn} call", file=file, line=line)
    names = _INIT_ARGS.get(fn)
    rest = parts[2:]
    if names is None or len(rest) != len(names):
        raise ExtractError(f"{fn}: unexpected arguments ({len(rest)})", file=file, line=line)
    d: dict = {"name": parts[0][len("&model->"):], "kind": fn[: -len("_init")]}
    for key, val in zip(names, rest):
        if val == "NULL":
            d[key] = None
        elif val.startswith('"') and val.endswith('"'):
            d[key] = val[1:-1]
        else:
            try:
                d[key] = int(val, 0)
            except ValueError:
                raise ExtractError(f"{fn}: argument {key}={val!r} is not a literal", file=file, line=line) from None
    return d


_TWIDDLES_RE = re.compile(r"^(\s*(?:static\s+)?const\s+)kiss_twiddle_cpx(\s+\w+\s*)\[\s*(\d+)\s*\]", re.M)
_KFFT_RE = re.compile(r"const\s+kiss_fft_state\s+kfft\s*=\s*\{(?P<body>.*?)\};", re.S)


def parse_lpcnet_tables(text: str, file: str = "dnn/lpcnet_tables.c") -> CDataFile:
    """The tables of ``dnn/lpcnet_tables.c`` as arrays: ``fft_bitrev`` (int16), ``fft_twiddles`` (float32,
    ``[r0, i0, r1, i1, ...]``), ``half_window`` and ``dct_table`` (float32), and the FFT plan ``kfft``
    (``celt/kiss_fft.h:kiss_fft_state``) as ``kfft_nfft``, ``kfft_scale``, ``kfft_shift`` and ``kfft_factors``.

    The complex twiddles are read as a flat float array (their braces dropped); the plan's fields are
    read in their declared order (nfft, scale, shift, factors, then pointers)."""
    def flatten(m: re.Match) -> str:
        return f"{m.group(1)}float{m.group(2)}[{2 * int(m.group(3))}]"

    body = _TWIDDLES_RE.sub(flatten, text)
    start = _TWIDDLES_RE.search(text)
    if start is None:
        raise ExtractError("no kiss_twiddle_cpx table", file=file)
    head, tail = body[: start.start()], body[start.start():]
    cut = tail.index("};")
    inner = tail[:cut]
    eq = inner.index("=") + 1
    inner = inner[:eq] + " {" + inner[eq:].replace("{", " ").replace("}", " ")
    plan = _KFFT_RE.search(text)
    if plan is None:
        raise ExtractError("no kfft plan", file=file)
    tail_rest = _KFFT_RE.sub("", tail[cut:])
    out = parse_c_data(head + inner + tail_rest, file)
    fields = _COMMENT_RE.sub("", plan.group("body"))
    m = re.match(r"\s*(?P<nfft>\d+)\s*,\s*(?P<scale>[-+0-9.eE]+)f?\s*,\s*(?P<shift>-?\d+)\s*,\s*\{(?P<f>[^}]*)\}",
                 fields)
    if m is None:
        raise ExtractError("cannot read the kfft plan's fields", file=file)
    factors = [int(x) for x in m.group("f").split(",") if x.strip()]
    line = text[: plan.start()].count("\n") + 1
    for name, ctype, dtype, vals in (("kfft_nfft", "int", "int32", [int(m.group("nfft"))]),
                                     ("kfft_scale", "float", "float32", [float(m.group("scale"))]),
                                     ("kfft_shift", "int", "int32", [int(m.group("shift"))]),
                                     ("kfft_factors", "int", "int32", factors)):
        out.arrays[name] = CArray(name, ctype, dtype, len(vals), np.array(vals, dtype=dtype), (), file, line)
    return out


def _check_consistency(out: CDataFile, file: str) -> None:
    """WeightArray entries must name parsed arrays of a matching type."""
    for tname, entries in out.tables.items():
        for e in entries:
            arr = out.arrays.get(e["name"])
            if arr is None:
                raise ExtractError(f"{tname} lists {e['name']!r}, which is not defined", file=file)
            wt = e["type"]
            if wt.startswith("WEIGHTS_"):
                wt = arr.weight_type or wt
            if wt in WEIGHT_TYPES and arr.dtype not in WEIGHT_TYPES[wt]:
                raise ExtractError(f"{e['name']}: {wt} does not match C type {arr.ctype}", file=file)
            e["weight_type"] = wt
    for arr in out.arrays.values():
        if arr.weight_type in WEIGHT_TYPES and arr.dtype not in WEIGHT_TYPES[arr.weight_type]:
            raise ExtractError(f"{arr.name}: {arr.weight_type} does not match C type {arr.ctype}", file=file, line=arr.line)


# --------------------------------------------------------------------------------------------
# headers

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Div: operator.floordiv, ast.LShift: operator.lshift,
           ast.RShift: operator.rshift}


def _eval_int(expr: str, env: dict[str, int]) -> int | None:
    """Evaluate a C integer constant expression of literals, known macros, + - * / << >>."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in env:
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, (ast.FloorDiv, ast.Div)):
                if b == 0:
                    raise ValueError
                q = abs(a) // abs(b)
                return q if (a >= 0) == (b >= 0) else -q  # C truncates toward zero
            return _BINOPS[type(node.op)](a, b)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError

    try:
        return ev(tree)
    except (ValueError, KeyError, RecursionError):
        return None


def parse_defines(text: str, env: dict[str, int] | None = None) -> dict[str, int]:
    """Integer ``#define``s of a header (include guards and non-integer macros are skipped)."""
    env = dict(env or {})
    found: dict[str, int] = {}
    for line in _COMMENT_RE.sub(" ", text).split("\n"):
        m = re.match(r"^\s*#\s*define\s+(\w+)\s+(.+?)\s*$", line)
        if not m:
            continue
        v = _eval_int(m.group(2), env)
        if v is not None:
            env[m.group(1)] = v
            found[m.group(1)] = v
    return found


def parse_model_hash(autogen: str) -> str | None:
    m = re.search(r'download_model\.sh\s+"?([0-9a-fA-F]{6,64})"?', autogen)
    return m.group(1) if m else None


def parse_copyright(copying: str) -> dict:
    """The copyright line(s) at the head of libopus' COPYING: years and holders."""
    head = copying.strip().split("\n\n", 1)[0]
    m = re.match(r"\s*Copyright\s+(?P<years>[\d\-, ]+)\s+(?P<who>.*)", head, re.S)
    if not m:
        return {"years": None, "holders": [], "text": head}
    holders = [h.strip() for h in re.split(r",\s*", " ".join(m.group("who").split())) if h.strip()]
    return {"years": m.group("years").strip(), "holders": holders, "text": " ".join(head.split())}


# --------------------------------------------------------------------------------------------
# source access


class _Source:
    """Read files of a libopus source tree or of a release tarball (without unpacking it)."""

    def __init__(self, src: Path):
        self.path = Path(src)
        self.tarball_sha256: str | None = None
        self._files: dict[str, bytes] = {}
        if self.path.is_dir():
            self.kind = "directory"
        elif self.path.is_file() and tarfile.is_tarfile(self.path):
            self.kind = "tarball"
            data = self.path.read_bytes()
            self.tarball_sha256 = hashlib.sha256(data).hexdigest()
            wanted = set(DATA_FILES + TABLE_FILES + HEADER_FILES + OTHER_FILES)
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                for member in tf.getmembers():
                    parts = member.name.split("/", 1)
                    if len(parts) == 2 and parts[1] in wanted and member.isfile():
                        f = tf.extractfile(member)
                        if f is not None:
                            self._files[parts[1]] = f.read()
        else:
            raise ExtractError(f"not a libopus source directory or tarball: {src}")

    def read(self, rel: str, required: bool = True) -> str | None:
        if self.kind == "directory":
            p = self.path / rel
            if p.is_file():
                return p.read_text(encoding="utf-8", errors="strict")
        elif rel in self._files:
            return self._files[rel].decode("utf-8")
        if required:
            raise ExtractError(f"missing {rel} in {self.path}")
        return None


@dataclass
class Extracted:
    """Everything :func:`extract` read, ready for :func:`opus_dred.models._pack.write_pack`."""

    arrays: dict[str, np.ndarray]
    array_info: dict[str, dict]  # name → {file, ctype, conditional, weight_type, table}
    layers: dict[str, dict]
    constants: dict[str, int]
    source: dict
    licence: dict
    tables: dict[str, list[str]]


def extract(src: str | Path, *, release: str | None = None, tarball_name: str | None = None,
            tarball_sha256: str | None = None) -> Extracted:
    """Read the DRED model data of a libopus source tree or release tarball.

    ``release`` defaults to the tree's ``package_version``; ``tarball_name``/``tarball_sha256``
    record which release tarball the tree came from (computed when ``src`` is the tarball itself).
    """
    s = _Source(Path(src))
    if release is None:
        pv = s.read("package_version", required=False)
        m = re.search(r'PACKAGE_VERSION="?([^"\s]+)"?', pv or "")
        release = m.group(1) if m else None
    known = KNOWN_TARBALLS.get(release or "")
    if s.kind == "tarball":
        if known and s.path.name == known[0] and tarball_sha256 is None:
            tarball_sha256 = known[1]
        tarball_name = tarball_name or s.path.name
        if tarball_sha256 and tarball_sha256 != s.tarball_sha256:
            raise ExtractError(f"{s.path.name}: sha256 {s.tarball_sha256} differs from the expected {tarball_sha256}")
        tarball_sha256 = s.tarball_sha256
    elif known:
        tarball_name = tarball_name or known[0]
        tarball_sha256 = tarball_sha256 or known[1]

    constants: dict[str, int] = {}
    for h in HEADER_FILES:
        constants.update(parse_defines(s.read(h), constants))
    autogen = s.read("autogen.sh", required=False)
    model_hash = parse_model_hash(autogen) if autogen else None
    hash_from = "autogen.sh"
    if model_hash is None:
        model_hash = KNOWN_MODEL_HASHES.get(release or "")
        hash_from = "autogen.sh at the release tag (not in the release tarball)" if model_hash else None

    arrays: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    layers: dict[str, dict] = {}
    tables: dict[str, list[str]] = {}
    for rel in DATA_FILES:
        parsed = parse_c_data(s.read(rel), rel)
        in_table = {e["name"]: t for t, es in parsed.tables.items() for e in es}
        for name, a in parsed.arrays.items():
            if name in arrays:
                raise ExtractError(f"array {name} defined in two files", file=rel)
            arrays[name] = a.values
            info[name] = {"file": rel, "ctype": a.ctype, "conditional": list(a.conditions),
                          "weight_type": a.weight_type, "table": in_table.get(name)}
        for t, es in parsed.tables.items():
            tables[t] = [e["name"] for e in es]
        for layer in parsed.layers:
            layer = dict(layer)
            layer["file"] = rel
            layer["init_function"] = parsed.init_function
            _check_layer(layer, arrays, rel)
            layers[layer["name"]] = layer

    for rel in TABLE_FILES:
        for name, a in parse_lpcnet_tables(s.read(rel), rel).arrays.items():
            if name in arrays:
                raise ExtractError(f"array {name} defined in two files", file=rel)
            arrays[name] = a.values
            info[name] = {"file": rel, "ctype": a.ctype, "conditional": list(a.conditions),
                          "weight_type": None, "table": None}

    copying = s.read("COPYING", required=False)
    cr = parse_copyright(copying) if copying else {"years": None, "holders": [], "text": None}
    source = {
        "release": release,
        "kind": s.kind,
        "tarball": tarball_name,
        "tarball_sha256": tarball_sha256,
        "model_hash": model_hash,
        "model_hash_from": hash_from,
        "dred_experimental_version": constants.get("DRED_EXPERIMENTAL_VERSION"),
        "files": list(DATA_FILES + TABLE_FILES + HEADER_FILES),
    }
    licence = {
        "spdx": "BSD-3-Clause",
        "statement": f"BSD-3-Clause, extracted from libopus {release} release tarball",
        "copyright_years": cr["years"],
        "copyright_holders": cr["holders"],
        "copyright": cr["text"],
    }
    return Extracted(arrays, info, layers, constants, source, licence, tables)


def _check_layer(layer: dict, arrays: dict[str, np.ndarray], file: str) -> None:
    """Sizes implied by a linear_init call (dnn/parse_lpcnet_weights.c:linear_init) must hold."""
    refs = [k for k in ("bias", "subias", "weights", "float_weights", "weights_idx", "diag", "scale")
            if isinstance(layer.get(k), str)]
    # float_weights is optional in linear_init (opt_array_check); every other named array must exist
    absent = [layer[k] for k in refs if layer[k] not in arrays]
    required_absent = [layer[k] for k in refs if layer[k] not in arrays and k != "float_weights"]
    if required_absent:
        raise ExtractError(f"layer {layer['name']}: arrays {required_absent} are not defined", file=file)
    layer["absent"] = absent
    if layer["kind"] != "linear":
        return
    nin, nout = layer["nb_inputs"], layer["nb_outputs"]
    for key in ("bias", "subias", "scale", "diag"):
        name = layer.get(key)
        if name is not None and name in arrays and arrays[name].size != nout:
            raise ExtractError(f"layer {layer['name']}: {name} has {arrays[name].size} values, expected {nout}", file=file)
    idx = layer.get("weights_idx")
    if idx is not None:
        blocks = _sparse_blocks(arrays.get(idx), nin, nout, layer["name"], file)
        expect = 32 * blocks  # SPARSE_BLOCK_SIZE (8 outputs x 4 inputs)
        layer["sparse_blocks"] = blocks
    else:
        expect = nin * nout
    for key in ("weights", "float_weights"):
        name = layer.get(key)
        if name is not None and name in arrays and arrays[name].size != expect:
            raise ExtractError(f"layer {layer['name']}: {name} has {arrays[name].size} values, expected {expect}", file=file)


def _sparse_blocks(idx: np.ndarray | None, nin: int, nout: int, name: str, file: str) -> int:
    """Walk a sparse index array: per group of 8 outputs, a count then that many input offsets
    (multiples of 4, below nb_inputs). Returns the number of 8x4 blocks."""
    if idx is None:
        raise ExtractError(f"layer {name}: index array missing", file=file)
    pos = 0
    total = 0
    for _ in range(nout // 8):
        if pos >= idx.size:
            raise ExtractError(f"layer {name}: index array too short", file=file)
        cnt = int(idx[pos])
        pos += 1
        if cnt < 0 or pos + cnt > idx.size:
            raise ExtractError(f"layer {name}: bad block count {cnt}", file=file)
        cols = idx[pos:pos + cnt]
        if np.any(cols < 0) or np.any(cols + 4 > nin) or np.any(cols % 4):
            raise ExtractError(f"layer {name}: block position out of range", file=file)
        pos += cnt
        total += cnt
    if pos != idx.size:
        raise ExtractError(f"layer {name}: index array has {idx.size - pos} values left over", file=file)
    return total
