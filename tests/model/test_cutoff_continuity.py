"""Continuity at the cutoff: one atom moved across r = rcut. The jump is the energy's change
between rcut - h and rcut + h (h = 1e-4 Angstrom) minus the smooth change extrapolated from both
sides (the one-sided slopes from rcut -+ 2h). DeePMD-kit's se_a_ebd_v2 (davg not zero) jumps;
with smooth_type_embedding, as se_e2_a with type embedding, it does not; nor does se_atten_v2,
while the non-smooth se_atten jumps."""
import numpy as np
import pytest

from model_helpers import RCUT, Frame, build_model, model_config

H = 1e-4


def cutoff_jump(model):
    """Atoms: two of type 0 and one of type 1; the second type-0 atom moves along x so that its
    distance to the type-1 atom crosses rcut (its distance to the other stays inside)."""
    r = RCUT + H * np.array([-2.0, -1.0, 1.0, 2.0])
    coords = np.zeros((4, 3, 3))
    coords[:, 0] = [-1.0, 0.4, 0.3]                  # type 0, near the type-1 atom
    coords[:, 2] = [0.0, 0.0, 0.0]                    # type 1
    coords[:, 1, 0] = r                               # type 0, crossing the cutoff of atom 2
    frame = Frame(coords[0], [0, 0, 1], None, ntypes=2)
    e = frame.evaluate(model, coords)["energy"]
    smooth = H * ((e[1] - e[0]) / H + (e[3] - e[2]) / H)
    return abs((e[2] - e[1]) - smooth)


def model(tebd=True, type_one_side=False, **extra):
    cfg = model_config([3, 3], tebd=tebd, type_one_side=type_one_side, neuron=(4, 8, 16),
                       axis_neuron=3, **extra)
    return build_model(cfg, stats_seed=3)


@pytest.mark.parametrize("type_one_side", [True, False])
def test_smooth_type_embedding_makes_se_a_ebd_v2_continuous_at_the_cutoff(type_one_side):
    m = model(descriptor="se_a_ebd_v2", smooth_type_embedding=True, type_one_side=type_one_side)
    assert np.abs(m.descriptor.davg.numpy()).max() > 1e-2  # the defect needs davg != 0
    assert cutoff_jump(m) < 1e-7


@pytest.mark.parametrize("type_one_side", [True, False])
def test_deepmd_kits_se_a_ebd_v2_jumps_at_the_cutoff(type_one_side):
    """The default (DeePMD-kit's model): the jump is N_s(-davg/dstd) T of the leaving type,
    orders of magnitude above the smooth model's and se_e2_a's."""
    jump = cutoff_jump(model(descriptor="se_a_ebd_v2", type_one_side=type_one_side))
    assert jump > 1e3 * max(cutoff_jump(model()), 1e-9)
    assert jump > 1e-4


def test_se_e2_a_with_type_embedding_is_continuous_at_the_cutoff():
    assert cutoff_jump(model()) < 1e-7


def dpa1(descriptor="se_atten_v2", **keys):
    """A small DPA-1 model: two attention layers of width 5, davg not zero."""
    return model(descriptor=descriptor, set_davg_zero=False,
                 descriptor_keys={"attn": 5, "attn_layer": 2, "resnet_dt": False, **keys})


def test_se_atten_v2_is_continuous_at_the_cutoff():
    """The smooth switch weights the type net and the attention: an atom leaving the cutoff
    changes the energy smoothly (se_atten_v2, davg not zero)."""
    m = dpa1()
    assert np.abs(m.descriptor.davg.numpy()).max() > 1e-2
    assert cutoff_jump(m) < 1e-7


def test_deepmd_kits_non_smooth_se_atten_jumps_at_the_cutoff():
    """se_atten without smooth_type_embedding (DeePMD-kit's DPA-1, its issue 2811): the softmax
    renormalises when a neighbour enters, a jump orders of magnitude above se_atten_v2's."""
    jump = cutoff_jump(dpa1("se_atten", set_davg_zero=True))
    assert jump > 1e3 * max(cutoff_jump(dpa1()), 1e-9)
    assert jump > 1e-5
