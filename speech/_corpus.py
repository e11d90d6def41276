"""A small corpus of real speech for the conformance suite, taken from Debian binary packages.

DRED carries a neural encoding of speech features; synthetic signals (tones, noise) exercise it
poorly, so vectors and metrics use recorded speech. The clips come from two packages, fetched with
``apt-get download`` and unpacked with ``dpkg-deb -x`` into ``cache_dir()/speech/<package>/``:

``pocketsphinx-testdata``
    CMU Sphinx test data: 16 kHz 16-bit mono PCM. Five LibriVox readings (one reader, *Sense and
    Sensibility*, chapter 1; LibriVox recordings are in the public domain), five "cards" utterances
    and three short command/number utterances. The package's copyright file puts all of it under
    BSD-2-Clause (Carnegie Mellon University). Its ``tidigits`` recording is **not** used: TIDIGITS is
    an LDC corpus under the LDC's own licence.
``codec2-examples``
    ``raw/speech_orig_16k.wav``, codec2's 16 kHz reference speech, LGPL-2.1 (David Rowe).

``asterisk-core-sounds-en-g722`` is not used: its prompts are G.722-coded and neither the Python
environment nor the machine has a G.722 decoder (see ``docs/speech.md``).

Each clip records the sha256 of its decoded 16-bit little-endian PCM at the native rate; loading
checks it, so a changed package is noticed instead of silently changing the suite.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from opus_dred.libopus._builds import cache_dir
from opus_dred.libopus._upstream import UpstreamError, _apt_opts, apt_update

from opus_dred.errors import OpusDredError


class SpeechError(OpusDredError):
    """The corpus could not be fetched or a clip could not be loaded."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str  # the version the hashes below were recorded from (Debian bookworm)
    licence: str


PACKAGES: dict[str, Package] = {
    "pocketsphinx-testdata": Package("pocketsphinx-testdata", "0.8+5prealpha+1-15", "BSD-2-Clause"),
    "codec2-examples": Package("codec2-examples", "1.0.5-1", "LGPL-2.1"),
}


@dataclass(frozen=True)
class Clip:
    """One speech clip.

    ``file`` is the path inside the package (several joined with ``+`` for a concatenation, in that
    order); ``pcm_sha256`` is the sha256 of the decoded int16 little-endian PCM at ``sample_rate``.
    """

    id: str
    package: str
    file: str
    licence: str
    speaker: str
    description: str
    duration_s: float
    sample_rate: int
    num_samples: int
    pcm_sha256: str

    @property
    def version(self) -> str:
        return PACKAGES[self.package].version

    @property
    def files(self) -> list[str]:
        return self.file.split("+")

    def to_json(self) -> dict:
        return dict(asdict(self), version=self.version)


_PS = "usr/share/pocketsphinx/test/data/"
_LV = _PS + "librivox/sense_and_sensibility_01_austen_64kb-0{}.wav"
_LV_SPK = "one LibriVox reader (Sense and Sensibility, ch. 1)"
_LV_LIC = "BSD-2-Clause (package); LibriVox recording in the public domain"
_PS_LIC = "BSD-2-Clause"


def _c(id, package, file, licence, speaker, description, n, sha) -> Clip:
    return Clip(id, package, file, licence, speaker, description, n / 16000, 16000, n, sha)


