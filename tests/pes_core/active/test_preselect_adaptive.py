"""Adaptive pre-exploration and the prior (:mod:`pes_core.active.preselect`): the pure decisions and the prior pool."""

from __future__ import annotations

import numpy as np
import pytest

from pes_core.active.preselect import (
    adapt_prerelax_steps,
    check_prior,
    preexploration_covered,
    preselect,
    prior_candidates,
    random_pool,
)
from pes_core.mtp import MTPPotential
from pes_core.oracles import get_oracle
from pes_core.search import SearchSettings


def test_covered_counts_the_share_above_the_select_grade():
    rng = np.random.default_rng(3)
    covered_pool = rng.uniform(0.0, 1.9, 95).tolist() + [2.5, 3.0, 4.0, 9.0, 20.0]  # 5 % above 2
    assert preexploration_covered(covered_pool, select=2.0, cover=0.1)
    assert not preexploration_covered(covered_pool, select=2.0, cover=0.05)  # 5 % is not fewer than 5 %
    assert not preexploration_covered(covered_pool, select=1.0, cover=0.1)  # a lower threshold: most above
    # the share only: the same pool twice over gives the same answer
    assert preexploration_covered(covered_pool * 2, select=2.0, cover=0.1)
    # a grade exactly at the threshold is not above it; NaN (unknown) is
    assert preexploration_covered([2.0, 2.0], select=2.0, cover=0.0)
    assert not preexploration_covered([1.0, float("nan")], select=2.0, cover=0.5)
    # nothing left, or nothing above, always covers; cover 1 accepts any pool with a grade below
    assert preexploration_covered([], select=2.0, cover=0.0)
    assert preexploration_covered([0.1, 0.2], select=2.0, cover=0.0)
    assert not preexploration_covered([3.0, 4.0], select=2.0, cover=1.0)
    assert preexploration_covered([3.0, 1.0], select=2.0, cover=1.0)


def test_covered_simulated_rounds_stop_when_the_pool_is_learned():
    """A synthetic pool whose grades fall as batches are learned: the loop stops before labelling it all."""
    rng = np.random.default_rng(0)
    grades = rng.lognormal(mean=1.5, sigma=0.8, size=60)  # untrained: most far above 2
    rounds, labelled = 0, 0
    while not preexploration_covered(grades, select=2.0, cover=0.1):
        worst = np.argsort(grades)[::-1][:8]  # the batch: the 8 highest grades
        grades = np.delete(grades, worst) * 0.6  # each fit shrinks what the rest extrapolate
        rounds, labelled = rounds + 1, labelled + 8
    assert 1 <= rounds < 60 // 8 and labelled < 60
    assert np.mean(grades > 2.0) < 0.1


def test_adapt_prerelax_steps_halves_only_within_tolerance():
    assert adapt_prerelax_steps(10, [0.02, -0.03, 0.01], 0.05) == 5
    assert adapt_prerelax_steps(10, [0.02, -0.03, 0.2], 0.05) == 10  # RMS 0.12
    assert adapt_prerelax_steps(5, [0.05], 0.05) == 2  # at the tolerance
    assert adapt_prerelax_steps(1, [0.0], 0.05) == 0  # down to single points
    assert adapt_prerelax_steps(0, [0.0], 0.05) == 0
    assert adapt_prerelax_steps(10, [], 0.05) == 10  # nothing measured: no change
    assert adapt_prerelax_steps(10, [0.0, float("nan")], 0.05) == 10


def test_maxvol_selection_covers_its_own_pool():
    """Against the active set maxvol built from the pool, no pool member extrapolates: the pool is covered."""
    settings = SearchSettings(composition={"Si": 1}, n_atoms=(4, 4), seed=1)
    pool = random_pool(settings, 6, seed=1)
    pot = MTPPotential.from_level(6, ["Si"], max_dist=4.0, seed=0)
    res = preselect(pot, pool, mode="configuration")
    assert 0 < len(res.indices) <= len(pool)
    grades = res.active_set.grade_many(pot, pool)
    assert np.all(grades <= 1.0 + 1e-6), grades
    assert preexploration_covered(grades, select=1.0 + 1e-6, cover=0.0)
    # a capped selection leaves the rest of the pool to a later round: not covered by a 1-configuration set
    capped = preselect(pot, pool, mode="configuration", max_configurations=1)
    assert len(capped.indices) == 1
    assert not preexploration_covered(capped.active_set.grade_many(pot, pool), select=1.5, cover=0.0)


def test_check_prior_names_the_problem():
    check_prior("tersoff", "sw", ["Si"])
    check_prior("chgnet", "vasp", ["Mg", "O"])
    with pytest.raises(ValueError, match="is the oracle itself"):
        check_prior("chgnet", "chgnet", ["C"])
    with pytest.raises(ValueError, match="not a registered potential"):
        check_prior("no-such-model", "sw", ["Si"])
    with pytest.raises(ValueError, match="category 'dft'"):
        check_prior("vasp", "sw", ["Si"])
    with pytest.raises(ValueError, match="no parameters for O"):
        check_prior("sw", "chgnet", ["Si", "O"])


def test_prior_candidates_relax_down_on_the_prior():
    settings = SearchSettings(composition={"Si": 1}, n_atoms=(4, 4), seed=2)
    starts = random_pool(settings, 3, seed=2, volume_factors=[1.0])
    prior = get_oracle("tersoff", {})
    cands = prior_candidates(prior, starts, steps=40, frames=2, volume_factors=[0.9, 1.0, 1.1])
    by_start: dict[int, list] = {}
    for a in cands:
        by_start.setdefault(a.info["pool_index"], []).append(a)
    assert sorted(by_start) == [0, 1, 2]
    for k, frames in by_start.items():
        steps = [a.info["prior_step"] for a in frames]
        assert min(steps) > 0  # the random start itself is not offered again
        last = max(steps)
        relaxed = [a for a in frames if a.info["prior_step"] == last]
        assert sorted(a.info["volume_factor"] for a in relaxed) == [0.9, 1.0, 1.1]
        ref = next(a for a in relaxed if a.info["volume_factor"] == 1.0)
        assert np.isclose(relaxed[0].get_volume() / ref.get_volume(), relaxed[0].info["volume_factor"])
        e0 = prior.compute(starts[k]).energy / len(starts[k])
        e_relaxed = ref.info["prior_energy_per_atom"]
        assert np.isclose(prior.compute(ref).energy / len(ref), e_relaxed, atol=1e-6)
        assert e_relaxed < e0  # downhill on the prior: no oracle call paid for it
        assert all(a.info["prior_energy_per_atom"] is None for a in relaxed if a.info["volume_factor"] != 1.0)
