"""The ``vasp`` oracle end to end: atomate2 writes inputs, custodian runs the VASP emulator,
atomate2 parses the outputs, the oracle returns energies, forces and stresses.

The emulator's stand-in calculator is ASE EMT, so every number is checked
against EMT evaluated directly on the same structure.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from dft_helpers import EMULATOR_CMD, FAST_CUSTODIAN, emt_reference, emulator_cmd
from pymatgen.io.vasp import Incar, Kpoints

from pes_core.oracles import OracleError, get_oracle


def _read(path: Path) -> str:
    gz = path.with_name(path.name + ".gz")
    if gz.exists():
        return gzip.open(gz, "rt").read()
    return path.read_text()


def _oracle(settings=None, env=None):
    return get_oracle("vasp", {**FAST_CUSTODIAN, **(settings or {})},
                      env=env if env is not None else {"vasp_cmd": EMULATOR_CMD})


def test_static_end_to_end_matches_standin(tmp_path, cu_rattled):
    settings = {"incar_updates": {"ENCUT": 520, "EDIFF": 1e-6}, "kpoints": [5, 5, 5],
                "user_potcar_settings": {"Cu": "Cu_pv"}}
    result = _oracle(settings).compute(cu_rattled, workdir=str(tmp_path))

    e, f, s = emt_reference(cu_rattled)
    assert result.energy == pytest.approx(e, abs=1e-6)
    np.testing.assert_allclose(result.forces, f, atol=1e-6)
    np.testing.assert_allclose(result.stress, s, atol=1e-6)
    assert np.abs(result.forces).max() > 0.01  # a real test: forces are not trivially zero

    prov = result.provenance
    json.dumps(prov)  # stored as-is in the Configuration document
    assert prov["oracle"] == "vasp" and prov["state"] == "successful"
    assert prov["emulated"] is True
    assert prov["vasp_version"] == "6.4.2"
    assert prov["potcar_symbols"] == ["Cu_pv"]
    assert prov["custodian_corrections"] == []

    # what atomate2 wrote is what we asked for (files on disk, not just the document)
    jobdir = Path(prov["task_dir"])
    incar = Incar.from_str(_read(jobdir / "INCAR"))
    assert incar["ENCUT"] == 520 and incar["EDIFF"] == pytest.approx(1e-6)
    assert incar["NSW"] == 0
    kpts = Kpoints.from_str(_read(jobdir / "KPOINTS"))
    assert list(kpts.kpts[0]) == [5, 5, 5]
    assert _read(jobdir / "POTCAR.spec").split() == ["Cu_pv"]
    assert prov["incar"]["ENCUT"] == 520
    assert prov["kpoints"]["kpoints"] == [[5, 5, 5]]


def test_sites_come_back_in_caller_order(tmp_path, cuau_unsorted):
    result = _oracle({"kpoints": [2, 2, 2]}).compute(cuau_unsorted, workdir=str(tmp_path))
    e, f, s = emt_reference(cuau_unsorted)
    assert result.energy == pytest.approx(e, abs=1e-6)
    np.testing.assert_allclose(result.forces, f, atol=1e-6)
    np.testing.assert_allclose(result.stress, s, atol=1e-6)
    assert [sp.symbol for sp in result.structure.species] == ["Au", "Cu", "Au", "Cu"]


def test_relaxation_returns_final_structure(tmp_path, cu_rattled):
    settings = {"relax": True, "kpoints": [2, 2, 2],
                "incar_updates": {"NSW": 60, "EDIFFG": -0.01, "ISIF": 2}}
    result = _oracle(settings).compute(cu_rattled, workdir=str(tmp_path))
    e, f, s = emt_reference(result.structure)
    assert result.energy == pytest.approx(e, abs=1e-6)
    np.testing.assert_allclose(result.forces, f, atol=1e-6)
    assert np.abs(result.forces).max() < 0.01
    assert result.provenance["n_ionic_steps"] > 1
    assert result.provenance["task_label"] == "relax"
    assert result.structure.volume == pytest.approx(cu_rattled.volume, rel=1e-8)


def test_injected_vasp_error_is_corrected_by_custodian(tmp_path, cu_rattled):
    # atomate2's static set uses the tetrahedron method (ISMEAR = -5); the emulator fails
    # with VASP's TETIRR message until custodian's VaspErrorHandler switches it off
    env = {"vasp_cmd": emulator_cmd("error:tet")}
    result = _oracle({"kpoints": [3, 3, 3]}, env).compute(cu_rattled, workdir=str(tmp_path))

    e, f, s = emt_reference(cu_rattled)
    assert result.energy == pytest.approx(e, abs=1e-6)
    corrections = result.provenance["custodian_corrections"]
    assert len(corrections) == 1
    corr = corrections[0]
    assert corr["handler"] == "VaspErrorHandler"
    assert corr["errors"] == ["tet"]
    assert corr["actions"][0]["action"]["_set"] == {"ISMEAR": 0, "SIGMA": 0.05}
    assert result.provenance["incar"]["ISMEAR"] == -5  # as written by atomate2
    assert result.provenance["incar_final"]["ISMEAR"] == 0  # as run after the correction


def test_crash_raises_readable_oracle_error(tmp_path, cu_rattled):
    env = {"vasp_cmd": emulator_cmd("crash")}
    with pytest.raises(OracleError) as info:
        _oracle({"kpoints": [2, 2, 2]}, env).compute(cu_rattled, workdir=str(tmp_path))
    msg = str(info.value)
    assert "ValidationError" in msg and "vasprun.xml" in msg
    assert "SIGSEGV" in msg  # the tail of std_err.txt tells the user what happened


def test_hang_is_caught_by_frozen_job_handler(tmp_path, cu_rattled):
    # the emulator freezes on its first attempt; custodian's FrozenJobErrorHandler kills it
    # after frozen_timeout seconds without output, sets ALGO = Normal and reruns.
    # (The timeout must exceed the emulator's start-up time on a busy machine.)
    env = {"vasp_cmd": emulator_cmd("hang-once")}
    settings = {"kpoints": [2, 2, 2], "frozen_timeout": 8}
    result = _oracle(settings, env).compute(cu_rattled, workdir=str(tmp_path))
    corrections = result.provenance["custodian_corrections"]
    assert [c["handler"] for c in corrections] == ["FrozenJobErrorHandler"]
    assert corrections[0]["actions"][0]["action"]["_set"] == {"ALGO": "Normal"}
    e, _, _ = emt_reference(cu_rattled)
    assert result.energy == pytest.approx(e, abs=1e-6)


def test_permanent_hang_gives_up_with_oracle_error(tmp_path, cu_rattled):
    env = {"vasp_cmd": emulator_cmd("hang")}
    settings = {"kpoints": [2, 2, 2], "frozen_timeout": 2, "max_errors": 1}
    with pytest.raises(OracleError, match="MaxCorrections"):
        _oracle(settings, env).compute(cu_rattled, workdir=str(tmp_path))


def test_walltime_handler_stops_a_relaxation(tmp_path, cu_rattled):
    # each ionic step takes 1 s; with 20 s of wall time and custodian's 300 s buffer the
    # WalltimeHandler writes STOPCAR at once, the emulator stops after the current step
    # as VASP does, and the oracle refuses the unfinished relaxation
    env = {"vasp_cmd": emulator_cmd("slow:1")}
    settings = {"relax": True, "kpoints": [2, 2, 2], "custodian_wall_time": 20,
                "incar_updates": {"NSW": 40, "EDIFFG": -1e-6, "ISIF": 2}}
    with pytest.raises(OracleError, match="WalltimeHandler stopped the relaxation"):
        _oracle(settings, env).compute(cu_rattled, workdir=str(tmp_path))


def test_mismatch_between_request_and_written_inputs_fails(tmp_path, cu_rattled, monkeypatch):
    # a site-wide atomate2 setting silently overrides the requested ENCUT
    from atomate2 import SETTINGS

    monkeypatch.setattr(SETTINGS, "VASP_INCAR_UPDATES", {"ENCUT": 300})
    with pytest.raises(OracleError, match="ENCUT: asked 520, written 300"):
        _oracle({"incar_updates": {"ENCUT": 520}, "kpoints": [2, 2, 2]}).compute(
            cu_rattled, workdir=str(tmp_path))


def test_vasp_cmd_comes_from_worker_env(tmp_path, cu_rattled, monkeypatch):
    monkeypatch.delenv("ATOMATE2_VASP_CMD", raising=False)
    with pytest.raises(OracleError, match="not runnable"):
        get_oracle("vasp", {"kpoints": [2, 2, 2]}, env={"vasp_cmd": "no_such_vasp_std"}).compute(
            cu_rattled, workdir=str(tmp_path))
    # settings override the worker env
    oracle = get_oracle("vasp", {**FAST_CUSTODIAN, "kpoints": [2, 2, 2], "vasp_cmd": EMULATOR_CMD},
                        env={"vasp_cmd": "no_such_vasp_std"})
    assert oracle.compute(cu_rattled, workdir=str(tmp_path)).provenance["emulated"]


def test_handler_and_input_set_options_reach_atomate2():
    from custodian.vasp.handlers import FrozenJobErrorHandler, VaspErrorHandler

    from pes_core.oracles.vasp import build_vasp_maker

    maker = build_vasp_maker({"handlers": ["VaspErrorHandler"], "frozen_timeout": 60,
                              "max_errors": 3, "custodian_wall_time": 3600,
                              "kpoints_density": 200, "potcar_functional": "PBE_54",
                              "user_potcar_settings": {"Cu": "Cu_pv"},
                              "incar_updates": {"ENCUT": 600}}, "vasp_std")
    kwargs = maker.run_vasp_kwargs
    assert [type(h) for h in kwargs["handlers"]] == [VaspErrorHandler, FrozenJobErrorHandler]
    assert kwargs["handlers"][1].timeout == 60
    assert kwargs["max_errors"] == 3 and kwargs["wall_time"] == 3600
    gen = maker.input_set_generator
    assert gen.user_kpoints_settings == {"reciprocal_density": 200.0}
    assert gen.user_potcar_functional == "PBE_54"
    assert gen.user_potcar_settings == {"Cu": "Cu_pv"}
    assert gen.user_incar_settings["ENCUT"] == 600
    with pytest.raises(ValueError, match="unknown custodian VASP handler"):
        build_vasp_maker({"handlers": ["NoSuchHandler"]}, "vasp_std")
