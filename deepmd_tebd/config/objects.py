"""The normalised input script as typed, immutable settings: the one conversion from raw keys.

    config = build_config(normalize(script))      # Config: model, learning_rate, loss, training
    config.model.descriptor.rcut, config.training.numb_steps, config.loss.prefactors["f"], ...

`normalize` has filled every default and made every check, so nothing here has a default or
repeats a validation; downstream code (model, loss, data, trainer, freezer) takes these objects
and never reads a raw key. `Config.script` keeps the normalised dict for out.json and for the
`train_attr/training_script` of checkpoints and frozen graphs; `Config.with_sel` is the one way
settings change after normalisation (sel resolved from the neighbour statistics).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

from .descriptors import (DESCRIPTOR_SETTINGS, DescriptorConfig, SeAConfig, SeAEbdV2Config,
                          int_tuple)
from .v3_keys import warmup_length
from .whole_validation import (EarlyStoppingConfig, WholeValidationConfig,
                               whole_validation_settings)

__all__ = [
    "Config",
    "DataConfig",
    "DESCRIPTOR_SETTINGS",
    "DescriptorConfig",
    "FittingConfig",
    "LearningRateConfig",
    "LossConfig",
    "MixedPrecisionConfig",
    "EarlyStoppingConfig",
    "WholeValidationConfig",
    "ModelConfig",
    "SeAConfig",
    "SeAEbdV2Config",
    "TrainingConfig",
    "TypeEmbeddingConfig",
    "build_config",
    "names_stripped_type_embedding",
    "names_type_embedding",
    "LOSS_TERMS",
]

# loss terms, in DeePMD-kit's lcurve order, and the label each one fits
LOSS_TERMS = (("e", "energy"), ("ae", "atom_ener"), ("f", "force"), ("v", "virial"),
              ("pf", "atom_pref"))


@dataclass(frozen=True)
class TypeEmbeddingConfig:
    """The `model/type_embedding` section: the net mapping one-hot types to vectors."""

    neuron: tuple[int, ...]
    activation_function: str
    resnet_dt: bool
    precision: str
    trainable: bool
    seed: Optional[int]
    use_tebd_bias: bool = True  # absent from a script: DeePMD-kit 2.2's net, with biases
    use_econf_tebd: bool = False  # the net's input: electron configurations, not one-hot

    @property
    def dim_out(self) -> int:
        """Width of a type's embedding vector."""
        return self.neuron[-1]


@dataclass(frozen=True)
class FittingConfig:
    """The `model/fitting_net` section (ener)."""

    neuron: tuple[int, ...]
    activation_function: str
    precision: str
    resnet_dt: bool
    trainable: Union[bool, tuple[bool, ...]]
    rcond: Optional[float]
    seed: Optional[int]
    numb_fparam: int
    numb_aparam: int
    atom_ener: tuple[Optional[float], ...]


@dataclass(frozen=True)
class CompressConfig:
    """The `model/compress` section `dp compress` writes: the frozen model it tabulated, the
    minimum neighbour distance and table_config [extrapolate, stride1, stride2, check_freq]."""

    model_file: str
    min_nbor_dist: Optional[float]
    table_config: tuple[float, float, float, int]


@dataclass(frozen=True)
class ModelConfig:
    """The `model` section: type map (empty when the script gives none), sub-sections and the
    statistics settings."""

    type_map: tuple[str, ...]
    descriptor: DescriptorConfig
    fitting: FittingConfig
    type_embedding: Optional[TypeEmbeddingConfig]
    data_stat_nbatch: int
    data_stat_protect: float
    compress: Optional[CompressConfig] = None
    data_bias_nsample: int = 10  # frames per system of change_bias_after_training

    @property
    def ntypes(self) -> int:
        """Number of atom types: len(type_map), or without a type map len(sel) (DeePMD-kit's
        deepmd/tf/descriptor/se_a.py: DescrptSeA.__init__); sel must then be resolved."""
        if self.type_map:
            return len(self.type_map)
        if not self.descriptor.sel_resolved:
            raise ValueError("without a type_map the number of types is sel's length, and sel "
                             f"{self.descriptor.sel!r} is not resolved yet")
        return len(self.descriptor.sel)

    @property
    def tebd_dim(self) -> int:
        """Width of the type embedding; 0 without type embedding (per-type nets)."""
        return 0 if self.type_embedding is None else self.type_embedding.dim_out


