"""Benchmarks: each prints a results table and writes a JSON line to bench/results/.

Figures are medians of several runs with min and max, and targets are ratios against a
baseline measured in the same run, so they mean the same on any machine.
"""
