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
break threshold (the task's cache) and redoes the broken and unphysical ones
(energy hole, atoms pushed together) on the retrained MTP.  After
``active.max_rounds_per_generation`` rounds the relaxations go on without
breaking, so every generation ends.

>>> wf = csp_workflow("si8", {"composition": {"Si": 1}, "n_atoms": [8, 8]}, oracle="tersoff",
...                   mode="mtp")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from fireworks import Firework, FWAction, Workflow

from pes_core.db import ActiveLearningEvent, Configuration, SearchRun, jsonable
from workflows.core.runtime import flush_store
from pes_core.active import ActiveSettings
from workflows.csp.active_tasks import (
    CSPPreselectTask,
    load_model,
    oracle_fireworks,
    train_firework,
    trajectory_fireworks,
    trajectory_frames,
)
from workflows.csp.tasks import generation_firework

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
        e_min = (self.model.metrics or {}).get("min_energy_per_atom")
        self.inner = ActiveRelaxer(self.pot, self.aset, learn=None, thresholds=th,
                                   fmax=relax.get("fmax", 0.05), steps=relax.get("steps", 300),
                                   optimizer=relax.get("optimizer", "BFGS"),
                                   energy_floor=None if e_min is None else float(e_min) - self.settings.floor_margin)

    def __call__(self, atoms, pressure_gpa: float = 0.0):
        res = self.inner(atoms, pressure_gpa)
        res.extra.update(n_oracle_calls=0, model_id=self.model_id, model_version=self.model.version,
                         learning_round=self.round)
        return res

    def take_candidates(self) -> list[dict]:
        """The break/select candidates met since the last call, as JSON (see :func:`candidates_from_json`)."""
        from pes_core.search.individual import atoms_to_dict

        out = [{"atoms": atoms_to_dict(c.atoms), "grade": float(c.grade), "reason": c.reason,
                "info": jsonable(c.info)} for c in self.inner.collected]
        self.inner.collected = []
        return out

    def end_of_generation(self, run: SearchRun, gen: int, relaxed: list, fw_spec: dict,
                          candidates: list[dict] | None = None) -> FWAction | None:
        """Queue oracle + retraining + this generation again when something was selected; else ``None``.

        ``candidates``: what :meth:`take_candidates` gave for the generation's
        relaxations (wherever they ran).
        """
        from pes_core.active import choose_candidates
        from pes_core.active.calculator import FORCED_REASONS
        from pes_core.db import calculation_hash
        from pes_core.oracles import to_structure

        name = run.name
        cands = candidates_from_json(candidates or [])
        # after learning, broken relaxations (their last configuration is a candidate) and unphysical ones
        # (an energy hole or atoms pushed together: pes_core.active.UnphysicalError, whose "floor"/"short"
        # configuration is a candidate) are redone on the new model
        redo = [ind.id for ind in relaxed
                if (ind.relax_info or {}).get("break") or (ind.relax_info or {}).get("unphysical")]
        if self.capped or not cands:
            return self._check_best(run, gen, relaxed, fw_spec)
        st = self.settings
        chosen = choose_candidates(cands, self.pot, self.aset, max_configurations=len(cands))
        # maxvol over all candidates of the generation, capped per round: breaks, holes and short pairs first
        # (see pes_core.active.calculator.FORCED_REASONS), then the highest grades
        priority = {reason: k for k, reason in enumerate(FORCED_REASONS)}
        chosen.sort(key=lambda c: (priority.get(c.reason, len(priority)), -c.grade))
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
            logger.info("search %s gen %d: no new configuration to learn; %d failed relaxations stay failed",
                        name, gen, len(redo))
            return self._check_best(run, gen, relaxed, fw_spec)
        for cand, _, h in new:
            if ActiveLearningEvent.objects(configuration_hash=h, model_id=self.model_id).first() is None:
                ActiveLearningEvent(configuration_hash=h, model_id=self.model_id, grade=float(cand.grade),
                                    reason=cand.reason,
                                    context=jsonable({"search": name, "generation": gen, "round": self.round,
                                                      "formula": cand.atoms.get_chemical_formula()})).save()
        # forget the failed relaxations so that the rerun redoes them on the new model
        partial = dict((run.state.get("partial") or {}).get(str(gen), {}))
        for ind_id in redo:
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
              f"({', '.join(f'{c.reason} {c.grade:.3g}' for c, _, _ in new)}); {len(redo)} relaxations "
              "will be redone", flush=True)
        ofws = oracle_fireworks(name, run.settings, [s for _, s, _ in new], generator="csp-active",
                                extra=[{"grade": float(c.grade), "reason": c.reason, "generation": gen,
                                        "round": self.round + 1} for c, _, _ in new])
        train = train_firework(name, parents=ofws, label=f"gen {gen} round {self.round + 1}")
        again = generation_firework(name, gen, formula=fw_spec.get("formula", ""), parents=[train])
        again.name = f"{again.name} (round {self.round + 1})"
        again.spec["pes_active_round"] = self.round + 1
        wf = Workflow(ofws + [train, again], name=f"csp {name} active learning gen {gen} round {self.round + 1}")
        return FWAction(detours=[wf], stored_data={"active_round": self.round + 1, "selected": len(new),
                                                   "redo": redo})

    # ------------------------------------------------------------------ oracle check of the best
    def _check_best(self, run: SearchRun, gen: int, relaxed: list, fw_spec: dict) -> FWAction | None:
        """Oracle check (short relaxation or single point) of the generation's best candidates; rank by the oracle.

        A low extrapolation grade says that an MTP *interpolates*, not that it
        is accurate: a fit that is poor at low energies can put a spurious
        minimum far below the true ground state with every grade below the
        select threshold, and that minimum then takes over the ranking and the
        breeding.  So, as USPEX+MLIP practice does, the ``check_top`` lowest
        distinct offspring that could become the new best (MTP enthalpy below
        the best so far + ``check_window``) get an oracle single point:

        1. those not computed yet go to the oracle (fireworks tagged
           ``csp-check``): with ``active.check_steps > 0`` a short oracle
           relaxation from the MTP minimum (:class:`~workflows.csp.active_tasks.OracleTrajectoryTask`),
           else a single point; then this generation runs again (every
           relaxation is cached, so the rerun only ranks);
        2. each checked individual is then ranked by its lowest oracle enthalpy
           ``(E + pV)/N`` along that path -- still an upper bound of the
           oracle's local minimum, so an MTP artefact can never look better
           than it is, but a tight one where the MTP minimum is only displaced
           from the oracle's (an MTP fitted on few data typically gets the
           right basin with a distorted bottom: a single point there reads
           tens to hundreds of meV/atom too high and the true ground state
           loses the ranking) -- takes the oracle-relaxed geometry (a
           Lamarckian step: breeding goes on from the oracle's basin) and
           keeps the MTP value in ``relax_info['mtp_enthalpy_per_atom']``;
        3. where ``|H_MTP - H_oracle|`` at the MTP minimum exceeds
           ``check_tolerance``, the configuration and the kept frames of its
           oracle path (the region between the MTP's and the oracle's
           minimum, which is exactly what the fit got wrong) are learned
           (added to the training set of the next fit, a detour ``training ->
           this generation again``), once per configuration.

        Returns the detour, or ``None`` when the generation may be ranked.
        """
        from pymatgen.core import Structure

        from pes_core.db import calculation_hash
        from pes_core.oracles import to_atoms, to_structure
        from pes_core.search.relax import enthalpy_per_atom

        st = self.settings
        if st.check_top <= 0:
            return None
        name = run.name
        pressure = float(run.state["search"]["settings"].get("pressure_gpa", 0.0))
        best_so_far = run.state["search"].get("best_reference")
        usable = [ind for ind in relaxed
                  if not ind.flags.get("failed") and ind.enthalpy_per_atom is not None
                  and np.isfinite(ind.enthalpy_per_atom)]  # clashes too: an MTP hole must not rank
        usable.sort(key=lambda i: (float(i.relax_info.get("mtp_enthalpy_per_atom", i.enthalpy_per_atom)), i.id))
        # reference: the best oracle-checked enthalpy so far (the search's best is oracle-checked after
        # generation 0), lowered by this generation's checked individuals
        checked = [float(i.relax_info["oracle_check"]["oracle_enthalpy_per_atom"])
                   for i in usable if "oracle_check" in i.relax_info]
        refs = checked + ([float(best_so_far)] if best_so_far is not None else [])
        reference = min(refs) if refs else None
        picked, groups = [], {}
        for ind in usable:
            h_mtp = float(ind.relax_info.get("mtp_enthalpy_per_atom", ind.enthalpy_per_atom))
            if reference is not None and h_mtp > reference + st.check_window:
                break
            key = (round(h_mtp / 0.002), ind.spacegroup)  # same enthalpy and space group: one structure
            if key in groups:
                groups[key].append(ind)  # its duplicates take the oracle value of the checked one
                continue
            groups[key] = [ind]
            picked.append((ind, groups[key]))
        if not picked:
            return None
        oracle, osettings = run.settings["oracle"], run.settings.get("oracle_settings") or {}
        active = dict(run.state.get("active") or {})
        requested = set(active.get("check_requested") or [])
        learned = set(active.get("check_learned") or [])
        missing, to_learn, lines = [], [], []
        for ind, group in picked:
            structure = to_structure(ind.atoms)
            h = calculation_hash(structure, oracle, osettings)
            doc = Configuration.objects(content_hash=h).first()
            if doc is None or doc.energy is None:
                # a check that failed once is not asked again; at most check_top per round
                if h not in requested and len(missing) < st.check_top:
                    missing.append((ind, structure, h))
                continue
            h_mtp = float(ind.relax_info.get("mtp_enthalpy_per_atom", ind.enthalpy_per_atom))
            h_start = float(enthalpy_per_atom(float(doc.energy), float(ind.atoms.get_volume()), len(ind.atoms),
                                              pressure))
            err = float(h_mtp - h_start)  # the MTP error at its own minimum
            h_oracle, frames, relaxed_atoms = h_start, [], None
            e_oracle = float(doc.energy) / len(ind.atoms)  # eV/atom at the geometry that ranks
            if st.check_steps > 0:
                frames = [f for f in trajectory_frames(h) if f.energy is not None]
                best_frame = None
                for f in frames:
                    fs = Structure.from_dict(f.structure)
                    hf = float(enthalpy_per_atom(float(f.energy), float(fs.volume), len(fs), pressure))
                    if hf < h_oracle - 1e-9:
                        h_oracle, best_frame, e_oracle = hf, fs, float(f.energy) / len(fs)
                if best_frame is not None:
                    relaxed_atoms = to_atoms(best_frame)
            for member in group:
                member.relax_info["mtp_enthalpy_per_atom"] = float(
                    member.relax_info.get("mtp_enthalpy_per_atom", member.enthalpy_per_atom))
                member.relax_info["oracle_check"] = {
                    "configuration": h, "oracle_enthalpy_per_atom": h_oracle, "error": err,
                    "learned": bool(abs(err) > st.check_tolerance), "checked_as": ind.id}
                member.relax_info["oracle_check"]["oracle_start_enthalpy_per_atom"] = h_start
                member.relax_info["oracle_check"]["oracle_steps"] = max(0, len(frames) - 1)
                member.enthalpy_per_atom = float(h_oracle)
                member.energy = e_oracle * len(member.atoms)
            if relaxed_atoms is not None and len(relaxed_atoms) == len(ind.atoms):
                # Lamarckian: the checked individual continues (ranking, breeding) from the oracle-relaxed
                # geometry, so the search descends into the oracle's basin rather than the MTP's
                from pes_core.search.individual import (
                    atoms_to_dict,
                    canonical_atoms,
                    structure_hash,
                )
                from pes_core.search.report import spacegroup_label

                relaxed_atoms = canonical_atoms(relaxed_atoms)
                ind.structure = atoms_to_dict(relaxed_atoms)
                ind.hash = structure_hash(relaxed_atoms)
                ind.volume = float(relaxed_atoms.get_volume())
                ind.spacegroup = spacegroup_label(relaxed_atoms)
            lines.append(f"{ind.id} MTP {h_mtp:.4f} oracle {h_start:.4f} ({1e3 * err:+.1f} meV/atom)"
                         + (f" -> {h_oracle:.4f} after {len(frames) - 1} oracle steps" if frames else ""))
            if abs(err) > st.check_tolerance:
                hashes = [h] + [f.content_hash for f in frames if (f.extra or {}).get("kept")]
                to_learn += [x for x in dict.fromkeys(hashes) if x not in learned and x not in to_learn]
        rounds = dict(active.get("check_rounds") or {})
        n_round = int(rounds.get(str(gen), 0))
        if missing and n_round >= st.max_check_rounds:
            print(f"  [{name} gen {gen}] oracle check capped after {n_round} rounds; "
                  f"{len(missing)} candidate(s) keep their MTP enthalpy", flush=True)
            missing = []
        if missing:
            rounds[str(gen)] = n_round + 1
            active["check_rounds"] = rounds
            requested |= {h for _, _, h in missing}
            active["check_requested"] = sorted(requested)
            run.state = {**run.state, "active": active}
            run.save()
            flush_store()
            print(f"  [{name} gen {gen}] oracle check of {len(missing)} best candidate(s) "
                  f"({', '.join(f'{i.enthalpy_per_atom:.4f}' for i, _, _ in missing)} eV/atom on the MTP)",
                  flush=True)
            extra = [{"reason": "check", "generation": gen, "individual": i.id,
                      "mtp_enthalpy_per_atom": float(i.enthalpy_per_atom)} for i, _, _ in missing]
            if st.check_steps > 0:
                ofws = trajectory_fireworks(name, run.settings, [s for _, s, _ in missing], generator="csp-check",
                                            steps=st.check_steps, every=st.prerelax_every, extra=extra)
            else:
                ofws = oracle_fireworks(name, run.settings, [s for _, s, _ in missing], generator="csp-check",
                                        extra=extra)
            again = self._again(name, gen, fw_spec, ofws, "check")
            return FWAction(detours=[Workflow(ofws + [again], name=f"csp {name} oracle check gen {gen}")],
                            stored_data={"checked": len(missing)})
        if lines:
            print(f"  [{name} gen {gen}] oracle check: " + "; ".join(lines), flush=True)
        if not to_learn:
            return None
        active["check_learned"] = sorted(learned | set(to_learn))
        active["n_check_learned"] = len(active["check_learned"])
        run.state = {**run.state, "active": active}
        run.save()
        flush_store()
        print(f"  [{name} gen {gen}] learning {len(to_learn)} checked configuration(s) whose MTP error exceeds "
              f"{1e3 * st.check_tolerance:.0f} meV/atom", flush=True)
        train = train_firework(name, label=f"gen {gen} check")
        again = self._again(name, gen, fw_spec, [train], "check learned")
        return FWAction(detours=[Workflow([train, again], name=f"csp {name} check learning gen {gen}")],
                        stored_data={"check_learned": len(to_learn)})

    @staticmethod
    def _again(name: str, gen: int, fw_spec: dict, parents: list, label: str):
        again = generation_firework(name, gen, formula=fw_spec.get("formula", ""), parents=parents)
        again.name = f"{again.name} ({label})"
        return again


def candidates_from_json(items: list[dict]) -> list:
    """:class:`pes_core.active.Candidate` objects from :meth:`LearningRelaxer.take_candidates` output."""
    from pes_core.active.calculator import Candidate
    from pes_core.search.individual import atoms_from_dict

    return [Candidate(atoms_from_dict(d["atoms"]), float(d["grade"]), d.get("reason", "select"), dict(d.get("info") or {}))
            for d in items]


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
