"""The refinement decision as data: what a round does from the previous round's model errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pes_core.ann.refine import decide_round
from pes_core.ann.settings import RefineSettings


def test_round_zero_samples_and_carries_no_measurement():
    d = decide_round(0, RefineSettings())
    assert d.action == "sample" and d.stored_data() == {"round": 0} and not d.messages


def test_converged_when_the_rms_error_is_below_tolerance():
    s = RefineSettings(tolerance_mev=5.0, rounds=3)
    err = np.array([4.0, -4.0, 4.0])
    d = decide_round(1, s, err)
    assert d.action == "converged" and d.previous_samples == 3
    assert d.stored_data() == {"round": 1, "previous_samples": 3, "previous_rms_mev": pytest.approx(4.0),
                               "previous_mean_mev": pytest.approx(4.0 / 3), "converged": True}
    # not converged: samples again below the cap, stops at it
    assert decide_round(2, s, 10 * err).action == "sample"
    stop = decide_round(3, s, 10 * err)
    assert stop.action == "stop" and stop.stored_data()["converged"] is False and "samples" not in stop.stored_data()
    assert "not converged to 5 meV/atom" in stop.messages[-1]


def test_convergence_is_checked_before_the_round_cap_and_reruns_go_on():
    s = RefineSettings(tolerance_mev=5.0, rounds=2)
    assert decide_round(2, s, np.array([1.0])).action == "converged"
    rerun = decide_round(1, s, np.array([30.0]), sampled=True)
    assert rerun.action == "rerun" and rerun.stored_data()["rerun"] is True


def test_no_stored_chain_end_samples_again():
    d = decide_round(1, RefineSettings(), np.array([]))
    assert d.action == "sample" and d.stored_data() == {"round": 1, "previous_samples": 0}
    assert "no chain end stored" in d.messages[0]


def test_settings_from_spec_dicts():
    s = RefineSettings.from_dict({"temperatures": [300, 450], "clusters": ["2pairs+oct"], "chains": 2})
    assert s.temperatures == (300, 450) and s.clusters == ("2pairs+oct",) and s.chains == 2 and s.rounds == 8
    with pytest.raises(ValueError, match="unknown keys"):
        RefineSettings.from_dict({"chain": 2})


def test_settings_and_decisions_import_without_torch():
    import subprocess

    code = "import sys, pes_core.ann.refine, pes_core.ann.settings; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
