"""Benchmarks for teletracker_async: ratios measured in one run, never test gates."""
