"""``opus_dred.errors``: the root of every typed error opus-dred raises on purpose (the lowest layer).

Each layer derives its own errors from :class:`OpusDredError`, so a caller can catch everything opus-dred
raises deliberately in one ``except`` and let real bugs through.
"""

from __future__ import annotations


class OpusDredError(Exception):
    """Root of every error raised on purpose by opus-dred."""
