"""The ways a training run starts its model, one object each behind one interface:

    start = model_start(restart=None, init_model=None, init_frz_model=None)
    start.prepare(model, train_data, config, is_chief)   # weights and statistics, no trainer yet
    trainer = Trainer(...)
    start.resume(trainer)                                 # the trainer's own state, if any
    trainer.run(restarted=start.restarted)

* `FreshStart`: the statistics of the training data (on the chief; the other workers take the
  chief's weights when the trainer synchronises);
* `Restart` (`--restart CKPT`): the model and its tables from the checkpoint, then everything
  else the checkpoint holds (optimizer state, step, data sampling): the run continues;
* `InitModel` (`--init-model CKPT`): the model's weights, statistics and tables; the step and
  the optimizer start afresh;
* `InitFrozenModel` (`--init-frz-model GRAPH`): the weights and statistics of a frozen graph
  (a compressed one: its tables too);
* `FineTune` (`--finetune GRAPH|CKPT`): those of a pretrained model, whose model sections the
  script took (train/finetune.py), with the energy bias of the user's types re-fitted to the
  data (new types: their rows of the type embedding, statistics and bias added).

The reading itself is store/restore.py's.
"""
from __future__ import annotations

import logging

from ..data.stats import COMPUTED, collect_stat_batches, compute_model_statistics
from ..infer.graph_file import check_model_file
from ..store.restore import (assign_constants, compress_from_checkpoint, init_from_frozen_model,
                             require_checkpoint, restore_model)
from ..store.stat_file import StatFile, descriptor_stat_key

log = logging.getLogger("deepmd_tebd")

__all__ = ["FineTune", "FreshStart", "InitFrozenModel", "InitModel", "ModelStart", "Restart",
           "model_start"]


class ModelStart:
    """One way to start a model; `restarted`: whether the run continues a previous one (its
    lcurve and validation files are appended to)."""

    restarted = False

    def script(self, script: dict, source: str) -> dict:
        """The input script as this start trains it (unchanged by default)."""
        return script

    def check(self, config, source: str) -> None:
        """ConfigError (naming `source`) when this start cannot give the model of `config` its
        weights (nothing to check by default)."""

    def prepare(self, model, train_data, config, is_chief: bool = True) -> None:
        """Gives `model` its weights and statistics before the trainer exists (builds it)."""
        model.build()

    def resume(self, trainer) -> None:
        """Gives the trainer the state it continues from (nothing by default)."""


class FreshStart(ModelStart):
    """A new model: initial weights from the seeds, statistics of the training data (on the
    chief alone), read from and kept in `training/stat_file` when the script names one."""

    def prepare(self, model, train_data, config, is_chief: bool = True) -> None:
        """Statistics of `data_stat_nbatch` batches of every training system."""
        if not is_chief:
            model.build()
            return
        stored = COMPUTED if config.training.stat_file is None else _stat_file(config)
        log.info("data stating... (this step may take long time)")
        settings = config.model
        stat_batches = collect_stat_batches(train_data, settings.data_stat_nbatch)
        stats = compute_model_statistics(stat_batches, settings, model.descriptor.stat_env_mat,
                                         stored)
        # the log line before the weights are drawn: the time between the two lines is the
        # statistics' own (bench/species.py), as in DeePMD-kit's log
        log.info("initialize model from scratch")
        model.set_statistics(stats)


def _stat_file(config) -> StatFile:
    """The script's training/stat_file, for its type_map and descriptor (sel resolved)."""
    model = config.model
    mixed = model.descriptor.mixed_types  # one sel block (DPA-1): the model's types
    ntypes = model.ntypes if mixed else len(model.descriptor.sel)  # se_a: the types of sel
    return StatFile.open(config.training.stat_file, model.type_map,
                         descriptor_stat_key(model.descriptor, ntypes, mixed), model.ntypes)


class Restart(ModelStart):
    """`--restart PREFIX`: the run continues from the checkpoint."""

    restarted = True

    def __init__(self, prefix: str):
        self.prefix = prefix

    def prepare(self, model, train_data, config, is_chief: bool = True) -> None:
        """Builds the model; a model trained from a compressed graph runs on its tables."""
        model.build()
        compress_from_checkpoint(model, self.prefix)

    def resume(self, trainer) -> None:
        """Weights, statistics, optimizer state, step and data sampling from the checkpoint."""
        trainer.restart(self.prefix)


