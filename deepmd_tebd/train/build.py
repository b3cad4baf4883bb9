"""Objects of a training run from the normalised script: data, statistics, model, trainer."""
from __future__ import annotations

import logging

from ..config.objects import build_config
from ..data.data_system import DataSystem
from ..data.stats import (collect_stat_batches, compute_aparam_stats, compute_descriptor_stats,
                          compute_energy_bias, compute_fparam_stats)
from ..learning_rate import ExpDecayLR
from ..loss import EnergyLoss
from ..model import EnergyModel
from .trainer import Trainer

log = logging.getLogger("deepmd_tebd")


def build_trainer(config: dict, restart: str | None = None, init_model: str | None = None,
                  min_nbor_dist: float | None = None) -> Trainer:
    model_cfg, training = config["model"], config["training"]
    type_map = model_cfg["type_map"]
    fitting = model_cfg["fitting_net"]
    lr = ExpDecayLR.from_config(config["learning_rate"], training["numb_steps"])
    loss = EnergyLoss(config.get("loss"), lr.start_lr)
    labels = loss.labels
    # labels of the active loss terms must exist (a missing force.npy is an error, not a
    # silently disabled force term)
    data_args = dict(labels=labels, required=labels, numb_fparam=fitting["numb_fparam"],
                     numb_aparam=fitting["numb_aparam"])
    data_config = build_config(config).training  # the data sections as DataConfig objects
    train_data = DataSystem.from_config(data_config.training_data, type_map,
                                        seed=training.get("seed"), **data_args)
    train_data.log_summary("training")
    valid_data = None
    if data_config.validation_data is not None:
        valid_data = DataSystem.from_config(data_config.validation_data, type_map,
                                            rng=train_data.rng, **data_args)
        valid_data.log_summary("validation")

    model = EnergyModel.from_config_dict(model_cfg)
    if restart is None and init_model is None:
        log.info("data stating... (this step may take long time)")
        stat_batches = collect_stat_batches(train_data, model_cfg["data_stat_nbatch"])
        descriptor = model_cfg["descriptor"]
        davg, dstd = compute_descriptor_stats(stat_batches, len(type_map), descriptor["sel"],
                                              descriptor["rcut"], descriptor["rcut_smth"],
                                              descriptor["set_davg_zero"])
        bias = compute_energy_bias(stat_batches, len(type_map), fitting["rcond"],
                                   fitting["atom_ener"] or None)
        params = {}
        protect = model_cfg["data_stat_protect"]
        if fitting["numb_fparam"] > 0:
            params["fparam_avg"], params["fparam_istd"] = compute_fparam_stats(
                stat_batches, fitting["numb_fparam"], protect)
        if fitting["numb_aparam"] > 0:
            params["aparam_avg"], params["aparam_istd"] = compute_aparam_stats(
                stat_batches, fitting["numb_aparam"], protect)
        model.set_statistics(davg=davg, dstd=dstd, bias_atom_e=bias, **params)
        log.info("initialize model from scratch")
    else:
        model.build()
    trainer = Trainer(config, model, train_data, valid_data, lr, loss, min_nbor_dist)
    if restart is not None:
        trainer.restart(restart)
    elif init_model is not None:
        trainer.init_model(init_model)
    return trainer

