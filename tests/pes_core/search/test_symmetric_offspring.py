"""Symmetric offspring: symmetrization of operator children, random symmetric replacements, generation 0."""

from __future__ import annotations

import numpy as np
import spglib
from ase.build import bulk

from pes_core.search import SearchSettings, new_search, next_generation, propose_offspring
from pes_core.search import operators as ops

from search_fakes import DensityRelaxer


def _sg(atoms, tol=1e-3) -> int:
    data = spglib.get_symmetry_dataset((np.array(atoms.cell), atoms.get_scaled_positions(), atoms.numbers),
                                       symprec=tol)
    return 1 if data is None else int(data.number)


def test_symmetrize_moves_a_distorted_crystal_onto_its_group():
    s = SearchSettings(composition={"Si": 1}, n_atoms=(8, 8))
    d = bulk("Si", "diamond", a=5.43, cubic=True)
    d.positions += np.random.default_rng(1).normal(0.0, 0.08, (8, 3))
    assert _sg(d) == 1
    out = ops.symmetrize(d, s)
    assert len(out) == 8 and ops.check_distances(out, s)
    assert _sg(out) == out.info["spacegroup"] > 1  # exact symmetry, not only within the tolerance
    assert ops.symmetrize(d, s) is not None and np.allclose(ops.symmetrize(d, s).cell, out.cell)  # deterministic


def test_symmetrize_gives_none_when_no_group_is_within_the_tolerance():
    s = SearchSettings(composition={"Si": 1}, n_atoms=(8, 8), symmetrize_tol=0.05)
    d = bulk("Si", "diamond", a=5.43, cubic=True)
    d.positions += np.random.default_rng(2).normal(0.0, 0.3, (8, 3))
    assert ops.symmetrize(d, s) is None


def test_generation_zero_is_random_symmetric():
    s = SearchSettings(composition={"Si": 1}, n_atoms=(8, 8), population_size=10, seed=4)
    groups = [_sg(k.atoms) for k in propose_offspring(new_search(s))]
    assert sum(g > 1 for g in groups) >= 8 and len(set(groups)) >= 4  # random space groups (pyxtal)


def test_children_of_operators_are_symmetric_with_probability_one():
    s = SearchSettings(composition={"Si": 1}, n_atoms=(8, 8), population_size=12, seed=1, symmetrize_prob=1.0)
    state = next_generation(new_search(s), DensityRelaxer())
    kids = propose_offspring(state)
    bred = [k for k in kids if k.origin != "random"]
    assert bred
    for k in bred:
        assert k.flags["symmetrized"] > 1 and _sg(k.atoms) == k.flags["symmetrized"]
        assert ops.check_distances(k.atoms, s)
    assert [k.to_dict() for k in kids] == [k.to_dict() for k in propose_offspring(state)]  # same seed, same kids
    # without the option nothing is symmetrized and the random stream is the one it always was
    plain = SearchSettings(**{**s.to_dict(), "symmetrize_prob": 0.0})
    pstate = next_generation(new_search(plain), DensityRelaxer())
    assert all("symmetrized" not in k.flags for k in propose_offspring(pstate))
    gated = SearchSettings(**{**s.to_dict(), "diversify_after": 5})
    gstate = next_generation(new_search(gated), DensityRelaxer())
    assert [k.to_dict() for k in propose_offspring(gstate)] == [k.to_dict() for k in propose_offspring(pstate)]
