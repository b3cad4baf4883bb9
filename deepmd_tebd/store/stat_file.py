"""DeePMD-kit's statistics file (`training/stat_file`): the data statistics of a fresh training
run, kept so that the next run with the same data reads them instead of computing them.

A path ending in .h5 or .hdf5 is an HDF5 file, any other a folder of NumPy (.npy format) files
without suffix; both hold arrays at slash-separated keys, in DeePMD-kit 3.2's layout
(deepmd/tf/descriptor/stat.py, deepmd/dpmodel/utils/stat.py, deepmd/tf/fit/stat.py):

    <type_map joined by spaces>/<descriptor hash>/r_<t>   [n, sum s, sum s^2]        per centre
    <type_map joined by spaces>/<descriptor hash>/a_<t>   [3n, 3 sum a, 3 sum a^2]   type t
    <type_map joined by spaces>/fparam, aparam             [dim, 3] count, sum, sum of squares
    <type_map joined by spaces>/observed_type              element names present, bytes
    <type_map joined by spaces>/bias_atom_energy           [ntypes, 1]
    <type_map joined by spaces>/std_atom_energy            [ntypes, 1]

The descriptor hash is the SHA-1 of the JSON of {type "se_a", ntypes, rcut and rcut_smth rounded
to 2 decimals, nsel, sel, mixed_types}: statistics of another cut-off or selection are not
taken. A statistic is read when the file holds all of its arrays, else computed and written
(the energy pair inside a transaction marker, as DeePMD-kit writes it). StatFile follows the
protocol of data/stats.py's COMPUTED.
"""
from __future__ import annotations

import hashlib
import json
import os
from io import BytesIO
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .outputs import OutputError

__all__ = ["StatFile", "StatFileError", "descriptor_stat_key"]

HDF5_SUFFIXES = (".h5", ".hdf5")
_MARKER = "__deepmd_output_stat_transaction__"
_WHERE = "training/stat_file"


class StatFileError(OutputError):
    """A statistics file that cannot be read or written; the message names the file, the key
    path training/stat_file and the array."""


def descriptor_stat_key(descriptor, ntypes: int, mixed_types: bool = False) -> str:
    """The SHA-1 naming the statistics of a descriptor (config/descriptors.py:
    DescriptorConfig, sel resolved; the cut-offs as the script writes them, as DeePMD-kit
    hashes them)."""
    sel = [int(n) for n in descriptor.sel]
    rcut, rcut_smth = descriptor.given_cutoffs
    key = {"type": "se_a", "ntypes": ntypes, "rcut": round(rcut, 2),
           "rcut_smth": round(rcut_smth, 2), "nsel": sum(sel), "sel": sel,
           "mixed_types": mixed_types}
    return hashlib.sha1(json.dumps(key).encode("utf-8")).hexdigest()


