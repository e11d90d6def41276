"""``opus_dred.accel``: the same DRED decoding and encoding as the reference, reorganised for throughput.

One job: decode and encode many streams fast without computing anything the reference would not: the batched
numpy reader of DRED payloads, the JAX entropy reader (one XLA computation for a batch), and the batched RDO-VAE
decoder, which injects its exact integer GEMMs into the reference's own decoder step (``decode_packets`` runs the
three stages on every core); and the encoder half over a batch of streams (``encode_streams``: the feature frames
in XLA a block at a time, the RDO-VAE encoder with the same GEMMs, a lockstep range encoder). Every path is tested
equal to the reference (``tests/test_batch.py``, ``tests/test_fast.py``, ``tests/test_accel_encode.py``); speed
is measured by ``opus-dred bench``.

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
    "encode_streams": "_encode",
}

__all__ = ["read_dred_payloads", "locate_dred_payloads", "BatchDred", *_LAZY]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
