"""``opus_dred.bitstream``: everything from the bytes of an Opus packet down to quantized DRED latents.

Pure Python (numpy allowed, no JAX). Modules, in the order of the data flow:
``rangecoder`` (RFC 6716 §4.1 and the Laplace coder), ``packet`` (RFC 6716 §3 framing),
``extensions`` (draft-ietf-mlcodec-opus-extension), ``dred`` (draft-ietf-mlcodec-opus-dred payload),
``formats`` (file formats), with ``errors`` and ``profiles`` beside them.
"""
