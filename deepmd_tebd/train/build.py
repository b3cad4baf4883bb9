"""Objects of a training run from the typed settings: data, model, its start, trainer."""
from __future__ import annotations

from ..config.objects import Config
from ..data.data_system import DataSystem
from ..data.sampling import make_data_rng
from ..learning_rate import ExpDecayLR
from ..loss import EnergyLoss
from ..model import EnergyModel
from .distributed import DistributedTrainer
from .model_start import FreshStart, ModelStart
from .trainer import Trainer


def build_data(config: Config, labels: list[str], cluster=None):
    """(training data, the training data of this process's other replicas, validation data or
    None) of `config`. With a cluster the data RNG's key is [rank, training.seed], the rank
    plus the replica's index in a process of several replicas (sampling.make_data_rng)."""
    model_settings, training = config.model, config.training
    type_map = list(model_settings.type_map)
    fitting = model_settings.fitting
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
    return train_data, replica_data, valid_data


def build_trainer(config: Config, start: ModelStart | None = None,
                  min_nbor_dist: float | None = None, cluster=None) -> Trainer:
    """The trainer of `config` (sel resolved), its model started by `start`
    (train/model_start.py; default: FreshStart, the statistics of the data).

    cluster: a data-parallel run (train/distributed.py: connect): the statistics are computed
    on the chief and every worker starts from the chief's state."""
    start = FreshStart() if start is None else start
    lr = ExpDecayLR.from_config(config.learning_rate, config.training.numb_steps)
    loss = EnergyLoss(config.loss, lr.start_lr)
    train_data, replica_data, valid_data = build_data(config, loss.labels, cluster)
    model = EnergyModel(config.model, mixed_precision=config.training.mixed_precision)
    start.prepare(model, train_data, config, cluster is None or cluster.is_chief)
    if cluster is None:
        trainer = Trainer(config, model, train_data, valid_data, lr, loss, min_nbor_dist)
    else:
        trainer = DistributedTrainer(cluster, config, model, train_data, valid_data, lr, loss,
                                     min_nbor_dist, replica_data)
    start.resume(trainer)
    if cluster is not None:
        trainer.synchronize()
    return trainer
