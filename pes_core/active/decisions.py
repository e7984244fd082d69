"""What a learning-on-the-fly search does after a generation, as plain data.

The science of the CSP loop's learning step, free of any database or
workflow engine: the workflow layer gathers the inputs (candidates, what the
oracle computed already), calls these functions and turns the returned
dataclasses into work (oracle fireworks, retraining, the generation again).

``decide_learning``   which break/select candidates go to the oracle, which relaxations are redone
``pick_for_check``    which offspring could become the new best and need an oracle check
``decide_check``      apply the oracle checks to the offspring; what is still to check, what to learn
``choose_training``   the fitted subset of a training set and its weights
``decide_widening``   whether the next generation checks (and learns) more: the MTP's in-window error
                      against the energy differences the search must resolve

Every function here is deterministic in its inputs (same seeds, same search).

>>> from pes_core.active.decisions import LearningDecision
>>> LearningDecision(generation=3, round=1).learns
False
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from pes_core.active.calculator import FORCED_REASONS, Candidate
from pes_core.active.learning import low_energy_weights, screen_training
from pes_core.active.settings import ActiveSettings
from pes_core.search.geometry import spacegroup_label
from pes_core.search.individual import (
    Individual,
    atoms_to_dict,
    canonical_atoms,
    structure_hash,
)
from pes_core.search.relax import enthalpy_per_atom

__all__ = ["RESOLUTION_MEV", "CheckDecision", "CheckItem", "LearnItem", "LearningDecision", "OracleCheck",
           "OracleFrame", "TrainingChoice", "WideningDecision", "choose_training", "decide_check",
           "decide_learning", "decide_widening", "in_window_rmse_mev", "pick_for_check", "redo_ids",
           "required_resolution", "widened_settings", "widening_steps"]

#: offspring within this enthalpy (eV/atom) and with the same space group are one structure in the check
CHECK_DEDUP_EV = 0.002


# ---------------------------------------------------------------------------------------------- learning
@dataclass
class LearnItem:
    """A configuration that goes to the oracle and into the next fit.

    Parameters
    ----------
    atoms : Atoms
        The configuration.
    grade : float
        Its extrapolation grade.
    reason : str
        ``select``, ``break``, ``floor`` or ``short`` (see :class:`~pes_core.active.Candidate`).
    key : str
        Its identity for the oracle (the workflow's content hash of the calculation).
    """

    atoms: Atoms
    grade: float
    reason: str
    key: str


@dataclass
class LearningDecision:
    """What to learn after a generation (nothing when ``learn`` is empty).

    Parameters
    ----------
    generation : int
        The generation.
    round : int
        The learning round this decision opens (1 for the first).
    learn : list of LearnItem
        Configurations for the oracle, in priority order.
    redo : list of str
        Individual ids whose relaxation is redone on the retrained model (broken
        or unphysical relaxations).
    """

    generation: int
    round: int
    learn: list[LearnItem] = field(default_factory=list)
    redo: list[str] = field(default_factory=list)

    @property
    def learns(self) -> bool:
        """Whether the model learns (oracle, retraining, the generation again)."""
        return bool(self.learn)

    def message(self) -> str:
        """One line for the log."""
        return (f"learning round {self.round}: {len(self.learn)} configurations to the oracle "
                f"({', '.join(f'{c.reason} {c.grade:.3g}' for c in self.learn)}); {len(self.redo)} relaxations "
                "will be redone")


def redo_ids(relaxed: Sequence[Individual]) -> list[str]:
    """Ids of the broken relaxations and the unphysical ones (energy hole, atoms pushed together)."""
    return [ind.id for ind in relaxed
            if (ind.relax_info or {}).get("break") or (ind.relax_info or {}).get("unphysical")]


def decide_learning(candidates: Sequence[Candidate], relaxed: Sequence[Individual], *, generation: int,
                    round: int, capped: bool, choose: Callable[[list[Candidate]], list[Candidate]],
                    key_of: Callable[[Atoms], str], is_known: Callable[[str], bool],
                    max_configurations: int) -> LearningDecision:
    """The learning step after a generation's relaxations.

    Parameters
    ----------
    candidates : sequence of Candidate
        Break/select (and forced) candidates met by the generation's relaxations.
    relaxed : sequence of Individual
        The generation's relaxed offspring.
    generation, round : int
        The generation and its learning rounds so far.
    capped : bool
        The learning budget of the generation is spent: nothing is learned.
    choose : callable
        Maxvol over the candidates (:func:`pes_core.active.choose_candidates`
        on the current potential and active set).
    key_of : callable
        Identity of a configuration for the oracle (the content hash).
    is_known : callable
        Whether the oracle computed that configuration already.
    max_configurations : int
        Cap on the configurations of one round.

    Returns
    -------
    LearningDecision
        Empty ``learn`` when nothing new is to be learned.  Priority: breaks,
        energy holes and short pairs first (:data:`FORCED_REASONS`), then the
        highest grades.
    """
    decision = LearningDecision(generation=generation, round=round + 1, redo=redo_ids(relaxed))
    if capped or not candidates:
        return decision
    chosen = list(choose(list(candidates)))
    priority = {reason: k for k, reason in enumerate(FORCED_REASONS)}
    chosen.sort(key=lambda c: (priority.get(c.reason, len(priority)), -c.grade))
    seen: set[str] = set()
    for cand in chosen:
        key = key_of(cand.atoms)
        if key in seen or is_known(key):
            continue
        seen.add(key)
        decision.learn.append(LearnItem(cand.atoms, float(cand.grade), cand.reason, key))
        if len(decision.learn) >= max_configurations:
            break
    return decision


# ---------------------------------------------------------------------------------------------- oracle check
def _mtp_enthalpy(ind: Individual) -> float:
    return float((ind.relax_info or {}).get("mtp_enthalpy_per_atom", ind.enthalpy_per_atom))


def pick_for_check(relaxed: Sequence[Individual], best_so_far: float | None, window: float) -> list[list[Individual]]:
    """Offspring that could become the new best, one group per distinct structure, lowest first.

    An offspring is a candidate when its MTP enthalpy is below the reference
    plus ``window`` (eV/atom); the reference is the best oracle-checked
    enthalpy so far (``best_so_far``), lowered by offspring of this generation
    checked already.  Offspring with the same enthalpy (within
    :data:`CHECK_DEDUP_EV`) and space group are one structure: the first of a
    group is checked, the others take its oracle value.  Failed offspring and
    non-finite enthalpies never rank.
    """
    usable = [ind for ind in relaxed
              if not ind.flags.get("failed") and ind.enthalpy_per_atom is not None
              and np.isfinite(ind.enthalpy_per_atom)]
    usable.sort(key=lambda i: (_mtp_enthalpy(i), i.id))
    checked = [float(i.relax_info["oracle_check"]["oracle_enthalpy_per_atom"])
               for i in usable if "oracle_check" in (i.relax_info or {})]
    refs = checked + ([float(best_so_far)] if best_so_far is not None else [])
    reference = min(refs) if refs else None
    groups: dict[tuple, list[Individual]] = {}
    picked: list[list[Individual]] = []
    for ind in usable:
        h_mtp = _mtp_enthalpy(ind)
        if reference is not None and h_mtp > reference + window:
            break
        key = (round(h_mtp / CHECK_DEDUP_EV), ind.spacegroup)
        if key in groups:
            groups[key].append(ind)
            continue
        groups[key] = [ind]
        picked.append(groups[key])
    return picked


@dataclass
class OracleFrame:
    """One stored frame of an oracle check relaxation.

    Parameters
    ----------
    energy : float
        Total energy in eV.
    volume : float
        Cell volume in Å^3.
    atoms : Atoms
        The frame's structure.
    key : str
        Its identity (content hash).
    kept : bool
        Whether the frame is proposed for fitting.
    """

    energy: float
    volume: float
    atoms: Atoms
    key: str
    kept: bool = False


@dataclass
class OracleCheck:
    """What the oracle knows of one checked offspring.

    Parameters
    ----------
    key : str
        Identity of the offspring's calculation (content hash).
    energy : float or None
        Oracle energy (eV) at the MTP minimum; ``None``: not computed (yet).
    frames : list of OracleFrame
        The oracle relaxation from there, in step order (empty for a single point).
    requested : bool
        The check was asked before (a check that failed is not asked again).
    refused : str or None
        Why the oracle refused the checked configuration (an implausible
        result, overlapping atoms, a failed calculation); ``None``: not refused.
    """

    key: str
    energy: float | None = None
    frames: list[OracleFrame] = field(default_factory=list)
    requested: bool = False
    refused: str | None = None


@dataclass
class CheckItem:
    """An offspring that goes to the oracle for its check."""

    individual: Individual
    key: str

    @property
    def extra(self) -> dict[str, Any]:
        return {"reason": "check", "individual": self.individual.id,
                "mtp_enthalpy_per_atom": float(self.individual.enthalpy_per_atom)}


@dataclass
class CheckDecision:
    """Outcome of the oracle check of a generation's best offspring.

    Parameters
    ----------
    generation : int
        The generation.
    check : list of CheckItem
        Offspring still to check (oracle work, then the generation again).
    learn : list of str
        Configuration keys whose MTP error exceeds the tolerance (learned:
        retraining, then the generation again).
    round : int
        The check round the oracle work opens (when ``check`` is not empty).
    lines : list of str
        One log line per checked offspring.
    capped : int
        Offspring left unchecked because the check rounds are spent.
    """

    generation: int
    check: list[CheckItem] = field(default_factory=list)
    learn: list[str] = field(default_factory=list)
    round: int = 0
    lines: list[str] = field(default_factory=list)
    capped: int = 0

    @property
    def done(self) -> bool:
        """Nothing left to do: the generation may be ranked."""
        return not self.check and not self.learn


def _apply_check(ind: Individual, group: list[Individual], data: OracleCheck, pressure_gpa: float,
                 settings: ActiveSettings) -> tuple[float, float, float, list[OracleFrame]]:
    """Rank ``group`` by the oracle; return (H_MTP, H_oracle at the MTP minimum, error, frames)."""
    h_mtp = _mtp_enthalpy(ind)
    n = len(ind.atoms)
    h_start = float(enthalpy_per_atom(float(data.energy), float(ind.atoms.get_volume()), n, pressure_gpa))
    err = float(h_mtp - h_start)  # the MTP error at its own minimum
    h_oracle, relaxed_atoms = h_start, None
    e_oracle = float(data.energy) / n  # eV/atom at the geometry that ranks
    frames = [f for f in data.frames if f.energy is not None] if settings.check_steps > 0 else []
    for f in frames:
        hf = float(enthalpy_per_atom(float(f.energy), float(f.volume), len(f.atoms), pressure_gpa))
        if hf < h_oracle - 1e-9:
            h_oracle, relaxed_atoms, e_oracle = hf, f.atoms, float(f.energy) / len(f.atoms)
    for member in group:
        member.relax_info["mtp_enthalpy_per_atom"] = _mtp_enthalpy(member)
        member.relax_info["oracle_check"] = {
            "configuration": data.key, "oracle_enthalpy_per_atom": h_oracle, "error": err,
            "learned": bool(abs(err) > settings.check_tolerance), "checked_as": ind.id,
            "oracle_start_enthalpy_per_atom": h_start, "oracle_steps": max(0, len(frames) - 1)}
        member.enthalpy_per_atom = float(h_oracle)
        member.energy = e_oracle * len(member.atoms)
    if relaxed_atoms is not None and len(relaxed_atoms) == n:
        # Lamarckian: the checked individual continues (ranking, breeding) from the oracle-relaxed
        # geometry, so the search descends into the oracle's basin rather than the MTP's
        relaxed_atoms = canonical_atoms(relaxed_atoms)
        ind.structure = atoms_to_dict(relaxed_atoms)
        ind.hash = structure_hash(relaxed_atoms)
        ind.volume = float(relaxed_atoms.get_volume())
        ind.spacegroup = spacegroup_label(relaxed_atoms)
    return h_mtp, h_start, err, frames


def decide_check(picked: Sequence[list[Individual]], oracle: dict[str, OracleCheck], *, generation: int,
                 check_round: int, learned: set[str], pressure_gpa: float,
                 settings: ActiveSettings) -> CheckDecision:
    """Apply the oracle checks that exist to the offspring; say what to check and what to learn.

    An offspring whose check the oracle refused (``OracleCheck.refused``) is
    flagged ``failed`` with its duplicates (``relax_info['oracle_refused']``):
    it never ranks, breeds or stops the search on its MTP enthalpy.  One left
    unchecked because ``max_check_rounds`` are spent keeps its MTP enthalpy
    but is marked ``relax_info['oracle_unchecked']`` with its duplicates:
    :meth:`pes_core.search.SearchState.stop_reason` does not let it reach
    ``stop_enthalpy`` (it still counts as progress for the stall counter).

    Each checked offspring (and its duplicates) is ranked by its lowest
    oracle enthalpy ``(E + pV)/N`` along the oracle path from its MTP minimum
    (an upper bound of the oracle's local minimum, so an MTP artefact never
    looks better than it is), keeps the MTP value in
    ``relax_info['mtp_enthalpy_per_atom']`` and, when that path went lower,
    takes the oracle-relaxed geometry.  **The individuals in** ``picked``
    **are updated in place.**

    Parameters
    ----------
    picked : sequence of list of Individual
        Groups from :func:`pick_for_check`.
    oracle : dict
        :class:`OracleCheck` of each group's first individual, by individual id.
    generation : int
        The generation.
    check_round : int
        Check rounds the generation had so far.
    learned : set of str
        Configuration keys learned already (never learned twice).
    pressure_gpa : float
        Pressure of the search.
    settings : ActiveSettings
        ``check_top``, ``check_steps``, ``check_tolerance``, ``max_check_rounds``.

    Returns
    -------
    CheckDecision
        Offspring to check (at most ``check_top``, none asked before, none
        after ``max_check_rounds``), else configurations to learn: the
        checked configuration and the kept frames of its oracle path where the
        MTP error at its minimum exceeds ``check_tolerance``.
    """
    decision = CheckDecision(generation=generation, round=check_round + 1)
    missing: list[CheckItem] = []
    for group in picked:
        ind, data = group[0], oracle[group[0].id]
        if data.energy is None and data.refused:
            # the oracle refused the MTP minimum (BKS SiO2: Si-O pairs run into its core): an unphysical
            # structure the MTP ranked low; it must neither rank nor stop the search on its MTP enthalpy
            for member in group:
                member.flags["failed"] = True
                member.relax_info["oracle_refused"] = {"key": data.key, "reason": data.refused[:300]}
            decision.lines.append(f"{ind.id} MTP {_mtp_enthalpy(ind):.4f} refused by the oracle "
                                  f"({data.refused[:120]}): dropped")
            continue
        if data.energy is None:
            if not data.requested and len(missing) < settings.check_top:
                missing.append(CheckItem(ind, data.key))
            continue
        h_mtp, h_start, err, frames = _apply_check(ind, group, data, pressure_gpa, settings)
        decision.lines.append(
            f"{ind.id} MTP {h_mtp:.4f} oracle {h_start:.4f} ({1e3 * err:+.1f} meV/atom)"
            + (f" -> {ind.enthalpy_per_atom:.4f} after {len(frames) - 1} oracle steps" if frames else ""))
        if abs(err) > settings.check_tolerance:
            keys = [data.key] + [f.key for f in frames if f.kept]
            decision.learn += [k for k in dict.fromkeys(keys) if k not in learned and k not in decision.learn]
    if missing and check_round >= settings.max_check_rounds:
        # the check rounds are spent: these keep their MTP enthalpy to rank and breed, but are marked, so an MTP
        # artefact among them cannot reach stop_enthalpy unverified (pes_core.search.engine.trusted)
        groups = {g[0].id: g for g in picked}
        for item in missing:
            for member in groups.get(item.individual.id, [item.individual]):
                member.relax_info["oracle_unchecked"] = True
        decision.capped, missing = len(missing), []
    decision.check = missing
    if missing:
        decision.learn = []  # the generation runs again after the checks; learning waits for them
    return decision


# ---------------------------------------------------------------------------------------------- training set
@dataclass
class TrainingChoice:
    """The fitted part of a training set.

    Parameters
    ----------
    ids : list of str
        The training set: every configuration given (its key), fitted or not
        (all of them define the active set).
    fit : list of int
        Indices (into ``ids``) of the configurations fitted.
    weights : list of float or None
        Their loss weights (``None``: equal weights).
    window : list of int
        Indices of the fitted configurations within ``train_window`` of the
        lowest energy per atom (the accuracy that ranks structures).
    """

    ids: list[str]
    fit: list[int]
    weights: list[float] | None
    window: list[int]


def choose_training(keys: Sequence[str], energies_per_atom: Sequence[float | None], learned: Sequence[bool],
                    settings: ActiveSettings) -> TrainingChoice:
    """Which configurations are fitted, with which weights.

    Configurations chosen by active learning (``learned``) are fitted whatever
    their energy; the others are screened by ``train_window`` (keeping at
    least ``min_train``) (:func:`pes_core.active.screen_training`), then all get
    the low-energy weights of ``energy_weighting``
    (:func:`pes_core.active.low_energy_weights`).

    Parameters
    ----------
    keys : sequence of str
        Identity of each configuration (content hash).
    energies_per_atom : sequence of float or None
        Oracle energy per atom (eV/atom) of each configuration (``None``: none).
    learned : sequence of bool
        One flag per configuration.
    settings : ActiveSettings
        ``train_window``, ``min_train``, ``energy_weighting``.

    >>> st = ActiveSettings(train_window=2.0, min_train=1, energy_weighting=None)
    >>> choose_training("abcd", [-5.0, -4.0, 9.0, 8.0], [False, False, False, True], st).fit
    [0, 1, 3]
    """
    if not len(keys) == len(learned) == len(energies_per_atom):
        raise ValueError(f"{len(keys)} keys, {len(energies_per_atom)} energies and {len(learned)} learned flags: "
                         "one each per configuration")
    stand_in = [_Energy(k, e) for k, e in enumerate(energies_per_atom)]
    fit = [r.index for r in screen_training(stand_in, settings.train_window, settings.min_train, keep=list(learned))]
    e_fit = [float(energies_per_atom[k]) for k in fit]
    weights = None
    if settings.energy_weighting is not None and fit:
        weights = [float(w) for w in low_energy_weights(e_fit, settings.energy_weighting)]
    window: list[int] = []
    if fit:
        e_low = min(e_fit) + (settings.train_window or math.inf)
        window = [k for k, e in zip(fit, e_fit) if e <= e_low]
    return TrainingChoice(ids=list(keys), fit=fit, weights=weights, window=window)


@dataclass
class _Energy:
    """A training record reduced to its energy (what :func:`screen_training` reads): one atom, E in eV/atom."""

    index: int
    energy: float | None
    n_atoms: int = 1


# ---------------------------------------------------------------------------------------------- widening
#: energy resolution (meV/atom) a search must reach at least: smaller energy differences are within the
#: accuracy expected of a relaxation with fmax 0.05 eV/Å and are not asked of the MTP
RESOLUTION_MEV = 5.0


def required_resolution(enthalpies_per_atom: Sequence[float],
                        resolution_mev: float = RESOLUTION_MEV) -> tuple[float | None, float]:
    """The energy difference the search must resolve: ``(gap, required)`` in meV/atom.

    ``gap`` is the difference between the lowest and the second-lowest of
    the enthalpies (eV/atom) of the *distinct* candidates (None with fewer
    than two); ``required`` is the gap, but at least ``resolution_mev``: an
    MTP whose error exceeds it cannot tell the best from its nearest rival.

    >>> gap, required = required_resolution([-4.30, -4.28, -4.0])
    >>> round(gap, 6), round(required, 6)
    (20.0, 20.0)
    >>> required_resolution([-4.30, -4.299])[1], required_resolution([-4.3])
    (5.0, (None, 5.0))
    """
    hs = sorted(float(h) for h in enthalpies_per_atom if h is not None and math.isfinite(float(h)))
    gap = 1000.0 * (hs[1] - hs[0]) if len(hs) > 1 else None
    required = max(float(resolution_mev), gap) if gap is not None else float(resolution_mev)
    return gap, required


def in_window_rmse_mev(errors: Sequence[float]) -> float | None:
    """Root mean square of MTP errors given in eV/atom, in meV/atom (None when there are none).

    >>> round(in_window_rmse_mev([0.003, -0.004]), 6), in_window_rmse_mev([])
    (3.535534, None)
    """
    e = [float(x) for x in errors if x is not None and math.isfinite(float(x))]
    return 1000.0 * math.sqrt(sum(x * x for x in e) / len(e)) if e else None


def widening_steps(settings: ActiveSettings) -> int:
    """Most widening steps: doublings of ``check_top`` until ``widen_max_check_top`` (0 when off).

    >>> widening_steps(ActiveSettings(check_top=3, widen_max_check_top=12))
    2
    >>> widening_steps(ActiveSettings(check_top=5, widen_max_check_top=12))
    2
    >>> widening_steps(ActiveSettings(check_top=3, widen_checks=False)), widening_steps(ActiveSettings(check_top=0))
    (0, 0)
    """
    top, cap = int(settings.check_top), int(settings.widen_max_check_top)
    if not settings.widen_checks or top <= 0:
        return 0
    n = 0
    while top * 2 ** n < cap:
        n += 1
    return n


def widened_settings(settings: ActiveSettings, level: int) -> ActiveSettings:
    """``settings`` at widening step ``level``: ``check_top`` doubled per step (at most
    ``widen_max_check_top``), ``widen_extra_rounds`` more learning rounds per step.

    Level 0 (or widening off) returns ``settings`` itself.

    >>> st = widened_settings(ActiveSettings(check_top=3, max_rounds_per_generation=5), 2)
    >>> st.check_top, st.max_rounds_per_generation
    (12, 7)
    """
    level = min(max(int(level), 0), widening_steps(settings))
    if level == 0:
        return settings
    top = min(settings.check_top * 2 ** level, max(settings.widen_max_check_top, settings.check_top))
    return dataclasses.replace(settings, check_top=int(top),
                               max_rounds_per_generation=settings.max_rounds_per_generation
                               + level * settings.widen_extra_rounds)


@dataclass
class WideningDecision:
    """How widely the next generation checks and learns, from the error of the one just finished.

    Parameters
    ----------
    generation : int
        The generation whose checks were measured.
    rmse_mev : float or None
        MTP energy RMSE (meV/atom) on its oracle-checked offspring (None: none checked).
    n_checked : int
        Oracle-checked distinct offspring behind ``rmse_mev``.
    gap_mev : float or None
        Gap (meV/atom) between the best and the next distinct candidate.
    required_mev : float
        The resolution needed: ``gap_mev``, at least :data:`RESOLUTION_MEV`.
    previous_level, level : int
        Widening step of the generation measured and of the next one.
    max_level : int
        Most widening steps (:func:`widening_steps`).
    check_top : int
        Offspring the next generation checks per check round.
    max_rounds_per_generation : int
        Learning rounds the next generation may take.
    """

    generation: int
    rmse_mev: float | None
    n_checked: int
    gap_mev: float | None
    required_mev: float
    previous_level: int
    level: int
    max_level: int
    check_top: int
    max_rounds_per_generation: int

    @property
    def warn(self) -> bool:
        """The MTP's in-window error exceeds the energy differences the search must resolve."""
        return self.rmse_mev is not None and self.rmse_mev > self.required_mev

    @property
    def action(self) -> str:
        """``widen``, ``narrow``, ``widest`` (too inaccurate, at the cap) or ``keep``."""
        if self.level > self.previous_level:
            return "widen"
        if self.level < self.previous_level:
            return "narrow"
        if self.warn and self.level == self.max_level:
            return "widest"
        return "keep"

    def message(self) -> str:
        """One line for the log, e.g. ``widening: in-window RMSE 22.0 meV/atom > 5.0 meV/atom needed; ...``."""
        rounds = f"up to {self.max_rounds_per_generation} learning rounds"
        if self.rmse_mev is None:
            return (f"accuracy: no offspring oracle-checked this generation; checking top {self.check_top}, "
                    f"{rounds}")
        cmp = (f"in-window RMSE {self.rmse_mev:.1f} meV/atom {'>' if self.warn else '<='} "
               f"{self.required_mev:.1f} meV/atom needed (over {self.n_checked} checked)")
        head = {"widen": "widening", "narrow": "narrowing", "widest": "widest already",
                "keep": "widened" if self.level else "accuracy"}[self.action]
        tail = " (active.widen_max_check_top)" if self.action == "widest" else ""
        return f"{head}: {cmp}; checking top {self.check_top}{tail}, {rounds}"

    def to_dict(self) -> dict[str, Any]:
        """JSON of the decision (the search state keeps one per generation)."""
        return {"generation": int(self.generation), "rmse_mev": self.rmse_mev, "n_checked": int(self.n_checked),
                "gap_mev": self.gap_mev, "required_mev": float(self.required_mev),
                "previous_level": int(self.previous_level), "level": int(self.level), "action": self.action,
                "warn": bool(self.warn), "check_top": int(self.check_top),
                "max_rounds_per_generation": int(self.max_rounds_per_generation)}


def decide_widening(errors: Sequence[float], enthalpies_per_atom: Sequence[float], *, generation: int,
                    level: int, settings: ActiveSettings,
                    resolution_mev: float = RESOLUTION_MEV) -> WideningDecision:
    """Widen the checks of the next generation while the MTP cannot resolve the search's energy gaps.

    Parameters
    ----------
    errors : sequence of float
        MTP minus oracle enthalpy (eV/atom) at the MTP minimum of each
        distinct oracle-checked offspring of the generation (all of them
        within ``check_window`` of the best: the in-window error).
    enthalpies_per_atom : sequence of float
        Enthalpies (eV/atom) of the search's distinct candidates (oracle-checked
        where they were checked), for :func:`required_resolution`.
    generation : int
        The generation measured.
    level : int
        Its widening step (0: not widened).
    settings : ActiveSettings
        The search's own settings (not widened): ``check_top``,
        ``max_rounds_per_generation`` and the ``widen_*`` fields.
    resolution_mev : float
        Floor of the resolution needed (meV/atom).

    Returns
    -------
    WideningDecision
        One step wider when the RMSE exceeds the resolution needed (at most
        :func:`widening_steps`), one step narrower when it does not, the same
        step when nothing was checked.

    >>> st = ActiveSettings(check_top=3, widen_max_check_top=12)
    >>> d = decide_widening([0.022, -0.022], [-4.30, -4.3], generation=2, level=0, settings=st)
    >>> d.action, d.level, d.check_top
    ('widen', 1, 6)
    >>> d.message()
    'widening: in-window RMSE 22.0 meV/atom > 5.0 meV/atom needed (over 2 checked); checking top 6, up to 6 learning rounds'
    """
    top = widening_steps(settings)
    previous = min(max(int(level), 0), top)
    rmse = in_window_rmse_mev(errors)
    gap, required = required_resolution(enthalpies_per_atom, resolution_mev)
    if rmse is None:
        new = previous
    elif rmse > required:
        new = min(previous + 1, top)
    else:
        new = max(previous - 1, 0)
    eff = widened_settings(settings, new)
    n = sum(1 for x in errors if x is not None and math.isfinite(float(x)))
    return WideningDecision(generation=int(generation), rmse_mev=rmse, n_checked=n, gap_mev=gap,
                            required_mev=required, previous_level=previous, level=new, max_level=top,
                            check_top=int(eff.check_top), max_rounds_per_generation=int(eff.max_rounds_per_generation))
