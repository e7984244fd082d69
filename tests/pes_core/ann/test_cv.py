"""Holdout split, folds, grid expansion and selection."""

from __future__ import annotations

import numpy as np
import pytest

from pes_core.ann import cross_validate, expand_grid, holdout_split, kfold_indices, select_best
from pes_core.ann import PESData, compute_features


def test_holdout_split_is_disjoint_stable_and_order_independent():
    ids = [f"c{i:04d}" for i in range(101)]
    train, test = holdout_split(ids, 0.2, seed=0)
    assert len(test) == 20 and not set(train) & set(test) and set(train) | set(test) == set(ids)
    assert holdout_split(ids[::-1], 0.2, seed=0) == (train, test)
    assert holdout_split(ids, 0.2, seed=1)[1] != test
    with pytest.raises(ValueError):
        holdout_split(["a", "a", "b"], 0.2)


def test_kfold_covers_everything_once():
    folds = kfold_indices(23, 5, seed=2)
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(23))
    for tr, va in folds:
        assert not set(tr) & set(va) and len(tr) + len(va) == 23


def test_grid_and_selection():
    grid = expand_grid({"model": ["cluster", "site"], "order": [2, 4], "layers": [1, 2]})
    assert len(grid) == 8 and grid[0] == {"model": "cluster", "order": 2, "layers": 1}
    results = [{"point": p, "val_rmse_mean": v} for p, v in zip(grid, [3.0, 2.0, np.nan, 5.0, 1.0, 4.0, 0.5, 6.0])]
    assert select_best(results) == 6
    assert select_best(results, model="cluster") == 1
    with pytest.raises(ValueError):
        expand_grid({"order": 2})


def test_cross_validate_linear_point(small_featurizer, lj_data):
    structures, energies, forces = lj_data
    feats = compute_features(small_featurizer, PESData.from_structures(small_featurizer, structures, energies))
    res = cross_validate({"model": "linear"}, small_featurizer, feats, k=3)
    assert len(res["val_rmse"]) == 3 and res["val_rmse_mean"] < 5.0
