"""Benchmarks: ratios measured side by side in one run, printed, never asserted in tests."""
