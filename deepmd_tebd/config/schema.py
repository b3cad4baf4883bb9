"""The input-script schema, declared once.

A JSON Schema (validated with the `jsonschema` library) with a few annotations of our own that the
normaliser and the documentation read:

  default         filled in when the key is absent (keys without one are optional, not inserted)
  description     the documentation printed by `dp doc-train-input`
  x-alias         other names accepted for the key (renamed to the canonical name)
  x-expect        how an error message describes a valid value
  x-unsupported   DeePMD-kit knows this key, this package refuses it; the value is the reason
  x-v3            a key DeePMD-kit 3.x added: its default, and what another value means (_v3)
  x-why           why only the values of an enum are accepted (added to the error message)

Variant sections (descriptor, fitting_net, loss, learning_rate, model) carry a `type` tag; the
tags this package implements are in VARIANTS, those DeePMD-kit knows but this package does not in
UNSUPPORTED_VARIANTS. Defaults follow DeePMD-kit 2.2.5 (where 3.x differs, the key says so).
"""
from __future__ import annotations

from .schema_builders import boolean as _bool
from .schema_builders import integer as _int
from .schema_builders import integers as _ints
from .schema_builders import key as _key
from .schema_builders import number as _num
from .schema_builders import section as _section
from .schema_builders import seed as _seed
from .schema_builders import string as _str
from .schema_builders import unsupported as _unsupported
from .schema_builders import activation as _activation
from .schema_builders import precision as _precision
from .schema_descriptors import SE_A_EBD_V2, SE_ATTEN, SE_ATTEN_V2, SE_E2_A
from .v3_keys import ENER_LOSS_KEYS, PYTORCH_TRAINING_KEYS
from .v3_keys import ignored as _ignored, v3 as _v3

EARLY_STOPPING_METRICS = ["loss_final", "loss", "rmse_e", "rmse_f", "rmse_v"]


TYPE_EMBEDDING = _section({
    "neuron": _ints([8], "widths of the hidden layers of the type embedding net; the last is the "
                    "size of the type embedding vector"),
    "activation_function": _activation(),
    "resnet_dt": _bool(False, "use a timestep in the ResNet connections"),
    "precision": _precision(),
    "trainable": _bool(True, "train the type embedding net"),
    "seed": _seed(default=None),
    "use_tebd_bias": _bool(doc="biases in the type embedding net's layers (DeePMD-kit 3.x; "
                           "its default there is false, an absent key keeps DeePMD-kit 2.2's "
                           "net with biases)"),
    "use_econf_tebd": _bool(doc="feed the type embedding net each element's electron "
                            "configuration (a vector of 118) instead of a one-hot vector "
                            "(DeePMD-kit 3.x; needs model/type_map of element symbols)"),
}, doc="the type embedding net: its presence enables the type-embedding approach")

FITTING_ENER = _section({
    "type": _str("ener", "fitting type: ener"),
    "numb_fparam": _int(0, "number of frame parameters (fparam.npy)", 0),
    "numb_aparam": _int(0, "number of atomic parameters (aparam.npy)", 0),
    "neuron": _ints([120, 120, 120], "widths of the fitting net's hidden layers",
                    **{"x-alias": ["n_neuron"]}),
    "activation_function": _activation(),
    "precision": _precision(),
    "resnet_dt": _bool(True, "use a timestep in the ResNet connections"),
    "trainable": {"anyOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "boolean"}}],
                  "default": True, "x-expect": "a boolean or a list of booleans (one per layer, "
                                               "the output layer included)",
                  "description": "train the fitting net, or each of its layers"},
    "rcond": _key(["number", "null"], None, "rcond of the least-squares fit of the atomic "
                                            "energy bias"),
    "seed": _seed(),
    "atom_ener": _key("array", [], "energy of each type in vacuum (null: not set)",
                      items={"type": ["number", "null"]},
                      **{"x-expect": "a list of numbers or nulls, one per type"}),
    "layer_name": _unsupported("layer sharing (layer_name) is not supported"),
    "use_aparam_as_mask": _bool(False, "aparam as a mask (not supported: must be false)"),
    "default_fparam": _v3(["array", "null"], None, "refuse", "only null: DeePMD-kit's "
                          "TensorFlow backend raises ValueError for default frame parameters"),
    "dim_case_embd": _v3("integer", 0, "refuse", "only 0 is supported: DeePMD-kit's TensorFlow "
                         "backend raises ValueError for case embedding"),
}, doc="the energy fitting net")

