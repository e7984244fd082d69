"""Orbits of clusters (pairs, triplets, coordination polyhedra) under a space group.

An orbit is stored modulo lattice translations: ``members`` holds one cluster
per translation class, each with its sites in the order obtained by applying a
space-group operation to the representative.  That consistent order is what
lets a single CCD matrix ``U`` serve every cluster of the orbit.

Example
-------
>>> from pes_core.clusters import cubic_cspbbr3, pair_orbits
>>> orbits = pair_orbits(cubic_cspbbr3(), cutoff=8.0)
>>> len(orbits)
11
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from pymatgen.core import Structure

from .cluster import Cluster, canonical_key
from .point_group import ClusterPointGroup, cluster_point_group
from .symmetry import SpaceGroup, get_space_group

__all__ = [
    "ClusterOrbit",
    "octahedron_orbits",
    "orbit_of",
    "pair_orbits",
    "polyhedron_orbits",
    "tetrahedron_orbits",
    "triplet_orbits",
]


@dataclass(frozen=True, eq=False)
class ClusterOrbit:
    """All clusters equivalent to a representative under the space group.

    Attributes
    ----------
    name : str
        Unique, readable name (e.g. ``"pair0_Pb-Br_2.935"``, ``"PbBr6_octahedron"``).
    kind : str
        ``"pair"``, ``"triplet"`` or ``"polyhedron"``.
    space_group : SpaceGroup
        Symmetry of the reference crystal.
    members : tuple of Cluster
        One cluster per lattice-translation class; ``members[0]`` is the
        representative.  Site order is consistent across members.
    point_group : ClusterPointGroup
        Point group of the representative with site permutations.
    """

    name: str
    kind: str
    space_group: SpaceGroup = field(repr=False)
    members: tuple[Cluster, ...] = field(repr=False)
    point_group: ClusterPointGroup = field(repr=False)

    @property
    def representative(self) -> Cluster:
        """The first member."""
        return self.members[0]

    @property
    def n_sites(self) -> int:
        """Sites per cluster."""
        return self.representative.n_sites

    @property
    def n_pairs(self) -> int:
        """Pair distances per cluster, ``n(n-1)/2``."""
        return self.n_sites * (self.n_sites - 1) // 2

    @property
    def multiplicity(self) -> int:
        """Clusters per reference (primitive) cell."""
        return len(self.members)

    @property
    def species(self) -> tuple[str, ...]:
        """Element of every site of the representative."""
        s = self.space_group.structure
        return tuple(str(s[k].specie) for k, *_ in self.representative.sites)

    @property
    def reference_distances(self) -> np.ndarray:
        """Reference pair distances ``d~`` (Å) in pair order."""
        return self.representative.distances(self.space_group.frac, self.space_group.lattice)

    def clusters_per_site(self) -> dict[str, int]:
        """Site-centric view: how many clusters of the orbit contain one site.

        Returns
        -------
        dict
            Wyckoff-orbit label (e.g. ``"Br(3d)"``) -> number ``n_alpha`` of
            clusters (all lattice translations) that contain a given site of
            that orbit; labels of sites never in a cluster are left out.
        """
        counts: dict[int, int] = {}
        for mem in self.members:
            for k, *_ in mem.sites:
                counts[k] = counts.get(k, 0) + 1
        out: dict[str, int] = {}
        for k, c in counts.items():
            label = self.space_group.site_orbit_label(k)
            if out.setdefault(label, c) != c:
                raise RuntimeError(f"sites of {label} belong to different numbers of {self.name} clusters")
        return out

    @property
    def reference_positions(self) -> np.ndarray:
        """Cartesian positions (Å) of the representative's sites, ``(n, 3)``."""
        return self.representative.cart_positions(self.space_group.frac, self.space_group.lattice)


def _as_space_group(x: Structure | SpaceGroup, symprec: float = 1e-3) -> SpaceGroup:
    return x if isinstance(x, SpaceGroup) else get_space_group(x, symprec=symprec)


