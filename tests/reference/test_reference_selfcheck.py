"""Self-checks of the NumPy reference in env_mat.py: its derivatives against finite
differences of itself, its periodic images against an explicit supercell, and its invariances."""

import itertools

import numpy as np
import pytest

from .env_mat import (
    SYSTEM_KINDS,
    cell_geometry,
    env_mat_rows,
    extend_periodic,
    max_neighbors_per_type,
    prod_env_mat_a_ref,
    prod_force_ref,
    prod_virial_ref,
    random_system,
    switch_function,
)

RCUT = 4.0
RCUT_SMTH = 2.0


def _stats(rng, sel, ntypes=2):
    """Random davg/dstd [ntypes, 4*nnei] so that normalisation is exercised."""
    nnei = sum(sel)
    return rng.normal(size=(ntypes, 4 * nnei)), rng.uniform(0.5, 2.0, size=(ntypes, 4 * nnei))


def _full_sel(coord, atype, box, rcut, extra=2):
    """A sel large enough to hold every neighbour."""
    return [n + extra for n in max_neighbors_per_type(coord, atype, box, rcut)]


def _linear_energy(g, coord, atype, box, davg, dstd, sel):
    """E = sum(g * em): a smooth function of positions whose dE/d em is g."""
    em = prod_env_mat_a_ref(coord, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)[0]
    return float(np.sum(g * em))


