"""Batches from several systems (deepmd_tebd/data/data_system.py): epochs over shuffled sets,
set cycling, the skipped tail, per-system batch sizes, system draws, the one seeded RNG, labels
with find_* flags, the sampling state of a restart, and the batch sequence of DeePMD-kit 3.2 on
the water data. The rules alone are tested in test_sampling.py."""
from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest

from deepmd_tebd.config.normalize import normalize
from deepmd_tebd.config.objects import DataConfig, build_config
from deepmd_tebd.data.data_system import DataSystem, SamplingState
from deepmd_tebd.data.sampling import (DataRequirement, label_requirements, make_data_rng,
                                       resolve_batch_size)
from deepmd_tebd.data.system import DataError
from reference.deepmd_oracle import run_oracle_script
from shared_paths import WATER, needs_water


def write_system(path: Path, atype, set_sizes, labels=("energy",), nopbc=False, type_map=None,
                 numb_copy=None, seed=0):
    """A system whose frames are numbered: coord[f, 0] = 1000 * set + frame index (also the
    energy). Other coordinates and the labels are random; box 10 A cubic unless nopbc."""
    rng = np.random.default_rng(seed)
    natoms = len(atype)
    path.mkdir(parents=True)
    (path / "type.raw").write_text(" ".join(str(t) for t in atype) + "\n")
    if type_map is not None:
        (path / "type_map.raw").write_text("\n".join(type_map) + "\n")
    if nopbc:
        (path / "nopbc").write_text("")
    for k, nframes in enumerate(set_sizes):
        set_dir = path / f"set.{k:03d}"
        set_dir.mkdir()
        coord = rng.uniform(0, 10, (nframes, natoms * 3))
        coord[:, 0] = 1000 * k + np.arange(nframes)
        np.save(set_dir / "coord.npy", coord)
        if not nopbc:
            np.save(set_dir / "box.npy", np.tile(10 * np.eye(3).reshape(9), (nframes, 1)))
        if "energy" in labels:
            np.save(set_dir / "energy.npy", coord[:, 0].copy())
        if "force" in labels:
            np.save(set_dir / "force.npy", rng.normal(size=(nframes, natoms * 3)))
        if "virial" in labels:
            np.save(set_dir / "virial.npy", rng.normal(size=(nframes, 9)))
        if "atom_pref" in labels:
            np.save(set_dir / "atom_pref.npy", rng.uniform(size=(nframes, natoms)))
        if numb_copy is not None:
            np.save(set_dir / "numb_copy.npy", np.asarray(numb_copy[k]))
    return path


def frame_ids(batch):
    return [int(round(x)) for x in batch["coord"][:, 0]]


# --------------------------------------------------------------------------------------------
# Epochs, sets and the tail


def test_each_epoch_visits_every_frame_once_in_shuffled_order(tmp_path):
    write_system(tmp_path / "s", [0, 1, 1], [12])
    data = DataSystem([tmp_path / "s"], 3, seed=7)
    for _ in range(3):
        epoch = sum((frame_ids(data.get_batch(0)) for _ in range(4)), [])
        assert sorted(epoch) == list(range(12))
        assert epoch != list(range(12))


