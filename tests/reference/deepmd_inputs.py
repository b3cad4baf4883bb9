"""DeePMD-kit's own input scripts without `model/type_map`, as dicts (the data paths are the
caller's).

v1_water_se_a: the layout and settings of DeePMD-kit's
source/tests/tf/compat_inputs/water_se_a_v1.json (v1: data keys inside `training`, `decay_rate`,
`numb_test`). tebd_water_se_a_type: the model section of source/tests/tf/water_se_a_type.json
(type embedding), given the v2 training sections that `dp train` needs (DeePMD-kit's unit tests
build the trainer from that file by hand; its flat training keys are no layout `dp train` reads).
"""
from __future__ import annotations


def v1_water_se_a(systems=("../data/",)) -> dict:
    """The layout and settings of DeePMD-kit's compat_inputs/water_se_a_v1.json."""
    return {
        "model": {
            "descriptor": {"type": "se_a", "sel": [46, 92], "rcut_smth": 5.80, "rcut": 6.00,
                           "neuron": [25, 50, 100], "axis_neuron": 16, "resnet_dt": False,
                           "seed": 1},
            "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": 1},
        },
        "learning_rate": {"type": "exp", "decay_steps": 5000, "decay_rate": 0.95,
                          "start_lr": 0.001},
        "loss": {"start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000,
                 "limit_pref_f": 1, "start_pref_v": 0, "limit_pref_v": 0},
        "training": {"systems": list(systems), "stop_batch": 1000000, "batch_size": [1],
                     "seed": 1, "disp_file": "lcurve.out", "disp_freq": 100, "numb_test": 10,
                     "save_freq": 1000, "save_ckpt": "model.ckpt", "disp_training": True,
                     "time_training": True},
    }


def tebd_water_se_a_type(systems=("../data/data_0",)) -> dict:
    """The model section of DeePMD-kit's water_se_a_type.json (type embedding, no type_map) with
    v2 training sections."""
    return {
        "_comment1": " model parameters",
        "model": {
            "type_embedding": {"neuron": [5, 10, 10], "resnet_dt": False, "seed": 1},
            "descriptor": {"type": "se_a", "sel": [46, 92], "rcut_smth": 5.80, "rcut": 6.00,
                           "neuron": [25, 50, 100], "resnet_dt": False, "type_one_side": False,
                           "axis_neuron": 16, "seed": 1},
            "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": 1},
        },
        "learning_rate": {"type": "exp", "start_lr": 0.005, "decay_steps": 5000,
                          "stop_lr": 3.51e-8},
        "loss": {"start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000,
                 "limit_pref_f": 1, "start_pref_v": 0, "limit_pref_v": 0},
        "training": {"training_data": {"systems": list(systems), "batch_size": 1},
                     "numb_steps": 1000000, "seed": 1, "disp_file": "lcurve.out",
                     "disp_freq": 100, "save_freq": 1000, "save_ckpt": "model.ckpt"},
    }