class StatFile:
    """One training run's view of a statistics file: the group of its type_map (the root
    without one) and its descriptor's subgroup."""

    def __init__(self, path, type_map, descriptor_key: str, ntypes: int):
        self.path = Path(path)
        self.hdf5 = self.path.suffix in HDF5_SUFFIXES
        self.group = " ".join(type_map) if type_map else ""
        self.descriptor_group = self._key(descriptor_key)
        self.ntypes = ntypes

    @classmethod
    def open(cls, path, type_map, descriptor_key: str, ntypes: int) -> "StatFile":
        """The file, created empty (with its folder) when it does not exist; StatFileError
        when it cannot be one."""
        stat_file = cls(path, type_map, descriptor_key, ntypes)
        stat_file._create()
        return stat_file

    # -- the statistics (data/stats.py: the COMPUTED protocol) ---------------------------------

    def descriptor_sums(self, compute):
        """[ntypes, 5] sums (sr, sr2, sa, sa2, n) per centre type, from r_t and a_t."""
        names = [f"{k}_{t}" for k in "ra" for t in range(self.ntypes)]
        held = self._read_all([f"{self.descriptor_group}/{n}" for n in names], (3,))
        if held is not None:
            r, a = np.array(held[:self.ntypes]), np.array(held[self.ntypes:])
            return np.column_stack([r[:, 1], r[:, 2], a[:, 1] / 3, a[:, 2] / 3, r[:, 0]])
        sums = np.asarray(compute(), np.float64)
        sr, sr2, sa, sa2, n = sums.T
        self._write({**{f"{self.descriptor_group}/r_{t}": np.array([n[t], sr[t], sr2[t]])
                        for t in range(self.ntypes)},
                     **{f"{self.descriptor_group}/a_{t}": 3.0 * np.array([n[t], sa[t], sa2[t]])
                        for t in range(self.ntypes)}})
        return sums

    def param_sums(self, name: str, dim: int, compute):
        """[dim, 3] count, sum and sum of squares of fparam or aparam."""
        held = self._read_all([self._key(name)], (dim, 3))
        if held is not None:
            return held[0]
        sums = np.asarray(compute(), np.float64)
        self._write({self._key(name): sums})
        return sums

    def observed_types(self, compute):
        """The element names of the types in the data, recorded once (with a type_map)."""
        if not self.group or self._read_all([self._key("observed_type")], None) is not None:
            return
        self._write({self._key("observed_type"): np.array(compute(), dtype="S")})

    def energy_bias_and_std(self, compute):
        """The energy bias and the residuals' standard deviation, [ntypes] each."""
        keys = [self._key("bias_atom_energy"), self._key("std_atom_energy")]
        held = None if self._has(self._key(_MARKER)) else self._read_all(keys, (self.ntypes, 1))
        if held is not None:
            return held[0].reshape(-1), held[1].reshape(-1)
        bias, std = (np.asarray(v, np.float64) for v in compute())
        marker = self._key(_MARKER)
        self._write({marker: np.array([1], dtype=np.uint8)})
        self._write(dict(zip(keys, (bias.reshape(-1, 1), std.reshape(-1, 1)))))
        self._remove(marker)
        return bias, std

    # -- the storage: an HDF5 file or a folder -----------------------------------------------

    def _key(self, name: str) -> str:
        return f"{self.group}/{name}" if self.group else name

    def _fail(self, what: str) -> StatFileError:
        return StatFileError(f"{self.path}: {_WHERE}: {what}")

    def _create(self) -> None:
        if self.path.exists():
            if self.hdf5 and not self.path.is_file():
                raise self._fail("is not a file; a name ending in .h5 or .hdf5 is an HDF5 file")
            if not self.hdf5 and not self.path.is_dir():
                raise self._fail("is not a folder; give a folder, or a name ending in .h5 or "
                                 ".hdf5 for an HDF5 file")
            if self.hdf5:
                self._h5("r").close()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.hdf5:
                self._h5("w").close()
            else:
                self.path.mkdir()
        except OSError as err:
            raise self._fail(f"cannot be created: {err.strerror or err}") from None

    def _h5(self, mode: str):
        import h5py

        try:
            return h5py.File(self.path, mode)
        except OSError as err:
            raise self._fail(f"cannot be opened as an HDF5 file ({err})") from None

    def _has(self, key: str) -> bool:
        if self.hdf5:
            with self._h5("r") as f:
                return key in f
        return (self.path / key).exists()

    def _read_all(self, keys: list[str], shape):
        """The arrays at `keys` when all are there (each of `shape` when given), else None; an
        HDF5 file is opened once."""
        if self.hdf5:
            with self._h5("r") as f:
                if not all(key in f for key in keys):
                    return None
                return [self._checked(key, lambda key=key: f[key][()], shape) for key in keys]
        if not all((self.path / key).exists() for key in keys):
            return None
        return [self._checked(key, lambda key=key: np.load(self.path / key, allow_pickle=False),
                              shape) for key in keys]

    def _checked(self, key: str, load, shape) -> np.ndarray:
        """load() of the array at `key`, StatFileError when it cannot be read or has not
        `shape` (when given)."""
        try:
            value = np.asarray(load())
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            raise self._fail(f"{key} cannot be read ({err})") from None
        if shape is not None and value.shape != shape:
            raise self._fail(f"{key} has shape {value.shape}, expected {shape}: the file "
                             "belongs to another model; give another stat_file")
        return value

    def _write(self, items: dict) -> None:
        try:
            if self.hdf5:
                with self._h5("a") as f:
                    for key, value in items.items():
                        if key in f:
                            del f[key]
                        f.create_dataset(key, data=value)
                return
            for key, value in items.items():
                (self.path / key).parent.mkdir(parents=True, exist_ok=True)
                buffer = BytesIO()
                np.save(buffer, value)
                write_atomic(self.path / key, buffer.getvalue())
        except OSError as err:
            raise self._fail(f"cannot be written ({err})") from None

    def _remove(self, key: str) -> None:
        if self.hdf5:
            with self._h5("a") as f:
                del f[key]
        else:
            os.unlink(self.path / key)
