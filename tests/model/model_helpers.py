"""Small models and frames for the model tests: configs in the normalised input-script layout,
random statistics, batched evaluation of many frames of one system, finite differences, and a
NumPy evaluation of an MLP from its weights."""
import numpy as np

from deepmd_tebd.config import build_config, normalize
from deepmd_tebd.data.stats import (ModelStatistics, descriptor_stats_from_sums,
                                   energy_bias_lstsq)
from deepmd_tebd.model import EnergyModel
from reference.env_mat import max_neighbors_per_type, random_system

RCUT, RCUT_SMTH = 4.0, 0.8


def natoms_vector(atype, ntypes):
    counts = [int(np.sum(atype == t)) for t in range(ntypes)]
    return np.array([len(atype), len(atype)] + counts, dtype=np.int32)


def model_config(sel, tebd=True, type_one_side=True, neuron=(4, 8), axis_neuron=2,
                 fitting=(8, 8), exclude_types=(), numb_fparam=0, numb_aparam=0, atom_ener=(),
                 set_davg_zero=False, activation="tanh", seed=1, rcut_smth=RCUT_SMTH,
                 descriptor="se_e2_a", smooth_type_embedding=None, use_tebd_bias=None,
                 use_econf_tebd=False, descriptor_keys=None):
    """A `model` section as the config normaliser writes it, with small nets; resnet_dt on, so
    that the timestep variables take part in every test. descriptor: se_e2_a or se_a_ebd_v2
    (then smooth_type_embedding, None: not written); use_tebd_bias None: not written;
    use_econf_tebd: the type embedding net reads electron configurations (types named after
    metals then); descriptor_keys: more keys of the descriptor section (se_atten's)."""
    ntypes = len(sel)
    cfg = {
        "type_map": [f"T{t}" for t in range(ntypes)],
        "descriptor": {
            "type": descriptor, "sel": list(sel), "rcut": RCUT, "rcut_smth": rcut_smth,
            "neuron": list(neuron), "axis_neuron": axis_neuron, "resnet_dt": True,
            "type_one_side": type_one_side, "precision": "float64", "seed": seed,
            "activation_function": activation, "trainable": True,
            "exclude_types": [list(p) for p in exclude_types], "set_davg_zero": set_davg_zero,
        },
        "fitting_net": {
            "type": "ener", "neuron": list(fitting), "resnet_dt": True, "precision": "float64",
            "seed": seed + 100, "numb_fparam": numb_fparam, "numb_aparam": numb_aparam,
            "activation_function": activation, "trainable": True, "rcond": None,
            "atom_ener": list(atom_ener), "use_aparam_as_mask": False,
        },
    }
    if smooth_type_embedding is not None:
        cfg["descriptor"]["smooth_type_embedding"] = smooth_type_embedding
    cfg["descriptor"].update(descriptor_keys or {})
    if tebd:
        cfg["type_embedding"] = {"neuron": [2, 4], "resnet_dt": True, "precision": "float64",
                                 "seed": seed + 200, "activation_function": "tanh",
                                 "trainable": True}
        if use_tebd_bias is not None:
            cfg["type_embedding"]["use_tebd_bias"] = use_tebd_bias
        if use_econf_tebd:
            cfg["type_embedding"]["use_econf_tebd"] = True
            cfg["type_map"] = ["Cu", "Ag", "Au", "Ni", "Pd", "Pt", "Al"][:ntypes]
    return cfg


# the descriptor variants of the batteries: se_e2_a with (True) or without (False) type
# embedding, se_a_ebd_v2 as DeePMD-kit's and with smooth_type_embedding, DPA-1
EBD_V2 = {"ebd_v2": {"descriptor": "se_a_ebd_v2"},
          "ebd_v2_smooth": {"descriptor": "se_a_ebd_v2", "smooth_type_embedding": True},
          # DPA-1: concat, strip (non-smooth), se_atten_v2; two attention layers of width 5
          "atten": {"descriptor": "se_atten", "descriptor_keys": {"attn": 5, "attn_layer": 2}},
          "atten_strip": {"descriptor": "se_atten", "descriptor_keys": {
              "attn": 5, "attn_layer": 2, "tebd_input_mode": "strip"}},
          "atten_v2": {"descriptor": "se_atten_v2",
                       "descriptor_keys": {"attn": 5, "attn_layer": 2}}}


