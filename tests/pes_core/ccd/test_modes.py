"""CCD transformations: irreducible blocks, labels, rigid-motion invariance, G."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pes_core.ccd import build_ccd, correlation_matrix, mulliken_label
from pes_core.ccd.correlation import correlation_mc, symmetrize
from pes_core.ccd.metrics import Metric, apply_metric
from pes_core.clusters import pair_orbits, triplet_orbits

METRICS = [m.value for m in Metric]


def _blocks(ccd):
    return Counter((b.label, b.dim) for b in ccd.blocks)


def test_tetrahedron_td(tet_ccd):
    assert tet_ccd.n_ccd == 6
    assert tet_ccd.n_independent == 6
    assert _blocks(tet_ccd) == Counter({("A1", 1): 1, ("T2", 3): 1, ("E", 2): 1})
    assert tet_ccd.blocks[0].label == "A1"  # volumetric mode has the largest eigenvalue
    # the A1 mode is the uniform breathing: equal weight on all six edges
    v = tet_ccd.V[:, 0]
    np.testing.assert_allclose(np.abs(v), np.abs(v[0]), atol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_octahedron_oh(octahedron, metric):
    ccd = build_ccd(octahedron, metric=metric, n_samples=60_000)
    assert ccd.n_ccd == 15
    assert _blocks(ccd) == Counter(
        {("A1g", 1): 2, ("T1u", 3): 1, ("Eg", 2): 2, ("T2g", 3): 1, ("T2u", 3): 1}
    )
    # 12 = 3n - 6 independent CCDs; the largest spectral gap sits right there
    assert ccd.n_independent == 12
    assert ccd.gap_index == 12
    dependent = Counter(b.label for b in ccd.blocks if b.start >= 12)
    assert dependent == Counter({"A1g": 1, "Eg": 1})
    # degeneracies are exact and the group acts orthogonally, block-diagonally
    for b in ccd.blocks:
        chi = b.characters
        assert np.mean(chi**2) == pytest.approx(1.0, abs=1e-9)
    for d in ccd.D:
        np.testing.assert_allclose(d @ d.T, np.eye(15), atol=1e-12)


def test_u_matrix_diagonalizes_g(oct_ccd):
    ccd = oct_ccd
    g = ccd.V @ np.diag(ccd.eigenvalues) @ ccd.V.T
    np.testing.assert_allclose(ccd.U @ np.linalg.inv(g) @ ccd.U.T, np.eye(15), atol=1e-9)
    np.testing.assert_allclose(ccd.U, np.sqrt(ccd.eigenvalues)[:, None] * ccd.V.T)


@pytest.mark.parametrize("metric", METRICS)
def test_q_invariant_under_rigid_motion(oct_ccd, octahedron, metric):
    ccd = build_ccd(octahedron, metric=metric, n_samples=20_000)
    rng = np.random.default_rng(1)
    x = octahedron.reference_positions + rng.normal(scale=0.3, size=(6, 3))
    q0 = ccd.q(x)
    for rot in Rotation.random(10, random_state=2).as_matrix():
        y = x @ rot.T + rng.normal(scale=10.0, size=3)
        np.testing.assert_allclose(ccd.q(y), q0, atol=1e-10, rtol=0)
    assert ccd.q_star(x).shape == (12,)


def test_point_group_action_on_q(oct_ccd, octahedron):
    """An operation of the cluster group acts on Q as D(g) = U M^F U^-1."""
    rng = np.random.default_rng(3)
    x = octahedron.reference_positions + rng.normal(scale=0.3, size=(6, 3))
    q = oct_ccd.q(x)
    pg = octahedron.point_group
    for g, (r, p) in enumerate(zip(pg.cart_rotations, pg.perms)):
        y = np.empty_like(x)
        y[p] = x @ r.T
        np.testing.assert_allclose(oct_ccd.q(y), oct_ccd.D[g] @ q, atol=1e-12)


def test_metrics_vanish_with_unit_slope():
    d0 = np.array([2.0, 3.0])
    for m in METRICS:
        np.testing.assert_allclose(apply_metric(m, d0, d0), 0.0, atol=1e-15)
        h = 1e-6
        slope = (apply_metric(m, d0 + h, d0) - apply_metric(m, d0 - h, d0)) / (2 * h)
        np.testing.assert_allclose(slope, 1.0 / d0, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown deformation metric"):
        apply_metric("cubic", d0, d0)


def test_quadratic_g_analytic_matches_monte_carlo(tetrahedron):
    x = tetrahedron.reference_positions
    mf = tetrahedron.point_group.pair_matrices()
    exact = correlation_matrix(x, 0.5, "quadratic")
    mc = symmetrize(correlation_mc(x, 0.5, "quadratic", n_samples=400_000, seed=5), mf)
    np.testing.assert_allclose(mc, exact, atol=4e-3 * np.abs(exact).max())


def test_symmetrized_g_commutes_with_group(octahedron):
    mf = octahedron.point_group.pair_matrices()
    g = symmetrize(correlation_mc(octahedron.reference_positions, 0.4, "log", 5000), mf)
    for m in mf:
        np.testing.assert_allclose(m @ g, g @ m, atol=1e-15)


def test_small_cluster_labels(cspbbr3_sg):
    pb_br = build_ccd(pair_orbits(cspbbr3_sg, 3.0)[0])
    assert pb_br.labels == ["A1"] and pb_br.n_independent == 1
    br3 = build_ccd(triplet_orbits(cspbbr3_sg, 4.2)[1], n_samples=20_000)  # equilateral Br3
    assert Counter((b.label, b.dim) for b in br3.blocks) == Counter({("A1", 1): 1, ("E", 2): 1})


def test_mulliken_label_simple_groups():
    e, inv = np.eye(3), -np.eye(3)
    assert mulliken_label(np.array([e, inv]), np.array([1.0, -1.0])) == "Au"
    mirror = np.diag([1.0, 1.0, -1.0])
    assert mulliken_label(np.array([e, mirror]), np.array([1.0, -1.0])) == "A''"


def test_equal_eigenvalues_of_different_irreps_are_split(cspbbr3_sg):
    """The quadratic metric gives the Cs8 cube's A2u and T2u one eigenvalue; they stay apart."""
    from pes_core.clusters import polyhedron_orbits

    cube = build_ccd(polyhedron_orbits(cspbbr3_sg, "Pb", "Cs", 8)[0], metric="quadratic")
    assert cube.n_ccd == 28 and cube.n_independent == 18
    assert max(b.dim for b in cube.blocks) == 3
    for b in cube.blocks:
        assert np.mean(b.characters**2) == pytest.approx(1.0, abs=1e-9)
    independent = Counter(b.label for b in cube.blocks if b.stop <= 18)
    assert independent == Counter(
        {"A1g": 1, "Eg": 1, "T2g": 2, "T1u": 1, "T2u": 1, "A2u": 1, "Eu": 1}
    )
