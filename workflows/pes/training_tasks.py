"""Firetasks of the PES training-set and model-fitting workflows (thin: pes_core does the work).

Training set (spec kind ``pes_training_set``)::

    PESReferenceTask -> oracle fireworks (systematic set)      -> PESStochasticTask
                     -> PESThermalTask x (parent, T) --detour--> oracle fireworks (snapshots) -^
        PESStochasticTask -> oracle fireworks (n-sphere samples) -> PESCollectTask -> PESFeaturizeTask [-> fit]

The thermal fireworks (spec key ``thermal``) run short oracle-driven MD
(:func:`pes_core.sampling.pes_training.thermal_snapshots`; the category of
the oracle, like any oracle work) and send their snapshots through ordinary
oracle fireworks as a detour, so the n-sphere stage, the collector and the
fit see them like any other configuration.

Fit (spec kind ``pes_fit``, or the ``fit`` section of a training set)::

    PESSplitTask -> PESCVTask x grid points (category ml) -> PESSelectTask

State lives in the domain database: relaxed cells and every oracle result are
``Configuration`` documents of the training-set workflow; the holdout split,
feature caches and the fit record are GridFS files (``pes_files``) named by
the workflow; trained models are ``PotentialModel`` documents.  Reruns reuse
what is stored (relaxations, oracle results, the split), so the workflows are
idempotent and resumable.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize
from pymatgen.core import Structure

from workflows.core.runtime import ensure_domain_db, flush_store, worker_env
from workflows.pes.fit_tasks import PESFeaturizeTask, fit_fireworks
from workflows.pes.store import (
    load_features,
    reference_energy,
    refine_cluster_sets,
    refine_errors,
    refine_label,
    relaxed_cells,
    report_dir,
    section_seed,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PESCollectTask",
    "PESReferenceTask",
    "PESRefineTask",
    "PESStochasticTask",
    "PESThermalTask",
    "refine_firework",
    "thermal_fireworks",
]

def _oracle(config: dict, fw_spec: dict):
    from pes_core.oracles import get_oracle

    return get_oracle(config["oracle"], config.get("oracle_settings") or {}, env=worker_env(fw_spec))


def _store(result, config: dict, generator: str, fw_spec: dict):
    from pes_core.db import store_result
    from workflows.core.runtime import current_fw_id

    doc, _ = store_result(result, oracle_settings=config.get("oracle_settings") or {},
                          fw_id=current_fw_id(fw_spec), workflow=config["name"], generator=generator,
                          tags=list(config.get("tags") or []) + ["pes-training"])
    return doc


def _oracle_fireworks(structures: list[tuple[Structure, str]], config: dict, stage: str,
                      extra: list[dict] | None = None) -> list[Firework]:
    from pes_core.oracles import oracle_class
    from workflows.oracle.builders import DEFAULT_BATCH_SIZE, oracle_firework

    size = 1 if oracle_class(config["oracle"]).category == "dft" else int(config.get("batch_size") or DEFAULT_BATCH_SIZE)
    n = (len(structures) + size - 1) // size
    fws = []
    for b in range(n):
        chunk = structures[b * size:(b + 1) * size]
        fws.append(oracle_firework(
            [s for s, _ in chunk], config["oracle"], oracle_settings=config.get("oracle_settings"),
            tags=list(config.get("tags") or []) + ["pes-training"], generator=[g for _, g in chunk],
            workflow=config["name"], name=f"pes {config['name']} {stage} oracle [{b + 1}/{n}]",
            extra=extra[b * size:(b + 1) * size] if extra is not None else None,
            metadata={"pes_stage": stage}))
    return fws


@explicit_serialize
class PESReferenceTask(FiretaskBase):
    """Relax the cubic cell and the 15 tilt systems; add the systematic oracle fireworks.

    Required parameters
    -------------------
    config : dict
        The validated ``pes_training_set`` spec (see :mod:`workflows.pes.builders`).
    """

    required_params = ["config"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.oracles import to_structure
        from pes_core.sampling import (
            GLAZER_SYSTEMS,
            glazer_tilted,
            relax_cubic,
            relax_structure,
        )
        from pes_core.sampling.pes_training import systematic_training_set

        ensure_domain_db(fw_spec)
        cfg = self["config"]
        oracle = _oracle(cfg, fw_spec)
        done = relaxed_cells(cfg["name"])
        relax = cfg.get("relax") or {}
        if "a0a0a0" in done:
            a = float(done["a0a0a0"].lattice.a) / 2.0
        else:
            a, info = relax_cubic(oracle, float(cfg.get("a0", 5.87)), fmax=relax.get("fmax_cubic", 0.002))
            cubic = glazer_tilted("a0a0a0", 0.0, a=a)
            _store(oracle.compute(cubic), cfg, "relaxed:a0a0a0", fw_spec)
            done["a0a0a0"] = cubic
            flush_store()
            print(f"  [{cfg['name']}] cubic a = {a:.4f} Å ({info['steps']} steps)", flush=True)
        systems = cfg.get("tilt_systems") or [s for s in GLAZER_SYSTEMS if s != "a0a0a0"]
        for sym in systems:
            if sym in done:
                continue
            start = glazer_tilted(sym, float(cfg.get("tilt_angle_deg", 8.0)), a=a)
            relaxed, info = relax_structure(start, oracle, fmax=relax.get("fmax", 0.02),
                                            steps=relax.get("steps", 150), relax_cell=True)
            result = oracle.compute(relaxed)
            _store(result, cfg, f"relaxed:{sym}", fw_spec)
            done[sym] = to_structure(relaxed) if not isinstance(relaxed, Structure) else relaxed
            flush_store()
            print(f"  [{cfg['name']}] relaxed {sym}: {result.energy / len(relaxed):.4f} eV/atom, "
                  f"{info['steps']} steps", flush=True)
        sys_cfg = dict(cfg.get("systematic") or {})
        structures = systematic_training_set(done["a0a0a0"], {k: v for k, v in done.items() if k != "a0a0a0"},
                                             seed=int(cfg.get("seed", 0)), **sys_cfg)
        oracle_fws = _oracle_fireworks(structures, cfg, "systematic")
        thermal_fws = thermal_fireworks(cfg, done)
        stochastic = Firework([PESStochasticTask(config=cfg)], name=f"pes {cfg['name']} stochastic samples",
                              spec={"_category": "ml", "pes_kind": "pes_stochastic",
                                    "_allow_fizzled_parents": True}, parents=oracle_fws + thermal_fws)
        print(f"  [{cfg['name']}] systematic set: {len(structures)} structures in {len(oracle_fws)} fireworks"
              + (f"; {len(thermal_fws)} thermal MD runs" if thermal_fws else ""), flush=True)
        return FWAction(stored_data={"a": a, "n_systematic": len(structures), "n_thermal_runs": len(thermal_fws)},
                        additions=[Workflow(oracle_fws + thermal_fws + [stochastic], name=f"{cfg['name']} systematic")])


def thermal_fireworks(cfg: dict, cells: dict[str, Structure]) -> list[Firework]:
    """One :class:`PESThermalTask` firework per (parent, temperature) of the spec's ``thermal`` section."""
    from pes_core.oracles import oracle_class

    th = cfg.get("thermal")
    if not th:
        return []
    missing = [p for p in th["parents"] if p not in cells]
    if missing:
        raise ValueError(f"thermal parents {missing} have no relaxed cell in training set {cfg['name']!r}")
    category = oracle_class(cfg["oracle"]).category
    return [Firework([PESThermalTask(config=cfg, parent=p, temperature=float(t))],
                     name=f"pes {cfg['name']} thermal MD {p} {float(t):g} K",
                     # oracle work (every MD step is an oracle call); started early: it is the long pole
                     spec={"_category": category, "pes_kind": "pes_thermal", "_priority": 2})
            for p in th["parents"] for t in th["temperatures"]]