def variant_config(sel, tebd, type_one_side, **cfg):
    """`model_config` of a battery variant: tebd True, False, "ebd_v2" or "ebd_v2_smooth"."""
    if isinstance(tebd, str):
        return model_config(sel, tebd=True, type_one_side=type_one_side, **EBD_V2[tebd], **cfg)
    return model_config(sel, tebd=tebd, type_one_side=type_one_side, **cfg)


def model_settings(cfg):
    """The typed settings (config.objects.ModelConfig) of a `model` section, through the one
    normalisation and conversion a script goes through."""
    script = {"model": cfg, "learning_rate": {"type": "exp"},
              "training": {"training_data": {"systems": ["unused"]}, "numb_steps": 1}}
    return build_config(normalize(script, "model_config")).model


def descriptor_settings(sel, **kwargs):
    """The descriptor settings of `model_config(sel, **kwargs)`."""
    return model_settings(model_config(sel, **kwargs)).descriptor


def fitting_settings(ntypes, **kwargs):
    """The fitting settings of `model_config` with ntypes types and `kwargs`."""
    return model_settings(model_config([1] * ntypes, **kwargs)).fitting


def random_statistics(model, seed=0):
    """davg/dstd per centre type shaped as the statistics are: davg (d_r, 0, 0, 0), dstd
    (s_r, s_a, s_a, s_a), tiled over the slots (so that the energy depends neither on the order of
    equidistant neighbours nor on the orientation); the energy bias fitted to random systems
    (with the model's atom_ener values)."""
    rng = np.random.default_rng(seed)
    ntypes = model.ntypes
    # davg/dstd as the statistics make them (set_davg_zero applied there), from sums of n rows
    # with random means of s and spreads of s and of the angular components
    n = 100.0
    mean = rng.normal(0.0, 0.05, ntypes)
    spread_r, spread_a = rng.uniform(0.5, 1.5, (2, ntypes))
    sums = np.column_stack([mean * n, n * (spread_r ** 2 + mean ** 2), np.zeros(ntypes),
                            n * spread_a ** 2, np.full(ntypes, n)])
    davg, dstd = descriptor_stats_from_sums(sums, model.descriptor.nnei, RCUT,
                                            model.settings.descriptor.set_davg_zero)
    # the bias as the statistics make it: least squares over random systems, atom_ener given
    counts = rng.integers(1, 10, size=(ntypes + 2, ntypes))
    energies = counts @ rng.normal(0.0, 1.0, ntypes)
    bias = energy_bias_lstsq(energies, counts, None, model.fitting.atom_ener)
    fit = model.fitting
    extra = {}
    if fit.numb_fparam:
        extra["fparam_avg"] = rng.normal(size=fit.numb_fparam)
        extra["fparam_istd"] = rng.uniform(0.5, 2.0, fit.numb_fparam)
    if fit.numb_aparam:
        extra["aparam_avg"] = rng.normal(size=fit.numb_aparam)
        extra["aparam_istd"] = rng.uniform(0.5, 2.0, fit.numb_aparam)
    model.set_statistics(ModelStatistics(davg, dstd, bias, **extra))


