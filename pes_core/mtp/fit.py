"""Fitting an MTP to energies, forces and stresses (weighted least squares).

Loss, summed over configurations ``c`` (``N_c`` atoms, record weight ``w_c``)
and divided by their number ``C``::

    L = sum_c w_c [ a_E(N_c) (E_c - E_c^ref)^2
                  + a_F(N_c) sum_{i,a} (F_cia - F_cia^ref)^2
                  + a_S(N_c) sum_{a,b} (W_cab - W_cab^ref)^2 ] / C
        + lambda_rad |c_radial|^2

with total energies ``E`` in eV, forces in eV/Å and the virial ``W = V * stress``
in eV.  The factors ``a`` come from the weights ``w_E``, ``w_F``, ``w_S``
(MLIP's defaults 1, 0.01, 0.001) and the weighting mode, as in MLIP's
``mlp train --weighting=...``:

============  ==============  ==============  ==============
weighting     a_E             a_F             a_S
============  ==============  ==============  ==============
vibrations    w_E / N         w_F             w_S / N          (MLIP's default)
molecules     w_E             w_F             w_S
structures    w_E / N^2       w_F / N         w_S / N^2
per_atom      w_E / N^2       w_F             w_S / N^2        (this project's fits before issue 18)
============  ==============  ==============  ==============

``vibrations`` is ``w_E N`` on the squared error of the energy *per atom*: the
energy of a configuration counts like its ``3N`` force components, which is
what makes the energy about a third of the loss on bulk data with MLIP's
default weights.  ``per_atom`` puts only ``w_E`` on the per-atom energy (about
``N`` times less energy weight); the crystal structure prediction job keeps it.
MLIP's loss is ``C`` times this one (no ``1/C``); the minimizer is the same
except for the relative size of ``lambda_rad``.

Stages:

1. ``R_min`` from the training data (the shortest interatomic distance), when
   ``auto_min_dist``;
2. linear least squares for ``species_coeffs`` and ``moment_coeffs`` with the
   radial coefficients fixed (columns scaled to unit norm, ridge
   ``regularization`` relative to that scale);
3. all parameters together with L-BFGS (linear parameters in the scaled
   units of stage 2): scipy's L-BFGS-B (``optimizer="scipy"``) or this
   module's L-BFGS (``optimizer="lbfgs"``), whose state can be checkpointed
   and resumed exactly.  The loss and its exact gradient come from compiled
   kernels (``engine="numba"``, :mod:`pes_core.mtp.loss`: one configuration at
   a time, on ``threads`` threads) or from a torch graph over groups of
   configurations (``engine="torch"``, the former path);
4. a final linear solve with the optimized radial functions.
"""

from __future__ import annotations

import os
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

__all__ = ["WEIGHTINGS", "ErrorMetrics", "FitReport", "FitSettings", "error_metrics", "fit_mtp", "split_records"]

#: weighting modes of :class:`FitSettings` (MLIP's three and the project's former one)
WEIGHTINGS = ("vibrations", "molecules", "structures", "per_atom")
_OPTIMIZERS = ("scipy", "lbfgs")
_ENGINES = ("numba", "torch")


