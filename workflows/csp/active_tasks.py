"""Firetasks of MTP active learning in the CSP loop.

``CSPPreselectTask``  pre-exploration: pool of random structures (relaxed on
                      ``active.prior`` when set), maxvol on an untrained MTP,
                      short oracle relaxations of the chosen ones
                      (``active.prerelax_steps``; single points with 0 or a
                      prior) as a detour before the training firework, in
                      rounds with ``active.preexploration: adaptive``; no
                      oracle call itself.
``OracleTrajectoryTask`` short oracle relaxations; every frame stored (oracle category).
``MTPTrainTask``      fit the search's MTP on every ``Configuration`` tagged
                      ``csp:<search>`` (warm start from the current model),
                      store a ``PotentialModel`` with its active set and point
                      ``SearchRun.model_id`` at it.  Idempotent: a model with
                      the same training ids is reused.

Also the factories of the fireworks these tasks and the learning step need:
:func:`oracle_fireworks` and :func:`trajectory_fireworks` (the oracle's
category) and :func:`train_firework` (``ml``).  What goes into a fit is chosen
by :func:`pes_core.active.decisions.choose_training`.

Models are stored as the ``.mtp`` text (``PotentialModel.parameters``) and the
:class:`pes_core.active.ActiveSet` bytes (``PotentialModel.active_set``) in GridFS (read back by
:func:`workflows.csp.learning.load_model`).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize
from pymatgen.core import Structure

from pes_core.active import ActiveSet, oracle_trajectory, preselect, random_pool
from pes_core.active.decisions import TrainingChoice, choose_training
from pes_core.active.mlip_state import potential_to_text
from pes_core.active.preselect import (
    adapt_prerelax_steps,
    check_prior,
    preexploration_covered,
    prior_candidates,
)
from pes_core.active.settings import ActiveSettings
from pes_core.db import (
    ActiveLearningEvent,
    Configuration,
    PotentialModel,
    SearchRun,
    calculation_hash,
    jsonable,
    record_failure,
    store_result,
)
from pes_core.mtp import FitSettings, MTPPotential, TrainingRecord, evaluate, fit_mtp
from pes_core.oracles import get_oracle, to_atoms, to_structure
from pes_core.progress import progress
from pes_core.search import SearchSettings
from workflows.core.runtime import (
    current_fw_id,
    ensure_domain_db,
    flush_store,
    worker_env,
)
from workflows.csp.learning import (
    accurate_training,
    load_model,
    training_key,
    training_role,
    trajectory_frames,
    two_stage_state,
)
from workflows.csp.state import RunState, category_of, start_search
from workflows.oracle.builders import oracle_batches, oracle_firework

logger = logging.getLogger(__name__)

__all__ = ["CSPPreselectTask", "MTPTrainTask", "OracleTrajectoryTask", "oracle_fireworks", "preselect_firework",
           "train_firework", "trajectory_fireworks"]


def _species(config: dict) -> list[str]:
    return SearchSettings.from_dict(config["search"]).elements()


def _initial_potential(config: dict, st: ActiveSettings) -> MTPPotential:
    return MTPPotential.from_level(st.level, _species(config), max_dist=st.max_dist, seed=st.seed)


def oracle_fireworks(name: str, config: dict, structures: list, *, generator: str,
                     extra: list[dict] | None = None, parents=None) -> list[Firework]:
    """Oracle fireworks (one per structure for ``dft`` oracles, one batch otherwise), tag ``csp:<name>``.

    Their category is the oracle's (:func:`workflows.oracle.builders.oracle_firework`).
    """
    oracle = config["oracle"]
    extra = extra or [{} for _ in structures]
    return [oracle_firework(
        structures[batch], oracle, oracle_settings=config.get("oracle_settings") or {},
        tags=[f"csp:{name}", generator.split(":")[0]], generator=generator, workflow=name,
        extra=extra[batch], name=f"csp {name} {generator} oracle [{b + 1}]", parents=parents,
        allow_failures=True,
    ) for b, batch in enumerate(oracle_batches(len(structures), oracle, max(1, len(structures))))]


def trajectory_fireworks(name: str, config: dict, structures: list, *, generator: str, steps: int, every: int,
                         extra: list[dict] | None = None, parents=None) -> list[Firework]:
    """Short oracle relaxations (:class:`OracleTrajectoryTask`) in the oracle's category, tag ``csp:<name>``.

    One firework per structure for ``dft`` oracles, one batch otherwise.
    """
    category = category_of(config, "oracle")
    extra = extra or [{} for _ in structures]
    return [Firework(
        [OracleTrajectoryTask(search=name, structures=[s.as_dict() for s in structures[batch]],
                              generator=generator, steps=int(steps), every=int(every),
                              extra=jsonable(extra[batch]))],
        name=f"csp {name} {generator} oracle relaxation [{b + 1}]",
        spec={"_category": category, "pes_kind": "oracle_trajectory", "search": name,
              "_allow_fizzled_parents": True},
        parents=parents) for b, batch in enumerate(oracle_batches(len(structures), config["oracle"],
                                                                  max(1, len(structures))))]


def train_firework(name: str, parents=None, label: str = "", accurate: bool = False) -> Firework:
    """The retraining firework (category ``ml``); ``accurate``: the two-stage scheme's accurate MTP."""
    task = MTPTrainTask(search=name, stage="accurate") if accurate else MTPTrainTask(search=name)
    what = "accurate mtp training" if accurate else "mtp training"
    return Firework([task], name=f"csp {name} {what}{(' ' + label) if label else ''}",
                    spec={"_category": "ml", "pes_kind": "mtp_train", "search": name}, parents=parents)


