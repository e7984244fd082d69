"""Firetasks of the PES training set (thin: pes_core does the work).

Training set (spec kind ``pes_training_set``)::

    PESReferenceTask -> oracle fireworks (systematic set)      -> PESStochasticTask
                     -> PESThermalTask x (parent, T) --detour--> oracle fireworks (snapshots) -^
        PESStochasticTask -> oracle fireworks (n-sphere samples) -> PESCollectTask -> PESFeaturizeTask [-> fit]

The thermal fireworks (spec key ``thermal``) run short oracle-driven MD
(:func:`pes_core.sampling.pes_training.thermal_snapshots`; the category of
the oracle, like any oracle work) and send their snapshots through ordinary
oracle fireworks as a detour, so the n-sphere stage, the collector and the
fit see them like any other configuration.

The reference firework relaxes the cells with the oracle, so it (like the
thermal and the oracle fireworks) carries the oracle's category; the rest is
model work (category ``ml``).  The perovskite comes from the spec's
``reference`` section (:class:`pes_core.clusters.PerovskiteReference`).

The fit fireworks are in :mod:`workflows.pes.fit_tasks`; where the state
lives: :mod:`workflows.pes`.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize
from pymatgen.core import Structure

from pes_core.ann.refine import (
    RefineDecision,
    RefineSettings,
    decide_round,
    sample_round,
)
from pes_core.clusters import PerovskiteReference
from pes_core.db import Configuration, FailedCalculation, store_result
from pes_core.oracles import get_oracle, oracle_class, to_structure
from pes_core.progress import progress
from pes_core.sampling import (
    GLAZER_SYSTEMS,
    NoveltyFilter,
    ReferenceRelaxSettings,
    StochasticSettings,
    SystematicSettings,
    ThermalSettings,
    relax_cubic,
    relax_structure,
    tilted_supercell,
)
from pes_core.sampling.pes_training import (
    stochastic_training_set,
    systematic_training_set,
    thermal_label,
    thermal_snapshots,
)
from workflows.core.runtime import (
    current_fw_id,
    ensure_domain_db,
    flush_store,
    worker_env,
)
from workflows.pes.fit_tasks import PESFeaturizeTask, fit_fireworks, oracle_fireworks
from workflows.pes.report import plot_energy_histogram
from workflows.pes.store import (
    CUBIC,
    featurizer_for,
    load_features,
    perovskite_reference,
    reference_energy,
    refine_cluster_sets,
    refine_errors,
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
    "reference_firework",
    "refine_firework",
    "relax_reference_cells",
    "stochastic_samples",
    "thermal_fireworks",
]


def _oracle(config: dict, fw_spec: dict):
    return get_oracle(config["oracle"], config.get("oracle_settings") or {}, env=worker_env(fw_spec))


def _reference(config: dict) -> PerovskiteReference:
    """The perovskite of the spec's ``reference`` section (starting lattice parameter)."""
    ref = config["reference"]
    return PerovskiteReference(A=ref["species"]["A"], B=ref["species"]["B"], X=ref["species"]["X"], a=ref["a"],
                               supercell=tuple(ref.get("supercell") or (2, 2, 2)))


def _store(result, config: dict, generator: str, fw_spec: dict):
    doc, _ = store_result(result, oracle_settings=config.get("oracle_settings") or {},
                          fw_id=current_fw_id(fw_spec), workflow=config["name"], generator=generator,
                          tags=list(config.get("tags") or []) + ["pes-training"])
    return doc


def _oracle_fireworks(structures: list[tuple[Structure, str]], config: dict, stage: str,
                      extra: list[dict] | None = None) -> list[Firework]:
    return oracle_fireworks(structures, oracle=config["oracle"], oracle_settings=config.get("oracle_settings"),
                            workflow=config["name"], tags=list(config.get("tags") or []) + ["pes-training"],
                            name=f"pes {config['name']} {stage}", stage=stage, batch_size=config.get("batch_size"),
                            extra=extra)


def _firework(task, cfg: dict, what: str, kind: str, category: str = "ml", parents=None, **spec) -> Firework:
    """A firework of the training set ``cfg`` (category ``ml`` unless it calls the oracle)."""
    return Firework([task], name=f"pes {cfg['name']} {what}", spec={"_category": category, "pes_kind": kind, **spec},
                    parents=parents)


