"""``opus_dred.conformance``: run the vectors on an implementation and say, precisely, where it differs.

One job: the conformance runner (cases through an adapter, answers compared field by field, the first
difference named with its offset), the adapters (the reference, a libopus build, any decoder behind the JSON-lines
protocol of ``docs/conformance.md``), libopus' compliance metric (``dred_compare``) reimplemented, the reports
(terminal, JSON, HTML), the differential fuzzer against libopus' parsers, and the agreement study of the
reference against libopus' own builds.
"""

from opus_dred.conformance._adapters import ExternalAdapter, LibopusAdapter, ReferenceAdapter, adapter_names, make_adapter
from opus_dred.conformance._agreement import measure as measure_agreement
from opus_dred.conformance._fuzz import FuzzReport, run_campaign
from opus_dred.conformance._metric import MetricError, compare_audio, compare_features
from opus_dred.conformance._report import print_summary, write_reports
from opus_dred.conformance._runner import Outcome, Result, RunReport, run_case, run_suite

__all__ = ["run_suite", "run_case", "RunReport", "Outcome", "Result", "make_adapter", "adapter_names",
           "ReferenceAdapter", "LibopusAdapter", "ExternalAdapter", "compare_features", "compare_audio",
           "MetricError", "write_reports", "print_summary", "run_campaign", "FuzzReport", "measure_agreement"]
