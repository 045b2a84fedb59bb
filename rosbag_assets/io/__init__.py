"""Shared I/O below the steps: storage (local, S3), versioned publishing, bag reading, shards, frame index."""
