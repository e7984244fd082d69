"""Settings of the PES fit and of model-driven refinement (no torch: specs import them cheaply).

* :class:`FitSettings` -- holdout, k-fold CV grid, baselines and paths of a fit
  (used by :mod:`pes_core.ann.cv` and the fit workflow).
* :class:`RefineSettings` -- the refinement rounds (used by :mod:`pes_core.ann.refine`).

Example
-------
>>> FitSettings().folds, RefineSettings.from_dict({"temperatures": [300]}).temperatures
(10, (300,))
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FitSettings", "RefineSettings"]


def _default_grid() -> dict[str, list]:
    return {"model": ["cluster", "site", "linear"], "clusters": ["4pairs+oct", "7pairs+triplet+oct"],
            "order": [2, 4], "layers": [1, 2], "width": [16]}


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
    grid : dict
        Hyperparameter lists (:func:`expand_grid`).
    training : dict
        :class:`~pes_core.ann.training.TrainSettings` fields.
    hiphive : dict or None
        :class:`~pes_core.ann.hiphive_baseline.HiphiveBaseline` settings (``cutoffs`` in Å); None: no baseline.
    paths : dict
        :func:`~pes_core.ann.paths.energy_paths` settings (``n_points``).
    """

    test_fraction: float = 0.2
    folds: int = 10
    seed: int = 0
    grid: dict = field(default_factory=_default_grid)
    training: dict = field(default_factory=dict)
    hiphive: dict | None = field(default_factory=lambda: {"cutoffs": [5.8, 4.2, 3.0]})
    paths: dict = field(default_factory=lambda: {"n_points": 13})

    @classmethod
    def from_dict(cls, d: dict) -> FitSettings:
        """The fit settings of a ``pes_fit`` spec dict (other keys, e.g. ``name``, are ignored)."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def train_settings(self):
        """The :class:`~pes_core.ann.training.TrainSettings` of ``training``."""
        from .training import TrainSettings  # torch

        return TrainSettings.from_dict(self.training)


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
