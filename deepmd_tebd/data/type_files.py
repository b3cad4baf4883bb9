"""The type files of a system: type.raw, type_map.raw, the mixed-type format's presence and
the mapping of the system's type indices onto a model's type map (DeePMD-kit's
deepmd/utils/data.py: DeepmdData). Every problem raises DataError naming the file."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import DataError, SystemNotFoundError


def check_mixed_type(root: Path, sets: Sequence[Path], type_map: list[str] | None) -> bool:
    """Whether the system is in the mixed-type format: real_atom_types.npy in every set (and
    then type_map.raw), or in none (DeePMD-kit's DeepmdData._check_mode)."""
    found = [(s / "real_atom_types.npy").is_file() for s in sets]
    if not any(found):
        return False
    if not all(found):
        with_, without = sets[found.index(True)], sets[found.index(False)]
        raise DataError(f"{without / 'real_atom_types.npy'} is missing, but "
                        f"{with_ / 'real_atom_types.npy'} exists: in the mixed-type format "
                        "every set of a system holds real_atom_types.npy")
    if type_map is None:
        raise DataError(f"{root / 'type_map.raw'} is missing: a system in the mixed-type format "
                        "(set.*/real_atom_types.npy) needs it to name its types")
    return True


def read_type_raw(path: Path) -> np.ndarray:
    """type.raw: whitespace-separated non-negative integers, one per atom."""
    if not path.is_file():
        raise SystemNotFoundError(f"{path} is missing: a system directory must hold type.raw")
    tokens = path.read_text().split()
    if not tokens:
        raise DataError(f"{path} is empty; expected one type index per atom")
    try:
        atype = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError as err:
        raise DataError(f"{path} must hold integer type indices: {err}") from None
    if np.any(atype < 0):
        raise DataError(f"{path} holds a negative type index ({int(atype.min())})")
    return atype


def read_type_map_raw(path: Path) -> list[str] | None:
    """type_map.raw: whitespace-separated distinct names, or None if absent."""
    if not path.exists():
        return None
    names = path.read_text().split()
    if not names:
        raise DataError(f"{path} is empty; expected one name per type index")
    if len(set(names)) != len(names):
        raise DataError(f"{path} names a type twice: {names}")
    return names


def remap_types(atype: np.ndarray, system_map: list[str] | None,
                 model_map: Sequence[str] | None, root: Path) -> np.ndarray:
    """Type indices of the system in the model's indices (DeePMD-kit's
    deepmd/utils/data.py: DeepmdData._idx_map and its type_map remapping).

    With both maps, index k becomes model_map.index(system_map[k]); every name of the system's map
    must be known to the model. Without type_map.raw the indices are kept and must be below the
    model's number of types. Without a model map (None or empty: a script without
    model/type_map) the indices are kept as they are, type_map.raw or not.
    """
    top = int(atype.max())
    if system_map is not None and top >= len(system_map):
        raise DataError(f"{root / 'type.raw'} uses type index {top}, but "
                        f"{root / 'type_map.raw'} names only {len(system_map)} types "
                        f"{system_map}")
    if not model_map:  # DeePMD-kit's DeepmdData.__init__ remaps only for a non-empty type_map
        return atype
    model_map = list(model_map)
    if system_map is None:
        if top >= len(model_map):
            raise DataError(f"{root / 'type.raw'} uses type index {top}, but the type_map "
                            f"{model_map} has only {len(model_map)} types (and {root} has no "
                            "type_map.raw to map names)")
        return atype
    unknown = [name for name in system_map if name not in model_map]
    if unknown:
        raise DataError(f"{root / 'type_map.raw'} names types {unknown} that are not in the "
                        f"type_map {model_map}")
    new_index = np.array([model_map.index(name) for name in system_map], dtype=np.int64)
    return new_index[atype]
