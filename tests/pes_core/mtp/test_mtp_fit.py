"""Fitting: recovery of a known MTP from data it generated, and the fitting stages."""

from __future__ import annotations

import numpy as np
import pytest
from mtp_helpers import random_crystal, random_potential

from pes_core.mtp import FitSettings, TrainingRecord, error_metrics, evaluate, fit_mtp


def _label(pot, structures) -> list[TrainingRecord]:
    out = []
    for atoms in structures:
        res = evaluate(pot, atoms)
        out.append(TrainingRecord(atoms, res.energy, res.forces, res.stress))
    return out


@pytest.mark.parametrize(("level", "n_species"), [(8, 1), (10, 2)])
def test_linear_fit_recovers_known_parameters(level: int, n_species: int) -> None:
    true = random_potential(level, n_species, seed=21)
    records = _label(true, [random_crystal(n_species, seed=s, rattle=0.2) for s in range(12)])
    start = true.copy()
    start.species_coeffs = np.zeros(n_species)
    start.moment_coeffs = np.zeros_like(true.moment_coeffs)
    settings = FitSettings(fit_radial=False, auto_min_dist=False, regularization=0.0, log=None)
    fitted, report = fit_mtp(start, records, settings, validation=[])
    theta_true = np.concatenate([true.species_coeffs, true.moment_coeffs])
    theta_fit = np.concatenate([fitted.species_coeffs, fitted.moment_coeffs])
    assert np.allclose(theta_fit, theta_true, rtol=1e-6, atol=1e-8 * np.abs(theta_true).max())
    assert report.train.energy_rmse < 1e-9
    assert report.train.force_rmse < 1e-8


def test_full_fit_recovers_predictions_of_known_potential() -> None:
    """Radial functions are only defined up to rescalings absorbed by the linear part, so
    compare predictions: from perturbed radial coefficients L-BFGS finds the reference again.

    L-BFGS runs to convergence (it stops on its own after ~250-400 iterations, at
    a loss ~1e-6 of the initial one or at round-off), not for a fixed number of
    iterations: after 200 iterations it is still on its way and where it stands
    changes with 1e-15 perturbations of the labels.  Converged, the fit reproduces
    held-out configurations of the known potential to < 1e-3 eV/Å in the forces
    (RMS force ~20 eV/Å; seen ~2e-4 eV/Å, or ~1e-8 when L-BFGS runs down to
    round-off) and < 1e-4 eV/atom in the energies (seen ~1.5e-5), where the linear
    fit with the perturbed radial functions is off by 0.2 eV/Å and 8 meV/atom; a
    fit that stops early (200 iterations: ~1e-2 eV/Å) or does not move the radial
    coefficients fails.
    """
    true = random_potential(6, 1, seed=5)
    structures = [random_crystal(1, seed=s, rattle=0.2) for s in range(10)]
    records = _label(true, structures)
    held_out = _label(true, [random_crystal(1, seed=s, rattle=0.2) for s in (99, 100, 101)])
    start = true.copy()
    start.radial_coeffs = true.radial_coeffs * (1 + 0.05 * np.random.default_rng(0).normal(size=true.radial_coeffs.shape))
    settings = FitSettings(max_iter=1000, auto_min_dist=False, regularization=0.0, radial_regularization=0.0, log=None)
    linear = _linear_only(start, records)
    before = error_metrics(linear, held_out)
    assert before.force_rmse > 0.1 and before.energy_rmse > 1e-3  # the perturbation matters
    fitted, report = fit_mtp(start, records, settings, validation=[])
    assert report.iterations < settings.max_iter  # converged rather than stopped
    assert report.loss_history[-1] < 1e-4 * report.loss_history[0]
    assert report.train.force_rmse < 1e-3 and report.train.energy_rmse < 1e-4
    after = error_metrics(fitted, held_out)
    assert after.force_rmse < 1e-3, after.format("held out")
    assert after.energy_rmse < 1e-4, after.format("held out")
    assert not np.allclose(fitted.radial_coeffs, start.radial_coeffs)  # the radial part was fitted


def _linear_only(pot, records):
    settings = FitSettings(fit_radial=False, auto_min_dist=False, regularization=0.0, log=None)
    return fit_mtp(pot, records, settings, validation=[])[0]


def test_fit_from_template_sets_min_dist_and_reports(capsys) -> None:
    from pes_core.mtp import MTPPotential

    true = random_potential(8, 2, seed=2, r_min=1.5)
    records = _label(true, [random_crystal(2, seed=s, rattle=0.15) for s in range(10)])
    template = MTPPotential.from_level(8, ["Si", "C"], min_dist=1.0, max_dist=5.0, seed=None)
    fitted, report = fit_mtp(template, records, FitSettings(max_iter=5, validation_fraction=0.2, log_every=1))
    dmin = min(np.min(r.atoms.get_all_distances(mic=True)[np.triu_indices(len(r.atoms), 1)]) for r in records)
    assert fitted.min_dist == pytest.approx(np.floor(dmin * 100) / 100)
    assert report.validation is not None and report.validation.n_configs == 2
    out = capsys.readouterr().out
    assert "R_min set from the training data" in out and "L-BFGS iteration" in out and "validation" in out
    assert np.isfinite(report.train.energy_rmse) and np.isfinite(report.train.stress_rmse)
    assert template.radial_coeffs is None  # input not modified


def test_records_without_labels_error() -> None:
    records = [TrainingRecord(random_crystal(1, seed=0))]
    with pytest.raises(ValueError, match="no energies, forces or stresses"):
        fit_mtp(random_potential(6, 1), records, FitSettings(log=None), validation=[])


def test_parameter_gradients_match_finite_differences() -> None:
    from pes_core.mtp import parameter_gradients

    pot = random_potential(8, 2, seed=4)
    atoms = random_crystal(2, seed=4)
    grads = parameter_gradients(pot, atoms, include_radial=True)
    assert grads.site_rows.shape == (len(atoms), pot.n_parameters)
    theta = pot.parameters
    rng = np.random.default_rng(0)
    for k in rng.choice(len(theta), 12, replace=False):
        p = pot.copy()
        t = theta.copy()
        t[k] += 1e-6
        p.parameters = t
        e_plus = evaluate(p, atoms, forces=False).energies
        t[k] -= 2e-6
        p.parameters = t
        e_minus = evaluate(p, atoms, forces=False).energies
        fd = (e_plus - e_minus) / 2e-6
        assert np.allclose(grads.site_rows[:, k], fd, rtol=1e-6, atol=1e-8)
    linear = parameter_gradients(pot, atoms)
    assert linear.config_row.shape == (pot.n_linear,)
    assert np.allclose(linear.config_row @ theta[: pot.n_linear], evaluate(pot, atoms).energy / len(atoms))
