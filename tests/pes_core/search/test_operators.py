from collections import Counter

import numpy as np
import pytest
from ase.build import bulk

from pes_core.search import SearchSettings
from pes_core.search import operators as ops


def _counts(atoms):
    return Counter(atoms.get_chemical_symbols())


@pytest.fixture(scope="module")
def mgo():
    s = SearchSettings(composition={"Mg": 1, "O": 1}, n_atoms=(4, 8), seed=1)
    rng = np.random.default_rng(11)
    parents = [ops.random_structure(s, rng) for _ in range(6)]
    assert all(p is not None for p in parents)
    return s, parents


def test_random_structures_respect_composition_and_distances(mgo):
    s, parents = mgo
    for p in parents:
        assert len(p) in s.allowed_atom_counts()
        c = _counts(p)
        assert c["Mg"] == c["O"]
        assert ops.check_distances(p, s)
        assert list(p.numbers) == sorted(p.numbers)


def test_pyxtal_random_uses_pairwise_tolerances():
    s = SearchSettings(composition={"C": 1}, n_atoms=(8, 8), min_distances={"C-C": 1.3})
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = ops.random_structure(s, rng)
        d = a.get_all_distances(mic=True)[np.triu_indices(len(a), 1)]
        assert d.min() >= 1.3 - 1e-9


def test_primitive_cells_of_centred_groups():
    """With primitive_centred, centred groups give primitive cells of the search's size, symmetric in that group."""
    import spglib
    from pyxtal.symmetry import Group

    s = SearchSettings(composition={"Al": 2, "O": 3}, n_atoms=(10, 10), primitive_centred=True)
    ions = tuple(s.species_counts(10).values())  # the order random_structure hands to pyxtal
    rng = np.random.default_rng(3)
    centred = []
    for _ in range(40):
        a = ops.random_structure(s, rng)
        assert a is not None and len(a) == 10 and _counts(a) == {"Al": 4, "O": 6}
        assert ops.check_distances(a, s)
        sg = int(a.info["spacegroup"])
        found = spglib.get_symmetry_dataset((np.array(a.cell), a.get_scaled_positions(), a.numbers), symprec=1e-3)
        # the drawn group's operations (or a supergroup's) hold: at least as many per primitive cell
        assert len(found.rotations) >= len(Group(sg)[0]) // int(Group(sg).cellsize())
        if int(Group(sg).cellsize()) > 1 and not ops._compatible(sg, ions):
            centred.append(sg)
    assert len(centred) >= 5  # groups the conventional draw cannot reach at 10 atoms (e.g. R-3c, C2/c)
    # the corundum cell: R-3c (Al 4c, O 6e per primitive cell) is among the groups
    assert ops._compatible_primitive(167, ions) and not ops._compatible(167, ions)
    prim = ops.primitive_cell(bulk("Cu", "fcc", a=3.6, cubic=True))
    assert len(prim) == 1 and abs(prim.get_volume() - 3.6**3 / 4) < 1e-6


def test_without_primitive_centred_only_conventional_cells_are_drawn():
    s = SearchSettings(composition={"Al": 2, "O": 3}, n_atoms=(10, 10))
    rng = np.random.default_rng(7)
    ions = tuple(s.species_counts(10).values())
    groups = {int(ops.random_structure(s, rng).info["spacegroup"]) for _ in range(30)}
    assert all(ops._compatible(sg, ions) for sg in groups) and 167 not in groups


@pytest.mark.parametrize("name", ["heredity", "coordinate", "lattice", "permutation"])
def test_operators_keep_composition_and_distances(mgo, name):
    s, parents = mgo
    rng = np.random.default_rng(5)
    made = 0
    for k in range(40):
        p1, p2 = parents[k % len(parents)], parents[(k + 1) % len(parents)]
        if name == "heredity":
            child = ops.heredity(p1, p2, s, rng)
        else:
            child = getattr(ops, {"coordinate": "coordinate_mutation", "lattice": "lattice_mutation",
                                  "permutation": "permutation"}[name])(p1, s, rng)
        if child is None:
            continue
        made += 1
        assert ops.check_distances(child, s)
        c = _counts(child)
        assert c["Mg"] == c["O"]
        if name == "heredity":
            assert len(child) in (len(p1), len(p2))
        else:
            assert len(child) == len(p1)
            assert _counts(child) == _counts(p1)
    assert made >= 5, f"{name} produced only {made} valid children in 40 tries"


def test_heredity_of_different_sizes_and_mutations_change_structure():
    s = SearchSettings(composition={"Si": 1}, n_atoms=(2, 8))
    rng = np.random.default_rng(2)
    d2 = bulk("Si", "diamond", a=5.43)
    d8 = bulk("Si", "diamond", a=5.43, cubic=True)
    sizes = set()
    for _ in range(30):
        c = ops.heredity(d2, d8, s, rng)
        if c is not None:
            sizes.add(len(c))
            assert ops.check_distances(c, s)
    assert sizes <= {2, 8} and sizes
    c = None
    while c is None:
        c = ops.lattice_mutation(d8, s, rng)
    assert abs(c.get_volume() - d8.get_volume()) < 1e-6
    assert not np.allclose(c.cell.cellpar(), d8.cell.cellpar())
