"""The training loop draws its batches in DeePMD-kit's order and from DeePMD-kit's random
sequence: statistics batches, one dropped prefetch, the first training batch, the step-0
validation batches, then per step the next training batch before that step's validation
batches, all from one RNG keyed [rank, seed]. The reference is DeePMD-kit 3.2's own `dp train`
on the same script, every batch its data systems hand out recorded from the moment its data RNG
is seeded (the neighbour statistics draw one batch before that, from their own copy of the
data, unseeded)."""
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

# DeePMD-kit's dp train with its data classes patched to record the batches: in a process of
# its own, so that neither the patches nor the trainer's state reach the oracle process's other
# scripts
RECORDER = textwrap.dedent("""
    import json, sys
    from deepmd.utils import random as dp_random
    from deepmd.utils.data_system import DeepmdDataSystem
    from deepmd.main import main

    draws, seeded = [], []
    get_batch, seed = DeepmdDataSystem.get_batch, dp_random.seed

    def recording(self, sys_idx=None):
        batch = get_batch(self, sys_idx)
        if seeded:  # one training system set and one validation set here
            name = "train" if self.get_nsystems() > 1 else "valid"
            draws.append([name, batch["energy"].ravel().tolist()])
        return batch

    def seeding(val=None):
        seeded.append(val)
        seed(val)

    DeepmdDataSystem.get_batch, dp_random.seed = recording, seeding
    main(["--tf", "train", "input.json"])
    assert len(seeded) == 1, f"the data RNG was seeded {len(seeded)} times"
    with open("draws.json", "w") as f:
        json.dump(draws, f)
""")

DEEPMD_ORDER = textwrap.dedent("""
    import json, subprocess, sys
    with open("input.json", "w") as f:
        json.dump(json.loads(sys.argv[1]), f)
    run = subprocess.run([sys.executable, "record_batches.py"], capture_output=True, text=True,
                         timeout=600)
    if run.returncode != 0:
        sys.exit(run.stderr[-3000:])
    with open("draws.json") as f:
        print(json.dumps(json.load(f)))
""")


def small_script() -> dict:
    return {
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
    }


@needs_water
def test_batches_are_drawn_in_deepmd_kits_order(tmp_path, monkeypatch):
    (tmp_path / "record_batches.py").write_text(RECORDER)
    theirs = json.loads(run_oracle_script(DEEPMD_ORDER, small_script(), tmp_path, timeout=900))

    drawn = []
    get_batch = DataSystem.get_batch

    def recording(self, sys_idx=None):
        batch = get_batch(self, sys_idx)
        drawn.append((self, batch["energy"].ravel().tolist()))
        return batch

    monkeypatch.setattr(DataSystem, "get_batch", recording)
    ours_dir = tmp_path / "ours"
    ours_dir.mkdir()
    monkeypatch.chdir(ours_dir)
    trainer = build_trainer(build_config(normalize(small_script())))
    trainer.run()
    names = {id(trainer.train_data): "train", id(trainer.valid_data): "valid"}
    ours = [[names[id(d)], energies] for d, energies in drawn]
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a[0] == b[0], f"draw {k}: {a[0]} instead of {b[0]}"
        np.testing.assert_array_equal(a[1], b[1], err_msg=f"draw {k} ({a[0]})")
