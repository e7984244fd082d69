"""The compiled loss gradient (engine="numba"): finite differences, the torch graph, threads and fits."""

from __future__ import annotations

import numpy as np
import pytest
from mtp_helpers import random_crystal, random_potential

from pes_core.mtp import FitSettings, TrainingRecord, evaluate, fit_mtp
from pes_core.mtp.fit import _NumbaObjective, _Objective, _prepare, _solve_linear


def _records(true, n_species: int, n: int = 4) -> list[TrainingRecord]:
    """Labels off the model (every term of the loss nonzero), different weights and sizes."""
    rng = np.random.default_rng(11 + n_species)
    out = []
    for s in range(n):
        atoms = random_crystal(n_species, seed=s, rattle=0.15)
        if s % 2:
            del atoms[int(rng.integers(len(atoms)))]  # another size: the factors depend on N
        res = evaluate(true, atoms)
        out.append(TrainingRecord(atoms, res.energy + rng.normal(), res.forces + 0.2 * rng.normal(size=res.forces.shape),
                                  res.stress + rng.normal(size=(3, 3)), weight=0.5 + 0.25 * s))
    return out


def _setup(n_species: int, st: FitSettings, level: int = 6):
    pot = random_potential(level, n_species, seed=30 + n_species)
    records = _records(pot, n_species)
    # move away from the labelling potential so that the residuals are not just the label noise
    pot.radial_coeffs = pot.radial_coeffs * (1 + 0.2 * np.random.default_rng(1).normal(size=pot.radial_coeffs.shape))
    prep = _prepare(pot, records)
    scale = _solve_linear(pot, prep, st)
    x = np.concatenate([np.concatenate([pot.species_coeffs, pot.moment_coeffs]) / scale, pot.radial_coeffs.ravel()])
    n_lin = pot.n_linear  # off the linear optimum too (an energy-only loss could be fitted exactly)
    x[:n_lin] *= 1 + 0.1 * np.random.default_rng(2).normal(size=n_lin)
    return pot, prep, scale, x


@pytest.mark.parametrize("n_species", [1, 2, 3])
def test_numba_gradient_matches_finite_differences(n_species: int) -> None:
    """Every component of the analytic gradient against a 4-point central difference of the loss."""
    st = FitSettings(energy_weight=1.0, force_weight=0.05, stress_weight=0.01, radial_regularization=1e-4, log=None)
    pot, prep, scale, x = _setup(n_species, st)
    fun = _NumbaObjective(pot, prep, st, scale)
    _, grad = fun(x)
    fd = np.empty_like(x)
    for k in range(len(x)):
        h = 1e-4 * max(1.0, abs(x[k]))
        vals = []
        for step in (-2, -1, 1, 2):
            xs = x.copy()
            xs[k] += step * h
            vals.append(fun(xs)[0])
        fd[k] = (8 * (vals[2] - vals[1]) - (vals[3] - vals[0])) / (12 * h)
    err = np.abs(grad - fd)
    assert np.linalg.norm(grad - fd) < 1e-6 * np.linalg.norm(grad)
    big = np.abs(grad) > 1e-3 * np.abs(grad).max()
    assert np.all(err[big] < 1e-6 * np.abs(grad[big])), np.max(err[big] / np.abs(grad[big]))
    n_lin = pot.n_linear
    assert np.abs(grad[:n_lin]).max() > 0 and np.abs(grad[n_lin:]).max() > 0  # both blocks are exercised


@pytest.mark.parametrize("n_species", [1, 2, 3])
@pytest.mark.parametrize("weighting", ["vibrations", "structures", "per_atom"])
def test_numba_gradient_equals_torch(n_species: int, weighting: str) -> None:
    st = FitSettings(weighting=weighting, energy_weight=1.3, force_weight=0.02, stress_weight=0.004,
                     radial_regularization=1e-3, log=None)
    pot, prep, scale, x = _setup(n_species, st, level=8)
    v_t, g_t = _Objective(pot, prep, st, scale)(x)
    v_n, g_n = _NumbaObjective(pot, prep, st, scale)(x)
    assert v_n == pytest.approx(v_t, rel=1e-12)
    assert np.linalg.norm(g_n - g_t) < 1e-10 * np.linalg.norm(g_t)