MODEL = _section({
    # optional (DeePMD-kit's deepmd/utils/argcheck.py: model_args): without it the data's type
    # indices are used as they are and sel's length gives the number of types
    "type_map": _key("array", ..., "element names of the atom types, in type-index order; "
                     "without it the systems' type.raw indices are used as they are (type_map.raw "
                     "is not applied) and the number of types is the length of descriptor/sel; "
                     "an empty list means the same (DeePMD-kit's deepmd/tf/entrypoints/train.py: "
                     "an empty type map is no type map)",
                     items={"type": "string"}, **{"x-expect": "a list of element names"}),
    "data_stat_nbatch": _int(10, "batches per system used for the data statistics", 1),
    "data_stat_protect": _num(1e-2, "floor of the fparam/aparam standard deviation"),
    "data_bias_nsample": _int(10, "frames used to fit the energy bias when fine-tuning", 1),
    "use_srtab": _unsupported("pair tables (use_srtab) are not supported"),
    "smin_alpha": _num(doc="pair table: smoothing (with use_srtab only)"),
    "sw_rmin": _num(doc="pair table: switch start (with use_srtab only)"),
    "sw_rmax": _num(doc="pair table: switch end (with use_srtab only)"),
    "srtab_add_bias": _bool(True, "pair table: add the energy bias (with use_srtab only)"),
    "type_embedding": TYPE_EMBEDDING,
    "descriptor": {"type": "object", "description": "the descriptor (variant by its type)"},
    "fitting_net": {"type": "object", "description": "the fitting net (variant by its type)"},
    "modifier": _unsupported("model modifiers (modifier) are not supported"),
    "spin": _unsupported("spin models (spin) are not supported"),
    "compress": _section({
        "type": _str("se_e2_a", "descriptor type of the compressed model", enum=["se_e2_a", "se_a"]),
        "model_file": _str(doc="the frozen model that is compressed"),
        "table_config": _key("array", [5, 0.01, 0.1, -1], "extrapolate, stride1, stride2, "
                             "check_freq", items={"type": "number"}, minItems=4, maxItems=4),
        "min_nbor_dist": _num(doc="minimum neighbour distance of the training data"),
    }, required=["model_file"], doc="written by dp compress"),
    "type": _str("standard", "model type: standard"),
    "info": _ignored("object", {}), "model_branch_alias": _ignored("array", []),
    "atom_exclude_types": _ignored("array", []), "pair_exclude_types": _ignored("array", []),
    "preset_out_bias": _ignored(["object", "null"], None),
    "bridging_method": _ignored("string", "None"),
    "bridging_r_inner": _ignored("number", 0.5), "bridging_r_outer": _ignored("number", 0.8),
}, required=["descriptor", "fitting_net"], doc="the model")

LEARNING_RATE_EXP = _section({
    "type": _str("exp", "learning-rate schedule: exp"),
    "start_lr": _num(1e-3, "learning rate at the first step", exclusiveMinimum=0),
    "stop_lr": _num(1e-8, "learning rate at the last step", exclusiveMinimum=0),
    "decay_steps": _int(5000, "steps between two decays", 1),
    "scale_by_worker": _str("linear", "scaling with the number of workers",
                            enum=["linear", "sqrt", "none"]),
    # DeePMD-kit 3.x's schedule keys: no default is filled in (absent: DeePMD-kit 2.2's schedule)
    "decay_rate": _key(["number", "null"], doc="the factor every decay_steps (DeePMD-kit 3.x; "
                       "null: from start_lr, stop_lr and the steps)", exclusiveMinimum=0,
                       maximum=1),
    "stop_lr_ratio": _key(["number", "null"], doc="stop_lr as a fraction of start_lr (DeePMD-kit "
                          "3.x; instead of stop_lr)", exclusiveMinimum=0),
    "smooth": _bool(doc="decay every step instead of every decay_steps (DeePMD-kit 3.x)"),
    "warmup_steps": _int(doc="steps of linear warm-up from warmup_start_factor * start_lr "
                         "before the decay (DeePMD-kit 3.x)", minimum=0),
    "warmup_ratio": _key(["number", "null"], doc="warm-up steps as a fraction of numb_steps "
                         "(DeePMD-kit 3.x; instead of warmup_steps)", minimum=0,
                         exclusiveMaximum=1),
    "warmup_start_factor": _num(doc="learning rate at the first warm-up step, as a fraction of "
                                "start_lr (DeePMD-kit 3.x)", minimum=0),
}, doc="exponentially decaying learning rate")

