"""The CSP workflow in ``mode: mtp`` (pre-exploration, learning on the fly) with the Stillinger-Weber oracle.

SW rather than Tersoff: its smooth cutoff makes it learnable by an MTP the
way a DFT surface is (Tersoff's bond switching between 2.7 and 3.0 Å leaves a
level-16 MTP 42 meV/atom off on relaxed minima, SW 17), so the test can ask
for the ground state itself.
"""

from __future__ import annotations

import pytest

from pes_core.db import ActiveLearningEvent, Configuration, GenerationRecord, PotentialModel, SearchRun
from workflows.core.backend import open_backend
from workflows.csp.builders import csp_workflow
from workflows.core.runner import run_local

DIAMOND_SW = -4.3366  # eV/atom, Stillinger-Weber minimum of diamond Si (a = 5.431 Å)

SEARCH = {"composition": {"Si": 1}, "n_atoms": [4, 4], "population_size": 6, "max_generations": 3,
          "stop_after": 5, "seed": 7}
RELAX = {"fmax": 0.05, "steps": 200}
MTP = {"level": 10, "max_iter": 30, "max_dist": 4.0}  # SW Si acts within 3.77 Å
ACTIVE = {"pool_size": 10, "mode": "neighbourhood", "max_rounds_per_generation": 3, "prerelax_steps": 3,
          "max_configurations_per_round": 6, "check_top": 3}


def test_mtp_mode_search_runs_to_completion(project):
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow("si4-mtp", SEARCH, oracle="sw", mode="mtp", relax=RELAX, mtp=MTP,
                                 active=ACTIVE, verify={"within_mev": 50}))
        summary = run_local(b, progress=False)
        assert summary.fizzled == 0
        assert {d["state"] for d in b.lp.fireworks.find({})} == {"COMPLETED"}
        run = SearchRun.objects.get(name="si4-mtp")
        assert run.status == "capped"
        assert [g.index for g in GenerationRecord.objects(search="si4-mtp").order_by("index")] == [0, 1, 2]

        # one model per training round: the initial fit plus one per learning round
        models = list(PotentialModel.objects(workflow="si4-mtp").order_by("version"))
        trainings = b.lp.fireworks.count_documents({"spec.pes_kind": "mtp_train"})
        assert len(models) == trainings >= 1
        assert [m.version for m in models] == list(range(len(models)))
        assert run.model_id == str(models[-1].id)
        assert all(m.parent == str(p.id) for p, m in zip(models, models[1:]))
        assert all(m.active_set is not None and m.metrics["active_set_filled"] > 0 for m in models)

        # no duplicate configurations; each selected one has the event with its grade
        confs = list(Configuration.objects(tags="csp:si4-mtp"))
        hashes = [c.content_hash for c in confs]
        assert len(hashes) == len(set(hashes))
        active = [c for c in confs if "csp-active" in c.tags]
        events = list(ActiveLearningEvent.objects(context__search="si4-mtp"))
        assert len({e.configuration_hash for e in events}) == len(events)
        assert {e.configuration_hash for e in events} >= {c.content_hash for c in active}
        # selected by the grade, or forced: an energy hole ("floor") or a pair below R_min ("short")
        assert all(e.processed and (e.grade > 2.0 or e.reason in ("floor", "short")) for e in events)
        assert all(c.extra["grade"] > 2.0 or c.extra["reason"] in ("floor", "short") for c in active)

        # once the initial set is learned, far fewer oracle calls than MTP evaluations per generation
        gens = list(GenerationRecord.objects(search="si4-mtp"))
        n_model = sum(g.n_model_evaluations for g in gens)
        n_oracle = Configuration.objects(tags="csp:si4-mtp", oracle="sw").count()
        later = [g for g in gens if g.index > 0]
        assert sum(g.n_model_evaluations for g in later) > 5 * sum(g.n_oracle_calls for g in later), \
            [(g.n_model_evaluations, g.n_oracle_calls) for g in later]

        # the verified candidates: where the oracle says diamond, the MTP enthalpy agrees within a few meV/atom
        ver = [v for v in run.state["verification"] if not v["failed"]]
        assert ver
        best_row = min(ver, key=lambda v: v["oracle_enthalpy_per_atom"])
        best = best_row["oracle_enthalpy_per_atom"]
        assert best >= DIAMOND_SW - 0.002  # nothing below the oracle's ground state

        # the oracle check: the search's best is ranked by an oracle single point, never by an MTP artefact
        state = run.state["search"]
        assert state["best_reference"] >= DIAMOND_SW - 0.002
        checks = Configuration.objects(tags="csp-check")
        assert checks.count() >= 1
        learned = set(run.state["active"].get("check_learned") or [])
        assert learned <= {c.content_hash for c in checks}
        last = models[-1]
        assert set(last.training_ids) >= learned  # checked configurations with a large error were learned
        for rec in GenerationRecord.objects(search="si4-mtp"):
            pop = [i for i in rec.population if not i["flags"].get("failed")]
            top = min(pop, key=lambda i: i["enthalpy_per_atom"])
            assert "oracle_check" in top["relax_info"], top["id"]
            assert top["enthalpy_per_atom"] == top["relax_info"]["oracle_check"]["oracle_enthalpy_per_atom"]
        print(f"mtp mode: {len(models)} models, {n_oracle} oracle calls, {n_model} MTP evaluations, "
              f"best {best:.4f} eV/atom (MTP {best_row['search_enthalpy_per_atom']:.4f})")

        # rerunning a training firework reuses its model instead of storing a second one
        fw = b.lp.fireworks.find_one({"spec.pes_kind": "mtp_train"})
        b.lp.rerun_fw(fw["fw_id"])
        run_local(b, progress=False)
        assert PotentialModel.objects(workflow="si4-mtp").count() == len(models)
        assert Configuration.objects(tags="csp:si4-mtp").count() == len(confs)


