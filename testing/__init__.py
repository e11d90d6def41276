"""``opus_dred.testing``: a kit for testing a DRED implementation from another project's own test suite.

One job: hand another project what it needs to test its decoder in its CI: hypothesis strategies that make
valid Opus packets, extension lists, DRED payloads per profile and receiver event sequences (all written by
opus-dred's own writers), mutations and truncations of them, and a pytest plugin (``pytest --opus-dred-impl
'external:CMD'``, registered as the ``opus_dred`` entry point of ``pytest11``) that runs the conformance suite
as one test per case. ``docs/testing-kit.md`` shows both.

The strategies need ``hypothesis`` (``pip install 'opus-dred[testing]'``); they are resolved on first use, so
that the plugin, which pytest loads wherever opus-dred is installed, imports nothing of it.
"""

from opus_dred._lazy import lazy_names

#: names that load hypothesis, resolved on first use: name -> private module
_LAZY = {
    "opus_packets": "_strategies",
    "extension_lists": "_strategies",
    "dred_payloads": "_strategies",
    "mutations": "_strategies",
    "truncations": "_strategies",
    "receiver_events": "_strategies",
    "load_cases": "_plugin",
    "describe": "_plugin",
}

__all__ = [*_LAZY]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
