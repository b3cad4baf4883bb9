"""The code reproduces the recorded runs: 300 steps of the water type-embedding example (and 100
steps of the same input without type embedding, the per-type nets) give the lcurve.out recorded
before the refactor byte for byte, and the frozen models give the recorded energies, forces and
virials (1e-12).

The recording (tests/train/golden/) was made by running this file with
DEEPMD_TEBD_RECORD_GOLDEN=1, last when the data RNG took DeePMD-kit 3.x's key [rank, seed] (the
batches, and so the lcurves, changed); record again only when a change is meant to alter the
numbers."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from dp_command import run_dp
from shared_paths import WATER, needs_water

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
RECORD = os.environ.get("DEEPMD_TEBD_RECORD_GOLDEN") == "1"
OUTPUTS = ("energy", "force", "virial", "atom_energy", "atom_virial")


def _dp(cwd, *args):
    result = run_dp(cwd, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# name -> steps; "se_e2_a": the example without type_embedding (type_one_side false)
RUNS = {"tebd_300": 300, "se_e2_a_100": 100}


@pytest.fixture(scope="module", params=list(RUNS))
def golden_run(request, tmp_path_factory):
    """The example's input trained (display every 20 steps) and frozen: (name, run folder)."""
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    (tmp / "data").symlink_to(WATER)
    run = tmp / "run"
    run.mkdir()
    script = json.loads((ROOT / "examples/water/se_e2_a_tebd/input.json").read_text())
    script["training"].update(numb_steps=RUNS[name], disp_freq=20, save_freq=100)
    if name.startswith("se_e2_a"):
        del script["model"]["type_embedding"]
        script["model"]["descriptor"]["type_one_side"] = False
    (run / "input.json").write_text(json.dumps(script, indent=2))
    _dp(run, "train", "input.json")
    _dp(run, "freeze", "-o", "graph.pb")
    return name, run


def _frozen_outputs(graph):
    from deepmd_tebd.infer import DeepPot

    set_dir = WATER / "data_3/set.000"
    coord = np.load(set_dir / "coord.npy")[:4]
    box = np.load(set_dir / "box.npy")[:4]
    atype = np.loadtxt(WATER / "data_3/type.raw", dtype=int)
    e, f, v, ae, av = DeepPot(str(graph)).eval(coord, box, atype, atomic=True)
    return dict(zip(OUTPUTS, (e, f, v, ae, av)))


@needs_water
def test_lcurve_is_byte_identical_to_the_recorded_run(golden_run):
    name, run = golden_run
    lcurve = (run / "lcurve.out").read_bytes()
    if RECORD:
        GOLDEN.mkdir(exist_ok=True)
        (GOLDEN / f"{name}.lcurve.out").write_bytes(lcurve)
    assert lcurve == (GOLDEN / f"{name}.lcurve.out").read_bytes()


@needs_water
def test_frozen_model_gives_the_recorded_numbers(golden_run):
    name, run = golden_run
    got = _frozen_outputs(run / "graph.pb")
    if RECORD:
        np.savez(GOLDEN / f"{name}.frozen.npz", **got)
    want = np.load(GOLDEN / f"{name}.frozen.npz")
    for name in OUTPUTS:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12, err_msg=name)
