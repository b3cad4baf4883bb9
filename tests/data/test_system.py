"""Reading DeePMD-kit npy systems (deepmd_tebd/data/system.py): the real water systems, type
sorting and type_map remapping, recursive discovery, and malformed systems refused with a
DataError that names the offending file."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from deepmd_tebd.data.system import DataError, System, SystemNotFoundError, find_systems, load_systems
from shared_paths import WATER, needs_water

ROOT = Path(__file__).resolve().parents[2]



def raw_system(path: Path):
    """type.raw, type_map.raw and the first set's coord/box exactly as stored."""
    atype = np.loadtxt(path / "type.raw", dtype=int, ndmin=1)
    names = (path / "type_map.raw").read_text().split()
    set_dir = sorted(path.glob("set.*"))[0]
    return atype, names, np.load(set_dir / "coord.npy"), np.load(set_dir / "box.npy")


def write_system(path: Path, atype, coord, box=None, type_map=None, nopbc=False, nsets=1):
    """A system directory with `nsets` sets, each holding coord (and box unless None)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "type.raw").write_text("\n".join(str(int(t)) for t in atype) + "\n")
    if type_map is not None:
        (path / "type_map.raw").write_text("\n".join(type_map) + "\n")
    if nopbc:
        (path / "nopbc").write_text("")
    for k in range(nsets):
        set_dir = path / f"set.{k:03d}"
        set_dir.mkdir()
        np.save(set_dir / "coord.npy", coord)
        if box is not None:
            np.save(set_dir / "box.npy", box)
    return path


# --------------------------------------------------------------------------------------------
# The water systems


@needs_water
def test_water_systems_read_with_types_sorted():
    for path in sorted(WATER.glob("data_*")):
        system = System(path, ["O", "H"])
        atype, names, coord, box = raw_system(path)
        assert system.natoms == atype.size and system.pbc
        assert system.type_map == names
        assert np.all(np.diff(system.atype) >= 0)
        np.testing.assert_array_equal(np.bincount(system.atype), np.bincount(atype))
        data = system.load_set(system.sets[0])
        nframes = coord.shape[0]
        np.testing.assert_array_equal(
            data["coord"], coord.reshape(nframes, -1, 3)[:, system.idx_map].reshape(nframes, -1))
        np.testing.assert_array_equal(data["box"], box)
        assert data["coord"].dtype == np.float64
        np.testing.assert_array_equal(system.natoms_vec(2),
                                      [atype.size, atype.size] + list(np.bincount(atype)))


@needs_water
def test_atoms_are_stably_sorted_by_type(tmp_path):
    atype, _, coord, box = raw_system(WATER / "data_0")
    perm = np.random.default_rng(0).permutation(atype.size)
    shuffled_type = atype[perm]
    shuffled_coord = coord.reshape(coord.shape[0], -1, 3)[:, perm].reshape(coord.shape[0], -1)
    path = write_system(tmp_path / "shuffled", shuffled_type, shuffled_coord, box, ["O", "H"])
    system = System(path, ["O", "H"])
    np.testing.assert_array_equal(system.atype, np.sort(atype))
    # stable: within one type the original order is kept
    for t in (0, 1):
        idx = system.idx_map[system.atype == t]
        assert np.all(np.diff(idx) > 0) and np.all(shuffled_type[idx] == t)
    data = system.load_set(system.sets[0])
    expected = shuffled_coord.reshape(coord.shape[0], -1, 3)[:, system.idx_map]
    np.testing.assert_array_equal(data["coord"], expected.reshape(coord.shape[0], -1))


@needs_water
def test_permuted_type_map_remaps_types_by_name():
    atype, _, coord, _ = raw_system(WATER / "data_1")
    system = System(WATER / "data_1", ["H", "O"])
    # H is now type 0 and sorts first
    assert np.sum(system.atype == 0) == np.sum(atype == 1)
    assert np.sum(system.atype == 1) == np.sum(atype == 0)
    first_h = int(np.flatnonzero(atype == 1)[0])
    data = system.load_set(system.sets[0])
    np.testing.assert_array_equal(data["coord"][:, :3], coord[:, 3 * first_h:3 * first_h + 3])
    np.testing.assert_array_equal(system.natoms_vec(2)[2:], [np.sum(atype == 1), np.sum(atype == 0)])


@needs_water
def test_type_map_with_extra_names_leaves_their_counts_zero():
    system = System(WATER / "data_0", ["C", "H", "X", "O"])
    counts = system.natoms_vec(4)[2:]
    assert counts[0] == 0 and counts[2] == 0 and counts[1] == 2 * counts[3]


@needs_water
def test_root_string_finds_all_water_systems():
    found = find_systems(str(WATER))
    assert sorted(found) == sorted(WATER.glob("data_*"))
    systems = load_systems(str(WATER), ["O", "H"])
    assert [s.path for s in systems] == found


def test_recursive_discovery_walks_the_tree_and_lists_the_root_last(tmp_path):
    coord = np.zeros((1, 6))
    coord[0, 3] = 1.0
    box = np.eye(3).reshape(1, 9) * 10
    root = write_system(tmp_path / "root", [0, 1], coord, box)
    for sub in ("b/sys1", "a", "a/deeper/sys2", "c/not_a_system"):
        if sub.endswith("not_a_system"):
            (root / sub).mkdir(parents=True)
        else:
            write_system(root / sub, [0, 1], coord, box)
    found = find_systems(str(root))
    expected = [d for d in root.rglob("*") if (d / "type.raw").is_file()] + [root]
    assert found == expected
    assert set(found) == {root, root / "a", root / "a/deeper/sys2", root / "b/sys1"}
    assert found[-1] == root
    # a list names the systems themselves, in the given order
    assert find_systems([root / "b/sys1", root / "a"]) == [root / "b/sys1", root / "a"]


def test_nopbc_system_needs_no_box_and_gets_zero_cells(tmp_path):
    coord = np.arange(6.0)  # one frame, 1-D
    system = System(write_system(tmp_path / "open", [1, 0], coord, nopbc=True))
    assert not system.pbc
    data = system.load_set(system.sets[0])
    np.testing.assert_array_equal(data["coord"], [[3.0, 4.0, 5.0, 0.0, 1.0, 2.0]])
    np.testing.assert_array_equal(data["box"], np.zeros((1, 9)))


def test_sets_are_read_in_sorted_order(tmp_path):
    path = write_system(tmp_path / "s", [0], np.zeros((1, 3)), np.eye(3).reshape(1, 9), nsets=3)
    shutil.move(path / "set.000", path / "set.010")
    (path / "set.not_a_dir").write_text("")
    system = System(path)
    assert [p.name for p in system.sets] == ["set.001", "set.002", "set.010"]


def test_labels_load_through_the_same_checks(tmp_path):
    coord = np.arange(12.0).reshape(2, 6)
    path = write_system(tmp_path / "s", [1, 0], coord, np.tile(np.eye(3).reshape(9), (2, 1)))
    force = np.arange(12.0).reshape(2, 6) * 10
    np.save(path / "set.000/force.npy", force)
    system = System(path)
    got = system.load_array(system.sets[0], "force", 3, atomic=True, nframes=2)
    np.testing.assert_array_equal(got, force.reshape(2, 2, 3)[:, [1, 0]].reshape(2, 6))
    assert system.load_array(system.sets[0], "energy", 1, nframes=2, required=False) is None
    np.save(path / "set.000/energy.npy", np.zeros(3))
    with pytest.raises(DataError, match="energy.npy"):
        system.load_array(system.sets[0], "energy", 1, nframes=2)


# --------------------------------------------------------------------------------------------
# Malformed systems: each is refused with a DataError that names the file at fault


def _valid(path: Path) -> Path:
    coord = np.array([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]] * 2)
    box = np.tile((np.eye(3) * 5).reshape(9), (2, 1))
    return write_system(path, [0, 1, 1], coord, box, type_map=["O", "H"])


def _set(path):
    return path / "set.000"


MALFORMED = {
    "missing_type_raw": (lambda p: (p / "type.raw").unlink(), "type.raw"),
    "empty_type_raw": (lambda p: (p / "type.raw").write_text("\n"), "type.raw"),
    "non_integer_type_raw": (lambda p: (p / "type.raw").write_text("0\nH\n1\n"), "type.raw"),
    "negative_type": (lambda p: (p / "type.raw").write_text("0\n-1\n1\n"), "type.raw"),
    "type_beyond_type_map_raw": (lambda p: (p / "type.raw").write_text("0\n2\n1\n"),
                                 "type_map.raw"),
    "name_unknown_to_model": (lambda p: (p / "type_map.raw").write_text("O\nC\n"),
                              "type_map.raw"),
    "duplicate_name_in_type_map_raw": (lambda p: (p / "type_map.raw").write_text("O\nO\n"),
                                       "type_map.raw"),
    "no_set": (lambda p: shutil.rmtree(_set(p)), "set.*"),
    "missing_coord": (lambda p: (_set(p) / "coord.npy").unlink(), "coord.npy"),
    "coord_wrong_size": (lambda p: np.save(_set(p) / "coord.npy", np.zeros((2, 8))), "coord.npy"),
    "coord_3d": (lambda p: np.save(_set(p) / "coord.npy", np.zeros((2, 3, 3))), "coord.npy"),
    "coord_no_frames": (lambda p: np.save(_set(p) / "coord.npy", np.zeros((0, 9))), "coord.npy"),
    "nan_in_coord": (lambda p: np.save(_set(p) / "coord.npy",
                                       np.where(np.eye(2, 9) > 0, np.nan, 0.5)), "coord.npy"),
    "coord_not_npy": (lambda p: (_set(p) / "coord.npy").write_text("1 2 3"), "coord.npy"),
    "coord_of_strings": (lambda p: np.save(_set(p) / "coord.npy", np.full((2, 9), "x")),
                         "coord.npy"),
    "box_missing_without_nopbc": (lambda p: (_set(p) / "box.npy").unlink(), "box.npy"),
    "box_wrong_width": (lambda p: np.save(_set(p) / "box.npy", np.zeros((2, 3))), "box.npy"),
    "box_frame_count": (lambda p: np.save(_set(p) / "box.npy", np.eye(3).reshape(1, 9)),
                        "box.npy"),
    "singular_box": (lambda p: np.save(_set(p) / "box.npy", np.zeros((2, 9))), "box.npy"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_system_is_refused_naming_the_file(tmp_path, case):
    damage, filename = MALFORMED[case]
    path = _valid(tmp_path / "sys")
    System(path, ["O", "H"]).load_set(path / "set.000")  # intact, it reads
    damage(path)
    with pytest.raises(DataError) as info:
        system = System(path, ["O", "H"])
        for set_dir in system.sets:
            system.load_set(set_dir)
    assert filename in str(info.value)
    assert str(path) in str(info.value)


def test_type_beyond_model_type_map_without_type_map_raw_is_refused(tmp_path):
    path = write_system(tmp_path / "s", [0, 2], np.zeros((1, 6)), np.eye(3).reshape(1, 9))
    with pytest.raises(DataError, match="type.raw"):
        System(path, ["O", "H"])
    assert System(path).atype.tolist() == [0, 2]  # without a model type_map, kept as is


def test_missing_systems_are_refused_as_os_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemNotFoundError, match="type.raw"):
        find_systems(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        find_systems(str(tmp_path / "absent"))
    with pytest.raises(DataError, match="type.raw"):
        find_systems([tmp_path / "empty"])


@pytest.mark.slow
def test_data_modules_import_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, deepmd_tebd.data, deepmd_tebd.data.neighbor_stat, "
            "deepmd_tebd.entrypoints.neighbor_stat; assert 'tensorflow' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_system_in_another_format_is_converted_through_dpdata(tmp_path, monkeypatch):
    """A system given as {"path", "fmt"} is read by dpdata: here DeePMD-kit's raw text format,
    made from the npy water system, gives the same frames."""
    import dpdata

    from deepmd_tebd.data.system import find_systems

    monkeypatch.setenv("DEEPMD_TEBD_CACHE", str(tmp_path / "cache"))
    source = WATER / "data_0"
    dpdata.LabeledSystem(str(source), fmt="deepmd/npy").to("deepmd/raw", str(tmp_path / "raw"))
    paths = find_systems([{"path": str(tmp_path / "raw"), "fmt": "deepmd/raw"}])
    converted = System(paths[0], ["O", "H"])
    original = System(source, ["O", "H"])
    assert converted.natoms == original.natoms
    np.testing.assert_array_equal(converted.atype, original.atype)
    a = converted.load_set(converted.sets[0])["coord"]
    b = original.load_set(original.sets[0])["coord"]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert find_systems([{"path": str(tmp_path / "raw"), "fmt": "deepmd/raw"}]) == paths


def test_unreadable_other_format_names_the_file(tmp_path, monkeypatch):
    from deepmd_tebd.data.system import DataError, find_systems

    monkeypatch.setenv("DEEPMD_TEBD_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "OUTCAR"
    bad.write_text("not an outcar\n")
    with pytest.raises(DataError, match="OUTCAR"):
        find_systems([{"path": str(bad), "fmt": "vasp/outcar"}])


def test_rglob_patterns_pick_the_matching_system_folders_sorted(tmp_path):
    """rglob_patterns (DeePMD-kit 3.x): under each root, the folders that match a pattern and
    hold type.raw, each once, sorted; none matching is an error naming the patterns."""
    from deepmd_tebd.config.objects import SystemsGlob
    from deepmd_tebd.data.system import SystemNotFoundError, find_systems

    for name in ("a/sys_2", "a/sys_1", "b/sys_3", "b/other", "a/sys_nodata"):
        (tmp_path / name).mkdir(parents=True)
        if name != "a/sys_nodata":
            (tmp_path / name / "type.raw").write_text("0 1\n")
    found = find_systems(SystemsGlob(roots=(str(tmp_path / "a"), str(tmp_path / "b")),
                                     patterns=("sys_*", "sys_1")))
    assert found == [tmp_path / "a/sys_1", tmp_path / "a/sys_2", tmp_path / "b/sys_3"]
    with pytest.raises(SystemNotFoundError, match="rglob_patterns"):
        find_systems(SystemsGlob(roots=(str(tmp_path),), patterns=("nothing*",)))