_CLIPS: list[Clip] = [
    _c("codec2-speech-orig-16k", "codec2-examples", "usr/share/codec2/raw/speech_orig_16k.wav", "LGPL-2.1",
       "unnamed speaker", "codec2's 16 kHz reference speech sample", 172800,
       "9a21d202d8dbfdc226af7da535f3213b76b8a612c013c53334e8f5f27047f648"),
    _c("ps-librivox-all", "pocketsphinx-testdata", "+".join(_LV.format(n) for n in (870, 880, 890, 920, 930)),
       _LV_LIC, _LV_SPK, "the five LibriVox utterances below, joined in order", 395680,
       "dbebfa8d5b02f849685416a5fccec4be524be16fdb8238fe82b70081d2b45714"),
    _c("ps-librivox-0870", "pocketsphinx-testdata", _LV.format(870), _LV_LIC, _LV_SPK,
       "'and mister john dashwood had then leisure to consider ...'", 113600,
       "d6ae5769a7bd5312d26213a382b5c0629d7e015a8290b91dfd51b15b0e249948"),
    _c("ps-librivox-0880", "pocketsphinx-testdata", _LV.format(880), _LV_LIC, _LV_SPK,
       "'he was not an ill disposed young man'", 47840,
       "0f8e7b446750517dfc5f444bccb67d2f65b05e2d2476d93600cee814f5791cc2"),
    _c("ps-librivox-0890", "pocketsphinx-testdata", _LV.format(890), _LV_LIC, _LV_SPK,
       "'unless to be rather cold hearted and rather selfish ...'", 84800,
       "f5db1acab6b8e07eba8bb5a240311e66fa47aa818a499cca8d6b3ffdc9d31f2d"),
    _c("ps-librivox-0920", "pocketsphinx-testdata", _LV.format(920), _LV_LIC, _LV_SPK,
       "'had he married a more amiable woman ...'", 96800,
       "ea5551d7cba0ace6a98a9875e2ed38791737699b1f5e81df71ae1eef4fd24606"),
    _c("ps-librivox-0930", "pocketsphinx-testdata", _LV.format(930), _LV_LIC, _LV_SPK,
       "'he might even have been made amiable himself'", 52640,
       "0faf49d5f7782e92c1600066445e2127069e6aa8cba0349715efcd3e9e0da401"),
    _c("ps-cards-001", "pocketsphinx-testdata", _PS + "cards/001.wav", _PS_LIC, "cards test speaker",
       "'ten of clubs'", 17526, "4e0a744ec43b16a4fda29e9ec703308005ccc5f447021c35189bb9e95b35a698"),
    _c("ps-cards-002", "pocketsphinx-testdata", _PS + "cards/002.wav", _PS_LIC, "cards test speaker",
       "'four queen of clubs'", 31364, "0685e12e91701219e16ba8dc34666269b66677c1f5162bd4a1cfde75dbe33173"),
    _c("ps-cards-003", "pocketsphinx-testdata", _PS + "cards/003.wav", _PS_LIC, "cards test speaker",
       "'seven of clubs'", 24611, "c6218d1c54d9692892bfb96c929c7c1e7abe6f3315ed5289c9c87f569e348208"),
    _c("ps-cards-004", "pocketsphinx-testdata", _PS + "cards/004.wav", _PS_LIC, "cards test speaker",
       "'five five'", 24864, "ca66f0840c7dc4b7441e3040c12d7ba89006d68a451d4b7746bbad51b41dad8b"),
    _c("ps-cards-005", "pocketsphinx-testdata", _PS + "cards/005.wav", _PS_LIC, "cards test speaker",
       "'eight of spades four of clubs seven of hearts'", 56040,
       "79591cddc710272c8288f998c90baccdf39ea867ef7ef3720e32fcda2757dee9"),
    _c("ps-goforward", "pocketsphinx-testdata", _PS + "goforward.raw", _PS_LIC, "pocketsphinx test speaker",
       "short command utterance (raw PCM)", 44580,
       "f15c60ec54059d8b66e410d0064945a0b0a04ea56e1ddca1958e493c0cf70e71"),
    _c("ps-numbers", "pocketsphinx-testdata", _PS + "numbers.raw", _PS_LIC, "pocketsphinx test speaker",
       "spoken numbers (raw PCM)", 64371, "45b5f6d3f88e36dd55b025cc9e8f1cae567583ea93f554ecdff6d09e6dd4577d"),
    _c("ps-something", "pocketsphinx-testdata", _PS + "something.raw", _PS_LIC, "pocketsphinx test speaker",
       "short utterance (raw PCM)", 47979, "eb95b74ce3f3037487e49dcfd935bbcf8c158b5f4083dd19451729c3ee694f5f"),
]
_BY_ID = {c.id: c for c in _CLIPS}

DEFAULT_CLIP = "codec2-speech-orig-16k"
RATES = (16000, 48000)


def list_clips() -> list[Clip]:
    """Every clip of the corpus (metadata only; nothing is fetched)."""
    return list(_CLIPS)


def get_clip(clip_id: str) -> Clip:
    try:
        return _BY_ID[clip_id]
    except KeyError:
        raise SpeechError(f"unknown speech clip {clip_id!r}; known: {', '.join(_BY_ID)}") from None


def speech_dir() -> Path:
    return cache_dir() / "speech"


def package_dir(package: str) -> Path:
    return speech_dir() / package


# --------------------------------------------------------------------------------------------------
# fetching


