"""Pre-exploration: choose an initial training set by the grade alone (no oracle calls).

A pool of random structures (the search's own symmetric generator with
minimal distances, various atom counts, each also compressed and expanded) is
graded against an empty active set of an initial (untrained) MTP; maxvol keeps
the configurations whose rows span the largest volume.  The rows of the
linear parameters depend only on the radial functions, which an untrained
potential already has, so no reference data are needed.

>>> from pes_core.search import SearchSettings  # doctest: +SKIP
>>> pool = random_pool(SearchSettings(composition={"Si": 1}, n_atoms=(2, 8)), 30, seed=0)  # doctest: +SKIP
>>> res = preselect(MTPPotential.from_level(10, ["Si"]), pool)  # doctest: +SKIP
>>> len(res.indices) <= res.active_set.size  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms

from pes_core.active.active_set import ActiveSet
from pes_core.mtp import MTPPotential

__all__ = ["PreselectResult", "preselect", "random_pool"]


def random_pool(settings, size: int, seed: int = 0, atom_counts: Sequence[int] | None = None,
                volume_factors: Sequence[float] = (0.85, 1.0, 1.2), max_attempts: int = 20) -> list[Atoms]:
    """Random symmetric structures with minimal distances, and volume-scaled copies.

    Parameters
    ----------
    settings : pes_core.search.SearchSettings
        Composition, atom-count range, minimal distances, volume estimate.
    size : int
        Number of distinct random structures (the pool holds
        ``size * len(volume_factors)`` configurations).
    seed : int
        Seed of the generator.
    atom_counts : sequence of int, optional
        Atom counts to draw from (default: all the settings allow).
    volume_factors : sequence of float
        Volume multiples of each structure (1.0 keeps it); compressed copies
        never go below 0.7 of the minimal distances.
    max_attempts : int
        Tries per structure before giving up.
    """
    from pes_core.search.operators import min_distance_ratio, random_structure

    rng = np.random.default_rng([int(seed), 7919])
    counts = list(atom_counts or settings.allowed_atom_counts())
    if not counts:
        raise ValueError(f"no atom count in {settings.n_atoms} fits the composition {settings.composition}")
    pool: list[Atoms] = []
    for k in range(int(size)):
        n = int(counts[k % len(counts)])
        atoms = None
        for _ in range(max_attempts):
            atoms = random_structure(settings, rng, n_atoms=n)
            if atoms is not None:
                break
        if atoms is None:
            raise RuntimeError(f"could not build a random {n}-atom structure of {settings.composition}; "
                               "relax the minimal distances")
        ratio = min_distance_ratio(atoms, settings)
        for f in volume_factors:
            lin = float(f) ** (1 / 3)
            if np.isfinite(ratio) and ratio * lin < 0.7:
                continue
            b = atoms.copy()
            b.set_cell(atoms.cell * lin, scale_atoms=True)
            b.info = {"pool_index": len(pool), "volume_factor": float(f)}
            pool.append(b)
    return pool


@dataclass
class PreselectResult:
    """Indices of the chosen pool members, grades of the whole pool, the active set."""

    indices: list[int]
    grades: np.ndarray
    active_set: ActiveSet


def preselect(potential: MTPPotential, pool: Sequence[Atoms], mode: str = "configuration",
              include_radial: bool = False, max_configurations: int | None = None,
              active_set: ActiveSet | None = None) -> PreselectResult:
    """Maxvol selection from ``pool`` against ``active_set`` (default: an empty one).

    Parameters
    ----------
    potential : MTPPotential
        Initial potential (radial coefficients set; linear ones may be zero).
    pool : sequence of ase.Atoms
        Candidate structures.
    mode : {"configuration", "neighbourhood"}
        Active-set mode.
    include_radial : bool
        Rows over all parameters.
    max_configurations : int, optional
        Cap on the selected configurations (highest grades first).
    active_set : ActiveSet, optional
        Start from this set (e.g. of an existing training set).
    """
    if potential.radial_coeffs is None:
        potential = potential.copy()
        potential.initialize(np.random.default_rng(0))
    if potential.species_coeffs is None or potential.moment_coeffs is None:
        potential = potential.copy()
        potential.initialize(np.random.default_rng(0))
    aset = active_set.copy() if active_set is not None else ActiveSet.empty(potential, mode, include_radial)
    res = aset.select(potential, list(pool), labels=[str(k) for k in range(len(pool))],
                      max_configurations=max_configurations)
    return PreselectResult(res.selected, res.grades, aset)
