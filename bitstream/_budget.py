"""How many DRED bits, chunks and bytes libopus' encoder spends: its bit allocation and payload budget.

Our formulation of src/opus_encoder.c: ``estimate_dred_bitrate``, ``compute_dred_bitrate`` and, in
``opus_encode_frame_native``, the chunk count and the bytes left for the DRED extension. None of it is
normative (a decoder reads whatever an encoder sends); it is what an encoder must do to write the payloads
libopus writes for the same bitrate and expected loss. The C code computes in ``float`` (``.7f``, ``50.f``,
the bits table) and in ``int``; the float steps are done here in float32, one rounding per C operation, so the
thresholds fall where libopus' do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opus_dred.bitstream._arith import DQ_TABLE, DRED_MAX_LATENTS, c_div, compute_quantizer

_f = np.float32

#: ``dred_bits_table`` of src/opus_encoder.c: the approximate cost in bits of one latent chunk at each q level
#: (data).
DRED_BITS_TABLE = tuple(_f(x) for x in (73.2, 68.1, 62.5, 57.0, 51.5, 45.7, 39.9, 32.4, 26.4, 20.4, 16.3, 13.0,
                                        9.3, 8.2, 7.2, 6.4))
#: ``DRED_MAX_DATA_SIZE`` (dnn/dred_config.h): the largest DRED extension libopus writes, in bytes.
DRED_MAX_DATA_SIZE = 1000
#: ``DRED_MIN_BYTES`` (dnn/dred_config.h): the smallest range-coded payload worth sending.
DRED_MIN_BYTES = 8
#: ``DRED_EXPERIMENTAL_BYTES``: the ``'D'`` and version bytes in front of the payload.
DRED_EXPERIMENTAL_BYTES = 2
#: ``DRED_MAX_FRAMES``: the longest DRED duration, in 10 ms frames (``OPUS_SET_DRED_DURATION``'s range).
DRED_MAX_FRAMES = 104


def ec_ilog(x: int) -> int:
    """``EC_ILOG`` (celt/ecintrin.h): the number of bits needed to write ``x`` > 0 (``floor(log2 x) + 1``)."""
    return int(x).bit_length()


def estimate_dred_bits(q0: int, dq: int, qmax: int, duration: int, target_bits: int | None = None,
                       dq_table=DQ_TABLE) -> tuple[int, int]:
    """``estimate_dred_bitrate``: ``(bits, target_chunks)`` for ``duration`` 10 ms frames.

    bits = 8·(3 + 2) signalling bits + 50 + ``table[q0]`` for the initial state + ``table[q_k]`` per chunk,
    rounded half up; ``target_chunks`` is the number of chunks whose running total stays under
    ``target_bits`` (0 when ``target_bits`` is None)."""
    bits = _f(8 * (3 + DRED_EXPERIMENTAL_BYTES))
    bits = _f(bits + _f(_f(50.0) + DRED_BITS_TABLE[q0]))
    chunks = min(c_div(duration + 5, 4), DRED_MAX_LATENTS)
    target_chunks = 0
    for i in range(chunks):
        bits = _f(bits + DRED_BITS_TABLE[compute_quantizer(q0, dq, qmax, i, dq_table)])
        if target_bits is not None and bits < _f(target_bits):
            target_chunks = i + 1
    return int(np.floor(np.float64(_f(_f(0.5) + bits)))), target_chunks


@dataclass(frozen=True)
class DredBudget:
    """What ``compute_dred_bitrate`` decides for one frame size: the bitrate taken from the codec for DRED
    (0: no DRED), the quantiser schedule, and the chunk cap that applies in VBR."""

    dred_bitrate: int
    q0: int
    dq: int
    qmax: int
    target_chunks: int

    @property
    def reserves_bits(self) -> bool:
        """Whether the codec gives up bits for DRED (``target_chunks`` ≥ 2)."""
        return self.dred_bitrate > 0

    def sends(self, *, vbr: bool = True) -> bool:
        """Whether libopus tries to attach DRED at all: in VBR when at least one chunk fits the target (with one
        chunk no bits are reserved, so the payload rides on the packet's slack); in CBR always."""
        return self.target_chunks >= 1 or not vbr


def _bits_for(bitrate: int, fs: int, frame_size: int, version: str) -> int:
    if version == "1.5":
        return c_div(bitrate * frame_size, fs)
    return c_div(bitrate * 6, c_div(6 * fs, frame_size))  # celt/celt.h:bitrate_to_bits


def _bitrate_for(bits: int, fs: int, frame_size: int, version: str) -> int:
    if version == "1.5":
        return c_div(bits * fs, frame_size)
    return c_div(bits * c_div(6 * fs, frame_size), 6)  # celt/celt.h:bits_to_bitrate


def compute_dred_bitrate(bitrate: int, *, fs: int, frame_size: int, duration: int, loss_perc: int,
                         inband_fec: bool = False, version: str = "1.6") -> DredBudget:
    """``compute_dred_bitrate``: the share of ``bitrate`` (b/s) DRED gets for frames of ``frame_size``
    samples at ``fs``, with ``duration`` 10 ms frames of redundancy and ``loss_perc`` % expected loss.

    The fraction is 12·loss (loss ≤ 5 %) or min(.8, .55 + loss) over a 12 kb/s offset, or min(.7, 3·loss) over
    20 kb/s with in-band FEC, then scaled for the frame duration. q0 = clamp(51 − 3·ilog(bitrate − offset), 4,
    15), dQ = 3 above 36 kb/s over the offset else 5, qmax = 15. No bits are reserved (bitrate 0) when fewer
    than two chunks fit; libopus still sends one chunk when exactly one fits (:meth:`DredBudget.sends`).
    ``version`` "1.5" or "1.6" selects the per-frame bit conversion (1.6 uses celt.h's ``bitrate_to_bits``)."""
    loss = _f(loss_perc)
    if inband_fec:
        frac = min(_f(0.7), _f(_f(3.0) * loss / _f(100.0)))
        offset = 20000
    elif loss_perc > 5:
        frac = min(_f(0.8), _f(_f(0.55) + _f(loss / _f(100.0))))
        offset = 12000
    else:
        frac = _f(_f(12 * loss_perc) / _f(100.0))
        offset = 12000
    frames = _f(_f(_f(frame_size) * _f(50.0)) / _f(fs))
    frac = _f(frac / _f(frac + _f(_f(_f(1.0) - frac) * frames)))
    q0 = min(15, max(4, 51 - 3 * ec_ilog(max(1, bitrate - offset))))
    dq = 3 if bitrate - offset > 36000 else 5
    qmax = 15
    target = max(0, int(_f(frac * _f(bitrate - offset))))
    if duration > 0:
        target_bits = _bits_for(target, fs, frame_size, version)
        max_bits, target_chunks = estimate_dred_bits(q0, dq, qmax, duration, target_bits)
    else:
        max_bits, target_chunks = 0, 0
    dred_bitrate = min(target, _bitrate_for(max_bits, fs, frame_size, version))
    if target_chunks < 2:
        dred_bitrate = 0
    return DredBudget(dred_bitrate, q0, dq, qmax, target_chunks)


def dred_chunks(duration: int, *, vbr: bool, target_chunks: int) -> int:
    """The ``max_chunks`` libopus hands ``dred_encode_silk_frame``: (duration + 5) / 4, at most 26, and in VBR at
    most ``target_chunks``."""
    n = min(c_div(duration + 5, 4), DRED_MAX_LATENTS)
    return min(n, target_chunks) if vbr else n


def dred_bytes_left(max_data_bytes: int, packet_bytes: int) -> int:
    """The bytes left for the DRED extension after a packet of ``packet_bytes`` in a buffer of
    ``max_data_bytes``: at most 1000, less the code-3 overhead (3 bytes) and the padding-length bytes."""
    left = min(DRED_MAX_DATA_SIZE, max_data_bytes - packet_bytes - 3)
    return left - c_div(left + 1 + DRED_EXPERIMENTAL_BYTES, 255)


def dred_max_bytes(max_data_bytes: int, packet_bytes: int) -> int:
    """The ``max_bytes`` of the range-coded payload (after the two experimental bytes), or 0 when libopus would
    not try DRED at all (fewer than ``DRED_MIN_BYTES`` + 2 bytes left)."""
    left = dred_bytes_left(max_data_bytes, packet_bytes)
    if left < DRED_MIN_BYTES + DRED_EXPERIMENTAL_BYTES:
        return 0
    return left - DRED_EXPERIMENTAL_BYTES
