"""Benchmarks (not tests): each module measures one thing beside its alternative, in one run, and returns a
markdown section for docs/benchmarks.md."""
