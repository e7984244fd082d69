"""Holdout split, folds, grid expansion and selection."""

from __future__ import annotations

import numpy as np
import pytest

from pes_core.ann import cross_validate, expand_grid, holdout_split, kfold_indices, select_best
from pes_core.ann import PESData, TrainSettings, compute_features


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


def test_list_grid_is_the_concatenation_with_training_attached():
    from pes_core.ann.settings import grid_dicts

    one = {"model": ["site", "linear"], "order": [4], "width": [8, 16]}
    # a dict is today's grid: same points, same order, no training key
    assert expand_grid(one) == [{"model": m, "order": 4, "width": w} for m in ("site", "linear") for w in (8, 16)]
    sched = {"schedule": [[10, 100], [100, 200]], "weight_decay": 1e-4}
    two = {"model": ["cluster"], "order": [2], "hidden": [[8], [4, 4]], "training": sched}
    points = expand_grid([one, two])
    assert len(points) == 4 + 2
    assert points[:4] == expand_grid(one)  # the first dict's points first, in their own order
    assert [p["hidden"] for p in points[4:]] == [[8], [4, 4]]
    assert all(p["training"] == sched for p in points[4:]) and not any("training" in p for p in points[:4])
    points[4]["training"]["patience"] = 1  # each point owns its copy
    assert "patience" not in points[5]["training"] and "patience" not in sched
    assert expand_grid([one]) == expand_grid(one)
    assert [path for path, _ in grid_dicts([one, two])] == ["grid[0]", "grid[1]"]


@pytest.mark.parametrize("grid,message", [
    ([], "grid is an empty list"),
    ([{"model": ["linear"]}, 3], "grid[1] must be a dict of hyperparameter lists"),
    ([{"model": ["cluster"], "training": [{"patience": 3}]}], "grid[0].training must be a dict of TrainSettings"),
    ([{"model": ["linear"]}, {"order": []}], "grid[1].order must be a non-empty list"),
    ({"order": 2}, "grid entry 'order' must be a non-empty list"),
    ("linear", "grid must be a dict of hyperparameter lists or a list of such dicts"),
])
def test_bad_grid_shapes_name_the_key_path(grid, message):
    with pytest.raises(ValueError) as err:
        expand_grid(grid)
    assert message in str(err.value)


def test_point_training_overrides_the_fit_training_field_by_field():
    from pes_core.ann import FitSettings, TrainSettings, point_train_settings

    base = TrainSettings(schedule=((1000, 800),), patience=200, weight_decay=1e-3, learning_rate=0.01)
    assert point_train_settings({"model": "cluster"}, base) is base
    got = point_train_settings({"training": {"schedule": [[10, 100], [100, 200]], "weight_decay": 1e-4}}, base)
    assert got.schedule == ((10, 100), (100, 200)) and got.weight_decay == 1e-4  # the point's
    assert got.patience == 200 and got.learning_rate == 0.01  # the fit's
    assert base.schedule == ((1000, 800),) and base.weight_decay == 1e-3  # the fit's settings are untouched
    assert point_train_settings({"training": {"patience": 7}}).patience == 7  # over the defaults
    assert point_train_settings({"training": {"patience": 7}}, {"seed": 3}).seed == 3
    with pytest.raises(ValueError, match="unknown training settings"):
        point_train_settings({"training": {"patiense": 7}}, base)
    fs = FitSettings(grid=[{"model": ["cluster"], "training": {"patience": 9}}], training={"patience": 50, "seed": 2})
    (point,) = expand_grid(fs.grid)
    assert fs.train_settings().patience == 50
    assert (fs.train_settings(point).patience, fs.train_settings(point).seed) == (9, 2)


def test_cross_validate_trains_a_point_with_its_own_settings(small_featurizer, lj_data):
    structures, energies, _ = lj_data
    feats = compute_features(small_featurizer, PESData.from_structures(small_featurizer, structures, energies))
    # no ridge start or backfit: the network alone learns, so 1 epoch and 30 differ clearly
    fit = TrainSettings(schedule=((10, 30),), val_fraction=0.0, learning_rate=0.01, linear_init=False,
                        refit_linear=False)
    points = expand_grid([{"model": ["cluster"], "hidden": [[4]], "training": {"schedule": [[10, 1]]}},
                          {"model": ["cluster"], "hidden": [[4]]}])
    short = cross_validate(points[0], small_featurizer, feats, k=3, settings=fit)
    long = cross_validate(points[1], small_featurizer, feats, k=3, settings=fit)
    # the same as giving the merged settings directly: the point's 1 epoch, the fit's learning rate
    merged = TrainSettings(schedule=((10, 1),), val_fraction=0.0, learning_rate=0.01, linear_init=False,
                           refit_linear=False)
    direct = cross_validate({"model": "cluster", "hidden": [4]}, small_featurizer, feats, k=3, settings=merged)
    assert short["val_rmse"] == pytest.approx(direct["val_rmse"], rel=1e-10)
    assert short["point"]["training"] == {"schedule": [[10, 1]]}
    assert long["train_rmse_mean"] < 0.5 * short["train_rmse_mean"]  # the fit's 30 epochs
