"""Invariant polynomials: Reynolds construction, Molien counts, group invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pes_core.ccd import invariant_basis, molien_coefficients, reynolds_rank

# Molien series coefficients, degree 0..6
TET_TD = [1, 1, 3, 6, 11, 18, 32]  # Td on the 6 CCDs of a tetrahedron
OCT_OH_QSTAR = [1, 1, 5, 14, 45, 116, 314]  # Oh on the 12 independent CCDs
OCT_OH_Q = [1, 2, 9, 32, 110]  # Oh on all 15 CCDs (degree 0..4)


def test_molien_simple_group():
    ops = np.array([np.eye(2), -np.eye(2)])
    assert molien_coefficients(ops, 4).tolist() == [1, 0, 3, 0, 5]
    basis = invariant_basis(ops, 4)
    assert basis.counts == (0, 0, 3, 0, 5)
    with pytest.raises(ValueError, match="do not form a group"):
        molien_coefficients(np.array([np.eye(2), np.diag([1.0, 0.5])]), 2)


def test_tetrahedron_molien_matches_reynolds_to_degree_6(tet_ccd):
    basis = invariant_basis(tet_ccd.D, 6)
    assert list(basis.molien) == TET_TD
    assert list(basis.counts[1:]) == TET_TD[1:]
    assert reynolds_rank(tet_ccd.D, 6, n_points=80) == TET_TD[1:]


def test_octahedron_molien_matches_reynolds_to_degree_4(oct_ccd):
    d_star = oct_ccd.D[:, :12, :12]
    basis = invariant_basis(d_star, 4)
    assert list(basis.molien) == OCT_OH_QSTAR[:5]
    assert list(basis.counts[1:]) == OCT_OH_QSTAR[1:5]
    assert reynolds_rank(d_star, 4, n_points=90) == OCT_OH_QSTAR[1:5]
    assert molien_coefficients(oct_ccd.D, 4).tolist() == OCT_OH_Q
    assert reynolds_rank(oct_ccd.D, 4, n_points=150) == OCT_OH_Q[1:]


@pytest.mark.slow
def test_octahedron_molien_matches_reynolds_to_degree_6(oct_ccd):
    d_star = oct_ccd.D[:, :12, :12]
    assert molien_coefficients(d_star, 6).tolist() == OCT_OH_QSTAR
    assert reynolds_rank(d_star, 6, n_points=360) == OCT_OH_QSTAR[1:]


def _geometric_check(ccd, orbit, basis, n_q, seed):
    """phi(Q*(g.x)) == phi(Q*(x)) for every operation g of the cluster group."""
    rng = np.random.default_rng(seed)
    pg = orbit.point_group
    for _ in range(3):
        x = orbit.reference_positions + rng.normal(scale=0.25, size=orbit.reference_positions.shape)
        ref = basis.evaluate(ccd.q(x)[:n_q])
        scale = np.abs(ref) + 1e-300
        for r, p in zip(pg.cart_rotations, pg.perms):
            y = np.empty_like(x)
            y[p] = x @ r.T
            val = basis.evaluate(ccd.q(y)[:n_q])
            assert np.all(np.abs(val - ref) <= 1e-10 * np.maximum(scale, np.abs(ref).max()))


def test_octahedron_invariants_unchanged_by_every_operation(oct_ccd, octahedron):
    basis = invariant_basis(oct_ccd.D[:, :12, :12], 4)
    assert basis.n_basis == sum(OCT_OH_QSTAR[1:5])
    _geometric_check(oct_ccd, octahedron, basis, 12, seed=0)


def test_tetrahedron_invariants_unchanged_by_every_operation(tet_ccd, tetrahedron):
    basis = invariant_basis(tet_ccd.D, 6)
    _geometric_check(tet_ccd, tetrahedron, basis, 6, seed=1)


def test_invariants_under_matrices_and_torch_evaluator(oct_ccd):
    d_star = oct_ccd.D[:, :12, :12]
    basis = invariant_basis(d_star, 4)
    q = np.random.default_rng(2).normal(size=(7, 12))
    ref = basis.evaluate(q)
    for d in d_star:
        np.testing.assert_allclose(basis.evaluate(q @ d.T), ref, rtol=1e-10, atol=1e-12)
    out = basis.evaluator()(torch.as_tensor(q))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-13)
    # degrees are sorted and the per-degree counts add up
    assert np.all(np.diff(basis.degrees) >= 0)
    assert np.bincount(basis.degrees, minlength=5)[1:].tolist() == list(basis.counts[1:])
