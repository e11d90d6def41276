"""The Opus range coder (RFC 6716 §4.1 decoder, §5.1 encoder) and the Laplace "p0" coder used by DRED.

Bit-exact with libopus ``celt/entdec.c``, ``celt/entenc.c``, ``celt/entcode.c`` and ``celt/laplace.c``
(identical in 1.5.2 and 1.6.1 apart from a NULL-buffer guard in ``ec_enc_done`` that does not change any
output, and no difference at all in ``laplace.c``).

Conventions (RFC 6716 §4.1): 8-bit symbols, a 32-bit code window (``EC_CODE_BITS``), the range is kept
above ``EC_CODE_BOT = 2**23`` by renormalising one byte at a time. Raw bits (``dec_bits``/``enc_bits``) are
packed from the *end* of the buffer backwards, least significant bit first.

Reading past the end of the input is not an error (RFC 6716 §4.1.1: "zeros are read"): the decoder keeps
going, and :meth:`RangeDecoder.tell` may exceed ``8 * len(data)``. The caller decides what that means
(see :func:`opus_dred.bitstream._dred.read_dred_payload`). The decoder state is plain Python integers,
masked to 32 bits only where the C code would wrap, so that the hot path stays fast.

Errors in the *arguments* (a frequency total of 0, an ICDF that is not a valid table, a symbol that has
zero probability in the encoder, ...) raise :class:`~opus_dred.bitstream._errors.RangeCoderError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

import bitstring

from opus_dred.bitstream._errors import RangeCoderError

# RFC 6716 §4.1 / celt/mfrngcod.h constants.
EC_SYM_BITS = 8
EC_CODE_BITS = 32
EC_SYM_MAX = (1 << EC_SYM_BITS) - 1
EC_CODE_SHIFT = EC_CODE_BITS - EC_SYM_BITS - 1  # 23
EC_CODE_TOP = 1 << (EC_CODE_BITS - 1)  # 2**31
EC_CODE_BOT = EC_CODE_TOP >> EC_SYM_BITS  # 2**23
EC_CODE_EXTRA = (EC_CODE_BITS - 2) % EC_SYM_BITS + 1  # 7
EC_WINDOW_SIZE = 32  # the raw-bits window, an unsigned 32-bit integer in libopus
EC_UINT_BITS = 8  # ec_dec_uint/ec_enc_uint code at most this many high bits with the range coder
BITRES = 3  # ec_tell_frac resolution: 1/8 bit

_MASK32 = 0xFFFFFFFF
_T = TypeVar("_T")

# Thresholds of celt/entcode.c:ec_tell_frac (the table-driven variant libopus compiles), data.
_TELL_FRAC_CORRECTION = (35733, 38967, 42495, 46340, 50535, 55109, 60097, 65535)


def _check_icdf(icdf: Sequence[int], ftb: int, limit_bits: int) -> None:
    if not 0 <= ftb <= limit_bits:
        raise RangeCoderError(f"icdf precision ftb={ftb} out of range 0..{limit_bits}")
    if len(icdf) == 0 or icdf[-1] != 0:
        raise RangeCoderError("an icdf table must end with 0")
    prev = 1 << ftb
    for v in icdf:
        if v > prev or v < 0:
            raise RangeCoderError(f"icdf table {list(icdf)} is not non-increasing within [0, 2**{ftb}]")
        prev = v


def _check_ft(ft: int) -> None:
    if not 1 <= ft <= 1 << 16:
        raise RangeCoderError(f"frequency total ft={ft} out of range 1..65536")


class RangeDecoder:
    """Range decoder over ``data`` (RFC 6716 §4.1; ``celt/entdec.c``).

    Attributes mirror ``ec_dec``: ``rng``, ``val``, ``offs`` (bytes consumed from the front),
    ``end_offs`` (bytes consumed from the back by raw bits), ``nbits_total`` and ``error`` (set by
    :meth:`dec_uint` when the raw low bits make the value exceed ``ft - 1``, as libopus does).
    """

    __slots__ = (
        "buf",
        "storage",
        "offs",
        "end_offs",
        "end_window",
        "nend_bits",
        "nbits_total",
        "rng",
        "val",
        "rem",
        "ext",
        "error",
    )

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.buf = bytes(data)
        self.storage = len(self.buf)
        self.end_offs = 0
        self.end_window = 0
        self.nend_bits = 0
        # tell() must agree with the encoder once the first normalisation has run (RFC 6716 §4.1.1).
        self.nbits_total = EC_CODE_BITS + 1 - ((EC_CODE_BITS - EC_CODE_EXTRA) // EC_SYM_BITS) * EC_SYM_BITS
        self.offs = 0
        self.rng = 1 << EC_CODE_EXTRA
        self.rem = self._read_byte()
        self.val = self.rng - 1 - (self.rem >> (EC_SYM_BITS - EC_CODE_EXTRA))
        self.error = 0
        self.ext = 0
        self._normalize()

    # -- input ---------------------------------------------------------------------------------
    def _read_byte(self) -> int:
        if self.offs < self.storage:
            b = self.buf[self.offs]
            self.offs += 1
            return b
        return 0  # past the end: zeros (RFC 6716 §4.1.1)

    def _read_byte_from_end(self) -> int:
        if self.end_offs < self.storage:
            self.end_offs += 1
            return self.buf[self.storage - self.end_offs]
        return 0

    def _normalize(self) -> None:
        # RFC 6716 §4.1.2.1: while rng <= 2**23, shift in one more byte.
        rng = self.rng
        if rng > EC_CODE_BOT:
            return
        val = self.val
        while rng <= EC_CODE_BOT:
            if rng == 0:  # only reachable through a zero-probability icdf entry
                raise RangeCoderError("range collapsed to zero (zero-probability symbol)", bit_offset=self.tell())
            self.nbits_total += EC_SYM_BITS
            rng <<= EC_SYM_BITS
            sym = self.rem
            self.rem = self._read_byte()
            sym = ((sym << EC_SYM_BITS) | self.rem) >> (EC_SYM_BITS - EC_CODE_EXTRA)
            val = ((val << EC_SYM_BITS) + (EC_SYM_MAX & ~sym)) & (EC_CODE_TOP - 1)
        self.rng = rng
        self.val = val

    # -- symbols ---------------------------------------------------------------------------------
    def decode(self, ft: int) -> int:
        """``ec_decode``: the cumulative frequency of the next symbol, in ``[0, ft)``; follow with :meth:`update`."""
        _check_ft(ft)
        self.ext = self.rng // ft
        s = self.val // self.ext
        return ft - min(s + 1, ft)

    def decode_bin(self, bits: int) -> int:
        """``ec_decode_bin``: :meth:`decode` with ``ft = 2**bits``."""
        if not 0 <= bits <= 16:
            raise RangeCoderError(f"decode_bin bits={bits} out of range 0..16")
        self.ext = self.rng >> bits
        s = self.val // self.ext
        return (1 << bits) - min(s + 1, 1 << bits)

    def update(self, fl: int, fh: int, ft: int) -> None:
        """``ec_dec_update``: consume the symbol occupying ``[fl, fh)`` of ``ft``."""
        if not 0 <= fl < fh <= ft:
            raise RangeCoderError(f"update needs 0 <= fl < fh <= ft, got fl={fl} fh={fh} ft={ft}")
        s = (self.ext * (ft - fh)) & _MASK32
        self.val = (self.val - s) & _MASK32
        self.rng = (self.ext * (fh - fl)) & _MASK32 if fl > 0 else (self.rng - s) & _MASK32
        self._normalize()

    def dec_bit_logp(self, logp: int) -> int:
        """``ec_dec_bit_logp``: a bit whose probability of being 1 is ``2**-logp``."""
        if not 1 <= logp <= 16:
            raise RangeCoderError(f"logp={logp} out of range 1..16")
        r = self.rng
        d = self.val
        s = r >> logp
        ret = 1 if d < s else 0
        if not ret:
            self.val = d - s
        self.rng = s if ret else r - s
        self._normalize()
        return ret

    def _icdf(self, icdf: Sequence[int], ftb: int) -> int:
        # Shared body of ec_dec_icdf / ec_dec_icdf16 (no argument checks: the hot path).
        s = self.rng
        d = self.val
        r = s >> ftb
        ret = -1
        while True:
            t = s
            ret += 1
            s = r * icdf[ret]
            if d >= s:
                break
        self.val = d - s
        self.rng = t - s
        if self.rng <= EC_CODE_BOT:
            self._normalize()
        return ret

    def dec_icdf(self, icdf: Sequence[int], ftb: int) -> int:
        """``ec_dec_icdf``: a symbol from an 8-bit inverse CDF table scaled by ``2**ftb``."""
        _check_icdf(icdf, ftb, 8)
        return self._icdf(icdf, ftb)

    def dec_icdf16(self, icdf: Sequence[int], ftb: int) -> int:
        """``ec_dec_icdf16``: a symbol from a 16-bit inverse CDF table scaled by ``2**ftb``."""
        _check_icdf(icdf, ftb, 16)
        return self._icdf(icdf, ftb)

    def dec_uint(self, ft: int) -> int:
        """``ec_dec_uint``: an integer in ``[0, ft)``; at most 8 high bits range-coded, the rest raw."""
        if not 2 <= ft <= _MASK32:
            raise RangeCoderError(f"dec_uint ft={ft} out of range 2..2**32-1")
        ft -= 1
        ftb = ft.bit_length()
        if ftb > EC_UINT_BITS:
            ftb -= EC_UINT_BITS
            ft1 = (ft >> ftb) + 1
            s = self.decode(ft1)
            self.update(s, s + 1, ft1)
            t = (s << ftb) | self.dec_bits(ftb)
            if t <= ft:
                return t
            self.error = 1
            return ft
        ft += 1
        s = self.decode(ft)
        self.update(s, s + 1, ft)
        return s

    def dec_bits(self, bits: int) -> int:
        """``ec_dec_bits``: ``bits`` raw bits (0..25), read backwards from the end of the buffer."""
        if not 0 <= bits <= 25:
            raise RangeCoderError(f"dec_bits bits={bits} out of range 0..25")
        window = self.end_window
        available = self.nend_bits
        if available < bits:
            while True:
                window |= self._read_byte_from_end() << available
                available += EC_SYM_BITS
                if available > EC_WINDOW_SIZE - EC_SYM_BITS:
                    break
        ret = window & ((1 << bits) - 1)
        self.end_window = window >> bits
        self.nend_bits = available - bits
        self.nbits_total += bits
        return ret

    # -- position --------------------------------------------------------------------------------
    def tell(self) -> int:
        """``ec_tell``: bits used so far, rounded up (may exceed ``8 * len(data)`` past the end)."""
        return self.nbits_total - self.rng.bit_length()

    def tell_frac(self) -> int:
        """``ec_tell_frac``: bits used so far in 1/8 bit units."""
        return _tell_frac(self.nbits_total, self.rng)

    @property
    def past_end(self) -> bool:
        """Whether :meth:`tell` has gone beyond the input (zeros were read)."""
        return self.tell() > 8 * self.storage

    # -- named reads -----------------------------------------------------------------------------
    def read(self, name: str, read: Callable[..., _T], *args) -> _T:
        """A named read of the syntax: ``read(self, *args)``; ``name`` is the field it reads.

        A plain decoder only runs the read; :class:`TracingDecoder` also records where it began and
        ended. Syntax written with named reads therefore carries no position bookkeeping of its own.
        """
        return read(self, *args)


class TracedRead(NamedTuple):
    """One named read and the bits it took: ``ec_tell`` (whole bits) and ``ec_tell_frac`` (1/8 bit)
    before and after (RFC 6716 §4.1.6)."""

    name: str
    tell_before: int
    tell_after: int
    frac_before: int
    frac_after: int


class TracingDecoder:
    """A :class:`RangeDecoder` that records, for each named read (:meth:`RangeDecoder.read`), the bit
    position before and after it (``ec_tell`` and ``ec_tell_frac``, RFC 6716 §4.1.6).

    It decodes nothing itself: every read runs on the wrapped decoder, and every other attribute
    (``tell``, ``dec_uint``, ``storage``, ...) is the wrapped decoder's, so decoded values are those
    of the plain decoder. Positions count from the start of the buffer; a fresh decoder has used 1 bit.
    """

    __slots__ = ("decoder", "_spans")

    def __init__(self, decoder: RangeDecoder) -> None:
        self.decoder = decoder
        # (name, nbits_total, rng) before and after each read: positions are computed when asked for
        self._spans: list[tuple[str, int, int, int, int]] = []

    def __getattr__(self, name: str):
        return getattr(self.decoder, name)

    def tell(self) -> int:
        """``ec_tell`` of the wrapped decoder."""
        return self.decoder.tell()

    def tell_frac(self) -> int:
        """``ec_tell_frac`` of the wrapped decoder."""
        return self.decoder.tell_frac()

    def read(self, name: str, read: Callable[..., _T], *args) -> _T:
        """Run ``read(decoder, *args)`` on the wrapped decoder and record its span under ``name``."""
        dec = self.decoder
        n0, r0 = dec.nbits_total, dec.rng
        value = read(dec, *args)
        self._spans.append((name, n0, r0, dec.nbits_total, dec.rng))
        return value

    @property
    def reads(self) -> list[TracedRead]:
        """Each read so far, with ``ec_tell`` and ``ec_tell_frac`` before and after."""
        return [TracedRead(name, n0 - r0.bit_length(), n1 - r1.bit_length(), _tell_frac(n0, r0), _tell_frac(n1, r1))
                for name, n0, r0, n1, r1 in self._spans]

    @property
    def fields(self) -> list[tuple[str, int, int]]:
        """``(name, tell_before, tell_after)`` of each read so far, in bits."""
        return [(name, n0 - r0.bit_length(), n1 - r1.bit_length()) for name, n0, r0, n1, r1 in self._spans]


def _tell_frac(nbits_total: int, rng: int) -> int:
    nbits = nbits_total << BITRES
    lg = rng.bit_length()
    r = rng >> (lg - 16)
    b = (r >> 12) - 8
    if r > _TELL_FRAC_CORRECTION[b]:
        b += 1
    return nbits - ((lg << 3) + b)


class RangeEncoder:
    """Range encoder into a buffer of ``size`` bytes (RFC 6716 §5.1; ``celt/entenc.c``).

    ``error`` becomes non-zero when the buffer overflows (as in libopus, encoding goes on and the
    output is then unusable). :meth:`done` returns the whole buffer as ``ec_enc_done`` leaves it:
    range-coded bytes at the front, raw bits at the back, zeros in between.
    """

    __slots__ = (
        "buf",
        "storage",
        "offs",
        "end_offs",
        "end_window",
        "nend_bits",
        "nbits_total",
        "rng",
        "val",
        "rem",
        "ext",
        "error",
    )

    def __init__(self, size: int) -> None:
        if size < 0:
            raise RangeCoderError(f"encoder size {size} is negative")
        self.buf = bytearray(size)
        self.storage = size
        self.end_offs = 0
        self.end_window = 0
        self.nend_bits = 0
        self.nbits_total = EC_CODE_BITS + 1
        self.offs = 0
        self.rng = EC_CODE_TOP
        self.rem = -1
        self.val = 0
        self.ext = 0
        self.error = 0

    # -- output ----------------------------------------------------------------------------------
    def _write_byte(self, value: int) -> int:
        if self.offs + self.end_offs >= self.storage:
            return -1
        self.buf[self.offs] = value & 0xFF
        self.offs += 1
        return 0

    def _write_byte_at_end(self, value: int) -> int:
        if self.offs + self.end_offs >= self.storage:
            return -1
        self.end_offs += 1
        self.buf[self.storage - self.end_offs] = value & 0xFF
        return 0

    def _carry_out(self, c: int) -> None:
        # RFC 6716 §5.1.1: hold back 0xFF bytes until we know whether a carry propagates into them.
        if c != EC_SYM_MAX:
            carry = c >> EC_SYM_BITS
            if self.rem >= 0:
                self.error |= self._write_byte(self.rem + carry)
            if self.ext > 0:
                sym = (EC_SYM_MAX + carry) & EC_SYM_MAX
                while self.ext > 0:
                    self.error |= self._write_byte(sym)
                    self.ext -= 1
            self.rem = c & EC_SYM_MAX
        else:
            self.ext += 1

    def _normalize(self) -> None:
        while self.rng <= EC_CODE_BOT:
            self._carry_out(self.val >> EC_CODE_SHIFT)
            self.val = (self.val << EC_SYM_BITS) & (EC_CODE_TOP - 1)
            self.rng <<= EC_SYM_BITS
            self.nbits_total += EC_SYM_BITS

    # -- symbols ---------------------------------------------------------------------------------
    def encode(self, fl: int, fh: int, ft: int) -> None:
        """``ec_encode``: code the symbol occupying ``[fl, fh)`` of ``ft``."""
        _check_ft(ft)
        if not 0 <= fl < fh <= ft:
            raise RangeCoderError(f"encode needs 0 <= fl < fh <= ft, got fl={fl} fh={fh} ft={ft}")
        r = self.rng // ft
        if fl > 0:
            self.val += self.rng - r * (ft - fl)
            self.rng = r * (fh - fl)
        else:
            self.rng -= r * (ft - fh)
        self._normalize()

    def encode_bin(self, fl: int, fh: int, bits: int) -> None:
        """``ec_encode_bin``: :meth:`encode` with ``ft = 2**bits``."""
        if not 0 <= bits <= 16:
            raise RangeCoderError(f"encode_bin bits={bits} out of range 0..16")
        ft = 1 << bits
        if not 0 <= fl < fh <= ft:
            raise RangeCoderError(f"encode_bin needs 0 <= fl < fh <= 2**bits, got fl={fl} fh={fh} bits={bits}")
        r = self.rng >> bits
        if fl > 0:
            self.val += self.rng - r * (ft - fl)
            self.rng = r * (fh - fl)
        else:
            self.rng -= r * (ft - fh)
        self._normalize()

    def enc_bit_logp(self, val: int, logp: int) -> None:
        """``ec_enc_bit_logp``: a bit whose probability of being 1 is ``2**-logp``."""
        if not 1 <= logp <= 16:
            raise RangeCoderError(f"logp={logp} out of range 1..16")
        r = self.rng
        s = r >> logp
        r -= s
        if val:
            self.val += r
        self.rng = s if val else r
        self._normalize()

    def _icdf(self, s: int, icdf: Sequence[int], ftb: int) -> None:
        r = self.rng >> ftb
        if s > 0:
            self.val += self.rng - r * icdf[s - 1]
            self.rng = r * (icdf[s - 1] - icdf[s])
        else:
            self.rng -= r * icdf[s]
        if self.rng == 0:
            raise RangeCoderError(f"symbol {s} has zero probability in icdf {list(icdf)}")
        self._normalize()

    def _check_symbol(self, s: int, icdf: Sequence[int]) -> None:
        if not 0 <= s < len(icdf):
            raise RangeCoderError(f"symbol {s} outside icdf table of {len(icdf)} entries")
        if (icdf[s - 1] if s > 0 else None) == icdf[s]:
            raise RangeCoderError(f"symbol {s} has zero probability in icdf {list(icdf)}")

    def enc_icdf(self, s: int, icdf: Sequence[int], ftb: int) -> None:
        """``ec_enc_icdf``: symbol ``s`` of an 8-bit inverse CDF table scaled by ``2**ftb``."""
        _check_icdf(icdf, ftb, 8)
        self._check_symbol(s, icdf)
        self._icdf(s, icdf, ftb)

    def enc_icdf16(self, s: int, icdf: Sequence[int], ftb: int) -> None:
        """``ec_enc_icdf16``: symbol ``s`` of a 16-bit inverse CDF table scaled by ``2**ftb``."""
        _check_icdf(icdf, ftb, 16)
        self._check_symbol(s, icdf)
        self._icdf(s, icdf, ftb)

    def enc_uint(self, fl: int, ft: int) -> None:
        """``ec_enc_uint``: the integer ``fl`` in ``[0, ft)``."""
        if not 2 <= ft <= _MASK32:
            raise RangeCoderError(f"enc_uint ft={ft} out of range 2..2**32-1")
        if not 0 <= fl < ft:
            raise RangeCoderError(f"enc_uint value {fl} outside [0, {ft})")
        ft -= 1
        ftb = ft.bit_length()
        if ftb > EC_UINT_BITS:
            ftb -= EC_UINT_BITS
            ft1 = (ft >> ftb) + 1
            fl1 = fl >> ftb
            self.encode(fl1, fl1 + 1, ft1)
            self.enc_bits(fl & ((1 << ftb) - 1), ftb)
        else:
            self.encode(fl, fl + 1, ft + 1)

    def enc_bits(self, fl: int, bits: int) -> None:
        """``ec_enc_bits``: ``bits`` raw bits (1..25), packed backwards from the end of the buffer."""
        if not 1 <= bits <= 25:
            raise RangeCoderError(f"enc_bits bits={bits} out of range 1..25")
        if not 0 <= fl < 1 << bits:
            raise RangeCoderError(f"enc_bits value {fl} does not fit in {bits} bits")
        window = self.end_window
        used = self.nend_bits
        if used + bits > EC_WINDOW_SIZE:
            while True:
                self.error |= self._write_byte_at_end(window & EC_SYM_MAX)
                window >>= EC_SYM_BITS
                used -= EC_SYM_BITS
                if used < EC_SYM_BITS:
                    break
        window |= fl << used
        used += bits
        self.end_window = window
        self.nend_bits = used
        self.nbits_total += bits

    def patch_initial_bits(self, val: int, nbits: int) -> None:
        """``ec_enc_patch_initial_bits``: overwrite the first ``nbits`` (<= 8) bits already coded."""
        if not 0 <= nbits <= EC_SYM_BITS or not 0 <= val < 1 << nbits:
            raise RangeCoderError(f"patch_initial_bits: bad value {val} / nbits {nbits}")
        shift = EC_SYM_BITS - nbits
        mask = ((1 << nbits) - 1) << shift
        if self.offs > 0:
            self.buf[0] = (self.buf[0] & ~mask & 0xFF) | (val << shift)
        elif self.rem >= 0:
            self.rem = (self.rem & ~mask) | (val << shift)
        elif self.rng <= (EC_CODE_TOP >> nbits):
            self.val = (self.val & ~(mask << EC_CODE_SHIFT)) | (val << (EC_CODE_SHIFT + shift))
        else:
            self.error = -1

    def shrink(self, size: int) -> None:
        """``ec_enc_shrink``: reduce the buffer to ``size`` bytes, moving the raw bits at the end."""
        if not self.offs + self.end_offs <= size <= self.storage:
            raise RangeCoderError(f"cannot shrink a {self.storage}-byte encoder holding "
                                  f"{self.offs + self.end_offs} bytes to {size}")
        tail = bytes(self.buf[self.storage - self.end_offs:self.storage])
        self.buf[size - self.end_offs:size] = tail
        del self.buf[size:]
        self.storage = size

    # -- position --------------------------------------------------------------------------------
    def tell(self) -> int:
        """``ec_tell``: bits used so far, rounded up."""
        return self.nbits_total - self.rng.bit_length()

    def tell_frac(self) -> int:
        """``ec_tell_frac``: bits used so far in 1/8 bit units."""
        return _tell_frac(self.nbits_total, self.rng)

    def range_bytes(self) -> int:
        """``ec_range_bytes``: bytes written so far at the front of the buffer."""
        return self.offs

    # -- finish ----------------------------------------------------------------------------------
    def done(self) -> bytes:
        """``ec_enc_done``: flush, and return the whole ``size``-byte buffer.

        Writes the fewest bits that make every symbol decode correctly whatever follows, clears the
        space between the range-coded bytes and the raw bits, and ORs the last partial byte of raw bits
        into the byte just before them. Check :attr:`error` afterwards (non-zero: the data did not fit).
        """
        lg = EC_CODE_BITS - self.rng.bit_length()
        msk = (EC_CODE_TOP - 1) >> lg
        end = (self.val + msk) & ~msk
        if (end | msk) >= self.val + self.rng:
            lg += 1
            msk >>= 1
            end = (self.val + msk) & ~msk
        while lg > 0:
            self._carry_out(end >> EC_CODE_SHIFT)
            end = (end << EC_SYM_BITS) & (EC_CODE_TOP - 1)
            lg -= EC_SYM_BITS
        if self.rem >= 0 or self.ext > 0:
            self._carry_out(0)
        window = self.end_window
        used = self.nend_bits
        while used >= EC_SYM_BITS:
            self.error |= self._write_byte_at_end(window & EC_SYM_MAX)
            window >>= EC_SYM_BITS
            used -= EC_SYM_BITS
        if not self.error:
            self.buf[self.offs:self.storage - self.end_offs] = bytes(self.storage - self.offs - self.end_offs)
            if used > 0:
                if self.end_offs >= self.storage:
                    self.error = -1
                else:
                    lg = -lg
                    if self.offs + self.end_offs >= self.storage and lg < used:
                        window &= (1 << lg) - 1
                        self.error = -1
                    self.buf[self.storage - self.end_offs - 1] |= window & 0xFF
        return bytes(self.buf)

    def raw_bits_tail(self) -> bitstring.Bits:
        """The raw bits written so far (``enc_bits``), in the order they were coded, as a bit string."""
        tail = self.buf[self.storage - self.end_offs:self.storage]
        coded = bitstring.BitArray()
        for byte in reversed(tail):  # the last byte of the buffer holds the first raw bits
            coded.append(bitstring.Bits(uint=byte, length=8)[::-1])
        if self.nend_bits:
            coded.append(bitstring.Bits(uint=self.end_window & ((1 << self.nend_bits) - 1),
                                        length=self.nend_bits)[::-1])
        return bitstring.Bits(coded)


# -- Laplace coder with an explicit zero probability (celt/laplace.c, ec_laplace_*_p0) -----------------


def laplace_p0_icdfs(p0: int, decay: int) -> tuple[tuple[int, int, int], tuple[int, ...]]:
    """The two 15-bit ICDF tables of ``ec_laplace_{en,de}code_p0``.

    ``sign``: {0, +, -} with P(0) = p0 / 32768 and the rest split evenly. ``mag``: eight symbols for the
    magnitude minus one, symbol 7 meaning "7, and another symbol follows"; entry 0 is ``max(7, decay)``
    and each next entry ``max(7 - i, previous * decay >> 15)``.
    """
    if not 0 <= p0 <= 32767:
        raise RangeCoderError(f"laplace p0={p0} out of range 0..32767")
    if not 0 <= decay <= 32767:
        raise RangeCoderError(f"laplace decay={decay} out of range 0..32767")
    s0 = 32768 - p0
    sign = (s0, s0 >> 1, 0)
    mag = [max(7, decay)]
    for i in range(1, 7):
        mag.append(max(7 - i, (mag[-1] * decay) >> 15))
    mag.append(0)
    return sign, tuple(mag)


_ICDF_CACHE: dict[tuple[int, int], tuple[tuple[int, int, int], tuple[int, ...]]] = {}


def _icdfs(p0: int, decay: int):
    key = (p0, decay)
    t = _ICDF_CACHE.get(key)
    if t is None:
        t = _ICDF_CACHE[key] = laplace_p0_icdfs(p0, decay)
    return t


def laplace_decode_p0(dec: RangeDecoder, p0: int, decay: int) -> int:
    """``celt/laplace.c:ec_laplace_decode_p0``: a signed integer (DRED latent/state value)."""
    sign, mag = _icdfs(p0, decay)
    s = dec._icdf(sign, 15)
    if s == 0:
        return 0
    value = 1
    while True:
        v = dec._icdf(mag, 15)
        value += v
        if v != 7:
            break
        if dec.nbits_total > 8 * dec.storage + 4096:
            # Far past the end only zeros are read, and zeros never decode as 7 for long; this
            # guard only stops a run that libopus itself could not finish.
            raise RangeCoderError("Laplace magnitude does not terminate", bit_offset=dec.tell())
    return value if s == 1 else -value


def laplace_encode_p0(enc: RangeEncoder, value: int, p0: int, decay: int) -> None:
    """``celt/laplace.c:ec_laplace_encode_p0``: the inverse of :func:`laplace_decode_p0`."""
    sign, mag = _icdfs(p0, decay)
    s = 0 if value == 0 else (1 if value > 0 else 2)
    enc._icdf(s, sign, 15)
    value = abs(value)
    if value:
        value -= 1
        while True:
            enc._icdf(min(value, 7), mag, 15)
            value -= 7
            if value < 0:
                break