def orbit_of(cluster: Cluster, sg: SpaceGroup) -> tuple[Cluster, ...]:
    """Distinct images (modulo lattice translations) of ``cluster`` under ``sg``.

    The first image is ``cluster`` itself; sites of each image are in the
    order produced by the operation.
    """
    seen = {cluster.key: cluster}
    for op in range(sg.n_ops):
        img = sg.apply(op, cluster.array)
        img[:, 1:] -= img[0, 1:]
        key = canonical_key(img)
        if key not in seen:
            seen[key] = Cluster.from_array(img)
    return tuple(seen.values())


def _neighbours(sg: SpaceGroup, k: int, cutoff: float) -> list[tuple[float, tuple[int, int, int, int]]]:
    """Sites within ``cutoff`` (Å) of reference site ``k`` (home cell), sorted by distance."""
    lat = sg.lattice
    vol = abs(np.linalg.det(lat))
    heights = [vol / np.linalg.norm(np.cross(lat[(i + 1) % 3], lat[(i + 2) % 3])) for i in range(3)]
    nmax = [int(np.ceil(cutoff / h)) + 1 for h in heights]
    grid = np.stack(
        np.meshgrid(*[np.arange(-m, m + 1) for m in nmax], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    x0 = sg.frac[k] @ lat
    out = []
    for j in range(len(sg.frac)):
        pos = (sg.frac[j] + grid) @ lat
        d = np.linalg.norm(pos - x0, axis=1)
        for n, dist in zip(grid[(d <= cutoff) & (d > 1e-8)], d[(d <= cutoff) & (d > 1e-8)]):
            out.append((float(dist), (j, *map(int, n))))
    out.sort()
    return out


def _make_orbits(
    candidates: list[Cluster], sg: SpaceGroup, kind: str, namer
) -> list[ClusterOrbit]:
    visited: set = set()
    raw = []
    for c in candidates:
        if c.key in visited:
            continue
        members = orbit_of(c, sg)
        visited.update(m.key for m in members)
        raw.append(members)
    pos = sg.frac
    lat = sg.lattice

    def sort_key(members):
        d = members[0].distances(pos, lat)
        spec = tuple(sorted(str(sg.structure[k].specie) for k, *_ in members[0].sites))
        return (round(float(d.max()), 6), round(float(d.sum()), 6), spec)

    raw.sort(key=sort_key)
    out = []
    for i, members in enumerate(raw):
        out.append(
            ClusterOrbit(
                name=namer(i, members[0]),
                kind=kind,
                space_group=sg,
                members=members,
                point_group=cluster_point_group(members[0], sg),
            )
        )
    return out


def pair_orbits(
    reference: Structure | SpaceGroup, cutoff: float, symprec: float = 1e-3
) -> list[ClusterOrbit]:
    """Orbits of pairs of sites closer than ``cutoff``.

    Parameters
    ----------
    reference : Structure or SpaceGroup
        Reference crystal (or its precomputed space group).
    cutoff : float
        Maximum pair distance in Å (inclusive, with 1e-6 Å tolerance).
    symprec : float
        Symmetry tolerance in Å (when ``reference`` is a Structure).

    Returns
    -------
    list of ClusterOrbit
        Sorted by distance; names ``pair{i}_{A}-{B}_{d:.3f}``.
    """
    sg = _as_space_group(reference, symprec)
    cands = []
    for k in range(len(sg.frac)):
        for _, site in _neighbours(sg, k, cutoff + 1e-6):
            cands.append(Cluster(((k, 0, 0, 0), site)))

    def namer(i, c):
        sp = [str(sg.structure[s[0]].specie) for s in c.sites]
        d = c.distances(sg.frac, sg.lattice)[0]
        return f"pair{i}_{sp[0]}-{sp[1]}_{d:.3f}"

    return _make_orbits(cands, sg, "pair", namer)


def triplet_orbits(
    reference: Structure | SpaceGroup, cutoff: float, symprec: float = 1e-3
) -> list[ClusterOrbit]:
    """Orbits of triplets whose three pair distances are all below ``cutoff`` (Å).

    Returns
    -------
    list of ClusterOrbit
        Sorted by largest then summed pair distance; names
        ``triplet{i}_{A}-{B}-{C}_{dmax:.3f}``.
    """
    sg = _as_space_group(reference, symprec)
    lat = sg.lattice
    cands = []
    for k in range(len(sg.frac)):
        nb = [s for _, s in _neighbours(sg, k, cutoff + 1e-6)]
        pos = np.array([(sg.frac[s[0]] + s[1:]) @ lat for s in nb]) if nb else np.zeros((0, 3))
        for a, b in combinations(range(len(nb)), 2):
            if np.linalg.norm(pos[a] - pos[b]) <= cutoff + 1e-6:
                cands.append(Cluster(((k, 0, 0, 0), nb[a], nb[b])))

    def namer(i, c):
        sp = [str(sg.structure[s[0]].specie) for s in c.sites]
        d = c.distances(sg.frac, sg.lattice).max()
        return f"triplet{i}_{'-'.join(sp)}_{d:.3f}"

    return _make_orbits(cands, sg, "triplet", namer)


def polyhedron_orbits(
    reference: Structure | SpaceGroup,
    center: str,
    ligand: str,
    n_vertices: int,
    symprec: float = 1e-3,
    shell_tol: float = 1e-3,
) -> list[ClusterOrbit]:
    """Orbits of coordination polyhedra: the ``n_vertices`` nearest ``ligand`` atoms of each ``center``.

    The centre itself is not a site of the cluster (the octahedron around Pb
    in CsPbBr3 is the 6-site Br6 cluster with 15 pair distances).

    Parameters
    ----------
    reference : Structure or SpaceGroup
        Reference crystal.
    center, ligand : str
        Element symbols of the central and the vertex atoms.
    n_vertices : int
        Number of vertices (6 for an octahedron, 4 for a tetrahedron).
    symprec : float
        Symmetry tolerance in Å.
    shell_tol : float
        The next ligand must be farther than the ``n_vertices``-th by more
        than this (Å); otherwise the polyhedron is ill-defined.

    Raises
    ------
    ValueError
        If no ``center`` atom exists, or the ligand shell is incomplete or not closed.
    """
    sg = _as_space_group(reference, symprec)
    species = [str(s.specie) for s in sg.structure]
    centers = [k for k, s in enumerate(species) if s == center]
    if not centers:
        raise ValueError(f"no {center} atom in the reference structure (species: {sorted(set(species))})")
    cands = []
    for k in centers:
        rmax = 2.0 * max(np.linalg.norm(sg.lattice, axis=1))
        nb = [(d, s) for d, s in _neighbours(sg, k, rmax) if species[s[0]] == ligand]
        if len(nb) <= n_vertices:
            raise ValueError(f"fewer than {n_vertices + 1} {ligand} atoms found around {center}")
        if nb[n_vertices][0] - nb[n_vertices - 1][0] < shell_tol:
            raise ValueError(
                f"the {n_vertices} nearest {ligand} around {center} do not form a closed shell "
                f"(next neighbour at {nb[n_vertices][0]:.4f} Å vs {nb[n_vertices - 1][0]:.4f} Å); "
                "choose another n_vertices"
            )
        cands.append(Cluster(tuple(s for _, s in nb[:n_vertices])))
    shape = {4: "tetrahedron", 6: "octahedron", 8: "cube", 12: "cuboctahedron"}.get(
        n_vertices, f"{n_vertices}-polyhedron"
    )

    def namer(i, c):
        suffix = "" if i == 0 else f"{i}"
        return f"{center}{ligand}{n_vertices}_{shape}{suffix}"

    return _make_orbits(cands, sg, "polyhedron", namer)


def octahedron_orbits(
    reference: Structure | SpaceGroup, center: str, ligand: str, symprec: float = 1e-3
) -> list[ClusterOrbit]:
    """Orbits of ``ligand`` octahedra around ``center`` atoms (6 sites, 15 distances)."""
    return polyhedron_orbits(reference, center, ligand, 6, symprec=symprec)


def tetrahedron_orbits(
    reference: Structure | SpaceGroup, center: str, ligand: str, symprec: float = 1e-3
) -> list[ClusterOrbit]:
    """Orbits of ``ligand`` tetrahedra around ``center`` atoms (4 sites, 6 distances)."""
    return polyhedron_orbits(reference, center, ligand, 4, symprec=symprec)
