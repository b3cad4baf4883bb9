"""`dp train INPUT`: normalise and check the script, write out.json, train."""
from __future__ import annotations

import logging

from ..data.script_check import check_against_data
from ..store.atomic import write_json_atomic
from ..store.outputs import check_output

log = logging.getLogger("deepmd_tebd")


def run(input_path: str, restart: str | None = None, init_model: str | None = None,
        skip_neighbor_stat: bool = False, output: str = "out.json",
        init_frz_model: str | None = None, finetune: str | None = None) -> int:
    """`dp train`: 0, or 128 + the number of the signal that stopped training; under a cluster
    description, one worker of a data-parallel run (the chief alone writes the outputs)."""
    from ..train.build import build_trainer
    from ..train.settings import training_settings
    from ..train.model_start import model_start
    from ..threads import apply_thread_settings
    from ..train.distributed import check_supported, connect
    from ..train.trainer import Interrupted

    check_output(output, "the normalised script (-o)", inputs=(input_path,))
    # the checkpoint or graph exists; a pretrained graph's script is read
    start = model_start(restart, init_model, init_frz_model, finetune)
    apply_thread_settings()
    cluster = connect()  # first: a cluster that cannot be formed writes nothing
    config = training_settings(input_path, start)
    config, min_nbor_dist = check_against_data(config, input_path, skip_neighbor_stat)
    if cluster is not None and cluster.processes > 1:  # replicas of one process stop together
        check_supported(config, input_path)
    trainer = build_trainer(config, start, min_nbor_dist, cluster)
    if cluster is None or cluster.is_chief:  # once the data and the model's start are read
        write_json_atomic(output, config.script)
    try:
        trainer.run(restarted=start.restarted)
    except Interrupted as stop:
        prefix = config.training.save_ckpt
        log.warning(f"{stop}: checkpoint {prefix} written at step {int(trainer.step)}; "
                    f"continue with: dp train {input_path} --restart {prefix}")
        return 128 + stop.signum
    return 0