@pytest.mark.parametrize(("w_f", "w_s"), [(0.0, 0.0), (0.05, 0.0), (0.0, 0.01)])
def test_numba_gradient_single_terms(w_f: float, w_s: float) -> None:
    """Energy only, energy and forces, energy and stresses: each term of the loss on its own."""
    st = FitSettings(energy_weight=1.0, force_weight=w_f, stress_weight=w_s, radial_regularization=0.0, log=None)
    pot, prep, scale, x = _setup(2, st)
    v_t, g_t = _Objective(pot, prep, st, scale)(x)
    v_n, g_n = _NumbaObjective(pot, prep, st, scale)(x)
    assert v_n == pytest.approx(v_t, rel=1e-12)
    assert np.linalg.norm(g_n - g_t) < 1e-10 * np.linalg.norm(g_t)


def test_threads_give_the_same_fit() -> None:
    pot = random_potential(6, 2, seed=9)
    records = _records(pot, 2)
    start = pot.copy()
    start.radial_coeffs = pot.radial_coeffs * 1.1
    common = {"optimizer": "lbfgs", "max_iter": 8, "log": None}
    one, _ = fit_mtp(start, records, FitSettings(threads=1, **common), validation=[])
    two, _ = fit_mtp(start, records, FitSettings(threads=3, **common), validation=[])
    assert np.array_equal(one.parameters, two.parameters)
    torch_fit, _ = fit_mtp(start, records, FitSettings(engine="torch", **common), validation=[])
    assert np.allclose(torch_fit.parameters, one.parameters, rtol=1e-6, atol=1e-9 * np.abs(one.parameters).max())


def test_numba_fit_recovers_known_potential() -> None:
    """From perturbed radial functions, the numba engine (two threads) refits a known potential from its own data.

    (With 2 species at levels 6-8 the radial fit is too ill-conditioned to converge in a test's time with
    either engine; the 2- and 3-species gradients are checked above.)
    """
    true = random_potential(6, 1, seed=5)
    records = [TrainingRecord(a, r.energy, r.forces, r.stress) for a in
               (random_crystal(1, seed=s, rattle=0.2) for s in range(10)) for r in [evaluate(true, a)]]
    held_out = [random_crystal(1, seed=s, rattle=0.2) for s in (50, 51)]
    start = true.copy()
    start.radial_coeffs = true.radial_coeffs * (1 + 0.05 * np.random.default_rng(0).normal(size=true.radial_coeffs.shape))
    lin = {"auto_min_dist": False, "regularization": 0.0, "log": None}
    _, lin_report = fit_mtp(start, records, FitSettings(fit_radial=False, **lin), validation=[])
    fitted, report = fit_mtp(start, records, FitSettings(max_iter=800, optimizer="lbfgs", engine="numba", threads=2,
                                                         radial_regularization=0.0, tol=1e-10, tol_iterations=20,
                                                         **lin), validation=[])
    assert lin_report.train.force_rmse > 0.05  # the perturbation matters
    assert report.train.force_rmse < 1e-2 * lin_report.train.force_rmse, report.format()
    assert report.loss_history[-1] < 1e-4 * report.loss_history[0]
    for atoms in held_out:
        ref, got = evaluate(true, atoms), evaluate(fitted, atoms)
        assert np.sqrt(np.mean((got.forces - ref.forces) ** 2)) < 1e-2 * lin_report.train.force_rmse


def test_bad_engine_names_the_choices() -> None:
    with pytest.raises(ValueError, match="engine 'jax' is not one of numba, torch"):
        FitSettings(engine="jax")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        FitSettings(threads=0)
