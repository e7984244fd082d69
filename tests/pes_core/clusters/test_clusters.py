"""Space group, orbits and supercell mapping of cubic CsPbBr3."""

from __future__ import annotations

import numpy as np
import pytest

from pes_core.clusters import (
    Supercell,
    cubic_cspbbr3,
    map_orbit,
    octahedron_orbits,
    pair_orbits,
    polyhedron_orbits,
    triplet_orbits,
)


def test_space_group_and_wyckoff(cspbbr3_sg):
    sg = cspbbr3_sg
    assert sg.n_ops == 48
    assert sg.international == "Pm-3m"
    assert sg.site_orbits() == {"Pb(1a)": [0], "Cs(1b)": [1], "Br(3d)": [2, 3, 4]}
    for r in sg.cart_rotations:
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_eleven_pair_orbits_within_8A(cspbbr3_sg):
    orbits = pair_orbits(cspbbr3_sg, 8.0)
    assert len(orbits) == 11
    d = [o.reference_distances[0] for o in orbits]
    assert np.all(np.diff(d) > -1e-9)
    assert d[0] == pytest.approx(5.87 / 2)
    assert max(d) <= 8.0
    # every member of an orbit has the representative's length
    for o in orbits:
        lengths = [m.distances(cspbbr3_sg.frac, cspbbr3_sg.lattice)[0] for m in o.members]
        np.testing.assert_allclose(lengths, d[orbits.index(o)], atol=1e-12)
    # Pb-Br nearest neighbours: 6 per cell, point group C4v (order 8)
    assert orbits[0].species == ("Pb", "Br")
    assert orbits[0].multiplicity == 6
    assert orbits[0].point_group.order == 8
    # pairs per cell below 3 A: (1 Pb x 6 Br + 3 Br x 2 Pb) / 2
    assert sum(o.multiplicity for o in pair_orbits(cubic_cspbbr3(), 3.0)) == 6


def test_octahedron_orbit(octahedron):
    assert octahedron.n_sites == 6
    assert octahedron.multiplicity == 1
    assert octahedron.point_group.order == 48  # Oh
    d = np.sort(octahedron.reference_distances)
    np.testing.assert_allclose(d[:12], 5.87 / np.sqrt(2))
    np.testing.assert_allclose(d[12:], 5.87)
    # permutations are genuine and consistent with the Cartesian operations
    x = octahedron.reference_positions
    c = x.mean(axis=0)
    for r, p in zip(octahedron.point_group.cart_rotations, octahedron.point_group.perms):
        img = np.empty_like(x)
        img[p] = (x - c) @ r.T  # site a is carried onto site p[a]
        np.testing.assert_allclose(img, x - c, atol=1e-10)


def test_triplets_and_tetrahedra(cspbbr3_sg, tetrahedron):
    trip = triplet_orbits(cspbbr3_sg, 4.2)
    assert trip[0].n_sites == 3
    assert trip[0].reference_distances.max() <= 4.2 + 1e-9
    assert tetrahedron.point_group.order == 24  # Td
    np.testing.assert_allclose(tetrahedron.reference_distances, 5.41 / np.sqrt(2))
    with pytest.raises(ValueError, match="closed shell"):
        polyhedron_orbits(cspbbr3_sg, "Pb", "Br", 5)
    with pytest.raises(ValueError, match="no Xe atom"):
        octahedron_orbits(cspbbr3_sg, "Xe", "Br")


def test_supercell_mapping(cspbbr3_sg, octahedron):
    sc = Supercell.build(cspbbr3_sg, 2)
    assert sc.n_atoms == 40
    so = map_orbit(octahedron, sc)
    assert so.n_clusters == 8
    x = sc.positions[so.atoms] + np.einsum("csk,kl->csl", so.shifts, sc.cell)
    for c in range(so.n_clusters):
        d = np.linalg.norm(x[c][:, None] - x[c][None], axis=-1)
        ref = np.linalg.norm(
            octahedron.reference_positions[:, None] - octahedron.reference_positions[None], axis=-1
        )
        np.testing.assert_allclose(d, ref, atol=1e-12)
    # each Br belongs to two octahedra (site-centric orbit count)
    assert octahedron.clusters_per_site() == {"Br(3d)": 2}
    m = so.site_membership(sc.n_atoms)
    br = np.flatnonzero(sc.ref_index >= 2)
    assert np.all(m[br].sum(axis=1) == 2)
    pb_br = pair_orbits(cspbbr3_sg, 3.0)[0]
    assert pb_br.clusters_per_site() == {"Pb(1a)": 6, "Br(3d)": 2}
    # the space group permutes supercell atoms
    for op in range(cspbbr3_sg.n_ops):
        perm, _ = sc.atom_permutation(op)
        assert sorted(perm.tolist()) == list(range(40))


def test_one_cell_supercell_uses_image_shifts(cspbbr3_sg, octahedron):
    sc = Supercell.build(cspbbr3_sg, 1)
    so = map_orbit(octahedron, sc)
    assert so.n_clusters == 1
    assert len(set(so.atoms[0].tolist())) == 3  # each Br appears twice, via images
    assert np.abs(so.shifts).sum() > 0
    # site-centric counts stay those of the infinite crystal
    m = so.site_membership(sc.n_atoms)
    np.testing.assert_array_equal(m.sum(axis=1), [0, 0, 2, 2, 2])
