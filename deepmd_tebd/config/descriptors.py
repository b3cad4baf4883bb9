"""The settings of each descriptor type, on one common base.

`DESCRIPTOR_SETTINGS[type].from_section(section)` turns a normalised `model/descriptor` section
into its settings object; the model (model/energy_model.py) picks the descriptor layer from its
own table by the same type. A new descriptor adds one settings class here and one layer there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Optional, Union

__all__ = ["DESCRIPTOR_SETTINGS", "DescriptorConfig", "SeAConfig", "SeAEbdV2Config",
           "SeAttenConfig", "int_tuple", "one_sel_block"]


def int_tuple(values) -> tuple[int, ...]:
    """The values as a tuple of ints."""
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class DescriptorConfig:
    """The settings every descriptor has (the common base of the `model/descriptor` sections);
    sel is a tuple once resolved, else "auto...". Each descriptor type has its own subclass,
    found by `DESCRIPTOR_SETTINGS[type]`, that adds its keys and its output width."""

    type: str
    sel: Union[tuple[int, ...], str]
    rcut: float
    rcut_smth: float
    neuron: tuple[int, ...]
    activation_function: str
    resnet_dt: bool
    precision: str
    trainable: bool
    seed: Optional[int]
    exclude_types: tuple[tuple[int, int], ...]
    set_davg_zero: bool
    # rcut and rcut_smth as the script writes them: DeePMD-kit's statistics file hashes them so
    # (store/stat_file.py; 6 and 6.0 name different statistics)
    given_cutoffs: tuple[Union[int, float], Union[int, float]]

    # whether the descriptor needs a type embedding even when the script gives none (then one
    # is built with the section's defaults and no activation, as DeePMD-kit does)
    needs_type_embedding: ClassVar[bool] = False
    # whether one sel block holds the neighbours of every type (ProdEnvMatAMix)
    mixed_types: ClassVar[bool] = False

    @classmethod
    def common_settings(cls, section: Mapping) -> dict:
        """The base fields of a normalised descriptor section, as constructor arguments."""
        sel = section["sel"]
        return dict(
            type=section["type"],
            sel=sel if isinstance(sel, str) else (int(sel),) if isinstance(sel, int) else
            int_tuple(sel),
            rcut=float(section["rcut"]), rcut_smth=float(section["rcut_smth"]),
            neuron=int_tuple(section["neuron"]), activation_function=section["activation_function"],
            resnet_dt=section["resnet_dt"], precision=section["precision"],
            trainable=section["trainable"], seed=section.get("seed"),  # optional, no default
            exclude_types=tuple((int(a), int(b)) for a, b in section["exclude_types"]),
            set_davg_zero=section["set_davg_zero"],
            given_cutoffs=(section["rcut"], section["rcut_smth"]))

    @classmethod
    def from_section(cls, section: Mapping) -> "DescriptorConfig":
        """The settings of a normalised descriptor section of this type."""
        return cls(**cls.common_settings(section))

    @property
    def stripped_type_embedding(self) -> bool:
        """Whether the type embedding enters through its own net (se_a_ebd_v2), not the input."""
        return False

    @property
    def sel_resolved(self) -> bool:
        """Whether sel is a list of numbers (not "auto" waiting for the neighbour statistics)."""
        return not isinstance(self.sel, str)

    @property
    def nnei(self) -> int:
        """Neighbour slots per atom, sum(sel)."""
        return sum(self.sel)

    @property
    def dim_out(self) -> int:
        """Width of the descriptor."""
        raise NotImplementedError(f"descriptor {self.type!r} does not give its output width")

    def warnings(self) -> list[str]:
        """What a user should hear about these settings before training (none by default)."""
        return []


@dataclass(frozen=True)
class SeAConfig(DescriptorConfig):
    """The se_e2_a section: the embedding matrix's axis_neuron and type_one_side."""

    axis_neuron: int
    type_one_side: bool

    @classmethod
    def from_section(cls, section: Mapping) -> "SeAConfig":
        """The settings of a normalised se_e2_a section."""
        return cls(**cls.common_settings(section), axis_neuron=int(section["axis_neuron"]),
                   type_one_side=section["type_one_side"])

    @property
    def dim_out(self) -> int:
        """Width of the descriptor, M1 * M2."""
        return self.neuron[-1] * self.axis_neuron


@dataclass(frozen=True)
class SeAEbdV2Config(SeAConfig):
    """The se_a_ebd_v2 section (stripped type embedding): se_e2_a's keys and this package's
    smooth_type_embedding."""

    smooth_type_embedding: bool
    needs_type_embedding: ClassVar[bool] = True

    @classmethod
    def from_section(cls, section: Mapping) -> "SeAEbdV2Config":
        """The settings of a normalised se_a_ebd_v2 section; smooth_type_embedding, this
        package's extension, is false when absent (it is never written by default)."""
        return cls(**cls.common_settings(section), axis_neuron=int(section["axis_neuron"]),
                   type_one_side=section["type_one_side"],
                   smooth_type_embedding=bool(section.get("smooth_type_embedding", False)))

    @property
    def stripped_type_embedding(self) -> bool:
        """Always: the type embedding enters through the type net."""
        return True

    def warnings(self) -> list[str]:
        """DeePMD-kit's model with a non-zero davg is discontinuous at the cutoff: an empty slot
        takes the zero type row, a neighbour at rcut its own type's, with the same
        environment-matrix row (-davg/dstd), so the energy jumps when an atom crosses rcut
        (deepmd/tf/descriptor/se_a.py, tebd_input_mode "strip")."""
        if self.smooth_type_embedding or self.set_davg_zero:
            return []
        return ["se_a_ebd_v2 without smooth_type_embedding and with set_davg_zero false "
                "(DeePMD-kit's model) is discontinuous at the cutoff: the energy jumps when an "
                "atom crosses rcut, which spoils energy conservation in MD. Set "
                "model/descriptor/smooth_type_embedding to true (an extension of deepmd_tebd) "
                "or set_davg_zero to true for a continuous model."]


