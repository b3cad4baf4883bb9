"""The descriptor sections of the input-script schema (config/schema.py): se_e2_a, se_a_ebd_v2,
and DPA-1's se_atten and se_atten_v2, with DeePMD-kit's keys and defaults."""
from __future__ import annotations

from .schema_builders import activation as _activation
from .schema_builders import boolean as _bool
from .schema_builders import integer as _int
from .schema_builders import integers as _ints
from .schema_builders import key as _key
from .schema_builders import number as _num
from .schema_builders import precision as _precision
from .schema_builders import section as _section
from .schema_builders import seed as _seed
from .schema_builders import string as _str
from .v3_keys import NO_DEFAULT, ignored as _ignored, v3 as _v3

__all__ = ["SE_A_EBD_V2", "SE_ATTEN", "SE_ATTEN_V2", "SE_E2_A"]

SE_E2_A = _section({
    "type": _str(doc="descriptor type: se_e2_a (alias se_a)"),
    "sel": {"anyOf": [{"type": "array", "items": {"type": "integer", "minimum": 0}},
                      {"type": "string", "pattern": r"^auto(:[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)?$"}],
            "default": "auto",
            "x-expect": 'a list of non-negative integers (one per type), "auto" or "auto:FACTOR"',
            "description": "maximum number of neighbours of each type within rcut; \"auto\" "
                           "(= \"auto:1.1\") or \"auto:FACTOR\" derives it from the training data"},
    "rcut": _num(6.0, "cut-off radius (Angstrom)", exclusiveMinimum=0),
    "rcut_smth": _num(0.5, "radius where the smooth switch starts (Angstrom)", minimum=0),
    "neuron": _ints([10, 20, 40], "widths of the embedding net's layers", minItems=1),
    "axis_neuron": _int(4, "size of the axis (sub-)matrix M2", 1, **{"x-alias": ["n_axis_neuron"]}),
    "activation_function": _activation(),
    "resnet_dt": _bool(False, "use a timestep in the ResNet connections"),
    "type_one_side": _bool(False, "embedding depends on the neighbour's type only (not the "
                                  "centre's)"),
    "precision": _precision(),
    "trainable": _bool(True, "train the embedding net"),
    "seed": _seed(),
    "exclude_types": _key("array", [], "pairs of types whose interaction is excluded",
                          items={"type": "array", "items": {"type": "integer", "minimum": 0},
                                 "minItems": 2, "maxItems": 2},
                          **{"x-expect": "a list of [type, type] pairs"}),
    "set_davg_zero": _bool(False, "set the mean of the environment matrix to zero"),
    "env_protection": _v3("number", 0.0, "refuse", "only 0 is supported: DeePMD-kit's "
                          "TensorFlow backend raises NotImplementedError for another value"),
}, required=["type"], doc="the se_e2_a descriptor")

# DeePMD-kit >= 2.2.6 (deepmd/utils/argcheck.py: descrpt_se_a_ebd_v2_args) declares se_a_ebd_v2
# with se_e2_a's keys and defaults (type_one_side false); its 3.x env_protection only as 0
SE_A_EBD_V2 = _section({
    **SE_E2_A["properties"],
    "type": _str(doc="descriptor type: se_a_ebd_v2 (alias se_a_tpe_v2), the stripped type "
                     "embedding"),
    "env_protection": _num(doc="a DeePMD-kit 3.x option; deepmd_tebd implements only 0",
                           enum=[0], **{"x-expect": "0 (the only value deepmd_tebd implements)"}),
    "smooth_type_embedding": _bool(doc="an extension of deepmd_tebd (absent: false, DeePMD-kit's "
                                       "model): weight the type net's output by the switched "
                                       "s(r), so that the energy is continuous when an atom "
                                       "crosses the cutoff"),
}, required=["type"], doc="the se_a_ebd_v2 descriptor (stripped type embedding)")

# DPA-1 (DeePMD-kit 3.2, deepmd/utils/argcheck.py: descrpt_se_atten_common_args,
# descrpt_se_atten_args, descrpt_se_atten_v2_args) as its TensorFlow backend takes the keys:
# one sel for all types, the type embedding inside the embedding net, gated self-attention
_TF_RAISES = "DeePMD-kit's TensorFlow backend raises NotImplementedError for another value"
SE_ATTEN_COMMON = {
    **{k: SE_E2_A["properties"][k] for k in (
        "rcut", "rcut_smth", "neuron", "activation_function", "resnet_dt", "precision",
        "trainable", "seed", "exclude_types", "env_protection")},
    "type": _str(doc="descriptor type: se_atten (alias dpa1) or se_atten_v2"),
    "sel": {"anyOf": [{"type": "integer", "minimum": 0},
                      {"type": "array", "items": {"type": "integer", "minimum": 0}},
                      {"type": "string", "pattern": r"^auto(:[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)?$"}],
            "default": "auto",
            "x-expect": 'an integer, a list of integers (summed), "auto" or "auto:FACTOR"',
            "description": "maximum number of neighbours of all types within rcut"},
    "axis_neuron": _int(4, "size of the axis (sub-)matrix M2", 1, **{"x-alias": ["n_axis_neuron"]}),
    "type_one_side": _bool(False, "concat mode: the embedding net takes the neighbour's type "
                                  "embedding only (not the centre's); strip mode ignores it"),
    "attn": _int(128, "width of the attention's queries, keys and values", 1),
    "attn_layer": _int(2, "number of attention layers", 0),
    "attn_dotr": _bool(True, "gate the attention weights by the angle between the neighbours"),
    "attn_mask": _bool(False, "zero each neighbour's attention to itself"),
    "set_davg_zero": _bool(True, "set the mean of the environment matrix to zero"),
    "trainable_ln": _bool(True, "train the layer normalisation of the attention layers"),
    "ln_eps": _key(["number", "null"], None, "epsilon of the layer normalisation (null: 1e-3)"),
    "scaling_factor": _v3("number", 1.0, "refuse", "only 1.0: " + _TF_RAISES),
    "normalize": _v3("boolean", True, "refuse", "only true: " + _TF_RAISES),
    "temperature": _v3("number", NO_DEFAULT, "refuse", "DeePMD-kit's TensorFlow backend raises "
                       "NotImplementedError for any temperature (it uses 1)"),
    "concat_output_tebd": _v3("boolean", True, "refuse", "only true: " + _TF_RAISES),
    "tebd_dim": _ignored("integer", 8), "use_econf_tebd": _ignored("boolean", False),
    "use_tebd_bias": _ignored("boolean", False), "lmax": _ignored("integer"),
}
SE_ATTEN = _section({
    **SE_ATTEN_COMMON,
    "tebd_input_mode": _str("concat", "how the type embedding enters the embedding net: concat "
                            "(with s) or strip (its own net)", enum=["concat", "strip"]),
    "stripped_type_embedding": _key(["boolean", "null"], None, "overrides tebd_input_mode "
                                    "when given (true: strip)"),
    "smooth_type_embedding": _key("boolean", False, "smooth attention and type embedding at "
                                  "the cut-off", **{"x-alias": ["smooth_type_embdding"]}),
}, required=["type"], doc="the se_atten (DPA-1) descriptor")
SE_ATTEN_V2 = _section({
    **SE_ATTEN_COMMON,
    "set_davg_zero": _bool(False, "set the mean of the environment matrix to zero"),
}, required=["type"], doc="the se_atten_v2 descriptor: se_atten in strip mode with smooth "
                          "attention")
