"""The pes_thermo summary on stored results of two supercell sizes: peaks per size, the 1/L estimate, the Binder
crossing, the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workflows.thermo.spec import PESThermoSpec

TEMPS = np.arange(300.0, 501.0, 10.0)
PEAKS = {2: (380.0, 330.0), 4: (390.0, 345.0)}  # (M, R) peak of each size: 1/L -> 0 gives 400 K and 360 K
CROSS = {"m": 395.0, "r": 352.0}  # where the Binder cumulants of the two sizes cross


def _binder(t, t0, size):
    return 0.2 * (1.0 - np.tanh((t - t0) * size / 60.0))  # steeper for the larger cell, equal at t0


def _chi(t, t0, height):
    return height / (1.0 + ((t - t0) / 25.0) ** 2)


def _store_results(cfg: dict) -> None:
    from workflows.core.blobs import put_blob
    from workflows.thermo.store import result_name

    for n, (tm, tr) in PEAKS.items():
        for i, t in enumerate(TEMPS[::-1]):
            point = {"T": float(t), "index": i, "chi_m": [_chi(t, tm, 1.0), _chi(t, tm, 1.0), _chi(t, tm, 4.0)],
                     "chi_m_err": [1e-4] * 3, "chi_r": [_chi(t, tr, 2.0)] * 3, "chi_r_err": [1e-4] * 3,
                     "glazer": {"symbol": "a0a0a0" if t > tm else "a0a0c+", "space_group": None},
                     "binder_m": _binder(t, CROSS["m"], n), "binder_m_err": 1e-3,
                     "binder_r": _binder(t, CROSS["r"], n), "binder_r_err": 1e-3}
            put_blob(result_name(cfg["name"], n, "cooling", t),
                     json.dumps({"inputs": {}, "point": point, "snapshots": None, "formula": "CsPbBr3"}).encode())


def test_summary_finite_size_and_table(project, tmp_path):
    from workflows.core.backend import open_backend
    from workflows.thermo.report import plot_transition_table, transition_rows
    from workflows.thermo.store import scan_formula, thermo_summary

    spec = PESThermoSpec.model_validate({"kind": "pes_thermo", "name": "fs", "model": "m", "supercells": [4, 2],
                                         "temperatures": TEMPS.tolist(), "sweeps": 100, "block": 10})
    cfg = spec.model_dump()
    with open_backend(project):
        _store_results(cfg)
        summary = thermo_summary(cfg)
        assert scan_formula(cfg) == "CsPbBr3"
    assert [(s["supercell"], s["direction"]) for s in summary["scans"]] == [(2, "cooling"), (4, "cooling")]
    for row in summary["transitions"]:
        tm, tr = PEAKS[row["supercell"]]
        assert row["peaks"]["m"]["total"]["T_c"] == pytest.approx(tm, abs=1.0)
        assert row["peaks"]["r"]["total"]["T_c"] == pytest.approx(tr, abs=1.0)
        assert row["peaks"]["m"]["z"]["chi_max"] == pytest.approx(4.0, rel=0.05)
        assert row["peaks"]["m"]["total"]["half_step"] == 5.0
    fs = {f["mode"]: f for f in summary["finite_size"]}
    assert fs["m"]["T_inf"] == pytest.approx(400.0, abs=2.0) and fs["r"]["T_inf"] == pytest.approx(360.0, abs=2.0)
    # the error of the two-size line propagates each size's error (about half the 10 K step)
    assert fs["m"]["T_inf_error"] == pytest.approx(np.hypot(4 * 5.0, 2 * 5.0) / 2, rel=0.05)
    binder = {b["mode"]: b for b in summary["binder"]}
    for mode, t0 in CROSS.items():  # the crossing between grid points (10 K apart), by linear interpolation
        assert binder[mode]["sizes"] == [2, 4] and binder[mode]["direction"] == "cooling"
        assert binder[mode]["T_c"] == pytest.approx(t0, abs=1.5) and binder[mode]["support"] == 1.0
        assert binder[mode]["half_step"] == 5.0 and binder[mode]["error"] == pytest.approx(5.0, abs=0.1)
    assert "validation" not in summary
    rows = transition_rows(summary, "CsPbBr3")
    assert [r[3] for r in rows] == ["403"] * 4 + ["361"] * 4
    assert rows[2][1].startswith("1/L -> 0") and rows[2][2].startswith("400 +- ")
    assert rows[3][1] == "Binder crossing 2^3/4^3 cooling" and rows[3][2].startswith("395 +- ")
    assert all(r[3] == "-" for r in transition_rows(summary, "SrTiO3"))
    assert plot_transition_table(rows, tmp_path / "t.png").stat().st_size > 1000
