"""Frozen models: `dp freeze` (frozen.py), their evaluation (DeepPot), the names they share
(node_names.py) and `dp test`'s errors (prediction_errors.py).

The names below are imported when first used, so that node_names.py is importable without
TensorFlow."""
from importlib import import_module

_WHERE = {"DeepPot": ".deep_pot", "CheckpointError": ".frozen", "ModelFileError": ".graph_file",
          "freeze": ".frozen"}

__all__ = ["CheckpointError", "DeepPot", "ModelFileError", "freeze"]


def __getattr__(name: str):
    """DeepPot, CheckpointError, ModelFileError and freeze, from their modules."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name], __name__), name)