def reference_firework(cfg: dict) -> Firework:
    """The first firework of a training set: oracle relaxations, so it carries the oracle's category."""
    return _firework(PESReferenceTask(config=cfg), cfg, "reference + tilt relaxations", "pes_reference",
                     category=oracle_class(cfg["oracle"]).category)


@explicit_serialize
class PESReferenceTask(FiretaskBase):
    """Relax the cubic cell and the tilt systems of the spec's perovskite; add the systematic oracle fireworks.

    Required parameters
    -------------------
    config : dict
        The validated ``pes_training_set`` spec (see :mod:`workflows.pes.builders`).
    """

    required_params = ["config"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        cfg = self["config"]
        done = relax_reference_cells(cfg, _oracle(cfg, fw_spec), fw_spec)
        a = PerovskiteReference.from_supercell(done[CUBIC]).a
        structures = systematic_training_set(done[CUBIC], {k: v for k, v in done.items() if k != CUBIC},
                                             seed=int(cfg.get("seed", 0)),
                                             **vars(SystematicSettings.from_dict(cfg.get("systematic"))))
        oracle_fws = _oracle_fireworks(structures, cfg, "systematic")
        thermal_fws = thermal_fireworks(cfg, done)
        stochastic = _firework(PESStochasticTask(config=cfg), cfg, "stochastic samples", "pes_stochastic",
                               parents=oracle_fws + thermal_fws, _allow_fizzled_parents=True)
        print(f"  [{cfg['name']}] systematic set: {len(structures)} structures in {len(oracle_fws)} fireworks"
              + (f"; {len(thermal_fws)} thermal MD runs" if thermal_fws else ""), flush=True)
        return FWAction(stored_data={"a": a, "n_systematic": len(structures), "n_thermal_runs": len(thermal_fws)},
                        additions=[Workflow(oracle_fws + thermal_fws + [stochastic], name=f"{cfg['name']} systematic")])


def relax_reference_cells(cfg: dict, oracle, fw_spec: dict) -> dict[str, Structure]:
    """Relaxed cubic and tilted supercells of training set ``cfg`` (stored ones reused, new ones stored)."""
    ref = _reference(cfg)
    relax = ReferenceRelaxSettings.from_dict(cfg.get("relax"))
    done = relaxed_cells(cfg["name"])
    if CUBIC in done:
        a = PerovskiteReference.from_supercell(done[CUBIC]).a
    else:
        a, info = relax_cubic(oracle, ref.a, species=ref.species, fmax=relax.fmax_cubic)
        cubic = tilted_supercell(ref, CUBIC, 0.0, a=a)
        _store(oracle.compute(cubic), cfg, f"relaxed:{CUBIC}", fw_spec)
        done[CUBIC] = cubic
        flush_store()
        print(f"  [{cfg['name']}] cubic {ref.formula} a = {a:.4f} Å ({info['steps']} steps)", flush=True)
    systems = cfg.get("tilt_systems") or [s for s in GLAZER_SYSTEMS if s != CUBIC]
    todo = [sym for sym in systems if sym not in done]
    for sym in progress(todo, desc=f"[{cfg['name']}] tilted cell relaxations", unit="cell",
                        disable=None if len(todo) > 1 else True):
        start = tilted_supercell(ref, sym, float(cfg.get("tilt_angle_deg", 8.0)), a=a)
        relaxed, info = relax_structure(start, oracle, fmax=relax.fmax, steps=relax.steps, relax_cell=True)
        result = oracle.compute(relaxed)
        _store(result, cfg, f"relaxed:{sym}", fw_spec)
        done[sym] = to_structure(relaxed) if not isinstance(relaxed, Structure) else relaxed
        flush_store()
        print(f"  [{cfg['name']}] relaxed {sym}: {result.energy / len(relaxed):.4f} eV/atom, "
              f"{info['steps']} steps", flush=True)
    return done


def thermal_fireworks(cfg: dict, cells: dict[str, Structure]) -> list[Firework]:
    """One :class:`PESThermalTask` firework per (parent, temperature) of the spec's ``thermal`` section.

    Every MD step is an oracle call, so the fireworks carry the oracle's category; they start early
    (``_priority`` 2): they are the long pole.
    """
    if not cfg.get("thermal"):
        return []
    th = ThermalSettings.from_dict(cfg["thermal"])
    missing = [p for p in th.parents if p not in cells]
    if missing:
        raise ValueError(f"thermal parents {missing} have no relaxed cell in training set {cfg['name']!r}")
    category = oracle_class(cfg["oracle"]).category
    return [_firework(PESThermalTask(config=cfg, parent=p, temperature=float(t)), cfg,
                      f"thermal MD {p} {float(t):g} K", "pes_thermal", category=category, _priority=2)
            for p in th.parents for t in th.temperatures]


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
        ensure_domain_db(fw_spec)
        cfg = self["config"]
        th = ThermalSettings.from_dict(cfg["thermal"])
        parent, t = self["parent"], float(self["temperature"])
        seed = section_seed(cfg, "thermal")
        labels = [thermal_label(parent, t, k) for k in th.snapshot_steps()]
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
        snaps = thermal_snapshots(cells[parent], _oracle(cfg, fw_spec), t, steps=int(th.steps), every=int(th.every),
                                  equilibration=int(th.equilibration), dt_fs=float(th.dt_fs),
                                  friction_per_fs=float(th.friction), seed=seed, name=parent)
        wall = time.perf_counter() - t0
        todo = [(s, thermal_label(parent, t, k), k) for s, k in snaps if thermal_label(parent, t, k) not in stored]
        md = {"parent": parent, "temperature_K": t, "dt_fs": float(th.dt_fs),
              "friction_per_fs": float(th.friction), "seed": seed, "md_fw_id": current_fw_id(fw_spec)}
        oracle_fws = _oracle_fireworks([(s, lab) for s, lab, _ in todo], cfg, f"thermal {parent} {t:g}K",
                                       extra=[{"md": {**md, "step": k}} for _, _, k in todo])
        print(f"  [{cfg['name']}] thermal {parent} {t:g} K: {th.steps} steps of {th.dt_fs:g} fs in {wall:.0f} s, "
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
        ensure_domain_db(fw_spec)
        cfg = self["config"]
        st = StochasticSettings.from_dict(cfg.get("stochastic"))
        reference = perovskite_reference(cfg["name"])
        structures, n_rejected = stochastic_samples(cfg, st, reference)
        print(f"  [{cfg['name']}] n-sphere samples: {len(structures)} kept, {n_rejected} rejected as too similar",
              flush=True)
        oracle_fws = _oracle_fireworks(structures, cfg, "stochastic") if structures else []
        # model-driven sampling (refine) runs on everything stored so far; the collector waits for its last round
        refine = [refine_firework(cfg, 0, parents=oracle_fws or None)] if cfg.get("refine") else []
        # a failed oracle batch is recorded; the training set goes on without it
        collect = _firework(PESCollectTask(config=cfg), cfg, "collect", "pes_collect",
                            parents=(refine or oracle_fws) or None, _allow_fizzled_parents=True)
        featurize = _firework(PESFeaturizeTask(config=cfg), cfg, "featurize", "pes_featurize", parents=[collect])
        fws = oracle_fws + refine + [collect, featurize]
        if cfg.get("fit"):
            fws += fit_fireworks(cfg["fit"], parents=[featurize])
        return FWAction(stored_data={"kept": len(structures), "rejected": n_rejected},
                        additions=[Workflow(fws, name=f"{cfg['name']} stochastic")])


def stochastic_samples(cfg: dict, st: StochasticSettings,
                       reference: PerovskiteReference) -> tuple[list[tuple[Structure, str]], int]:
    """The n-sphere samples still missing from training set ``cfg`` that pass the novelty filter, and the rejected count.

    Idempotent reruns: only the samples still missing are drawn (the same seed redraws the stored
    ones first, which the novelty filter then rejects as identical).
    """
    n_done = Configuration.objects(workflow=cfg["name"], generator__endswith=":nsphere").count()
    count = max(0, int(st.count) - n_done)
    if count <= 0:
        return [], 0
    cells = relaxed_cells(cfg["name"])
    existing = [Structure.from_dict(c.structure)
                for c in Configuration.objects(workflow=cfg["name"], n_atoms=reference.n_atoms).only("structure")]
    feat = featurizer_for(reference, {"clusters": cfg.get("novelty_clusters", "4pairs+oct"), "order": 2})
    filt = NoveltyFilter(feat, existing, threshold=float(st.threshold))
    parents = {k: cells[k] for k in (st.parents or list(cells))}
    structures = stochastic_training_set(parents, count, seed=int(cfg.get("seed", 0)), accept=filt.accept,
                                         displacement_radius=st.displacement_radius, strain_radius=st.strain_radius)
    return structures, filt.n_rejected


def refine_firework(cfg: dict, rnd: int, parents=None) -> Firework:
    """The firework of refinement round ``rnd`` (see :class:`PESRefineTask`): model work, category ``ml``."""
    return _firework(PESRefineTask(config=cfg, round=int(rnd)), cfg, f"refine round {rnd}", "pes_refine",
                     parents=parents, _allow_fizzled_parents=True)


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
    training-domain wall (:func:`pes_core.ann.refine.sample_round`; from the
    cubic cell in round 0, then each from where it ended in the previous
    round) and sends their final configurations to the oracle, with the model
    energy kept in ``Configuration.extra["refine"]``; the next round is a
    child of those oracle fireworks (a detour the collector waits for).  A
    round first measures the previous round's samples: it stops when the RMS
    model error on them is below ``tolerance_mev`` or after ``rounds`` rounds
    (:func:`pes_core.ann.refine.decide_round`).
    (Concurrent learning as in DP-GEN, with the model's own Boltzmann
    distribution as the explorer.)

    Idempotent: a rerun or resubmission of a round whose samples are stored
    samples nothing and goes on to the next round (which measures it).
    """

    required_params = ["config", "round"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        cfg = self["config"]
        name, rnd = cfg["name"], int(self["round"])
        settings = RefineSettings.from_dict(cfg["refine"])
        sampled = Configuration.objects(workflow=name, generator__startswith=f"refine:r{rnd}:").first() is not None
        decision = decide_round(rnd, settings, refine_errors(name, rnd - 1) if rnd > 0 else None,
                                sampled=sampled, name=name)
        for line in decision.messages:
            print(line, flush=True)
        if decision.action != "sample":
            return self._action(cfg, decision)
        t0 = time.perf_counter()
        docs = list(Configuration.objects(workflow=name, n_atoms=_reference(cfg).n_atoms)
                    .only("content_hash", "structure", "energy"))
        # the chains go on from the previous round's ends (persistent chains: a hole that takes longer than one
        # round's sweeps to reach is still found)
        prev = [d for d in Configuration.objects(workflow=name, generator__startswith=f"refine:r{rnd - 1}:")
                if (d.extra or {}).get("refine")] if rnd > 0 else []
        sets = refine_cluster_sets(cfg)
        samples = sample_round(rnd, settings, perovskite_reference(name), sets, docs, prev,
                               lambda feat, ids: load_features(name, feat, ids), seed=section_seed(cfg, "refine"))
        flush_store()  # the features cache
        print(f"  [{name}] refine round {rnd}: linear model{'s' if len(sets) > 1 else ''} ({', '.join(sets)}) on "
              f"{len(docs)} configurations, {samples.n_chains} chains "
              f"({', '.join(f'{t:g} K <E> {m:.1f}' for t, m in samples.mean_mev.items())} meV/atom) in "
              f"{time.perf_counter() - t0:.0f} s; chain ends to the oracle", flush=True)
        return self._action(cfg, decision, samples, len(docs))

    @staticmethod
    def _action(cfg: dict, decision: RefineDecision, samples=None, n_training: int = 0) -> FWAction:
        """The FWAction of a round: stop, go on to the next round, or the chain ends' oracle fireworks + next round."""
        name, rnd = cfg["name"], decision.round
        data = decision.stored_data()
        if decision.action in ("converged", "stop"):
            return FWAction(stored_data=data)
        if decision.action == "rerun":  # sampled before: the next round measures this one
            return FWAction(stored_data=data,
                            detours=[Workflow([refine_firework(cfg, rnd + 1)], name=f"{name} refine round {rnd}")])
        ofws = _oracle_fireworks(samples.structures, cfg, f"refine r{rnd}", extra=samples.extra)
        nxt = refine_firework(cfg, rnd + 1, parents=ofws)
        data.update(samples=len(samples.structures), training_configurations=n_training,
                    mc_mean_mev={f"{t:g}": m for t, m in samples.mean_mev.items()})
        return FWAction(stored_data=data, detours=[Workflow(ofws + [nxt], name=f"{name} refine round {rnd}")])


@explicit_serialize
class PESCollectTask(FiretaskBase):
    """Check that every configuration is stored; write the energy histogram."""

    required_params = ["config"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        cfg = self["config"]
        confs = list(Configuration.objects(workflow=cfg["name"], n_atoms=perovskite_reference(cfg["name"]).n_atoms)
                     .only("energy_per_atom", "generator"))
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
