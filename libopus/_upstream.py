"""The upstream manager: fetch, verify, unpack and build the pinned libopus releases.

The conformance suite measures opus-dred against libopus itself. This module gets libopus' sources
(pinned by the sha256 of the release tarball, whatever the file is called), unpacks each release
once, and builds it out of tree in two variants:

``default``
    ``--enable-dred --enable-deep-plc --with-pic --disable-doc``: run-time CPU detection, so the
    DNN code takes the AVX2/FMA path on a modern x86-64 CPU.
``generic``
    the same plus ``--disable-intrinsics --disable-rtcd``: plain C (SSE2 floating point on x86-64).

The two paths round differently, so the same DRED payload decodes to slightly different features;
the suite measures that spread and uses it as the tolerance a third implementation must meet.

Sources are tried in a fixed order (see :func:`fetch_release`): the cache, a file or folder the
user names (and ``$OPUS_DRED_LIBOPUS_SOURCES``), the distribution's source archive through
``apt-get source --download-only`` with a private sources list, then the official release URL.

Cache layout under :func:`~opus_dred.libopus._builds.cache_dir`::

    tarballs/<file>            verified release tarballs
    src/<release>/             one unpacked source tree per release (``.unpacked`` marks it complete)
    src/registered-<name>/     copies of registered sources (with model files added)
    build/<name>/              out-of-tree builds; ``build.json`` is written last, after success
    apt/                       private apt state (sources list, lists, package cache)
    registered.json            builds added with ``opus-dred upstream register``
    locks/                     one lock file per release and build

Extra programs (``opus_demo``, ``dred_compare`` ...) are kept: measured on the 2-core development
machine, a full build of 1.6.1 takes about 43 s with them and about 44 s without (within noise).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from opus_dred.bitstream._profiles import get_profile
from opus_dred.errors import OpusDredError
from opus_dred.libopus._builds import Build, cache_dir
from opus_dred.libopus._derive import Derivation, DeriveError, derive, remove_derived, write_derivation

Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


# --------------------------------------------------------------------------------------------------
# errors


class UpstreamError(OpusDredError):
    """Something the upstream manager could not do; the message says what and how to fix it."""


class UnknownBuildError(UpstreamError):
    """A build name that is neither pinned nor registered."""


class NotBuiltError(UpstreamError):
    """A known build that has not been built yet."""


class HashMismatchError(UpstreamError):
    """A tarball whose sha256 is not the pinned one."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        self.path, self.expected, self.actual = Path(path), expected, actual
        super().__init__(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}; the file was not used"
        )


class FetchError(UpstreamError):
    """No source gave a tarball with the pinned hash. ``attempts`` lists (source, why it failed)."""

    def __init__(self, release: str, attempts: list[tuple[str, str]]) -> None:
        self.release, self.attempts = release, attempts
        lines = "\n".join(f"  - {src}: {why}" for src, why in attempts)
        super().__init__(
            f"could not fetch libopus {release} (sha256 {PINS[release].sha256}); sources tried:\n{lines}\n"
            f"Hint: download the release tarball yourself and run "
            f"`opus-dred upstream fetch {release} --source PATH`."
        )


class BuildFailedError(UpstreamError):
    """configure, make or cmake failed; the message names the log file."""


class RegisterError(UpstreamError):
    """A source given to ``register`` that cannot be used."""


# --------------------------------------------------------------------------------------------------
# pins


@dataclass(frozen=True)
class Release:
    """A pinned libopus release.

    ``sha256`` pins the release tarball (the distribution's ``.orig`` tarball is that same file, or a
    recompression of it: the hash pins exactly the file named in ``tarball``). ``model_hash`` is the
    model-data hash that the release's git tag names in ``autogen.sh`` (release tarballs ship the model
    data and no ``autogen.sh``, so it is recorded here).
    """

    version: str
    tarball: str
    sha256: str
    dred_version: int
    model_hash: str
    #: other files of the same release that are accepted too, by sha256: the official
    #: ``opus-X.tar.gz`` where the distribution's orig tarball is a recompression of it
    also_accepted: tuple[str, ...] = ()

    def accepts(self, sha256: str) -> bool:
        """Whether a file with this sha256 is this release (the pinned file or an accepted twin)."""
        return sha256 == self.sha256 or sha256 in self.also_accepted

    @property
    def official_url(self) -> str:
        base = os.environ.get("OPUS_DRED_LIBOPUS_URL_BASE", "https://downloads.xiph.org/releases/opus/")
        return base.rstrip("/") + f"/opus-{self.version}.tar.gz"


