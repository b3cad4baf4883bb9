"""The names that tie the stages together: nodes of a frozen model's graph and their attribute
values (a training checkpoint's keys are in store/keys.py).

Node names are DeePMD-kit's (`deepmd/entrypoints/freeze.py: _make_node_names` lists them for an
energy model; `deepmd/infer/deep_pot.py: DeepPot` and `source/api_cc/src/DeepPot.cc` read them),
so that either runtime runs the other's graph. They are an interface: written once, here, and
never renamed. `dp freeze` (frozen.py) writes them, DeepPot (deep_pot.py) and `dp compress` read
them.

Imports nothing, so any stage can use it without TensorFlow.
"""
from __future__ import annotations

# -- inputs (placeholders, flat) ----------------------------------------------------------------
T_COORD = "t_coord"  # float64 [nframes*nall*3]
T_TYPE = "t_type"  # int32 [nframes*nall], local atoms sorted by type, then ghosts
T_NATOMS = "t_natoms"  # int32 [2+ntypes]: nloc, nall, local atoms per type
T_BOX = "t_box"  # float64 [nframes*9]
T_MESH = "t_mesh"  # int32: length 0 open boundaries, 6 periodic box, >= 16 a caller's nlist
T_FPARAM = "t_fparam"  # float64, only with frame parameters
T_APARAM = "t_aparam"  # float64, only with atomic parameters

# -- outputs ------------------------------------------------------------------------------------
O_ENERGY = "o_energy"  # [nframes]
O_FORCE = "o_force"  # [nframes, nall*3]
O_VIRIAL = "o_virial"  # [nframes, 9]
O_ATOM_ENERGY = "o_atom_energy"  # [nframes, nloc]
O_ATOM_VIRIAL = "o_atom_virial"  # [nframes, nall*9]
O_DESCRIPTOR = "o_descriptor"
O_RMAT = "o_rmat"
O_RMAT_DERIV = "o_rmat_deriv"
O_RIJ = "o_rij"
O_NLIST = "o_nlist"
T_TYPEEBD = "t_typeebd"  # the type embedding table, only with type embedding
# the variable scope of the type embedding net in the graph (`type_embed_net/matrix_1`, ...)
TYPE_EMBED_NET = "type_embed_net"

# the frozen node of each output of EnergyModel
OUTPUT_NODES = {
    "energy": O_ENERGY, "force": O_FORCE, "virial": O_VIRIAL, "atom_energy": O_ATOM_ENERGY,
    "atom_virial": O_ATOM_VIRIAL, "descriptor": O_DESCRIPTOR, "rmat": O_RMAT,
    "rmat_deriv": O_RMAT_DERIV, "rij": O_RIJ, "nlist": O_NLIST, "type_embedding": T_TYPEEBD,
}

# -- constant attributes ------------------------------------------------------------------------
MODEL_TYPE = "model_type"  # ORIGINAL_MODEL, or COMPRESSED_MODEL after `dp compress`
MODEL_ATTR_TMAP = "model_attr/tmap"  # the type map, names joined by spaces
MODEL_ATTR_MODEL_TYPE = "model_attr/model_type"  # ENERGY_MODEL for an energy model
MODEL_ATTR_MODEL_VERSION = "model_attr/model_version"
DESCRPT_ATTR_RCUT = "descrpt_attr/rcut"
DESCRPT_ATTR_NTYPES = "descrpt_attr/ntypes"
DESCRPT_ATTR_SEL = "descrpt_attr/sel"
DESCRPT_ATTR_ORIGINAL_SEL = "descrpt_attr/original_sel"
FITTING_ATTR_DFPARAM = "fitting_attr/dfparam"
FITTING_ATTR_DAPARAM = "fitting_attr/daparam"
FITTING_ATTR_APARAM_NALL = "fitting_attr/aparam_nall"
TRAIN_ATTR_TRAINING_SCRIPT = "train_attr/training_script"  # the normalised script, JSON
TRAIN_ATTR_MIN_NBOR_DIST = "train_attr/min_nbor_dist"
SPIN_ATTR_NTYPES_SPIN = "spin_attr/ntypes_spin"

# attribute values
ORIGINAL_MODEL = "original_model"
COMPRESSED_MODEL = "compressed_model"
ENERGY_MODEL = "ener"
MODEL_VERSION = "1.1"  # DeePMD-kit's model version of this graph layout

# what `dp freeze` keeps unless told otherwise (-n): DeePMD-kit's list for an energy model
# (`deepmd/entrypoints/freeze.py: _make_node_names`), absent ones left out
DEFAULT_NODES = (
    MODEL_TYPE, DESCRPT_ATTR_RCUT, DESCRPT_ATTR_NTYPES, MODEL_ATTR_TMAP, MODEL_ATTR_MODEL_TYPE,
    MODEL_ATTR_MODEL_VERSION, TRAIN_ATTR_MIN_NBOR_DIST, TRAIN_ATTR_TRAINING_SCRIPT, T_MESH,
    O_ENERGY, O_FORCE, O_VIRIAL, O_ATOM_ENERGY, O_ATOM_VIRIAL, SPIN_ATTR_NTYPES_SPIN,
    FITTING_ATTR_DFPARAM, FITTING_ATTR_DAPARAM, FITTING_ATTR_APARAM_NALL,
)
# what DeePMD-kit's graphs hold besides (its descriptors put sel and original_sel under a control
# dependency of the coordinates; the type embedding table is on the energy's path): its tools
# (init-frz-model, fine-tuning, compression, DeepPot.eval_typeebd) read them by name
KEPT_WITH_THE_MODEL = (DESCRPT_ATTR_SEL, DESCRPT_ATTR_ORIGINAL_SEL, T_TYPEEBD)
# what every energy model file must have to be read (frozen.py: read_graph_def)
INPUTS = (T_COORD, T_TYPE, T_NATOMS, T_BOX, T_MESH)
OUTPUTS = (O_ENERGY, O_FORCE, O_VIRIAL, O_ATOM_ENERGY, O_ATOM_VIRIAL)
ATTRIBUTES = (MODEL_ATTR_MODEL_TYPE, DESCRPT_ATTR_RCUT, DESCRPT_ATTR_NTYPES, MODEL_ATTR_TMAP)
