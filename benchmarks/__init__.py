"""Benchmarks: scripts that measure the app against a baseline taken in the same run and print ratios."""
