"""The sampling rules (deepmd_tebd/data/sampling.py): batch sizes, system probabilities and the
seeded data RNG, each as DeePMD-kit defines it."""
from __future__ import annotations

import numpy as np
import pytest

from deepmd_tebd.data.sampling import make_data_rng, resolve_batch_size, system_probabilities
from deepmd_tebd.data.system import DataError


@pytest.mark.parametrize("natoms", [1, 5, 8, 31, 33, 192])
@pytest.mark.parametrize("rule", ["auto", "auto:32", "auto:100"])
def test_auto_batch_size_gives_at_least_n_atoms_per_batch(rule, natoms):
    target = int(rule.split(":")[1]) if ":" in rule else 32
    (bs,) = resolve_batch_size(rule, [natoms])
    # the smallest batch with at least `target` atoms
    assert bs * natoms >= target and (bs - 1) * natoms < target
    assert bs == -(-target // natoms)


@pytest.mark.parametrize("bad", ["big", "auto:x", "auto:0", 0, -1, True, 2.5, "mixed",
                                 "mixed:0", "mixed:x"])
def test_invalid_batch_size_is_refused(bad):
    with pytest.raises(DataError, match="batch_size"):
        resolve_batch_size(bad, [3, 4])


def test_sys_size_probabilities_follow_batch_counts():
    nbatches = [3, 1, 4]
    np.testing.assert_allclose(system_probabilities(nbatches), np.array(nbatches) / 8)
    np.testing.assert_allclose(system_probabilities(nbatches, auto_prob="prob_uniform"),
                               [1 / 3] * 3)


def test_block_probabilities_split_weights_then_batch_counts():
    nbatches = [1, 3, 2, 2, 4]
    probs = system_probabilities(nbatches, auto_prob="prob_sys_size;0:2:1;2:5:3")
    expected = np.concatenate([0.25 * np.array([1, 3]) / 4, 0.75 * np.array([2, 2, 4]) / 8])
    np.testing.assert_allclose(probs, expected)


def test_negative_sys_probs_share_the_rest_by_batch_counts():
    nbatches = [5, 1, 3, 7]
    probs = system_probabilities(nbatches, sys_probs=[0.2, -1, -1, 0.4])
    rest = 1 - 0.2 - 0.4
    np.testing.assert_allclose(probs, [0.2, rest * 1 / 4, rest * 3 / 4, 0.4])
    np.testing.assert_allclose(system_probabilities(nbatches, [0.25, 0.25, 0.25, 0.25]), 0.25)


@pytest.mark.parametrize("sys_probs, style, message", [
    (None, "prob_by_magic", "prob_by_magic"),
    (None, "prob_sys_size;0:9:1", "0:9:1"),
    (None, "prob_sys_size;0:1", "0:1"),
    ([0.7, 0.6, -1], "prob_sys_size", "more than 1"),
    ([0.2, 0.3, 0.1], "prob_sys_size", "less than 1"),
    ([0.5, 0.5], "prob_sys_size", "2 entries for 3"),
])
def test_invalid_probabilities_are_refused(sys_probs, style, message):
    with pytest.raises(DataError, match=message):
        system_probabilities([1, 2, 3], sys_probs, style)


def test_seed_and_rank_key_the_rng_as_deepmd_kit_3_does():
    # deepmd/tf/entrypoints/train.py: dp_random.seed([rank, seed % 2**32])
    a = make_data_rng(2 ** 32 + 5, rank=2).randint(1 << 30, size=4)
    b = np.random.RandomState([2, 5]).randint(1 << 30, size=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(make_data_rng(5, rank=2).randint(1 << 30, size=4),
                              make_data_rng(7, rank=0).randint(1 << 30, size=4))


def test_tuples_are_taken_as_lists():
    # the settings objects (config/objects.py: DataConfig) hold tuples where the script has lists
    assert resolve_batch_size((2, 5), [3, 4]) == resolve_batch_size([2, 5], [3, 4]) == [2, 5]
    with pytest.raises(DataError, match="one batch size per system"):
        resolve_batch_size((2,), [3, 4])
    np.testing.assert_array_equal(system_probabilities([5, 1, 3], (0.2, -1, -1)),
                                  system_probabilities([5, 1, 3], [0.2, -1, -1]))
