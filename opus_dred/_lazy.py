"""Names of a package resolved on first use (PEP 562), so that importing a facade does not load JAX."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_names(package: str, names: dict[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` whose ``names`` map each lazy name to the private module that
    defines it; a resolved name is stored in ``namespace`` (the package's globals), so it resolves once."""

    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
