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

Models are stored as the ``.mtp`` text (``PotentialModel.parameters``) and the
:class:`pes_core.active.ActiveSet` bytes (``PotentialModel.active_set``) in GridFS.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace

import numpy as np
from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize

from pes_core.active.settings import ActiveSettings
from pes_core.db import (
    ActiveLearningEvent,
    Configuration,
    PotentialModel,
    SearchRun,
    jsonable,
)
from workflows.core.runtime import current_fw_id, ensure_domain_db, flush_store

logger = logging.getLogger(__name__)

__all__ = ["CSPPreselectTask", "MTPTrainTask", "OracleTrajectoryTask", "load_model",
           "oracle_fireworks", "train_firework", "trajectory_fireworks", "trajectory_frames"]


def _species(config: dict) -> list[str]:
    from pes_core.search import SearchSettings

    return SearchSettings.from_dict(config["search"]).elements()


def load_model(model_id: str):
    """``(MTPPotential, ActiveSet, PotentialModel)`` of a stored model."""
    from pes_core.active import ActiveSet
    from pes_core.active.mlip_state import potential_from_text

    doc = PotentialModel.objects(id=model_id).first()
    if doc is None:
        raise ValueError(f"potential model {model_id!r} is not in the database; was the training firework run?")
    pot = potential_from_text(doc.parameters.read().decode())
    doc.parameters.seek(0)
    aset = ActiveSet.from_bytes(doc.active_set.read())
    return pot, aset, doc


def _initial_potential(config: dict, st: ActiveSettings):
    from pes_core.mtp import MTPPotential

    return MTPPotential.from_level(st.level, _species(config), max_dist=st.max_dist, seed=st.seed)


def oracle_fireworks(name: str, config: dict, structures: list, *, generator: str,
                     extra: list[dict] | None = None, parents=None) -> list[Firework]:
    """Oracle fireworks (one per structure for ``dft`` oracles, one batch otherwise), tag ``csp:<name>``."""
    from pes_core.oracles import oracle_class
    from workflows.oracle.builders import oracle_firework

    oracle = config["oracle"]
    size = 1 if oracle_class(oracle).category == "dft" else max(1, len(structures))
    extra = extra or [{} for _ in structures]
    fws = []
    for k in range(0, len(structures), size):
        fws.append(oracle_firework(
            structures[k:k + size], oracle, oracle_settings=config.get("oracle_settings") or {},
            tags=[f"csp:{name}", generator.split(":")[0]], generator=generator, workflow=name,
            extra=extra[k:k + size], name=f"csp {name} {generator} oracle [{k // size + 1}]", parents=parents,
            allow_failures=True,
        ))
    return fws


def trajectory_fireworks(name: str, config: dict, structures: list, *, generator: str, steps: int, every: int,
                         extra: list[dict] | None = None, parents=None) -> list[Firework]:
    """Short oracle relaxations (:class:`OracleTrajectoryTask`) in the oracle's category, tag ``csp:<name>``.

    One firework per structure for ``dft`` oracles, one batch otherwise.
    """
    from pes_core.oracles import oracle_class

    cls = oracle_class(config["oracle"])
    size = 1 if cls.category == "dft" else max(1, len(structures))
    extra = extra or [{} for _ in structures]
    fws = []
    for k in range(0, len(structures), size):
        fws.append(Firework(
            [OracleTrajectoryTask(search=name, structures=[s.as_dict() for s in structures[k:k + size]],
                                  generator=generator, steps=int(steps), every=int(every),
                                  extra=jsonable(extra[k:k + size]))],
            name=f"csp {name} {generator} oracle relaxation [{k // size + 1}]",
            spec={"_category": cls.category, "pes_kind": "oracle_trajectory", "search": name,
                  "_allow_fizzled_parents": True},
            parents=parents))
    return fws


def trajectory_frames(start_hash: str) -> list[Configuration]:
    """Stored frames of the oracle trajectory that started at configuration ``start_hash``, in step order."""
    docs = list(Configuration.objects(extra__trajectory=start_hash))
    return sorted(docs, key=lambda d: int((d.extra or {}).get("step", 0)))


def train_firework(name: str, parents=None, label: str = "") -> Firework:
    """The retraining firework (category ``ml``)."""
    return Firework([MTPTrainTask(search=name)], name=f"csp {name} mtp training{(' ' + label) if label else ''}",
                    spec={"_category": "ml", "pes_kind": "mtp_train", "search": name}, parents=parents)


