"""Forces and virials from ProdForceSeA / ProdVirialSeA are the exact derivatives of an energy
built on the descriptor, checked by central finite differences in double precision."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.op import op_module
from ops_helpers import natoms_vector, sort_by_type
from reference.env_mat import max_neighbors_per_type, random_system

RCUT, RCUT_SMTH = 4.0, 0.8
KINDS = ["orthorhombic", "triclinic", "small", "tiny", "open"]


class Energy:
    """E = sum_i sum_k a_k em_ik + b_k em_ik^2 on ProdEnvMatA's output: smooth, non-linear.
    sel leaves room for every neighbour, so that no neighbour is dropped when atoms move.
    Coefficients and davg/dstd depend on the row component only, as in a real model, so that E
    does not depend on the order of equidistant neighbours (an atom's images in a tiny cell)."""

    def __init__(self, coord, atype, box, seed=0):
        rng = np.random.default_rng(seed)
        self.coord, self.atype = sort_by_type(coord, atype)
        self.box = box
        self.sel = [int(n) + 2 for n in max_neighbors_per_type(self.coord, self.atype, box, RCUT)]
        self.nnei = sum(self.sel)
        self.natoms = natoms_vector(self.atype, len(self.sel))
        ntypes = len(self.sel)
        self.davg = np.tile(rng.normal(0, 0.05, (ntypes, 1, 4)), (1, self.nnei, 1)).reshape(ntypes, -1)
        self.dstd = np.tile(rng.uniform(0.5, 1.5, (ntypes, 1, 4)), (1, self.nnei, 1)).reshape(ntypes, -1)
        self.a = tf.constant(np.tile(rng.normal(size=4), self.nnei))
        self.b = tf.constant(np.tile(rng.normal(size=4) * 0.1, self.nnei))
        self.mesh = np.zeros(6 if box is not None else 0, np.int32)

    def descriptor(self, coord, box):
        box9 = np.zeros((1, 9)) if box is None else tf.reshape(box, [1, 9])
        return op_module.prod_env_mat_a(
            tf.reshape(coord, [1, -1]), self.atype.reshape(1, -1).astype(np.int32), self.natoms,
            box9, self.mesh, self.davg, self.dstd,
            rcut_a=-1.0, rcut_r=RCUT, rcut_r_smth=RCUT_SMTH, sel_a=self.sel, sel_r=[0, 0])

    def energy_of_em(self, em):
        em = tf.reshape(em, [-1, self.nnei * 4])
        return tf.reduce_sum(self.a * em + self.b * em * em)

    def energy(self, coord, box=None):
        em = self.descriptor(tf.constant(coord), None if box is None else tf.constant(box))[0]
        return float(self.energy_of_em(em))

    def force_virial(self):
        em, deriv, rij, nlist = self.descriptor(tf.constant(self.coord), self.box)
        with tf.GradientTape() as tape:
            tape.watch(em)
            e = self.energy_of_em(em)
        g = tape.gradient(e, em)
        force = op_module.prod_force_se_a(g, deriv, nlist, self.natoms, n_a_sel=self.nnei, n_r_sel=0)
        virial, atom_virial = op_module.prod_virial_se_a(g, deriv, rij, nlist, self.natoms,
                                                         n_a_sel=self.nnei, n_r_sel=0)
        return (force.numpy().reshape(-1, 3), virial.numpy().reshape(3, 3),
                atom_virial.numpy().reshape(-1, 9))


def finite_difference_force(model, h=1e-5):
    fd = np.zeros_like(model.coord)
    for i in range(len(model.coord)):
        for d in range(3):
            plus, minus = model.coord.copy(), model.coord.copy()
            plus[i, d] += h
            minus[i, d] -= h
            fd[i, d] = -(model.energy(plus, model.box) - model.energy(minus, model.box)) / (2 * h)
    return fd


def finite_difference_virial(model, h=1e-5):
    """V = -(dE/d strain)^T, with the strain applied to coordinates and box together."""
    dE = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * h
                values.append(model.energy(model.coord @ strain, model.box @ strain))
            dE[a, b] = (values[0] - values[1]) / (2 * h)
    return -dE.T


def relative_error(actual, expected):
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


@pytest.mark.parametrize("kind", KINDS)
def test_force_is_minus_energy_gradient(kind):
    coord, atype, box = random_system(np.random.default_rng(11), kind, rcut=RCUT)
    model = Energy(coord, atype, box)
    force, _, _ = model.force_virial()
    assert relative_error(force, finite_difference_force(model)) < 1e-6


@pytest.mark.parametrize("kind", ["orthorhombic", "triclinic", "small", "tiny"])
def test_virial_is_minus_strain_derivative_with_periodic_images(kind):
    coord, atype, box = random_system(np.random.default_rng(12), kind, rcut=RCUT)
    model = Energy(coord, atype, box)
    _, virial, atom_virial = model.force_virial()
    assert relative_error(virial, finite_difference_virial(model)) < 1e-6
    np.testing.assert_allclose(atom_virial.sum(0), virial.reshape(9), rtol=1e-12, atol=1e-12)


def test_open_boundary_virial_is_sum_of_position_force_products():
    # without a box, the virial equals sum_i R_i (x) F_i, checked against the finite-difference force
    coord, atype, box = random_system(np.random.default_rng(13), "open", rcut=RCUT)
    model = Energy(coord, atype, None)
    _, virial, _ = model.force_virial()
    fd = finite_difference_force(model)
    expected = np.einsum("ia,ib->ab", fd, model.coord)
    assert relative_error(virial, expected) < 1e-6


@pytest.mark.parametrize("kind", ["triclinic", "tiny", "open"])
def test_tape_gradient_of_env_mat_gives_force_and_virial(kind):
    """The registered ProdEnvMatA gradient: dE/dcoord = -F and, with the box, the strain
    derivative dE/d(strain) = coord^T dE/dcoord + box^T dE/dbox = -V^T."""
    coord, atype, box = random_system(np.random.default_rng(14), kind, rcut=RCUT)
    model = Energy(coord, atype, box)
    force, virial, _ = model.force_virial()
    c = tf.constant(model.coord)
    b = tf.constant(np.eye(3) if box is None else model.box)
    with tf.GradientTape() as tape:
        tape.watch([c, b])
        e = model.energy_of_em(model.descriptor(c, None if box is None else b)[0])
    dc, db = tape.gradient(e, [c, b])
    np.testing.assert_allclose(-dc.numpy(), force, rtol=1e-12, atol=1e-12 * np.abs(force).max())
    if box is None:
        assert db is None or np.all(db.numpy() == 0)
    else:
        strain = model.coord.T @ dc.numpy() + model.box.T @ db.numpy()
        np.testing.assert_allclose(-strain.T, virial, rtol=1e-10, atol=1e-10 * np.abs(virial).max())


def test_product_gradients_are_adjoints_of_products():
    """ProdForceSeAGrad and ProdVirialSeAGrad, reached through the registered gradients, are the
    exact transposes of the linear maps net_deriv -> force and net_deriv -> virial:
    <w, P(u)> = <P^T(w), u> for random u, w."""
    coord, atype, box = random_system(np.random.default_rng(15), "small", rcut=RCUT)
    model = Energy(coord, atype, box)
    _, deriv, rij, nlist = model.descriptor(tf.constant(model.coord), model.box)
    rng = np.random.default_rng(3)
    u = tf.constant(rng.normal(size=(1, len(model.coord) * model.nnei * 4)))

    def force(g):
        return op_module.prod_force_se_a(g, deriv, nlist, model.natoms, n_a_sel=model.nnei, n_r_sel=0)

    def virial(g):
        return op_module.prod_virial_se_a(g, deriv, rij, nlist, model.natoms,
                                          n_a_sel=model.nnei, n_r_sel=0)[0]

    for product in (force, virial):
        out = product(u)
        w = tf.constant(rng.normal(size=out.shape))
        with tf.GradientTape() as tape:
            tape.watch(u)
            inner = tf.reduce_sum(w * product(u))
        transposed = tape.gradient(inner, u)
        lhs = float(tf.reduce_sum(w * out))
        rhs = float(tf.reduce_sum(transposed * u))
        assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)
        assert np.any(transposed.numpy() != 0)


