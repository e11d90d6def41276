"""docs/spec-map.md names real functions: every ``module:function`` of ours imports and resolves, every row of
a section names at least one, the sections of RFC 6716 §3 and §4.1 are all there, and every libopus
``file:function`` is found in a libopus source tree where one is at hand."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest

SPEC_MAP = Path(__file__).resolve().parents[1] / "docs" / "spec-map.md"
_OURS = re.compile(r"`(opus_dred(?:\.\w+)+):([\w.]+)`")
_LIBOPUS = re.compile(r"`((?:celt|silk|src|dnn)/[\w/]+\.[ch]):(\w+)`")
_CELL = re.compile(r"(?<!\\)\|")


def _rows() -> list[tuple[str, str, str]]:
    """``(section, ours, libopus)`` of every table row (header and rule rows left out)."""
    rows = []
    for line in SPEC_MAP.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| section"):
            continue
        cells = [c.strip() for c in _CELL.split(line)[1:-1]]
        assert len(cells) == 3, f"a spec-map row has three columns: {line}"
        rows.append((cells[0], cells[1], cells[2]))
    return rows


def _resolve(module: str, name: str):
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_function_of_ours_exists():
    refs = sorted({m for _, ours, _ in _rows() for m in _OURS.findall(ours)})
    assert len(refs) > 60
    missing = []
    for module, name in refs:
        try:
            _resolve(module, name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{module}:{name} ({exc})")
    assert not missing, "docs/spec-map.md names functions that do not exist: " + "; ".join(missing)


def test_every_row_names_our_function_and_libopus_one():
    for section, ours, libopus in _rows():
        if ours.startswith("(the two below)"):
            continue
        assert _OURS.search(ours), f"no function of ours for {section!r}"
        assert _LIBOPUS.search(libopus), f"no libopus function for {section!r}"


def test_every_section_of_rfc6716_framing_and_range_decoder_is_mapped():
    sections = " ".join(s for s, _, _ in _rows())
    wanted = ["§3 Internal Framing", "§3.1 The TOC Byte", "§3.2 Frame Packing", "§3.2.1 Frame Length Coding",
              "§3.2.2 Code 0", "§3.2.3 Code 1", "§3.2.4 Code 2", "§3.2.5 Code 3", "§3.3 Examples",
              "§3.4 Receiving Malformed Packets", "Appendix B Self-Delimiting Framing", "§4.1 Range Decoder",
              "§4.1.1 Range Decoder Initialization", "§4.1.2 Decoding Symbols", "§4.1.2.1 Renormalization",
              "§4.1.3 Alternate Decoding Methods", "§4.1.3.1 ec_dec_bit_logp()", "§4.1.3.2 ec_dec_icdf()",
              "§4.1.4 Decoding Raw Bits", "§4.1.5 Decoding Uniformly Distributed Integers",
              "§4.1.6 Current Bit Usage", "§4.1.6.1 ec_tell()", "§4.1.6.2 ec_tell_frac()"]
    wanted += [f"R{i}" for i in range(1, 8)]
    assert [w for w in wanted if w not in sections] == []


def _libopus_trees() -> list[Path]:
    from opus_dred.libopus._upstream import source_dir

    trees = [Path(os.environ["OPUS_DRED_LIBOPUS_TREE"])] if os.environ.get("OPUS_DRED_LIBOPUS_TREE") else []
    trees += [source_dir(r) for r in ("1.5.2", "1.6.1")]
    return [t for t in trees if (t / "celt" / "entdec.c").is_file()]


def test_every_libopus_function_is_in_the_libopus_sources():
    trees = _libopus_trees()
    if not trees:
        pytest.skip("no libopus source tree here (opus-dred upstream fetch, or OPUS_DRED_LIBOPUS_TREE)")
    refs = sorted({m for _, _, lib in _rows() for m in _LIBOPUS.findall(lib)})
    missing = []
    for path, name in refs:
        texts = [(t / path).read_text(encoding="utf-8", errors="replace") for t in trees if (t / path).is_file()]
        if not any(re.search(rf"\b{re.escape(name)}\s*\(", text) for text in texts):
            missing.append(f"{path}:{name}")
    assert not missing, "docs/spec-map.md names libopus functions not in the sources: " + ", ".join(missing)
