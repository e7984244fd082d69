"""Mosaic supercells: larger cells assembled from different distorted copies of one training cell.

A model that is a sum of local terms (the cluster, site and linear models of
:mod:`pes_core.ann`) fitted only to cells of one size learns only the
combinations of its local terms that those cells contain: in a 2x2x2
perovskite cell every octahedron's neighbours two cells away are its own
images, so couplings between neighbouring environments that a periodic
40-atom cell cannot hold are not determined by its data, and a larger cell
may combine the local terms in ways no training configuration did.  A
*mosaic* places ``prod(repeats)`` different training configurations (for
example oracle MD snapshots) side by side in one supercell of the reference:
each block keeps its own displacements, and neighbouring blocks are
uncorrelated, as in a large cell at finite temperature beyond the
correlation length.  Labelled by the oracle and added to a fit as larger
cells (``pes_fit.extra_training``), they constrain those couplings without a
model in the loop.

Measured on the full CsPbBr3 set (docs/thermo.md): the linear order-4 model of
the 40-atom cells, 3.1 meV/atom RMSE on the 100 CHGNet MD cells, was
-10.6 meV/atom off on average (RMSE 11.3) on 16 mosaics of 8 of those cells;
CHGNet put the mosaics 18-40 meV/atom above the mean of their blocks (the
cost of the block boundaries) and the model only 2/3 of that
(``benchmarks/thermo_mosaic.py``).

Example
-------
>>> from pes_core.sampling.mosaic import mosaic_supercells
>>> big = mosaic_supercells(reference, md_cells, count=100, repeats=2, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymatgen.core import Lattice, Structure
from scipy.optimize import linear_sum_assignment

__all__ = ["block_displacements", "mosaic_supercells"]


def _repeats(repeats) -> tuple[int, int, int]:
    r = (int(repeats),) * 3 if np.isscalar(repeats) else tuple(int(x) for x in repeats)
    if len(r) != 3 or min(r) < 1 or int(np.prod(r)) < 2:
        raise ValueError(f"repeats must be a positive int or three positive ints with at least 2 blocks, "
                         f"got {repeats!r}")
    return r  # type: ignore[return-value]


def block_displacements(reference: Structure, cell: Structure, max_displacement: float = 2.0) -> np.ndarray:
    """Fractional displacements ``(n_atoms, 3)`` of ``cell``'s atoms from the sites of ``reference``.

    ``cell`` is a distorted copy of ``reference`` (same composition and atom
    count, any atom order, any lattice close to the reference's); each of its
    atoms is assigned to one reference site of its species (the one-to-one
    assignment of least total periodic distance, scipy's Hungarian method).
    Row ``i`` belongs to reference site ``i``.

    Raises
    ------
    ValueError
        Another composition or atom count, or an atom farther than
        ``max_displacement`` (Å, minimum image) from its site.
    """
    if len(cell) != len(reference) or cell.composition != reference.composition:
        raise ValueError(f"a block of {cell.composition.formula} ({len(cell)} atoms) is not a distorted copy of the "
                         f"reference {reference.composition.formula} ({len(reference)} atoms)")
    ref_f = reference.frac_coords
    f = cell.frac_coords
    ref_sp = np.array([str(s.specie) for s in reference])
    sp = np.array([str(s.specie) for s in cell])
    out = np.empty_like(ref_f)
    for name in np.unique(ref_sp):
        i = np.flatnonzero(ref_sp == name)
        j = np.flatnonzero(sp == name)
        d = f[j][None, :, :] - ref_f[i][:, None, :]
        d -= np.round(d)
        cost = np.linalg.norm(d @ reference.lattice.matrix, axis=-1)
        rows, cols = linear_sum_assignment(cost)
        out[i[rows]] = d[rows, cols]
    worst = float(np.linalg.norm(out @ reference.lattice.matrix, axis=1).max(initial=0.0))
    if worst > max_displacement:
        raise ValueError(f"an atom of the block lies {worst:.2f} Å from its reference site (limit {max_displacement} "
                         f"Å); is the block a distorted copy of the reference cell with the same origin?")
    return out


def mosaic_supercells(reference: Structure, cells: Sequence[Structure], count: int, repeats=2, seed: int = 0,
                      ) -> list[Structure]:
    """``count`` supercells of ``reference``, each block a different member of ``cells``.

    Parameters
    ----------
    reference : Structure
        The undistorted training cell (e.g. the featurizer's reference
        structure, 40 atoms of CsPbBr3): the sites the blocks' displacements
        are measured from.
    cells : sequence of Structure
        Distorted copies of ``reference`` (oracle MD snapshots, training
        configurations); at least as many as there are blocks.
    count : int
        Number of mosaics.
    repeats : int or (int, int, int)
        Blocks along each lattice vector (2: a 2x2x2 supercell of the cell,
        320 atoms for the 40-atom CsPbBr3 cell).
    seed : int
        Seed of the choice of blocks (deterministic).

    Returns
    -------
    list of Structure
        Atoms in the order of the blocks (block ``(0,0,0)`` first, then the
        last index fastest), each block in ``reference``'s site order; the
        lattice is ``repeats`` times the mean lattice of the chosen blocks.
        Block ``b`` at offset ``n_b`` holds site ``i`` at fractional
        ``(f_i + u_i + n_b) / repeats`` with ``u`` its own displacements
        (:func:`block_displacements`).  ``properties["mosaic_blocks"]`` lists
        the indices into ``cells`` of the blocks, in that order.
    """
    r = _repeats(repeats)
    n_blocks = int(np.prod(r))
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if len(cells) < n_blocks:
        raise ValueError(f"{n_blocks} blocks need at least {n_blocks} different cells, got {len(cells)}")
    disp = [block_displacements(reference, c) for c in cells]
    lattices = np.array([c.lattice.matrix for c in cells])
    offsets = np.array(list(np.ndindex(*r)), dtype=float)
    species = [s.species for s in reference] * n_blocks
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        pick = rng.choice(len(cells), n_blocks, replace=False)
        frac = np.concatenate([(reference.frac_coords + disp[p] + off) / r for p, off in zip(pick, offsets)])
        lattice = Lattice(lattices[pick].mean(axis=0) * np.array(r)[:, None])
        out.append(Structure(lattice, species, frac, properties={"mosaic_blocks": [int(p) for p in pick]}))
    return out
