"""The commands on a small type-embedding model trained two steps in this process (whole
validation keeping the best checkpoint): `dp test` writes its detail files and parity plot from
the model's own numbers, `dp model-devi` of a model with itself deviates by nothing, `dp freeze
--best` freezes the best checkpoint, `dp compress` refuses the model, the ASE calculator gives
DeepPot's numbers; a small model without type embedding, compressed, stays close to its
uncompressed graph; and mixed precision trains with a finite loss scale. Small enough for the quick tier (`-m "not slow"`); the full-size models and
DeePMD-kit's side are in the other tests of this folder."""
import numpy as np
import pytest
from conftest import dp, make_workdir, tiny_input, water_frames, water_input
from shared_paths import WATER, needs_water

from deepmd_tebd.infer import DeepPot

pytestmark = needs_water


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A run folder: the small type-embedding model trained with whole validation (best
    checkpoint kept) and frozen to graph.pb."""
    script = tiny_input(water_input())
    script["training"]["whole_validation"] = {"batch_atoms": 192, "save_best": True}
    run = make_workdir(tmp_path_factory.mktemp("small"), script)
    for args in (("train", "input.json"), ("freeze", "-o", "graph.pb")):
        result = dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    return run


def test_dp_test_writes_detail_files_and_a_parity_plot_of_the_models_numbers(small_run,
                                                                              tmp_path):
    result = dp(tmp_path, "test", "-m", small_run / "graph.pb", "-s", WATER / "data_3", "-n",
                "2", "-d", "detail")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Energy RMSE" in result.stderr and "Force  RMSE" in result.stderr
    detail = np.loadtxt(tmp_path / "detail.e.out")
    coords, cells, types = water_frames(2)
    energy = DeepPot(small_run / "graph.pb").eval(coords, cells, types)[0]
    np.testing.assert_allclose(detail[:, 1], energy.ravel(), rtol=1e-10)
    for suffix in (".f.out", ".v.out", ".e_peratom.out", ".v_peratom.out"):
        assert (tmp_path / f"detail{suffix}").stat().st_size > 0, suffix
    assert (tmp_path / "detail.parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_devi_of_a_model_with_itself_is_zero(small_run, tmp_path):
    graph = small_run / "graph.pb"
    result = dp(tmp_path, "model-devi", "-m", graph, graph, "-s", WATER / "data_3", "-o",
                "md.out")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = np.loadtxt(tmp_path / "md.out", ndmin=2)
    assert rows.shape[0] > 0 and rows.shape[1] == 8
    np.testing.assert_array_equal(rows[:, 1:], 0.0)


def test_freeze_best_freezes_the_best_checkpoint(small_run, tmp_path):
    best = tmp_path / "best.pb"
    result = dp(small_run, "freeze", "--best", "-o", best)
    assert result.returncode == 0, result.stderr[-3000:]
    coords, cells, types = water_frames(1)
    e, f, v = DeepPot(best).eval(coords, cells, types)
    assert np.all(np.isfinite(e)) and np.all(np.isfinite(f)) and np.all(np.isfinite(v))
    assert (small_run / "model.ckpt-best.index").exists()


def test_dp_compress_refuses_the_type_embedding_model_writing_nothing(small_run, tmp_path):
    result = dp(tmp_path, "compress", "-i", small_run / "graph.pb", "-o", "out.pb")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot be tabulated" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_ase_calculator_gives_deep_pot_numbers(small_run):
    pytest.importorskip("ase")
    from ase import Atoms

    from deepmd_tebd.calculator import DP

    graph = small_run / "graph.pb"
    coords, cells, types = water_frames(1)
    atoms = Atoms(symbols=list(np.array(["O", "H"])[types]), positions=coords[0],
                  cell=cells[0].reshape(3, 3), pbc=True)
    atoms.calc = DP(str(graph))
    e, f, v = DeepPot(graph).eval(coords, cells, types)
    assert atoms.get_potential_energy() == pytest.approx(e[0, 0], rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f[0], rtol=1e-12, atol=1e-12)
    stress = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(-stress * atoms.get_volume(), v[0].reshape(3, 3), rtol=1e-10,
                               atol=1e-10 * np.abs(v).max())


def test_a_compressed_small_model_stays_close_to_its_uncompressed_graph(tmp_path):
    script = tiny_input(water_input("water_se_e2_a.json"), numb_steps=1)
    del script["training"]["validation_data"]
    run = make_workdir(tmp_path, script)
    for args in (("train", "input.json"), ("freeze", "-o", "plain.pb"),
                 ("compress", "-i", "plain.pb", "-o", "compressed.pb")):
        result = dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    assert DeepPot(run / "compressed.pb").get_type_map() == ["O", "H"]
    coords, cells, types = water_frames(2)
    plain = DeepPot(run / "plain.pb").eval(coords, cells, types)
    compressed = DeepPot(run / "compressed.pb").eval(coords, cells, types)
    for a, b in zip(compressed, plain):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(b).max())


def test_mixed_precision_trains_a_small_model_with_a_finite_loss_scale(tmp_path):
    import tensorflow as tf

    script = tiny_input(water_input())
    script["training"]["mixed_precision"] = {"compute_prec": "float16", "output_prec": "float32"}
    run = make_workdir(tmp_path, script)
    result = dp(run, "train", "input.json")
    assert result.returncode == 0, result.stderr[-3000:]
    lcurve = np.loadtxt(run / "lcurve.out", ndmin=2)
    assert lcurve.shape[0] == 3 and np.all(np.isfinite(lcurve))
    reader = tf.train.load_checkpoint(str(run / "model.ckpt"))
    scale = [n for n in reader.get_variable_to_shape_map()
             if n.startswith("loss_scale/") and "scale" in n.split("/")[1]]
    assert scale and 1.0 <= reader.get_tensor(scale[0]) <= 2.0 ** 15


def test_change_bias_after_training_leaves_no_bias_to_fit(tmp_path):
    """After change_bias_after_training the least-squares bias change on the same frames is
    zero: the frozen model's residual energies have no per-type mean left."""
    script = tiny_input(water_input())
    script["model"]["data_bias_nsample"] = 3
    script["training"]["change_bias_after_training"] = True
    run = make_workdir(tmp_path, script)
    for args in (("train", "input.json"), ("freeze", "-o", "g.pb")):
        result = dp(run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
        if args[0] == "train":
            assert "Change energy bias of ['O', 'H']" in result.stderr
    coords, cells, types = water_frames(3, "data_0")
    energy = DeepPot(run / "g.pb").eval(coords, cells, types)[0].reshape(-1)
    label = np.load(WATER / "data_0" / "set.000" / "energy.npy").reshape(-1)[:3]
    counts = np.tile(np.bincount(types, minlength=2), (3, 1)).astype(float)
    delta = np.linalg.lstsq(counts, label - energy, rcond=None)[0]
    assert np.abs(delta).max() < 1e-8 * np.abs(label).max() / counts.sum(axis=1).max()
