"""The 15 Glazer tilt systems give the space groups of Howard & Stokes (1998)."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from pes_core.sampling import (
    GLAZER_SYSTEMS,
    glazer_tilted,
    parse_glazer,
    rattled_strained,
)


@pytest.mark.parametrize("symbol", sorted(GLAZER_SYSTEMS))
def test_tilt_system_space_group(symbol):
    s = glazer_tilted(symbol, 8.0)
    assert len(s) == 40 and s.composition.reduced_formula == "CsPbBr3"
    number = SpacegroupAnalyzer(s, symprec=1e-3).get_space_group_number()
    assert number == GLAZER_SYSTEMS[symbol][1], symbol


def test_corner_sharing_is_kept():
    s = glazer_tilted("a-b-c-", 10.0)
    # every Br has exactly two Pb neighbours at ~a/2 (octahedra stay corner-connected)
    for site in s:
        if site.species_string == "Br":
            pb = [n for n in s.get_neighbors(site, 3.2) if n.species_string == "Pb"]
            assert len(pb) == 2


def test_bad_symbols():
    with pytest.raises(ValueError, match="not a Glazer symbol"):
        parse_glazer("a+b-")


def test_rattled_strained_is_deterministic_and_respects_min_distance():
    s = glazer_tilted("a0a0a0")
    a = rattled_strained(s, 3, seed=5)
    b = rattled_strained(s, 3, seed=5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.cart_coords, y.cart_coords)
    with pytest.raises(ValueError, match="could not draw"):
        rattled_strained(s, 1, rattle=3.0, min_distance=2.5, max_tries=5)


@pytest.mark.parametrize("symbol", ["a0a0c-", "a+b-b-", "a-a-a-"])
def test_tilted_supercell_of_another_perovskite_and_a_larger_supercell(symbol):
    from pes_core.clusters import PerovskiteReference
    from pes_core.sampling import tilted_supercell

    ref = PerovskiteReference("Sr", "Ti", "O", 3.905)
    s = tilted_supercell(ref, symbol, 5.0)
    assert len(s) == 40 and s.composition.reduced_formula == "SrTiO3"
    assert SpacegroupAnalyzer(s, symprec=1e-3).get_space_group_number() == GLAZER_SYSTEMS[symbol][1]
    # a 4x2x2 supercell repeats the 2x2x2 pattern: same space group, twice the atoms
    big = tilted_supercell(PerovskiteReference("Sr", "Ti", "O", 3.905, supercell=(4, 2, 2)), symbol, 5.0)
    assert len(big) == 80 and np.allclose(big.lattice.abc, (4 * 3.905, 2 * 3.905, 2 * 3.905))
    assert SpacegroupAnalyzer(big, symprec=1e-3).get_space_group_number() == GLAZER_SYSTEMS[symbol][1]


def test_odd_supercells_are_refused():
    with pytest.raises(ValueError, match="even numbers"):
        glazer_tilted("a+b-b-", 8.0, supercell=(3, 2, 2))
