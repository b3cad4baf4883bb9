"""The one precision switch: config precision names to TensorFlow dtypes.

"default" is float64 (DeePMD-kit's interface precision); energies are always summed in float64.
"""
from __future__ import annotations

import tensorflow as tf

_DTYPES = {
    "default": tf.float64,
    "float64": tf.float64,
    "float32": tf.float32,
    "float16": tf.float16,
    "bfloat16": tf.bfloat16,
}
ENERGY_DTYPE = tf.float64


def dtype_of(precision: str) -> tf.DType:
    """The dtype of a config precision name ("default", "float64", "float32", ...)."""
    try:
        return _DTYPES[precision]
    except KeyError:
        raise ValueError(f"{precision!r} is not a valid precision; valid: {sorted(_DTYPES)}") from None
