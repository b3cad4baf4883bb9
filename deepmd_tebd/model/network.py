"""The one dense-stack builder: every net of the model (type embedding, descriptor embedding,
fitting) is an `MLP`.

Layer rule (hidden layer from width n to width m, ``h = act(x W + b)``):

* ``kind="embedding"`` (type embedding and descriptor embedding nets):
  ``x := x + h`` if m == n, ``x := concat(x, x) + h`` if m == 2n, else ``x := h``;
* ``kind="fitting"`` (hidden layers ii = 0, 1, ...): ``x := x + h`` if ii >= 1 and m equals the
  previous width, else ``x := h`` (no concat rule).

With ``resnet_dt`` the residual branch is scaled by a timestep ``idt``: ``x := x + h * idt``. A
timestep variable exists only on layers that take a residual branch (on the others it would have
no effect). An optional final linear layer (``final_width``, no activation) closes the stack: the
fitting net's atomic-energy output of width 1.

Initialisation (op-level seeds, see `normal_initializer`; ``seed=None`` draws from TensorFlow's global
generator):

* W ~ N(0, 1/sqrt(n + m)), b ~ N(0, 1);
* idt ~ N(1, 0.001) [1, m] for embedding nets, N(0.1, 0.001) [m] for fitting nets;
* embedding layer k (1-based): seeds of W, b, idt are seed + 3k, seed + 3k + 1, seed + 3k + 2;
* fitting layer ii (0-based; the final layer counts as the last one): seed + 3ii, + 1, + 2.

Mixed precision (``compute_precision``; DeePMD-kit 2.2, deepmd/tf/utils/network.py
``embedding_net`` and ``one_layer``): the weights stay in ``precision`` and are cast for the
matmuls. An embedding net runs all its layers, residuals included, in compute_precision and casts
its output back; a fitting net casts each hidden layer's input and weights to compute_precision
and its output back, so its residual sums and the final layer stay in ``precision``.

Every variable is held by an attribute of its own (``matrix_1``, ``bias_1`` ...), so that
``tf.train.Checkpoint`` finds it.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import keras
import tensorflow as tf
from tensorflow.python.framework import random_seed

from ..precision import dtype_of
from . import kernels

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "activation_fn",
    "count_parameters",
    "embedding_net_rand_seed_shift",
    "normal_initializer",
    "resnet_rules",
]


def _gelu_tanh(x):
    """GELU with the tanh approximation, as DeePMD-kit's GeluCustom op computes it."""
    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def _identity(x):
    return x


ACTIVATIONS: dict[str, Callable] = {
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "softplus": tf.nn.softplus,
    "sigmoid": tf.sigmoid,
    "tanh": tf.tanh,
    "gelu": _gelu_tanh,
    "gelu_tf": lambda x: tf.nn.gelu(x, approximate=True),
    "none": _identity,
    "None": _identity,
}


def activation_fn(name: Optional[str]) -> Callable:
    """The activation function of a config name; None means the identity."""
    if name is None:
        return _identity
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"{name!r} is not a valid activation function; valid: {', '.join(ACTIVATIONS)}"
        ) from None


def resnet_rules(kind: str, in_width: int, widths: Sequence[int]) -> list[Optional[str]]:
    """Per hidden layer, how its output combines with its input: "skip" (x + h), "concat"
    (concat(x, x) + h) or None (h alone)."""
    rules = []
    prev = in_width
    for ii, width in enumerate(widths):
        if kind == "embedding":
            rule = "skip" if width == prev else "concat" if width == 2 * prev else None
        elif kind == "fitting":
            rule = "skip" if ii >= 1 and width == prev else None
        else:
            raise ValueError(f"unknown net kind {kind!r}; valid: 'embedding', 'fitting'")
        rules.append(rule)
        prev = width
    return rules


def embedding_net_rand_seed_shift(widths: Sequence[int]) -> int:
    """How far the seed of the next embedding net moves after one is built."""
    return 3 * (len(widths) + 1)


def count_parameters(variables) -> int:
    """Total number of scalars in a list of variables."""
    return int(sum(math.prod(v.shape) for v in variables))


