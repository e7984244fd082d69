"""Declarative selection of cluster orbits (what a featurizer is built from).

Example
-------
>>> from pes_core.ccd.specs import OrbitSpec
>>> specs = [OrbitSpec("pair", cutoff=8.0, index=i) for i in range(7)]
>>> specs += [OrbitSpec("triplet", cutoff=6.0), OrbitSpec("octahedron", center="Pb", ligand="Br")]
"""

from __future__ import annotations

from dataclasses import dataclass

from pymatgen.core import Structure

from ..clusters.orbits import ClusterOrbit, pair_orbits, polyhedron_orbits, triplet_orbits
from ..clusters.symmetry import SpaceGroup, get_space_group

__all__ = ["OrbitSpec", "resolve_orbits"]

_KINDS = ("pair", "triplet", "octahedron", "tetrahedron", "polyhedron")


@dataclass(frozen=True)
class OrbitSpec:
    """One cluster orbit, named by kind and rank.

    Parameters
    ----------
    kind : str
        ``"pair"``, ``"triplet"``, ``"octahedron"``, ``"tetrahedron"`` or ``"polyhedron"``.
    cutoff : float, optional
        Largest pair distance (Å) for pairs and triplets.
    index : int
        Rank of the orbit among those of its kind (sorted by size, 0 = smallest).
    center, ligand : str, optional
        Element symbols for polyhedra (e.g. ``"Pb"``, ``"Br"``).
    n_vertices : int, optional
        Vertices of a generic ``"polyhedron"``.
    """

    kind: str
    cutoff: float | None = None
    index: int = 0
    center: str | None = None
    ligand: str | None = None
    n_vertices: int | None = None

    def resolve(self, reference: Structure | SpaceGroup) -> ClusterOrbit:
        """The orbit this spec names in ``reference``."""
        sg = reference if isinstance(reference, SpaceGroup) else get_space_group(reference)
        if self.kind not in _KINDS:
            raise ValueError(f"unknown orbit kind {self.kind!r}; choose one of {_KINDS}")
        if self.kind in ("pair", "triplet"):
            if self.cutoff is None:
                raise ValueError(f"a {self.kind} spec needs a cutoff in Å")
            orbits = (pair_orbits if self.kind == "pair" else triplet_orbits)(sg, self.cutoff)
        else:
            if self.center is None or self.ligand is None:
                raise ValueError(f"a {self.kind} spec needs center and ligand element symbols")
            n = {"octahedron": 6, "tetrahedron": 4}.get(self.kind, self.n_vertices)
            if n is None:
                raise ValueError("a polyhedron spec needs n_vertices")
            orbits = polyhedron_orbits(sg, self.center, self.ligand, n)
        if not 0 <= self.index < len(orbits):
            raise ValueError(
                f"{self.kind} orbit index {self.index} out of range: {len(orbits)} orbits found "
                f"(cutoff {self.cutoff} Å)"
            )
        return orbits[self.index]


def resolve_orbits(
    reference: Structure | SpaceGroup, specs: list[OrbitSpec | ClusterOrbit]
) -> list[ClusterOrbit]:
    """Turn specs (or ready orbits) into orbits; orbit names must be unique."""
    sg = reference if isinstance(reference, SpaceGroup) else get_space_group(reference)
    out = [s if isinstance(s, ClusterOrbit) else s.resolve(sg) for s in specs]
    names = [o.name for o in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"orbits selected twice: {sorted(dup)}")
    return out
