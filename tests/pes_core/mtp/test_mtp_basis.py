"""Basis generation reproduces MLIP's template counts."""

from __future__ import annotations

import numpy as np
import pytest

from pes_core.mtp import MTPPotential, generate_basis
from pes_core.mtp.basis import moment_level

# level: (N_mu, m basis functions, parameters for one species with 8 radial basis functions)
MLIP_COUNTS = {
    2: (1, 1, 10), 4: (1, 2, 11), 6: (2, 5, 22), 8: (2, 9, 26), 10: (3, 16, 41), 12: (3, 29, 54),
    14: (4, 52, 85), 16: (4, 92, 125), 18: (5, 163, 204), 20: (5, 288, 329), 22: (6, 500, 549),
    24: (6, 864, 913), 26: (6, 1464, 1513),
}


@pytest.mark.parametrize("level", sorted(MLIP_COUNTS))
def test_template_counts(level: int) -> None:
    n_mu, m, n_par = MLIP_COUNTS[level]
    pot = MTPPotential.from_level(level, ["Si"], seed=None)
    assert pot.basis.radial_funcs_count == n_mu
    assert pot.basis.alpha_scalar_moments == m
    assert pot.n_parameters == n_par


def test_parameter_count_grows_with_species() -> None:
    pot = MTPPotential.from_level(10, ["Si", "C", "O"], seed=None)
    assert pot.n_parameters == 3 + 16 + 9 * 3 * 8


def test_level_8_tables_match_mlip_template_shape() -> None:
    b = generate_basis(8)
    # MLIP's untrained_mtps/08.mtp: 18 moments, 11 basic, 14 products
    assert (b.alpha_moments_count, len(b.alpha_index_basic), len(b.alpha_index_times)) == (18, 11, 14)


def test_basis_levels_are_within_limit() -> None:
    b = generate_basis(12)
    nu = b.alpha_index_basic[:, 1:].sum(axis=1)
    assert max(moment_level(int(mu), int(n)) for mu, n in zip(b.alpha_index_basic[:, 0], nu)) <= 12


@pytest.mark.parametrize("bad", [1, 3, 30, 0, "8"])
def test_bad_level(bad) -> None:
    with pytest.raises(ValueError, match="even integer between 2 and 28"):
        generate_basis(bad)


@pytest.mark.slow
def test_level_28_generates() -> None:
    b = generate_basis(28)
    assert b.radial_funcs_count == 6
    assert b.alpha_scalar_moments > 1464


def test_basis_functions_are_distinct() -> None:
    """No two basis functions coincide (values on random neighbourhoods are linearly independent)."""
    from mtp_helpers import random_crystal, random_potential

    from pes_core.mtp.engine import evaluate_pairs
    from pes_core.mtp.neighbours import build_pairs

    pot = random_potential(12, 1, seed=1)
    rows = []
    for seed in range(12):
        atoms = random_crystal(1, seed=seed, rattle=0.3)
        res = evaluate_pairs(pot, build_pairs(atoms, pot.max_dist), pot.types_of(atoms.numbers), forces=False)
        rows.append(res.basis_values)
    b = np.concatenate(rows)
    b = b / np.linalg.norm(b, axis=0)
    assert np.linalg.matrix_rank(b, tol=1e-9) == pot.basis.alpha_scalar_moments
