"""The fitting loss: MLIP's weighting modes, its analytic gradient, grouped evaluation, checkpoints and resume."""

from __future__ import annotations

import numpy as np
import pytest
from ase.units import GPa
from mtp_helpers import random_crystal, random_potential

from pes_core.mtp import FitSettings, TrainingRecord, evaluate, fit_mtp
from pes_core.mtp.fit import _Objective, _prepare, _solve_linear


def _records(true, n_species: int, n: int = 5, seed0: int = 0) -> list[TrainingRecord]:
    rng = np.random.default_rng(7)
    out = []
    for s in range(n):
        atoms = random_crystal(n_species, seed=seed0 + s, rattle=0.15)
        res = evaluate(true, atoms)
        # labels off the model, so every term of the loss is nonzero
        out.append(TrainingRecord(atoms, res.energy + rng.normal(), res.forces + 0.1 * rng.normal(size=res.forces.shape),
                                  res.stress + rng.normal(size=(3, 3)) * 0.5, weight=0.5 + 0.25 * s))
    return out


def _objective(pot, records, st):
    prep = _prepare(pot, records)
    scale = _solve_linear(pot, prep, st)
    fun = _Objective(pot, prep, st, scale)
    x = np.concatenate([np.concatenate([pot.species_coeffs, pot.moment_coeffs]) / scale, pot.radial_coeffs.ravel()])
    return fun, x


@pytest.mark.parametrize("weighting", ["vibrations", "molecules", "structures", "per_atom"])
def test_loss_is_mlips_formula(weighting: str) -> None:
    """The loss equals the documented formula written out with the model's own predictions."""
    pot = random_potential(6, 2, seed=1)
    records = _records(pot, 2)
    st = FitSettings(weighting=weighting, energy_weight=1.3, force_weight=0.02, stress_weight=0.004,
                     radial_regularization=0.0, log=None)
    fun, x = _objective(pot, records, st)
    value, _ = fun(x)
    fitted = pot.copy()
    from pes_core.mtp.fit import _set_parameters

    _set_parameters(fitted, x, fun.scale_t.numpy())
    expected = 0.0
    for r in records:
        n = r.n_atoms
        res = evaluate(fitted, r.atoms)
        de = res.energy - r.energy
        dw = (res.stress - r.stress) * GPa * r.atoms.get_volume()  # virial error, eV
        df2 = np.sum((res.forces - r.forces) ** 2)
        a_e, a_f, a_s = {
            "vibrations": (1.3 / n, 0.02, 0.004 / n),
            "molecules": (1.3, 0.02, 0.004),
            "structures": (1.3 / n**2, 0.02 / n, 0.004 / n**2),
            "per_atom": (1.3 / n**2, 0.02, 0.004 / n**2),
        }[weighting]
        expected += r.weight * (a_e * de**2 + a_f * df2 + a_s * np.sum(dw**2))
    expected /= len(records)
    assert value == pytest.approx(expected, rel=1e-9)


def test_vibrations_is_energy_per_atom_times_n() -> None:
    """vibrations: w_E/N on the total energy = w_E N on the energy per atom, N times per_atom's weight."""
    st = FitSettings()
    n = 8
    a_e, _, a_s = st.factors(n)
    a_e_old, _, a_s_old = FitSettings(weighting="per_atom").factors(n)
    assert a_e * n**2 == pytest.approx(st.energy_weight * n)  # per (eV/atom)^2
    assert a_e == pytest.approx(n * a_e_old) and a_s == pytest.approx(n * a_s_old)


@pytest.mark.parametrize("n_species", [1, 2, 3])
def test_loss_gradient_matches_finite_differences(n_species: int) -> None:
    pot = random_potential(6, n_species, seed=3 + n_species)
    records = _records(pot, n_species, n=4)
    st = FitSettings(radial_regularization=1e-3, log=None, batch_atoms=20)  # several groups
    fun, x = _objective(pot, records, st)
    assert len(fun.groups) > 1
    _, grad = fun(x)
    rng = np.random.default_rng(n_species)
    n_lin = pot.n_linear
    picks = np.concatenate([rng.choice(n_lin, 4, replace=False), n_lin + rng.choice(len(x) - n_lin, 8, replace=False)])
    for k in picks:
        h = 1e-6 * max(1.0, abs(x[k]))
        xp, xm = x.copy(), x.copy()
        xp[k] += h
        xm[k] -= h
        fd = (fun(xp)[0] - fun(xm)[0]) / (2 * h)
        assert grad[k] == pytest.approx(fd, rel=1e-5, abs=1e-7 * np.abs(grad).max()), k


