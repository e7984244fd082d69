"""Pre-exploration with a prior potential and in adaptive rounds (``active.prior``, ``active.preexploration``).

The cheap end-to-end search uses Tersoff as the prior and Stillinger-Weber
as the oracle: both Si potentials, so the machinery (free prior relaxations,
oracle single points, adaptive rounds of labelling and refitting) runs in a
minute or two; the CHGNet prior runs in the slow test.
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from pes_core.db import Configuration, PotentialModel, SearchRun
from workflows.core.backend import open_backend
from workflows.core.runner import run_local
from workflows.csp.active_tasks import CSPPreselectTask, preselect_firework
from workflows.csp.builders import csp_workflow
from workflows.csp.report import search_accounting

DIAMOND_SW = -4.3366  # eV/atom, Stillinger-Weber minimum of diamond Si

SEARCH = {"composition": {"Si": 1}, "n_atoms": [4, 4], "population_size": 6, "max_generations": 2,
          "stop_after": 5, "seed": 7}
RELAX = {"fmax": 0.05, "steps": 200}
MTP = {"level": 10, "max_iter": 30, "max_dist": 4.0}
ACTIVE = {"pool_size": 10, "max_rounds_per_generation": 3, "prerelax_steps": 3, "max_configurations_per_round": 6}


@contextmanager
def _search(project, name: str, active: dict):
    """Run a Si4 search on the SW oracle with ``active``; yields its records while the store is open."""
    with open_backend(project) as b:
        b.lp.add_wf(csp_workflow(name, SEARCH, oracle="sw", mode="mtp", relax=RELAX, mtp=MTP,
                                 active={**ACTIVE, **active}, verify={"within_mev": 50}))
        summary = run_local(b, progress=False)
        assert summary.fizzled == 0
        assert {d["state"] for d in b.lp.fireworks.find({})} == {"COMPLETED"}
        fws = list(b.lp.fireworks.find({}, {"name": 1, "spec": 1}))
        run = SearchRun.objects.get(name=name)
        pre = list(Configuration.objects(tags=f"csp:{name}", generator="csp-preselect"))
        yield run, pre, fws, search_accounting(name), list(PotentialModel.objects(workflow=name))


def test_prior_search_labels_prior_relaxed_geometries_with_single_points(project):
    with _search(project, "si4-prior", {"prior": "tersoff", "preexploration": "adaptive",
                                        "preexploration_batch": 8}) as (run, pre, fws, acc, models):
        _check_prior_search(run, pre, fws, acc, models)


def _check_prior_search(run, pre, fws, acc, models) -> None:
    info = run.state["active"]["preselect"]
    assert info["prior_relaxations"] == ACTIVE["pool_size"]  # every random structure relaxed on the prior
    # the oracle only labelled: one single point per chosen configuration, no oracle trajectory
    assert pre and all("csp-trajectory" not in c.tags and "trajectory" not in (c.extra or {}) for c in pre)
    assert {c.extra["reason"] for c in pre} == {"prior"} and {c.extra["prior"] for c in pre} == {"tersoff"}
    assert all(c.extra["prior_step"] > 0 for c in pre)  # prior-relaxed geometries and points along the way
    assert acc["oracle_calls_by_purpose"]["preexploration"] == len(pre) == info["selected"]
    assert not Configuration.objects(oracle="tersoff").count()  # the prior's results are not oracle data
    # adaptive: labelled in batches of 8, a fit after each, until the rest of the pool was covered
    rounds = [c.extra["preselect_round"] for c in pre]
    assert max(rounds) + 1 == info["rounds"] >= 1
    assert all(rounds.count(r) <= 8 for r in set(rounds))
    kinds = [fw["spec"]["pes_kind"] for fw in fws]
    assert kinds.count("csp_preselect") == info["rounds"] + 1  # the last round only grades and stops
    assert len(models) >= info["rounds"]
    # the prior relaxations reach condensed, low-energy basins (random structures lie 1-2 eV/atom up)
    assert min(c.energy / len(c.structure["sites"]) for c in pre) < DIAMOND_SW + 0.5
    ver = [v for v in run.state["verification"] if not v["failed"]]
    assert ver and min(v["oracle_enthalpy_per_atom"] for v in ver) >= DIAMOND_SW - 0.002
    print(f"prior tersoff + adaptive: {acc['oracle_calls_by_purpose']}, rounds {info['rounds']}, "
          f"{info['selected']} labelled")


@pytest.mark.slow
def test_chgnet_prior_search(project):
    with _search(project, "si4-chgnet", {"prior": "chgnet"}) as (run, pre, _, acc, _):
        assert {c.extra["prior"] for c in pre} == {"chgnet"}
        assert (acc["oracle_calls_by_purpose"]["preexploration"] == len(pre)
                == run.state["active"]["preselect"]["selected"])
        assert not Configuration.objects(oracle="chgnet").count()


def _actions(project, active: dict) -> tuple[list, list]:
    """Run the pre-exploration task of a ``vasp`` search (it never calls the oracle); the detour's fireworks."""
    wf = csp_workflow("cat", {"composition": {"Si": 1}, "n_atoms": [2, 2], "seed": 3}, oracle="vasp", mode="mtp",
                      mtp={"level": 6, "max_dist": 4.0, "max_iter": 0},
                      active={"pool_size": 3, "prerelax_steps": 2, **active})
    config = wf.fws[0].spec["pes_csp_config"]
    with open_backend(project):
        action = CSPPreselectTask(search="cat").run_task({"pes_csp_config": config})
        return list(wf.fws), [fw for d in action.detours for fw in d.fws]


