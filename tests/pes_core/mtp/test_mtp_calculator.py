"""The ASE calculator's state handling and the skin neighbour list along trajectories."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.calculator import PropertyNotImplementedError
from ase.units import GPa
from mtp_helpers import random_cluster, random_crystal, random_potential

from pes_core.mtp import MTPCalculator, evaluate
from pes_core.mtp.neighbours import NeighbourCache

TOL = 1e-12


class _CountingCalculator(MTPCalculator):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.n_evaluations = 0

    def calculate(self, *args, **kwargs) -> None:
        self.n_evaluations += 1
        super().calculate(*args, **kwargs)


def _assert_matches_fresh(calc: MTPCalculator, atoms, pot) -> None:
    """The calculator's results for ``atoms`` equal those of a fresh evaluation (new neighbour list)."""
    ref = evaluate(pot, atoms)
    assert abs(atoms.get_potential_energy() - ref.energy) <= TOL * max(1.0, abs(ref.energy))
    assert np.abs(atoms.get_forces() - ref.forces).max() <= TOL * max(1.0, np.abs(ref.forces).max())
    assert np.abs(calc.results["energies"] - ref.energies).max() <= TOL * max(1.0, np.abs(ref.energies).max())
    if np.all(atoms.pbc):
        assert np.abs(atoms.get_stress(voigt=False) - ref.stress * GPa).max() <= TOL * max(1.0, np.abs(ref.stress).max())
    else:
        assert "stress" not in calc.results


def test_energy_forces_stress_from_one_evaluation() -> None:
    pot = random_potential(8, 2, seed=1)
    atoms = random_crystal(2, seed=1)
    calc = _CountingCalculator(pot)
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_stress()
    atoms.get_potential_energies()
    assert calc.n_evaluations == 1
    atoms.get_forces()
    assert calc.n_evaluations == 1


@pytest.mark.parametrize("change", ["positions", "in_place_position", "cell", "numbers", "pbc", "swap_atoms"])
def test_results_invalidated_by_each_change(change: str) -> None:
    pot = random_potential(8, 2, seed=2)
    atoms = random_crystal(2, seed=2)
    calc = _CountingCalculator(pot)
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    f0 = atoms.get_forces()
    if change == "positions":
        atoms.positions = atoms.positions + 0.01
        atoms.positions[0] += 0.05
    elif change == "in_place_position":
        atoms.positions[3, 1] += 0.02  # mutating the array the calculator saw must be noticed
    elif change == "cell":
        atoms.set_cell(atoms.cell.array * 1.01, scale_atoms=False)
    elif change == "numbers":
        atoms.numbers[0] = 6 if atoms.numbers[0] == 14 else 14
    elif change == "pbc":
        atoms.pbc = [True, True, False]
    elif change == "swap_atoms":
        atoms.positions[[0, 1]] = atoms.positions[[1, 0]]
        atoms.numbers[[0, 1]] = atoms.numbers[[1, 0]]
    assert calc.check_state(atoms) != []
    _assert_matches_fresh(calc, atoms, pot)
    assert calc.n_evaluations == 2
    if change != "swap_atoms" or atoms.numbers[0] != atoms.numbers[1]:
        assert atoms.get_potential_energy() != e0 or not np.array_equal(atoms.get_forces(), f0)


def test_unchanged_and_other_arrays_keep_results() -> None:
    pot = random_potential(8, 1, seed=3)
    atoms = random_crystal(1, seed=3)
    calc = _CountingCalculator(pot)
    atoms.calc = calc
    atoms.get_forces()
    same = atoms.copy()  # another object with the same structure
    assert calc.check_state(same) == []
    atoms.set_initial_magnetic_moments(np.ones(len(atoms)))  # does not enter an MTP
    atoms.set_tags(np.arange(len(atoms)))
    atoms.set_momenta(np.ones((len(atoms), 3)))
    atoms.get_potential_energy()
    atoms.get_forces()
    assert calc.n_evaluations == 1


def test_calc_atoms_is_a_snapshot_and_ase_api_works() -> None:
    pot = random_potential(8, 1, seed=4)
    atoms = random_crystal(1, seed=4)
    calc = MTPCalculator(pot)
    assert calc.atoms is None
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    snap = calc.atoms
    assert snap is not atoms and np.array_equal(snap.positions, atoms.positions)
    assert np.array_equal(snap.cell.array, atoms.cell.array) and np.array_equal(snap.numbers, atoms.numbers)
    atoms.positions[0, 0] += 0.1
    assert not np.array_equal(snap.positions, atoms.positions)  # not the user's object
    # properties of the last calculation without atoms, and without a new calculation
    assert calc.get_property("energy") == e0
    assert calc.get_property("energy", atoms, allow_calculation=False) is None
    assert calc.calculation_required(atoms, ["energy"])
    e1 = calc.get_potential_energy(atoms)
    assert e1 != e0 and not calc.calculation_required(atoms, ["energy", "forces", "stress"])
    # forces returned are copies
    f = atoms.get_forces()
    f[:] = 0.0
    assert np.abs(atoms.get_forces()).max() > 0
    # direct calculate(), reset()
    calc.reset()
    assert calc.atoms is None and calc.results == {}
    calc.calculate(atoms)
    assert calc.results["energy"] == pytest.approx(e1, abs=1e-12)
    assert calc.check_state(atoms) == []
    with pytest.raises(PropertyNotImplementedError):
        calc.get_property("dipole", atoms)


