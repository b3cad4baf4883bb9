"""The energy fitting: bias added after the net, atom_ener for isolated atoms, fparam/aparam
normalisation, and argument checks."""
import numpy as np
import pytest

from deepmd_tebd.model import EnergyFitting
from deepmd_tebd.config import ConfigError
from model_helpers import Frame, build_model, fitting_settings, model_config, model_settings


def isolated_atoms(ntypes=2, per_type=2, spacing=10.0):
    """Atoms farther apart than rcut, open boundaries: no atom has a neighbour."""
    atype = np.repeat(np.arange(ntypes), per_type).astype(np.int32)
    coord = np.stack([np.arange(len(atype)) * spacing, np.zeros(len(atype)),
                      np.zeros(len(atype))], axis=1)
    return Frame(coord, atype, None, ntypes)


@pytest.mark.parametrize("tebd", [True, False], ids=["tebd", "per_type"])
def test_isolated_atoms_have_their_atom_ener(tebd):
    frame = isolated_atoms()
    model = build_model(model_config([3, 3], tebd=tebd, atom_ener=[-1.25, None],
                                     set_davg_zero=True))
    bias = model.fitting.bias_atom_e.numpy()
    assert bias[0] == -1.25  # the given vacuum energy replaces the statistics' bias
    out = frame.evaluate(model)
    atom_e = out["atom_energy"][0]
    np.testing.assert_allclose(atom_e[frame.atype == 0], -1.25, rtol=1e-14)
    if tebd:
        # with type embedding every atom's vacuum part is removed (DeePMD-kit's behaviour)
        np.testing.assert_allclose(atom_e[frame.atype == 1], bias[1], rtol=1e-14)
    else:
        assert not np.allclose(atom_e[frame.atype == 1], bias[1])
    assert not out["force"].any()


@pytest.mark.parametrize("tebd", [True, False], ids=["tebd", "per_type"])
def test_bias_is_added_after_the_net_per_type(tebd):
    frame = Frame.random(51, "triclinic")
    model = build_model(model_config(frame.sel(), tebd=tebd))
    before = frame.evaluate(model)
    shift = np.array([0.7, -2.0])
    bias = model.fitting.bias_atom_e.numpy() + shift
    model.fitting.set_statistics(bias)
    after = frame.evaluate(model)
    np.testing.assert_allclose(after["atom_energy"][0] - before["atom_energy"][0],
                               shift[frame.atype], rtol=1e-10)
    np.testing.assert_allclose(after["force"], before["force"], rtol=1e-14)


@pytest.mark.parametrize("tebd", [True, False], ids=["tebd", "per_type"])
def test_fparam_and_aparam_enter_normalised(tebd):
    frame = Frame.random(52, "triclinic")
    model = build_model(model_config(frame.sel(), tebd=tebd, numb_fparam=2, numb_aparam=2))
    fit = model.fitting
    rng = np.random.default_rng(8)
    fparam = rng.normal(size=2)
    aparam = rng.normal(size=(frame.nat, 2))
    normalised = frame.evaluate(model, fparam=fparam, aparam=aparam.reshape(-1))["energy"]
    f_n = (fparam - fit.fparam_avg.numpy()) * fit.fparam_istd.numpy()
    a_n = (aparam - fit.aparam_avg.numpy()) * fit.aparam_istd.numpy()
    fit.set_statistics(fit.bias_atom_e.numpy(), np.zeros(2), np.ones(2), np.zeros(2), np.ones(2))
    raw = frame.evaluate(model, fparam=f_n, aparam=a_n.reshape(-1))["energy"]
    np.testing.assert_allclose(normalised, raw, rtol=1e-13)


def test_statistics_are_non_trainable():
    fit = EnergyFitting(fitting_settings(2, fitting=[4], numb_fparam=1, numb_aparam=3), 2, 8,
                        tebd_dim=2)
    fit.build()
    assert {v.name for v in fit.non_trainable_variables} == {
        "t_bias_atom_e", "t_fparam_avg", "t_fparam_istd", "t_aparam_avg", "t_aparam_istd"}
    assert fit.fitting_net.in_width == 8 + 2 + 1 + 3
    with pytest.raises(ValueError, match="aparam_avg must have 3 entries"):
        fit.set_statistics([0.0, 0.0], aparam_avg=[1.0])


def test_one_net_per_type_without_type_embedding():
    fit = EnergyFitting(fitting_settings(3, fitting=[4, 4]), 3, 8)
    assert [n.name for n in fit.nets()] == ["fitting_net_type_0", "fitting_net_type_1",
                                           "fitting_net_type_2"]
    fit.build()
    names = set(fit.graph_variables())
    assert {"layer_0_type_2/matrix", "layer_1_type_2/idt", "final_layer_type_0/bias"} <= names


def test_trainable_list_must_cover_every_layer():
    cfg = model_config([2, 2], fitting=[4, 4])
    cfg["fitting_net"]["trainable"] = [True, False, True]
    EnergyFitting(model_settings(cfg).fitting, 2, 8)
    cfg["fitting_net"]["trainable"] = [True, False]
    with pytest.raises(ConfigError, match="expected 3 entries \\(one per hidden layer and the "
                                          "output layer\\)"):
        model_settings(cfg)
