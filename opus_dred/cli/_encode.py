"""``opus-dred encode``: a mono WAV file -> an opus_demo ``.bit`` stream whose DRED is the reference encoder's.

The Opus frames come from libopus (the oracle build named like the profile), encoded with DRED off at the
bitrate left once DRED has taken its share (:func:`~opus_dred.bitstream._budget.compute_dred_bitrate`, as
``src/opus_encoder.c:opus_encode_native`` subtracts it), application voip, complexity 10. The DRED payloads
come from the reference's :class:`~opus_dred.refimpl._dred_encoder.DredEncoder`, fed the same PCM frame by
frame (``dred_compute_latents``) and coded with the budget libopus' encoder would give it
(:func:`~opus_dred.bitstream._budget.dred_chunks`, :func:`~opus_dred.bitstream._budget.dred_max_bytes`), then
put in each packet's padding by :func:`~opus_dred.bitstream._dred_encode.attach_dred`. ``--dred-only`` writes a
DRED-only stream instead (the records ``opus-dred decode`` and ``inspect`` read, libopus' ``fargan_demo
-dred-decoding`` format): per Opus frame, the initial state and the latents the payload would carry, all at
level ``q0``, with no byte budget.

The networks run over the whole file at once (the 16 kHz conversion, the feature frames and the RDO-VAE
encoder are causal, so computing them ahead and handing them to the streaming encoder in order gives what the
streaming encoder computes); the per-frame part is the buffers, offsets, quantizer and range coder.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import typer

from opus_dred.bitstream._arith import latent_coverage_ms
from opus_dred.bitstream._budget import compute_dred_bitrate, dred_chunks, dred_max_bytes
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._dred_encode import (
    DredSettingsError,
    attach_dred,
    check_settings,
    dred_chunks_for_duration,
    plan_dred_frame,
)
from opus_dred.bitstream._dredstream import write_stream_record
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._formats import (
    DRED_STREAM_MAX_CHUNKS,
    OPUS_DEMO_MAX_PACKET,
    read_opus_demo_bit,
    write_dred_stream,
    write_ogg_opus,
    write_opus_demo_bit,
)
from opus_dred.bitstream._packet import parse_packet, write_packet
from opus_dred.bitstream._wav import WavAudio, read_wav
from opus_dred.cli._inspect import format_error
from opus_dred.errors import OpusDredError
from opus_dred.refimpl._encode import kernels_for, reference_frontend

#: profiles with a libopus build to take the Opus frames from, oldest first (the last is the default)
PROFILES = ("libopus-1.5.2", "libopus-1.6.1")
#: ``--frame-ms`` values (the frame sizes ``opus_demo`` encodes that DRED's 20 ms steps divide or fill)
FRAME_MS = (10, 20, 40, 60)
#: the reference's numerics presets (``opus_dred.refimpl._decode.NUMERICS``); the default is this CPU's
NUMERICS = ("libopus-avx2", "libopus-avx2-intel", "libopus-avx2-host", "libopus-sse2", "libopus-sse2-intel",
            "libopus-sse2-host", "libopus-c", "float")
DEFAULT_NUMERICS = "libopus-avx2-host"
#: ``OPUS_SET_BITRATE``'s useful range (b/s) and ``OPUS_SET_PACKET_LOSS_PERC``'s
BITRATE_RANGE = (500, 512000)
LOSS_RANGE = (0, 100)
#: latents a DRED-only record holds at most (``fargan_demo``: 50 chunks of 20 ms, two per latent)
DRED_ONLY_MAX_LATENTS = DRED_STREAM_MAX_CHUNKS // 2


def _version(profile: str) -> str:
    """The libopus generation whose bit conversions the budget follows (``"1.5"`` or ``"1.6"``)."""
    return "1.5" if profile.startswith("libopus-1.5") else "1.6"


def cbr_bytes(bitrate: int, fs: int, frame_size: int, version: str) -> int:
    """Bytes per packet in CBR (``opus_encode_native``, before DRED's share is taken): 1.6.x rounds
    ``bitrate_to_bits + 4`` down to bytes, 1.5.x rounds ``bitrate * 12 / 8`` over 12 frames' rate."""
    if version == "1.5":
        rate12 = 12 * fs // frame_size
        return min((12 * bitrate // 8 + rate12 // 2) // rate12, 1276)
    bits = bitrate * 6 // (6 * fs // frame_size)
    return min((bits + 4) // 8, 1276)


def _bitrate_of(nbytes: int, fs: int, frame_size: int, version: str) -> int:
    """The bitrate ``opus_encode_native`` sets from the CBR size (``bits_to_bitrate``, 1.5.x's ``* rate12 / 12``)."""
    if version == "1.5":
        return nbytes * (12 * fs // frame_size) * 8 // 12
    return nbytes * 8 * (6 * fs // frame_size) // 6


@dataclass(frozen=True)
class EncodeSettings:
    """Everything one encoding uses, as decided from the options and the input's rate.

    ``opus_bitrate`` is what libopus encodes the Opus frames at (``bitrate`` less ``dred_bitrate``);
    ``max_chunks`` is the cap on latent chunks per payload; ``sends`` whether libopus' encoder would attach
    DRED at all with this budget (VBR: at least one chunk fits); ``*_from`` say whether ``q0``/``dq``/``qmax``
    came from the budget or an option."""

    profile: str
    sample_rate: int
    frame_ms: int
    frame_size: int
    duration: int
    bitrate: int
    opus_bitrate: int
    dred_bitrate: int
    loss: int
    fec: bool
    cbr: bool
    packet_bytes: int | None
    q0: int
    dq: int
    qmax: int
    q0_from: str
    dq_from: str
    qmax_from: str
    target_chunks: int
    max_chunks: int
    sends: bool
    numerics: str
    dred_only: bool


def plan_settings(*, fs: int, profile: str = PROFILES[-1], duration: int = 100, q0: int | None = None,
                  dq: int | None = None, qmax: int | None = None, bitrate: int = 32000, loss: int = 20,
                  fec: bool = False, frame_ms: int = 20, cbr: bool = False, numerics: str = DEFAULT_NUMERICS,
                  dred_only: bool = False) -> EncodeSettings:
    """Check the options and derive the budget. Raises :class:`DredSettingsError` naming the parameter."""
    if profile not in PROFILES:
        raise DredSettingsError("profile", profile, f"must be one of {', '.join(PROFILES)}")
    if frame_ms not in FRAME_MS:
        raise DredSettingsError("frame_ms", frame_ms, f"must be one of {', '.join(map(str, FRAME_MS))}")
    if numerics not in NUMERICS:
        raise DredSettingsError("numerics", numerics, f"must be one of {', '.join(NUMERICS)}")
    if not BITRATE_RANGE[0] <= bitrate <= BITRATE_RANGE[1]:
        raise DredSettingsError("bitrate", bitrate, f"must be {BITRATE_RANGE[0]}..{BITRATE_RANGE[1]} b/s")
    if not LOSS_RANGE[0] <= loss <= LOSS_RANGE[1]:
        raise DredSettingsError("loss", loss, f"must be {LOSS_RANGE[0]}..{LOSS_RANGE[1]} (%)")
    if not 1 <= duration <= 104:
        raise DredSettingsError("duration", duration, "must be 1..104 (10 ms units)")
    chunks_asked = dred_chunks_for_duration(duration)
    version = _version(profile)
    frame_size = fs * frame_ms // 1000
    rate = bitrate
    nbytes = None
    if cbr:
        nbytes = cbr_bytes(bitrate, fs, frame_size, version)
        rate = _bitrate_of(nbytes, fs, frame_size, version)
    budget = compute_dred_bitrate(rate, fs=fs, frame_size=frame_size, duration=duration, loss_perc=loss,
                                  inband_fec=fec, version=version)
    eff_q0 = budget.q0 if q0 is None else q0
    eff_dq = budget.dq if dq is None else dq
    eff_qmax = budget.qmax if qmax is None else qmax
    check_settings(profile, eff_q0, eff_dq, eff_qmax)
    if dred_only:
        max_chunks, sends = min(chunks_asked, DRED_ONLY_MAX_LATENTS), True
    else:
        max_chunks = dred_chunks(duration, vbr=not cbr, target_chunks=budget.target_chunks)
        sends = budget.sends(vbr=not cbr) and max_chunks >= 1
    return EncodeSettings(
        profile=profile, sample_rate=fs, frame_ms=frame_ms, frame_size=frame_size, duration=duration,
        bitrate=rate, opus_bitrate=rate - budget.dred_bitrate, dred_bitrate=budget.dred_bitrate, loss=loss,
        fec=fec, cbr=cbr, packet_bytes=nbytes, q0=eff_q0, dq=eff_dq, qmax=eff_qmax,
        q0_from="budget" if q0 is None else "option", dq_from="budget" if dq is None else "option",
        qmax_from="budget" if qmax is None else "option", target_chunks=budget.target_chunks,
        max_chunks=max_chunks, sends=sends, numerics=numerics, dred_only=dred_only)


# -- the reference encoder, run ahead over the file ------------------------------------------------------


class _Served:
    """The three callables :class:`~opus_dred.refimpl._dred_encoder.DredEncoder` takes, handing out values
    computed ahead for the whole stream, in the order the streaming encoder asks for them. Each feature
    request is checked against the 16 kHz frame it was computed from."""

    def __init__(self, fs: int, x16: np.ndarray, frames16: np.ndarray, feats: np.ndarray, latents: np.ndarray,
                 states: np.ndarray) -> None:
        self.x16, self.fs = x16, fs
        self.frames16, self.feats, self.latents, self.states = frames16, feats, latents, states
        self._pos = self._frame = self._step = 0

    def to_16k(self, pcm: np.ndarray) -> np.ndarray:
        n16 = len(pcm) * 16000 // self.fs
        out = self.x16[self._pos:self._pos + n16]
        self._pos += n16
        return out

    def features(self, frame160: np.ndarray) -> np.ndarray:
        k = self._frame
        if not np.array_equal(np.asarray(frame160, np.float32), self.frames16[k]):
            raise RuntimeError(f"feature frame {k}: the encoder's input buffer is not the signal computed ahead")
        self._frame += 1
        return self.feats[k]

    def encoder_step(self, frames) -> tuple[np.ndarray, np.ndarray]:
        k = self._step
        self._step += 1
        return self.latents[k], self.states[k]


# -- the encoding ---------------------------------------------------------------------------------------


@dataclass
class EncodeResult:
    """The output file's bytes and, per packet (per record with ``--dred-only``), what its DRED holds."""

    data: bytes
    settings: EncodeSettings
    frames: int
    dred_bytes: list = field(default_factory=list)
    chunks: list = field(default_factory=list)

    def summary(self, **extra) -> dict:
        n = len(self.dred_bytes)
        carrying = [i for i, b in enumerate(self.dred_bytes) if b > 0]
        cov = [latent_coverage_ms(c) for c in self.chunks]
        return {
            **extra,
            "format": "dred" if self.settings.dred_only else "bit",
            "frames": self.frames,
            "packets": n,
            "dred_packets": len(carrying),
            "dred_bytes_total": int(sum(self.dred_bytes)),
            "dred_bytes_mean": (sum(self.dred_bytes[i] for i in carrying) / len(carrying)) if carrying else 0.0,
            "chunks_mean": (sum(self.chunks[i] for i in carrying) / len(carrying)) if carrying else 0.0,
            "coverage_ms_mean": (sum(cov[i] for i in carrying) / len(carrying)) if carrying else 0.0,
            "dred_bytes": list(map(int, self.dred_bytes)),
            "chunks": list(map(int, self.chunks)),
            "coverage_ms": cov,
            "settings": asdict(self.settings),
        }


def _padded_frames(pcm: np.ndarray, frame_size: int) -> np.ndarray:
    """The input as whole frames, the last one zero-padded (as ``Oracle.encode`` pads it)."""
    n = -(-pcm.shape[0] // frame_size)
    buf = np.zeros(n * frame_size, np.int16)
    buf[:pcm.shape[0]] = pcm
    return buf.reshape(n, frame_size)


def _plain(packet: bytes) -> bytes:
    """A packet without its padding (the packet libopus' encoder has before DRED and CBR padding)."""
    pkt = parse_packet(packet)
    if not pkt.padding and pkt.padding_offset is None:
        return packet
    return write_packet(pkt.toc, pkt.frames)


def encode_audio(audio: WavAudio, settings: EncodeSettings, *, progress=None) -> EncodeResult:
    """Encode ``audio`` (see the module docstring). ``progress(done, total)`` is called once per frame."""
    from opus_dred.refimpl._decode import _numerics  # lazy: loads JAX
    from opus_dred.refimpl._dred_encoder import DredEncoder  # lazy: loads JAX

    s = settings
    fs, frame = s.sample_rate, s.frame_size
    frames = _padded_frames(audio.pcm, frame)
    pcm_f = frames.astype(np.float32) / np.float32(32768.0)
    num = _numerics(s.numerics)
    fr = reference_frontend(pcm_f[None], fs, s.profile, num, kernels=kernels_for(s.numerics))
    served = _Served(fs, fr.x16[0], fr.frames16[0], fr.features[0], fr.latents[0], fr.states[0])
    dred = DredEncoder(s.profile, fs, numerics=num, to_16k=served.to_16k,
                       features=served.features, encoder_step=served.encoder_step)
    opus = None
    if not s.dred_only:
        from opus_dred.libopus._oracle import Oracle  # lazy: loads the libopus build

        opus = Oracle.for_build(s.profile).encode(
            frames.reshape(-1), fs=fs, bitrate=s.opus_bitrate, frame_ms=s.frame_ms, complexity=10,
            dred_duration=0, loss_perc=s.loss, lbrr=s.fec, vbr=not s.cbr, application="voip")
    delay = fs // 250  # the encoder's look-ahead (delay_compensation, 4 ms), ``total_buffer`` for voip
    res = EncodeResult(b"", s, len(frames))
    out = []
    for i, x in enumerate(pcm_f):
        dred.push(x, extra_delay=delay)
        if s.dred_only:
            plan = plan_dred_frame(s.profile, q0=s.q0, dq=s.dq, qmax=s.qmax, dred_offset=dred.dred_offset,
                                   latents_buffer_fill=dred.latents_buffer_fill, latent_offset=dred.latent_offset,
                                   last_extra_dred_offset=dred.last_extra_dred_offset, max_chunks=s.max_chunks)
            if plan.chunks:
                sq, lq = dred.quantized(s.q0)
                rec = write_stream_record(sq[plan.latent_offset], lq[s.q0, list(plan.chunks)], s.q0, s.profile)
                out.append(rec)
                res.dred_bytes.append(len(rec.data))
                res.chunks.append(len(plan.chunks))
        else:
            e = opus[i]
            plain = _plain(e.data)
            max_data = s.packet_bytes if s.cbr else OPUS_DEMO_MAX_PACKET
            max_bytes = dred_max_bytes(max_data, len(plain)) if s.sends else 0
            payload = b""
            if max_bytes > 0:
                payload = dred.payload(q0=s.q0, dq=s.dq, qmax=s.qmax, max_chunks=s.max_chunks, max_bytes=max_bytes)
            pkt = attach_dred(plain, payload, s.profile, pad_to=s.packet_bytes) if (payload or s.cbr) else e.data
            out.append((pkt, e.final_range))
            res.dred_bytes.append(len(payload))
            res.chunks.append(read_dred_payload(payload, s.profile).nb_latents if payload else 0)
        if progress is not None:
            progress(i + 1, len(pcm_f))
    res.data = write_dred_stream(out) if s.dred_only else write_opus_demo_bit(out)
    return res


#: output names written as Ogg Opus
OGG_SUFFIXES = (".opus", ".ogg", ".oga")


def is_ogg_name(path: Path) -> bool:
    return path.suffix.lower() in OGG_SUFFIXES


def ogg_of(bit: bytes, fs: int, n_samples: int) -> bytes:
    """The packets of an opus_demo ``.bit`` stream as Ogg Opus (RFC 7845): mono, the input rate in OpusHead,
    pre-skip the encoder's look-ahead at 48 kHz (``Fs/400 + Fs/250`` for voip, OPUS_GET_LOOKAHEAD: 312), each
    page's granule position the samples at 48 kHz of the packets so far, the last one trimmed to the pre-skip
    plus the input's length (RFC 7845 §4.5)."""
    packets = [r.data for r in read_opus_demo_bit(bit)]
    durations = [parse_packet(p).duration_48k for p in packets]
    pre_skip = 48000 // 400 + 48000 // 250
    end = min(sum(durations), pre_skip + n_samples * 48000 // fs)
    end = max(end, sum(durations) - (durations[-1] if durations else 0))
    return write_ogg_opus(None, packets, durations, channels=1, input_sample_rate=fs, pre_skip=pre_skip,
                          vendor="opus-dred encode", end_granule=end if packets else None)


def _fail(exc: OpusDredError):
    """A typed error on stderr, exit status 2 (as ``decode`` and ``inspect``)."""
    msg = format_error(exc.to_dict()) if isinstance(exc, BitstreamError) else f"{type(exc).__name__}: {exc}"
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def encode(
    file: Path = typer.Argument(..., help="A mono 16-bit PCM WAV file at 8, 12, 16, 24 or 48 kHz."),
    out: Path = typer.Option(..., "--out", "-o", help="The opus_demo .bit file (or DRED-only stream) to write; a .opus, .ogg or .oga name writes Ogg Opus (RFC 7845)."),
    profile: str = typer.Option(PROFILES[-1], "--profile", "-p", help=f"{' | '.join(PROFILES)}; the libopus build of the same name encodes the Opus frames."),
    duration: int = typer.Option(100, "--duration", help="DRED duration in 10 ms frames, 1..104 (OPUS_SET_DRED_DURATION)."),
    q0: int | None = typer.Option(None, "--q0", help="First quantizer level, 0..15 (default: libopus' choice for --bitrate)."),
    dq: int | None = typer.Option(None, "--dq", help="Quantizer step, 0..7 (default: libopus' choice)."),
    qmax: int | None = typer.Option(None, "--qmax", help="Coarsest quantizer level, q0..15 (default: 15)."),
    bitrate: int = typer.Option(32000, "--bitrate", help="Total bitrate in b/s; DRED's share is taken from it."),
    loss: int = typer.Option(20, "--loss", help="Expected packet loss in % (OPUS_SET_PACKET_LOSS_PERC); drives DRED's share."),
    fec: bool = typer.Option(False, "--fec/--no-fec", help="In-band FEC (LBRR) on, as libopus' budget counts it."),
    frame_ms: int = typer.Option(20, "--frame-ms", help="Opus frame size in ms: 10, 20, 40 or 60."),
    cbr: bool = typer.Option(False, "--cbr", help="Constant bitrate: every packet padded to the CBR size, DRED in the slack."),
    numerics: str = typer.Option(DEFAULT_NUMERICS, "--numerics", help=f"Reference arithmetic: {' | '.join(NUMERICS)} (default: this CPU's, as libopus runs here)."),
    dred_only: bool = typer.Option(False, "--dred-only", help="Write a DRED-only stream (fargan_demo -dred-decoding records) instead."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Encode a WAV file: Opus frames by libopus, DRED by the reference encoder, as an opus_demo .bit stream
    (or Ogg Opus for a .opus/.ogg/.oga name)."""
    if is_ogg_name(out) and dred_only:
        raise typer.BadParameter("a DRED-only stream has no Ogg mapping: name a .bit file", param_hint="--out")
    try:
        audio = read_wav(file)
    except OSError as exc:
        raise typer.BadParameter(f"{file}: {exc.strerror or exc}", param_hint="FILE") from None
    except OpusDredError as exc:
        _fail(exc)
    try:
        settings = plan_settings(fs=audio.sample_rate, profile=profile, duration=duration, q0=q0, dq=dq, qmax=qmax,
                                 bitrate=bitrate, loss=loss, fec=fec, frame_ms=frame_ms, cbr=cbr, numerics=numerics,
                                 dred_only=dred_only)
    except OpusDredError as exc:
        _fail(exc)
    show = not as_json and sys.stderr.isatty()
    if show:
        from rich.console import Console  # lazy: only on a terminal
        from rich.progress import Progress  # lazy: only on a terminal

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("encoding", total=-(-audio.pcm.shape[0] // settings.frame_size))
            res = encode_audio(audio, settings, progress=lambda done, total: bar.update(task, completed=done))
    else:
        res = encode_audio(audio, settings)
    if is_ogg_name(out):
        out.write_bytes(ogg_of(res.data, audio.sample_rate, audio.pcm.shape[0]))
    else:
        out.write_bytes(res.data)
    summary = res.summary(input=str(file), output=str(out), sample_rate=audio.sample_rate,
                          seconds=audio.duration_s, container="ogg" if is_ogg_name(out) else "opus_demo")
    if as_json:
        typer.echo(json.dumps(summary))
        return
    s = settings
    typer.echo(f"{out}: {summary['packets']} {'records' if s.dred_only else 'packets'}, "
               f"{summary['dred_packets']} with DRED, {summary['dred_bytes_total']} DRED bytes "
               f"({summary['dred_bytes_mean']:.1f} per packet, {summary['chunks_mean']:.1f} chunks, "
               f"{summary['coverage_ms_mean']:.0f} ms); {s.profile}, q0 {s.q0} dQ {s.dq} qmax {s.qmax}, "
               f"{s.bitrate} b/s of which DRED {s.dred_bitrate}" + ("" if s.sends else
                                                                      " (the budget sends no DRED: raise --loss)"))


def register(app: typer.Typer) -> None:
    app.command("encode")(encode)
