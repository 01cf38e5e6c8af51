"""Benchmarks and fault runs (issue 7). Run from the repository root:
``python -m bench.relay``, ``python -m bench.scale``, ``python -m bench.faults``."""
