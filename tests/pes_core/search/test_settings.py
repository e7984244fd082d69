import json

import pytest

from pes_core.search import SearchSettings


def test_population_size_clamped_and_counts():
    assert SearchSettings(composition={"Si": 1}, n_atoms=(2, 2)).resolved_population_size() == 10
    assert SearchSettings(composition={"Si": 1}, n_atoms=(8, 8)).resolved_population_size() == 16
    assert SearchSettings(composition={"Si": 1}, n_atoms=(8, 40)).resolved_population_size() == 60
    s = SearchSettings(composition={"Mg": 1, "O": 1}, n_atoms=(3, 9))
    assert s.allowed_atom_counts() == [4, 6, 8]
    assert s.species_counts(6) == {"O": 3, "Mg": 3}
    assert s.active_operators() == ["heredity", "random", "coordinate", "lattice", "permutation"]
    si = SearchSettings(composition={"Si": 1}, n_atoms=(8, 8))
    assert "permutation" not in si.initial_fractions()
    assert abs(sum(si.initial_fractions().values()) - 1) < 1e-12
    assert si.resolved_stop_after() == 8
    assert si.n_survivors() == 2 and si.n_offspring() == 14


def test_roundtrip_and_errors():
    s = SearchSettings(composition={"C": 1}, n_atoms=(4, 8), pressure_gpa=10.0, seed=3,
                       min_distances={"C-C": 1.2})
    d = json.loads(json.dumps(s.to_dict()))
    assert SearchSettings.from_dict(d) == s
    assert s.min_distance("C", "C") == 1.2
    with pytest.raises(ValueError, match="formula unit"):
        SearchSettings(composition={"Mg": 1, "O": 1}, n_atoms=(3, 3))
    with pytest.raises(ValueError, match="unknown operator"):
        SearchSettings(composition={"Si": 1}, n_atoms=(2, 2), fractions={"softmode": 1.0})
    with pytest.raises(ValueError, match="unknown search setting"):
        SearchSettings.from_dict({**s.to_dict(), "popsize": 3})
