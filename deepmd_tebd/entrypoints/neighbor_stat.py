"""`dp neighbor-stat`: neighbour statistics of the systems under a directory, logged as
DeePMD-kit's `deepmd/entrypoints/neighbor_stat.py: neighbor_stat` logs them."""
from __future__ import annotations

import logging

from ..data.neighbor_stat import neighbor_stat

log = logging.getLogger(__name__)


def run(system: str, rcut: float, type_map: list[str] | None, one_type: bool = False) -> int:
    """Log the shortest interatomic distance and the largest neighbour count of each type.

    system: root searched recursively for systems; rcut: cutoff radius (Angstrom); type_map: the
    type names (None: the data's type indices as they are); one_type: count all atoms as one
    type.
    """
    min_nbor_dist, max_nbor_size = neighbor_stat(system, rcut, type_map, one_type=one_type)
    log.info("min_nbor_dist: %f", min_nbor_dist)
    log.info("max_nbor_size: %s", max_nbor_size)
    return 0
