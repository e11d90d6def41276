"""The layers of the house, checked: import-linter's contracts (``pyproject.toml``) on the package as it
installs, ``docs/architecture.md`` against those contracts, the lazy imports and the package sizes.

import-linter (through grimp) finds a package's modules by walking its folder, while this project maps
each layer's top-level folder into ``opus_dred`` (``[tool.setuptools] package-dir``). The tests therefore
lay the sources out as the wheel does, in a temporary folder, and lint that copy.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIR: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
CONTRACTS: list[dict] = PYPROJECT["tool"]["importlinter"]["contracts"]
LINT = Path(sys.executable).with_name("lint-imports")


def _lay_out(dst: Path) -> Path:
    """Copy every package's modules to ``dst`` at their installed place (``opus_dred/bitstream/...``)."""
    for pkg, folder in PACKAGE_DIR.items():
        target = dst.joinpath(*pkg.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for f in (ROOT / folder).glob("*.py"):
            shutil.copy2(f, target / f.name)
    shutil.copy2(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([str(LINT), "--config", str(tree / "pyproject.toml"), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory) -> Path:
    return _lay_out(tmp_path_factory.mktemp("installed"))


def test_every_package_is_mapped_and_listed():
    packages = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert packages == set(PACKAGE_DIR)
    on_disk = {"opus_dred"} | {f"opus_dred.{p.parent.name}" for p in ROOT.glob("*/__init__.py")
                               if p.parent.name not in ("tests", "docs", "opus_dred")}
    on_disk |= {"opus_dred." + p.parent.name for p in (ROOT / "opus_dred").glob("*/__init__.py")}
    assert on_disk == packages


def test_import_contracts_hold(laid_out):
    r = _lint(laid_out)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken" in r.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("bitstream/_packet.py", "import jax", "the bitstream layer never imports jax"),
    ("models/_pack.py", "from opus_dred.bitstream import _packet", "models imports nothing of ours but the errors"),
    ("refimpl/_rdovae.py", "from opus_dred.libopus import _oracle", "the reference never imports libopus"),
    ("bitstream/_dred.py", "from opus_dred.vectors import _format", "each layer imports only the layers below it"),
])
def test_a_violation_is_caught(tmp_path, module, line, contract):
    tree = _lay_out(tmp_path)
    pkg, name = module.split("/")
    target = tree / "opus_dred" / pkg / name
    target.write_text(target.read_text() + f"\n{line}  # injected by the test\n")
    r = _lint(tree)
    assert r.returncode != 0
    assert f"{contract}" in r.stdout and "BROKEN" in r.stdout


def _layers() -> list[str]:
    (contract,) = [c for c in CONTRACTS if c["type"] == "layers"]
    return list(contract["layers"])


def test_architecture_doc_lists_the_layers_and_contracts():
    """docs/architecture.md's layer table is the layers contract, top to bottom, and it names every contract."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `(opus_dred[.\w]*)` \|", doc, re.M)
    assert rows == _layers(), "docs/architecture.md's layer table differs from the layers contract"
    for c in CONTRACTS:
        assert c["name"] in doc, f"docs/architecture.md does not name the contract {c['name']!r}"


def _library_files():
    for pkg, folder in PACKAGE_DIR.items():
        for f in sorted((ROOT / folder).glob("*.py")):
            yield pkg, f


HEAVY = ("jax", "jaxlib", "scipy", "matplotlib", "pesq", "pystoi")


def test_function_local_imports_say_why():
    """A function-local import of our own modules or of a heavy library stays only to keep that import lazy,
    and says so on its line (``# lazy: ...``)."""
    missing = []
    for _pkg, f in _library_files():
        src = f.read_text()
        lines = src.splitlines()
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for n in ast.walk(node):
                if isinstance(n, ast.ImportFrom) and not n.level:
                    mod = n.module or ""
                elif isinstance(n, ast.Import):
                    mod = n.names[0].name
                else:
                    continue
                if (mod.startswith("opus_dred") or mod.split(".")[0] in HEAVY) and "# lazy:" not in lines[n.lineno - 1]:
                    missing.append(f"{f.relative_to(ROOT)}:{n.lineno}: {lines[n.lineno - 1].strip()}")
    assert not missing, "function-local imports without a '# lazy:' reason:\n" + "\n".join(missing)


def _lines(folder: Path) -> int:
    return sum(len(f.read_text().splitlines()) for f in folder.glob("*.py"))


def test_no_package_holds_more_than_a_third_of_the_code():
    sizes = {pkg: _lines(ROOT / folder) for pkg, folder in PACKAGE_DIR.items()}
    total = sum(sizes.values())
    big = {p: n for p, n in sizes.items() if 3 * n > total}
    assert not big, f"packages over a third of {total} lines: {big}"


def test_importing_the_cli_loads_no_heavy_library():
    code = ("import sys, opus_dred.cli; "
            f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert r.stdout.strip() == ""


@pytest.mark.parametrize("package", sorted(p for p in PACKAGE_DIR if p not in ("opus_dred",)))
def test_each_package_states_its_job_and_exports_a_small_facade(package):
    """Every package's ``__init__`` says what the package is for and re-exports the names a user needs (a
    handful to about twenty), each one resolving, none private."""
    import importlib

    mod = importlib.import_module(package)
    assert mod.__doc__ and "One job" in mod.__doc__ or package == "opus_dred.cli", f"{package} has no job statement"
    names = list(getattr(mod, "__all__", []))
    if package == "opus_dred.cli":
        assert names == ["app", "main"]
    else:
        assert 4 <= len(names) <= 24, f"{package} exports {len(names)} names"
    assert len(set(names)) == len(names)
    for name in names:
        assert not name.startswith("_")
        assert getattr(mod, name) is not None
    public_modules = [f.stem for f in (ROOT / PACKAGE_DIR[package]).glob("*.py")
                      if not f.stem.startswith("_")]
    assert not public_modules, f"{package} has public modules {public_modules}: make them private (_name)"
