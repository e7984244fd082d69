"""The two-stage scheme's decisions: which offspring the accurate MTP relaxes, what it is trained on, its settings."""

from __future__ import annotations

import math

import pytest

from pes_core.active import ActiveSettings
from pes_core.active.two_stage import (
    TwoStageSettings,
    accurate_training_indices,
    select_for_accurate,
)


def test_window_selection_uses_the_lower_of_the_earlier_best_and_this_generation():
    h = [-4.30, -4.25, -4.19, -4.10, None, math.nan, math.inf]
    # this generation's best (-4.30) is the reference: -4.25 and -4.19 within 0.12 eV/atom, -4.10 not
    assert select_for_accurate(h, reference=None, window=0.12) == [0, 1, 2]
    # an earlier generation reached -4.40: only -4.30 is within 0.12 of it
    assert select_for_accurate(h, reference=-4.40, window=0.12) == [0]
    # an earlier best above this generation's does not widen the window
    assert select_for_accurate(h, reference=-4.0, window=0.12) == [0, 1, 2]
    # the edge is inclusive; failed (None, non-finite) offspring never pass
    assert select_for_accurate([-4.0, -3.9], reference=None, window=0.1) == [0, 1]
    assert select_for_accurate([None, math.nan], reference=-4.0, window=10.0) == []
    assert select_for_accurate([-4.0], reference=None, window=0.0) == [0]
    with pytest.raises(ValueError, match="window"):
        select_for_accurate([-4.0], reference=None, window=-0.1)


def test_training_set_keeps_the_window_above_the_lowest_energy():
    e = [-3.0, -4.30, None, -4.00, -4.31, -1.5, -3.91]
    # within 0.4 eV/atom of the lowest (-4.31): -4.30, -4.00, -4.31, -3.91 (inclusive edge)
    assert accurate_training_indices(e, window=0.4) == [1, 3, 4, 6]
    assert accurate_training_indices(e, window=0.05) == [1, 4]
    # too few in the window: the min_train lowest, whatever their energy; never one without an energy
    assert accurate_training_indices(e, window=0.05, min_train=3) == [1, 3, 4]
    assert accurate_training_indices(e, window=0.05, min_train=100) == [0, 1, 3, 4, 5, 6]
    assert accurate_training_indices([None, math.nan], window=1.0) == []


def test_two_stage_settings_defaults_units_and_errors():
    ts = TwoStageSettings()
    assert (ts.window_mev, ts.margin_mev, ts.level) == (100.0, 400.0, 16)
    assert ts.window == pytest.approx(0.1) and ts.train_window == pytest.approx(0.5)
    assert TwoStageSettings.from_dict(ts.to_dict()) == ts
    with pytest.raises(ValueError, match=r"unknown active.two_stage keys \['windows'\]; known: .*window_mev"):
        TwoStageSettings.from_dict({"windows": 10})
    with pytest.raises(ValueError, match="window_mev must be a non-negative number"):
        TwoStageSettings(window_mev=-1)
    with pytest.raises(ValueError, match="level must be a positive integer"):
        TwoStageSettings(level=0)
    assert TwoStageSettings(max_rounds=0).max_rounds == 0


def test_active_settings_carry_the_option_off_by_default():
    assert ActiveSettings().two_stage is None and ActiveSettings().accurate() is None
    st = ActiveSettings.from_config({"active": {"two_stage": {"window_mev": 50, "level": 12}}})
    assert st.accurate() == TwoStageSettings(window_mev=50, level=12)
    assert ActiveSettings.from_config({"active": {"two_stage": {}}}).accurate() == TwoStageSettings()
    with pytest.raises(ValueError, match="active.two_stage must be a mapping"):
        ActiveSettings(two_stage=50)
    with pytest.raises(ValueError, match="unknown active.two_stage keys"):
        ActiveSettings(two_stage={"levl": 12})
