"""Active learning of moment tensor potentials (Podryabinkin & Shapeev 2017).

Modules
-------
``maxvol``       the maxvol algorithm on a square matrix (rank-1 updates)
``thresholds``   :class:`GradeThresholds` (select 2, break 10, swap 1.001)
``active_set``   :class:`ActiveSet`: rows per configuration or per atom, grades, selection, save/load
``mlip_state``   MLIP's ``#MVS_v1.1`` active-set section appended to an ``.mtp`` file
``calculator``   :class:`ActiveMTPCalculator` (grade with every evaluation, :class:`ExtrapolationError`)
``relax``        :class:`ActiveRelaxer`: relaxation with learning on the fly
``learning``     :class:`OracleLearner` (oracle + refit), low-energy weights of the two-stage scheme
``preselect``    pre-exploration: initial training set by the grade alone
``settings``     :class:`ActiveSettings`: MTP and learning settings of a search
``decisions``    the learning step of a search as data: what to learn, what to check, the fitted set

Example
-------
>>> from ase.build import bulk
>>> from pes_core.mtp import MTPPotential
>>> from pes_core.active import ActiveSet
>>> pot = MTPPotential.from_level(6, ["Si"])
>>> aset = ActiveSet.from_training(pot, [bulk("Si", a=a) for a in (5.2, 5.4, 5.6, 5.8, 6.0, 6.2)])
>>> aset.grade(pot, bulk("Si", a=4.0)) > 10
True
"""

from __future__ import annotations

from pes_core.active.active_set import ActiveSet, SelectionResult, active_rows
from pes_core.active.calculator import ActiveMTPCalculator, Candidate, ExtrapolationError, UnphysicalError
from pes_core.active.learning import (
    OracleLearner,
    OracleTrajectory,
    low_energy_weights,
    oracle_trajectory,
    screen_low_energy,
    screen_training,
)
from pes_core.active.maxvol import INIT_VALUE, SWAP_TOLERANCE, MaxvolReport, MaxvolState, row_grades
from pes_core.active.preselect import PreselectResult, preselect, random_pool
from pes_core.active.relax import ActiveRelaxer, choose_candidates
from pes_core.active.settings import ActiveSettings
from pes_core.active.thresholds import GradeThresholds

__all__ = [
    "INIT_VALUE",
    "SWAP_TOLERANCE",
    "ActiveMTPCalculator",
    "ActiveRelaxer",
    "ActiveSet",
    "ActiveSettings",
    "Candidate",
    "ExtrapolationError",
    "UnphysicalError",
    "GradeThresholds",
    "MaxvolReport",
    "MaxvolState",
    "OracleLearner",
    "OracleTrajectory",
    "PreselectResult",
    "SelectionResult",
    "active_rows",
    "choose_candidates",
    "low_energy_weights",
    "oracle_trajectory",
    "preselect",
    "random_pool",
    "row_grades",
    "screen_low_energy",
    "screen_training",
]
