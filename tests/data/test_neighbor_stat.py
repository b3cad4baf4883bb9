"""Neighbour statistics: the TebdNeighborStat op against the NumPy reference on random systems
(periodic, triclinic, cells shorter than rcut, open boundaries; float and double), the data-level
``neighbor_stat`` and ``dp neighbor-stat`` entry point against DeePMD-kit 3.2 on the water data,
the automatic sel, and refusal of overlapping atoms."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import deepmd_tebd.data.neighbor_stat as neighbor_stat_module
from deepmd_tebd.data.neighbor_stat import (OverlappingAtomsError, auto_sel, neighbor_stat,
                                            parse_auto_sel)
from deepmd_tebd.data.system import DataError
from deepmd_tebd.entrypoints.neighbor_stat import run as run_neighbor_stat
from deepmd_tebd.op import op_module
from reference.deepmd_oracle import require_oracle, run_oracle
from reference.env_mat import extend_periodic, max_neighbors_per_type, random_system
from shared_paths import WATER

RCUT = 6.0
KINDS = ["orthorhombic", "triclinic", "small", "tiny", "open", "crowded"]



def op_stat(coords, atype, boxes, ntypes, dtype=np.float64, rcut=RCUT):
    """TebdNeighborStat on frames coords [nf, nloc*3] sharing atype [nloc]; boxes None = open."""
    nf, nloc = len(coords), len(atype)
    counts = [int(np.sum(atype == t)) for t in range(ntypes)]
    box = np.zeros((nf, 9)) if boxes is None else np.asarray(boxes).reshape(nf, 9)
    sizes, dists = op_module.tebd_neighbor_stat(
        tf.constant(np.asarray(coords).reshape(nf, 3 * nloc), dtype),
        tf.constant(np.tile(atype, (nf, 1)), tf.int32),
        tf.constant([nloc, nloc] + counts, tf.int32),
        tf.constant(box, dtype),
        tf.constant(np.zeros(0 if boxes is None else 6), tf.int32),
        rcut=rcut,
    )
    return sizes.numpy(), dists.numpy()


def brute_force_min_dist(coord, atype, box, rcut, dtype):
    """Shortest distance < rcut from a local atom to any other atom or periodic image (inf if
    none), with positions wrapped and extended in `dtype` by the reference."""
    coord = np.asarray(coord).reshape(-1, 3)
    if box is None:
        ext = coord.astype(dtype).astype(np.float64)
    else:
        ext, _, _ = extend_periodic(coord.astype(dtype), atype, np.asarray(box).astype(dtype), rcut,
                                    dtype=dtype)
        ext = ext.astype(np.float64)
    best = np.inf
    for i in range(len(coord)):
        d = np.sqrt(np.sum((ext - ext[i]) ** 2, axis=1))
        d[i] = np.inf
        d = d[d < rcut]
        if d.size:
            best = min(best, float(d.min()))
    return best


def frames_of(kind, seed, nframes=3):
    """Frames with the same atoms (count and sorted types) in different random cells."""
    rng = np.random.default_rng(seed)
    coord, atype, box = random_system(rng, kind, rcut=RCUT)
    frames = [(coord, box)]
    while len(frames) < nframes:
        c, a, b = random_system(rng, kind, rcut=RCUT, natoms=len(atype))
        assert np.array_equal(a, atype)
        frames.append((c, b))
    return frames, atype


# --------------------------------------------------------------------------------------------
# The op against the NumPy reference


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["double", "float"])
@pytest.mark.parametrize("kind", KINDS)
def test_op_matches_reference_counts_and_min_distance(kind, dtype):
    for seed in range(2):
        frames, atype = frames_of(kind, 1000 * KINDS.index(kind) + seed)
        coords = np.stack([c.reshape(-1) for c, _ in frames]).astype(dtype)
        boxes = None if frames[0][1] is None else np.stack([b.reshape(9) for _, b in frames])
        sizes, dists = op_stat(coords, atype, None if boxes is None else boxes.astype(dtype), 2, dtype)
        assert sizes.shape == (len(frames), 2) and dists.dtype == dtype
        for f, (_, box) in enumerate(frames):
            box_t = None if box is None else box.astype(dtype)
            coord_t = coords[f].reshape(-1, 3)
            expected = max_neighbors_per_type(coord_t.astype(np.float64), atype,
                                              None if box is None else box_t.astype(np.float64),
                                              RCUT)
            assert sizes[f].tolist() == expected, (kind, seed, f)
            ref_min = brute_force_min_dist(coord_t, atype, box_t, RCUT, dtype)
            np.testing.assert_allclose(dists[f], ref_min, rtol=1e-14 if dtype == np.float64 else 1e-7)


@pytest.mark.parametrize("kind", ["triclinic", "tiny", "open"])
def test_one_type_counts_neighbours_of_all_types_together(kind):
    frames, atype = frames_of(kind, 77, nframes=1)
    coord, box = frames[0]
    zeros = np.zeros_like(atype)
    sizes, _ = op_stat(coord.reshape(1, -1), zeros, None if box is None else box.reshape(1, 9), 1)
    assert sizes[0].tolist() == max_neighbors_per_type(coord, zeros, box, RCUT)


def test_cell_shorter_than_rcut_counts_images_of_the_atom_itself():
    # one atom in a cubic cell of edge 2.5: its neighbours within 6 are its own images
    sizes, dists = op_stat(np.zeros((1, 3)), np.array([0]), (np.eye(3) * 2.5).reshape(1, 9), 1)
    shifts = np.stack(np.meshgrid(*[np.arange(-3, 4)] * 3), axis=-1).reshape(-1, 3)
    r = 2.5 * np.linalg.norm(shifts, axis=1)
    assert sizes[0, 0] == np.sum((r > 0) & (r < RCUT))
    assert sizes[0, 0] == max_neighbors_per_type(np.zeros((1, 3)), np.array([0]),
                                                 np.eye(3) * 2.5, RCUT)[0]
    assert dists[0] == pytest.approx(2.5, rel=1e-15)


def test_frame_without_pairs_within_rcut_gives_infinite_distance():
    coord = np.array([[0.0, 0.0, 0.0, 7.0, 0.0, 0.0]])
    sizes, dists = op_stat(coord, np.array([0, 1]), None, 2)
    assert sizes.tolist() == [[0, 0]] and np.isinf(dists[0])


def test_virtual_atoms_are_neither_centres_nor_neighbours():
    frames, atype = frames_of("triclinic", 5, nframes=1)
    coord, box = frames[0]
    virtual = np.arange(len(atype)) % 4 == 1
    masked = np.where(virtual, -1, atype)
    sizes, dists = op_stat(coord.reshape(1, -1), masked, box.reshape(1, 9), 2)
    kept = op_stat(coord[~virtual].reshape(1, -1), atype[~virtual], box.reshape(1, 9), 2)
    np.testing.assert_array_equal(sizes, kept[0])
    np.testing.assert_array_equal(dists, kept[1])


def test_shape_function_gives_frames_and_types():
    atype = tf.constant([[0, 1, 1]], tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, 9], tf.float64),
                                  tf.TensorSpec([None, 9], tf.float64)])
    def stat(coord, box):
        nf = tf.shape(coord)[0]
        return op_module.tebd_neighbor_stat(coord, tf.tile(atype, [nf, 1]),
                                            tf.constant([3, 3, 1, 1, 1], tf.int32), box,
                                            tf.zeros([6], tf.int32), rcut=RCUT)

    sizes, dists = stat.get_concrete_function().structured_outputs
    assert sizes.shape.as_list() == [None, 3] and sizes.dtype == tf.int32
    assert dists.shape.as_list() == [None] and dists.dtype == tf.float64


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["double", "float"])
def test_op_refuses_overlapping_atoms_naming_them(dtype):
    frames, atype = frames_of("orthorhombic", 9, nframes=2)
    coords = np.stack([c.reshape(-1) for c, _ in frames])
    boxes = np.stack([b.reshape(9) for _, b in frames])
    coords[1, 3 * 7:3 * 8] = coords[1, 3 * 2:3 * 3]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"frame 1: atoms 2 and 7 overlap"):
        op_stat(coords.astype(dtype), atype, boxes.astype(dtype), 2, dtype)


def test_op_refuses_atoms_overlapping_through_periodicity():
    box = np.eye(3) * 10.0
    coord = np.array([[0.0, 1.0, 1.0, 10.0, 1.0, 1.0, 5.0, 5.0, 5.0]])  # atom 1 = atom 0 + a
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"atoms 0 and 1 overlap"):
        op_stat(coord, np.array([0, 1, 1]), box.reshape(1, 9), 2)


@pytest.mark.parametrize("bad,match", [
    ({"type": [[0, 2, 1]]}, "type 2"),
    ({"mesh": [0, 0, 0]}, "mesh"),
    ({"natoms": [3, 4, 1, 2]}, "nloc must equal nall"),
    ({"coord": np.zeros((1, 8))}, "coord"),
    ({"box": np.zeros((1, 9))}, "singular"),
])
def test_op_refuses_inconsistent_inputs(bad, match):
    args = {"coord": np.arange(9.0).reshape(1, 9), "type": [[0, 1, 1]], "natoms": [3, 3, 1, 2],
            "box": (np.eye(3) * 10).reshape(1, 9), "mesh": np.zeros(6)}
    args.update(bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        op_module.tebd_neighbor_stat(
            tf.constant(args["coord"], tf.float64), tf.constant(args["type"], tf.int32),
            tf.constant(args["natoms"], tf.int32), tf.constant(args["box"], tf.float64),
            tf.constant(args["mesh"], tf.int32), rcut=RCUT)


# --------------------------------------------------------------------------------------------
# Statistics over systems


def _write_system(path: Path, atype, coords, boxes=None, type_map=("O", "H")):
    path.mkdir(parents=True)
    (path / "type.raw").write_text("\n".join(map(str, atype)) + "\n")
    (path / "type_map.raw").write_text("\n".join(type_map) + "\n")
    (path / "set.000").mkdir()
    np.save(path / "set.000/coord.npy", np.asarray(coords))
    if boxes is None:
        (path / "nopbc").write_text("")
    else:
        np.save(path / "set.000/box.npy", np.asarray(boxes))
    return path


def test_statistics_reduce_over_systems_sets_and_frames(tmp_path):
    # two systems (one periodic with shuffled atom order, one open), three frames each
    expected_sizes, expected_min = np.zeros(2, int), np.inf
    for name, kind, seed in (("periodic", "triclinic", 11), ("open", "open", 12)):
        frames, atype = frames_of(kind, seed)
        perm = np.random.default_rng(seed).permutation(len(atype))
        coords = np.stack([c[perm].reshape(-1) for c, _ in frames])
        boxes = None if kind == "open" else np.stack([b.reshape(9) for _, b in frames])
        _write_system(tmp_path / "root" / name, atype[perm], coords, boxes)
        for coord, box in frames:
            expected_sizes = np.maximum(expected_sizes,
                                        max_neighbors_per_type(coord, atype, box, RCUT))
            expected_min = min(expected_min,
                               brute_force_min_dist(coord, atype, box, RCUT, np.float64))
    min_dist, sizes = neighbor_stat(str(tmp_path / "root"), RCUT, ["O", "H"])
    assert sizes.tolist() == expected_sizes.tolist()
    assert min_dist == pytest.approx(expected_min, rel=1e-14)


def test_frames_are_batched_without_changing_the_result(tmp_path, monkeypatch):
    frames, atype = frames_of("small", 21, nframes=5)
    coords = np.stack([c.reshape(-1) for c, _ in frames])
    boxes = np.stack([b.reshape(9) for _, b in frames])
    _write_system(tmp_path / "s", atype, coords, boxes)
    whole = neighbor_stat([tmp_path / "s"], RCUT, ["O", "H"])
    monkeypatch.setattr(neighbor_stat_module, "_BATCH_ATOMS", 2 * len(atype))
    batched = neighbor_stat([tmp_path / "s"], RCUT, ["O", "H"])
    assert batched[0] == whole[0] and batched[1].tolist() == whole[1].tolist()


def test_frames_without_neighbours_count_as_rcut_with_a_warning(tmp_path, caplog):
    coords = np.array([[0.0, 0.0, 0.0, 8.0, 0.0, 0.0]] * 2)
    _write_system(tmp_path / "s", [0, 1], coords)
    with caplog.at_level(logging.WARNING, logger="deepmd_tebd"):
        min_dist, sizes = neighbor_stat([tmp_path / "s"], 5.0, ["O", "H"])
    assert min_dist == 5.0 and sizes.tolist() == [0, 0]
    assert any("Atoms with no neighbors found in" in r.getMessage() for r in caplog.records)


def test_overlapping_atoms_in_data_are_refused_naming_set_frame_and_atoms(tmp_path):
    frames, atype = frames_of("orthorhombic", 31)
    perm = np.random.default_rng(3).permutation(len(atype))
    coords = np.stack([c[perm].reshape(-1) for c, _ in frames])
    boxes = np.stack([b.reshape(9) for _, b in frames])
    coords[2, 3 * 5:3 * 6] = coords[2, 3 * 1:3 * 2]  # type.raw atoms 1 and 5 of frame 2
    path = _write_system(tmp_path / "dup", atype[perm], coords, boxes)
    with pytest.raises(OverlappingAtomsError) as info:
        neighbor_stat([path], RCUT, ["O", "H"])
    message = str(info.value)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, DataError)
    assert str(path / "set.000") in message
    assert "frame 2, atoms 1 and 5" in message


# --------------------------------------------------------------------------------------------
# The automatic sel


def test_parse_auto_sel_reads_the_factor():
    assert parse_auto_sel("auto") == 1.1
    assert parse_auto_sel("auto:1.5") == 1.5


@pytest.mark.parametrize("value", ["auto:", "auto:x", "auto:-1", "auto:0", "auto:nan", "autox",
                                   "Auto", "auto:1:2", 5, ["auto"], None])
def test_parse_auto_sel_refuses_anything_else(value):
    with pytest.raises(ValueError, match="auto:FACTOR"):
        parse_auto_sel(value)


# --------------------------------------------------------------------------------------------
# The water data against DeePMD-kit 3.2

# Runs in the oracle venv: DeePMD-kit's `dp neighbor-stat` code path (typed and one type),
# keeping its log lines, and its automatic sel for a range of neighbour counts.
_ORACLE_SCRIPT = r"""
import json, logging, sys
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logger = logging.getLogger("deepmd")
logger.addHandler(Keep())
logger.setLevel(logging.INFO)
from deepmd.entrypoints.neighbor_stat import neighbor_stat
from deepmd.tf.utils.update_sel import UpdateSel
root, rcut, type_map, sels = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(","), sys.argv[4:]
out = {}
for key, mixed in (("typed", False), ("one_type", True)):
    del records[:]
    d, m = neighbor_stat(system=root, rcut=rcut, type_map=type_map, mixed_type=mixed,
                         backend="tensorflow")
    out[key] = {"min_nbor_dist": float(d), "max_nbor_size": [int(x) for x in m],
                "log": list(records)}
