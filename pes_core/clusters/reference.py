"""Reference (high-symmetry) crystals used by the cluster and CCD code.

The builders return pymatgen :class:`~pymatgen.core.Structure` objects in the
conventional setting that the cluster code expects (lengths in Å).  They may
later move to ``pes_core.structures``; import them from
``pes_core.clusters`` to be insulated from that move.

:class:`PerovskiteReference` names a cubic ABX3 perovskite (species, lattice
parameter, supercell): the PES training sets, featurizers and energy paths
of any perovskite are built from it.

Example
-------
>>> ref = PerovskiteReference("Sr", "Ti", "O", a=3.905)
>>> ref.formula, ref.n_atoms, [str(s.specie) for s in ref.primitive()]
('SrTiO3', 40, ['Ti', 'Sr', 'O', 'O', 'O'])
>>> PerovskiteReference.from_supercell(ref.primitive() * (2, 2, 2)) == ref
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from pymatgen.core import Element, Lattice, Structure

__all__ = ["PerovskiteReference", "cubic_cspbbr3", "perovskite", "zincblende"]


def perovskite(a: float, species: tuple[str, str, str] = ("Cs", "Pb", "Br")) -> Structure:
    """Cubic ABX3 perovskite (Pm-3m, 5 atoms).

    B on Wyckoff 1a (origin), A on 1b (body centre), X on 3d
    (edge centres: (1/2,0,0), (0,1/2,0), (0,0,1/2)).

    Parameters
    ----------
    a : float
        Cubic lattice parameter in Å.
    species : (A, B, X)
        Elements of the A (cage), B (octahedron centre) and X (anion) sites.

    Returns
    -------
    Structure
        Sites ordered B, A, X, X, X.
    """
    if a <= 0:
        raise ValueError(f"lattice parameter a must be positive, got {a} Å")
    A, B, X = species
    return Structure(
        Lattice.cubic(a),
        [B, A, X, X, X],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]],
    )


def cubic_cspbbr3(a: float = 5.87) -> Structure:
    """Cubic perovskite CsPbBr3 (Pm-3m, 5 atoms): :func:`perovskite` with (Cs, Pb, Br).

    Parameters
    ----------
    a : float
        Cubic lattice parameter in Å.

    Returns
    -------
    Structure
        Sites ordered Pb, Cs, Br, Br, Br.
    """
    return perovskite(a, ("Cs", "Pb", "Br"))


@dataclass(frozen=True)
class PerovskiteReference:
    """A cubic ABX3 perovskite and the supercell its PES is sampled in.

    Attributes
    ----------
    A, B, X : str
        Elements of the A (cage), B (octahedron centre) and X (anion) sites.
    a : float
        Cubic lattice parameter, Å (the starting value of a relaxation, or the relaxed one).
    supercell : (int, int, int)
        Diagonal supercell of the 5-atom cell; every entry even (the zone-boundary
        tilts of all 15 Glazer systems need two octahedra along each axis).
    """

    A: str
    B: str
    X: str
    a: float
    supercell: tuple[int, int, int] = (2, 2, 2)

    def __post_init__(self) -> None:
        for site in ("A", "B", "X"):
            el = getattr(self, site)
            if not isinstance(el, str) or not Element.is_valid_symbol(el):
                raise ValueError(f"perovskite {site} site: {el!r} is not an element symbol (e.g. Cs, Pb, Br)")
        if len({self.A, self.B, self.X}) != 3:
            raise ValueError(f"perovskite sites need three different elements, got A={self.A}, B={self.B}, X={self.X}")
        if not self.a > 0:
            raise ValueError(f"lattice parameter a must be positive, got {self.a} Å")
        sc = tuple(int(n) for n in self.supercell)
        if len(sc) != 3 or any(n < 2 or n % 2 for n in sc):
            raise ValueError(f"supercell {list(self.supercell)} must be three even numbers >= 2, e.g. [2, 2, 2] "
                             "(the tilt systems need two octahedra along each axis)")
        object.__setattr__(self, "supercell", sc)
        object.__setattr__(self, "a", float(self.a))

    @property
    def species(self) -> tuple[str, str, str]:
        """``(A, B, X)``."""
        return (self.A, self.B, self.X)

    @property
    def formula(self) -> str:
        """Reduced formula, e.g. ``"CsPbBr3"``."""
        return f"{self.A}{self.B}{self.X}3"

    @property
    def n_atoms(self) -> int:
        """Atoms in the supercell (5 per formula unit)."""
        return 5 * int(np.prod(self.supercell))

    def primitive(self, a: float | None = None) -> Structure:
        """The 5-atom cubic cell (:func:`perovskite`) at ``a`` (Å; default: this reference's)."""
        return perovskite(self.a if a is None else float(a), self.species)

    def with_a(self, a: float) -> PerovskiteReference:
        """The same perovskite at lattice parameter ``a`` (Å)."""
        return replace(self, a=float(a))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["supercell"] = list(self.supercell)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PerovskiteReference:
        return cls(**{**d, "supercell": tuple(d.get("supercell", (2, 2, 2)))})

    @classmethod
    def from_supercell(cls, structure: Structure) -> PerovskiteReference:
        """The reference of a (pseudo-)cubic ABX3 supercell (any atom order).

        X is the element with three atoms per formula unit; of the other two,
        B is the one nearer to an X atom (B-X = a/2, A-X = a/sqrt(2)).  The
        supercell comes from the cell lengths over the lattice parameter of
        the volume per formula unit, ``a`` from the first cell length.
        """
        n = len(structure)
        comp = structure.composition.element_composition
        counts = {str(el): int(round(c)) for el, c in comp.items()}
        f = n // 5
        xs = [el for el, c in counts.items() if c == 3 * f]
        cations = [el for el, c in counts.items() if c == f]
        if n % 5 or n < 5 or len(counts) != 3 or len(xs) != 1 or len(cations) != 2:
            raise ValueError(f"not an ABX3 perovskite supercell: {structure.composition.formula} ({n} atoms)")
        x_idx = [i for i, s in enumerate(structure) if str(s.specie) == xs[0]]

        def nearest_x(el: str) -> float:
            i = next(i for i, s in enumerate(structure) if str(s.specie) == el)
            return float(min(structure.get_distance(i, j) for j in x_idx))

        b, a_site = sorted(cations, key=nearest_x)
        a_vol = float((structure.volume / f) ** (1.0 / 3.0))
        sc = tuple(int(round(x / a_vol)) for x in structure.lattice.abc)
        return cls(A=a_site, B=b, X=xs[0], a=float(structure.lattice.abc[0] / sc[0]), supercell=sc)


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
