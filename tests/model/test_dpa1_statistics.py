"""DPA-1's davg/dstd equal DeePMD-kit 3.2's (DescrptSeAtten.compute_input_stats) on the same
water frames: per centre type, over one sel block, empty slots counted, the slots of excluded
type pairs zeroed but counted."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from model_helpers import model_config, model_settings
from shared_paths import WATER, needs_water

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.reference.deepmd_oracle import run_oracle_script  # noqa: E402

from deepmd_tebd.data.data_system import DataSystem  # noqa: E402
from deepmd_tebd.data.stats import compute_descriptor_stats  # noqa: E402
from deepmd_tebd.model import EnergyModel  # noqa: E402

pytestmark = [needs_water, pytest.mark.slow]
SEL = 40  # fewer than the water neighbours within 6 A: the nearest kept
EXCLUDES = {"plain": [], "excluded": [[0, 1]]}

DEEPMD_STATS = """
import json, sys
import numpy as np
from deepmd.tf.descriptor.se_atten import DescrptSeAtten
args = json.loads(sys.argv[1])
data = np.load(args["input"])
out = {}
for name, exclude in args["excludes"].items():
    d = DescrptSeAtten(rcut=6.0, rcut_smth=0.5, sel=args["sel"], ntypes=2, neuron=[4],
                       axis_neuron=2, exclude_types=exclude, set_davg_zero=False, attn_layer=0)
    n = int(data["nbatch"])
    d.compute_input_stats([data[f"{i}/coord"] for i in range(n)], [data[f"{i}/box"] for i in range(n)],
                          [data[f"{i}/type"] for i in range(n)], [data[f"{i}/natoms_vec"] for i in range(n)],
                          [data[f"{i}/default_mesh"] for i in range(n)], {})
    out[name + "/davg"], out[name + "/dstd"] = d.davg, d.dstd
np.savez(args["output"], **out)
"""


@pytest.mark.parametrize("exclude", sorted(EXCLUDES))
def test_dpa1_davg_dstd_equal_deepmd_kits(tmp_path, exclude):
    data = DataSystem([WATER / "data_0", WATER / "data_2"], 2, ["O", "H"], seed=5,
                      labels=["energy"])
    # atoms sorted by type, as DeePMD-kit's data loader sorts them (its statistics split the
    # centres by the type counts)
    batches = [_sorted_by_type(data.get_batch(sys_idx=k)) for k in (0, 1, 0)]
    arrays = {f"{i}/{key}": b[key] for i, b in enumerate(batches)
              for key in ("coord", "box", "type", "natoms_vec", "default_mesh")}
    np.savez(tmp_path / "in.npz", nbatch=len(batches), **arrays)
    run_oracle_script(DEEPMD_STATS, {"input": str(tmp_path / "in.npz"), "sel": SEL,
                                     "output": str(tmp_path / "out.npz"), "excludes": EXCLUDES},
                      tmp_path)
    theirs = np.load(tmp_path / "out.npz")
    settings = model_settings(model_config(
        [SEL // 2, SEL - SEL // 2], descriptor="se_atten", exclude_types=EXCLUDES[exclude],
        rcut_smth=0.5, descriptor_keys={"attn_layer": 0, "rcut": 6.0}))
    descriptor = EnergyModel(settings).descriptor
    assert descriptor.nnei == SEL
    davg, dstd = compute_descriptor_stats(batches, descriptor.stat_env_mat, 2, SEL, 6.0)
    np.testing.assert_allclose(davg, theirs[f"{exclude}/davg"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dstd, theirs[f"{exclude}/dstd"], rtol=1e-12)


def _sorted_by_type(batch):
    order = np.argsort(batch["type"][0], kind="stable")
    nf = batch["coord"].shape[0]
    return dict(batch, type=batch["type"][:, order],
                coord=batch["coord"].reshape(nf, -1, 3)[:, order].reshape(nf, -1))
