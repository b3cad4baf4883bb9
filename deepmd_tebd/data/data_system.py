"""Batches drawn from several systems with DeePMD-kit's sampling rules (SPEC 3.3-3.5).

A :class:`DataSystem` holds the training (or validation) systems of one input section::

    data = DataSystem(["data_0", "data_1"], batch_size="auto", type_map=["O", "H"], seed=1)
    batch = data.get_batch()              # system drawn with the probabilities
    batch = data.get_batch(sys_idx=1)     # a batch of system 1 (no system draw)

Per system an iterator runs through the frames of the current set in a shuffled order. When the
next batch would run past the end of the set (``it + bs > set_size``) the next set, in sorted
cyclic order, is loaded and shuffled, and the iterator restarts; so a short tail is never used and
a set smaller than the batch size gives batches of the whole set. Frames are repeated
``numb_copy.npy`` times in the shuffled order. A set is read from disk and shuffled when the
system's first batch is drawn, not at construction (the construction only checks the files), so
that the random stream is consumed exactly as DeePMD-kit consumes it.

One ``numpy.random.RandomState`` (MT19937) drives the system draws
(``rng.choice(arange(nsys), p=probs)``) and the shuffles; training and validation data share it
(pass ``rng=``). The draw comes before the shuffle it may trigger.

A batch is a dict of NumPy arrays, atoms sorted by type::

    coord [bs, natoms*3]  box [bs, 9]  type [bs, natoms] int32  natoms_vec [2+ntypes] int32
    default_mesh int32 zeros(6), or zeros(0) without PBC
    energy [bs]  force [bs, natoms*3]  virial [bs, 9]
    atom_ener [bs, natoms]  atom_pref [bs, natoms]  atom_ener_coeff [bs, natoms]
    fparam [bs, numb_fparam]  aparam [bs, natoms*numb_aparam]
    find_<label>  float64 scalar: 1 when the set holds <label>.npy, else 0 (label = default value)

Only the labels asked for are present. Only NumPy is used here.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .system import DataError, System, find_systems

__all__ = [
    "DataRequirement",
    "DataSystem",
    "DEFAULT_LABELS",
    "label_requirements",
    "make_data_rng",
    "resolve_batch_size",
    "system_probabilities",
]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DataRequirement:
    """One array read from ``set.*/<key>.npy``.

    ndof     values per frame, or per atom when ``atomic``
    atomic   [nframes, natoms*ndof], permuted into the sorted atom order
    must     the file must exist in every set (else DataError); otherwise a missing file gives
             ``default`` everywhere and ``find_<key> = 0``
    repeat   every value repeated this many times in place (DeePMD-kit's ``repeat``)
    """

    key: str
    ndof: int
    atomic: bool = False
    must: bool = False
    repeat: int = 1
    default: float = 0.0


# The labels of the energy model (SPEC 3.1): key -> (ndof, atomic, default)
_LABELS = {
    "energy": (1, False, 0.0),
    "force": (3, True, 0.0),
    "virial": (9, False, 0.0),
    "atom_ener": (1, True, 0.0),
    "atom_pref": (1, True, 0.0),
    "atom_ener_coeff": (1, True, 1.0),
}
DEFAULT_LABELS = ("energy", "force", "virial", "atom_ener", "atom_pref")


def label_requirements(labels: Sequence[str | DataRequirement] = DEFAULT_LABELS,
                       numb_fparam: int = 0, numb_aparam: int = 0,
                       required: Sequence[str] = ()) -> list[DataRequirement]:
    """The arrays a DataSystem reads besides coord and box.

    ``labels`` names labels of the energy model (energy, force, virial, atom_ener, atom_pref,
    atom_ener_coeff) or gives DataRequirement objects; all are optional unless named in
    ``required``. ``fparam`` [numb_fparam per frame] and ``aparam`` [numb_aparam per atom] are
    required when their number is positive, as in DeePMD-kit. ``atom_pref`` is one value per atom
    (not repeated per force component).
    """
    reqs = []
    for label in labels:
        if isinstance(label, DataRequirement):
            reqs.append(label)
            continue
        if label not in _LABELS:
            raise DataError(f"unknown label {label!r}; known labels: {sorted(_LABELS)}")
        ndof, atomic, default = _LABELS[label]
        reqs.append(DataRequirement(label, ndof, atomic, must=label in required,
                                    default=default))
    if numb_fparam > 0:
        reqs.append(DataRequirement("fparam", int(numb_fparam), atomic=False, must=True))
    if numb_aparam > 0:
        reqs.append(DataRequirement("aparam", int(numb_aparam), atomic=True, must=True))
    keys = [r.key for r in reqs]
    if len(set(keys)) != len(keys):
        raise DataError(f"a label is requested twice: {keys}")
    unknown = set(required) - set(keys)
    if unknown:
        raise DataError(f"required labels {sorted(unknown)} are not among the labels {keys}")
    return reqs


def make_data_rng(seed: int | None, rank: int = 0) -> np.random.RandomState:
    """The data RNG: MT19937 seeded with ``(seed + rank) mod 2**32``; unseeded when seed is None."""
    if seed is None:
        return np.random.RandomState()
    return np.random.RandomState((int(seed) + int(rank)) % (2 ** 32))


def resolve_batch_size(batch_size, natoms: Sequence[int]) -> list[int]:
    """Frames per batch of each system (SPEC 3.4).

    An int applies to every system; a list gives one per system; ``"auto"`` is ``"auto:32"``;
    ``"auto:N"`` gives ``N // natoms``, plus one when that holds fewer than N atoms.
    """
    nsys = len(natoms)
    if isinstance(batch_size, (bool, np.bool_)):
        raise DataError(f"batch_size {batch_size!r}: expected an integer, a list of integers, "
                        "\"auto\" or \"auto:N\"")
    if isinstance(batch_size, (int, np.integer)):
        sizes = [int(batch_size)] * nsys
    elif isinstance(batch_size, str):
        rule, colon, arg = batch_size.partition(":")
        if rule == "mixed":
            raise DataError(f"batch_size {batch_size!r}: mixed batches are for the mixed-type "
                            "data format (se_atten), which is not supported")
        if rule != "auto" or (colon and not arg.isdigit()):
            raise DataError(f"unknown batch_size rule {batch_size!r}: expected an integer, a "
                            "list of integers, \"auto\" or \"auto:N\" (N a positive integer)")
        target = int(arg) if arg else 32
        if target < 1:
            raise DataError(f"batch_size {batch_size!r}: N must be at least 1")
        sizes = []
        for n in natoms:
            bs = target // n
            if bs * n < target:
                bs += 1
            sizes.append(bs)
    elif isinstance(batch_size, (list, tuple, np.ndarray)):
        sizes = list(batch_size)
        if len(sizes) != nsys:
            raise DataError(f"batch_size lists {len(sizes)} value(s) for {nsys} system(s); "
                            "a list needs one batch size per system")
        if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in sizes):
            raise DataError(f"batch_size {sizes}: a list must hold integers")
        sizes = [int(b) for b in sizes]
    else:
        raise DataError(f"batch_size {batch_size!r}: expected an integer, a list of integers, "
                        "\"auto\" or \"auto:N\"")
    for k, bs in enumerate(sizes):
        if bs < 1:
            raise DataError(f"batch_size of system {k} is {bs}; it must be at least 1")
    return sizes


def system_probabilities(nbatches: Sequence[int], sys_probs: Sequence[float] | None = None,
                         auto_prob: str = "prob_sys_size") -> np.ndarray:
    """Probability of drawing each system (SPEC 3.5), float64 [nsys].

    ``sys_probs``: entries >= 0 are kept; the mass left (1 - their sum) is shared by the systems
    with negative entries in proportion to their batch counts. Otherwise ``auto_prob``:
    ``prob_uniform``; ``prob_sys_size`` (proportional to the batch counts);
    ``prob_sys_size;a:b:w;...`` (systems a <= k < b form a block of weight w, weights normalised
    over the blocks, proportional to the batch counts inside a block).
    """
    nsys = len(nbatches)
    counts = np.asarray(nbatches, dtype=np.float64)
    if sys_probs is not None:
        probs = np.asarray(sys_probs, dtype=np.float64).reshape(-1)
        if probs.size != nsys:
            raise DataError(f"sys_probs has {probs.size} entries for {nsys} system(s)")
        fixed = probs >= 0
        assigned = float(np.sum(probs[fixed]))
        if assigned > 1.0 + 1e-8:
            raise DataError(f"sys_probs: the non-negative entries sum to {assigned}, more than 1")
        rest = 1.0 - assigned
        if np.isclose(rest, 0):
            out = np.where(fixed, probs, 0.0)
        else:
            rest_batches = np.where(fixed, 0.0, counts)
            if not np.any(~fixed):
                raise DataError(f"sys_probs {probs.tolist()} sum to {assigned}, less than 1, and "
                                "no entry is negative to take the remaining probability")
            out = rest * rest_batches / np.sum(rest_batches) + np.where(fixed, probs, 0.0)
    elif auto_prob == "prob_uniform":
        out = np.full(nsys, 1.0 / float(nsys))
    elif auto_prob == "prob_sys_size":
        out = counts / np.sum(counts)
    elif auto_prob.startswith("prob_sys_size;"):
        out = _block_probabilities(auto_prob, counts)
    else:
        raise DataError(f"unknown auto_prob style {auto_prob!r}: expected prob_uniform, "
                        "prob_sys_size or prob_sys_size;a:b:w;...")
    if not np.isclose(np.sum(out), 1.0):
        raise DataError(f"the system probabilities {out.tolist()} do not sum to 1")
    return out


def _block_probabilities(style: str, counts: np.ndarray) -> np.ndarray:
    nsys = counts.size
    blocks = []
    for text in style.split(";")[1:]:
        parts = text.split(":")
        try:
            start, end, weight = int(parts[0]), int(parts[1]), float(parts[2])
            if len(parts) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(f"auto_prob {style!r}: block {text!r} is not "
                            "start:end:weight") from None
        if weight < 0:
            raise DataError(f"auto_prob {style!r}: block {text!r} has a negative weight")
        if not 0 <= start < end <= nsys:
            raise DataError(f"auto_prob {style!r}: block {text!r} does not select systems among "
                            f"0..{nsys - 1} (start < end <= {nsys} needed)")
        blocks.append((start, end, weight))
    if not blocks:
        raise DataError(f"auto_prob {style!r} names no block start:end:weight")
    total = sum(w for _, _, w in blocks)
    if total <= 0:
        raise DataError(f"auto_prob {style!r}: the block weights sum to zero")
    probs = np.zeros(nsys)
    for start, end, weight in blocks:
        inside = counts[start:end]
        probs[start:end] = inside / np.sum(inside) * (weight / total)
    return probs


class _SystemBatches:
    """The batch iterator of one system over its sets (SPEC 3.3)."""

    def __init__(self, system: System, batch_size: int, requirements: list[DataRequirement],
                 ntypes: int):
        self.system = system
        self.batch_size = batch_size
        self.requirements = requirements
        self.natoms_vec = system.natoms_vec(ntypes)
        self.default_mesh = np.zeros(6 if system.pbc else 0, dtype=np.int32)
        self.set_nframes = [self._check_set(set_dir) for set_dir in system.sets]
        self.nbatches = sum(max(1, n // batch_size) for n in self.set_nframes)
        self._set_count = 0     # sets loaded so far
        self._iterator = 0      # position of the next batch in the shuffled order
        self._data = None       # the current set: arrays in stored frame order, find_* flags
        self._order = None      # frame indices of the current set in shuffled order

    def _check_set(self, set_dir: Path) -> int:
        """Frames of a set, after checking the shapes of its files (headers only)."""
        system = self.system
        nframes = system.nframes(set_dir)
        if system.pbc and system.load_array(set_dir, "box", 9, nframes=nframes, required=False,
                                            mmap=True) is None:
            raise DataError(f"{set_dir / 'box.npy'} is missing: a periodic system needs the "
                            f"cell of every frame (or a 'nopbc' file in {system.path} for open "
                            "boundaries)")
        for req in self.requirements:
            path = set_dir / f"{req.key}.npy"
            if not path.is_file():
                if req.must:
                    raise DataError(f"{path} is missing: the label {req.key!r} is required "
                                    "in every set")
                continue
            system.load_label(set_dir, req.key, req.ndof, atomic=req.atomic, nframes=nframes,
                              mmap=True)
        system.load_label(set_dir, "numb_copy", 1, nframes=nframes, required=False, mmap=True)
        return nframes

    def _load(self, set_dir: Path) -> tuple[dict, np.ndarray]:
        """The arrays of a set and its frame list with every frame repeated numb_copy times."""
        system = self.system
        data = system.load_set(set_dir)
        nframes = data["coord"].shape[0]
        for req in self.requirements:
            values = system.load_label(set_dir, req.key, req.ndof, atomic=req.atomic,
                                       nframes=nframes, required=req.must)
            data[f"find_{req.key}"] = np.float64(values is not None)
            if values is None:
                width = req.ndof * (system.natoms if req.atomic else 1)
                values = np.full((nframes, width), req.default, dtype=np.float64)
            if req.repeat != 1:
                values = np.repeat(values, req.repeat, axis=1)
            data[req.key] = values
        copies = system.load_label(set_dir, "numb_copy", 1, nframes=nframes, required=False)
        if copies is None:
            frames = np.arange(nframes)
        else:
            copies = copies.reshape(nframes)
            if np.any(copies < 0) or np.any(copies != np.round(copies)) or copies.sum() == 0:
                raise DataError(f"{set_dir / 'numb_copy.npy'} must hold non-negative integers, "
                                "not all zero")
            frames = np.repeat(np.arange(nframes), copies.astype(np.int64))
        return data, frames

    def _next_set(self, rng: np.random.RandomState) -> None:
        """Load the next set (cyclic, sorted) and shuffle it; a single set is only reshuffled."""
        sets = self.system.sets
        set_dir = sets[self._set_count % len(sets)]
        self._set_count += 1
        if self._data is None or len(sets) > 1:
            self._data, frames = self._load(set_dir)
            rng.shuffle(frames)
            self._order = frames
        else:
            # the new order is a shuffle of the previous one, as DeePMD-kit reshuffles the set it
            # holds (the same random draws as a fresh shuffle of a list of that length); frames
            # keep their numb_copy repeats once, where DeePMD-kit would repeat them again
            perm = np.arange(self._order.size)
            rng.shuffle(perm)
            self._order = self._order[perm]
        self._iterator = 0

    def get_state(self) -> dict:
        """Where the iteration stands: sets loaded, position, shuffled order of the current set."""
        return {"set_count": self._set_count, "iterator": self._iterator,
                "order": None if self._order is None else self._order.tolist()}

    def set_state(self, state: dict) -> None:
        """Continue from a state of get_state (the current set is read again from disk)."""
        self._set_count = state["set_count"]
        self._iterator = state["iterator"]
        if state["order"] is None:
            self._data, self._order = None, None
        else:
            sets = self.system.sets
            self._data, _ = self._load(sets[(self._set_count - 1) % len(sets)])
            self._order = np.array(state["order"], dtype=np.int64)

    def next_batch(self, rng: np.random.RandomState) -> dict:
        set_size = 0 if self._order is None else self._order.size
        if self._iterator + self.batch_size > set_size:
            self._next_set(rng)
            set_size = self._order.size
        stop = min(self._iterator + self.batch_size, set_size)
        frames = self._order[self._iterator:stop]
        self._iterator += self.batch_size
        data = self._data
        batch = {
            "coord": data["coord"][frames],
            "box": data["box"][frames],
            "type": np.tile(self.system.atype, (frames.size, 1)),
            "natoms_vec": self.natoms_vec.copy(),
            "default_mesh": self.default_mesh.copy(),
        }
        for req in self.requirements:
            values = data[req.key][frames]
            if not req.atomic and req.ndof * req.repeat == 1:
                values = values.reshape(frames.size)
            batch[req.key] = values
            batch[f"find_{req.key}"] = data[f"find_{req.key}"]
        return batch


class DataSystem:
    """The systems of a ``training_data`` or ``validation_data`` section and their batches.

    systems     list of system directories, or one root searched recursively (SPEC 1.7)
    batch_size  int, list (one per system), "auto" or "auto:N" (SPEC 3.4)
    type_map    the model's type names; system types are remapped by name (SPEC 3.2)
    rcut        kept for the caller (DeePMD-kit takes it too); batching does not use it
    seed / rng  the data RNG: a RandomState to share, or a seed for a new one (SPEC 3.5)
    sys_probs, auto_prob   system probabilities (SPEC 3.5)
    labels, numb_fparam, numb_aparam, required   the arrays to read (:func:`label_requirements`)

    Attributes: ``systems`` (System), ``paths``, ``nsystems``, ``ntypes`` (natoms_vec has
    2 + ntypes entries: len(type_map) when a type_map is given), ``type_map``, ``natoms``,
    ``batch_size``, ``nbatches`` (per system, SPEC 3.3), ``sys_probs``, ``pbc``, ``rng``,
    ``requirements``.
    """

    def __init__(self, systems, batch_size="auto", type_map: Sequence[str] | None = None, *,
                 rcut: float | None = None, seed: int | None = None,
                 rng: np.random.RandomState | None = None,
                 sys_probs: Sequence[float] | None = None, auto_prob: str = "prob_sys_size",
                 labels: Sequence[str | DataRequirement] = DEFAULT_LABELS,
                 numb_fparam: int = 0, numb_aparam: int = 0, required: Sequence[str] = ()):
        if rng is not None and seed is not None:
            raise ValueError("give either seed or rng, not both")
        self.rng = rng if rng is not None else make_data_rng(seed)
        self.rcut = rcut
        self.paths = find_systems(systems)
        self.systems = [System(path, type_map) for path in self.paths]
        self.nsystems = len(self.systems)
        self.type_map = list(type_map) if type_map is not None else _merged_type_map(self.systems)
        if type_map is not None:
            self.ntypes = len(type_map)
        else:
            self.ntypes = max(len(s.type_map) if s.type_map is not None
                              else int(s.atype.max()) + 1 for s in self.systems)
        self.natoms = [s.natoms for s in self.systems]
        self.pbc = [s.pbc for s in self.systems]
        self.requirements = label_requirements(labels, numb_fparam, numb_aparam, required)
        self.batch_size = resolve_batch_size(batch_size, self.natoms)
        self._iters = [_SystemBatches(s, bs, self.requirements, self.ntypes)
                       for s, bs in zip(self.systems, self.batch_size)]
        self.nbatches = [it.nbatches for it in self._iters]
        self.sys_probs = system_probabilities(self.nbatches, sys_probs, auto_prob)
        if not (isinstance(batch_size, str) and batch_size.startswith("auto")):
            for it in self._iters:
                for set_dir, n in zip(it.system.sets, it.set_nframes):
                    if n < it.batch_size:
                        log.warning("system %s required batch size is larger than the size of "
                                    "the dataset %s (%d > %d)", it.system.path, set_dir,
                                    it.batch_size, n)
                        break

    @classmethod
    def from_config(cls, section: Mapping, type_map: Sequence[str] | None = None, **kwargs):
        """From a normalised ``training_data``/``validation_data`` dict (``systems``,
        ``batch_size``, ``auto_prob``, ``sys_probs``); keyword arguments as the constructor."""
        systems = section.systems if isinstance(section.systems, str) else list(section.systems)
        batch_size = (list(section.batch_size) if isinstance(section.batch_size, tuple)
                      else section.batch_size)
        return cls(systems, batch_size, type_map, sys_probs=section.sys_probs,
                   auto_prob=section.auto_prob, **kwargs)

    def __repr__(self) -> str:
        return f"DataSystem({[str(p) for p in self.paths]}, batch_size={self.batch_size})"

    def natoms_vec(self, sys_idx: int) -> np.ndarray:
        return self._iters[sys_idx].natoms_vec.copy()

    def default_mesh(self, sys_idx: int) -> np.ndarray:
        return self._iters[sys_idx].default_mesh.copy()

    def pick_system(self) -> int:
        """Draw a system index with the system probabilities (one draw from the data RNG)."""
        return int(self.rng.choice(np.arange(self.nsystems), p=self.sys_probs))

    def get_batch(self, sys_idx: int | None = None) -> dict:
        """The next batch of system ``sys_idx``, or of a system drawn with the probabilities."""
        if sys_idx is None:
            sys_idx = self.pick_system()
        elif not 0 <= sys_idx < self.nsystems:
            raise IndexError(f"system index {sys_idx} out of range 0..{self.nsystems - 1}")
        return self._iters[sys_idx].next_batch(self.rng)

    def get_state(self) -> "_JsonState":
        """The sampling state: the random generator and every system's iteration,
        so that a restarted run draws the same batches as an uninterrupted one."""
        name, keys, pos, has_gauss, cached = self.rng.get_state()
        return _JsonState({"rng": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
                           "systems": [it.get_state() for it in self._iters]})

    def set_state(self, state: dict) -> None:
        name, keys, pos, has_gauss, cached = state["rng"]
        self.rng.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        if len(state["systems"]) != len(self._iters):
            raise DataError(f"the saved sampling state has {len(state['systems'])} systems, the "
                            f"data {len(self._iters)}")
        for it, sub in zip(self._iters, state["systems"]):
            it.set_state(sub)

    def get_test_batches(self, numb_btch: int) -> list[dict]:
        """``numb_btch`` batches, each from a drawn system (the validation draws, SPEC 2.3)."""
        return [self.get_batch() for _ in range(numb_btch)]

    def summary_lines(self, name: str) -> list[str]:
        """DeePMD-kit's data-system summary: a header, one line per system (path, natoms,
        batch size, batches, probability, pbc) and a closing rule."""
        width = 42
        lines = [f"---Summary of DataSystem: {name:13s}-----------------------------------------"
                 "------",
                 f"found {self.nsystems} system(s):",
                 f"{_fit_name('system', width)}  "
                 + "%6s  %6s  %6s  %5s  %3s" % ("natoms", "bch_sz", "n_bch", "prob", "pbc")]
        for k in range(self.nsystems):
            lines.append("%s  %6d  %6d  %6d  %5.3f  %3s" % (
                _fit_name(str(self.paths[k]), width), self.natoms[k], self.batch_size[k],
                self.nbatches[k], self.sys_probs[k], "T" if self.pbc[k] else "F"))
        lines.append("-" * 86)
        return lines

    def log_summary(self, name: str, logger: logging.Logger | None = None) -> None:
        for line in self.summary_lines(name):
            (logger or log).info(line)


class _JsonState(dict):
    """A sampling state that is already JSON-able."""

    def to_json(self) -> dict:
        return dict(self)


def _fit_name(name: str, width: int) -> str:
    """A path right-aligned in ``width`` characters, its beginning cut to "-- " if too long."""
    if len(name) <= width:
        return f"{name:>{width}}"
    return "-- " + name[-(width - 3):]


def _merged_type_map(systems: list[System]) -> list[str] | None:
    """The longest type_map.raw of the systems; they must agree where they overlap."""
    merged: list[str] = []
    for system in systems:
        names = system.type_map
        if names is None:
            continue
        common = min(len(names), len(merged))
        if names[:common] != merged[:common]:
            raise DataError(f"inconsistent type map: {merged} and {names} "
                            f"({system.path / 'type_map.raw'})")
        if len(names) > len(merged):
            merged = list(names)
    return merged or None
