import numpy as np
import pytest
from ase.build import bulk

from pes_core.search import FingerprintComparator, Individual, mark_duplicates


@pytest.fixture(scope="module")
def comp():
    return FingerprintComparator()


def _moved(atoms, seed=0):
    """Rotated, translated and permuted copy."""
    rng = np.random.default_rng(seed)
    a = atoms.copy()
    a.rotate(37.0, (1, 2, 3), rotate_cell=True)
    a.translate(rng.random(3) * 3)
    a.wrap()
    return a[rng.permutation(len(a))]


def test_same_structure_in_other_settings_is_a_duplicate(comp):
    conv = bulk("Si", "diamond", a=5.43, cubic=True)            # 8 atoms, cubic
    prim_sc = bulk("Si", "diamond", a=5.43) * (2, 2, 1)         # 8 atoms, primitive-based supercell
    assert len(conv) == len(prim_sc) == 8
    assert comp.distance(conv, prim_sc) < comp.cos_max / 10
    assert comp.distance(conv, _moved(conv)) < comp.cos_max / 10
    assert comp.distance(prim_sc, _moved(prim_sc, 3)) < comp.cos_max / 10
    # different atom counts of the same crystal compare too
    assert comp.distance(conv, bulk("Si", "diamond", a=5.43)) < comp.cos_max / 10
    # two species: permuting like atoms does not matter
    rs = bulk("NaCl", "rocksalt", a=5.6, cubic=True)
    assert comp.distance(rs, _moved(rs, 4)) < comp.cos_max / 10


def test_distinct_structures_are_not_duplicates(comp):
    diamond = bulk("Si", "diamond", a=5.43, cubic=True)
    lonsdaleite = bulk("SiSi", "wurtzite", a=3.84, c=6.27, u=0.375) * (1, 1, 2)
    beta_tin = bulk("Si", "bct", a=4.9, c=2.7) * (2, 2, 2)
    sc = bulk("Si", "sc", a=2.5) * (2, 2, 2)
    others = [lonsdaleite, beta_tin, sc]
    for o in others:
        assert len(o) == 8
        assert comp.distance(diamond, o) > comp.cos_max
    # and with two species: rocksalt vs zincblende
    assert comp.distance(bulk("NaCl", "rocksalt", a=5.6, cubic=True),
                         bulk("NaCl", "zincblende", a=5.6, cubic=True)) > comp.cos_max


def _ind(i, atoms, h):
    ind = Individual.from_atoms(f"g000-{i:03d}", atoms, "random")
    ind.relaxed, ind.enthalpy_per_atom, ind.energy = True, h, h * len(atoms)
    ind.volume = atoms.get_volume()
    return ind


def test_mark_duplicates_uses_fingerprint_and_energy(comp):
    d = bulk("Si", "diamond", a=5.43, cubic=True)
    lon = bulk("SiSi", "wurtzite", a=3.84, c=6.27, u=0.375) * (1, 1, 2)
    inds = [
        _ind(0, d, -4.6296),
        _ind(1, _moved(d, 1), -4.6290),              # same structure, 0.6 meV: duplicate
        _ind(2, bulk("Si", "diamond", a=5.43) * (2, 2, 1), -4.6200),   # 9.6 meV: duplicate
        _ind(3, _moved(d, 2), -4.5900),              # same fingerprint but 40 meV higher: distinct
        _ind(4, lon, -4.6280),                       # close energy, other structure: distinct
    ]
    n = mark_duplicates(inds, comp)
    assert n == 2
    assert [i.flags["duplicate_of"] for i in inds] == [None, "g000-000", "g000-000", None, None]
    assert not inds[1].can_breed and inds[0].can_breed
