"""The energy model of the type-embedding approach: `network` (the one MLP builder),
`type_embedding`, `descriptor` (se_e2_a), `fitting` (energy) and `energy_model` (energy, forces
and virials)."""
from .descriptor import DescriptorSeA
from .energy_model import EnergyModel
from .fitting import EnergyFitting
from .network import ACTIVATIONS, MLP, activation_fn, count_parameters
from .type_embedding import TypeEmbedding

__all__ = [
    "ACTIVATIONS",
    "DescriptorSeA",
    "EnergyFitting",
    "EnergyModel",
    "MLP",
    "TypeEmbedding",
    "activation_fn",
    "count_parameters",
]
