"""Molecular dynamics of the flexible-water model (water_forcefield.py) that samples the example
data of deepmd_tebd.tools.water.

``random_water_box`` places molecules at random without overlap; ``WaterMD`` relaxes them with FIRE
and runs velocity-Verlet dynamics with a Bussi stochastic velocity-rescaling thermostat;
``sample_system`` runs one trajectory and keeps a frame every ``stride`` steps. Units: Å, eV,
amu, fs, K.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from .water_forcefield import (AMU_A2_FS2, BOLTZMANN, GRAM_PER_AMU, PairList, WaterModel,
                               WaterParameters)


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
        """The kinetic energy (eV) of the current velocities."""
        return 0.5 * AMU_A2_FS2 * float(np.sum(self.model.masses[:, None] * self.vel**2))

    def temperature(self) -> float:
        """The instantaneous temperature (K), over the degrees of freedom ndof."""
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
