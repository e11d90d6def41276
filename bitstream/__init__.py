"""``opus_dred.bitstream``: the exact layer, from the bytes of an Opus packet down to quantized DRED latents.

One job: read and write every bit that DRED puts on the wire, exactly as RFC 6716 and the drafts say and as
libopus does: the range and Laplace coders (RFC 6716 §4.1), packet framing (§3), extensions in the padding
(draft-ietf-mlcodec-opus-extension), the DRED payload (draft-ietf-mlcodec-opus-dred) and its integer arithmetic
(``_arith``), the profiles that name each DRED variant, and the file formats that carry packets. Pure Python
(numpy for arrays, never JAX), so a port to another language needs no machine-learning framework. Every failure
is a typed :class:`BitstreamError` with its byte (and bit) offset. ``docs/spec-map.md`` maps each section of the
specifications to its function.
"""

from opus_dred.bitstream._dred import DredPayload, read_dred_payload, write_dred_payload
from opus_dred.bitstream._dred_encode import attach_dred
from opus_dred.bitstream._errors import BitstreamError, DredPayloadError, ExtensionError, PacketError, TruncatedError
from opus_dred.bitstream._extensions import find_dred, find_dred_extension, iter_extensions
from opus_dred.bitstream._formats import read_dred_stream, read_ogg_opus, read_opus_demo_bit
from opus_dred.bitstream._inspect import inspect_bytes
from opus_dred.bitstream._packet import Packet, parse_packet, write_packet
from opus_dred.bitstream._profiles import Profile, get_profile, list_profiles
from opus_dred.bitstream._rangecoder import RangeDecoder, RangeEncoder

__all__ = [
    "parse_packet",
    "write_packet",
    "Packet",
    "iter_extensions",
    "find_dred",
    "find_dred_extension",
    "DredPayload",
    "read_dred_payload",
    "write_dred_payload",
    "attach_dred",
    "RangeDecoder",
    "RangeEncoder",
    "Profile",
    "get_profile",
    "list_profiles",
    "read_opus_demo_bit",
    "read_ogg_opus",
    "read_dred_stream",
    "inspect_bytes",
    "BitstreamError",
    "TruncatedError",
    "PacketError",
    "ExtensionError",
    "DredPayloadError",
]