PINS: dict[str, Release] = {
    "1.5.2": Release(
        "1.5.2",
        "opus_1.5.2.orig.tar.gz",
        "65c1d2f78b9f2fb20082c38cbe47c951ad5839345876e46941612ee87f9a7ce1",
        10,
        "735117b",
    ),
    "1.6.1": Release(
        "1.6.1",
        "opus_1.6.1.orig.tar.xz",
        "001ac615b9f8f8994b229ad2b1a5969ed12ab48b0d154d0af1016a5899cd6ba1",
        12,
        "a5177ec6fb7d15058e99e57029746100121f68e4890b1467d4094aa336b6013e",
        # the official release file opus-1.6.1.tar.gz (downloads.xiph.org's published checksum)
        also_accepted=("6ffcb593207be92584df15b32466ed64bbec99109f007c82205f0194572411a1",),
    ),
}

BASE_CONFIGURE_ARGS: tuple[str, ...] = ("--enable-dred", "--enable-deep-plc", "--with-pic", "--disable-doc")
VARIANT_ARGS: dict[str, tuple[str, ...]] = {
    "default": (),
    "generic": ("--disable-intrinsics", "--disable-rtcd"),
}
# model files a git checkout lacks; copied from a release with the same model hash
MODEL_GLOBS = ("dnn/*_data.c", "dnn/*_data.h", "dnn/dred_rdovae_constants.h")
TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tar.zst", ".tar")


def _pinned_builds() -> dict[str, tuple[str, str]]:
    out = {}
    for rel in PINS:
        for variant in VARIANT_ARGS:
            name = f"libopus-{rel}" + ("" if variant == "default" else f"-{variant}")
            out[name] = (rel, variant)
    return out


PINNED_BUILDS = _pinned_builds()
DEFAULT_BUILDS = list(PINNED_BUILDS)


def make_jobs() -> int:
    """``make -j`` value: ``$OPUS_DRED_MAKE_JOBS``, else 2 (the CI and development machines have 2 cores)."""
    try:
        return max(1, int(os.environ.get("OPUS_DRED_MAKE_JOBS", "2")))
    except ValueError:
        return 2


# --------------------------------------------------------------------------------------------------
# paths, locks, hashes


def tarball_dir() -> Path:
    return cache_dir() / "tarballs"


def source_dir(release: str) -> Path:
    return cache_dir() / "src" / release


def build_dir(name: str) -> Path:
    return cache_dir() / "build" / name


def apt_dir() -> Path:
    return cache_dir() / "apt"


def _registry_path() -> Path:
    return cache_dir() / "registered.json"


@contextlib.contextmanager
def _lock(key: str) -> Iterator[None]:
    """An exclusive inter-process lock, so that two processes never build the same tree at once."""
    d = cache_dir() / "locks"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"{key}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_tarball(p: Path) -> bool:
    return p.is_file() and p.name.endswith(TARBALL_SUFFIXES)


def _release(release: str) -> Release:
    try:
        return PINS[release]
    except KeyError:
        raise UpstreamError(f"unknown libopus release {release!r}; pinned: {', '.join(PINS)}") from None


# --------------------------------------------------------------------------------------------------
# fetching


def cached_tarball(release: str) -> Path | None:
    """The verified tarball of ``release`` in the cache, or ``None``."""
    pin = _release(release)
    d = tarball_dir()
    if not d.is_dir():
        return None
    for p in sorted(d.iterdir()):
        if _is_tarball(p) and release in p.name and pin.accepts(sha256_file(p)):
            return p
    return None


def _store(path: Path, release: str, *, move: bool = False) -> Path:
    """Copy (or move) a verified tarball into the cache, atomically."""
    d = tarball_dir()
    d.mkdir(parents=True, exist_ok=True)
    name = path.name if release in path.name else PINS[release].tarball
    dest = d / name
    tmp = d / f".{name}.part{os.getpid()}"
    if move:
        shutil.move(str(path), tmp)
    else:
        shutil.copyfile(path, tmp)
    os.replace(tmp, dest)
    return dest


def _search_dir(directory: Path, pin: Release) -> tuple[Path | None, str]:
    """Find a tarball with the pinned hash in a folder (not recursive). Returns (path, why-not)."""
    if not directory.is_dir():
        return None, "no such folder"
    seen = 0
    for p in sorted(directory.iterdir()):
        if _is_tarball(p):
            seen += 1
            if pin.accepts(sha256_file(p)):
                return p, ""
    return None, f"no tarball with the pinned hash among {seen} tarball(s)"


