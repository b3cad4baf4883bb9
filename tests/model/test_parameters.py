"""Parameter counts: with type embedding one descriptor net and one fitting net serve every type;
without, the embedding nets number Nt (type_one_side) or Nt^2 and the fitting nets Nt. Variables
are all reachable by tf.train.Checkpoint; the model rebuilds from its config."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.model import EnergyModel, count_parameters
from deepmd_tebd.config import ConfigError
from deepmd_tebd.data.stats import ModelStatistics
from model_helpers import Frame, build_model, model_config, model_settings


def parameter_counts(ntypes, tebd, type_one_side):
    cfg = model_config([4] * ntypes, tebd=tebd, type_one_side=type_one_side, neuron=(8, 16),
                       axis_neuron=4, fitting=(16, 16))
    model = EnergyModel(model_settings(cfg))
    model.build()
    return {
        "embedding": count_parameters(sum((n.trainable_variables
                                           for n in model.descriptor.nets()), [])),
        "embedding_nets": len(model.descriptor.nets()),
        "fitting": count_parameters(model.fitting.trainable_variables),
        "fitting_nets": len(model.fitting.nets()),
        "type_embedding": (count_parameters(model.type_embedding.trainable_variables)
                           if tebd else 0),
        "total": count_parameters(model.trainable_variables),
    }


@pytest.mark.parametrize("type_one_side", [True, False])
def test_type_embedding_shares_parameters(type_one_side):
    two = parameter_counts(2, True, type_one_side)
    eight = parameter_counts(8, True, type_one_side)
    assert two["embedding_nets"] == eight["embedding_nets"] == 1
    assert two["fitting_nets"] == eight["fitting_nets"] == 1
    assert two["embedding"] == eight["embedding"]
    assert two["fitting"] == eight["fitting"]
    # only the type embedding net (its one-hot input) grows with the types
    assert eight["total"] - eight["type_embedding"] == two["total"] - two["type_embedding"]
    assert eight["type_embedding"] > two["type_embedding"]


@pytest.mark.slow
@pytest.mark.parametrize("type_one_side, nets", [(True, lambda t: t), (False, lambda t: t * t)])
def test_per_type_nets_grow_with_the_types(type_one_side, nets):
    two = parameter_counts(2, False, type_one_side)
    eight = parameter_counts(8, False, type_one_side)
    assert two["embedding_nets"] == nets(2) and eight["embedding_nets"] == nets(8)
    assert eight["embedding"] * nets(2) == two["embedding"] * nets(8)
    assert two["fitting_nets"] == 2 and eight["fitting_nets"] == 8
    assert eight["fitting"] * 2 == two["fitting"] * 8


def test_checkpoint_holds_every_variable(tmp_path):
    frame = Frame.random(61, "triclinic")
    cfg = model_config(frame.sel(), tebd=True, type_one_side=False)
    model = build_model(cfg)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path)
             if name.startswith("model/")]
    assert len(saved) == len(model.variables)
    cfg["descriptor"]["seed"] = cfg["fitting_net"]["seed"] = None
    cfg["type_embedding"]["seed"] = None
    fresh = EnergyModel(model_settings(cfg))
    fresh.build()
    tf.train.Checkpoint(model=fresh).read(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(frame.evaluate(fresh)["energy"],
                                  frame.evaluate(model)["energy"])


def test_model_rebuilds_from_its_config():
    frame = Frame.random(62, "open")
    model = build_model(model_config(frame.sel(), tebd=True))
    again = EnergyModel.from_config(model.get_config())
    again.build()
    again.set_statistics(ModelStatistics(model.descriptor.davg.numpy(),
                                         model.descriptor.dstd.numpy(),
                                         model.fitting.bias_atom_e.numpy()))
    assert again.get_config() == model.get_config()
    np.testing.assert_array_equal(frame.evaluate(again)["energy"],
                                  frame.evaluate(model)["energy"])


@pytest.mark.parametrize("change, message", [
    (lambda c: c["descriptor"].update(type="se_e2_r"), "model/descriptor/type: .*not implemented"),
    (lambda c: c["descriptor"].update(sel=[4, 4, 4]), "model/descriptor/sel: expected one entry "
                                                      "per type"),
    (lambda c: c["fitting_net"].update(type="dipole"), "model/fitting_net/type: .*not "
                                                       "implemented"),
    (lambda c: c["fitting_net"].update(activation_function="linear"),
     "model/fitting_net/activation_function: expected one of"),
    (lambda c: c["descriptor"].update(precision="float8"), "model/descriptor/precision: "
                                                           "expected one of"),
])
def test_unsupported_model_sections_are_rejected(change, message):
    cfg = model_config([4, 4])
    change(cfg)
    with pytest.raises(ConfigError, match=message):
        model_settings(cfg)


def test_model_with_unresolved_sel_is_rejected():
    cfg = model_config([4, 4])
    cfg["descriptor"]["sel"] = "auto"
    with pytest.raises(ValueError, match="resolve 'auto'"):
        EnergyModel(model_settings(cfg))
