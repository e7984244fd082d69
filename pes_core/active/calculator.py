"""An ASE calculator that reports the extrapolation grade with every evaluation.

Above the break threshold it raises :class:`ExtrapolationError` (carrying the
configuration); above the select threshold it records the configuration as a
training candidate.

>>> from ase.build import bulk
>>> from pes_core.mtp import MTPPotential
>>> from pes_core.active import ActiveSet
>>> pot = MTPPotential.from_level(6, ["Si"])
>>> images = [bulk("Si", "diamond", a=a) for a in (5.2, 5.4, 5.6, 5.8, 6.0, 6.2)]
>>> calc = ActiveMTPCalculator(pot, ActiveSet.from_training(pot, images))
>>> atoms = bulk("Si", "diamond", a=5.5)
>>> atoms.calc = calc
>>> _ = atoms.get_potential_energy()
>>> calc.results["grade"] <= 1.0 + 1e-9, calc.n_evaluations
(True, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import GPa

from pes_core.active.active_set import ActiveSet
from pes_core.active.thresholds import GradeThresholds
from pes_core.mtp import MTPPotential, evaluate
from pes_core.mtp.neighbours import build_pairs

__all__ = ["FORCED_REASONS", "ActiveMTPCalculator", "Candidate", "ExtrapolationError", "UnphysicalError"]

#: candidates learned whatever maxvol says: the relaxation stopped there (break), the energy fell into a hole
#: (floor), or atoms crossed the shortest training distance (short); a hole inside the active set's hull has
#: grade <= 1, so maxvol would never pick it
FORCED_REASONS = ("break", "floor", "short")


@dataclass
class Candidate:
    """A configuration whose grade passed the select threshold.

    Parameters
    ----------
    atoms : ase.Atoms
        The configuration (no calculator).
    grade : float
        Its extrapolation grade when it was met.
    reason : str
        ``"select"`` (above the select threshold), ``"break"`` (above the
        break threshold), ``"floor"`` (the energy fell below the floor: an
        extrapolation hole, whatever the grade) or ``"short"`` (the first
        configuration with a pair closer than the shortest training distance).
    info : dict
        Context (relaxation step, ...).
    """

    atoms: Atoms
    grade: float
    reason: str = "select"
    info: dict = field(default_factory=dict)


class ExtrapolationError(RuntimeError):
    """The grade of a configuration exceeded the break threshold.

    Attributes
    ----------
    atoms : ase.Atoms
        The configuration (a copy without calculator).
    grade : float
        Its extrapolation grade.
    threshold : float
        The break threshold it exceeded.
    """

    def __init__(self, atoms: Atoms, grade: float, threshold: float) -> None:
        self.atoms = atoms
        self.grade = float(grade)
        self.threshold = float(threshold)
        super().__init__(
            f"extrapolation grade {grade:.3g} exceeds the break threshold {threshold:g} for "
            f"{atoms.get_chemical_formula()}; learn this configuration (oracle + retrain) before going on"
        )


class UnphysicalError(RuntimeError):
    """The configuration left the region where the potential means anything (collapsed atoms, energy hole)."""


class ActiveMTPCalculator(Calculator):
    """MTP energies, forces and stress plus the extrapolation grade (``results['grade']``).

    Parameters
    ----------
    potential : MTPPotential
        Trained (or initial) potential.
    active_set : ActiveSet
        Active set of ``potential``.
    thresholds : GradeThresholds, optional
        ``select`` records candidates, ``break_`` raises (MLIP defaults 2 and 10).
    max_candidates : int
        Keep at most this many candidates (the highest graded).
    min_distance : float or None
        Raise :class:`UnphysicalError` when two atoms come closer than this (Å).
        An MTP is a polynomial of the Chebyshev variable below its ``min_dist``
        and has no repulsive wall there: a relaxation can collapse atoms onto
        each other and reach -10^18 eV/atom (measured on Si8 with a poorly
        trained level-10 MTP).  ``None``: no check.
    energy_floor : float or None
        Raise :class:`UnphysicalError` when the energy per atom drops below this
        (eV/atom), e.g. well below the lowest energy of the training set.  The
        configuration is recorded as a ``"floor"`` candidate first.
    short_distance : float or None
        The first configuration with a pair closer than this (Å; the shortest
        distance of the training set, the potential's R_min) but not closer
        than ``min_distance`` is recorded as a ``"short"`` candidate.

    Notes
    -----
    ``results`` also holds ``atom_grades`` (per atom in neighbourhood mode,
    one value in configuration mode).  :attr:`n_evaluations` counts MTP
    evaluations, :attr:`max_grade` the largest grade met, :attr:`candidates`
    the recorded configurations.
    """

    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress")

    def __init__(self, potential: MTPPotential, active_set: ActiveSet,
                 thresholds: GradeThresholds | None = None, max_candidates: int = 200,
                 min_distance: float | None = None, energy_floor: float | None = None,
                 short_distance: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_distance = min_distance
        self.short_distance = short_distance
        self.short_recorded = False
        self.energy_floor = energy_floor
        self.potential = potential
        self.active_set = active_set
        self.thresholds = thresholds or GradeThresholds()
        self.max_candidates = int(max_candidates)
        self.candidates: list[Candidate] = []
        self.grades: list[float] = []
        self.n_evaluations = 0
        self.max_grade = 0.0

    def update_model(self, potential: MTPPotential, active_set: ActiveSet) -> None:
        """Use a retrained potential and its active set from now on (forgets cached results)."""
        self.potential = potential
        self.active_set = active_set
        self.reset()

    def take_candidates(self) -> list[Candidate]:
        """Return the recorded candidates and forget them."""
        out, self.candidates = self.candidates, []
        return out

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        """Fill ``self.results``; record or raise on extrapolation."""
        super().calculate(atoms, properties, system_changes)
        closest = self._check_distances()
        atom_grades = self.active_set.atom_grades(self.potential, self.atoms)
        grade = float(atom_grades.max()) if atom_grades.size else 0.0
        self.n_evaluations += 1
        self.grades.append(grade)
        self.max_grade = max(self.max_grade, grade)
        if closest is not None and not self.short_recorded and closest < (self.short_distance or 0.0):
            self.short_recorded = True
            self._record(Candidate(self._snapshot(), grade, "short",
                                   {"evaluation": self.n_evaluations, "distance": closest}))
        th = self.thresholds
        if grade > th.select:
            snap = self._snapshot()
            reason = "break" if grade > th.break_ else "select"
            self._record(Candidate(snap, grade, reason, {"evaluation": self.n_evaluations}))
            if reason == "break":
                self.results = {}
                raise ExtrapolationError(snap, grade, th.break_)
        res = evaluate(self.potential, self.atoms, forces=True)
        if self.energy_floor is not None and res.energy / len(self.atoms) < self.energy_floor:
            self._record(Candidate(self._snapshot(), grade, "floor", {"evaluation": self.n_evaluations}))
            self._unphysical(f"MTP energy {res.energy / len(self.atoms):.4g} eV/atom below the floor "
                             f"{self.energy_floor:.4f} eV/atom (far below every training energy: an extrapolation "
                             f"hole; grade {grade:.3g})")
        self.results = {"energy": res.energy, "free_energy": res.energy, "energies": res.energies,
                        "forces": res.forces, "grade": grade, "atom_grades": atom_grades}
        if res.stress is not None:
            s = res.stress * GPa
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])

    def _snapshot(self) -> Atoms:
        snap = self.atoms.copy()
        snap.calc = None
        return snap

    def _check_distances(self) -> float | None:
        """The closest distance when it is below the short distance (else None); raise on collapsed atoms.

        Collapsed atoms (closer than ``min_distance``) are caught before
        grading and never become learning candidates: the oracle energy of
        atoms at half a bond length lies far above any fitting window, so
        learning them costs an oracle call and a refit without removing the
        hole (measured: three learning rounds per generation spent that way
        on Si8).  The configuration where a relaxation first crosses the
        shortest training distance is still close to the data: its oracle
        energy is fittable, and learning it teaches the potential the
        repulsion it lacks.  On C8 with CHGNet, 6-60 % of a search's MTP
        relaxations collapsed this way and none was ever learned.
        """
        reach = max(self.min_distance or 0.0, 0.0 if self.short_recorded else (self.short_distance or 0.0))
        if not reach:
            return None
        pairs = build_pairs(self.atoms, float(reach))
        if not pairs.distances.size:
            return None
        k = int(np.argmin(pairs.distances))
        d = float(pairs.distances[k])
        if self.min_distance and d < self.min_distance:
            self._unphysical(f"atoms {pairs.i[k]} and {pairs.j[k]} are {d:.3f} Å apart, closer than "
                             f"{self.min_distance:.3f} Å (below the potential's R_min: no repulsive wall there)")
        return d

    def _unphysical(self, message: str) -> None:
        """Raise :class:`UnphysicalError` (see :meth:`_check_distances` for what is learned)."""
        self.results = {}
        raise UnphysicalError(message)

    def _record(self, cand: Candidate) -> None:
        self.candidates.append(cand)
        if len(self.candidates) > self.max_candidates:
            self.candidates.sort(key=lambda c: (c.reason not in FORCED_REASONS, -c.grade))
            del self.candidates[self.max_candidates:]