@dataclass
class FitSettings:
    """Settings of :func:`fit_mtp`.

    Parameters
    ----------
    energy_weight, force_weight, stress_weight : float
        ``w_E``, ``w_F``, ``w_S`` (MLIP's ``--energy-weight``, ``--force-weight``,
        ``--stress-weight``; defaults 1, 0.01, 0.001).  With the default
        ``weighting="vibrations"`` the loss of a configuration of ``N`` atoms is
        ``w_E/N (E - E_ref)^2 + w_F sum |F - F_ref|^2 + w_S/N |W - W_ref|^2``
        with the total energy ``E`` in eV, forces in eV/Å and the virial ``W`` in
        eV, i.e. ``w_E`` is per eV^2 of total energy times atoms
        (``w_E N`` per (eV/atom)^2), ``w_F`` per (eV/Å)^2, ``w_S`` per eV^2 of
        virial times atoms.  See the module docstring for the other modes.
    weighting : {"vibrations", "molecules", "structures", "per_atom"}
        How configurations of different sizes are weighted (MLIP's
        ``--weighting``; ``vibrations`` is MLIP's default).  ``per_atom``
        (``w_E`` on the squared energy per atom, ``w_S/N^2`` on the squared
        virial) is how this project fitted before and what the crystal
        structure prediction job uses.
    max_iter : int
        Total L-BFGS iterations of the nonlinear stage (0: linear fit only),
        counting those before a resumed checkpoint.
    fit_radial : bool
        Run the nonlinear stage (optimize radial coefficients).
    regularization : float
        Ridge of the linear solve, relative to unit-norm columns.
    radial_regularization : float
        ``lambda_rad`` on the radial coefficients in the nonlinear stage.
    auto_min_dist : bool
        Set ``R_min`` to the shortest distance in the training data (rounded down to 0.01 Å).
        ``False`` keeps the potential's ``R_min`` (MLIP's behaviour).
    validation_fraction : float
        Share of the records held out for validation when no validation set is
        given (0: train on everything, like MLIP).
    seed : int
        Seed of the train/validation split and of radial initialization.
    log : callable or None
        Receives progress lines (``print`` by default; ``None`` for silence).
    log_every : int
        Report every this many L-BFGS iterations (loss, gradient norm, time per iteration).
    torch_threads : int
        Threads of torch during the nonlinear stage with ``engine="torch"``
        (restored afterwards); 1 is fastest for small batches and on shared machines.
    engine : {"numba", "torch"}
        How the nonlinear stage computes the loss and its gradient: ``numba``
        (default): compiled kernels, exact analytic gradient, configurations
        streamed one at a time (memory of one configuration) on ``threads``
        threads; ``torch``: a torch graph per group of ``batch_atoms`` atoms
        (the former path, kept for comparison).  Both give the same loss and
        gradient to round-off.
    threads : int
        Threads over configurations of the ``numba`` engine (the sum does not
        depend on it: same fit for any value).
    optimizer : {"scipy", "lbfgs"}
        ``scipy``: scipy's L-BFGS-B; ``lbfgs``: this module's L-BFGS (same
        memory of 50 pairs, Armijo backtracking), needed for checkpoints.
    tol : float
        Stop when the loss changed by less than ``tol`` relative to it over the
        last ``tol_iterations`` iterations (0: off).
    tol_iterations : int
        The ``k`` of ``tol``.
    gtol : float
        Stop when the gradient norm of the loss divided by its initial value
        (the optimizer's variables) falls below ``gtol`` (0: off).
    batch_atoms : int or None
        ``engine="torch"``: evaluate the loss and its gradient for groups of
        configurations of at most about this many atoms, one torch graph at a
        time, accumulating the gradient: memory grows with the group, not with
        the training set.  ``None``: one graph for everything.  (The numba
        engine always streams single configurations.)
    checkpoint : str or None
        Path of a .mtp file the current potential is written to every
        ``checkpoint_every`` iterations and when the fit is interrupted
        (Ctrl-C); the optimizer state goes to ``checkpoint + ".state.npz"``.
        Requires ``optimizer="lbfgs"``.
    checkpoint_every : int
        Iterations between checkpoints.
    resume : bool
        Continue from ``checkpoint``'s state file when it exists: the result
        equals that of an uninterrupted fit with the same settings.
    """

    energy_weight: float = 1.0
    force_weight: float = 0.01
    stress_weight: float = 0.001
    max_iter: int = 200
    fit_radial: bool = True
    regularization: float = 1e-12
    radial_regularization: float = 1e-8
    auto_min_dist: bool = True
    validation_fraction: float = 0.0
    seed: int = 0
    log: Callable[[str], None] | None = print
    log_every: int = 10
    torch_threads: int = 1
    weighting: str = "vibrations"
    optimizer: str = "scipy"
    tol: float = 0.0
    tol_iterations: int = 10
    gtol: float = 0.0
    batch_atoms: int | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 10
    resume: bool = False
    engine: str = "numba"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.engine not in _ENGINES:
            raise ValueError(f"engine {self.engine!r} is not one of {', '.join(_ENGINES)}")
        if int(self.threads) < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting {self.weighting!r} is not one of {', '.join(WEIGHTINGS)}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r} is not one of {', '.join(_OPTIMIZERS)}")
        if (self.checkpoint or self.resume) and self.optimizer != "lbfgs":
            raise ValueError("checkpoints need the resumable optimizer: set optimizer='lbfgs' "
                             "(pes mtp train --optimizer lbfgs)")
        if self.resume and not self.checkpoint:
            raise ValueError("resume needs a checkpoint file: set checkpoint='fit.mtp' (--checkpoint)")
        if self.batch_atoms is not None and self.batch_atoms < 1:
            raise ValueError(f"batch_atoms must be positive or None, got {self.batch_atoms}")

    def factors(self, n_atoms: int) -> tuple[float, float, float]:
        """``(a_E, a_F, a_S)`` of a configuration of ``n_atoms`` atoms (module docstring).

        >>> FitSettings().factors(4)
        (0.25, 0.01, 0.00025)
        >>> FitSettings(weighting="structures").factors(2)
        (0.25, 0.005, 0.00025)
        """
        n = float(n_atoms)
        w_e, w_f, w_s = self.energy_weight, self.force_weight, self.stress_weight
        if self.weighting == "vibrations":
            return w_e / n, w_f, w_s / n
        if self.weighting == "molecules":
            return w_e, w_f, w_s
        if self.weighting == "structures":
            return w_e / n**2, w_f / n, w_s / n**2
        return w_e / n**2, w_f, w_s / n**2


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
    """What a fit did and how well it fits (RMSE and MAE on train and validation).

    ``time_nonlinear_s`` (s) is the nonlinear stage with its final linear solve,
    ``time_optimizer_s`` (s) the L-BFGS iterations alone.
    """

    train: ErrorMetrics
    validation: ErrorMetrics | None
    min_dist: float
    iterations: int
    loss_history: list[float] = field(default_factory=list)
    time_linear_s: float = 0.0
    time_nonlinear_s: float = 0.0
    time_optimizer_s: float = 0.0

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


