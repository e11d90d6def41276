"""Drive libopus' decoder through the receiver's actions, and run opus_demo for comparison.

:class:`LibopusExecutor` executes :mod:`opus_dred.refimpl.receiver` actions with an ``OpusDecoder``
of one libopus build (through :mod:`opus_dred.conformance.oracle`), writing the PCM the way that
release's ``src/opus_demo.c`` writes it: 1.5.2 decodes to 16-bit with ``opus_decode`` /
``opus_decoder_dred_decode``; 1.6.1 decodes to 24-bit with ``opus_decode24`` /
``opus_decoder_dred_decode24`` and rounds to 16-bit (clamp to +-0x7fff00, add 128, shift right 8).
Calls that return 0 or an error write nothing, as in opus_demo. Decoder complexity defaults to 0,
opus_demo's ``-dec_complexity`` default.

:func:`decode_like_opus_demo` builds the events from packets and a loss list exactly as opus_demo's
decode-only loop sees them (a packet is lost when the loss file says so *or* its length is 0; a loss
file shorter than the stream means "not lost" for the rest), runs the receiver and the executor.
:func:`run_opus_demo` runs the build's ``opus_demo -d`` on the same input.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from opus_dred.bitstream.formats import write_opus_demo_bit
from opus_dred.conformance.oracle import DredParse, Oracle
from opus_dred.refimpl import receiver as rx

__all__ = [
    "LibopusExecutor",
    "packet_events",
    "decode_like_opus_demo",
    "run_opus_demo",
    "write_loss_file",
    "opus_demo_policy",
]

_I16P = ctypes.POINTER(ctypes.c_int16)
_I32P = ctypes.POINTER(ctypes.c_int32)
_GET_LAST_PACKET_DURATION = 4039  # OPUS_GET_LAST_PACKET_DURATION_REQUEST (include/opus_defines.h)
_SET_COMPLEXITY = 4010
_MAX_FRAME = 48000 * 2  # opus_demo's max_frame_size at 48 kHz


def opus_demo_policy(oracle: Oracle) -> rx.Policy:
    """The receiver policy that mirrors this build's opus_demo."""
    v = oracle.info().version_string
    return rx.OPUS_DEMO_1_5_2 if "1.5" in v else rx.OPUS_DEMO_1_6_1


