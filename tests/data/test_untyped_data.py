"""Data read without a model type map (a script without model/type_map), compared with DeePMD-kit
3.2's DeepmdDataSystem in the same test: type.raw's indices are kept whatever type_map.raw says,
the number of types is the longest type_map.raw or the largest index + 1, the training systems'
type_map.raw names are the data's type map, and validation systems are mapped to those names
(DeePMD-kit's deepmd/tf/entrypoints/train.py: _do_work passes train_data.type_map on)."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from test_data_system import write_system

from deepmd_tebd.data.data_system import DataSystem
from reference.deepmd_oracle import run_oracle_script

pytestmark = pytest.mark.slow

DEEPMD_UNTYPED = textwrap.dedent("""
    import json, sys
    import numpy as np
    from deepmd.utils.data_system import DeepmdDataSystem

    args = json.loads(sys.argv[1])
    def load(systems, type_map):
        data = DeepmdDataSystem(systems, 1, test_size=1, type_map=type_map, trn_all_set=True)
        data.add("energy", 1, atomic=False, must=False, high_prec=True)
        return data
    train = load(args["train"], None)
    valid = load(args["valid"], train.type_map)
    out = {}
    for name, data in (("train", train), ("valid", valid)):
        batches = [data.get_batch(sys_idx=k) for k in range(data.get_nsystems())]
        out[name] = {"type_map": data.get_type_map(), "ntypes": int(data.get_ntypes()),
                     "type": [b["type"][0].tolist() for b in batches],
                     "natoms_vec": [b["natoms_vec"].tolist() for b in batches]}
    print(json.dumps(out))
""")


def test_untyped_data_keeps_indices_and_maps_validation_like_deepmd(tmp_path):
    train = [write_system(tmp_path / "a", [1, 0, 1, 1], [2], type_map=["H", "O"]),
             write_system(tmp_path / "b", [0, 2, 1], [2], seed=1)]
    valid = [write_system(tmp_path / "c", [0, 1, 1], [2], type_map=["O", "H"], seed=2)]
    args = {"train": [str(p) for p in train], "valid": [str(p) for p in valid]}
    theirs = json.loads(run_oracle_script(DEEPMD_UNTYPED, args, tmp_path))

    ours_train = DataSystem(train, 1, None, seed=0)
    ours_valid = DataSystem(valid, 1, ours_train.type_map, seed=0)
    for data, expected in ((ours_train, theirs["train"]), (ours_valid, theirs["valid"])):
        assert data.type_map == expected["type_map"]
        assert data.ntypes == expected["ntypes"]
        batches = [data.get_batch(sys_idx=k) for k in range(data.nsystems)]
        assert [b["type"][0].tolist() for b in batches] == expected["type"]
        assert [np.asarray(b["natoms_vec"]).tolist() for b in batches] == expected["natoms_vec"]
