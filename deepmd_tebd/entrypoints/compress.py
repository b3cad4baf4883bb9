"""`dp compress`: tabulates a frozen se_e2_a model (infer/compression.py)."""
from __future__ import annotations


def run(input: str = "frozen_model.pb", output: str = "frozen_model_compressed.pb",
        step: float = 0.01, extrapolate: int = 5, frequency: int = -1,
        training_script: str | None = None) -> int:
    """Writes the compressed model; raises CompressionRefused (nothing written) for models that
    cannot be compressed (type embedding, resnet_dt, every pair excluded, compressed already).
    The checkpoint folder (-c) of DeePMD-kit is accepted and not written."""
    from ..infer.compression import compress
    from ..store.outputs import check_output

    check_output(output, "the compressed model (-o)", inputs=(input, training_script))
    compress(input, output, step, extrapolate, frequency, training_script)
    return 0
