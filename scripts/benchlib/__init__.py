"""Benchmark cases for scripts/bench.py: each returns rows of measured figures."""