def test_cluster_has_no_stress() -> None:
    pot = random_potential(8, 2, seed=5)
    atoms = random_cluster(2, seed=5)
    calc = MTPCalculator(pot)
    atoms.calc = calc
    _assert_matches_fresh(calc, atoms, pot)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_skin_cache_exact_along_md_with_cell_changes() -> None:
    """Molecular dynamics, then cell deformations and a wrap: the cached skin list gives the
    results of a fresh neighbour list at every step, and is rebuilt only when needed."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    from ase.units import fs

    pot = random_potential(10, 2, seed=6)
    atoms = random_crystal(2, seed=6, repeat=2, rattle=0.05)
    calc = MTPCalculator(pot, skin=0.3)
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(0))
    md = VelocityVerlet(atoms, timestep=0.5 * fs)
    start = atoms.positions.copy()
    md.attach(lambda: _assert_matches_fresh(calc, atoms, pot), interval=1)
    md.run(30)
    assert abs(atoms.get_potential_energy()) < 1e3  # a sane trajectory
    moved = np.sqrt(((atoms.positions - start) ** 2).sum(axis=1)).max()
    assert moved > 0.3  # beyond the skin: some steps rebuilt the list
    assert 1 < calc.neighbours.n_builds < 20  # and most reused it
    builds = calc.neighbours.n_builds
    rng = np.random.default_rng(1)
    for step in range(6):  # strain (new cell): each step rebuilds
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.01 * rng.normal(size=(3, 3))), scale_atoms=True)
        _assert_matches_fresh(calc, atoms, pot)
    assert calc.neighbours.n_builds == builds + 6
    atoms.wrap()
    atoms.positions += rng.normal(scale=0.01, size=atoms.positions.shape)
    _assert_matches_fresh(calc, atoms, pot)
    for _ in range(3):
        atoms.positions += rng.normal(scale=0.01, size=atoms.positions.shape)
        _assert_matches_fresh(calc, atoms, pot)


@pytest.mark.filterwarnings("ignore:logm result may be inaccurate")
def test_skin_cache_exact_along_cell_relaxation() -> None:
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    pot = random_potential(8, 1, seed=7)
    atoms = random_crystal(1, seed=7, repeat=2, rattle=0.05)
    calc = MTPCalculator(pot)
    atoms.calc = calc
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    cells = []
    opt.attach(lambda: (_assert_matches_fresh(calc, atoms, pot), cells.append(atoms.cell.array.copy())))
    opt.run(fmax=1e-6, steps=12)
    assert any(not np.array_equal(c, cells[0]) for c in cells)


def test_skin_cache_partly_periodic_and_structure_changes() -> None:
    pot = random_potential(8, 1, seed=8)
    cache = NeighbourCache(pot.max_dist, skin=0.4)
    atoms = random_crystal(1, seed=8, repeat=2)
    atoms.pbc = [True, False, True]
    for structure in [atoms, atoms[:20], random_cluster(1, seed=8), random_crystal(1, seed=9)]:
        s = structure.copy()
        for _ in range(3):
            s.positions += np.random.default_rng(0).normal(scale=0.02, size=s.positions.shape)
            a = evaluate(pot, s, neighbours=cache)
            b = evaluate(pot, s)
            assert abs(a.energy - b.energy) <= TOL * max(1, abs(b.energy))
            assert np.abs(a.forces - b.forces).max() <= TOL * max(1.0, np.abs(b.forces).max())


def test_skin_cache_rejects_overlapping_atoms() -> None:
    pot = random_potential(6, 1, seed=9)
    atoms = random_crystal(1, seed=9)
    cache = NeighbourCache(pot.max_dist)
    cache.pairs(atoms)
    atoms.positions[1] = atoms.positions[0] + 1e-10  # list rebuilt (atom 1 moved > skin / 2)
    with pytest.raises(ValueError, match="on top of each other"):
        cache.pairs(atoms)
    # the reused-list path: atoms 0 and 1 start 0.2 Å apart (skin 0.5), then each moves 0.1 Å (< skin / 2)
    atoms = random_crystal(1, seed=9)
    atoms.positions[1] = atoms.positions[0] + [0.2, 0.0, 0.0]
    cache = NeighbourCache(pot.max_dist, skin=0.5)
    cache.pairs(atoms)
    builds = cache.n_builds
    atoms.positions[0] += [0.1, 0.0, 0.0]
    atoms.positions[1] -= [0.1, 0.0, 0.0]
    with pytest.raises(ValueError, match="on top of each other"):
        cache.pairs(atoms)
    assert cache.n_builds == builds  # caught without a rebuild