def test_sets_are_visited_cyclically_in_sorted_order(tmp_path):
    write_system(tmp_path / "s", [0, 1], [4, 6, 5])
    data = DataSystem([tmp_path / "s"], 4, seed=0)
    sets = [sorted({i // 1000 for i in frame_ids(data.get_batch(0))}) for _ in range(7)]
    # set.000 gives one batch of 4, set.001 one (its tail of 2 is skipped), set.002 one
    assert sets == [[0], [1], [2], [0], [1], [2], [0]]


def test_incomplete_tail_is_skipped(tmp_path):
    write_system(tmp_path / "s", [0, 1], [7])
    data = DataSystem([tmp_path / "s"], 3, seed=3)
    assert data.nbatches == [7 // 3]
    first, second, third = (frame_ids(data.get_batch(0)) for _ in range(3))
    assert len(first) == len(second) == len(third) == 3
    # the first epoch ends after two batches: one frame is left out, then the set is reshuffled
    assert not set(first) & set(second)
    assert len(set(range(7)) - set(first) - set(second)) == 1
    assert len(set(third)) == 3


def test_set_smaller_than_batch_size_yields_whole_set_with_warning(tmp_path, caplog):
    write_system(tmp_path / "s", [0, 1], [3])
    with caplog.at_level(logging.WARNING):
        data = DataSystem([tmp_path / "s"], 5, seed=0)
    assert "batch size is larger than the size of the dataset" in caplog.text
    assert data.nbatches == [1]
    for _ in range(3):
        assert sorted(frame_ids(data.get_batch(0))) == [0, 1, 2]


def test_numb_copy_repeats_frames_in_the_shuffle(tmp_path):
    write_system(tmp_path / "s", [0, 1], [4], numb_copy=[[1, 3, 0, 2]])
    data = DataSystem([tmp_path / "s"], 6, seed=0)
    ids = frame_ids(data.get_batch(0))
    assert sorted(ids) == [0, 1, 1, 1, 3, 3]


# --------------------------------------------------------------------------------------------
# Batch sizes and probabilities


def test_list_batch_size_is_per_system(tmp_path):
    write_system(tmp_path / "a", [0, 1], [10])
    write_system(tmp_path / "b", [0, 1, 1], [10])
    data = DataSystem([tmp_path / "a", tmp_path / "b"], [2, 5], seed=0)
    assert data.batch_size == [2, 5]
    assert data.nbatches == [10 // 2, 10 // 5]
    assert len(frame_ids(data.get_batch(0))) == 2
    assert len(frame_ids(data.get_batch(1))) == 5
    with pytest.raises(DataError, match="one batch size per system"):
        DataSystem([tmp_path / "a", tmp_path / "b"], [2], seed=0)


def test_system_draws_follow_the_probabilities(tmp_path):
    for k in range(3):
        write_system(tmp_path / f"s{k}", [0, 1], [4], seed=k)
    paths = [tmp_path / f"s{k}" for k in range(3)]
    data = DataSystem(paths, 1, seed=5, sys_probs=[0.0, 1.0, 0.0])
    assert all(data.pick_system() == 1 for _ in range(50))
    data = DataSystem(paths, 1, seed=5, sys_probs=[0.5, 0.25, 0.25])
    counts = np.bincount([data.pick_system() for _ in range(4000)], minlength=3) / 4000
    np.testing.assert_allclose(counts, [0.5, 0.25, 0.25], atol=0.03)


# --------------------------------------------------------------------------------------------
# The random stream


def replay(seed, systems_frames, batch_size, probs, ndraws):
    """The frame sequence DeePMD-kit's rules give (DeepmdDataSystem.get_batch_standard, then
    DeepmdData.get_batch), replayed with a bare RandomState keyed as DeePMD-kit 3.x keys it
    ([rank 0, seed]): draw the system, then (if the set is exhausted) shuffle its frames,
    single-set systems."""
    rng = np.random.RandomState([0, seed])
    order = [None] * len(systems_frames)
    pos = [0] * len(systems_frames)
    out = []
    for _ in range(ndraws):
        k = int(rng.choice(np.arange(len(systems_frames)), p=probs))
        size = 0 if order[k] is None else len(order[k])
        if pos[k] + batch_size > size:
            idx = np.arange(systems_frames[k])
            rng.shuffle(idx)
            order[k] = idx if order[k] is None else order[k][idx]
            pos[k] = 0
        out.append((k, [int(i) for i in order[k][pos[k]:pos[k] + batch_size]]))
        pos[k] += batch_size
    return out


def test_draw_precedes_shuffle_in_one_random_state(tmp_path):
    sizes = [5, 9, 4]
    for k, n in enumerate(sizes):
        write_system(tmp_path / f"s{k}", [0] * (k + 1) + [1], [n], seed=k)  # natoms = k + 2
    data = DataSystem([tmp_path / f"s{k}" for k in range(3)], 2, seed=11,
                      auto_prob="prob_uniform")
    got = [(int(b["natoms_vec"][0]) - 2, frame_ids(b))
           for b in (data.get_batch() for _ in range(40))]
    assert got == replay(11, sizes, 2, np.full(3, 1 / 3), 40)


def test_same_seed_same_batches_different_seed_different(tmp_path):
    write_system(tmp_path / "a", [0, 1], [6, 5])
    write_system(tmp_path / "b", [0, 0, 1], [8], seed=1)
    paths = [tmp_path / "a", tmp_path / "b"]

    def sequence(seed):
        data = DataSystem(paths, 2, seed=seed)
        return [(frame_ids(b), b["natoms_vec"][0]) for b in (data.get_batch() for _ in range(30))]

    assert sequence(4) == sequence(4)
    assert sequence(4) != sequence(5)


def test_validation_shares_the_training_random_state(tmp_path):
    write_system(tmp_path / "a", [0, 1], [6])
    rng = make_data_rng(3)
    train = DataSystem([tmp_path / "a"], 2, rng=rng)
    valid = DataSystem([tmp_path / "a"], 2, rng=rng)
    assert train.rng is valid.rng
    batches = valid.get_test_batches(4)
    assert len(batches) == 4 and all(len(frame_ids(b)) == 2 for b in batches)
    with pytest.raises(ValueError, match="seed or rng"):
        DataSystem([tmp_path / "a"], 2, seed=1, rng=rng)


# --------------------------------------------------------------------------------------------
# Batch contents and labels


def test_batch_holds_sorted_atoms_and_labels_with_find_flags(tmp_path):
    atype = [1, 0, 1, 0, 0]
    write_system(tmp_path / "s", atype, [4], labels=("energy", "force"), type_map=["H", "O"])
    data = DataSystem([tmp_path / "s"], 4, type_map=["O", "H"], seed=0,
                      labels=["energy", "force", "virial", "atom_pref"])
    batch = data.get_batch(0)
    model_type = np.array([1 - t for t in atype])   # type_map.raw H, O -> the model's O, H
    order = np.argsort(model_type, kind="stable")
    raw_coord = np.load(tmp_path / "s/set.000/coord.npy")
    raw_force = np.load(tmp_path / "s/set.000/force.npy")
    ids = frame_ids(batch)
    np.testing.assert_array_equal(
        batch["coord"], raw_coord[ids].reshape(4, 5, 3)[:, order].reshape(4, 15))
    np.testing.assert_array_equal(
        batch["force"], raw_force[ids].reshape(4, 5, 3)[:, order].reshape(4, 15))
    np.testing.assert_array_equal(batch["type"], np.tile(np.sort(model_type), (4, 1)))
    np.testing.assert_array_equal(batch["natoms_vec"], [5, 5, *np.bincount(model_type)])
    np.testing.assert_array_equal(batch["energy"], ids)
    assert batch["energy"].shape == (4,)
    assert batch["find_energy"] == 1.0 and batch["find_force"] == 1.0
    # missing optional labels are zeros with find = 0
    assert batch["find_virial"] == 0.0 and batch["find_atom_pref"] == 0.0
    np.testing.assert_array_equal(batch["virial"], np.zeros((4, 9)))
    np.testing.assert_array_equal(batch["atom_pref"], np.zeros((4, 5)))
    assert batch["default_mesh"].dtype == np.int32 and batch["default_mesh"].shape == (6,)
    np.testing.assert_array_equal(batch["box"], np.tile(10 * np.eye(3).reshape(9), (4, 1)))
    assert "atom_ener" not in batch


def test_missing_required_label_names_the_file(tmp_path):
    write_system(tmp_path / "s", [0, 1], [3, 3], labels=("energy",))
    (tmp_path / "s/set.001/energy.npy").unlink()
    with pytest.raises(DataError, match=r"set\.001/energy\.npy is missing"):
        DataSystem([tmp_path / "s"], 1, labels=["energy"], required=["energy"])
    with pytest.raises(DataError, match=r"set\.000/fparam\.npy is missing"):
        DataSystem([tmp_path / "s"], 1, numb_fparam=2)


def test_frame_and_atomic_parameters_are_read(tmp_path):
    write_system(tmp_path / "s", [1, 0, 0], [2])
    fparam = np.arange(4.0).reshape(2, 2)
    aparam = np.arange(6.0).reshape(2, 3)
    np.save(tmp_path / "s/set.000/fparam.npy", fparam)
    np.save(tmp_path / "s/set.000/aparam.npy", aparam)
    data = DataSystem([tmp_path / "s"], 2, seed=0, numb_fparam=2, numb_aparam=1)
    batch = data.get_batch(0)
    ids = batch["energy"].astype(int)   # atom 0 is not first once sorted: frame from energy
    np.testing.assert_array_equal(batch["fparam"], fparam[ids])
    np.testing.assert_array_equal(batch["aparam"], aparam[ids][:, [1, 2, 0]])
    assert batch["find_fparam"] == 1.0 and batch["find_aparam"] == 1.0


def test_requirement_repeat_and_default(tmp_path):
    write_system(tmp_path / "s", [0, 1], [2], labels=("atom_pref",))
    reqs = [DataRequirement("atom_pref", 1, atomic=True, repeat=3),
            DataRequirement("atom_ener_coeff", 1, atomic=True, default=1.0)]
    data = DataSystem([tmp_path / "s"], 2, seed=0, labels=reqs)
    batch = data.get_batch(0)
    pref = np.load(tmp_path / "s/set.000/atom_pref.npy")[frame_ids(batch)]
    np.testing.assert_array_equal(batch["atom_pref"], np.repeat(pref, 3, axis=1))
    np.testing.assert_array_equal(batch["atom_ener_coeff"], np.ones((2, 2)))
    assert batch["find_atom_ener_coeff"] == 0.0
    with pytest.raises(DataError, match="unknown label"):
        label_requirements(["energy", "charge"])


def test_open_boundaries_give_empty_mesh_and_zero_box(tmp_path):
    write_system(tmp_path / "s", [0, 1], [3], nopbc=True)
    data = DataSystem([tmp_path / "s"], 2, seed=0)
    batch = data.get_batch(0)
    assert batch["default_mesh"].shape == (0,) and batch["default_mesh"].dtype == np.int32
    np.testing.assert_array_equal(batch["box"], np.zeros((2, 9)))
    assert data.summary_lines("training")[3].endswith("F")


def test_malformed_files_are_refused_with_their_name(tmp_path):
    write_system(tmp_path / "coord", [0, 1], [3])
    np.save(tmp_path / "coord/set.000/coord.npy", np.zeros((3, 5)))
    with pytest.raises(DataError, match=r"coord\.npy has shape \(3, 5\)"):
        DataSystem([tmp_path / "coord"], 1)
    write_system(tmp_path / "nan", [0, 1], [3])
    energy = np.zeros(3)
    energy[1] = np.nan
    np.save(tmp_path / "nan/set.000/energy.npy", energy)
    data = DataSystem([tmp_path / "nan"], 1, seed=0)
    with pytest.raises(DataError, match=r"energy\.npy holds a non-finite value"):
        data.get_batch(0)
    write_system(tmp_path / "force", [0, 1], [3], labels=("energy", "force"))
    np.save(tmp_path / "force/set.000/force.npy", np.zeros((3, 5)))
    with pytest.raises(DataError, match=r"force\.npy has shape"):
        DataSystem([tmp_path / "force"], 1)


def test_natoms_vec_spans_the_type_map(tmp_path):
    write_system(tmp_path / "s", [0, 0, 1], [2], type_map=["O", "H"])
    data = DataSystem([tmp_path / "s"], 1, type_map=["O", "H", "C"], seed=0)
    assert data.ntypes == 3
    np.testing.assert_array_equal(data.get_batch(0)["natoms_vec"], [3, 3, 2, 1, 0])


def test_inconsistent_system_type_maps_are_refused(tmp_path):
    write_system(tmp_path / "a", [0, 1], [2], type_map=["O", "H"])
    write_system(tmp_path / "b", [0, 1], [2], type_map=["H", "O"])
    with pytest.raises(DataError, match="inconsistent type map"):
        DataSystem([tmp_path / "a", tmp_path / "b"], 1)


@needs_water
def test_water_summary_lists_every_system():
    data = DataSystem(str(WATER), "auto", ["O", "H"], seed=1)
    lines = data.summary_lines("training")
    assert lines[1] == f"found {len(data.paths)} system(s):"
    for path, line in zip(data.paths, lines[3:-1]):
        fields = line.split()
        frames = sum(np.load(s / "coord.npy", mmap_mode="r").shape[0]
                     for s in sorted(path.glob("set.*")))
        assert fields[1:] == ["192", "1", str(frames),
                              f"{frames / sum(data.nbatches):5.3f}".strip(), "T"]


# --------------------------------------------------------------------------------------------
# DeePMD-kit 3.2 draws the same batches

DEEPMD_BATCHES = textwrap.dedent("""
    import json, sys
    import numpy as np
    from deepmd.utils import random as dp_random
    from deepmd.utils.data_system import DeepmdDataSystem

    args = json.loads(sys.argv[1])
    dp_random.seed([0, args["seed"]])  # as deepmd/tf/entrypoints/train.py keys it, rank 0
    data = DeepmdDataSystem(args["systems"], args["batch_size"], test_size=1, rcut=6.0,
                            type_map=args["type_map"], trn_all_set=True,
                            sys_probs=args["sys_probs"], auto_prob_style=args["auto_prob"])
    data.add("energy", 1, atomic=False, must=False, high_prec=True)
    data.add("force", 3, atomic=True, must=False, high_prec=False)
    out = {"probs": np.asarray(data.sys_probs, float).tolist(),
           "nbatches": list(map(int, data.nbatches)),
           "batch_size": list(map(int, data.batch_size))}
    batches = []
    for k in range(data.get_nsystems()):
        for _ in range(args["nstat"]):
            batches.append(data.get_batch(sys_idx=k))
    for _ in range(args["ndraw"]):
        batches.append(data.get_batch())
    np.savez(args["output"], **{f"{i}/{key}": b[key] for i, b in enumerate(batches)
                                for key in ("coord", "box", "type", "energy", "force",
                                            "natoms_vec", "default_mesh")})
    print(json.dumps(out))
""")


@pytest.mark.slow
@needs_water
@pytest.mark.parametrize("batch_size, auto_prob, sys_probs", [
    ([3, 7, 80, 100], "prob_sys_size", None),
    (7, "prob_sys_size;0:2:0.3;2:4:0.7", None),
    ("auto:400", "prob_uniform", [0.1, -1, 0.2, -1]),
])
def test_batch_sequence_matches_deepmd_kit(tmp_path, batch_size, auto_prob, sys_probs):
    systems = [str(WATER / f"data_{k}") for k in range(4)]
    seed, nstat, ndraw = 20240611, 3, 60
    args = {"systems": systems, "batch_size": batch_size, "type_map": ["O", "H"], "seed": seed,
            "sys_probs": sys_probs, "auto_prob": auto_prob, "nstat": nstat, "ndraw": ndraw,
            "output": str(tmp_path / "batches.npz")}
    meta = json.loads(run_oracle_script(DEEPMD_BATCHES, args, tmp_path))

    data = DataSystem(systems, batch_size, ["O", "H"], seed=seed, sys_probs=sys_probs,
                      auto_prob=auto_prob, labels=["energy", "force"])
    assert data.batch_size == meta["batch_size"]
    assert data.nbatches == meta["nbatches"]
    np.testing.assert_allclose(data.sys_probs, meta["probs"], rtol=1e-15)
    ours = [data.get_batch(sys_idx=k) for k in range(4) for _ in range(nstat)]
    ours += [data.get_batch() for _ in range(ndraw)]
    with np.load(tmp_path / "batches.npz") as theirs:
        for i, batch in enumerate(ours):
            for key in ("coord", "box", "type", "energy", "force", "natoms_vec", "default_mesh"):
                np.testing.assert_array_equal(batch[key], theirs[f"{i}/{key}"].reshape(
                    batch[key].shape), err_msg=f"batch {i}, {key}")


def test_from_config_takes_the_data_settings(tmp_path):
    write_system(tmp_path / "root/a", [0, 1], [4])
    write_system(tmp_path / "root/b", [0, 1, 1], [6], seed=1)
    config = DataConfig(systems=str(tmp_path / "root"), batch_size="auto:4",
                        auto_prob="prob_uniform", sys_probs=None, numb_btch=1)
    data = DataSystem.from_config(config, seed=0, labels=["energy"])
    assert sorted(p.name for p in data.paths) == ["a", "b"]
    assert data.batch_size == resolve_batch_size("auto:4", data.natoms)
    np.testing.assert_array_equal(data.sys_probs, [0.5, 0.5])


def test_settings_tuples_draw_the_batches_of_the_script_lists(tmp_path):
    write_system(tmp_path / "a", [0, 1], [5, 4])
    write_system(tmp_path / "b", [0, 1, 1], [7], seed=1)
    systems = [str(tmp_path / "a"), str(tmp_path / "b")]
    script = normalize({
        "model": {"type_map": ["O", "H"], "fitting_net": {},
                  "descriptor": {"type": "se_e2_a", "sel": [4, 4], "rcut": 6.0,
                                 "rcut_smth": 0.5}},
        "learning_rate": {},
        "training": {"training_data": {"systems": systems, "batch_size": [2, 3],
                                       "sys_probs": [0.3, -1]},
                     "numb_steps": 10}})
    config = build_config(script).training.training_data
    assert (config.systems, config.batch_size, config.sys_probs) == (tuple(systems), (2, 3),
                                                                      (0.3, -1.0))
    ours = DataSystem.from_config(config, ["O", "H"], seed=4, labels=["energy"])
    lists = DataSystem(systems, [2, 3], ["O", "H"], seed=4, sys_probs=[0.3, -1],
                       labels=["energy"])
    assert ours.paths == lists.paths and ours.batch_size == lists.batch_size == [2, 3]
    np.testing.assert_array_equal(ours.sys_probs, lists.sys_probs)
    for _ in range(30):
        a, b = ours.get_batch(), lists.get_batch()
        assert (frame_ids(a), a["natoms_vec"].tolist()) == (frame_ids(b), b["natoms_vec"].tolist())


# --------------------------------------------------------------------------------------------
# The sampling state of a restart


def assert_same_batches(got, expected):
    assert len(got) == len(expected)
    for k, (g, want) in enumerate(zip(got, expected)):
        assert g.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(g[key], want[key], err_msg=f"batch {k}, {key}")


@needs_water
def test_sampling_state_round_trip_continues_the_same_batches():
    water = sorted(str(p) for p in WATER.glob("data_*"))[:3]
    first = DataSystem(water, batch_size=3, type_map=["O", "H"], seed=7)
    for _ in range(40):
        first.get_batch()
    state = json.loads(json.dumps(first.get_state().to_json()))
    expected = [first.get_batch() for _ in range(60)]
    second = DataSystem(water, batch_size=3, type_map=["O", "H"], seed=99)
    second.set_state(state)
    for want in expected:
        got = second.get_batch()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_snapshot_restores_the_batches_drawn_after_it(tmp_path):
    # one single-set system (reshuffled in place of a reload), one with three sets, one whose
    # first batch comes after the snapshot (no order yet)
    write_system(tmp_path / "a", [0, 1], [5], seed=0)
    write_system(tmp_path / "b", [0, 1, 1], [4, 6, 3], seed=1)
    write_system(tmp_path / "c", [0, 0, 1], [4], seed=2)
    data = DataSystem([tmp_path / n for n in "abc"], 2, seed=3, sys_probs=[0.5, 0.5, 0.0])
    for _ in range(17):
        data.get_batch()
    snapshot = data.get_state()
    assert isinstance(snapshot, SamplingState)
    assert snapshot.systems[2] == (0, 0, None)
    # the orders are shared, not copied, and nothing may change them in place
    assert not any(order.flags.writeable for _, _, order in snapshot.systems[:2])
    saved = json.dumps(snapshot.to_json())
    expected = [data.get_batch() for _ in range(40)] + [data.get_batch(sys_idx=2)
                                                       for _ in range(5)]
    # drawing on (new sets, reshuffles) left the snapshot as it was
    assert json.dumps(snapshot.to_json()) == saved
    for state in (snapshot, json.loads(saved)):
        data.set_state(state)
        again = [data.get_batch() for _ in range(40)] + [data.get_batch(sys_idx=2)
                                                        for _ in range(5)]
        assert_same_batches(again, expected)


def test_snapshot_json_is_the_checkpoint_layout(tmp_path):
    write_system(tmp_path / "a", [0, 1], [5])
    data = DataSystem([tmp_path / "a"], 2, seed=3)
    data.get_batch()
    state = data.get_state().to_json()
    name, keys, pos, has_gauss, cached = data.rng.get_state()
    assert state["rng"] == [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    (sub,) = state["systems"]
    assert sub.keys() == {"set_count", "iterator", "order"}
    assert (sub["set_count"], sub["iterator"], sorted(sub["order"])) == (1, 2, list(range(5)))
    assert all(type(i) is int for i in sub["order"])
    with pytest.raises(DataError, match="has 2 systems, the data 1"):
        data.set_state({"rng": state["rng"], "systems": [sub, sub]})
