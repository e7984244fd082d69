"""The base class of the PES models: energy from positions and cells through a CCD featurizer.

Kept apart from :mod:`pes_core.ann.models` (neural models) and
:mod:`pes_core.ann.linear` (ridge model) so both derive from it and
``models`` can build a linear model without an import cycle.
"""

from __future__ import annotations

import torch
from torch import nn

from pes_core.ccd import CCDFeaturizer

from .data import FeatureData

__all__ = ["PESModel"]


class PESModel(nn.Module):
    """Base class: energy ``(B,)`` in eV from positions ``(B, n, 3)`` and cells ``(B, 3, 3)``.

    Subclasses implement :meth:`energy_from_features` and :meth:`fit_normalization`.
    The featurizer is held as a plain attribute (not a submodule): its
    buffers are rebuilt from ``featurizer.settings`` when a model is loaded.
    """

    kind = "base"

    def __init__(self, featurizer: CCDFeaturizer) -> None:
        super().__init__()
        object.__setattr__(self, "featurizer", featurizer)
        self.register_buffer("e0", torch.zeros((), dtype=torch.float64))
        self.register_buffer("e_scale", torch.ones((), dtype=torch.float64))

    # ----------------------------------------------------------------- API
    def energy_from_features(self, clusters: dict[str, torch.Tensor],
                             sites: dict[str, torch.Tensor]) -> torch.Tensor:
        """Energies ``(B,)`` (eV) from cluster and site features."""
        raise NotImplementedError

    def forward(self, positions: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """Energies ``(B,)`` in eV (differentiable with respect to positions and cells)."""
        out = self.featurizer(positions, cells)
        return self.energy_from_features(out.clusters, out.sites)

    def energies(self, data: FeatureData) -> torch.Tensor:
        """Energies ``(N,)`` (eV) of the configurations of ``data``, with gradients.

        The rows of a configuration of a larger supercell (see
        :class:`~pes_core.ann.data.FeatureData`) are summed, so the constant
        ``E0`` counts once per featurizer cell.
        """
        return data.sum_rows(self.energy_from_features(data.clusters, data.sites))

    def predict(self, data: FeatureData, chunk: int = 4096) -> torch.Tensor:
        """Energies ``(N,)`` (eV) of precomputed features, without gradients (rows summed per configuration)."""
        with torch.no_grad():
            parts = [self.energy_from_features({k: v[a:a + chunk] for k, v in data.clusters.items()},
                                               {k: v[a:a + chunk] for k, v in data.sites.items()})
                     for a in range(0, data.n_rows, chunk)]
            rows = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
            return data.sum_rows(rows) if data.grouped else rows

    def hyperparameters(self) -> dict:
        """Constructor arguments (without the featurizer)."""
        return {}

    def fit_normalization(self, data: FeatureData) -> None:
        """Set input standardization and ``E0``/scale from training data.

        ``E0`` and the scale are the mean and spread of the energies per
        featurizer cell (a configuration of ``m`` cells counts ``E / m``).
        """
        e = data.per_cell(data.energies)
        self.e0.fill_(float(e.mean()))
        self.e_scale.fill_(float(e.std()) if len(e) > 1 and float(e.std()) > 0 else 1.0)

    def forces(self, positions: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies ``(B,)`` (eV) and forces ``(B, n, 3)`` (eV/Å) by autograd."""
        pos = positions.detach().clone().requires_grad_(True)
        e = self(pos, cells)
        (g,) = torch.autograd.grad(e.sum(), pos)
        return e.detach(), -g