@explicit_serialize
class CSPPreselectTask(FiretaskBase):
    """Pre-exploration of search ``search``: choose the initial training set by the grade alone."""

    required_params = ["search"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.active import preselect, random_pool
        from pes_core.oracles import to_structure
        from pes_core.search import SearchSettings
        from workflows.csp.state import start_search

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
        run.state = {**run.state, "active": {**(run.state.get("active") or {}),
                                             "preselect": {"pool": len(pool), "selected": len(chosen)}}}
        run.save()
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
        from pymatgen.core import Structure

        from pes_core.active import oracle_trajectory
        from pes_core.db import calculation_hash, store_result
        from pes_core.oracles import get_oracle, to_atoms
        from workflows.core.runtime import worker_env

        ensure_domain_db(fw_spec)
        name = self["search"]
        run = SearchRun.objects.get(name=name)
        config = run.settings
        osettings = config.get("oracle_settings") or {}
        oracle = get_oracle(config["oracle"], osettings, env=worker_env(fw_spec))
        pressure = float(run.state["search"]["settings"].get("pressure_gpa", 0.0))
        extras = self.get("extra") or [{} for _ in self["structures"]]
        gen = self["generator"]
        n_calls, n_stored, failed = 0, 0, []
        for sd, ex in zip(self["structures"], extras):
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


@explicit_serialize
class MTPTrainTask(FiretaskBase):
    """Fit the MTP of search ``search`` on all its configurations and make it current."""

    required_params = ["search"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pymatgen.core import Structure

        from pes_core.active import ActiveSet, low_energy_weights, screen_training
        from pes_core.active.mlip_state import potential_to_text
        from pes_core.mtp import FitSettings, TrainingRecord, evaluate, fit_mtp

        ensure_domain_db(fw_spec)
        name = self["search"]
        run = SearchRun.objects.get(name=name)
        config = run.settings
        st = ActiveSettings.from_config(config)
        docs = sorted(Configuration.objects(tags=f"csp:{name}", oracle=config["oracle"]),
                      key=lambda d: d.content_hash)
        # training data: the kept pre-exploration frames, what active learning chose (csp-active), and oracle
        # checks of the best candidates once their MTP error exceeded the tolerance (LearningRelaxer._check_best
        # lists them); not verification relaxations nor the frames in between (a configuration that is both,
        # e.g. a learned check frame that a verification relaxation reached again, stays training data)
        learned_checks = set((run.state.get("active") or {}).get("check_learned") or [])

        def _learned(d) -> bool:
            return "csp-active" in (d.tags or []) or d.content_hash in learned_checks

        docs = [d for d in docs if _learned(d)
                or ("csp-preselect" in (d.tags or []) and "csp-trajectory" not in (d.tags or []))]
        if not docs:
            raise RuntimeError(f"search {name}: no oracle results tagged csp:{name} to train on; "
                               "did every oracle firework fail?")
        ids = [d.content_hash for d in docs]
        # the same configurations fitted with the same settings give the same model: reuse it on a rerun
        fit_key = json.dumps({"level": st.level, "max_dist": st.max_dist, "max_iter": st.max_iter, "seed": st.seed,
                              "energy_weighting": st.energy_weighting, "train_window": st.train_window,
                              "min_train": st.min_train, "fit_learned": True}, sort_keys=True)
        key = hashlib.sha256((",".join(ids) + "|" + fit_key).encode()).hexdigest()
        existing = PotentialModel.objects(workflow=name, settings__training_key=key).first()
        if existing is not None:
            self._make_current(run, existing, ids)
            return FWAction(stored_data={"model_id": str(existing.id), "reused": True})
        records = [TrainingRecord(Structure.from_dict(d.structure), d.energy, d.forces, d.stress) for d in docs]
        # what active learning chose (csp-active) and the checks it learned are fitted whatever their energy;
        # the window screens the pre-exploration
        fit_records = screen_training(records, st.train_window, st.min_train, keep=[_learned(d) for d in docs])
        if st.energy_weighting is not None:
            w = low_energy_weights([r.energy / r.n_atoms for r in fit_records], st.energy_weighting)
            fit_records = [replace(r, weight=float(wk)) for r, wk in zip(fit_records, w)]
        parent = PotentialModel.objects(id=run.model_id).first() if run.model_id else None
        if parent is not None:
            pot, _, _ = load_model(str(parent.id))
        else:
            pot = _initial_potential(config, st)
        fit = FitSettings(max_iter=st.max_iter, fit_radial=st.max_iter > 0, log=None, validation_fraction=0.0,
                          weighting="per_atom",
                          seed=st.seed)
        pot, report = fit_mtp(pot, fit_records, fit, validation=[])
        aset = ActiveSet.from_training(pot, [r.atoms for r in records], st.mode, st.include_radial, labels=ids)
        tr = report.train
        # the fit's RMSE covers the learned high-energy configurations too (weighted low in the loss); the
        # accuracy that ranks structures is the one within the window of the lowest energy
        e_low = min(r.energy / r.n_atoms for r in fit_records) + (st.train_window or float("inf"))
        low = [r for r in fit_records if r.energy / r.n_atoms <= e_low]
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
            training_ids=ids, workflow=name, parent=str(parent.id) if parent is not None else None,
            fw_id=current_fw_id(fw_spec),
        )
        model.parameters.put(potential_to_text(pot).encode(), content_type="text/plain", filename=f"{name}.mtp")
        model.active_set.put(aset.to_bytes(), content_type="application/octet-stream",
                             filename=f"{name}.active_set.npz")
        model.save()
        self._make_current(run, model, ids)
        print(f"  [{name}] MTP v{model.version} fitted on {len(ids)} configurations: "
              f"E {1e3 * tr.energy_rmse:.1f} meV/atom ({1e3 * rmse_low:.1f} on the {len(low)} within "
              f"{st.train_window} eV/atom of the lowest), F {tr.force_rmse:.3f} eV/A", flush=True)
        return FWAction(stored_data={"model_id": str(model.id), "version": model.version,
                                     "n_train": len(ids), "metrics": model.metrics})

    @staticmethod
    def _make_current(run: SearchRun, model: PotentialModel, ids: list[str]) -> None:
        run.model_id = str(model.id)
        run.save()
        ActiveLearningEvent.objects(configuration_hash__in=ids, processed=False).update(set__processed=True)
        flush_store()

