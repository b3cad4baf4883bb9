"""The settings `dp train` trains with: the script read and checked (config/), its learning-curve
file writable, model/compress dropped, the tensorboard package present when asked for."""
from __future__ import annotations

import logging

from ..config import Config, build_config, normalize, read_script
from ..config.compress import without_compress_section
from ..config.errors import ConfigError, Problem
from ..store.outputs import check_output

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


def training_settings(input_path: str, start=None) -> Config:
    """The settings of the script `input_path` for training (ConfigError, OutputError), as the
    model's start (train/model_start.py) reads it: fine-tuning replaces its model sections."""
    script = read_script(input_path)
    if start is not None:
        script = start.script(script, input_path)
    config = build_config(normalize(script, source=input_path))
    if start is not None:
        start.check(config, input_path)
    check_output(config.training.disp_file, "the learning curve (training/disp_file)")
    if config.model.compress is not None:  # as DeePMD-kit's DPTrainer outside dp compress
        log.warning(f"{input_path}: model/compress is ignored by dp train (dp compress writes it)")
        config = without_compress_section(config)
    _check_tensorboard(config, input_path)
    return config
