"""Agreement with motep (an independent MLIP-file evaluator) on random potentials and structures."""

from __future__ import annotations

import numpy as np
import pytest
from mtp_helpers import SPECIES, random_crystal, random_potential

from pes_core.mtp import evaluate, read_cfg, read_mtp, write_cfg, write_mtp
from pes_core.mtp.records import TrainingRecord

motep_mtp = pytest.importorskip("motep.io.mlip.mtp")
motep_calc = pytest.importorskip("motep.calculator")
motep_cfg = pytest.importorskip("motep.io.mlip.cfg")


def _motep_results(path, species, atoms, engine="cext"):
    data = motep_mtp.read_mtp(path)
    data.species = species
    atoms = atoms.copy()
    atoms.calc = motep_calc.MTP(data, engine=engine)
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False), atoms.calc.results["energies"]


@pytest.mark.parametrize(("level", "n_species"), [(2, 1), (6, 3), (10, 2), (14, 1), (16, 3), (18, 2)])
def test_energies_forces_stress_match_motep(tmp_path, level: int, n_species: int) -> None:
    pot = random_potential(level, n_species, seed=level + n_species)
    path = tmp_path / "pot.mtp"
    write_mtp(path, pot)
    for seed in range(2):
        atoms = random_crystal(n_species, seed=100 * level + seed)
        ours = evaluate(pot, atoms)
        e, f, s, per_atom = _motep_results(path, SPECIES[:n_species], atoms)
        assert abs(ours.energy - e) / len(atoms) < 1e-6
        assert np.abs(ours.forces - f).max() < 1e-5
        from ase.units import GPa

        assert np.abs(ours.stress - s / GPa).max() < 1e-5
        assert np.abs(ours.energies - per_atom).max() < 1e-6


def test_reads_files_written_by_motep(tmp_path) -> None:
    """motep writes the grouped header style (min/max/size); we read it and agree."""
    pot = random_potential(10, 2, seed=11)
    write_mtp(tmp_path / "ours.mtp", pot)
    data = motep_mtp.read_mtp(tmp_path / "ours.mtp")
    motep_mtp.write_mtp(tmp_path / "theirs.mtp", data)
    back = read_mtp(tmp_path / "theirs.mtp", species=SPECIES[:2])
    # motep writes 16 significant digits
    assert np.allclose(back.radial_coeffs, pot.radial_coeffs, rtol=1e-14, atol=0)
    assert np.allclose(back.moment_coeffs, pot.moment_coeffs, rtol=1e-14, atol=0)
    atoms = random_crystal(2, seed=3)
    assert evaluate(back, atoms).energy == pytest.approx(evaluate(pot, atoms).energy, abs=1e-10)


def test_cfg_stress_convention_matches_motep(tmp_path) -> None:
    """PlusStress = -stress * V: motep reads our file to the same ASE stress."""
    atoms = random_crystal(2, seed=1)
    rng = np.random.default_rng(0)
    s = rng.normal(size=(3, 3))
    rec = TrainingRecord(atoms, -12.5, rng.normal(size=(len(atoms), 3)), s + s.T)
    write_cfg(tmp_path / "a.cfg", [rec], species=SPECIES[:2])
    theirs = motep_cfg.read_cfg(str(tmp_path / "a.cfg"), index=0, species=SPECIES[:2])
    from ase.units import GPa

    assert np.allclose(theirs.get_stress(voigt=False) / GPa, rec.stress, atol=1e-12)
    assert np.allclose(theirs.get_forces(), rec.forces, atol=0)
    assert np.array_equal(theirs.numbers, atoms.numbers)
    ours = read_cfg(tmp_path / "a.cfg", species=SPECIES[:2])[0]
    assert np.allclose(ours.stress, rec.stress, atol=1e-12)
