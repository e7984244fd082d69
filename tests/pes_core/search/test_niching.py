"""Fingerprint niching of the breeding pool and operator adaptation credited for a new best."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from pes_core.search import SearchSettings, new_search, propose_offspring, update
from pes_core.search.engine import diversifying
from pes_core.search.fingerprints import FingerprintComparator
from pes_core.search.individual import Individual
from pes_core.search.population import Population, niche_capped

from search_fakes import DensityRelaxer


def _relaxed(id_: str, atoms, h: float, gen: int = 0, origin: str = "random") -> Individual:
    ind = Individual.from_atoms(id_, atoms, origin, generation=gen)
    ind.relaxed, ind.energy, ind.enthalpy_per_atom = True, h * len(atoms), h
    ind.volume = atoms.get_volume()
    return ind


def _crowded_population() -> list[Individual]:
    """Five rattled diamonds 20 meV/atom apart (not duplicates: energy) and four other structures."""
    out = []
    for k in range(5):
        a = bulk("Si", "diamond", a=5.43, cubic=True)
        a.rattle(0.03, seed=k)
        out.append(_relaxed(f"g000-{k:03d}", a, -4.30 + 0.02 * k))
    others = [bulk("Si", "sc", a=2.5).repeat((2, 2, 2)), bulk("Si", "fcc", a=3.9).repeat((2, 1, 1)),
              bulk("Si", "bcc", a=3.1).repeat((2, 2, 1)), bulk("Si", "hcp", a=2.7, c=4.4).repeat((2, 2, 1))]
    for k, a in enumerate(others):
        out.append(_relaxed(f"g000-{5 + k:03d}", a, -4.15 + 0.02 * k))
    return out


def test_niche_cap_keeps_at_most_cap_near_duplicates():
    pop = Population(_crowded_population())
    comp = FingerprintComparator()
    assert len(pop.distinct()) == 9  # the rattled diamonds are not duplicates (enthalpy apart)
    kept = niche_capped(pop.distinct(), comp.distance, radius=0.05, cap=2)
    ids = [i.id for i in kept]
    assert ids[:2] == ["g000-000", "g000-001"]          # the two best of the diamond niche
    assert not {"g000-002", "g000-003", "g000-004"} & set(ids)
    assert {"g000-005", "g000-006", "g000-007", "g000-008"} <= set(ids)
    assert len(niche_capped(pop.distinct(), comp.distance, radius=0.05, cap=5)) == 9
    assert len(niche_capped(pop.distinct(), comp.distance, radius=0.0, cap=1)) == 9  # radius 0: no niche


def _state(**kw):
    s = SearchSettings(composition={"Si": 1}, n_atoms=(8, 8), population_size=9, seed=3, best_frac=1.0, **kw)
    st = new_search(s)
    return update(st, [i for i in _crowded_population()])


def test_parents_come_from_the_niched_pool_only_while_diversifying():
    on = _state(niching=True, niche_radius=0.05, niche_cap=1)
    kids = propose_offspring(on)
    parents = {p for k in kids for p in k.parents}
    assert parents and not parents & {"g000-001", "g000-002", "g000-003", "g000-004"}
    # the same settings while not yet stalled long enough give exactly the offspring without niching
    gated = _state(niching=True, niche_radius=0.05, niche_cap=1, diversify_after=3)
    off = _state()
    assert not diversifying(gated) and diversifying(on)
    assert [k.to_dict() for k in propose_offspring(gated)] == [k.to_dict() for k in propose_offspring(off)]
    assert {p for k in propose_offspring(off) for p in k.parents} & {"g000-002", "g000-003", "g000-004"}


def test_new_best_credits_its_operator():
    base = dict(composition={"Si": 1}, n_atoms=(8, 8), population_size=9, seed=3, best_frac=1.0)
    results = {}
    for bonus in (0.0, 2.0):
        st = update(new_search(SearchSettings(**base, adapt_best_bonus=bonus)), _crowded_population())
        kids = propose_offspring(st)
        relaxed = []
        for k in kids:
            r = DensityRelaxer()(k.atoms, 0.0)
            ind = Individual.from_dict(k.to_dict())
            ind.relaxed, ind.energy, ind.volume = True, r.energy, r.atoms.get_volume()
            ind.enthalpy_per_atom = -3.0 - 0.001 * int(k.id[-3:])  # all above the crowd
            relaxed.append(ind)
        lattice = next(i for i in relaxed if i.origin == "lattice")
        lattice.enthalpy_per_atom = -5.0                              # a lattice child sets a new best
        new = update(st, relaxed)
        assert new.best_id == lattice.id and new.stalled == 0
        results[bonus] = new.fractions
    assert results[2.0]["lattice"] > results[0.0]["lattice"]
    assert np.isclose(sum(results[2.0].values()), 1.0)
    assert min(results[2.0].values()) >= 0.05 / (1 + 1e-9) * 0.9  # the floor keeps every operator alive


@pytest.mark.parametrize("bad, match", [({"niche_radius": 1.5}, "niche_radius"), ({"niche_cap": 0}, "niche_cap"),
                                        ({"symmetrize_prob": 2}, "symmetrize_prob"),
                                        ({"diversify_after": -1}, "diversify_after"),
                                        ({"niching": "yes"}, "niching"),
                                        ({"adapt_best_bonus": -1}, "adapt_best_bonus")])
def test_bad_diversity_settings_name_the_key(bad, match):
    with pytest.raises(ValueError, match=match):
        SearchSettings(composition={"Si": 1}, n_atoms=(8, 8), **bad)
