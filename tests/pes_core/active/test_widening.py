"""Widening of the oracle checks (issue 19): the pure decision, with synthetic numbers."""

from __future__ import annotations

import math

import pytest

from pes_core.active import ActiveSettings
from pes_core.active.decisions import (
    RESOLUTION_MEV,
    decide_widening,
    in_window_rmse_mev,
    required_resolution,
    widened_settings,
    widening_steps,
)

ST = ActiveSettings(check_top=3, widen_max_check_top=12, max_rounds_per_generation=5, widen_extra_rounds=1)
TIGHT = [-4.300, -4.299, -4.10]  # best and next distinct candidate 1 meV/atom apart: the 5 meV/atom floor rules


def test_resolution_is_the_gap_to_the_next_distinct_candidate_with_a_floor():
    gap, required = required_resolution([-4.10, -4.30, -4.26])  # order does not matter
    assert gap == pytest.approx(40.0) and required == pytest.approx(40.0)
    gap, required = required_resolution(TIGHT)
    assert gap == pytest.approx(1.0) and required == RESOLUTION_MEV == 5.0
    assert required_resolution([-4.3]) == (None, 5.0)
    assert required_resolution([], resolution_mev=2.0) == (None, 2.0)
    assert required_resolution([-4.3, float("nan"), -4.2])[0] == pytest.approx(100.0)  # NaN never ranks


def test_rmse_in_mev_per_atom():
    assert in_window_rmse_mev([0.022, -0.022, 0.022]) == pytest.approx(22.0)
    assert in_window_rmse_mev([0.003, 0.004]) == pytest.approx(1000 * math.sqrt((9e-6 + 16e-6) / 2))
    assert in_window_rmse_mev([]) is None


def test_widen_step_by_step_up_to_the_cap_then_narrow_back():
    errors_bad, errors_good = [0.022, -0.018], [0.002, -0.001]
    levels, tops, rounds, actions = [], [], [], []
    level = 0
    for gen, errors in enumerate([errors_bad] * 4 + [errors_good] * 3):
        d = decide_widening(errors, TIGHT, generation=gen, level=level, settings=ST)
        level = d.level
        levels.append(d.level), tops.append(d.check_top), rounds.append(d.max_rounds_per_generation)
        actions.append(d.action)
        assert d.warn == (errors is errors_bad) and d.required_mev == 5.0
    assert levels == [1, 2, 2, 2, 1, 0, 0]
    assert tops == [6, 12, 12, 12, 6, 3, 3]  # doubled, capped at widen_max_check_top, halved back
    assert rounds == [6, 7, 7, 7, 6, 5, 5]  # one more learning round per step
    assert actions == ["widen", "widen", "widest", "widest", "narrow", "narrow", "keep"]


def test_the_log_line_says_what_it_does():
    d = decide_widening([0.022], TIGHT, generation=4, level=0, settings=ST)
    assert d.message().startswith("widening: in-window RMSE 22.0 meV/atom > 5.0 meV/atom needed")
    assert "checking top 6" in d.message()
    d = decide_widening([0.001], TIGHT, generation=5, level=1, settings=ST)
    assert d.message().startswith("narrowing: in-window RMSE 1.0 meV/atom <= 5.0 meV/atom needed")
    assert "checking top 3" in d.message()
    d = decide_widening([0.030], TIGHT, generation=5, level=2, settings=ST)
    assert d.action == "widest" and "active.widen_max_check_top" in d.message()
    row = d.to_dict()
    assert row["generation"] == 5 and row["level"] == 2 and row["warn"] and row["check_top"] == 12


def test_a_wide_gap_needs_less_accuracy_and_no_check_keeps_the_level():
    # 22 meV/atom error, but the next distinct candidate is 40 meV/atom above the best: resolved, narrow
    d = decide_widening([0.022], [-4.30, -4.26], generation=3, level=1, settings=ST)
    assert not d.warn and d.action == "narrow" and d.level == 0 and d.required_mev == pytest.approx(40.0)
    d = decide_widening([], TIGHT, generation=3, level=1, settings=ST)  # nothing checked: no measurement
    assert d.rmse_mev is None and d.level == 1 and d.action == "keep" and d.check_top == 6
    assert "no offspring oracle-checked" in d.message()


def test_widening_off_or_checks_off_never_widens():
    for st in (ActiveSettings(check_top=3, widen_checks=False), ActiveSettings(check_top=0)):
        d = decide_widening([0.5], TIGHT, generation=1, level=0, settings=st)
        assert d.warn and d.level == 0 and d.check_top == st.check_top
        assert widened_settings(st, 3) is st
    assert widening_steps(ActiveSettings(check_top=12, widen_max_check_top=12)) == 0
    assert widening_steps(ActiveSettings(check_top=20, widen_max_check_top=12)) == 0  # never narrower than asked


def test_widened_settings_change_only_checks_and_rounds():
    st = widened_settings(ST, 1)
    assert (st.check_top, st.max_rounds_per_generation) == (6, 6)
    assert st.check_window == ST.check_window and st.max_check_rounds == ST.max_check_rounds
    assert (ST.check_top, ST.max_rounds_per_generation) == (3, 5)  # the search's own settings untouched
    assert widened_settings(ST, 99).check_top == 12  # a stored level beyond the cap is bounded
    assert widened_settings(ActiveSettings(check_top=5, widen_max_check_top=12), 2).check_top == 12


def test_unknown_widening_key_is_an_error_and_defaults_are_stated():
    assert ActiveSettings.from_config({"active": {"widen_checks": False}}).widen_checks is False
    with pytest.raises(ValueError, match="unknown mtp/active settings"):
        ActiveSettings.from_config({"active": {"widen_check": True}})
