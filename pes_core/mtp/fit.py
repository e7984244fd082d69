"""Fitting an MTP to energies, forces and stresses (weighted least squares).

Loss (MLIP's defaults ``w_E = 1``, ``w_F = 0.01``, ``w_S = 0.001``), summed over
configurations ``c`` with record weights ``w_c`` and divided by their number::

    L = sum_c w_c [ w_E ((E_c - E_c^ref) / N_c)^2
                  + w_F sum_{i,a} (F_cia - F_cia^ref)^2
                  + w_S sum_{a,b} ((W_cab - W_cab^ref) / N_c)^2 ] / C
        + lambda_rad |c_radial|^2

with energies in eV (so the energy term is per atom), forces in eV/Å and the
virial ``W = V * stress`` in eV (the stress term is per atom as well).

Stages:

1. ``R_min`` from the training data (the shortest interatomic distance), when
   ``auto_min_dist``;
2. linear least squares for ``species_coeffs`` and ``moment_coeffs`` with the
   radial coefficients fixed (columns scaled to unit norm, ridge
   ``regularization`` relative to that scale);
3. all parameters together with L-BFGS (scipy) on the torch loss; linear
   parameters in the scaled units of stage 2;
4. a final linear solve with the optimized radial functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from ase.units import GPa

from pes_core.mtp.calculator import evaluate
from pes_core.mtp.engine import linear_design
from pes_core.mtp.neighbours import PairList, build_pairs
from pes_core.mtp.potential import MTPPotential
from pes_core.mtp.records import TrainingRecord

__all__ = ["ErrorMetrics", "FitReport", "FitSettings", "error_metrics", "fit_mtp", "split_records"]


@dataclass
class FitSettings:
    """Settings of :func:`fit_mtp`.

    Parameters
    ----------
    energy_weight, force_weight, stress_weight : float
        ``w_E`` (per (eV/atom)^2), ``w_F`` (per (eV/Å)^2), ``w_S`` (per (eV/atom)^2 of virial).
    max_iter : int
        L-BFGS iterations of the nonlinear stage (0: linear fit only).
    fit_radial : bool
        Run the nonlinear stage (optimize radial coefficients).
    regularization : float
        Ridge of the linear solve, relative to unit-norm columns.
    radial_regularization : float
        ``lambda_rad`` on the radial coefficients in the nonlinear stage.
    auto_min_dist : bool
        Set ``R_min`` to the shortest distance in the training data (rounded down to 0.01 Å).
    validation_fraction : float
        Share of the records held out for validation when no validation set is given.
    seed : int
        Seed of the train/validation split and of radial initialization.
    log : callable or None
        Receives progress lines (``print`` by default; ``None`` for silence).
    log_every : int
        Report every this many L-BFGS iterations.
    torch_threads : int
        Threads of torch during the nonlinear stage (restored afterwards); 1 is
        fastest for small batches and on shared machines.
    """

    energy_weight: float = 1.0
    force_weight: float = 0.01
    stress_weight: float = 0.001
    max_iter: int = 200
    fit_radial: bool = True
    regularization: float = 1e-12
    radial_regularization: float = 1e-8
    auto_min_dist: bool = True
    validation_fraction: float = 0.1
    seed: int = 0
    log: Callable[[str], None] | None = print
    log_every: int = 10
    torch_threads: int = 1


@dataclass
class ErrorMetrics:
    """Errors of a potential on a set of records.

    Parameters
    ----------
    n_configs : int
        Number of configurations.
    energy_rmse, energy_mae : float
        Energy per atom errors in eV/atom.
    force_rmse, force_mae : float
        Force component errors in eV/Å.
    stress_rmse, stress_mae : float
        Stress component errors in GPa (NaN without stresses).
    """

    n_configs: int
    energy_rmse: float
    energy_mae: float
    force_rmse: float
    force_mae: float
    stress_rmse: float
    stress_mae: float

    def format(self, name: str = "") -> str:
        """One line: ``E meV/atom, F eV/Å, S GPa`` RMSE (MAE)."""
        return (
            f"{name:<10s} n={self.n_configs:<5d} E {1e3 * self.energy_rmse:9.3f} ({1e3 * self.energy_mae:8.3f}) meV/atom"
            f"   F {self.force_rmse:8.4f} ({self.force_mae:7.4f}) eV/A"
            f"   S {self.stress_rmse:8.4f} ({self.stress_mae:7.4f}) GPa"
        )


@dataclass
class FitReport:
    """What a fit did and how well it fits (RMSE and MAE on train and validation)."""

    train: ErrorMetrics
    validation: ErrorMetrics | None
    min_dist: float
    iterations: int
    loss_history: list[float] = field(default_factory=list)
    time_linear_s: float = 0.0
    time_nonlinear_s: float = 0.0

    def format(self) -> str:
        """A small text table."""
        lines = [
            f"MTP fit: R_min = {self.min_dist:.3f} A, {self.iterations} L-BFGS iterations, "
            f"linear {self.time_linear_s:.1f} s, nonlinear {self.time_nonlinear_s:.1f} s",
            "           RMSE (MAE)",
            self.train.format("train"),
        ]
        if self.validation is not None:
            lines.append(self.validation.format("validation"))
        return "\n".join(lines)


def split_records(records: list[TrainingRecord], fraction: float, seed: int = 0):
    """Random train/validation split (at least one training record)."""
    n = len(records)
    n_val = int(round(fraction * n)) if n > 1 else 0
    n_val = min(n_val, n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return [records[k] for k in sorted(perm[n_val:])], [records[k] for k in sorted(perm[:n_val])]


def error_metrics(pot: MTPPotential, records: list[TrainingRecord]) -> ErrorMetrics:
    """RMSE/MAE of energies per atom (eV/atom), force components (eV/Å) and stresses (GPa)."""
    de, df, ds = [], [], []
    for rec in records:
        res = evaluate(pot, rec.atoms)
        if rec.energy is not None:
            de.append((res.energy - rec.energy) / rec.n_atoms)
        if rec.forces is not None:
            df.append((res.forces - rec.forces).ravel())
        if rec.has_stress and res.stress is not None:
            ds.append((res.stress - rec.stress).ravel())
    stat = lambda x: (float(np.sqrt(np.mean(np.square(x)))), float(np.mean(np.abs(x)))) if len(x) else (np.nan, np.nan)  # noqa: E731
    e = stat(np.array(de))
    f = stat(np.concatenate(df) if df else np.zeros(0))
    s = stat(np.concatenate(ds) if ds else np.zeros(0))
    return ErrorMetrics(len(records), e[0], e[1], f[0], f[1], s[0], s[1])


# ------------------------------------------------------------------- helpers
@dataclass
class _Prepared:
    records: list[TrainingRecord]
    pairs: list[PairList]
    types: list[np.ndarray]


def _prepare(pot: MTPPotential, records: list[TrainingRecord]) -> _Prepared:
    if not records:
        raise ValueError("no training records; give at least one configuration with an energy or forces")
    pairs = [build_pairs(r.atoms, pot.max_dist) for r in records]
    types = [pot.types_of(r.atoms.numbers) for r in records]
    return _Prepared(records, pairs, types)


def _min_distance(prep: _Prepared) -> float:
    dmin = min((float(p.distances.min()) for p in prep.pairs if len(p.distances)), default=np.inf)
    if not np.isfinite(dmin):
        raise ValueError("no two atoms of the training data are closer than the cutoff; cannot set R_min")
    return dmin


def _linear_system(pot: MTPPotential, prep: _Prepared, st: FitSettings):
    rows, rhs = [], []
    for rec, pairs, types in zip(prep.records, prep.pairs, prep.types):
        e_row, f_rows, w_rows, _ = linear_design(pot, pairs, types)
        n = rec.n_atoms
        wc = rec.weight
        if rec.energy is not None and st.energy_weight > 0:
            a = np.sqrt(wc * st.energy_weight) / n
            rows.append(a * e_row[None, :])
            rhs.append([a * rec.energy])
        if rec.forces is not None and st.force_weight > 0:
            a = np.sqrt(wc * st.force_weight)
            rows.append(a * f_rows.reshape(3 * n, -1))
            rhs.append(a * rec.forces.ravel())
        if rec.has_stress and st.stress_weight > 0:
            a = np.sqrt(wc * st.stress_weight) / n
            w_ref = rec.stress * GPa * rec.atoms.get_volume()
            rows.append(a * w_rows.reshape(9, -1))
            rhs.append(a * w_ref.ravel())
    if not rows:
        raise ValueError("the training records carry no energies, forces or stresses to fit")
    return np.concatenate(rows), np.concatenate([np.ravel(r) for r in rhs])


def _solve_linear(pot: MTPPotential, prep: _Prepared, st: FitSettings) -> np.ndarray:
    """Set the linear coefficients by ridge least squares; returns the column scales."""
    a, y = _linear_system(pot, prep, st)
    norms = np.linalg.norm(a, axis=0)
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 1.0)
    a_s = a * scale
    lam = st.regularization
    if lam > 0:
        a_s = np.vstack([a_s, np.sqrt(lam) * np.eye(a_s.shape[1])])
        y = np.concatenate([y, np.zeros(a_s.shape[1])])
    phi, *_ = np.linalg.lstsq(a_s, y, rcond=None)
    theta = phi * scale
    s = pot.n_species
    pot.species_coeffs = theta[:s].copy()
    pot.moment_coeffs = theta[s:].copy()
    return scale


def _nonlinear(pot: MTPPotential, prep: _Prepared, st: FitSettings, scale: np.ndarray) -> tuple[int, list[float]]:
    import torch
    from scipy.optimize import minimize

    from pes_core.mtp.torch_model import TorchBatch, TorchMTP

    batch = TorchBatch.build(pot, prep.pairs, prep.types)
    model = TorchMTP(pot)
    recs = prep.records
    n_at = torch.tensor([r.n_atoms for r in recs], dtype=torch.float64)
    wc = torch.tensor([r.weight for r in recs], dtype=torch.float64)
    has_e = torch.tensor([r.energy is not None for r in recs])
    e_ref = torch.tensor([r.energy if r.energy is not None else 0.0 for r in recs], dtype=torch.float64)
    has_f = torch.tensor(np.concatenate([[r.forces is not None] * r.n_atoms for r in recs]))
    f_ref = torch.tensor(np.concatenate([r.forces if r.forces is not None else np.zeros((r.n_atoms, 3)) for r in recs]))
    w_atom = wc[batch.config]
    has_s = torch.tensor([r.has_stress for r in recs])
    w_ref = torch.tensor(np.array([r.stress * GPa * r.atoms.get_volume() if r.has_stress else np.zeros((3, 3))
                                   for r in recs]))
    n_conf = len(recs)
    s, n_lin = pot.n_species, pot.n_linear
    scale_t = torch.tensor(scale)
    shape = pot.radial_coeffs.shape
    history: list[float] = []

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        theta_lin = x[:n_lin] * scale_t
        radial = x[n_lin:].reshape(shape)
        energy, forces, virial = model(batch, theta_lin[:s], theta_lin[s:], radial, forces=st.force_weight > 0 or st.stress_weight > 0)
        loss = st.energy_weight * (wc * has_e * ((energy - e_ref) / n_at) ** 2).sum()
        if forces is not None:
            loss = loss + st.force_weight * (w_atom[:, None] * has_f[:, None] * (forces - f_ref) ** 2).sum()
            loss = loss + st.stress_weight * (wc * has_s * (((virial - w_ref) ** 2).sum(dim=(1, 2))) / n_at**2).sum()
        return loss / n_conf + st.radial_regularization * (radial**2).sum()

    norm = {"value": 1.0}  # L-BFGS-B's ftol test is absolute below 1: optimize loss / initial loss

    def fun(x_np: np.ndarray):
        x = torch.tensor(x_np, requires_grad=True)
        loss = loss_fn(x) / norm["value"]
        (grad,) = torch.autograd.grad(loss, x)
        return loss.item(), grad.numpy().astype(float)

    x0 = np.concatenate([np.concatenate([pot.species_coeffs, pot.moment_coeffs]) / scale, pot.radial_coeffs.ravel()])
    count = {"it": 0}
    t0 = time.perf_counter()

    def callback(xk: np.ndarray) -> None:
        count["it"] += 1
        if st.log is not None and (count["it"] % st.log_every == 0 or count["it"] == 1):
            val = fun(xk)[0] * norm["value"]
            history.append(val)
            st.log(f"  L-BFGS iteration {count['it']:5d}  loss {val:.6e}  ({time.perf_counter() - t0:.1f} s)")

    val0, _ = fun(x0)
    norm["value"] = val0 if val0 > 0 else 1.0
    history.append(val0)
    if st.log is not None:
        st.log(f"  nonlinear stage: {len(x0)} parameters, initial loss {val0:.6e}")
    res = minimize(fun, x0, jac=True, method="L-BFGS-B", callback=callback,
                   options={"maxiter": st.max_iter, "maxcor": 50, "ftol": 1e-14, "gtol": 1e-12})
    theta_lin = res.x[:n_lin] * scale
    pot.species_coeffs = theta_lin[:s].copy()
    pot.moment_coeffs = theta_lin[s:].copy()
    pot.radial_coeffs = res.x[n_lin:].reshape(shape).copy()
    history.append(float(res.fun) * norm["value"])
    if st.log is not None:
        st.log(f"  nonlinear stage done: loss {history[-1]:.6e} after {res.nit} iterations ({res.message})")
    return int(res.nit), history


@contextmanager
def _torch_threads(n: int):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def fit_mtp(
    pot: MTPPotential,
    records: list[TrainingRecord],
    settings: FitSettings | None = None,
    validation: list[TrainingRecord] | None = None,
) -> tuple[MTPPotential, FitReport]:
    """Fit ``pot`` (a template or a trained potential to refine) to ``records``.

    Parameters
    ----------
    pot : MTPPotential
        Basis, species and cutoff; untrained coefficients are initialized.
        Not modified: a fitted copy is returned.
    records : list of TrainingRecord
        Training data (energies eV, forces eV/Å, stresses GPa ASE sign).
    settings : FitSettings, optional
        Weights, iterations, regularization, logging.
    validation : list of TrainingRecord, optional
        Held-out data; by default ``settings.validation_fraction`` of ``records``.

    Returns
    -------
    tuple
        The fitted :class:`MTPPotential` and a :class:`FitReport`.

    Examples
    --------
    >>> pot, report = fit_mtp(MTPPotential.from_level(10, ["Si"]), records)  # doctest: +SKIP
    >>> print(report.format())  # doctest: +SKIP
    """
    st = settings or FitSettings()
    log = st.log or (lambda _msg: None)
    pot = pot.copy()
    if validation is None:
        train, validation = split_records(records, st.validation_fraction, st.seed)
    else:
        train = list(records)
    prep = _prepare(pot, train)
    if st.auto_min_dist:
        dmin = _min_distance(prep)
        pot.min_dist = float(np.floor(dmin * 100) / 100)
        if pot.min_dist >= pot.max_dist:
            raise ValueError(f"shortest training distance {dmin:.3f} A is not below the cutoff {pot.max_dist} A")
        log(f"R_min set from the training data: {pot.min_dist:.2f} A (shortest distance {dmin:.4f} A)")
    if pot.radial_coeffs is None:
        pot.initialize(np.random.default_rng(st.seed))
    if pot.species_coeffs is None or pot.moment_coeffs is None:
        pot.species_coeffs = np.zeros(pot.n_species)
        pot.moment_coeffs = np.zeros(pot.basis.alpha_scalar_moments)
    log(f"fitting MTP level {pot.level} ({pot.n_parameters} parameters) on {len(train)} configurations, "
        f"{len(validation)} for validation")
    t0 = time.perf_counter()
    scale = _solve_linear(pot, prep, st)
    t_lin = time.perf_counter() - t0
    log(f"linear stage: {t_lin:.1f} s; " + error_metrics(pot, train).format("train"))
    iterations, history = 0, []
    t1 = time.perf_counter()
    if st.fit_radial and st.max_iter > 0:
        with _torch_threads(st.torch_threads):
            iterations, history = _nonlinear(pot, prep, st, scale)
        _solve_linear(pot, prep, st)
    t_nl = time.perf_counter() - t1
    report = FitReport(
        train=error_metrics(pot, train),
        validation=error_metrics(pot, validation) if validation else None,
        min_dist=pot.min_dist, iterations=iterations, loss_history=history,
        time_linear_s=t_lin, time_nonlinear_s=t_nl,
    )
    log(report.format())
    return pot, report
