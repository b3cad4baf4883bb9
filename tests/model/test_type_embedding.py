"""The type embedding table is the embedding net on the one-hot types."""
import numpy as np
import pytest

from deepmd_tebd.config.objects import TypeEmbeddingConfig
from deepmd_tebd.model import TypeEmbedding
from model_helpers import numpy_mlp


def settings(neuron, resnet_dt=False, seed=None):
    """Type embedding settings: tanh, float64, trainable."""
    return TypeEmbeddingConfig(tuple(neuron), "tanh", resnet_dt, "float64", True, seed)


@pytest.mark.parametrize("ntypes, neuron", [(2, [2, 4, 8]), (5, [3, 6])])
def test_type_embedding_is_the_net_on_the_identity(ntypes, neuron):
    tebd = TypeEmbedding(ntypes, settings(neuron, resnet_dt=True, seed=4))
    table = tebd.table().numpy()
    assert table.shape == (ntypes, neuron[-1])
    expected = numpy_mlp(tebd.net, np.eye(ntypes), tebd.net.rules)
    np.testing.assert_allclose(table, expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(tebd(np.array([1, 0, 1])).numpy(), table[[1, 0, 1]], rtol=1e-14)


def test_type_embedding_variables_have_deepmd_names():
    tebd = TypeEmbedding(2, settings([2, 4, 8], seed=1))
    tebd.build()
    shapes = {name: tuple(v.shape) for name, v in tebd.graph_variables().items()}
    assert shapes == {"type_embed_net/matrix_1": (2, 2), "type_embed_net/bias_1": (2,),
                      "type_embed_net/matrix_2": (2, 4), "type_embed_net/bias_2": (4,),
                      "type_embed_net/matrix_3": (4, 8), "type_embed_net/bias_3": (8,)}


def test_seeded_type_embeddings_are_identical():
    a = TypeEmbedding(3, settings([4, 8], seed=9)).table().numpy()
    b = TypeEmbedding(3, settings([4, 8], seed=9)).table().numpy()
    np.testing.assert_array_equal(a, b)
