"""The flexible-water reference model (water_forcefield), its sampler (water_dynamics) and the
command line of deepmd_tebd.tools.water (seeded, fast)."""
import math
import os

import numpy as np
import pytest

from deepmd_tebd.tools import water
from deepmd_tebd.tools import water_dynamics as dynamics
from deepmd_tebd.tools import water_forcefield as forcefield


def _skewed(coord, box, skew):
    """Move whole molecules into a sheared box, keeping each molecule's shape."""
    frac_o = coord[0::3] @ np.linalg.inv(box)
    new_o = frac_o @ skew
    return (coord.reshape(-1, 3, 3) - coord[0::3, None, :] + new_o[:, None, :]).reshape(-1, 3)


def _configuration(kind):
    """Three test systems: 64 waters in a cubic box (12.4 Å, shorter than 2 rcut), 8 waters
    in a 6.2 Å box (shorter than rcut: atoms see their own images), 8 in a triclinic box."""
    rng = np.random.default_rng({"cubic64": 11, "small8": 12, "triclinic8": 13}[kind])
    n = 64 if kind == "cubic64" else 8
    coord, box = dynamics.random_water_box(n, rng)
    if kind == "triclinic8":
        edge = box[0, 0]
        skew = np.array([[edge, 0.0, 0.0], [0.3 * edge, edge, 0.0],
                         [-0.2 * edge, 0.25 * edge, edge]])
        coord, box = _skewed(coord, box, skew), skew
    coord = coord + rng.normal(scale=0.03, size=coord.shape)  # off the reference geometry
    return forcefield.WaterModel(n), coord, box


KINDS = ["cubic64", "small8", "triclinic8"]


def _two_molecules(rng, o_distance, centre=20.0):
    """Two randomly oriented molecules with their O atoms o_distance apart around ``centre``."""
    molecules = []
    for _ in range(2):
        one, _ = dynamics.random_water_box(1, rng)
        molecules.append(one - one[0])
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    return np.concatenate([molecules[0] + centre - 0.5 * o_distance * direction,
                           molecules[1] + centre + 0.5 * o_distance * direction])


def test_erfc_matches_math_erfc():
    x = np.linspace(0.0, 3.0, 3001)
    values, gauss = forcefield.erfc_gauss(x)
    expected = np.array([math.erfc(v) for v in x])
    assert np.max(np.abs(values - expected)) < 2e-15
    np.testing.assert_allclose(gauss, np.exp(-x * x), rtol=1e-15)


def test_units_and_parameters():
    p = forcefield.WaterParameters()
    assert forcefield.COULOMB == pytest.approx(14.399645, rel=1e-7)
    assert forcefield.KCAL_PER_MOL == pytest.approx(0.0433641, rel=1e-6)
    assert forcefield.AMU_A2_FS2 == pytest.approx(103.6427, rel=1e-6)
    assert p.charge_o + 2 * p.charge_h == 0.0
    # 64 molecules at 1 g/cm^3: a 12.42 Å cube.
    assert dynamics.box_edge(64) == pytest.approx(12.417, abs=1e-3)


@pytest.mark.parametrize("kind", ["small8", "triclinic8"])
def test_energy_matches_brute_force_sum_over_images(kind):
    """Boxes shorter than the cutoff: the pair list against a plain double sum over 7^3 images."""
    model, coord, box = _configuration(kind)
    p = model.params
    d1, d2 = coord[1::3] - coord[0::3], coord[2::3] - coord[0::3]  # molecules are whole here
    r1, r2 = np.linalg.norm(d1, axis=1), np.linalg.norm(d2, axis=1)
    theta = np.arccos(np.sum(d1 * d2, axis=1) / (r1 * r2))
    expected = 0.5 * p.k_bond * np.sum((r1 - p.r_bond) ** 2 + (r2 - p.r_bond) ** 2)
    expected += 0.5 * p.k_angle * np.sum((theta - p.theta0) ** 2)
    images = np.array([(a, b, c) for a in range(-3, 4) for b in range(-3, 4)
                       for c in range(-3, 4)], dtype=float) @ box
    pair_sum = 0.0
    for i in range(model.natoms):
        for j in range(model.natoms):
            r = np.linalg.norm(coord[j] - coord[i] + images, axis=1)
            if model.molecule[i] == model.molecule[j]:
                r = r[r > 1e-9] if i == j else r[np.any(images != 0.0, axis=1)]
            qq = model.charges[i] * model.charges[j]
            pair_sum += model.coulomb_pair(r, qq)[0].sum()
            if model.types[i] == 0 and model.types[j] == 0:
                pair_sum += model.lennard_jones_pair(r)[0].sum()
    expected += 0.5 * pair_sum  # every pair was visited from both ends
    # 7^3 images are enough: along each cell axis, |frac_j - frac_i + n| * plane spacing > rcut
    # for every |n| > 3.
    inv_box = np.linalg.inv(box)
    frac = coord @ inv_box
    spread = np.max(frac.max(axis=0) - frac.min(axis=0))
    assert (4 - spread) / np.linalg.norm(inv_box, axis=0).max() > p.rcut
    assert model.evaluate(coord, box)[0] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_forces_are_minus_energy_gradient(kind):
    model, coord, box = _configuration(kind)
    _, force, _ = model.evaluate(coord, box)
    rng = np.random.default_rng(0)
    h = 1e-5
    for atom in rng.choice(model.natoms, 6, replace=False):
        for k in range(3):
            plus, minus = coord.copy(), coord.copy()
            plus[atom, k] += h
            minus[atom, k] -= h
            fd = -(model.evaluate(plus, box)[0] - model.evaluate(minus, box)[0]) / (2 * h)
            scale = max(np.linalg.norm(force[atom]), 1e-2)
            assert abs(fd - force[atom, k]) < 1e-6 * scale, (atom, k, fd, force[atom, k])