def test_switch_derivative_matches_finite_difference():
    r = np.linspace(0.5, 4.5, 81)
    rs, rc = 1.3, 4.1
    sw, dsw = switch_function(r, rs, rc)
    h = 1e-6
    fd = (switch_function(r + h, rs, rc)[0] - switch_function(r - h, rs, rc)[0]) / (2 * h)
    away = (np.abs(r - rs) > 2 * h) & (np.abs(r - rc) > 2 * h)
    np.testing.assert_allclose(dsw[away], fd[away], rtol=0, atol=1e-8)
    assert np.all(sw[r < rs] == 1.0) and np.all(sw[r >= rc] == 0.0)
    # value and slope are continuous at both ends of the switching region
    np.testing.assert_allclose(switch_function([rs, rc - 1e-9], rs, rc)[0], [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(switch_function([rs, rc - 1e-9], rs, rc)[1], [0.0, 0.0], atol=1e-12)


def test_env_mat_row_derivative_is_minus_relative_position_derivative():
    rng = np.random.default_rng(1)
    rr = rng.normal(size=(20, 3))
    rr *= rng.uniform(0.8, 4.2, size=(20, 1)) / np.linalg.norm(rr, axis=1, keepdims=True)
    _, deriv = env_mat_rows(rr, RCUT_SMTH, RCUT)
    h = 1e-6
    for d in range(3):
        step = np.zeros(3)
        step[d] = h
        fd = (env_mat_rows(rr + step, RCUT_SMTH, RCUT)[0] - env_mat_rows(rr - step, RCUT_SMTH, RCUT)[0]) / (2 * h)
        np.testing.assert_allclose(deriv[:, :, d], -fd, rtol=0, atol=1e-8)


@pytest.mark.parametrize("kind", ["open", "orthorhombic", "triclinic"])
def test_env_mat_deriv_matches_finite_difference(kind):
    rng = np.random.default_rng(11)
    coord, atype, box = random_system(rng, kind, rcut=RCUT)
    sel = _full_sel(coord, atype, box, RCUT)
    davg, dstd = _stats(rng, sel)
    nnei = sum(sel)
    em, em_deriv, _, nlist = prod_env_mat_a_ref(coord, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)
    em_deriv = em_deriv.reshape(-1, nnei * 4, 3)
    h = 1e-5
    centres = rng.choice(len(atype), size=4, replace=False)
    for i in centres:
        # moving the centre moves its own images too; these frames have none within rcut
        assert i not in nlist[i]
        for d in range(3):
            plus, minus = coord.copy(), coord.copy()
            plus[i, d] += h
            minus[i, d] -= h
            ep, _, _, np_ = prod_env_mat_a_ref(plus, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)
            emn, _, _, nm = prod_env_mat_a_ref(minus, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)
            assert np.array_equal(np_[i], nlist[i]) and np.array_equal(nm[i], nlist[i])
            fd = (ep[i] - emn[i]) / (2 * h)
            np.testing.assert_allclose(em_deriv[i, :, d], fd, rtol=0, atol=1e-7)
    # the frame does exercise the switching region
    dist = np.linalg.norm(prod_env_mat_a_ref(coord, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)[2].reshape(-1, 3), axis=1)
    assert np.any((dist > RCUT_SMTH) & (dist < RCUT)) and np.any((dist > 0) & (dist < RCUT_SMTH))


@pytest.mark.parametrize("kind", ["small", "tiny", "triclinic"])
def test_periodic_neighbors_match_open_supercell(kind):
    rng = np.random.default_rng(5)
    coord, atype, box = random_system(rng, kind, rcut=RCUT)
    nloc = len(atype)
    _, face, _ = cell_geometry(box)
    nimg = np.ceil(RCUT / face).astype(int)
    shifts = list(itertools.product(*[range(-n, n + 1) for n in nimg]))
    # explicit supercell, copy-major; the copy with shift (0, 0, 0) holds the centres
    super_coord = np.concatenate([coord + np.array(s, float) @ box for s in shifts])
    super_type = np.tile(atype, len(shifts))
    central = shifts.index((0, 0, 0))

    sel = _full_sel(coord, atype, box, RCUT)
    ones = np.ones((2, 4 * sum(sel)))
    zeros = np.zeros((2, 4 * sum(sel)))
    # the periodic frame is given shifted by lattice vectors, so wrapping is exercised
    moved = coord + np.array([2.0, -1.0, 1.0]) @ box
    em_p, _, rij_p, nl_p = prod_env_mat_a_ref(moved, atype, box, zeros, ones, sel, RCUT, RCUT_SMTH)
    em_s, _, rij_s, nl_s = prod_env_mat_a_ref(super_coord, super_type, None, zeros, ones, sel, RCUT, RCUT_SMTH)
    rows = slice(central * nloc, (central + 1) * nloc)
    em_s, rij_s, nl_s = em_s[rows], rij_s[rows], nl_s[rows]

    start = 0
    for n in sel:
        block = slice(start, start + n)
        start += n
        dist_p = np.linalg.norm(rij_p.reshape(nloc, -1, 3)[:, block], axis=2)
        dist_s = np.linalg.norm(rij_s.reshape(nloc, -1, 3)[:, block], axis=2)
        np.testing.assert_array_equal(nl_p[:, block] >= 0, nl_s[:, block] >= 0)
        np.testing.assert_allclose(np.sort(dist_p, axis=1), np.sort(dist_s, axis=1), rtol=0, atol=1e-10)
        # the same atoms (up to the order of equidistant images) fill the block
        np.testing.assert_array_equal(np.sort(nl_p[:, block], axis=1),
                                      np.sort(np.where(nl_s[:, block] >= 0, nl_s[:, block] % nloc, -1), axis=1))
        # order-independent sums of the rows agree as well
        sum_p = em_p.reshape(nloc, -1, 4)[:, block].sum(axis=1)
        sum_s = em_s.reshape(nloc, -1, 4)[:, block].sum(axis=1)
        np.testing.assert_allclose(sum_p, sum_s, rtol=0, atol=1e-10)
    assert np.any(nl_p.max(axis=1) >= 0)
    if kind == "tiny":
        # a cell shorter than rcut: atoms see their own images, several times
        assert any(np.sum(nl_p[i] == i) >= 2 for i in range(nloc))


@pytest.mark.parametrize("kind", ["open", "triclinic"])
def test_env_mat_invariant_under_translation(kind):
    rng = np.random.default_rng(7)
    coord, atype, box = random_system(rng, kind, rcut=RCUT)
    sel = _full_sel(coord, atype, box, RCUT)
    davg, dstd = _stats(rng, sel)
    ref = prod_env_mat_a_ref(coord, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)
    out = prod_env_mat_a_ref(coord + rng.normal(scale=5.0, size=3), atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)
    for a, b in zip(ref[:3], out[:3]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(ref[3], out[3])


def test_force_is_minus_gradient_of_linear_energy():
    rng = np.random.default_rng(3)
    coord, atype, box = random_system(rng, "small", rcut=RCUT)
    sel = _full_sel(coord, atype, box, RCUT)
    davg, dstd = _stats(rng, sel)
    em, em_deriv, _, nlist = prod_env_mat_a_ref(coord, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)
    g = rng.normal(size=em.shape)
    nall = len(atype)
    force = prod_force_ref(g, em_deriv, nlist, nall).reshape(nall, 3)
    np.testing.assert_allclose(force.sum(axis=0), 0.0, atol=1e-10)
    h = 1e-5
    for k in rng.choice(nall, size=4, replace=False):
        for d in range(3):
            plus, minus = coord.copy(), coord.copy()
            plus[k, d] += h
            minus[k, d] -= h
            fd = (_linear_energy(g, plus, atype, box, davg, dstd, sel)
                  - _linear_energy(g, minus, atype, box, davg, dstd, sel)) / (2 * h)
            np.testing.assert_allclose(force[k, d], -fd, rtol=0, atol=1e-6)


def test_virial_is_minus_transposed_strain_derivative_of_energy():
    rng = np.random.default_rng(4)
    coord, atype, box = random_system(rng, "triclinic", rcut=RCUT)
    sel = _full_sel(coord, atype, box, RCUT)
    davg, dstd = _stats(rng, sel)
    em, em_deriv, rij, nlist = prod_env_mat_a_ref(coord, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)
    g = rng.normal(size=em.shape)
    nall = len(atype)
    virial, atom_virial = prod_virial_ref(g, em_deriv, rij, nlist, nall)
    np.testing.assert_allclose(atom_virial.reshape(nall, 9).sum(axis=0), virial, rtol=0, atol=1e-10)
    # positions and cell deformed together: R -> R (1 + eps)
    h = 1e-6
    dE = np.zeros((3, 3))
    for a, b in itertools.product(range(3), range(3)):
        eps = np.zeros((3, 3))
        eps[a, b] = h
        ep = _linear_energy(g, coord @ (np.eye(3) + eps), atype, box @ (np.eye(3) + eps), davg, dstd, sel)
        em_ = _linear_energy(g, coord @ (np.eye(3) - eps), atype, box @ (np.eye(3) - eps), davg, dstd, sel)
        dE[a, b] = (ep - em_) / (2 * h)
    np.testing.assert_allclose(virial.reshape(3, 3), -dE.T, rtol=0, atol=1e-6)


def test_neighbors_beyond_sel_dropped_farthest_first():
    rng = np.random.default_rng(9)
    coord, atype, box = random_system(rng, "crowded", rcut=RCUT)
    full = _full_sel(coord, atype, box, RCUT, extra=0)
    small = [max(1, n // 3) for n in full]
    assert all(s < f for s, f in zip(small, full))
    davg, dstd = np.zeros((2, 4 * sum(full))), np.ones((2, 4 * sum(full)))
    em_f, _, rij_f, nl_f = prod_env_mat_a_ref(coord, atype, box, davg, dstd, full, RCUT, RCUT_SMTH)
    em_s, _, rij_s, nl_s = prod_env_mat_a_ref(coord, atype, box, davg[:, : 4 * sum(small)],
                                              dstd[:, : 4 * sum(small)], small, RCUT, RCUT_SMTH)
    nloc = len(atype)
    kept = np.concatenate([np.arange(s) + sum(full[:t]) for t, s in enumerate(small)])
    np.testing.assert_array_equal(nl_s, nl_f[:, kept])
    np.testing.assert_array_equal(rij_s.reshape(nloc, -1, 3), rij_f.reshape(nloc, -1, 3)[:, kept])
    np.testing.assert_array_equal(em_s.reshape(nloc, -1, 4), em_f.reshape(nloc, -1, 4)[:, kept])
    dist = np.linalg.norm(rij_f.reshape(nloc, -1, 3), axis=2)
    start = 0
    for n in full:
        block = dist[:, start:start + n]
        start += n
        filled = block > 0
        # inside a block distances ascend, empty slots last
        assert np.all(np.diff(np.where(filled, block, 2 * RCUT), axis=1) >= 0)


def test_negative_type_centres_get_zero_rows_and_are_no_neighbors():
    rng = np.random.default_rng(2)
    coord, atype, box = random_system(rng, "small", rcut=RCUT)
    atype = atype.copy()
    atype[3] = -1
    sel = _full_sel(coord, np.maximum(atype, 0), box, RCUT)
    davg, dstd = _stats(rng, sel)
    em, em_deriv, rij, nlist = prod_env_mat_a_ref(coord, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)
    assert np.all(em[3] == 0) and np.all(em_deriv[3] == 0) and np.all(rij[3] == 0)
    assert np.all(nlist[3] == -1)
    assert not np.any(nlist == 3)
    # empty slots of real centres are normalised, not masked: (-davg/dstd) in each entry
    nnei = sum(sel)
    empty = np.argwhere(nlist[:3] < 0)
    i, j = empty[0]
    t = atype[i]
    np.testing.assert_allclose(em[i, 4 * j:4 * j + 4], -davg[t, 4 * j:4 * j + 4] / dstd[t, 4 * j:4 * j + 4])
    assert em.shape == (len(atype), 4 * nnei)


def test_float32_coordinates_give_float64_results_close_to_float64():
    rng = np.random.default_rng(6)
    coord, atype, box = random_system(rng, "tiny", rcut=RCUT)
    sel = _full_sel(coord, atype, box, RCUT)
    # unit normalisation, so that sums over the slots of a centre do not depend on slot order
    davg, dstd = np.zeros((2, 4 * sum(sel))), np.ones((2, 4 * sum(sel)))
    ref = prod_env_mat_a_ref(coord, atype, box, davg, dstd, sel, RCUT, RCUT_SMTH)
    out = prod_env_mat_a_ref(coord.astype(np.float32), atype, box.astype(np.float32), davg, dstd,
                             sel, RCUT, RCUT_SMTH)
    assert all(x.dtype == np.float64 for x in out[:3])
    # equidistant self images may swap slots between precisions: compare per-centre sums
    nloc = len(atype)
    np.testing.assert_allclose(out[0].reshape(nloc, -1, 4).sum(1), ref[0].reshape(nloc, -1, 4).sum(1), atol=1e-4)
    np.testing.assert_array_equal(np.sort(out[3], axis=1), np.sort(ref[3], axis=1))


@pytest.mark.parametrize("kind", sorted(SYSTEM_KINDS))
def test_random_system_is_deterministic_and_respects_minimum_distance(kind):
    coord, atype, box = random_system(np.random.default_rng(12), kind, rcut=6.0)
    again = random_system(np.random.default_rng(12), kind, rcut=6.0)
    np.testing.assert_array_equal(coord, again[0])
    np.testing.assert_array_equal(atype, again[1])
    assert set(np.unique(atype)) == {0, 1}
    assert np.all(np.diff(atype) >= 0)
    assert (box is None) == (kind == "open")
    if box is None:
        ext = coord
    else:
        ext = extend_periodic(coord, atype, box, 1.0)[0]
        face = cell_geometry(box)[1]
        if kind == "tiny":
            assert np.all(face < 6.0)
        if kind == "small":
            assert np.all(np.ceil(6.0 / face) >= 1) and np.all(face < 2 * 6.0)
    d = np.linalg.norm(ext[:, None, :] - coord[None, :, :], axis=2)
    d[: len(coord)][np.diag_indices(len(coord))] = np.inf
    assert d.min() >= 0.8 - 1e-9
