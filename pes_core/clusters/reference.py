"""Reference (high-symmetry) crystals used by the cluster and CCD code.

The builders return pymatgen :class:`~pymatgen.core.Structure` objects in the
conventional setting that the cluster code expects (lengths in Å).  They may
later move to ``pes_core.structures``; import them from
``pes_core.clusters`` to be insulated from that move.
"""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

__all__ = ["cubic_cspbbr3", "zincblende"]


def cubic_cspbbr3(a: float = 5.87) -> Structure:
    """Cubic perovskite CsPbBr3 (Pm-3m, 5 atoms).

    Pb on Wyckoff 1a (origin), Cs on 1b (body centre), Br on 3d
    (edge centres: (1/2,0,0), (0,1/2,0), (0,0,1/2)).

    Parameters
    ----------
    a : float
        Cubic lattice parameter in Å.

    Returns
    -------
    Structure
        Sites ordered Pb, Cs, Br, Br, Br.
    """
    if a <= 0:
        raise ValueError(f"lattice parameter a must be positive, got {a} Å")
    return Structure(
        Lattice.cubic(a),
        ["Pb", "Cs", "Br", "Br", "Br"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]],
    )


def zincblende(a: float = 5.41, species: tuple[str, str] = ("Zn", "S")) -> Structure:
    """Zincblende crystal (F-43m) in its primitive fcc cell (2 atoms).

    The cation sits at the origin, the anion at (1/4,1/4,1/4) of the cubic
    cell, so every anion is the centre of a regular (Td) cation tetrahedron.

    Parameters
    ----------
    a : float
        Cubic (conventional) lattice parameter in Å.
    species : tuple of str
        (cation, anion) element symbols.

    Returns
    -------
    Structure
        Primitive cell with the cation first.
    """
    if a <= 0:
        raise ValueError(f"lattice parameter a must be positive, got {a} Å")
    lattice = Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])
    return Structure(
        lattice, list(species), [[0, 0, 0], [0.25, 0.25, 0.25]]
    )
