"""The one command-line tool, ``opus-dred``.

Each layer owns its commands in a module of its own (``<layer>/cli.py``) exposing a ``typer.Typer``
named ``app`` (a command group) or a function ``register(root)`` (top-level commands); this module only
ties them together. Heavy imports (JAX, ctypes builds) stay inside the commands so that ``--help`` and
``inspect`` start quickly.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="opus-dred",
    help="Reference implementation, bitstream toolkit and conformance suite for Opus DRED.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (group name, module providing `app`) for command groups
_GROUPS = [
    ("upstream", "opus_dred.conformance.upstream_cli", "Fetch, build and locate the pinned libopus releases."),
    ("models", "opus_dred.models.cli", "Model packs: RDO-VAE weights and DRED statistics tables."),
    ("profiles", "opus_dred.bitstream.profiles_cli", "Bitstream profiles: DRED variants and their constants."),
    ("speech", "opus_dred.conformance.speech_cli", "The real-speech corpus: list, fetch, export clips."),
    ("metric", "opus_dred.conformance.metric_cli", "The DRED compliance metric (libopus' dred_compare): features and audio."),
    ("vectors", "opus_dred.vectors.cli", "Test vectors: generate, verify, export (official layout), list."),
    ("bench", "opus_dred.conformance.bench_cli", "Speed benchmarks: libopus against the reference, same run."),
]
# modules providing `register(app)` for top-level commands
_COMMANDS = [
    "opus_dred.bitstream.cli",
    "opus_dred.refimpl.cli",
    "opus_dred.conformance.agreement_cli",
    "opus_dred.conformance.simulate_cli",
    "opus_dred.conformance.conform_cli",
    "opus_dred.conformance.fuzz_cli",
]


def _load() -> None:
    for name, module, help_text in _GROUPS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a layer not written yet
            if exc.name != module:
                raise
            continue
        app.add_typer(mod.app, name=name, help=help_text)
    for module in _COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.register(app)


_load()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from opus_dred import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