def normal_initializer(mean: float, stddev: float, seed: Optional[int]):
    """A normal initializer. An integer seed makes it TensorFlow's op-seeded draw as a graph
    that sets no graph-level seed runs it: the first output of RandomStandardNormal with the
    seeds (tf's default graph seed, seed), times stddev plus mean. DeePMD-kit's TensorFlow
    models draw their weights so, hence the same seed gives the same initial weights.

    That kernel's stream is Philox keyed by the first seed, its counter starting at (0, second
    seed): the stateless draw with that key and counter gives the same numbers without building
    a graph and a session per variable."""

    def init(shape, dtype=None):
        if seed is None:
            return tf.random.normal(shape, mean=mean, stddev=stddev, dtype=dtype)
        with tf.Graph().as_default():  # the seeds a fresh graph's op would get
            graph_seed, op_seed = random_seed.get_seed(int(seed))
        draw = tf.raw_ops.StatelessRandomNormalV2(
            shape=shape, key=tf.constant([graph_seed], tf.uint64),
            counter=tf.constant([0, op_seed], tf.uint64), alg=1, dtype=dtype)  # 1: Philox
        return draw * tf.constant(stddev, dtype) + tf.constant(mean, dtype)

    return init


def _matmul(x, w):
    """x w; in float16 as a batch of one, which grappler's remapper does not fuse with the bias
    add: TensorFlow's CPU _FusedMatMul kernel for float16 runs about 1000x slower than MatMul."""
    if x.dtype != tf.float16:
        return kernels.matmul(x, w)
    return tf.matmul(x[None], w[None])[0]


