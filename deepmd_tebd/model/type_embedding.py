"""Type embedding: each atom type t is the output of one embedding net on the one-hot vector of t
(or, with use_econf_tebd, on its element's electron configuration: electron_configuration.py),
so that the descriptor and fitting nets can share their parameters across types."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..config.objects import TypeEmbeddingConfig
from ..precision import dtype_of
from ..electron_configuration import econf_matrix
from .network import MLP

__all__ = ["TypeEmbedding"]


class TypeEmbedding(keras.layers.Layer):
    """One-hot types [.., ntypes] -> MLP(neuron, embedding rule) -> [.., te], te = neuron[-1];
    settings: the `model/type_embedding` section.

    call(types int [...]) -> [..., te]; `call(tf.range(ntypes))` is the table [ntypes, te]
    (the T x T identity through the net; DeePMD-kit's `t_typeebd`).
    """

    def __init__(self, ntypes: int, settings: TypeEmbeddingConfig, name: str = "type_embedding",
                 type_map=(), **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(name=name, dtype=dtype_of(settings.precision).name,
                         trainable=settings.trainable, **kwargs)
        self.ntypes = int(ntypes)
        self.settings = settings
        self.type_map = list(type_map)
        # the net's input of each type: its one-hot vector, or its element's configuration
        self.inputs = tf.constant(econf_matrix(self.type_map) if settings.use_econf_tebd
                                  else np.eye(self.ntypes), dtype=self.dtype)
        self.net = MLP(settings.neuron, activation=settings.activation_function,
                       resnet_dt=settings.resnet_dt, precision=settings.precision,
                       trainable=settings.trainable, seed=settings.seed, kind="embedding",
                       scope="type_embed_net", name="type_embed_net",
                       use_bias=settings.use_tebd_bias)

    @property
    def dim_out(self) -> int:
        """Width of a type's embedding vector."""
        return self.settings.dim_out

    def build(self, input_shape=None):
        self.net.build((None, int(self.inputs.shape[-1])))

    def call(self, types):
        inputs = tf.gather(tf.cast(self.inputs, self.compute_dtype), tf.cast(types, tf.int32))
        return self.net(inputs)

    def table(self):
        """The embedding of every type, [ntypes, te]."""
        return self(tf.range(self.ntypes))

    def graph_variables(self) -> dict:
        """Every variable under its DeePMD-kit graph name."""
        return self.net.graph_variables()

    def get_config(self):
        return {"name": self.name, "ntypes": self.ntypes, "settings": self.settings,
                "type_map": self.type_map}
