"""Flexible water: a classical reference model for the example data of deepmd_tebd.tools.water.

``WaterModel`` is three-site flexible water with the SPC/Fw parameters: harmonic O-H bonds and
H-O-H angles inside each molecule, an O-O Lennard-Jones term between molecules, and Coulomb
between the partial charges of different molecules in the damped shifted-force (DSF) form, so that
energy and force go to zero continuously at the cutoff. The Lennard-Jones term is shifted the same
way. The box is periodic (any shape); every periodic image within the cutoff is summed, so the box
may be shorter than twice the cutoff.

Units throughout: Å, eV, amu, fs, K, elementary charge. The virial is DeePMD-kit's: minus the
derivative of the energy with respect to a homogeneous strain of coordinates and box together
(``r -> r (1 + eps)`` with coordinates as row vectors), which for an open system equals
``sum_i r_i (x) f_i``. NumPy is the only dependency.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

# Constants from their exact SI definitions (CODATA 2018).
_ELEMENTARY_CHARGE = 1.602176634e-19  # C; also J per eV
_AVOGADRO = 6.02214076e23  # 1/mol
_AMU = 1.66053906660e-27  # kg
_EPSILON0 = 8.8541878128e-12  # F/m
BOLTZMANN = 1.380649e-23 / _ELEMENTARY_CHARGE  # eV/K
KCAL_PER_MOL = 4184.0 / (_AVOGADRO * _ELEMENTARY_CHARGE)  # eV
COULOMB = _ELEMENTARY_CHARGE / (4.0 * math.pi * _EPSILON0 * 1e-10)  # e^2/(4 pi eps0), eV*Å
# One amu*Å^2/fs^2 in eV: kinetic energy is AMU_A2_FS2 * m v^2 / 2 with m in amu and v in Å/fs,
# and the acceleration in Å/fs^2 is F / (m * AMU_A2_FS2) with F in eV/Å.
AMU_A2_FS2 = _AMU * 1e-20 / 1e-30 / _ELEMENTARY_CHARGE
GRAM_PER_AMU = _AMU * 1e3

TYPE_MAP = ("O", "H")


@dataclass(frozen=True)
class WaterParameters:
    """Force-field parameters in Å, eV, radians, amu and elementary charges.

    Bonded and Lennard-Jones parameters and charges are SPC/Fw: Y. Wu, H. L. Tepper and G. A. Voth,
    J. Chem. Phys. 124, 024503 (2006), Table I (there in kcal/mol, converted here), with the energy
    k_b/2 (r - r0)^2 per O-H bond and k_theta/2 (theta - theta0)^2 per H-O-H angle. SPC/Fw was
    fitted with Ewald electrostatics; here Coulomb is the damped shifted-force (DSF) pair sum of
    C. J. Fennell and J. D. Gezelter, J. Chem. Phys. 124, 234104 (2006), a pairwise substitute for
    Ewald summation, with damping alpha = 0.2/Å (a moderate value among those studied there) and a
    9 Å cutoff. Hence "SPC/Fw-like": the same parameters, not the same liquid to the last digit.
    """

    k_bond: float = 1059.162 * KCAL_PER_MOL  # eV/Å^2
    r_bond: float = 1.012  # Å
    k_angle: float = 75.90 * KCAL_PER_MOL  # eV/rad^2
    theta0: float = math.radians(113.24)  # rad
    sigma: float = 3.165492  # Å, O-O only
    epsilon: float = 0.1554253 * KCAL_PER_MOL  # eV, O-O only
    charge_o: float = -0.82  # e
    charge_h: float = 0.41  # e
    mass_o: float = 15.9994  # amu
    mass_h: float = 1.008  # amu
    rcut: float = 9.0  # Å, for both Coulomb and Lennard-Jones
    alpha: float = 0.2  # 1/Å, DSF damping


# ---------------------------------------------------------------------------------------------
# erfc for arrays. NumPy has none, so it is summed from the series (Abramowitz & Stegun 7.1.6)
#   erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)),
# whose terms are all positive. With 40 terms the truncation is below 1e-17 for x <= 2, which covers
# alpha * r for every pair inside the default cutoff (alpha * rcut = 1.8); larger arguments fall
# back to math.erfc element by element.

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SERIES_XMAX = 2.0


def _series_coefficients(n_terms: int) -> np.ndarray:
    coefficients = [1.0]
    for n in range(1, n_terms):
        coefficients.append(coefficients[-1] * 2.0 / (2 * n + 1))
    return np.array(coefficients[::-1])  # highest power first, for Horner's rule


_SERIES = _series_coefficients(40)
_ERFC_SCALAR = np.frompyfunc(math.erfc, 1, 1)


def erfc_gauss(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return erfc(x) and exp(-x^2) for an array of non-negative x (absolute error ~1e-16)."""
    x = np.asarray(x, dtype=float)
    y = x * x
    gauss = np.exp(-y)
    series = np.full_like(y, _SERIES[0])
    for c in _SERIES[1:]:
        series *= y
        series += c
    result = 1.0 - _TWO_OVER_SQRT_PI * x * gauss * series
    large = x > _SERIES_XMAX
    if large.any():
        result[large] = _ERFC_SCALAR(x[large]).astype(float)
    return result, gauss


