"""``opus_dred.vectors``: test-vector generator, format, and the canonical suite."""
