"""``decode_dred``: from an Opus packet (or a DRED payload) to acoustic features.

The whole normative path of draft-ietf-mlcodec-opus-dred in one call: the bitstream layer finds the DRED
extension (``opus_dred.bitstream._extensions.find_dred``, libopus ``dred_find_payload``) and
entropy-decodes and dequantizes the payload (``opus_dred.bitstream._dred.read_dred_payload``, libopus
``dred_ec_decode``); the RDO-VAE decoder of :mod:`opus_dred.refimpl._rdovae` turns the initial state and the
latents into 20 features per 10 ms frame (libopus ``opus_dred_process`` → ``DRED_rdovae_decode_all``).

The result mirrors what libopus' ``opus_dred_parse`` (with processing) leaves in ``OpusDRED``: the features
in ``fec_features`` order (row ``4k + j`` is the ``j``-th newest 10 ms frame of latent ``k``, newest first),
``nb_latents``, ``dred_offset`` (2.5 ms units), and the function's return value and ``dred_end``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opus_dred.bitstream._dred import DredPayload, read_dred_payload
from opus_dred.bitstream._arith import latent_coverage_ms
from opus_dred.bitstream._errors import ProfileMismatchError
from opus_dred.bitstream._extensions import find_dred, foreign_dred, profile_for_dred_version
from opus_dred.bitstream._packet import parse_packet
from opus_dred.bitstream._profiles import Profile, get_profile
from opus_dred.models._pack import load_pack

#: Names of the arithmetic paths (``docs/numerics.md``). ``libopus-avx2`` is the default: it reproduces
#: libopus' x86 int8 path (8-bit inputs, exact integer dot products, libopus' activations), which is what
#: the released decoder is, with the ``RCPPS`` of AMD cores, so that its answers are the same on every
#: machine; ``-intel`` names use Intel's ``RCPPS``, and ``-host`` names the table of the CPU this runs on
#: (what reproduces a libopus build running here); ``float`` is the plain float32 network with exact
#: activations.
NUMERICS = ("libopus-avx2", "libopus-avx2-intel", "libopus-avx2-host", "libopus-sse2", "libopus-sse2-intel",
            "libopus-sse2-host", "libopus-c", "float")
DEFAULT_NUMERICS = "libopus-avx2"


def _numerics(name: str):
    from opus_dred.refimpl import _nnet as nnet  # lazy: loads JAX

    presets = {
        "libopus-avx2": nnet.LIBOPUS_AVX2,
        "libopus-avx2-intel": nnet.LIBOPUS_AVX2_INTEL,
        "libopus-avx2-host": nnet.for_host(nnet.LIBOPUS_AVX2),
        "libopus-sse2": nnet.LIBOPUS_SSE2,
        "libopus-sse2-intel": nnet.LIBOPUS_SSE2_INTEL,
        "libopus-sse2-host": nnet.for_host(nnet.LIBOPUS_SSE2),
        "libopus-c": nnet.LIBOPUS_C,
        "float": nnet.FLOAT,
    }
    try:
        return presets[name]
    except KeyError:
        raise ValueError(f"unknown numerics {name!r}; choose one of {', '.join(NUMERICS)}") from None


@dataclass
class DredResult:
    """Features and bookkeeping of one decoded DRED payload (what ``OpusDRED`` holds after processing).

    ``found`` is False when the packet carries no DRED for the profile (libopus returns 0 then); the
    other fields are then empty.
    """

    profile: str
    found: bool
    features: np.ndarray  # [4*nb_latents, 20], fec_features order
    nb_latents: int = 0
    dred_offset: int = 0  # 2.5 ms units
    ret: int = 0  # opus_dred_parse's return value, samples at sampling_rate
    dred_end: int = 0  # samples at sampling_rate
    sampling_rate: int = 48000
    numerics: str = DEFAULT_NUMERICS
    payload: DredPayload | None = field(default=None, repr=False)

    @property
    def coverage_ms(self) -> float:
        return latent_coverage_ms(self.nb_latents)

    def to_dict(self, *, with_features: bool = True) -> dict[str, Any]:
        d = {
            "profile": self.profile,
            "found": self.found,
            "nb_latents": self.nb_latents,
            "dred_offset": self.dred_offset,
            "ret": self.ret,
            "dred_end": self.dred_end,
            "sampling_rate": self.sampling_rate,
            "coverage_ms": self.coverage_ms,
            "numerics": self.numerics,
        }
        if with_features:
            d["features"] = self.features.tolist()
        return d


@functools.lru_cache(maxsize=None)
def params_for(profile_name: str):
    """The RDO-VAE decoder parameters of a profile, from its model pack (loaded once per process)."""
    from opus_dred.refimpl._rdovae import params_from_pack  # lazy: loads JAX

    prof = get_profile(profile_name)
    return params_from_pack(load_pack(prof.model_pack))


def features_of(profile: str | Profile, state, latents, *, numerics: str = DEFAULT_NUMERICS, dtype=np.float32):
    """Run the RDO-VAE decoder on dequantized ``state`` and ``latents`` → features ``[4*n, 20]``.

    ``dtype=np.float64`` runs the float path in double precision (for studying numerics).
    """
    import jax  # lazy: loads JAX
    from opus_dred.refimpl._rdovae import decode_features_jit  # lazy: loads JAX

    prof = get_profile(profile) if isinstance(profile, str) else profile
    latents = np.asarray(latents)
    if latents.shape[0] == 0:
        return np.zeros((0, prof.num_features), dtype)
    num = _numerics(numerics)
    params = params_for(prof.name)
    # The decoder scans the latents newest to oldest and is causal in that order, so latents appended after the
    # last one change none of the rows before them: pad to two bucket sizes (most packets carry ≤ 8 latents), so
    # that jit compiles two shapes instead of one per latent count, and cut the padding's rows off.
    n = latents.shape[0]
    bucket = next((b for b in (8, 32) if b >= n), n)
    latents = np.concatenate([latents, np.zeros((bucket - n, latents.shape[1]), latents.dtype)])
    rows = 4 * n
    if np.dtype(dtype) == np.float64:
        with jax.enable_x64(True):
            p64 = jax.tree_util.tree_map(
                lambda a: np.asarray(a, np.float64) if np.asarray(a).dtype == np.float32 else a, params
            )
            out = decode_features_jit(p64, np.asarray(state, np.float64), latents.astype(np.float64), num=num)
            return np.asarray(out, np.float64)[:rows]
    out = decode_features_jit(params, np.asarray(state, np.float32), latents.astype(np.float32), num=num)
    return np.asarray(out, np.float32)[:rows]


def decode_payload(
    payload: bytes | DredPayload,
    profile: str | Profile,
    *,
    max_dred_samples: int | None = None,
    sampling_rate: int = 48000,
    dred_frame_offset: int = 0,
    numerics: str = DEFAULT_NUMERICS,
    dtype=np.float32,
) -> DredResult:
    """Decode a bare DRED payload (the bytes after ``'D', version``), or an already read one."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    if isinstance(payload, DredPayload):
        p = payload
    else:
        p = read_dred_payload(
            payload,
            prof,
            max_dred_samples=max_dred_samples,
            sampling_rate=sampling_rate,
            dred_frame_offset=dred_frame_offset,
        )
    feats = features_of(prof, p.state, p.latents, numerics=numerics, dtype=dtype)
    return DredResult(
        profile=prof.name,
        found=True,
        features=feats,
        nb_latents=p.nb_latents,
        dred_offset=p.dred_offset,
        ret=p.available_samples(sampling_rate),
        dred_end=p.dred_end(sampling_rate),
        sampling_rate=sampling_rate,
        numerics=numerics,
        payload=p,
    )


