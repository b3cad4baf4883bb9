"""Checks of the `training` section's data settings against each other and the descriptor."""
from __future__ import annotations

import json

from .descriptors import one_sel_block
from .errors import Problem

__all__ = ["data_section_problems"]


def data_section_problems(training: dict, descriptor_type: str) -> list[Problem]:
    """Per data section: one batch_size / sys_probs entry per listed system; "mixed:N" batches
    (frames of several systems padded with virtual atoms) only for a descriptor of one neighbour
    block, whose graph takes every frame's own types (DeePMD-kit's argcheck: TensorFlow mixed
    batches are for se_atten); whole_validation needs validation data."""
    problems = []
    for name in ("training_data", "validation_data"):
        section = training[name]
        if section is None:
            continue
        batch_size = section["batch_size"]
        if (isinstance(batch_size, str) and batch_size.startswith("mixed")
                and not one_sel_block(descriptor_type)):
            problems.append(Problem(f"training/{name}/batch_size", f"{json.dumps(batch_size)}: "
                                    "mixed batches give every frame its own atom types, which "
                                    f"{descriptor_type} does not take; they need se_atten or "
                                    "se_atten_v2"))
        if not isinstance(section["systems"], list):
            continue
        nsys = len(section["systems"])
        for key in ("batch_size", "sys_probs"):
            if isinstance(section[key], list) and len(section[key]) != nsys:
                problems.append(Problem(f"training/{name}/{key}", f"expected one entry per "
                                        f"system ({nsys}), got {json.dumps(section[key])}"))
    if training.get("whole_validation") is not None and training["validation_data"] is None:
        problems.append(Problem("training/whole_validation", "needs training/validation_data: "
                                "the frames it evaluates"))
    return problems