@dataclass(frozen=True)
class LearningRateConfig:
    """The `learning_rate` section (exp)."""

    start_lr: float
    stop_lr: float
    decay_steps: int
    scale_by_worker: str
    # DeePMD-kit 3.x's keys (absent: DeePMD-kit 2.2's schedule)
    decay_rate: Optional[float] = None
    warmup_steps: int = 0
    warmup_ratio: Optional[float] = None
    warmup_start_factor: float = 0.0
    smooth: bool = False

    def warmup(self, numb_steps: int) -> int:
        """The warm-up steps of a run of numb_steps."""
        return warmup_length(self.warmup_steps, self.warmup_ratio, numb_steps)


@dataclass(frozen=True)
class LossConfig:
    """The `loss` section (ener): (start, limit) prefactor per term of LOSS_TERMS."""

    prefactors: Mapping[str, tuple[float, float]]
    relative_f: Optional[float]
    enable_atom_ener_coeff: bool
    generalized_force: tuple[float, float]
    # DeePMD-kit 3.x: Huber instead of squares, with deltas (energy, force, virial); energy
    # and virial squares divided by N^2 instead of N (intensive_ener_virial)
    use_huber: bool = False
    huber_delta: tuple[float, float, float] = (0.01, 0.01, 0.01)
    intensive_ener_virial: bool = False


@dataclass(frozen=True)
class SystemsGlob:
    """`systems` with `rglob_patterns` (DeePMD-kit 3.x): under each root, every directory whose
    path matches one of the patterns (Path.rglob) and that holds type.raw."""

    roots: tuple[str, ...]
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class DataConfig:
    """A `training/training_data` or `training/validation_data` section; numb_btch is the
    number of validation batches per display (1 for training data, where it is unused)."""

    systems: Union[tuple[Any, ...], str, SystemsGlob]
    batch_size: Union[int, tuple[int, ...], str]
    auto_prob: str
    sys_probs: Optional[tuple[float, ...]]
    numb_btch: int


@dataclass(frozen=True)
class MixedPrecisionConfig:
    """The `training/mixed_precision` section: weights and outputs in output_prec, the nets'
    hidden matmuls in compute_prec (DeePMD-kit 2.2, deepmd/tf/utils/network.py)."""

    output_prec: str
    compute_prec: str


@dataclass(frozen=True)
class TrainingConfig:
    """The `training` section."""

    training_data: DataConfig
    validation_data: Optional[DataConfig]
    numb_steps: Optional[int]  # None with numb_epoch, until the data resolve it
    seed: Optional[int]
    disp_file: str
    disp_freq: int
    save_freq: int
    save_ckpt: str
    max_ckpt_keep: int
    disp_training: bool
    time_training: bool
    tensorboard: bool
    tensorboard_log_dir: str
    tensorboard_freq: int
    mixed_precision: Optional[MixedPrecisionConfig] = None
    whole_validation: Optional[WholeValidationConfig] = None
    numb_epoch: Optional[float] = None  # DeePMD-kit 3.x: numb_steps from the training data
    change_bias_after_training: bool = False  # DeePMD-kit 3.x: train/change_bias.py
    stat_file: Optional[str] = None  # DeePMD-kit 3.x: store/stat_file.py


@dataclass(frozen=True)
class Config:
    """The whole script: settings objects and the normalised dict they were built from."""

    model: ModelConfig
    learning_rate: LearningRateConfig
    loss: LossConfig
    training: TrainingConfig
    script: Mapping[str, Any] = dataclasses.field(repr=False, compare=False)
    adam_betas: tuple[float, float] = (0.9, 0.999)  # optimizer/adam_beta1, 2 (DeePMD-kit 3.x)

    def with_numb_steps(self, numb_steps: int) -> "Config":
        """The same settings training numb_steps (resolved from numb_epoch; the script keeps
        numb_epoch, as DeePMD-kit's out.json does)."""
        training = dataclasses.replace(self.training, numb_steps=int(numb_steps))
        return dataclasses.replace(self, training=training)

    def with_sel(self, sel) -> "Config":
        """The same settings with the descriptor's sel resolved (script updated alike)."""
        sel = [int(s) for s in sel]
        script = copy.deepcopy(dict(self.script))
        # one sel block (DPA-1): an integer, as DeePMD-kit writes it
        script["model"]["descriptor"]["sel"] = sel[0] if self.model.descriptor.mixed_types else sel
        model = dataclasses.replace(
            self.model, descriptor=dataclasses.replace(self.model.descriptor, sel=tuple(sel)))
        return dataclasses.replace(self, model=model, script=script)