@pytest.mark.parametrize("kind", KINDS)
def test_virial_is_minus_strain_derivative(kind):
    model, coord, box = _configuration(kind)
    _, _, virial = model.evaluate(coord, box)
    h = 1e-6
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            strain = np.zeros((3, 3))
            strain[a, b] = h
            # coordinates and box are row vectors: r -> r (1 + eps), box -> box (1 + eps)
            e_plus = model.evaluate(coord @ (np.eye(3) + strain), box @ (np.eye(3) + strain))[0]
            e_minus = model.evaluate(coord @ (np.eye(3) - strain), box @ (np.eye(3) - strain))[0]
            fd[a, b] = -(e_plus - e_minus) / (2 * h)
    scale = max(np.abs(virial).max(), 1.0)
    assert np.abs(fd - virial).max() < 1e-6 * scale, (fd, virial)
    assert np.abs(virial - virial.T).max() < 1e-10 * scale


def test_virial_of_open_cluster_is_sum_of_r_outer_f():
    """Two molecules in a box far larger than the cutoff behave as an open system, where the
    virial is sum_i r_i (x) f_i (element [a, b] = r_ia f_ib) with unwrapped coordinates."""
    model = forcefield.WaterModel(2)
    coord = _two_molecules(np.random.default_rng(5), 3.0)  # in the middle of a 40 Å box
    box = np.eye(3) * 40.0
    energy, force, virial = model.evaluate(coord, box)
    assert np.abs(virial).max() > 0.1
    np.testing.assert_allclose(virial, np.einsum("ia,ib->ab", coord, force), atol=1e-12)
    np.testing.assert_allclose(force.sum(axis=0), 0.0, atol=1e-12)


def test_energy_invariant_under_translation_and_rotation():
    model, coord, box = _configuration("cubic64")
    energy, force, virial = model.evaluate(coord, box)

    shifted = model.evaluate(coord + np.array([3.7, -11.2, 25.1]), box)
    assert shifted[0] == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(shifted[1], force, atol=1e-10)
    np.testing.assert_allclose(shifted[2], virial, atol=1e-10)

    rng = np.random.default_rng(7)
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    rotation *= np.sign(np.linalg.det(rotation))
    rotated = model.evaluate(coord @ rotation.T, box @ rotation.T)  # the whole periodic system
    assert rotated[0] == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(rotated[1], force @ rotation.T, atol=1e-10)
    np.testing.assert_allclose(rotated[2], rotation @ virial @ rotation.T, atol=1e-10)


def test_pair_list_with_skin_gives_the_exact_model():
    model, coord, box = _configuration("cubic64")
    pairs = model.build_pairs(coord, box, skin=1.0)
    rng = np.random.default_rng(3)
    moved = coord + rng.uniform(-0.28, 0.28, coord.shape)  # under skin / 2 per atom
    assert pairs.valid_for(moved, box)
    cached = model.evaluate(moved, box, pairs)
    fresh = model.evaluate(moved, box)
    assert cached[0] == pytest.approx(fresh[0], abs=1e-11)
    np.testing.assert_allclose(cached[1], fresh[1], atol=1e-11)
    np.testing.assert_allclose(cached[2], fresh[2], atol=1e-11)
    assert not pairs.valid_for(coord + np.array([0.6, 0.0, 0.0]), box)


def test_dsf_coulomb_and_lennard_jones_continuous_at_cutoff():
    model = forcefield.WaterModel(1)
    rc = model.params.rcut
    qq = model.params.charge_o * model.params.charge_h
    for pair in (lambda r: model.coulomb_pair(r, qq), model.lennard_jones_pair):
        energy, d_energy = pair([rc - 1e-6, rc, rc + 1e-6, 20.0])
        assert abs(energy[0]) < 1e-12 and abs(d_energy[0]) < 1e-6
        assert np.all(energy[1:] == 0.0) and np.all(d_energy[1:] == 0.0)
        # The derivative returned is the derivative of the energy returned.
        r = np.array([1.5, 2.8, 5.0, 8.99])
        h = 1e-6
        fd = (pair(r + h)[0] - pair(r - h)[0]) / (2 * h)
        np.testing.assert_allclose(pair(r)[1], fd, rtol=1e-6, atol=1e-10)
    # Two molecules pulled apart across the cutoff: energy and forces change smoothly.
    base = _two_molecules(np.random.default_rng(9), 5.0, centre=25.0)
    box = np.eye(3) * 50.0
    pair_model = forcefield.WaterModel(2)
    o_distance = np.linalg.norm(base[3] - base[0])
    direction = (base[3] - base[0]) / o_distance
    results = []
    for shift in (rc - o_distance - 1e-7, rc - o_distance + 1e-7):
        coord = base.copy()
        coord[3:] += shift * direction  # O-O distance passes through rc
        results.append(pair_model.evaluate(coord, box))
    (e1, f1, _), (e2, f2, _) = results
    assert abs(e1 - e2) < 1e-8
    assert np.abs(f1 - f2).max() < 1e-6