def _amplitudes(st: FitSettings, wc: float, n: int) -> tuple[float, float, float]:
    """Square roots of ``w_c a_E``, ``w_c a_F``, ``w_c a_S``: factors of the fitting equations.

    ``per_atom`` keeps the former expressions operation for operation (same fits to the last bit).
    """
    if st.weighting == "per_atom":
        return np.sqrt(wc * st.energy_weight) / n, np.sqrt(wc * st.force_weight), np.sqrt(wc * st.stress_weight) / n
    a_e, a_f, a_s = st.factors(n)
    return np.sqrt(wc * a_e), np.sqrt(wc * a_f), np.sqrt(wc * a_s)


def _linear_system(pot: MTPPotential, prep: _Prepared, st: FitSettings):
    rows, rhs = [], []
    for rec, pairs, types in zip(prep.records, prep.pairs, prep.types):
        e_row, f_rows, w_rows, _ = linear_design(pot, pairs, types)
        n = rec.n_atoms
        a_e, a_f, a_s = _amplitudes(st, rec.weight, n)
        if rec.energy is not None and st.energy_weight > 0:
            a = a_e
            rows.append(a * e_row[None, :])
            rhs.append([a * rec.energy])
        if rec.forces is not None and st.force_weight > 0:
            a = a_f
            rows.append(a * f_rows.reshape(3 * n, -1))
            rhs.append(a * rec.forces.ravel())
        if rec.has_stress and st.stress_weight > 0:
            a = a_s
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