@pytest.mark.slow
def test_si8_example_spec_finds_the_ground_state(project):
    """``examples/csp_si8_sw_mtp.yaml`` as submitted from the command line reaches SW's ground state.

    Diamond and lonsdaleite are degenerate with SW (-4.3366 eV/atom); the
    verified (oracle-relaxed) best must be one of them, and the search must
    cost far fewer oracle calls than the direct search (~7,500, benchmarks/csp.py).
    About 3-4 minutes on 2 cores.
    """
    from pathlib import Path

    from workflows.cli import main as pes

    example = Path(__file__).resolve().parents[3] / "examples" / "csp_si8_sw_mtp.yaml"
    pes(["submit", str(example), "-l", str(project)])
    with open_backend(project) as b:
        summary = run_local(b, progress=False)
        assert summary.fizzled == 0
        run = SearchRun.objects.get(name="si8-sw-mtp")
        ver = [v for v in run.state["verification"] if not v["failed"]]
        best = min(v["oracle_enthalpy_per_atom"] for v in ver)
        assert abs(best - DIAMOND_SW) < 1e-3, best
        n_oracle = Configuration.objects(tags="csp:si8-sw-mtp").count()
        assert n_oracle < 1000, n_oracle


def test_mtp_mode_relaxation_fireworks_carry_their_learning_candidates(project):
    """relax.parallel in mode mtp: candidates met in the relaxation fireworks reach the learning step."""
    search = dict(SEARCH, max_generations=2)
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow("si4-mtp-par", search, oracle="sw", mode="mtp", relax=dict(RELAX, parallel=2),
                                 mtp=MTP, active=ACTIVE, verify={"within_mev": 50}))
        assert run_local(b, workers=2, progress=False).fizzled == 0
        run = SearchRun.objects.get(name="si4-mtp-par")
        assert run.status == "capped" and run.state["partial"] == {}
        relax_fws = list(b.lp.fireworks.find({"spec.pes_kind": "csp_relax"}))
        assert len(relax_fws) >= 4 and all(f["state"] == "COMPLETED" for f in relax_fws)
        # learning happened inside generations, from candidates the relaxation fireworks stored
        events = [e for e in ActiveLearningEvent.objects(context__search="si4-mtp-par") if "generation" in e.context]
        assert events and all(e.grade > 2.0 or e.reason in ("floor", "short") for e in events)
        hashes = [c.content_hash for c in Configuration.objects(tags="csp:si4-mtp-par")]
        assert len(hashes) == len(set(hashes))
        for rec in GenerationRecord.objects(search="si4-mtp-par"):  # no candidate lists left in the records
            assert all("candidates" not in (i.get("relax_info") or {}) for i in rec.population)
