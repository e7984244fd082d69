"""Synchronous learning: oracle calls, refits and low-energy weights.

:class:`OracleLearner` is the ``learn`` callback of
:class:`~pes_core.active.relax.ActiveRelaxer` for pure-Python use: it computes
the selected configurations with an oracle, adds them to its training set,
refits the MTP (warm start from the current one) and recomputes the active set
on the whole training set.

Two-stage scheme (Podryabinkin et al. 2019): an accurate potential is trained
with the weights ``W(x) = 1/(E(x)/N - E_min + delta)^2`` (eV/atom,
``delta = 0.02``) on both sides of the fitting equations, i.e. record weight
``W^2`` in the squared loss (:func:`low_energy_weights`), and selects only on
low-energy configurations (:func:`screen_low_energy`).

>>> from pes_core.oracles import get_oracle  # doctest: +SKIP
>>> learner = OracleLearner(get_oracle("tersoff"), mode="configuration")  # doctest: +SKIP
>>> pot, aset = learner.start(MTPPotential.from_level(10, ["Si"]), initial_images)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from ase import Atoms

from pes_core.active.active_set import ActiveSet
from pes_core.active.calculator import Candidate
from pes_core.mtp import FitSettings, MTPPotential, TrainingRecord, evaluate, fit_mtp

__all__ = ["OracleLearner", "OracleTrajectory", "low_energy_weights", "oracle_trajectory", "screen_low_energy",
           "screen_training"]

log = logging.getLogger(__name__)


def low_energy_weights(energies_per_atom: Sequence[float], delta: float = 0.02,
                       both_sides: bool = True) -> np.ndarray:
    """Weights favouring low energies, normalized to a largest weight of 1.

    Parameters
    ----------
    energies_per_atom : sequence of float
        Reference energies in eV/atom.
    delta : float
        Offset in eV/atom (0.02 in the paper): the lowest configuration gets
        ``W = 1/delta^2``.
    both_sides : bool
        ``W`` multiplies both sides of each fitting equation, so the squared
        loss weight is ``W^2`` (default); ``False`` returns ``W`` itself.
    """
    e = np.asarray(energies_per_atom, dtype=float)
    if e.size == 0:
        return e
    if delta <= 0:
        raise ValueError(f"delta must be positive (eV/atom), got {delta}")
    w = 1.0 / (e - e.min() + delta) ** 2
    if both_sides:
        w = w**2
    return w / w.max()


def screen_training(records: Sequence[TrainingRecord], window: float | None,
                    min_records: int = 12, keep: Sequence[bool] | None = None) -> list[TrainingRecord]:
    """Records whose energy per atom is within ``window`` eV/atom of the lowest (at least ``min_records``).

    Crystal structure prediction needs the potential where structures relax
    to, i.e. within a few hundred meV/atom of the ground state.  Random
    pre-exploration structures (short contacts, absurd densities) reach 10 eV/atom
    above it; fitted with equal weights they dominate the least squares and
    the low-energy error grows to hundreds of meV/atom (measured on Si4/Si8
    with Tersoff).  Screening them out of the *fit* (they may stay in the
    active set) is the energy cut of the two-stage scheme in its simplest
    form.  The ``min_records`` lowest are kept whatever their energy, so an
    early fit is never underdetermined.  ``window=None`` keeps everything.

    ``keep`` (one flag per record) marks records fitted whatever their
    energy: configurations that active learning chose *because* the potential
    was wrong there (an extrapolation break, an energy hole, a pair below
    R_min).  Those lie 2-5 eV/atom above the minimum (C8/CHGNet); screened
    out, they were never fitted and the holes stayed: 41 hole configurations
    learned in one C8 search, and the relaxations kept falling into holes.

    >>> from ase.build import bulk
    >>> recs = [TrainingRecord(bulk("Si"), e) for e in (-9.0, -8.0, 10.0)]
    >>> len(screen_training(recs, 2.0, min_records=1)), len(screen_training(recs, 2.0, 1, [0, 0, 1]))
    (2, 3)
    """
    flags = [False] * len(records) if keep is None else [bool(k) for k in keep]
    if len(flags) != len(records):
        raise ValueError(f"keep has {len(flags)} flags for {len(records)} records")
    pairs = [(r, f) for r, f in zip(records, flags) if r.energy is not None]
    if window is None or not pairs:
        return list(records)
    e = np.array([r.energy / r.n_atoms for r, _ in pairs])
    order = np.argsort(e, kind="stable")
    chosen = set(int(k) for k in np.flatnonzero(e <= e.min() + float(window)))
    chosen |= set(int(k) for k in order[:max(0, int(min_records))])
    chosen |= {k for k, (_, forced) in enumerate(pairs) if forced}
    return [pairs[k][0] for k in sorted(chosen)]


def screen_low_energy(potential: MTPPotential, images: Sequence[Atoms], window: float) -> list[int]:
    """Indices of the images whose energy per atom on ``potential`` is within ``window`` eV/atom of the lowest.

    The "reliable" potential of the two-stage scheme discards high-energy
    structures with this before the accurate one selects.
    """
    if not images:
        return []
    e = np.array([evaluate(potential, a, forces=False).energy / len(a) for a in images])
    return [int(k) for k in np.flatnonzero(e <= e.min() + window)]


@dataclass
class OracleLearner:
    """Learn configurations synchronously: oracle, refit, new active set.

    Parameters
    ----------
    oracle : pes_core.oracles.Oracle
        Reference calculator (``compute(atoms) -> OracleResult``).
    records : list of TrainingRecord
        Training set (grows with every learned configuration).
    fit_settings : FitSettings, optional
        Settings of every refit (default: 60 L-BFGS iterations, silent, no validation split).
    mode : {"configuration", "neighbourhood"}
        Active-set mode.
    include_radial : bool
        Rows over all parameters.
    energy_weighting : float or None
        ``delta`` of :func:`low_energy_weights` (two-stage scheme); ``None``: equal weights.
    """

    oracle: object
    records: list[TrainingRecord] = field(default_factory=list)
    fit_settings: FitSettings | None = None
    mode: str = "configuration"
    include_radial: bool = False
    energy_weighting: float | None = None
    n_oracle_calls: int = 0
    n_fits: int = 0
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.fit_settings is None:
            self.fit_settings = FitSettings(max_iter=60, log=None, validation_fraction=0.0, weighting="per_atom")

    def compute(self, images: Sequence[Atoms]) -> list[TrainingRecord]:
        """Oracle results of ``images`` as records (failed ones are skipped and remembered)."""
        out = []
        for atoms in images:
            self.n_oracle_calls += 1
            try:
                res = self.oracle.compute(atoms)
            except Exception as err:  # OracleError, NaN results: skip the configuration
                self.failures.append(f"{type(err).__name__}: {err}")
                log.warning("oracle failed on a selected configuration: %s", err)
                continue
            bare = atoms.copy()
            bare.calc = None
            out.append(TrainingRecord(bare, res.energy, res.forces, res.stress))
        return out

    def fit(self, potential: MTPPotential) -> MTPPotential:
        """Refit ``potential`` (warm start) on all records."""
        recs = self.records
        if self.energy_weighting is not None:
            w = low_energy_weights([r.energy / r.n_atoms for r in recs], self.energy_weighting)
            recs = [replace(r, weight=float(wk)) for r, wk in zip(recs, w)]
        pot, _report = fit_mtp(potential, recs, self.fit_settings, validation=[])
        self.n_fits += 1
        return pot

    def active_set(self, potential: MTPPotential) -> ActiveSet:
        """Active set of ``potential`` on the training set."""
        return ActiveSet.from_training(potential, [r.atoms for r in self.records], self.mode, self.include_radial)

    def start(self, potential: MTPPotential, images: Sequence[Atoms]) -> tuple[MTPPotential, ActiveSet]:
        """Compute ``images``, fit ``potential`` on them and return it with its active set."""
        self.records += self.compute(images)
        if not self.records:
            raise RuntimeError("the oracle failed on every initial configuration; nothing to fit")
        pot = self.fit(potential)
        return pot, self.active_set(pot)

    def __call__(self, candidates: list[Candidate], potential: MTPPotential,
                 active_set: ActiveSet) -> tuple[MTPPotential, ActiveSet]:
        new = self.compute([c.atoms for c in candidates])
        if not new:
            return potential, active_set
        self.records += new
        pot = self.fit(potential)
        return pot, self.active_set(pot)


@dataclass
class OracleTrajectory:
    """Frames of a short oracle relaxation: every oracle result, and which ones to fit.

    ``results[k]`` is the oracle result of optimizer step ``k`` (``k = 0`` is
    the starting structure); ``kept`` lists the frames meant for the training
    set (every ``every``-th and the last); ``failed`` holds the error text of
    an aborted relaxation (the frames before it stay valid).
    """

    results: list = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    failed: str | None = None

    @property
    def n_calls(self) -> int:
        return len(self.results)


def oracle_trajectory(oracle, atoms: Atoms, steps: int = 10, every: int = 3, pressure_gpa: float = 0.0,
                      fmax: float = 0.05, max_volume_factor: float = 3.0) -> OracleTrajectory:
    """A short oracle relaxation (positions and cell, BFGS) that keeps every oracle result.

    Why: a training set of unrelaxed random structures lies 1-2 eV/atom (and up
    to 10+ eV/atom) above the ground state, so the MTP fitted on it has never
    seen the low-energy basins a search must rank: its relaxations stop in
    spurious minima and never enter e.g. the diamond basin of Si (measured on
    Si4/Si8 with Tersoff: best -4.31 to -4.38 eV/atom instead of -4.6296).  The
    first steps of an oracle relaxation go down the steepest part of the true
    energy surface -- each step costs one oracle call, like a single point --
    and its frames sample bond lengths, angles and densities of condensed,
    low-energy configurations.  Consecutive frames are strongly correlated, so
    only every ``every``-th and the last are proposed for fitting (the rest are
    still stored: an oracle result is never thrown away).

    Parameters
    ----------
    oracle : pes_core.oracles.Oracle
        Reference calculator.
    atoms : ase.Atoms
        Start (periodic).
    steps : int
        BFGS steps at most (``steps + 1`` oracle calls at most).
    every : int
        Stride of the frames kept for fitting (the last frame is always kept).
    pressure_gpa : float
        External pressure of the cell relaxation.
    fmax : float
        Force tolerance (eV/Å); the relaxation may stop earlier.
    max_volume_factor : float
        Abort when the volume leaves ``[v0 / f, v0 * f]`` (atoms flying apart).
    """
    import ase.optimize as opt
    from ase.filters import FrechetCellFilter
    from ase.units import GPa

    from pes_core.oracles.calculator import OracleCalculator

    traj = OracleTrajectory()

    class _Recording(OracleCalculator):
        def calculate(self, atoms=None, properties=("energy",), system_changes=None):
            from ase.calculators.calculator import all_changes

            Calculator_calculate(self, atoms, properties, system_changes or all_changes)
            result = self.oracle.compute(self.atoms)
            self.n_calls += 1
            traj.results.append(result)
            self.results["energy"] = result.energy
            self.results["free_energy"] = result.energy
            self.results["forces"] = result.forces
            if result.stress is not None:
                s = np.asarray(result.stress) * GPa
                self.results["stress"] = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]

    from ase.calculators.calculator import Calculator

    Calculator_calculate = Calculator.calculate
    a = atoms.copy()
    a.pbc = True
    a.calc = _Recording(oracle)
    v0 = a.get_volume()
    filt = FrechetCellFilter(a, scalar_pressure=pressure_gpa * GPa)
    optimizer = opt.BFGS(filt, logfile=None)
    try:
        for _ in optimizer.irun(fmax=fmax, steps=int(steps)):
            v = a.get_volume()
            if not (v0 / max_volume_factor < v < v0 * max_volume_factor):
                traj.failed = f"volume went from {v0:.1f} to {v:.1f} A^3"
                break
    except Exception as err:  # an oracle failure ends the trajectory; earlier frames stay
        traj.failed = f"{type(err).__name__}: {err}"
    good = [k for k, r in enumerate(traj.results)
            if r is not None and r.energy is not None and np.isfinite(r.energy)]
    if good:
        kept = [k for k in good if k % max(1, int(every)) == 0]
        if good[-1] not in kept:
            kept.append(good[-1])
        traj.kept = kept
    return traj
