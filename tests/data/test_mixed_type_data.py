"""The mixed-type data format (set.*/real_atom_types.npy: every frame its own atom types, -1 for
virtual atoms) and "mixed:N" batches (frames of several systems padded with virtual atoms):
read, batched and drawn as DeePMD-kit 3.2 reads, batches and draws them; malformed files
refused naming the file."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from deepmd_tebd.data.batch import real_natoms_vec
from deepmd_tebd.data.data_system import DataSystem
from deepmd_tebd.data.system import DataError, System
from mixed_data import mixed_from_system, write_mixed_system
from reference.deepmd_oracle import run_oracle_script
from shared_paths import WATER, needs_water

BOX = np.tile(10 * np.eye(3).reshape(9), (2, 1))


def small_mixed(path: Path, type_map=("H", "O"), **kw) -> Path:
    coord = np.arange(2 * 9, dtype=float).reshape(2, 9) / 3.0
    labels = {"energy": [1.0, 2.0], "force": np.arange(18.0).reshape(2, 9)}
    return write_mixed_system(path, [[0, 1, -1], [1, 1, 0]], coord, BOX, type_map, labels, **kw)


def test_each_frame_has_its_own_types_mapped_by_name_and_atoms_keep_their_order(tmp_path):
    path = small_mixed(tmp_path / "s")
    system = System(path, ["O", "H"])
    assert system.mixed_type
    data = system.load_set(system.sets[0])
    # type_map.raw is H O, the model's O H: H -> 1, O -> 0; virtual atoms stay -1
    np.testing.assert_array_equal(data["type"], [[1, 0, -1], [0, 0, 1]])
    np.testing.assert_array_equal(data["coord"], np.load(path / "set.000/coord.npy"))
    # natoms_vec is type.raw's placeholder, as DeePMD-kit feeds it; each frame's counts apart
    np.testing.assert_array_equal(system.natoms_vec(2), [3, 3, 3, 0])
    batch = DataSystem([path], 2, ["O", "H"], seed=1, labels=["energy", "force"]).get_batch()
    np.testing.assert_array_equal(batch["real_natoms_vec"], real_natoms_vec(batch["type"], 2))
    np.testing.assert_array_equal(real_natoms_vec([[1, 0, -1], [0, 0, 1]], 2),
                                  [[3, 3, 1, 1], [3, 3, 2, 1]])


def _save(name, value):
    return lambda p: np.save(p / "set.000" / name, np.asarray(value))


MALFORMED = {
    "no_type_map_raw": (lambda p: (p / "type_map.raw").unlink(), "type_map.raw"),
    "types_in_one_set_only": (lambda p: (
        (p / "set.001").mkdir(), _save("coord.npy", np.zeros((2, 9)))(p),
        np.save(p / "set.001/coord.npy", np.zeros((2, 9))),
        np.save(p / "set.001/box.npy", BOX)), "set.001/real_atom_types.npy"),
    "wrong_shape": (_save("real_atom_types.npy", [[0, 1], [1, 0]]), "real_atom_types.npy"),
    "index_beyond_type_map_raw": (_save("real_atom_types.npy", [[0, 1, 2], [1, 1, 0]]),
                                  "real_atom_types.npy"),
    "below_minus_one": (_save("real_atom_types.npy", [[0, 1, -2], [1, 1, 0]]),
                        "real_atom_types.npy"),
    "fractional_types": (_save("real_atom_types.npy", [[0, 1, 0.5], [1, 1, 0]]),
                         "real_atom_types.npy"),
    "name_unknown_to_model": (lambda p: (p / "type_map.raw").write_text("H\nC\n"),
                              "type_map.raw"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_mixed_type_system_is_refused_naming_the_file(tmp_path, case):
    damage, filename = MALFORMED[case]
    path = small_mixed(tmp_path / "s")
    damage(path)
    with pytest.raises(DataError) as info:
        DataSystem([path], 1, ["O", "H"], seed=1)
    assert filename in str(info.value)


def test_systems_of_both_formats_in_one_section_are_refused(tmp_path):
    mixed = small_mixed(tmp_path / "mixed")
    plain = tmp_path / "plain"
    (plain / "set.000").mkdir(parents=True)
    (plain / "type.raw").write_text("0 1 1\n")
    np.save(plain / "set.000/coord.npy", np.zeros((2, 9)))
    np.save(plain / "set.000/box.npy", BOX)
    with pytest.raises(DataError, match="mixed-type format") as info:
        DataSystem([mixed, plain], 1, ["O", "H"], seed=1)
    assert str(mixed) in str(info.value) and str(plain) in str(info.value)


def test_mixed_batches_pad_every_frame_to_the_largest_with_virtual_atoms(tmp_path):
    small = small_mixed(tmp_path / "three")
    big = write_mixed_system(tmp_path / "five", [[0, 0, 1, 1, 1]] * 2,
                             np.ones((2, 15)), BOX, ("H", "O"),
                             {"energy": [5.0, 6.0], "force": np.ones((2, 15))})
    data = DataSystem([small, big], "mixed:4", ["O", "H"], seed=3, labels=["energy", "force"])
    assert data.mixed_systems and data.mixed_type and data.batch_size == [4, 4]
    for _ in range(4):
        batch = data.get_batch()
        sizes = [3 if e < 5 else 5 for e in batch["energy"]]
        nmax = max(sizes)
        np.testing.assert_array_equal(batch["natoms_vec"], [nmax, nmax, nmax, 0])
        np.testing.assert_array_equal(batch["default_mesh"], np.zeros(7))  # mixed format
        assert batch["coord"].shape == (4, 3 * nmax) and batch["force"].shape == (4, 3 * nmax)
        for k, n in enumerate(sizes):
            assert np.all(batch["type"][k, n:] == -1)
            assert np.all(batch["coord"][k, 3 * n:] == 0) and np.all(batch["force"][k, 3 * n:] == 0)
            assert np.all(batch["type"][k, :n] >= 0) or n == 3
        np.testing.assert_array_equal(batch["real_natoms_vec"][:, 2:],
                                      real_natoms_vec(batch["type"], 2)[:, 2:])


def test_mixed_batches_of_periodic_and_open_systems_are_refused(tmp_path):
    periodic = small_mixed(tmp_path / "pbc")
    open_ = write_mixed_system(tmp_path / "open", [[0, 1, 1]] * 2, np.ones((2, 9)), None)
    with pytest.raises(DataError, match="periodic") as info:
        DataSystem([periodic, open_], "mixed:2", ["O", "H"], seed=1)
    assert str(open_) in str(info.value)
    DataSystem([periodic, open_], 2, ["O", "H"], seed=1)  # batches of one system: fine


# --------------------------------------------------------------------------------------------
# DeePMD-kit 3.2 reads and draws the same batches

DEEPMD_MIXED_BATCHES = textwrap.dedent("""
    import json, sys
    import numpy as np
    from deepmd.utils import random as dp_random
    from deepmd.utils.data_system import DeepmdDataSystem

    args = json.loads(sys.argv[1])
    dp_random.seed([0, args["seed"]])  # as deepmd/tf/entrypoints/train.py keys it, rank 0
    data = DeepmdDataSystem(args["systems"], args["batch_size"], test_size=1, rcut=6.0,
                            type_map=args["type_map"], trn_all_set=True)
    data.add("energy", 1, atomic=False, must=False, high_prec=True)
    data.add("force", 3, atomic=True, must=False, high_prec=False)
    batches = [data.get_batch(sys_idx=k) for k in range(data.get_nsystems()) for _ in range(2)]
    batches += [data.get_batch() for _ in range(args["ndraw"])]
    keys = args["keys"]
    np.savez(args["output"], **{f"{i}/{key}": b[key] for i, b in enumerate(batches)
                                for key in keys})
    print(json.dumps({"nbatches": list(map(int, data.nbatches))}))
