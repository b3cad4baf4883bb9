"""The gated self-attention of DPA-1 (DeePMD-kit's deepmd/tf/descriptor/se_atten.py:
`_attention_layers`, `_scaled_dot_attn`), over the neighbours of each atom.

One layer, on the neighbours' embeddings G [n, S, M1] (S slots per atom):

    Q, K, V = nrm(G Wq + bq), nrm(G Wk + bk), nrm(G Wv + bv)      nrm: L2 over the last axis
    A = Q K^T                                                      [n, S, S], no 1/sqrt(d)
    smooth:      P = softmax((A + 20) w_k w_j - 20) w_k w_j        w: the slots' switch
    not smooth:  P = softmax(A m_k - 2^33 (1 - m_k)) m_j           m: 1 on occupied slots
    dotr:        P = P * (r^_j . r^_k)                             r^: nrm(R~[..., 1:4])
    attn_mask:   P = P * (1 - I)

The factors around the softmax depend on the slots alone: `attention_gates` makes them once for
all layers, as P = softmax(A * scale + shift) * post. Slots empty for every atom (past the
most neighbours any atom has) may be left out: as keys their P is 0 (post), and only their
share of the softmax's sums remains, exp(-20) each when smooth (one more key, `Gates.absent`),
exactly 0 when not (exp(-2^33)); as queries their P rows are 0 (see se_atten.py).
    G = LN(G + (P V) Wo + bo)                                      post-LN residual,
                                               LN(x) = (x - mean) rsqrt(var + ln_eps) gamma + beta

Variables `attention_layer_<l>/c_query|c_key|c_value|c_out/{matrix,bias}` and
`attention_layer_<l>/layer_normalization/{gamma,beta}`; seeds (DeePMD-kit's order, starting where
the descriptor's embedding nets stopped): c_query c, c_key c + 1, c_value c + 2, c_out c + 3, the
layer normalisation c + 4 (unused: ones and zeros); each projection draws W with its seed and b
with seed + 1 (so the seeds repeat across projections, as in DeePMD-kit).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import keras
import tensorflow as tf

from ..precision import dtype_of
from .kernels import batch_matmul, l2_normalize, layer_norm, matmul
from .network import normal_initializer

__all__ = ["AttentionLayer", "Gates", "angular_gate", "attention_gates"]

SMOOTH_SHIFT = 20.0  # DeePMD-kit's smth_attn_w_shift
NEGATIVE = -float(2 << 32)  # DeePMD-kit's negative_mask on empty keys


def angular_gate(rmat):
    """r^_j . r^_k [n, S, S] of the slots' directions r^ = nrm(R~[..., 1:4]) of rmat [n, S, 4]
    (attn_dotr: every layer's P is multiplied by it)."""
    r_hat = l2_normalize(rmat[..., 1:])
    return batch_matmul(r_hat, r_hat, adjoint_b=True)


class Gates(NamedTuple):
    """Every layer's P = softmax(A * scale + shift) * post: scale, shift and post [n, S, S];
    absent: None, or the logit of one more key that stands for the slots left out of the
    attention (their count's log added to their common logit), whose P is then dropped."""
    scale: tf.Tensor
    shift: tf.Tensor
    post: tf.Tensor
    absent: Optional[tf.Tensor] = None


def attention_gates(weight, smooth: bool, angular=None, attn_mask: bool = False,
                    absent=None) -> Gates:
    """The `Gates` of every layer from the slots' weights [n, S] (smooth: the switch w; not
    smooth: the occupancy m), the angular gate [n, S, S] (attn_dotr) or None, and attn_mask:
        smooth:      scale = w_j w_k, shift = 20 (w_j w_k - 1), post = w_j w_k
        not smooth:  scale = m_k,     shift = -2^33 (1 - m_k),  post = m_j
    post times r^_j . r^_k (attn_dotr) and (1 - I) (attn_mask). absent: None, or the number
    (int32 scalar) of slots empty for every atom that the caller left out after the S: their
    keys' logit is -20 (smooth: w 0) or -2^33 (whose exp is 0: nothing to add)."""
    w_key, w_query = weight[:, None, :], weight[:, :, None]
    if smooth:
        scale = w_query * w_key
        shift, post = SMOOTH_SHIFT * (scale - 1.0), scale
    else:
        scale, shift, post = w_key, NEGATIVE * (1.0 - w_key), w_query
    if angular is not None:
        post = post * angular
    if attn_mask:
        post = post * (1.0 - tf.eye(tf.shape(weight)[-1], dtype=weight.dtype))
    logit = None
    if smooth and absent is not None:  # log(count) - 20; no slot left out: a zero exp
        count = tf.cast(absent, weight.dtype)
        logit = tf.where(absent > 0, tf.math.log(tf.maximum(count, 1.0)) - SMOOTH_SHIFT,
                         tf.constant(NEGATIVE, weight.dtype))
    return Gates(scale, shift, post, logit)


class AttentionLayer(keras.layers.Layer):
    """One attention layer of width `attn` over embeddings of width `width`; seed: c above
    (None: random); trainable / trainable_ln: the projections' and the normalisation's
    trainability; ln_eps; precision: the descriptor's filter precision. The factors around the
    softmax come from the caller (`__call__(g, gates)`, `attention_gates`)."""

    def __init__(self, width: int, attn: int, index: int, seed: Optional[int],
                 precision: str = "default", trainable: bool = True, trainable_ln: bool = True,
                 ln_eps: float = 1e-3, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype=dtype_of(precision).name, name=f"attention_layer_{index}",
                         **kwargs)
        self.width, self.attn, self.index = int(width), int(attn), int(index)
        self.seed = seed
        self.projection_trainable = bool(trainable)
        self.trainable_ln = bool(trainable_ln)
        self.ln_eps = float(ln_eps)
        self.precision = precision

    def _projection(self, name: str, n_in: int, n_out: int, seed: Optional[int]):
        w = self.add_weight(name=f"{name}_matrix", shape=(n_in, n_out),
                            trainable=self.projection_trainable,
                            initializer=normal_initializer(0.0, 1.0 / math.sqrt(n_in + n_out),
                                                           seed))
        b = self.add_weight(name=f"{name}_bias", shape=(n_out,),
                            trainable=self.projection_trainable,
                            initializer=normal_initializer(0.0, 1.0,
                                                           None if seed is None else seed + 1))
        return w, b

    def build(self, input_shape=None):
        seed = (lambda k: None) if self.seed is None else (lambda k: int(self.seed) + k)
        self.query = self._projection("c_query", self.width, self.attn, seed(0))
        self.key = self._projection("c_key", self.width, self.attn, seed(1))
        self.value = self._projection("c_value", self.width, self.attn, seed(2))
        self.out = self._projection("c_out", self.attn, self.width, seed(3))
        self.gamma = self.add_weight(name="gamma", shape=(self.width,), initializer="ones",
                                     trainable=self.trainable_ln)
        self.beta = self.add_weight(name="beta", shape=(self.width,), initializer="zeros",
                                    trainable=self.trainable_ln)

    def graph_variables(self) -> dict:
        """The variables under DeePMD-kit's graph names."""
        scope = f"attention_layer_{self.index}"
        names = {}
        for part, (w, b) in (("c_query", self.query), ("c_key", self.key),
                             ("c_value", self.value), ("c_out", self.out)):
            names[f"{scope}/{part}/matrix"] = w
            names[f"{scope}/{part}/bias"] = b
        names[f"{scope}/layer_normalization/gamma"] = self.gamma
        names[f"{scope}/layer_normalization/beta"] = self.beta
        return names

    def call(self, g, gates):
        """g [n, S, M1] -> [n, S, M1]. gates: `attention_gates`'s."""
        shape = tf.shape(g)

        def project(x, wb):  # on the rows [n*S, width], as DeePMD-kit's one_layer
            rows = tf.reshape(x, [-1, x.shape[-1]])
            y = tf.nn.bias_add(matmul(rows, tf.cast(wb[0], x.dtype)), tf.cast(wb[1], x.dtype))
            return tf.reshape(y, tf.concat([shape[:2], [wb[0].shape[-1]]], 0))

        q = l2_normalize(project(g, self.query))
        k = l2_normalize(project(g, self.key))
        v = l2_normalize(project(g, self.value))
        logits = batch_matmul(q, k, adjoint_b=True) * gates.scale + gates.shift
        if gates.absent is None:
            p = tf.nn.softmax(logits, axis=-1)
        else:  # one more key for the slots left out, its P then dropped (Slice: gradient Pad)
            lead = tf.shape(logits)
            column = tf.broadcast_to(tf.cast(gates.absent, logits.dtype),
                                     tf.concat([lead[:-1], [1]], axis=0))
            p = tf.slice(tf.nn.softmax(tf.concat([logits, column], axis=-1), axis=-1),
                         [0, 0, 0], lead)
        p = p * gates.post
        x = g + project(batch_matmul(p, v), self.out)
        return layer_norm(x, tf.cast(self.gamma, x.dtype), tf.cast(self.beta, x.dtype),
                          self.ln_eps)

    def get_config(self):
        return {"width": self.width, "attn": self.attn, "index": self.index, "seed": self.seed,
                "precision": self.precision, "trainable": self.projection_trainable,
                "trainable_ln": self.trainable_ln, "ln_eps": self.ln_eps}
