"""The VASP emulator on its own: inputs written by atomate2, outputs read by pymatgen."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from ase.units import GPa
from dft_helpers import EMULATOR_CMD, cu_rattled, emt_reference
from pymatgen.io.vasp import Incar, Oszicar, Outcar, Vasprun


def _write_inputs(directory, structure, incar=None, kpoints=(3, 3, 3)):
    from atomate2.vasp.files import write_vasp_input_set
    from atomate2.vasp.sets.core import StaticSetGenerator
    from pymatgen.io.vasp import Kpoints

    gen = StaticSetGenerator(user_incar_settings=incar or {},
                             user_kpoints_settings=Kpoints.gamma_automatic(kpoints))
    write_vasp_input_set(structure, gen, directory=directory, potcar_spec=True)


def _run(directory, *args, check=True):
    proc = subprocess.run([*EMULATOR_CMD.split(), *args], cwd=directory, capture_output=True,
                          text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _vasprun(directory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Vasprun(str(directory / "vasprun.xml"))


def test_static_outputs_parse_and_match_standin(tmp_path):
    structure = cu_rattled()
    _write_inputs(tmp_path, structure, {"ENCUT": 450})
    assert (tmp_path / "POTCAR.spec").exists() and not (tmp_path / "POTCAR").exists()
    _run(tmp_path)
    for name in ("vasprun.xml", "OUTCAR", "OSZICAR", "CONTCAR"):
        assert (tmp_path / name).exists(), name
    vr = _vasprun(tmp_path)
    e, f, s = emt_reference(structure)
    assert vr.converged
    assert vr.final_energy == pytest.approx(e, abs=1e-6)
    np.testing.assert_allclose(vr.ionic_steps[-1]["forces"], f, atol=1e-6)
    # vasprun stress is kB with VASP's sign
    np.testing.assert_allclose(-0.1 * np.array(vr.ionic_steps[-1]["stress"]), s, atol=1e-6)
    assert vr.parameters["ENMAX"] == pytest.approx(450)
    assert vr.kpoints.kpts[0] == (3, 3, 3) or list(vr.kpoints.kpts[0]) == [3, 3, 3]
    assert vr.potcar_symbols == ["PAW_PBE Cu emulated"]
    out = Outcar(str(tmp_path / "OUTCAR"))
    assert out.final_energy == pytest.approx(e, abs=1e-6)
    assert Oszicar(str(tmp_path / "OSZICAR")).final_energy == pytest.approx(e, abs=1e-6)


def test_relaxation_honours_nsw_ibrion_isif(tmp_path):
    structure = cu_rattled()
    _write_inputs(tmp_path, structure, {"NSW": 40, "IBRION": 2, "ISIF": 3, "EDIFFG": -0.01})
    _run(tmp_path)
    vr = _vasprun(tmp_path)
    steps = vr.ionic_steps
    assert 1 < len(steps) < 40
    assert vr.converged_ionic
    assert np.abs(steps[-1]["forces"]).max() < 0.01
    assert abs(vr.final_structure.volume - structure.volume) > 1e-3  # ISIF=3 moved the cell
    # energy goes down overall and the last step is the final structure
    assert steps[-1]["e_0_energy"] < steps[0]["e_0_energy"]

    # ISIF = 2 keeps the cell
    d2 = tmp_path / "isif2"
    d2.mkdir()
    _write_inputs(d2, structure, {"NSW": 5, "IBRION": 2, "ISIF": 2, "EDIFFG": -1e-6})
    _run(d2)
    vr2 = _vasprun(d2)
    assert len(vr2.ionic_steps) == 5  # NSW caps the run
    assert not vr2.converged_ionic
    assert vr2.final_structure.volume == pytest.approx(structure.volume, abs=1e-8)


def test_error_injection_persists_until_corrected(tmp_path):
    structure = cu_rattled()
    _write_inputs(tmp_path, structure, {"ISMEAR": -5})
    proc = _run(tmp_path, "--fault", "error:tet", check=False)
    assert proc.returncode != 0
    assert "Tetrahedron method fails" in proc.stdout
    assert not (tmp_path / "vasprun.xml").exists()
    # the rerun with custodian's correction succeeds
    incar = Incar.from_file(tmp_path / "INCAR")
    incar.update({"ISMEAR": 0, "SIGMA": 0.05})
    incar.write_file(tmp_path / "INCAR")
    _run(tmp_path, "--fault", "error:tet")
    assert (tmp_path / "vasprun.xml").exists()


def test_crash_and_unknown_fault(tmp_path):
    _write_inputs(tmp_path, cu_rattled())
    proc = _run(tmp_path, "--fault", "crash", check=False)
    assert proc.returncode != 0 and not (tmp_path / "vasprun.xml").exists()
    assert "SIGSEGV" in proc.stderr
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, "-m", "pes_core.oracles.vasp_emulator", "--fault", "meltdown"],
                       cwd=tmp_path, check=True, capture_output=True, timeout=60)


def test_missing_potcar_is_reported(tmp_path):
    _write_inputs(tmp_path, cu_rattled())
    (tmp_path / "POTCAR.spec").unlink()
    proc = _run(tmp_path, check=False)
    assert proc.returncode != 0
    assert "POTCAR" in proc.stdout


def test_stress_conversion_round_trip():
    from pes_core.oracles.vasp_emulator.writers import kb_stress

    ase_voigt = np.array([1.0, 2.0, 3.0, 0.1, 0.2, 0.3]) * GPa  # eV/Å^3, i.e. 1, 2, 3 GPa ...
    kb = kb_stress(ase_voigt)
    assert kb[0, 0] == pytest.approx(-10.0) and kb[2, 2] == pytest.approx(-30.0)
    assert kb[1, 2] == pytest.approx(-1.0) and kb[0, 1] == pytest.approx(-3.0)
