"""The sample drive and `make demo`."""
