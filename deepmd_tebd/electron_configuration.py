"""Each element's ground-state electron configuration as a vector: the input of the type
embedding net with `use_econf_tebd` (DeePMD-kit 3.x), in place of a type's one-hot vector, so
that elements with similar valence shells start with similar embeddings.

The configuration fills the subshells in Madelung order (n + l, then n), with the measured
exceptions of the transition metals, lanthanides and actinides (and the predicted ones of Ds and
Rg; Lr as 6d1 7s2, the configuration DeePMD-kit's table holds). The vector lists the orbitals of
the subshells 1s 2s 2p 3s 3p 3d 4s 4p 4d 4f 5s 5p 5d 5f 6s 6p 6d 7s 7p (59 orbitals); within a
subshell its electrons pair up only once every orbital holds one (Hund's rule), the paired
orbitals first; each orbital gives two entries, (-1, -1) empty, (-1, 1) one electron, (1, 1)
two; the 118 entries are divided by sqrt(118), so every vector has length 1.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["ECONF_DIM", "ELEMENTS", "configuration", "econf_matrix", "econf_vector"]

ELEMENTS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se "
    "Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb "
    "Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm "
    "Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og").split()

_L = {"s": 0, "p": 1, "d": 2, "f": 3}
_SUBSHELLS = ["1s", "2s", "2p", "3s", "3p", "3d", "4s", "4p", "4d", "4f", "5s", "5p", "5d",
              "5f", "6s", "6p", "6d", "7s", "7p"]  # the order of the vector
_MADELUNG = sorted(_SUBSHELLS, key=lambda s: (int(s[0]) + _L[s[1]], int(s[0])))
ECONF_DIM = 2 * sum(2 * _L[s[1]] + 1 for s in _SUBSHELLS)  # 118

# ground states that differ from the Madelung filling: {element: {subshell: electrons}}
_EXCEPTIONS = {
    "Cr": {"3d": 5, "4s": 1}, "Cu": {"3d": 10, "4s": 1},
    "Nb": {"4d": 4, "5s": 1}, "Mo": {"4d": 5, "5s": 1}, "Ru": {"4d": 7, "5s": 1},
    "Rh": {"4d": 8, "5s": 1}, "Pd": {"4d": 10, "5s": 0}, "Ag": {"4d": 10, "5s": 1},
    "La": {"4f": 0, "5d": 1}, "Ce": {"4f": 1, "5d": 1}, "Gd": {"4f": 7, "5d": 1},
    "Pt": {"5d": 9, "6s": 1}, "Au": {"5d": 10, "6s": 1},
    "Ac": {"5f": 0, "6d": 1}, "Th": {"5f": 0, "6d": 2}, "Pa": {"5f": 2, "6d": 1},
    "U": {"5f": 3, "6d": 1}, "Np": {"5f": 4, "6d": 1}, "Cm": {"5f": 7, "6d": 1},
    "Lr": {"6d": 1, "7p": 0}, "Ds": {"6d": 9, "7s": 1}, "Rg": {"6d": 10, "7s": 1},
}


def configuration(element: str) -> dict[str, int]:
    """{subshell: electrons} of the neutral atom's ground state."""
    if element not in ELEMENTS:
        raise ValueError(f"{element!r} is not an element symbol (H to Og)")
    left, filled = ELEMENTS.index(element) + 1, {}
    for subshell in _MADELUNG:
        filled[subshell] = min(left, 2 * (2 * _L[subshell[1]] + 1))
        left -= filled[subshell]
    filled.update(_EXCEPTIONS.get(element, {}))
    return {s: n for s, n in filled.items() if n}


def econf_vector(element: str) -> np.ndarray:
    """The element's vector, [ECONF_DIM] float64 of length 1."""
    electrons = configuration(element)
    entries = []
    for subshell in _SUBSHELLS:
        orbitals, n = 2 * _L[subshell[1]] + 1, electrons.get(subshell, 0)
        unpaired = n if n <= orbitals else 2 * orbitals - n
        paired = (n - unpaired) // 2
        for k in range(orbitals):
            occupation = 2 if k < paired else 1 if k < paired + unpaired else 0
            entries += {0: [-1, -1], 1: [-1, 1], 2: [1, 1]}[occupation]
    return np.array(entries, dtype=np.float64) / math.sqrt(ECONF_DIM)


def econf_matrix(type_map) -> np.ndarray:
    """[ntypes, ECONF_DIM]: the vector of each element of `type_map`, in its order."""
    return np.stack([econf_vector(element) for element in type_map])