@pytest.mark.parametrize("active", [{"prior": "tersoff"}, {"prior": "tersoff", "preexploration": "adaptive"},
                                    {"preexploration": "adaptive"}])
def test_prior_and_rounds_run_on_ml_and_the_oracle_labels_on_its_category(project, active):
    built, detour = _actions(project, active)
    assert {(fw.spec["pes_kind"], fw.spec["_category"]) for fw in built} >= {("csp_preselect", "ml")}
    cats = {(fw.spec["pes_kind"], fw.spec["_category"]) for fw in detour}
    oracle_kind = "oracle" if active.get("prior") else "oracle_trajectory"  # a prior: single points only
    expected = {(oracle_kind, "dft")}
    if active.get("preexploration") == "adaptive":
        expected |= {("mtp_train", "ml"), ("csp_preselect", "ml")}  # the next round: fit, then grade the rest
    assert cats == expected
    assert preselect_firework("cat", round_=2, pool=[], steps=1, labelled=3).spec["_category"] == "ml"


def test_spec_checks_the_prior_against_the_oracle_and_the_composition():
    search = {"composition": {"Si": 1}, "n_atoms": [4, 4]}
    for active, match in [({"prior": "sw"}, "is the oracle itself"), ({"prior": "emt"}, "no parameters for Si"),
                          ({"prior": "vasp"}, "category 'dft'"), ({"preexploration": "always"}, "fixed' or 'adaptive"),
                          ({"preexploration_cover": 1.5}, "preexploration_cover"), ({"prior_steps": 0}, "prior_steps")]:
        with pytest.raises(ValidationError, match=match):
            csp_workflow("x", search, oracle="sw", mode="mtp", active=active)
    wf = csp_workflow("x", search, oracle="sw", mode="mtp", active={"prior": "tersoff"})
    config = wf.fws[0].spec["pes_csp_config"]
    assert config["active"]["prior"] == "tersoff" and config["active"]["preexploration"] == "fixed"
    # defaults: no prior, fixed pre-exploration (the behaviour before these keys)
    default = csp_workflow("y", search, oracle="sw", mode="mtp").fws[0].spec["pes_csp_config"]["active"]
    assert default["prior"] is None and default["preexploration"] == "fixed"
    assert SimpleNamespace(**default).prerelax_steps == 10
