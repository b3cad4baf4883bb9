"""One worker of a data-parallel run, driven step by step for the tests: the cluster from
TF_CONFIG and the trainer exactly as `dp train` builds them (train/distributed.py: connect,
train/build.py: build_trainer), then `steps` training steps; saves to OUT (npz) the chief's
starting variables (model and optimizer), every batch trained on (`batch_<step>_<key>`; with
several replicas in the process, replica r's as `batch<r>_<step>_<key>`) and the trainable
weights after every step.

    python distributed_worker.py INPUT OUT STEPS
"""
import sys

import numpy as np


def main(input_path: str, out: str, steps: int) -> None:
    from deepmd_tebd.config import load_settings
    from deepmd_tebd.data.script_check import check_against_data
    from deepmd_tebd.train.build import build_trainer
    from deepmd_tebd.train.distributed import connect

    cluster = connect()
    config, min_dist = check_against_data(load_settings(input_path), input_path, True)
    trainer = build_trainer(config, min_nbor_dist=min_dist, cluster=cluster)
    model = trainer.model
    saved = {f"start_{i}": np.array(v) for i, v in enumerate(model.variables)}
    trainer._batch(trainer.train_data)  # the prefetch a fresh run discards (Trainer._loop)
    for step in range(steps):
        batch = trainer._draw()  # with several replicas, one batch of each (Trainer._loop)
        trainer.train_step(batch)
        for r, replica_batch in enumerate(trainer.strategy.batches(batch)):
            for key, value in replica_batch.items():
                saved[f"batch{r or ''}_{step}_{key}"] = np.asarray(value)
        for i, v in enumerate(model.trainable_variables):
            saved[f"weights_{step}_{i}"] = np.array(v)
    np.savez(out, **saved)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