class Frame:
    """One system (atoms sorted by type) and its model inputs; box None = open boundaries."""

    def __init__(self, coord, atype, box, ntypes):
        self.coord = np.asarray(coord, dtype=np.float64).reshape(-1, 3)
        self.atype = np.asarray(atype, dtype=np.int32)
        self.box = None if box is None else np.asarray(box, dtype=np.float64).reshape(3, 3)
        self.ntypes = ntypes
        self.natoms = natoms_vector(self.atype, ntypes)
        self.mesh = np.zeros(0 if box is None else 6, dtype=np.int32)
        self.fparam = None
        self.aparam = None

    @property
    def nat(self):
        return len(self.atype)

    @classmethod
    def random(cls, seed, kind, ntypes=2, natoms=None):
        coord, atype, box = random_system(np.random.default_rng(seed), kind, rcut=RCUT,
                                          ntypes=ntypes, natoms=natoms)
        return cls(coord, atype, box, ntypes)

    def sel(self, margin=2):
        """Slots per type with room for every neighbour (none dropped when atoms move)."""
        counts = max_neighbors_per_type(self.coord, self.atype, self.box, RCUT)
        counts = list(counts) + [0] * (self.ntypes - len(counts))
        return [int(n) + margin for n in counts]

    def evaluate(self, model, coords=None, boxes=None, fparam=None, aparam=None):
        """The model on a batch of frames of this system: coords [n, nat, 3], boxes [n, 3, 3]
        (default: this frame). Returns the outputs as NumPy arrays."""
        coords = self.coord[None] if coords is None else np.asarray(coords)
        n = coords.shape[0]
        if self.box is None:
            boxes = np.zeros((n, 9))
        else:
            boxes = np.broadcast_to(self.box if boxes is None else boxes, (n, 3, 3))
        fparam = self.fparam if fparam is None else fparam
        aparam = self.aparam if aparam is None else aparam
        extra = {}
        if fparam is not None:
            extra["fparam"] = np.broadcast_to(fparam, (n, fparam.shape[-1]))
        if aparam is not None:
            extra["aparam"] = np.broadcast_to(aparam, (n, aparam.shape[-1]))
        out = model(coords.reshape(n, -1), np.tile(self.atype, (n, 1)), self.natoms,
                    np.reshape(boxes, (n, 9)), self.mesh, **extra)
        return {k: v.numpy() for k, v in out.items()}


def build_model(cfg, stats_seed=0):
    """The model of a `model` section, built, with random statistics."""
    model = EnergyModel(model_settings(cfg))
    model.build()
    random_statistics(model, stats_seed)
    return model


def finite_difference_force(model, frame, h=1e-5):
    """-dE/dr by central differences, all displaced frames in one batch."""
    n = frame.nat
    coords = np.repeat(frame.coord[None], 6 * n, axis=0)
    for i in range(n):
        for d in range(3):
            coords[6 * i + 2 * d, i, d] += h
            coords[6 * i + 2 * d + 1, i, d] -= h
    energy = frame.evaluate(model, coords)["energy"]
    return -((energy[0::2] - energy[1::2]) / (2 * h)).reshape(n, 3)


def finite_difference_virial(model, frame, h=1e-5):
    """V = -(dE/d strain)^T, the strain deforming coordinates and box together."""
    coords, boxes = [], []
    for a in range(3):
        for b in range(3):
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * h
                coords.append(frame.coord @ strain)
                boxes.append(frame.box @ strain)
    energy = frame.evaluate(model, np.array(coords), np.array(boxes))["energy"]
    de = ((energy[0::2] - energy[1::2]) / (2 * h)).reshape(3, 3)
    return -de.T


def relative_error(actual, expected):
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


# -- NumPy evaluation of the nets from their weights ----------------------------------------

NUMPY_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
    "gelu_tf": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
    "none": lambda x: x,
    "None": lambda x: x,
}


def numpy_mlp(mlp, x, rules):
    """Evaluates `mlp` in NumPy with the given per-layer rules ("skip", "concat", None),
    independently of the layer's own rule bookkeeping."""
    act = NUMPY_ACTIVATIONS[mlp.activation if mlp.activation is not None else "none"]
    hidden, final = mlp.layer_variables()
    x = np.asarray(x, dtype=np.float64)
    for rule, (w, b, idt) in zip(rules, hidden):
        h = act(x @ w.numpy() + b.numpy())
        if idt is not None:
            h = h * idt.numpy().reshape(-1)
        x = numpy_residual(rule, x, h)
    if final is not None:
        x = x @ final[0].numpy() + final[1].numpy()
    return x


def numpy_residual(rule, x, h):
    """A layer's output from its input x and branch h by its rule ("skip", "concat", None)."""
    if rule == "skip":
        return x + h
    if rule == "concat":
        return np.concatenate([x, x], axis=-1) + h
    return h