def test_grouped_evaluation_equals_one_graph() -> None:
    pot = random_potential(6, 2, seed=8)
    records = _records(pot, 2, n=5)
    f1, x = _objective(pot, records, FitSettings(log=None))
    f2, _ = _objective(pot, records, FitSettings(log=None, batch_atoms=10))
    assert len(f1.groups) == 1 and len(f2.groups) > 2
    v1, g1 = f1(x)
    v2, g2 = f2(x)
    assert v2 == pytest.approx(v1, rel=1e-12)
    assert np.allclose(g2, g1, rtol=1e-10, atol=1e-12 * np.abs(g1).max())


def test_lbfgs_recovers_known_potential() -> None:
    """The resumable L-BFGS refits the radial functions of a known potential from its own data."""
    true = random_potential(6, 1, seed=5)
    records = [TrainingRecord(a, r.energy, r.forces, r.stress) for a in
               (random_crystal(1, seed=s, rattle=0.2) for s in range(10)) for r in [evaluate(true, a)]]
    start = true.copy()
    start.radial_coeffs = true.radial_coeffs * (1 + 0.05 * np.random.default_rng(0).normal(size=true.radial_coeffs.shape))
    st = FitSettings(max_iter=600, optimizer="lbfgs", auto_min_dist=False, regularization=0.0, radial_regularization=0.0,
                     log=None, tol=1e-10, tol_iterations=20)
    linear, lin_report = fit_mtp(start, records, FitSettings(fit_radial=False, auto_min_dist=False, regularization=0.0,
                                                              log=None), validation=[])
    fitted, report = fit_mtp(start, records, st, validation=[])
    assert lin_report.train.force_rmse > 0.05  # the perturbation matters
    assert report.train.force_rmse < 1e-2 * lin_report.train.force_rmse, report.format()
    assert report.loss_history[-1] < 1e-4 * report.loss_history[0]


def test_resumed_fit_equals_uninterrupted(tmp_path) -> None:
    pot = random_potential(6, 2, seed=9)
    records = _records(pot, 2, n=4)
    start = pot.copy()
    start.radial_coeffs = pot.radial_coeffs * 1.1
    common = dict(optimizer="lbfgs", auto_min_dist=True, log=None)
    full, rep_full = fit_mtp(start, records, FitSettings(max_iter=12, **common), validation=[])
    ck = str(tmp_path / "ck.mtp")
    part, _ = fit_mtp(start, records, FitSettings(max_iter=5, checkpoint=ck, checkpoint_every=2, **common), validation=[])
    assert (tmp_path / "ck.mtp").exists() and (tmp_path / "ck.mtp.state.npz").exists()
    resumed, rep_res = fit_mtp(start, records, FitSettings(max_iter=12, checkpoint=ck, resume=True, **common),
                               validation=[])
    assert rep_res.iterations == rep_full.iterations == 12
    assert resumed.min_dist == full.min_dist
    assert np.array_equal(resumed.parameters, full.parameters)
    assert not np.array_equal(part.parameters, full.parameters)


def test_tolerance_stops_early() -> None:
    pot = random_potential(6, 1, seed=2)
    records = _records(pot, 1, n=4)
    for optimizer in ("scipy", "lbfgs"):
        _, report = fit_mtp(pot, records, FitSettings(max_iter=500, optimizer=optimizer, tol=1e-3, tol_iterations=3,
                                                      log=None), validation=[])
        assert 3 < report.iterations < 500


def test_bad_settings_name_the_fix() -> None:
    with pytest.raises(ValueError, match="weighting 'atoms' is not one of vibrations"):
        FitSettings(weighting="atoms")
    with pytest.raises(ValueError, match="optimizer='lbfgs'"):
        FitSettings(checkpoint="x.mtp")
    with pytest.raises(ValueError, match="checkpoint"):
        FitSettings(optimizer="lbfgs", resume=True)
