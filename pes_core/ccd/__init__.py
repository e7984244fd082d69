"""Collective cluster deformations (CCDs): descriptors of distortions of a reference crystal.

Modules
-------
metrics
    Deformation metrics ``f(d)`` (linear, quadratic, log, inverse).
correlation
    Correlation matrix ``G`` (analytic or Monte Carlo) and its group symmetrization.
irreps
    Characters and Mulliken labels of the irreducible blocks.
transform
    :class:`CCDTransform`: ``U``, eigenvalues, blocks, ``Q`` and ``Q*``.
invariants
    Invariant polynomials (Reynolds operator) and the Molien series.
specs
    :class:`OrbitSpec`, a declarative choice of cluster orbits.
featurizer
    :class:`CCDFeaturizer`: cluster- and site-based features in torch.
plotting
    Displacement patterns ``dr/dq`` of every CCD mode, drawn to PNG.
"""

from __future__ import annotations

from .correlation import correlation_matrix
from .featurizer import CCDFeaturizer, CCDFeatures
from .invariants import InvariantBasis, invariant_basis, molien_coefficients, reynolds_rank
from .irreps import mulliken_label
from .metrics import Metric, apply_metric, metric_function
from .plotting import mode_displacements, plot_modes
from .specs import OrbitSpec, resolve_orbits
from .transform import CCDTransform, IrrepBlock, build_ccd

__all__ = [
    "CCDFeaturizer",
    "CCDFeatures",
    "CCDTransform",
    "InvariantBasis",
    "IrrepBlock",
    "Metric",
    "OrbitSpec",
    "apply_metric",
    "build_ccd",
    "correlation_matrix",
    "invariant_basis",
    "metric_function",
    "molien_coefficients",
    "mode_displacements",
    "mulliken_label",
    "plot_modes",
    "resolve_orbits",
    "reynolds_rank",
]
