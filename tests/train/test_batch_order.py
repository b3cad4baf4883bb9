"""The training loop draws its batches in DeePMD-kit's order (deepmd/train/trainer.py: DPTrainer.train): statistics batches, one
dropped prefetch, the first training batch, the step-0 validation batches, then per step the
next training batch before that step's validation batches. The reference sequence comes from
DeePMD-kit 3.2's own data classes driven in that order."""
import json
import textwrap

import numpy as np
import pytest
from reference.deepmd_oracle import run_oracle_script
from shared_paths import WATER, needs_water

from deepmd_tebd.config import build_config, normalize
from deepmd_tebd.data.data_system import DataSystem
from deepmd_tebd.train.build import build_trainer

pytestmark = pytest.mark.slow

SEED, NSTAT, NUMB_BTCH, STEPS, DISP = 20240611, 2, 2, 7, 3

DEEPMD_ORDER = textwrap.dedent("""
    import json, sys
    from deepmd.utils import random as dp_random
    from deepmd.utils.data_system import DeepmdDataSystem

    a = json.loads(sys.argv[1])
    dp_random.seed(a["seed"])

    def data(systems, batch_size):
        d = DeepmdDataSystem(systems, batch_size, test_size=1, rcut=6.0, type_map=["O", "H"],
                             trn_all_set=True)
        d.add("energy", 1, atomic=False, must=True, high_prec=True)
        d.add("force", 3, atomic=True, must=True, high_prec=False)
        return d

    train, valid = data(a["train"], "auto"), data(a["valid"], 1)
    draws = []
    def draw(name, d, **kw):
        draws.append([name, d.get_batch(**kw)["energy"].ravel().tolist()])
    for k in range(train.get_nsystems()):  # statistics
        for _ in range(a["nstat"]):
            draw("train", train, sys_idx=k)
    draw("train", train)  # the data loader's prefetch, dropped
    draw("train", train)  # the first training batch
    for _ in range(a["numb_btch"]):  # the step-0 row
        draw("valid", valid)
    for step in range(1, a["steps"] + 1):
        draw("train", train)  # fetched with step's update
        if step % a["disp"] == 0:
            for _ in range(a["numb_btch"]):
                draw("valid", valid)
    print(json.dumps(draws))
""")


def small_script():
    return build_config(normalize({
        "model": {
            "type_map": ["O", "H"],
            "type_embedding": {"neuron": [2], "seed": 1},
            "descriptor": {"type": "se_e2_a", "sel": [46, 92], "rcut": 6.0, "rcut_smth": 0.5,
                           "neuron": [4, 8], "axis_neuron": 2, "seed": 1},
            "fitting_net": {"neuron": [8], "seed": 1},
            "data_stat_nbatch": NSTAT,
        },
        "learning_rate": {"start_lr": 1e-3, "decay_steps": 5},
        "loss": {},
        "training": {
            "training_data": {"systems": [str(WATER / f"data_{k}") for k in range(3)],
                              "batch_size": "auto"},
            "validation_data": {"systems": [str(WATER / "data_3")], "batch_size": 1,
                                "numb_btch": NUMB_BTCH},
            "numb_steps": STEPS, "disp_freq": DISP, "save_freq": 1000, "seed": SEED,
        },
    }))


@needs_water
def test_batches_are_drawn_in_deepmd_kits_order(tmp_path, monkeypatch):
    args = {"seed": SEED, "nstat": NSTAT, "numb_btch": NUMB_BTCH, "steps": STEPS, "disp": DISP,
            "train": [str(WATER / f"data_{k}") for k in range(3)],
            "valid": [str(WATER / "data_3")]}
    theirs = json.loads(run_oracle_script(DEEPMD_ORDER, args, tmp_path))

    drawn = []
    get_batch = DataSystem.get_batch

    def recording(self, sys_idx=None):
        batch = get_batch(self, sys_idx)
        drawn.append((self, batch["energy"].ravel().tolist()))
        return batch

    monkeypatch.setattr(DataSystem, "get_batch", recording)
    monkeypatch.chdir(tmp_path)
    trainer = build_trainer(small_script())
    trainer.run()
    names = {id(trainer.train_data): "train", id(trainer.valid_data): "valid"}
    ours = [[names[id(d)], energies] for d, energies in drawn]
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a[0] == b[0], f"draw {k}: {a[0]} instead of {b[0]}"
        np.testing.assert_array_equal(a[1], b[1], err_msg=f"draw {k} ({a[0]})")
