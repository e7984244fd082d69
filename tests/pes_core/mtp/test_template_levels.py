"""Every generated MTP template spans exactly the contractions its level allows, level by level.

The level rule (Shapeev 2016; MLIP's ``untrained_mtps``): a moment
``M_{mu,nu} = sum_j f_mu(r_j) u_j^{(x) nu}`` has level ``2 + 4 mu + nu``; a basis
function is a full contraction of a product of at most four moments, and its
level is the sum of its factors' levels.  These tests evaluate every such
contraction *directly* from the neighbour vectors,

    B = sum_{j_1..j_k} prod_a f_{mu_a}(r_{j_a}) prod_{a<b} (u_{j_a} . u_{j_b})^{n_ab},

which does not go through the generator's tensor program, and check that the
template's ``m`` functions are exactly the distinct allowed contractions
(nothing missing, nothing extra, no duplicate) and that each is rotation
invariant.  They do not embed MLIP's tables, only its published counts.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pes_core.mtp import MTPPotential, generate_basis
from pes_core.mtp.basis import moment_level
from pes_core.mtp.engine import evaluate_pairs, radial_functions
from pes_core.mtp.neighbours import PairList

# Counts of MLIP's untrained_mtps/NN.mtp templates (radial_funcs_count,
# alpha_index_basic_count, alpha_scalar_moments), read from the files.
PUBLISHED_COUNTS = {
    2: (1, 1, 1), 4: (1, 1, 2), 6: (2, 5, 5), 8: (2, 11, 9), 10: (3, 25, 16), 12: (3, 46, 29),
    14: (4, 81, 52), 16: (4, 130, 92), 18: (5, 201, 163), 20: (5, 295, 288), 22: (6, 421, 500),
    24: (6, 581, 864), 26: (6, 706, 1464),
}
R_MIN, R_CUT = 1.5, 5.0
MAX_FACTORS = 4


# ------------------------------------------------------------------ helpers
def _random_potential(level: int, n_species: int, seed: int) -> MTPPotential:
    rng = np.random.default_rng(seed)
    pot = MTPPotential.from_level(level, [14, 6][:n_species], R_MIN, R_CUT, seed=seed)
    pot.radial_coeffs = rng.normal(size=pot.radial_coeffs.shape) * 0.1
    return pot


def _environments(n_env: int, n_species: int, seed: int, k_max: int = 9) -> tuple[PairList, np.ndarray]:
    """``n_env`` centres (atoms ``0 .. n_env-1``), each with 2..k_max neighbours of their own.

    Returns the pair list (centres only have neighbours) and the MLIP type of every atom.
    """
    rng = np.random.default_rng(seed)
    i, vec = [], []
    for e in range(n_env):
        k = int(rng.integers(2, k_max + 1))
        u = rng.normal(size=(k, 3))
        u /= np.linalg.norm(u, axis=1)[:, None]
        vec.append(u * rng.uniform(R_MIN + 0.05, R_CUT - 0.05, k)[:, None])
        i += [e] * k
    vectors = np.concatenate(vec)
    n_pairs = len(vectors)
    pairs = PairList(
        i=np.array(i), j=n_env + np.arange(n_pairs), vectors=vectors,
        distances=np.linalg.norm(vectors, axis=1), n_atoms=n_env + n_pairs,
    )
    return pairs, rng.integers(0, n_species, n_env + n_pairs)


def _rotated(pairs: PairList, rot: np.ndarray) -> PairList:
    return PairList(pairs.i, pairs.j, pairs.vectors @ rot.T, pairs.distances, pairs.n_atoms)


def _basis_values(pot: MTPPotential, pairs: PairList, types: np.ndarray, n_env: int) -> np.ndarray:
    pot.species_coeffs = np.zeros(pot.n_species)
    pot.moment_coeffs = np.zeros(pot.basis.alpha_scalar_moments)
    return evaluate_pairs(pot, pairs, types, forces=False).basis_values[:n_env]


def _adjacencies(nus: tuple[int, ...]):
    """Loopless multigraphs on ``len(nus)`` nodes with degrees ``nus``, as ``{(a, b): n_ab}``."""
    k = len(nus)
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    rem = list(nus)
    adj: dict[tuple[int, int], int] = {}

    def rec(p: int):
        if p == len(pairs):
            if not any(rem):
                yield dict(adj)
            return
        a, b = pairs[p]
        for m in range(min(rem[a], rem[b]) + 1):
            rem[a] -= m
            rem[b] -= m
            adj[(a, b)] = m
            yield from rec(p + 1)
            rem[a] += m
            rem[b] += m

    yield from rec(0)


def _allowed_contractions(level: int):
    """All (labels, adjacency) with <= 4 factors and total level <= ``level`` (isomorphic copies included)."""
    labels = [(mu, nu) for mu in range(level) for nu in range(level) if moment_level(mu, nu) <= level]
    for k in range(1, MAX_FACTORS + 1):
        for combo in itertools.combinations_with_replacement(labels, k):
            if sum(moment_level(*lab) for lab in combo) <= level:
                for adj in _adjacencies(tuple(nu for _, nu in combo)):
                    yield combo, adj


def _contraction_values(pot: MTPPotential, pairs: PairList, types: np.ndarray, n_env: int, level: int):
    """Values ``(n_env, C)`` of every allowed contraction, from the neighbour sums (no tensor program)."""
    f, _, _ = radial_functions(pot, pairs, types, derivative=False)  # (P, N_mu)
    counts = np.bincount(pairs.i, minlength=n_env)
    k_max = int(counts.max())
    slot = np.arange(len(pairs.i)) - (np.cumsum(counts) - counts)[pairs.i]
    fp = np.zeros((n_env, k_max, f.shape[1]))
    fp[pairs.i, slot] = f
    up = np.zeros((n_env, k_max, 3))
    up[pairs.i, slot] = pairs.vectors / pairs.distances[:, None]
    gram = np.einsum("eac,ebc->eab", up, up)
    letters = "abcd"
    cols = []
    for combo, adj in _allowed_contractions(level):
        # the template must have every radial function the level rule allows
        assert all(mu < f.shape[1] for mu, _ in combo), f"level {level} allows {combo}, beyond N_mu = {f.shape[1]}"
        ops, subs = [], []
        for a, (mu, _) in enumerate(combo):
            ops.append(fp[:, :, mu])
            subs.append("e" + letters[a])
        for (a, b), m in adj.items():
            if m:
                ops.append(gram**m)
                subs.append("e" + letters[a] + letters[b])
        cols.append(np.einsum(",".join(subs) + "->e", *ops, optimize=True))
    return cols


def _unit_columns(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=0)


# -------------------------------------------------------------------- tests
@pytest.mark.parametrize("level", sorted(PUBLISHED_COUNTS))
def test_counts_match_published_templates(level: int) -> None:
    n_mu, n_basic, m = PUBLISHED_COUNTS[level]
    b = generate_basis(level)
    assert (b.radial_funcs_count, len(b.alpha_index_basic), b.alpha_scalar_moments) == (n_mu, n_basic, m)


@pytest.mark.parametrize(
    "level", [*range(2, 22, 2), pytest.param(22, marks=pytest.mark.slow), pytest.param(24, marks=pytest.mark.slow)]
)
def test_template_is_exactly_the_allowed_contractions(level: int) -> None:
    """Each basis function is one allowed contraction (its plain value), no two coincide, none is missing.

    Up to level 24 the rule is the plain level rule with at most four factors
    (the radial index cap ``mu <= 5`` and tensor rank cap ``nu <= 10`` of
    MLIP's generator only bind from level 26).
    """
    pot = _random_potential(level, 1, seed=level)
    m = pot.basis.alpha_scalar_moments
    n_env = max(60, 3 * m)
    pairs, types = _environments(n_env, 1, seed=level)
    values = _basis_values(pot, pairs, types, n_env)
    raw = np.stack(_contraction_values(pot, pairs, types, n_env, level), axis=1)
    assert (np.abs(raw).max(axis=0) > 0).all()
    ours, allowed = _unit_columns(values), _unit_columns(raw)
    # each of our functions is an allowed contraction, with its plain normalisation ...
    cos = np.abs(ours.T @ allowed)
    assert np.allclose(cos.max(axis=1), 1.0, rtol=0, atol=1e-10)
    partner = raw[:, cos.argmax(axis=1)]
    assert (np.abs(values - partner).max(axis=0) / np.abs(values).max(axis=0)).max() < 1e-10
    # ... no two of ours are the same function ...
    self_cos = np.abs(ours.T @ ours) - np.eye(m)
    assert self_cos.max() < 1 - 1e-6
    # ... and every distinct allowed contraction is one of ours
    classes: list[np.ndarray] = []
    for col in allowed.T:
        if not any(abs(col @ rep) > 1 - 1e-10 for rep in classes):
            classes.append(col)
    assert len(classes) == m
    # hence the same span: no allowed contraction lies outside ours (MLIP's bases
    # are linearly dependent from level 16 on, so project on the numerical range)
    u, sv, _ = np.linalg.svd(ours, full_matrices=False)
    q = u[:, sv > 1e-9 * sv[0]]
    assert np.linalg.norm(allowed - q @ (q.T @ allowed), axis=0).max() < 1e-9


@pytest.mark.parametrize(
    ("level", "n_species"),
    [(lev, 1 + (lev // 2) % 2) for lev in range(2, 24, 2)]
    + [pytest.param(lev, 1 + (lev // 2) % 2, marks=pytest.mark.slow) for lev in (24, 26, 28)],
)
def test_every_basis_function_is_rotation_invariant(level: int, n_species: int) -> None:
    pot = _random_potential(level, n_species, seed=level)
    n_env = 40
    pairs, types = _environments(n_env, n_species, seed=level + 1, k_max=12)
    rot, _ = np.linalg.qr(np.random.default_rng(level).normal(size=(3, 3)))
    rot *= np.sign(np.linalg.det(rot))  # proper rotation
    b0 = _basis_values(pot, pairs, types, n_env)
    b1 = _basis_values(pot, _rotated(pairs, rot), types, n_env)
    scale = np.abs(b0).max(axis=0)
    assert (scale > 0).all()
    assert (np.abs(b1 - b0).max(axis=0) / scale).max() < 1e-10
    # and a reflection (the contractions are O(3) invariant, not only SO(3))
    b2 = _basis_values(pot, _rotated(pairs, -rot), types, n_env)
    assert (np.abs(b2 - b0).max(axis=0) / scale).max() < 1e-10
