"""What a libopus build is, as the rest of opus-dred sees it.

The upstream manager (:mod:`opus_dred.libopus._upstream`) produces :class:`Build` records; the
oracle (:mod:`opus_dred.libopus._oracle`) compiles its C shim against one. Kept apart so that
neither module needs the other's internals.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Build:
    """One configured and compiled libopus tree.

    Attributes:
        name: the implementation's name, e.g. ``"libopus-1.6.1"`` or ``"libopus-1.6.1-generic"``.
        release: the libopus version it was built from (``"1.6.1"``), or a user label for a
            registered source (``"master"``).
        variant: ``"default"`` (run-time CPU detection, AVX2 on x86-64) or ``"generic"``
            (``--disable-intrinsics --disable-rtcd``).
        source_dir: the source tree (headers of ``src/``, ``celt/``, ``silk/``, ``dnn/``, ``include/``).
        build_dir: the build tree (holds ``config.h``).
        static_lib: ``libopus.a`` compiled as position-independent code.
        dred_version: ``DRED_EXPERIMENTAL_VERSION`` read from the source's ``dnn/dred_config.h``.
        model_hash: the model tarball hash named in the source's ``autogen.sh``.
        configure_args: the arguments given to configure (or cmake).
        build_system: ``"autotools"`` or ``"cmake"``.
    """

    name: str
    release: str
    variant: str
    source_dir: Path
    build_dir: Path
    static_lib: Path
    dred_version: int
    model_hash: str = ""
    configure_args: tuple[str, ...] = field(default_factory=tuple)
    build_system: str = "autotools"

    @property
    def include_dirs(self) -> list[Path]:
        """Directories to put on a C compiler's include path to use libopus' internal headers."""
        s = self.source_dir
        return [self.build_dir, s / "include", s / "src", s / "celt", s / "silk", s / "silk" / "float", s / "dnn"]

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("source_dir", "build_dir", "static_lib"):
            d[k] = str(d[k])
        d["configure_args"] = list(self.configure_args)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Build":
        d = dict(d)
        for k in ("source_dir", "build_dir", "static_lib"):
            d[k] = Path(d[k])
        d["configure_args"] = tuple(d.get("configure_args", ()))
        return cls(**d)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Build":
        return cls.from_json(json.loads(path.read_text()))


def cache_dir() -> Path:
    """The cache of fetched tarballs, builds, compiled shims and speech: ``$OPUS_DRED_CACHE`` if set,
    else the XDG cache directory (``~/.cache/opus-dred``)."""
    import os

    env = os.environ.get("OPUS_DRED_CACHE")
    if env:
        p = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        p = Path(user_cache_dir("opus-dred"))
    p.mkdir(parents=True, exist_ok=True)
    return p
