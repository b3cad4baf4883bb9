"""The energy model of the type-embedding approach: `network` (the one MLP builder),
`type_embedding`, the descriptors (`descriptor`: their protocol and shared parts; `se_e2_a`,
`se_a_ebd_v2`), `fitting` (energy) and `energy_model` (energy, forces and virials)."""
from .descriptor import Descriptor, EnvMatDescriptor
from .energy_model import DESCRIPTORS, EnergyModel
from .fitting import EnergyFitting
from .network import ACTIVATIONS, MLP, activation_fn, count_parameters
from .se_a_ebd_v2 import DescriptorSeAEbdV2
from .se_e2_a import DescriptorSeA
from .type_embedding import TypeEmbedding

__all__ = [
    "ACTIVATIONS",
    "DESCRIPTORS",
    "Descriptor",
    "DescriptorSeA",
    "DescriptorSeAEbdV2",
    "EnergyFitting",
    "EnergyModel",
    "EnvMatDescriptor",
    "MLP",
    "TypeEmbedding",
    "activation_fn",
    "count_parameters",
]
