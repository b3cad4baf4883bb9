"""The se_e2_a descriptor against a NumPy evaluation of the same weights, the embedding input
with type embedding, and excluded type pairs."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.model import DescriptorSeA
from deepmd_tebd.model.descriptor import exclusion_mask, slot_types
from deepmd_tebd.model.embedding_blocks import live_counts
from deepmd_tebd.config import ConfigError
from model_helpers import (Frame, build_model, descriptor_settings, model_config, model_settings,
                           numpy_mlp)


def numpy_descriptor(model, frame, rmat):
    """D = A^T A[:, :M2], A = R~^T G / nnei, with G from the nets evaluated in NumPy."""
    desc = model.descriptor
    nnei, m2 = desc.nnei, desc.axis_neuron
    rmat = rmat.reshape(frame.nat, nnei, 4)
    slots = slot_types(desc.sel)
    offsets = np.concatenate([[0], np.cumsum(desc.sel)])
    tebd = None if model.type_embedding is None else model.type_embedding.table().numpy()
    out = []
    for i in range(frame.nat):
        ti = frame.atype[i]
        s = rmat[i, :, :1]
        if tebd is not None:
            parts = [s, tebd[slots]]
            if not desc.type_one_side:
                parts.append(np.repeat(tebd[ti][None], nnei, axis=0))
            net = desc.filter_type_all
            g = numpy_mlp(net, np.concatenate(parts, axis=1), net.rules)
        else:
            blocks = []
            for j in range(desc.ntypes):
                net = getattr(desc, f"filter_type_all_{j}" if desc.type_one_side
                              else f"filter_type_{ti}_{j}")
                blocks.append(numpy_mlp(net, s[offsets[j]:offsets[j + 1]], net.rules))
            g = np.concatenate(blocks, axis=0)
        a = rmat[i].T @ g / nnei
        out.append((a.T @ a[:, :m2]).reshape(-1))
    return np.array(out)


@pytest.mark.slow
@pytest.mark.parametrize("tebd, type_one_side", [(True, True), (True, False), (False, True),
                                                 (False, False)])
def test_descriptor_matches_numpy_evaluation_of_the_same_weights(tebd, type_one_side):
    frame = Frame.random(41, "triclinic", ntypes=3)
    model = build_model(model_config(frame.sel(margin=3), tebd=tebd,
                                     type_one_side=type_one_side, neuron=(4, 8, 16),
                                     axis_neuron=3))
    out = frame.evaluate(model)
    # empty slots exist: they enter with (-davg/dstd, 0, 0, 0) and their block's embedding
    assert np.any(out["nlist"] < 0)
    expected = numpy_descriptor(model, frame, out["rmat"][0])
    assert out["descriptor"].shape == (1, frame.nat, 16 * 3)
    np.testing.assert_allclose(out["descriptor"][0], expected, rtol=1e-11,
                               atol=1e-13 * np.abs(expected).max())


def test_layer_call_gives_the_model_descriptor_and_env_mat():
    frame = Frame.random(43, "open")
    model = build_model(model_config(frame.sel(), tebd=True, type_one_side=False))
    out = frame.evaluate(model)
    alone = model.descriptor(frame.coord.reshape(1, -1), frame.atype.reshape(1, -1),
                             frame.natoms, np.zeros((1, 9)), frame.mesh,
                             type_embedding=model.type_embedding.table())
    for key in ("descriptor", "rmat", "rmat_deriv", "rij", "nlist"):
        np.testing.assert_array_equal(alone[key].numpy(), out[key], err_msg=key)


def test_embedding_input_width_with_and_without_centre_type():
    one_side = descriptor_settings([3, 5], neuron=[4, 8], axis_neuron=2, type_one_side=True)
    two_side = descriptor_settings([3, 5], neuron=[4, 8], axis_neuron=2, type_one_side=False)
    assert DescriptorSeA(one_side, tebd_dim=6).embedding_input_width == 7
    assert DescriptorSeA(two_side, tebd_dim=6).embedding_input_width == 13
    assert DescriptorSeA(two_side).embedding_input_width == 1


def test_exclusion_mask_is_symmetric_and_per_slot_block():
    mask = exclusion_mask([[0, 2]], [1, 2, 3])
    expected = np.array([[1, 1, 1, 0, 0, 0],
                         [1, 1, 1, 1, 1, 1],
                         [0, 1, 1, 1, 1, 1]], dtype=float)
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("tebd, type_one_side", [(True, True), (True, False), (False, True),
                                                 (False, False)])
def test_excluded_types_do_not_see_each_other(tebd, type_one_side):
    frame = Frame.random(42, "triclinic")
    model = build_model(model_config(frame.sel(margin=3), tebd=tebd,
                                     type_one_side=type_one_side, exclude_types=[[1, 0]]))
    rng = np.random.default_rng(6)
    coords = np.repeat(frame.coord[None], 3, axis=0)
    type0, type1 = frame.atype == 0, frame.atype == 1
    coords[1, type1] += rng.normal(scale=0.1, size=(type1.sum(), 3))
    coords[2, type0] += rng.normal(scale=0.1, size=(type0.sum(), 3))
    atom_e = frame.evaluate(model, coords)["atom_energy"]
    np.testing.assert_allclose(atom_e[1, type0], atom_e[0, type0], rtol=1e-12)
    np.testing.assert_allclose(atom_e[2, type1], atom_e[0, type1], rtol=1e-12)
    assert not np.allclose(atom_e[1, type1], atom_e[0, type1])


def test_per_type_nets_without_type_embedding_skip_excluded_pairs():
    desc = DescriptorSeA(descriptor_settings([2, 2, 2], neuron=[4], axis_neuron=2,
                                             type_one_side=False, exclude_types=[[0, 1]]))
    names = {net.name for net in desc.nets()}
    assert "filter_type_0_1" not in names and "filter_type_1_0" not in names
    assert len(names) == 7


def test_statistics_are_non_trainable_and_tiled_per_component():
    desc = DescriptorSeA(descriptor_settings([2, 3], neuron=[4], axis_neuron=2), tebd_dim=2)
    desc.build()
    assert {v.name for v in desc.non_trainable_variables} == {"t_avg", "t_std"}
    desc.set_statistics([[1, 0, 0, 0], [2, 0, 0, 0]], [[3, 4, 4, 4], [5, 6, 6, 6]])
    assert desc.davg.shape == (2, 20)
    np.testing.assert_array_equal(desc.davg.numpy()[1, 4:8], [2, 0, 0, 0])
    np.testing.assert_array_equal(desc.dstd.numpy()[0, -4:], [3, 4, 4, 4])
    with pytest.raises(ValueError, match="davg must have shape"):
        desc.set_statistics(np.ones((2, 7)), np.ones((2, 20)))


@pytest.mark.parametrize("change, message", [
    (dict(rcut=3.0, rcut_smth=4.0), "rcut_smth"),
    (dict(axis_neuron=9), "axis_neuron"),
    (dict(exclude_types=[[0, 5]]), "exclude_types"),
])
def test_inconsistent_descriptor_settings_are_rejected(change, message):
    cfg = model_config([2, 3], neuron=[4, 8], axis_neuron=2)
    cfg["descriptor"].update(change)
    with pytest.raises(ConfigError, match=message):
        model_settings(cfg)


def test_unresolved_sel_is_rejected_by_the_layer():
    cfg = model_config([2, 3])
    cfg["descriptor"]["sel"] = "auto"
    with pytest.raises(ValueError, match="resolve 'auto'"):
        DescriptorSeA(model_settings(cfg).descriptor)


@pytest.mark.parametrize("type_one_side, neuron", [(True, (5, 10)), (False, (9, 18))])
def test_type_embedding_net_with_a_residual_first_layer_matches_numpy(type_one_side, neuron):
    # a first layer as wide as [s, tebd_j (, tebd_i)] adds its input: the whole input is
    # built, instead of the per-type products that stand in for it otherwise
    frame = Frame.random(23, "orthorhombic", ntypes=2)
    model = build_model(model_config(frame.sel(margin=2), type_one_side=type_one_side,
                                     neuron=neuron, axis_neuron=2))
    assert model.descriptor.filter_type_all.rules[0] == "skip"
    out = frame.evaluate(model)
    expected = numpy_descriptor(model, frame, out["rmat"][0])
    np.testing.assert_allclose(out["descriptor"][0], expected, rtol=1e-11,
                               atol=1e-13 * np.abs(expected).max())


@pytest.mark.parametrize("tebd, type_one_side, exclude", [
    (True, True, []), (True, False, [[0, 1]]), (False, True, [[1, 1]]), (False, False, [[0, 1]]),
])
def test_slots_empty_for_the_whole_batch_skip_the_nets_without_changing_d_or_its_gradient(
        tebd, type_one_side, exclude):
    # generous sel: every block ends in slots no atom of the batch fills
    frame = Frame.random(44, "triclinic", ntypes=3)
    model = build_model(model_config(frame.sel(margin=6), tebd=tebd, type_one_side=type_one_side,
                                     exclude_types=exclude, neuron=(4, 8), axis_neuron=2))
    desc = model.descriptor
    out = frame.evaluate(model)
    rmat = tf.constant(out["rmat"])
    nlist = out["nlist"]
    tebd_table = None if model.type_embedding is None else model.type_embedding.table()
    atype, natoms = frame.atype.reshape(1, -1), frame.natoms

    def d_and_grad(with_nlist):
        with tf.GradientTape() as tape:
            tape.watch(rmat)
            d = desc.descriptor_of_env_mat(rmat, atype, natoms, tebd_table,
                                           nlist if with_nlist else None)
            total = tf.reduce_sum(tf.sin(d))
        return d.numpy(), tape.gradient(total, rmat).numpy().reshape(frame.nat, desc.nnei, 4)

    live = [int(c) for c in live_counts(nlist, desc.offsets)]
    assert all(c < s for c, s in zip(live, desc.sel))
    d_all, g_all = d_and_grad(False)
    d_live, g_live = d_and_grad(True)
    np.testing.assert_allclose(d_live, d_all, rtol=1e-12, atol=1e-14 * np.abs(d_all).max())
    filled = nlist.reshape(frame.nat, desc.nnei) >= 0
    np.testing.assert_allclose(g_live[filled], g_all[filled], rtol=1e-11,
                               atol=1e-13 * np.abs(g_all).max())


def test_type_embedding_without_biases_is_the_net_with_zero_biases():
    """use_tebd_bias false (DeePMD-kit 3.x's default): the type embedding net's layers have no
    bias variables and compute what the same net with zero biases computes."""
    frame = Frame.random(23, "orthorhombic", ntypes=3)
    without = build_model(model_config(frame.sel(margin=2), use_tebd_bias=False))
    with_bias = build_model(model_config(frame.sel(margin=2)))
    names = without.type_embedding.graph_variables()
    assert names and not any("bias" in n for n in names)
    for name, variable in with_bias.type_embedding.graph_variables().items():
        variable.assign(np.zeros(variable.shape) if "bias" in name else names[name])
    np.testing.assert_array_equal(without.type_embedding.table().numpy(),
                                  with_bias.type_embedding.table().numpy())
