"""Shared helpers of the MTP tests: random potentials and structures."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk

from pes_core.mtp import MTPPotential

SPECIES = [14, 6, 8]


def random_potential(level: int, n_species: int, seed: int = 0, r_min: float = 1.9, r_cut: float = 5.0) -> MTPPotential:
    """A potential with random coefficients of moderate size."""
    rng = np.random.default_rng(seed)
    pot = MTPPotential.from_level(level, SPECIES[:n_species], r_min, r_cut, seed=seed)
    pot.species_coeffs = rng.normal(size=n_species)
    pot.moment_coeffs = rng.normal(size=pot.basis.alpha_scalar_moments) * 0.1
    pot.radial_coeffs = rng.normal(size=pot.radial_coeffs.shape) * 0.03
    return pot


def random_crystal(n_species: int, seed: int = 0, repeat: int = 1, rattle: float = 0.12) -> Atoms:
    """A rattled, sheared diamond-like cell with random species."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(repeat)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(size=(3, 3)) * 0.03), scale_atoms=True)
    atoms.rattle(rattle, seed=seed)
    atoms.numbers = rng.choice(SPECIES[:n_species], len(atoms))
    return atoms


def random_cluster(n_species: int, seed: int = 0, n: int = 10) -> Atoms:
    """A non-periodic cluster with interatomic distances >= ~2 Å."""
    rng = np.random.default_rng(seed)
    pos = []
    while len(pos) < n:
        p = rng.uniform(0, 6.0, 3)
        if all(np.linalg.norm(p - q) > 2.0 for q in pos):
            pos.append(p)
    return Atoms(numbers=rng.choice(SPECIES[:n_species], n), positions=pos)