class LibopusExecutor:
    """Executes receiver actions on one libopus decoder; collects the PCM (int16, mono)."""

    def __init__(self, oracle: Oracle, rate: int, *, complexity: int = 0, pcm24: bool | None = None):
        self.oracle = oracle
        self.rate = rate
        self.dec = oracle.decoder(rate, 1)
        self.dec.set_complexity(complexity)
        lib = oracle._lib
        has24 = hasattr(lib, "opus_decode24")
        self.pcm24 = has24 if pcm24 is None else pcm24
        if self.pcm24 and not has24:
            raise ValueError(f"{oracle.build.name} has no opus_decode24")
        # private function pointers (lib[name] makes a new one; the oracle's own stay untouched)
        if self.pcm24:
            self._dec = lib["opus_decode24"]
            self._dred = lib["opus_decoder_dred_decode24"]
            outp = _I32P
            self._buf = np.zeros(_MAX_FRAME, np.int32)
        else:
            self._dec = lib["opus_decode"]
            self._dred = lib["opus_decoder_dred_decode"]
            outp = _I16P
            self._buf = np.zeros(_MAX_FRAME, np.int16)
        self._dec.restype = ctypes.c_int
        self._dec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, outp, ctypes.c_int, ctypes.c_int]
        self._dred.restype = ctypes.c_int
        self._dred.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, outp, ctypes.c_int32]
        self._outp = outp
        self._parses: dict[tuple[int, int | None], DredParse] = {}
        self.chunks: list[np.ndarray] = []
        self.returns: list[tuple[rx.Action, int]] = []  # each call's return value

    # -- libopus calls --------------------------------------------------------------------------

    def _ptr(self):
        return self._buf.ctypes.data_as(self._outp)

    def last_packet_duration(self) -> int:
        v = ctypes.c_uint32(0)
        self.oracle._lib.shim_dec_get_u32(self.dec._live(), _GET_LAST_PACKET_DURATION, ctypes.byref(v))
        return ctypes.c_int32(v.value).value

    def _emit(self, n: int) -> None:
        if n <= 0:
            return
        x = self._buf[:n].copy()
        if self.pcm24:
            x = np.clip(x.astype(np.int64), -0x7FFF00, 0x7FFF00)
            x = ((x + 128) >> 8).astype(np.int16)
        self.chunks.append(x.astype(np.int16))

    def _decode(self, data: bytes | None, frame_size: int, fec: int) -> int:
        n = 0 if data is None else len(data)
        return self._dec(self.dec._live(), data, n, self._ptr(), int(frame_size), fec)

    def dred(self, seq: int, packet: bytes, max_dred_samples: int | None) -> DredParse:
        key = (seq, max_dred_samples)
        d = self._parses.get(key)
        if d is None:
            d = self.oracle.dred_parse(packet, max_dred_samples=max_dred_samples, sampling_rate=self.rate)
            self._parses[key] = d
        return d

    def execute(self, action: rx.Action, packets: Sequence[bytes]) -> int:
        """Run one action; returns libopus' return value (samples or error code)."""
        if isinstance(action, rx.Normal):
            n = self._decode(packets[action.seq], _MAX_FRAME * self.rate // 48000, 0)
        elif isinstance(action, rx.Lbrr):
            n = self._decode(packets[action.seq], action.samples, 1)
        elif isinstance(action, rx.Plc):
            n = self._decode(None, action.samples, 0)
        elif isinstance(action, rx.Dred):
            d = self.dred(action.seq, packets[action.seq], action.max_dred_samples)
            n = self._dred(self.dec._live(), d.ptr, int(action.offset_samples), self._ptr(), int(action.samples))
        elif isinstance(action, rx.Drop):
            n = 0
        else:
            raise TypeError(f"not a receiver action: {action!r}")
        self.returns.append((action, n))
        self._emit(n)
        return n

    def pcm(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)

    def close(self) -> None:
        for d in self._parses.values():
            d.close()
        self._parses.clear()
        self.dec.close()

    def __enter__(self) -> "LibopusExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def packet_events(oracle: Oracle, packets: Sequence[bytes], lost: Iterable[int], rate: int) -> list[rx.Event]:
    """Events for ``packets`` with loss flags ``lost`` (opus_demo's reading: missing flags are 0, an
    empty packet is lost). ``has_lbrr`` is C truthiness of ``opus_packet_has_lbrr`` (an error code
    counts as true, as in opus_demo); the DRED fields come from a full ``opus_dred_parse``."""
    flags = list(lost)
    events: list[rx.Event] = []
    for i, pkt in enumerate(packets):
        is_lost = (flags[i] != 0 if i < len(flags) else False) or len(pkt) == 0
        if is_lost:
            events.append(rx.PacketLost(i))
            continue
        with oracle.dred_parse(pkt, sampling_rate=rate) as d:
            nb, off = (d.nb_latents, d.dred_offset) if d.ret > 0 else (0, 0)
        samples = _packet_samples(oracle, pkt, rate)
        events.append(rx.PacketArrived(i, samples, oracle.packet_has_lbrr(pkt) != 0, nb, off))
    events.append(rx.EndOfStream())
    return events


def _packet_samples(oracle: Oracle, pkt: bytes, rate: int) -> int:
    fn = oracle._lib["opus_packet_get_nb_samples"]
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
    n = fn(pkt, len(pkt), rate)
    if n <= 0:
        raise ValueError(f"opus_packet_get_nb_samples failed ({n})")
    return n


def decode_like_opus_demo(
    oracle: Oracle,
    packets: Sequence[bytes],
    lost: Iterable[int],
    rate: int,
    *,
    policy: rx.Policy | None = None,
    depth: int = 0,
    complexity: int = 0,
) -> tuple[np.ndarray, list[rx.Action]]:
    """Receiver + libopus decoder over ``packets`` and ``lost``: the PCM and the actions."""
    policy = policy or opus_demo_policy(oracle)
    events = packet_events(oracle, packets, lost, rate)
    r = rx.Receiver(policy, rate=rate, depth=depth)
    actions: list[rx.Action] = []
    with LibopusExecutor(oracle, rate, complexity=complexity) as ex:
        for e in events:
            for a in r.send(e):
                actions.append(a)
                ex.execute(a, packets)
        return ex.pcm(), actions


def write_loss_file(path: Path, lost: Iterable[int]) -> None:
    """opus_demo's ``-lossfile``: one integer per packet, read with ``fscanf("%d")``."""
    Path(path).write_text("".join(f"{int(x)}\n" for x in lost))


def run_opus_demo(
    build_dir: Path,
    packets: Sequence[bytes],
    lost: Iterable[int] | None,
    rate: int,
    *,
    final_ranges: Sequence[int] | None = None,
    complexity: int = 0,
    extra: Sequence[str] = (),
) -> np.ndarray:
    """``opus_demo -d <rate> 1 [-lossfile F] [-dec_complexity C] in.bit out.pcm``; the int16 output.
    Final ranges default to 0, which disables opus_demo's range check."""
    exe = Path(build_dir) / "opus_demo"
    rngs = list(final_ranges) if final_ranges is not None else [0] * len(packets)
    with tempfile.TemporaryDirectory(prefix="opus-dred-rx-") as td:
        t = Path(td)
        (t / "in.bit").write_bytes(write_opus_demo_bit(list(zip(packets, rngs))))
        cmd = [str(exe), "-d", str(rate), "1", "-dec_complexity", str(complexity), *extra]
        if lost is not None:
            write_loss_file(t / "loss.txt", lost)
            cmd += ["-lossfile", str(t / "loss.txt")]
        cmd += [str(t / "in.bit"), str(t / "out.pcm")]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f"opus_demo failed ({p.returncode}): {p.stderr[-2000:]}")
        return np.frombuffer((t / "out.pcm").read_bytes(), dtype="<i2").astype(np.int16)
