"""A normalised script checked against its data: the systems exist and hold sets, the type_map
names every type they use, and sel "auto" / "auto:FACTOR" is resolved from the neighbour
statistics of the training data (as `dp train` does before training)."""
from __future__ import annotations

import logging

from ..config.errors import ConfigError, Problem
from ..config.normalize import ignored_keys, normalize
from ..config.objects import Config, build_config
from ..config.v3_keys import warmup_problems
from .data_system import merged_type_map
from .system import DataError, System, count_types, find_systems, load_systems

log = logging.getLogger("deepmd_tebd")


def check_against_data(config: Config, source: str, skip_neighbor_stat: bool = False
                       ) -> tuple[Config, float | None]:
    """(config with sel resolved, the training data's minimal neighbour distance) after checking
    the systems against the type map; the distance is None with skip_neighbor_stat."""
    warn_descriptor_settings(config, source)
    type_map = list(config.model.type_map)
    training = config.training
    problems: list[Problem] = []
    for name, section in (("training_data", training.training_data),
                          ("validation_data", training.validation_data)):
        if section is not None:
            problems += _system_problems(section.systems, type_map, f"training/{name}/systems",
                                         config.model.descriptor)
    if problems:
        raise ConfigError(source, problems)
    data_ntypes = None if type_map else _count_data_types(config, source)
    if training.numb_steps is None:
        config = _steps_of_epochs(config, source)

    descriptor = config.model.descriptor
    sel = descriptor.sel
    if skip_neighbor_stat:
        if not descriptor.sel_resolved:
            raise ConfigError(source, [Problem("model/descriptor/sel", f"{sel!r} is resolved from "
                                               "the neighbour statistics of the training data; "
                                               "do not skip them (--skip-neighbor-stat)")])
        return config, None
    from .neighbor_stat import CutoffTooLargeError, auto_sel, neighbor_stat, parse_auto_sel

    log.info("Calculate neighbor statistics... (add --skip-neighbor-stat to skip this step)")
    try:
        min_dist, max_size = neighbor_stat(training.training_data.systems, descriptor.rcut,
                                           type_map, one_type=descriptor.mixed_types)
    except CutoffTooLargeError as err:
        raise ConfigError(source, [Problem("model/descriptor/rcut", f"{descriptor.rcut} is far "
                                           f"larger than the boxes of the data: {err}")]) from None
    if not descriptor.sel_resolved:
        config = config.with_sel(auto_sel(max_size, parse_auto_sel(sel)))
        if data_ntypes is not None:  # ntypes was open until now: the checks that count types
            config = build_config(normalize(dict(config.script), source))
        return config, min_dist
    for t, (m, s) in enumerate(zip(max_size, sel)):
        if s != 0 and m > s:
            name = "all types" if descriptor.mixed_types else type_map[t] if type_map else str(t)
            log.warning(f"sel of type {name} is {s}, but the training data has atoms "
                        f"with {m} neighbours of that type within rcut: the farthest are "
                        "dropped")
    return config, min_dist


def _count_data_types(config: Config, source: str) -> int:
    """Without model/type_map: the number of types of the training data, which must equal sel's
    length (when sel is a list) and that of the validation data (DeePMD-kit's
    deepmd/tf/train/trainer.py: DPTrainer.build refuses data with more types than the model;
    with fewer, its first feed of t_natoms fails). The training systems' type_map.raw must
    agree; validation systems are mapped by name to theirs (deepmd/tf/entrypoints/train.py:
    _do_work passes train_data.type_map to the validation data)."""
    training = config.training
    try:
        systems = load_systems(training.training_data.systems)
        names = merged_type_map(systems)
    except DataError as err:
        raise ConfigError(source, [Problem("training/training_data/systems", str(err))]) from None
    ntypes = count_types(systems)
    counts = {"training/training_data/systems": ntypes}
    if training.validation_data is not None:
        try:
            valid = load_systems(training.validation_data.systems, names)
        except DataError as err:
            raise ConfigError(source, [Problem("training/validation_data/systems",
                                               str(err))]) from None
        counts["training/validation_data/systems"] = len(names) if names else count_types(valid)
    sel = config.model.descriptor.sel
    expected = len(sel) if config.model.descriptor.sel_resolved else ntypes
    how = (f"sel has {len(sel)} entries" if config.model.descriptor.sel_resolved
           else "as many as the training data have")
    problems = [Problem(path, f"the data have {n} atom types (the length of type_map.raw, or "
                              f"the largest index in type.raw + 1), but without model/type_map "
                              f"the model has {expected} ({how}): give model/type_map, or one "
                              "sel entry per type of the data")
                for path, n in counts.items() if n != expected]
    if problems:
        raise ConfigError(source, problems)
    return ntypes


def warn_descriptor_settings(config: Config, source: str) -> int:
    """Logs each warning the descriptor's settings give (config/descriptors.py:
    DescriptorConfig.warnings; se_a_ebd_v2 as DeePMD-kit builds it is discontinuous at the
    cutoff), and one naming the DeePMD-kit 3.x keys that are ignored; returns how many."""
    warnings = config.model.descriptor.warnings()
    for text in warnings:
        log.warning(f"{source}: model/descriptor: {text}")
    ignored = ignored_keys(config.script)
    if ignored:  # one warning naming them all
        log.warning(f"{source}: {', '.join(ignored)}: DeePMD-kit 3.x options that DeePMD-kit's "
                    "TensorFlow backend ignores; so does deepmd_tebd")
    return len(warnings) + bool(ignored)


def _system_problems(systems, type_map, path: str, descriptor) -> list[Problem]:
    """The systems' problems: unreadable, types the model's type map does not name, or the
    mixed-type format (every frame its own types) for a descriptor whose graph does not take
    per-frame types."""
    try:
        paths = find_systems(systems)
    except DataError as err:
        return [Problem(path, str(err))]
    problems = []
    for system in paths:
        try:
            found = System(system)
        except DataError as err:
            problems.append(Problem(path, str(err)))
            continue
        if found.mixed_type and not descriptor.mixed_types:
            problems.append(Problem(path, f"{system} is in the mixed-type format "
                                    "(set.*/real_atom_types.npy: every frame its own atom "
                                    f"types), which the {descriptor.type} descriptor does not "
                                    "take; only se_atten and se_atten_v2 do"))
        try:
            System(system, type_map)
        except DataError as err:  # readable alone: the model's type map does not cover it
            problems.append(Problem("model/type_map", str(err)))
    return problems


def _steps_of_epochs(config: Config, source: str) -> Config:
    """numb_steps of numb_epoch, as DeePMD-kit 3.x counts them: ceil(numb_epoch * ceil(the
    largest number of batches of a system over its probability))."""
    import math

    from .data_system import DataSystem

    training = config.training
    data = DataSystem.from_config(training.training_data, list(config.model.type_map) or None)
    per_epoch = max(n / p for n, p in zip(data.nbatches, data.sys_probs) if p > 0)
    steps = math.ceil(training.numb_epoch * math.ceil(per_epoch))
    log.info(f"numb_steps = {steps} from numb_epoch = {training.numb_epoch} and "
             f"{math.ceil(per_epoch)} batches per epoch")
    problems = warmup_problems(config.learning_rate.warmup(steps), steps, "the steps of "
                               "training/numb_epoch")
    if problems:
        raise ConfigError(source, problems)
    return config.with_numb_steps(steps)
