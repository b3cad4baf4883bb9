"""`dp train INPUT`: normalise and check the script, write out.json, train."""
from __future__ import annotations

import logging

from ..config import Config, load_settings
from ..config.compress import without_compress_section
from ..config.errors import ConfigError, Problem
from ..data.script_check import check_against_data
from ..store.atomic import write_json_atomic

log = logging.getLogger("deepmd_tebd")


def _check_tensorboard(config: Config, source: str) -> None:
    """tensorboard needs its package."""
    if not config.training.tensorboard:
        return
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(source, [Problem("training/tensorboard", "true, but the tensorboard "
                          "package is not installed: pip install tensorboard (or the package's "
                          "[tensorboard] extra), or set it to false")]) from None


def run(input_path: str, restart: str | None = None, init_model: str | None = None,
        skip_neighbor_stat: bool = False, output: str = "out.json",
        init_frz_model: str | None = None) -> int:
    """`dp train`: 0, or 128 + the number of the signal that stopped training; under a cluster
    description, one worker of a data-parallel run (the chief alone writes the outputs)."""
    from ..train.build import build_trainer
    from ..train.model_start import model_start
    from ..threads import apply_thread_settings
    from ..train.distributed import check_supported, connect
    from ..train.trainer import Interrupted

    apply_thread_settings()
    cluster = connect()  # first: a cluster that cannot be formed writes nothing
    config = load_settings(input_path)
    if config.model.compress is not None:  # as DeePMD-kit's DPTrainer outside dp compress
        log.warning(f"{input_path}: model/compress is ignored by dp train (dp compress writes it)")
        config = without_compress_section(config)
    _check_tensorboard(config, input_path)
    config, min_nbor_dist = check_against_data(config, input_path, skip_neighbor_stat)
    if cluster is not None and cluster.processes > 1:  # replicas of one process stop together
        check_supported(config, input_path)
    if cluster is None or cluster.is_chief:
        write_json_atomic(output, config.script)
    start = model_start(restart, init_model, init_frz_model)
    trainer = build_trainer(config, start, min_nbor_dist, cluster)
    try:
        trainer.run(restarted=start.restarted)
    except Interrupted as stop:
        prefix = config.training.save_ckpt
        log.warning(f"{stop}: checkpoint {prefix} written at step {int(trainer.step)}; "
                    f"continue with: dp train {input_path} --restart {prefix}")
        return 128 + stop.signum
    return 0
