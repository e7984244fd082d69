"""Relaxation on an MTP that learns on the fly.

:class:`ActiveRelaxer` relaxes positions and cell (ASE BFGS/FIRE/LBFGS with a
``FrechetCellFilter`` at a pressure in GPa) on the current MTP with the
extrapolation grade checked at every evaluation:

* grade above ``break_``: the relaxation stops; with a ``learn`` callback the
  configuration (plus the most informative ``select`` candidates, chosen by
  maxvol) is learned (oracle + refit), and the relaxation goes on from the same
  structure with the retrained potential and a fresh optimizer (the BFGS
  memory is reset: its first step is a scaled gradient-descent step);
  without a callback it returns with ``extra["break"] = True``;
* grade above ``select``: the configuration is a candidate; candidates of a
  finished relaxation are learned as well and the relaxation is continued, so
  the final structure is one the potential interpolates (or the cap on
  learning events is reached).

The ``learn`` callback is ``learn(candidates, potential, active_set) ->
(potential, active_set)``; :class:`~pes_core.active.learning.OracleLearner`
is the synchronous one (oracle call, refit, new active set).

>>> from pes_core.oracles import get_oracle  # doctest: +SKIP
>>> learner = OracleLearner(get_oracle("tersoff"), records)  # doctest: +SKIP
>>> relax = ActiveRelaxer(pot, aset, learn=learner)  # doctest: +SKIP
>>> res = relax(atoms, pressure_gpa=0.0)  # doctest: +SKIP
>>> res.extra["n_oracle_calls"], res.extra["learning_events"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
from ase import Atoms
from ase.filters import FrechetCellFilter
from ase.units import GPa

from pes_core.active.active_set import ActiveSet
from pes_core.active.calculator import (
    FORCED_REASONS,
    ActiveMTPCalculator,
    Candidate,
    ExtrapolationError,
    UnphysicalError,
)
from pes_core.active.thresholds import GradeThresholds
from pes_core.mtp import MTPPotential
from pes_core.search.relax import RelaxResult, enthalpy_per_atom

__all__ = ["ActiveRelaxer", "LearnCallback", "choose_candidates"]

log = logging.getLogger(__name__)

_OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")


class LearnCallback(Protocol):
    """Learn configurations: compute them with the oracle, refit, return the new model."""

    def __call__(self, candidates: list[Candidate], potential: MTPPotential,
                 active_set: ActiveSet) -> tuple[MTPPotential, ActiveSet]: ...


def choose_candidates(candidates: list[Candidate], potential: MTPPotential, active_set: ActiveSet,
                      max_configurations: int, tolerance: float | None = None) -> list[Candidate]:
    """The candidates maxvol would add to ``active_set`` (at most ``max_configurations``).

    The last ``break`` candidate is always kept (the relaxation cannot go on
    without it), and so are ``floor`` and ``short`` ones (holes and
    too-short pairs that the grade does not flag; see
    :data:`~pes_core.active.calculator.FORCED_REASONS`), up to
    ``max_configurations``; the rest are chosen by maxvol among themselves
    against the set.
    """
    if not candidates:
        return []
    forced = [c for c in candidates if c.reason == "break"][-1:]
    forced += [c for c in candidates if c.reason in FORCED_REASONS and c.reason != "break"]
    forced = forced[:max(1, max_configurations)]
    taken = {id(c) for c in forced}
    rest = [c for c in candidates if id(c) not in taken and c.reason in ("break", "select")]
    trial = active_set.copy()
    kw = {} if tolerance is None else {"tolerance": tolerance}
    if forced:
        trial.select(potential, [c.atoms for c in forced], **kw)
    room = max(0, max_configurations - len(forced))
    chosen = []
    if rest and room:
        res = trial.select(potential, [c.atoms for c in rest], update=False, max_configurations=room, **kw)
        chosen = [rest[k] for k in res.selected]
    return forced + chosen


@dataclass
class ActiveRelaxer:
    """Relax on an MTP with grade checks and learning on the fly (a search relaxer).

    Parameters
    ----------
    potential : MTPPotential
        Current potential (replaced after every learning event).
    active_set : ActiveSet
        Its active set.
    learn : callable, optional
        ``learn(candidates, potential, active_set) -> (potential, active_set)``.
        ``None``: stop at a break and report it (asynchronous learning); the
        break and select candidates are appended to :attr:`collected`.
    thresholds : GradeThresholds, optional
        Select/break thresholds (MLIP's 2 and 10).
    fmax : float
        Force tolerance in eV/Å (and stress x volume through the cell filter).
    steps : int
        Cap on optimizer steps over the whole relaxation.
    optimizer : str
        ``"BFGS"``, ``"FIRE"`` or ``"LBFGS"``.
    max_learning_events : int
        Learning events per relaxation; afterwards the relaxation goes on
        without breaking (the grade is still reported).
    max_configurations_per_event : int
        Configurations learned per event (the break configuration plus maxvol choices).
    learn_at_end : bool
        Learn the select candidates of a finished relaxation and continue it.
    max_volume_factor, min_volume_factor : float
        Abort (failed) when the volume leaves this range of multiples of the start.
    min_distance_factor : float
        Abort (failed) when two atoms come closer than this multiple of the
        potential's ``min_dist`` (R_min, the inner edge of its radial basis:
        :func:`~pes_core.mtp.fit_mtp` and MLIP set it from the shortest
        distance of the training set); 0 disables.  Below R_min the radial
        basis is an extrapolated polynomial and the MTP has no repulsive wall.
        A potential whose R_min was not set from data (a template's 2.0 Å)
        should use 0 or a smaller factor.
    energy_floor : float or None
        Abort (failed) when the MTP energy per atom drops below this (eV/atom).
    blas_threads : int or None
        BLAS threads while relaxing (1 is fastest on a busy machine).
    """

    potential: MTPPotential
    active_set: ActiveSet
    learn: Callable[..., tuple[MTPPotential, ActiveSet]] | None = None
    thresholds: GradeThresholds = field(default_factory=GradeThresholds)
    fmax: float = 0.05
    steps: int = 500
    optimizer: str = "BFGS"
    max_learning_events: int = 10
    max_configurations_per_event: int = 4
    learn_at_end: bool = True
    max_volume_factor: float = 5.0
    min_volume_factor: float = 0.2
    min_distance_factor: float = 0.9
    energy_floor: float | None = None
    blas_threads: int | None = 1
    n_evaluations: int = field(default=0, init=False)
    collected: list[Candidate] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.optimizer.upper() not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")

    def __call__(self, atoms: Atoms, pressure_gpa: float = 0.0) -> RelaxResult:
        if self.blas_threads is None:
            return self._relax(atoms, pressure_gpa)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.blas_threads, user_api="blas"):
            return self._relax(atoms, pressure_gpa)

    relax = __call__

    def _optimizer(self, filt):
        import ase.optimize as opt

        return getattr(opt, self.optimizer.upper())(filt, logfile=None)

    def _relax(self, atoms: Atoms, pressure_gpa: float) -> RelaxResult:
        atoms = atoms.copy()
        atoms.pbc = True
        v0 = atoms.get_volume()
        learning = self.learn is not None
        calc = ActiveMTPCalculator(self.potential, self.active_set, self.thresholds,
                                   min_distance=self.min_distance_factor * self.potential.min_dist or None,
                                   energy_floor=self.energy_floor,
                                   short_distance=self.potential.min_dist if self.min_distance_factor else None)
        events: list[dict[str, Any]] = []
        extra: dict[str, Any] = {"optimizer": self.optimizer.upper(), "break": False}
        n_steps, converged, failed_reason = 0, False, None
        while True:
            atoms.calc = calc
            filt = FrechetCellFilter(atoms, scalar_pressure=pressure_gpa * GPa)
            opt = self._optimizer(filt)  # a fresh optimizer: BFGS memory reset
            broke = None
            try:
                for converged in opt.irun(fmax=self.fmax, steps=max(0, self.steps - n_steps)):
                    v = atoms.get_volume()
                    if not (self.min_volume_factor * v0 < v < self.max_volume_factor * v0):
                        failed_reason = f"volume went from {v0:.1f} to {v:.1f} Å^3"
                        converged = False
                        break
            except ExtrapolationError as err:
                broke, converged = err, False
            except Exception as err:  # NaN forces, singular cells, collapsed atoms...: a failed result, not a crash
                failed_reason = f"{type(err).__name__}: {err}"
                converged = False
                extra["unphysical"] = isinstance(err, UnphysicalError)
            n_steps += opt.nsteps
            if failed_reason:
                if not learning:  # the select candidates met on the way are still worth learning
                    self.collected.extend(calc.take_candidates())
                break
            pending = calc.take_candidates()
            if not learning:  # asynchronous learning: hand the candidates to the caller
                self.collected.extend(pending)
                extra["break"] = broke is not None
                break
            if not (broke is not None or (converged and pending and self.learn_at_end)):
                break
            if len(events) >= self.max_learning_events:
                # learning budget spent: finish without breaking (grades are still recorded)
                extra["learning_capped"] = True
                calc.thresholds = GradeThresholds(self.thresholds.select, float("inf"),
                                                  self.thresholds.swap_tolerance)
                if broke is None:
                    break
                continue
            chosen = choose_candidates(pending, calc.potential, calc.active_set,
                                       self.max_configurations_per_event, self.thresholds.swap_tolerance)
            if not chosen:
                break
            pot, aset = self.learn(chosen, calc.potential, calc.active_set)
            self.potential, self.active_set = pot, aset
            calc.update_model(pot, aset)
            calc.min_distance = self.min_distance_factor * pot.min_dist or None
            calc.short_distance = pot.min_dist if self.min_distance_factor else None
            events.append({"step": n_steps, "reason": "break" if broke is not None else "select",
                           "grades": [float(c.grade) for c in chosen], "n_configurations": len(chosen)})
            log.info("learning event %d at step %d: %d configurations, grades %s", len(events), n_steps,
                     len(chosen), [round(c.grade, 2) for c in chosen])
            if n_steps >= self.steps:
                break
        self.n_evaluations += calc.n_evaluations
        energy, grade = float("nan"), float("nan")
        if not failed_reason and not extra["break"]:
            try:
                atoms.calc = calc
                calc.thresholds = GradeThresholds(self.thresholds.select, float("inf"), self.thresholds.swap_tolerance)
                energy = float(atoms.get_potential_energy())
                grade = float(calc.results["grade"])
                calc.take_candidates()
            except Exception as err:
                failed_reason = f"{type(err).__name__}: {err}"
        if failed_reason:
            extra.update(failed=True, reason=failed_reason)
        if extra["break"]:
            extra.update(failed=True, reason=f"extrapolation grade {broke.grade:.3g} above {self.thresholds.break_:g}")
            extra["break_grade"] = float(broke.grade)
        final = atoms.copy()
        final.calc = None
        h = enthalpy_per_atom(energy, final.get_volume(), len(final), pressure_gpa) if np.isfinite(energy) else float("nan")
        extra.update(n_mtp_evaluations=int(calc.n_evaluations), max_grade=float(calc.max_grade),
                     final_grade=grade, learning_events=events, n_learning_events=len(events),
                     n_learned=int(sum(e["n_configurations"] for e in events)))
        extra["n_oracle_calls"] = extra["n_learned"]  # one oracle call per learned configuration
        return RelaxResult(atoms=final, energy=energy, enthalpy_per_atom=h, n_steps=int(n_steps),
                           n_calls=int(calc.n_evaluations), converged=bool(converged), extra=extra)