def test_net_force_vanishes():
    # translation invariance: internal forces sum to zero
    coord, atype, box = random_system(np.random.default_rng(16), "triclinic", rcut=RCUT)
    force, _, _ = Energy(coord, atype, box).force_virial()
    assert np.abs(force.sum(0)).max() < 1e-10 * np.abs(force).max()


def _product_op_calls(model, n_a_sel, n_r_sel):
    """The four product ops (ProdForceSeA, ProdVirialSeA and their gradient ops) on the env mat
    of `model`, with the given n_a_sel / n_r_sel attributes."""
    _, deriv, rij, nlist = model.descriptor(tf.constant(model.coord), model.box)
    nloc = len(model.coord)
    g = tf.zeros([1, nloc * model.nnei * 4], tf.float64)
    sel = dict(n_a_sel=n_a_sel, n_r_sel=n_r_sel)
    return {
        "ProdForceSeA": lambda: op_module.prod_force_se_a(g, deriv, nlist, model.natoms, **sel),
        "ProdVirialSeA": lambda: op_module.prod_virial_se_a(g, deriv, rij, nlist, model.natoms,
                                                            **sel),
        "ProdForceSeAGrad": lambda: op_module.prod_force_se_a_grad(
            tf.zeros([1, nloc * 3], tf.float64), g, deriv, nlist, model.natoms, **sel),
        "ProdVirialSeAGrad": lambda: op_module.prod_virial_se_a_grad(
            tf.zeros([1, 9], tf.float64), g, deriv, rij, nlist, model.natoms, **sel),
    }


@pytest.mark.parametrize("op", ["ProdForceSeA", "ProdVirialSeA", "ProdForceSeAGrad",
                                "ProdVirialSeAGrad"])
def test_product_ops_refuse_sel_attrs_that_differ_from_nlist_width(op):
    """As in DeePMD-kit, n_a_sel + n_r_sel must equal the neighbour slots per atom of nlist; the
    message names both numbers. Any split with the right sum is accepted."""
    coord, atype, box = random_system(np.random.default_rng(17), "orthorhombic", rcut=RCUT)
    model = Energy(coord, atype, box)
    nnei = model.nnei
    _product_op_calls(model, nnei, 0)[op]()
    _product_op_calls(model, nnei - 3, 3)[op]()
    message = rf"nlist has {nnei} neighbours per atom .* n_a_sel \+ n_r_sel = {nnei - 1} \+ 0"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _product_op_calls(model, nnei - 1, 0)[op]()
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"= {nnei} \+ 2 = {nnei + 2}"):
        _product_op_calls(model, nnei, 2)[op]()
