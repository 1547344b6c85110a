"""Benchmarks for Samizdat: scripts, not tests. Run ``python -m bench.run_all``."""
