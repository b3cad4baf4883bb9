"""Training and test data in DeePMD-kit's npy layout (``deepmd/utils/data.py: DeepmdData``):
systems, sets, batches and the statistics computed from them before a model exists.

    system.py          finding systems, reading type.raw / type_map.raw / set.*/ *.npy
    sampling.py        the rules: labels to read, data RNG, batch sizes, system probabilities
    batch.py           a batch put together from the arrays of one set and a frame selection
    data_system.py     batches drawn from several systems; the sampling state of a restart
    stats.py           descriptor and energy statistics of the training batches
    neighbor_stat.py   neighbour statistics over all frames and the automatic sel
    script_check.py    a normalised script checked against its data; sel "auto" resolved

Importing this package does not import TensorFlow.
"""
from .data_system import DataSystem, SamplingState
from .sampling import (DEFAULT_LABELS, DataRequirement, label_requirements, make_data_rng,
                       resolve_batch_size, system_probabilities)
from .system import DataError, System, SystemNotFoundError, find_systems, load_systems

__all__ = ["DataError", "SystemNotFoundError", "System", "find_systems", "load_systems",
           "DataSystem", "SamplingState", "DataRequirement", "DEFAULT_LABELS",
           "label_requirements", "make_data_rng", "resolve_batch_size", "system_probabilities"]
