"""NumPy kernels of the learned PES models: invariant polynomials and per-cluster / per-site energies.

The models of :mod:`pes_core.ann` are sums of local terms plus a constant::

    linear   E = C + sum_alpha sum_{c in alpha} phi_alpha(Q_c) . v_alpha          (v = w / sd)
    cluster  E = C + s sum_alpha sum_{c in alpha} N_alpha((phi(Q_c) - mu) / sd)
    site     E = C + s sum_s sum_{i in s} N_s((G_i - mu) / sd)

:class:`LocalEnergy` holds the trained weights as NumPy arrays and evaluates
these local terms for any set of clusters or sites; ``C`` is the constant of
the model's own (training) supercell, so a supercell ``k`` times larger has the
constant ``k C``.  A Monte Carlo trial move evaluates a few dozen clusters at
a time, where NumPy's per-call cost (about 1 microsecond) is several times
lower than torch's; the kernels reproduce the torch models to rounding (checked
in the tests against ``model(positions, cell)``).

Examples
--------
>>> le = LocalEnergy.from_model(model)          # doctest: +SKIP
>>> le.cluster_energies("PbBr6_octahedron", phi)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

__all__ = ["LocalEnergy", "NumpyPolynomial", "numpy_mlp"]


class NumpyPolynomial:
    """NumPy port of :class:`pes_core.ccd.invariants.PolynomialEvaluator` (same monomial tree).

    Parameters
    ----------
    evaluator : PolynomialEvaluator
        The torch evaluator of one orbit's invariant basis.
    """

    def __init__(self, evaluator) -> None:
        self.max_degree = int(evaluator.max_degree)
        self.n_basis = int(evaluator.n_basis)
        self.first = evaluator.first.numpy().copy() if self.max_degree else None
        self.parents = [getattr(evaluator, f"parent{d}").numpy().copy() for d in range(2, self.max_degree + 1)]
        self.lasts = [getattr(evaluator, f"last{d}").numpy().copy() for d in range(2, self.max_degree + 1)]
        self.coeffs = [getattr(evaluator, f"coeffs{d}").numpy().copy() for d in range(1, self.max_degree + 1)]
        # large, sparse coefficient blocks (the octahedron's degree 3-4 terms are ~1-3 % filled): CSR, transposed
        from scipy.sparse import csr_matrix

        self.sparse_t = [csr_matrix(c.T) if c.size > 2000 and np.count_nonzero(c) < 0.1 * c.size else None
                         for c in self.coeffs]
        # one variable (pair clusters): phi = [q, q^2, ...] @ C, two array calls
        self.univariate = self.max_degree > 0 and all(c.shape[0] == 1 for c in self.coeffs)
        if self.univariate:
            self.powers = np.arange(1, self.max_degree + 1, dtype=float)
            self.stacked = np.concatenate(self.coeffs, axis=0)  # (max_degree, n_basis)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """``(m, n_vars)`` CCDs -> ``(m, n_basis)`` invariant polynomials."""
        if self.max_degree == 0:
            return np.zeros((q.shape[0], 0))
        if self.univariate:
            return (q[:, :1] ** self.powers) @ self.stacked
        qt = np.ascontiguousarray(q.T)  # variables along the first axis: gathers copy whole rows
        level = qt[self.first]
        out = self._contract(0, level)
        for d, (parent, last) in enumerate(zip(self.parents, self.lasts), start=1):
            level = level[parent] * qt[last]
            out = out + self._contract(d, level)
        return out.T

    def _contract(self, d: int, level: np.ndarray) -> np.ndarray:
        sp = self.sparse_t[d]
        return self.coeffs[d].T @ level if sp is None else sp @ level


def numpy_mlp(seq) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(W^T, b)`` of every ``nn.Linear`` of a tanh ``nn.Sequential`` (:func:`pes_core.ann.models.mlp`)."""
    from torch import nn

    layers = []
    for mod in seq:
        if isinstance(mod, nn.Linear):
            layers.append((mod.weight.detach().numpy().T.copy(), mod.bias.detach().numpy().copy()))
        elif not isinstance(mod, nn.Tanh):
            raise TypeError(f"unexpected layer {type(mod).__name__} in a PES network (tanh MLPs only)")
    return layers