_PREFACTORS = {}
for _term, _what, _start, _limit in [
    ("e", "energy", 0.02, 1.0), ("f", "force", 1000, 1.0), ("v", "virial", 0.0, 0.0),
    ("ae", "atomic energy", 0.0, 0.0), ("pf", "atom-prefactor force", 0.0, 0.0),
]:
    _PREFACTORS[f"start_pref_{_term}"] = _num(_start, f"{_what} prefactor at the start",
                                              minimum=0)
    _PREFACTORS[f"limit_pref_{_term}"] = _num(_limit, f"{_what} prefactor at the end", minimum=0)

LOSS_ENER = _section({
    "type": _str("ener", "loss type: ener"),
    **_PREFACTORS,
    "relative_f": _key(["number", "null"], doc="relative force error: each atom's force error "
                                              "is divided by |F| + relative_f"),
    "enable_atom_ener_coeff": _bool(False, "energy = sum of c_i e_i with atom_ener_coeff.npy"),
    "start_pref_gf": _num(0.0, "generalised-force prefactor at the start", minimum=0),
    "limit_pref_gf": _num(0.0, "generalised-force prefactor at the end", minimum=0),
    "numb_generalized_coord": _int(0, "number of generalised coordinates (drdq.npy)", 0),
    **ENER_LOSS_KEYS,
}, doc="the energy loss")

_DATA = {
    "systems": {"anyOf": [{"type": "array", "minItems": 1, "items": {"anyOf": [
                              {"type": "string"},
                              {"type": "object", "required": ["path", "fmt"],
                               "additionalProperties": False,
                               "properties": {"path": {"type": "string"},
                                              "fmt": {"type": "string"}}}]}},
                          {"type": "string"}],
                "x-expect": "a list of system directories (or {\"path\": ..., \"fmt\": ...} "
                            "for other formats), or one directory searched recursively",
                "description": "system directories (each with type.raw), or a root directory "
                               "searched recursively; an entry {\"path\": P, \"fmt\": F} "
                               "reads P in any dpdata format F (e.g. vasp/outcar, "
                               "cp2k/output, abacus/scf), an extension of this package"},
    "set_prefix": _str("set", "prefix of the set directories (dp train always reads set.*)"),
    "batch_size": {"anyOf": [{"type": "integer", "minimum": 1},
                             {"type": "array", "items": {"type": "integer", "minimum": 1}},
                             {"type": "string", "pattern": r"^(auto(:[0-9]+)?|mixed:[0-9]+)$"}],
                   "default": "auto",
                   "x-expect": 'a positive integer, a list of them (one per system), "auto", '
                               '"auto:N" or "mixed:N"',
                   "description": "frames per batch: a number, one per system, \"auto:N\" "
                                  "(at least N atoms per batch; \"auto\" = \"auto:32\") or "
                                  "\"mixed:N\" (N frames of drawn systems, padded with virtual "
                                  "atoms; se_atten)"},
    "auto_prob": _str("prob_sys_size", "how systems are drawn: prob_uniform, prob_sys_size or "
                      "prob_sys_size;a:b:w;...", **{"x-alias": ["auto_prob_style"]}),
    "sys_probs": _key(["array", "null"], None, "probability of each system (overrides "
                      "auto_prob)", items={"type": "number"}, **{"x-alias": ["sys_weights"]}),
    "min_pair_dist": _ignored("number", 0.0),
    "rglob_patterns": _key(["array", "null"], doc="glob patterns: the systems are the folders "
                           "under each entry of systems that match one and hold type.raw "
                           "(DeePMD-kit 3.x)", items={"type": "string"}),
}