""")


def _water_subset(path: Path, atoms) -> Path:
    """data_1's first set restricted to `atoms`, in the standard format."""
    source = WATER / "data_1"
    path.mkdir()
    full = np.loadtxt(source / "type.raw", dtype=int)
    atype = full[atoms]
    (path / "type.raw").write_text(" ".join(map(str, atype)) + "\n")
    (path / "type_map.raw").write_text((source / "type_map.raw").read_text())
    (path / "set.000").mkdir()
    src = sorted(source.glob("set.*"))[0]
    for name, width in (("coord", 3), ("force", 3)):
        value = np.load(src / f"{name}.npy").reshape(-1, full.size, width)
        np.save(path / "set.000" / f"{name}.npy", value[:, atoms].reshape(value.shape[0], -1))
    for name in ("box", "energy"):
        np.save(path / "set.000" / f"{name}.npy", np.load(src / f"{name}.npy"))
    return path


@pytest.mark.slow
@needs_water
@pytest.mark.parametrize("case", ["mixed_format", "mixed_batches_of_mixed_format",
                                  "mixed_batches_of_two_sizes"])
def test_batches_match_deepmd_kit(tmp_path, case):
    if case == "mixed_batches_of_two_sizes":
        systems = [WATER / "data_0",
                   _water_subset(tmp_path / "small", np.r_[0:32, 64:128])]
        batch_size = "mixed:5"
    else:
        systems = [mixed_from_system(WATER / f"data_{k}", tmp_path / f"m{k}", 12,
                                     virtual={1: [5], 2: [0, 100]}, seed=k) for k in range(2)]
        batch_size = 3 if case == "mixed_format" else "mixed:4"
    keys = ["coord", "box", "type", "energy", "force", "natoms_vec", "default_mesh"]
    # DeePMD-kit's real_natoms_vec of a mixed batch repeats each system's type.raw counts; ours
    # are the frames' own (equal for systems in the standard format)
    compare_real = case != "mixed_batches_of_mixed_format"
    keys += ["real_natoms_vec"] * compare_real
    seed, ndraw = 20241205, 12
    args = {"systems": [str(s) for s in systems], "batch_size": batch_size, "seed": seed,
            "type_map": ["O", "H"], "ndraw": ndraw, "keys": keys,
            "output": str(tmp_path / "batches.npz")}
    meta = json.loads(run_oracle_script(DEEPMD_MIXED_BATCHES, args, tmp_path))
    data = DataSystem(systems, batch_size, ["O", "H"], seed=seed, labels=["energy", "force"])
    assert data.nbatches == meta["nbatches"]
    ours = [data.get_batch(sys_idx=k) for k in range(len(systems)) for _ in range(2)]
    ours += [data.get_batch() for _ in range(ndraw)]
    with np.load(tmp_path / "batches.npz") as theirs:
        for i, batch in enumerate(ours):
            for key in keys:
                np.testing.assert_array_equal(batch[key], theirs[f"{i}/{key}"].reshape(
                    batch[key].shape), err_msg=f"batch {i}, {key}")
            np.testing.assert_array_equal(batch["real_natoms_vec"][:, 2:],
                                          real_natoms_vec(batch["type"], 2)[:, 2:])
