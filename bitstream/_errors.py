"""Typed errors of the bitstream layer.

Every failure to read bytes raises a subclass of :class:`BitstreamError`, never another exception.
Each error carries where it happened (byte offset, and bit offset within the input where the reader
works on bits), the rule it violates (for instance ``"RFC6716 R5"``), and the profile in force.
"""

from __future__ import annotations

from opus_dred.errors import OpusDredError




class BitstreamError(OpusDredError):
    """Input bytes that cannot be read as the structure asked for.

    Attributes:
        message: what is wrong, in words.
        byte_offset: offset of the first byte concerned, from the start of the input given to the reader.
        bit_offset: offset in bits from the start of that same input (``8 * byte_offset`` plus the bit
            position where the reader works on bits), or ``None`` where only bytes are meaningful.
        rule: the rule violated (``"RFC6716 R1"`` … ``"R7"``, ``"ext: ..."``, ``"dred: ..."``), or ``None``.
        profile: name of the profile in force, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        byte_offset: int | None = None,
        bit_offset: int | None = None,
        rule: str | None = None,
        profile: str | None = None,
    ) -> None:
        self.message = message
        self.byte_offset = byte_offset
        if bit_offset is None and byte_offset is not None:
            bit_offset = 8 * byte_offset
        self.bit_offset = bit_offset
        self.rule = rule
        self.profile = profile
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.byte_offset is not None:
            where.append(f"byte {self.byte_offset}")
        if self.bit_offset is not None:
            where.append(f"bit {self.bit_offset}")
        parts = [self.message]
        if where:
            parts.append(f"at {', '.join(where)}")
        if self.rule:
            parts.append(f"[{self.rule}]")
        if self.profile:
            parts.append(f"(profile {self.profile})")
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "byte_offset": self.byte_offset,
            "bit_offset": self.bit_offset,
            "rule": self.rule,
            "profile": self.profile,
        }


class TruncatedError(BitstreamError):
    """The input ends before the structure it announces."""


class PacketError(BitstreamError):
    """An Opus packet that violates the framing rules of RFC 6716 §3.4 (R1–R7)."""


class ExtensionError(BitstreamError):
    """Malformed extension data in the padding of a packet."""


class DredPayloadError(BitstreamError):
    """A DRED extension payload that cannot be read under the profile in force."""


class ProfileMismatchError(DredPayloadError):
    """A DRED payload whose experimental-version bytes belong to another profile (or none)."""


class RangeCoderError(BitstreamError):
    """A range-coder operation that cannot be carried out (bad arguments, or an encoder overflow)."""


class FormatError(BitstreamError):
    """A file that is not of the format asked for (``.bit``, DRED-only stream, Ogg Opus)."""