def _system_archive_uris() -> list[str]:
    """Archive URIs of the system's Debian entries: deb822 ``*.sources`` and one-line ``sources.list``."""
    uris: list[str] = []
    etc = Path(os.environ.get("OPUS_DRED_APT_ETC", "/etc/apt"))
    files = sorted((etc / "sources.list.d").glob("*.sources")) if (etc / "sources.list.d").is_dir() else []
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                uris.append(uri)
    one_line = [etc / "sources.list"]
    if (etc / "sources.list.d").is_dir():
        one_line += sorted((etc / "sources.list.d").glob("*.list"))
    for f in one_line:
        if not f.is_file():
            continue
        for line in f.read_text(errors="replace").splitlines():
            parts = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(parts) >= 3 and parts[0] in ("deb", "deb-src"):
                uris.append(parts[1])
    # the main Debian archive: path ending in /debian (not -security, -ports, third-party repos)
    debian = [u for u in uris if u.rstrip("/").endswith("/debian")]
    return list(dict.fromkeys(debian))


def _apt_opts(state: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={state / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", f"Dir::Cache={state / 'cache'}",
        "-o", "APT::Sandbox::User=root",
        "-q",
    ]


def apt_update(suites: Sequence[str] = ("trixie", "sid"), *, kind: str = "deb-src", timeout: int = 120) -> Path:
    """Write a private sources list for ``suites`` and run ``apt-get update`` on it. Returns the state dir.

    Only the system's archive URI is reused; the system's own lists and caches are not touched.
    """
    if shutil.which("apt-get") is None:
        raise UpstreamError("apt-get is not available")
    uris = _system_archive_uris()
    if not uris:
        raise UpstreamError("no Debian archive URI found in the system's apt configuration")
    state = apt_dir() / f"{kind}-{'-'.join(suites)}"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    lines = [f"{kind} [trusted=yes] {uris[0]} {s} main" for s in suites]
    (state / "sources.list").write_text("\n".join(lines) + "\n")
    r = subprocess.run(["apt-get", *_apt_opts(state), "update"], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or re.search(r"^(E:|Err:)", r.stdout + r.stderr, re.M):
        msg = " ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
        raise UpstreamError(f"apt-get update failed: {msg}")
    return state


def _deb_upstream_version(v: str) -> str:
    v = v.split(":", 1)[-1]
    if "-" in v:
        v = v.rsplit("-", 1)[0]
    return re.split(r"[+~]", v, maxsplit=1)[0]


def _fetch_apt(pin: Release, progress: Progress) -> Path:
    progress(f"apt: updating a private source list for libopus {pin.version}")
    state = apt_update()
    r = subprocess.run(
        ["apt-cache", *_apt_opts(state), "showsrc", "opus"], capture_output=True, text=True, timeout=60
    )
    versions = re.findall(r"^Version:\s*(\S+)", r.stdout, re.M)
    matching = [v for v in dict.fromkeys(versions) if _deb_upstream_version(v) == pin.version]
    if not matching:
        raise UpstreamError(f"no source package of opus {pin.version} (found: {', '.join(versions) or 'none'})")
    errors = []
    for rev in matching:
        progress(f"apt: downloading source package opus={rev}")
        with tempfile.TemporaryDirectory(dir=apt_dir()) as tmp:
            os.chmod(tmp, 0o755)
            r = subprocess.run(
                ["apt-get", *_apt_opts(state), "source", "--download-only", f"opus={rev}"],
                cwd=tmp, capture_output=True, text=True, timeout=300,
            )
            origs = [p for p in Path(tmp).iterdir() if ".orig.tar" in p.name and not p.name.endswith(".asc")]
            if r.returncode != 0 or not origs:
                errors.append(f"opus={rev}: " + " ".join((r.stderr or r.stdout).strip().splitlines()[-2:]))
                continue
            orig = origs[0]
            actual = sha256_file(orig)
            if not pin.accepts(actual):
                errors.append(str(HashMismatchError(orig, pin.sha256, actual)))
                continue
            return _store(orig, pin.version, move=True)
    raise UpstreamError("; ".join(errors))


def _fetch_url(pin: Release, progress: Progress, timeout: float = 15.0) -> Path:
    url = pin.official_url
    progress(f"downloading {url}")
    tarball_dir().mkdir(parents=True, exist_ok=True)
    fd, tmpname = tempfile.mkstemp(dir=tarball_dir(), prefix=".download-")
    tmp = Path(tmpname)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        actual = sha256_file(tmp)
        if not pin.accepts(actual):
            raise HashMismatchError(Path(url), pin.sha256, actual)
        dest = tarball_dir() / f"opus-{pin.version}.tar.gz"
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def fetch_release(
    release: str,
    source: Path | str | None = None,
    *,
    use_apt: bool | None = None,
    use_url: bool | None = None,
    progress: Progress = _quiet,
) -> Path:
    """Return the cached, verified tarball of a pinned release, fetching it first if needed.

    Sources, in order: (a) the cache; (b) ``source`` (a tarball, which must match the pin, else
    :class:`HashMismatchError`; or a folder searched by hash) and each folder of
    ``$OPUS_DRED_LIBOPUS_SOURCES`` (colon-separated); (c) the Debian source archive via
    ``apt-get source --download-only`` with a private sources list (skipped when ``use_apt`` is false
    or ``$OPUS_DRED_NO_APT`` is set); (d) the official release URL (skipped when ``use_url`` is false
    or ``$OPUS_DRED_NO_NETWORK`` is set; base overridable with ``$OPUS_DRED_LIBOPUS_URL_BASE``).
    Raises :class:`FetchError` naming every source tried and why it failed.
    """
    pin = _release(release)
    if use_apt is None:
        use_apt = not os.environ.get("OPUS_DRED_NO_APT")
    if use_url is None:
        use_url = not os.environ.get("OPUS_DRED_NO_NETWORK")
    attempts: list[tuple[str, str]] = []
    with _lock(f"fetch-{release}"):
        hit = cached_tarball(release)
        if hit is not None:
            return hit
        attempts.append((f"cache {tarball_dir()}", "no tarball with the pinned hash"))

        if source is not None:
            sp = Path(source).expanduser()
            if sp.is_file():
                actual = sha256_file(sp)
                if not pin.accepts(actual):
                    raise HashMismatchError(sp, pin.sha256, actual)
                progress(f"using {sp}")
                return _store(sp, release)
            hit, why = _search_dir(sp, pin)
            if hit is not None:
                progress(f"using {hit}")
                return _store(hit, release)
            attempts.append((f"--source {sp}", why))
        for d in filter(None, os.environ.get("OPUS_DRED_LIBOPUS_SOURCES", "").split(":")):
            hit, why = _search_dir(Path(d).expanduser(), pin)
            if hit is not None:
                progress(f"using {hit}")
                return _store(hit, release)
            attempts.append((f"OPUS_DRED_LIBOPUS_SOURCES folder {d}", why))
        if not os.environ.get("OPUS_DRED_LIBOPUS_SOURCES"):
            attempts.append(("OPUS_DRED_LIBOPUS_SOURCES", "not set"))

        if use_apt:
            try:
                return _fetch_apt(pin, progress)
            except (UpstreamError, OSError, subprocess.SubprocessError) as exc:
                attempts.append(("apt-get source (private deb-src list: trixie, sid)", str(exc)))
        else:
            attempts.append(("apt-get source", "disabled (OPUS_DRED_NO_APT or use_apt=False)"))

        if use_url:
            try:
                return _fetch_url(pin, progress)
            except HashMismatchError as exc:
                attempts.append((pin.official_url, str(exc)))
            except Exception as exc:  # network errors come in many types
                attempts.append((pin.official_url, f"{type(exc).__name__}: {exc}"))
        else:
            attempts.append((pin.official_url, "disabled (OPUS_DRED_NO_NETWORK or use_url=False)"))
    raise FetchError(release, attempts)


# --------------------------------------------------------------------------------------------------
# unpacking


def _extract(tarball: Path, dest: Path) -> None:
    """Unpack ``tarball`` into ``dest``, dropping the single top-level folder; atomic via rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        with tarfile.open(tarball) as tf:
            tf.extractall(tmp, filter="data")
        entries = [p for p in tmp.iterdir()]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_source(release: str, source: Path | str | None = None, progress: Progress = _quiet) -> Path:
    """The unpacked source tree of a pinned release, fetched and unpacked once."""
    d = source_dir(release)
    if (d / ".unpacked").is_file():
        return d
    tarball = fetch_release(release, source, progress=progress)
    with _lock(f"src-{release}"):
        if not (d / ".unpacked").is_file():
            progress(f"unpacking {tarball.name}")
            _extract(tarball, d)
            (d / ".unpacked").write_text(sha256_file(tarball) + "\n")
    return d


# --------------------------------------------------------------------------------------------------
# reading source facts


def read_dred_version(src: Path) -> int:
    """``DRED_EXPERIMENTAL_VERSION`` from ``dnn/dred_config.h``."""
    p = Path(src) / "dnn" / "dred_config.h"
    m = re.search(r"#\s*define\s+DRED_EXPERIMENTAL_VERSION\s+(\d+)", p.read_text()) if p.is_file() else None
    if not m:
        raise UpstreamError(f"no DRED_EXPERIMENTAL_VERSION in {p}")
    return int(m.group(1))


def read_model_hash(src: Path) -> str | None:
    """The model hash that ``autogen.sh`` passes to ``download_model.sh`` (git checkouts only)."""
    p = Path(src) / "autogen.sh"
    if not p.is_file():
        return None
    m = re.search(r"download_model\.sh\s+\"?([0-9a-fA-F]+)\"?", p.read_text())
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------------------
# registry of user-named implementations


def _load_registry() -> dict[str, dict]:
    p = _registry_path()
    return json.loads(p.read_text()) if p.is_file() else {}


def _save_registry(reg: dict[str, dict]) -> None:
    p = _registry_path()
    tmp = p.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(reg, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, p)


def known_builds() -> list[str]:
    """Every build name: the four pinned builds, then registered ones."""
    return DEFAULT_BUILDS + sorted(n for n in _load_registry() if n not in PINNED_BUILDS)


def _spec(name: str) -> dict:
    """What a build is made of: release, variant, configure args, source dir."""
    if name in PINNED_BUILDS:
        rel, variant = PINNED_BUILDS[name]
        return {
            "name": name, "release": rel, "variant": variant, "registered": False,
            "sha256": PINS[rel].sha256, "source_dir": str(source_dir(rel)),
            "configure_args": list(BASE_CONFIGURE_ARGS + VARIANT_ARGS[variant]),
            "dred_version": PINS[rel].dred_version, "model_hash": PINS[rel].model_hash,
            "profile": f"libopus-{rel}",
        }
    reg = _load_registry()
    if name in reg:
        return dict(reg[name], name=name, registered=True)
    raise UnknownBuildError(f"unknown build {name!r}; known: {', '.join(known_builds())}")


# --------------------------------------------------------------------------------------------------
# building


def _is_built(name: str) -> Build | None:
    p = build_dir(name) / "build.json"
    if not p.is_file():
        return None
    try:
        b = Build.load(p)
    except (ValueError, TypeError, KeyError):
        return None
    return b if b.static_lib.is_file() else None


def get_build(name: str) -> Build:
    """The :class:`Build` of a finished build; :class:`NotBuiltError` if it is not built."""
    spec = _spec(name)
    b = _is_built(name)
    if b is None:
        hint = (f"opus-dred upstream build {name}" if not spec["registered"]
                else f"opus-dred upstream register {name} {spec.get('origin', 'PATH')}")
        raise NotBuiltError(f"libopus build {name!r} is not built (no {build_dir(name) / 'build.json'}); run `{hint}`")
    return b


def _run_logged(cmd: list[str], cwd: Path, log: Path, what: str, env: dict | None = None) -> None:
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        r = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise BuildFailedError(f"{what} failed (exit {r.returncode}); log: {log}\n{tail}")


def _build_autotools(src: Path, bdir: Path, args: Sequence[str], progress: Progress, log: Path) -> Path:
    progress("configure")
    _run_logged([str(src / "configure"), *args], bdir, log, "configure")
    progress(f"make -j{make_jobs()}")
    _run_logged(["make", f"-j{make_jobs()}"], bdir, log, "make")
    return bdir / ".libs" / "libopus.a"


def _cmake_options(src: Path) -> set[str]:
    text = (src / "CMakeLists.txt").read_text(errors="replace")
    return set(re.findall(r"\b(OPUS_[A-Z0-9_]+)\b", text))


def _build_cmake(src: Path, bdir: Path, variant: str, progress: Progress, log: Path) -> tuple[Path, list[str]]:
    names = _cmake_options(src)
    want = {
        "OPUS_DRED": "ON", "OPUS_DEEP_PLC": "ON", "OPUS_BUILD_PROGRAMS": "ON",
        "OPUS_BUILD_SHARED_LIBRARY": "OFF", "OPUS_BUILD_TESTING": "OFF",
    }
    if variant == "generic":
        want["OPUS_DISABLE_INTRINSICS"] = "ON"
    args = ["-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
            "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"]
    args += [f"-D{k}={v}" for k, v in want.items() if k in names]
    if "OPUS_DRED" not in names:
        raise BuildFailedError(f"{src / 'CMakeLists.txt'} has no OPUS_DRED option")
    progress("cmake configure")
    _run_logged(["cmake", "-S", str(src), "-B", str(bdir), *args], bdir, log, "cmake configure")
    progress(f"cmake build -j{make_jobs()}")
    _run_logged(["cmake", "--build", str(bdir), "-j", str(make_jobs())], bdir, log, "cmake build")
    _write_config_h(bdir)
    return bdir / "libopus.a", args


def _write_config_h(bdir: Path) -> None:
    """CMake passes libopus' configuration as ``-D`` flags (its ``config.h`` holds almost nothing);
    append the same definitions to ``config.h`` so that code compiled against the internal headers
    sees the library's configuration, as it does with an autotools ``config.h``."""
    cc = bdir / "compile_commands.json"
    cfg = bdir / "config.h"
    marker = "/* opus-dred: definitions cmake passed on the command line */"
    existing = cfg.read_text() if cfg.is_file() else ""
    if not cc.is_file() or marker in existing:
        return
    skip = {"HAVE_CONFIG_H", "OPUS_BUILD", "_FORTIFY_SOURCE", "NDEBUG"}
    for entry in json.loads(cc.read_text()):
        if entry["file"].endswith("src/opus_decoder.c"):
            cmd = entry.get("command") or " ".join(entry.get("arguments", []))
            lines = [existing.rstrip("\n"), marker]
            for k, v in re.findall(r"(?:^|\s)-D([A-Za-z_][A-Za-z0-9_]*)(?:=(\S+))?", cmd):
                if k not in skip:
                    lines.append(f"#ifndef {k}\n#define {k} {v.strip(chr(34)) if v else 1}\n#endif")
            cfg.write_text("\n".join(lines).lstrip("\n") + "\n")
            return


def ensure_build(name: str, progress: Progress = _quiet, *, source: Path | str | None = None) -> Build:
    """Build ``name`` unless it is built already (then return at once; nothing is rebuilt)."""
    b = _is_built(name)
    if b is not None:
        return b
    spec = _spec(name)
    with _lock(f"build-{name}"):
        b = _is_built(name)
        if b is not None:
            return b
        if spec["registered"]:
            src = Path(spec["source_dir"])
            if not src.is_dir():
                raise NotBuiltError(f"source of registered build {name!r} is missing ({src}); register it again")
        else:
            src = ensure_source(spec["release"], source, progress)
        bdir = build_dir(name)
        if bdir.exists():
            shutil.rmtree(bdir)  # an unfinished build: start clean
        bdir.mkdir(parents=True)
        log = bdir / "build.log"
        t0 = time.monotonic()
        system = spec.get("build_system", "autotools")
        args = list(spec["configure_args"])
        if system == "cmake":
            lib, args = _build_cmake(src, bdir, spec["variant"], progress, log)
        else:
            lib = _build_autotools(src, bdir, args, progress, log)
        if not lib.is_file():
            raise BuildFailedError(f"build of {name} finished but {lib} is missing; log: {log}")
        build = Build(
            name=name, release=spec["release"], variant=spec["variant"], source_dir=src, build_dir=bdir,
            static_lib=lib, dred_version=read_dred_version(src),
            model_hash=read_model_hash(src) or spec.get("model_hash", ""),
            configure_args=tuple(args), build_system=system,
        )
        build.save(bdir / "build.json.part")
        os.replace(bdir / "build.json.part", bdir / "build.json")
        progress(f"built {name} in {time.monotonic() - t0:.0f} s")
        return build


def ensure_all(names: Sequence[str] | None = None, progress: Progress = _quiet) -> list[Build]:
    """Build every pinned build (or ``names``); returns their records."""
    return [ensure_build(n, progress) for n in (names or DEFAULT_BUILDS)]


def status(name: str) -> dict:
    """State of one build: ``missing`` (no sources), ``fetched`` (sources, not built) or ``built``."""
    spec = _spec(name)
    b = _is_built(name)
    if b is not None:
        state = "built"
    elif spec["registered"]:
        state = "fetched" if Path(spec["source_dir"]).is_dir() else "missing"
    else:
        rel = spec["release"]
        state = "fetched" if (source_dir(rel) / ".unpacked").is_file() or cached_tarball(rel) else "missing"
    bdir = build_dir(name)
    return {
        "name": name,
        "release": spec["release"],
        "variant": spec["variant"],
        "registered": spec["registered"],
        "sha256": spec.get("sha256", ""),
        "state": state,
        "dred_version": b.dred_version if b else spec.get("dred_version"),
        "model_hash": b.model_hash if b else spec.get("model_hash", ""),
        "source_dir": str(b.source_dir if b else spec["source_dir"]),
        "build_dir": str(bdir),
        "static_lib": str(b.static_lib) if b else None,
        "opus_demo": str(bdir / "opus_demo") if (bdir / "opus_demo").is_file() else None,
        "build_system": b.build_system if b else spec.get("build_system", "autotools"),
        "profile": spec.get("profile"),
        "profile_error": spec.get("profile_error"),
    }


# --------------------------------------------------------------------------------------------------
# registering other implementations


def _release_of_model(model_hash: str) -> str | None:
    """The pinned release whose model hash is ``model_hash`` (a prefix of it for a short hash)."""
    for rel, pin in PINS.items():
        if pin.model_hash == model_hash or (len(model_hash) < 64 and pin.model_hash.startswith(model_hash)):
            return rel
    return None


def _copy_models(src: Path, model_hash: str, progress: Progress) -> str:
    """Copy the model data files of the pinned release whose model hash is ``model_hash``."""
    rel = _release_of_model(model_hash)
    if rel is not None:
        rsrc = ensure_source(rel, progress=progress)
        n = 0
        for pattern in MODEL_GLOBS:
            for f in rsrc.glob(pattern):
                dest = src / f.relative_to(rsrc)
                if not dest.exists():
                    shutil.copy2(f, dest)
                    n += 1
        progress(f"copied {n} model file(s) from libopus {rel}")
        return rel
    known = ", ".join(f"{r}: {p.model_hash}" for r, p in PINS.items())
    raise RegisterError(f"model hash {model_hash} of the source matches no pinned release ({known}); "
                        f"add its model files (dnn/*_data.c, dnn/*_data.h, dnn/dred_rdovae_constants.h) first")


def derive_source(path: Path | str, *, name: str | None = None, chunk_bound: str | None = None,
                  progress: Progress = _quiet) -> Derivation:
    """:func:`opus_dred.libopus._derive.derive` on any libopus source: a folder (a release tree, a git checkout,
    a draft's reference tree) or a tarball (unpacked into a temporary folder). A tree without its model files
    takes them from the pinned release whose model hash its ``autogen.sh`` names (fetched if need be)."""
    p = Path(path).expanduser().resolve()
    if p.is_file():
        with tempfile.TemporaryDirectory(prefix="opus-dred-derive-") as tmp:
            progress(f"unpacking {p.name}")
            tree = Path(tmp) / "tree"
            try:
                _extract(p, tree)
            except (tarfile.TarError, OSError) as exc:
                raise DeriveError(f"{p} is not a readable tarball: {exc}") from None
            return _derive_tree(tree, name, chunk_bound, str(p), progress)
    if not p.is_dir():
        raise DeriveError(f"{p} is neither a folder nor a tarball")
    return _derive_tree(p, name, chunk_bound, str(p), progress)


def _derive_tree(tree: Path, name: str | None, chunk_bound: str | None, origin: str, progress: Progress) -> Derivation:
    model_tree = None
    if not (tree / "dnn" / "dred_rdovae_dec_data.c").is_file():
        mh = read_model_hash(tree)
        rel = _release_of_model(mh) if mh else None
        if rel is None:
            known = ", ".join(f"{r}: {p.model_hash}" for r, p in PINS.items())
            raise DeriveError(f"the tree has no model files and its model hash {mh or '(none in autogen.sh)'} "
                              f"matches no pinned release ({known}); add its model files first",
                              file="dnn/dred_rdovae_dec_data.c")
        progress(f"model files of libopus {rel} (model hash {mh})")
        model_tree = ensure_source(rel, progress=progress)
    progress("reading the tree")
    return derive(tree, name=name, model_tree=model_tree, chunk_bound=chunk_bound, origin=origin)


def register(
    name: str,
    path: Path | str,
    *,
    label: str | None = None,
    variant: str = "default",
    build_system: str | None = None,
    build: bool = True,
    derive_profile: bool = True,
    progress: Progress = _quiet,
) -> Build | None:
    """Register a tarball or source folder (e.g. a libopus git checkout) as build ``name`` and build it
    (with ``build=False``, only prepare its sources; :func:`ensure_build` builds it later).

    The source is copied into the cache (a checkout's ``.git`` is left out). Missing model files are
    copied from the pinned release with the same model hash (read from ``autogen.sh``). Autotools is
    used when ``autoreconf`` is available or the source ships ``configure``; otherwise cmake.

    With ``derive_profile`` the tree's profile is derived (:func:`derive_source`) and written to the derived
    area under ``name`` (without a ``-generic`` suffix; for a tree equal to a packaged profile nothing is
    written); the registry records the profile's name (``profile``) or why it could not be derived
    (``profile_error``), and registration goes on either way.
    """
    if name in PINNED_BUILDS:
        raise RegisterError(f"{name!r} is a pinned build; choose another name")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
        raise RegisterError(f"invalid build name {name!r} (letters, digits, . _ + - only)")
    if variant not in VARIANT_ARGS:
        raise RegisterError(f"unknown variant {variant!r}; one of {', '.join(VARIANT_ARGS)}")
    p = Path(path).expanduser().resolve()
    src = cache_dir() / "src" / f"registered-{name}"
    with _lock(f"build-{name}"):
        if src.exists():
            shutil.rmtree(src)
        if p.is_file():
            progress(f"unpacking {p}")
            _extract(p, src)
            origin_hash = sha256_file(p)
        elif p.is_dir():
            progress(f"copying {p}")
            shutil.copytree(p, src, ignore=shutil.ignore_patterns(".git"), symlinks=True)
            origin_hash = ""
        else:
            raise RegisterError(f"{p} is neither a tarball nor a folder")
        if not (src / "dnn" / "dred_config.h").is_file():
            shutil.rmtree(src, ignore_errors=True)
            raise RegisterError(f"{p} does not look like a libopus source tree with DRED (no dnn/dred_config.h)")
        mh = read_model_hash(src)
        have_models = (src / "dnn" / "dred_rdovae_dec_data.c").is_file()
        models_from = None
        if not have_models:
            if not mh:
                raise RegisterError(f"{p} has no model files and no model hash in autogen.sh")
            models_from = _copy_models(src, mh, progress)
        if build_system is None:
            build_system = "autotools" if (src / "configure").is_file() or shutil.which("autoreconf") else "cmake"
        if build_system == "autotools" and not (src / "configure").is_file():
            progress("autoreconf")
            log = src / "autoreconf.log"
            _run_logged(["autoreconf", "-isf"], src, log, "autoreconf")
        version = label
        if version is None:
            pv = src / "package_version"
            m = re.search(r'PACKAGE_VERSION="([^"]+)"', pv.read_text()) if pv.is_file() else None
            version = m.group(1) if m else name
        reg = _load_registry()
        reg[name] = {
            "release": version, "variant": variant, "origin": str(p), "sha256": origin_hash,
            "source_dir": str(src), "build_system": build_system, "models_from": models_from,
            "configure_args": list(BASE_CONFIGURE_ARGS + VARIANT_ARGS[variant]) if build_system == "autotools" else [],
            "dred_version": read_dred_version(src), "model_hash": mh or "",
        }
        if derive_profile:
            reg[name].update(_register_profile(name, variant, src, str(p), progress))
        _save_registry(reg)
        bdir = build_dir(name)
        if bdir.exists():
            shutil.rmtree(bdir)
    return ensure_build(name, progress) if build else None


def _register_profile(name: str, variant: str, src: Path, origin: str, progress: Progress) -> dict:
    """Derive and write the profile of a registered tree: ``{"profile": name}`` (``profile_written``: whether a
    description was written, not for a packaged match) or ``{"profile_error": why}``."""
    pname = re.sub(r"-generic$", "", name) if variant == "generic" else name
    try:
        progress(f"deriving profile {pname}")
        d = derive(src, name=pname, origin=origin)
        out = write_derivation(d, force=True)
    except OpusDredError as exc:  # a tree registration accepts but a profile cannot be read from: say why
        progress(f"no profile derived: {exc}")
        return {"profile": None, "profile_error": str(exc)}
    if out["matches"]:
        progress(f"profile: the tree matches the packaged profile {out['matches']}")
        return {"profile": out["matches"], "profile_written": False}
    progress(f"profile {pname} written to {out['profile']}")
    return {"profile": pname, "profile_written": True}


def unregister(name: str) -> None:
    """Forget a registered build, delete its copies and the profile its registration wrote."""
    reg = _load_registry()
    if name not in reg:
        raise UnknownBuildError(f"{name!r} is not a registered build")
    with _lock(f"build-{name}"):
        shutil.rmtree(Path(reg[name]["source_dir"]), ignore_errors=True)
        shutil.rmtree(build_dir(name), ignore_errors=True)
        prof = reg[name].get("profile")
        others = [n for n, e in reg.items() if n != name and e.get("profile") == prof]
        if prof and reg[name].get("profile_written") and not others:
            remove_derived(prof)
        del reg[name]
        _save_registry(reg)


def build_for_profile(profile: str) -> str:
    """The libopus build whose encoder and parsers make the inputs of a profile's vectors: the build of the
    profile's name; else a registered build whose registration derived it; else the pinned default build of
    the packaged profile with the same DRED version; else the newest pinned release's default build."""
    names = known_builds()
    if profile in names:
        return profile
    for n, e in sorted(_load_registry().items()):
        if e.get("profile") == profile and e.get("variant", "default") == "default":
            return n
    try:
        version = get_profile(profile).dred_version
    except OpusDredError:
        version = None
    for rel, pin in sorted(PINS.items(), reverse=True):
        if pin.dred_version == version:
            return f"libopus-{rel}"
    return f"libopus-{max(PINS)}"


def source_for_pack(pack) -> Path | None:
    """The libopus source tree of a model pack's release as this manager has it: the source of the build
    ``libopus-<release>``, else its unpacked source tree; ``None`` if it has neither (nothing is fetched)."""
    release = pack.source.get("release")
    if not release:
        return None
    try:
        src = Path(get_build(f"libopus-{release}").source_dir)
        if src.is_dir():
            return src
    except OpusDredError:  # not built, or not pinned: try the unpacked tree
        pass
    try:
        d = Path(source_dir(release))
    except OpusDredError:
        return None
    return d if (d / ".unpacked").is_file() else None
