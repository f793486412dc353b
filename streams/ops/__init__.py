"""Ops tools: lag inspection, replay, dead letters and table rebuilds."""
