"""Drive libopus' decoder through the receiver's actions, and run opus_demo for comparison.

:class:`LibopusExecutor` executes :mod:`opus_dred.refimpl._receiver` actions with an ``OpusDecoder``
of one libopus build (through :mod:`opus_dred.libopus._oracle`), writing the PCM the way that
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

import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from opus_dred.bitstream._formats import write_opus_demo_bit
from opus_dred.libopus._oracle import DecodeResult, DredParse, Oracle, pcm24_to_16
from opus_dred.refimpl import _receiver as rx

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
        self.pcm24 = oracle.has_pcm24 if pcm24 is None else pcm24
        if self.pcm24 and not oracle.has_pcm24:
            raise ValueError(f"{oracle.build.name} has no opus_decode24")
        self._parses: dict[tuple[int, int | None], DredParse] = {}
        self.chunks: list[np.ndarray] = []
        self.returns: list[tuple[rx.Action, int]] = []  # each call's return value

    # -- libopus calls --------------------------------------------------------------------------

    def last_packet_duration(self) -> int:
        return self.dec.last_packet_duration

    def _emit(self, r: DecodeResult) -> int:
        if r.ret > 0:
            self.chunks.append(pcm24_to_16(r.pcm) if self.pcm24 else r.pcm.astype(np.int16))
        return r.ret

    def _decode(self, data: bytes | None, frame_size: int, fec: int) -> DecodeResult:
        return self.dec.decode_call(data, int(frame_size), fec=bool(fec), pcm24=self.pcm24)

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
            r = self._decode(packets[action.seq], _MAX_FRAME * self.rate // 48000, 0)
        elif isinstance(action, rx.Lbrr):
            r = self._decode(packets[action.seq], action.samples, 1)
        elif isinstance(action, rx.Plc):
            r = self._decode(None, action.samples, 0)
        elif isinstance(action, (rx.Dred, rx.DredPlc)):
            d = self.dred(action.seq, packets[action.seq], action.max_dred_samples)
            r = self.dec.dred_decode_call(d, int(action.offset_samples), int(action.samples), pcm24=self.pcm24)
        elif isinstance(action, rx.Drop):
            r = None
        else:
            raise TypeError(f"not a receiver action: {action!r}")
        n = 0 if r is None else self._emit(r)
        self.returns.append((action, n))
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
    n = oracle.packet_get_nb_samples(pkt, rate)
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
    opus_demo: Path | None = None,
) -> np.ndarray:
    """``opus_demo -d <rate> 1 [-lossfile F] [-dec_complexity C] in.bit out.pcm``; the int16 output.
    Final ranges default to 0, which disables opus_demo's range check. ``opus_demo`` names another
    binary than the build's (e.g. :func:`~opus_dred.libopus._oracle.build_lossgen_opus_demo`,
    which has ``-sim_loss``; pass ``lost=None`` and ``extra=["-sim_loss", "20"]``)."""
    exe = Path(opus_demo) if opus_demo is not None else Path(build_dir) / "opus_demo"
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
