"""``opus_dred.bench``: speed benchmarks against libopus, measured in the same run (``opus-dred bench``).

One job: time our readers and decoders against libopus on the same packets, in one process and one sitting, and
report ratios (never absolute figures alone) with the CPU model, checking every packet's result against libopus
while it times. Speed targets live here, never in timed tests.
"""

from opus_dred.bench._bitstream import BitstreamBench, bench_bitstream
from opus_dred.bench._decode import DecodeBench, StreamSpec, bench_decode, build_stream, hoist_small_loops
from opus_dred.bench._encode import EncodeBench, bench_encode
from opus_dred.bench._simulate import BenchPoint, bench_simulate

__all__ = ["bench_decode", "DecodeBench", "StreamSpec", "build_stream", "hoist_small_loops", "bench_bitstream",
           "BitstreamBench", "bench_simulate", "BenchPoint", "bench_encode", "EncodeBench"]
