"""Opus packet framing: the TOC byte, frame packing codes 0–3 and padding (RFC 6716 §3).

:func:`parse_packet` accepts and rejects exactly what libopus' ``src/opus.c:opus_packet_parse_impl``
accepts and rejects (identical in 1.5.2 and 1.6.1, apart from 1.6.1 also clearing the padding pointer on
error), and names the RFC 6716 §3.4 rule (R1–R7) each rejection violates. :func:`write_packet` writes
the framing the way libopus' repacketizer does (``src/repacketizer.c:opus_repacketizer_out_range_impl``),
and can also express framings libopus never writes (a non-minimal padding-length chain, code 3 for a
single frame, VBR code 3 with equal frames).

Where libopus and the RFC differ, see ``docs/bitstream.md`` ("Packet framing").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence

import bitstring

from opus_dred.bitstream._errors import PacketError

MAX_FRAME_BYTES = 1275  # RFC 6716 §3.2.1 / R2
MAX_PACKET_SAMPLES_48K = 5760  # 120 ms at 48 kHz (RFC 6716 R5)

_BANDWIDTHS = ("NB", "MB", "WB", "SWB", "FB")


@dataclass(frozen=True)
class Toc:
    """The table-of-contents byte (RFC 6716 §3.1): ``config`` (5 bits) | ``s`` (1 bit) | ``c`` (2 bits)."""

    config: int
    stereo: bool
    code: int

    def __post_init__(self) -> None:
        if not 0 <= self.config <= 31 or not 0 <= self.code <= 3:
            raise PacketError(f"TOC fields out of range: config={self.config} code={self.code}", byte_offset=0)

    @classmethod
    def from_byte(cls, byte: int) -> Toc:
        config, s, c = bitstring.Bits(uint=byte, length=8).unpack("uint:5, uint:1, uint:2")
        return cls(config=config, stereo=bool(s), code=c)

    def to_bits(self) -> bitstring.Bits:
        return bitstring.pack("uint:5, uint:1, uint:2", self.config, int(self.stereo), self.code)

    def to_byte(self) -> int:
        return self.to_bits().uint

    @property
    def mode(self) -> str:
        """``"SILK"`` (configs 0–11), ``"Hybrid"`` (12–15) or ``"CELT"`` (16–31), RFC 6716 Table 2."""
        if self.config < 12:
            return "SILK"
        if self.config < 16:
            return "Hybrid"
        return "CELT"

    @property
    def bandwidth(self) -> str:
        """Audio bandwidth: NB, MB, WB, SWB or FB (RFC 6716 Table 2)."""
        c = self.config
        if c < 12:
            return _BANDWIDTHS[c // 4]
        if c < 16:
            return "SWB" if c < 14 else "FB"
        return ("NB", "WB", "SWB", "FB")[(c - 16) // 4]

    @property
    def frame_size_48k(self) -> int:
        """Samples per frame at 48 kHz (``opus_packet_get_samples_per_frame(data, 48000)``)."""
        c = self.config
        if c >= 16:  # CELT: 2.5, 5, 10, 20 ms
            return 120 << (c & 3)
        if c >= 12:  # Hybrid: 10, 20 ms
            return 960 if c & 1 else 480
        return (480, 960, 1920, 2880)[c & 3]  # SILK: 10, 20, 40, 60 ms

    @property
    def frame_ms(self) -> float:
        return self.frame_size_48k / 48.0

    @property
    def channels(self) -> int:
        return 2 if self.stereo else 1


@dataclass
class Packet:
    """A parsed Opus packet.

    Offsets are byte offsets from the start of the data given to :func:`parse_packet`.
    ``length`` is the number of bytes this packet occupies (less than the input for a
    self-delimited packet followed by more data).
    """

    toc: Toc
    frames: list[bytes]
    padding: bytes = b""
    vbr: bool = False
    has_padding: bool = False
    self_delimited: bool = False
    frame_offsets: list[int] = field(default_factory=list)
    padding_offset: int | None = None
    count_byte_offset: int | None = None
    padding_length_offsets: list[int] = field(default_factory=list)
    frame_length_offsets: list[int] = field(default_factory=list)
    payload_offset: int = 1
    length: int = 0

    @property
    def code(self) -> int:
        return self.toc.code

    @property
    def nb_frames(self) -> int:
        return len(self.frames)

    @property
    def duration_48k(self) -> int:
        """Total samples at 48 kHz."""
        return self.nb_frames * self.toc.frame_size_48k

    def count_byte(self) -> bitstring.Bits | None:
        """The code-3 frame-count byte as ``v | p | M(6)`` bits, or ``None`` for codes 0–2."""
        if self.code != 3:
            return None
        return bitstring.pack("uint:1, uint:1, uint:6", int(self.vbr), int(self.has_padding), self.nb_frames)


def _read_length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A frame length of RFC 6716 §3.2.1 at ``pos``: (length, bytes used), or (-1, -1) when ``end`` is reached."""
    if pos >= end:
        return -1, -1
    b0 = data[pos]
    if b0 < 252:
        return b0, 1
    if pos + 1 >= end:
        return -1, -1
    return 4 * data[pos + 1] + b0, 2


