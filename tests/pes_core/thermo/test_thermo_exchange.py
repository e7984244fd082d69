"""Replica exchange: exact distributions at every temperature of the ladder, statistics, exact resumption."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pes_core.thermo.exchange as exchange_module
from pes_core.clusters import PerovskiteReference
from pes_core.thermo import EV_PER_GPA_A3, KB, MCSettings, block_mean, replica_exchange

REF = PerovskiteReference("Cs", "Pb", "Br", 5.87)


def _ideal_gas_ladder(flat_model, sweeps=2000):
    """40 atoms, E = 0, volume moves: at each T, p(V) ~ V^N exp(-beta p V), so <V> = (N + 1) k_B T / p."""
    n, temps = 40, [250.0, 290.0, 335.0]
    p_gpa = (n + 1) * KB * 290.0 / (8 * REF.a ** 3) / EV_PER_GPA_A3
    res = replica_exchange(flat_model, REF, 2, temps, sweeps=sweeps, equilibration=100, pressure=p_gpa, seed=5,
                           exchange_every=1, report=False,
                           settings=MCSettings(cell_moves="volume", cell_moves_per_sweep=1, cell_step=0.3, block=100))
    out = []
    for point, series in zip(res.points, res.series):
        v, err = block_mean(series["volume"][100:], 100)
        out.append((v, err, (n + 1) * KB * point["T"] / (p_gpa * EV_PER_GPA_A3)))
    return res, out


def test_every_temperature_of_the_ladder_keeps_its_exact_volume_distribution(flat_model):
    res, volumes = _ideal_gas_ladder(flat_model)
    for v, err, expected in volumes:
        assert abs(v - expected) < max(4 * err, 0.005 * expected)
        assert abs(v - expected) < 0.03 * expected
    # the ladder overlaps: swaps are accepted about half the time and walkers travel through it
    assert all(0.3 < a < 0.75 for a in res.exchange["acceptance"])
    assert res.exchange["round_trips"] >= 50
    assert [p["T"] for p in res.points] == [250.0, 290.0, 335.0]


def test_a_wrong_swap_rule_is_detected(flat_model, monkeypatch):
    """Negative control: swaps accepted regardless of enthalpy mix the temperatures' volumes (>10 block errors)."""
    monkeypatch.setattr(exchange_module, "exchange_log_acceptance", lambda *a: 0.0)
    _, volumes = _ideal_gas_ladder(flat_model)
    v, err, expected = volumes[0]
    assert v - expected > 8 * err and v > 1.05 * expected


def test_the_swap_ratio_favours_the_lower_enthalpy_at_the_lower_temperature():
    beta_cold, beta_hot = 1 / (KB * 200), 1 / (KB * 300)
    # the hotter replica holds the lower enthalpy: the swap moves it down and is always accepted
    assert exchange_module.exchange_log_acceptance(beta_cold, beta_hot, 1.0, 0.5) > 0
    assert exchange_module.exchange_log_acceptance(beta_cold, beta_hot, 0.5, 1.0) == pytest.approx(
        -(beta_cold - beta_hot) * 0.5)


def test_round_trips_count_bottom_top_bottom_journeys():
    # rows: the walker in slots 0, 1, 2 after each exchange step. Walker 0 visits slots 0 1 2 1 0 (one
    # trip); walker 1 visits 1 0 0 0 1 and walker 2 visits 2 2 1 2 2 (none)
    trace = np.array([[0, 1, 2], [1, 0, 2], [1, 2, 0], [1, 0, 2], [0, 1, 2]])
    assert exchange_module._round_trips(trace) == 1
    assert exchange_module._round_trips(np.empty((0, 3), dtype=int)) == 0


def _ladder(model, directory, report=False, **kw):
    return replica_exchange(model, REF, 4, [20.0, 40.0, 60.0], sweeps=12, equilibration=6, seed=2,
                            exchange_every=3, checkpoint_every=6, directory=directory, report=report,
                            settings=MCSettings(block=4), **kw)


def test_a_ladder_reports_tilts_and_resumes_with_the_numbers_of_an_uninterrupted_one(harmonic_model, tmp_path,
                                                                                    capsys):
    full = _ladder(harmonic_model, tmp_path / "a")
    assert full.direction == "exchange" and full.inputs["exchange_every"] == 3
    for p in full.points:
        assert p["glazer"]["symbol"] == "a0a0a0" and p["drift"] < 1e-9 and np.isfinite(p["cp"])
    assert full.points[0]["e_mean"] < full.points[1]["e_mean"] < full.points[2]["e_mean"]
    assert full.final["positions"].shape == (3, 320, 3)
    assert json.loads((tmp_path / "a" / "result.json").read_text())["points"][1]["T"] == 40.0

    calls = {"n": 0}
    real = exchange_module._exchange

    def crash_after_four(*args):
        calls["n"] += 1
        if calls["n"] > 4:  # killed after the checkpoint of sweep 12 (exchange steps 2 and 4 wrote one)
            raise KeyboardInterrupt
        return real(*args)

    exchange_module._exchange = crash_after_four
    try:
        with pytest.raises(KeyboardInterrupt):
            _ladder(harmonic_model, tmp_path / "b")
    finally:
        exchange_module._exchange = real
    assert not (tmp_path / "b" / "result.json").exists()
    capsys.readouterr()
    resumed = _ladder(harmonic_model, tmp_path / "b", report=True)
    assert "resumed from exchange.npz at sweep 12" in capsys.readouterr().out
    for a, b in zip(full.points, resumed.points):
        assert json.dumps(a["e_mean"]) == json.dumps(b["e_mean"]) and a["m_abs"] == b["m_abs"]
    np.testing.assert_array_equal(full.final["positions"], resumed.final["positions"])
    assert full.exchange["walkers"] == resumed.exchange["walkers"]

    with pytest.raises(ValueError, match="other inputs"):
        replica_exchange(harmonic_model, REF, 4, [20.0, 40.0, 60.0], sweeps=12, equilibration=6, seed=3,
                         exchange_every=3, directory=tmp_path / "a", report=False, settings=MCSettings(block=4))


def test_a_ladder_needs_two_distinct_temperatures(harmonic_model):
    with pytest.raises(ValueError, match="two distinct temperatures"):
        replica_exchange(harmonic_model, REF, 4, [300.0], sweeps=10, report=False)
