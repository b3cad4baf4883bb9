"""A normalised script checked against its data: the systems exist and hold sets, the type_map
names every type they use, and sel "auto" / "auto:FACTOR" is resolved from the neighbour
statistics of the training data (as `dp train` does before training)."""
from __future__ import annotations

import logging

from ..data.system import DataError, System, find_systems
from .errors import ConfigError, Problem
from .objects import Config

log = logging.getLogger("deepmd_tebd")


def check_against_data(config: Config, source: str, skip_neighbor_stat: bool = False
                       ) -> tuple[Config, float | None]:
    """(config with sel resolved, the training data's minimal neighbour distance) after checking
    the systems against the type map; the distance is None with skip_neighbor_stat."""
    warn_discontinuous_type_embedding(config, source)
    type_map = list(config.model.type_map)
    training = config.training
    problems: list[Problem] = []
    for name, section in (("training_data", training.training_data),
                          ("validation_data", training.validation_data)):
        if section is not None:
            problems += _system_problems(section.systems, type_map, f"training/{name}/systems")
    if problems:
        raise ConfigError(source, problems)

    descriptor = config.model.descriptor
    sel = descriptor.sel
    if skip_neighbor_stat:
        if not descriptor.sel_resolved:
            raise ConfigError(source, [Problem("model/descriptor/sel", f"{sel!r} is resolved from "
                                               "the neighbour statistics of the training data; "
                                               "do not skip them (--skip-neighbor-stat)")])
        return config, None
    from ..data.neighbor_stat import auto_sel, neighbor_stat, parse_auto_sel

    log.info("Calculate neighbor statistics... (add --skip-neighbor-stat to skip this step)")
    min_dist, max_size = neighbor_stat(list(training.training_data.systems), descriptor.rcut,
                                       type_map)
    if not descriptor.sel_resolved:
        return config.with_sel(auto_sel(max_size, parse_auto_sel(sel))), min_dist
    for t, (m, s) in enumerate(zip(max_size, sel)):
        if s != 0 and m > s:
            log.warning(f"sel of type {type_map[t]} is {s}, but the training data has atoms "
                        f"with {m} neighbours of that type within rcut: the farthest are "
                        "dropped")
    return config, min_dist


def warn_discontinuous_type_embedding(config: Config, source: str) -> bool:
    """Logs a warning (and returns True) when the model is se_a_ebd_v2 as DeePMD-kit builds it
    with a non-zero davg: an empty slot takes the zero type row, a neighbour at rcut its own
    type's, with the same environment-matrix row (-davg/dstd), so the energy jumps when an atom
    crosses the cutoff (deepmd/tf/descriptor/se_a.py, tebd_input_mode "strip")."""
    descriptor = config.model.descriptor
    if (not descriptor.stripped_type_embedding or descriptor.smooth_type_embedding
            or descriptor.set_davg_zero):
        return False
    log.warning(f"{source}: model/descriptor: se_a_ebd_v2 without smooth_type_embedding and "
                "with set_davg_zero false (DeePMD-kit's model) is discontinuous at the cutoff: "
                "the energy jumps when an atom crosses rcut, which spoils energy conservation in "
                "MD. Set model/descriptor/smooth_type_embedding to true (an extension of "
                "deepmd_tebd) or set_davg_zero to true for a continuous model.")
    return True


def _system_problems(systems, type_map, path: str) -> list[Problem]:
    try:
        paths = find_systems(systems if isinstance(systems, str) else list(systems))
    except DataError as err:
        return [Problem(path, str(err))]
    problems = []
    for system in paths:
        try:
            System(system)
        except DataError as err:
            problems.append(Problem(path, str(err)))
            continue
        try:
            System(system, type_map)
        except DataError as err:  # readable alone: the model's type map does not cover it
            problems.append(Problem("model/type_map", str(err)))
    return problems
