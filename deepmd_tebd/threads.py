"""TensorFlow's runtime settings, for training and inference alike.

DeePMD-kit's thread settings: DP_INTRA_OP_PARALLELISM_THREADS and DP_INTER_OP_PARALLELISM_THREADS
(or their TF_ forms) size TensorFlow's thread pools (0 or unset: TensorFlow chooses);
OMP_NUM_THREADS is read by the OpenMP runtime of the ops. Read without TensorFlow
(`thread_counts`).

The CPU memory pool (`pool_cpu_memory`): TensorFlow's CPU allocator hands every tensor to malloc,
which maps a large block (tens of MB: a training step's [atoms x sel, width] activations) fresh
from the system and returns it when freed, so each step pays a page fault per 4 KiB of them
(a [23040, 384] float64 product: 68 against 33 ms). TensorFlow's BFC allocator keeps what it
took and reuses it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

__all__ = ["apply_thread_settings", "pool_cpu_memory", "thread_counts"]


def thread_counts(environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """(intra-op, inter-op) threads: DP_*_PARALLELISM_THREADS, else TF_*, else 0 (TensorFlow
    chooses), as DeePMD-kit's deepmd/env.py: get_default_nthreads."""
    def threads(kind: str) -> int:
        for name in (f"DP_{kind}_OP_PARALLELISM_THREADS", f"TF_{kind}_OP_PARALLELISM_THREADS"):
            if environ.get(name):
                return int(environ[name])
        return 0

    return threads("INTRA"), threads("INTER")


def apply_thread_settings() -> None:
    """Sets TensorFlow's thread pools from the environment (`thread_counts`), as DeePMD-kit's
    deepmd/env.py: get_tf_session_config; call before TensorFlow's runtime starts."""
    import tensorflow as tf

    intra, inter = thread_counts()
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


def pool_cpu_memory(environ: MutableMapping[str, str] | None = None) -> None:
    """Has TensorFlow's CPU allocator pool its memory (TF_CPU_ALLOCATOR_USE_BFC, up to the
    machine's physical memory: TF_CPU_BFC_MEM_LIMIT_IN_MB) unless the user set either; call
    before TensorFlow's first op, which creates the allocator. environ: os.environ if None."""
    environ = os.environ if environ is None else environ
    if "TF_CPU_ALLOCATOR_USE_BFC" in environ or "TF_CPU_BFC_MEM_LIMIT_IN_MB" in environ:
        return
    environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: TensorFlow's limit (64 GiB)
        return
    environ["TF_CPU_BFC_MEM_LIMIT_IN_MB"] = str(max(1, physical >> 20))
