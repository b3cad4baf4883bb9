"""`dp train --init-frz-model compressed.pb` from a compressed graph (ours or DeePMD-kit 3.2's
`dp compress`), as DeePMD-kit 3.2 does it: the graph's tables stay as they are, the fitting net
trains, and `dp freeze` writes a compressed graph again.

DeePMD-kit is run in the same test on a one-frame system (every batch is that frame, so both
programs draw the same batches). lcurve.out prints three significant digits: the step-0 rows
must be equal, later rows equal to that precision (rtol 1e-2: a rounding flip of the last
digit). After the steps the two frozen graphs agree to rtol 1e-6 only: Adam's update is about
lr * g / |g| per weight, so a weight whose gradient is at round-off level moves by up to lr in
either direction (measured: a few weights of 1000 apart by up to 3e-6, energy 1e-10 and force
2e-8 relative). The step-0 model itself is checked
to 1e-12: zero steps and `dp freeze` give back the input graph."""
import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import dp, make_workdir, one_frame_system, oracle_dp, water_frames, water_input

from deepmd_tebd.infer.deep_pot import DeepPot
from deepmd_tebd.infer.frozen import read_graph_def
from deepmd_tebd.infer.weight_names import graph_constants
from deepmd_tebd.store.restore import tables_of_checkpoint, tables_of_graph
from deepmd_tebd.train.lcurve import read_lcurve

pytestmark = pytest.mark.slow

GRAPHS = ["ours_compressed_graph", "theirs_compressed_graph"]
NETS = [f"filter_type_{i}_{j}" for i in range(2) for j in range(2)]


def _script(system, numb_steps):
    script = water_input("water_se_e2_a.json", numb_steps=numb_steps, small=True)
    script["training"]["disp_freq"] = 1
    script["training"]["training_data"].update(systems=[str(system)], batch_size=1)
    script["training"]["validation_data"].update(systems=[str(system)], batch_size=1,
                                                  numb_btch=1)
    return script


def _fitting(graph_def) -> dict:
    return {name: value for name, value in graph_constants(graph_def).items()
            if name.startswith(("layer_", "final_layer")) and name.endswith(("/matrix", "/bias",
                                                                               "/idt"))
            or name == "fitting_attr/t_bias_atom_e"}


def _same_outputs(a: DeepPot, b: DeepPot, rtol: float):
    coords, cells, types = water_frames(2)
    for x, y in zip(a.eval(coords, cells, types), b.eval(coords, cells, types)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.abs(y).max())


@pytest.mark.parametrize("which", GRAPHS)
def test_zero_steps_from_a_compressed_graph_freeze_to_the_same_compressed_model(
        which, request, tmp_path):
    graph = request.getfixturevalue(which)
    run = make_workdir(tmp_path, _script(one_frame_system(tmp_path / "one_frame"), 0))
    result = dp(run, "train", "input.json", "--init-frz-model", str(graph))
    assert result.returncode == 0, result.stderr[-3000:]
    assert dp(run, "freeze", "-o", "again.pb").returncode == 0
    again = read_graph_def(run / "again.pb")
    assert graph_constants(again)["model_type"].item() == b"compressed_model"
    _same_outputs(DeepPot(run / "again.pb"), DeepPot(graph), 1e-12)


