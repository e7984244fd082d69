"""CSP in ``mode: mtp``: the relaxer that learns on the fly and the learning step after a generation.

Workflow of a search (:func:`workflows.csp.builders.initial_fireworks`)::

    pre-exploration (ml) --detour--> oracle fireworks --> MTP training (ml) --> generation 0 --> ...

Each generation relaxes its offspring on the current MTP
(:class:`LearningRelaxer`); a relaxation whose grade passes the break
threshold stops there.  After the generation, :func:`after_generation` gathers
what the decision needs from the database, lets
:func:`pes_core.active.decisions.decide_learning` choose among the break and
select candidates (maxvol) or, when nothing is to learn,
:func:`pes_core.active.decisions.decide_check` check the best offspring with
the oracle, records the decision (``ActiveLearningEvent`` per new
configuration, the rounds in ``SearchRun.state['active']``) and returns it;
:func:`workflows.csp.tasks.decision_action` turns it into the detour::

    oracle fireworks (the oracle's category) --> MTP training (ml) --> generation g again

The rerun of generation ``g`` keeps the relaxations that finished below the
break threshold (the task's cache) and redoes the broken and unphysical ones
(energy hole, atoms pushed together) on the retrained MTP.  After
``active.max_rounds_per_generation`` rounds the relaxations go on without
breaking, so every generation ends.

Once a generation is ready to be ranked, :func:`record_widening` compares the
MTP's energy RMSE on its oracle-checked offspring with the energy difference
the search must resolve (:func:`pes_core.active.decisions.decide_widening`):
while the error is larger, the next generations check more offspring and may
learn longer (``active.widen_checks``); the history is kept in
``SearchRun.state['widening']``::

    {"level": n, "history": [<WideningDecision.to_dict()>, ...]}   # one entry per generation

With ``active.two_stage`` (Podryabinkin et al., PRB 99, 064114) a second,
accurate MTP trained on the low-energy oracle configurations only
(:func:`accurate_training`) relaxes again the offspring whose screened
enthalpy is within a window of the best (:func:`accurate_step`), with its own
active set and learning (:class:`AccurateDecision`)::

    [oracle fireworks (csp-accurate) -->] accurate MTP training (ml) --> generation g again

Nothing here builds fireworks: the modules import one way, ``spec -> state ->
learning -> report -> active_tasks -> tasks -> builders``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pymatgen.core import Structure

from pes_core.active import (
    ActiveRelaxer,
    ActiveSet,
    ActiveSettings,
    Candidate,
    GradeThresholds,
    choose_candidates,
)
from pes_core.active.decisions import (
    CheckDecision,
    LearningDecision,
    LearnItem,
    OracleCheck,
    OracleFrame,
    WideningDecision,
    decide_check,
    decide_learning,
    decide_widening,
    pick_for_check,
    widened_settings,
)
from pes_core.active.mlip_state import potential_from_text
from pes_core.active.two_stage import (
    TwoStageSettings,
    accurate_training_indices,
    select_for_accurate,
)
from pes_core.db import (
    ActiveLearningEvent,
    Configuration,
    FailedCalculation,
    PotentialModel,
    SearchRun,
    calculation_hash,
    jsonable,
)
from pes_core.oracles import to_atoms, to_structure
from pes_core.search import (
    FingerprintComparator,
    Individual,
    RelaxSettings,
    atoms_from_dict,
    atoms_to_dict,
    evaluate,
    mark_duplicates,
)
from workflows.core.runtime import flush_store
from workflows.csp.state import RunState

logger = logging.getLogger(__name__)

__all__ = ["AccurateDecision", "LearningRelaxer", "accurate_step", "accurate_training", "after_generation",
           "candidates_from_json", "learning_relaxer", "load_model", "record_accurate", "record_widening",
           "screened_enthalpy", "summary",
           "training_key", "training_role", "trajectory_frames", "two_stage_state", "widening_level"]


def load_model(model_id: str):
    """``(MTPPotential, ActiveSet, PotentialModel)`` of a stored model."""
    doc = PotentialModel.objects(id=model_id).first()
    if doc is None:
        raise ValueError(f"potential model {model_id!r} is not in the database; was the training firework run?")
    pot = potential_from_text(doc.parameters.read().decode())
    doc.parameters.seek(0)
    aset = ActiveSet.from_bytes(doc.active_set.read())
    return pot, aset, doc


def trajectory_frames(start_hash: str) -> list[Configuration]:
    """Stored frames of the oracle trajectory that started at configuration ``start_hash``, in step order."""
    docs = list(Configuration.objects(extra__trajectory=start_hash))
    return sorted(docs, key=lambda d: int((d.extra or {}).get("step", 0)))


def training_role(doc: Configuration, learned_checks: set[str]) -> str | None:
    """``"learned"``, ``"preselect"`` or ``None`` (not training data) for a stored oracle result of a search.

    Training data: the kept pre-exploration frames, what active learning
    chose (``csp-active``, and ``csp-accurate`` for the accurate MTP of the
    two-stage scheme), and oracle checks of the best candidates once their
    MTP error exceeded the tolerance (``learned_checks``); not verification
    relaxations nor the frames in between (a configuration that is both, e.g.
    a learned check frame that a verification relaxation reached again, stays
    training data).
    """
    tags = doc.tags or []
    if "csp-active" in tags or "csp-accurate" in tags or doc.content_hash in learned_checks:
        return "learned"
    if "csp-preselect" in tags and "csp-trajectory" not in tags:
        return "preselect"
    return None


def training_key(ids: list[str], st: ActiveSettings, accurate: TwoStageSettings | None = None) -> str:
    """The same configurations fitted with the same settings give the same model: its key.

    ``accurate``: the key of the two-stage scheme's accurate MTP (its own
    settings enter the key, so it never matches a screening model).
    """
    fit = {"level": st.level, "max_dist": st.max_dist, "max_iter": st.max_iter, "seed": st.seed,
           "energy_weighting": st.energy_weighting, "train_window": st.train_window,
           "min_train": st.min_train, "fit_learned": True}
    if accurate is not None:
        fit["two_stage"] = accurate.to_dict()
    fit_key = json.dumps(fit, sort_keys=True)
    return hashlib.sha256((",".join(ids) + "|" + fit_key).encode()).hexdigest()


def two_stage_state(state: RunState) -> dict[str, Any]:
    """The two-stage bookkeeping of a search (``SearchRun.state['two_stage']``, a copy)::

        {"model_id": <accurate PotentialModel id>, "rounds": {"<gen>": n}, "n_selected": n,
         "reference": {"<gen>": <screened enthalpy (eV/atom) the window starts from>},
         "relaxed": {"<gen>": [<individual id>, ...]}}       # offspring the accurate MTP relaxed
    """
    return copy.deepcopy(dict(state.other.get("two_stage") or {}))


def _save_two_stage(run: SearchRun, two: dict[str, Any]) -> None:
    state = RunState.of(run)
    state.other["two_stage"] = jsonable(two)
    state.save(run)
    flush_store()


def accurate_training(run: SearchRun, settings: ActiveSettings | None = None
                      ) -> tuple[list[Configuration], ActiveSettings, str]:
    """The configurations the accurate MTP of the two-stage scheme is trained on, its fit settings, its key.

    The search's training data (:func:`training_role`) whose energy per
    atom lies within ``window_mev + margin_mev`` of the lowest
    (:func:`pes_core.active.two_stage.accurate_training_indices`), sorted by
    content hash; the fit settings are the search's with the accurate level
    and no further screen (every one of them is fitted, with the low-energy
    weights).
    """
    st = settings or ActiveSettings.from_config(run.settings)
    ts = st.accurate()
    if ts is None:
        raise ValueError(f"search {run.name} has no active.two_stage settings; the accurate MTP is off")
    learned_checks = set(RunState.of(run).active.check_learned)
    docs = sorted(Configuration.objects(tags=f"csp:{run.name}", oracle=run.settings["oracle"]),
                  key=lambda d: d.content_hash)
    docs = [d for d in docs if training_role(d, learned_checks) and d.energy is not None]
    keep = accurate_training_indices([d.energy_per_atom for d in docs], ts.train_window, ts.min_train)
    docs = [docs[k] for k in keep]
    fit_settings = replace(st, level=ts.level, train_window=None, min_train=ts.min_train, two_stage=None)
    return docs, fit_settings, training_key([d.content_hash for d in docs], fit_settings, ts)


class LearningRelaxer:
    """A search relaxer on the current MTP of a search, with grade checks.

    Relaxations stop at the break threshold (``extra['break']``), and the
    break/select candidates are kept for :func:`after_generation`.
    ``extra['n_oracle_calls']`` is 0: oracle calls run in their own fireworks.
    ``settings`` are the search's, widened for this generation
    (:func:`widening_level`, :func:`pes_core.active.decisions.widened_settings`).
    """

    def __init__(self, run: SearchRun, fw_spec: dict) -> None:
        if not run.model_id:
            raise RuntimeError(f"search {run.name} runs in mode mtp but has no trained model yet; "
                               "the training firework must run before the first generation")
        self.pot, self.aset, self.model = load_model(run.model_id)
        self.model_id = run.model_id
        state = RunState.of(run)
        self.generation = state.generation
        self.widening = widening_level(state, self.generation)
        self.settings = widened_settings(ActiveSettings.from_config(run.settings), self.widening)
        self.round = state.active.round_of(self.generation)
        self.capped = self.round >= self.settings.max_rounds_per_generation
        th = self.settings.thresholds()
        if self.capped:  # learning budget of this generation spent: relax without breaking
            th = GradeThresholds(th.select, float("inf"), th.swap_tolerance)
        relax = RelaxSettings.from_config(run.settings)
        e_min = (self.model.metrics or {}).get("min_energy_per_atom")
        self.inner = ActiveRelaxer(self.pot, self.aset, learn=None, thresholds=th,
                                   fmax=relax.fmax, steps=relax.steps, optimizer=relax.optimizer,
                                   energy_floor=None if e_min is None else float(e_min) - self.settings.floor_margin)

    def __call__(self, atoms, pressure_gpa: float = 0.0):
        res = self.inner(atoms, pressure_gpa)
        res.extra.update(n_oracle_calls=0, model_id=self.model_id, model_version=self.model.version,
                         learning_round=self.round)
        return res

    def take_candidates(self) -> list[dict]:
        """The break/select candidates met since the last call, as JSON (see :func:`candidates_from_json`)."""
        out = [{"atoms": atoms_to_dict(c.atoms), "grade": float(c.grade), "reason": c.reason,
                "info": jsonable(c.info)} for c in self.inner.collected]
        self.inner.collected = []
        return out


def candidates_from_json(items: list[dict]) -> list[Candidate]:
    """:class:`pes_core.active.Candidate` objects from :meth:`LearningRelaxer.take_candidates` output."""
    return [Candidate(atoms_from_dict(d["atoms"]), float(d["grade"]), d.get("reason", "select"),
                      dict(d.get("info") or {})) for d in items]


def learning_relaxer(run: SearchRun, fw_spec: dict) -> LearningRelaxer:
    """The relaxer of a ``mode: mtp`` generation (see :class:`LearningRelaxer`)."""
    return LearningRelaxer(run, fw_spec)


# ------------------------------------------------------------------ after a generation
def after_generation(run: SearchRun, relaxer: LearningRelaxer, gen: int, relaxed: list,
                     candidates: list[dict] | None = None
                     ) -> LearningDecision | AccurateDecision | CheckDecision | None:
    """The learning step after generation ``gen`` of ``run``, recorded; ``None`` when it may be ranked.

    First what to learn (:func:`learning_decision`); when nothing and
    ``active.two_stage`` is on, the accurate MTP's step (:func:`accurate_step`:
    its (re)fit or learning, else the in-window offspring take its
    relaxations); then the oracle check of the best offspring
    (:func:`check_decision`).  ``candidates``:
    what :meth:`LearningRelaxer.take_candidates` gave for the generation's
    relaxations (wherever they ran).
    """
    learning = learning_decision(run, relaxer, gen, relaxed, candidates)
    if learning.learns:
        record_learning(run, relaxer, learning)
        return learning
    if not relaxer.capped and candidates:
        logger.info("search %s gen %d: no new configuration to learn; %d failed relaxations stay failed",
                    run.name, gen, len(learning.redo))
    if relaxer.settings.two_stage is not None:  # the accurate MTP relaxes the in-window offspring again
        accurate = accurate_step(run, relaxer, gen, relaxed)
        if accurate is not None:
            record_accurate(run, accurate)
            return accurate
    check = check_decision(run, relaxer.settings, gen, relaxed)
    if check is None or check.done:
        record_widening(run, gen, relaxed)
        return None
    record_check(run, check, relaxer.settings.check_tolerance)
    return check


def _key_of(config: dict):
    oracle, osettings = config["oracle"], config.get("oracle_settings") or {}
    return lambda atoms: calculation_hash(to_structure(atoms), oracle, osettings)


def learning_decision(run: SearchRun, relaxer: LearningRelaxer, gen: int, relaxed: list,
                      candidates: list[dict] | None) -> LearningDecision:
    """What to learn after generation ``gen`` (:func:`pes_core.active.decisions.decide_learning`)."""
    return decide_learning(
        candidates_from_json(candidates or []), relaxed, generation=gen, round=relaxer.round,
        capped=relaxer.capped,
        choose=lambda cands: choose_candidates(cands, relaxer.pot, relaxer.aset, max_configurations=len(cands)),
        key_of=_key_of(run.settings),
        is_known=lambda h: Configuration.objects(content_hash=h).first() is not None,
        max_configurations=relaxer.settings.max_configurations_per_round)


def record_learning(run: SearchRun, relaxer: LearningRelaxer, decision: LearningDecision) -> None:
    """Store a learning decision: its events, the round, and the relaxations to redo taken out of the cache."""
    gen = decision.generation
    for item in decision.learn:
        if ActiveLearningEvent.objects(configuration_hash=item.key, model_id=relaxer.model_id).first() is None:
            ActiveLearningEvent(configuration_hash=item.key, model_id=relaxer.model_id, grade=item.grade,
                                reason=item.reason,
                                context=jsonable({"search": run.name, "generation": gen, "round": relaxer.round,
                                                  "formula": item.atoms.get_chemical_formula()})).save()
    state = RunState.of(run)
    partial = state.partial_of(gen)
    for ind_id in decision.redo:  # forget the failed relaxations so that the rerun redoes them on the new model
        partial.pop(ind_id, None)
    state.partial = {str(gen): partial}
    state.active.rounds[str(gen)] = decision.round
    state.active.n_selected += len(decision.learn)
    state.save(run)
    flush_store()
    print(f"  [{run.name} gen {gen}] {decision.message()}", flush=True)


def check_decision(run: SearchRun, settings: ActiveSettings, gen: int, relaxed: list) -> CheckDecision | None:
    """Oracle check of the generation's best offspring (:func:`pes_core.active.decisions.decide_check`).

    A low extrapolation grade says that an MTP *interpolates*, not that it is
    accurate: a fit that is poor at low energies can put a spurious minimum
    far below the true ground state with every grade below the select
    threshold.  So, as USPEX+MLIP practice does, the ``check_top`` lowest
    distinct offspring that could become the new best get an oracle check
    (a short oracle relaxation with ``active.check_steps`` > 0, else a single
    point), rank by the oracle, and are learned where the MTP error exceeds
    ``check_tolerance``.  ``None`` when the check is off or nothing could
    become the new best.  The offspring in ``relaxed`` take the oracle values
    that exist (in place).
    """
    if settings.check_top <= 0:
        return None
    state = RunState.of(run)
    picked = pick_for_check(relaxed, state.best_reference, settings.check_window)
    if not picked:
        return None
    key_of = _key_of(run.settings)
    requested = set(state.active.check_requested)
    oracle = {}
    for group in picked:
        ind = group[0]
        h = key_of(ind.atoms)
        doc = Configuration.objects(content_hash=h).first()
        if doc is None or doc.energy is None:
            failure = FailedCalculation.objects(content_hash=h).first() if h in requested else None
            oracle[ind.id] = OracleCheck(h, requested=h in requested,
                                         refused=failure.reason if failure is not None else None)
            continue
        frames = []
        if settings.check_steps > 0:
            for f in trajectory_frames(h):
                if f.energy is None:
                    continue
                fs = Structure.from_dict(f.structure)
                frames.append(OracleFrame(float(f.energy), float(fs.volume), to_atoms(fs), f.content_hash,
                                          bool((f.extra or {}).get("kept"))))
        oracle[ind.id] = OracleCheck(h, float(doc.energy), frames)
    decision = decide_check(picked, oracle, generation=gen, check_round=state.active.check_round_of(gen),
                            learned=set(state.active.check_learned), pressure_gpa=state.pressure_gpa,
                            settings=settings)
    if decision.capped:
        print(f"  [{run.name} gen {gen}] oracle check capped after {decision.round - 1} rounds; "
              f"{decision.capped} candidate(s) keep their MTP enthalpy, marked unchecked (they cannot stop the "
              "search)", flush=True)
    if decision.lines and not decision.check:
        print(f"  [{run.name} gen {gen}] oracle check: " + "; ".join(decision.lines), flush=True)
    return decision


def record_check(run: SearchRun, decision: CheckDecision, tolerance: float) -> None:
    """Store a check decision: the check round and the requested checks, or the learned configurations."""
    state = RunState.of(run)
    gen = decision.generation
    if decision.check:
        state.active.check_rounds[str(gen)] = decision.round
        state.active.check_requested = sorted(set(state.active.check_requested) | {c.key for c in decision.check})
        print(f"  [{run.name} gen {gen}] oracle check of {len(decision.check)} best candidate(s) "
              f"({', '.join(f'{c.individual.enthalpy_per_atom:.4f}' for c in decision.check)} eV/atom on the MTP)",
              flush=True)
    else:
        state.active.check_learned = sorted(set(state.active.check_learned) | set(decision.learn))
        print(f"  [{run.name} gen {gen}] learning {len(decision.learn)} checked configuration(s) whose MTP error "
              f"exceeds {1e3 * tolerance:.0f} meV/atom", flush=True)
    state.save(run)
    flush_store()


# ------------------------------------------------------------------ two-stage scheme
@dataclass
class AccurateDecision:
    """What the accurate MTP of the two-stage scheme needs before generation ``generation`` can go on.

    Parameters
    ----------
    generation : int
        The generation.
    round : int
        The accurate MTP's learning round this decision opens (0: a (re)fit only).
    learn : list of LearnItem
        Configurations its relaxations met above the break or select grade, for
        the oracle (generator ``csp-accurate``); empty: only (re)fit it, on a
        training set that changed (new low-energy oracle data) or for the first time.
    """

    generation: int
    round: int = 0
    learn: list[LearnItem] = field(default_factory=list)

    @property
    def learns(self) -> bool:
        """Whether the oracle labels configurations for the accurate MTP."""
        return bool(self.learn)

    def message(self) -> str:
        """One line for the log."""
        if not self.learn:
            return "two-stage: the accurate MTP is (re)fitted on the low-energy configurations"
        return (f"two-stage learning round {self.round}: {len(self.learn)} configurations met by the accurate MTP "
                f"to the oracle ({', '.join(f'{c.reason} {c.grade:.3g}' for c in self.learn)})")


def screened_enthalpy(ind: Individual) -> float | None:
    """The screening MTP's enthalpy per atom (eV/atom) of an offspring, whatever replaced it afterwards.

    The accurate MTP's relaxation keeps it in ``relax_info['two_stage']``, an
    oracle check in ``relax_info['mtp_enthalpy_per_atom']``.
    """
    info = ind.relax_info or {}
    if "two_stage" in info:
        return info["two_stage"].get("screened_enthalpy_per_atom")
    h = info.get("mtp_enthalpy_per_atom", ind.enthalpy_per_atom)
    return None if h is None else float(h)


def _usable_enthalpy(ind: Individual) -> float | None:
    h = ind.enthalpy_per_atom
    if ind.flags.get("failed") or h is None or not np.isfinite(h):
        return None
    return float(h)


def accurate_step(run: SearchRun, relaxer: LearningRelaxer, gen: int, relaxed: list) -> AccurateDecision | None:
    """Relax the generation's in-window offspring again on the accurate MTP; a decision when it must learn first.

    The offspring whose screened enthalpy is within ``two_stage.window_mev``
    of the reference (the lower of this generation's best screened enthalpy
    and the screened enthalpy of the search's best so far, which the accurate
    MTP and the oracle checks ranked; :func:`pes_core.active.two_stage.select_for_accurate`) are relaxed on the
    accurate MTP from their screened geometry, with its own grade: a break (or
    an energy hole, a short pair) makes its configurations go to the oracle
    and the accurate MTP refit (up to ``two_stage.max_rounds`` rounds per
    generation, then the relaxations go on without breaking).  The accurate
    MTP is (re)fitted first whenever its training set
    (:func:`accurate_training`) is not the one of its current model.

    When nothing is to learn, the in-window offspring in ``relaxed`` are
    replaced (in place) by their accurate relaxations: their enthalpy is the
    accurate MTP's, ``relax_info['two_stage']`` keeps the screened one, and
    ``relax_info['n_calls']`` counts the MTP evaluations of both stages.  An
    accurate relaxation that fails keeps the screened result (with the reason
    in ``relax_info['two_stage']``).
    """
    st = relaxer.settings
    ts = st.accurate()
    state = RunState.of(run)
    two = two_stage_state(state)
    _, _, key = accurate_training(run)  # the stored settings (widening changes none of the fit's)
    model_id = two.get("model_id")
    model = PotentialModel.objects(id=model_id).first() if model_id else None
    if model is None or (model.settings or {}).get("training_key") != key:
        return AccurateDecision(generation=gen)
    round_ = int((two.get("rounds") or {}).get(str(gen), 0))
    capped = round_ >= ts.max_rounds
    # the window: from the screened enthalpy of the search's best so far (ranked by the accurate MTP and the
    # oracle checks, so a screening artefact debunked by them never pins it) or this generation's best screened
    search = state.search_state()
    best = search.best
    earlier = None if best is None else screened_enthalpy(best)
    screened = [_usable_enthalpy(ind) for ind in relaxed]
    picked = select_for_accurate(screened, earlier, ts.window)
    finite = [h for h in screened if h is not None]
    reference = min([h for h in [earlier, *finite] if h is not None], default=None)
    two.setdefault("reference", {})[str(gen)] = reference
    two.setdefault("relaxed", {})[str(gen)] = [relaxed[k].id for k in picked]
    _save_two_stage(run, two)
    if not picked:
        return None
    pot, aset, _ = load_model(model_id)
    th = st.thresholds()
    if capped:
        th = GradeThresholds(th.select, float("inf"), th.swap_tolerance)
    rs = RelaxSettings.from_config(run.settings)
    e_min = (model.metrics or {}).get("min_energy_per_atom")
    inner = ActiveRelaxer(pot, aset, learn=None, thresholds=th, fmax=rs.fmax, steps=rs.steps,
                          optimizer=rs.optimizer,
                          energy_floor=None if e_min is None else float(e_min) - st.floor_margin)
    search_settings = search.settings
    results = {k: evaluate(relaxed[k], inner, search_settings) for k in picked}
    learning = decide_learning(
        list(inner.collected), list(results.values()), generation=gen, round=round_, capped=capped,
        choose=lambda cands: choose_candidates(cands, pot, aset, max_configurations=len(cands)),
        key_of=_key_of(run.settings),
        is_known=lambda h: Configuration.objects(content_hash=h).first() is not None,
        max_configurations=ts.max_configurations_per_round)
    if learning.learns:
        return AccurateDecision(generation=gen, round=learning.round, learn=learning.learn)
    n_ok = 0
    for k, out in results.items():
        before = relaxed[k]
        info = before.relax_info or {}
        stage = {"model_id": model_id, "model_version": model.version, "round": round_,
                 "screened_enthalpy_per_atom": before.enthalpy_per_atom,
                 "screened_spacegroup": before.spacegroup, "screened_n_calls": int(info.get("n_calls", 0)),
                 "n_calls": int((out.relax_info or {}).get("n_calls", 0))}
        if out.flags.get("failed") or out.enthalpy_per_atom is None or not np.isfinite(out.enthalpy_per_atom):
            stage.update(failed=True, reason=(out.relax_info or {}).get("reason") or "no reason given")
            before.relax_info = {**info, "two_stage": stage}
            before.relax_info["n_calls"] = stage["screened_n_calls"] + stage["n_calls"]
            continue
        out.relax_info = {**(out.relax_info or {}), "two_stage": stage,
                          "n_calls": stage["screened_n_calls"] + stage["n_calls"]}
        relaxed[k] = out
        n_ok += 1
    failed = [f"{relaxed[k].id}: {relaxed[k].relax_info['two_stage']['reason']}" for k in picked
              if relaxed[k].relax_info["two_stage"].get("failed")]
    print(f"  [{run.name} gen {gen}] two-stage: {n_ok} of {len(picked)} offspring within {ts.window_mev:g} "
          f"meV/atom of the best screened enthalpy relaxed on the accurate MTP v{model.version}"
          + (f"; failed (screened result kept): {'; '.join(failed)}" if failed else ""), flush=True)
    return None


def record_accurate(run: SearchRun, decision: AccurateDecision) -> None:
    """Store an accurate-MTP decision: its learning events and round (a refit alone stores nothing)."""
    gen = decision.generation
    if decision.learn:
        two = two_stage_state(RunState.of(run))
        model_id = two.get("model_id")
        for item in decision.learn:
            if ActiveLearningEvent.objects(configuration_hash=item.key, model_id=model_id).first() is None:
                ActiveLearningEvent(configuration_hash=item.key, model_id=model_id, grade=item.grade,
                                    reason=item.reason,
                                    context=jsonable({"search": run.name, "generation": gen, "round": decision.round,
                                                      "stage": "accurate",
                                                      "formula": item.atoms.get_chemical_formula()})).save()
        two.setdefault("rounds", {})[str(gen)] = decision.round
        two["n_selected"] = int(two.get("n_selected", 0)) + len(decision.learn)
        _save_two_stage(run, two)
    print(f"  [{run.name} gen {gen}] {decision.message()}", flush=True)


# ------------------------------------------------------------------ widening
def widening_level(state: RunState, generation: int) -> int:
    """Widening step of ``generation``: the one decided after the last earlier generation (0: none).

    Read from the history, not from the latest entry, so that a generation
    run again (after learning, a check or a crash) gets the same step.

    >>> st = RunState(search={"generation": 3}, other={"widening": {"history": [
    ...     {"generation": 1, "level": 1}, {"generation": 2, "level": 2}, {"generation": 3, "level": 1}]}})
    >>> widening_level(st, 3), widening_level(st, 4), widening_level(st, 1)
    (2, 1, 0)
    """
    history = (state.other.get("widening") or {}).get("history") or []
    earlier = [h for h in history if int(h["generation"]) < int(generation)]
    return int(max(earlier, key=lambda h: int(h["generation"]))["level"]) if earlier else 0


def _checked_enthalpies(state: RunState, relaxed: list) -> list[float]:
    """Oracle enthalpies (eV/atom) of the distinct oracle-checked candidates: the search so far plus ``relaxed``.

    Only oracle values: an unchecked offspring's MTP enthalpy is what is in
    doubt (a poor MTP puts offspring hundreds of meV/atom off, so a gap to
    one of them says nothing).  Duplicates (fingerprint and enthalpy, the
    search's own test) count once.
    """
    search = state.search_state()
    pool: dict[str, Individual] = {}
    for ind in list(search.archive) + list(search.population.members) + list(relaxed):
        if ind.id not in pool and ind.usable and "oracle_check" in (ind.relax_info or {}):
            pool[ind.id] = Individual.from_dict(copy.deepcopy(ind.to_dict()))
            pool[ind.id].flags["duplicate_of"] = None
    members = list(pool.values())
    mark_duplicates(members, FingerprintComparator.from_settings(search.settings))
    return sorted(float(i.enthalpy_per_atom) for i in members if not i.is_duplicate)


def record_widening(run: SearchRun, gen: int, relaxed: list) -> WideningDecision | None:
    """Measure generation ``gen``'s in-window MTP error, decide the next generation's widening, store it.

    The error: MTP minus oracle enthalpy at the MTP minimum of each distinct
    oracle-checked offspring (``relax_info['oracle_check']['error']``, all
    within ``active.check_window`` of the best); the resolution needed: the
    oracle gap between the best and the next distinct oracle-checked
    candidate, at least :data:`pes_core.active.decisions.RESOLUTION_MEV`.  The decision goes into
    ``SearchRun.state['widening']['history']`` (replacing an earlier entry of
    ``gen``: a rerun decides the same) and its line is printed.  None when
    ``active.widen_checks`` is off or the check is (``check_top`` 0).
    """
    settings = ActiveSettings.from_config(run.settings)
    if not settings.widen_checks or settings.check_top <= 0:
        return None
    state = RunState.of(run)
    errors = []
    for ind in relaxed:
        oc = (ind.relax_info or {}).get("oracle_check")
        if oc and oc.get("checked_as") == ind.id and oc.get("error") is not None:
            errors.append(float(oc["error"]))
    decision = decide_widening(errors, _checked_enthalpies(state, relaxed), generation=gen,
                               level=widening_level(state, gen), settings=settings)
    widening = dict(state.other.get("widening") or {})
    history = [h for h in widening.get("history") or [] if int(h["generation"]) != gen]
    history.append(decision.to_dict())
    history.sort(key=lambda h: int(h["generation"]))
    state.other["widening"] = {"level": int(history[-1]["level"]), "history": history}
    state.save(run)
    flush_store()
    print(f"  [{run.name} gen {gen}] {decision.message()}", flush=True)
    return decision


def summary(name: str) -> dict[str, Any]:
    """Counts of a search's active learning: models, selected configurations, events."""
    return {
        "models": PotentialModel.objects(workflow=name).count(),
        "configurations": Configuration.objects(tags=f"csp:{name}").count(),
        "events": ActiveLearningEvent.objects(context__search=name).count(),
    }
