"""The ASE calculator: DeepPot's numbers through ase.Atoms, stress = -virial / volume, and a
few steps of molecular dynamics."""
import numpy as np
import pytest
from conftest import water_frames

pytest.importorskip("ase")
from ase import Atoms  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402
from ase import units  # noqa: E402

from deepmd_tebd.calculator import DP  # noqa: E402
from deepmd_tebd.infer import DeepPot  # noqa: E402

pytestmark = pytest.mark.slow


def water_atoms():
    coords, cells, types = water_frames(1)
    symbols = np.array(["O", "H"])[types]
    return Atoms(symbols=list(symbols), positions=coords[0], cell=cells[0].reshape(3, 3),
                 pbc=True)


def test_calculator_gives_deep_pot_numbers(ours_graph):
    atoms = water_atoms()
    atoms.calc = DP(str(ours_graph))
    coords, cells, types = water_frames(1)
    e, f, v = DeepPot(ours_graph).eval(coords, cells, types)
    assert atoms.get_potential_energy() == pytest.approx(e[0, 0], rel=1e-12)
    assert atoms.get_potential_energy(force_consistent=True) == pytest.approx(e[0, 0], rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f[0], rtol=1e-12, atol=1e-12)
    stress = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(stress, -v[0].reshape(3, 3) / atoms.get_volume(), rtol=1e-10,
                               atol=1e-12)


def test_unknown_element_is_named(ours_graph):
    atoms = Atoms("OHC", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    atoms.calc = DP(str(ours_graph))
    with pytest.raises(ValueError, match=r"\['C'\] are not in the model's type map"):
        atoms.get_potential_energy()


def test_a_few_md_steps_run_and_keep_the_energy(ours_graph):
    atoms = water_atoms()
    atoms.calc = DP(str(ours_graph))
    rng = np.random.default_rng(0)
    atoms.set_velocities(rng.normal(scale=0.002, size=(len(atoms), 3)))
    start = atoms.get_total_energy()
    VelocityVerlet(atoms, 0.1 * units.fs).run(5)
    assert np.all(np.isfinite(atoms.get_positions()))
    assert abs(atoms.get_total_energy() - start) < 1e-3 * len(atoms)


def test_calculator_runs_a_compressed_graph(ours_compressed_graph, plain_graph):
    atoms = water_atoms()
    atoms.calc = DP(str(ours_compressed_graph))
    reference = water_atoms()
    reference.calc = DP(str(plain_graph))
    assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(),
                                                         rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), rtol=0, atol=1e-10)
    VelocityVerlet(atoms, timestep=0.5 * units.fs).run(2)