class InitModel(ModelStart):
    """`--init-model PREFIX`: the model's weights, statistics and tables from the checkpoint;
    step and optimizer state start afresh."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def prepare(self, model, train_data, config, is_chief: bool = True) -> None:
        """Restores the model alone (store/restore.py: restore_model)."""
        model.build()
        restore_model(model, self.prefix, strict=True)  # every weight, as DeePMD-kit's saver
        log.info(f"initialize model from checkpoint {self.prefix}")


class InitFrozenModel(ModelStart):
    """`--init-frz-model PATH`: weights and statistics (and tables) of a frozen graph."""

    def __init__(self, path: str):
        self.path = path

    def prepare(self, model, train_data, config, is_chief: bool = True) -> None:
        """Assigns the graph's constants (store/restore.py: init_from_frozen_model)."""
        model.build()
        init_from_frozen_model(model, self.path)


class FineTune(ModelStart):
    """`--finetune PATH` (frozen graph or checkpoint prefix): the pretrained model's weights and
    statistics (new types: the rows train/finetune.py describes), then the energy bias of the
    user's types re-fitted to the first data_bias_nsample frames of each training system (on
    the chief; the other workers take the chief's weights)."""

    def __init__(self, path: str):
        from .finetune import Pretrained

        self.path = path
        self.pretrained = Pretrained(path)
        self.user_types: list = []
        self.new_types: list = []

    def script(self, script: dict, source: str) -> dict:
        """The script with the pretrained model's type map and sections (train/finetune.py)."""
        from ..config.finetune import merge_pretrained

        script, self.user_types, self.new_types = merge_pretrained(
            script, self.pretrained.script, source, self.path)
        return script

    def check(self, config, source: str) -> None:
        """New types must leave the old types' embeddings as they are."""
        from .finetune import check_new_types

        check_new_types(config, config.model.ntypes - len(self.new_types), source)

    def prepare(self, model, train_data, config, is_chief: bool = True) -> None:
        """Assigns the pretrained constants, then changes the bias (train/change_bias.py)."""
        from .change_bias import change_bias_after_training
        from .finetune import extended, origin_types

        model.build()
        variables = model.graph_variables()
        if self.new_types and is_chief:  # their statistics rows: the data's
            stats = compute_model_statistics(
                collect_stat_batches(train_data, config.model.data_stat_nbatch), config.model,
                model.descriptor.stat_env_mat)
            model.descriptor.set_statistics(stats.davg, stats.dstd)
        old_types = config.model.ntypes - len(self.new_types)
        constants = extended(self.pretrained.constants(), variables, old_types)
        assign_constants(variables, constants, self.path)
        log.info(f"initialize model from pretrained model {self.path}")
        if not is_chief:
            return
        type_map = list(config.model.type_map)
        columns = origin_types(self.user_types, train_data.systems, type_map)
        columns += [type_map.index(t) for t in self.new_types
                    if type_map.index(t) not in columns]
        log.info(f"Changing energy bias in pretrained model for types "
                 f"{[type_map[c] for c in columns]}... (this step may take long time)")
        change_bias_after_training(model, train_data.systems, type_map,
                                   config.model.data_bias_nsample, columns)


def model_start(restart: str | None = None, init_model: str | None = None,
                init_frz_model: str | None = None, finetune: str | None = None) -> ModelStart:
    """The start of `dp train`'s options (at most one of them is given); CheckpointError or
    ModelFileError when the checkpoint or graph it names is not there (or, for fine-tuning,
    has no training script or is compressed)."""
    for prefix, option in ((restart, "--restart"), (init_model, "--init-model")):
        if prefix is not None:
            require_checkpoint(prefix, option)
    if init_frz_model is not None:
        check_model_file(init_frz_model)
    if finetune is not None:  # a frozen graph or a checkpoint prefix
        if finetune.endswith(".pb"):
            check_model_file(finetune)
        else:
            require_checkpoint(finetune, "--finetune (a frozen graph .pb, or)")
    if finetune is not None:
        return FineTune(finetune)
    if restart is not None:
        return Restart(restart)
    if init_model is not None:
        return InitModel(init_model)
    if init_frz_model is not None:
        return InitFrozenModel(init_frz_model)
    return FreshStart()
