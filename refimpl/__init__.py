"""``opus_dred.refimpl``: the pure-JAX reference RDO-VAE decoder and the receiver state machine."""
