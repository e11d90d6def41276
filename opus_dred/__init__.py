"""opus-dred: reference implementation, bitstream toolkit and conformance suite for Opus DRED.

The layers live in top-level folders of the repository and are mapped into this one namespace:

==========================  =====================================================================
``opus_dred.models``        model packs (weights and DRED statistics tables, extracted from libopus)
``opus_dred.bitstream``     range coder, packet framing, extensions, DRED payloads, profiles
``opus_dred.refimpl``       pure-JAX RDO-VAE decoder and the receiver state machine
``opus_dred.vectors``       vector generator, format and the canonical suite
``opus_dred.conformance``   upstream libopus builds, the oracle, adapters, metric, runner
==========================  =====================================================================

Data flows one way: bytes -> packet -> extensions -> DRED payload -> latents -> features -> audio.
A module imports only the stages before it.
"""

__version__ = "0.1.0"