u = UpdateSel()
out["sel"] = {s: [int(u.wrap_up_4(m * u.parse_auto_sel_ratio(s))) for m in range(200)]
              for s in sels}
print("ORACLE-JSON " + json.dumps(out))
"""
SEL_SPECS = ["auto", "auto:1.3", "auto:0.77", "auto:2", "auto:1.15", "auto:1.05"]


@pytest.fixture(scope="module")
def deepmd_water(tmp_path_factory):
    """DeePMD-kit 3.2's neighbour statistics of the water data (one subprocess)."""
    if not (WATER / "data_0/type.raw").is_file():
        pytest.skip(f"the water data is not at {WATER}")
    require_oracle()
    script = tmp_path_factory.mktemp("deepmd_water") / "neighbor_stat.py"
    script.write_text(_ORACLE_SCRIPT)
    proc = run_oracle([script, WATER, RCUT, "O,H", *SEL_SPECS], script.parent, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ORACLE-JSON ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("ORACLE-JSON "):])


@pytest.mark.slow
def test_water_statistics_match_deepmd(deepmd_water):
    for key, one_type in (("typed", False), ("one_type", True)):
        min_dist, sizes = neighbor_stat(str(WATER), RCUT, ["O", "H"], one_type=one_type)
        assert sizes.tolist() == deepmd_water[key]["max_nbor_size"]
        assert min_dist == pytest.approx(deepmd_water[key]["min_nbor_dist"], rel=1e-12)


