"""The rules that decide what a DataSystem samples: the arrays it reads, the data RNG, the
batch size of each system and the probability of drawing it. Only NumPy is used here.

    reqs  = label_requirements(["energy", "force"], numb_fparam=0, required=["energy"])
    rng   = make_data_rng(seed)                          # shared by training and validation data
    sizes = resolve_batch_size("auto:32", natoms)       # frames per batch, one per system
    probs = system_probabilities(nbatches, sys_probs, auto_prob)

Each rule is DeePMD-kit's, named where it is defined; the errors are ours (DeePMD-kit asserts):
the labels and their defaults come from ``deepmd/tf/loss/ener.py: EnerStdLoss.label_requirement``
and ``deepmd/tf/fit/ener.py: EnerFitting.input_requirement``; the seed from DeePMD-kit
3.x's ``deepmd/tf/entrypoints/train.py: train``; the batch sizes from
``deepmd/utils/data_system.py: DeepmdDataSystem.__init__`` and ``DeepmdDataSystem._make_auto_bs``;
the probabilities from ``DeepmdDataSystem.set_sys_probs``, ``process_sys_probs`` and
``prob_sys_size_ext`` in the same file.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .system import DataError

__all__ = [
    "DataRequirement",
    "DEFAULT_LABELS",
    "label_requirements",
    "make_data_rng",
    "resolve_batch_size",
    "system_probabilities",
]


@dataclasses.dataclass(frozen=True)
class DataRequirement:
    """One array read from ``set.*/<key>.npy`` (DeePMD-kit's ``DataRequirementItem``).

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


# The labels of the energy model (deepmd/tf/loss/ener.py: EnerStdLoss.label_requirement; the
# atom_ener_coeff default of 1 from its enable_atom_ener_coeff branch): key -> (ndof, atomic,
# default)
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
    """The data RNG: MT19937 seeded with the key ``[rank, seed mod 2**32]``, as DeePMD-kit 3.x
    seeds ``deepmd.utils.random`` (v2.2.5 seeded it with ``(seed + rank) mod 2**32``, another
    sequence); unseeded when seed is None."""
    if seed is None:
        return np.random.RandomState()
    return np.random.RandomState([int(rank), int(seed) % (2 ** 32)])


def resolve_batch_size(batch_size, natoms: Sequence[int]) -> list[int]:
    """Frames per batch of each system (``DeepmdDataSystem.__init__``, ``_make_auto_bs``).

    An int applies to every system; a list gives one per system; ``"auto"`` is ``"auto:32"``;
    ``"auto:N"`` gives ``N // natoms``, plus one when that holds fewer than N atoms;
    ``"mixed:N"`` gives N (a batch of N frames of drawn systems: DataSystem.get_batch).
    """
    nsys = len(natoms)
    if isinstance(batch_size, (bool, np.bool_)):
        raise DataError(f"batch_size {batch_size!r}: expected an integer, a list of integers, "
                        "\"auto\" or \"auto:N\"")
    if isinstance(batch_size, (int, np.integer)):
        sizes = [int(batch_size)] * nsys
    elif isinstance(batch_size, str):
        rule, colon, arg = batch_size.partition(":")
        if rule not in ("auto", "mixed") or (colon and not arg.isdigit()) or (
                rule == "mixed" and not colon):
            raise DataError(f"unknown batch_size rule {batch_size!r}: expected an integer, a "
                            "list of integers, \"auto\", \"auto:N\" or \"mixed:N\" (N a "
                            "positive integer)")
        target = int(arg) if arg else 32
        if target < 1:
            raise DataError(f"batch_size {batch_size!r}: N must be at least 1")
        if rule == "mixed":  # N frames of any systems per batch (DeePMD-kit's get_batch_mixed)
            return [target] * nsys
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
    """Probability of drawing each system (``DeepmdDataSystem.set_sys_probs``), float64 [nsys].

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
    """The ``prob_sys_size;a:b:w;...`` probabilities (``prob_sys_size_ext``), style checked."""
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
