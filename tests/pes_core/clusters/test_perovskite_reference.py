"""PerovskiteReference: any cubic ABX3 perovskite, its supercell and its featurizer."""

from __future__ import annotations

import numpy as np
import pytest

from pes_core.clusters import PerovskiteReference, cubic_cspbbr3, perovskite


def test_cspbbr3_is_the_generic_perovskite():
    assert cubic_cspbbr3(6.0) == perovskite(6.0, ("Cs", "Pb", "Br"))
    ref = PerovskiteReference("Cs", "Pb", "Br", 6.0)
    assert ref.primitive() == cubic_cspbbr3(6.0) and ref.n_atoms == 40


@pytest.mark.parametrize("kw, match", [
    ({"A": "Cs", "B": "Pb", "X": "Q"}, "not an element symbol"),
    ({"A": "Cs", "B": "Cs", "X": "Br"}, "three different elements"),
    ({"A": "Cs", "B": "Pb", "X": "Br", "a": -1.0}, "positive"),
    ({"A": "Cs", "B": "Pb", "X": "Br", "supercell": (2, 3, 2)}, "even numbers"),
])
def test_invalid_references_name_the_problem(kw, match):
    with pytest.raises(ValueError, match=match):
        PerovskiteReference(**{"a": 5.9, **kw})


def test_from_supercell_recovers_species_supercell_and_a_in_any_atom_order():
    from pes_core.sampling import tilted_supercell

    ref = PerovskiteReference("Sr", "Ti", "O", 3.905, supercell=(2, 2, 4))
    cell = tilted_supercell(ref)
    assert len(cell) == ref.n_atoms == 80
    assert PerovskiteReference.from_supercell(cell) == ref
    shuffled = cell.copy()
    shuffled.sort(key=lambda s: -s.frac_coords[0])  # any order
    assert PerovskiteReference.from_supercell(shuffled) == ref
    assert PerovskiteReference.from_supercell(ref.primitive() * (2, 2, 2)) == PerovskiteReference("Sr", "Ti", "O", 3.905)
    wrong = perovskite(4.0, ("Sr", "Ti", "O"))
    wrong.replace_species({"Sr": "Ti"})
    with pytest.raises(ValueError, match="not an ABX3"):
        PerovskiteReference.from_supercell(wrong)


def test_featurizer_octahedron_follows_the_b_and_x_sites():
    from pes_core.ann import get_featurizer, perovskite_featurizer

    sto = perovskite_featurizer(PerovskiteReference("Sr", "Ti", "O", 3.905), "1pairs+oct", order=2)
    assert any("TiO6" in k for k in sto.n_basis) and sto.n_atoms == 40
    # CsPbBr3: the same settings (and cache key) as the featurizer of cubic_cspbbr3
    cs = perovskite_featurizer(PerovskiteReference("Cs", "Pb", "Br", 5.87), "1pairs+oct", order=2)
    assert cs.settings.key() == get_featurizer(cubic_cspbbr3(5.87), "1pairs+oct", order=2).settings.key()
    assert np.isfinite(sum(cs.n_basis.values()))
