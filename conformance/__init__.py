"""``opus_dred.conformance``: upstream libopus builds, the ctypes oracle, adapters, metric and runner."""