class _Objective:
    """Loss and gradient of the nonlinear stage, divided by ``norm`` (the initial loss).

    The variables ``x`` are the linear coefficients in the column-scaled units of
    the linear stage followed by the radial coefficients.  Configurations are
    evaluated in groups of about ``batch_atoms`` atoms, one torch graph at a
    time, and the gradients summed; the last value is cached (the optimizers'
    callbacks ask for the point they just evaluated).
    """

    def __init__(self, pot: MTPPotential, prep: _Prepared, st: FitSettings, scale: np.ndarray) -> None:
        import torch

        from pes_core.mtp.torch_model import TorchMTP

        self.st = st
        self.model = TorchMTP(pot)
        self.n_conf = len(prep.records)
        self.s, self.n_lin = pot.n_species, pot.n_linear
        self.scale_t = torch.tensor(scale)
        self.shape = pot.radial_coeffs.shape
        self.norm = 1.0
        self.n_eval = 0
        self._cache: tuple[bytes, float, np.ndarray] | None = None
        n_atoms = [r.n_atoms for r in prep.records]
        if st.batch_atoms is None:
            groups = [list(range(self.n_conf))]
        else:
            groups, cur, size = [], [], 0
            for k, n in enumerate(n_atoms):
                if cur and size + n > st.batch_atoms:
                    groups.append(cur)
                    cur, size = [], 0
                cur.append(k)
                size += n
            groups.append(cur)
        self.groups = [self._group(pot, prep, idx) for idx in groups]

    def _group(self, pot: MTPPotential, prep: _Prepared, idx: list[int]) -> dict:
        import torch

        from pes_core.mtp.torch_model import TorchBatch

        st = self.st
        recs = [prep.records[k] for k in idx]
        batch = TorchBatch.build(pot, [prep.pairs[k] for k in idx], [prep.types[k] for k in idx])
        wc = torch.tensor([r.weight for r in recs], dtype=torch.float64)
        g = {
            "batch": batch,
            "n_at": torch.tensor([r.n_atoms for r in recs], dtype=torch.float64),
            "wc": wc,
            "has_e": torch.tensor([r.energy is not None for r in recs]),
            "e_ref": torch.tensor([r.energy if r.energy is not None else 0.0 for r in recs], dtype=torch.float64),
            "has_f": torch.tensor(np.concatenate([[r.forces is not None] * r.n_atoms for r in recs])),
            "f_ref": torch.tensor(np.concatenate([r.forces if r.forces is not None else np.zeros((r.n_atoms, 3))
                                                  for r in recs])),
            "w_atom": wc[batch.config],
            "has_s": torch.tensor([r.has_stress for r in recs]),
            "w_ref": torch.tensor(np.array([r.stress * GPa * r.atoms.get_volume() if r.has_stress else np.zeros((3, 3))
                                            for r in recs])),
        }
        if st.weighting != "per_atom":
            fac = np.array([st.factors(r.n_atoms) for r in recs])
            g["a_e"] = torch.tensor(fac[:, 0])
            g["a_f"] = torch.tensor(fac[:, 1])[batch.config]
            g["a_s"] = torch.tensor(fac[:, 2])
        return g

    def _group_loss(self, x, g: dict):
        st = self.st
        theta_lin = x[: self.n_lin] * self.scale_t
        radial = x[self.n_lin:].reshape(self.shape)
        energy, forces, virial = self.model(g["batch"], theta_lin[: self.s], theta_lin[self.s:], radial,
                                            forces=st.force_weight > 0 or st.stress_weight > 0)
        wc, n_at = g["wc"], g["n_at"]
        if st.weighting == "per_atom":  # the former loss, operation for operation
            loss = st.energy_weight * (wc * g["has_e"] * ((energy - g["e_ref"]) / n_at) ** 2).sum()
            if forces is not None:
                loss = loss + st.force_weight * (g["w_atom"][:, None] * g["has_f"][:, None] * (forces - g["f_ref"]) ** 2).sum()
                loss = loss + st.stress_weight * (wc * g["has_s"] * (((virial - g["w_ref"]) ** 2).sum(dim=(1, 2))) / n_at**2).sum()
            return loss
        loss = (wc * g["has_e"] * g["a_e"] * (energy - g["e_ref"]) ** 2).sum()
        if forces is not None:
            loss = loss + ((g["w_atom"] * g["a_f"] * g["has_f"])[:, None] * (forces - g["f_ref"]) ** 2).sum()
            loss = loss + (wc * g["has_s"] * g["a_s"] * ((virial - g["w_ref"]) ** 2).sum(dim=(1, 2))).sum()
        return loss

    def _reg(self, x):
        return self.st.radial_regularization * (x[self.n_lin:] ** 2).sum()

    def __call__(self, x_np: np.ndarray) -> tuple[float, np.ndarray]:
        import torch

        key = x_np.tobytes()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2].copy()
        self.n_eval += 1
        if len(self.groups) == 1:
            x = torch.tensor(x_np, requires_grad=True)
            loss = (self._group_loss(x, self.groups[0]) / self.n_conf + self._reg(x)) / self.norm
            (grad,) = torch.autograd.grad(loss, x)
            val, gnp = loss.item(), grad.numpy().astype(float)
        else:
            val, gnp = 0.0, np.zeros_like(x_np)
            for g in self.groups:
                x = torch.tensor(x_np, requires_grad=True)
                loss = self._group_loss(x, g) / self.n_conf / self.norm
                (grad,) = torch.autograd.grad(loss, x)
                val += loss.item()
                gnp += grad.numpy()
            x = torch.tensor(x_np, requires_grad=True)
            loss = self._reg(x) / self.norm
            (grad,) = torch.autograd.grad(loss, x)
            val += loss.item()
            gnp += grad.numpy()
        self._cache = (key, val, gnp.copy())
        return val, gnp


