"""Model comparison on a shared holdout: RMSE confidence intervals and paired differences.

A ranking of models from one holdout set is evidence only when it is larger
than the sampling noise of that set.  Both quantities here come from the
nonparametric bootstrap over holdout configurations (Efron & Tibshirani,
*An Introduction to the Bootstrap*, 1993):

* :func:`rmse_interval` -- the RMSE of one model with a percentile interval;
* :func:`paired_difference` -- ``RMSE_a - RMSE_b`` with its interval, where
  every bootstrap replicate resamples the *same* configurations for both
  models (a paired comparison: errors of two models on one configuration are
  correlated, so the difference is far better determined than either RMSE);
* :func:`compare_models` -- every model's interval, every pairwise difference,
  and the ranking statement: which models are worse than the best outside the
  interval, which are tied with it.

The bootstrap is seeded, so the same errors give the same intervals on any
machine.  It only measures the noise of the finite holdout; variation from
training (seeds, CPU rounding, worker scheduling of the sampled structures)
comes on top and is measured by repeating the fit.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> good, bad = rng.normal(0, 1.0, 400), rng.normal(0, 2.0, 400)
>>> c = compare_models({"good": good, "bad": bad})
>>> c["best"], c["tied_with_best"], c["worse_than_best"]
('good', [], ['bad'])
>>> lo, hi = c["models"]["good"]["rmse_ci"]
>>> bool(lo < c["models"]["good"]["rmse"] < hi)
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["compare_models", "paired_difference", "rmse_interval"]


def _check(errors: np.ndarray, name: str = "errors") -> np.ndarray:
    e = np.asarray(errors, dtype=float).ravel()
    if e.size < 2:
        raise ValueError(f"{name}: need at least 2 holdout errors for an interval, got {e.size}")
    if not np.all(np.isfinite(e)):
        raise ValueError(f"{name}: non-finite holdout errors (a model predicted NaN or inf)")
    return e


def _replicates(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def rmse_interval(errors, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """RMSE of ``errors`` and its bootstrap percentile interval.

    Parameters
    ----------
    errors : array_like
        Model minus reference on each holdout configuration (any unit).
    level : float
        Two-sided coverage of the interval.
    n_boot : int
        Bootstrap replicates.
    seed : int
        Seed of the resampling.

    Returns
    -------
    tuple of float
        ``(rmse, low, high)`` in the unit of ``errors``.
    """
    e = _check(errors)
    idx = _replicates(e.size, n_boot, seed)
    boot = np.sqrt(np.mean(e[idx] ** 2, axis=1))
    a = (1.0 - level) / 2.0
    return float(np.sqrt(np.mean(e**2))), float(np.quantile(boot, a)), float(np.quantile(boot, 1.0 - a))


def paired_difference(errors_a, errors_b, level: float = 0.95, n_boot: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """``RMSE_a - RMSE_b`` on the same holdout configurations, with its paired bootstrap interval.

    Returns
    -------
    tuple of float
        ``(difference, low, high)``; an interval that excludes 0 means the
        two models differ outside the holdout's sampling noise.
    """
    a, b = _check(errors_a, "errors_a"), _check(errors_b, "errors_b")
    if a.size != b.size:
        raise ValueError(f"paired comparison needs errors on the same configurations: {a.size} vs {b.size}")
    idx = _replicates(a.size, n_boot, seed)
    boot = np.sqrt(np.mean(a[idx] ** 2, axis=1)) - np.sqrt(np.mean(b[idx] ** 2, axis=1))
    q = (1.0 - level) / 2.0
    diff = float(np.sqrt(np.mean(a**2)) - np.sqrt(np.mean(b**2)))
    return diff, float(np.quantile(boot, q)), float(np.quantile(boot, 1.0 - q))


def compare_models(errors: Mapping[str, np.ndarray], level: float = 0.95, n_boot: int = 2000,
                   seed: int = 0) -> dict:
    """Intervals, pairwise differences and the ranking statement of several models.

    Parameters
    ----------
    errors : mapping of str to array_like
        Holdout errors of each model, on the same configurations in the same
        order.

    Returns
    -------
    dict
        ``models``: ``{name: {"rmse", "rmse_ci"}}``; ``pairs``: ``{"a-b":
        {"difference", "ci", "significant"}}`` for every ordered pair by
        RMSE (a better than b); ``best``; ``worse_than_best`` (interval of
        the difference excludes 0) and ``tied_with_best`` (inside the noise);
        ``level``, ``n_boot`` and ``n_holdout``; ``statement``, one sentence.
    """
    if not errors:
        raise ValueError("compare_models needs at least one model")
    names = sorted(errors, key=lambda k: float(np.sqrt(np.mean(np.asarray(errors[k], float) ** 2))))
    models = {}
    for k in names:
        r, lo, hi = rmse_interval(errors[k], level, n_boot, seed)
        models[k] = {"rmse": r, "rmse_ci": [lo, hi]}
    pairs = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d, lo, hi = paired_difference(errors[a], errors[b], level, n_boot, seed)
            pairs[f"{a}-{b}"] = {"difference": d, "ci": [lo, hi], "significant": bool(hi < 0.0 or lo > 0.0)}
    best = names[0]
    worse = [b for b in names[1:] if pairs[f"{best}-{b}"]["significant"]]
    tied = [b for b in names[1:] if b not in worse]
    pct = f"{100 * level:.0f} %"
    if len(names) == 1:
        statement = f"one model ({best}); nothing to rank"
    elif not worse:
        statement = (f"{best} has the lowest holdout RMSE, but every other model ({', '.join(tied)}) is within the "
                     f"{pct} paired-bootstrap interval: the ranking is inside the noise of this holdout")
    else:
        statement = (f"{best} is better than {', '.join(worse)} outside the {pct} paired-bootstrap interval"
                     + (f"; tied within the noise with {', '.join(tied)}" if tied else ""))
    return {"models": models, "pairs": pairs, "best": best, "worse_than_best": worse, "tied_with_best": tied,
            "level": level, "n_boot": n_boot, "n_holdout": int(np.asarray(errors[best]).size),
            "statement": statement}
