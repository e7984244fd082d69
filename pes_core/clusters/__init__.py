"""Clusters of a reference crystal and their orbits under its space group.

Modules
-------
reference
    Reference crystals (cubic ABX3 perovskites, :class:`PerovskiteReference`, zincblende).
symmetry
    Space-group operations (spglib) acting on sites; Wyckoff site orbits.
cluster
    :class:`Cluster`, an ordered tuple of crystal sites.
point_group
    Cluster point groups with site and pair permutations.
orbits
    Orbits of pairs, triplets and coordination polyhedra.
supercell
    Mapping of orbits into a supercell (atom indices + image shifts).

Example
-------
>>> from pes_core.clusters import cubic_cspbbr3, get_space_group, pair_orbits
>>> sg = get_space_group(cubic_cspbbr3())
>>> sg.n_ops, len(pair_orbits(sg, 8.0))
(48, 11)
"""

from __future__ import annotations

from .cluster import Cluster, canonical_key, pair_indices
from .orbits import (
    ClusterOrbit,
    octahedron_orbits,
    orbit_of,
    pair_orbits,
    polyhedron_orbits,
    tetrahedron_orbits,
    triplet_orbits,
)
from .point_group import ClusterPointGroup, cluster_point_group
from .reference import PerovskiteReference, cubic_cspbbr3, perovskite, zincblende
from .supercell import Supercell, SupercellOrbit, map_orbit
from .symmetry import SpaceGroup, get_space_group

__all__ = [
    "Cluster",
    "ClusterOrbit",
    "ClusterPointGroup",
    "PerovskiteReference",
    "SpaceGroup",
    "Supercell",
    "SupercellOrbit",
    "canonical_key",
    "cluster_point_group",
    "cubic_cspbbr3",
    "get_space_group",
    "map_orbit",
    "octahedron_orbits",
    "orbit_of",
    "pair_indices",
    "pair_orbits",
    "perovskite",
    "polyhedron_orbits",
    "tetrahedron_orbits",
    "triplet_orbits",
    "zincblende",
]
