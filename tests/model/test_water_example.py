"""DeePMD-kit's water example architectures build, run on a frame of the water data and have the
parameter shapes of DeePMD-kit v2.2.5's graph."""
import copy

import numpy as np
import pytest

from deepmd_tebd.config import build_config, load_config
from deepmd_tebd.model import EnergyModel
from model_helpers import Frame
from shared_paths import INPUTS
from shared_paths import WATER as WATER_DATA

WATER = WATER_DATA / "data_0"

pytestmark = pytest.mark.skipif(not (INPUTS.is_dir() and WATER.is_dir()),
                                reason="the shared water example is not available")


def model_section(script):
    """The normalised script (a dict) of an example input."""
    return load_config(INPUTS / script)


def model_of(script):
    """The model of a normalised script."""
    return EnergyModel(build_config(script).model)


def water_frame():
    atype = np.loadtxt(WATER / "type.raw", dtype=np.int32).reshape(-1)
    coord = np.load(WATER / "set.000" / "coord.npy")[0].reshape(-1, 3)
    box = np.load(WATER / "set.000" / "box.npy")[0].reshape(3, 3)
    order = np.argsort(atype, kind="stable")
    return Frame(coord[order], atype[order], box, 2)


def shapes(model):
    return {name: tuple(v.shape) for name, v in model.graph_variables().items()}


def run_and_check_directional_derivative(model, frame):
    """Runs the frame; -F.v equals the central difference of E along a random displacement v."""
    out = frame.evaluate(model)
    assert np.isfinite(out["energy"]).all() and np.isfinite(out["force"]).all()
    assert out["force"].shape == (1, frame.nat * 3)
    assert out["descriptor"].shape == (1, frame.nat, 100 * 16)
    v = np.random.default_rng(9).normal(size=frame.coord.shape)
    h = 1e-5
    e = frame.evaluate(model, np.stack([frame.coord + h * v, frame.coord - h * v]))["energy"]
    numeric = (e[0] - e[1]) / (2 * h)
    analytic = -np.sum(out["force"].reshape(-1, 3) * v)
    assert abs(numeric - analytic) < 1e-6 * abs(analytic)


def test_water_type_embedding_example_has_observed_shapes():
    model = model_of(model_section("water_se_e2_a_tebd.json"))
    got = shapes(model)
    assert got["type_embed_net/matrix_1"] == (2, 2)
    assert got["filter_type_all/matrix_1"] == (9, 25)  # 1 + te, type_one_side true
    assert got["descrpt_attr/t_avg"] == (2, 552)
    assert got["layer_0/matrix"] == (1608, 240)  # 100 * 16 + 8
    assert got["final_layer/matrix"] == (240, 1)
    assert got["fitting_attr/t_bias_atom_e"] == (2,)
    run_and_check_directional_derivative(model, water_frame())


def test_water_type_embedding_two_side_embedding_input():
    section = copy.deepcopy(model_section("water_se_e2_a_tebd.json"))
    section["model"]["descriptor"]["type_one_side"] = False
    model = model_of(section)
    assert shapes(model)["filter_type_all/matrix_1"] == (17, 25)  # 1 + 2 te


def test_water_per_type_example_has_observed_shapes():
    model = model_of(model_section("water_se_e2_a.json"))
    got = shapes(model)
    assert not any(name.startswith("type_embed_net") for name in got)
    assert got["filter_type_0/matrix_1_0"] == (1, 25)
    assert got["filter_type_1/matrix_3_1"] == (50, 100)
    assert got["layer_0_type_0/matrix"] == (1600, 240)
    assert got["final_layer_type_1/matrix"] == (240, 1)
    run_and_check_directional_derivative(model, water_frame())
