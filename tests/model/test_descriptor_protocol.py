"""A descriptor added through the protocol alone (model/descriptor.py: Descriptor): a radial
toy, registered in the three tables a descriptor type has (the schema's variants, the settings
classes, the model's descriptor layers) by this file, trains, is frozen and evaluated, and is
refused by compression, with no other code knowing it."""
import json
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
from shared_paths import WATER, needs_water

from deepmd_tebd.config import build_config, normalize
from deepmd_tebd.config import schema as S
from deepmd_tebd.config.descriptors import DESCRIPTOR_SETTINGS, DescriptorConfig
from deepmd_tebd.model import DESCRIPTORS, EnvMatDescriptor

TOY = "toy_radial"
STEPS = 5


@dataclass(frozen=True)
class RadialConfig(DescriptorConfig):
    """The toy's settings: the common ones; its width is the embedding net's last."""

    @property
    def dim_out(self) -> int:
        return self.neuron[-1]


class DescriptorRadial(EnvMatDescriptor):
    """D_i = sum over the slots of s~ G(s~) / nnei, G one embedding net on s~ alone."""

    def __init__(self, settings, tebd_dim=0, name="descriptor", mixed_precision=None, **kwargs):
        super().__init__(settings, tebd_dim, name, mixed_precision, **kwargs)
        self.add_net("filter_radial", 1, "filter_radial")

    def descriptor_of_env_mat(self, rmat, atype, natoms, type_embedding=None, nlist=None):
        s = self.masked_env_mat(rmat, atype, natoms)[..., :1]  # [nf, nloc, nnei, 1]
        return tf.cast(tf.reduce_sum(s * self.filter_radial(s), axis=2) / self.nnei, tf.float64)


def register(monkeypatch):
    """The toy in the schema's variants, the settings classes and the model's table."""
    properties = {k: v for k, v in S.SE_E2_A["properties"].items()
                  if k not in ("axis_neuron", "type_one_side", "env_protection")}
    monkeypatch.setitem(S.VARIANTS[("model", "descriptor")], TOY,
                        {**S.SE_E2_A, "properties": properties})
    monkeypatch.setitem(DESCRIPTOR_SETTINGS, TOY, RadialConfig)
    monkeypatch.setitem(DESCRIPTORS, TOY, DescriptorRadial)


def toy_script():
    return {
        "model": {"type_map": ["O", "H"], "type_embedding": {"neuron": [2], "seed": 1},
                  "descriptor": {"type": TOY, "sel": [46, 92], "rcut": 6.0, "rcut_smth": 0.5,
                                 "neuron": [4, 8], "seed": 1},
                  "fitting_net": {"neuron": [8], "seed": 1}, "data_stat_nbatch": 1},
        "learning_rate": {"start_lr": 1e-3, "decay_steps": 5},
        "loss": {},
        "training": {"training_data": {"systems": [str(WATER / "data_0")], "batch_size": 1},
                     "numb_steps": STEPS, "disp_freq": 1, "save_freq": 1000, "seed": 1},
    }


def sorted_frames(n=2):
    """The first n frames of data_3, atoms sorted by type, as the model takes them."""
    atype = np.loadtxt(WATER / "data_3/type.raw", dtype=np.int32)
    order = np.argsort(atype, kind="stable")
    coord = np.load(WATER / "data_3/set.000/coord.npy")[:n].reshape(n, -1, 3)[:, order]
    box = np.load(WATER / "data_3/set.000/box.npy")[:n]
    natoms = np.array([len(atype), len(atype), *np.bincount(atype)], np.int32)
    return coord, box, atype[order], natoms


@needs_water
def test_a_descriptor_added_through_the_protocol_alone_trains_and_freezes(tmp_path,
                                                                          monkeypatch):
    from deepmd_tebd.infer import DeepPot
    from deepmd_tebd.infer.compression import CompressionRefused, compress
    from deepmd_tebd.infer.frozen import freeze, read_graph_def
    from deepmd_tebd.infer.weight_names import graph_constants
    from deepmd_tebd.train.build import build_trainer
    from deepmd_tebd.train.lcurve import read_lcurve

    register(monkeypatch)
    monkeypatch.chdir(tmp_path)
    config = build_config(normalize(toy_script(), "toy.json"))
    trainer = build_trainer(config)
    model = trainer.model
    assert isinstance(model.descriptor, DescriptorRadial)
    # the statistics came from the toy's environment matrix (stat_env_mat)
    davg, dstd = model.descriptor.davg.numpy(), model.descriptor.dstd.numpy()
    assert np.all(davg[:, 0::4] > 0) and np.all(dstd != 1.0)
    initial = model.descriptor.filter_radial.matrix_1.numpy().copy()
    trainer.run()
    assert int(trainer.step) == STEPS
    _, rows = read_lcurve("lcurve.out")
    assert rows[:, 0].tolist() == list(range(STEPS + 1))
    assert not np.allclose(model.descriptor.filter_radial.matrix_1.numpy(), initial)

    assert freeze(".", "graph.pb") > 0
    constants = graph_constants(read_graph_def("graph.pb"))
    np.testing.assert_array_equal(constants["filter_radial/matrix_1"],
                                  model.descriptor.filter_radial.matrix_1.numpy())
    coord, box, atype, natoms = sorted_frames()
    e, f, v = DeepPot("graph.pb").eval(coord, box, atype)
    out = model(coord.reshape(2, -1), np.tile(atype, (2, 1)), natoms, box, np.zeros(6, np.int32))
    np.testing.assert_allclose(e.ravel(), out["energy"].numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(f.reshape(2, -1), out["force"].numpy(), rtol=0,
                               atol=1e-12 * np.abs(f).max())
    np.testing.assert_allclose(v, out["virial"].numpy(), rtol=0,
                               atol=1e-12 * np.abs(v).max())

    with pytest.raises(CompressionRefused, match=f"the {TOY} descriptor"):
        compress("graph.pb", "compressed.pb")
    assert sorted(p.name for p in tmp_path.glob("*.pb")) == ["graph.pb"]
    script = json.loads(constants["train_attr/training_script"].item())
    assert script["model"]["descriptor"]["type"] == TOY