TRAINING_DATA = _section(dict(_DATA), required=["systems"], doc="the training data")
VALIDATION_DATA = _section({
    **_DATA,
    "numb_btch": _int(1, "validation batches per display", 1, **{"x-alias": ["numb_batch"]}),
}, required=["systems"], doc="the validation data")
VALIDATION_DATA = {**VALIDATION_DATA, "type": ["object", "null"], "default": None}

TRAINING = _section({
    "training_data": TRAINING_DATA,
    "validation_data": VALIDATION_DATA,
    "mixed_precision": _section({
        # DeePMD-kit (deepmd/tf/train/trainer.py, DPTrainer._init_param) refuses any other pair
        "output_prec": _str("float32", "precision of the trainable variables, the last fitting "
                            "layer and the descriptor's contractions", enum=["float32"],
                            **{"x-why": "DeePMD-kit's trainer supports output_prec float32 only"}),
        "compute_prec": _str(..., "precision of the embedding and hidden fitting layers' "
                             "matmuls", enum=["float16", "bfloat16"],
                             **{"x-why": "DeePMD-kit's trainer supports compute_prec float16 or "
                                         "bfloat16 only"}),
    }, required=["compute_prec"], doc="mixed precision training (DeePMD-kit 2.2)"),
    # deepmd_tebd's own section (DeePMD-kit has none): absent, training is as DeePMD-kit's
    "whole_validation": _section({
        "freq": _int(0, "also evaluate every freq steps (0: only at the checkpoints)", 0),
        "file": _str("valid.out", "file of the whole-validation curve (beside disp_file)"),
        "batch_atoms": _int(2048, "atoms evaluated together (frames x atoms per frame, at least "
                            "one frame)", 1),
        "save_best": _bool(True, "keep the checkpoint of the lowest loss_final as its own "
                           "prefix <save_ckpt>-best"),
        "early_stopping": _section({
            "patience": _int(..., "evaluations without improvement before training stops", 1),
            "min_delta": _num(0.0, "the least decrease of the error that counts as an "
                              "improvement", minimum=0),
            "metric": _str("loss_final", "the error watched", enum=EARLY_STOPPING_METRICS),
        }, required=["patience"], doc="stop when the whole-validation error stops improving"),
    }, doc="evaluate every frame of the validation systems at each checkpoint (needs "
           "validation_data); errors written to file, TensorBoard and the log"),
    "numb_steps": _int(..., "number of training steps", 0, **{"x-alias": ["stop_batch"]}),
    "seed": _seed("seed of the data sampling"),
    "disp_file": _str("lcurve.out", "file of the learning curve"),
    "disp_freq": _int(1000, "steps between two lines of the learning curve", 1),
    "save_freq": _int(1000, "steps between two checkpoints", 0),
    "save_ckpt": _str("model.ckpt", "path prefix of the checkpoints"),
    # DeePMD-kit 3.x option (2.2.5 always keeps 5); accepted so that 3.x scripts load
    "max_ckpt_keep": _int(5, "number of checkpoints kept", 1),
    "disp_training": _bool(True, "write the learning curve and periodic checkpoints"),
    "time_training": _bool(True, "log the training time"),
    "profiling": _bool(False, "profile the training (accepted, ignored)"),
    "profiling_file": _str("timeline.json", "profiling output file (accepted, ignored)"),
    "enable_profiler": _bool(False, "TensorFlow profiler (accepted, ignored)"),
    "tensorboard": _bool(False, "write TensorBoard logs"),
    "tensorboard_log_dir": _str("log", "directory of the TensorBoard logs"),
    "tensorboard_freq": _int(1, "steps between two TensorBoard records", 1),
    "data_dict": _unsupported("multi-task training (data_dict) is not supported"),
    "fitting_weight": _unsupported("multi-task training (fitting_weight) is not supported"),
    **PYTORCH_TRAINING_KEYS,
    "numb_epoch": _num(doc="epochs to train instead of numb_steps (DeePMD-kit 3.x): numb_steps "
                       "= ceil(numb_epoch * ceil(max over systems of batches / probability))",
                       exclusiveMinimum=0, **{"x-alias": ["num_epochs", "num_epoch",
                                                          "numb_epochs"]}),
    "stat_file": _str(doc="file (name ending .h5 or .hdf5) or folder that keeps the data "
                      "statistics of a fresh run for the next (DeePMD-kit's layout)",
                      minLength=1, **{"x-expect": "a file or folder name"}),
    "change_bias_after_training": _bool(doc="after the last step, move the energy bias by the "
                                        "least-squares fit of the training data's residual "
                                        "energies (DeePMD-kit 3.x)"),
    "model_prob": _unsupported("multi-task training (model_prob) is not supported"),
}, required=["training_data"], doc="the training")

