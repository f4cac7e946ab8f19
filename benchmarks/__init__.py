"""Runnable comparisons that print ratios (``python -m benchmarks.<name>``); not tests."""
