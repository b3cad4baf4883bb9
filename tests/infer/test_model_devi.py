"""`dp model-devi` against DeePMD-kit 3.2's `deepmd.infer.model_devi.make_model_devi` on the same
three frozen graphs (two of ours, one of DeePMD-kit's) and systems, for every option."""
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import _frozen, dp, make_workdir, water_input
from shared_paths import WATER, needs_water

from reference.deepmd_oracle import run_oracle_script

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


def _parse(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    return comments, np.loadtxt(path)


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
