"""``opus_dred.refimpl``: the readable reference in JAX, and the receiver.

One job: compute what a DRED decoder must output, in code a reader can follow: the nnet primitives with libopus'
numerics as explicit presets (``Numerics``), the RDO-VAE decoder (initial state and latents to 20 acoustic features
per 10 ms, newest first), the RDO-VAE encoder (feature frames to latents and initial states, 20 ms per step, oldest
first), the encoder's input side in numpy (``Resampler``: PCM to 16 kHz; ``FeatureExtractor``: the LPCNet feature
frames, 36 values per 10 ms), PitchDNN (libopus' pitch estimator, per 10 ms frame), the DRED encoder's quantizer and
streaming state (``DredEncoder``; ``encode_dred``: PCM to the DRED payload of every Opus frame), ``decode_dred``
from a packet to features, and the receiver that chooses, frame by frame, between normal decoding, LBRR, DRED and
PLC. Everything is a pure function (``jit``/``vmap``/``grad`` apply from outside); the fast paths in
``opus_dred.accel`` reuse this math and are tested equal to it.

The networks' names load JAX on first use, so importing this package (and the receiver) stays cheap.
"""

from opus_dred._lazy import lazy_names
from opus_dred.refimpl._decode import DEFAULT_NUMERICS, NUMERICS, DredResult, decode_dred, decode_payload
from opus_dred.refimpl._features import FeatureExtractor, Resampler
from opus_dred.refimpl._receiver import POLICIES, Receiver, ReceiverError, run

#: names that load JAX, resolved on first use: name -> private module
_LAZY = {
    "Numerics": "_nnet",
    "NeuralPlc": "_plc",
    "Fargan": "_fargan",
    "for_host": "_nnet",
    "params_from_pack": "_rdovae",
    "decode_step": "_rdovae",
    "decode_features": "_rdovae",
    "PitchDNN": "_pitchdnn",
    "encoder_params_from_pack": "_rdovae_enc",
    "encode_features": "_rdovae_enc",
    "DredEncoder": "_dred_encoder",
    "encode_dred": "_dred_encoder",
}

__all__ = ["decode_dred", "decode_payload", "DredResult", "NUMERICS", "DEFAULT_NUMERICS", "Receiver",
           "ReceiverError", "POLICIES", "run", "FeatureExtractor", "Resampler", *_LAZY]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
