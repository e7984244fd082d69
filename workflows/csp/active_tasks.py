"""Firetasks of MTP active learning in the CSP loop.

``CSPPreselectTask``  pre-exploration: pool of random structures, maxvol on an
                      untrained MTP, short oracle relaxations of the chosen
                      ones (``active.prerelax_steps``; single points with 0)
                      as a detour before the training firework; no oracle call itself.
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

import hashlib
import json
import logging
from dataclasses import replace

import numpy as np
from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize
from pymatgen.core import Structure

from pes_core.active import ActiveSet, oracle_trajectory, preselect, random_pool
from pes_core.active.decisions import TrainingChoice, choose_training
from pes_core.active.mlip_state import potential_to_text
from pes_core.active.settings import ActiveSettings
from pes_core.db import (
    ActiveLearningEvent,
    Configuration,
    PotentialModel,
    SearchRun,
    calculation_hash,
    jsonable,
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
from workflows.csp.learning import load_model, trajectory_frames
from workflows.csp.state import RunState, category_of, start_search
from workflows.oracle.builders import oracle_batches, oracle_firework

logger = logging.getLogger(__name__)

__all__ = ["CSPPreselectTask", "MTPTrainTask", "OracleTrajectoryTask", "oracle_fireworks", "train_firework",
           "trajectory_fireworks"]


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


def train_firework(name: str, parents=None, label: str = "") -> Firework:
    """The retraining firework (category ``ml``)."""
    return Firework([MTPTrainTask(search=name)], name=f"csp {name} mtp training{(' ' + label) if label else ''}",
                    spec={"_category": "ml", "pes_kind": "mtp_train", "search": name}, parents=parents)


@explicit_serialize
class CSPPreselectTask(FiretaskBase):
    """Pre-exploration of search ``search``: choose the initial training set by the grade alone."""

    required_params = ["search"]

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
        pool = random_pool(settings, st.pool_size, seed=settings.seed, volume_factors=st.volume_factors)
        pot = _initial_potential(config, st)
        res = preselect(pot, pool, mode=st.mode, include_radial=st.include_radial, max_configurations=st.max_initial)
        chosen = [pool[k] for k in res.indices]
        grades = [float(res.grades[k]) for k in res.indices]
        state = RunState.of(run)
        state.active.preselect = {"pool": len(pool), "selected": len(chosen)}
        state.save(run)
        flush_store()
        print(f"  [{name}] pre-exploration: {len(chosen)} of {len(pool)} random structures selected "
              f"(maxvol on an untrained level-{st.level} MTP, no oracle calls)", flush=True)
        extra = [{"grade": g, "reason": "preselect"} for g in grades]
        if st.prerelax_steps > 0:
            fws = trajectory_fireworks(name, config, [to_structure(a) for a in chosen], generator="csp-preselect",
                                       steps=st.prerelax_steps, every=st.prerelax_every, extra=extra)
        else:
            fws = oracle_fireworks(name, config, [to_structure(a) for a in chosen], generator="csp-preselect",
                                   extra=extra)
        return FWAction(detours=[Workflow(fws, name=f"csp {name} pre-exploration oracle")],
                        stored_data={"pool": len(pool), "selected": len(chosen)})


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


def training_role(doc: Configuration, learned_checks: set[str]) -> str | None:
    """``"learned"``, ``"preselect"`` or ``None`` (not training data) for a stored oracle result of a search.

    Training data: the kept pre-exploration frames, what active learning
    chose (``csp-active``), and oracle checks of the best candidates once their
    MTP error exceeded the tolerance (``learned_checks``); not verification
    relaxations nor the frames in between (a configuration that is both, e.g.
    a learned check frame that a verification relaxation reached again, stays
    training data).
    """
    tags = doc.tags or []
    if "csp-active" in tags or doc.content_hash in learned_checks:
        return "learned"
    if "csp-preselect" in tags and "csp-trajectory" not in tags:
        return "preselect"
    return None


def _training_key(ids: list[str], st: ActiveSettings) -> str:
    """The same configurations fitted with the same settings give the same model: its key."""
    fit_key = json.dumps({"level": st.level, "max_dist": st.max_dist, "max_iter": st.max_iter, "seed": st.seed,
                          "energy_weighting": st.energy_weighting, "train_window": st.train_window,
                          "min_train": st.min_train, "fit_learned": True}, sort_keys=True)
    return hashlib.sha256((",".join(ids) + "|" + fit_key).encode()).hexdigest()


@explicit_serialize
class MTPTrainTask(FiretaskBase):
    """Fit the MTP of search ``search`` on all its configurations and make it current.

    The training set and its fitted part with weights are chosen by
    :func:`pes_core.active.decisions.choose_training`; a model with the same
    training ids and settings is reused (idempotent rerun).
    """

    required_params = ["search"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        name = self["search"]
        run = SearchRun.objects.get(name=name)
        config = run.settings
        st = ActiveSettings.from_config(config)
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
        key = _training_key(choice.ids, st)
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
