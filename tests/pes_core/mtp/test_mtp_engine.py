"""Energies, forces and stresses: derivatives, invariances, special cases, backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.units import GPa
from mtp_helpers import random_cluster, random_crystal, random_potential
from scipy.spatial.transform import Rotation

from pes_core.mtp import MTPCalculator, evaluate
from pes_core.mtp.engine import evaluate_pairs, linear_design
from pes_core.mtp.neighbours import build_pairs
from pes_core.mtp.torch_model import TorchBatch, TorchMTP


@pytest.mark.parametrize(("level", "n_species"), [(6, 1), (10, 2), (14, 3)])
def test_forces_and_stress_match_finite_differences(level: int, n_species: int) -> None:
    pot = random_potential(level, n_species, seed=level)
    atoms = random_crystal(n_species, seed=level)
    atoms.calc = MTPCalculator(pot)
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 1e-2
    fd = calculate_numerical_forces(atoms, eps=1e-5)
    assert np.allclose(forces, fd, atol=1e-6 * max(1.0, np.abs(forces).max()))
    stress = atoms.get_stress()
    fd_stress = calculate_numerical_stress(atoms, eps=1e-6)
    assert np.allclose(stress, fd_stress, atol=1e-7 * max(1.0, np.abs(stress).max() / GPa))


def test_forces_of_cluster_match_finite_differences() -> None:
    pot = random_potential(10, 2, seed=5)
    atoms = random_cluster(2, seed=5)
    atoms.calc = MTPCalculator(pot)
    assert np.allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-7)
    assert "stress" not in atoms.calc.results


def test_invariances() -> None:
    pot = random_potential(12, 2, seed=7)
    atoms = random_crystal(2, seed=7)
    ref = evaluate(pot, atoms)
    # rotation of positions and cell
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    turned = atoms.copy()
    turned.set_cell(atoms.cell.array @ rot.T, scale_atoms=True)
    res = evaluate(pot, turned)
    assert abs(res.energy - ref.energy) < 1e-10 * max(1, abs(ref.energy))
    assert np.allclose(res.forces, ref.forces @ rot.T, atol=1e-10)
    assert np.allclose(res.stress, rot @ ref.stress @ rot.T, atol=1e-10)
    # translation (with wrapping)
    moved = atoms.copy()
    moved.translate([0.37, -1.3, 2.2])
    moved.wrap()
    res = evaluate(pot, moved)
    assert abs(res.energy - ref.energy) < 1e-10
    assert np.allclose(res.forces, ref.forces, atol=1e-10)
    # permutation of atoms
    perm = np.random.default_rng(0).permutation(len(atoms))
    shuffled = atoms[perm]
    res = evaluate(pot, shuffled)
    assert abs(res.energy - ref.energy) < 1e-10
    assert np.allclose(res.forces, ref.forces[perm], atol=1e-10)
    assert np.allclose(res.energies, ref.energies[perm], atol=1e-10)


def test_isolated_atom_gets_species_energy() -> None:
    pot = random_potential(10, 2, seed=1)
    for z, xi0 in zip([14, 6], pot.species_coeffs):
        res = evaluate(pot, Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]]))
        assert res.energy == pytest.approx(xi0, abs=1e-14)
        assert np.all(res.forces == 0.0)
    # two atoms farther apart than the cutoff, periodic cell larger than the cutoff
    atoms = Atoms("SiC", positions=[[0, 0, 0], [0, 0, 6.0]], cell=[12.0, 12.0, 12.0], pbc=True)
    res = evaluate(pot, atoms)
    assert res.energy == pytest.approx(pot.species_coeffs.sum(), abs=1e-14)
    assert np.all(res.forces == 0) and np.all(res.stress == 0)


def test_one_atom_without_neighbours_among_others() -> None:
    pot = random_potential(8, 1, seed=2)
    atoms = Atoms("Si3", positions=[[0, 0, 0], [2.3, 0, 0], [20, 0, 0]])
    res = evaluate(pot, atoms)
    assert res.energies[2] == pytest.approx(pot.species_coeffs[0], abs=1e-14)
    assert np.all(res.forces[2] == 0)


def test_unknown_species_error() -> None:
    pot = random_potential(6, 1)
    with pytest.raises(ValueError, match=r"species \['Au'\].*does not know"):
        evaluate(pot, Atoms("SiAu", positions=[[0, 0, 0], [2.5, 0, 0]]))


def test_untrained_potential_error() -> None:
    from pes_core.mtp import MTPPotential

    pot = MTPPotential.from_level(6, ["Si"], seed=None)
    with pytest.raises(ValueError, match="no coefficients"):
        MTPCalculator(pot)


def test_numba_and_numpy_paths_agree() -> None:
    pot = random_potential(16, 2, seed=4)
    atoms = random_crystal(2, seed=4)
    pairs = build_pairs(atoms, pot.max_dist)
    types = pot.types_of(atoms.numbers)
    a = evaluate_pairs(pot, pairs, types, use_numba=True)
    b = evaluate_pairs(pot, pairs, types, use_numba=False)
    assert abs(a.energy - b.energy) < 1e-10
    assert np.allclose(a.forces, b.forces, atol=1e-10)
    assert np.allclose(a.virial, b.virial, atol=1e-10)


def test_linear_design_reproduces_evaluation() -> None:
    pot = random_potential(10, 2, seed=6)
    atoms = random_crystal(2, seed=6)
    pairs = build_pairs(atoms, pot.max_dist)
    types = pot.types_of(atoms.numbers)
    e_row, f_rows, w_rows, site_rows = linear_design(pot, pairs, types, chunk=5)
    theta = np.concatenate([pot.species_coeffs, pot.moment_coeffs])
    res = evaluate_pairs(pot, pairs, types)
    assert e_row @ theta == pytest.approx(res.energy, rel=1e-12)
    assert np.allclose(f_rows @ theta, res.forces, atol=1e-10)
    assert np.allclose(w_rows @ theta, res.virial, atol=1e-10)
    assert np.allclose(site_rows @ theta, res.energies, atol=1e-12)


def test_torch_model_matches_engine() -> None:
    pot = random_potential(12, 2, seed=8)
    structures = [random_crystal(2, seed=s) for s in range(3)]
    pairs = [build_pairs(a, pot.max_dist) for a in structures]
    types = [pot.types_of(a.numbers) for a in structures]
    model = TorchMTP(pot)
    energy, forces, virial = model(TorchBatch.build(pot, pairs, types), torch.tensor(pot.species_coeffs),
                                   torch.tensor(pot.moment_coeffs), torch.tensor(pot.radial_coeffs))
    start = 0
    for k, (p, t) in enumerate(zip(pairs, types)):
        ref = evaluate_pairs(pot, p, t)
        assert energy[k].item() == pytest.approx(ref.energy, abs=1e-10)
        assert np.allclose(forces[start : start + p.n_atoms].detach().numpy(), ref.forces, atol=1e-10)
        assert np.allclose(virial[k].detach().numpy(), ref.virial, atol=1e-9)
        start += p.n_atoms


def test_mixed_boundary_conditions() -> None:
    pot = random_potential(8, 1, seed=9)
    atoms = random_crystal(1, seed=9)
    atoms.pbc = [True, True, False]
    atoms.calc = MTPCalculator(pot)
    assert np.allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-6)


def test_linear_design_numba_and_numpy_agree() -> None:
    pot = random_potential(12, 2, seed=12)
    atoms = random_crystal(2, seed=12)
    pairs = build_pairs(atoms, pot.max_dist)
    types = pot.types_of(atoms.numbers)
    fused = linear_design(pot, pairs, types, use_numba=True)
    plain = linear_design(pot, pairs, types, use_numba=False)
    for a, b in zip(fused, plain):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())


def test_skin_neighbour_cache_matches_fresh_lists() -> None:
    from pes_core.mtp.neighbours import NeighbourCache

    pot = random_potential(10, 2, seed=13)
    atoms = random_crystal(2, seed=13)
    cache = NeighbourCache(pot.max_dist, skin=0.4)
    rng = np.random.default_rng(0)
    base = atoms.positions.copy()
    for step in range(6):
        atoms.positions = base + rng.normal(scale=0.05 * step, size=base.shape)  # small, then beyond the skin
        a = evaluate(pot, atoms, neighbours=cache)
        b = evaluate(pot, atoms)
        assert abs(a.energy - b.energy) < 1e-10
        assert np.allclose(a.forces, b.forces, atol=1e-10)
        assert np.allclose(a.stress, b.stress, atol=1e-10)