# ---------------------------------------------------------------------------------------------
# Pair list over periodic images.


@dataclass
class PairList:
    """Intermolecular atom pairs (i, j, image) closer than ``rcut + skin`` when built.

    The pair vector is ``coord[j] - coord[i] + shift @ box``. O-O pairs come first (``n_oo`` of
    them). Pairs of atoms in the same molecule appear only through other periodic images, and an
    atom with its own image once per image pair {n, -n}. The list stays exact while no atom has
    moved more than ``skin / 2`` from ``coord`` and the box is unchanged.
    """

    i: np.ndarray
    j: np.ndarray
    shift: np.ndarray  # (P, 3) integer lattice translations
    shift_cart: np.ndarray  # (P, 3) the same in Å
    qq: np.ndarray  # (P,) charge products
    n_oo: int
    coord: np.ndarray
    box: np.ndarray
    skin: float
    # Indices into coord.reshape(-1) of the x, y, z of atoms i and j, pair by pair.
    i3: np.ndarray = field(init=False, repr=False)
    j3: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        xyz = np.arange(3)
        self.i3 = (3 * self.i[:, None] + xyz).reshape(-1)
        self.j3 = (3 * self.j[:, None] + xyz).reshape(-1)

    def valid_for(self, coord: np.ndarray, box: np.ndarray) -> bool:
        """Whether the list is still exact for these coordinates and box."""
        if not np.array_equal(box, self.box):
            return False
        moved = coord - self.coord
        return float(np.einsum("ij,ij->i", moved, moved).max()) < (0.5 * self.skin) ** 2


def _lexicographically_positive(n: tuple[int, int, int]) -> bool:
    for component in n:
        if component:
            return component > 0
    return False


