"""DPA-1's attention may leave out the slots that are empty for every atom (the tail of the
neighbour list, past the most neighbours any atom has): the live slots' rows are those of the
attention over every slot (their keys' only trace is their share of the softmax's sums,
Gates.absent), and the left-out rows, whose P rows are 0, are the attention of their own rows
alone. Smooth (se_atten_v2) and not, with the angular gate and the diagonal mask."""
import numpy as np
import pytest
import tensorflow as tf

from deepmd_tebd.model.attention import AttentionLayer, attention_gates

ATOMS, SLOTS, LIVE, WIDTH = 3, 7, 5, 6


def _layer():
    layer = AttentionLayer(WIDTH, 4, 0, seed=5, precision="float64")
    layer.build()
    return layer


def _inputs(smooth: bool, seed=0):
    """g [3, 7, 6]; weights [3, 7] with slots 5 and 6 empty for every atom and one more empty
    slot among an atom's live ones; an angular gate of unit vectors (0 on empty slots)."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(ATOMS, SLOTS, WIDTH))
    weight = rng.uniform(0.2, 1.0, (ATOMS, SLOTS)) if smooth else np.ones((ATOMS, SLOTS))
    weight[:, LIVE:] = 0.0
    weight[1, LIVE - 1] = 0.0
    r = rng.normal(size=(ATOMS, SLOTS, 3))
    r /= np.linalg.norm(r, axis=-1, keepdims=True)
    r[weight == 0.0] = 0.0
    return tf.constant(g), tf.constant(weight), tf.constant(np.einsum("nja,nka->njk", r, r))


@pytest.mark.parametrize("attn_mask", [False, True], ids=["", "attn_mask"])
@pytest.mark.parametrize("smooth", [True, False], ids=["smooth", "masked"])
def test_leaving_out_the_always_empty_slots_changes_no_row(smooth, attn_mask):
    layer = _layer()
    g, weight, angular = _inputs(smooth)
    every = layer(g, attention_gates(weight, smooth, angular, attn_mask)).numpy()
    live = layer(g[:, :LIVE], attention_gates(weight[:, :LIVE], smooth, angular[:, :LIVE, :LIVE],
                                              attn_mask, absent=tf.constant(SLOTS - LIVE)))
    np.testing.assert_allclose(live.numpy(), every[:, :LIVE], rtol=1e-13, atol=1e-13)
    # the left-out rows alone (weight 0): each row's own G + b_o, normalised
    tail = layer(g[:, LIVE:], attention_gates(weight[:, LIVE:], smooth, None, attn_mask))
    np.testing.assert_allclose(tail.numpy(), every[:, LIVE:], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("smooth", [True, False], ids=["smooth", "masked"])
def test_no_slot_left_out_is_the_attention_over_every_slot(smooth):
    layer = _layer()
    g, weight, angular = _inputs(smooth, seed=1)
    every = layer(g, attention_gates(weight, smooth, angular)).numpy()
    none_out = layer(g, attention_gates(weight, smooth, angular, absent=tf.constant(0)))
    np.testing.assert_allclose(none_out.numpy(), every, rtol=1e-14, atol=1e-14)
