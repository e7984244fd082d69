"""Deformation metrics ``f(d)`` of a pair distance relative to its reference.

All metrics vanish at ``d = d~`` and have unit slope there in ``d/d~``:

========== ===============================
linear     ``d/d~ - 1``
quadratic  ``(d^2/d~^2 - 1)/2``
log        ``ln(d/d~)``
inverse    ``(1 - d~^2/d^2)/2``
========== ===============================

Every function accepts numpy arrays or torch tensors (differentiable).
"""

from __future__ import annotations

from enum import Enum
from typing import Callable

import numpy as np
import torch

__all__ = ["Metric", "apply_metric", "metric_function"]


class Metric(str, Enum):
    """Names of the deformation metrics."""

    LINEAR = "linear"
    QUADRATIC = "quadratic"
    LOG = "log"
    INVERSE = "inverse"


def _lib(x):
    return torch if isinstance(x, torch.Tensor) else np


def _linear(d, d0):
    return d / d0 - 1.0


def _quadratic(d, d0):
    return 0.5 * ((d / d0) ** 2 - 1.0)


def _log(d, d0):
    return _lib(d).log(d / d0)


def _inverse(d, d0):
    return 0.5 * (1.0 - (d0 / d) ** 2)


_FUNCS: dict[Metric, Callable] = {
    Metric.LINEAR: _linear,
    Metric.QUADRATIC: _quadratic,
    Metric.LOG: _log,
    Metric.INVERSE: _inverse,
}


def metric_function(metric: str | Metric) -> Callable:
    """Return ``f(d, d_ref)`` for a metric name.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    try:
        return _FUNCS[Metric(metric)]
    except ValueError:
        raise ValueError(
            f"unknown deformation metric {metric!r}; choose one of {[m.value for m in Metric]}"
        ) from None


def apply_metric(metric: str | Metric, d, d_ref):
    """Deformation vector ``F`` from distances ``d`` and reference distances ``d_ref`` (both Å)."""
    return metric_function(metric)(d, d_ref)
