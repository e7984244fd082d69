"""Model selection: holdout split, k-fold cross-validation, hyperparameter grids.

* :func:`holdout_split` -- a deterministic 80/20 split by configuration id;
  the holdout is kept out of every fit, every fold and every choice.
* :func:`kfold_indices` -- seeded folds of the remaining 80 %.
* :func:`expand_grid` -- the Cartesian product of hyperparameter lists (or the
  concatenation of several such products), from :mod:`pes_core.ann.settings`.
* :func:`point_train_settings` -- the training settings of one grid point (its
  own ``training`` over the fit's).
* :func:`cross_validate` -- train/validation RMSE of one grid point per fold.
* :func:`select_best` -- the grid point of lowest mean validation RMSE.

A grid point is a dict such as ``{"model": "cluster", "clusters":
"7pairs+triplet+oct", "order": 4, "layers": 1, "width": 16}``; it may carry
``training`` (:class:`TrainSettings` fields), which override the fit's
settings for that point wherever it is trained (:func:`fit_point`).

Example
-------
>>> train, test = holdout_split([f"id{i}" for i in range(10)], 0.2, seed=0)
>>> len(train), len(test), set(train) & set(test)
(8, 2, set())
>>> [len(v) for _, v in kfold_indices(10, 5, seed=0)]
[2, 2, 2, 2, 2]
>>> len(expand_grid({"order": [2, 4], "layers": [1, 2], "width": [8]}))
4
>>> point_train_settings({"training": {"patience": 5}}, TrainSettings(patience=50, weight_decay=0.0)).patience
5
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np

from .data import FeatureData, concat_features
from .models import build_model
from .settings import FitSettings, expand_grid
from .training import (
    TrainSettings,
    point_train_settings,
    rmse_mev_per_atom,
    train_model,
)

__all__ = ["FitSettings", "cross_validate", "expand_grid", "fit_point", "holdout_split", "kfold_indices",
           "select_best"]


def holdout_split(ids: Sequence[str], test_fraction: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split ids into (train, holdout), deterministically and independent of input order.

    Ids are ranked by ``sha256(seed:id)``; the first ``round(test_fraction * n)``
    form the holdout.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    uniq = sorted(set(map(str, ids)))
    if len(uniq) != len(ids):
        raise ValueError("ids must be unique")
    ranked = sorted(uniq, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    n_test = int(round(test_fraction * len(ranked)))
    test = set(ranked[:n_test])
    return [k for k in uniq if k not in test], [k for k in uniq if k in test]


def kfold_indices(n: int, k: int = 10, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, validation) index pairs of a seeded permutation of ``range(n)``."""
    if k < 2 or k > n:
        raise ValueError(f"need 2 <= k <= n for k-fold CV, got k={k}, n={n}")
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(perm, k)
    return [(np.sort(np.concatenate([f for j, f in enumerate(folds) if j != i])), np.sort(folds[i]))
            for i in range(k)]




def _hidden(point: dict) -> list[int]:
    if "hidden" in point:
        return [int(h) for h in point["hidden"]]
    return [int(point.get("width", 16))] * int(point.get("layers", 1))


def fit_point(point: dict, featurizer, train: FeatureData, settings: TrainSettings | None = None):
    """Build and fit the model of one grid point on ``train``; returns ``(model, report, seconds)``.

    ``point["model"]`` is ``"cluster"`` (default), ``"site"`` or ``"linear"``;
    ``point["shortcut"]`` (networks only, default true) adds the linear
    shortcut to every network; without it the model is bounded
    (:meth:`~pes_core.ann.models.ClusterModel.energy_bounds`);
    the networks train with :func:`point_train_settings` of ``point`` over
    ``settings`` (the point's own ``training`` wins field by field).
    """
    kind = point.get("model", "cluster")
    if kind == "linear":
        model = build_model("linear", featurizer, alpha=point.get("alpha"))
        t0 = time.perf_counter()
        model.fit(train)
        return model, None, time.perf_counter() - t0
    model = build_model(kind, featurizer, hidden=_hidden(point), shortcut=bool(point.get("shortcut", True)))
    report = train_model(model, train, point_train_settings(point, settings))
    return model, report, report.wall_time_s


def cross_validate(point: dict, featurizer, features: FeatureData, k: int = 10,
                   settings: TrainSettings | None = None, seed: int = 0, extra: FeatureData | None = None) -> dict:
    """Train/validation RMSE (meV/atom) of one grid point over ``k`` folds.

    ``settings`` are the fit's; the point's own ``training`` overrides them
    (:func:`fit_point`).
    ``extra`` (e.g. configurations of larger supercells) joins the training
    part of every fold and never a validation part, so the validation RMSEs
    stay those of ``features``; the training RMSEs include it.

    Returns
    -------
    dict
        ``point``, ``train_rmse``/``val_rmse`` (lists per fold), their
        ``*_mean``/``*_std``, ``wall_time_s``.
    """
    tr_rmse, va_rmse = [], []
    t0 = time.perf_counter()
    for tr, va in kfold_indices(len(features), k, seed):
        train, val = features.subset(tr), features.subset(va)
        if extra is not None and len(extra):
            train = concat_features([train, extra])
        model, _, _ = fit_point(point, featurizer, train, settings)
        tr_rmse.append(rmse_mev_per_atom(model.predict(train), train.energies, train.atoms))
        va_rmse.append(rmse_mev_per_atom(model.predict(val), val.energies, val.atoms))
    return {"point": dict(point), "train_rmse": tr_rmse, "val_rmse": va_rmse,
            "train_rmse_mean": float(np.mean(tr_rmse)), "train_rmse_std": float(np.std(tr_rmse)),
            "val_rmse_mean": float(np.mean(va_rmse)), "val_rmse_std": float(np.std(va_rmse)),
            "wall_time_s": time.perf_counter() - t0}


def select_best(results: Sequence[dict], model: str | None = None) -> int:
    """Index of the result with the lowest mean validation RMSE (optionally of one model kind).

    Ties go to the earlier grid point; NaN results never win.
    """
    best, best_i = np.inf, -1
    for i, r in enumerate(results):
        if model is not None and r["point"].get("model", "cluster") != model:
            continue
        v = float(r["val_rmse_mean"])
        if np.isfinite(v) and v < best:
            best, best_i = v, i
    if best_i < 0:
        raise ValueError(f"no finite cross-validation result{' for model ' + model if model else ''}")
    return best_i
