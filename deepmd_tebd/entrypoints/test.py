"""`dp test`: errors of a frozen model on labelled systems, in DeePMD-kit's summary lines and
detail files, and a parity plot (infer/prediction_errors.py)."""
from __future__ import annotations

from pathlib import Path


def run(model: str, system: str | None = ".", datafile: str | None = None,
        set_prefix: str = "set", numb_test: int = 0, rand_seed=None, shuffle_test: bool = False,
        detail_file: str | None = None, atomic: bool = False) -> int:
    """Evaluates `model` on the systems under `system` (or listed in `datafile`) and logs the
    errors; the arguments are `dp test`'s options."""
    from ..infer import DeepPot
    from ..infer.prediction_errors import detail_path, find_test_systems, report_errors
    from ..store.outputs import OutputError, check_output

    if detail_file is not None:
        if Path(detail_file).name in ("", ".", "..") or Path(detail_file).is_dir():
            raise OutputError(f"{detail_file}: the prefix of the detail files (-d) is a folder; "
                              f"give a file-name prefix, e.g. {Path(detail_file) / 'detail'}")
        for suffix in (".e.out", ".f.out", ".v.out", ".parity.png"):
            check_output(detail_path(detail_file, suffix), "a detail file (-d)", inputs=(model,))
    dp = DeepPot(model)
    systems = find_test_systems(system, datafile)
    report_errors(dp, systems, set_prefix, numb_test, rand_seed, shuffle_test, detail_file,
                  atomic)
    dp.close()
    return 0
