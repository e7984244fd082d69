"""Relaxers: the pluggable local optimization of the search.

A relaxer is any callable ``relax(atoms, pressure_gpa) -> RelaxResult``.
:class:`OracleRelaxer` relaxes positions and cell directly on an oracle
(the "direct-oracle" mode); a learning-on-the-fly MTP relaxer has the same
signature and drops in.

>>> from ase.build import bulk
>>> from pes_core.oracles import get_oracle
>>> relax = OracleRelaxer(get_oracle("tersoff"))
>>> res = relax(bulk("Si", "diamond", a=5.5), pressure_gpa=0.0)
>>> round(res.enthalpy_per_atom, 3), res.converged
(-4.63, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
from ase import Atoms
from ase.filters import FrechetCellFilter
from ase.units import GPa

from pes_core.oracles.base import Oracle
from pes_core.oracles.calculator import OracleCalculator

__all__ = ["OracleRelaxer", "RelaxResult", "RelaxSettings", "Relaxer", "VerifySettings", "enthalpy_per_atom"]

log = logging.getLogger(__name__)


def enthalpy_per_atom(energy: float, volume: float, n_atoms: int, pressure_gpa: float) -> float:
    """(E + pV)/N in eV/atom from E in eV, V in Å^3 and p in GPa."""
    return (energy + pressure_gpa * GPa * volume) / n_atoms


@dataclass
class RelaxResult:
    """Outcome of one relaxation.

    Parameters
    ----------
    atoms : Atoms
        Final structure (positions in Å).
    energy : float
        Final total energy in eV (``nan`` when the relaxation failed).
    enthalpy_per_atom : float
        (E + pV)/N in eV/atom at the relaxation pressure.
    n_steps : int
        Optimizer steps taken.
    n_calls : int
        Calls to the expensive potential (oracle evaluations).
    converged : bool
        Whether forces and stress reached the tolerance.
    extra : dict
        JSON-able details (failure reason, MTP grades, retraining events, ...).
    """

    atoms: Atoms
    energy: float
    enthalpy_per_atom: float
    n_steps: int = 0
    n_calls: int = 0
    converged: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.energy = float(self.energy)
        self.enthalpy_per_atom = float(self.enthalpy_per_atom)

    @property
    def failed(self) -> bool:
        return bool(self.extra.get("failed", False)) or not np.isfinite(self.enthalpy_per_atom)


@runtime_checkable
class Relaxer(Protocol):
    """Anything that relaxes a structure at a pressure (GPa)."""

    def __call__(self, atoms: Atoms, pressure_gpa: float) -> RelaxResult: ...


_OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")


@dataclass
class RelaxSettings:
    """Local relaxations of a search (spec section ``relax``), the same in every mode.

    One default per setting: the workflow layer mirrors these fields in its
    spec model.  The relaxations run on the oracle (``mode: direct``) or on
    the MTP (``mode: mtp``) with the same optimizer and tolerances.

    Parameters
    ----------
    fmax : float
        Force tolerance in eV/Å (the cell filter applies it to the stress
        times volume too).
    steps : int
        Cap on optimizer steps per relaxation.
    optimizer : str
        ``"BFGS"``, ``"FIRE"`` or ``"LBFGS"`` (ASE).  BFGS takes about half
        the oracle calls of FIRE on random Si8 cells (measured).

    Examples
    --------
    >>> RelaxSettings()
    RelaxSettings(fmax=0.05, steps=300, optimizer='BFGS')
    >>> RelaxSettings(optimizer="fire").optimizer
    'FIRE'
    """

    fmax: float = 0.05
    steps: int = 300
    optimizer: str = "BFGS"

    def __post_init__(self) -> None:
        self.optimizer = str(self.optimizer).upper()
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"relax.optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if not (np.isfinite(self.fmax) and self.fmax > 0):
            raise ValueError(f"relax.fmax must be a positive number of eV/Å, got {self.fmax!r}")
        if int(self.steps) < 1:
            raise ValueError(f"relax.steps must be a positive integer, got {self.steps!r}")

    @classmethod
    def from_config(cls, config: dict) -> RelaxSettings:
        """From a search config (its ``relax`` section; workflow-only keys such as ``parallel`` ignored)."""
        relax = config.get("relax") or {}
        return cls(**{k: relax[k] for k in cls.__dataclass_fields__ if relax.get(k) is not None})


@dataclass
class VerifySettings:
    """Final oracle relaxations of a search's best candidates (spec section ``verify``).

    Parameters
    ----------
    within_mev : float
        Candidates within this many meV/atom of the best are verified.
    fmax : float or None
        Force tolerance (eV/Å) of these relaxations; ``None``: that of ``relax``.
        A tighter value than the search's settles soft modes such as
        graphite's interlayer spacing (CHGNet: 1-2 meV/atom between fmax 0.05
        and 0.01 eV/Å).
    steps : int or None
        Step cap; ``None``: that of ``relax``.

    Examples
    --------
    >>> VerifySettings(fmax=0.01).relax_settings(RelaxSettings(steps=200))
    RelaxSettings(fmax=0.01, steps=200, optimizer='BFGS')
    """

    within_mev: float = 100.0
    fmax: float | None = None
    steps: int | None = None

    @classmethod
    def from_config(cls, config: dict) -> VerifySettings:
        """From a search config (its ``verify`` section; workflow-only keys such as ``category`` ignored)."""
        verify = config.get("verify") or {}
        return cls(**{k: verify[k] for k in cls.__dataclass_fields__ if verify.get(k) is not None})

    def relax_settings(self, relax: RelaxSettings) -> RelaxSettings:
        """The relaxation settings of the verification: ``relax`` with ``fmax``/``steps`` overridden."""
        return RelaxSettings(fmax=relax.fmax if self.fmax is None else float(self.fmax),
                             steps=relax.steps if self.steps is None else int(self.steps),
                             optimizer=relax.optimizer)


@dataclass
class OracleRelaxer:
    """Relax positions and cell on an oracle with ASE (FrechetCellFilter).

    Parameters
    ----------
    oracle : Oracle
        Source of energy, forces and stress (e.g. ``get_oracle("tersoff")``).
    fmax : float
        Force tolerance in eV/Å (the cell filter applies it to the stress
        times volume as well).
    steps : int
        Cap on optimizer steps.
    optimizer : str
        ``"BFGS"`` (default; about half the oracle calls of FIRE on random Si8
        cells, measured), ``"FIRE"`` or ``"LBFGS"``.
    max_volume_factor : float
        Abort (failed) when the volume grows beyond this multiple of the
        starting volume: atoms flying apart on a short-ranged potential.
    min_volume_factor : float
        Abort (failed) when the volume shrinks below this multiple.
    blas_threads : int or None
        BLAS threads during the relaxation (restored afterwards). The cell
        filter solves many 3x3 systems; multi-threaded OpenBLAS made each
        100x slower on a busy 2-core machine (measured), hence 1 by default.
        ``None`` leaves BLAS alone.
    progress : callable, optional
        Called after every optimizer step (and once at the start, step 0)
        with ``(step, energy, fmax)``: the step count, the energy in eV and
        the largest force on an atom in eV/Å of the oracle's last result
        (read from it: no extra oracle call), e.g. a
        :class:`pes_core.progress.StepReporter` for first-principles
        relaxations that take hours.
    workdir : str or None
        Where file-based oracles (VASP, CP2K) make their job folders (one per
        oracle call); ``None``: the current directory. Fireworks pass a
        folder of their own (threads of one ``pes run`` share the cwd).
    """

    oracle: Oracle
    fmax: float = 0.05
    steps: int = 500
    optimizer: str = "BFGS"
    max_volume_factor: float = 5.0
    min_volume_factor: float = 0.2
    blas_threads: int | None = 1
    progress: Callable[[int, float, float], None] | None = field(default=None, repr=False, compare=False)
    workdir: str | None = None

    def __post_init__(self) -> None:
        if self.optimizer.upper() not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")

    def _optimizer_class(self):
        import ase.optimize as opt

        return getattr(opt, self.optimizer.upper())

    def __call__(self, atoms: Atoms, pressure_gpa: float = 0.0) -> RelaxResult:
        if self.blas_threads is None:
            return self._relax(atoms, pressure_gpa)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.blas_threads, user_api="blas"):
            return self._relax(atoms, pressure_gpa)

    def _relax(self, atoms: Atoms, pressure_gpa: float) -> RelaxResult:
        atoms = atoms.copy()
        atoms.pbc = True
        calc = OracleCalculator(self.oracle, workdir=self.workdir)
        atoms.calc = calc
        v0 = atoms.get_volume()
        filt = FrechetCellFilter(atoms, scalar_pressure=pressure_gpa * GPa)
        opt = self._optimizer_class()(filt, logfile=None)
        extra: dict[str, Any] = {"optimizer": self.optimizer.upper(), "oracle": self.oracle.name}
        converged = False
        n_steps = 0
        try:
            for converged in opt.irun(fmax=self.fmax, steps=self.steps):
                n_steps = opt.nsteps
                if self.progress is not None and "forces" in calc.results:
                    forces = np.asarray(calc.results["forces"])
                    self.progress(int(n_steps), float(calc.results.get("energy", np.nan)),
                                  float(np.sqrt((forces ** 2).sum(axis=1).max())) if len(forces) else 0.0)
                v = atoms.get_volume()
                if not (self.min_volume_factor * v0 < v < self.max_volume_factor * v0):
                    extra.update(failed=True, reason=f"volume went from {v0:.1f} to {v:.1f} Å^3")
                    converged = False
                    break
            energy = float(atoms.get_potential_energy())
        except Exception as err:  # OracleError, NaN checks, potentials that divide by zero...
            # a failed relaxation is a result (flag "failed"), not a crash of the search
            log.debug("relaxation failed: %s: %s", type(err).__name__, err)
            extra.update(failed=True, reason=f"{type(err).__name__}: {err}")
            energy = float("nan")
        final = atoms.copy()
        final.calc = None
        h = (enthalpy_per_atom(energy, final.get_volume(), len(final), pressure_gpa)
             if np.isfinite(energy) else float("nan"))
        if extra.get("failed"):
            h = float("nan")
        return RelaxResult(atoms=final, energy=energy, enthalpy_per_atom=h, n_steps=int(n_steps),
                           n_calls=int(calc.n_calls), converged=bool(converged), extra=extra)
