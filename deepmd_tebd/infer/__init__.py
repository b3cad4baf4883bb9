"""Frozen models: `dp freeze` (frozen.py) and their evaluation (DeepPot)."""
from .deep_pot import DeepPot
from .frozen import CheckpointError, ModelFileError, freeze

__all__ = ["CheckpointError", "DeepPot", "ModelFileError", "freeze"]
