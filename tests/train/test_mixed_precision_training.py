"""DeePMD-kit 2.2's se_e2_a mixed-precision water example (examples/water/se_e2_a_mixed_prec/
input.json as of v2.2.0-v2.2.2, the versions whose output_prec DeePMD-kit's trainer accepts) trains
with `dp train`, writes a finite learning curve and a checkpoint with the loss scale, and freezes
to a graph that computes in float16."""
import json
import math

import pytest
import tensorflow as tf
from dp_command import run_dp
from shared_paths import WATER, needs_water
from test_dp_train import dp_train, rows

pytestmark = pytest.mark.slow


def example_input(numb_steps=20, disp_freq=10):
    """The example's keys (comments dropped), the data paths pointed at the water data."""
    return {
        "model": {"type_map": ["O", "H"],
                  "descriptor": {"type": "se_e2_a", "sel": [46, 92], "rcut_smth": 0.50,
                                 "rcut": 6.00, "neuron": [25, 50, 100], "resnet_dt": False,
                                 "axis_neuron": 16, "seed": 1},
                  "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": 1}},
        "learning_rate": {"type": "exp", "decay_steps": 5000, "start_lr": 0.001,
                          "stop_lr": 3.51e-8},
        "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000,
                 "limit_pref_f": 1, "start_pref_v": 0, "limit_pref_v": 0},
        "training": {
            "training_data": {"systems": [str(WATER / f"data_{k}") for k in range(3)],
                              "batch_size": "auto"},
            "validation_data": {"systems": [str(WATER / "data_3")], "batch_size": 1,
                                "numb_btch": 3},
            "mixed_precision": {"compute_prec": "float16", "output_prec": "float32"},
            "numb_steps": numb_steps, "seed": 10, "disp_file": "lcurve.out",
            "disp_freq": disp_freq, "save_freq": numb_steps},
    }


@needs_water
def test_mixed_precision_example_trains_with_finite_lcurve_and_freezes(tmp_path):
    (tmp_path / "input.json").write_text(json.dumps(example_input()))
    result = dp_train(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = [[float(v) for v in r.split()] for r in rows(tmp_path / "lcurve.out")]
    assert [int(r[0]) for r in table] == [0, 10, 20]
    assert all(math.isfinite(v) for r in table for v in r)
    reader = tf.train.load_checkpoint(str(tmp_path / "model.ckpt"))
    names = reader.get_variable_to_shape_map()
    scale = [n for n in names if n.startswith("loss_scale/") and "scale" in n.split("/")[1]]
    assert scale and 1.0 <= reader.get_tensor(scale[0]) <= 2.0 ** 15
    frozen = run_dp(tmp_path, "freeze", "-o", "g.pb")
    assert frozen.returncode == 0, frozen.stderr[-3000:]
    graph = tf.compat.v1.GraphDef.FromString((tmp_path / "g.pb").read_bytes())
    half = [n for n in graph.node if n.op in ("MatMul", "BatchMatMulV2")
            and n.attr["T"].type == tf.float16.as_datatype_enum]
    assert half
