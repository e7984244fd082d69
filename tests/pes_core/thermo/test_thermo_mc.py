"""NPT Metropolis: equipartition, the ideal-gas volume (Jacobian and pV), detailed balance, low-T stability."""

from __future__ import annotations

import numpy as np
import pytest

from pes_core.clusters import PerovskiteReference
from pes_core.thermo import (EV_PER_GPA_A3, KB, MCSettings, OctahedralTilts, SupercellPES, block_mean,
                             cell_log_acceptance, propose_cell, run_npt, symmetric_cell)


def test_equipartition_of_a_harmonic_model_nvt(harmonic_model):
    """E = k sum |Q|^2 is harmonic near its minimum: <E> = (3N - 3) k_B T / 2 (3 free translations)."""
    pes = SupercellPES(harmonic_model, 2)
    t = 5.0
    out = run_npt(pes, None, t, 0.0, MCSettings(sweeps=800, equilibration=150, cell_moves="none"), seed=3)
    e, err = block_mean(out["energy"][150:] / (KB * t), 100)
    expected = (3 * pes.n_atoms - 3) / 2
    assert abs(e - expected) < max(4 * err, 0.01 * expected)
    assert abs(e - expected) < 0.04 * expected
    assert 0.25 < out["acceptance"] < 0.6
    assert out["drift"] < 1e-10


def test_ideal_gas_volume_checks_the_jacobian_and_the_pv_term(flat_model):
    """With E = 0 and volume moves, p(V) ~ V^N exp(-beta p V): <V> = (N + 1) k_B T / p exactly."""
    pes = SupercellPES(flat_model, 1)  # 5 atoms
    t = 300.0
    n = pes.n_atoms
    p_gpa = (n + 1) * KB * t / pes.volume / EV_PER_GPA_A3  # <V> = the starting volume
    settings = MCSettings(sweeps=3000, equilibration=100, cell_moves="volume", cell_moves_per_sweep=8,
                          cell_step=0.3, block=100)
    out = run_npt(pes, None, t, p_gpa, settings, seed=5)
    v, err = block_mean(out["volume"][100:], 100)
    expected = (n + 1) * KB * t / (p_gpa * EV_PER_GPA_A3)
    assert abs(v - expected) < 4 * err
    assert abs(v - expected) < 0.04 * expected
    # without the N ln V term the mean would be k_B T / p (N + 1 = 6 times smaller): the test can tell


@pytest.mark.parametrize("mode", ["shape", "volume"])
def test_proposals_satisfy_the_detailed_balance_identity(harmonic_model, mode):
    """At equilibrium, <exp(-beta dE)> over symmetric proposals is 1 (atoms; cells with the Jacobian and pV)."""
    pes = SupercellPES(harmonic_model, 2)
    t, p_gpa = 20.0, 0.5
    beta = 1.0 / (KB * t)
    out = run_npt(pes, None, t, p_gpa, MCSettings(sweeps=100, equilibration=200, cell_moves=mode,
                                                   cell_moves_per_sweep=4), seed=11)
    rng = np.random.default_rng(12)
    steps = np.array([out["steps"][s] for s in pes.species])
    atom_w, cell_w = [], []
    v_scale = pes.volume ** (2 / 3)
    for _ in range(150):
        for k in rng.integers(pes.n_atoms, size=pes.n_atoms):
            de = pes.trial_move(int(k), pes.positions[k] + steps[k] * rng.normal(size=3))
            atom_w.append(np.exp(-beta * de))
            if np.log(rng.random()) < -beta * de:
                pes.accept()
            else:
                pes.reject()
        for _ in range(4):
            new = propose_cell(pes.cell, mode, out["cell_step"], v_scale, rng)
            v_old = pes.volume
            de = pes.trial_cell(new)
            log_a = cell_log_acceptance(de, v_old, float(np.linalg.det(new)), pes.n_atoms, beta,
                                        p_gpa * EV_PER_GPA_A3)
            cell_w.append(np.exp(log_a))
            if np.log(rng.random()) < log_a:
                pes.accept()
            else:
                pes.reject()
    a, a_err = block_mean(np.array(atom_w), len(atom_w) // 20)
    c, c_err = block_mean(np.array(cell_w), len(cell_w) // 20)
    assert abs(a - 1.0) < max(4 * a_err, 0.03)
    assert abs(c - 1.0) < max(4 * c_err, 0.1)
    assert 0.2 < out["cell_acceptance"] < 0.7


def test_at_very_low_temperature_the_chain_stays_in_its_minimum(harmonic_model):
    ref = PerovskiteReference("Cs", "Pb", "Br", 5.87)
    pes = SupercellPES(harmonic_model, 4)
    tilts = OctahedralTilts(ref, (4, 4, 4))
    out = run_npt(pes, tilts, 0.5, 0.0, MCSettings(sweeps=20, equilibration=10), seed=1)
    disp = pes.positions - pes.ref_positions @ np.linalg.solve(pes.ref_cell, pes.cell)
    assert np.abs(disp).max() < 0.02
    assert np.abs(pes.cell - pes.ref_cell).max() < 0.01 * 4 * 5.87 * 0.01
    assert np.degrees(np.abs(np.r_[out["phi_m"], out["phi_r"]])).max() < 0.1
    assert out["energy"][-1] / pes.n_atoms < 5 * KB * 0.5


def test_chains_are_reproducible_and_the_cell_stays_symmetric(harmonic_model):
    runs = []
    for _ in range(2):
        pes = SupercellPES(harmonic_model, 2)
        runs.append(run_npt(pes, None, 50.0, 0.1, MCSettings(sweeps=15, equilibration=5), seed=9))
    np.testing.assert_array_equal(runs[0]["energy"], runs[1]["energy"])
    np.testing.assert_allclose(runs[0]["cell"], np.transpose(runs[0]["cell"], (0, 2, 1)), atol=1e-12)


def test_symmetric_cell_removes_rotations_without_changing_the_energy(harmonic_model):
    pes = SupercellPES(harmonic_model, 2)
    rng = np.random.default_rng(0)
    pos = pes.ref_positions + rng.normal(scale=0.03, size=pes.ref_positions.shape)
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    p2, h2 = symmetric_cell(pos @ rot, pes.ref_cell @ rot)
    np.testing.assert_allclose(h2, h2.T, atol=1e-12)
    assert pes.energy_of(p2, h2) == pytest.approx(pes.energy_of(pos, pes.ref_cell), abs=1e-10)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="cell_moves"):
        MCSettings(cell_moves="full")
    with pytest.raises(ValueError, match="sweeps"):
        MCSettings(sweeps=0)
