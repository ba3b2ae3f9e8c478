"""Benchmarks: each module is a command (``python -m bench.NAME``) that prints figures and writes JSON."""
