"""Neural-network PES models on CCD features, their baselines, training and model selection.

Modules
-------
featurizers
    Featurizers named by hyperparameters (cluster set, order), cached.
data
    :class:`PESData` (positions/cells/energies/forces in featurizer order),
    :class:`FeatureData` (precomputed features).
base
    :class:`PESModel`, the base class of every model.
models
    :class:`ClusterModel`, :class:`SiteModel` (tanh networks per orbit / site).
linear
    :class:`LinearModel`: ridge regression on the same basis (linear anharmonic CE).
hiphive_baseline
    :class:`HiphiveBaseline`: hiPhive force-constant potential fitted to forces.
training
    :func:`train_model` with the mini-batch schedule and early stopping.
cv
    Holdout split, k-fold CV, grids, best-point selection.
io
    Models to/from bytes (GridFS) and files.
calculator
    :class:`PESCalculator` (ASE): energy, forces, stress by autograd.
paths
    The four judging paths (interpolation, in-/anti-phase tilt, volumetric strain).
settings
    :class:`FitSettings`, :class:`RefineSettings` (no torch).
refine
    Model-driven refinement rounds: the decision (:func:`~pes_core.ann.refine.decide_round`) and the samples.

Names are loaded on first use (importing ``pes_core.ann`` does not import torch).

Example
-------
>>> from pes_core.clusters import cubic_cspbbr3
>>> from pes_core.ann import (ClusterModel, PESData, TrainSettings, compute_features,
...                           get_featurizer, train_model)
>>> feat = get_featurizer(cubic_cspbbr3(), "4pairs+oct", order=2)            # doctest: +SKIP
>>> data = PESData.from_structures(feat, structures, energies, forces)        # doctest: +SKIP
>>> model = ClusterModel(feat, hidden=(16,))                                  # doctest: +SKIP
>>> train_model(model, compute_features(feat, data), TrainSettings(schedule=((10, 100),)))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> submodule; loaded on first use, so ``pes_core.ann.settings`` (and specs) import without torch
_LAZY: dict[str, str] = {
    "ClusterModel": "models",
    "DEFAULT_SCHEDULE": "training",
    "FeatureData": "data",
    "FeaturizerSettings": "featurizers",
    "FitSettings": "settings",
    "HiphiveBaseline": "hiphive_baseline",
    "LinearModel": "linear",
    "PAPER_SCHEDULE": "training",
    "PATH_LABELS": "paths",
    "PESCalculator": "calculator",
    "PESData": "data",
    "PESModel": "models",
    "RefineSettings": "settings",
    "SiteModel": "models",
    "TrainReport": "training",
    "TrainSettings": "training",
    "build_model": "models",
    "cluster_set_specs": "featurizers",
    "compute_features": "data",
    "cell_weighted": "data",
    "scaled_weights": "data",
    "concat_features": "data",
    "configuration_features": "multicell",
    "cross_validate": "cv",
    "energy_paths": "paths",
    "expand_grid": "cv",
    "fit_point": "cv",
    "get_featurizer": "featurizers",
    "grid_dicts": "settings",
    "holdout_split": "cv",
    "interpolate_structures": "paths",
    "kfold_indices": "cv",
    "load_model": "io",
    "model_from_bytes": "io",
    "model_to_bytes": "io",
    "multicell_features": "multicell",
    "perovskite_featurizer": "featurizers",
    "point_train_settings": "training",
    "ridge_gcv": "linear",
    "rmse_mev_per_atom": "training",
    "save_model": "io",
    "select_best": "cv",
    "split_rows": "multicell",
    "structure_order": "data",
    "supercell_featurizer": "multicell",
    "torch_threads": "_torch",
    "train_model": "training",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'pes_core.ann' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from ._torch import torch_threads
    from .calculator import PESCalculator
    from .cv import (
        cross_validate,
        expand_grid,
        fit_point,
        holdout_split,
        kfold_indices,
        select_best,
    )
    from .data import (
        FeatureData,
        PESData,
        cell_weighted,
        compute_features,
        concat_features,
        scaled_weights,
        structure_order,
    )
    from .featurizers import (
        FeaturizerSettings,
        cluster_set_specs,
        get_featurizer,
        perovskite_featurizer,
    )
    from .hiphive_baseline import HiphiveBaseline
    from .io import load_model, model_from_bytes, model_to_bytes, save_model
    from .linear import LinearModel, ridge_gcv
    from .models import ClusterModel, PESModel, SiteModel, build_model
    from .multicell import (
        configuration_features,
        multicell_features,
        split_rows,
        supercell_featurizer,
    )
    from .paths import PATH_LABELS, energy_paths, interpolate_structures
    from .settings import FitSettings, RefineSettings, grid_dicts
    from .training import (
        DEFAULT_SCHEDULE,
        PAPER_SCHEDULE,
        TrainReport,
        TrainSettings,
        point_train_settings,
        rmse_mev_per_atom,
        train_model,
    )

__all__ = [
    "DEFAULT_SCHEDULE",
    "PAPER_SCHEDULE",
    "PATH_LABELS",
    "ClusterModel",
    "FeatureData",
    "FeaturizerSettings",
    "FitSettings",
    "HiphiveBaseline",
    "LinearModel",
    "PESCalculator",
    "PESData",
    "PESModel",
    "RefineSettings",
    "SiteModel",
    "TrainReport",
    "TrainSettings",
    "build_model",
    "cluster_set_specs",
    "compute_features",
    "cell_weighted",
    "concat_features",
    "configuration_features",
    "cross_validate",
    "energy_paths",
    "expand_grid",
    "fit_point",
    "get_featurizer",
    "grid_dicts",
    "holdout_split",
    "interpolate_structures",
    "kfold_indices",
    "load_model",
    "model_from_bytes",
    "model_to_bytes",
    "multicell_features",
    "perovskite_featurizer",
    "point_train_settings",
    "ridge_gcv",
    "rmse_mev_per_atom",
    "save_model",
    "scaled_weights",
    "select_best",
    "split_rows",
    "structure_order",
    "supercell_featurizer",
    "torch_threads",
    "train_model",
]
