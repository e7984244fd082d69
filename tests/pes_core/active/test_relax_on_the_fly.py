"""Grade-reporting calculator and relaxation with learning on the fly (tersoff as the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from pes_core.active import (
    ActiveMTPCalculator,
    ActiveRelaxer,
    ActiveSet,
    ExtrapolationError,
    GradeThresholds,
    OracleLearner,
    low_energy_weights,
)
from pes_core.mtp import FitSettings, MTPPotential, evaluate
from pes_core.oracles import get_oracle
from pes_core.search import OracleRelaxer


def _start_images(n=6):
    out = []
    for k in range(n):
        a = bulk("Si", "diamond", a=5.43, cubic=True)
        a.rattle(0.05, seed=k)
        a.set_cell(a.cell * (0.97 + 0.012 * k), scale_atoms=True)
        out.append(a)
    return out


def _distorted():
    x = bulk("Si", "diamond", a=5.7, cubic=True)
    x.rattle(0.15, seed=42)
    x.set_cell(x.cell @ np.array([[1, 0.05, 0], [0, 1, 0], [0, 0, 0.97]]), scale_atoms=True)
    return x


def test_calculator_reports_grade_records_and_breaks():
    pot = MTPPotential.from_level(8, ["Si"])
    aset = ActiveSet.from_training(pot, [bulk("Si", a=a) for a in np.linspace(5.2, 5.8, 12)])
    calc = ActiveMTPCalculator(pot, aset, GradeThresholds(select=1.5, break_=10))
    atoms = bulk("Si", a=5.5)
    atoms.calc = calc
    atoms.get_potential_energy()
    assert calc.results["grade"] <= 1.001 and not calc.candidates
    atoms.set_cell(bulk("Si", a=5.9).cell, scale_atoms=True)  # a bit outside (grade about 8)
    atoms.get_forces()
    g = calc.results["grade"]
    assert 1.5 < g < 10 and calc.candidates[-1].reason == "select"
    atoms.set_cell(bulk("Si", a=4.3).cell, scale_atoms=True)
    with pytest.raises(ExtrapolationError) as info:
        atoms.get_potential_energy()
    assert info.value.grade > 10 and len(info.value.atoms) == 2
    assert calc.candidates[-1].reason == "break" and calc.n_evaluations == 3


def test_without_learning_the_relaxer_stops_at_break():
    oracle = get_oracle("tersoff")
    learner = OracleLearner(oracle, fit_settings=FitSettings(max_iter=0, fit_radial=False, log=None,
                                                             validation_fraction=0.0))
    pot, aset = learner.start(MTPPotential.from_level(8, ["Si"]), _start_images(4))
    relax = ActiveRelaxer(pot, aset, learn=None)
    res = relax(_distorted(), 0.0)
    assert res.extra["break"] and res.failed and res.extra["n_oracle_calls"] == 0
    assert relax.collected and relax.collected[-1].reason == "break"


def test_learning_on_the_fly_reaches_the_reference_minimum():
    """The learned relaxation ends in the oracle's basin, and the model's energy there is as good as its fit.

    The trajectory is chaotic: which configurations get learned, and so the
    fitted coefficients, change with the last bit of rounding (CPU, numba
    target, BLAS threads). The test therefore checks what holds whatever the
    trajectory, split into its two parts:

    * structure: the oracle relaxed from the MTP minimum lands on the oracle's
      own minimum (same basin, |dE| < 1 meV/atom), and the oracle energy at the
      MTP minimum is within 1 meV/atom of it (second order in the residual
      displacement; measured 0.04-0.22 meV/atom over eight starts perturbed by
      1e-7 Å, each of which takes another trajectory);
    * model: the MTP energy at its minimum differs from the oracle at the same
      structure by at most twice the model's RMSE on its own training set
      (measured 0.1-0.6 x RMSE; the structure is inside the trained range, grade
      < 2), and that RMSE is below 10 meV/atom (measured 5-7.3).

    Comparing the MTP energy with the oracle minimum directly (the former
    assertion, 5 meV/atom) mixes both: it was 0.5-4 meV/atom here and 5.9 on an
    AMD EPYC, which is the fit error, not a wrong minimum.
    """
    oracle = get_oracle("tersoff")
    learner = OracleLearner(oracle, fit_settings=FitSettings(max_iter=40, log=None, validation_fraction=0.0))
    pot, aset = learner.start(MTPPotential.from_level(10, ["Si"]), _start_images())
    n0 = learner.n_oracle_calls
    relax = ActiveRelaxer(pot, aset, learn=learner, fmax=0.02, max_learning_events=15)
    x = _distorted()
    res = relax(x, 0.0)
    ref = OracleRelaxer(oracle, fmax=0.02)(x, 0.0)
    assert res.converged and not res.failed
    n_learned = learner.n_oracle_calls - n0
    assert 0 < n_learned <= 30 and res.extra["n_oracle_calls"] == n_learned
    assert res.extra["n_mtp_evaluations"] > n_learned
    assert res.extra["final_grade"] < 2.0
    # structure: same basin as the oracle's own relaxation, and close to its minimum
    e_oracle = oracle.compute(res.atoms).energy / len(x)
    again = OracleRelaxer(oracle, fmax=0.02)(res.atoms, 0.0)
    assert again.converged and abs(again.enthalpy_per_atom - ref.enthalpy_per_atom) < 0.001
    assert -0.001 < e_oracle - ref.enthalpy_per_atom < 0.001
    # model: its error at the minimum is that of its fit
    model = relax.potential
    fit_err = [evaluate(model, r.atoms, forces=False).energy / r.n_atoms - r.energy / r.n_atoms
               for r in learner.records]
    rmse = float(np.sqrt(np.mean(np.square(fit_err))))
    assert rmse < 0.010
    assert abs(res.enthalpy_per_atom - e_oracle) <= 2 * rmse
    # the learned model is kept for the next relaxation
    assert relax.potential is not pot and len(learner.records) == n0 + n_learned


def test_low_energy_weights():
    w = low_energy_weights([-4.6, -4.58, -4.0])
    assert w[0] == 1.0 and w[0] > w[1] > w[2]
    assert np.isclose(w[1], (0.02 / 0.04) ** 4)


@pytest.fixture
def untrained_si():
    """A random level-8 MTP with R_min = 2.0 Å and its active set on strained Si diamond."""
    pot = MTPPotential.from_level(8, ["Si"])
    pot.min_dist = 2.0
    pot.initialize(np.random.default_rng(0))
    return pot, ActiveSet.from_training(pot, [bulk("Si", a=a) for a in np.linspace(5.2, 5.8, 12)])


def test_unphysical_configurations_fail_instead_of_ranking(untrained_si):
    """Collapsed atoms (below the trained range) and energy holes abort a relaxation as failed."""
    from pes_core.active import UnphysicalError

    pot, aset = untrained_si
    no_break = GradeThresholds(select=1e30, break_=float("inf"))
    atoms = bulk("Si", a=5.43)
    atoms.positions[1] = atoms.positions[0] + [1.0, 0.6, 0.0]  # 1.17 Å apart: below 0.9 x 2.0 Å
    atoms.calc = ActiveMTPCalculator(pot, aset, no_break, min_distance=1.8)
    with pytest.raises(UnphysicalError, match=r"atoms 0 and 1 are 1\.166 Å apart"):
        atoms.get_potential_energy()
    e = ActiveMTPCalculator(pot, aset, no_break)
    ok = bulk("Si", a=5.43)
    ok.calc = e
    e_atom = ok.get_potential_energy() / len(ok)
    ok.calc = ActiveMTPCalculator(pot, aset, no_break, energy_floor=e_atom + 0.1)
    with pytest.raises(UnphysicalError, match="below the floor"):
        ok.get_potential_energy()
    # collapsed atoms are caught before grading: never a learning candidate, even above the select threshold
    calc = ActiveMTPCalculator(pot, aset, GradeThresholds(select=1.0, break_=float("inf")), min_distance=1.8)
    atoms.calc = calc
    with pytest.raises(UnphysicalError):
        atoms.get_potential_energy()
    assert calc.candidates == [] and calc.n_evaluations == 0
    # the relaxer turns both into a failed result with the reason, not an exception or a ranked energy
    relax = ActiveRelaxer(pot, aset, learn=None, thresholds=no_break, energy_floor=e_atom + 0.1)
    res = relax(bulk("Si", a=5.43), 0.0)
    assert res.failed and res.extra["unphysical"] and "below the floor" in res.extra["reason"]
    assert not np.isfinite(res.energy)


def test_energy_holes_and_short_pairs_are_forced_learning_candidates(untrained_si):
    """A hole (energy below the floor) and the first pair below R_min are candidates whatever the grade."""
    from pes_core.active import UnphysicalError, choose_candidates

    pot, aset = untrained_si
    no_select = GradeThresholds(select=1e30, break_=float("inf"))
    ok = bulk("Si", a=5.43)
    ok.calc = ActiveMTPCalculator(pot, aset, no_select)
    e_atom = ok.get_potential_energy() / len(ok)
    calc = ActiveMTPCalculator(pot, aset, no_select, energy_floor=e_atom + 0.1)
    ok.calc = calc
    with pytest.raises(UnphysicalError, match="below the floor"):
        ok.get_potential_energy()
    [hole] = calc.take_candidates()
    assert hole.reason == "floor" and np.allclose(hole.atoms.positions, ok.positions) and hole.atoms.calc is None

    # a pair at 1.9 Å (between 0.9 R_min and R_min): recorded once, with its distance; 1.7 Å aborts
    calc = ActiveMTPCalculator(pot, aset, no_select, min_distance=1.8, short_distance=2.0)
    atoms = bulk("Si", a=5.43)
    atoms.calc = calc
    for d in (1.95, 1.9):
        atoms.positions[1] = atoms.positions[0] + [d, 0.0, 0.0]
        atoms.get_potential_energy()
    [short] = calc.candidates
    assert short.reason == "short" and short.info["distance"] == pytest.approx(1.95)
    atoms.positions[1] = atoms.positions[0] + [1.7, 0.0, 0.0]
    with pytest.raises(UnphysicalError, match="1.700 Å apart"):
        atoms.get_potential_energy()
    assert len(calc.candidates) == 1

    # both are taken whatever maxvol says, up to the cap
    cands = [hole, short]
    assert choose_candidates(cands, pot, aset, max_configurations=5) == cands
    assert choose_candidates(cands, pot, aset, max_configurations=1) == [hole]
