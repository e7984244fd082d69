"""Temperature scans: summaries with error bars, checkpoints and exact resumption, input checks, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pes_core.clusters import PerovskiteReference
from pes_core.thermo import MCSettings, plot_scans, scan

REF = PerovskiteReference("Cs", "Pb", "Br", 5.87)
SETTINGS = MCSettings(block=5)


def _run(model, directory, temps=(20.0, 60.0), **kw):
    return scan(model, REF, 4, list(temps), sweeps=10, equilibration=6, pressure=0.0, seed=4, directory=directory,
                settings=SETTINGS, report=False, **kw)


def test_a_cooling_scan_reports_every_quantity(harmonic_model, tmp_path):
    res = _run(harmonic_model, tmp_path / "s", temps=(60.0, 20.0))
    assert res.direction == "cooling" and res.inputs["n_atoms"] == 320
    for p in res.points:
        for key in ("e_mean", "e_err", "h_mean", "cp", "cp_err"):
            assert np.isfinite(p[key]), key
        assert len(p["m_abs"]) == 3 and len(p["chi_r"]) == 3 and np.all(np.isfinite(p["chi_m_err"]))
        assert p["glazer"]["symbol"] == "a0a0a0"  # the harmonic model has no tilt instability
        assert p["lattice"]["a"] == pytest.approx(5.87, rel=0.01)
        assert p["drift"] < 1e-9
    # the harmonic energy grows with T (about 3/2 k_B T per atom)
    assert res.points[0]["e_mean"] > res.points[1]["e_mean"] > 0
    png = res.plot(tmp_path / "scan.png")
    assert png.stat().st_size > 10_000
    assert len(res.table_lines()) == 3


def test_a_killed_scan_resumes_with_the_numbers_of_an_uninterrupted_one(harmonic_model, tmp_path):
    full = _run(harmonic_model, tmp_path / "a")
    _run(harmonic_model, tmp_path / "b")
    for ext in ("json", "npz"):  # the second temperature never finished
        (tmp_path / "b" / f"point_001.{ext}").unlink()
    resumed = _run(harmonic_model, tmp_path / "b")
    assert json.dumps(resumed.points[1]["e_mean"]) == json.dumps(full.points[1]["e_mean"])
    assert resumed.points[1]["m_abs"] == full.points[1]["m_abs"]
    first = json.loads((tmp_path / "b" / "point_000.json").read_text())
    assert resumed.points[0] == first


def test_both_engines_give_the_same_scan(harmonic_model, tmp_path):
    """Same seed: the numba and NumPy engines make the same decisions (energies agree to rounding)."""
    res = {e: _run(harmonic_model, tmp_path / e, engine=e) for e in ("numba", "numpy")}
    for a, b in zip(res["numba"].points, res["numpy"].points):
        assert a["e_mean"] == pytest.approx(b["e_mean"], rel=1e-9, abs=1e-9)
        assert a["h_mean"] == pytest.approx(b["h_mean"], rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(a["m_abs"], b["m_abs"], rtol=1e-7, atol=1e-12)


def test_a_directory_with_other_inputs_is_refused(harmonic_model, tmp_path):
    _run(harmonic_model, tmp_path / "s")
    with pytest.raises(ValueError, match="other inputs.*temperatures"):
        _run(harmonic_model, tmp_path / "s", temps=(20.0, 80.0))


def test_wrong_reference_and_start_outside_the_domain_are_refused(lj_models, harmonic_model, tmp_path):
    with pytest.raises(ValueError, match="a = 5.8700"):
        scan(harmonic_model, REF.with_a(6.0), 4, [100.0], sweeps=2, equilibration=0, report=False)
    model, domain = lj_models[0]["linear"], lj_models[1]
    with pytest.raises(ValueError, match="outside the training domain"):
        scan(model, REF, 4, [100.0], sweeps=2, equilibration=0, start="a-a-a-", start_angle_deg=25.0,
             domain=domain, report=False)


def test_heating_from_a_tilted_start_and_the_joint_plot(lj_models, tmp_path):
    model, domain = lj_models[0]["cluster"], lj_models[1]
    heat = scan(model, REF, 4, [10.0, 30.0], sweeps=6, equilibration=4, start="a0a0c+", start_angle_deg=6.0,
                domain=domain, settings=SETTINGS, report=False)
    assert heat.direction == "heating"
    # at 10 K the chain keeps the in-phase z tilt it started with (6 deg as built: atan of its linearized angle)
    assert heat.points[0]["m_abs"][2] > 3.0 > max(heat.points[0]["m_abs"][:2])
    assert 0.0 <= heat.points[0]["wall_fraction"] < 1.0
    png = plot_scans([heat], tmp_path / "both.png")
    assert png.exists()