class _NumbaObjective:
    """The loss of :class:`_Objective` and its exact gradient from the compiled kernels of :mod:`pes_core.mtp.loss`.

    Same variables, normalization, cache and interface as :class:`_Objective`;
    configurations are streamed one at a time (on ``threads`` threads), so
    the memory is that of one configuration, whatever the training set.
    """

    def __init__(self, pot: MTPPotential, prep: _Prepared, st: FitSettings, scale: np.ndarray) -> None:
        from pes_core.mtp.loss import NumbaLoss

        self.st = st
        self.n_conf = len(prep.records)
        self.s, self.n_lin = pot.n_species, pot.n_linear
        self.scale = np.asarray(scale, dtype=float)
        self.shape = pot.radial_coeffs.shape
        self.norm = 1.0
        self.n_eval = 0
        self._cache: tuple[bytes, float, np.ndarray] | None = None
        factors = np.array([np.array(st.factors(r.n_atoms)) * r.weight for r in prep.records])
        need_forces = st.force_weight > 0 or st.stress_weight > 0
        self.loss = NumbaLoss.from_records(pot, prep.pairs, prep.types, prep.records, factors,
                                           need_forces=need_forces, threads=st.threads)
        self.groups = [[k] for k in range(self.n_conf)]  # streamed one configuration at a time

    def close(self) -> None:
        """Stop the worker threads."""
        self.loss.close()

    def __call__(self, x_np: np.ndarray) -> tuple[float, np.ndarray]:
        key = x_np.tobytes()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2].copy()
        self.n_eval += 1
        theta_lin = x_np[: self.n_lin] * self.scale
        radial = x_np[self.n_lin:]
        value, (g_s, g_m, g_r) = self.loss(theta_lin[: self.s], theta_lin[self.s:], radial.reshape(self.shape))
        lam = self.st.radial_regularization
        val = (value / self.n_conf + lam * float(radial @ radial)) / self.norm
        grad = np.concatenate([np.concatenate([g_s, g_m]) * self.scale, g_r.ravel()]) / self.n_conf
        grad[self.n_lin:] += 2.0 * lam * radial
        grad /= self.norm
        self._cache = (key, val, grad.copy())
        return val, grad


def _objective(pot: MTPPotential, prep: _Prepared, st: FitSettings, scale: np.ndarray):
    """The objective of ``st.engine`` (torch when numba is not installed)."""
    from pes_core.mtp import kernels

    if st.engine == "numba" and kernels.HAVE_NUMBA:
        return _NumbaObjective(pot, prep, st, scale)
    if st.engine == "numba" and st.log is not None:
        st.log("  numba is not installed: the loss gradient comes from the torch graph (engine='torch')")
    return _Objective(pot, prep, st, scale)


def _state_path(checkpoint: str) -> str:
    return str(checkpoint) + ".state.npz"


def _set_parameters(pot: MTPPotential, x: np.ndarray, scale: np.ndarray) -> None:
    s, n_lin = pot.n_species, pot.n_linear
    theta_lin = x[:n_lin] * scale
    pot.species_coeffs = theta_lin[:s].copy()
    pot.moment_coeffs = theta_lin[s:].copy()
    pot.radial_coeffs = x[n_lin:].reshape(pot.radial_coeffs.shape).copy()