@pytest.mark.parametrize("which", GRAPHS)
def test_training_from_a_compressed_graph_is_deepmd_kits(which, request, tmp_path):
    graph = request.getfixturevalue(which)
    system = one_frame_system(tmp_path / "one_frame")
    runs, rows = {}, {}
    for side, runner, argv in (("ours", dp, ["train"]), ("theirs", oracle_dp, ["--tf", "train"])):
        run = make_workdir(tmp_path / side, _script(system, 3))
        result = runner(run, *argv, "input.json", "--init-frz-model", str(graph))
        assert result.returncode == 0, result.stderr[-3000:]
        freeze = runner(run, *argv[:-1], "freeze", "-o", "again.pb")
        assert freeze.returncode == 0, freeze.stderr[-3000:]
        names, data = read_lcurve(str(run / "lcurve.out"))
        runs[side], rows[side] = run, {name: data[:, k] for k, name in enumerate(names)}
    common = sorted(rows["ours"].keys() & rows["theirs"].keys())
    assert {"rmse_e_val", "rmse_e_trn", "rmse_f_val", "rmse_f_trn", "lr"} <= set(common)
    assert [rows["ours"][k][0] for k in common] == [rows["theirs"][k][0] for k in common]
    for k in common:
        np.testing.assert_allclose(rows["ours"][k], rows["theirs"][k], rtol=1e-2)

    # what trains: the fitting net in both programs, the tables in neither
    before = read_graph_def(graph)
    tables = tables_of_graph(before, NETS, graph)
    for side, run in runs.items():
        again = read_graph_def(run / "again.pb")
        assert graph_constants(again)["model_type"].item() == b"compressed_model"
        for net, table in tables_of_graph(again, NETS, run / "again.pb").items():
            np.testing.assert_array_equal(table.table, tables[net].table)
            assert table.info == tables[net].info
        moved = [name for name, value in _fitting(again).items()
                 if not np.array_equal(value, _fitting(before)[name])]
        assert any(name.startswith("final_layer") for name in moved), side
    ours, theirs = (_fitting(read_graph_def(runs[s] / "again.pb")) for s in ("ours", "theirs"))
    assert ours.keys() == theirs.keys()
    # an Adam step moves a weight by at most about lr: two runs apart by round-off only stay
    # within 2 * (sum of the rates applied); most weights agree far closer
    bound = 2 * float(np.sum(rows["theirs"]["lr"][:-1]))
    close = []
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=bound, err_msg=name)
        close.append(np.isclose(ours[name], theirs[name], rtol=1e-6, atol=1e-9).ravel())
    assert np.mean(np.concatenate(close)) > 0.99
    _same_outputs(DeepPot(runs["ours"] / "again.pb"), DeepPot(runs["theirs"] / "again.pb"), 1e-6)

    # our frozen graph is the trainer's model: the checkpoint's tables and fitting weights
    saved = tables_of_checkpoint(str(runs["ours"] / "model.ckpt"))
    assert sorted(saved) == NETS
    for net in NETS:
        np.testing.assert_array_equal(saved[net].table, tables[net].table)
    reader = tf.train.load_checkpoint(str(runs["ours"] / "model.ckpt"))
    values = [reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
              if key.startswith("model/") and "optimizer" not in key]
    for name, value in ours.items():
        assert any(v.shape == value.shape and np.array_equal(v, value) for v in values), name


@pytest.mark.parametrize("change, reason", [
    ({"neuron": [8, 32]}, "output channels"),
    ({"type_one_side": True}, "tabulated embedding nets"),
    ({"sel": [40, 80]}, "does not fit the model"),
    ({"rcut": 5.0}, "rcut"),
])
def test_a_compressed_graph_of_another_descriptor_is_refused_naming_the_file(
        change, reason, ours_compressed_graph, tmp_path):
    script = _script(one_frame_system(tmp_path / "one_frame"), 1)
    script["model"]["descriptor"].update(change)
    run = make_workdir(tmp_path, script)
    result = dp(run, "train", "input.json", "--init-frz-model", str(ours_compressed_graph))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(ours_compressed_graph) in result.stderr and reason in result.stderr


