"""`dp change-bias MODEL`: the energy bias of a frozen model or of a checkpoint's model changed
by the data (-s/-f) or set (-b), written as a frozen model (infer/change_bias.py); of a
checkpoint `<folder>/<name>`, also as the checkpoint `<folder>/<name>_updated/<name>` (as
DeePMD-kit writes it)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("deepmd_tebd")


def _output(model: str, output: str | None) -> str:
    """-o, or beside the input: MODEL_updated.pb for a graph, PREFIX.pb for a checkpoint (as
    DeePMD-kit names it)."""
    if output is not None:
        return output if output.endswith(".pb") else output + ".pb"
    path = Path(model)
    return str(path.with_name(path.stem + "_updated.pb") if path.suffix == ".pb"
               else path.with_suffix(".pb"))


def run(model: str, system: str | None = ".", datafile: str | None = None,
        mode: str = "change", bias_value=None, numb_batch: int = 0,
        output: str | None = None) -> int:
    """Changes the bias of `model` (a .pb, a checkpoint prefix or a folder with a checkpoint)
    and writes the frozen model to `output`; the arguments are `dp change-bias`'s options."""
    from ..infer.change_bias import changed_model
    from ..infer.prediction_errors import find_test_systems
    from ..store.atomic import write_atomic
    from ..store.outputs import check_output

    output = _output(model, output)
    check_output(output, "the changed model (-o)", inputs=(model,))
    systems = None if bias_value is not None else find_test_systems(system, datafile)
    graph_def, type_map, old, new, prefix = changed_model(
        model, systems, mode, bias_value, numb_batch,
        scratch=os.path.dirname(os.path.abspath(output)))
    if prefix is not None:
        from ..store.keys import ENERGY_BIAS_KEY
        from ..store.rewrite import write_updated_checkpoint

        named = Path(model)  # DeePMD-kit's folder: the name given, _updated
        folder = (named if named.is_dir() else named.parent) / f"{named.name}_updated"
        write_updated_checkpoint(prefix, {ENERGY_BIAS_KEY: new}, folder, named.name)
    write_atomic(output, graph_def.SerializeToString())
    log.info(f"Change energy bias of {type_map} from {old} to {new}.")
    log.info(f"Bias changing complete. Model saved to {output}")
    return 0
