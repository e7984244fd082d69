"""Firetasks of the evolutionary crystal structure search.

``CSPGenerationTask`` runs one generation: it proposes offspring (a pure
function of the seed and the generation index), relaxes them, ranks them and
stores the generation; then it adds the next generation firework, or, once the
search has converged, the verification fireworks and the report.  With
``relax.parallel`` > 1 it first fans the relaxations out into
``CSPRelaxTask`` fireworks (any workers may run them side by side) and runs
again after them to rank, learn and breed.  In ``mode: mtp`` the learning step
after the relaxations (:func:`workflows.csp.learning.after_generation`)
returns a decision as data; :func:`decision_action` alone turns it into
fireworks.

Categories (FireWorks ``_category``): every firework that calls the oracle
carries the oracle's category (``dft`` or ``ml``; :func:`workflows.csp.state.category_of`):
in ``mode: direct`` the generation fireworks (they relax on the oracle) and
the relaxation fireworks, in both modes the oracle, trajectory and
verification fireworks; training, pre-exploration, ``mode: mtp``
generations and the report are ``ml``.  ``relax.category`` and
``verify.category`` override.

Everything the loop needs lives in the domain database, never in the spec:
``SearchRun.state`` is the serialized search state, ``GenerationRecord`` holds
each finished generation (unique on (search, index)) together with the state
after it, and ``SearchRun.state['partial']`` caches relaxations finished inside
a generation that has not completed yet.  A rerun of a generation firework
(crash, ``lpad rerun_fws``, lost-run detection) therefore resumes: finished
generations are taken from their record, finished relaxations from the cache,
and nothing is stored twice.
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize

from pes_core.active import ActiveSettings
from pes_core.active.decisions import CheckDecision, LearningDecision
from pes_core.db import (
    Configuration,
    GenerationRecord,
    PotentialModel,
    SearchRun,
    jsonable,
    store_result,
)
from pes_core.oracles import get_oracle, to_structure
from pes_core.progress import StepReporter, progress
from pes_core.search import (
    OracleRelaxer,
    RelaxSettings,
    SearchState,
    VerifySettings,
    candidate_table,
    evaluate,
    propose_offspring,
    update,
)
from workflows.core import runtime
from workflows.core.backend import retry_store_race
from workflows.core.runtime import (
    ensure_domain_db,
    flush_store,
    task_workdir,
    worker_env,
)
from workflows.csp.active_tasks import (
    oracle_fireworks,
    train_firework,
    trajectory_fireworks,
)
from workflows.csp.learning import AccurateDecision, after_generation, learning_relaxer
from workflows.csp.report import write_csp_report
from workflows.csp.state import RunState, category_of, start_search

logger = logging.getLogger(__name__)

__all__ = ["CSPGenerationTask", "CSPRelaxTask", "CSPReportTask", "CSPVerifyTask", "decision_action",
           "generation_firework", "generation_line", "verification_fireworks"]

#: hard cap on generation fireworks of one search, whatever the settings say
MAX_GENERATIONS_HARD = 500


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def generation_firework(search: str, generation: int, config: dict, formula: str = "",
                        parents=None) -> Firework:
    """The firework that runs ``generation`` of ``search`` (``config``: the search's stored settings).

    Its category is that of the relaxations (:func:`workflows.csp.state.category_of`):
    the oracle's in ``mode: direct``, where the generation relaxes on the oracle
    (serially, or what its relaxation fireworks left), ``ml`` in ``mode: mtp``.
    """
    return Firework(
        [CSPGenerationTask(search=search)],
        name=f"csp {search} generation {generation}",
        spec={"_category": category_of(config, "relax"), "pes_kind": "csp_generation", "search": search,
              "generation": generation, "formula": formula},
        parents=parents,
    )


def verification_fireworks(name: str, config: dict, formula: str = "") -> list[Firework]:
    """Verification (oracle relaxations: the oracle's category, or ``verify.category``) -> report (``ml``)."""
    verify = Firework([CSPVerifyTask(search=name)], name=f"csp {name} verification",
                      spec={"_category": category_of(config, "verify"), "pes_kind": "csp_verify",
                            "search": name, "formula": formula})
    report = Firework([CSPReportTask(search=name)], name=f"csp {name} report",
                      spec={"_category": "ml", "pes_kind": "csp_report", "search": name,
                            "_allow_fizzled_parents": True}, parents=[verify])
    return [verify, report]


def decision_action(run: SearchRun, decision: LearningDecision | AccurateDecision | CheckDecision,
                    fw_spec: dict) -> FWAction:
    """The detour that carries out a learning or check decision, then runs its generation again.

    The one place where the learning step's decisions become fireworks:

    * learning: oracle fireworks for the chosen configurations -> training -> the generation (next round);
    * check: short oracle relaxations (``active.check_steps`` > 0) or single points of the best
      offspring -> the generation (which then ranks them by the oracle);
    * check learned: training -> the generation;
    * two-stage (``active.two_stage``): oracle fireworks for the configurations the accurate MTP met
      (generator ``csp-accurate``, none for a refit alone) -> accurate MTP training -> the generation.
    """
    name, config, gen = run.name, run.settings, decision.generation

    def again(parents: list, label: str) -> Firework:
        fw = generation_firework(name, gen, config, formula=fw_spec.get("formula", ""), parents=parents)
        fw.name = f"{fw.name} ({label})"
        return fw

    if isinstance(decision, AccurateDecision):  # the two-stage scheme's accurate MTP
        fws = []
        if decision.learn:
            r = decision.round
            fws = oracle_fireworks(name, config, [to_structure(c.atoms) for c in decision.learn],
                                   generator="csp-accurate",
                                   extra=[{"grade": c.grade, "reason": c.reason, "generation": gen, "round": r,
                                           "stage": "accurate"} for c in decision.learn])
        label = f"gen {gen} round {decision.round}" if decision.learn else f"gen {gen}"
        train = train_firework(name, parents=fws or None, label=label, accurate=True)
        train.spec["_allow_fizzled_parents"] = True  # see the learning round below
        fw = again([train], f"accurate round {decision.round}" if decision.learn else "accurate MTP fitted")
        return FWAction(detours=[Workflow(fws + [train, fw], name=f"csp {name} accurate MTP gen {gen}")],
                        stored_data={"accurate_round": decision.round, "selected": len(decision.learn)})
    if isinstance(decision, LearningDecision):
        r = decision.round
        ofws = oracle_fireworks(name, config, [to_structure(c.atoms) for c in decision.learn],
                                generator="csp-active",
                                extra=[{"grade": c.grade, "reason": c.reason, "generation": gen, "round": r}
                                       for c in decision.learn])
        train = train_firework(name, parents=ofws, label=f"gen {gen} round {r}")
        # an oracle firework fizzles when the oracle rejected every configuration of the round (overlapping
        # atoms an MTP relaxation ran into, e.g. BKS SiO2); the training (on the search's stored oracle data,
        # not on the parents' output) and the generation go on, and the generation's learning rounds stay
        # capped by active.max_rounds_per_generation, so one rejected round no longer stops the whole search
        train.spec["_allow_fizzled_parents"] = True
        fw = again([train], f"round {r}")
        fw.spec["pes_active_round"] = r
        return FWAction(detours=[Workflow(ofws + [train, fw], name=f"csp {name} active learning gen {gen} round {r}")],
                        stored_data={"active_round": r, "selected": len(decision.learn), "redo": decision.redo})
    if decision.check:
        structures = [to_structure(c.individual.atoms) for c in decision.check]
        extra = [{"reason": "check", "generation": gen, "individual": c.individual.id,
                  "mtp_enthalpy_per_atom": float(c.individual.enthalpy_per_atom)} for c in decision.check]
        st = ActiveSettings.from_config(config)
        if st.check_steps > 0:
            ofws = trajectory_fireworks(name, config, structures, generator="csp-check", steps=st.check_steps,
                                        every=st.prerelax_every, extra=extra)
        else:
            ofws = oracle_fireworks(name, config, structures, generator="csp-check", extra=extra)
        return FWAction(detours=[Workflow(ofws + [again(ofws, "check")], name=f"csp {name} oracle check gen {gen}")],
                        stored_data={"checked": len(decision.check)})
    train = train_firework(name, label=f"gen {gen} check")
    return FWAction(detours=[Workflow([train, again([train], "check learned")],
                                      name=f"csp {name} check learning gen {gen}")],
                    stored_data={"check_learned": len(decision.learn)})


def _oracle_workdir(oracle, fw_spec: dict, name: str) -> str | None:
    """This firework's own folder for the job folders of a file-based (``dft``) oracle, else None."""
    return str(task_workdir(fw_spec, name)) if oracle.category == "dft" else None


def make_relaxer(run: SearchRun, fw_spec: dict):
    """The relaxer of a search: directly on the oracle, or on the actively learned MTP.

    Both relax with the search's :class:`~pes_core.search.RelaxSettings` (one
    default: BFGS, fmax 0.05 eV/Å, 300 steps).
    """
    cfg = run.settings
    if cfg.get("mode", "direct") == "direct":
        relax = RelaxSettings.from_config(cfg)
        oracle = get_oracle(cfg["oracle"], cfg.get("oracle_settings"), env=worker_env(fw_spec))
        return OracleRelaxer(oracle, fmax=relax.fmax, steps=relax.steps, optimizer=relax.optimizer,
                             progress=StepReporter(f"[{run.name}] oracle relaxation", relax.steps),
                             workdir=_oracle_workdir(oracle, fw_spec, "relax"))
    return learning_relaxer(run, fw_spec)


def _training_set_size(run: SearchRun) -> int | None:
    """Configurations the search's current MTP was trained on (None in direct mode)."""
    model = PotentialModel.objects(id=run.model_id).first() if run.model_id else None
    return len(model.training_ids) if model is not None else None


@explicit_serialize
class CSPGenerationTask(FiretaskBase):
    """Run the next generation of the search named ``search``."""

    required_params = ["search"]
    optional_params = []

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        name = self["search"]
        run = SearchRun.objects(name=name).first()
        if run is None and fw_spec.get("pes_csp_config"):
            run = start_search(name, fw_spec["pes_csp_config"])
        if run is None:
            raise ValueError(f"search run {name!r} is not in the database; submit the CSP workflow again")
        state = RunState.of(run).search_state()
        gen = state.generation + 1
        asked = fw_spec.get("generation")
        if asked is not None and int(asked) < gen:
            # a rerun of a generation that finished long ago: its successors exist already
            if GenerationRecord.objects(search=name, index=int(asked)).first() is None:
                raise RuntimeError(f"search {name}: generation {asked} is behind the state "
                                   f"({state.generation}) but has no record; the database is inconsistent")
            return FWAction(stored_data={"rerun_of_finished_generation": int(asked)})

        record = GenerationRecord.objects(search=name, index=gen).first()
        if record is not None:  # this generation finished before a crash/rerun: take its result
            logger.info("generation %d of %s already stored; resuming from its record", gen, name)
            state = SearchState.from_dict(record.stats["state"])
            self._save_run(run, state, partial={})
            return self._next(run, state, fw_spec)

        if gen >= MAX_GENERATIONS_HARD:
            raise RuntimeError(f"search {name} reached the hard cap of {MAX_GENERATIONS_HARD} generations")
        offspring = propose_offspring(state)  # deterministic in (seed, generation)
        partial = RunState.of(run).partial_of(gen)
        todo = [ind for ind in offspring if ind.id not in partial]
        n_par = int((run.settings.get("relax") or {}).get("parallel", 1))
        attempt = int(fw_spec.get("pes_relax_attempt", 0))
        if n_par > 1 and len(todo) > 1 and attempt < 2:  # relaxation fireworks; this generation again collects
            return self._fan_out(run, gen, todo, n_par, attempt, fw_spec)
        relaxer = make_relaxer(run, fw_spec)
        relaxed = []
        calls_before = state.n_calls
        # one line per relaxation; rate and ETA over those this firework runs (cached ones are not counted)
        with progress(total=len(todo), desc=f"[{name} gen {gen}] relaxations", unit="structure") as bar:
            for k, ind in enumerate(offspring):
                if ind.id in partial:
                    relaxed.append(type(ind).from_dict(partial[ind.id]))
                    continue
                out = relax_one(ind, relaxer, state.settings)
                relaxed.append(type(ind).from_dict(out))
                partial[ind.id] = out
                _save_partial(run, gen, partial)
                flush_store(min_interval=0.5)
                bar.update(note=_progress_line(name, gen, k, len(offspring), relaxed[-1]))
        # learning candidates met by the relaxations (kept with each relaxation, so that a resumed or fanned-out
        # generation has them all); taken out of the individuals before anything else sees them
        candidates = [c for ind in relaxed for c in (ind.relax_info or {}).pop("candidates", None) or []]
        if candidates:  # considered now, whatever the hook decides: a rerun must not learn them again
            for entry in partial.values():
                (entry.get("relax_info") or {}).pop("candidates", None)
            _save_partial(run, gen, partial)
        if run.settings.get("mode", "direct") == "mtp":
            decision = after_generation(run, relaxer, gen, relaxed, candidates)
            if decision is not None:  # oracle work or learning first: this generation runs again after it
                return decision_action(run, decision, fw_spec)
        state = update(state, relaxed)
        n_calls = sum(int(i.relax_info.get("n_calls", 0)) for i in relaxed if i.relax_info)
        n_stored = Configuration.objects(tags=f"csp:{name}").count()
        if run.settings.get("mode", "direct") == "direct":
            n_oracle, n_model = n_calls, 0
        else:
            # MTP mode: every oracle call of the search (pre-exploration, learning, checks) is a
            # Configuration tagged csp:<name>; this generation's share is the growth since the last one
            prev = GenerationRecord.objects(search=name, index=gen - 1).first()
            n_oracle = n_stored - int(prev.stats.get("oracle_configurations", 0)) if prev else n_stored
            n_model = n_calls
        stats = {"state": jsonable(state.to_dict()), "n_offspring": len(relaxed),
                 "n_failed": sum(bool(i.flags.get("failed")) for i in relaxed),
                 "calls_before": calls_before, "oracle_configurations": n_stored,
                 "training_set_size": _training_set_size(run)}
        try:
            GenerationRecord(search=name, index=gen, population=[jsonable(i.to_dict()) for i in relaxed],
                             best_enthalpy_per_atom=state.best_enthalpy, n_oracle_calls=n_oracle,
                             n_model_evaluations=n_model, stats=stats).save()
        except Exception as err:  # a concurrent rerun stored it first: use that one
            if "duplicate" not in str(err).lower() and "unique" not in str(err).lower():
                raise
            record = GenerationRecord.objects.get(search=name, index=gen)
            state = SearchState.from_dict(record.stats["state"])
        self._save_run(run, state, partial={})
        # so far: direct mode relaxes on the oracle (the state counts its calls); in MTP mode every oracle call
        # is a stored Configuration and the state counts the MTP evaluations
        direct = run.settings.get("mode", "direct") == "direct"
        print(generation_line(name, gen, state, len(relaxed), n_oracle, n_model,
                              oracle_total=state.n_calls if direct else n_stored,
                              model_total=0 if direct else state.n_calls), flush=True)
        return self._next(run, state, fw_spec)

    @staticmethod
    def _fan_out(run: SearchRun, gen: int, todo: list, n_par: int, attempt: int, fw_spec: dict) -> FWAction:
        """One :class:`CSPRelaxTask` firework per group of offspring, then this generation again (the collector)."""
        name = run.name
        groups = [todo[k::n_par] for k in range(min(n_par, len(todo)))]
        category = category_of(run.settings, "relax")
        fws = [Firework([CSPRelaxTask(search=name, generation=gen, ids=[i.id for i in g])],
                        name=f"csp {name} generation {gen} relaxations [{k + 1}/{len(groups)}]",
                        spec={"_category": category, "pes_kind": "csp_relax", "search": name, "generation": gen})
               for k, g in enumerate(groups)]
        again = generation_firework(name, gen, run.settings, formula=fw_spec.get("formula", ""), parents=fws)
        # a relaxation firework that fizzled leaves its offspring to the next attempt (the third runs them here)
        again.spec.update(_allow_fizzled_parents=True, pes_relax_attempt=attempt + 1)
        if "pes_active_round" in fw_spec:
            again.spec["pes_active_round"] = fw_spec["pes_active_round"]
        print(f"  [{name} gen {gen}] {len(todo)} relaxations in {len(fws)} fireworks", flush=True)
        return FWAction(detours=[Workflow(fws + [again], name=f"csp {name} generation {gen} relaxations")],
                        stored_data={"relax_fireworks": len(fws), "to_relax": len(todo)})

    @staticmethod
    def _save_run(run: SearchRun, state: SearchState, partial: dict) -> None:
        stored = RunState.of(run)
        stored.search, stored.partial = jsonable(state.to_dict()), partial
        run.state = stored.to_dict()
        run.current_generation = state.generation
        run.best_enthalpy_per_atom = state.best_enthalpy
        reason = state.stop_reason()
        run.status = {"converged": "converged", "target": "converged",
                      "max_generations": "capped"}.get(reason, "running")
        run.updated_at = _now()
        run.save()
        flush_store()

    def _next(self, run: SearchRun, state, fw_spec: dict) -> FWAction:
        name = run.name
        formula = fw_spec.get("formula", "")
        if not state.done:
            return FWAction(additions=[generation_firework(name, state.generation + 1, run.settings,
                                                           formula=formula)])
        logger.info("search %s stops: %s", name, state.stop_reason())
        # one Workflow keeps the verify -> report link (separate additions would lose it)
        return FWAction(additions=[Workflow(verification_fireworks(name, run.settings, formula),
                                            name=f"csp {name} verification")])


def _save_partial(run: SearchRun, gen: int, partial: dict) -> None:
    """Cache the finished relaxations of generation ``gen`` (the other generations' caches are dropped)."""
    stored = RunState.of(run)
    stored.partial = {str(gen): partial}
    run.state = stored.to_dict()
    run.updated_at = _now()
    run.save()


def relax_one(ind, relaxer, settings) -> dict:
    """Relax one individual (:func:`pes_core.search.evaluate`); its JSON with the learning candidates it met."""
    out = jsonable(evaluate(ind, relaxer, settings).to_dict())
    take = getattr(relaxer, "take_candidates", None)
    if take is not None:
        out.setdefault("relax_info", {})["candidates"] = take()
    return out


def _progress_line(name: str, gen: int, k: int, n: int, ind) -> str:
    """The line of one finished relaxation: offspring ``k + 1`` of ``n``, its origin, enthalpy and space group."""
    h = (f"failed: {(ind.relax_info or {}).get('reason') or 'no reason given'}" if ind.flags.get("failed")
         else f"{ind.enthalpy_per_atom:.4f} eV/atom")
    return f"  [{name} gen {gen}] {k + 1}/{n} {ind.origin:<11} -> {h} ({ind.spacegroup or '-'})"


def generation_line(name: str, gen: int, state: SearchState, n_offspring: int, n_oracle: int, n_model: int,
                    oracle_total: int, model_total: int) -> str:
    """The one line printed per finished generation.

    Parameters
    ----------
    name : str
        The search.
    gen : int
        The generation just finished.
    state : SearchState
        The search state after it (best enthalpy in eV/atom, space group, stall count).
    n_offspring : int
        Offspring relaxed in this generation.
    n_oracle, n_model : int
        Oracle calls and MTP (model) evaluations of this generation.
    oracle_total, model_total : int
        The same for the whole search so far.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> st = SimpleNamespace(best_enthalpy=-4.5912, best=SimpleNamespace(spacegroup="Fd-3m"), stalled=1)
    >>> generation_line("si", 3, st, 8, 40, 0, 120, 0)
    '[si] gen 3: best -4.5912 eV/atom (Fd-3m), 8 offspring, stalled 1, oracle calls 120 (+40), MTP evaluations 0 (+0)'
    """
    best = state.best
    h = "-" if state.best_enthalpy is None else f"{state.best_enthalpy:.4f}"
    return (f"[{name}] gen {gen}: best {h} eV/atom ({best.spacegroup if best else '-'}), "
            f"{n_offspring} offspring, stalled {state.stalled}, oracle calls {oracle_total} (+{n_oracle}), "
            f"MTP evaluations {model_total} (+{n_model})")


@explicit_serialize
class CSPRelaxTask(FiretaskBase):
    """Relax some offspring of a generation (``relax.parallel`` > 1: the generation fans out).

    Each result goes into ``SearchRun.state['partial']`` by an atomic update of
    its own key, so relaxation fireworks running side by side (on any
    workers) never overwrite each other; the generation firework that follows
    them finds every result there.  Offspring already there are skipped, so a
    rerun repeats nothing.

    Required parameters
    -------------------
    search : str
    generation : int
    ids : list of str
        Individual ids of this firework's share of the offspring.
    """

    required_params = ["search", "generation", "ids"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        name, gen = self["search"], int(self["generation"])
        run = SearchRun.objects(name=name).first()
        if run is None:
            raise ValueError(f"search run {name!r} is not in the database; submit the CSP workflow again")
        stored = RunState.of(run)
        if stored.generation != gen:  # that generation finished (a rerun after the fact): nothing to do
            return FWAction(stored_data={"stale": True})
        state = stored.search_state()
        done = set(stored.partial_of(gen))
        wanted = set(self["ids"]) - done
        offspring = [ind for ind in propose_offspring(state) if ind.id in wanted]
        if not offspring:
            return FWAction(stored_data={"relaxed": 0})
        relaxer = make_relaxer(run, fw_spec)
        coll = SearchRun._get_collection()
        with progress(total=len(offspring), desc=f"[{name} gen {gen}] relaxations", unit="structure") as bar:
            for k, ind in enumerate(offspring):
                out = relax_one(ind, relaxer, state.settings)
                key = f"state.partial.{gen}.{ind.id}"  # its own key: relaxation fireworks never overwrite each other
                retry_store_race(lambda: coll.update_one({"name": name}, {"$set": {key: out}}), attempts=5,
                                 pause=0.05)
                flush_store(min_interval=0.5)
                bar.update(note=_progress_line(name, gen, k, len(offspring), type(ind).from_dict(out)))
        return FWAction(stored_data={"relaxed": len(offspring)})


@explicit_serialize
class CSPVerifyTask(FiretaskBase):
    """Relax every distinct candidate within ``verify.within_mev`` of the best with the oracle.

    Both energies are kept: the search's (MTP or oracle) enthalpy and the
    oracle's after its own relaxation; each oracle result is stored as a
    ``Configuration`` (tag ``csp-verify``).  The relaxations follow
    :class:`~pes_core.search.VerifySettings` (``verify.fmax`` and
    ``verify.steps``, default: those of ``relax``; the optimizer of ``relax``).
    Candidates verified already are skipped (idempotent rerun).
    """

    required_params = ["search"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        run = SearchRun.objects.get(name=self["search"])
        stored = RunState.of(run)
        state = stored.search_state()
        cfg = run.settings
        verify = VerifySettings.from_config(cfg)
        rs = verify.relax_settings(RelaxSettings.from_config(cfg))
        done = {v["id"]: v for v in stored.verification}
        oracle = get_oracle(cfg["oracle"], cfg.get("oracle_settings"), env=worker_env(fw_spec))
        relaxer = OracleRelaxer(oracle, fmax=rs.fmax, steps=rs.steps, optimizer=rs.optimizer,
                                progress=StepReporter(f"[{run.name}] verification relaxation", rs.steps),
                                workdir=_oracle_workdir(oracle, fw_spec, "verify"))
        todo = [row["individual"] for row in candidate_table(state, within=verify.within_mev / 1000.0)
                if row["individual"].id not in done]
        for ind in progress(todo, desc=f"[{run.name}] verification", unit="candidate"):
            done[ind.id] = _verify_one(run.name, ind, relaxer, oracle, state.settings.pressure_gpa)
            stored.verification = list(done.values())
            stored.save(run)
            flush_store()
        return FWAction(stored_data={"verified": len(done)})


def _verify_one(name: str, ind, relaxer: OracleRelaxer, oracle, pressure_gpa: float) -> dict:
    """Relax one candidate on the oracle; its verification entry (the final oracle result stored)."""
    res = relaxer(ind.atoms, pressure_gpa)
    entry = {"id": ind.id, "search_enthalpy_per_atom": ind.enthalpy_per_atom,
             "oracle_enthalpy_per_atom": None if res.failed else res.enthalpy_per_atom,
             "oracle_calls": res.n_calls + (0 if res.failed else 1),  # the relaxation + the stored single point
             "converged": res.converged, "failed": res.failed}
    if not res.failed:
        final = oracle.compute(res.atoms)
        doc, _ = store_result(final, tags=[f"csp:{name}", "csp-verify"], workflow=name,
                              generator=f"csp-verify:{ind.origin}")
        entry["configuration"] = doc.content_hash
        entry["structure"] = to_structure(res.atoms).as_dict()
    return jsonable(entry)


@explicit_serialize
class CSPReportTask(FiretaskBase):
    """Write the search report (history plot, ranked table, CIFs) next to the launch root."""

    required_params = ["search"]
    optional_params = ["out_dir"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        root = Path(self.get("out_dir") or ((runtime.LAUNCH_ROOT or Path.cwd()) / ".." / "reports"))
        out = write_csp_report(self["search"], root.resolve() / self["search"])
        return FWAction(stored_data={"report": str(out)})
