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

Nothing here builds fireworks: the modules import one way, ``spec -> state ->
learning -> report -> active_tasks -> tasks -> builders``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

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
from pes_core.db import (
    ActiveLearningEvent,
    Configuration,
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
    mark_duplicates,
)
from workflows.core.runtime import flush_store
from workflows.csp.state import RunState

logger = logging.getLogger(__name__)

__all__ = ["LearningRelaxer", "after_generation", "candidates_from_json", "learning_relaxer", "load_model",
           "record_widening", "summary", "trajectory_frames", "widening_level"]


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
                     candidates: list[dict] | None = None) -> LearningDecision | CheckDecision | None:
    """The learning step after generation ``gen`` of ``run``, recorded; ``None`` when it may be ranked.

    First what to learn (:func:`learning_decision`); when nothing, the oracle
    check of the best offspring (:func:`check_decision`).  ``candidates``:
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
            oracle[ind.id] = OracleCheck(h, requested=h in requested)
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
              f"{decision.capped} candidate(s) keep their MTP enthalpy", flush=True)
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
