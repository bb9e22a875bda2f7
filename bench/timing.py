"""Best-of-N rates and latency percentiles: these machines are noisy, so compare within one run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any


def rate(func: Callable[[Any], Any], items: Sequence[Any], repeats: int = 3) -> float:
    """Items per second, the best of ``repeats`` passes over ``items``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            func(item)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def batch_rate(func: Callable[[], Any], count: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return count / best


def percentiles(func: Callable[[Any], Any], items: Sequence[Any], repeats: int = 3) -> tuple[float, float]:
    """(p50, p99) latency in milliseconds of single calls, each the best of ``repeats`` passes: one pass's p99 is
    often a scheduler hiccup on a shared 2-core machine, not the code."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        samples = []
        for item in items:
            start = time.perf_counter()
            func(item)
            samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        p50, p99 = samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        best = (min(best[0], p50), min(best[1], p99))
    return best
