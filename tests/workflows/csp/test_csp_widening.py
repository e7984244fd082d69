"""A search whose MTP is too poor for the energy gaps it must resolve checks more offspring (issue 19).

A level-4 MTP fitted for 5 iterations on a Si4 Stillinger-Weber search is
tens of meV/atom off at the minima it relaxes into, far more than the 5
meV/atom the search must resolve; with one offspring checked per generation
(``check_top`` 1, one check round), the widening must raise the checks of
the next generations and still let the search finish and verify.
"""

from __future__ import annotations

import json

import pytest

from pes_core.db import Configuration, GenerationRecord, SearchRun
from workflows.core.backend import open_backend
from workflows.core.runner import run_local
from workflows.csp.builders import csp_workflow
from workflows.csp.spec import CSPSpec

SEARCH = {"composition": {"Si": 1}, "n_atoms": [4, 4], "population_size": 6, "max_generations": 2,
          "stop_after": 5, "seed": 7}
RELAX = {"fmax": 0.05, "steps": 200}
POOR_MTP = {"level": 4, "max_iter": 5, "max_dist": 4.0}
ACTIVE = {"pool_size": 10, "mode": "neighbourhood", "max_rounds_per_generation": 1, "prerelax_steps": 3,
          "max_configurations_per_round": 4, "check_top": 1, "max_check_rounds": 1, "check_window": 0.5,
          "widen_max_check_top": 4}


def _checked_per_generation(name: str) -> dict[int, int]:
    """Distinct offspring the oracle checked in each generation (from the stored check configurations)."""
    out: dict[int, set] = {}
    for c in Configuration.objects(tags=f"csp:{name}", generator__startswith="csp-check"):
        extra = c.extra or {}
        if "individual" in extra:
            out.setdefault(int(extra["generation"]), set()).add(extra["individual"])
    return {g: len(ids) for g, ids in out.items()}


def test_poor_mtp_widens_the_checks_and_the_search_finishes(project, capsys):
    name = "si4-widen"
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow(name, SEARCH, oracle="sw", mode="mtp", relax=RELAX, mtp=POOR_MTP, active=ACTIVE,
                                 verify={"within_mev": 50}))
        assert run_local(b, progress=False).fizzled == 0
        run = SearchRun.objects.get(name=name)
        assert run.status == "capped"
        assert [g.index for g in GenerationRecord.objects(search=name).order_by("index")] == [0, 1]
        assert [v for v in run.state["verification"] if not v["failed"]]  # verified after the widening

        widening = run.state["widening"]
        history = widening["history"]
        assert [h["generation"] for h in history] == sorted({h["generation"] for h in history})
        first = history[0]
        assert first["warn"] and first["rmse_mev"] > first["required_mev"] >= 5.0, first
        assert first["action"] == "widen" and first["level"] == 1 and first["check_top"] == 2
        assert all(h["check_top"] <= ACTIVE["widen_max_check_top"] for h in history)
        assert all(h["max_rounds_per_generation"] == 1 + h["level"] for h in history)  # more learning allowed

        checked = _checked_per_generation(name)
        assert checked.get(0, 0) <= ACTIVE["check_top"]  # generation 0: not widened yet
        later = {g: n for g, n in checked.items() if g > 0}
        assert max(later.values()) > ACTIVE["check_top"], checked  # widened: more offspring checked
        for g, n in later.items():  # never more than the widened check_top of that generation
            level = max((h for h in history if h["generation"] < g), key=lambda h: h["generation"])
            assert n <= level["check_top"], (g, n, level)

        out = capsys.readouterr().out
        assert f"[{name} gen 0] widening: in-window RMSE" in out and "checking top 2" in out
        summary = json.loads((project.parent / "reports" / name / "summary.json").read_text())
        assert summary["widening"] == widening


def test_spec_takes_the_widening_keys_and_names_bad_values():
    base = {"kind": "csp", "name": "x", "oracle": "sw", "mode": "mtp",
            "search": {"composition": {"Si": 1}, "n_atoms": [4, 4]}}
    spec = CSPSpec.model_validate(base)
    assert spec.active["widen_checks"] is True and spec.active["widen_max_check_top"] == 12
    spec = CSPSpec.model_validate({**base, "active": {"widen_checks": False, "widen_extra_rounds": 0}})
    assert spec.active["widen_checks"] is False and spec.active["widen_extra_rounds"] == 0
    with pytest.raises(ValueError, match=r"active.widen_max_check_top must be a positive number, got 0"):
        CSPSpec.model_validate({**base, "active": {"widen_max_check_top": 0}})
    with pytest.raises(ValueError, match=r"unknown active keys \['widen'\]"):
        CSPSpec.model_validate({**base, "active": {"widen": True}})
