"""One oracle-call accounting per search (issue 19): every call the oracle made, counted by purpose.

The oracle's ``_compute`` is wrapped to count the calls it really makes
(the local runner launches fireworks in this process); the accounting of
:func:`workflows.csp.report.search_accounting` must give the same total, and
``summary.json`` must carry that total.
"""

from __future__ import annotations

import json
import threading

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from pes_core.db import Configuration, GenerationRecord, PotentialModel, SearchRun
from pes_core.oracles.ase_calc import StillingerWeberOracle
from workflows.cli import main as pes
from workflows.core.backend import open_backend
from workflows.core.runner import run_local
from workflows.csp.builders import csp_workflow
from workflows.csp.learning import training_role
from workflows.csp.report import PURPOSES, accuracy_warning, search_accounting

SEARCH = {"composition": {"Si": 1}, "n_atoms": [4, 4], "population_size": 6, "max_generations": 2,
          "stop_after": 5, "seed": 7}
RELAX = {"fmax": 0.05, "steps": 200}
MTP = {"level": 10, "max_iter": 30, "max_dist": 4.0}
ACTIVE = {"pool_size": 10, "mode": "neighbourhood", "max_rounds_per_generation": 3, "prerelax_steps": 3,
          "max_configurations_per_round": 6, "check_top": 3}


@pytest.fixture
def counted_sw(monkeypatch):
    """Count every single point the SW oracle computes (all threads)."""
    calls = {"n": 0}
    lock = threading.Lock()
    original = StillingerWeberOracle._compute

    def counting(self, structure, workdir=None):
        with lock:
            calls["n"] += 1
        return original(self, structure, workdir=workdir)

    monkeypatch.setattr(StillingerWeberOracle, "_compute", counting)
    return calls


def _check_report(project, name: str, acc: dict) -> list[dict]:
    report = project.parent / "reports" / name
    summary = json.loads((report / "summary.json").read_text())
    assert summary["oracle_calls"] == acc["oracle_calls"]
    assert summary["oracle_calls_by_purpose"] == acc["oracle_calls_by_purpose"]
    assert summary["model_evaluations"] == acc["mtp_evaluations"]
    assert (report / "calls.png").is_file()
    text = (report / "candidates.txt").read_text()
    assert f"oracle calls {acc['oracle_calls']}:" in text
    final = json.loads((report / "verified.json").read_text())
    assert final and "after verification" in text
    # merged: no two rows are the same structure; ranked by the oracle enthalpy; every verified id listed once
    hs = [r["oracle_enthalpy_per_atom"] for r in final]
    assert hs == sorted(hs) and final[0]["delta_mev"] == 0.0
    matcher = StructureMatcher()
    structs = [Structure.from_dict(r["structure"]) for r in final]
    assert not any(matcher.fit(a, b) for i, a in enumerate(structs) for b in structs[i + 1:])
    members = [m for r in final for m in r["members"]]
    ver = SearchRun.objects.get(name=name).state["verification"]
    assert sorted(members) == sorted(v["id"] for v in ver if not v["failed"])
    assert all(r["spacegroup"].endswith(f"({r['spacegroup_number']})") for r in final)
    kept = SearchRun.objects.get(name=name).state["accounting"]
    assert kept["oracle_calls_by_purpose"] == acc["oracle_calls_by_purpose"]
    return final


def test_direct_search_counts_every_oracle_call(project, counted_sw, capsys):
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow("acc-direct", SEARCH, oracle="sw", mode="direct", relax=RELAX,
                                 verify={"within_mev": 100}))
        assert run_local(b, progress=False).fizzled == 0
        acc = search_accounting("acc-direct")
        by = acc["oracle_calls_by_purpose"]
        assert set(by) == set(PURPOSES) and acc["oracle_calls"] == sum(by.values())
        assert acc["oracle_calls"] == counted_sw["n"]  # every call the oracle made, none twice
        assert by["verification"] > 0 and by["preexploration"] == by["learning"] == by["checks"] == 0
        assert by["direct_relaxations"] == sum(g.n_oracle_calls for g in GenerationRecord.objects(search="acc-direct"))
        assert acc["mtp_evaluations"] == 0 and acc["wall_s"] > 0
        assert accuracy_warning("acc-direct") is None  # no MTP, nothing to warn about
        final = _check_report(project, "acc-direct", acc)
    # pes status gives the same total, the purposes, the generations done and the verified best
    capsys.readouterr()
    pes(["status", "-l", str(project)])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("search acc-direct"))
    assert f"oracle calls {acc['oracle_calls']} (" in line and f"verification {by['verification']}" in line
    assert f"generations done {acc['last_generation'] + 1}" in line
    assert f"best {final[0]['oracle_enthalpy_per_atom']:.4f} eV/atom (verified)" in line


