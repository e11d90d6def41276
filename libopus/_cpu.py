"""This machine's ``RCPPS``, measured: which of the reference's emulated tables (if any) it is.

libopus' x86 activations multiply by the approximate reciprocal ``RCPPS``, whose exact results are
implementation-defined and differ between AMD and Intel cores (docs/numerics.md). The reference
emulates both (``opus_dred.refimpl._nnet.RCPPS_TABLES``) and picks one by CPU vendor
(``nnet.host_reciprocal``); this module runs the instruction itself, through a tiny C program of ours
(``shim/rcpps_probe.c``, compiled once into the cache), to confirm that choice. The tests use it to
decide where the reference must equal libopus' default build bit for bit.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from opus_dred.libopus._builds import cache_dir
from opus_dred.libopus._oracle import OracleError, _compiler

_PROBE = Path(__file__).parent / "shim" / "rcpps_probe.c"


def _probe_binary() -> Path | None:
    try:
        cc = _compiler()
    except OracleError:
        return None
    src = _PROBE.read_bytes()
    key = hashlib.sha256(cc.encode() + b"\0" + src).hexdigest()[:16]
    out = cache_dir() / "cpu" / f"rcpps_probe-{key}"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".probe-", dir=out.parent)
    os.close(fd)
    try:
        res = subprocess.run([cc, "-O1", "-o", tmp, str(_PROBE)], capture_output=True, text=True)
        if res.returncode != 0:
            return None
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


@functools.lru_cache(maxsize=1)
def measure_rcpps() -> np.ndarray | None:
    """``RCPPS(1 + m/4096)`` for m = 0..4095 as float32 bit patterns, measured on this CPU; ``None`` where
    the probe cannot run (no C compiler, not x86) or where the result depends on more than the top 12
    mantissa bits or does not scale with the exponent (no 4096-entry table can then describe it)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    exe = _probe_binary()
    if exe is None:
        return None
    res = subprocess.run([str(exe)], capture_output=True, check=True)
    vals = np.frombuffer(res.stdout, "<u4")
    if vals.size != 3 * 4096:
        return None
    base, low_set, scaled = vals[:4096], vals[4096:8192], vals[8192:]
    if not np.array_equal(base, low_set) or not np.array_equal(scaled + np.uint32(10 << 23), base):
        return None
    # the table's convention: results scaled into [0.5, 1) (RCPPS(1) is just below 1, so all are there)
    if not np.all(base >> np.uint32(23) == 126):
        return None
    return base.astype(np.uint32)


def matching_rcpps_table() -> str | None:
    """The name (``nnet.RCPPS_TABLES``) of the emulated table equal to this CPU's ``RCPPS``, or ``None``."""
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    got = measure_rcpps()
    if got is None:
        return None
    for mode in nnet.RCPPS_TABLES:
        if np.array_equal(nnet.rcpps_table(mode), got):
            return mode
    return None
