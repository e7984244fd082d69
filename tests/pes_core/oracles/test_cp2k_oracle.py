"""The ``cp2k`` oracle: real DFT (PBE, GTH pseudopotentials, GPW) through atomate2's CP2K maker.

The slow tests need Debian's ``cp2k`` and ``cp2k-data`` and pymatgen's CP2K
data directory (``scripts/setup_cp2k.sh``); they skip with that reason when
the program is missing.  Unit checks: energy in eV, forces in eV/Å
(atomate2 reports Hartree/Bohr), stress in GPa with ASE's sign, all tied to
finite differences of the energy.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from ase.build import bulk
from dft_helpers import cp2k_available
from pymatgen.io.ase import AseAtomsAdaptor

from pes_core.oracles import OracleError, get_oracle
from pes_core.oracles.cp2k import HARTREE_PER_BOHR_TO_EV_PER_A, build_cp2k_maker, kpoint_mesh

needs_cp2k = pytest.mark.skipif(not cp2k_available(),
                                reason="cp2k is not installed (run scripts/setup_cp2k.sh)")

#: the perfect-crystal test: an odd (Gamma-centred, symmetric) grid
PERFECT = {"kpoints": [3, 3, 3], "cutoff": 250, "input_settings": {"alpha": 0.3}}
#: the finite-difference tests only need one consistent energy surface: a cheaper grid
CHEAP = {"kpoints": [2, 2, 2], "cutoff": 250, "input_settings": {"alpha": 0.3}}


def _diamond(displacement=None, strain=0.0):
    atoms = bulk("C", "diamond", a=3.567)
    if displacement is not None:
        atoms.positions[1] += displacement
    if strain:  # uniform strain of the (displaced) cell, atoms follow
        atoms.set_cell(atoms.cell[:] * (1.0 + strain), scale_atoms=True)
    return AseAtomsAdaptor.get_structure(atoms)


def test_maker_settings_and_unit_constant():
    maker = build_cp2k_maker({"kpoints": [3, 3, 3], "cutoff": 250, "max_errors": 2}, "cp2k.psmp")
    gen = maker.input_set_generator
    assert list(gen.user_kpoints_settings.kpts[0]) == [3, 3, 3]
    assert gen.user_kpoints_settings.style.name == "Monkhorst"
    assert gen.user_input_settings["cutoff"] == 250
    assert maker.run_cp2k_kwargs["cp2k_cmd"] == "env OMP_NUM_THREADS=1 cp2k.psmp"
    assert maker.run_cp2k_kwargs["max_errors"] == 2
    # 1 Hartree/Bohr = 51.42208619083232 eV/Å
    assert HARTREE_PER_BOHR_TO_EV_PER_A == pytest.approx(51.422086, rel=1e-6)
    with pytest.raises(ValueError):
        build_cp2k_maker({"kpoints": [0, 1, 1]}, "cp2k")


def test_default_kpoint_mesh_is_odd():
    assert kpoint_mesh({}, _diamond()) == (5, 5, 5)
    assert kpoint_mesh({"kpoints_length": 5}, _diamond()) == (3, 3, 3)
    assert kpoint_mesh({"kpoints": [4, 4, 2]}) == (4, 4, 2)


def test_missing_program_is_a_readable_error(tmp_path):
    oracle = get_oracle("cp2k", {"cp2k_cmd": "no_such_cp2k"})
    with pytest.raises(OracleError, match="not runnable|data directory"):
        oracle.compute(_diamond(), workdir=str(tmp_path))


@pytest.mark.slow
@pytest.mark.timeout(3600)
@needs_cp2k
def test_diamond_perfect_crystal_units(tmp_path):
    oracle = get_oracle("cp2k", PERFECT)
    t0 = time.perf_counter()
    perfect = oracle.compute(_diamond(), workdir=str(tmp_path))
    t_static = time.perf_counter() - t0

    # energy in eV: PBE/GTH diamond is about -154.5 eV/atom (-5.68 Hartree/atom)
    assert -160.0 < perfect.energy_per_atom < -150.0
    # the perfect crystal: no forces
    assert np.abs(perfect.forces).max() < 0.01
    # stress in GPa, cubic: equal diagonal, no shear, tens of GPa at most
    s = perfect.stress
    assert s.shape == (3, 3)
    assert np.allclose(s, np.diag(np.diag(s)), atol=0.05)
    assert np.ptp(np.diag(s)) < 0.05
    assert np.abs(s).max() < 100.0
    assert perfect.provenance["kpoints"] == [3, 3, 3]
    assert perfect.provenance["cp2k_version"]
    print(f"\nCP2K diamond: E = {perfect.energy:.6f} eV, max|F| = {np.abs(perfect.forces).max():.2e} "
          f"eV/Å, stress diag = {np.diag(s)} GPa, {t_static:.1f} s")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@needs_cp2k
def test_diamond_forces_and_stress_match_finite_differences(tmp_path):
    oracle = get_oracle("cp2k", CHEAP)
    # a rattled cell: forces agree with a central finite difference of the energy
    # along the force direction u: F.u = -(E(x + h u) - E(x - h u)) / 2h
    disp = np.array([0.06, 0.03, -0.02])
    rattled = oracle.compute(_diamond(disp), workdir=str(tmp_path))
    f = rattled.forces
    assert np.abs(f).max() > 0.3  # clearly nonzero
    assert np.allclose(f.sum(axis=0), 0.0, atol=0.02)  # Newton's third law
    u = f[1] / np.linalg.norm(f[1])
    h = 0.01
    e_plus = oracle.compute(_diamond(disp + h * u), workdir=str(tmp_path)).energy
    e_minus = oracle.compute(_diamond(disp - h * u), workdir=str(tmp_path)).energy
    fd = -(e_plus - e_minus) / (2 * h)
    print(f"\nforce along u: analytic {f[1] @ u:.5f} eV/Å, finite difference {fd:.5f} eV/Å")
    assert fd == pytest.approx(f[1] @ u, rel=0.03, abs=0.02)

    # stress sign and unit: V trace(sigma) = dE/d(eps) for a uniform strain eps (ASE sign)
    from ase.units import GPa

    eps = 0.003
    e_up = oracle.compute(_diamond(disp, strain=eps), workdir=str(tmp_path)).energy
    e_dn = oracle.compute(_diamond(disp, strain=-eps), workdir=str(tmp_path)).energy
    volume = _diamond().volume
    trace_fd = (e_up - e_dn) / (2 * eps) / volume / GPa
    trace = float(np.trace(rattled.stress))
    print(f"stress trace: analytic {trace:.3f} GPa, finite difference {trace_fd:.3f} GPa")
    assert np.sign(trace_fd) == np.sign(trace)
    assert trace_fd == pytest.approx(trace, abs=max(3.0, 0.15 * abs(trace_fd)))
