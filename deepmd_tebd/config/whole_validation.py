"""The settings of `training/whole_validation` (whole-validation evaluation, the best model,
early stopping), converted from the normalised section for config/objects.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """`training/whole_validation/early_stopping`: stop after `patience` evaluations whose
    `metric` did not fall below the best by more than `min_delta`."""

    patience: int
    min_delta: float
    metric: str


@dataclass(frozen=True)
class WholeValidationConfig:
    """`training/whole_validation`: every validation frame evaluated at each checkpoint (and
    every `freq` steps when not 0), `batch_atoms` atoms at a time, written to `file`."""

    freq: int
    file: str
    batch_atoms: int
    save_best: bool
    early_stopping: Optional[EarlyStoppingConfig] = None



def whole_validation_settings(section: Optional[Mapping]) -> Optional[WholeValidationConfig]:
    """The section's settings, or None without the section."""
    if section is None:
        return None
    stop = section.get("early_stopping")  # optional
    return WholeValidationConfig(
        freq=int(section["freq"]), file=section["file"], batch_atoms=int(section["batch_atoms"]),
        save_best=section["save_best"],
        early_stopping=None if stop is None else EarlyStoppingConfig(
            patience=int(stop["patience"]), min_delta=float(stop["min_delta"]),
            metric=stop["metric"]))
