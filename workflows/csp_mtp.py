"""CSP in ``mode: mtp``: pre-exploration, training, relaxations that learn on the fly.

Workflow of a search (``initial_fireworks``)::

    pre-exploration (ml) --detour--> oracle fireworks --> MTP training (ml) --> generation 0 --> ...

Each generation relaxes its offspring on the current MTP
(:func:`learning_relaxer`); a relaxation whose grade passes the break
threshold stops there.  After the generation, :meth:`LearningRelaxer.end_of_generation`
chooses by maxvol among the break and select candidates, records an
``ActiveLearningEvent`` per new configuration (content hash + the grade that
selected it) and returns a detour::

    oracle fireworks (the oracle's category) --> MTP training (ml) --> generation g again

The rerun of generation ``g`` keeps the relaxations that finished below the
break threshold (the task's cache) and redoes the broken ones on the
retrained MTP.  After ``active.max_rounds_per_generation`` rounds the
relaxations go on without breaking, so every generation ends.

>>> wf = csp_workflow("si8", {"composition": {"Si": 1}, "n_atoms": [8, 8]}, oracle="tersoff",
...                   mode="mtp")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

from fireworks import Firework, FWAction, Workflow

from pes_core.db import ActiveLearningEvent, Configuration, SearchRun, jsonable
from workflows.firetasks.active import (
    ActiveSettings,
    CSPPreselectTask,
    load_model,
    oracle_fireworks,
    train_firework,
)
from workflows.firetasks.csp import generation_firework
from workflows.runtime import flush_store

logger = logging.getLogger(__name__)

__all__ = ["LearningRelaxer", "initial_fireworks", "learning_relaxer"]


def initial_fireworks(name: str, config: dict, formula: str) -> list[Firework]:
    """Pre-exploration -> (oracle detour) -> training -> generation 0 of search ``name``."""
    ActiveSettings.from_config(config)  # fail at submission on a bad setting
    pre = Firework([CSPPreselectTask(search=name)], name=f"csp {name} pre-exploration",
                   spec={"_category": "ml", "pes_kind": "csp_preselect", "search": name, "formula": formula})
    train = train_firework(name, parents=[pre], label="(initial)")
    gen0 = generation_firework(name, 0, formula=formula, parents=[train])
    return [pre, train, gen0]


def _generation(run: SearchRun) -> int:
    return int(run.state["search"]["generation"]) + 1


def _rounds(run: SearchRun, gen: int) -> int:
    return int(((run.state.get("active") or {}).get("rounds") or {}).get(str(gen), 0))


class LearningRelaxer:
    """A search relaxer on the current MTP of a search, with grade checks.

    Relaxations stop at the break threshold (``extra['break']``), and the
    break/select candidates are kept for :meth:`end_of_generation`.
    ``extra['n_oracle_calls']`` is 0: oracle calls run in their own fireworks.
    """

    def __init__(self, run: SearchRun, fw_spec: dict) -> None:
        from pes_core.active import ActiveRelaxer, GradeThresholds

        if not run.model_id:
            raise RuntimeError(f"search {run.name} runs in mode mtp but has no trained model yet; "
                               "the training firework must run before the first generation")
        self.settings = ActiveSettings.from_config(run.settings)
        self.pot, self.aset, self.model = load_model(run.model_id)
        self.model_id = run.model_id
        self.generation = _generation(run)
        self.round = _rounds(run, self.generation)
        self.capped = self.round >= self.settings.max_rounds_per_generation
        th = self.settings.thresholds()
        if self.capped:  # learning budget of this generation spent: relax without breaking
            th = GradeThresholds(th.select, float("inf"), th.swap_tolerance)
        relax = run.settings.get("relax", {})
        self.inner = ActiveRelaxer(self.pot, self.aset, learn=None, thresholds=th,
                                   fmax=relax.get("fmax", 0.05), steps=relax.get("steps", 300),
                                   optimizer=relax.get("optimizer", "BFGS"))

    def __call__(self, atoms, pressure_gpa: float = 0.0):
        res = self.inner(atoms, pressure_gpa)
        res.extra.update(n_oracle_calls=0, model_id=self.model_id, model_version=self.model.version,
                         learning_round=self.round)
        return res

    def end_of_generation(self, run: SearchRun, gen: int, relaxed: list, fw_spec: dict) -> FWAction | None:
        """Queue oracle + retraining + this generation again when something was selected; else ``None``."""
        from pes_core.active import choose_candidates
        from pes_core.db import calculation_hash
        from pes_core.oracles import to_structure

        name = run.name
        cands = list(self.inner.collected)
        self.inner.collected = []
        broken = [ind.id for ind in relaxed if (ind.relax_info or {}).get("break")]
        if self.capped or not cands:
            return None
        st = self.settings
        chosen = choose_candidates(cands, self.pot, self.aset, max_configurations=len(cands))
        # maxvol over all candidates of the generation, highest grades first, capped per round
        chosen.sort(key=lambda c: -c.grade)
        oracle, osettings = run.settings["oracle"], run.settings.get("oracle_settings") or {}
        new, seen = [], set()
        for cand in chosen:
            structure = to_structure(cand.atoms)
            h = calculation_hash(structure, oracle, osettings)
            if h in seen or Configuration.objects(content_hash=h).first() is not None:
                continue
            seen.add(h)
            new.append((cand, structure, h))
            if len(new) >= st.max_configurations_per_round:
                break
        if not new:
            logger.info("search %s gen %d: no new configuration to learn; %d broken relaxations stay failed",
                        name, gen, len(broken))
            return None
        for cand, _, h in new:
            if ActiveLearningEvent.objects(configuration_hash=h, model_id=self.model_id).first() is None:
                ActiveLearningEvent(configuration_hash=h, model_id=self.model_id, grade=float(cand.grade),
                                    reason=cand.reason,
                                    context=jsonable({"search": name, "generation": gen, "round": self.round,
                                                      "formula": cand.atoms.get_chemical_formula()})).save()
        # forget the broken relaxations so that the rerun redoes them on the new model
        partial = dict((run.state.get("partial") or {}).get(str(gen), {}))
        for ind_id in broken:
            partial.pop(ind_id, None)
        active = dict(run.state.get("active") or {})
        rounds = dict(active.get("rounds") or {})
        rounds[str(gen)] = self.round + 1
        active["rounds"] = rounds
        active["n_selected"] = int(active.get("n_selected", 0)) + len(new)
        run.state = {**run.state, "partial": {str(gen): partial}, "active": active}
        run.save()
        flush_store()
        print(f"  [{name} gen {gen}] learning round {self.round + 1}: {len(new)} configurations to the oracle "
              f"(grades {', '.join(f'{c.grade:.3g}' for c, _, _ in new)}); {len(broken)} relaxations will be redone",
              flush=True)
        ofws = oracle_fireworks(name, run.settings, [s for _, s, _ in new], generator="csp-active",
                                extra=[{"grade": float(c.grade), "reason": c.reason, "generation": gen,
                                        "round": self.round + 1} for c, _, _ in new])
        train = train_firework(name, parents=ofws, label=f"gen {gen} round {self.round + 1}")
        again = generation_firework(name, gen, formula=fw_spec.get("formula", ""), parents=[train])
        again.name = f"{again.name} (round {self.round + 1})"
        again.spec["pes_active_round"] = self.round + 1
        wf = Workflow(ofws + [train, again], name=f"csp {name} active learning gen {gen} round {self.round + 1}")
        return FWAction(detours=[wf], stored_data={"active_round": self.round + 1, "selected": len(new),
                                                   "redo": broken})


def learning_relaxer(run: SearchRun, fw_spec: dict) -> LearningRelaxer:
    """The relaxer of a ``mode: mtp`` generation (see :class:`LearningRelaxer`)."""
    return LearningRelaxer(run, fw_spec)


def summary(name: str) -> dict[str, Any]:
    """Counts of a search's active learning: models, selected configurations, events."""
    from pes_core.db import PotentialModel

    return {
        "models": PotentialModel.objects(workflow=name).count(),
        "configurations": Configuration.objects(tags=f"csp:{name}").count(),
        "events": ActiveLearningEvent.objects(context__search=name).count(),
    }