class WaterModel:
    """Energy, forces and virial of ``n_molecules`` flexible waters, atoms ordered O, H, H, O, ...

    ``evaluate(coord, box)`` takes coordinates (natoms, 3) and a box whose rows are the cell
    vectors (3, 3), both in Å, and returns (energy [eV], forces [eV/Å] (natoms, 3), virial [eV]
    (3, 3) or None).
    """

    def __init__(self, n_molecules: int, params: Optional[WaterParameters] = None):
        self.params = p = params or WaterParameters()
        self.n_molecules = n_molecules
        self.natoms = 3 * n_molecules
        self.types = np.tile(np.array([0, 1, 1]), n_molecules)  # indices into TYPE_MAP
        self.molecule = np.repeat(np.arange(n_molecules), 3)
        self.charges = np.where(self.types == 0, p.charge_o, p.charge_h)
        self.masses = np.where(self.types == 0, p.mass_o, p.mass_h)
        rc, alpha = p.rcut, p.alpha
        erfc_rc, gauss_rc = (float(v[0]) for v in erfc_gauss(np.array([alpha * rc])))
        # DSF pair energy k qq [erfc(a r)/r - erfc(a rc)/rc + dsf_slope (r - rc)] for r < rc.
        self._dsf_shift = erfc_rc / rc
        self._dsf_slope = erfc_rc / rc**2 + _TWO_OVER_SQRT_PI * alpha * gauss_rc / rc
        # Shifted-force Lennard-Jones: V(r) - V(rc) - V'(rc) (r - rc) for r < rc.
        self._lj_vc, self._lj_dvc = self._lennard_jones_raw(np.array([rc]))
        self._lj_vc, self._lj_dvc = float(self._lj_vc[0]), float(self._lj_dvc[0])

    # -- pair functions ------------------------------------------------------------------------

    def _lennard_jones_raw(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        s6 = (p.sigma * p.sigma / (r * r)) ** 3
        return 4.0 * p.epsilon * (s6 * s6 - s6), 24.0 * p.epsilon * (s6 - 2.0 * s6 * s6) / r

    def _lennard_jones(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v, dv = self._lennard_jones_raw(r)
        return v - self._lj_vc - self._lj_dvc * (r - self.params.rcut), dv - self._lj_dvc

    def _coulomb(self, r: np.ndarray, qq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        erfc, gauss = erfc_gauss(p.alpha * r)
        kqq = COULOMB * qq
        inv_r = 1.0 / r
        energy = kqq * (erfc * inv_r - self._dsf_shift + self._dsf_slope * (r - p.rcut))
        d_energy = kqq * (self._dsf_slope
                          - (erfc * inv_r + _TWO_OVER_SQRT_PI * p.alpha * gauss) * inv_r)
        return energy, d_energy

    def coulomb_pair(self, r, qq) -> tuple[np.ndarray, np.ndarray]:
        """DSF Coulomb energy and its r-derivative for distances r (zero at and beyond rcut)."""
        r = np.atleast_1d(np.asarray(r, dtype=float))
        qq = np.broadcast_to(np.asarray(qq, dtype=float), r.shape)
        energy, d_energy = self._coulomb(r, qq)
        inside = r < self.params.rcut
        return np.where(inside, energy, 0.0), np.where(inside, d_energy, 0.0)

    def lennard_jones_pair(self, r) -> tuple[np.ndarray, np.ndarray]:
        """Shifted-force O-O Lennard-Jones energy and r-derivative (zero at and beyond rcut)."""
        r = np.atleast_1d(np.asarray(r, dtype=float))
        energy, d_energy = self._lennard_jones(r)
        inside = r < self.params.rcut
        return np.where(inside, energy, 0.0), np.where(inside, d_energy, 0.0)

    # -- pair list -----------------------------------------------------------------------------

    def build_pairs(self, coord: np.ndarray, box: np.ndarray, skin: float = 0.0) -> PairList:
        """All intermolecular pairs within ``rcut + skin``, over every periodic image needed."""
        coord = np.asarray(coord, dtype=float).reshape(self.natoms, 3)
        box = np.asarray(box, dtype=float).reshape(3, 3)
        rlist = self.params.rcut + skin
        inv_box = np.linalg.inv(box)
        frac = coord @ inv_box
        iu, ju = np.triu_indices(self.natoms, 1)
        ds = frac[ju] - frac[iu]
        wrap = np.rint(ds)
        ds -= wrap
        d0 = ds @ box
        same_molecule = self.molecule[iu] == self.molecule[ju]
        # A pair vector (ds + n) @ box has length >= |ds_a + n_a| * h_a along cell axis a, where
        # h_a = 1 / |column a of inv_box| is the spacing of lattice planes; with |ds_a| <= 1/2 the
        # images |n_a| <= rlist / h_a + 1/2 are the only ones that can lie within rlist.
        nmax = np.floor(rlist * np.linalg.norm(inv_box, axis=0) + 0.5).astype(int)
        rlist2 = rlist * rlist
        i_parts, j_parts, shift_parts = [], [], []
        all_atoms = np.arange(self.natoms)
        for n in itertools.product(*(range(-m, m + 1) for m in nmax)):
            offset = np.array(n, dtype=float) @ box
            d = d0 + offset
            keep = np.einsum("ij,ij->i", d, d) < rlist2
            if not any(n):
                keep &= ~same_molecule
            idx = np.flatnonzero(keep)
            i_parts.append(iu[idx])
            j_parts.append(ju[idx])
            shift_parts.append(np.asarray(n, dtype=float) - wrap[idx])
            if _lexicographically_positive(n) and offset @ offset < rlist2:
                # Each atom with its own image n (and, equivalently, -n: counted once).
                i_parts.append(all_atoms)
                j_parts.append(all_atoms)
                shift_parts.append(np.tile(np.asarray(n, dtype=float), (self.natoms, 1)))
        i = np.concatenate(i_parts)
        j = np.concatenate(j_parts)
        shift = np.concatenate(shift_parts)
        oo = (self.types[i] == 0) & (self.types[j] == 0)
        order = np.argsort(~oo, kind="stable")
        i, j, shift = i[order], j[order], shift[order]
        return PairList(i=i, j=j, shift=shift, shift_cart=shift @ box,
                        qq=self.charges[i] * self.charges[j], n_oo=int(oo.sum()),
                        coord=coord.copy(), box=box.copy(), skin=skin)

    # -- energy, forces, virial ----------------------------------------------------------------

    def evaluate(self, coord, box, pairs: Optional[PairList] = None, virial: bool = True):
        """Energy, forces and (if ``virial``) virial. ``pairs`` must be valid for coord and box."""
        coord = np.asarray(coord, dtype=float).reshape(self.natoms, 3)
        box = np.asarray(box, dtype=float).reshape(3, 3)
        if pairs is None:
            pairs = self.build_pairs(coord, box)
        gradient = np.zeros((self.natoms, 3))  # dE/dcoord
        w = np.zeros((3, 3)) if virial else None
        energy = self._intramolecular(coord, box, gradient, w)
        energy += self._intermolecular(coord, pairs, gradient, w)
        return energy, -gradient, w

    def _intramolecular(self, coord, box, gradient, w) -> float:
        p = self.params
        o = coord[0::3]
        d1 = coord[1::3] - o
        d2 = coord[2::3] - o
        inv_box = np.linalg.inv(box)
        d1 -= np.rint(d1 @ inv_box) @ box
        d2 -= np.rint(d2 @ inv_box) @ box
        r1 = np.sqrt(np.einsum("ij,ij->i", d1, d1))
        r2 = np.sqrt(np.einsum("ij,ij->i", d2, d2))
        energy = 0.5 * p.k_bond * float(np.sum((r1 - p.r_bond) ** 2 + (r2 - p.r_bond) ** 2))
        g1 = (p.k_bond * (r1 - p.r_bond) / r1)[:, None] * d1
        g2 = (p.k_bond * (r2 - p.r_bond) / r2)[:, None] * d2
        dot = np.einsum("ij,ij->i", d1, d2)
        cross = np.linalg.norm(np.cross(d1, d2), axis=1)
        theta = np.arctan2(cross, dot)
        energy += 0.5 * p.k_angle * float(np.sum((theta - p.theta0) ** 2))
        # dtheta/dd1 = -(d2 / (r1 r2) - cos d1 / r1^2) / sin, and symmetrically for d2.
        rr = r1 * r2
        cos = dot / rr
        sin = np.maximum(cross / rr, 1e-12)
        scale = (p.k_angle * (theta - p.theta0) / sin)[:, None]
        g1 -= scale * (d2 / rr[:, None] - (cos / (r1 * r1))[:, None] * d1)
        g2 -= scale * (d1 / rr[:, None] - (cos / (r2 * r2))[:, None] * d2)
        gradient[0::3] -= g1 + g2
        gradient[1::3] += g1
        gradient[2::3] += g2
        if w is not None:
            w -= d1.T @ g1 + d2.T @ g2
        return energy

    def _intermolecular(self, coord, pairs: PairList, gradient, w) -> float:
        rc = self.params.rcut
        flat = coord.reshape(-1)
        d = (flat.take(pairs.j3) - flat.take(pairs.i3)).reshape(-1, 3)
        d += pairs.shift_cart
        r2 = np.einsum("ij,ij->i", d, d)
        inside = (r2 < rc * rc).astype(float)
        # Pairs of the list beyond the cutoff are evaluated at rc and then zeroed: cheaper than
        # compressing every array, and it keeps the erfc argument within alpha * rc.
        r = np.sqrt(np.minimum(r2, rc * rc))
        energy, d_energy = self._coulomb(r, pairs.qq)
        n_oo = pairs.n_oo  # O-O pairs are listed first
        lj_energy, lj_d_energy = self._lennard_jones(r[:n_oo])
        energy[:n_oo] += lj_energy
        d_energy[:n_oo] += lj_d_energy
        total = float(np.sum(energy * inside))
        weight = d_energy / r
        weight *= inside
        g = d * weight[:, None]  # dE/d(pair vector)
        g_flat = g.reshape(-1)
        n = 3 * self.natoms
        gradient += (np.bincount(pairs.j3, g_flat, minlength=n)
                     - np.bincount(pairs.i3, g_flat, minlength=n)).reshape(-1, 3)
        if w is not None:
            w -= np.einsum("pa,pb->ab", d, g)
        return total
