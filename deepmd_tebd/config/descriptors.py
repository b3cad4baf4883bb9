"""The settings of each descriptor type, on one common base.

`DESCRIPTOR_SETTINGS[type].from_section(section)` turns a normalised `model/descriptor` section
into its settings object; the model (model/energy_model.py) picks the descriptor layer from its
own table by the same type. A new descriptor adds one settings class here and one layer there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Optional, Union

__all__ = ["DESCRIPTOR_SETTINGS", "DescriptorConfig", "SeAConfig", "SeAEbdV2Config",
           "int_tuple"]


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

    @classmethod
    def common_settings(cls, section: Mapping) -> dict:
        """The base fields of a normalised descriptor section, as constructor arguments."""
        sel = section["sel"]
        return dict(
            type=section["type"], sel=sel if isinstance(sel, str) else int_tuple(sel),
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
DESCRIPTOR_SETTINGS: dict[str, type] = {"se_e2_a": SeAConfig, "se_a_ebd_v2": SeAEbdV2Config}
