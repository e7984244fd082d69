"""Settings of the PES fit and of model-driven refinement (no torch: specs import them cheaply).

* :class:`FitSettings` -- holdout, k-fold CV grid, baselines and paths of a fit
  (used by :mod:`pes_core.ann.cv` and the fit workflow).
* :func:`expand_grid` -- the grid points of a grid: one dict of hyperparameter
  lists (their Cartesian product) or a list of such dicts (the concatenation of
  their products, scikit-learn's ``param_grid`` convention); a grid dict may
  carry its own ``training`` overrides.
* :class:`RefineSettings` -- the refinement rounds (used by :mod:`pes_core.ann.refine`).

Example
-------
>>> FitSettings().folds, RefineSettings.from_dict({"temperatures": [300]}).temperatures
(10, (300,))
>>> points = expand_grid([{"model": ["linear"], "order": [4]},
...                       {"model": ["cluster"], "order": [2], "hidden": [[8]], "training": {"patience": 100}}])
>>> points[0], points[1]["hidden"], points[1]["training"]
({'model': 'linear', 'order': 4}, [8], {'patience': 100})
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FitSettings", "RefineSettings", "expand_grid", "grid_dicts"]


def _default_grid() -> dict[str, list]:
    return {"model": ["cluster", "site", "linear"], "clusters": ["4pairs+oct", "7pairs+triplet+oct"],
            "order": [2, 4], "layers": [1, 2], "width": [16]}


def grid_dicts(grid: dict | list) -> list[tuple[str, dict]]:
    """The grid dicts of ``grid`` with their key paths: ``[("grid", grid)]`` for one dict.

    A list gives ``[("grid[0]", grid[0]), ("grid[1]", grid[1]), ...]``.  A
    ValueError names the key path of a bad shape (an empty list, an item that
    is not a dict, a grid that is neither).
    """
    if isinstance(grid, dict):
        return [("grid", grid)]
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence):
        raise ValueError(f"grid must be a dict of hyperparameter lists or a list of such dicts, got {grid!r}")
    if not grid:
        raise ValueError("grid is an empty list: give at least one dict of hyperparameter lists, "
                         "e.g. [{model: [linear], order: [4]}]")
    for i, g in enumerate(grid):
        if not isinstance(g, dict):
            raise ValueError(f"grid[{i}] must be a dict of hyperparameter lists (e.g. {{model: [linear], "
                             f"order: [4]}}), got {g!r}")
    return [(f"grid[{i}]", g) for i, g in enumerate(grid)]


def expand_grid(grid: dict[str, Sequence] | list[dict[str, Any]]) -> list[dict]:
    """The grid points: all combinations of the hyperparameter lists (keys keep their order).

    Parameters
    ----------
    grid : dict or list of dict
        One dict of non-empty lists (its Cartesian product), or a list of such
        dicts (the concatenation of their products, in list order).  A dict
        may carry ``training``: a dict of
        :class:`~pes_core.ann.training.TrainSettings` fields (not a list) that
        is attached to each of its points as ``point["training"]`` and
        overrides the fit's ``training`` field by field for those points
        (:func:`pes_core.ann.training.point_train_settings`).

    Returns
    -------
    list of dict
        One dict a grid point, e.g. ``{"model": "cluster", "clusters":
        "4pairs+oct", "order": 2, "hidden": [8], "training": {...}}``.
    """
    points = []
    for path, g in grid_dicts(grid):
        training = g.get("training")
        if "training" in g and not isinstance(training, dict):
            raise ValueError(f"{path}.training must be a dict of TrainSettings fields (one setting for every "
                             f"point of this grid dict, not a list of choices), got {training!r}")
        keys = [k for k in g if k != "training"]
        for key in keys:
            if isinstance(g[key], (str, bytes)) or not isinstance(g[key], Sequence) or not g[key]:
                where = f"grid entry {key!r}" if path == "grid" else f"{path}.{key}"
                raise ValueError(f"{where} must be a non-empty list, got {g[key]!r}")
        for combo in itertools.product(*(g[k] for k in keys)):
            point = dict(zip(keys, combo))
            if "training" in g:
                point["training"] = dict(training)
            points.append(point)
    return points


@dataclass(frozen=True)
class FitSettings:
    """Model selection of a PES fit: holdout, k-fold CV over a grid, baselines, judging paths.

    Attributes
    ----------
    test_fraction : float
        Holdout share of the configurations (:func:`holdout_split`).
    folds : int
        k of the k-fold cross-validation.
    seed : int
        Seed of the split and the folds.
    grid : dict or list of dict
        Hyperparameter lists, or a list of such dicts (:func:`expand_grid`);
        a grid dict may carry ``training`` overrides for its points.
    training : dict
        :class:`~pes_core.ann.training.TrainSettings` fields (of every point;
        a point's own ``training`` overrides them field by field).
    hiphive : dict or None
        :class:`~pes_core.ann.hiphive_baseline.HiphiveBaseline` settings (``cutoffs`` in Å); None: no baseline.
    paths : dict
        :func:`~pes_core.ann.paths.energy_paths` settings (``n_points``).
    """

    test_fraction: float = 0.2
    folds: int = 10
    seed: int = 0
    grid: dict | list = field(default_factory=_default_grid)
    training: dict = field(default_factory=dict)
    hiphive: dict | None = field(default_factory=lambda: {"cutoffs": [5.8, 4.2, 3.0]})
    paths: dict = field(default_factory=lambda: {"n_points": 13})

    @classmethod
    def from_dict(cls, d: dict) -> FitSettings:
        """The fit settings of a ``pes_fit`` spec dict (other keys, e.g. ``name``, are ignored)."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def train_settings(self, point: dict | None = None):
        """The :class:`~pes_core.ann.training.TrainSettings` of ``training``.

        With a grid ``point``: those of the point, its own ``training``
        overriding the fit's field by field (:func:`pes_core.ann.training.point_train_settings`).
        """
        from .training import TrainSettings, point_train_settings  # torch

        base = TrainSettings.from_dict(self.training)
        return base if point is None else point_train_settings(point, base)


@dataclass(frozen=True)
class RefineSettings:
    """Model-driven sampling rounds (the ``refine`` section of a training set).

    Attributes
    ----------
    temperatures : tuple of float
        Chain temperatures, K.
    chains : int
        Chains a temperature, cluster set and round.
    sweeps : int
        Production sweeps a chain (after ``sweeps // 2`` equilibration).
    rounds : int
        At most this many sampling rounds.
    tolerance_mev : float
        Stop when the RMS model error on the last round's chain ends is below this, meV/atom.
    clusters : str, tuple of str or None
        Cluster set(s) of the sampling models (linear ridge); None: those of the fit grid.
    order : int
        Polynomial order of the sampling models.
    margin : float
        Training-domain wall, in range widths beyond the data.
    seed : int or None
        Chain seed (None: the training set's seed).
    """

    temperatures: tuple[float, ...] = (300.0, 450.0)
    chains: int = 8
    sweeps: int = 40
    rounds: int = 8
    tolerance_mev: float = 5.0
    clusters: str | tuple[str, ...] | None = None
    order: int = 4
    margin: float = 0.25
    seed: int | None = None

    @classmethod
    def from_dict(cls, d: dict | None) -> RefineSettings:
        """Settings from the spec section (lists become tuples; unknown keys are an error)."""
        d = dict(d or {})
        bad = sorted(set(d) - set(cls.__dataclass_fields__))
        if bad:
            raise ValueError(f"RefineSettings: unknown keys {bad}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
