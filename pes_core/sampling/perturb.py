"""Training-set generators: perturbations of a parent structure.

The simplest generator, used by the embedded demo and by MTP
pre-training: random homogeneous strains plus random atomic displacements of
a (super)cell.  Deterministic under a seed.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

from pes_core.structures import DEFAULT_MIN_DISTANCE, min_interatomic_distance

__all__ = ["rattled_strained"]


def rattled_strained(parent: Structure, count: int, *, rattle: float = 0.05, strain: float = 0.02,
                     supercell: tuple[int, int, int] | list[int] | None = None, seed: int = 0,
                     min_distance: float = DEFAULT_MIN_DISTANCE, max_tries: int = 100) -> list[Structure]:
    """Randomly strained and rattled copies of ``parent``.

    Parameters
    ----------
    parent : Structure
        The reference structure.
    count : int
        Number of structures to produce.
    rattle : float
        Standard deviation of the Gaussian displacement of each Cartesian
        coordinate, in Å.
    strain : float
        Half-width of the uniform distribution of each component of the
        symmetric strain tensor (dimensionless).
    supercell : sequence of 3 int, optional
        Build the supercell first.
    seed : int
        Seed of the random generator.
    min_distance : float
        Samples with atoms closer than this (Å) are redrawn.
    max_tries : int
        Give up (``ValueError``) after this many rejected draws in a row.
    """
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    base = parent.copy()
    if supercell is not None:
        base.make_supercell(list(supercell))
    rng = np.random.default_rng(seed)
    out: list[Structure] = []
    while len(out) < count:
        for _ in range(max_tries):
            eps = rng.uniform(-strain, strain, size=(3, 3))
            eps = 0.5 * (eps + eps.T)
            deform = np.eye(3) + eps
            lattice = Lattice(base.lattice.matrix @ deform.T)
            cart = base.cart_coords @ deform.T + rng.normal(0.0, rattle, size=(len(base), 3))
            s = Structure(lattice, base.species, cart, coords_are_cartesian=True)
            if min_interatomic_distance(s)[0] >= min_distance:
                out.append(s)
                break
        else:
            raise ValueError(
                f"could not draw a sample without atoms closer than {min_distance} Å in "
                f"{max_tries} tries; lower 'rattle' ({rattle} Å) or 'strain' ({strain})"
            )
    return out
