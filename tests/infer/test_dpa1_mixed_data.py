"""DPA-1 on mixed-type data (set.*/real_atom_types.npy, virtual atoms of type -1) and with
"mixed:N" batches, against DeePMD-kit 3.2 in the same run: `dp train` gives DeePMD-kit's
statistics; `dp test` and `dp model-devi` of our graph on mixed data agree with DeePMD-kit's
(1e-10); mixed batches of systems of two sizes train; a descriptor of per-type blocks is refused on mixed data,
naming the system and the descriptor, before anything is written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import dp, make_workdir, oracle_dp, small_dpa1_input, tiny_input, water_input
from mixed_data import mixed_from_system
from shared_paths import WATER, needs_water

pytestmark = [needs_water, pytest.mark.slow]

# the last atom (an H: the frames keep DeePMD-kit's type order) is virtual in some frames;
# DeePMD-kit's statistics split the centres of a frame by its type counts
STAT_VIRTUAL = {1: [191], 4: [191], 7: [191]}


def _graph_constants(graph: Path, names) -> dict:
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph.read_bytes())
    nodes = {node.name: node for node in graph_def.node}
    return {name: tf.make_ndarray(nodes[name].attr["value"].tensor) for name in names}


def _mixed_script(systems, steps, batch_size="auto", seed=None) -> dict:
    script = small_dpa1_input("water_se_atten.json", steps=steps)
    training = script["training"]
    training.update(disp_freq=1, save_freq=max(steps, 1))
    training["training_data"].update(systems=systems, batch_size=batch_size)
    training["validation_data"].update(systems=systems[:1], batch_size=batch_size, numb_btch=1)
    if seed is not None:
        script["model"]["descriptor"]["seed"] = seed
    return script


def _run(root: Path, script: dict, runner, graph: str) -> Path:
    run = root / "run"
    run.mkdir(parents=True)
    (run / "input.json").write_text(json.dumps(script, indent=1))
    for args in (("train", "input.json"), ("freeze", "-o", graph)):
        result = runner(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory) -> Path:
    """m0, m1: water frames in the mixed-type format (type order kept, a virtual last atom in
    some frames); m3: frames whose atoms are shuffled, with virtual atoms among them."""
    root = tmp_path_factory.mktemp("mixed")
    (root / "data").symlink_to(WATER)
    for k in (0, 1):
        mixed_from_system(WATER / f"data_{k}", root / f"m{k}", 10, virtual=STAT_VIRTUAL,
                          seed=k, shuffle=False)
    mixed_from_system(WATER / "data_3", root / "m3", 6, virtual={0: [3], 1: [70, 150],
                                                                 4: [0]}, seed=3)
    return root


def test_statistics_on_mixed_data_equal_deepmd_kits(mixed_root):
    """davg, dstd and the energy bias of `dp train` (0 steps) on mixed-type data with virtual
    atoms, both sides frozen: equal to 1e-10."""
    script = _mixed_script([str(mixed_root / "m0"), str(mixed_root / "m1")], steps=0)
    ours = _run(mixed_root / "stats_ours", script, dp, "ours.pb")
    theirs = _run(mixed_root / "stats_theirs", script, oracle_dp, "theirs.pb")
    names = ["descrpt_attr/t_avg", "descrpt_attr/t_std", "fitting_attr/t_bias_atom_e"]
    got = _graph_constants(ours / "ours.pb", names)
    expected = _graph_constants(theirs / "theirs.pb", names)
    for name in names:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-10, atol=1e-13,
                                   err_msg=name)
    assert np.abs(got["descrpt_attr/t_std"]).min() > 0


@pytest.fixture(scope="module")
def mixed_graphs(mixed_root) -> tuple[Path, Path]:
    """Two of our se_atten_v2 graphs (other descriptor seeds, 2 steps on mixed data)."""
    graphs = []
    for seed in (1, 2):
        systems = [str(mixed_root / "m0"), str(mixed_root / "m1")]
        run = _run(mixed_root / f"model_{seed}", _mixed_script(systems, 2, seed=seed), dp,
                   "model.pb")
        graphs.append(run / "model.pb")
    return graphs[0], graphs[1]


def test_dp_test_on_mixed_data_agrees_with_deepmd_kits(mixed_root, mixed_graphs, tmp_path):
    """Frames whose atoms are shuffled, with virtual atoms: DeePMD-kit's `dp test` of our graph
    (its DeepPot, mixed_type) and ours give the same predictions (1e-10)."""
    graph = mixed_graphs[0]
    for runner, prefix in ((dp, "ours"), (oracle_dp, "theirs")):
        result = runner(tmp_path, "test", "-m", str(graph), "-s", str(mixed_root / "m3"),
                        "-d", prefix)
        assert result.returncode == 0, result.stderr[-3000:]
    for suffix in (".e.out", ".f.out", ".v.out"):
        ours = np.loadtxt(tmp_path / f"ours{suffix}")
        theirs = np.loadtxt(tmp_path / f"theirs{suffix}")
        assert ours.shape == theirs.shape, suffix
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10 * np.abs(theirs).max(),
                                   err_msg=suffix)
    forces = np.loadtxt(tmp_path / "ours.f.out")[:, 3:].reshape(6, 192, 3)
    assert not forces[1, 70].any() and not forces[4, 0].any()  # virtual atoms: no force


def test_model_devi_on_mixed_data_agrees_with_deepmd_kits(mixed_root, mixed_graphs, tmp_path):
    models = [str(g) for g in mixed_graphs]
    for runner, out in ((dp, "ours.out"), (oracle_dp, "theirs.out")):
        result = runner(tmp_path, "model-devi", "-m", *models, "-s", str(mixed_root / "m3"),
                        "-o", out)
        assert result.returncode == 0, result.stderr[-3000:]
    ours, theirs = np.loadtxt(tmp_path / "ours.out"), np.loadtxt(tmp_path / "theirs.out")
    assert ours.shape == theirs.shape == (6, 8)
    assert theirs[:, 4].min() > 0  # the two models differ
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def _lcurve_row(folder: Path, script: dict, runner) -> np.ndarray:
    folder.mkdir(parents=True)
    (folder / "input.json").write_text(json.dumps(script, indent=1))
    result = runner(folder, "train", "input.json")
    assert result.returncode == 0, result.stderr[-3000:]
    return np.loadtxt(folder / "lcurve.out", ndmin=2)


def test_mixed_batches_of_systems_of_two_sizes_train(mixed_root):
    """A 192-atom and a 96-atom system in "mixed:3" batches: the smaller frames padded with
    virtual atoms, the training runs and its errors are finite (DeePMD-kit 3.2's TensorFlow
    trainer stops on such data: its energy statistics concatenate frames of both sizes)."""
    small = mixed_root / "small"
    _write_subset(small, WATER / "data_1", np.r_[0:32, 64:128])
    script = _mixed_script([str(WATER / "data_0"), str(small)], steps=4, batch_size="mixed:3")
    rows = _lcurve_row(mixed_root / "two_sizes" / "run", script, dp)
    assert rows.shape[0] == 5 and np.all(np.isfinite(rows))


def _write_subset(path: Path, source: Path, atoms) -> None:
    """The first set of `source` restricted to `atoms`, in the standard format."""
    full = np.loadtxt(source / "type.raw", dtype=int)
    (path / "set.000").mkdir(parents=True)
    (path / "type.raw").write_text(" ".join(map(str, full[atoms])) + "\n")
    (path / "type_map.raw").write_text((source / "type_map.raw").read_text())
    src = sorted(source.glob("set.*"))[0]
    for name in ("coord", "force"):
        value = np.load(src / f"{name}.npy").reshape(-1, full.size, 3)[:, atoms]
        np.save(path / "set.000" / f"{name}.npy", value.reshape(value.shape[0], -1))
    for name in ("box", "energy"):
        np.save(path / "set.000" / f"{name}.npy", np.load(src / f"{name}.npy"))


@pytest.mark.parametrize("command", ["train", "test"])
def test_descriptor_of_type_blocks_is_refused_on_mixed_data(mixed_root, tmp_path, command):
    """se_e2_a + type embedding on mixed data: `dp train` stops naming the system and the
    descriptor, writing nothing; `dp test` of such a model likewise."""
    script = tiny_input(water_input(), numb_steps=1)
    script["training"]["training_data"]["systems"] = [str(mixed_root / "m0")]
    run = make_workdir(tmp_path / "run", script)
    if command == "train":
        result = dp(run, "train", "input.json")
        assert result.returncode == 1
        assert str(mixed_root / "m0") in result.stderr and "se_e2_a" in result.stderr
        assert sorted(p.name for p in run.iterdir()) == ["input.json"]
        return
    script["training"]["training_data"]["systems"] = ["../data/data_0"]
    (run / "input.json").write_text(json.dumps(script))
    for args in (("train", "input.json"), ("freeze", "-o", "plain.pb")):
        assert dp(run, *args).returncode == 0
    result = dp(run, "test", "-m", "plain.pb", "-s", str(mixed_root / "m3"))
    assert result.returncode == 1
    assert str(mixed_root / "m3") in result.stderr and "mixed-type" in result.stderr
