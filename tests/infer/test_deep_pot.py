"""DeepPot's contract: shapes, atom order, batching, open boundaries, and one clear error for
each kind of bad model file or argument; `dp freeze` and `dp compress` leave no partial output."""
import numpy as np
import pytest
import tensorflow as tf
from conftest import dp, water_frames

from deepmd_tebd.infer import DeepPot, ModelFileError
from deepmd_tebd.infer.node_names import MODEL_ATTR_MODEL_VERSION


@pytest.fixture(scope="module")
def pot(ours_graph):
    return DeepPot(ours_graph)


@pytest.mark.slow
def test_shapes_and_atomic_sums(pot):
    coords, cells, types = water_frames(3)
    e, f, v, ae, av = pot.eval(coords, cells, types, atomic=True)
    assert e.shape == (3, 1) and f.shape == (3, 192, 3) and v.shape == (3, 9)
    assert ae.shape == (3, 192, 1) and av.shape == (3, 192, 9)
    np.testing.assert_allclose(ae.sum(axis=1), e, rtol=1e-12)
    np.testing.assert_allclose(av.sum(axis=1), v, rtol=1e-10, atol=1e-10)
    # flat coordinates and 3x3 cells are the same frames
    e2, f2, v2 = pot.eval(coords.reshape(3, -1), cells.reshape(3, 3, 3), types)
    np.testing.assert_array_equal(e2, e)


def test_atom_order_is_mapped_back(pot):
    coords, cells, types = water_frames(2)
    perm = np.random.default_rng(0).permutation(192)
    e, f, v = pot.eval(coords, cells, types)
    ep, fp, vp = pot.eval(coords[:, perm], cells, types[perm])
    np.testing.assert_allclose(ep, e, rtol=1e-12)
    np.testing.assert_allclose(fp, f[:, perm], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vp, v, rtol=1e-10, atol=1e-10)


@pytest.mark.slow
def test_batches_of_frames_give_the_numbers_of_one_run(ours_graph):
    coords, cells, types = water_frames(5)
    whole = DeepPot(ours_graph, batch_atoms=10_000).eval(coords, cells, types, atomic=True)
    frame_by_frame = DeepPot(ours_graph, batch_atoms=1).eval(coords, cells, types, atomic=True)
    for a, b in zip(whole, frame_by_frame):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_open_boundaries_translate_freely(pot):
    coords, _, types = water_frames(1)
    e, f, _ = pot.eval(coords, None, types)
    e2, f2, _ = pot.eval(coords + np.array([50.0, -20.0, 7.0]), None, types)
    np.testing.assert_allclose(e2, e, rtol=1e-12)
    np.testing.assert_allclose(f2, f, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kwargs, message", [
    (dict(types=np.array([0] * 191 + [2])), r"type 2 \(atom 191\) is outside the model's type "
                                            r"map \['O', 'H'\]"),
    (dict(coords=np.zeros((2, 191, 3))), r"coords must have shape \[nframes, 192, 3\]"),
    (dict(cells=np.zeros((2, 6))), r"cells must have shape \[2, 9\]"),
    (dict(types=np.zeros(192)), r"atom_types must be one integer type per atom"),
])
def test_bad_arguments_are_named(pot, kwargs, message):
    coords, cells, types = water_frames(2)
    args = dict(coords=coords, cells=cells, types=types)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        pot.eval(args["coords"], args["cells"], args["types"])


def _write(path, graph_def):
    path.write_bytes(graph_def.SerializeToString())
    return path


@pytest.mark.slow
def test_bad_model_files_are_named(ours_graph, tmp_path):
    with pytest.raises(ModelFileError, match=r"missing\.pb: no such model file"):
        DeepPot(tmp_path / "missing.pb")
    truncated = tmp_path / "truncated.pb"
    truncated.write_bytes(ours_graph.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match=r"truncated\.pb: not a TensorFlow GraphDef"):
        DeepPot(truncated)
    other = tf.compat.v1.GraphDef()
    other.node.add(name="x", op="Const")
    with pytest.raises(ModelFileError, match=r"other\.pb: not a DeePMD-kit energy model: the "
                                             r"nodes \['t_coord'"):
        DeepPot(_write(tmp_path / "other.pb", other))
    renamed = tmp_path / "model.pth"
    renamed.write_bytes(ours_graph.read_bytes())
    with pytest.raises(ModelFileError, match=r"model\.pth: .*suffix \.pb"):
        DeepPot(renamed)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(ours_graph.read_bytes())
    for node in graph_def.node:
        if node.name == MODEL_ATTR_MODEL_VERSION:
            node.attr["value"].tensor.string_val[0] = b"2.0"
    with pytest.raises(ModelFileError, match=r"future\.pb: model version 2\.0 is not supported"):
        DeepPot(_write(tmp_path / "future.pb", graph_def))


@pytest.mark.slow
def test_cli_reports_a_bad_model_in_one_line_and_fails(tmp_path):
    (tmp_path / "empty.pb").write_bytes(b"")
    result = dp(tmp_path, "test", "-m", "empty.pb", "-s", ".")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "empty.pb: the file holds no graph" in result.stderr


@pytest.mark.slow
def test_freeze_without_checkpoint_fails_and_writes_nothing(tmp_path):
    result = dp(tmp_path, "freeze", "-o", "graph.pb")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no checkpoint state file" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_freeze_replaces_the_output_whole(ours_run, tmp_path):
    out = tmp_path / "graph.pb"
    out.write_bytes(b"old")
    result = dp(ours_run, "freeze", "-o", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    coords, cells, types = water_frames(1)
    for a, b in zip(DeepPot(out).eval(coords, cells, types),
                    DeepPot(ours_run / "graph.pb").eval(coords, cells, types)):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["graph.pb"]  # no temporary file left


@pytest.mark.slow
def test_compress_refuses_type_embedding_and_writes_nothing(ours_graph, tmp_path):
    result = dp(tmp_path, "compress", "-i", str(ours_graph), "-o", "out.pb")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not supported for se_e2_a with type_embedding" in result.stderr
    assert "cannot be tabulated" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("which", ["ours", "theirs"])
def test_compress_refuses_se_a_ebd_v2_and_writes_nothing(which, request, tmp_path):
    """Ours (the training script names se_a_ebd_v2) and DeePMD-kit's graph (its type-net
    variables `filter_type_all/*_side_ebd` show it)."""
    graph = request.getfixturevalue(f"{which}_ebd_v2_graph")
    result = dp(tmp_path, "compress", "-i", str(graph), "-o", "out.pb")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not supported for se_a_ebd_v2" in result.stderr
    assert "compresses no model with type embedding" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_plain_model_freezes_and_evaluates(plain_graph):
    coords, cells, types = water_frames(2)
    e, f, v = DeepPot(plain_graph).eval(coords, cells, types)
    assert np.all(np.isfinite(e)) and np.all(np.isfinite(f)) and np.all(np.isfinite(v))
