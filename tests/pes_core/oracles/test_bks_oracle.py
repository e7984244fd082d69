"""The ``bks`` silica oracle: Ewald sums, derivatives, invariances, polymorph ordering, no collapse."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.fd import calculate_numerical_stress
from ase.filters import FrechetCellFilter
from ase.neighborlist import neighbor_list
from ase.optimize import BFGS
from ase.spacegroup import crystal
from ase.stress import voigt_6_to_full_3x3_stress as full_stress
from ase.units import GPa

from pes_core.oracles import (
    OracleError,
    available_oracles,
    check_oracle_settings,
    get_oracle,
)
from pes_core.oracles.bks import BKS_CHARGES, BKSCalculator
from pes_core.oracles.calculator import OracleCalculator

#: BKS paper (PRL 64, 1955 (1990)): alpha-quartz a, c in Å
BKS_QUARTZ_A, BKS_QUARTZ_C = 4.941, 5.449


def quartz(a: float = 4.913, c: float = 5.405) -> Atoms:
    """alpha-quartz, P3_221, 9 atoms (experimental cell)."""
    return crystal(["Si", "O"], [(0.4697, 0, 2 / 3), (0.4135, 0.2669, 0.7858)], spacegroup=154,
                   cellpar=[a, a, c, 90, 90, 120])


def alpha_cristobalite() -> Atoms:
    """alpha-cristobalite, P4_12_12, 12 atoms."""
    return crystal(["Si", "O"], [(0.3003, 0.3003, 0), (0.2392, 0.1044, 0.1787)], spacegroup=92,
                   cellpar=[4.9717, 4.9717, 6.9223, 90, 90, 90])


def stishovite() -> Atoms:
    """Stishovite, rutile type, P4_2/mnm, 6 atoms."""
    return crystal(["Si", "O"], [(0, 0, 0), (0.3062, 0.3062, 0)], spacegroup=136,
                   cellpar=[4.18, 4.18, 2.67, 90, 90, 90])


def rattled_strained_quartz() -> Atoms:
    atoms = quartz()
    atoms.rattle(0.05, seed=1)
    strain = np.array([[0.02, 0.01, 0.0], [0.0, -0.01, 0.005], [0.0, 0.0, 0.03]])
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return atoms


def relax(atoms: Atoms, oracle, fmax: float = 1e-3, steps: int = 2000) -> Atoms:
    """Positions and cell at 0 GPa on ``oracle`` (BFGS, FrechetCellFilter); the rattle leaves saddles."""
    atoms = atoms.copy()
    atoms.rattle(0.02, seed=0)
    atoms.calc = OracleCalculator(oracle)
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=steps)
    return atoms


def si_coordination(atoms: Atoms, cutoff: float = 2.0) -> set[int]:
    i, j = neighbor_list("ij", atoms, cutoff)
    si = atoms.numbers == 14
    return set(np.bincount(i[si[i] & ~si[j]], minlength=len(atoms))[si].tolist())


def test_registered_for_si_and_o_with_checked_settings():
    assert "bks" in available_oracles()
    oracle = get_oracle("bks")
    assert oracle.category == "ml" and oracle.supported_elements == {"Si", "O"}
    check_oracle_settings("bks", {"cutoff": 10.0, "ewald_accuracy": 1e-8, "repulsion": True})
    with pytest.raises(ValueError, match="unknown key"):
        check_oracle_settings("bks", {"rc": 10.0})
    with pytest.raises(ValueError, match="cutoff is out of range"):
        check_oracle_settings("bks", {"cutoff": 2.0})
    with pytest.raises(ValueError, match="oracle 'bks' has no parameters for Al"):
        oracle.compute(Atoms("AlO", positions=[(0, 0, 0), (1.8, 0, 0)], cell=[8, 8, 8], pbc=True))
    with pytest.raises(ValueError, match="fully periodic or a fully non-periodic"):
        BKSCalculator().get_potential_energy(Atoms("SiO2", positions=[(0, 0, 0), (1.6, 0, 0), (-1.6, 0, 0)],
                                                   cell=[8, 8, 8], pbc=[True, True, False]))


@pytest.mark.parametrize("build", [rattled_strained_quartz, stishovite])
def test_ewald_sum_matches_pymatgen(build):
    """With the short-range part switched off, the Coulomb energy and forces are pymatgen's Ewald sum."""
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = build()
    atoms.rattle(0.03, seed=2)
    calc = BKSCalculator()
    calc._pairs = {}  # Coulomb only
    energy, forces = calc.get_potential_energy(atoms), calc.get_forces(atoms)
    structure = AseAtomsAdaptor.get_structure(atoms)
    structure.add_site_property("charge", [BKS_CHARGES[s.specie.symbol] for s in structure])
    ewald = EwaldSummation(structure, acc_factor=12, compute_forces=True)
    assert energy == pytest.approx(ewald.total_energy, abs=1e-4)  # pymatgen's e^2/(4 pi eps0) differs by 3e-8
    assert np.abs(forces - ewald.forces).max() < 1e-5


