"""DeePMD-kit npy systems: finding them, reading one system's metadata and the arrays of its sets.

A system is a directory holding (DeePMD-kit's deepmd/utils/data.py: DeepmdData)::

    type.raw        natoms integers: the type index of every atom
    type_map.raw    optional: one name per type index
    nopbc           optional, empty: open boundaries (box.npy not needed)
    set.*/          one or more sets, sorted by name, each with
        coord.npy   [nframes, natoms*3] (1-D for a single frame), Angstrom
        box.npy     [nframes, 9], rows a, b, c (required unless nopbc)
        ...         labels, read with System.load_array

A :class:`System` remaps the type indices to a model's ``type_map`` by name through
``type_map.raw`` and orders the atoms stably by type: ``System.atype`` is sorted, and
every per-atom array read through the system is permuted the same way (``System.idx_map``).

Mixed-type format (DeePMD-kit's doc/data/system.md, "Mixed type"): every set also holds
``real_atom_types.npy`` [nframes, natoms], the type of each atom in each frame (indices of
``type_map.raw``, which is then required; -1 marks a virtual atom, whose labels are zero).
``type.raw`` only gives the number of atoms; the atoms keep their stored order
(``System.mixed_type`` is True, ``idx_map`` the identity) and ``load_set`` returns the
frames' types, in the model's indices, as ``"type"``.
Every problem with the files raises :class:`DataError`, whose message names the file and what was
expected. Only NumPy is used here.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..config.objects import SystemsGlob
from .errors import DataError, SystemNotFoundError
from .type_files import check_mixed_type, read_type_map_raw, read_type_raw, remap_types

__all__ = ["DataError", "SystemNotFoundError", "System", "count_types", "find_systems",
           "load_systems", "mixed_type_of"]


def converted_system(path: str | Path, fmt: str) -> Path:
    """A DeePMD-kit npy system made from labelled data in another format, read by dpdata (VASP
    OUTCAR, CP2K output, ABACUS, extended XYZ, ...: any format dpdata's LabeledSystem reads).

    The conversion is kept in a cache directory ($DEEPMD_TEBD_CACHE, default
    ~/.cache/deepmd_tebd/dpdata) keyed by the file's absolute path, size, modification time and
    the format, so it runs once per version of the data.
    """
    source = Path(path)
    if not source.exists():
        raise SystemNotFoundError(f"system {source} (format {fmt}) does not exist")
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{fmt}".encode())
    root = Path(os.environ.get("DEEPMD_TEBD_CACHE", Path.home() / ".cache/deepmd_tebd"))
    target = root / "dpdata" / key.hexdigest()[:16]
    if (target / "type.raw").is_file():
        return target
    import dpdata

    try:
        system = dpdata.LabeledSystem(str(source), fmt=fmt)
    except Exception as err:  # dpdata raises many kinds of errors for unreadable input
        raise DataError(f"{source} cannot be read as {fmt!r} by dpdata: {err}") from err
    if len(system) == 0:
        raise DataError(f"{source} holds no labelled frame in format {fmt!r}")
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    system.to("deepmd/npy", str(tmp))
    tmp.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target


def _globbed(systems: SystemsGlob) -> list[Path]:
    roots = [Path(root) for root in systems.roots if isinstance(root, (str, Path))]
    if len(roots) != len(systems.roots):
        raise SystemNotFoundError("rglob_patterns search folders: every entry of systems must be "
                                  "a folder, not a {path, fmt} mapping")
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        raise SystemNotFoundError(f"system root {', '.join(missing)} is not a directory")
    found = sorted({d for root in roots for pattern in systems.patterns for d in
                    root.rglob(pattern) if (d / "type.raw").is_file()})
    if not found:
        raise SystemNotFoundError(f"no system under {', '.join(map(str, roots))} matches "
                                  f"rglob_patterns {list(systems.patterns)}: expected "
                                  "directories containing type.raw")
    return found


def find_systems(systems: str | Path | Sequence[str | Path]) -> list[Path]:
    """The system directories named by a ``systems`` entry of the input.

    A string is a root searched recursively for directories containing ``type.raw``, in
    ``Path.rglob`` walk order, the root itself last (as DeePMD-kit's ``expand_sys_str``); finding
    none is an error. A list names the systems themselves; each must be a directory with
    ``type.raw``. With rglob_patterns (config.objects.SystemsGlob), the directories holding
    type.raw that match a pattern under a root, sorted (DeePMD-kit's order is a Python set's,
    which changes from run to run).
    """
    if isinstance(systems, SystemsGlob):
        return _globbed(systems)
    if isinstance(systems, (str, Path)):
        root = Path(systems)
        if not root.is_dir():
            raise SystemNotFoundError(f"system root {root} is not a directory")
        found = [d for d in root.rglob("*") if (d / "type.raw").is_file()]
        if (root / "type.raw").is_file():
            found.append(root)
        if not found:
            raise SystemNotFoundError(
                f"no system found under {root}: expected directories containing type.raw")
        return found
    paths = [converted_system(s["path"], s["fmt"]) if isinstance(s, Mapping) else Path(s)
             for s in systems]
    if not paths:
        raise SystemNotFoundError("the list of systems is empty")
    for path in paths:
        if not path.is_dir():
            raise SystemNotFoundError(f"system {path} is not a directory")
        if not (path / "type.raw").is_file():
            raise SystemNotFoundError(f"{path / 'type.raw'} is missing: a system directory "
                                      "must hold type.raw")
    return paths


def load_systems(systems, type_map: Sequence[str] | None = None) -> list["System"]:
    """:class:`System` objects for every system ``find_systems(systems)`` names."""
    return [System(path, type_map) for path in find_systems(systems)]


def count_types(systems: Sequence["System"]) -> int:
    """Number of types of systems read without a model type map: the longest type_map.raw, or
    the largest index + 1 of a system without one (DeePMD-kit's deepmd/utils/data.py:
    DeepmdData.get_ntypes, and the maximum over the systems in DeepmdDataSystem)."""
    return max(len(s.type_map) if s.type_map is not None else int(s.atype.max()) + 1
               for s in systems)


def mixed_type_of(systems: Sequence[System], mixed_batches: bool) -> bool:
    """Whether the data are of mixed types (per-frame types: the mixed-type format, or
    "mixed:N" batches of systems of any size): all systems in the mixed-type format or none
    (DeePMD-kit's DeepmdDataSystem); mixed batches need all periodic or all open systems."""
    formats = [s.mixed_type for s in systems]
    if any(formats) and not all(formats):
        mixed, plain = systems[formats.index(True)], systems[formats.index(False)]
        raise DataError(f"{mixed.path} is in the mixed-type format (set.*/real_atom_types.npy) "
                        f"but {plain.path} is not: the systems of one data section must all be "
                        "in it or none")
    if mixed_batches and len({s.pbc for s in systems}) > 1:
        periodic, open_ = (next(s for s in systems if s.pbc is flag) for flag in (True, False))
        raise DataError(f"mixed batches put frames of several systems into one batch, so the "
                        f"systems must be all periodic or all open: {periodic.path} is "
                        f"periodic, {open_.path} has a nopbc file")
    return any(formats) or mixed_batches


# the energy model's label files: (values per frame, or per atom and frame when atomic)
LABEL_SHAPES = {"energy": (1, False), "force": (3, True), "virial": (9, False),
                "atom_ener": (1, True), "atom_pref": (1, True)}


class System:
    """One system directory: atom types in the model's indices, periodicity and sets.

    Attributes
      path      the directory
      natoms    number of atoms
      type_map  names from type_map.raw, or None without it
      atype     [natoms] int32 type of each atom in the model's indices, ascending
      idx_map   [natoms] original index (line of type.raw) of each sorted atom:
                sorted[k] = original[idx_map[k]]
      pbc       False when the directory holds a ``nopbc`` file
      sets      the ``set.*`` directories, sorted by name
      mixed_type  True for the mixed-type format: atype is type.raw's placeholder and the
                frames' types come from load_set (key "type") or load_real_types
    """

    def __init__(self, path: str | Path, type_map: Sequence[str] | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise SystemNotFoundError(f"system {self.path} is not a directory")
        raw_type = read_type_raw(self.path / "type.raw")
        self.type_map = read_type_map_raw(self.path / "type_map.raw")
        self.pbc = not (self.path / "nopbc").is_file()
        self.sets = sorted(p for p in self.path.glob("set.*") if p.is_dir())
        if not self.sets:
            raise DataError(f"no set.* directory found in {self.path}: a system needs at least "
                            "one set (set.000/coord.npy, ...)")
        self.mixed_type = check_mixed_type(self.path, self.sets, self.type_map)
        self.natoms = int(raw_type.size)
        if self.mixed_type:
            # type.raw is a placeholder (DeePMD-kit keeps its indices unmapped); the real types
            # come per frame, mapped through _real_index (system index -> model index)
            remap_types(raw_type, self.type_map, None, self.path)
            self._real_index = remap_types(np.arange(len(self.type_map)), self.type_map,
                                            type_map, self.path)
            self.idx_map = np.arange(self.natoms)
            self.atype = raw_type.astype(np.int32)
            return
        atype = remap_types(raw_type, self.type_map, type_map, self.path)
        self.idx_map = np.argsort(atype, kind="stable")
        self.atype = atype[self.idx_map].astype(np.int32)

    def __repr__(self) -> str:
        return f"System({str(self.path)!r}, natoms={self.natoms}, sets={len(self.sets)})"

    def natoms_vec(self, ntypes: int) -> np.ndarray:
        """``[natoms, natoms, count of type 0, ..., count of type ntypes-1]`` (int32)."""
        if self.natoms and int(self.atype.max()) >= ntypes:
            raise DataError(f"{self.path / 'type.raw'} uses type {int(self.atype.max())}, but "
                            f"the model knows only {ntypes} types")
        counts = np.bincount(self.atype, minlength=ntypes)
        return np.concatenate([[self.natoms, self.natoms], counts]).astype(np.int32)

    def nframes(self, set_dir: Path) -> int:
        """Number of frames of a set (read from coord.npy's header)."""
        return self.load_array(set_dir, "coord", 3, atomic=True, mmap=True).shape[0]

    def load_set(self, set_dir: Path) -> dict[str, np.ndarray]:
        """The positions and cells of one set, atoms in sorted order, float64.

        Returns {"coord": [nframes, natoms*3], "box": [nframes, 9]} (zeros for nopbc systems),
        and for the mixed-type format "type" [nframes, natoms] int32 (load_real_types).
        """
        coord = self.load_array(set_dir, "coord", 3, atomic=True)
        nframes = coord.shape[0]
        if self.pbc:
            box = self.load_array(set_dir, "box", 9, nframes=nframes, required=False)
            if box is None:
                raise DataError(f"{Path(set_dir) / 'box.npy'} is missing: a periodic system "
                                f"needs the cell of every frame (or a 'nopbc' file in "
                                f"{self.path} for open boundaries)")
            volume = np.abs(np.linalg.det(box.reshape(-1, 3, 3)))
            if np.any(volume == 0):
                raise DataError(f"{Path(set_dir) / 'box.npy'}: frame {int(np.argmin(volume))} "
                                "has a singular cell (zero volume)")
        else:
            box = np.zeros((nframes, 9))
        if self.mixed_type:
            return {"coord": coord, "box": box, "type": self.load_real_types(set_dir, nframes)}
        return {"coord": coord, "box": box}

    def load_real_types(self, set_dir: Path, nframes: int) -> np.ndarray:
        """The atom types of every frame of a mixed-type set, [nframes, natoms] int32 in the
        model's indices (-1: a virtual atom), from ``real_atom_types.npy``."""
        path = Path(set_dir) / "real_atom_types.npy"
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"{path} cannot be read as a .npy array: {err}") from err
        data = data.reshape(1, -1) if data.ndim == 1 else data
        if data.ndim != 2 or data.shape != (nframes, self.natoms):
            raise DataError(f"{path} has shape {data.shape}; expected [{nframes} frames (as "
                            f"coord.npy), natoms = {self.natoms} (from type.raw)]")
        if not (np.issubdtype(data.dtype, np.integer) or (
                np.issubdtype(data.dtype, np.floating) and np.all(data == np.round(data)))):
            raise DataError(f"{path} holds {data.dtype} values; expected integer type indices")
        data = data.astype(np.int64)
        bad = (data < -1) | (data >= len(self.type_map))
        if np.any(bad):
            frame, atom = np.argwhere(bad)[0]
            raise DataError(f"{path}: frame {frame}, atom {atom} has type {data[frame, atom]}; "
                            f"expected -1 (a virtual atom) or an index of type_map.raw "
                            f"{self.type_map} (0..{len(self.type_map) - 1})")
        lookup = np.append(self._real_index, -1)  # -1 indexes the last entry: stays -1
        return lookup[data].astype(np.int32)

    def load_array(self, set_dir: Path, key: str, ndof: int, atomic: bool = False,
                   nframes: int | None = None, required: bool = True,
                   mmap: bool = False) -> np.ndarray | None:
        """``set_dir/key.npy`` as float64 [nframes, ndof] or, atomic, [nframes, natoms*ndof].

        A 1-D array is one frame. Atomic arrays are permuted into the sorted atom order.
        A missing file returns None unless ``required``. Raises DataError when the file cannot be
        read, has the wrong size or frame count (``nframes``, if given), or holds NaN or inf.
        """
        path = Path(set_dir) / f"{key}.npy"
        if not path.is_file():
            if required:
                raise DataError(f"{path} is missing")
            return None
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise DataError(f"{path} is not a NumPy .npy file")
        try:
            data = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"{path} cannot be read as a .npy array: {err}") from err
        width = ndof * self.natoms if atomic else ndof
        if data.ndim == 1:
            data = data.reshape(1, -1)
        if data.ndim != 2 or data.shape[1] != width or data.shape[0] == 0:
            what = (f"natoms*{ndof} = {width}] (natoms = {self.natoms} from type.raw)"
                    if atomic else f"{ndof}]")
            frames = "nframes >= 1" if nframes is None else f"{nframes} frames (as coord.npy)"
            raise DataError(f"{path} has shape {data.shape}; expected [{frames}, {what}")
        if nframes is not None and data.shape[0] != nframes:
            raise DataError(f"{path} holds {data.shape[0]} frame(s), but coord.npy of the same "
                            f"set holds {nframes}")
        if mmap:
            return data
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            raise DataError(f"{path} holds {data.dtype} values; expected real numbers")
        data = data.astype(np.float64)
        if not np.all(np.isfinite(data)):
            frame, col = np.argwhere(~np.isfinite(data))[0]
            raise DataError(f"{path} holds a non-finite value (NaN or inf) in frame {frame}, "
                            f"column {col}")
        if atomic:
            data = data.reshape(data.shape[0], self.natoms, ndof)[:, self.idx_map]
            data = data.reshape(data.shape[0], width)
        return data

    def load_labels_or_zeros(self, set_dir: Path, keys: Sequence[str],
                             nframes: int) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
        """The labels `keys` (of LABEL_SHAPES) on all frames of a set, [nframes, width] each,
        zeros where a label's file is missing; and which of them were found."""
        values, found = {}, {}
        for key in keys:
            ndof, atomic = LABEL_SHAPES[key]
            label = self.load_label(set_dir, key, ndof, atomic=atomic, nframes=nframes,
                                    required=False)
            found[key] = label is not None
            width = ndof * self.natoms if atomic else ndof
            values[key] = np.zeros((nframes, width)) if label is None else label
        return values, found

    def load_label(self, set_dir: Path, key: str, ndof: int, atomic: bool = False,
                   nframes: int | None = None, required: bool = True,
                   mmap: bool = False) -> np.ndarray | None:
        """As :meth:`load_array`, and also accepting all frames flattened into one 1-D array.

        With ``nframes`` > 1 given, a 1-D ``key.npy`` of nframes*ndof values (natoms*ndof per
        frame when ``atomic``) is read frame after frame, as DeePMD-kit reshapes every label to
        [nframes, ndof]: ``energy.npy`` is usually stored as [nframes].
        """
        path = Path(set_dir) / f"{key}.npy"
        width = ndof * self.natoms if atomic else ndof
        if nframes is not None and nframes > 1 and path.is_file():
            try:
                shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            except (OSError, ValueError):
                shape = None  # load_array reports the problem
            if shape is not None and len(shape) == 1 and shape[0] not in (width, nframes * width):
                raise DataError(f"{path} holds {shape[0]} values in one row, but coord.npy of the "
                                f"same set holds {nframes} frames: expected {nframes} x {width} = "
                                f"{nframes * width} values, or shape [{nframes}, {width}]")
            if shape is not None and len(shape) == 1 and shape[0] == nframes * width:
                data = self.load_array(set_dir, key, nframes * width, mmap=mmap)
                data = data.reshape(nframes, width)
                if atomic and not mmap:
                    data = data.reshape(nframes, self.natoms, ndof)[:, self.idx_map]
                    data = data.reshape(nframes, width)
                return data
        return self.load_array(set_dir, key, ndof, atomic=atomic, nframes=nframes,
                               required=required, mmap=mmap)
