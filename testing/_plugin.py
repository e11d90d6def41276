"""A pytest plugin: the conformance suite as parametrised tests, one per case and implementation.

Registered as the ``opus_dred`` entry point of ``pytest11``, so it is loaded wherever opus-dred is installed, and
inert unless ``--opus-dred-impl`` is given (no option required, nothing collected, nothing imported beyond this
module)::

    pytest --opus-dred-impl 'external:./my-decoder --conform'
    pytest --opus-dred-impl reference --opus-dred-suite path/to/suite --opus-dred-profile libopus-1.6.1

Each case runs through the adapter of :func:`opus_dred.conformance.make_adapter` and is judged by
:func:`opus_dred.conformance.run_case` (the same comparison as ``opus-dred conform``): ``pass`` passes,
``skip`` skips with the reason, ``fail`` and ``error`` fail with the first differing field, its offset, what was
expected and what came, and for features the ``dred_compare`` figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: the node name every conformance test starts with (``pytest -k`` selects on it and on the case id)
NODE_PREFIX = "opus-dred"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("opus-dred", "Opus DRED conformance (opus-dred)")
    g.addoption("--opus-dred-impl", action="append", default=[], metavar="IMPL",
                help="run the conformance suite against IMPL: 'external:CMD ARGS', 'reference' or a libopus build "
                     "(repeatable). Without it this plugin adds nothing.")
    g.addoption("--opus-dred-suite", default=None, metavar="DIR",
                help="a suite root, any folder inside one, or one case folder (default: the canonical suite)")
    g.addoption("--opus-dred-profile", default=None, metavar="P", help="only cases of profile P")
    g.addoption("--opus-dred-handler", default=None, metavar="H", help="only cases of handler H")
    g.addoption("--opus-dred-timeout", type=float, default=20.0, metavar="S",
                help="seconds an external implementation has for one case (default 20)")


def load_cases(suite: str | Path | None, profile: str | None = None, handler: str | None = None) -> list[Any]:
    """The cases under ``suite`` (every ``meta.json`` below it, in path order; the canonical suite for None),
    filtered by profile and handler."""
    from opus_dred.vectors._format import load_case, suite_root  # lazy: only when the plugin is asked to run

    root = Path(suite) if suite is not None else suite_root()
    if not root.is_dir():
        raise pytest.UsageError(f"--opus-dred-suite {root}: no such directory")
    cases = [load_case(m.parent) for m in sorted(root.rglob("meta.json"))]
    return [c for c in cases if (profile is None or c.profile == profile) and (handler is None or c.handler == handler)]


class CaseFailed(Exception):
    """A case that failed or erred; the message is the readable report."""


class _Adapters:
    """One adapter per ``--opus-dred-impl``, started on first use and closed at the end of the session."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._open: dict[str, Any] = {}

    def get(self, spec: str) -> Any:
        if spec not in self._open:
            from opus_dred.conformance._adapters import make_adapter  # lazy: only when the plugin is asked to run

            self._open[spec] = make_adapter(spec, timeout=self.timeout)
        return self._open[spec]

    def close(self) -> None:
        for a in self._open.values():
            close = getattr(a, "close", None)
            if close:
                close()
        self._open.clear()


_ADAPTERS = pytest.StashKey[_Adapters]()


def describe(outcome: Any) -> str:
    """The failure text of one :class:`~opus_dred.conformance.Outcome`: the case, the first differing field and
    its offset, the detail, and the ``dred_compare`` figures when features were compared."""
    lines = [f"{outcome.impl}: {outcome.case}: {outcome.status}"]
    if outcome.field is not None:
        at = f" at offset {outcome.offset}" if outcome.offset is not None else ""
        lines.append(f"  first difference: {outcome.field}{at}")
    if outcome.detail:
        lines.append(f"  {outcome.detail}")
    m = outcome.metric
    if m and "total" in m:
        pitch = "n/a" if m.get("pitch") is None else f"{m['pitch']:.4g}"
        lines.append(f"  dred_compare: total {m['total']:.4g}, max {m['max']:.4g}, pitch {pitch} "
                     f"(thresholds {' '.join(f'{t:g}' for t in m['thresholds'])}), bit_exact {m['bit_exact']}")
    if outcome.partial:
        lines.append(f"  not reported: {', '.join(outcome.partial)}")
    return "\n".join(lines)


class ConformanceItem(pytest.Item):
    """One case through one implementation."""

    def __init__(self, *, spec: str, case: Any, **kw: Any):
        super().__init__(**kw)
        self.spec = spec
        self.case = case
        self.add_marker(pytest.mark.opus_dred)

    def runtest(self) -> None:
        from opus_dred.conformance._runner import run_case  # lazy: only when the plugin is asked to run

        outcome = run_case(self.config.stash[_ADAPTERS].get(self.spec), self.case)
        self.user_properties.append(("opus_dred_outcome", outcome.to_json()))
        if outcome.status == "skip":
            pytest.skip(f"{outcome.case}: {outcome.detail}")
        if outcome.status == "behaviour":  # another variant of a profile's behaviour rule: not a decoding failure
            return
        if outcome.status != "pass":
            raise CaseFailed(describe(outcome))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return Path(self.case.path or "."), None, f"{self.spec} {self.case.id}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "opus_dred: a conformance case of opus-dred's suite (--opus-dred-impl)")
    if config.getoption("--opus-dred-impl"):
        config.stash[_ADAPTERS] = _Adapters(config.getoption("--opus-dred-timeout"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Append one item per (implementation, case) before ``-k``/``-m`` deselect."""
    specs = config.getoption("--opus-dred-impl")
    if not specs:
        return
    cases = load_cases(config.getoption("--opus-dred-suite"), config.getoption("--opus-dred-profile"),
                       config.getoption("--opus-dred-handler"))
    for spec in specs:
        for case in cases:
            name = f"{NODE_PREFIX}[{spec}][{case.id}]"
            items.append(ConformanceItem.from_parent(session, name=name, nodeid=name, spec=spec, case=case))


def pytest_unconfigure(config: pytest.Config) -> None:
    adapters = config.stash.get(_ADAPTERS, None)
    if adapters is not None:
        adapters.close()
