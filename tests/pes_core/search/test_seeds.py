"""Seeds of a search: species mapping, supercells, volume rule, refusals, and a seeded Si8 search on SW."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii
from ase.io import write

from pes_core.oracles import get_oracle
from pes_core.search import OracleRelaxer, SearchSettings, new_search, propose_offspring, run_search
from pes_core.search.seeds import (
    SeedError,
    adapt_seed,
    embed_seeds,
    find_prototype,
    map_species,
    resolve_seeds,
    seed_supercell,
)

#: SW (Stillinger-Weber) diamond Si, eV/atom (benchmarks/csp_references.json, Si@sw)
E_DIAMOND_SW = -4.3366


def _settings(comp, n_atoms, seeds=(), **kw) -> SearchSettings:
    return SearchSettings(composition=comp, n_atoms=n_atoms, population_size=kw.pop("population_size", 6),
                          seeds=list(seeds), **kw)


def _sphere(el: str) -> float:
    return 4.0 / 3.0 * np.pi * covalent_radii[atomic_numbers[el]] ** 3


def _counts(atoms) -> dict[str, int]:
    syms = atoms.get_chemical_symbols()
    return {el: syms.count(el) for el in sorted(set(syms))}


# -- species -------------------------------------------------------------------------------
def test_explicit_mapping_makes_rocksalt_mgo():
    s = _settings({"Mg": 1, "O": 1}, (8, 8),
                  [{"prototype": "NaCl:rock salt", "species": {"Na": "Mg", "Cl": "O"}}])
    [(label, atoms)] = resolve_seeds(s)
    assert label == "prototype:NaCl:rock salt"
    assert _counts(atoms) == {"Mg": 4, "O": 4}
    # Mg on the Na sites: every Mg has six O neighbours at a/2
    d = atoms.get_all_distances(mic=True) + np.diag([np.inf] * len(atoms))
    mg = [i for i, x in enumerate(atoms.get_chemical_symbols()) if x == "Mg"]
    o = [i for i, x in enumerate(atoms.get_chemical_symbols()) if x == "O"]
    assert d[np.ix_(mg, o)].min() == pytest.approx(d[np.ix_(mg, mg)].min() / np.sqrt(2), rel=1e-6)


def test_automatic_mapping_by_stoichiometric_ratio():
    # SiO2 stishovite -> GeO2: Si (1 a formula unit) -> Ge, O (2) -> O
    ge = map_species(bulk("Si", "diamond", a=5.43), {"Ge": 1})
    assert set(ge.get_chemical_symbols()) == {"Ge"}
    s = _settings({"Ge": 1, "O": 2}, (6, 6), ["stishovite"])
    [(label, atoms)] = resolve_seeds(s)
    assert label == "prototype:SiO2:stishovite" and _counts(atoms) == {"Ge": 2, "O": 4}
    # NaCl -> NaBr: the shared Na stays Na, so Cl -> Br is not ambiguous
    nabr = map_species(bulk("NaCl", "rocksalt", a=5.64), {"Na": 1, "Br": 1})
    assert nabr.get_chemical_symbols() == ["Na", "Br"]
    # the search's own composition: the identity
    assert map_species(bulk("NaCl", "rocksalt", a=5.64), {"Cl": 1, "Na": 1}).get_chemical_symbols() == ["Na", "Cl"]


def test_ambiguous_or_impossible_mappings_are_refused_with_the_fix():
    rocksalt = bulk("NaCl", "rocksalt", a=5.64)
    with pytest.raises(SeedError, match=r"ambiguous: Cl and Na could each become Mg or O.*species: \{Cl: \.\.\., Na"):
        map_species(rocksalt, {"Mg": 1, "O": 1}, label="rs")
    with pytest.raises(SeedError, match=r"NaCl \(AB\), the search SiO2 \(AB2\): no species mapping"):
        map_species(rocksalt, {"Si": 1, "O": 2})
    with pytest.raises(SeedError, match="is MgCl, not the search's composition MgO; fix species"):
        map_species(rocksalt, {"Mg": 1, "O": 1}, {"Na": "Mg"})
    with pytest.raises(SeedError, match=r"species maps \['K'\], which it does not contain"):
        map_species(rocksalt, {"Mg": 1, "O": 1}, {"K": "Mg", "Cl": "O"})


def test_prototype_names_resolve_by_composition():
    assert find_prototype("diamond", {"Si": 8}) == ("Si", "diamond")
    assert find_prototype("Diamond", {"C": 1}) == ("C", "diamond")
    assert find_prototype("C:diamond", {"Si": 1}) == ("C", "diamond")
    assert find_prototype("corundum", {"Cr": 2, "O": 3}) == ("Al2O3", "corundum")
    with pytest.raises(SeedError, match="'NaCl:rock salt', 'GaAs:rock salt'"):
        find_prototype("rock salt", {"Mg": 1, "O": 1})
    with pytest.raises(SeedError, match="no prototype named 'diamant'; known: Si:diamond"):
        find_prototype("diamant", {"Si": 1})


# -- cell size and volume ------------------------------------------------------------------
def test_supercell_reaches_an_allowed_count_compactly():
    prim = bulk("Si", "diamond", a=5.431)  # 2 atoms, fcc cell
    big = seed_supercell(prim, [16])
    assert len(big) == 16 and big.get_volume() == pytest.approx(8 * prim.get_volume())
    heights = [big.get_volume() / np.linalg.norm(np.cross(big.cell[i - 2], big.cell[i - 1])) for i in range(3)]
    assert min(heights) > 0.6 * big.get_volume() ** (1 / 3)  # compact, not a 1x1x8 needle
    assert len(seed_supercell(prim, [3, 4, 5])) == 4  # the smallest allowed multiple
    # a conventional cell too big for the search: its primitive cell
    assert len(seed_supercell(bulk("Si", "diamond", a=5.431, cubic=True), [2])) == 2
    with pytest.raises(SeedError, match=r"its cell has 8 atoms \(primitive cell 2\) and no multiple of 2 is an "
                                        r"allowed cell size of the search \(\[3\], n_atoms \[3, 3\]\); widen n_atoms"):
        seed_supercell(bulk("Si", "diamond", a=5.431, cubic=True), [3])


def test_volume_rule_own_volume_covalent_ratio_or_the_setting():
    rocksalt = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    own = rocksalt.get_volume() / len(rocksalt)
    # the search's own species: its own volume per atom
    same = adapt_seed(bulk("Si", "diamond", a=5.431, cubic=True), _settings({"Si": 1}, (8, 8)))
    assert same.get_volume() / 8 == pytest.approx(5.431 ** 3 / 8, rel=1e-9)
    # mapped species: scaled by the ratio of covalent-sphere volumes, site by site
    mgo = adapt_seed(rocksalt, _settings({"Mg": 1, "O": 1}, (8, 8)), {"Na": "Mg", "Cl": "O"})
    ratio = (_sphere("Mg") + _sphere("O")) / (_sphere("Na") + _sphere("Cl"))
    assert mgo.get_volume() / 8 == pytest.approx(own * ratio, rel=1e-9)
    assert 0.4 < ratio < 0.7  # Mg2+/O2- are smaller than Na+/Cl-
    # volume_per_atom set: that volume; the shape (c/a, angles) is kept
    fixed = adapt_seed(rocksalt, _settings({"Mg": 1, "O": 1}, (8, 8), volume_per_atom=9.33),
                       {"Na": "Mg", "Cl": "O"})
    assert fixed.get_volume() / 8 == pytest.approx(9.33, rel=1e-9)
    assert np.allclose(fixed.cell.cellpar()[3:], 90.0)


# -- files and refusals ----------------------------------------------------------------------
def test_file_seed_is_read_checked_and_embedded(tmp_path):
    write(tmp_path / "rocksalt.cif", bulk("NaCl", "rocksalt", a=5.64, cubic=True))
    entry = {"file": "rocksalt.cif", "species": {"Na": "Mg", "Cl": "O"}}
    s = _settings({"Mg": 1, "O": 1}, (8, 16), [entry])
    [(label, atoms)] = resolve_seeds(s, base_dir=tmp_path)
    assert label == "file:rocksalt.cif" and _counts(atoms) == {"Mg": 4, "O": 4}
    [embedded] = embed_seeds([entry], s.composition, tmp_path)
    assert embedded["label"] == "file:rocksalt.cif" and embedded["species"] == entry["species"]
    assert len(embedded["structure"]["numbers"]) == 8
    # the embedded entry adapts the same without the file
    s2 = _settings({"Mg": 1, "O": 1}, (8, 16), [embedded])
    [(label2, atoms2)] = resolve_seeds(s2)
    assert label2 == label and np.allclose(atoms2.cell, atoms.cell) and np.allclose(atoms2.positions, atoms.positions)


def test_bad_seeds_are_refused_naming_the_seed(tmp_path):
    si8 = ({"Si": 1}, (8, 8))
    with pytest.raises(SeedError, match=r"seeds\[0\] \('missing.cif'\): no structure file .*missing.cif and no "
                                        r"prototype of that name; fix the path"):
        resolve_seeds(_settings(*si8, ["missing.cif"]), base_dir=tmp_path)
    (tmp_path / "overlap.vasp").write_text("Si\n1.0\n5 0 0\n0 5 0\n0 0 5\nSi\n2\nCartesian\n0 0 0\n0.3 0 0\n")
    with pytest.raises(SeedError, match=r"seeds\[0\]: overlap.vasp: atoms 0 \(Si\) and 1 \(Si\) are 0.300 Å apart"):
        resolve_seeds(_settings(*si8, ["overlap.vasp"]), base_dir=tmp_path)
    with pytest.raises(SeedError, match="has composition NaCl"):
        resolve_seeds(_settings(*si8, ["NaCl:rock salt"]))
    with pytest.raises(SeedError, match=r"3 seeds but generation 0 holds 2 structures; drop seeds or raise "
                                        r"initial_population_size to at least 3"):
        resolve_seeds(_settings(*si8, ["diamond", "lonsdaleite", "bc8"], initial_population_size=2))
    # the form is checked with the settings, before any file is read
    with pytest.raises(ValueError, match=r"seeds\[0\].species: 'Xx' is not an element symbol"):
        _settings(*si8, [{"prototype": "diamond", "species": {"Xx": "Si"}}])
    with pytest.raises(ValueError, match=r"seeds\[0\].species: Si -> 'C', but 'C' is not in the search's composition"):
        _settings(*si8, [{"prototype": "diamond", "species": {"Si": "C"}}])
    with pytest.raises(ValueError, match=r"seeds\[0\]: give exactly one of file, prototype or structure"):
        _settings(*si8, [{"file": "a.cif", "prototype": "diamond"}])
    with pytest.raises(ValueError, match=r"seeds\[1\]: unknown key\(s\) \['specie'\]"):
        _settings(*si8, ["diamond", {"prototype": "diamond", "specie": {}}])
    with pytest.raises(ValueError, match="seeds must be a list"):
        SearchSettings(composition={"Si": 1}, n_atoms=(8, 8), seeds="diamond")


def test_no_seeds_changes_nothing():
    s = _settings({"Si": 1}, (8, 8), seed=4)
    assert s.seeds == [] and SearchSettings.from_dict(s.to_dict()) == s
    plain = propose_offspring(new_search(s))
    seeded = propose_offspring(new_search(_settings({"Si": 1}, (8, 8), ["diamond"], seed=4)))
    assert all(i.origin == "random" for i in plain)
    assert seeded[0].origin == "seed" and seeded[0].flags["seed"] == "prototype:Si:diamond"
    # seeds take the first places; the random structures are then those of the unseeded search, in order
    assert [i.hash for i in seeded[1:]] == [i.hash for i in plain[: len(plain) - 1]]


# -- end to end --------------------------------------------------------------------------------
def test_seeded_si8_search_on_sw_starts_at_the_diamond_energy():
    """A Si8 SW search seeded with diamond: the seed is in generation 0, labelled, and is its best."""
    relaxer = OracleRelaxer(get_oracle("sw"), steps=300)
    common = dict(population_size=4, max_generations=1, seed=0)
    seeded = run_search(_settings({"Si": 1}, (8, 8), ["diamond"], **common), relaxer)
    seeds = [m for m in seeded.population if m.origin == "seed"]
    assert len(seeds) == 1 and seeds[0].generation == 0 and seeds[0].flags["seed"] == "prototype:Si:diamond"
    assert seeds[0].relax_info["n_calls"] > 0  # relaxed like every structure
    assert seeded.history[0]["generation_best"] == pytest.approx(E_DIAMOND_SW, abs=1e-3)
    assert seeded.best_id == seeds[0].id and seeds[0].spacegroup == "Fd-3m (227)"
    plain = run_search(_settings({"Si": 1}, (8, 8), **common), relaxer)
    assert all(m.origin == "random" for m in plain.population)
    assert plain.history[0]["generation_best"] > E_DIAMOND_SW + 0.01
