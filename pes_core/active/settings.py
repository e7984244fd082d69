"""Settings of a crystal structure search whose MTP learns on the fly (spec sections ``mtp`` and ``active``).

One dataclass, one default per setting; the workflow layer mirrors it in its
spec model and passes it through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pes_core.active.thresholds import GradeThresholds
from pes_core.active.two_stage import TwoStageSettings

__all__ = ["ActiveSettings"]


@dataclass
class ActiveSettings:
    """MTP and active-learning settings of a CSP search (spec keys ``mtp`` and ``active``).

    Parameters
    ----------
    level : int
        MTP level (``mtp.level``).
    max_dist : float
        Cutoff radius in Å (``mtp.max_dist``).
    max_iter : int
        L-BFGS iterations of each (re)fit (``mtp.max_iter``; 0: linear fit only).
    seed : int
        Seed of the initial radial coefficients (``mtp.seed``).
    mode : str
        ``neighbourhood`` (default: one row per atom, MLIP's practice; a
        configuration is graded by its worst atom, so one unphysical
        neighbourhood in an otherwise ordinary cell is caught) or
        ``configuration`` (rows averaged over the atoms: a bad site can hide
        in the average) (``active.mode``).
    include_radial : bool
        Rows over all parameters (``active.include_radial``).
    select, break_ : float
        Grade thresholds (``active.select``, ``active.break``).
    pool_size : int
        Random structures of the pre-exploration (each also compressed/expanded).
    volume_factors : list of float
        Volume multiples of each pool structure.
    max_initial : int or None
        Cap on the pre-selected configurations (default: as many as maxvol keeps).
    max_rounds_per_generation : int
        Learning rounds per generation before relaxations go on without breaking.
    max_configurations_per_round : int
        Configurations sent to the oracle per round.
    energy_weighting : float or None
        ``delta`` (eV/atom) of the low-energy weights ``W = 1/(E - E_min + delta)^2``
        (squared in the loss); ``None``: equal weights.  Default 0.2: on the
        training set of a Si8 Tersoff search (260 configurations), refitting with
        it cut the error on the 17 relaxed minima within 0.3 eV/atom of diamond
        from 83 to 14 meV/atom (level 10, equal weights vs delta 0.2).
    check_top : int
        Oracle single points per generation for its best distinct offspring
        (``active.check_top``; 0 disables the check, see
        :func:`pes_core.active.decisions.decide_check`).
    check_window : float
        Only offspring whose MTP enthalpy is below the best so far plus this
        (eV/atom) are checked.
    check_tolerance : float
        A checked configuration whose MTP error exceeds this (eV/atom) is
        learned.
    train_window : float or None
        Energy screen of the fit (eV/atom): configurations above the lowest
        energy per atom plus this are left out of the fit (they stay in the
        active set), keeping at least ``min_train`` of the lowest.  Random
        pre-exploration structures span over 10 eV/atom, far above anything a
        search at moderate pressure relaxes into; fitted with equal weights
        they dominate the loss and leave 150-300 meV/atom errors where the
        ranking is decided.  Configurations chosen by active learning are
        fitted whatever their energy (see :func:`pes_core.active.screen_training`).
        ``None``: fit everything.
    min_train : int
        Configurations the fit keeps whatever the screen says.
    max_check_rounds : int
        Oracle-check rounds per generation: each round checks up to
        ``check_top`` unchecked offspring that still rank within
        ``check_window`` of the best oracle-checked enthalpy.
    prerelax_steps : int
        Pre-exploration: each pre-selected random structure is relaxed for
        this many BFGS steps *on the oracle* (:func:`pes_core.active.oracle_trajectory`)
        instead of getting a single point; 0 restores single points.  Unrelaxed
        random structures lie 1-2 eV/atom (up to 10+) above the ground state, so
        an MTP fitted on them alone never sees the low-energy basins and its
        relaxations end in spurious minima; the first oracle steps go down the
        steep part of the true surface into condensed, low-energy
        configurations, at one oracle call per step.
    prerelax_every : int
        Stride of the trajectory frames proposed for fitting (the last is always
        kept): consecutive BFGS frames are strongly correlated.
    check_steps : int
        The oracle check of a generation's best candidate is a short oracle
        relaxation of this many steps from the MTP minimum (0: a single
        point).  The candidate then takes the oracle-relaxed geometry and
        enthalpy (still an upper bound of the oracle's local minimum, but a
        much tighter one where the MTP minimum is displaced), so the search
        ranks and breeds from the oracle's basin; when the MTP error at the
        start exceeds ``check_tolerance``, the kept frames of the path are
        learned -- exactly the region between the MTP's and the oracle's minimum.
    floor_margin : float
        A relaxation whose MTP energy per atom drops this far (eV/atom) below
        the lowest energy of the training set is aborted as failed (an
        extrapolation hole, not a structure); see also the closest-pair guard of
        :class:`pes_core.active.ActiveRelaxer`.
    widen_checks : bool
        After each generation, compare the MTP's energy RMSE on the
        oracle-checked offspring (all within ``check_window`` of the best) with
        the energy difference the search must resolve (the gap between the best
        and the next distinct candidate, at least
        :data:`pes_core.active.decisions.RESOLUTION_MEV`); while the error is
        larger, the next generation checks more offspring (``check_top``
        doubled per widening step, up to ``widen_max_check_top``) and may learn
        for ``widen_extra_rounds`` more rounds per step; each generation whose
        error is within the resolution narrows back one step (see
        :func:`pes_core.active.decisions.decide_widening`).  ``False``: fixed
        ``check_top`` and ``max_rounds_per_generation``.
    widen_max_check_top : int
        Most offspring a widened generation checks per check round.
    widen_extra_rounds : int
        Learning rounds per generation added per widening step.
    preexploration : str
        ``fixed`` (default): every configuration maxvol picks from the pool is
        labelled at once.  ``adaptive``: the picks are labelled in batches of
        ``preexploration_batch``; after each batch the MTP is refitted and the
        rest of the pool graded against its active set, and pre-exploration
        stops when fewer than ``preexploration_cover`` of the remaining pool
        exceed the ``select`` grade (:func:`pes_core.active.preselect.preexploration_covered`);
        the oracle pre-relaxation shortens (halves) when the MTP before a batch
        already predicted the batch's relaxed energies within
        ``prerelax_tolerance`` (:func:`pes_core.active.preselect.adapt_prerelax_steps`).
    preexploration_batch : int
        Pool structures labelled per adaptive round.
    preexploration_cover : float
        Adaptive stop: share (0-1) of the remaining pool allowed above ``select``.
    prerelax_tolerance : float
        Adaptive pre-relaxation (eV/atom): RMS error of the MTP on the last frames
        of the newest oracle pre-relaxations below which the next batch gets
        half the steps.
    prior : str or None
        A universal potential (``chgnet``, ``sevenn``; any registered oracle of
        category ``ml`` that is not the oracle) that relaxes the random pool
        for free; maxvol then chooses among the prior-relaxed geometries and
        points along the prior trajectories, and the oracle labels them with
        single points (no oracle pre-relaxation).  ``None``: no prior.
    prior_steps : int
        BFGS steps (positions and cell) of each prior relaxation.
    prior_frames : int
        Points along each prior trajectory offered to maxvol besides the
        relaxed geometry (evenly spaced between the start and the end).
    two_stage : dict or None
        The two-stage scheme of Podryabinkin et al. (PRB 99, 064114, 2019):
        a second, accurate MTP trained on the low-energy configurations only
        relaxes again the offspring whose screened enthalpy is within a
        window of the best, each MTP with its own active set and learning
        (keys and defaults: :class:`pes_core.active.two_stage.TwoStageSettings`;
        ``{}`` takes the defaults).  ``None`` (default): one MTP.
    """

    level: int = 10
    max_dist: float = 5.0
    max_iter: int = 60
    seed: int = 0
    mode: str = "neighbourhood"
    include_radial: bool = False
    select: float = 2.0
    break_: float = 10.0
    pool_size: int = 30
    volume_factors: list[float] = field(default_factory=lambda: [0.85, 1.0, 1.2])
    max_initial: int | None = None
    max_rounds_per_generation: int = 5
    max_configurations_per_round: int = 8
    energy_weighting: float | None = 0.2
    check_top: int = 3
    check_window: float = 0.05
    check_tolerance: float = 0.01
    max_check_rounds: int = 3
    train_window: float | None = 2.0
    min_train: int = 12
    prerelax_steps: int = 10
    prerelax_every: int = 3
    check_steps: int = 10
    floor_margin: float = 1.0
    # widening (issue 19): checks and learning that grow while the MTP cannot resolve the search's energy gaps
    widen_checks: bool = True
    widen_max_check_top: int = 12
    widen_extra_rounds: int = 1
    preexploration: str = "fixed"
    preexploration_batch: int = 8
    preexploration_cover: float = 0.1
    prerelax_tolerance: float = 0.05
    prior: str | None = None
    prior_steps: int = 100
    prior_frames: int = 2
    two_stage: dict | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("neighbourhood", "configuration"):
            raise ValueError(f"active.mode must be 'neighbourhood' or 'configuration', got {self.mode!r}")
        if self.preexploration not in ("fixed", "adaptive"):
            raise ValueError(f"active.preexploration must be 'fixed' or 'adaptive', got {self.preexploration!r}")
        if not 0.0 <= float(self.preexploration_cover) <= 1.0:
            raise ValueError(f"active.preexploration_cover is a share of the pool from 0 to 1, "
                             f"got {self.preexploration_cover!r}")
        if self.two_stage is not None:
            if not isinstance(self.two_stage, dict):
                raise ValueError(f"active.two_stage must be a mapping of its settings ({{}} for the defaults) or "
                                 f"null, got {self.two_stage!r}")
            TwoStageSettings.from_dict(self.two_stage)  # its own checks, with their messages
        if self.prior is not None and (not isinstance(self.prior, str) or not self.prior):
            raise ValueError(f"active.prior must be the name of a universal potential (chgnet, sevenn) or null, "
                             f"got {self.prior!r}")

    @classmethod
    def from_config(cls, config: dict) -> ActiveSettings:
        """From a search config (``config['mtp']`` and ``config['active']``); unknown keys are errors."""
        mtp, active = dict(config.get("mtp") or {}), dict(config.get("active") or {})
        if "break" in active:
            active["break_"] = active.pop("break")
        kw = {**mtp, **active}
        known = set(cls.__dataclass_fields__)
        unknown = set(kw) - known
        if unknown:
            raise ValueError(f"unknown mtp/active settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**kw)

    def accurate(self) -> TwoStageSettings | None:
        """The settings of the accurate second MTP (``active.two_stage``), ``None`` when the scheme is off."""
        return None if self.two_stage is None else TwoStageSettings.from_dict(self.two_stage)

    def thresholds(self) -> GradeThresholds:
        """The grade thresholds (select, break) of these settings."""
        return GradeThresholds(select=self.select, break_=self.break_)
