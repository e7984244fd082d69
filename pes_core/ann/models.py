"""Neural-network PES models on top of CCD features (cluster-based and site-based).

Cluster-based (one small network per cluster orbit ``alpha``)::

    E = E0 + s * sum_alpha sum_{c in alpha} N_alpha( phi(Q_c) )

Site-based (one network per symmetrically distinct site ``s``)::

    E = E0 + s * sum_s sum_{i in s} N_s( G_i )

``phi`` are the invariant polynomials of the cluster CCDs and ``G_i`` the
site features (averages of ``phi`` over the clusters that contain atom ``i``),
both from :class:`pes_core.ccd.CCDFeaturizer`.  Each network has a linear
shortcut, ``N(x) = w.x + MLP(x)``, so the linear anharmonic cluster
expansion is the special case ``MLP = 0``: training starts from the ridge
solution of the linear part (:meth:`_PerGroupModel.init_linear`) and the
tanh layers learn what the expansion misses.  Inputs are standardized with
training-set statistics and ``E0``/``s`` are the mean and spread of the
training energies (all stored as buffers, so a saved model is
self-contained).  With ``shortcut=False`` the networks alone give the
energy, which is then bounded (:meth:`ClusterModel.energy_bounds`): the
shortcut, a polynomial of order up to 4 in the displacements, is not.  The
networks use tanh activations.  Because the features
are invariant under the reference space group, symmetry-equivalent
distortions get equal energies by construction; forces (eV/Å) and the
strain derivative follow by autograd through the featurizer.

Example
-------
>>> from pes_core.clusters import cubic_cspbbr3
>>> from pes_core.ann import get_featurizer, ClusterModel
>>> feat = get_featurizer(cubic_cspbbr3(), "4pairs+oct", order=2)  # doctest: +SKIP
>>> model = ClusterModel(feat, hidden=(16,))  # doctest: +SKIP
>>> pos, cell = feat.reference_batch(2)  # doctest: +SKIP
>>> model(pos, cell).shape  # doctest: +SKIP
torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pes_core.ccd import CCDFeaturizer

from .base import PESModel
from .data import FeatureData
from .linear import LinearModel, _weighted_moments, ridge_gcv

__all__ = ["ClusterModel", "PESModel", "SiteModel", "build_model", "mlp"]


def mlp(n_in: int, hidden: Sequence[int], seed_scale: float = 0.1) -> nn.Sequential:
    """A tanh multilayer perceptron ``n_in -> hidden... -> 1`` (float64, small last layer)."""
    layers: list[nn.Module] = []
    n = n_in
    for h in hidden:
        layers += [nn.Linear(n, int(h), dtype=torch.float64), nn.Tanh()]
        n = int(h)
    last = nn.Linear(n, 1, dtype=torch.float64)
    with torch.no_grad():
        last.weight.mul_(seed_scale)
        last.bias.zero_()
    layers.append(last)
    return nn.Sequential(*layers)


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.reshape(-1, x.shape[-1])
    mu = flat.mean(dim=0)
    sd = flat.std(dim=0) if flat.shape[0] > 1 else torch.ones_like(mu)
    sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
    return mu, sd


class _PerGroupModel(PESModel):
    """Shared machinery: one network (with a linear shortcut) per group (orbit or site orbit)."""

    groups_attr = "clusters"

    def __init__(self, featurizer: CCDFeaturizer, groups: dict[str, int], hidden: Sequence[int] = (16,),
                 shortcut: bool = True) -> None:
        super().__init__(featurizer)
        if not hidden:
            raise ValueError("give at least one hidden layer width, e.g. hidden=(16,)")
        self.hidden = [int(h) for h in hidden]
        self.shortcut = bool(shortcut)
        self.group_names = list(groups)
        self.nets = nn.ModuleList(mlp(n, self.hidden) for n in groups.values())
        self.linear = nn.ModuleList(nn.Linear(n, 1, bias=False, dtype=torch.float64) for n in groups.values())
        for lin in self.linear:
            nn.init.zeros_(lin.weight)
            lin.weight.requires_grad_(self.shortcut)
        for i, n in enumerate(groups.values()):
            self.register_buffer(f"mu_{i}", torch.zeros(n, dtype=torch.float64))
            self.register_buffer(f"sd_{i}", torch.ones(n, dtype=torch.float64))

    def hyperparameters(self) -> dict:
        return {"hidden": list(self.hidden), "shortcut": self.shortcut}

    def _standardized(self, clusters, sites) -> list[torch.Tensor]:
        source = self._inputs(clusters, sites)
        return [(source[name] - getattr(self, f"mu_{i}")) / getattr(self, f"sd_{i}")
                for i, name in enumerate(self.group_names)]

    def init_linear(self, data: FeatureData, alphas: Sequence[float] = tuple(10.0 ** np.arange(-10, 1.0)),
                    residual: bool = False) -> float:
        """Set the linear shortcuts (and ``E0``) to the ridge fit of ``data``; returns the penalty.

        With ``residual=True`` the ridge fit targets the energies minus the
        networks' current (nonlinear) output, so the shortcuts become the
        optimal linear part given the networks.

        The shortcut sum over a group's members is ``w . sum_members x``, so
        the ridge regression of the energies on those sums (GCV penalty) is
        the linear anharmonic cluster expansion in this model's own inputs.
        A configuration of ``m`` featurizer cells enters per cell (sums and
        energy over ``m``), as in :meth:`LinearModel.fit`.
        """
        if not self.shortcut:
            return float("nan")
        with torch.no_grad():
            xs = self._standardized(data.clusters, data.sites)
            if data.grouped:  # configurations of m cells: descriptors and energies per cell
                d = data.per_cell(data.sum_rows(torch.cat([x.sum(dim=1) for x in xs], dim=-1))).numpy()
                y = (data.per_cell(data.energies).numpy() - float(self.e0)) / float(self.e_scale)
                if residual:
                    y = y - data.per_cell(data.sum_rows(
                        sum(net(x).squeeze(-1).sum(dim=-1) for x, net in zip(xs, self.nets)))).numpy()
            else:
                d = torch.cat([x.sum(dim=1) for x in xs], dim=-1).numpy()
                y = (data.energies.numpy() - float(self.e0)) / float(self.e_scale)
                if residual:  # fit the shortcuts to what the networks leave (backfitting)
                    y = y - sum(net(x).squeeze(-1).sum(dim=-1) for x, net in zip(xs, self.nets)).numpy()
            if data.weights is None:
                mu, sd = d.mean(axis=0), d.std(axis=0)
                sd = np.where(sd > 1e-12, sd, 1.0)
                y_mean = float(y.mean())
                w, alpha = ridge_gcv((d - mu) / sd, y - y_mean, alphas)
            else:  # weighted least squares (see LinearModel.fit)
                mu, sd, y_mean, sq = _weighted_moments(d, y, data.weights.numpy())
                w, alpha = ridge_gcv(sq[:, None] * (d - mu) / sd, sq * (y - y_mean), alphas)
            w = w / sd
            offset = float(y_mean - mu @ w)
            a = 0
            for lin in self.linear:
                n = lin.weight.shape[1]
                lin.weight.copy_(torch.as_tensor(w[a:a + n]).reshape(1, -1))
                a += n
            self.e0.add_(offset * float(self.e_scale))
        return float(alpha)

    def energy_bounds(self) -> tuple[float, float]:
        """Bounds ``(lo, hi)`` (eV) of the energy of any configuration of the featurizer's cell.

        Without the shortcut every network ends in a linear layer on
        ``tanh`` outputs in ``[-1, 1]``, so its output lies within ``b -+
        |w|_1`` whatever the input: the model is bounded below and above,
        and so is its Monte Carlo chain, far from its data too (a polynomial
        shortcut of order 4 is not bounded, and a chain may sink into a
        region its data never constrained).  The bounds are attained only
        if every network's hidden units saturate at once, so they are loose.
        A configuration of ``m`` featurizer cells (``E0`` counts once per
        cell) lies within ``m * lo`` and ``m * hi``.

        Raises
        ------
        ValueError
            With the shortcut: ``w . x`` has no bound.
        """
        if self.shortcut:
            raise ValueError("a network with the linear shortcut is not bounded (w . x grows without limit with "
                             "the features); fit with shortcut: false for a bounded model")
        pos, cell = self.featurizer.reference_batch(1)
        with torch.no_grad():
            out = self.featurizer(pos, cell)
        members = self._inputs(out.clusters, out.sites)
        lo = hi = 0.0
        for name, net in zip(self.group_names, self.nets):
            last = net[-1]
            w1 = float(last.weight.detach().abs().sum())
            b = float(last.bias.detach()[0])
            n = int(members[name].shape[1])
            lo += n * (b - w1)
            hi += n * (b + w1)
        e0, s = float(self.e0), float(self.e_scale)
        return e0 + s * lo, e0 + s * hi

    def _inputs(self, clusters, sites) -> dict[str, torch.Tensor]:
        return clusters if self.groups_attr == "clusters" else sites

    def fit_normalization(self, data: FeatureData) -> None:
        super().fit_normalization(data)
        source = self._inputs(data.clusters, data.sites)
        for i, name in enumerate(self.group_names):
            mu, sd = _stats(source[name])
            getattr(self, f"mu_{i}").copy_(mu)
            getattr(self, f"sd_{i}").copy_(sd)

    def energy_from_features(self, clusters, sites) -> torch.Tensor:
        total = None
        for x, net, lin in zip(self._standardized(clusters, sites), self.nets, self.linear):
            out = net(x) + lin(x) if self.shortcut else net(x)
            e = out.squeeze(-1).sum(dim=-1)  # sum over clusters / sites
            total = e if total is None else total + e
        return self.e0 + self.e_scale * total


class ClusterModel(_PerGroupModel):
    """Cluster-based model: one tanh network per cluster orbit, summed over its clusters.

    Parameters
    ----------
    featurizer : CCDFeaturizer
        Provides the invariant polynomials of every orbit.
    hidden : sequence of int
        Hidden-layer widths (1 or 2 layers in the CsPbBr3 study).
    shortcut : bool
        Add the linear shortcut ``w.x`` to every network.
    """

    kind = "cluster"
    groups_attr = "clusters"

    def __init__(self, featurizer: CCDFeaturizer, hidden: Sequence[int] = (16,), shortcut: bool = True) -> None:
        super().__init__(featurizer, dict(featurizer.n_basis), hidden, shortcut)


class SiteModel(_PerGroupModel):
    """Site-based model: one tanh network per symmetrically distinct site, summed over its sites.

    Parameters
    ----------
    featurizer : CCDFeaturizer
        Provides the site features ``G_i``.
    hidden : sequence of int
        Hidden-layer widths.
    shortcut : bool
        Add the linear shortcut ``w.x`` to every network.
    """

    kind = "site"
    groups_attr = "sites"

    def __init__(self, featurizer: CCDFeaturizer, hidden: Sequence[int] = (16,), shortcut: bool = True) -> None:
        super().__init__(featurizer, dict(featurizer.n_site_features), hidden, shortcut)


_MODELS: dict[str, type[PESModel]] = {"cluster": ClusterModel, "site": SiteModel}


def build_model(kind: str, featurizer: CCDFeaturizer, **hyper) -> PESModel:
    """Build a model by kind (``"cluster"``, ``"site"`` or ``"linear"``)."""
    if kind == "linear":
        return LinearModel(featurizer, **hyper)
    if kind not in _MODELS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of cluster, site, linear")
    return _MODELS[kind](featurizer, **hyper)
