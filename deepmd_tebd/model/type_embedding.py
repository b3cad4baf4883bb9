"""Type embedding: each atom type t is the output of one embedding net on the one-hot vector of t,
so that the descriptor and fitting nets can share their parameters across types."""
from __future__ import annotations

import keras
import tensorflow as tf

from ..config.objects import TypeEmbeddingConfig
from ..precision import dtype_of
from .network import MLP

__all__ = ["TypeEmbedding"]


class TypeEmbedding(keras.layers.Layer):
    """One-hot types [.., ntypes] -> MLP(neuron, embedding rule) -> [.., te], te = neuron[-1];
    settings: the `model/type_embedding` section.

    call(types int [...]) -> [..., te]; `call(tf.range(ntypes))` is the table [ntypes, te]
    (the T x T identity through the net; DeePMD-kit's `t_typeebd`).
    """

    def __init__(self, ntypes: int, settings: TypeEmbeddingConfig, name: str = "type_embedding",
                 **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(name=name, dtype=dtype_of(settings.precision).name,
                         trainable=settings.trainable, **kwargs)
        self.ntypes = int(ntypes)
        self.settings = settings
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
        self.net.build((None, self.ntypes))

    def call(self, types):
        one_hot = tf.one_hot(tf.cast(types, tf.int32), self.ntypes, dtype=self.compute_dtype)
        return self.net(one_hot)

    def table(self):
        """The embedding of every type, [ntypes, te]."""
        return self(tf.range(self.ntypes))

    def graph_variables(self) -> dict:
        """Every variable under its DeePMD-kit graph name."""
        return self.net.graph_variables()

    def get_config(self):
        return {"name": self.name, "ntypes": self.ntypes, "settings": self.settings}