@pytest.mark.slow
def test_auto_sel_matches_deepmd(deepmd_water):
    for spec in SEL_SPECS:
        assert auto_sel(range(200), parse_auto_sel(spec)) == deepmd_water["sel"][spec], spec


@pytest.mark.slow
def test_entry_point_logs_deepmd_lines(deepmd_water, caplog):
    with caplog.at_level(logging.INFO, logger="deepmd_tebd"):
        assert run_neighbor_stat(str(WATER), RCUT, ["O", "H"]) == 0
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("deepmd_tebd")]
    reference = deepmd_water["typed"]
    sizes = np.array(reference["max_nbor_size"])
    # the final two lines are DeePMD-kit's own, character for character
    assert messages[-2:] == [line for line in reference["log"]
                             if line.startswith(("min_nbor_dist:", "max_nbor_size:"))]
    # the two statistics lines in v2.2.5's wording (str of the float and of the array)
    assert messages[0].startswith("training data with min nbor dist: ")
    assert float(messages[0].split(": ")[1]) == pytest.approx(reference["min_nbor_dist"],
                                                              rel=1e-12)
    assert messages[1] == f"training data with max nbor size: {sizes}"
    assert len(messages) == 4


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--mixed-type", "--one-type"])
def test_dp_neighbor_stat_mixed_type_counts_all_types_as_one(deepmd_water, option, tmp_path):
    """DeePMD-kit's option and its alias: one max_nbor_size, all types counted together."""
    from dp_command import run_dp

    result = run_dp(tmp_path, "neighbor-stat", "-s", str(WATER), "-r", str(RCUT), "-t", "O",
                    "H", option)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = deepmd_water["one_type"]["max_nbor_size"]
    assert f"max_nbor_size: {np.array(expected)}" in result.stderr + result.stdout


@pytest.mark.slow
def test_dp_neighbor_stat_without_a_type_map_counts_the_datas_types(deepmd_water, tmp_path):
    """-t is optional, as in DeePMD-kit: the water data's own types (O, H) are counted."""
    from dp_command import run_dp

    result = run_dp(tmp_path, "neighbor-stat", "-s", str(WATER), "-r", str(RCUT))
    assert result.returncode == 0, result.stderr[-2000:]
    expected = deepmd_water["typed"]["max_nbor_size"]
    assert f"max_nbor_size: {np.array(expected)}" in result.stderr + result.stdout
