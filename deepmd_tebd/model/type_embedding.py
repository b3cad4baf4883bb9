"""Type embedding: each atom type t is the output of one embedding net on the one-hot vector of t,
so that the descriptor and fitting nets can share their parameters across types."""
from __future__ import annotations

from typing import Optional, Sequence

import keras
import tensorflow as tf

from ..precision import dtype_of
from .network import MLP

__all__ = ["TypeEmbedding"]


class TypeEmbedding(keras.layers.Layer):
    """One-hot types [.., ntypes] -> MLP(neuron, embedding rule) -> [.., te], te = neuron[-1].

    call(types int [...]) -> [..., te]; `call(tf.range(ntypes))` is the table [ntypes, te]
    (the T x T identity through the net; DeePMD-kit's `t_typeebd`).
    """

    def __init__(
        self,
        ntypes: int,
        neuron: Sequence[int] = (8,),
        activation_function: Optional[str] = "tanh",
        resnet_dt: bool = False,
        precision: str = "default",
        trainable: bool = True,
        seed: Optional[int] = None,
        name: str = "type_embedding",
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        super().__init__(name=name, dtype=dtype_of(precision).name, trainable=trainable, **kwargs)
        self.ntypes = int(ntypes)
        self.neuron = [int(n) for n in neuron]
        self.activation_function = activation_function
        self.resnet_dt = bool(resnet_dt)
        self.precision = precision
        self.seed = seed
        self.net = MLP(self.neuron, activation=activation_function, resnet_dt=resnet_dt,
                       precision=precision, trainable=trainable, seed=seed, kind="embedding",
                       scope="type_embed_net", name="type_embed_net")

    @property
    def dim_out(self) -> int:
        return self.neuron[-1]

    def build(self, input_shape=None):
        self.net.build((None, self.ntypes))

    def call(self, types):
        one_hot = tf.one_hot(tf.cast(types, tf.int32), self.ntypes, dtype=self.compute_dtype)
        return self.net(one_hot)

    def table(self):
        """The embedding of every type, [ntypes, te]."""
        return self(tf.range(self.ntypes))

    def graph_variables(self) -> dict:
        return self.net.graph_variables()

    def get_config(self):
        return {
            "name": self.name,
            "ntypes": self.ntypes,
            "neuron": list(self.neuron),
            "activation_function": self.activation_function,
            "resnet_dt": self.resnet_dt,
            "precision": self.precision,
            "trainable": self.trainable,
            "seed": self.seed,
        }
