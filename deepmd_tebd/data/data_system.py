"""Batches drawn from several systems as DeePMD-kit draws them
(``deepmd/utils/data_system.py: DeepmdDataSystem.get_batch``, per system
``deepmd/utils/data.py: DeepmdData.get_batch``); the rules that choose (RNG, batch sizes, system
probabilities, labels) are in :mod:`.sampling`.

A :class:`DataSystem` holds the training (or validation) systems of one input section::

    data = DataSystem(["data_0", "data_1"], batch_size="auto", type_map=["O", "H"], seed=1)
    batch = data.get_batch()              # system drawn with the probabilities
    batch = data.get_batch(sys_idx=1)     # a batch of system 1 (no system draw)
    state = data.get_state()              # cheap snapshot; state.to_json() for a checkpoint

Per system an iterator runs through the frames of the current set in a shuffled order. When the
next batch would run past the end of the set (``it + bs > set_size``) the next set, in sorted
cyclic order, is loaded and shuffled, and the iterator restarts; so a short tail is never used and
a set smaller than the batch size gives batches of the whole set. Frames are repeated
``numb_copy.npy`` times in the shuffled order (``DeepmdData._load_batch_set``,
``DeepmdData._shuffle_data``). A set is read from disk and shuffled when the system's first batch
is drawn, not at construction (the construction only checks the files), so that the random
stream is consumed exactly as DeePMD-kit consumes it.

One ``numpy.random.RandomState`` (MT19937, :func:`.sampling.make_data_rng`) drives the system
draws (``rng.choice(arange(nsys), p=probs)``) and the shuffles; training and validation data
share it (pass ``rng=``). The draw comes before the shuffle it may trigger
(``DeepmdDataSystem.get_batch_standard``).

A batch (put together by :func:`.batch.assemble_batch`) is a dict of NumPy arrays, atoms sorted
by type::

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
from typing import TYPE_CHECKING

import numpy as np

from .batch import assemble_batch, default_mesh, load_set_arrays, merge_frames
from .sampling import (DEFAULT_LABELS, DataRequirement, label_requirements, make_data_rng,
                       resolve_batch_size, system_probabilities)
from .system import DataError, System, count_types, find_systems, mixed_type_of

if TYPE_CHECKING:
    from ..config.objects import DataConfig

__all__ = ["DataSystem", "SamplingState", "merged_type_map"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class SamplingState:
    """Where the sampling of a DataSystem stands; taken every step, made JSON only on demand.

    rng      ``RandomState.get_state()``: (name, keys [624] uint32, pos, has_gauss, cached)
    systems  per system (set_count, iterator, order): sets loaded, position of the next batch,
             frame indices of the current set in shuffled order (None before the first batch)

    ``order`` is the system's own array, not a copy: an order array is never changed after it is
    assigned (a new set or reshuffle assigns a new array, and it is made read-only), so a snapshot
    stays valid however many batches are drawn after it.
    """

    rng: tuple
    systems: tuple[tuple[int, int, np.ndarray | None], ...]

    def to_json(self) -> dict:
        """The state as JSON-able lists and numbers (the layout checkpoints hold)."""
        name, keys, pos, has_gauss, cached = self.rng
        return {"rng": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
                "systems": [{"set_count": set_count, "iterator": iterator,
                             "order": None if order is None else order.tolist()}
                            for set_count, iterator, order in self.systems]}

    @classmethod
    def from_json(cls, state: Mapping) -> "SamplingState":
        """The state of a ``to_json()`` dict (e.g. read back from a checkpoint)."""
        name, keys, pos, has_gauss, cached = state["rng"]
        rng = (name, _read_only(np.array(keys, dtype=np.uint32)), pos, has_gauss, cached)
        systems = []
        for sub in state["systems"]:
            order = sub["order"]
            if order is not None:
                order = _read_only(np.array(order, dtype=np.int64))
            systems.append((sub["set_count"], sub["iterator"], order))
        return cls(rng, tuple(systems))


def _read_only(array: np.ndarray) -> np.ndarray:
    """The array, made read-only: what lets a SamplingState share arrays instead of copying."""
    array.flags.writeable = False
    return array


class _SystemBatches:
    """The batch iterator of one system over its sets (``DeepmdData.get_batch``)."""

    def __init__(self, system: System, batch_size: int, requirements: list[DataRequirement],
                 ntypes: int, frames_per_draw: int | None = None):
        self.system = system
        self.batch_size = batch_size
        self.requirements = requirements
        self.natoms_vec = system.natoms_vec(ntypes)
        self.default_mesh = default_mesh(system)
        self.set_nframes = [self._check_set(set_dir) for set_dir in system.sets]
        self.nbatches = sum(max(1, n // batch_size) for n in self.set_nframes)
        # frames drawn at a time: the batch size, or 1 for mixed batches
        # (DeepmdDataSystem.get_batch_mixed draws single frames; nbatches counts batch_size)
        self.frames_per_draw = batch_size if frames_per_draw is None else frames_per_draw
        self._set_count = 0     # sets loaded so far
        self._iterator = 0      # position of the next batch in the shuffled order
        self._data = None       # the current set: load_set_arrays, frames in stored order
        # frame indices of the current set in shuffled order; read-only, replaced, never changed
        # in place (SamplingState keeps references to it)
        self._order = None

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
        if system.mixed_type:
            system.load_real_types(set_dir, nframes)
        return nframes

    def _load(self, set_dir: Path) -> tuple[dict, np.ndarray]:
        """The arrays of a set and its frame list with every frame repeated numb_copy times."""
        system = self.system
        data = load_set_arrays(system, set_dir, self.requirements)
        nframes = data["coord"].shape[0]
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
            self._order = _read_only(frames)
        else:
            # the new order is a shuffle of the previous one, as DeePMD-kit reshuffles the set it
            # holds (the same random draws as a fresh shuffle of a list of that length); frames
            # keep their numb_copy repeats once, where DeePMD-kit would repeat them again
            perm = np.arange(self._order.size)
            rng.shuffle(perm)
            self._order = _read_only(self._order[perm])
        self._iterator = 0

    def get_state(self) -> tuple[int, int, np.ndarray | None]:
        """Where the iteration stands: sets loaded, position, shuffled order (not copied)."""
        return self._set_count, self._iterator, self._order

    def set_state(self, set_count: int, iterator: int, order: np.ndarray | None) -> None:
        """Continue from a state of get_state (the current set is read again from disk)."""
        self._set_count = set_count
        self._iterator = iterator
        if order is None:
            self._data, self._order = None, None
        else:
            sets = self.system.sets
            self._data, _ = self._load(sets[(self._set_count - 1) % len(sets)])
            self._order = _read_only(order)

    def next_batch(self, rng: np.random.RandomState) -> dict:
        """The next batch of this system, moving to the next set (shuffled by rng) when due."""
        size = self.frames_per_draw
        set_size = 0 if self._order is None else self._order.size
        if self._iterator + size > set_size:
            self._next_set(rng)
            set_size = self._order.size
        stop = min(self._iterator + size, set_size)
        frames = self._order[self._iterator:stop]
        self._iterator += size
        return assemble_batch(self.system, self.natoms_vec, self._data, frames,
                              [req.key for req in self.requirements])


class DataSystem:
    """The systems of a ``training_data`` or ``validation_data`` section and their batches.

    systems     list (or tuple) of system directories, or one root searched recursively
                (:func:`.system.find_systems`)
    batch_size  int, list or tuple (one per system), "auto" or "auto:N"
                (:func:`.sampling.resolve_batch_size`)
    type_map    the model's type names; system types are remapped by name (:class:`.System`)
    rcut        kept for the caller (DeePMD-kit takes it too); batching does not use it
    seed / rng  the data RNG: a RandomState to share, or a seed for a new one
                (:func:`.sampling.make_data_rng`)
    sys_probs, auto_prob   system probabilities (:func:`.sampling.system_probabilities`)
    labels, numb_fparam, numb_aparam, required   the arrays to read
                (:func:`.sampling.label_requirements`)

    Attributes: ``systems`` (System), ``paths``, ``nsystems``, ``ntypes`` (natoms_vec has
    2 + ntypes entries: len(type_map) when a type_map is given), ``type_map``, ``natoms``,
    ``batch_size``, ``nbatches`` (per system, max(1, nframes // bs) summed over the sets as
    ``DeepmdData.get_sys_numb_batch``), ``sys_probs``, ``pbc``, ``rng``, ``requirements``,
    ``mixed_systems`` ("mixed:N" batches), ``mixed_type`` (frames carry their own types: the
    mixed-type format or mixed batches).
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
        if type_map:
            self.type_map = list(type_map)
            self.ntypes = len(type_map)
        else:  # an empty type map is no type map (DeePMD-kit's DeepmdData)
            self.type_map = merged_type_map(self.systems)
            self.ntypes = count_types(self.systems)
        self.natoms = [s.natoms for s in self.systems]
        self.pbc = [s.pbc for s in self.systems]
        self.requirements = label_requirements(labels, numb_fparam, numb_aparam, required)
        self.batch_size = resolve_batch_size(batch_size, self.natoms)
        self.mixed_systems = isinstance(batch_size, str) and batch_size.startswith("mixed")
        self.mixed_type = mixed_type_of(self.systems, self.mixed_systems)
        draw = 1 if self.mixed_systems else None
        self._iters = [_SystemBatches(s, bs, self.requirements, self.ntypes, draw)
                       for s, bs in zip(self.systems, self.batch_size)]
        self.nbatches = [it.nbatches for it in self._iters]
        self.sys_probs = system_probabilities(self.nbatches, sys_probs, auto_prob)
        if not (isinstance(batch_size, str) and batch_size.startswith(("auto", "mixed"))):
            for it in self._iters:
                for set_dir, n in zip(it.system.sets, it.set_nframes):
                    if n < it.batch_size:
                        log.warning("system %s required batch size is larger than the size of "
                                    "the dataset %s (%d > %d)", it.system.path, set_dir,
                                    it.batch_size, n)
                        break

    @classmethod
    def from_config(cls, config: DataConfig, type_map: Sequence[str] | None = None,
                    **kwargs) -> "DataSystem":
        """From the settings of a ``training_data``/``validation_data`` section (systems,
        batch_size, auto_prob, sys_probs); keyword arguments as the constructor."""
        return cls(config.systems, config.batch_size, type_map, sys_probs=config.sys_probs,
                   auto_prob=config.auto_prob, **kwargs)

    def __repr__(self) -> str:
        return f"DataSystem({[str(p) for p in self.paths]}, batch_size={self.batch_size})"

    def natoms_vec(self, sys_idx: int) -> np.ndarray:
        """natoms_vec [2+ntypes] int32 of system ``sys_idx``."""
        return self._iters[sys_idx].natoms_vec.copy()

    def default_mesh(self, sys_idx: int) -> np.ndarray:
        """default_mesh of system ``sys_idx``: zeros(6), or zeros(0) without PBC."""
        return self._iters[sys_idx].default_mesh.copy()

    def pick_system(self) -> int:
        """Draw a system index with the system probabilities (one draw from the data RNG)."""
        return int(self.rng.choice(np.arange(self.nsystems), p=self.sys_probs))

    def get_batch(self, sys_idx: int | None = None) -> dict:
        """The next batch of system ``sys_idx``, or of a system drawn with the probabilities.

        With ``"mixed:N"`` batches, N frames, each of a drawn system, padded to the largest
        natoms (:func:`.batch.merge_frames`); sys_idx is ignored, as DeePMD-kit ignores it."""
        if self.mixed_systems:
            frames = [self._iters[self.pick_system()].next_batch(self.rng)
                      for _ in range(self.batch_size[0])]
            atomic = {"coord"} | {req.key for req in self.requirements if req.atomic}
            return merge_frames(frames, self.ntypes, atomic)
        if sys_idx is None:
            sys_idx = self.pick_system()
        elif not 0 <= sys_idx < self.nsystems:
            raise IndexError(f"system index {sys_idx} out of range 0..{self.nsystems - 1}")
        return self._iters[sys_idx].next_batch(self.rng)

    def get_state(self) -> SamplingState:
        """The sampling state: the random generator and every system's iteration, so that a
        restarted run draws the same batches as an uninterrupted one. Cheap enough for every
        step (nothing is converted; ``to_json()`` converts)."""
        name, keys, pos, has_gauss, cached = self.rng.get_state()  # keys: a fresh copy
        return SamplingState((name, _read_only(keys), pos, has_gauss, cached),
                             tuple(it.get_state() for it in self._iters))

    def set_state(self, state: SamplingState | Mapping) -> None:
        """Continue from a get_state snapshot or its ``to_json()`` dict."""
        if not isinstance(state, SamplingState):
            state = SamplingState.from_json(state)
        self.rng.set_state(state.rng)
        if len(state.systems) != len(self._iters):
            raise DataError(f"the saved sampling state has {len(state.systems)} systems, the "
                            f"data {len(self._iters)}")
        for it, sub in zip(self._iters, state.systems):
            it.set_state(*sub)

    def get_test_batches(self, numb_btch: int) -> list[dict]:
        """``numb_btch`` batches, each from a drawn system (the validation draws of
        ``deepmd/tf/train/trainer.py: DPTrainer.train``)."""
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
        """Log summary_lines(name) at INFO level."""
        for line in self.summary_lines(name):
            (logger or log).info(line)


def _fit_name(name: str, width: int) -> str:
    """A path right-aligned in ``width`` characters, its beginning cut to "-- " if too long."""
    if len(name) <= width:
        return f"{name:>{width}}"
    return "-- " + name[-(width - 3):]


def merged_type_map(systems: list[System]) -> list[str] | None:
    """The longest type_map.raw of the systems; they must agree where they overlap (DeePMD-kit's
    deepmd/utils/data_system.py: DeepmdDataSystem._check_type_map_consistency)."""
    merged: list[str] = []
    for system in systems:
        names = system.type_map
        if names is None:
            continue
        common = min(len(names), len(merged))
        if names[:common] != merged[:common]:
            raise DataError(f"inconsistent type map: {merged} and {names} "
                            f"({system.path / 'type_map.raw'}); without model/type_map the "
                            "systems must use the same type indices: set model/type_map to map "
                            "their types by name")
        if len(names) > len(merged):
            merged = list(names)
    return merged or None