def test_forces_are_minus_the_energy_gradient():
    atoms = quartz()
    atoms.rattle(0.05, seed=1)
    atoms.calc = BKSCalculator()
    forces = atoms.get_forces()
    h = 1e-4
    numeric = np.zeros_like(forces)
    for n in range(len(atoms)):
        for k in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[n, k] += sign * h
                energies.append(BKSCalculator().get_potential_energy(moved))
            numeric[n, k] = -(energies[0] - energies[1]) / (2 * h)
    assert np.abs(forces).max() > 1.0  # a rattled cell: forces to compare
    assert np.abs(numeric - forces).max() < 1e-4 * np.abs(forces).max()
    assert np.abs(forces.sum(axis=0)).max() < 1e-8  # translation invariance of a periodic cell


@pytest.mark.parametrize("settings", [{}, {"cutoff": 6.0, "ewald_accuracy": 1e-8}])
def test_stress_is_the_strain_derivative(settings):
    atoms = rattled_strained_quartz()
    atoms.calc = BKSCalculator(**settings)
    stress = atoms.get_stress()
    numeric = calculate_numerical_stress(atoms, eps=1e-5)
    assert np.abs(stress).max() > 0.01  # eV/Å^3 (1.6 GPa): something to compare
    assert np.abs(numeric - stress).max() < 1e-4 * np.abs(stress).max()


def test_oracle_reports_energy_forces_and_stress_in_project_units():
    atoms = rattled_strained_quartz()
    result = get_oracle("bks").compute(atoms)
    calc = BKSCalculator()
    assert result.energy == pytest.approx(calc.get_potential_energy(atoms), abs=1e-10)
    np.testing.assert_allclose(result.forces, calc.get_forces(atoms), atol=1e-10)
    voigt = calc.get_stress(atoms) / GPa
    np.testing.assert_allclose(result.stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]], voigt, atol=1e-8)
    assert "Saika-Voivod" in result.provenance["code_version"]


def test_invariant_under_rotation_translation_and_permutation():
    atoms = rattled_strained_quartz()
    calc = BKSCalculator()
    e0, f0, s0 = calc.get_potential_energy(atoms), calc.get_forces(atoms), full_stress(calc.get_stress(atoms))

    rng = np.random.default_rng(3)
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot *= np.sign(np.linalg.det(rot))  # proper rotation
    turned = atoms.copy()
    turned.set_cell(atoms.cell.array @ rot.T, scale_atoms=True)
    assert np.allclose(turned.positions, atoms.positions @ rot.T)
    assert calc.get_potential_energy(turned) == pytest.approx(e0, rel=1e-10)
    np.testing.assert_allclose(calc.get_forces(turned), f0 @ rot.T, atol=1e-10 * np.abs(f0).max())
    np.testing.assert_allclose(full_stress(calc.get_stress(turned)), rot @ s0 @ rot.T, atol=1e-10 * np.abs(s0).max())

    shifted = atoms.copy()
    shifted.translate([0.37, -1.2, 2.9])
    assert calc.get_potential_energy(shifted) == pytest.approx(e0, rel=1e-10)
    shifted.wrap()
    assert calc.get_potential_energy(shifted) == pytest.approx(e0, rel=1e-10)

    order = rng.permutation(len(atoms))
    assert calc.get_potential_energy(atoms[order]) == pytest.approx(e0, rel=1e-10)
    np.testing.assert_allclose(calc.get_forces(atoms[order]), f0[order], atol=1e-10 * np.abs(f0).max())