def _run_mlp(layers, x: np.ndarray) -> np.ndarray:
    for w, b in layers[:-1]:
        x = np.tanh(x @ w + b)
    w, b = layers[-1]
    return (x @ w + b)[:, 0]


class LocalEnergy:
    """The local terms of a trained linear, cluster or site model, in NumPy.

    Build with :meth:`from_model`.

    Attributes
    ----------
    kind : str
        ``"linear"``, ``"cluster"`` or ``"site"``.
    constant : float
        ``C`` (eV): the model energy minus the sum of its local terms, for the
        model's own supercell.
    n_cells : int
        Primitive cells in the model's own supercell (to scale ``C``).
    """

    def __init__(self, kind: str, constant: float, n_cells: int, per_group: dict, site_orbits: dict) -> None:
        self.kind = kind
        self.constant = float(constant)
        self.n_cells = int(n_cells)
        self._groups = per_group
        self.site_orbits = site_orbits  # site label -> orbits whose features it concatenates

    @property
    def uses_sites(self) -> bool:
        """Whether the energy is a sum over sites (site model) rather than over clusters."""
        return self.kind == "site"

    @classmethod
    def from_model(cls, model) -> LocalEnergy:
        """Extract the weights of a :class:`~pes_core.ann.LinearModel`, ``ClusterModel`` or ``SiteModel``.

        Raises
        ------
        TypeError
            For any other model (its energy is not known to be a sum of local terms).
        """
        feat = model.featurizer
        kind = getattr(model, "kind", "")
        n_cells = len(feat.supercell.translations)
        groups: dict[str, tuple] = {}
        if kind == "linear":
            w = model.weights.numpy() / model.sd.numpy()
            const = float(model.e0) - float(model.mu.numpy() @ w)
            a = 0
            for name in model.orbit_names:
                n = feat.n_basis[name]
                groups[name] = ("linear", w[a:a + n].copy())
                a += n
        elif kind in ("cluster", "site"):
            const = float(model.e0)
            scale = float(model.e_scale)
            for i, name in enumerate(model.group_names):
                lin = model.linear[i].weight.detach().numpy()[0].copy() if model.shortcut else None
                groups[name] = ("net", getattr(model, f"mu_{i}").numpy().copy(),
                                getattr(model, f"sd_{i}").numpy().copy(), numpy_mlp(model.nets[i]), lin, scale)
        else:
            raise TypeError(f"model kind {kind!r} is not a sum of local cluster or site terms; the thermodynamics "
                            "engine supports the linear, cluster and site models of pes_core.ann")
        site_orbits = {label: list(names) for label, names in feat.site_feature_orbits.items() if names}
        return cls(kind, const, n_cells, groups, site_orbits)

    def group_energies(self, name: str, x: np.ndarray) -> np.ndarray:
        """Local energies (eV) of ``m`` clusters of orbit ``name`` (or sites of site orbit ``name``).

        Parameters
        ----------
        name : str
            Orbit name (linear, cluster models) or site-orbit label (site model).
        x : (m, n_features) array
            Invariant polynomials of the clusters, or site features.
        """
        g = self._groups[name]
        if g[0] == "linear":
            return x @ g[1]
        _, mu, sd, layers, lin, scale = g
        z = (x - mu) / sd
        out = _run_mlp(layers, z)
        if lin is not None:
            out = out + z @ lin
        return scale * out

    @property
    def group_names(self) -> list[str]:
        """Orbits (linear, cluster) or site-orbit labels (site) with local terms."""
        return list(self._groups)
