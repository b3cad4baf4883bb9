"""Flexible water: a classical reference model and an MD sampler that writes DeePMD-kit npy systems.

The model (``WaterModel``) is three-site flexible water with the SPC/Fw parameters: harmonic O-H
bonds and H-O-H angles inside each molecule, an O-O Lennard-Jones term between molecules, and
Coulomb between the partial charges of different molecules in the damped shifted-force (DSF) form,
so that energy and force go to zero continuously at the cutoff. The Lennard-Jones term is shifted
the same way. The box is periodic (any shape); every periodic image within the cutoff is summed, so
the box may be shorter than twice the cutoff.

The sampler (``WaterMD``, ``sample_system``) places molecules at random without overlap, relaxes
them with FIRE, and runs velocity-Verlet molecular dynamics with a Bussi stochastic
velocity-rescaling thermostat, keeping a frame every ``stride`` steps.

Units throughout: Å, eV, amu, fs, K, elementary charge. The virial is DeePMD-kit's: minus the
derivative of the energy with respect to a homogeneous strain of coordinates and box together
(``r -> r (1 + eps)`` with coordinates as row vectors), which for an open system equals
``sum_i r_i (x) f_i``.

Command line::

    python -m deepmd_tebd.tools.water OUTPUT_DIR [--systems 4] [--frames 80] [--seed 1]

writes ``OUTPUT_DIR/data_0`` ... ``data_{systems-1}``, each an independent trajectory. NumPy is the
only dependency.
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

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


# ---------------------------------------------------------------------------------------------
# Configurations and dynamics.


def box_edge(n_molecules: int, density: float = 1.0,
             params: Optional[WaterParameters] = None) -> float:
    """Edge in Å of the cubic box holding ``n_molecules`` waters at ``density`` g/cm^3."""
    p = params or WaterParameters()
    mass_g = n_molecules * (p.mass_o + 2.0 * p.mass_h) * GRAM_PER_AMU
    return (mass_g / density * 1e24) ** (1.0 / 3.0)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.standard_normal(4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
    ])


def random_water_box(n_molecules: int, rng: np.random.Generator, density: float = 1.0,
                     params: Optional[WaterParameters] = None, min_oo: float = 2.5,
                     min_other: float = 1.6, max_tries: int = 20000):
    """Molecules at the reference geometry, random positions and orientations, no close contacts.

    Random sequential insertion in a cubic box: a molecule is kept when its O is at least
    ``min_oo`` and every other intermolecular atom pair at least ``min_other`` apart (minimum
    image). Returns (coord (3n, 3), box (3, 3)).
    """
    p = params or WaterParameters()
    edge = box_edge(n_molecules, density, p)
    half = 0.5 * p.theta0
    local = p.r_bond * np.array([[0.0, 0.0, 0.0],
                                 [math.sin(half), 0.0, math.cos(half)],
                                 [-math.sin(half), 0.0, math.cos(half)]])
    local -= local.mean(axis=0)
    limits = np.array([[min_oo, min_other, min_other],
                       [min_other, min_other, min_other],
                       [min_other, min_other, min_other]]) ** 2
    for _ in range(100):
        placed = np.empty((0, 3))
        for _ in range(n_molecules):
            for _ in range(max_tries):
                trial = rng.uniform(0.0, edge, 3) + local @ _random_rotation(rng).T
                if len(placed):
                    # (placed molecule, its atom, trial atom, xyz)
                    d = placed.reshape(-1, 3, 1, 3) - trial[None, None, :, :]
                    d -= edge * np.rint(d / edge)
                    if np.any(np.einsum("mabk,mabk->mab", d, d) < limits):
                        continue
                placed = np.vstack([placed, trial])
                break
            else:
                break
        if len(placed) == 3 * n_molecules:
            return placed, np.eye(3) * edge
    raise RuntimeError(f"could not place {n_molecules} molecules at {density} g/cm^3")


def _bussi_scale(kinetic: float, target: float, ndof: int, c: float,
                 rng: np.random.Generator) -> float:
    """Velocity scale factor of the stochastic velocity-rescaling thermostat.

    G. Bussi, D. Donadio and M. Parrinello, J. Chem. Phys. 126, 014101 (2007): the kinetic energy
    follows an exact step of its stochastic dynamics, c = exp(-dt / tau), target = ndof kT / 2.
    """
    r1 = rng.standard_normal()
    rest = rng.chisquare(ndof - 1) if ndof > 1 else 0.0
    new = (kinetic + (1.0 - c) * (target * (rest + r1 * r1) / ndof - kinetic)
           + 2.0 * r1 * math.sqrt(kinetic * target / ndof * (1.0 - c) * c))
    return math.sqrt(max(new, 0.0) / kinetic)


class WaterMD:
    """Velocity-Verlet dynamics of a ``WaterModel`` in a fixed periodic box.

    A pair list with ``skin`` is rebuilt (and the atoms wrapped into the box) when some atom has
    moved more than skin/2 since the last build, so every step evaluates the exact model.
    """

    def __init__(self, model: WaterModel, coord: np.ndarray, box: np.ndarray, dt: float = 0.5,
                 skin: float = 1.0):
        self.model = model
        self.coord = np.array(coord, dtype=float).reshape(model.natoms, 3)
        self.box = np.array(box, dtype=float).reshape(3, 3)
        self.dt = dt
        self.skin = skin
        self.vel = np.zeros_like(self.coord)
        self.ndof = 3 * model.natoms - 3  # the total momentum stays zero
        self._inv_mass = 1.0 / (model.masses * AMU_A2_FS2)[:, None]
        self._pairs: Optional[PairList] = None
        self.n_builds = 0
        self._compute()

    def _pair_list(self) -> PairList:
        if self._pairs is None or not self._pairs.valid_for(self.coord, self.box):
            frac = self.coord @ np.linalg.inv(self.box)
            self.coord = (frac - np.floor(frac)) @ self.box
            self._pairs = self.model.build_pairs(self.coord, self.box, self.skin)
            self.n_builds += 1
        return self._pairs

    def _compute(self, virial: bool = False):
        pairs = self._pair_list()  # may wrap self.coord, so it comes first
        self.energy, self.force, self.virial = self.model.evaluate(
            self.coord, self.box, pairs, virial=virial)

    def kinetic_energy(self) -> float:
        return 0.5 * AMU_A2_FS2 * float(np.sum(self.model.masses[:, None] * self.vel**2))

    def temperature(self) -> float:
        return 2.0 * self.kinetic_energy() / (self.ndof * BOLTZMANN)

    def set_velocities(self, temperature: float, rng: np.random.Generator):
        """Maxwell-Boltzmann velocities, zero total momentum, scaled to exactly ``temperature``."""
        masses = self.model.masses[:, None]
        self.vel = rng.standard_normal(self.coord.shape) * np.sqrt(
            BOLTZMANN * temperature / (masses * AMU_A2_FS2))
        self.vel -= np.sum(masses * self.vel, axis=0) / masses.sum()
        self.vel *= math.sqrt(temperature / self.temperature())

    def minimise(self, fmax: float = 0.05, max_steps: int = 1000, max_move: float = 0.1) -> int:
        """FIRE relaxation (Bitzek et al., Phys. Rev. Lett. 97, 170201 (2006)); returns steps."""
        dt, dt_max, alpha = 0.1, 1.0, 0.1
        n_positive = 0
        vel = np.zeros_like(self.coord)
        for step in range(max_steps):
            force = self.force
            if np.sqrt(np.einsum("ij,ij->i", force, force).max()) < fmax:
                return step
            power = float(np.sum(force * vel))
            if power > 0.0:
                vel = (1.0 - alpha) * vel + alpha * (
                    np.linalg.norm(vel) / np.linalg.norm(force)) * force
                if n_positive > 5:
                    dt, alpha = min(1.1 * dt, dt_max), 0.99 * alpha
                n_positive += 1
            else:
                vel[:] = 0.0
                dt, alpha, n_positive = 0.5 * dt, 0.1, 0
            vel += dt * force
            move = dt * vel
            longest = np.sqrt(np.einsum("ij,ij->i", move, move).max())
            if longest > max_move:
                move *= max_move / longest
            self.coord += move
            self._compute()
        return max_steps

    def run(self, n_steps: int, temperature: Optional[float] = None, tau: float = 100.0,
            rng: Optional[np.random.Generator] = None,
            on_step: Optional[Callable[[], None]] = None):
        """``n_steps`` velocity-Verlet steps; with ``temperature``, a Bussi thermostat of
        relaxation time ``tau`` (fs) acts after each step. ``on_step()`` is called per step."""
        half_dt = 0.5 * self.dt
        if temperature is not None:
            c = math.exp(-self.dt / tau)
            target = 0.5 * self.ndof * BOLTZMANN * temperature
        for _ in range(n_steps):
            self.vel += half_dt * self.force * self._inv_mass
            self.coord += self.dt * self.vel
            self._compute()
            self.vel += half_dt * self.force * self._inv_mass
            if temperature is not None:
                self.vel *= _bussi_scale(self.kinetic_energy(), target, self.ndof, c, rng)
            if on_step is not None:
                on_step()

    def frame(self) -> dict:
        """The current configuration with energy, forces and virial, atoms wrapped into the box."""
        self._compute(virial=True)
        frac = self.coord @ np.linalg.inv(self.box)
        return {"coord": (frac - np.floor(frac)) @ self.box, "box": self.box.copy(),
                "energy": self.energy, "force": self.force.copy(), "virial": self.virial.copy()}


def sample_system(n_frames: int, rng: np.random.Generator, n_molecules: int = 64,
                  temperature: float = 300.0, stride: int = 20, equilibration: int = 2000,
                  dt: float = 0.5, tau: float = 100.0, density: float = 1.0,
                  params: Optional[WaterParameters] = None,
                  on_step: Optional[Callable[[bool], None]] = None) -> dict:
    """One independent trajectory: placement, relaxation, ``equilibration`` thermostatted steps,
    then ``n_frames`` frames ``stride`` steps apart. ``on_step(frame_taken)`` is called per step.

    Returns arrays in DeePMD-kit's frame layout: coord and force (nf, 3n), box and virial (nf, 9),
    energy (nf,), and ``types`` (3n,).
    """
    model = WaterModel(n_molecules, params)
    coord, box = random_water_box(n_molecules, rng, density, model.params)
    md = WaterMD(model, coord, box, dt=dt)
    md.minimise(fmax=0.1, max_steps=500)  # removes close contacts; MD does the rest
    md.set_velocities(temperature, rng)
    step = (lambda: on_step(False)) if on_step is not None else None
    md.run(equilibration, temperature, tau, rng, on_step=step)
    frames = []
    for _ in range(n_frames):
        md.run(stride - 1, temperature, tau, rng, on_step=step)
        md.run(1, temperature, tau, rng)
        frames.append(md.frame())
        if on_step is not None:
            on_step(True)
    return {
        "types": model.types.copy(),
        "coord": np.array([f["coord"].reshape(-1) for f in frames]),
        "box": np.array([f["box"].reshape(-1) for f in frames]),
        "energy": np.array([f["energy"] for f in frames]),
        "force": np.array([f["force"].reshape(-1) for f in frames]),
        "virial": np.array([f["virial"].reshape(-1) for f in frames]),
    }


def write_system(path: str, system: dict):
    """Write one DeePMD-kit npy system: type.raw and set.000/*.npy (float64). The types are
    indices into TYPE_MAP (O = 0, H = 1), the order of the example's type_map, so the system
    needs no type_map.raw."""
    set_dir = os.path.join(path, "set.000")
    os.makedirs(set_dir, exist_ok=True)
    with open(os.path.join(path, "type.raw"), "w") as f:
        f.write("".join(f"{t}\n" for t in system["types"]))
    for key in ("coord", "box", "energy", "force", "virial"):
        np.save(os.path.join(set_dir, f"{key}.npy"),
                np.ascontiguousarray(system[key], dtype=np.float64))


# ---------------------------------------------------------------------------------------------
# Command line.


class _Progress:
    """One status line on a stream: frames done, rates and estimated time left."""

    def __init__(self, total_steps: int, total_frames: int, stream, interval: float = 0.5):
        self.total_steps, self.total_frames = total_steps, total_frames
        self.stream, self.interval = stream, interval
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.steps = self.frames = 0
        self.system = ""
        self.start = self.last = time.perf_counter()

    def step(self, frame_taken: bool):
        self.steps += 1
        self.frames += int(frame_taken)
        now = time.perf_counter()
        if now - self.last >= (self.interval if self.tty else 10.0):
            self.last = now
            self._show(now)

    def _show(self, now: float, end: str = ""):
        elapsed = max(now - self.start, 1e-9)
        rate = self.steps / elapsed
        eta = (self.total_steps - self.steps) / rate if rate > 0 else float("inf")
        line = (f"water: {self.system} frames {self.frames}/{self.total_frames}, "
                f"{self.frames / elapsed:.2f} frames/s ({rate:.0f} MD steps/s), "
                f"elapsed {_clock(elapsed)}, ETA {_clock(eta)}")
        if self.tty:
            self.stream.write("\r" + line + "\033[K" + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self):
        self._show(time.perf_counter(), end="\n" if self.tty else "")


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deepmd_tebd.tools.water",
        description="Generate example water training data (DeePMD-kit npy systems) from a "
                    "classical flexible-water model (SPC/Fw parameters, DSF Coulomb) by "
                    "thermostatted molecular dynamics. See deepmd_tebd/tools/README.md.")
    parser.add_argument("output", help="directory to write data_0, data_1, ... into")
    parser.add_argument("--systems", type=int, default=4, help="independent trajectories (4)")
    parser.add_argument("--frames", type=int, default=80, help="frames per system (80)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--molecules", type=int, default=64, help="waters per box (64)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (300)")
    parser.add_argument("--density", type=float, default=1.0, help="g/cm^3 (1.0)")
    parser.add_argument("--stride", type=int, default=20,
                        help="MD steps of 0.5 fs between frames (20)")
    parser.add_argument("--equilibration", type=int, default=2000,
                        help="MD steps before the first frame (2000)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    for name in ("systems", "frames", "molecules", "stride"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.equilibration < 0:
        parser.error("--equilibration must not be negative")

    steps_per_system = args.equilibration + args.frames * args.stride
    progress = None if args.quiet else _Progress(
        args.systems * steps_per_system, args.systems * args.frames, sys.stderr)
    for index in range(args.systems):
        rng = np.random.default_rng([args.seed, index])
        if progress is not None:
            progress.system = f"system {index + 1}/{args.systems},"
        system = sample_system(args.frames, rng, n_molecules=args.molecules,
                               temperature=args.temperature, stride=args.stride,
                               equilibration=args.equilibration, density=args.density,
                               on_step=None if progress is None else progress.step)
        write_system(os.path.join(args.output, f"data_{index}"), system)
    if progress is not None:
        progress.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