class _Converged(Exception):
    """Raised by the iteration callback when a convergence criterion is met."""


@dataclass
class _LBFGSState:
    """Everything the L-BFGS iteration needs to continue exactly (written to checkpoints)."""

    x: np.ndarray
    f: float
    g: np.ndarray
    s_hist: list[np.ndarray]
    y_hist: list[np.ndarray]
    it: int
    f_hist: list[float]
    norm: float

    def save(self, path: str, scale: np.ndarray, min_dist: float, history: list[float]) -> None:
        tmp = path + ".tmp.npz"
        np.savez(tmp, x=self.x, f=self.f, g=self.g, s_hist=np.array(self.s_hist).reshape(-1, len(self.x)),
                 y_hist=np.array(self.y_hist).reshape(-1, len(self.x)), it=self.it, f_hist=np.array(self.f_hist),
                 norm=self.norm, scale=scale, min_dist=min_dist, history=np.array(history))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> tuple[_LBFGSState, np.ndarray, float, list[float]]:
        d = np.load(path)
        state = cls(d["x"], float(d["f"]), d["g"], list(d["s_hist"]), list(d["y_hist"]), int(d["it"]),
                    [float(v) for v in d["f_hist"]], float(d["norm"]))
        return state, d["scale"], float(d["min_dist"]), [float(v) for v in d["history"]]


def _two_loop(g: np.ndarray, s_hist: list[np.ndarray], y_hist: list[np.ndarray]) -> np.ndarray:
    """``-H g`` of L-BFGS (Nocedal & Wright, algorithm 7.4)."""
    q = g.copy()
    alphas = []
    for s, y in zip(reversed(s_hist), reversed(y_hist)):
        rho = 1.0 / float(y @ s)
        a = rho * float(s @ q)
        q -= a * y
        alphas.append((rho, a))
    if s_hist:
        q *= float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
    for (s, y), (rho, a) in zip(zip(s_hist, y_hist), reversed(alphas)):
        b = rho * float(y @ q)
        q += (a - b) * s
    return -q


def _lbfgs(fun, state: _LBFGSState, max_iter: int, on_iteration, memory: int = 50) -> str:
    """Minimize ``fun`` from ``state`` (updated in place) with L-BFGS and Armijo backtracking."""
    while state.it < max_iter:
        d = _two_loop(state.g, state.s_hist, state.y_hist)
        gd = float(state.g @ d)
        if not gd < 0:  # not a descent direction: restart from steepest descent
            state.s_hist.clear()
            state.y_hist.clear()
            d = -state.g
            gd = -float(state.g @ state.g)
        if gd == 0:
            return "gradient is zero"
        alpha = 1.0 if state.s_hist else min(1.0, 1.0 / max(np.sqrt(-gd), 1e-300))
        for _ in range(40):
            x_new = state.x + alpha * d
            f_new, g_new = fun(x_new)
            if np.isfinite(f_new) and f_new <= state.f + 1e-4 * alpha * gd:
                break
            denom = 2.0 * (f_new - state.f - gd * alpha)
            trial = -gd * alpha**2 / denom if np.isfinite(f_new) and denom > 0 else 0.5 * alpha
            alpha = float(np.clip(trial, 0.1 * alpha, 0.5 * alpha))
        else:
            return "line search found no decrease"
        s, y = x_new - state.x, g_new - state.g
        if float(s @ y) > 1e-12 * float(np.sqrt((s @ s) * (y @ y))):
            state.s_hist.append(s)
            state.y_hist.append(y)
            if len(state.s_hist) > memory:
                del state.s_hist[0], state.y_hist[0]
        state.x, state.f, state.g = x_new, float(f_new), g_new
        state.it += 1
        state.f_hist.append(state.f)
        on_iteration(state)
    return "maximum number of iterations reached"


def _converged(st: FitSettings, f_hist: list[float], gnorm: float) -> str | None:
    """The convergence criterion met after the latest iteration, or None."""
    k = max(1, int(st.tol_iterations))
    if st.tol > 0 and len(f_hist) > k:
        change = abs(f_hist[-k - 1] - f_hist[-1]) / max(abs(f_hist[-1]), 1e-300)
        if change < st.tol:
            return f"relative loss change {change:.2e} < tol {st.tol:g} over {k} iterations"
    if st.gtol > 0 and gnorm < st.gtol:
        return f"gradient norm {gnorm:.2e} < gtol {st.gtol:g}"
    return None