class MLP(keras.layers.Layer):
    """A stack of dense layers with the resnet rule of its `kind`.

    widths: output width of each hidden layer; the input width comes from `build`.
    activation: a name of `ACTIVATIONS` (or None).
    resnet_dt: scale residual branches by a trainable timestep.
    precision: a config precision name (`deepmd_tebd.precision`); weights and compute dtype.
    trainable: a bool, or one bool per layer (hidden layers then the final one).
    seed: int or None (random).
    kind: "embedding" or "fitting".
    final_width: width of a final linear layer (no activation, no residual), or None.
    scope, suffix: the DeePMD-kit graph names of the variables (`graph_variables`).
    compute_precision: a precision name for the hidden layers' matmuls (mixed precision; the
    weights and the output keep `precision`), or None.
    use_bias: whether the hidden layers have biases (DeePMD-kit 3.x's type-embedding net has
    none unless `use_tebd_bias`).

    call(x [..., n]) -> [..., widths[-1]] (or [..., final_width]).
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation: Optional[str] = "tanh",
        resnet_dt: bool = False,
        precision: str = "default",
        trainable: Union[bool, Sequence[bool]] = True,
        seed: Optional[int] = None,
        kind: str = "embedding",
        final_width: Optional[int] = None,
        scope: str = "",
        suffix: str = "",
        compute_precision: Optional[str] = None,
        use_bias: bool = True,
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        if kind not in ("embedding", "fitting"):
            raise ValueError(f"unknown net kind {kind!r}; valid: 'embedding', 'fitting'")
        widths = [int(w) for w in widths]
        nlayers = len(widths) + (final_width is not None)
        if isinstance(trainable, (list, tuple)):
            if len(trainable) != nlayers:
                raise ValueError(f"trainable has {len(trainable)} entries, but the net has "
                                 f"{nlayers} layers")
            layer_trainable = [bool(t) for t in trainable]
        else:
            layer_trainable = [bool(trainable)] * nlayers
        super().__init__(dtype=dtype_of(precision).name, trainable=any(layer_trainable) or
                         nlayers == 0, **kwargs)
        self.widths = widths
        self.activation = activation
        self._act = activation_fn(activation)
        self.resnet_dt = bool(resnet_dt)
        self.precision = precision
        self.layer_trainable = tuple(layer_trainable)
        self._trainable_arg = list(trainable) if isinstance(trainable, (list, tuple)) else bool(
            trainable)
        self.seed = seed
        self.kind = kind
        self.final_width = None if final_width is None else int(final_width)
        self.scope = scope
        self.suffix = suffix
        self.compute_precision = compute_precision
        self.use_bias = bool(use_bias)
        self.rules: list[Optional[str]] = []
        self.in_width: Optional[int] = None

    # -- weights ---------------------------------------------------------------------------

    def _seed(self, layer: int, offset: int) -> Optional[int]:
        if self.seed is None:
            return None
        # embedding layers count from 1, fitting layers from 0
        k = layer + 1 if self.kind == "embedding" else layer
        return int(self.seed) + 3 * k + offset

    def build(self, input_shape):
        in_width = input_shape[-1]
        if in_width is None:
            raise ValueError(f"{self.name}: the last dimension of the input must be known")
        self.in_width = int(in_width)
        self.rules = resnet_rules(self.kind, self.in_width, self.widths)
        idt_mean = 1.0 if self.kind == "embedding" else 0.1
        prev = self.in_width
        for ii, width in enumerate(self.widths):
            k = ii + 1
            trainable = self.layer_trainable[ii]
            setattr(self, f"matrix_{k}", self.add_weight(
                name=f"matrix_{k}", shape=(prev, width), trainable=trainable,
                initializer=normal_initializer(0.0, 1.0 / math.sqrt(prev + width),
                                               self._seed(ii, 0))))
            setattr(self, f"bias_{k}", None if not self.use_bias else self.add_weight(
                name=f"bias_{k}", shape=(width,), trainable=trainable,
                initializer=normal_initializer(0.0, 1.0, self._seed(ii, 1))))
            if self.resnet_dt and self.rules[ii] is not None:
                shape = (1, width) if self.kind == "embedding" else (width,)
                setattr(self, f"idt_{k}", self.add_weight(
                    name=f"idt_{k}", shape=shape, trainable=trainable,
                    initializer=normal_initializer(idt_mean, 0.001, self._seed(ii, 2))))
            prev = width
        if self.final_width is not None:
            ii = len(self.widths)
            trainable = self.layer_trainable[ii]
            self.final_matrix = self.add_weight(
                name="final_matrix", shape=(prev, self.final_width), trainable=trainable,
                initializer=normal_initializer(0.0, 1.0 / math.sqrt(prev + self.final_width),
                                    self._seed(ii, 0)))
            self.final_bias = self.add_weight(
                name="final_bias", shape=(self.final_width,), trainable=trainable,
                initializer=normal_initializer(0.0, 1.0, self._seed(ii, 1)))

    def split_first_layer(self, widths: Sequence[int]):
        """The first layer's matrix cut along its input rows into blocks of `widths` (their
        sum is the input width): ``x W_1 = sum_k x_k W_1[k]`` for x = concat(x_1, x_2, ...),
        so that input blocks shared by many rows are multiplied once. Returns the blocks and
        b_1."""
        if sum(widths) != self.in_width:
            raise ValueError(f"{self.name}: blocks {list(widths)} do not add up to the input "
                             f"width {self.in_width}")
        w, b, _ = self.layer_variables()[0][0]
        w = tf.cast(w, self.matmul_dtype)
        b = tf.zeros([w.shape[-1]], self.matmul_dtype) if b is None else tf.cast(b, self.matmul_dtype)
        blocks, start = [], 0
        for width in widths:
            blocks.append(w[start:start + width])
            start += width
        return blocks, b

    @property
    def matmul_dtype(self) -> tf.DType:
        """The dtype of the hidden layers' matmuls: compute_precision's, else the weights'."""
        if self.compute_precision is None:
            return tf.as_dtype(self.compute_dtype)
        return dtype_of(self.compute_precision)

    @property
    def _stack_dtype(self) -> tf.DType:
        """The dtype of the hidden activations between layers: an embedding net keeps them in
        the matmul dtype, a fitting net casts each layer's output back (`one_layer`)."""
        return self.matmul_dtype if self.kind == "embedding" else tf.as_dtype(self.compute_dtype)

    @property
    def out_width(self) -> int:
        """Width of the net's output."""
        if self.final_width is not None:
            return self.final_width
        return self.widths[-1] if self.widths else self.in_width

    def layer_variables(self):
        """Per hidden layer (W, b, idt or None), then (W, b) of the final layer or None."""
        hidden = [
            (getattr(self, f"matrix_{k}"), getattr(self, f"bias_{k}"),
             getattr(self, f"idt_{k}", None))
            for k in range(1, len(self.widths) + 1)
        ]
        final = (self.final_matrix, self.final_bias) if self.final_width is not None else None
        return hidden, final

    def graph_variables(self) -> dict:
        """The variables under DeePMD-kit's graph names: embedding nets
        `<scope>/matrix_<k><suffix>`, `bias_`, `idt_`; fitting nets `layer_<ii><suffix>/matrix`,
        `/bias`, `/idt` and `final_layer<suffix>/matrix`, `/bias`."""
        hidden, final = self.layer_variables()
        names = {}
        for ii, (w, b, idt) in enumerate(hidden):
            if self.kind == "embedding":
                prefix = f"{self.scope}/" if self.scope else ""
                k = ii + 1
                entries = {f"matrix_{k}": w, f"bias_{k}": b, f"idt_{k}": idt}
                names.update({f"{prefix}{key}{self.suffix}": v for key, v in entries.items()
                              if v is not None})
            else:
                entries = {"matrix": w, "bias": b, "idt": idt}
                names.update({f"layer_{ii}{self.suffix}/{key}": v for key, v in entries.items()
                              if v is not None})
        if final is not None:
            names[f"final_layer{self.suffix}/matrix"] = final[0]
            names[f"final_layer{self.suffix}/bias"] = final[1]
        return names

    # -- computation -----------------------------------------------------------------------

    def call(self, x, first_preactivation=None, shared=None):
        """x [..., n] -> [..., out_width]. `first_preactivation` [..., widths[0]], when given,
        stands for ``x W_1 + b_1`` (computed by the caller more cheaply, see
        `split_first_layer`); x is then not used and may be None. shared: for a net of width-1
        rows on the fused kernel, (x_shared [k], pick [...]): kernels.scalar_net's shared rows
        (ignored elsewhere)."""
        if first_preactivation is None and self.in_width == 1 and kernels.fusable(self):
            # rows [s]: s W_1 + b_1, fused (kernels.py)
            return kernels.scalar_net(self, x[..., 0], *kernels.scalar_rows(self, shared))
        hidden, final = self.layer_variables()
        rules = self.rules
        mm, stack = self.matmul_dtype, self._stack_dtype  # casts to the same dtype are no-ops
        if first_preactivation is not None:
            if rules[0] is not None:
                raise ValueError(f"{self.name}: the first layer has a residual connection, so "
                                 "it needs its input, not only its pre-activation")
            pre = tf.cast(first_preactivation, mm)
            lead = tf.shape(pre)[:-1]
            x = tf.cast(self._act(tf.reshape(pre, [-1, self.widths[0]])), stack)
            hidden, rules = hidden[1:], rules[1:]
        else:
            x = tf.cast(x, stack)
            lead = tf.shape(x)[:-1]
            x = tf.reshape(x, [-1, self.in_width])
        for rule, (w, b, idt) in zip(rules, hidden):
            h = _matmul(tf.cast(x, mm), tf.cast(w, mm))
            h = self._act(h if b is None else h + tf.cast(b, mm))
            if idt is not None:
                h = h * tf.cast(idt, mm)
            h = tf.cast(h, stack)
            if rule == "skip":
                x = x + h
            elif rule == "concat":
                # concat(x, x) + h as a broadcast: the same sums, without the copy of x and
                # the slices and pads its derivatives would need
                width = x.shape[-1]
                x = tf.reshape(tf.reshape(h, [-1, 2, width]) + tf.expand_dims(x, 1), [-1, 2 * width])
            else:
                x = h
        x = tf.cast(x, self.compute_dtype)
        if final is not None:
            x = _matmul(x, final[0]) + final[1]
        return tf.reshape(x, tf.concat([lead, [self.out_width]], axis=0))

    def get_config(self):
        return {
            "name": self.name,
            "widths": list(self.widths),
            "activation": self.activation,
            "resnet_dt": self.resnet_dt,
            "precision": self.precision,
            "trainable": self._trainable_arg,
            "seed": self.seed,
            "kind": self.kind,
            "final_width": self.final_width,
            "scope": self.scope,
            "suffix": self.suffix,
            "compute_precision": self.compute_precision,
            "use_bias": self.use_bias,
        }
