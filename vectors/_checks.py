"""What a case checks: the bitstream and features (normative), or libopus' API behaviour.

A case's expected values mix two kinds of facts. *Normative* ones follow from the bytes and the profile's
constants alone: framing, extensions, the payload's header, state and latents, the features the RDO-VAE decoder
makes of them. *Behaviour* ones are what libopus' API does around them, where releases differ with nothing
changed on the wire: ``opus_dred_parse``'s return values (``ret``, ``dred_end``), how many latents a bounded
request (``max_dred_samples``) decodes, what a reader does with a DRED extension of another version, the
receiver's choices. :func:`case_checks` says which fields of a case are which, and names the profile rules
(:data:`opus_dred.bitstream._profiles.BEHAVIOUR_RULES`) its expected values depend on, with what each variant
of a rule would give:

``{"normative": [...], "behaviour": [...], "rules": {"chunk_bound": {"profile": "release-1.5",
"variants": {"release-1.5": {"nb_latents": 1, "ret": 0}, "master-2026-06": {"nb_latents": 5, "ret": 5760}}}}}``

A rule is listed only where its variants disagree for this case. The generator stores the result in the
``meta.json`` (``checks``) of the cases of :data:`CHECKED_HANDLERS` (every other handler checks normative fields
only); the conformance runner reads it from there (or computes it for a case without one) to report a behaviour
difference as such (:mod:`opus_dred.conformance._runner`).
"""

from __future__ import annotations

from typing import Any

from opus_dred.bitstream._arith import CHUNK_BOUND_RULES, latents_for_request, parse_return
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._errors import BitstreamError
from opus_dred.bitstream._extensions import find_dred_extension
from opus_dred.bitstream._profiles import get_profile, list_profiles
from opus_dred.vectors._handlers import HANDLERS

#: fields that are return values of libopus' API, whatever the request
API_FIELDS = {"dred_features": ("ret", "dred_end")}
#: fields whose extent is the number of latents decoded (behaviour when a request bounds it)
COUNT_FIELDS = {
    "dred_payload": ("payload.nb_latents", "payload.q_levels", "payload.latents_q", "latents"),
    "dred_features": ("nb_latents", "ret", "features"),
}
#: handlers whose every field is behaviour: the receiver's actions model opus_demo's policy, not the bitstream
BEHAVIOUR_HANDLERS = ("receiver",)
#: the handlers whose cases the generator writes ``checks`` for (the others check normative fields only)
CHECKED_HANDLERS = ("dred_payload", "dred_features", "receiver")


def _fields(handler: str) -> list[str]:
    h = HANDLERS.get(handler)
    if h is None:
        return []
    out = []
    for f in h.fields:
        nested = h.nested.get(f)
        out.extend([f"{f}.{k}" for k in nested] if nested and handler in COUNT_FIELDS else [f])
    return out


def case_checks(handler: str, profile: str, inputs: dict, parameters: dict,
                expected: dict | None = None) -> dict[str, Any]:
    """Which expected fields of a case are normative and which behaviour, and the rules it depends on (see the
    module docstring); with ``expected``, only the fields it holds are listed. A packet the reference rejects
    has no rules (its error is normative)."""
    fields = _fields(handler)
    if expected is not None:
        fields = [f for f in fields if f.split(".", 1)[0] in expected]
    if handler in BEHAVIOUR_HANDLERS:
        return {"normative": [], "behaviour": fields, "rules": {}}
    behaviour: list[str] = list(API_FIELDS.get(handler, ()))
    rules: dict[str, dict] = {}
    if handler in COUNT_FIELDS and "packet" in inputs:
        try:
            rules, bounded, foreign = _request_rules(profile, bytes(inputs["packet"]), parameters)
        except BitstreamError:
            rules, bounded, foreign = {}, False, False
        if bounded or "chunk_bound" in rules:
            behaviour += [f for f in COUNT_FIELDS[handler] if f not in behaviour]
        if foreign:
            behaviour.append("found")
    behaviour = [f for f in fields if f in behaviour] + [f for f in behaviour if f not in fields]
    return {"normative": [f for f in fields if f not in behaviour], "behaviour": behaviour, "rules": rules}


def _request_rules(profile: str, packet: bytes, parameters: dict) -> tuple[dict, bool, bool]:
    """``(rules, bounded, foreign)``: the chunk-bound variants where they disagree on this packet and request,
    whether the request decodes fewer latents than the payload holds, and whether the packet carries another
    version's DRED in place of the profile's."""
    prof = get_profile(profile)
    loc = find_dred_extension(packet, prof)
    if loc is None:
        return ({"foreign_version": {"profile": prof.foreign_version, "variants": {prof.foreign_version: {
            "found": False}}}}, False, True) if _other_version(packet, prof) else ({}, False, False)
    full = read_dred_payload(loc.payload, prof, dred_frame_offset=loc.dred_frame_offset)
    mds = parameters.get("max_dred_samples")
    rate = int(parameters.get("sampling_rate", 48000))
    variants = {}
    for rule in CHUNK_BOUND_RULES:
        n = full.nb_latents if mds is None else min(full.nb_latents, latents_for_request(
            int(mds), rate, prof.max_latents, rule=rule, dred_offset=full.dred_offset))
        variants[rule] = {"nb_latents": n, "ret": parse_return(n, full.dred_offset, rate)}
    own = variants[prof.chunk_bound]["nb_latents"]
    rules = {}
    if len({v["nb_latents"] for v in variants.values()}) > 1:
        rules["chunk_bound"] = {"profile": prof.chunk_bound, "variants": variants}
    return rules, own < full.nb_latents, False


def _other_version(packet: bytes, prof) -> bool:
    """Whether ``packet`` carries the DRED of another known profile's version (and none of ``prof``'s)."""
    for name in list_profiles():
        try:
            other = get_profile(name)
            if other.dred_version != prof.dred_version and find_dred_extension(packet, other) is not None:
                return True
        except Exception:  # noqa: BLE001 - an unreadable description or packet is passed over
            continue
    return False