def _raise_if_other_version(packet: bytes, prof: Profile) -> None:
    """Raise ProfileMismatchError if the DRED extension the profile's libopus would take carries another
    experimental version (:func:`~opus_dred.bitstream._extensions.foreign_dred`)."""
    e = foreign_dred(packet, prof)
    if e is None:
        return
    version = e.data[1]
    other = profile_for_dred_version(version)
    owner = f" (profile {other.name})" if other is not None else " (no known profile)"
    raise ProfileMismatchError(
        f"DRED extension of experimental version {version}{owner}, not {prof.dred_version} ({prof.name})",
        byte_offset=(parse_packet(packet).padding_offset or 0) + e.data_offset + 1,
        rule="dred: experimental version",
        profile=prof.name,
    )


def decode_dred(
    packet: bytes,
    profile: str | Profile,
    *,
    max_dred_samples: int | None = None,
    sampling_rate: int = 48000,
    numerics: str = DEFAULT_NUMERICS,
    dtype=np.float32,
    strict: bool = False,
) -> DredResult:
    """Decode the DRED carried by an Opus packet, as ``opus_dred_parse`` + ``opus_dred_process`` do.

    ``max_dred_samples`` (at ``sampling_rate``) bounds how much is decoded, as libopus' argument of the
    same name does; ``None`` asks for everything (the profile's maximum). Bitstream errors propagate as the
    typed errors of :mod:`opus_dred.bitstream._errors` (libopus returns an error code in those cases).

    A DRED extension of another experimental version is, as for libopus, no DRED (``found`` is False); with
    ``strict=True`` it raises :class:`~opus_dred.bitstream._errors.ProfileMismatchError` instead, naming the
    version found, the profile it belongs to, and its byte offset in the packet.
    """
    prof, loc = find_dred(bytes(packet), profile)
    if loc is None and strict:
        _raise_if_other_version(bytes(packet), prof)
    if loc is None:
        return DredResult(
            profile=prof.name,
            found=False,
            features=np.zeros((0, prof.num_features), np.float32),
            sampling_rate=sampling_rate,
            numerics=numerics,
        )
    return decode_payload(
        loc.payload,
        prof,
        max_dred_samples=max_dred_samples,
        sampling_rate=sampling_rate,
        dred_frame_offset=loc.dred_frame_offset,
        numerics=numerics,
        dtype=dtype,
    )
