"""``opus_dred.libopus``: libopus, the executable reference, as opus-dred uses it.

One job: have the pinned libopus releases (and any tree a user registers) fetched, verified, built and
located (``opus-dred upstream``), and expose what they compute through a ctypes oracle over a C shim of our
own (``shim/``): the range coder, packet and extension parsers, ``opus_dred_parse``/``opus_dred_process``,
the encoder and decoder, ``opus_demo``'s loss generator, and a probe of this CPU's ``RCPPS`` table. Nothing here
decides what is right; the layers above compare it with the reference.
"""

from opus_dred.libopus._builds import Build, cache_dir
from opus_dred.libopus._cpu import matching_rcpps_table, measure_rcpps
from opus_dred.libopus._oracle import Decoder, Oracle, OracleError, OpusCallError, error_name, resolve_build
from opus_dred.libopus._receiver import LibopusExecutor, decode_like_opus_demo, run_opus_demo
from opus_dred.libopus._upstream import (
    NotBuiltError,
    UpstreamError,
    ensure_all,
    ensure_build,
    get_build,
    known_builds,
    register,
    source_for_pack,
)

__all__ = [
    "Build",
    "cache_dir",
    "known_builds",
    "get_build",
    "ensure_build",
    "ensure_all",
    "register",
    "source_for_pack",
    "UpstreamError",
    "NotBuiltError",
    "Oracle",
    "OracleError",
    "OpusCallError",
    "Decoder",
    "error_name",
    "resolve_build",
    "measure_rcpps",
    "matching_rcpps_table",
    "LibopusExecutor",
    "decode_like_opus_demo",
    "run_opus_demo",
]
