"""MLIP file formats: exact round trips and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from mtp_helpers import random_cluster, random_crystal, random_potential

from pes_core.mtp import (
    CfgFileError,
    MTPFileError,
    MTPPotential,
    TrainingRecord,
    load_records,
    read_cfg,
    read_mtp,
    save_records,
    write_cfg,
    write_mtp,
)
from pes_core.mtp.records import plus_stress_to_stress_gpa, stress_gpa_to_plus_stress


@pytest.mark.parametrize(("level", "n_species"), [(2, 1), (10, 2), (16, 3)])
def test_mtp_round_trip_is_exact(tmp_path, level: int, n_species: int) -> None:
    pot = random_potential(level, n_species, seed=1)
    pot.scaling = 0.7430958497536394
    write_mtp(tmp_path / "a.mtp", pot)
    back = read_mtp(tmp_path / "a.mtp", species=pot.species)
    for key in ("radial_coeffs", "species_coeffs", "moment_coeffs"):
        assert np.array_equal(getattr(back, key), getattr(pot, key))
    for key in ("alpha_index_basic", "alpha_index_times", "alpha_moment_mapping"):
        assert np.array_equal(getattr(back.basis, key), getattr(pot.basis, key))
    assert (back.scaling, back.min_dist, back.max_dist) == (pot.scaling, pot.min_dist, pot.max_dist)
    write_mtp(tmp_path / "b.mtp", back)
    assert (tmp_path / "a.mtp").read_text() == (tmp_path / "b.mtp").read_text()


def test_untrained_template_round_trip(tmp_path) -> None:
    pot = MTPPotential.from_level(8, [1], seed=None)
    write_mtp(tmp_path / "08.mtp", pot)
    text = (tmp_path / "08.mtp").read_text()
    assert "radial_coeffs" not in text and "min_dist = 2\n" in text
    back = read_mtp(tmp_path / "08.mtp")
    assert not back.is_trained and back.level == 8
    assert back.basis.alpha_scalar_moments == 9


def test_species_line(tmp_path) -> None:
    pot = random_potential(6, 2)
    write_mtp(tmp_path / "a.mtp", pot, write_species=True)
    assert read_mtp(tmp_path / "a.mtp").species == pot.species
    write_mtp(tmp_path / "b.mtp", pot)
    assert read_mtp(tmp_path / "b.mtp").species == [0, 0]
    with pytest.raises(ValueError, match="species are not set"):
        read_mtp(tmp_path / "b.mtp").types_of(np.array([14]))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("MTP\n", "XYZ\n", 1), "first line must be 'MTP'"),
        (lambda t: t.replace("alpha_moments_count", "alpha_moment_count"), "missing keys"),
        (lambda t: t.replace("species_coeffs = {", "species_coeffs = {1.0, "), "species_coeffs has 3 values"),
        (lambda t: t.replace("alpha_index_basic_count = ", "alpha_index_basic_count = 1"), "alpha_index_basic_count"),
        (lambda t: t.replace("\t\t0-1\n", "\t\t7-1\n"), "radial_coeffs blocks"),
        (lambda t: t.replace("RBChebyshev", "RBShapeev"), "not supported"),
        (lambda t: t.replace("moment_coeffs = {", "moment_coeffs = {abc, "), "not a number"),
    ],
)
def test_malformed_mtp(tmp_path, edit, message) -> None:
    pot = random_potential(6, 2)
    write_mtp(tmp_path / "a.mtp", pot)
    (tmp_path / "bad.mtp").write_text(edit((tmp_path / "a.mtp").read_text()))
    with pytest.raises(MTPFileError, match=message):
        read_mtp(tmp_path / "bad.mtp")


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_mtp("/nonexistent/pot.mtp")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_cfg("/nonexistent/train.cfg")


def _records() -> list[TrainingRecord]:
    rng = np.random.default_rng(3)
    out = []
    for seed in range(3):
        atoms = random_crystal(2, seed=seed)
        s = rng.normal(size=(3, 3))
        out.append(TrainingRecord(atoms, rng.normal() * 10, rng.normal(size=(len(atoms), 3)), s + s.T,
                                  features={"EFS_by": "VASP"}))
    cluster = random_cluster(2, seed=1)
    out.append(TrainingRecord(cluster, -3.0 + 1e-20, rng.normal(size=(len(cluster), 3)) * 1e-7))
    return out


def test_cfg_round_trip_is_exact(tmp_path) -> None:
    records = _records()
    write_cfg(tmp_path / "a.cfg", records, species=["Si", "C"])
    back = read_cfg(tmp_path / "a.cfg", species=["Si", "C"])
    assert len(back) == len(records)
    for a, b in zip(records, back):
        assert np.array_equal(a.atoms.positions, b.atoms.positions)
        assert np.array_equal(a.atoms.cell.array, b.atoms.cell.array)
        assert np.array_equal(a.atoms.numbers, b.atoms.numbers)
        assert np.array_equal(a.atoms.pbc, b.atoms.pbc)
        assert a.energy == b.energy
        assert np.array_equal(a.forces, b.forces)
        if a.stress is not None:
            assert np.allclose(a.stress, b.stress, rtol=1e-14, atol=1e-14)
        assert b.features.get("EFS_by") == a.features.get("EFS_by")
    write_cfg(tmp_path / "b.cfg", back, species=["Si", "C"])
    back2 = read_cfg(tmp_path / "b.cfg", species=["Si", "C"])
    write_cfg(tmp_path / "c.cfg", back2, species=["Si", "C"])
    assert (tmp_path / "b.cfg").read_text() == (tmp_path / "c.cfg").read_text()


def test_plus_stress_conversion() -> None:
    """ASE sign: a cell under tension has positive stress; its MLIP virial PlusStress is negative."""
    from ase.units import GPa

    stress = np.diag([1.0, 2.0, 3.0])  # GPa, tensile
    plus = stress_gpa_to_plus_stress(stress, volume=100.0)
    assert np.allclose(plus[:3], -np.array([1.0, 2.0, 3.0]) * GPa * 100.0)
    assert np.allclose(plus_stress_to_stress_gpa(plus, 100.0), stress)


def test_cfg_direct_coordinates_and_types(tmp_path) -> None:
    (tmp_path / "d.cfg").write_text(
        "BEGIN_CFG\n Size\n 2\n Supercell\n 4 0 0\n 0 4 0\n 0 0 4\n"
        " AtomData: id type direct_x direct_y direct_z\n 1 0 0 0 0\n 2 1 0.5 0.5 0.5\n"
        " Energy\n -1.5\nEND_CFG\n"
    )
    (rec,) = read_cfg(tmp_path / "d.cfg")
    assert list(rec.atoms.numbers) == [1, 2]  # placeholder species type + 1
    assert np.allclose(rec.atoms.positions[1], [2, 2, 2])
    assert rec.forces is None and rec.stress is None and rec.energy == -1.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BEGIN_CFG\n Size\n 1\n", "without END_CFG"),
        ("BEGIN_CFG\n Size\n 2\n AtomData: id type cartes_x cartes_y cartes_z\n 1 0 0 0 0\nEND_CFG\n", "malformed"),
        ("BEGIN_CFG\n Size\n 1\n AtomData: id type cartes_x cartes_y\n 1 0 0 0\nEND_CFG\n", "cartes_x/y/z"),
        ("BEGIN_CFG\n Size\n 1\n Bogus\nEND_CFG\n", "unknown section"),
        ("hello\n", "outside BEGIN_CFG"),
        ("BEGIN_CFG\n Size\n 1\n AtomData: id type cartes_x cartes_y cartes_z\n 1 5 0 0 0\nEND_CFG\n", "type 5"),
    ],
)
def test_malformed_cfg(tmp_path, text: str, message: str) -> None:
    (tmp_path / "bad.cfg").write_text(text)
    with pytest.raises(CfgFileError, match=message):
        read_cfg(tmp_path / "bad.cfg", species=["Si"])


@pytest.mark.parametrize("suffix", [".xyz", ".json"])
def test_records_round_trip_other_formats(tmp_path, suffix: str) -> None:
    records = _records()
    save_records(tmp_path / f"r{suffix}", records)
    back = load_records(tmp_path / f"r{suffix}")
    tol = 1e-7 if suffix == ".xyz" else 1e-12  # ASE's extxyz writer prints 8 decimals
    for a, b in zip(records, back):
        assert np.allclose(a.atoms.positions, b.atoms.positions, atol=tol)
        assert a.energy == pytest.approx(b.energy, abs=tol)
        assert np.allclose(a.forces, b.forces, atol=tol)
        if a.stress is not None:
            assert np.allclose(a.stress, b.stress, atol=1e-5 if suffix == ".xyz" else 1e-12)


def test_training_record_accepts_pymatgen_and_validates() -> None:
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    rec = TrainingRecord(s, -10.0, np.zeros((2, 3)), np.zeros(6))
    assert isinstance(rec.atoms, Atoms) and rec.stress.shape == (3, 3)
    with pytest.raises(ValueError, match=r"forces must have shape \(2, 3\)"):
        TrainingRecord(s, -10.0, np.zeros((3, 3)))
