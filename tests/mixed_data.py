"""Systems in DeePMD-kit's mixed-type format written for the tests (doc/data/system.md, "Mixed
type"): type.raw a placeholder of zeros, type_map.raw, and per set real_atom_types.npy
[nframes, natoms] (-1: a virtual atom, whose force labels are zero)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mixed_system(path: Path, types, coord, box=None, type_map=("O", "H"), labels=None,
                       set_sizes=None) -> Path:
    """A mixed-type system: types [nframes, natoms] (indices of type_map; -1 virtual), coord
    [nframes, natoms*3], box [nframes, 9] or None (nopbc), labels {name: [nframes, ...]};
    set_sizes splits the frames into sets (default: one set)."""
    types = np.asarray(types, dtype=np.int64)
    nframes, natoms = types.shape
    path.mkdir(parents=True)
    (path / "type.raw").write_text("0\n" * natoms)
    (path / "type_map.raw").write_text("\n".join(type_map) + "\n")
    if box is None:
        (path / "nopbc").write_text("")
    start = 0
    for k, size in enumerate(set_sizes or [nframes]):
        part = slice(start, start + size)
        set_dir = path / f"set.{k:03d}"
        set_dir.mkdir()
        np.save(set_dir / "real_atom_types.npy", types[part])
        np.save(set_dir / "coord.npy", np.asarray(coord, np.float64)[part])
        if box is not None:
            np.save(set_dir / "box.npy", np.asarray(box, np.float64)[part])
        for name, value in (labels or {}).items():
            np.save(set_dir / f"{name}.npy", np.asarray(value, np.float64)[part])
        start += size
    return path


def mixed_from_system(source: Path, path: Path, nframes: int, type_map=("H", "O"),
                      virtual: dict | None = None, seed: int = 0, shuffle: bool = True) -> Path:
    """The first `nframes` frames of a DeePMD-kit npy system (with type_map.raw) rewritten in
    the mixed-type format under the names type_map (in another order than the source's, so
    that indices are mapped by name). virtual {frame: [atoms]}: those atoms become virtual
    (type -1, force zero). With `shuffle`, frame k's atoms are reordered by a seeded
    permutation when k is odd, so that frames differ in their types' order."""
    names = (source / "type_map.raw").read_text().split()
    atype = np.loadtxt(source / "type.raw", dtype=np.int64, ndmin=1)
    set_dir = sorted(source.glob("set.*"))[0]
    natoms = atype.size
    coord = np.load(set_dir / "coord.npy")[:nframes].reshape(nframes, natoms, 3)
    box = np.load(set_dir / "box.npy")[:nframes] if (set_dir / "box.npy").is_file() else None
    force = np.load(set_dir / "force.npy")[:nframes].reshape(nframes, natoms, 3)
    energy = np.load(set_dir / "energy.npy")[:nframes]
    mapped = np.array([list(type_map).index(n) for n in names])[atype]
    rng = np.random.default_rng(seed)
    types = np.empty((nframes, natoms), np.int64)
    for k in range(nframes):
        order = rng.permutation(natoms) if shuffle and k % 2 else np.arange(natoms)
        types[k], coord[k], force[k] = mapped[order], coord[k, order], force[k, order]
        for atom in (virtual or {}).get(k, []):
            types[k, atom] = -1
            force[k, atom] = 0.0
    labels = {"energy": energy, "force": force.reshape(nframes, -1)}
    if (set_dir / "virial.npy").is_file():
        labels["virial"] = np.load(set_dir / "virial.npy")[:nframes]
    return write_mixed_system(path, types, coord.reshape(nframes, -1), box, type_map, labels)