@dataclass
class _Framing:
    """Where :func:`parse_packet` stands: ``pos`` is the next byte to read, ``remaining`` the bytes after it
    that are neither read nor padding (``len`` in ``opus_packet_parse_impl``), ``last_size`` the room the
    last frame has."""

    pos: int
    remaining: int
    last_size: int
    count: int = 1
    cbr: bool = False
    vbr: bool = False
    pad: int = 0
    has_padding: bool = False
    count_byte_offset: int | None = None
    sizes: list[int] = field(default_factory=list)
    frame_length_offsets: list[int] = field(default_factory=list)
    padding_length_offsets: list[int] = field(default_factory=list)


def parse_packet(data: bytes, *, self_delimited: bool = False) -> Packet:
    """Split an Opus packet into its frames and padding (RFC 6716 §3; ``opus_packet_parse_impl``).

    With ``self_delimited`` the self-delimiting framing of RFC 6716 Appendix B is read (the last frame's
    length is coded too) and bytes after the packet are left alone (see :attr:`Packet.length`).

    Raises :class:`PacketError` whose ``rule`` names the RFC 6716 §3.4 rule (``"RFC6716 R1"`` …
    ``"RFC6716 R7"``, or ``"RFC6716 App.B"`` for the self-delimited lengths) and whose ``byte_offset``
    is where the fault was found.
    """
    data = bytes(data)
    _check_not_empty(data)
    toc = Toc.from_byte(data[0])
    f = _Framing(pos=1, remaining=len(data) - 1, last_size=len(data) - 1)
    _FRAME_PACKING[toc.code](data, f, toc, self_delimited)
    if self_delimited:
        _read_self_delimited_length(data, f)
    else:
        _take_implicit_last_frame(f)
    return _cut_frames(data, toc, f, self_delimited)


def _check_not_empty(data: bytes) -> None:
    """R1: a packet has at least one byte, its TOC (RFC 6716 §3.4)."""
    if not data:
        raise PacketError("empty packet", byte_offset=0, rule="RFC6716 R1")


def _take_frame_length(data: bytes, f: _Framing, message: str, rule: str) -> tuple[int, int]:
    """Read one frame length (RFC 6716 §3.2.1) at ``f.pos``; it and its frame must fit in ``f.remaining``."""
    size, used = _read_length(data, f.pos, f.pos + f.remaining)
    if used > 0:
        f.remaining -= used
    if used < 0 or size > f.remaining:
        raise PacketError(message, byte_offset=f.pos, rule=rule)
    f.frame_length_offsets.append(f.pos)
    f.pos += used
    return size, used


def _code0_one_frame(data: bytes, f: _Framing, toc: Toc, self_delimited: bool) -> None:
    """Code 0: one frame in the packet (RFC 6716 §3.2.2); it takes what is left."""
    f.count = 1


