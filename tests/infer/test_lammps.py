"""Our frozen graph in LAMMPS (`pair_style deepmd` of DeePMD-kit 3.2, installed with its `lmp`
extra in the oracle venv): LAMMPS builds ghost atoms and its own neighbour list and sums the
virial from o_atom_virial, with DeePMD-kit's kernels. Step 0 equals our DeepPot, and NVE
conserves the total energy (the forces are the gradient of the energy that LAMMPS reports): the
MD runs use small nets of the same inputs, the step-0 checks the full-size example."""
import numpy as np
import pytest
from conftest import water_frames

from deepmd_tebd.infer import DeepPot
from reference.lammps import run_lammps

pytestmark = pytest.mark.slow

NVE_STEPS = 600


@pytest.fixture(scope="module")
def lammps_run(ours_graph, tmp_path_factory):
    coords, cells, types = water_frames(1)
    return run_lammps(tmp_path_factory.mktemp("lammps"), ours_graph, coords[0], cells[0], types,
                      ["O", "H"])


@pytest.fixture(scope="module")
def nve_run(small_tebd_graph, tmp_path_factory):
    coords, cells, types = water_frames(1)
    return run_lammps(tmp_path_factory.mktemp("nve"), small_tebd_graph, coords[0], cells[0],
                      types, ["O", "H"], nve_steps=NVE_STEPS, timestep_ps=0.00025,
                      temperature=50.0)


def test_step_zero_equals_deep_pot(lammps_run, ours_graph):
    coords, cells, types = water_frames(1)
    e, f, v = DeepPot(ours_graph).eval(coords, cells, types)
    assert lammps_run["energy"] == pytest.approx(e[0, 0], rel=1e-10)
    scale = np.abs(f[0]).max()
    assert np.abs(lammps_run["forces"] - f[0]).max() <= 1e-10 * scale
    assert np.abs(lammps_run["virial"] - v[0]).max() <= 1e-10 * np.abs(v[0]).max()


def assert_total_energy_conserved(run):
    thermo = run["thermo"]  # step, pe, ke, etotal every 10 steps
    assert thermo[-1, 0] == NVE_STEPS
    pe_swing = thermo[:, 1].max() - thermo[:, 1].min()
    drift = np.abs(thermo[:, 3] - thermo[0, 3]).max()
    assert pe_swing > 0.05  # the atoms moved
    assert drift <= 0.01 * pe_swing, (drift, pe_swing)


def test_nve_conserves_the_total_energy(nve_run):
    assert_total_energy_conserved(nve_run)


def test_se_a_ebd_v2_with_smooth_type_embedding_conserves_the_total_energy(
        ours_ebd_v2_smooth_graph, tmp_path):
    """Continuous at the cutoff, the se_a_ebd_v2 model conserves energy as se_e2_a + type
    embedding does (bench/smooth_cutoff.py measures the default's drift beside it)."""
    coords, cells, types = water_frames(1)
    assert_total_energy_conserved(run_lammps(
        tmp_path, ours_ebd_v2_smooth_graph, coords[0], cells[0], types, ["O", "H"],
        nve_steps=NVE_STEPS, timestep_ps=0.00025, temperature=50.0))


def test_se_a_ebd_v2_step_zero_equals_deep_pot(ours_ebd_v2_graph, tmp_path):
    coords, cells, types = water_frames(1)
    run = run_lammps(tmp_path, ours_ebd_v2_graph, coords[0], cells[0], types, ["O", "H"])
    e, f, v = DeepPot(ours_ebd_v2_graph).eval(coords, cells, types)
    assert run["energy"] == pytest.approx(e[0, 0], rel=1e-10)
    assert np.abs(run["forces"] - f[0]).max() <= 1e-10 * np.abs(f[0]).max()
    assert np.abs(run["virial"] - v[0]).max() <= 1e-10 * np.abs(v[0]).max()


def test_compressed_graph_step_zero_equals_deep_pot_and_nve_conserves_energy(
        ours_compressed_graph, tmp_path):
    coords, cells, types = water_frames(1)
    run = run_lammps(tmp_path, ours_compressed_graph, coords[0], cells[0], types, ["O", "H"],
                     nve_steps=NVE_STEPS, timestep_ps=0.00025, temperature=50.0)
    e, f, v = DeepPot(ours_compressed_graph).eval(coords, cells, types)
    assert run["energy"] == pytest.approx(e[0, 0], rel=1e-10)
    assert np.abs(run["forces"] - f[0]).max() <= 1e-10 * np.abs(f[0]).max()
    assert np.abs(run["virial"] - v[0]).max() <= 1e-10 * np.abs(v[0]).max()
    thermo = run["thermo"]
    drift = np.abs(thermo[:, 3] - thermo[0, 3]).max()
    pe_swing = thermo[:, 1].max() - thermo[:, 1].min()
    assert thermo[-1, 0] == NVE_STEPS and pe_swing > 0
    assert drift <= 0.01 * pe_swing, (drift, pe_swing)