def test_mtp_search_counts_every_oracle_call_by_purpose(project, counted_sw, capsys):
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow("acc-mtp", SEARCH, oracle="sw", mode="mtp", relax=RELAX, mtp=MTP, active=ACTIVE,
                                 verify={"within_mev": 50}))
        assert run_local(b, progress=False).fizzled == 0
        acc = search_accounting("acc-mtp")
        by = acc["oracle_calls_by_purpose"]
        assert acc["oracle_calls"] == sum(by.values()) == counted_sw["n"]
        assert by["preexploration"] == Configuration.objects(generator="csp-preselect").count() > 0
        assert by["direct_relaxations"] == 0 and by["verification"] > 0 and by["checks"] > 0
        assert by["other"] == 0
        per_gen = acc["oracle_calls_by_generation"]
        assert per_gen[0]["generation"] == -1 and per_gen[0]["preexploration"] == by["preexploration"]
        assert sum(sum(v for k, v in r.items() if k != "generation") for r in per_gen) \
            == acc["oracle_calls"] - by["verification"]
        assert acc["mtp_evaluations"] > 0
        final = _check_report(project, "acc-mtp", acc)
        warning = accuracy_warning("acc-mtp", final)
        assert warning is not None and warning["required_mev"] >= warning["resolution_mev"] == 5.0
        assert warning["warn"] == (warning["energy_rmse_window_mev"] > warning["required_mev"])
        summary = json.loads((project.parent / "reports" / "acc-mtp" / "summary.json").read_text())
        assert summary["mtp_accuracy"]["message"] == warning["message"]
        assert "two_stage" not in summary  # the option is off
        # refused oracle calls (overlapping atoms of a bad MTP relaxation) are reported by purpose, beside the total
        assert acc["oracle_failures"] == 0
        from pymatgen.core import Lattice, Structure

        from pes_core.db import record_failure

        bad = Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.01, 0, 0]])
        for reason, tags in (("ValueError: atoms 0 and 1 overlap", ["csp:acc-mtp", "csp-active"]),
                             ("ValueError: atoms 0 and 1 overlap", ["csp:acc-mtp", "csp-active"]),  # the same: once
                             ("OracleError: SCF not converged", ["csp:acc-mtp", "csp-check"]),
                             ("OracleError: SCF not converged", ["csp:other-search", "csp-check"])):
            record_failure(bad, "sw", {}, reason, workflow="acc-mtp", tags=tags)
        again = search_accounting("acc-mtp")
        assert again["oracle_failures"] == 2
        assert again["oracle_failures_by_purpose"]["learning"] == 1 and again["oracle_failures_by_purpose"]["checks"] == 1
        assert again["oracle_calls_by_purpose"] == by  # not in the total
    capsys.readouterr()
    pes(["status", "-l", str(project)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("search acc-mtp"))
    assert f"oracle calls {acc['oracle_calls']} (" in line and "failed or refused oracle calls 2 (not in the total)" in line


DIAMOND_SW = -4.3366  # eV/atom, Stillinger-Weber minimum of diamond Si (a = 5.431 Å)
TWO_STAGE = {"window_mev": 100, "margin_mev": 300, "level": 12, "max_rounds": 3, "min_train": 12}


def _screened(ind: dict) -> float:
    """The screening MTP's enthalpy (eV/atom) of a stored offspring, whatever replaced it afterwards."""
    info = ind.get("relax_info") or {}
    if "two_stage" in info:
        return float(info["two_stage"]["screened_enthalpy_per_atom"])
    return float(info.get("mtp_enthalpy_per_atom", ind["enthalpy_per_atom"]))


def test_two_stage_search_counts_every_oracle_call_and_keeps_to_its_window(project, counted_sw):
    """``active.two_stage``: the accurate MTP is fitted on in-window configurations only, relaxes the in-window
    offspring only, its own learning calls are counted (``learning_accurate``), and diamond is found."""
    name = "acc-two"
    search = {**SEARCH, "max_generations": 3, "seed": 3}  # seed 3 reaches diamond in 3 generations (7, 1, 2 do not)
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow(name, search, oracle="sw", mode="mtp", relax=RELAX, mtp=MTP,
                                 active={**ACTIVE, "two_stage": TWO_STAGE}, verify={"within_mev": 50}))
        assert run_local(b, progress=False).fizzled == 0
        acc = search_accounting(name)
        by = acc["oracle_calls_by_purpose"]
        assert acc["oracle_calls"] == sum(by.values()) == counted_sw["n"]
        assert by["learning_accurate"] == Configuration.objects(generator="csp-accurate").count()
        assert by["learning"] == Configuration.objects(generator="csp-active").count()
        assert by["other"] == 0 and by["verification"] > 0
        per_gen = acc["oracle_calls_by_generation"]
        assert sum(r.get("learning_accurate", 0) for r in per_gen) == by["learning_accurate"]
        _check_report(project, name, acc)

        run = SearchRun.objects.get(name=name)
        two = run.state["two_stage"]
        window, train_window = TWO_STAGE["window_mev"] / 1e3, (TWO_STAGE["window_mev"] + TWO_STAGE["margin_mev"]) / 1e3
        # the accurate MTP: its own chain of models, each fitted on configurations within its window only
        models = list(PotentialModel.objects(workflow=name, name=f"{name}-mtp-accurate").order_by("version"))
        assert models and two["model_id"] == str(models[-1].id)
        assert all(m.settings["level"] == TWO_STAGE["level"] and m.settings["stage"] == "accurate" for m in models)
        assert run.model_id not in {str(m.id) for m in models}
        n_min = TWO_STAGE["min_train"]
        for m in models:  # (or, while fewer lie in the window, the min_train lowest)
            e = [Configuration.objects.get(content_hash=h).energy_per_atom for h in m.training_ids]
            assert max(e) <= min(e) + train_window + 1e-9 or len(e) == n_min, (m.version, min(e), max(e))
        assert max(len(m.training_ids) for m in models) > n_min  # the window, not the fallback, decided at the end
        # ... and its last fit holds every training configuration of the search within the window of the lowest
        learned_checks = set(run.state["active"].get("check_learned") or [])
        data = sorted((d for d in Configuration.objects(tags=f"csp:{name}")
                       if training_role(d, learned_checks) and d.energy is not None), key=lambda d: d.energy_per_atom)
        low = data[0].energy_per_atom
        inside = {d.content_hash for d in data if d.energy_per_atom <= low + train_window}
        assert set(models[-1].training_ids) == (inside if len(inside) >= n_min else {d.content_hash for d in data[:n_min]})
        assert len(data) > len(models[-1].training_ids)  # some of the search's data lie above the window
        # the screening MTP is trained on everything (its configurations span far more than the window)
        screening = PotentialModel.objects.get(id=run.model_id)
        e_all = [Configuration.objects.get(content_hash=h).energy_per_atom for h in screening.training_ids]
        assert max(e_all) - min(e_all) > train_window

        # applied to the in-window offspring only, and their energy is the accurate MTP's
        ids = {str(m.id) for m in models}
        n_accurate = 0
        for rec in GenerationRecord.objects(search=name).order_by("index"):
            reference = two["reference"][str(rec.index)]
            assert reference <= min(_screened(i) for i in rec.population if "two_stage" in i["relax_info"]
                                    or not i["flags"].get("failed"))
            for ind in rec.population:
                if ind["flags"].get("failed") and "two_stage" not in (ind.get("relax_info") or {}):
                    continue
                info = ind["relax_info"]
                inside = _screened(ind) <= reference + window + 1e-9
                assert ("two_stage" in info) == inside, (rec.index, ind["id"], _screened(ind), reference)
                if inside:
                    assert info["two_stage"]["model_id"] in ids
                    assert ind["id"] in two["relaxed"][str(rec.index)]
                    n_accurate += not info["two_stage"].get("failed")
        assert n_accurate > 0
        summary = json.loads((project.parent / "reports" / name / "summary.json").read_text())
        assert summary["two_stage"]["models"] == len(models) and summary["two_stage"]["version"] == models[-1].version
        assert summary["two_stage"]["oracle_calls"] == by["learning_accurate"]
        assert summary["two_stage"]["relaxed"] - summary["two_stage"]["failed"] == n_accurate

        # the ground state is found (verified by the oracle)
        ver = [v for v in run.state["verification"] if not v["failed"]]
        assert min(v["oracle_enthalpy_per_atom"] for v in ver) <= DIAMOND_SW + 0.002
