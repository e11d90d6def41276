"""``opus_dred.experiments``: the loss experiment (``opus-dred simulate``).

One job: encode real speech with libopus under matched bitrates, lose packets the way networks do (Bernoulli,
Gilbert-Elliott, libopus' own loss generator, traces, jitter), let the receiver choose PLC, LBRR or DRED for
every frame, decode with libopus, and score the audio (PESQ, STOI) against the same settings without loss.
The concealment's audio comes from libopus or, with ``engine="jax"``, from our neural PLC and FARGAN spliced
into libopus' decoder (``ENGINES``).
"""

from opus_dred.experiments._engine import ENGINES, EngineError
from opus_dred.experiments._loss import GilbertElliott, LibopusLossGen, bernoulli, read_trace, write_trace
from opus_dred.experiments._plots import plot_quality, plot_signals
from opus_dred.experiments._simulate import Config, LossSpec, SimResult, SimulateError, parse_loss, simulate

__all__ = ["simulate", "Config", "LossSpec", "parse_loss", "SimResult", "SimulateError", "bernoulli",
           "GilbertElliott", "LibopusLossGen", "read_trace", "write_trace", "plot_quality", "plot_signals", "ENGINES", "EngineError"]
