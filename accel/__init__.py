"""``opus_dred.accel``: the same DRED decoding as the reference, reorganised for throughput.

One job: decode many packets fast without computing anything the reference would not: the batched numpy reader
of DRED payloads, the JAX entropy reader (one XLA computation for a batch), and the batched RDO-VAE decoder,
which injects its exact integer GEMMs into the reference's own decoder step. ``decode_packets`` runs the three
stages on every core. Every path is tested equal to the reference (``tests/test_batch.py``,
``tests/test_fast.py``); speed is measured by ``opus-dred bench``.

The JAX names load JAX on first use.
"""

from opus_dred._lazy import lazy_names
from opus_dred.accel._bitstream import BatchDred, locate_dred_payloads, read_dred_payloads

#: names that load JAX, resolved on first use: name -> private module
_LAZY = {
    "decode_packets": "_decode",
    "StreamDecode": "_decode",
    "prepare": "_decode",
    "decode_batch": "_decode",
    "read_dred_payloads_jax": "_reader",
    "pack_payloads": "_reader",
}

__all__ = ["read_dred_payloads", "locate_dred_payloads", "BatchDred", *_LAZY]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
