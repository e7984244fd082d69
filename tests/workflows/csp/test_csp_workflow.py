"""The CSP workflow on FireWorks (direct-oracle mode with the fast Tersoff potential)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from pes_core.db import Configuration, GenerationRecord, SearchRun
from workflows.core.backend import open_backend
from workflows.csp.builders import csp_workflow
from workflows.core.runner import run_local

SEARCH = {"composition": {"Si": 1}, "n_atoms": [4, 4], "population_size": 6, "max_generations": 3,
          "stop_after": 5, "seed": 7}
RELAX = {"fmax": 0.1, "steps": 120}


def test_search_stops_at_the_cap_verifies_and_reports(project):
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow("si4", SEARCH, oracle="tersoff", mode="direct", relax=RELAX,
                                 verify={"within_mev": 100}))
        summary = run_local(b, progress=False)
        assert summary.fizzled == 0
        run = SearchRun.objects.get(name="si4")
        assert run.status == "capped" and run.current_generation == 2
        assert [g.index for g in GenerationRecord.objects(search="si4").order_by("index")] == [0, 1, 2]
        assert all(g.n_oracle_calls > 0 for g in GenerationRecord.objects(search="si4"))
        # verification stored oracle results of the candidates, with both energies kept
        ver = run.state["verification"]
        assert ver and all(v["oracle_enthalpy_per_atom"] is not None for v in ver if not v["failed"])
        assert Configuration.objects(tags="csp-verify").count() == sum(not v["failed"] for v in ver)
        best = min(v["oracle_enthalpy_per_atom"] for v in ver if not v["failed"])
        assert abs(best - run.best_enthalpy_per_atom) < 0.02  # same potential: relaxing again changes little
        report = project.parent / "reports" / "si4"
        assert (report / "history.png").is_file() and (report / "candidates.txt").is_file()
        summary_json = json.loads((report / "summary.json").read_text())
        assert summary_json["oracle_calls"] > 0 and summary_json["stop_reason"] == "max_generations"

        # rerunning a finished generation firework adds nothing and duplicates nothing
        fw = b.lp.fireworks.find_one({"name": "csp si4 generation 1"})
        n_fw = b.lp.fireworks.count_documents({})
        b.lp.rerun_fw(fw["fw_id"])
        run_local(b, progress=False)
        assert GenerationRecord.objects(search="si4").count() == 3
        assert b.lp.fireworks.count_documents({}) == n_fw


def test_search_stops_when_the_best_stays_unchanged(project):
    search = dict(SEARCH, stop_after=1, max_generations=12, seed=3)
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow("si4-conv", search, oracle="tersoff", mode="direct", relax=RELAX))
        run_local(b, progress=False)
        run = SearchRun.objects.get(name="si4-conv")
        assert run.status == "converged"
        assert run.current_generation < 11
        hist = run.state["search"]["history"]
        assert abs(hist[-1]["best_enthalpy"] - hist[-2]["best_enthalpy"]) < 1e-3


def test_sigkill_mid_generation_resumes_without_duplicates(project):
    store = project.parent / "store.json"
    search = dict(SEARCH, max_generations=2)
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow("si4-kill", search, oracle="tersoff", mode="direct", relax=RELAX))
    worker = subprocess.Popen([sys.executable, "-m", "workflows.cli", "run", "-l", str(project)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def partial_count():
        try:
            db = json.loads(store.read_text())["pes"]
        except (json.JSONDecodeError, KeyError):
            return 0
        runs = [d for _, d in db.get("pes_search_runs", {}).get("documents", [])]
        if not runs:
            return 0
        return sum(len(v) for v in (runs[0]["state"].get("partial") or {}).values())

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and partial_count() < 2:
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    n_partial = partial_count()
    assert n_partial >= 2
    res = subprocess.run([sys.executable, "-m", "workflows.cli", "run", "-l", str(project)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    with open_backend(project, read_only=True) as b:
        assert [g.index for g in GenerationRecord.objects(search="si4-kill").order_by("index")] == [0, 1]
        gen0 = GenerationRecord.objects.get(search="si4-kill", index=0)
        ids = [p["id"] for p in gen0.population]
        assert len(ids) == len(set(ids)) == 6
        assert SearchRun.objects.get(name="si4-kill").status == "capped"
        states = {d["state"] for d in b.lp.fireworks.find({})}
        assert states == {"COMPLETED"}
    print(f"drill: {n_partial} relaxations cached before the kill; generations after recovery: 0, 1")


def _records(name: str) -> list[tuple]:
    return [(g.index, round(g.best_enthalpy_per_atom, 10), tuple(sorted(i["hash"] or "" for i in g.population)))
            for g in GenerationRecord.objects(search=name).order_by("index")]


def test_parallel_relaxation_fireworks_give_the_serial_search(project):
    """relax.parallel fans each generation out into relaxation fireworks; the search is the same, step by step."""
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow("si4-serial", SEARCH, oracle="tersoff", mode="direct", relax=RELAX))
        b.lp.add_wf(csp_workflow("si4-par", SEARCH, oracle="tersoff", mode="direct", relax=dict(RELAX, parallel=3)))
        assert run_local(b, workers=2, progress=False).fizzled == 0
        assert _records("si4-par") == _records("si4-serial") and len(_records("si4-par")) == 3
        relax_fws = list(b.lp.fireworks.find({"spec.pes_kind": "csp_relax", "spec.search": "si4-par"}))
        assert len(relax_fws) == 9 and all(f["state"] == "COMPLETED" for f in relax_fws)  # 3 a generation
        assert not b.lp.fireworks.count_documents({"spec.pes_kind": "csp_relax", "spec.search": "si4-serial"})
        # every offspring was relaxed exactly once, in the firework that held its id
        relaxed = [la["action"]["stored_data"]["relaxed"] for f in relax_fws
                   for la in b.lp.launches.find({"launch_id": {"$in": f["launches"]}})]
        n_offspring = [g.stats["n_offspring"] for g in GenerationRecord.objects(search="si4-par").order_by("index")]
        assert n_offspring[0] == 6  # then the elite survive unrelaxed
        assert sum(relaxed) == sum(len(f["spec"]["_tasks"][0]["ids"]) for f in relax_fws) == sum(n_offspring)
        assert SearchRun.objects.get(name="si4-par").state["partial"] == {}
        # a relaxation firework run again after its generation finished does nothing
        b.lp.rerun_fw(relax_fws[0]["fw_id"])
        n = GenerationRecord.objects(search="si4-par").count()
        assert run_local(b, progress=False).fizzled == 0
        assert GenerationRecord.objects(search="si4-par").count() == n


def test_relax_settings_are_validated():
    import pytest
    from pydantic import ValidationError

    from workflows.csp.spec import CSPSpec

    base = {"kind": "csp", "name": "x", "oracle": "tersoff", "search": {"composition": {"Si": 1}, "n_atoms": [4, 4]}}
    assert CSPSpec.model_validate({**base, "relax": {"parallel": 4, "fmax": 0.05}}).relax["parallel"] == 4
    for bad in ({"parallel": 0}, {"parallel": 1.5}, {"paralel": 2}):
        with pytest.raises(ValidationError):
            CSPSpec.model_validate({**base, "relax": bad})


def test_search_stops_at_the_target_enthalpy(project):
    """``stop_enthalpy`` (USPEX's stopFitness) ends the search at the first generation that reaches it."""
    search = dict(SEARCH, stop_after=10, max_generations=12, seed=3, stop_enthalpy=-4.6296 + 0.002)
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow("si4-target", search, oracle="tersoff", mode="direct", relax=RELAX))
        run_local(b, progress=False)
        run = SearchRun.objects.get(name="si4-target")
        bests = [h["best_enthalpy"] for h in run.state["search"]["history"]]
        assert run.status == "converged" and bests[-1] <= -4.6276 and all(b > -4.6276 for b in bests[:-1])
        assert run.current_generation < 11
        report = project.parent / "reports" / "si4-target"
        assert json.loads((report / "summary.json").read_text())["stop_reason"] == "target"