ROOT = _section({
    "model": MODEL,
    "learning_rate": {"type": "object", "description": "the learning rate (variant by its type)"},
    "loss": {"type": "object", "description": "the loss (variant by its type); absent: the "
                                              "energy loss with its defaults"},
    "training": TRAINING,
    "learning_rate_dict": _unsupported("multi-task training (learning_rate_dict) is not "
                                       "supported"),
    "loss_dict": _unsupported("multi-task training (loss_dict) is not supported"),
    "nvnmd": _unsupported("NVNMD (nvnmd) is not supported"),
    "optimizer": _section({
        "type": _v3("string", "Adam", "refuse", "only Adam: DeePMD-kit's TensorFlow backend "
                    "raises RuntimeError for another optimizer"),
        "adam_beta1": _num(doc="Adam's beta1 (DeePMD-kit 3.x; absent: 0.9)", exclusiveMinimum=0,
                           exclusiveMaximum=1),
        "adam_beta2": _num(doc="Adam's beta2 (DeePMD-kit 3.x; absent: 0.999)",
                           exclusiveMinimum=0, exclusiveMaximum=1),
        "weight_decay": _v3("number", 0.0, "refuse", "only 0: DeePMD-kit's TensorFlow backend "
                            "raises RuntimeError for weight decay"),
    }, doc="the optimizer (DeePMD-kit 3.x): Adam"),
    "validating": _ignored("object", {}),
}, required=["model", "learning_rate", "training"], doc="a DeePMD-kit v2 input script")

# Variant sections: where they sit, their implemented types (with aliases) and their schema.
VARIANTS = {
    ("model", "descriptor"): {"se_e2_a": SE_E2_A, "se_a": SE_E2_A, "se_a_ebd_v2": SE_A_EBD_V2,
                              "se_a_tpe_v2": SE_A_EBD_V2, "se_atten": SE_ATTEN, "dpa1": SE_ATTEN,
                              "se_atten_v2": SE_ATTEN_V2},
    ("model", "fitting_net"): {"ener": FITTING_ENER},
    ("loss",): {"ener": LOSS_ENER},
    ("learning_rate",): {"exp": LEARNING_RATE_EXP},
}
VARIANT_ALIASES = {"se_a": "se_e2_a", "se_a_tpe_v2": "se_a_ebd_v2", "dpa1": "se_atten"}
VARIANT_DEFAULT_TYPE = {("model", "fitting_net"): "ener", ("loss",): "ener",
                        ("learning_rate",): "exp"}
UNSUPPORTED_VARIANTS = {
    ("model", "descriptor"): ["loc_frame", "se_e2_r", "se_r", "se_e3", "se_at", "se_a_3be",
                              "se_a_tpe", "se_a_ebd", "se_a_mask", "hybrid", "se_e3_tebd",
                              "dpa2", "dpa3"],
    ("model", "fitting_net"): ["dos", "dipole", "polar", "property"],
    ("loss",): ["ener_spin", "dos", "tensor", "property"],
    ("learning_rate",): ["cosine"],
}
MODEL_TYPES = ["standard"]
