"""Training and test data in DeePMD-kit's npy layout: systems, sets and the statistics
computed from them before a model exists.

    system.py          finding systems, reading type.raw / type_map.raw / set.*/ *.npy
    neighbor_stat.py   neighbour statistics over all frames and the automatic sel

Importing this package does not import TensorFlow.
"""
from .system import DataError, System, SystemNotFoundError, find_systems, load_systems

__all__ = ["DataError", "SystemNotFoundError", "System", "find_systems", "load_systems"]
