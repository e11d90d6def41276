"""The error guarantee of the bitstream layer: for any input bytes, every public reader returns or raises a
:class:`BitstreamError` subclass carrying a byte offset inside the input, never anything else; and the work
and memory per input are bounded by its length (counted, not timed)."""

from __future__ import annotations

import functools
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus_dred.bitstream import _rangecoder as rangecoder
from opus_dred.accel._bitstream import locate_dred_payloads
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._dredstream import read_stream_record
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import find_dred_extension, iter_extensions, parse_extensions
from opus_dred.bitstream._formats import (
    DredStreamRecord,
    detect_format,
    read_dred_stream,
    read_ogg_opus,
    read_opus_demo_bit,
)
from opus_dred.bitstream._inspect import inspect_bytes, inspect_packet
from opus_dred.bitstream._packet import Toc, parse_packet, write_packet
from opus_dred.bitstream._profiles import get_profile

PROFILES = ["libopus-1.5.2", "libopus-1.6.1"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_typed(fn, data: bytes, *args, limit: int | None = None, **kw):
    """Call ``fn``; a raise must be a BitstreamError with a byte offset within ``0..limit``."""
    limit = len(data) if limit is None else limit
    try:
        return fn(data, *args, **kw)
    except BitstreamError as exc:
        assert exc.byte_offset is not None, f"{fn.__name__}: {type(exc).__name__} without a byte offset: {exc}"
        assert 0 <= exc.byte_offset <= limit, f"{fn.__name__}: offset {exc.byte_offset} outside 0..{limit}"
        assert exc.bit_offset is not None and exc.bit_offset >= 8 * exc.byte_offset
        assert exc.rule, f"{fn.__name__}: no rule named: {exc}"
        return None


@st.composite
def _packets(draw):
    """Random bytes, padded code 3 packets with random padding, and mutations of framed packets."""
    kind = draw(st.sampled_from(["random", "padded", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    toc = Toc(draw(st.integers(0, 31)), draw(st.booleans()), 0)
    n = draw(st.integers(1, max(1, min(6, 5760 // toc.frame_size_48k))))
    frames = [draw(st.binary(max_size=30)) for _ in range(n)]
    pad = draw(st.binary(max_size=200))
    if draw(st.booleans()):  # DRED-looking extensions
        pad = bytes([126 << 1]) + b"D" + bytes([draw(st.sampled_from([10, 12]))]) + pad
    data = bytearray(write_packet(toc, frames, padding=pad, code=3))
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@SETTINGS
@given(data=_packets(), sd=st.booleans())
def test_packet_readers(data, sd):
    pkt = _only_typed(parse_packet, data, self_delimited=sd)
    if pkt is not None and pkt.padding:
        for syntax in ("v1", "rte"):
            base = pkt.padding
            exts = _only_typed(parse_extensions, base, pkt.nb_frames, syntax=syntax)
            if exts is not None:
                # RTE repeats at most 47 later frames per extension coded: extensions stay O(length)
                assert len(exts) <= 48 * (len(base) + 1)
    for name in PROFILES:
        _only_typed(find_dred_extension, data, name)
        _only_typed(lambda d: locate_dred_payloads([d], name), data)
    it = inspect_packet(data)
    for e in (it.error, it.extension_error):
        if e is not None:
            assert e["byte_offset"] is not None and 0 <= e["byte_offset"] <= len(data)


@SETTINGS
@given(padding=st.binary(max_size=300), nb_frames=st.integers(0, 48))
def test_extension_readers_any_padding(padding, nb_frames):
    for syntax in ("v1", "rte"):
        _only_typed(parse_extensions, padding, nb_frames, syntax=syntax)
        n = 0
        try:
            for _ in iter_extensions(padding, nb_frames, syntax=syntax):
                n += 1
        except BitstreamError as exc:
            assert exc.byte_offset is not None and 0 <= exc.byte_offset <= len(padding)
        assert n <= 48 * (len(padding) + 1)


def _symbol_bound(prof, nbytes: int) -> int:
    """Most range-decoder ICDF symbols ``read_dred_payload`` can read from ``nbytes`` bytes.

    Every value is a sign symbol and magnitude symbols; each magnitude symbol "7" (another one follows)
    costs at least ``-log2(p7)`` bits, p7 its largest probability under the profile's statistics, and the
    decoder reads at most ``8 * nbytes`` bits plus the 4096 bits of zeros its guard allows past the end.
    """
    st_ = prof.stats
    decays = np.concatenate([st_.latent_r.ravel(), st_.state_r.ravel()]).astype(int) << 7
    p7 = max(rangecoder.laplace_p0_icdfs(0, int(d))[1][6] for d in set(decays.tolist())) / 32768.0
    values = prof.state_dim + prof.max_latents * prof.latent_dim
    bits = 8 * nbytes + 4096 + 64
    return 2 * values + math.ceil(bits / -math.log2(p7)) + 8


@functools.cache
def _counter():
    return {"n": 0}


@pytest.fixture
def count_symbols(monkeypatch):
    c = _counter()
    orig = rangecoder.RangeDecoder._icdf

    def counted(self, icdf, ftb):
        c["n"] += 1
        return orig(self, icdf, ftb)

    monkeypatch.setattr(rangecoder.RangeDecoder, "_icdf", counted)
    return c


@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(st.binary(max_size=400), st.integers(0, 600).map(lambda n: b"\xff" * n)),
       mff=st.integers(-10, 200))
def test_dred_payload_any_bytes(count_symbols, name, payload, mff):
    prof = get_profile(name)
    count_symbols["n"] = 0
    p = _only_typed(read_dred_payload, payload, prof, min_feature_frames=mff)
    assert count_symbols["n"] <= _symbol_bound(prof, len(payload))
    if p is not None:
        assert 0 <= p.nb_latents <= prof.max_latents
        assert p.end_tell <= 8 * len(payload) + 4096 + 64


@pytest.mark.parametrize("name", ["libopus-1.6.1"])
@settings(max_examples=100, deadline=None)
@given(q0=st.integers(0, 2**32 - 1), nb_chunks=st.integers(0, 2**32 - 1), data=st.binary(max_size=300))
def test_stream_record_any_header(name, q0, nb_chunks, data):
    rec = DredStreamRecord(q0 if q0 < 20 else q0 % 20, nb_chunks if nb_chunks < 60 else nb_chunks % 60, data)
    _only_typed(lambda d: read_stream_record(rec, name), data, limit=12)


@st.composite
def _files(draw):
    kind = draw(st.sampled_from(["random", "bit", "dred", "ogg"]))
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "bit":
        out = b""
        for _ in range(draw(st.integers(0, 5))):
            pk = draw(st.binary(max_size=40))
            out += len(pk).to_bytes(4, "big") + bytes(4) + pk
    elif kind == "dred":
        out = b""
        for _ in range(draw(st.integers(0, 4))):
            pk = draw(st.binary(max_size=40))
            out += (draw(st.integers(0, 17)).to_bytes(4, "big") + draw(st.integers(0, 52)).to_bytes(4, "big")
                    + len(pk).to_bytes(4, "big") + pk)
    else:
        from opus_dred.bitstream._formats import write_ogg_opus

        pk = [write_packet(Toc(9, False, 0), [draw(st.binary(max_size=30))]) for _ in range(draw(st.integers(0, 3)))]
        out = write_ogg_opus(None, pk, [960] * len(pk))
    data = bytearray(out)
    if data and draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@SETTINGS
@given(data=_files())
def test_file_readers_any_bytes(data):
    _only_typed(read_opus_demo_bit, data)
    _only_typed(read_dred_stream, data)
    _only_typed(read_ogg_opus, data)
    _only_typed(detect_format, data)
    for fmt in (None, "bit", "dred", "ogg", "hex"):
        res = inspect_bytes(data, fmt=fmt)
        if res.error is not None:
            assert res.error["byte_offset"] is not None and 0 <= res.error["byte_offset"] <= len(data)
        for it in res.items:
            err = it.error
            if err is not None:
                assert err["byte_offset"] is not None


# -- 64 KiB inputs: memory bounded by the length --------------------------------------------------


def _peak(fn, *args, **kw) -> int:
    tracemalloc.start()
    try:
        try:
            fn(*args, **kw)
        except BitstreamError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_64k_inputs():
    rng = np.random.default_rng(7)
    n = 64 * 1024
    # a packet with 64 KiB of padding: a DRED extension (L=0) covering it all, and random data
    pad = bytes([126 << 1]) + b"D" + bytes([12]) + rng.integers(0, 256, n - 3, dtype=np.uint8).tobytes()
    big = write_packet(Toc(9, False, 0), [b"abc"], padding=pad, code=3)
    rnd = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    bit = b"".join(len(p).to_bytes(4, "big") + bytes(4) + p for p in [bytes(range(100))] * (n // 108))
    budget = 64 * n + (4 << 20)  # a few copies of the input and fixed-size state, not a blow-up
    checks = [
        ("parse_packet", parse_packet, (big,)),
        ("parse_extensions rte", parse_extensions, (pad, 1)),
        ("parse_extensions v1", lambda d: parse_extensions(d, 48, syntax="v1"), (rnd,)),
        ("find_dred_extension", find_dred_extension, (big, "libopus-1.6.1")),
        ("read_dred_payload", read_dred_payload, (rnd, "libopus-1.6.1")),
        ("read_opus_demo_bit", read_opus_demo_bit, (bit,)),
        ("read_dred_stream", read_dred_stream, (rnd,)),
        ("read_ogg_opus", read_ogg_opus, (b"OggS" + rnd,)),
        ("inspect_packet", inspect_packet, (big,)),
        ("inspect_bytes .bit", inspect_bytes, (bit,)),
    ]
    get_profile("libopus-1.6.1").stats  # load the tables outside the measurement
    for label, fn, args in checks:
        peak = _peak(fn, *args)
        assert peak <= budget, f"{label}: peak {peak} bytes for a {n}-byte input"


def test_inspect_lists_bounded_extensions():
    """RTE can code ~47 extensions per byte; inspect counts them all but keeps a bounded list."""
    from opus_dred.bitstream._inspect import MAX_LISTED_EXTENSIONS

    pad = bytes([0x06] * 200 + [0x04])  # 200 empty short extensions, repeated for 47 more frames
    pkt = write_packet(Toc(16, False, 0), [b"x"] * 48, padding=pad, code=3)
    it = inspect_packet(pkt, "libopus-1.6.1")
    assert it.extensions_total == 200 * 48
    assert len(it.extensions) == MAX_LISTED_EXTENSIONS and it.extension_error is None