def _download_deb(package: str, dest: Path) -> Path:
    """``apt-get download`` the package into ``dest``: first with the system's lists, then with a private
    update of bookworm, trixie and sid binary lists under the cache. ``$OPUS_DRED_SPEECH_DEBS`` may
    name a folder holding the ``.deb`` already."""
    local = os.environ.get("OPUS_DRED_SPEECH_DEBS")
    if local:
        hits = sorted(Path(local).glob(f"{package}_*.deb"))
        if hits:
            return hits[-1]
    if shutil.which("apt-get") is None:
        raise SpeechError(f"cannot fetch {package}: apt-get is not available (or set OPUS_DRED_SPEECH_DEBS)")
    os.chmod(dest, 0o755)
    tries: list[str] = []
    # the version the hashes were recorded from first; any other version is then checked by hash
    specs = [f"{package}={PACKAGES[package].version}", package]

    def attempt(opts: list[str], where: str) -> Path | None:
        for spec in specs:
            r = subprocess.run(["apt-get", *opts, "download", spec], cwd=dest, capture_output=True,
                               text=True, timeout=300)
            debs = sorted(dest.glob(f"{package}_*.deb"))
            if r.returncode == 0 and debs:
                return debs[-1]
            tries.append(f"{where}, {spec}: {' '.join(r.stderr.strip().splitlines()[-1:])}")
        return None

    deb = attempt(["-q", "-o", "APT::Sandbox::User=root"], "system apt lists")
    if deb is not None:
        return deb

    try:
        state = apt_update(("bookworm", "trixie", "sid"), kind="deb")
        deb = attempt(_apt_opts(state), "private bookworm/trixie/sid lists")
        if deb is not None:
            return deb
    except (UpstreamError, OSError, subprocess.SubprocessError) as exc:
        tries.append(f"private bookworm/trixie/sid lists: {exc}")
    raise SpeechError(f"cannot download {package}: " + "; ".join(tries))


def ensure_package(package: str) -> Path:
    """Unpack ``package`` into the cache once; returns its folder (``.unpacked`` marks it complete)."""
    if package not in PACKAGES:
        raise SpeechError(f"unknown speech package {package!r}")
    d = package_dir(package)
    if (d / ".unpacked").is_file():
        return d
    speech_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=speech_dir(), prefix=".dl-") as tmp:
        deb = _download_deb(package, Path(tmp))
        staging = Path(tmp) / "root"
        r = subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SpeechError(f"dpkg-deb -x {deb.name} failed: {r.stderr.strip()}")
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                                 text=True).stdout.strip()
        (staging / ".unpacked").write_text(f"{deb.name}\n{version}\n")
        if d.exists():
            shutil.rmtree(d)
        os.replace(staging, d)
    return d


def ensure_corpus() -> dict[str, Path]:
    """Fetch and unpack every package of the corpus (once); returns their folders."""
    return {p: ensure_package(p) for p in PACKAGES}


def installed_version(package: str) -> str | None:
    """The version unpacked in the cache, or ``None``."""
    m = package_dir(package) / ".unpacked"
    if not m.is_file():
        return None
    lines = m.read_text().splitlines()
    return lines[1] if len(lines) > 1 else None


# --------------------------------------------------------------------------------------------------
# loading


def _read_pcm(path: Path) -> tuple[np.ndarray, int]:
    if path.suffix == ".raw":  # headerless 16 kHz s16le, as pocketsphinx ships them
        return np.fromfile(path, dtype="<i2").astype(np.int16), 16000
    try:
        with wave.open(str(path)) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise SpeechError(f"{path}: expected 16-bit mono PCM, got {w.getsampwidth() * 8}-bit "
                                  f"{w.getnchannels()} channel(s)")
            rate = w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    except (wave.Error, EOFError) as exc:
        raise SpeechError(f"{path}: not a readable WAV file ({exc})") from exc
    return data, rate


def _native(clip: Clip) -> np.ndarray:
    root = ensure_package(clip.package)
    parts = []
    for f in clip.files:
        p = root / f
        if not p.is_file():
            raise SpeechError(f"{clip.id}: {f} is missing from {clip.package} {installed_version(clip.package)}")
        x, rate = _read_pcm(p)
        if rate != clip.sample_rate:
            raise SpeechError(f"{clip.id}: {f} is {rate} Hz, expected {clip.sample_rate} Hz")
        parts.append(x)
    pcm = np.concatenate(parts)
    digest = hashlib.sha256(pcm.astype("<i2").tobytes()).hexdigest()
    if digest != clip.pcm_sha256:
        raise SpeechError(f"{clip.id}: decoded PCM has sha256 {digest}, expected {clip.pcm_sha256} "
                          f"(package {clip.package} {installed_version(clip.package)} differs from {clip.version})")
    return pcm


def load_clip(clip_id: str | None = None, rate: int = 16000) -> np.ndarray:
    """A clip as int16 mono samples at ``rate`` (16000 or 48000).

    ``None`` gives the default clip (:data:`DEFAULT_CLIP`, 10.8 s of real speech). 48 kHz is made
    with ``scipy.signal.resample_poly`` (factor 3), rounded and clipped to int16.
    """
    if rate not in RATES:
        raise SpeechError(f"unsupported rate {rate}; use one of {RATES}")
    clip = get_clip(clip_id or DEFAULT_CLIP)
    pcm = _native(clip)
    if rate == clip.sample_rate:
        return pcm
    from math import gcd

    from scipy.signal import resample_poly  # lazy: scipy is slow to import

    g = gcd(rate, clip.sample_rate)
    y = resample_poly(pcm.astype(np.float64), rate // g, clip.sample_rate // g)
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)
