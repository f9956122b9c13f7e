"""Frozen copies of earlier implementations, for equivalence benchmarks."""
