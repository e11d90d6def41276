"""``opus_dred.models``: model packs, the RDO-VAE weights and DRED statistics tables as data.

A leaf of the import graph: both ``opus_dred.bitstream`` (which needs the quantizer statistics) and
``opus_dred.refimpl`` (which needs the weights) read packs through it; it imports neither.
"""
