"""Typed CSP settings (one default each, clear errors) and the typed ``SearchRun.state``."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from pes_core.active import ActiveSettings
from pes_core.search import RelaxSettings, VerifySettings
from workflows.csp.spec import CSPSpec
from workflows.csp.state import RunState

BASE = {"kind": "csp", "name": "x", "oracle": "tersoff", "search": {"composition": {"Si": 1}, "n_atoms": [4, 4]}}


def test_sections_take_the_defaults_of_their_dataclasses():
    spec = CSPSpec.model_validate(BASE)
    assert RelaxSettings.from_config(spec.config()) == RelaxSettings() == RelaxSettings(0.05, 300, "BFGS")
    assert VerifySettings.from_config(spec.config()) == VerifySettings()
    assert ActiveSettings.from_config(spec.config()) == ActiveSettings()
    for mode in ("direct", "mtp"):  # the same relaxations in both modes unless a spec says otherwise
        cfg = CSPSpec.model_validate({**BASE, "mode": mode}).config()
        assert cfg["relax"] == {"fmax": 0.05, "steps": 300, "optimizer": "BFGS", "parallel": 1, "category": None}
    cfg = CSPSpec.model_validate({**BASE, "relax": {"optimizer": "FIRE", "steps": 50},
                                  "active": {"break": 8.0, "check_top": 0}, "mtp": {"level": 6, "max_iter": 0}}
                                 ).config()
    assert RelaxSettings.from_config(cfg) == RelaxSettings(0.05, 50, "FIRE")
    st = ActiveSettings.from_config(cfg)
    assert (st.break_, st.check_top, st.level, st.max_iter) == (8.0, 0, 6, 0)
    verify = VerifySettings.from_config({"verify": {"fmax": 0.01}})
    assert verify.relax_settings(RelaxSettings.from_config(cfg)) == RelaxSettings(0.01, 50, "FIRE")


@pytest.mark.parametrize(("section", "value", "message"), [
    ("relax", {"fmax": 0.0}, "relax.fmax must be a positive number"),
    ("relax", {"steps": -3}, "relax.steps must be a positive number"),
    ("relax", {"optimizer": "CG"}, "relax.optimizer must be one of"),
    ("relax", {"fmx": 0.1}, "unknown relax keys ['fmx']"),
    ("verify", {"within_mev": math.nan}, "verify.within_mev must be a positive number"),
    ("mtp", {"max_dist": -5.0}, "mtp.max_dist must be a positive number"),
    ("mtp", {"select": 2.0}, "unknown mtp keys ['select']"),
    ("active", {"break": math.nan}, "active.break must be a positive number"),
    ("active", {"check_top": -1}, "active.check_top must be a non-negative number"),
    ("active", {"volume_factors": [1.0, -0.5]}, "active.volume_factors must be a positive number"),
    ("active", {"mode": "atoms"}, "active.mode must be 'neighbourhood' or 'configuration'"),
])
def test_bad_settings_name_the_section_and_key(section, value, message):
    with pytest.raises(ValidationError) as err:
        CSPSpec.model_validate({**BASE, section: value})
    assert message in str(err.value)


def test_run_state_keeps_the_stored_layout():
    stored = {"search": {"generation": 4, "settings": {"pressure_gpa": 2.0}, "best_reference": -4.3},
              "partial": {"5": {"g5-0": {"id": "g5-0"}}},
              "active": {"rounds": {"5": 2}, "n_selected": 7, "check_rounds": {"5": 1},
                         "check_requested": ["b", "a"], "check_learned": ["a"], "n_check_learned": 1,
                         "preselect": {"pool": 30, "selected": 12}},
              "verification": [{"id": "g1-0"}], "future_key": {"kept": True}}
    st = RunState.from_dict(stored)
    assert (st.generation, st.pressure_gpa, st.best_reference) == (5, 2.0, -4.3)
    assert st.active.round_of(5) == 2 and st.active.check_round_of(5) == 1 and st.active.round_of(6) == 0
    assert st.partial_of(5) == {"g5-0": {"id": "g5-0"}} and st.partial_of(6) == {}
    out = st.to_dict()
    assert out == {**stored, "active": {**stored["active"], "check_requested": ["a", "b"]}}
    assert RunState.from_dict({"search": {"generation": -1}, "partial": {}}).to_dict() == \
        {"search": {"generation": -1}, "partial": {}}  # what a new search stores