def _type_embedding(section: Mapping) -> TypeEmbeddingConfig:
    return TypeEmbeddingConfig(
        neuron=int_tuple(section["neuron"]), activation_function=section["activation_function"],
        resnet_dt=section["resnet_dt"], precision=section["precision"],
        trainable=section["trainable"], seed=section["seed"],
        use_tebd_bias=section.get("use_tebd_bias", True),
        use_econf_tebd=section.get("use_econf_tebd", False))


def _descriptor(section: Mapping) -> DescriptorConfig:
    return DESCRIPTOR_SETTINGS[section["type"]].from_section(section)


def _fitting(section: Mapping) -> FittingConfig:
    trainable = section["trainable"]
    return FittingConfig(
        neuron=int_tuple(section["neuron"]), activation_function=section["activation_function"],
        precision=section["precision"], resnet_dt=section["resnet_dt"],
        trainable=tuple(trainable) if isinstance(trainable, list) else trainable,
        rcond=section["rcond"], seed=section.get("seed"), numb_fparam=int(section["numb_fparam"]),
        numb_aparam=int(section["numb_aparam"]),
        atom_ener=tuple(None if e is None else float(e) for e in section["atom_ener"]))


# a descriptor that needs a type embedding (se_a_ebd_v2) without a type_embedding section:
# DeePMD-kit 3.x builds one with the section's defaults (use_tebd_bias false) and no activation
# (deepmd/tf/model/model.py: StandardModel.__init__, `explicit_ntypes`)
_DEFAULT_TYPE_EMBEDDING = TypeEmbeddingConfig(
    neuron=(8,), activation_function="none", resnet_dt=False, precision="default",
    trainable=True, seed=None, use_tebd_bias=False)


def _model(section: Mapping) -> ModelConfig:
    tebd = section.get("type_embedding")  # optional: its presence enables type embedding
    descriptor = _descriptor(section["descriptor"])
    if tebd is not None:
        type_embedding = _type_embedding(tebd)
    elif descriptor.needs_type_embedding:
        type_embedding = _DEFAULT_TYPE_EMBEDDING
    else:
        type_embedding = None
    return ModelConfig(
        type_map=tuple(section.get("type_map", ())), descriptor=descriptor,
        fitting=_fitting(section["fitting_net"]), type_embedding=type_embedding,
        data_stat_nbatch=int(section["data_stat_nbatch"]),
        data_stat_protect=float(section["data_stat_protect"]),
        compress=_compress(section["compress"]) if "compress" in section else None,
        data_bias_nsample=int(section["data_bias_nsample"]))


def _compress(section: Mapping) -> CompressConfig:
    e, s1, s2, f = section["table_config"]
    dist = section.get("min_nbor_dist")
    return CompressConfig(model_file=section["model_file"],
                          min_nbor_dist=None if dist is None else float(dist),
                          table_config=(float(e), float(s1), float(s2), int(f)))


def _learning_rate(section: Mapping) -> LearningRateConfig:
    start_lr = float(section["start_lr"])
    ratio = section.get("stop_lr_ratio")  # normalisation leaves one of stop_lr and the ratio
    stop_lr = start_lr * float(ratio) if ratio is not None else float(section["stop_lr"])
    rate = section.get("decay_rate")
    return LearningRateConfig(start_lr=start_lr, stop_lr=stop_lr,
                              decay_steps=int(section["decay_steps"]),
                              scale_by_worker=section["scale_by_worker"],
                              decay_rate=None if rate is None else float(rate),
                              warmup_steps=int(section.get("warmup_steps", 0)),
                              warmup_ratio=section.get("warmup_ratio"),
                              warmup_start_factor=float(section.get("warmup_start_factor", 0.0)),
                              smooth=bool(section.get("smooth", False)))