@pytest.mark.slow
def test_md_conserves_energy_without_thermostat():
    rng = np.random.default_rng(4)
    model = forcefield.WaterModel(32)
    coord, box = dynamics.random_water_box(32, rng)
    md = dynamics.WaterMD(model, coord, box, dt=0.5)
    md.minimise(fmax=0.1, max_steps=500)
    md.set_velocities(300.0, rng)
    md.run(100, temperature=300.0, tau=20.0, rng=rng)
    total, kinetic = [], []

    def record():
        k = md.kinetic_energy()
        total.append(md.energy + k)
        kinetic.append(k)

    md.run(600, on_step=record)  # 0.3 ps of NVE
    total, kinetic = np.array(total), np.array(kinetic)
    assert md.n_builds > 3  # the pair list was rebuilt along the way
    drift = abs(np.polyfit(np.arange(len(total)), total, 1)[0]) * len(total)
    assert total.std() < 0.03 * kinetic.std(), (total.std(), kinetic.std())
    assert drift < 0.03 * kinetic.std(), (drift, kinetic.std())
    # No momentum is created.
    np.testing.assert_allclose(np.sum(model.masses[:, None] * md.vel, axis=0), 0.0, atol=1e-10)


def test_bussi_thermostat_samples_canonical_kinetic_energy():
    """The rescaling alone, applied to a kinetic energy, gives the gamma distribution of
    ndof/2 kT: mean ndof kT/2 and variance ndof (kT)^2 / 2."""
    rng = np.random.default_rng(2)
    ndof, kt = 60, forcefield.BOLTZMANN * 300.0
    target, c = 0.5 * ndof * kt, math.exp(-0.5 / 20.0)
    kinetic, samples = target, []
    for _ in range(40000):
        kinetic *= dynamics._bussi_scale(kinetic, target, ndof, c, rng) ** 2
        samples.append(kinetic)
    samples = np.array(samples[1000:])
    assert samples.mean() == pytest.approx(target, rel=0.03)
    assert samples.var() == pytest.approx(0.5 * ndof * kt * kt, rel=0.15)


def test_sampling_is_seeded():
    runs = [dynamics.sample_system(2, np.random.default_rng([1, 0]), n_molecules=8, stride=3,
                                equilibration=10) for _ in range(2)]
    for key in ("coord", "energy", "force", "virial"):
        np.testing.assert_array_equal(runs[0][key], runs[1][key])


def test_generation_writes_deepmd_npy_system(tmp_path, capsys):
    out = tmp_path / "water"
    assert water.main([str(out), "--systems", "1", "--frames", "3", "--stride", "4",
                       "--equilibration", "20", "--seed", "3"]) == 0
    assert "frames 3/3" in capsys.readouterr().err
    system = out / "data_0"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(os.path.join("data_0", name) for name in [
        "type.raw", "set.000/box.npy", "set.000/coord.npy",
        "set.000/energy.npy", "set.000/force.npy", "set.000/virial.npy"])
    types = np.loadtxt(system / "type.raw", dtype=int)
    assert types.shape == (192,) and types.tolist() == [0, 1, 1] * 64
    shapes = {"coord": (3, 576), "box": (3, 9), "energy": (3,), "force": (3, 576),
              "virial": (3, 9)}
    data = {}
    for key, shape in shapes.items():
        data[key] = np.load(system / "set.000" / f"{key}.npy")
        assert data[key].shape == shape and data[key].dtype == np.float64, key
        assert np.all(np.isfinite(data[key])), key
    edge = dynamics.box_edge(64)
    np.testing.assert_allclose(data["box"], np.tile((np.eye(3) * edge).reshape(-1), (3, 1)))
    assert data["coord"].min() >= 0.0 and data["coord"].max() <= edge
    # The stored labels are the model's for the stored coordinates.
    model = forcefield.WaterModel(64)
    energy, force, virial = model.evaluate(data["coord"][-1].reshape(-1, 3), data["box"][-1])
    assert energy == pytest.approx(data["energy"][-1], abs=1e-9)
    np.testing.assert_allclose(force.reshape(-1), data["force"][-1], atol=1e-9)
    np.testing.assert_allclose(virial.reshape(-1), data["virial"][-1], atol=1e-9)
