"""``opus_dred.cli``: the one command-line tool, ``opus-dred``, the top layer.

One private module per command or command group (``_inspect``, ``_decode``, ``_conform``, ...), each
exposing a ``typer.Typer`` named ``app`` (a group) or a function ``register(root)`` (top-level commands);
this module only ties them together. The library layers below hold no command-line code. Heavy imports
(JAX, ctypes builds) stay inside the commands so that ``--help`` and ``inspect`` start quickly.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "main"]

from opus_dred import __version__

app = typer.Typer(
    name="opus-dred",
    help="Reference implementation, bitstream toolkit and conformance suite for Opus DRED.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (group name, module providing `app`) for command groups
_GROUPS = [
    ("upstream", "opus_dred.cli._upstream", "Fetch, build and locate the pinned libopus releases."),
    ("models", "opus_dred.cli._models", "Model packs: RDO-VAE weights and DRED statistics tables."),
    ("profiles", "opus_dred.cli._profiles", "Bitstream profiles: DRED variants and their constants."),
    ("speech", "opus_dred.cli._speech", "The real-speech corpus: list, fetch, export clips."),
    ("metric", "opus_dred.cli._metric", "The DRED compliance metric (libopus' dred_compare): features and audio."),
    ("vectors", "opus_dred.cli._vectors", "Test vectors: generate, verify, export (official layout), list."),
    ("bench", "opus_dred.cli._bench", "Speed benchmarks: libopus against the reference, same run."),
]
# modules providing `register(app)` for top-level commands
_COMMANDS = [
    "opus_dred.cli._inspect",
    "opus_dred.cli._decode",
    "opus_dred.cli._vocode",
    "opus_dred.cli._encode",
    "opus_dred.cli._agreement",
    "opus_dred.cli._simulate",
    "opus_dred.cli._conform",
    "opus_dred.cli._fuzz",
    "opus_dred.cli._impact",
]


def _load() -> None:
    for name, module, help_text in _GROUPS:
        mod = importlib.import_module(module)
        app.add_typer(mod.app, name=name, help=help_text)
    for module in _COMMANDS:
        mod = importlib.import_module(module)
        mod.register(app)


_load()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
