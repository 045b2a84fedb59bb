"""Benchmarks for extraction, detection and discovery (`python -m bench.run`)."""
