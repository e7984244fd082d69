"""Hard core of the training domain: closest approach per species pair (periodic images), serialization, MC, MD."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest

from pes_core.ann.hardcore import (
    atom_violates_core,
    closest_violation,
    core_table,
    image_range,
    min_pair_distances,
    pair_key,
)


@pytest.fixture(scope="module")
def lj_models(small_featurizer, lj_data):
    """``({"linear": model}, domain)``: a linear model fitted to the 60 LJ-labelled cells and their domain."""
    from pes_core.ann import LinearModel, PESData, compute_features
    from pes_core.ann.calculator import TrainingDomain

    structures, energies, forces = lj_data
    data = PESData.from_structures(small_featurizer, structures, energies, forces)
    return {"linear": LinearModel(small_featurizer).fit(compute_features(small_featurizer, data))}, \
        TrainingDomain.from_data(small_featurizer, data)


def _brute(positions, cell, species, reach=4):
    """Smallest distance per species pair by an explicit loop over all images within ``reach`` cells."""
    out: dict = {}
    for i, j in product(range(len(positions)), repeat=2):
        for m in product(range(-reach, reach + 1), repeat=3):
            if i == j and not any(m):
                continue
            d = float(np.linalg.norm(positions[j] + np.array(m, dtype=float) @ cell - positions[i]))
            key = pair_key(species[i], species[j])
            out[key] = min(out.get(key, np.inf), d)
    return out


def _five_atoms(a=5.87):
    """Cubic CsPbBr3 (5 atoms) with Cs moved next to the face of the cell so its closest Br is across the boundary."""
    frac = np.array([[0.02, 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.93, 0.5, 0.5]])
    species = ["Cs", "Pb", "Br", "Br", "Br"]
    return frac, species


@pytest.mark.parametrize("shear", [0.0, 0.45])
def test_minima_equal_a_brute_force_image_loop_in_a_five_atom_cell(shear):
    frac, species = _five_atoms()
    cell = np.array([[5.87, 0.0, 0.0], [shear * 5.87, 5.87, 0.0], [0.0, shear * 5.87, 5.6]])
    rng = np.random.default_rng(0)
    pos = frac @ cell + rng.normal(scale=0.05, size=frac.shape)
    got = min_pair_distances(pos, cell, species, cutoff=6.0)
    ref = {k: v for k, v in _brute(pos, cell, species).items() if v < 6.0}
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, abs=1e-12), k
    # the Cs-Br minimum is the pair across the boundary: Cs at x = 0.02, Br at x = 0.93 (0.09 of a cell apart)
    direct = min(np.linalg.norm(pos[4] - pos[0]), np.linalg.norm(pos[2] - pos[0]), np.linalg.norm(pos[3] - pos[0]))
    assert got["Br-Cs"] < direct - 1.0
    # Pb-Pb and Cs-Cs: an atom and its own periodic image (the shortest lattice vector)
    assert got["Pb-Pb"] == pytest.approx(min(np.linalg.norm(np.array(m, dtype=float) @ cell)
                                             for m in product(range(-2, 3), repeat=3) if any(m)), abs=1e-12)


def test_minima_over_a_batch_and_the_image_range():
    frac, species = _five_atoms()
    rng = np.random.default_rng(1)
    cells = np.stack([np.diag([5.87, 5.9, 5.8]) + rng.normal(scale=0.2, size=(3, 3)) for _ in range(4)])
    pos = np.einsum("ax,bxy->bay", frac, cells) + rng.normal(scale=0.05, size=(4, 5, 3))
    got = min_pair_distances(pos, cells, species, chunk=3)
    ref: dict = {}
    for p, c in zip(pos, cells):
        for k, v in _brute(p, c, species).items():
            ref[k] = min(ref.get(k, np.inf), v)
    assert got == pytest.approx({k: v for k, v in ref.items() if v < 6.0}, abs=1e-12)
    assert np.array_equal(image_range(np.eye(3) * 20.0, 6.0), [0, 0, 0])  # minimum image is exact
    assert np.all(image_range(np.eye(3) * 5.87, 4.5) >= 1)


def test_core_tests_in_a_small_cell_see_the_closest_image():
    frac, species = _five_atoms()
    cell = np.eye(3) * 5.87
    pos = frac @ cell
    kinds, core2, reach = core_table(species, {"Br-Cs": 0.5, "Pb-Pb": 5.87}, 0.1)
    assert reach == pytest.approx(0.9 * 5.87)
    nimg = image_range(cell, reach)
    inv = np.linalg.inv(cell)
    # Cs (x = 0.02) and the Br at x = 0.93 are 0.53 A apart across the boundary (core 0.45 A); 0.1 A closer: inside
    assert not atom_violates_core(0, pos[0], pos, cell, inv, kinds, core2, nimg)
    assert atom_violates_core(0, pos[0] - np.array([0.1, 0.0, 0.0]), pos, cell, inv, kinds, core2, nimg)
    assert closest_violation(pos, cell, kinds, core2, nimg)[0] >= 1.0
    # Pb meets its own images when the cell shrinks below the core (an own-image pair)
    ratio, i, j, d = closest_violation(pos * 0.85, cell * 0.85, kinds, core2, image_range(cell * 0.85, reach))
    assert ratio < 1.0 and (i, j) == (1, 1) and d == pytest.approx(0.85 * 5.87)
    with pytest.raises(ValueError, match="core_margin"):
        core_table(species, {}, 1.0)


def test_the_domain_records_the_closest_approach_and_serializes_it(lj_models, lj_data, small_featurizer):
    from pes_core.ann import PESData
    from pes_core.ann.calculator import TrainingDomain

    domain = lj_models[1]
    data = PESData.from_structures(small_featurizer, *lj_data[:2])
    species = [str(s.specie) for s in small_featurizer.reference_structure()]
    ref: dict = {}
    for p, c in zip(data.positions.numpy()[:5], data.cells.numpy()[:5]):
        for k, v in _brute(p, c, species, reach=1).items():
            ref[k] = min(ref.get(k, np.inf), v)
    part = TrainingDomain.from_data(small_featurizer, data.subset(range(5)))
    assert part.core == pytest.approx({k: v for k, v in ref.items() if v < 6.0}, abs=1e-12)
    assert set(domain.core) == {"Br-Br", "Br-Cs", "Br-Pb", "Cs-Cs", "Cs-Pb", "Pb-Pb"}
    assert all(domain.core[k] <= part.core[k] for k in part.core)
    assert 2.5 < domain.core["Br-Pb"] < 2.95  # Pb-Br bond 2.935 A, rattled by 0.06 A
    back = TrainingDomain.from_dict(domain.to_dict())
    assert back.core == domain.core and back.core_cutoff == domain.core_cutoff
    old = domain.to_dict()
    del old["core"], old["core_cutoff"]
    assert TrainingDomain.from_dict(old).core == {}  # serialized before the hard core: loads, guards no pair
    merged = TrainingDomain.merged([part, domain])
    assert merged.core == {k: min(part.core[k], domain.core[k]) for k in domain.core}
    assert TrainingDomain.merged([part, TrainingDomain.from_dict(old)]).core == {}
    assert domain.core_distances(0.1)["Br-Pb"] == pytest.approx(0.9 * domain.core["Br-Pb"])


def probe(pos, cell, species, core, k, j, seed=0):
    """Positions of atom ``k`` 2 % inside and 2 % outside the core of atom ``j``, no other pair inside its core."""
    kinds, core2, reach = core_table(species, core, 0.1)
    nimg = image_range(cell, reach)
    c = float(np.sqrt(core2[kinds[k], kinds[j]]))
    rng = np.random.default_rng(seed)
    for _ in range(2000):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        inside, outside = pos[j] + 0.98 * c * u, pos[j] + 1.02 * c * u
        p = pos.copy()
        p[k] = outside
        if closest_violation(p, cell, kinds, core2, nimg)[0] < 1.0:
            continue
        p[k] = inside
        ratio, a, b, _ = closest_violation(p, cell, kinds, core2, nimg)
        if ratio < 1.0 and {a, b} == {k, j}:
            return inside, outside
    raise AssertionError(f"no direction isolates the pair ({k}, {j})")


def _wide(domain):
    """The same hard core with feature and pair ranges (and the energy floor) too wide to ever act."""
    from pes_core.ann.calculator import TrainingDomain

    d = domain.to_dict()
    for k, sign in (("pair_lo", -1), ("pair_hi", 1), ("feature_lo", -1), ("feature_hi", 1)):
        d[k] = {n: [x + sign * 1e6 for x in v] for n, v in d[k].items()}
    d["energy_lo"] = -1e9
    return TrainingDomain.from_dict(d)


def test_run_mc_and_the_calculator_respect_the_core(lj_models, small_featurizer):
    from ase import Atoms

    from pes_core.ann.calculator import ExtrapolationError, PESCalculator
    from pes_core.ann.montecarlo import OutsideDomainError, _Evaluator, chain_ends, run_mc

    model, domain = lj_models[0]["linear"], _wide(lj_models[1])
    ref = np.asarray(small_featurizer.supercell.positions, dtype=float)
    species = [str(s.specie) for s in small_featurizer.reference_structure()]
    cell = np.asarray(small_featurizer.supercell.cell, dtype=float)
    ev = _Evaluator(model, ref, domain=domain)
    cs = species.index("Cs")
    br = next(j for j in range(len(ref)) if species[j] == "Br" and np.linalg.norm(ref[j] - ref[cs]) < 4.3)
    inside, outside = probe(ref, cell, species, domain.core, cs, br)
    assert ev.trial(cs, inside) == ("wall", "core")
    status, _ = ev.trial(cs, outside)
    assert status == "ok"
    start = ref.copy()
    start[cs] = inside
    with pytest.raises(OutsideDomainError, match="hard core"):
        run_mc(model, 300.0, sweeps=2, equilibration=0, block=1, domain=domain, report=False, start=start)
    ends = chain_ends(model, [300.0], 1, 2, domain=domain, starts={(300.0, 0): start})  # refinement samples
    assert ends[0]["restarted"] and 0.0 <= ends[0]["core_fraction"] <= ends[0]["wall_fraction"]
    r = run_mc(model, 3000.0, sweeps=10, equilibration=5, block=5, domain=domain, report=False, step=0.3)
    assert r["core_fraction"] == r["wall_fraction"] > 0.1  # only the core can act (ranges, floor out of reach)
    final = r["positions"]
    kinds, core2, reach = core_table(species, domain.core, 0.1)
    assert closest_violation(final, cell, kinds, core2, image_range(cell, reach))[0] >= 1.0
    # MD calculator: the same configuration raises, with the pair named
    atoms = Atoms(symbols=species, positions=start, cell=cell, pbc=True)
    atoms.calc = PESCalculator(model, domain=domain)
    with pytest.raises(ExtrapolationError, match="(Cs-Br|Br-Cs) distance .* inside the hard core"):
        atoms.get_potential_energy()
    atoms.calc = PESCalculator(model, domain=domain, on_extrapolation="ignore")
    assert atoms.get_potential_energy() is not None and atoms.calc.results["extrapolation"] == np.inf
    atoms.positions[cs] = ref[cs]
    atoms.calc = PESCalculator(model, domain=domain)
    atoms.get_potential_energy()
    assert np.isfinite(atoms.calc.results["extrapolation"])