def test_relaxed_quartz_has_the_bks_lattice():
    relaxed = relax(quartz(), get_oracle("bks"))
    a, b, c = relaxed.cell.lengths()
    assert a == pytest.approx(BKS_QUARTZ_A, rel=0.02) and b == pytest.approx(BKS_QUARTZ_A, rel=0.02)
    assert c == pytest.approx(BKS_QUARTZ_C, rel=0.02)
    assert si_coordination(relaxed) == {4}
    d = relaxed.get_all_distances(mic=True)[relaxed.numbers == 14][:, relaxed.numbers == 8]
    assert 1.58 < d.min() < 1.63  # Si-O bond (experiment 1.61 Å)
    # the near-untruncated potential (12 Å) gives the BKS paper's lattice within 0.1 %
    long = relax(quartz(), get_oracle("bks", {"cutoff": 12.0})).cell.lengths()
    assert long[0] == pytest.approx(BKS_QUARTZ_A, rel=1e-3) and long[2] == pytest.approx(BKS_QUARTZ_C, rel=1e-3)


def test_tetrahedral_silica_is_the_ground_state_and_stishovite_lies_above():
    oracle = get_oracle("bks")
    relaxed = {name: relax(build(), oracle) for name, build in
               (("quartz", quartz), ("cristobalite", alpha_cristobalite), ("stishovite", stishovite))}
    e = {name: a.get_potential_energy() / len(a) for name, a in relaxed.items()}
    assert si_coordination(relaxed["quartz"]) == si_coordination(relaxed["cristobalite"]) == {4}
    assert si_coordination(relaxed["stishovite"]) == {6}
    assert min(e, key=e.get) in ("quartz", "cristobalite")
    assert e["stishovite"] > e["quartz"] + 0.01  # eV/atom; measured +35 meV/atom
    assert e["cristobalite"] - e["quartz"] < 0.1
    v = {name: a.get_volume() / len(a) for name, a in relaxed.items()}
    assert v["stishovite"] < 0.7 * v["quartz"]  # the dense 6-coordinated phase


def test_short_range_wall_prevents_the_bks_collapse():
    pair = Atoms("SiO", positions=[(0, 0, 0), (0.5, 0, 0)], cell=[12, 12, 12], pbc=True)
    pair_e = BKSCalculator().get_potential_energy(pair) - BKSCalculator().get_potential_energy(
        Atoms("SiO", positions=[(0, 0, 0), (6, 0, 0)], cell=[12, 12, 12], pbc=True))
    assert pair_e > 1e6  # eV
    assert BKSCalculator(repulsion=False).get_potential_energy(pair) < -1000  # bare BKS: the collapse
    oo = Atoms("O2", positions=[(0, 0, 0), (0.5, 0, 0)])  # non-periodic: direct Coulomb sum
    assert BKSCalculator().get_potential_energy(oo) > 1e6
    assert BKSCalculator(repulsion=False).get_potential_energy(oo) < -1000
    with pytest.raises(OracleError, match="implausible"):
        get_oracle("bks").compute(pair)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_silica_cells_relax_no_lower_than_quartz(seed):
    oracle = get_oracle("bks")
    e_quartz = relax(quartz(), oracle).get_potential_energy() / 9
    rng = np.random.default_rng(seed)
    while True:  # 3 SiO2 at a random position, 16 Å^3/atom, no pair closer than 1.3 Å
        cell = np.diag([5.24, 5.24, 5.24]) + rng.normal(scale=0.5, size=(3, 3))
        atoms = Atoms("Si3O6", scaled_positions=rng.random((9, 3)), cell=cell, pbc=True)
        d = atoms.get_all_distances(mic=True)
        if d[~np.eye(9, dtype=bool)].min() > 1.3:
            break
    atoms.calc = OracleCalculator(oracle)
    energies = []
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    opt.attach(lambda: energies.append(atoms.get_potential_energy() / 9))
    opt.run(fmax=0.01, steps=600)
    assert min(energies) > e_quartz - 0.005  # eV/atom: nothing below the tetrahedral ground state
    d = atoms.get_all_distances(mic=True)
    assert d[~np.eye(9, dtype=bool)].min() > 1.4  # no collapsed pair (bare BKS falls through 1.2 Å)