def _nonlinear(pot: MTPPotential, prep: _Prepared, st: FitSettings, scale: np.ndarray,
               resume: tuple[_LBFGSState, list[float]] | None = None) -> tuple[int, list[float]]:
    from scipy.optimize import minimize

    fun = _objective(pot, prep, st, scale)
    history: list[float] = []
    log = st.log
    x0 = np.concatenate([np.concatenate([pot.species_coeffs, pot.moment_coeffs]) / scale, pot.radial_coeffs.ravel()])
    if resume is not None:
        state, history = resume
        fun.norm = state.norm
        if len(state.x) != len(x0):
            raise ValueError(f"the checkpoint has {len(state.x)} parameters, the potential {len(x0)}: "
                             "resume with the template and settings the checkpointed fit started from")
        if log is not None:
            log(f"  resuming at iteration {state.it}, loss {state.f * state.norm:.6e}")
    else:
        val0, _ = fun(x0)
        fun.norm = val0 if val0 > 0 else 1.0  # L-BFGS-B's ftol test is absolute below 1: optimize loss / initial loss
        fun._cache = None
        history.append(val0)
        if log is not None:
            how = (f"{st.engine} engine on {st.threads} thread(s)" if isinstance(fun, _NumbaObjective)
                   else f"torch engine, {len(fun.groups)} group(s) of configurations")
            log(f"  nonlinear stage: {len(x0)} parameters, {how}, initial loss {val0:.6e}")
    clock = {"t0": time.perf_counter(), "t_last": time.perf_counter(), "it_last": 0 if resume is None else resume[0].it}
    f_hist: list[float] = [] if resume is None else resume[0].f_hist

    def report(it: int, f: float, g: np.ndarray) -> None:
        gnorm = float(np.linalg.norm(g))
        if log is not None and (it % st.log_every == 0 or it == 1):
            now = time.perf_counter()
            per = (now - clock["t_last"]) / max(it - clock["it_last"], 1)
            clock["t_last"], clock["it_last"] = now, it
            history.append(f * fun.norm)
            log(f"  L-BFGS iteration {it:5d}  loss {f * fun.norm:.6e}  |grad| {gnorm:.3e}  "
                f"{per:.2f} s/iteration  ({now - clock['t0']:.1f} s, {fun.n_eval} evaluations)")
        why = _converged(st, f_hist, gnorm)
        if why is not None:
            raise _Converged(why)

    message = ""
    if st.optimizer == "scipy":
        count = {"it": 0}

        def callback(xk: np.ndarray) -> None:
            count["it"] += 1
            f, g = fun(xk)
            f_hist.append(f)
            try:
                report(count["it"], f, g)
            except _Converged as exc:
                count["why"] = str(exc)
                raise StopIteration from exc

        res = minimize(fun, x0, jac=True, method="L-BFGS-B", callback=callback,
                       options={"maxiter": st.max_iter, "maxcor": 50, "ftol": 1e-14, "gtol": 1e-12})
        x_final, f_final, n_it = res.x, float(res.fun), int(res.nit)
        message = count.get("why", str(res.message))
    else:
        if resume is not None:
            state = resume[0]
        else:
            f0, g0 = fun(x0)
            state = _LBFGSState(x0.copy(), f0, g0, [], [], 0, [f0], fun.norm)
            f_hist = state.f_hist
        checkpoint = st.checkpoint

        def write_checkpoint() -> None:
            out = pot.copy()
            _set_parameters(out, state.x, scale)
            from pes_core.mtp.io_mtp import write_mtp

            write_mtp(checkpoint, out)
            state.save(_state_path(checkpoint), scale, pot.min_dist, history)

        def on_iteration(s: _LBFGSState) -> None:
            if checkpoint and s.it % max(1, st.checkpoint_every) == 0:
                write_checkpoint()
            report(s.it, s.f, s.g)

        try:
            message = _lbfgs(fun, state, st.max_iter, on_iteration)
        except _Converged as exc:
            message = str(exc)
        except KeyboardInterrupt:
            if checkpoint:
                write_checkpoint()
                if log is not None:
                    log(f"  interrupted at iteration {state.it}: checkpoint written to {checkpoint} (resume with --resume)")
            raise
        if checkpoint:
            write_checkpoint()
        x_final, f_final, n_it = state.x, state.f, state.it
    if hasattr(fun, "close"):
        fun.close()
    _set_parameters(pot, x_final, scale)
    history.append(f_final * fun.norm)
    if log is not None:
        log(f"  nonlinear stage done: loss {history[-1]:.6e} after {n_it} iterations ({message})")
    return n_it, history


