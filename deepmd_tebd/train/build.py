"""Objects of a training run from the typed settings: data, statistics, model, trainer."""
from __future__ import annotations

import logging
from pathlib import Path

from ..config.objects import Config
from ..data.data_system import DataSystem
from ..data.sampling import make_data_rng
from ..data.stats import collect_stat_batches, compute_model_statistics
from ..learning_rate import ExpDecayLR
from ..loss import EnergyLoss
from ..model import EnergyModel
from ..store.restore import compress_from_checkpoint
from .distributed import DistributedTrainer
from .trainer import Trainer

log = logging.getLogger("deepmd_tebd")


def build_trainer(config: Config, restart: str | None = None, init_model: str | None = None,
                  min_nbor_dist: float | None = None, cluster=None,
                  init_frz_model: str | None = None) -> Trainer:
    """The trainer of `config` (sel resolved): from scratch with the data statistics, or with
    the weights and statistics of a checkpoint (restart: also its step and optimizer state) or
    of a frozen model (init_frz_model).

    cluster: a data-parallel run (train/distributed.py: connect): the data seed is
    training.seed + rank (+ the replica's index in a process of several replicas), the
    statistics are computed on the chief and every worker starts from the chief's state."""
    model_settings, training = config.model, config.training
    type_map = list(model_settings.type_map)
    fitting = model_settings.fitting
    lr = ExpDecayLR.from_config(config.learning_rate, training.numb_steps)
    loss = EnergyLoss(config.loss, lr.start_lr)
    labels = loss.labels
    # labels of the active loss terms must exist (a missing force.npy is an error, not a
    # silently disabled force term)
    data_args = dict(labels=labels, required=labels, numb_fparam=fitting.numb_fparam,
                     numb_aparam=fitting.numb_aparam)
    rank = 0 if cluster is None else cluster.rank
    train_data = DataSystem.from_config(training.training_data, type_map,
                                        rng=make_data_rng(training.seed, rank), **data_args)
    train_data.log_summary("training")
    replicas = 1 if cluster is None else cluster.replicas
    # the other replicas of this process sample the same systems with their own data seeds
    replica_data = [DataSystem.from_config(training.training_data, type_map,
                                           rng=make_data_rng(training.seed, rank + i),
                                           **data_args) for i in range(1, replicas)]
    valid_data = None
    if training.validation_data is not None:
        # without model/type_map the validation systems are mapped to the training data's
        # type_map.raw names (DeePMD-kit's deepmd/tf/entrypoints/train.py: _do_work)
        valid_data = DataSystem.from_config(training.validation_data,
                                            type_map or train_data.type_map,
                                            rng=train_data.rng, **data_args)
        valid_data.log_summary("validation")

    model = EnergyModel(model_settings, mixed_precision=training.mixed_precision)
    if init_frz_model is not None:
        from ..store.restore import init_from_frozen_model

        model.build()
        init_from_frozen_model(model, init_frz_model)
    elif restart is None and init_model is None and rank == 0:
        log.info("data stating... (this step may take long time)")
        stat_batches = collect_stat_batches(train_data, model_settings.data_stat_nbatch)
        model.set_statistics(compute_model_statistics(stat_batches, model_settings,
                                                      model.descriptor.stat_env_mat))
        log.info("initialize model from scratch")
    else:
        model.build()
        prefix = restart if restart is not None else init_model
        if prefix is not None and Path(f"{prefix}.index").exists():
            # trained from a compressed graph: the descriptor is its tables again
            compress_from_checkpoint(model, prefix)
    if cluster is None:
        trainer = Trainer(config, model, train_data, valid_data, lr, loss, min_nbor_dist)
    else:
        trainer = DistributedTrainer(cluster, config, model, train_data, valid_data, lr, loss,
                                     min_nbor_dist, replica_data)
    if restart is not None:
        trainer.restart(restart)
    elif init_model is not None:
        trainer.init_model(init_model)
    if cluster is not None:
        trainer.synchronize()
    return trainer
