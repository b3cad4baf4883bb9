"""`dp compress`: refused, with the reason, and nothing written (infer/compression.py)."""
from __future__ import annotations


def run(input: str = "frozen_model.pb", output: str = "frozen_model_compressed.pb",
        training_script: str | None = None) -> int:
    """Raises CompressionRefused: a type-embedding model cannot be compressed, and compressing
    the others is not implemented."""
    from ..infer.compression import compress

    compress(input, output, training_script)
    return 0