def _loss(section: Mapping) -> LossConfig:
    delta = section.get("huber_delta", 0.01)
    return LossConfig(
        prefactors={t: (float(section[f"start_pref_{t}"]), float(section[f"limit_pref_{t}"]))
                    for t, _ in LOSS_TERMS},
        relative_f=section.get("relative_f"),  # optional, no default
        enable_atom_ener_coeff=section["enable_atom_ener_coeff"],
        generalized_force=(float(section["start_pref_gf"]), float(section["limit_pref_gf"])),
        use_huber=bool(section.get("use_huber", False)),
        huber_delta=tuple(float(d) for d in (delta if isinstance(delta, list) else [delta] * 3)),
        intensive_ener_virial=bool(section.get("intensive_ener_virial", False)))


def _data(section: Mapping) -> DataConfig:
    systems, batch_size, probs = section["systems"], section["batch_size"], section["sys_probs"]
    systems = systems if isinstance(systems, str) else tuple(systems)
    if section.get("rglob_patterns"):
        systems = SystemsGlob(roots=(systems,) if isinstance(systems, str) else systems,
                              patterns=tuple(section["rglob_patterns"]))
    return DataConfig(
        systems=systems,
        batch_size=tuple(batch_size) if isinstance(batch_size, list) else batch_size,
        auto_prob=section["auto_prob"],
        sys_probs=None if probs is None else tuple(float(p) for p in probs),
        numb_btch=int(section.get("numb_btch", 1)))  # only validation data has numb_btch


def _training(section: Mapping) -> TrainingConfig:
    valid = section["validation_data"]
    return TrainingConfig(
        training_data=_data(section["training_data"]),
        validation_data=None if valid is None else _data(valid),
        numb_steps=None if section.get("numb_steps") is None else int(section["numb_steps"]),
        numb_epoch=section.get("numb_epoch"), seed=section.get("seed"),
        change_bias_after_training=bool(section.get("change_bias_after_training", False)),
        stat_file=section.get("stat_file"),
        disp_file=section["disp_file"], disp_freq=int(section["disp_freq"]),
        save_freq=int(section["save_freq"]), save_ckpt=section["save_ckpt"],
        max_ckpt_keep=int(section["max_ckpt_keep"]), disp_training=section["disp_training"],
        time_training=section["time_training"], tensorboard=section["tensorboard"],
        tensorboard_log_dir=section["tensorboard_log_dir"],
        tensorboard_freq=int(section["tensorboard_freq"]),
        mixed_precision=_mixed_precision(section.get("mixed_precision")),  # optional sections
        whole_validation=whole_validation_settings(section.get("whole_validation")))


def _mixed_precision(section: Optional[Mapping]) -> Optional[MixedPrecisionConfig]:
    if section is None:
        return None
    return MixedPrecisionConfig(output_prec=section["output_prec"],
                                compute_prec=section["compute_prec"])


def names_type_embedding(script: Mapping) -> bool:
    """Whether a script, normalised or as written, has a `model/type_embedding` section."""
    model = script.get("model")
    return isinstance(model, Mapping) and model.get("type_embedding") is not None


def names_stripped_type_embedding(script: Mapping) -> bool:
    """Whether a script, normalised or as written, has a se_a_ebd_v2 (se_a_tpe_v2) descriptor."""
    model = script.get("model")
    descriptor = model.get("descriptor") if isinstance(model, Mapping) else None
    return isinstance(descriptor, Mapping) and descriptor.get("type") in ("se_a_ebd_v2",
                                                                          "se_a_tpe_v2")


def build_config(script: Mapping) -> Config:
    """The settings of a normalised script (`normalize`'s result); the script is copied."""
    script = copy.deepcopy(dict(script))
    loss = script.get("loss")
    if loss is None:  # no loss section: the energy loss with the schema's defaults
        from .normalize import default_section

        loss = default_section(("loss",), "ener")
    optimizer = script.get("optimizer", {})
    return Config(model=_model(script["model"]),
                  learning_rate=_learning_rate(script["learning_rate"]),
                  loss=_loss(loss), training=_training(script["training"]), script=script,
                  adam_betas=(float(optimizer.get("adam_beta1", 0.9)),
                              float(optimizer.get("adam_beta2", 0.999))))