def preselect_firework(name: str, *, round_: int = 0, pool: list | None = None, steps: int | None = None,
                       labelled: int = 0, parents=None, formula: str | None = None) -> Firework:
    """The pre-exploration firework (category ``ml``: maxvol and the prior are models, no oracle call).

    ``round_`` > 0: a later round of ``active.preexploration: adaptive``, with
    the ``pool`` members not labelled yet (structure dicts), the oracle
    pre-relaxation ``steps`` of its batch and the number ``labelled`` so far.
    """
    params = {} if round_ == 0 else {"round": int(round_), "pool": pool or [], "steps": int(steps or 0),
                                     "labelled": int(labelled)}
    spec = {"_category": "ml", "pes_kind": "csp_preselect", "search": name}
    if formula is not None:
        spec["formula"] = formula
    label = "" if round_ == 0 else f" (round {round_ + 1})"
    return Firework([CSPPreselectTask(search=name, **params)], name=f"csp {name} pre-exploration{label}",
                    spec=spec, parents=parents)


def _pool_dict(atoms) -> dict:
    """A pool member as firework parameter: its structure and its ``info``."""
    return {"structure": to_structure(atoms).as_dict(), "info": jsonable(dict(atoms.info))}


def _pool_atoms(d: dict):
    sd = d["structure"]
    atoms = to_atoms(sd if isinstance(sd, Structure) else Structure.from_dict(sd))  # FireWorks may deserialize
    atoms.info = dict(d.get("info") or {})
    return atoms


def _prerelax_errors(name: str, config: dict, round_: int, model: PotentialModel) -> list[float]:
    """Errors (eV/atom) of the fit before round ``round_``'s batch on the last frames of its oracle pre-relaxations.

    Empty when that model has no parent (the batch was the first one fitted).
    """
    if not model.parent:
        return []
    parent = load_model(model.parent)[0]
    docs = Configuration.objects(tags=f"csp:{name}", oracle=config["oracle"], generator="csp-preselect",
                                 extra__preselect_round=int(round_))
    last: dict[str, Configuration] = {}
    for d in docs:
        ex = d.extra or {}
        key = ex.get("trajectory") or d.content_hash
        if d.energy is not None and np.isfinite(d.energy) and (
                key not in last or int(ex.get("step", 0)) > int((last[key].extra or {}).get("step", 0))):
            last[key] = d
    out = []
    for d in last.values():
        atoms = to_atoms(Structure.from_dict(d.structure))
        out.append((evaluate(parent, atoms, forces=False).energy - d.energy) / len(atoms))
    return out


