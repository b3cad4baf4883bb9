"""Net precisions: single-precision type embedding, descriptor and fitting nets still give float64
energies, forces and virials, close to the double-precision model with the same weights."""
import copy

import numpy as np

from model_helpers import Frame, build_model, model_config


def test_single_precision_nets_give_float64_outputs_close_to_double():
    frame = Frame.random(81, "triclinic")
    cfg = model_config(frame.sel(), tebd=True, type_one_side=False)
    double = build_model(cfg)
    cfg32 = copy.deepcopy(cfg)
    for section in ("descriptor", "fitting_net", "type_embedding"):
        cfg32[section]["precision"] = "float32"
    single = build_model(cfg32)
    weights = double.graph_variables()
    for name, var in single.graph_variables().items():
        var.assign(weights[name].numpy().astype(var.dtype))
    assert single.descriptor.filter_type_all.variables[0].dtype == "float32"
    assert single.descriptor.davg.dtype == "float64"
    out64, out32 = frame.evaluate(double), frame.evaluate(single)
    for key in ("energy", "force", "virial", "atom_energy", "atom_virial"):
        assert out32[key].dtype == np.float64
        scale = np.abs(out64[key]).max()
        np.testing.assert_allclose(out32[key], out64[key], atol=1e-4 * scale, err_msg=key)
