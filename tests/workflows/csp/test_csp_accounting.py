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

from pes_core.db import Configuration, GenerationRecord, SearchRun
from pes_core.oracles.ase_calc import StillingerWeberOracle
from workflows.cli import main as pes
from workflows.core.backend import open_backend
from workflows.core.runner import run_local
from workflows.csp.builders import csp_workflow
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


def test_mtp_search_counts_every_oracle_call_by_purpose(project, counted_sw):
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
