"""What a benchmark prints about the machine it ran on (every figure names its CPU: RCPPS and the kernels differ
by vendor and model)."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """This machine's CPU model as Linux names it (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
