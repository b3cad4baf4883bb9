"""`dp model-devi` against DeePMD-kit 3.2's `deepmd.infer.model_devi.make_model_devi` on the same
three frozen graphs (two of ours, one of DeePMD-kit's) and systems, for every option; and against
the deviation file LAMMPS's pair_style deepmd writes during MD with three of our graphs."""
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import _frozen, dp, make_workdir, water_frames, water_input
from shared_paths import WATER, needs_water

from reference.deepmd_oracle import _clean_env, run_oracle_script
from reference.lammps import require_lammps, write_data

pytestmark = needs_water

DEEPMD_MODEL_DEVI = """
import json, sys
import numpy as np
from deepmd.infer.model_devi import make_model_devi
args = json.loads(sys.argv[1])
arrays = {}
for i, case in enumerate(args["cases"]):
    blocks = make_model_devi(models=args["models"], system=case["system"],
                             output=case["output"], **case["options"])
    for j, rows in enumerate(blocks):
        arrays[f"{i}_{j}"] = rows
np.savez(args["npz"], **arrays)
print("ok")
"""

CASES = [
    ("plain", {"frequency": 1}),
    ("frequency", {"frequency": 10}),
    ("real_error", {"frequency": 1, "real_error": True}),
    ("atomic", {"frequency": 1, "atomic": True}),
    ("relative", {"frequency": 1, "relative": 1.0}),
    ("real_atomic_relative", {"frequency": 5, "real_error": True, "atomic": True,
                              "relative": 0.5}),
]
# DeePMD-kit 3.2's calc_model_devi_v divides the [nframes, 9] deviations by the [nframes]
# magnitudes, which broadcasts only for one frame per set: --relative_v is compared on such sets.
CASES_V = [
    ("relative_v", {"frequency": 1, "relative_v": 1.0}),
    ("relative_v_real", {"frequency": 1, "relative_v": 0.5, "relative": 1.0,
                         "real_error": True}),
]


def _write_system(path: Path, source: str, frames: list[list[int]], permute: bool,
                  pbc: bool = True, virial: bool = False, labels: bool = True) -> None:
    """A system of water frames (`frames`: the source frames of each set), its atoms in a
    shuffled order when `permute`, open boundaries unless `pbc`, random virial labels."""
    base = WATER / source / "set.000"
    atype = np.loadtxt(WATER / source / "type.raw", dtype=int)
    nat = atype.size
    order = np.random.RandomState(3).permutation(nat) if permute else np.arange(nat)
    path.mkdir(parents=True)
    np.savetxt(path / "type.raw", atype[order], fmt="%d")
    (path / "type_map.raw").write_text((WATER / source / "type_map.raw").read_text())
    if not pbc:
        (path / "nopbc").touch()
    coord = np.load(base / "coord.npy").reshape(-1, nat, 3)[:, order]
    force = np.load(base / "force.npy").reshape(-1, nat, 3)[:, order]
    for k, index in enumerate(frames):
        set_dir = path / f"set.{k:03d}"
        set_dir.mkdir()
        np.save(set_dir / "coord.npy", coord[index].reshape(len(index), -1))
        if pbc:
            np.save(set_dir / "box.npy", np.load(base / "box.npy")[index])
        if labels:
            np.save(set_dir / "energy.npy", np.load(base / "energy.npy")[index])
            np.save(set_dir / "force.npy", force[index].reshape(len(index), -1))
        if virial:
            np.save(set_dir / "virial.npy", np.random.RandomState(k).normal(size=(len(index), 9)))


@pytest.fixture(scope="module")
def systems(tmp_path_factory) -> dict:
    """Two roots: one with a shuffled-atom periodic system (two sets) and a nested open system
    without labels; one with one-frame sets (for --relative_v)."""
    root = tmp_path_factory.mktemp("devi_data")
    _write_system(root / "multi/a", "data_3", [[0, 1, 2], [3, 4]], permute=True, virial=True)
    _write_system(root / "multi/b/c", "data_0", [[0, 1]], permute=False, pbc=False,
                  labels=False)
    _write_system(root / "single/d", "data_3", [[5], [6]], permute=True, virial=True)
    return {"multi": root / "multi", "single": root / "single"}


