"""``opus_dred.vectors``: the test vectors: their format, the expected values, the generator, the canonical suite.

One job: define a case on disk (``docs/vector-format.md``: ``<profile>/<handler>/<suite>/<case>/``, parts with
sha256 in a manifest), compute every case's expected values with the reference (never copied from libopus),
generate the canonical suite deterministically, and export libopus' own DRED vector layout.
"""

from opus_dred.vectors._format import Case, check_manifest, iter_cases, load_case, load_manifest, suite_root
from opus_dred.vectors._generate import generate
from opus_dred.vectors._handlers import expected_for
from opus_dred.vectors._official import export_official, read_official

__all__ = ["Case", "load_case", "iter_cases", "suite_root", "load_manifest", "check_manifest", "expected_for",
           "generate", "export_official", "read_official"]