def _code1_two_equal_frames(data: bytes, f: _Framing, toc: Toc, self_delimited: bool) -> None:
    """Code 1: two frames of equal compressed size (RFC 6716 §3.2.3); R3: an even number of frame bytes."""
    f.count = 2
    f.cbr = True
    if self_delimited:
        return  # Appendix B codes the size instead
    if f.remaining & 1:
        raise PacketError("code 1 packet with an odd number of frame bytes", byte_offset=1, rule="RFC6716 R3")
    f.last_size = f.remaining // 2
    f.sizes.append(f.last_size)


def _code2_two_frames(data: bytes, f: _Framing, toc: Toc, self_delimited: bool) -> None:
    """Code 2: two frames of different sizes (RFC 6716 §3.2.4); R4: the first one's length and data fit."""
    f.count = 2
    f.vbr = True
    size, _ = _take_frame_length(data, f, "code 2 packet without room for its first frame's length and data",
                                 "RFC6716 R4")
    f.sizes.append(size)
    f.last_size = f.remaining - size


def _code3_signaled_frames(data: bytes, f: _Framing, toc: Toc, self_delimited: bool) -> None:
    """Code 3: a signaled number of frames (RFC 6716 §3.2.5): the frame-count byte, the padding length,
    then the VBR frame lengths or the CBR split."""
    _read_frame_count_byte(data, f, toc)
    if f.has_padding:
        _read_padding_length(data, f)
    if f.vbr:
        _read_vbr_frame_lengths(data, f)
    elif not self_delimited:
        _split_cbr_frames(f)


def _read_frame_count_byte(data: bytes, f: _Framing, toc: Toc) -> None:
    """The frame-count byte ``v p M`` (RFC 6716 §3.2.5); R6 (it is there) and R5 (1 to 120 ms of audio)."""
    if f.remaining < 1:
        raise PacketError("code 3 packet without a frame-count byte", byte_offset=1, rule="RFC6716 R6")
    f.count_byte_offset = f.pos
    v, p, count = bitstring.Bits(uint=data[f.pos], length=8).unpack("uint:1, uint:1, uint:6")
    f.vbr = bool(v)
    f.cbr = not f.vbr
    if count == 0 or count * toc.frame_size_48k > MAX_PACKET_SAMPLES_48K:
        raise PacketError(f"code 3 packet with {count} frames of {toc.frame_ms} ms (must be 1..120 ms)",
                          byte_offset=f.pos, rule="RFC6716 R5")
    f.count = count
    f.has_padding = bool(p)
    f.pos += 1
    f.remaining -= 1


def _read_padding_length(data: bytes, f: _Framing) -> None:
    """The padding length (RFC 6716 §3.2.5): bytes of 255 add 254 and go on, the last adds itself; the
    padding must fit in the packet (R6 for CBR, R7 for VBR)."""
    rule = "RFC6716 R7" if f.vbr else "RFC6716 R6"
    while True:
        if f.remaining <= 0:
            raise PacketError("padding length runs past the end of the packet", byte_offset=f.pos, rule=rule)
        b = data[f.pos]
        f.padding_length_offsets.append(f.pos)
        f.pos += 1
        f.remaining -= 1
        add = 254 if b == 255 else b
        f.remaining -= add
        f.pad += add
        if b != 255:
            break
    if f.remaining < 0:
        raise PacketError(f"padding of {f.pad} bytes does not fit in the packet",
                          byte_offset=f.padding_length_offsets[-1], rule=rule)


def _read_vbr_frame_lengths(data: bytes, f: _Framing) -> None:
    """VBR code 3 (RFC 6716 §3.2.5): the lengths of all frames but the last; R7: they fit in the packet."""
    f.last_size = f.remaining
    for _ in range(f.count - 1):
        size, used = _take_frame_length(data, f, "frame length runs past the end of the packet", "RFC6716 R7")
        f.sizes.append(size)
        f.last_size -= used + size
    if f.last_size < 0:
        raise PacketError("frame lengths and padding exceed the packet", byte_offset=f.pos, rule="RFC6716 R7")


