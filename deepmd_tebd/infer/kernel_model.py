"""DeepPot on the training step's CPU kernels.

A frozen graph holds TensorFlow's ops only (infer/frozen.py), so that every runtime (DeePMD-kit's
C++ interface, LAMMPS) runs it. The training step computes the same model on its own kernels
(model/kernels.py: the embedding net and its derivative along s~ in one pass, the batched
products of the descriptors), which take much less time on the CPU. For a graph that carries its
training script (ours, and DeePMD-kit's since 2.1.5) and is not compressed, `KernelModel`
rebuilds the model of that script, gives it the graph's weights and statistics, and evaluates it
in one traced function on those kernels. DeepPot checks it against the graph itself on the
first frames it evaluates (`agrees`) and keeps the graph's session for good where the two
differ; a graph whose model cannot be rebuilt is evaluated by its session alone.

    model = KernelModel.of_graph(path, constants)   # or None (the reason is logged)
    values = model(inputs)                          # {graph input name: array} ->
                                                    # {output key: array}
"""
from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from ..model.kernels import training_kernels
from . import node_names as nn
from .frozen import call_flat, model_signature
from .weight_names import graph_script, is_compressed

log = logging.getLogger("deepmd_tebd")

__all__ = ["KernelModel", "agrees"]

# DeepPot's outputs, as the graph's OUTPUT_NODES keys
KEYS = ("energy", "force", "virial", "atom_energy", "atom_virial")


class KernelModel:
    """The model of a frozen graph, rebuilt from its training script with the graph's weights,
    evaluated in one traced function on the training step's kernels."""

    def __init__(self, model):
        self.model = model
        signature = model_signature(model)
        self.input_names = [spec.name for spec in signature]

        @tf.function(input_signature=signature, autograph=False)
        def run(*inputs):
            with training_kernels():
                out = call_flat(model, *inputs)
            return {key: out[key] for key in KEYS}

        self._run = run

    @classmethod
    def of_graph(cls, path, constants: dict) -> "KernelModel | None":
        """The model of the graph at `path` ({name: value} of its constants, `graph_constants`),
        or None where it cannot be rebuilt: no training script, a compressed graph, a script
        this package does not read, or weights that do not fit it (logged at debug level)."""
        # on use: a graph that its session evaluates needs neither the config nor the model
        from ..config import build_config, normalize
        from ..model import EnergyModel
        from ..store.restore import assign_constants

        def refuse(reason: str) -> None:
            log.debug(f"{path}: evaluated by the graph's own ops: {reason}")

        if is_compressed(constants):
            return refuse("a compressed model (its tables are not the training kernels')")
        try:
            script = graph_script(constants)
            if script is None:
                return refuse("it has no training script")
            config = build_config(normalize(script, f"{path}: {nn.TRAIN_ATTR_TRAINING_SCRIPT}"))
            model = EnergyModel(config.model, mixed_precision=config.training.mixed_precision)
            model.build()
            assign_constants(model.graph_variables(), constants, path)
        except Exception as err:  # any script or weight the model cannot take: the graph runs
            return refuse(f"its model cannot be rebuilt ({type(err).__name__}: {err})")
        return cls(model)

    def __call__(self, inputs: dict) -> dict:
        """{output key: array} of `KEYS` for {graph input name: array} (node_names.INPUTS and the
        fparam/aparam inputs the model has)."""
        values = self._run(*(inputs[name] for name in self.input_names))
        return {key: value.numpy() for key, value in values.items()}


def agrees(ours: dict, graph: dict, rtol: float = 1e-10) -> bool:
    """Whether every output of `ours` equals the graph's to rtol of its largest magnitude."""
    for key, value in graph.items():
        scale = max(1.0, float(np.max(np.abs(value), initial=0.0)))
        if np.shape(ours[key]) != np.shape(value) or not np.all(
                np.abs(ours[key] - value) <= rtol * scale):
            return False
    return True