@explicit_serialize
class CSPPreselectTask(FiretaskBase):
    """Pre-exploration of search ``search``: choose the initial training set by the grade alone.

    ``active.preexploration: fixed`` (round 0 only): maxvol on an untrained
    MTP picks from the random pool and the oracle labels the picks.
    ``adaptive``: the picks are labelled ``preexploration_batch`` at a time,
    each batch followed by a fit and a next round (``round``, ``pool``,
    ``steps``, ``labelled``) that grades the rest of the pool on the new
    active set and stops once it is covered
    (:func:`pes_core.active.preselect.preexploration_covered`).  With
    ``active.prior`` the pool is relaxed on the prior first (here, in this
    ``ml`` firework) and the oracle labels single points.
    """

    required_params = ["search"]
    optional_params = ["round", "pool", "steps", "labelled"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        name = self["search"]
        run = SearchRun.objects(name=name).first()
        if run is None:
            if not fw_spec.get("pes_csp_config"):
                raise ValueError(f"search run {name!r} is not in the database; submit the CSP workflow again")
            run = start_search(name, fw_spec["pes_csp_config"])
        config = run.settings
        st = ActiveSettings.from_config(config)
        settings = SearchSettings.from_dict(config["search"])
        round_ = int(self.get("round", 0))
        adaptive = st.preexploration == "adaptive"
        labelled = int(self.get("labelled", 0))
        cap = st.max_initial
        if adaptive:
            left = None if cap is None else max(0, int(cap) - labelled)
            cap = st.preexploration_batch if left is None else min(st.preexploration_batch, left)
        aset, note = None, ""
        if round_ == 0:
            pool, n_prior = self._pool(name, config, st, settings, fw_spec)
            pot = _initial_potential(config, st)
            steps = 0 if st.prior else st.prerelax_steps
        else:
            pool, n_prior = [_pool_atoms(d) for d in self.get("pool") or []], None
            pot, aset, model = load_model(run.model_id)
            steps = int(self.get("steps", 0))
            if steps > 0:
                errors = _prerelax_errors(name, config, round_ - 1, model)
                new = adapt_prerelax_steps(steps, errors, st.prerelax_tolerance)
                if new != steps:
                    note = (f"; the MTP predicted the last batch's relaxed energies within "
                            f"{1e3 * float(np.sqrt(np.mean(np.square(errors)))):.0f} meV/atom: "
                            f"pre-relaxation {steps} -> {new} oracle steps")
                steps = new
            grades = aset.grade_many(pot, pool) if pool else np.zeros(0)
            covered = preexploration_covered(grades, st.select, st.preexploration_cover)
            if covered or cap == 0:
                above = int(np.count_nonzero(grades > st.select))
                why = (f"{above} of {len(pool)} remaining pool structures above grade {st.select:g}"
                       if covered else f"max_initial {st.max_initial} labelled")
                return self._finish(run, name, round_, labelled, f"pool covered ({why})")
        if cap == 0:
            return self._finish(run, name, round_, labelled, "max_initial is 0")
        res = preselect(pot, pool, mode=st.mode, include_radial=st.include_radial, max_configurations=cap,
                        active_set=aset)
        if not res.indices:
            return self._finish(run, name, round_, labelled, "maxvol found nothing new in the pool")
        chosen = [pool[k] for k in res.indices]
        grades = [float(res.grades[k]) for k in res.indices]
        labelled += len(chosen)
        state = RunState.of(run)
        info = {"pool": len(pool)} if round_ == 0 else dict(state.active.preselect or {})  # later rounds add up
        info["selected"] = labelled
        if adaptive:
            info.update(rounds=round_ + 1, prerelax_steps=int(steps))
        if n_prior is not None:
            info["prior_relaxations"] = n_prior
        state.active.preselect = info
        state.save(run)
        flush_store()
        what = (f"{len(chosen)} of {len(pool)} {'prior-relaxed' if st.prior else 'random'} configurations selected "
                f"(maxvol on {'an untrained' if round_ == 0 else 'the current'} level-{st.level} MTP, "
                "no oracle calls)")
        print(f"  [{name}] pre-exploration{f' round {round_ + 1}' if adaptive else ''}: {what}{note}", flush=True)
        extra = [{"grade": g, "reason": "prior" if st.prior else "preselect"} for g in grades]
        if st.prior:
            for ex, a in zip(extra, chosen):
                ex.update(prior=st.prior, prior_step=a.info.get("prior_step"),
                          prior_energy_per_atom=a.info.get("prior_energy_per_atom"))
        if adaptive:
            for ex in extra:
                ex["preselect_round"] = round_
        structures = [to_structure(a) for a in chosen]
        if steps > 0:
            fws = trajectory_fireworks(name, config, structures, generator="csp-preselect", steps=steps,
                                       every=st.prerelax_every, extra=extra)
        else:
            fws = oracle_fireworks(name, config, structures, generator="csp-preselect", extra=extra)
        if adaptive:
            rest = [_pool_dict(pool[k]) for k in range(len(pool)) if k not in set(res.indices)]
            train = train_firework(name, parents=fws, label=f"(pre-exploration round {round_ + 1})")
            nxt = preselect_firework(name, round_=round_ + 1, pool=rest, steps=steps, labelled=labelled,
                                     parents=[train])
            fws = fws + [train, nxt]
        return FWAction(detours=[Workflow(fws, name=f"csp {name} pre-exploration oracle")],
                        stored_data={"pool": len(pool), "selected": len(chosen), "round": round_,
                                     "oracle_steps": steps})

    @staticmethod
    def _pool(name: str, config: dict, st: ActiveSettings, settings: SearchSettings,
              fw_spec: dict) -> tuple[list, int | None]:
        """The candidates of round 0: the random pool, or its prior relaxations (with their number)."""
        if not st.prior:
            return random_pool(settings, st.pool_size, seed=settings.seed, volume_factors=st.volume_factors), None
        check_prior(st.prior, config["oracle"], settings.elements())
        starts = random_pool(settings, st.pool_size, seed=settings.seed, volume_factors=[1.0])
        prior = get_oracle(st.prior, {}, env=worker_env(fw_spec))
        pool = prior_candidates(prior, starts, steps=st.prior_steps, frames=st.prior_frames,
                                volume_factors=st.volume_factors, pressure_gpa=settings.pressure_gpa,
                                fmax=0.05)
        if not pool:
            raise RuntimeError(f"search {name}: every prior ({st.prior}) relaxation of the random pool failed at "
                               "its first step; set active.prior: null or check the prior on this composition")
        print(f"  [{name}] prior {st.prior}: {len(starts)} random structures relaxed ({st.prior_steps} steps at "
              f"most, no oracle calls), {len(pool)} candidate configurations", flush=True)
        return pool, len(starts)

    @staticmethod
    def _finish(run: SearchRun, name: str, round_: int, labelled: int, why: str) -> FWAction:
        state = RunState.of(run)
        info = dict(state.active.preselect or {})
        info.update(rounds=round_, selected=labelled)
        state.active.preselect = info
        state.save(run)
        flush_store()
        print(f"  [{name}] pre-exploration stops after {round_} round(s), {labelled} structures labelled: {why}",
              flush=True)
        return FWAction(stored_data={"round": round_, "stopped": why, "labelled": labelled})


@explicit_serialize
class OracleTrajectoryTask(FiretaskBase):
    """Short oracle relaxations of ``structures``; every frame is stored as a ``Configuration``.

    Frames carry ``extra`` ``{"trajectory": <hash of frame 0>, "step": k,
    "kept": bool}`` plus the given ``extra``; frames not kept for fitting get
    the tag ``csp-trajectory`` (stored because every oracle call is data and
    is counted, left out of the fit).  Idempotent: a structure whose frame 0
    is stored already is not relaxed again.
    """

    required_params = ["search", "structures", "generator", "steps", "every"]
    optional_params = ["extra"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        name = self["search"]
        run = SearchRun.objects.get(name=name)
        config = run.settings
        osettings = config.get("oracle_settings") or {}
        oracle = get_oracle(config["oracle"], osettings, env=worker_env(fw_spec))
        pressure = RunState.of(run).pressure_gpa
        extras = self.get("extra") or [{} for _ in self["structures"]]
        gen = self["generator"]
        n_calls, n_stored, failed = 0, 0, []
        items = list(zip(self["structures"], extras))
        for sd, ex in progress(items, desc=f"[{name}] {gen} oracle relaxations", unit="structure",
                               disable=None if len(items) > 1 else True):
            structure = sd if isinstance(sd, Structure) else Structure.from_dict(sd)  # FireWorks may deserialize
            h0 = calculation_hash(structure, config["oracle"], osettings)
            if trajectory_frames(h0):
                continue
            traj = oracle_trajectory(oracle, to_atoms(structure), steps=int(self["steps"]),
                                     every=int(self["every"]), pressure_gpa=pressure)
            n_calls += traj.n_calls
            if traj.failed:
                failed.append(traj.failed)
                if not traj.results:  # refused at its start: remembered, so a check of it is not trusted
                    record_failure(structure, config["oracle"], osettings, traj.failed,
                                   fw_id=current_fw_id(fw_spec), workflow=name, tags=[f"csp:{name}", gen])
            for k, res in enumerate(traj.results):
                if k not in traj.kept and (res.energy is None or not np.isfinite(res.energy)):
                    continue
                tags = [f"csp:{name}", gen.split(":")[0]] + ([] if k in traj.kept else ["csp-trajectory"])
                store_result(res, oracle_settings=osettings, content_hash=h0 if k == 0 else None,
                             fw_id=current_fw_id(fw_spec), workflow=name, generator=gen, tags=tags,
                             extra=jsonable({**(ex or {}), "trajectory": h0, "step": k,
                                             "kept": k in traj.kept}))
                n_stored += 1
        flush_store()
        return FWAction(stored_data={"oracle_calls": n_calls, "stored": n_stored, "failed": failed})


@explicit_serialize
class MTPTrainTask(FiretaskBase):
    """Fit the MTP of search ``search`` on all its configurations and make it current.

    The training set and its fitted part with weights are chosen by
    :func:`pes_core.active.decisions.choose_training`; a model with the same
    training ids and settings is reused (idempotent rerun).
    """

    required_params = ["search"]
    optional_params = ["stage"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        name = self["search"]
        run = SearchRun.objects.get(name=name)
        config = run.settings
        st = ActiveSettings.from_config(config)
        if self.get("stage") == "accurate":
            return self._train_accurate(run, st, fw_spec)
        learned_checks = set(RunState.of(run).active.check_learned)
        docs = sorted(Configuration.objects(tags=f"csp:{name}", oracle=config["oracle"]), key=lambda d: d.content_hash)
        roles = [training_role(d, learned_checks) for d in docs]
        docs, learned = [d for d, r in zip(docs, roles) if r], [r == "learned" for r in roles if r]
        if not docs:
            raise RuntimeError(f"search {name}: no oracle results tagged csp:{name} to train on; "
                               "did every oracle firework fail?")
        records = [TrainingRecord(Structure.from_dict(d.structure), d.energy, d.forces, d.stress) for d in docs]
        choice = choose_training([d.content_hash for d in docs],
                                 [None if r.energy is None else r.energy / r.n_atoms for r in records],
                                 learned, st)
        key = training_key(choice.ids, st)
        existing = PotentialModel.objects(workflow=name, settings__training_key=key).first()
        if existing is not None:
            self._make_current(run, existing, choice.ids)
            return FWAction(stored_data={"model_id": str(existing.id), "reused": True})
        parent = PotentialModel.objects(id=run.model_id).first() if run.model_id else None
        pot = load_model(str(parent.id))[0] if parent is not None else _initial_potential(config, st)
        model = _fit_model(name, pot, records, choice, st, parent, key)
        model.fw_id = current_fw_id(fw_spec)
        model.save()
        self._make_current(run, model, choice.ids)
        m = model.metrics
        print(f"  [{name}] MTP v{model.version} fitted on {len(choice.ids)} configurations: "
              f"E {1e3 * m['energy_rmse']:.1f} meV/atom ({1e3 * m['energy_rmse_window']:.1f} on the "
              f"{m['n_window']} within {st.train_window} eV/atom of the lowest), F {m['force_rmse']:.3f} eV/A",
              flush=True)
        return FWAction(stored_data={"model_id": str(model.id), "version": model.version,
                                     "n_train": len(choice.ids), "metrics": model.metrics})

    @staticmethod
    def _train_accurate(run: SearchRun, st: ActiveSettings, fw_spec: dict) -> FWAction:
        """Fit the two-stage scheme's accurate MTP on the low-energy configurations; make it its current one.

        Its own model chain (``<search>-mtp-accurate``, warm start from its
        previous model, the level of ``two_stage.level``) and its own active
        set, built from the same in-window configurations; the current model
        is ``SearchRun.state['two_stage']['model_id']``.
        """
        name = run.name
        ts = st.accurate()
        docs, fit_st, key = accurate_training(run, st)
        if not docs:
            raise RuntimeError(f"search {name}: no oracle results tagged csp:{name} to train the accurate MTP on; "
                               "did every oracle firework fail?")
        ids = [d.content_hash for d in docs]
        existing = PotentialModel.objects(workflow=name, settings__training_key=key).first()
        if existing is not None:
            MTPTrainTask._make_accurate_current(run, existing, ids)
            return FWAction(stored_data={"model_id": str(existing.id), "reused": True, "stage": "accurate"})
        two = two_stage_state(RunState.of(run))
        parent = PotentialModel.objects(id=two["model_id"]).first() if two.get("model_id") else None
        pot = (load_model(str(parent.id))[0] if parent is not None else
               MTPPotential.from_level(ts.level, _species(run.settings), max_dist=st.max_dist, seed=st.seed))
        records = [TrainingRecord(Structure.from_dict(d.structure), d.energy, d.forces, d.stress) for d in docs]
        choice = choose_training(ids, [r.energy / r.n_atoms for r in records], [False] * len(records), fit_st)
        model = _fit_model(name, pot, records, choice, fit_st, parent, key)
        model.name = f"{name}-mtp-accurate"
        model.settings = jsonable({**model.settings, "stage": "accurate", "two_stage": ts.to_dict(),
                                   "train_window": ts.train_window})
        model.fw_id = current_fw_id(fw_spec)
        model.save()
        MTPTrainTask._make_accurate_current(run, model, ids)
        m = model.metrics
        print(f"  [{name}] accurate MTP v{model.version} (level {ts.level}) fitted on {len(ids)} configurations "
              f"within {1e3 * ts.train_window:.0f} meV/atom of the lowest: E {1e3 * m['energy_rmse']:.1f} meV/atom, "
              f"F {m['force_rmse']:.3f} eV/A", flush=True)
        return FWAction(stored_data={"model_id": str(model.id), "version": model.version, "n_train": len(ids),
                                     "metrics": model.metrics, "stage": "accurate"})

    @staticmethod
    def _make_accurate_current(run: SearchRun, model: PotentialModel, ids: list[str]) -> None:
        state = RunState.of(run)
        two = two_stage_state(state)
        two["model_id"] = str(model.id)
        state.other["two_stage"] = jsonable(two)
        state.save(run)
        ActiveLearningEvent.objects(configuration_hash__in=ids, processed=False,
                                    context__stage="accurate").update(set__processed=True)
        flush_store()

    @staticmethod
    def _make_current(run: SearchRun, model: PotentialModel, ids: list[str]) -> None:
        run.model_id = str(model.id)
        run.save()
        ActiveLearningEvent.objects(configuration_hash__in=ids, processed=False).update(set__processed=True)
        flush_store()


def _fit_model(name: str, pot: MTPPotential, records: list[TrainingRecord], choice: TrainingChoice,
               st: ActiveSettings, parent: PotentialModel | None, key: str) -> PotentialModel:
    """Fit ``pot`` on the chosen records; the (unsaved) ``PotentialModel`` with its active set and metrics."""
    fit_records = [records[k] for k in choice.fit]
    if choice.weights is not None:
        fit_records = [replace(r, weight=float(w)) for r, w in zip(fit_records, choice.weights)]
    fit = FitSettings(max_iter=st.max_iter, fit_radial=st.max_iter > 0, log=None, validation_fraction=0.0,
                      weighting="per_atom",  # the CSP loss as measured (energy per atom); MLIP's is vibrations
                      seed=st.seed)
    pot, report = fit_mtp(pot, fit_records, fit, validation=[])
    aset = ActiveSet.from_training(pot, [r.atoms for r in records], st.mode, st.include_radial, labels=choice.ids)
    tr = report.train
    # the fit's RMSE covers the learned high-energy configurations too (weighted low in the loss); the
    # accuracy that ranks structures is the one within the window of the lowest energy
    low = [records[k] for k in choice.window]
    errors = [(evaluate(pot, r.atoms, forces=False).energy - r.energy) / r.n_atoms for r in low]
    rmse_low = float(np.sqrt(np.mean(np.square(errors))))
    model = PotentialModel(
        name=f"{name}-mtp", kind="mtp", version=(parent.version + 1) if parent is not None else 0,
        settings=jsonable({"level": st.level, "max_dist": st.max_dist, "mode": st.mode,
                           "include_radial": st.include_radial, "max_iter": st.max_iter,
                           "energy_weighting": st.energy_weighting, "training_key": key,
                           "train_window": st.train_window, "n_fitted": len(fit_records),
                           "species": pot.species}),
        metrics=jsonable({"n_train": tr.n_configs, "energy_rmse": tr.energy_rmse,
                          "energy_rmse_window": rmse_low, "n_window": len(low), "force_rmse": tr.force_rmse,
                          "stress_rmse": tr.stress_rmse, "energy_mae": tr.energy_mae, "force_mae": tr.force_mae,
                          "min_dist": report.min_dist, "iterations": report.iterations,
                          "min_energy_per_atom": min(r.energy / r.n_atoms for r in records),
                          "active_set_filled": aset.n_filled, "active_set_size": aset.size}),
        training_ids=choice.ids, workflow=name, parent=str(parent.id) if parent is not None else None,
    )
    model.parameters.put(potential_to_text(pot).encode(), content_type="text/plain", filename=f"{name}.mtp")
    model.active_set.put(aset.to_bytes(), content_type="application/octet-stream", filename=f"{name}.active_set.npz")
    return model
