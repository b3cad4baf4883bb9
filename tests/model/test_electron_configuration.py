"""Electron configurations of the elements (the type embedding net's input with use_econf_tebd):
every neutral atom holds Z electrons, subshells hold at most 2(2l+1), a few ground states known by
heart, vectors of length 1 whose entries say how each orbital is filled, and DeePMD-kit 3.2's own
table equal for all 118 elements."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deepmd_tebd.electron_configuration import (ECONF_DIM, ELEMENTS, configuration,
                                                 econf_matrix, econf_vector)
from reference.deepmd_oracle import run_oracle_script

CAPACITY = {"s": 2, "p": 6, "d": 10, "f": 14}


def test_every_element_holds_its_atomic_number_of_electrons_within_capacity():
    assert len(ELEMENTS) == 118 and ECONF_DIM == 118
    for z, element in enumerate(ELEMENTS, 1):
        shells = configuration(element)
        assert sum(shells.values()) == z, element
        assert all(0 < n <= CAPACITY[s[1]] for s, n in shells.items()), (element, shells)


@pytest.mark.parametrize("element, expected", [
    ("O", {"1s": 2, "2s": 2, "2p": 4}),
    ("Fe", {"1s": 2, "2s": 2, "2p": 6, "3s": 2, "3p": 6, "3d": 6, "4s": 2}),
    ("Cu", {"1s": 2, "2s": 2, "2p": 6, "3s": 2, "3p": 6, "3d": 10, "4s": 1}),
    ("Pd", {"1s": 2, "2s": 2, "2p": 6, "3s": 2, "3p": 6, "3d": 10, "4s": 2, "4p": 6, "4d": 10}),
])
def test_known_ground_states(element, expected):
    assert configuration(element) == expected


def test_vectors_have_length_one_and_encode_hunds_rule():
    for element in ELEMENTS:
        assert math.isclose(np.linalg.norm(econf_vector(element)), 1.0, rel_tol=1e-14)
    oxygen = econf_vector("O") * math.sqrt(ECONF_DIM)
    # 1s, 2s full; 2p4: one orbital paired, two singly filled; 3s empty
    np.testing.assert_array_equal(oxygen[:12], [1, 1, 1, 1, 1, 1, -1, 1, -1, 1, -1, -1])
    assert econf_matrix(["H", "O"]).shape == (2, ECONF_DIM)
    with pytest.raises(ValueError, match="not an element"):
        econf_vector("X")


DEEPMD_TABLE = """
import json
from deepmd.utils.econf_embd import normalized_electronic_configuration_embedding as table
from deepmd.utils.econf_embd import type_map
print(json.dumps({element: [float(x) for x in table[element]] for element in type_map}))
"""


@pytest.mark.slow
def test_every_vector_is_deepmd_kits(tmp_path):
    theirs = json.loads(run_oracle_script(DEEPMD_TABLE, {}, tmp_path))
    assert list(theirs) == list(ELEMENTS)
    for element in ELEMENTS:
        np.testing.assert_array_equal(econf_vector(element), theirs[element], err_msg=element)