def _split_cbr_frames(f: _Framing) -> None:
    """CBR code 3 (RFC 6716 §3.2.5): ``M`` frames of equal size; R6: they divide the bytes left exactly."""
    f.last_size = f.remaining // f.count
    if f.last_size * f.count != f.remaining:
        raise PacketError(f"{f.remaining} bytes of CBR frames do not divide into {f.count} frames",
                          byte_offset=f.pos, rule="RFC6716 R6")
    f.sizes.extend([f.last_size] * (f.count - 1))


_FRAME_PACKING = (_code0_one_frame, _code1_two_equal_frames, _code2_two_frames, _code3_signaled_frames)


def _read_self_delimited_length(data: bytes, f: _Framing) -> None:
    """The self-delimiting framing (RFC 6716 Appendix B): one more length, of the last frame (of every
    frame when they are CBR), which must fit in the room left."""
    size, used = _take_frame_length(data, f, "self-delimited length runs past the end of the packet",
                                    "RFC6716 App.B")
    if f.cbr:
        if size * f.count > f.remaining:
            raise PacketError("self-delimited CBR frames run past the end of the packet", byte_offset=f.pos,
                              rule="RFC6716 App.B")
        f.sizes = [size] * f.count
    else:
        if used + size > f.last_size:
            raise PacketError("self-delimited last frame exceeds the room left", byte_offset=f.pos,
                              rule="RFC6716 App.B")
        f.sizes.append(size)


def _take_implicit_last_frame(f: _Framing) -> None:
    """The last frame takes the room left; R2: at most 1275 bytes (RFC 6716 §3.4)."""
    if f.last_size > MAX_FRAME_BYTES:
        raise PacketError(f"implicit frame length {f.last_size} exceeds {MAX_FRAME_BYTES} bytes",
                          byte_offset=f.pos, rule="RFC6716 R2")
    f.sizes.append(f.last_size)


def _cut_frames(data: bytes, toc: Toc, f: _Framing, self_delimited: bool) -> Packet:
    """The frames, one after the other from the first byte after the lengths, then the padding."""
    payload_offset = pos = f.pos
    frames: list[bytes] = []
    frame_offsets: list[int] = []
    for size in f.sizes:
        frame_offsets.append(pos)
        frames.append(data[pos:pos + size])
        pos += size
    return Packet(
        toc=toc,
        frames=frames,
        padding=data[pos:pos + f.pad],
        vbr=f.vbr,
        has_padding=f.has_padding,
        self_delimited=self_delimited,
        frame_offsets=frame_offsets,
        padding_offset=pos if f.has_padding else None,
        count_byte_offset=f.count_byte_offset,
        padding_length_offsets=f.padding_length_offsets,
        frame_length_offsets=f.frame_length_offsets,
        payload_offset=payload_offset,
        length=pos + f.pad,
    )


def encode_frame_length(size: int) -> bytes:
    """The 1- or 2-byte frame length of RFC 6716 §3.2.1 (as libopus' ``encode_size``)."""
    if not 0 <= size <= MAX_FRAME_BYTES:
        raise PacketError(f"frame length {size} outside 0..{MAX_FRAME_BYTES}", rule="RFC6716 R2")
    if size < 252:
        return bytes([size])
    b0 = 252 + (size & 3)
    return bytes([b0, (size - b0) >> 2])


def encode_padding_length(nbytes: int) -> bytes:
    """The minimal padding-length chain for ``nbytes`` bytes of padding data (RFC 6716 §3.2.5).

    Each 255 adds 254 and continues; the last byte (0..254) adds itself. This is the chain libopus'
    repacketizer writes.
    """
    if nbytes < 0:
        raise PacketError(f"negative padding length {nbytes}")
    nb_255 = (nbytes - 1) // 254 if nbytes > 0 else 0
    return bytes([255] * nb_255 + [nbytes - 254 * nb_255])


