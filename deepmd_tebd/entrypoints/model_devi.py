"""`dp model-devi`: the deviation of several frozen models on the frames of some systems
(infer/model_devi.py)."""
from __future__ import annotations


def run(models: list[str], system: str = ".", output: str = "model_devi.out",
        frequency: int = 1, real_error: bool = False, atomic: bool = False,
        relative: float | None = None, relative_v: float | None = None) -> int:
    """Appends the model deviation of `models` on the systems under `system` to `output`; the
    arguments are `dp model-devi`'s options."""
    from ..infer.model_devi import make_model_devi
    from ..store.outputs import check_output

    check_output(output, "the model deviation file (-o)", inputs=models)
    make_model_devi(models, system, output, frequency, real_error, atomic, relative, relative_v)
    return 0