# the settings class of each (normalised) descriptor type
@dataclass(frozen=True)
class SeAttenConfig(DescriptorConfig):
    """The se_atten (DPA-1) and se_atten_v2 sections: one sel block for all types (sel a tuple
    of one number once resolved), the type embedding in the embedding net (tebd_input_mode
    concat, or strip: a net of its own), attention layers (attn, attn_layer, attn_dotr,
    attn_mask, trainable_ln, ln_eps) and the smooth attention (`smooth`; se_atten_v2: strip and
    smooth)."""

    axis_neuron: int
    type_one_side: bool
    attn: int
    attn_layer: int
    attn_dotr: bool
    attn_mask: bool
    tebd_input_mode: str
    smooth: bool
    trainable_ln: bool
    ln_eps: float
    given_sel_list: tuple[int, ...] = ()  # sel as a list in the script (summed)
    needs_type_embedding: ClassVar[bool] = True
    mixed_types: ClassVar[bool] = True  # one sel block: ProdEnvMatAMix

    @classmethod
    def from_section(cls, section: Mapping) -> "SeAttenConfig":
        """The settings of a normalised se_atten or se_atten_v2 section (a list sel is summed,
        as DeePMD-kit's class does)."""
        common = cls.common_settings(section)
        listed = tuple(section["sel"]) if isinstance(section["sel"], list) else ()
        if not isinstance(common["sel"], str):
            common["sel"] = (sum(common["sel"]),)
        v2 = section["type"] == "se_atten_v2"
        mode = "strip" if v2 else section["tebd_input_mode"]
        if not v2 and section.get("stripped_type_embedding") is not None:
            mode = "strip" if section["stripped_type_embedding"] else "concat"
        ln_eps = section["ln_eps"]
        return cls(**common, axis_neuron=int(section["axis_neuron"]),
                   type_one_side=section["type_one_side"], attn=int(section["attn"]),
                   attn_layer=int(section["attn_layer"]), attn_dotr=section["attn_dotr"],
                   attn_mask=section["attn_mask"], tebd_input_mode=mode,
                   smooth=v2 or bool(section["smooth_type_embedding"]),
                   trainable_ln=section["trainable_ln"],
                   ln_eps=1e-3 if ln_eps is None else float(ln_eps), given_sel_list=listed)

    @property
    def stripped_type_embedding(self) -> bool:
        """Whether the type embedding has a net of its own (strip)."""
        return self.tebd_input_mode == "strip"

    @property
    def dim_out(self) -> int:
        """Width of the descriptor, M1 * M2."""
        return self.neuron[-1] * self.axis_neuron

    def warnings(self) -> list[str]:
        """DeePMD-kit's own warnings: the non-smooth attention is discontinuous at the cut-off
        (its issue 2811), and so is the type embedding with a non-zero davg unless strip and
        smooth (PR 2350)."""
        out = []
        if len(self.given_sel_list) > 1:
            out.append(f"{self.type}: sel {list(self.given_sel_list)} is summed to "
                       f"{sum(self.given_sel_list)} slots for all types (DeePMD-kit's descriptor "
                       "sums it too, but DeePMD-kit 3.2's dp train keeps only the first entry, "
                       f"{self.given_sel_list[0]}, when it runs its neighbour statistics): give "
                       "model/descriptor/sel as one integer")
        if not self.smooth:
            out.append(f"{self.type} without smooth_type_embedding is discontinuous at the "
                       "cut-off (its attention renormalises when a neighbour enters or leaves), "
                       "which spoils energy conservation in MD: use se_atten_v2, or set "
                       "model/descriptor/smooth_type_embedding to true")
        if not self.set_davg_zero and not (self.smooth and self.stripped_type_embedding):
            out.append(f"{self.type} with set_davg_zero false is discontinuous at the cut-off "
                       "unless tebd_input_mode is strip and the attention smooth: set "
                       "model/descriptor/set_davg_zero to true")
        return out


DESCRIPTOR_SETTINGS: dict[str, type] = {"se_e2_a": SeAConfig, "se_a_ebd_v2": SeAEbdV2Config,
                                        "se_atten": SeAttenConfig, "se_atten_v2": SeAttenConfig}


def one_sel_block(descriptor_type) -> bool:
    """Whether the (normalised) descriptor type keeps one sel block for every type (DPA-1)."""
    return isinstance(descriptor_type, str) and getattr(
        DESCRIPTOR_SETTINGS.get(descriptor_type), "mixed_types", False)
