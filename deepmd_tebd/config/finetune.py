"""The input script of `dp train --finetune`: the pretrained graph's model sections in place of
the user's (train/finetune.py describes the whole procedure). Types of the user's type map that
the pretrained model lacks are appended to its type map (new types, DPA-1 descriptors only)."""
from __future__ import annotations

import copy
import logging

from .descriptors import one_sel_block
from .errors import ConfigError, Problem
from .schema import VARIANT_ALIASES

log = logging.getLogger("deepmd_tebd")

SECTIONS = ("type_embedding", "descriptor", "fitting_net")


def _has_type_embedding(model: dict) -> bool:
    descriptor = model.get("descriptor", {})
    kind = descriptor.get("type") if isinstance(descriptor, dict) else None
    return model.get("type_embedding") is not None or kind in (
        "se_atten", "se_atten_v2", "se_a_ebd_v2", "se_a_tebd_v2")


def _one_sel_block(model: dict) -> bool:
    kind = model.get("descriptor", {}).get("type")
    return one_sel_block(VARIANT_ALIASES.get(kind, kind))


def merge_pretrained(script: dict, pretrained: dict, source: str, graph: str
                     ) -> tuple[dict, list, list]:
    """(the user's script with the pretrained model sections, the user's type map, the types it
    adds to the pretrained one) (train/finetune.py, step 1); ConfigError (naming `source`'s key
    path) for a type named twice, a new type for a descriptor with one sel block per type, a
    pretrained model without type embedding or without energy fitting."""
    if not isinstance(pretrained, dict) or not isinstance(pretrained.get("model"), dict):
        raise ConfigError(source, [Problem("model", f"--finetune {graph}: the graph's "
                                           "training script holds no model section")])
    script = copy.deepcopy(script)
    model = script.setdefault("model", {})
    if not isinstance(model, dict):
        raise ConfigError(source, [Problem("model", "expected a section (object)")])
    theirs = copy.deepcopy(pretrained["model"])
    if not _has_type_embedding(theirs):
        raise ConfigError(source, [Problem("model", f"--finetune {graph}: the pretrained model "
                                           "has no type embedding; its per-type nets do not "
                                           "carry over to another type map (fine-tune models "
                                           "with a type embedding: se_atten, se_atten_v2, "
                                           "se_a_ebd_v2, se_e2_a with type_embedding)")])
    fitting_type = theirs.get("fitting_net", {}).get("type", "ener")
    if fitting_type != "ener":
        raise ConfigError(source, [Problem("model/fitting_net/type", f"--finetune {graph}: the "
                                           f"pretrained fitting is {fitting_type!r}; only "
                                           "energy models ('ener') are fine-tuned")])
    full = list(theirs.get("type_map", []))
    user = model.get("type_map") or []
    if not isinstance(user, list) or not all(isinstance(t, str) for t in user):
        raise ConfigError(source, [Problem("model/type_map", "expected a list of names")])
    twice = sorted({t for t in user if user.count(t) > 1})
    if twice:
        raise ConfigError(source, [Problem("model/type_map", f"--finetune: the type map names "
                                           f"{twice} more than once")])
    new = [t for t in user if t not in full]
    if new and not _one_sel_block(theirs):
        raise ConfigError(source, [Problem("model/type_map", (
            f"--finetune: the type map names {new}, which the pretrained model {graph} does not "
            f"have ({full}); new types extend DPA-1 models (se_atten, se_atten_v2) alone: the "
            f"pretrained {theirs['descriptor'].get('type')} descriptor keeps one sel block per "
            "type, and a new block would change the predictions for the old types"))])
    if new:
        log.info(f"New types {new}: appended to the pretrained type map {full} (type embedding "
                 "rows and energy bias of their own; train/finetune.py)")
    if user != full + new:
        log.info(f"Change the type_map from {user} to {full + new}.")
    model["type_map"] = full + new
    for key in SECTIONS:
        mine = model.get(key)
        if key not in model and key in theirs:
            model[key] = theirs[key]
        elif key in model and key not in theirs:
            if key == "type_embedding":
                model.pop(key)
                if isinstance(mine, dict) and mine.get("trainable") is False:
                    model[key] = {"trainable": False, "activation_function": "None"}
        elif key in model and mine != theirs[key]:
            target = theirs[key]
            if isinstance(mine, dict) and "trainable" in mine:
                target["trainable"] = mine["trainable"]
            model[key] = target
    log.info("Change the model configurations according to the pretrained one...")
    return script, list(user), new
