"""Seven chemical species: each input of examples/alloy (se_atten_v2, se_a_ebd_v2 smooth,
se_e2_a with and without type embedding), made small, trains 20 steps on alloy data that the
package generates, freezes, and its graph gives in DeePMD-kit 3.2's DeepPot what it gives in ours
(1e-10) on frames holding all seven elements; `dp test` reports each element's force error."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import deepmd_eval, dp

from deepmd_tebd.infer import DeepPot

pytest.importorskip("ase")
from deepmd_tebd.tools import alloy  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "alloy"
INPUTS = ["se_atten_v2.json", "se_a_ebd_v2.json", "se_e2_a_tebd.json", "se_e2_a.json"]
ELEMENTS = ["Cu", "Ag", "Au", "Ni", "Pd", "Pt", "Al"]
STEPS = 20


@pytest.fixture(scope="module")
def alloy_data(tmp_path_factory) -> Path:
    """Three 32-atom systems of two frames; data_0 holds every element."""
    root = tmp_path_factory.mktemp("alloy") / "data"
    options = ["--systems", "3", "--frames", "2", "--atoms", "32", "--equilibration", "4",
               "--stride", "2", "--quiet"]
    assert alloy.main([str(root)] + options) == 0
    return root


def _small(name: str) -> dict:
    script = json.loads((EXAMPLES / name).read_text())
    descriptor = script["model"]["descriptor"]
    descriptor.update(neuron=[4, 8], axis_neuron=4)
    if "attn" in descriptor:
        descriptor["attn"] = 8
    script["model"]["fitting_net"]["neuron"] = [16, 16]
    training = script["training"]
    training.update(numb_steps=STEPS, disp_freq=STEPS, save_freq=STEPS)
    training["training_data"]["systems"] = ["data/data_1", "data/data_2"]
    training["validation_data"].update(systems=["data/data_0"], numb_btch=1)
    return script


@pytest.mark.parametrize("name", INPUTS)
def test_seven_species_models_run_in_deepmd_kits_deep_pot(tmp_path, alloy_data, name):
    (tmp_path / "data").symlink_to(alloy_data)
    (tmp_path / "input.json").write_text(json.dumps(_small(name), indent=1))
    for args in (("train", "input.json"), ("freeze", "-o", "alloy.pb")):
        result = dp(tmp_path, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    system = alloy_data / "data_0"
    types = np.loadtxt(system / "type.raw", dtype=int)
    assert sorted(set(types)) == list(range(len(ELEMENTS)))
    coords = np.load(system / "set.000" / "coord.npy").reshape(2, -1, 3)
    cells = np.load(system / "set.000" / "box.npy")
    e, f, v = DeepPot(tmp_path / "alloy.pb").eval(coords, cells, types)[:3]
    theirs = deepmd_eval(tmp_path / "alloy.pb", coords, cells, types, tmp_path)
    np.testing.assert_allclose(theirs["energy"].reshape(e.shape), e, rtol=1e-10)
    for key, ours in (("force", f), ("virial", v)):
        np.testing.assert_allclose(theirs[key].reshape(ours.shape), ours, rtol=0,
                                   atol=1e-10 * np.abs(ours).max())
    _assert_element_force_table(tmp_path, f, types, system)


def _assert_element_force_table(run: Path, force, types, system: Path) -> None:
    """`dp test` prints, after DeePMD-kit's lines, each element's force MAE and RMSE: those of
    the DeepPot forces over that element's atoms."""
    result = dp(run, "test", "-m", "alloy.pb", "-s", str(system))
    assert result.returncode == 0, result.stderr[-3000:]
    table = {}
    for line in result.stderr.split("force errors per element")[1].splitlines()[1:]:
        fields = line.split("#", 1)[-1].split()
        if len(fields) != 4 or fields[0] not in ELEMENTS:
            break
        table[fields[0]] = (int(fields[1]), float(fields[2]), float(fields[3]))
    assert list(table) == ELEMENTS
    labels = np.load(system / "set.000" / "force.npy").reshape(force.shape)
    for index, name in enumerate(ELEMENTS):
        diff = (force - labels)[:, types == index]
        assert table[name][0] == diff.shape[0] * diff.shape[1]
        assert table[name][1] == pytest.approx(np.abs(diff).mean(), rel=1e-5)
        assert table[name][2] == pytest.approx(np.sqrt((diff ** 2).mean()), rel=1e-5)
