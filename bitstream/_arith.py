"""The DRED arithmetic, once: every integer rule that turns a payload's header and a parse request into
chunk counts, quantizer levels, offsets and coverage.

Every reader (the scalar one in :mod:`._dred`, the batched numpy and JAX readers in ``opus_dred.accel``), the
receiver, ``inspect`` and ``decode`` import these functions; none writes them again. Integer arithmetic is C's
(division truncates toward zero, ``int`` wraps at 32 bits) wherever libopus computes in C ``int``.

Names and units are libopus' (``dnn/dred_decoder.c:dred_ec_decode``, ``OpusDRED``): ``q0``, ``dQ``, ``qmax``,
``offset`` (the coded ``uint(32)``), ``extra_offset`` (the coded ``uint(256)`` times 32), ``dred_frame_offset`` and
``dred_offset``, all in 2.5 ms units; ``nb_latents``; sample counts at the caller's ``rate``.

The functions a batched reader needs (the quantizer schedule, the qmax symbol, the offsets, the q feature,
dequantization) use operators only, so they take Python ints, numpy arrays and JAX arrays alike.
"""

from __future__ import annotations

import numpy as np

from opus_dred.bitstream._errors import DredPayloadError

#: ``DRED_MAX_LATENTS`` and ``DRED_NUM_REDUNDANCY_FRAMES`` of ``dnn/dred_config.h`` (equal in 1.5.2 and 1.6.1).
DRED_MAX_LATENTS = 26
DRED_NUM_REDUNDANCY_FRAMES = 2 * DRED_MAX_LATENTS

#: the quantizer step per ``dQ`` code (``dnn/dred_coding.c:compute_quantizer``), in 1/16 of a level per chunk
DQ_TABLE = (0, 2, 3, 4, 6, 8, 12, 16)

#: ``qmax`` when the payload does not code it (``dred_ec_decode``)
QMAX_UNCODED = 15

#: 2.5 ms units per step of the extended offset's ``uint(256)``
EXTRA_OFFSET_STEP = 32

#: audio per latent: 4 feature frames of 10 ms
LATENT_MS = 40


