"""Shared timing helper for the benchmark scripts (run them as `python bench/NAME.py`)."""

import statistics
import time


def median_ms(fn, repeats: int) -> float:
    """Median wall time of `fn()` in ms over `repeats` runs, after one warm-up run (caches, detectors, pools)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)