def write_packet(
    toc: Toc | int,
    frames: Sequence[bytes],
    *,
    padding: bytes | None = None,
    code: int | None = None,
    vbr: bool | None = None,
    padding_chain: Sequence[int] | None = None,
    self_delimited: bool = False,
) -> bytes:
    """Frame ``frames`` into an Opus packet (RFC 6716 §3.2; libopus repacketizer layout).

    ``toc`` gives config and stereo (its code is ignored unless ``code`` is None and it is a
    :class:`Toc` whose code fits). ``code`` None picks libopus' choice: 0 for one frame, 1 for two equal
    frames, 2 for two different ones, 3 otherwise or whenever ``padding`` is given. ``vbr`` None means
    VBR exactly when the frames differ in length. ``padding`` (code 3 only) is the padding data;
    ``padding_chain`` overrides the length bytes (any chain of 255s ending in 0..254 that adds up to
    ``len(padding)``). Raises :class:`PacketError` for framings RFC 6716 does not allow.
    """
    if isinstance(toc, int):
        toc = Toc.from_byte(toc)
    frames = [bytes(f) for f in frames]
    count = len(frames)
    sizes = [len(f) for f in frames]
    if code is None:
        if padding is not None or count > 2 or padding_chain is not None:
            code = 3
        elif count == 1:
            code = 0
        elif count == 2:
            code = 1 if sizes[0] == sizes[1] else 2
        else:
            raise PacketError("a packet needs at least one frame", rule="RFC6716 R5")
    if padding is not None and code != 3:
        raise PacketError("only code 3 packets carry padding")
    for s in sizes:
        if s > MAX_FRAME_BYTES:
            raise PacketError(f"frame of {s} bytes exceeds {MAX_FRAME_BYTES}", rule="RFC6716 R2")
    out = bytearray([Toc(toc.config, toc.stereo, code).to_byte()])
    if code == 0:
        if count != 1:
            raise PacketError(f"code 0 carries one frame, not {count}")
        if self_delimited:
            out += encode_frame_length(sizes[0])
    elif code in (1, 2):
        if count != 2:
            raise PacketError(f"code {code} carries two frames, not {count}")
        if code == 1 and sizes[0] != sizes[1]:
            raise PacketError("code 1 frames must have equal lengths", rule="RFC6716 R3")
        if code == 2:
            out += encode_frame_length(sizes[0])
        if self_delimited:
            out += encode_frame_length(sizes[1])
    else:
        if not 1 <= count <= 48 or count * toc.frame_size_48k > MAX_PACKET_SAMPLES_48K:
            raise PacketError(f"{count} frames of {toc.frame_ms} ms do not fit in a code 3 packet",
                              rule="RFC6716 R5")
        if vbr is None:
            vbr = len(set(sizes)) > 1
        if not vbr and len(set(sizes)) > 1:
            raise PacketError("CBR code 3 frames must have equal lengths", rule="RFC6716 R6")
        has_pad = padding is not None or padding_chain is not None
        pad_data = bytes(padding or b"")
        out += bitstring.pack("uint:1, uint:1, uint:6", int(vbr), int(has_pad), count).bytes
        if has_pad:
            if padding_chain is None:
                chain = encode_padding_length(len(pad_data))
            else:
                chain = bytes(padding_chain)
                total = 0
                for i, b in enumerate(chain):
                    if (b == 255) != (i < len(chain) - 1):
                        raise PacketError("a padding chain is 255s followed by one byte 0..254")
                    total += 254 if b == 255 else b
                if total != len(pad_data):
                    raise PacketError(f"padding chain codes {total} bytes, padding has {len(pad_data)}")
            out += chain
        if vbr:
            for s in sizes[:-1]:
                out += encode_frame_length(s)
        if self_delimited:
            out += encode_frame_length(sizes[-1])
    for f in frames:
        out += f
    if code == 3 and (padding is not None or padding_chain is not None):
        out += bytes(padding or b"")
    return bytes(out)
