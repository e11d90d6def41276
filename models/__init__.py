"""``opus_dred.models``: model packs, the RDO-VAE weights and DRED statistics tables as data.

One job: hold the figures that libopus compiles in (weights, quantizer statistics, constants) as committed data
with source and licence, load them, verify them, and extract them again from a libopus source tree. A leaf of
the import graph: it imports nothing of ours but :mod:`opus_dred.errors`; both the bitstream layer (the quantizer
statistics) and the reference (the weights) read packs through it.
"""

from opus_dred.models._extract import ExtractError, Extracted, extract
from opus_dred.models._pack import (
    ModelPack,
    PackError,
    PackIntegrityError,
    UnknownPackError,
    compare_with_extracted,
    find_pack,
    list_packs,
    load_pack,
    verify_against_source,
    write_pack,
)

__all__ = [
    "ModelPack",
    "load_pack",
    "find_pack",
    "list_packs",
    "write_pack",
    "extract",
    "Extracted",
    "compare_with_extracted",
    "verify_against_source",
    "PackError",
    "PackIntegrityError",
    "UnknownPackError",
    "ExtractError",
]