@pytest.mark.parametrize("option", ["--restart", "--init-model"])
def test_a_run_continued_from_a_run_from_a_compressed_graph_stays_compressed(
        option, ours_compressed_graph, tmp_path):
    script = _script(one_frame_system(tmp_path / "one_frame"), 1)
    run = make_workdir(tmp_path, script)
    result = dp(run, "train", "input.json", "--init-frz-model", str(ours_compressed_graph))
    assert result.returncode == 0, result.stderr[-3000:]
    names, first = read_lcurve(run / "lcurve.out")
    script["training"]["numb_steps"] = 2
    (run / "input.json").write_text(json.dumps(script))
    result = dp(run, "train", "input.json", option, "model.ckpt")
    assert result.returncode == 0, result.stderr[-3000:]
    if option == "--init-model":  # a new run whose step-0 model is the first run's last one
        _, second = read_lcurve(run / "lcurve.out")
        assert second[0, 0] == 0 and len(second) == 3
        # the one frame is every batch: the errors of the same weights (the total loss
        # differs, its prefactors follow the learning rate)
        errors = [i for i, name in enumerate(names) if name.startswith(("rmse_e", "rmse_f"))]
        np.testing.assert_array_equal(second[0, errors], first[-1, errors])
    assert dp(run, "freeze", "-o", "again.pb").returncode == 0
    again = read_graph_def(run / "again.pb")
    assert graph_constants(again)["model_type"].item() == b"compressed_model"
    before = tables_of_graph(read_graph_def(ours_compressed_graph), NETS, "")
    for net, table in tables_of_graph(again, NETS, "").items():
        np.testing.assert_array_equal(table.table, before[net].table)


@pytest.mark.parametrize("change", [{"type_one_side": True}, {"exclude_types": [[0, 1]]}])
def test_compressed_graphs_of_one_side_or_excluded_pairs_round_trip_through_init_frz_model(
        change, tmp_path):
    """Zero steps from the compressed graph of a descriptor with one net per neighbour type
    (type_one_side) or with an excluded pair, then `dp freeze`: the same compressed model."""
    system = one_frame_system(tmp_path / "one_frame")
    script = _script(system, 1)
    script["model"]["descriptor"].update(change)
    first = make_workdir(tmp_path / "first", script)
    assert dp(first, "train", "input.json").returncode == 0
    assert dp(first, "freeze", "-o", "plain.pb").returncode == 0
    result = dp(first, "compress", "-i", "plain.pb", "-o", "compressed.pb")
    assert result.returncode == 0, result.stderr[-3000:]
    script["training"]["numb_steps"] = 0
    run = make_workdir(tmp_path / "second", script)
    result = dp(run, "train", "input.json", "--init-frz-model", str(first / "compressed.pb"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert dp(run, "freeze", "-o", "again.pb").returncode == 0
    again = read_graph_def(run / "again.pb")
    assert graph_constants(again)["model_type"].item() == b"compressed_model"
    _same_outputs(DeepPot(run / "again.pb"), DeepPot(first / "compressed.pb"), 1e-12)


def test_dp_train_ignores_an_inputs_compress_section_as_deepmd_kit_does(ours_compressed_graph,
                                                                        tmp_path):
    """The script inside a compressed graph has `model/compress`: `dp train` of it trains the
    plain model (a warning here), and `dp freeze` writes an original_model, with both
    programs."""
    section = json.loads(graph_constants(read_graph_def(ours_compressed_graph))[
        "train_attr/training_script"].item())["model"]["compress"]
    script = _script(one_frame_system(tmp_path / "one_frame"), 1)
    script["model"]["compress"] = section
    for name, runner, prefix in [("ours", dp, []), ("theirs", oracle_dp, ["--tf"])]:
        run = make_workdir(tmp_path / name, script)
        result = runner(run, *prefix, "train", "input.json")
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        assert runner(run, *prefix, "freeze", "-o", "graph.pb").returncode == 0
        graph = read_graph_def(run / "graph.pb")
        assert graph_constants(graph)["model_type"].item() == b"original_model", name
        assert not any(n.op.startswith("TabulateFusion") for n in graph.node), name
        if name == "ours":
            assert "model/compress is ignored by dp train" in result.stderr
            assert "compress" not in json.loads((run / "out.json").read_text())["model"]
