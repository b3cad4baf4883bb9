"""DeePMD-kit's thread settings, for training and inference alike:
DP_INTRA_OP_PARALLELISM_THREADS and DP_INTER_OP_PARALLELISM_THREADS (or their TF_ forms) size
TensorFlow's thread pools (0 or unset: TensorFlow chooses); OMP_NUM_THREADS is read by the
OpenMP runtime of the ops. Read without TensorFlow (`thread_counts`)."""
from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["apply_thread_settings", "thread_counts"]


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
