"""Bootstrap intervals and paired comparisons of holdout errors (pes_core.ann.compare)."""

from __future__ import annotations

import numpy as np
import pytest

from pes_core.ann.compare import compare_models, paired_difference, rmse_interval


def test_interval_covers_the_true_rmse_at_about_the_stated_level():
    # 200 holdout sets of 100 errors from N(0, 2): the true RMSE is 2.
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        _, lo, hi = rmse_interval(rng.normal(0.0, 2.0, 100), level=0.9, n_boot=500, seed=3)
        hits += lo <= 2.0 <= hi
    # percentile bootstrap of an RMSE undercovers slightly at n=100; 90 % +- 3 sigma of a binomial(200)
    assert 0.80 <= hits / 200 <= 0.97


def test_pairing_resolves_a_difference_the_separate_intervals_cannot():
    # two models sharing most of their error (same hard configurations): b is 3 % worse everywhere
    rng = np.random.default_rng(2)
    common = rng.normal(0.0, 2.0, 80)
    a, b = common, 1.03 * common + rng.normal(0.0, 0.01, 80)
    _, lo_a, hi_a = rmse_interval(a)
    _, lo_b, hi_b = rmse_interval(b)
    assert lo_b < hi_a  # the separate intervals overlap ...
    d, lo, hi = paired_difference(a, b)
    assert hi < 0.0 < -d  # ... the paired difference excludes 0
    c = compare_models({"b": b, "a": a})
    assert c["best"] == "a" and c["worse_than_best"] == ["b"]
    assert "outside" in c["statement"]


def test_models_with_the_same_error_distribution_are_tied():
    rng = np.random.default_rng(4)
    errs = {k: rng.normal(0.0, 1.5, 60) for k in ("linear", "cluster", "site")}
    c = compare_models(errs)
    assert c["worse_than_best"] == [] and sorted(c["tied_with_best"] + [c["best"]]) == sorted(errs)
    assert "inside the noise" in c["statement"]
    for pair in c["pairs"].values():
        lo, hi = pair["ci"]
        assert lo <= pair["difference"] <= hi


def test_identical_models_differ_by_exactly_zero():
    e = np.linspace(-1, 1, 30)
    assert paired_difference(e, e) == (0.0, 0.0, 0.0)


def test_bad_errors_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        rmse_interval([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="same configurations"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        rmse_interval([1.0])