def c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def i32(x: int) -> int:
    """Wrap to a signed 32-bit int as C arithmetic on ``int`` does on the platforms libopus targets."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def imin(a, b):
    """The smaller of two integers, or element-wise of integer arrays (numpy or JAX), by operators only."""
    return b + (a - b) * (a < b)


def compute_quantizer(q0, dQ, qmax, k, dq_table=DQ_TABLE):
    """Quantizer level of latent chunk ``k`` (``dnn/dred_coding.c:compute_quantizer``). ``dq_table`` is
    indexed by ``dQ``: a tuple for ints, an array of the caller's kind for arrays."""
    return imin(qmax, q0 + (dq_table[dQ] * k + 8) // 16)


def qmax_is_coded(q0, dQ):
    """Whether the payload codes ``qmax`` (``q0 < 14 and dQ > 0``; else it is :data:`QMAX_UNCODED`)."""
    return (q0 < 14) & (dQ > 0)


def qmax_nvals(q0):
    """``nvals`` of the qmax symbol: it has ``ft = 2 * nvals``; symbols below ``nvals`` mean 15."""
    return QMAX_UNCODED - (q0 + 1)


def qmax_of_symbol(q0, s):
    """``qmax`` for a qmax symbol ``s >= nvals`` (``q0 + 1`` for ``s == nvals``)."""
    return q0 + (s - qmax_nvals(q0)) + 1


def qmax_symbol(q0, qmax):
    """The symbol that codes ``qmax`` below 15 (the inverse of :func:`qmax_of_symbol`)."""
    return qmax_nvals(q0) + qmax - (q0 + 1)


def extra_offset_from_code(code):
    """``extra_offset`` from the coded ``uint(256)``: ``32 * code`` (``dred_ec_decode``)."""
    return EXTRA_OFFSET_STEP * code


def extra_offset_to_code(extra_offset):
    """The ``uint(256)`` that codes ``extra_offset`` (a multiple of 32)."""
    return extra_offset // EXTRA_OFFSET_STEP


def compute_dred_offset(offset, extra_offset, dred_frame_offset):
    """``dred_offset = 16 - offset - extra_offset + dred_frame_offset`` (``dred_ec_decode``), 2.5 ms units."""
    return 16 - offset - extra_offset + dred_frame_offset


def compute_dred_frame_offset(frame: int, frame_size_48k: int) -> int:
    """The position of the frame that carries the DRED extension, in 2.5 ms units:
    ``frame * frame_size / 120`` at 48 kHz (``src/opus_decoder.c:dred_find_payload``)."""
    return frame * frame_size_48k // 120


def q_feature(q_level):
    """The quantizer feature 1.6.x appends to each latent vector: ``q_level * 0.125 - 1`` (``dred_ec_decode``;
    exact in float32 for every level)."""
    return q_level * 0.125 - 1


def dequant_divisor(scale):
    """The dequantization divisor per value: ``scale``, 0 taken as 1, in float32 (``dred_decode_latents``)."""
    scale = np.asarray(scale)
    return np.where(scale == 0, 1, scale).astype(np.float32)


def dequantize(q, divisor):
    """A quantized value as ``dred_decode_latents`` stores it: ``(float)q * 256.f / divisor``, every step in
    float32. ``q`` an integer array (numpy or JAX), ``divisor`` from :func:`dequant_divisor`."""
    return q.astype(np.float32) * np.float32(256.0) / divisor


def latent_coverage_ms(nb_latents):
    """Audio ``nb_latents`` latents describe: 4 feature frames of 10 ms each."""
    return float(LATENT_MS * nb_latents)


#: The rules that bound how many latent chunks a parse request decodes (the profile field ``chunk_bound``):
#:
#: ``"release-1.5"``
#:     libopus 1.5 to 1.6.1: ``src/opus_decoder.c:opus_dred_parse`` passes
#:     ``min_feature_frames = min(2 + 100*max_dred_samples/sampling_rate, 104)`` to ``dred_ec_decode``; the
#:     payload's ``dred_offset`` plays no part.
#: ``"master-2026-06"``
#:     libopus master from commits 5a8a2be8 ("Fix opus_dred_parse() offset handling") and 9bb5c28c ("Always
#:     round max_dred_features up"), 2026-06-08: ``opus_dred_parse`` passes
#:     ``max_dred_features = (100*max_dred_samples + sampling_rate - 1)/sampling_rate`` and ``dred_ec_decode``
#:     reads the offset first, then bounds its loop by
#:     ``min_feature_frames = max(0, (4*max_dred_features + dred_offset + 3)/4)``.
#:
#: The payload syntax is the same under both: only the count of chunks a bounded request reads differs.
CHUNK_BOUND_RULES = ("release-1.5", "master-2026-06")
CHUNK_BOUND_RELEASE, CHUNK_BOUND_MASTER = CHUNK_BOUND_RULES


def _check_rule(rule: str) -> None:
    if rule not in CHUNK_BOUND_RULES:
        raise DredPayloadError(f"unknown chunk_bound rule {rule!r}; one of {', '.join(CHUNK_BOUND_RULES)}")


def min_feature_frames_for(max_dred_samples: int, sampling_rate: int, max_latents: int = DRED_MAX_LATENTS, *,
                           rule: str = CHUNK_BOUND_RELEASE, dred_offset: int = 0) -> int:
    """``min_feature_frames``, the bound of ``dnn/dred_decoder.c:dred_ec_decode``'s chunk loop, for a request of
    ``max_dred_samples`` at ``sampling_rate`` under the chunk-bound ``rule`` (:data:`CHUNK_BOUND_RULES`), in C
    int arithmetic. ``dred_offset`` (2.5 ms units, read from the payload's header) counts only under
    ``"master-2026-06"``."""
    if sampling_rate == 0:
        raise DredPayloadError("sampling_rate must not be 0")
    _check_rule(rule)
    if rule == CHUNK_BOUND_RELEASE:
        offset = c_div(i32(100 * max_dred_samples), sampling_rate)
        return min(2 + offset, 4 * max_latents)
    max_dred_features = c_div(i32(i32(100 * max_dred_samples) + sampling_rate - 1), sampling_rate)
    return max(0, c_div(i32(4 * max_dred_features + dred_offset + 3), 4))


def requested_chunks(min_feature_frames: int, max_latents: int = DRED_MAX_LATENTS) -> int:
    """Latent chunks ``dnn/dred_decoder.c:dred_ec_decode`` reads at most for ``min_feature_frames``, byte limit
    aside: one chunk per even index below ``min(2 * max_latents, (min_feature_frames + 1) / 2)`` (C division)."""
    bound = min(2 * max_latents, c_div(min_feature_frames + 1, 2))
    return max(0, (bound + 1) // 2)


def latents_for_request(max_dred_samples: int, rate: int, max_latents: int = DRED_MAX_LATENTS, *,
                        rule: str = CHUNK_BOUND_RELEASE, dred_offset: int = 0) -> int:
    """How many latents a parse request of ``max_dred_samples`` reads at most under the chunk-bound ``rule``
    (none for a request so negative that ``min_feature_frames`` drops below 0, as in libopus)."""
    return requested_chunks(min_feature_frames_for(max_dred_samples, rate, max_latents, rule=rule,
                                                   dred_offset=dred_offset), max_latents)


def dred_latents_read(nb_latents: int, rate: int, max_dred_samples: int | None, *, rule: str = CHUNK_BOUND_RELEASE,
                      dred_offset: int = 0) -> int:
    """Latents a parse request of ``max_dred_samples`` (``None``: the largest) reads from a packet whose full
    parse found ``nb_latents`` (at ``dred_offset``): the payload decoder stops at the same latent whatever the
    request when the bytes run out, so a smaller request reads ``min(nb_latents, latents_for_request(request))``
    under the chunk-bound ``rule``."""
    if nb_latents <= 0:
        return 0
    if max_dred_samples is None:
        return nb_latents
    return min(nb_latents, latents_for_request(max_dred_samples, rate, rule=rule, dred_offset=dred_offset))


def parse_return(nb_latents: int, dred_offset: int, rate: int) -> int:
    """What ``src/opus_decoder.c:opus_dred_parse`` returns once its payload decoder has read ``nb_latents``
    (0 included): ``max(0, nb_latents*rate/25 - dred_offset*rate/400)`` in C ints."""
    return max(0, c_div(nb_latents * rate, 25) - c_div(dred_offset * rate, 400))


def dred_end(dred_offset: int, rate: int) -> int:
    """``*dred_end`` of ``opus_dred_parse`` for a payload it found: ``max(0, -dred_offset*rate/400)`` in C ints,
    the silence skipped at the recent end, in samples."""
    return max(0, c_div(-dred_offset * rate, 400))


def dred_parse_return(nb_latents: int, dred_offset: int, rate: int, max_dred_samples: int | None = None, *,
                      rule: str = CHUNK_BOUND_RELEASE) -> int:
    """The value ``opus_dred_parse`` returns at ``rate`` for a packet whose full parse found ``nb_latents``
    latents and ``dred_offset`` (2.5 ms units), when asked for ``max_dred_samples`` (``None``: the largest
    request) under the chunk-bound ``rule``. 0 for a packet without DRED (``nb_latents == 0``)."""
    if nb_latents <= 0:
        return 0
    n = dred_latents_read(nb_latents, rate, max_dred_samples, rule=rule, dred_offset=dred_offset)
    return parse_return(n, dred_offset, rate)


def dred_window(nb_latents: int, dred_offset: int, rate: int) -> tuple[int, int]:
    """``(end, coverage)`` of a packet's DRED in samples before the packet's start: features exist for the
    samples from ``coverage`` to ``end`` before the packet (``dred_end`` and the return value of
    ``opus_dred_parse``). ``(0, 0)`` without DRED."""
    if nb_latents <= 0:
        return (0, 0)
    return (dred_end(dred_offset, rate), dred_parse_return(nb_latents, dred_offset, rate))


def request_for_latents(n: int, rate: int) -> int:
    """The smallest ``max_dred_samples`` whose parse reads ``n`` latents (``n - 1`` latents of 40 ms; 0 reads
    one): the inverse of :func:`latents_for_request` for ``1 <= n <= 26``."""
    return max(0, 4 * n - 4) * rate // 100


def dred_feature_frames(offset_samples: int, samples: int, nb_latents: int, dred_offset: int, rate: int) -> tuple[int, int]:
    """``(from_dred, total)``: of the 10 ms feature vectors with which libopus conceals a frame of ``samples``
    starting ``offset_samples`` before the packet's start, how many come from the packet's DRED when its parse
    read ``nb_latents`` latents.

    This is the indexing of ``src/opus_decoder.c:opus_decode_native`` (the block run when a DRED is given,
    1.5.2 and 1.6.1 alike): the frame needs ``max(1, samples / F10)`` feature vectors (``F10 = rate / 100``);
    the ``i``-th has index ``floor((offset + dred_offset*F10/4) / F10) - 2 - i`` into ``fec_features`` (4 per
    latent; index 0 is the newest); an index in ``0 .. 4*nb_latents - 1`` queues DRED features, a larger one
    queues a "skip" (``dnn/lpcnet_plc.c:lpcnet_plc_fec_add(NULL)``: the neural PLC predicts that vector), a
    negative one queues nothing (predicted as well). The two extra vectors queued before a first loss
    (``init_frames`` when ``blend == 0``) describe audio the decoder already has and are not counted. Because of
    the ``- 2`` (the causal PLC model lags two vectors), a frame can draw DRED features up to 10 ms beyond the
    coverage that ``opus_dred_parse`` returns; the coverage is therefore not the right test for "this frame is
    recovered from DRED".
    """
    f10 = rate // 100
    if samples <= 0:  # opus_decoder_dred_decode rejects frame_size <= 0 (OPUS_BAD_ARG): no feature
        return (0, 0)
    total = max(1, samples // f10)
    if nb_latents <= 0:
        return (0, total)
    base = (offset_samples + c_div(dred_offset * f10, 4)) // f10  # floor, as (int)floor(float)
    top = 4 * nb_latents - 1
    used = sum(1 for i in range(total) if 0 <= base - 2 - i <= top)
    return (used, total)


def frame_request(offset_samples: int, samples: int, nb_latents: int, dred_offset: int, rate: int) -> int | None:
    """The smallest parse request whose latents give the frame every DRED feature vector the packet has for it
    (see :func:`dred_feature_frames`); ``None`` if the packet has none for it."""
    best = dred_feature_frames(offset_samples, samples, nb_latents, dred_offset, rate)[0]
    if best == 0:
        return None
    for n in range(1, nb_latents + 1):
        if dred_feature_frames(offset_samples, samples, n, dred_offset, rate)[0] == best:
            return request_for_latents(n, rate)
    return None  # pragma: no cover - n = nb_latents reaches best
