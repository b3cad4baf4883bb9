"""The number of cores this process may use (the thread count the benchmarks give both sides)."""
import os


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
