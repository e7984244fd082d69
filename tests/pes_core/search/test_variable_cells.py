"""Variable cell size within one search: random structures, heredity across sizes, ranking per atom, one MTP."""

from __future__ import annotations

from collections import Counter

import numpy as np
from ase.build import bulk
from mtp_helpers import random_potential

from pes_core.mtp import FitSettings, TrainingRecord, evaluate, fit_mtp
from pes_core.search import SearchSettings, new_search, next_generation, propose_offspring, run_search
from pes_core.search import operators as ops
from pes_core.search.fingerprints import FingerprintComparator

from search_fakes import DensityRelaxer


def test_random_structures_take_every_allowed_size():
    s = SearchSettings(composition={"Mg": 1, "O": 1}, n_atoms=(4, 8), population_size=12, seed=3)
    kids = propose_offspring(new_search(s))
    sizes = Counter(len(k.atoms) for k in kids)
    assert set(sizes) == {4, 6, 8}  # every multiple of the formula unit in the range
    for k in kids:
        z = k.atoms.numbers
        assert (z == 12).sum() == (z == 8).sum()


def test_heredity_between_different_sizes_repairs_the_atom_count():
    s = SearchSettings(composition={"Si": 1}, n_atoms=(8, 16))
    small = bulk("Si", "diamond", a=5.43, cubic=True)                      # 8 atoms
    large = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))    # 16 atoms
    large.rattle(0.05, seed=1)
    sizes = Counter()
    for seed in range(40):
        child = ops.heredity(small, large, s, np.random.default_rng(seed))
        if child is None:
            continue
        sizes[len(child)] += 1
        assert ops.check_distances(child, s)
        # the volume per atom is the parents' mean, whatever the size
        assert np.isclose(child.get_volume() / len(child),
                          0.5 * (small.get_volume() / 8 + large.get_volume() / 16), rtol=1e-6)
    assert set(sizes) == {8, 16} and sum(sizes.values()) >= 15, sizes  # seen 9 + 13 of 40


def test_a_search_over_sizes_ranks_by_enthalpy_per_atom():
    s = SearchSettings(composition={"Si": 1}, n_atoms=(4, 8), population_size=10, seed=2,
                       max_generations=3, stop_after=5)
    state = run_search(s, DensityRelaxer())
    members = [m for m in state.population.ranked()]
    assert len({m.n_atoms for m in members}) > 1  # sizes 4, 6 (not for Si: any count), 8 live side by side
    h = [m.enthalpy_per_atom for m in members]
    assert h == sorted(h)
    assert all(set(r["n_atoms"]) <= {4, 5, 6, 7, 8} for r in state.history)
    # heredity children of two parents of different sizes take one parent's size
    kids = propose_offspring(state)
    by_id = {m.id: m for m in state.population.members}
    for k in kids:
        if k.origin == "heredity":
            assert k.n_atoms in {by_id[p].n_atoms for p in k.parents}


def test_duplicates_are_found_across_cell_sizes():
    comp = FingerprintComparator()
    prim = bulk("Si", "diamond", a=5.43)                     # 2 atoms
    conv = bulk("Si", "diamond", a=5.43, cubic=True).repeat((1, 1, 2))  # 16 atoms
    assert comp.distance(prim, conv) < 1e-6


def test_one_mtp_fits_configurations_of_several_sizes_exactly():
    """An MTP is a sum of atomic energies: a known potential is recovered from 4-, 8- and 12-atom cells."""
    true = random_potential(8, 1, seed=4)
    s = SearchSettings(composition={"Si": 1}, n_atoms=(4, 12), min_distance_factor=0.85)
    rng = np.random.default_rng(0)
    structures = []
    for n in (4, 8, 12) * 4:
        a = None
        while a is None:
            a = ops.random_structure(s, rng, n_atoms=n, volume_per_atom=20.0)
        structures.append(a)
    records = []
    for a in structures:
        r = evaluate(true, a)
        records.append(TrainingRecord(a, r.energy, r.forces, r.stress))
    start = true.copy()
    start.species_coeffs = np.zeros(1)
    start.moment_coeffs = np.zeros_like(true.moment_coeffs)
    fitted, report = fit_mtp(start, records, FitSettings(fit_radial=False, auto_min_dist=False,
                                                         regularization=0.0, log=None), validation=[])
    assert report.train.energy_rmse < 1e-8  # eV/atom, over every size at once
    big = bulk("Si", "diamond", a=5.5, cubic=True).repeat((2, 1, 1))
    big.rattle(0.1, seed=3)
    assert abs(evaluate(fitted, big).energy - evaluate(true, big).energy) / len(big) < 1e-8