@pytest.fixture(scope="module")
def ours_small_tebd(tmp_path_factory) -> Path:
    """Our small type-embedding model (4 steps)."""
    run = make_workdir(tmp_path_factory.mktemp("devi_tebd"),
                       water_input(numb_steps=4, small=True))
    return _frozen(run, dp, ["train", "input.json"], ["freeze", "-o", "tebd.pb"]) / "tebd.pb"


@pytest.fixture(scope="module")
def ours_small_tebd_2(tmp_path_factory) -> Path:
    """The same model after 2 steps: other weights."""
    run = make_workdir(tmp_path_factory.mktemp("devi_tebd_2"),
                       water_input(numb_steps=2, small=True))
    return _frozen(run, dp, ["train", "input.json"], ["freeze", "-o", "tebd2.pb"]) / "tebd2.pb"


def _parse(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    return comments, np.loadtxt(path)


@pytest.mark.slow
def test_model_devi_equals_deepmd_kit_for_every_option(tmp_path, systems, plain_graph,
                                                         ours_small_tebd, theirs_graph):
    from deepmd_tebd.infer.model_devi import make_model_devi

    models = [str(plain_graph), str(theirs_graph), str(ours_small_tebd)]
    cases = [(name, systems["multi"], options) for name, options in CASES] + [
        (name, systems["single"], options) for name, options in CASES_V]
    args = {"models": models, "npz": str(tmp_path / "theirs.npz"),
            "cases": [{"system": str(root), "output": str(tmp_path / f"theirs_{name}.out"),
                       "options": options} for name, root, options in cases]}
    run_oracle_script(DEEPMD_MODEL_DEVI, args, tmp_path)
    with np.load(tmp_path / "theirs.npz") as npz:
        theirs = {key: npz[key] for key in npz.files}
    for i, (name, root, options) in enumerate(cases):
        ours = make_model_devi(models, str(root), str(tmp_path / f"ours_{name}.out"), **options)
        assert len(ours) == len([k for k in theirs if k.startswith(f"{i}_")]), name
        for j, rows in enumerate(ours):
            np.testing.assert_allclose(rows, theirs[f"{i}_{j}"], rtol=1e-8, atol=0, err_msg=name)
        our_comments, our_numbers = _parse(tmp_path / f"ours_{name}.out")
        their_comments, their_numbers = _parse(tmp_path / f"theirs_{name}.out")
        assert our_comments == their_comments, name
        # the files print 7 significant digits: equal up to the rounding of the last one
        np.testing.assert_allclose(our_numbers, their_numbers, rtol=1e-6, atol=0, err_msg=name)


@pytest.mark.slow
def test_dp_model_devi_command_writes_the_same_file_as_the_function(tmp_path, systems,
                                                                    plain_graph, ours_small_tebd):
    from deepmd_tebd.infer.model_devi import make_model_devi

    models = [str(plain_graph), str(ours_small_tebd)]
    result = dp(tmp_path, "model-devi", "-m", *models, "-s", str(systems["multi"]), "-o",
                "cli.out", "-f", "10", "--atomic")
    assert result.returncode == 0, result.stderr[-3000:]
    make_model_devi(models, str(systems["multi"]), str(tmp_path / "function.out"), 10,
                    atomic=True)
    assert (tmp_path / "cli.out").read_text() == (tmp_path / "function.out").read_text()


def _stub(name, type_map, rcut):
    return types.SimpleNamespace(model_file=name, get_type_map=lambda: type_map,
                                 get_rcut=lambda: rcut)


def test_models_with_different_type_maps_are_refused():
    from deepmd_tebd.infer.frozen import ModelFileError
    from deepmd_tebd.infer.model_devi import check_models

    with pytest.raises(ModelFileError, match="same type map.*g1.pb has \\['H', 'O'\\]"):
        check_models([_stub("g0.pb", ["O", "H"], 6.0), _stub("g1.pb", ["H", "O"], 6.0)])


def test_models_with_different_cutoffs_are_refused():
    from deepmd_tebd.infer.frozen import ModelFileError
    from deepmd_tebd.infer.model_devi import check_models

    with pytest.raises(ModelFileError, match="same cutoff.*g1.pb has rcut 5.0"):
        check_models([_stub("g0.pb", ["O", "H"], 6.0), _stub("g1.pb", ["O", "H"], 5.0)])


def test_relative_virial_deviation_of_several_frames_is_that_of_each_frame():
    """Several frames at once give each frame's own row (DeePMD-kit 3.2 compares one-frame sets
    only: its --relative_v does not broadcast over frames)."""
    from deepmd_tebd.infer.model_devi import deviation_table

    rng = np.random.RandomState(0)
    e, f, v = rng.normal(size=(3, 4, 1)), rng.normal(size=(3, 4, 5, 3)), rng.normal(size=(3, 4, 9))
    real = {"energy": rng.normal(size=(4, 1)), "force": rng.normal(size=(4, 5, 3)),
            "virial": rng.normal(size=(4, 9))}
    for labels in (None, real):
        table, _ = deviation_table(e, f, v, 5, labels, relative=0.3, relative_v=0.7)
        for i in range(4):
            one = None if labels is None else {k: x[i:i + 1] for k, x in labels.items()}
            row, _ = deviation_table(e[:, i:i + 1], f[:, i:i + 1], v[:, i:i + 1], 5, one,
                                     relative=0.3, relative_v=0.7)
            np.testing.assert_allclose(table[i], row[0], rtol=1e-14)


LAMMPS_DEVI = """units metal
boundary p p p
atom_style atomic
atom_modify map yes
read_data data.lmp
pair_style deepmd {graphs} out_freq 10 out_file md.out
pair_coeff * * O H
neighbor 1.0 bin
velocity all create 300 4321 mom yes rot yes dist gaussian
timestep 0.0005
fix integrate all nve
dump frames all custom 10 frames.dump id x y z
dump_modify frames format float %.16e sort id
run 30
"""


def _dumped_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The positions [nf, nat, 3] and orthogonal cells [nf, 9] of a LAMMPS custom dump."""
    lines = path.read_text().splitlines()
    coords, cells = [], []
    for i, line in enumerate(lines):
        if line.startswith("ITEM: BOX BOUNDS"):
            bounds = [[float(x) for x in lines[i + k].split()[:2]] for k in (1, 2, 3)]
            cells.append(np.diag([hi - lo for lo, hi in bounds]).reshape(-1))
        if line.startswith("ITEM: NUMBER OF ATOMS"):
            nat = int(lines[i + 1])
        if line.startswith("ITEM: ATOMS"):
            rows = lines[i + 1:i + 1 + nat]
            coords.append([[float(x) for x in row.split()[1:4]] for row in rows])
    return np.array(coords), np.array(cells)


@pytest.mark.slow
def test_lammps_model_deviation_file_equals_dp_model_devi(tmp_path, plain_graph, ours_small_tebd,
                                                          ours_small_tebd_2):
    """LAMMPS's own deviation file (pair_style deepmd with three graphs) on its NVE run equals
    `dp model-devi` on the frames it dumped, in its 7 columns."""
    from deepmd_tebd.infer.model_devi import make_model_devi

    coords, cells, types = water_frames(1)
    assert np.allclose(cells[0].reshape(3, 3), np.diag(np.diag(cells[0].reshape(3, 3))))
    graphs = [plain_graph, ours_small_tebd, ours_small_tebd_2]
    write_data(tmp_path / "data.lmp", coords[0], cells[0], types, ["O", "H"])
    (tmp_path / "in.lammps").write_text(LAMMPS_DEVI.format(
        graphs=" ".join(str(Path(g).resolve()) for g in graphs)))
    proc = subprocess.run([require_lammps(), "-in", "in.lammps", "-log", "log.lammps"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=_clean_env({"TF_CPP_MIN_LOG_LEVEL": "3"}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    frame_coords, frame_cells = _dumped_frames(tmp_path / "frames.dump")
    system = tmp_path / "dumped"
    (system / "set.000").mkdir(parents=True)
    np.savetxt(system / "type.raw", types, fmt="%d")
    (system / "type_map.raw").write_text("O H\n")
    np.save(system / "set.000/coord.npy", frame_coords.reshape(len(frame_coords), -1))
    np.save(system / "set.000/box.npy", frame_cells)
    ours = make_model_devi([str(g) for g in graphs], str(system), str(tmp_path / "ours.out"),
                           frequency=10)[0]
    lammps = np.loadtxt(tmp_path / "md.out", ndmin=2)
    assert lammps.shape == (4, 7) and np.array_equal(lammps[:, 0], [0, 10, 20, 30])
    assert np.all(lammps[:, 4] > 0)
    # md.out prints 7 significant digits (%.6e); positions came back at 17
    np.testing.assert_allclose(ours[:, :7], lammps, rtol=2e-6, atol=0)
