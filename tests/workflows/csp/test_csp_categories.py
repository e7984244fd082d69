"""FireWorks categories of a CSP search: the oracle's category wherever the oracle is called, ``ml`` elsewhere.

The ``vasp`` oracle (category ``dft``; the emulator of
``pes_core.oracles.vasp_emulator`` stands in for VASP) makes the difference
visible.  The test walks every firework a search can create: those of the
built workflow, and those its tasks add (the generation's next step, the
relaxation fan-out, the learning and check detours, the pre-exploration's
oracle work, the verification and report) through their factories.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ase.build import bulk

from pes_core.active.decisions import (
    CheckDecision,
    CheckItem,
    LearningDecision,
    LearnItem,
)
from pes_core.oracles import oracle_class, to_structure
from workflows.csp.active_tasks import (
    oracle_fireworks,
    train_firework,
    trajectory_fireworks,
)
from workflows.csp.builders import csp_workflow
from workflows.csp.learning import AccurateDecision
from workflows.csp.tasks import (
    CSPGenerationTask,
    decision_action,
    generation_firework,
    verification_fireworks,
)

SEARCH = {"composition": {"Si": 1}, "n_atoms": [2, 2], "population_size": 4, "max_generations": 2}

#: fireworks whose tasks call the oracle, by pes_kind and mode
CALLS_ORACLE = {"direct": {"csp_generation", "csp_relax", "csp_verify"},
                "mtp": {"oracle", "oracle_trajectory", "csp_verify"}}


def _fireworks(action) -> list:
    return [fw for wf in (action.detours or []) + (action.additions or []) for fw in wf.fws]


def _every_firework(mode: str, relax: dict | None = None, verify: dict | None = None) -> tuple[list, dict]:
    """The fireworks of a vasp search in ``mode``: the built ones and one of each kind its tasks add."""
    wf = csp_workflow("cat", SEARCH, oracle="vasp", mode=mode, relax=relax, verify=verify)
    config = wf.fws[0].spec["pes_csp_config"]
    run = SimpleNamespace(name="cat", settings=config)
    fw_spec = {"formula": "Si2"}
    si = bulk("Si", "diamond", a=5.43)
    fws = list(wf.fws)
    fws.append(generation_firework("cat", 1, config, formula="Si2"))  # the next generation (_next)
    fws += verification_fireworks("cat", config, "Si2")  # the end of the search (_next)
    todo = [SimpleNamespace(id=f"i{k}") for k in range(4)]
    fws += _fireworks(CSPGenerationTask._fan_out(run, 1, todo, 2, 0, fw_spec))  # relax.parallel > 1
    if mode == "mtp":
        fws += oracle_fireworks("cat", config, [to_structure(si)] * 2, generator="csp-preselect")
        fws += trajectory_fireworks("cat", config, [to_structure(si)] * 2, generator="csp-preselect", steps=3,
                                    every=1)
        fws.append(train_firework("cat"))
        learn = LearningDecision(generation=1, round=1, learn=[LearnItem(si, 12.0, "break", "h1")], redo=["i0"])
        fws += _fireworks(decision_action(run, learn, fw_spec))
        ind = SimpleNamespace(id="i1", atoms=si, enthalpy_per_atom=-4.6)
        fws += _fireworks(decision_action(run, CheckDecision(generation=1, check=[CheckItem(ind, "h2")]), fw_spec))
        fws += _fireworks(decision_action(run, CheckDecision(generation=1, learn=["h2"]), fw_spec))
        # the two-stage scheme's accurate MTP: a refit alone, and its learning (oracle -> accurate training)
        fws += _fireworks(decision_action(run, AccurateDecision(generation=1), fw_spec))
        accurate = AccurateDecision(generation=1, round=1, learn=[LearnItem(si, 50.0, "break", "h3")])
        fws += _fireworks(decision_action(run, accurate, fw_spec))
    return fws, config


@pytest.mark.parametrize("mode", ["direct", "mtp"])
def test_fireworks_that_call_the_oracle_carry_its_category(mode):
    assert oracle_class("vasp").category == "dft"
    fws, _ = _every_firework(mode)
    kinds = {fw.spec["pes_kind"] for fw in fws}
    expected = {"direct": {"csp_generation", "csp_relax", "csp_verify", "csp_report"},
                "mtp": {"csp_preselect", "mtp_train", "csp_generation", "csp_relax", "csp_verify", "csp_report",
                        "oracle", "oracle_trajectory"}}[mode]
    assert kinds == expected  # every kind of firework of the mode was walked
    wrong = [(fw.name, fw.spec["_category"]) for fw in fws
             if fw.spec["_category"] != ("dft" if fw.spec["pes_kind"] in CALLS_ORACLE[mode] else "ml")]
    assert not wrong


def test_section_category_overrides():
    fws, config = _every_firework("direct", relax={"category": "big"}, verify={"category": "dft-long"})
    cats = {(fw.spec["pes_kind"], fw.spec["_category"]) for fw in fws}
    assert cats == {("csp_generation", "big"), ("csp_relax", "big"), ("csp_verify", "dft-long"), ("csp_report", "ml")}
    assert config["relax"]["category"] == "big"
    fws, _ = _every_firework("mtp", verify={"category": "dft-long"})
    assert {fw.spec["_category"] for fw in fws if fw.spec["pes_kind"] == "csp_verify"} == {"dft-long"}
    assert {fw.spec["_category"] for fw in fws if fw.spec["pes_kind"] == "csp_generation"} == {"ml"}


def test_stand_in_oracle_keeps_everything_ml():
    for mode in ("direct", "mtp"):
        wf = csp_workflow("cat", SEARCH, oracle="tersoff", mode=mode)
        assert {fw.spec["_category"] for fw in wf.fws} == {"ml"}


def test_two_stage_detours_train_the_accurate_mtp_and_run_the_generation_again():
    wf = csp_workflow("cat", SEARCH, oracle="vasp", mode="mtp", active={"two_stage": {"window_mev": 80}})
    config = wf.fws[0].spec["pes_csp_config"]
    assert config["active"]["two_stage"] == {"window_mev": 80}
    run = SimpleNamespace(name="cat", settings=config)
    si = bulk("Si", "diamond", a=5.43)
    refit = _fireworks(decision_action(run, AccurateDecision(generation=2), {"formula": "Si2"}))
    assert [fw.spec["pes_kind"] for fw in refit] == ["mtp_train", "csp_generation"]
    assert refit[0].tasks[0]["stage"] == "accurate" and refit[1].spec["generation"] == 2
    learn = AccurateDecision(generation=2, round=1, learn=[LearnItem(si, 50.0, "break", "h3")])
    fws = _fireworks(decision_action(run, learn, {"formula": "Si2"}))
    assert [fw.spec["pes_kind"] for fw in fws] == ["oracle", "mtp_train", "csp_generation"]
    oracle_task = fws[0].tasks[0]
    assert oracle_task["generator"] == "csp-accurate" and "csp-accurate" in oracle_task["tags"]
    assert oracle_task["extra"][0]["generation"] == 2 and oracle_task["extra"][0]["stage"] == "accurate"
    assert fws[1].tasks[0]["stage"] == "accurate" and fws[0].spec["_category"] == "dft"


def test_learning_round_goes_on_when_the_oracle_rejects_every_configuration():
    """A learning round whose oracle firework fizzled (the oracle rejected every configuration: overlapping
    atoms an MTP relaxation ran into) must not stop the search: its training and the generation still run."""
    wf = csp_workflow("cat", SEARCH, oracle="vasp", mode="mtp", active={"two_stage": {}})
    config = wf.fws[0].spec["pes_csp_config"]
    run = SimpleNamespace(name="cat", settings=config)
    si = bulk("Si", "diamond", a=5.43)
    decisions = [LearningDecision(generation=1, round=1, learn=[LearnItem(si, 12.0, "break", "h1")]),
                 AccurateDecision(generation=1, round=1, learn=[LearnItem(si, 50.0, "break", "h3")])]
    for decision in decisions:
        fws = _fireworks(decision_action(run, decision, {"formula": "Si2"}))
        assert [fw.spec["pes_kind"] for fw in fws] == ["oracle", "mtp_train", "csp_generation"]
        oracle_fw, train, generation = fws
        # the oracle firework fizzles only when every configuration failed; the training firework after it
        # runs on the search's stored oracle data whatever its parent did
        assert oracle_fw.tasks[0]["allow_failures"] is True
        assert train.spec.get("_allow_fizzled_parents") is True
        assert not generation.spec.get("_allow_fizzled_parents")  # a failed training still stops the search