@explicit_serialize
class PESThermalTask(FiretaskBase):
    """Oracle-driven NVT run from one relaxed cell; its snapshots go to oracle fireworks (a detour).

    Idempotent: snapshots already stored (by their generator label
    ``"<parent>:thermal:<T>K:<step>"``) are not sent again, and when all are
    stored the MD is not rerun.  The run is seeded by (seed, parent, T), so
    a rerun with a deterministic oracle draws the same trajectory.

    Required parameters
    -------------------
    config : dict
        The validated ``pes_training_set`` spec (its ``thermal`` section).
    parent : str
        Glazer symbol of the relaxed cell the run starts from.
    temperature : float
        Thermostat temperature, K.
    """

    required_params = ["config", "parent", "temperature"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.db import Configuration
        from pes_core.sampling.pes_training import (
            thermal_label,
            thermal_snapshot_steps,
            thermal_snapshots,
        )
        from workflows.core.runtime import current_fw_id

        ensure_domain_db(fw_spec)
        cfg = self["config"]
        th = dict(cfg["thermal"])
        parent, t = self["parent"], float(self["temperature"])
        seed = section_seed(cfg, "thermal")
        steps, every, equil = int(th["steps"]), int(th["every"]), int(th["equilibration"])
        labels = [thermal_label(parent, t, k) for k in thermal_snapshot_steps(steps, every, equil)]
        stored = {c.generator for c in Configuration.objects(workflow=cfg["name"], generator__in=labels)
                  .only("generator")}
        if stored:
            # the run happened: its snapshots went to oracle fireworks of their own. Not redoing the MD keeps one
            # trajectory per (parent, T) under these labels (an oracle that is not bitwise reproducible, e.g. on a
            # GPU, would give another trajectory); snapshots that failed or were screened stay missing
            print(f"  [{cfg['name']}] thermal {parent} {t:g} K: {len(stored)} of {len(labels)} snapshots stored; "
                  "the MD is not run again", flush=True)
            return FWAction(stored_data={"snapshots": len(stored), "new": 0})
        cells = relaxed_cells(cfg["name"])
        t0 = time.perf_counter()
        snaps = thermal_snapshots(cells[parent], _oracle(cfg, fw_spec), t, steps=steps, every=every,
                                  equilibration=equil, dt_fs=float(th["dt_fs"]),
                                  friction_per_fs=float(th["friction"]), seed=seed, name=parent)
        wall = time.perf_counter() - t0
        todo = [(s, thermal_label(parent, t, k), k) for s, k in snaps if thermal_label(parent, t, k) not in stored]
        md = {"parent": parent, "temperature_K": t, "dt_fs": float(th["dt_fs"]),
              "friction_per_fs": float(th["friction"]), "seed": seed, "md_fw_id": current_fw_id(fw_spec)}
        oracle_fws = _oracle_fireworks([(s, lab) for s, lab, _ in todo], cfg, f"thermal {parent} {t:g}K",
                                       extra=[{"md": {**md, "step": k}} for _, _, k in todo])
        print(f"  [{cfg['name']}] thermal {parent} {t:g} K: {steps} steps of {th['dt_fs']:g} fs in {wall:.0f} s, "
              f"{len(todo)} snapshots to compute ({len(stored)} stored)", flush=True)
        data = {"snapshots": len(snaps), "new": len(todo), "wall_s": wall}
        if not oracle_fws:
            return FWAction(stored_data=data)
        return FWAction(stored_data=data, detours=[Workflow(oracle_fws, name=f"{cfg['name']} thermal {parent} {t:g}K")])


@explicit_serialize
class PESStochasticTask(FiretaskBase):
    """Draw n-sphere samples, keep the novel ones, add their oracle fireworks, collector and featurizer."""

    required_params = ["config"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.db import Configuration
        from pes_core.sampling import NoveltyFilter
        from pes_core.sampling.pes_training import stochastic_training_set

        ensure_domain_db(fw_spec)
        cfg = self["config"]
        st = dict(cfg.get("stochastic") or {})
        cells = relaxed_cells(cfg["name"])
        existing = [Structure.from_dict(c.structure)
                    for c in Configuration.objects(workflow=cfg["name"], n_atoms=40).only("structure")]
        # idempotent reruns: only the samples still missing are drawn (the same seed redraws the
        # stored ones first, which the novelty filter then rejects as identical)
        n_done = Configuration.objects(workflow=cfg["name"], generator__endswith=":nsphere").count()
        count = max(0, int(st.pop("count", 0)) - n_done)
        threshold = float(st.pop("threshold", 0.98))
        structures: list = []
        n_rejected = 0
        if count > 0:
            from pes_core.clusters import cubic_cspbbr3

            from pes_core.ann import get_featurizer
            feat = get_featurizer(cubic_cspbbr3(float(cells["a0a0a0"].lattice.a) / 2.0),
                                  cfg.get("novelty_clusters", "4pairs+oct"), order=2)
            filt = NoveltyFilter(feat, existing, threshold=threshold)
            parents = {k: cells[k] for k in (st.pop("parents", None) or list(cells))}
            structures = stochastic_training_set(parents, count, seed=int(cfg.get("seed", 0)),
                                                 accept=filt.accept, **st)
            n_rejected = filt.n_rejected
        print(f"  [{cfg['name']}] n-sphere samples: {len(structures)} kept, {n_rejected} rejected as too similar",
              flush=True)
        oracle_fws = _oracle_fireworks(structures, cfg, "stochastic") if structures else []
        # model-driven sampling (refine) runs on everything stored so far; the collector waits for its last round
        refine = [refine_firework(cfg, 0, parents=oracle_fws or None)] if cfg.get("refine") else []
        collect = Firework([PESCollectTask(config=cfg)], name=f"pes {cfg['name']} collect",
                           spec={"_category": "ml", "pes_kind": "pes_collect",
                                 # a failed oracle batch is recorded; the training set goes on without it
                                 "_allow_fizzled_parents": True}, parents=(refine or oracle_fws) or None)
        featurize = Firework([PESFeaturizeTask(config=cfg)], name=f"pes {cfg['name']} featurize",
                             spec={"_category": "ml", "pes_kind": "pes_featurize"}, parents=[collect])
        fws = oracle_fws + refine + [collect, featurize]
        if cfg.get("fit"):
            fws += fit_fireworks(cfg["fit"], parents=[featurize])
        return FWAction(stored_data={"kept": len(structures), "rejected": n_rejected},
                        additions=[Workflow(fws, name=f"{cfg['name']} stochastic")])


def refine_firework(cfg: dict, rnd: int, parents=None) -> Firework:
    """The firework of refinement round ``rnd`` (see :class:`PESRefineTask`)."""
    return Firework([PESRefineTask(config=cfg, round=int(rnd))], name=f"pes {cfg['name']} refine round {rnd}",
                    spec={"_category": "ml", "pes_kind": "pes_refine", "_allow_fizzled_parents": True},
                    parents=parents)


@explicit_serialize
class PESRefineTask(FiretaskBase):
    """One round of model-driven sampling: fit, sample with Monte Carlo, send the chain ends to the oracle.

    Static distortions and oracle MD do not pin a polynomial model in the
    regions the model itself would visit: a model fitted to them can have
    spurious low-energy regions (measured on the full CsPbBr3 set: Monte
    Carlo at 300 K on its linear model ends 160 meV/atom below the oracle).
    Each round fits the linear model (ridge on the ``refine.clusters`` basis,
    the shortcut of the neural models) to every configuration stored so far,
    runs ``chains`` short Metropolis chains per temperature inside the
    training-domain wall (:func:`pes_core.ann.montecarlo.chain_ends`; from the
    cubic cell in round 0, then each from where it ended in the previous
    round) and sends their final configurations to the oracle, with the model
    energy kept in ``Configuration.extra["refine"]``; the next round is a
    child of those oracle fireworks (a detour the collector waits for).  A
    round first measures the previous round's samples: it stops when the RMS
    model error on them is below ``tolerance_mev`` or after ``rounds`` rounds.
    (Concurrent learning as in DP-GEN, with the model's own Boltzmann
    distribution as the explorer.)

    Idempotent: a rerun or resubmission of a round whose samples are stored
    samples nothing and goes on to the next round (which measures it).
    """

    required_params = ["config", "round"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.ann import PESData, build_model, torch_threads
        from pes_core.ann.calculator import TrainingDomain
        from pes_core.ann.montecarlo import chain_ends
        from pes_core.clusters import cubic_cspbbr3
        from pes_core.db import Configuration

        ensure_domain_db(fw_spec)
        cfg = self["config"]
        rf = dict(cfg["refine"])
        rnd = int(self["round"])
        name = cfg["name"]
        data = {"round": rnd}
        if rnd > 0:
            err = refine_errors(name, rnd - 1)
            data["previous_samples"] = len(err)
            if not len(err):
                print(f"  [{name}] refine round {rnd - 1}: no chain end stored (oracle failures?); sampling again",
                      flush=True)
            else:
                rms = float(np.sqrt(np.mean(err ** 2)))
                data.update(previous_rms_mev=rms, previous_mean_mev=float(err.mean()))
                print(f"  [{name}] refine round {rnd - 1}: model - oracle on its {len(err)} chain ends: RMS {rms:.1f}, "
                      f"mean {data['previous_mean_mev']:+.1f} meV/atom (tolerance {rf['tolerance_mev']:g})", flush=True)
                if rms < float(rf["tolerance_mev"]):
                    return FWAction(stored_data={**data, "converged": True})
        if rnd >= int(rf["rounds"]):
            print(f"  [{name}] refine: {rnd} rounds done, not converged to {rf['tolerance_mev']:g} meV/atom", flush=True)
            return FWAction(stored_data={**data, "converged": False})
        if Configuration.objects(workflow=name, generator__startswith=f"refine:r{rnd}:").first() is not None:
            # sampled before (a resubmission or rerun): go on to the next round, which measures this one
            return FWAction(stored_data={**data, "rerun": True},
                            detours=[Workflow([refine_firework(cfg, rnd + 1)], name=f"{name} refine round {rnd}")])
        t0 = time.perf_counter()
        cells = relaxed_cells(name)
        docs = list(Configuration.objects(workflow=name, n_atoms=40).only("content_hash", "structure", "energy"))
        # the chains go on from the previous round's ends (persistent chains: a hole that takes longer than one
        # round's sweeps to reach is still found)
        prev = [d for d in Configuration.objects(workflow=name, generator__startswith=f"refine:r{rnd - 1}:")
                if (d.extra or {}).get("refine")] if rnd > 0 else []
        sets = refine_cluster_sets(cfg)
        chains = int(rf["chains"])
        todo, extra, ends = [], [], []
        for k, clusters in enumerate(sets):  # one sampling model per cluster set of the fit
            from pes_core.ann import get_featurizer
            feat = get_featurizer(cubic_cspbbr3(float(cells["a0a0a0"].lattice.a) / 2.0), clusters,
                                  order=int(rf["order"]))
            with torch_threads(1):
                model = build_model("linear", feat).fit(load_features(name, feat, [d.content_hash for d in docs]))
                domain = TrainingDomain.from_data(feat, PESData.from_configurations(feat, docs, with_forces=False))
                starts = {}
                mine = [d for d in prev if k * chains <= int(d.extra["refine"]["chain"]) < (k + 1) * chains]
                if mine:
                    pos = PESData.from_configurations(feat, mine, with_forces=False).positions.numpy()
                    starts = {(float(d.extra["refine"]["temperature_K"]), int(d.extra["refine"]["chain"]) - k * chains): p
                              for d, p in zip(mine, pos)}
                got = chain_ends(model, rf["temperatures"], chains, int(rf["sweeps"]),
                                 seed=section_seed(cfg, "refine"),
                                 domain=domain, margin=float(rf["margin"]), tag=1000 * rnd + k, starts=starts)
            ref = feat.reference_structure()
            for c in got:
                chain = k * chains + c["chain"]
                st = Structure(ref.lattice, ref.species, c["positions"], coords_are_cartesian=True)
                todo.append((st, refine_label(rnd, c["T"], chain)))
                extra.append({"refine": {"round": rnd, "temperature_K": c["T"], "chain": chain, "clusters": clusters,
                                         "model_energy_per_atom": c["energy"] / len(ref),
                                         "sweeps": int(rf["sweeps"]), "training_configurations": len(docs),
                                         "wall_fraction": float(c["wall_fraction"]),
                                         "restarted": bool(c["restarted"])}})
            ends += got
        flush_store()  # the features cache
        means = {t: np.mean([c["e_mean"] for c in ends if c["T"] == float(t)]) for t in rf["temperatures"]}
        print(f"  [{name}] refine round {rnd}: linear model{'s' if len(sets) > 1 else ''} ({', '.join(sets)}) on "
              f"{len(docs)} configurations, {len(ends)} chains "
              f"({', '.join(f'{float(t):g} K <E> {m:.1f}' for t, m in means.items())} meV/atom) in "
              f"{time.perf_counter() - t0:.0f} s; chain ends to the oracle", flush=True)
        ofws = _oracle_fireworks(todo, cfg, f"refine r{rnd}", extra=extra)
        nxt = refine_firework(cfg, rnd + 1, parents=ofws)
        data.update(samples=len(todo), training_configurations=len(docs),
                    mc_mean_mev={f"{float(t):g}": float(m) for t, m in means.items()})
        return FWAction(stored_data=data, detours=[Workflow(ofws + [nxt], name=f"{name} refine round {rnd}")])


@explicit_serialize
class PESCollectTask(FiretaskBase):
    """Check that every configuration is stored; write the energy histogram."""

    required_params = ["config"]

    def run_task(self, fw_spec: dict) -> FWAction:
        from pes_core.db import Configuration, FailedCalculation
        from workflows.pes.report import plot_energy_histogram

        ensure_domain_db(fw_spec)
        cfg = self["config"]
        confs = list(Configuration.objects(workflow=cfg["name"], n_atoms=40).only("energy_per_atom", "generator"))
        e_ref = reference_energy(cfg["name"])
        rel = 1000.0 * (np.array([c.energy_per_atom for c in confs]) - e_ref)
        out = report_dir(cfg["name"])
        png = plot_energy_histogram(rel, out / "energy_histogram.png", title=f"{cfg['name']}: {len(confs)} configurations")
        n_failed = FailedCalculation.objects(workflow=cfg["name"]).count()
        summary = {"n_configurations": len(confs), "n_failed": n_failed, "histogram": str(png),
                   "min_mev_per_atom": float(rel.min()) if len(rel) else None,
                   "max_mev_per_atom": float(rel.max()) if len(rel) else None}
        print(f"  [{cfg['name']}] {len(confs)} configurations stored, {n_failed} failed; histogram {png}", flush=True)
        return FWAction(stored_data=summary)