@contextmanager
def _torch_threads(n: int, engine: str = "torch"):
    from pes_core.mtp import kernels

    if engine == "numba" and kernels.HAVE_NUMBA:  # the numba engine does not import torch
        yield
        return
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
        Weights and weighting mode, iterations, regularization, convergence,
        checkpoints, logging.
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
    resume = None
    if st.resume and st.checkpoint and os.path.exists(_state_path(st.checkpoint)):
        state, scale, min_dist, history = _LBFGSState.load(_state_path(st.checkpoint))
        pot.min_dist = min_dist
        resume = (state, history)
        log(f"resuming from {st.checkpoint} (R_min {pot.min_dist:.2f} A, iteration {state.it})")
    elif st.resume:
        log(f"no checkpoint state {_state_path(st.checkpoint)} yet: starting a new fit")
    if resume is None and st.auto_min_dist:
        dmin = _min_distance(prep)
        pot.min_dist = float(np.floor(dmin * 100) / 100)
        if pot.min_dist >= pot.max_dist:
            raise ValueError(f"shortest training distance {dmin:.3f} A is not below the cutoff {pot.max_dist} A")
        log(f"R_min set from the training data: {pot.min_dist:.2f} A (shortest distance {dmin:.4f} A)")
    elif resume is None:
        dmin = min((float(p.distances.min()) for p in prep.pairs if len(p.distances)), default=np.inf)
        if dmin < pot.min_dist:
            log(f"warning: the shortest training distance {dmin:.3f} A is below R_min = {pot.min_dist:.3f} A "
                "(kept from the potential): the radial basis is extrapolated there; reset R_min from the data "
                "(auto_min_dist, --reset-min-dist) or lower it in the template")
    if pot.radial_coeffs is None:
        pot.initialize(np.random.default_rng(st.seed))
    if pot.species_coeffs is None or pot.moment_coeffs is None:
        pot.species_coeffs = np.zeros(pot.n_species)
        pot.moment_coeffs = np.zeros(pot.basis.alpha_scalar_moments)
    level = f"level {pot.level}" if pot.level is not None else "(basis read from file)"
    log(f"fitting MTP {level}, {pot.basis.alpha_scalar_moments} basis functions ({pot.n_parameters} parameters) "
        f"on {len(train)} configurations, {len(validation)} for validation; weighting {st.weighting}")
    t0 = time.perf_counter()
    if resume is None:
        scale = _solve_linear(pot, prep, st)
        t_lin = time.perf_counter() - t0
        log(f"linear stage: {t_lin:.1f} s; " + error_metrics(pot, train).format("train"))
    else:
        _set_parameters(pot, resume[0].x, scale)
        t_lin = 0.0
    iterations, history, t_opt = 0, [], 0.0
    t1 = time.perf_counter()
    if st.fit_radial and st.max_iter > 0:
        with _torch_threads(st.torch_threads, st.engine):
            iterations, history = _nonlinear(pot, prep, st, scale, resume)
        t_opt = time.perf_counter() - t1
        _solve_linear(pot, prep, st)
    t_nl = time.perf_counter() - t1
    report = FitReport(
        train=error_metrics(pot, train),
        validation=error_metrics(pot, validation) if validation else None,
        min_dist=pot.min_dist, iterations=iterations, loss_history=history,
        time_linear_s=t_lin, time_nonlinear_s=t_nl, time_optimizer_s=t_opt,
    )
    log(report.format())
    return pot, report
