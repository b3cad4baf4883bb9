"""`dp test`: errors of a frozen model on labelled systems, in DeePMD-kit's summary lines and
detail files, and a parity plot (infer/prediction_errors.py)."""
from __future__ import annotations


def run(model: str, system: str | None = ".", datafile: str | None = None,
        set_prefix: str = "set", numb_test: int = 0, rand_seed=None, shuffle_test: bool = False,
        detail_file: str | None = None, atomic: bool = False) -> int:
    """Evaluates `model` on the systems under `system` (or listed in `datafile`) and logs the
    errors; the arguments are `dp test`'s options."""
    from ..infer import DeepPot
    from ..infer.prediction_errors import check_detail_prefix, find_test_systems, report_errors

    if detail_file is not None:
        check_detail_prefix(detail_file, model)
    dp = DeepPot(model)
    systems = find_test_systems(system, datafile)
    report_errors(dp, systems, set_prefix, numb_test, rand_seed, shuffle_test, detail_file,
                  atomic)
    dp.close()
    return 0
