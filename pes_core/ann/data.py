"""Training data in the featurizer's atom order, and precomputed CCD features.

:class:`PESData` holds positions, cells, energies and (optionally) forces of
configurations of one supercell, already reordered into a featurizer's atom
order.  :func:`compute_features` evaluates the cluster and site features once
(no gradients), which is what energy-only training needs.

Units: Å, eV (total energy of the supercell), eV/Å.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pymatgen.core import Structure

from pes_core.ccd import CCDFeaturizer

__all__ = ["FeatureData", "PESData", "cell_weighted", "compute_features", "concat_features", "scaled_weights",
           "structure_order"]


def structure_order(featurizer: CCDFeaturizer, structure) -> np.ndarray:
    """Index array that reorders ``structure``'s atoms into the featurizer's order."""
    if isinstance(structure, Structure):
        frac = np.asarray(structure.frac_coords)
        species = [str(s.specie) for s in structure]
    else:
        frac = np.asarray(structure.get_scaled_positions(wrap=False))
        species = list(structure.get_chemical_symbols())
    return np.asarray(featurizer.supercell.match(frac, species))


@dataclass
class PESData:
    """Configurations in a featurizer's atom order.

    Attributes
    ----------
    positions : torch.Tensor
        ``(N, n_atoms, 3)`` Cartesian positions, Å (float64).
    cells : torch.Tensor
        ``(N, 3, 3)`` lattice vectors as rows, Å.
    energies : torch.Tensor
        ``(N,)`` total energies, eV.
    forces : torch.Tensor or None
        ``(N, n_atoms, 3)`` forces, eV/Å.
    ids : list of str
        Identifiers (e.g. ``Configuration.content_hash``).
    """

    positions: torch.Tensor
    cells: torch.Tensor
    energies: torch.Tensor
    forces: torch.Tensor | None
    ids: list[str]

    def __len__(self) -> int:
        return int(self.energies.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[1])

    def subset(self, index: Sequence[int] | np.ndarray) -> PESData:
        """The configurations at ``index`` (in that order)."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return PESData(self.positions[idx], self.cells[idx], self.energies[idx],
                       None if self.forces is None else self.forces[idx], [self.ids[int(i)] for i in idx])

    def select_ids(self, ids: Sequence[str]) -> PESData:
        """The configurations with these ids (``KeyError`` for an unknown id)."""
        where = {k: i for i, k in enumerate(self.ids)}
        missing = [k for k in ids if k not in where]
        if missing:
            raise KeyError(f"{len(missing)} ids not in the data set, e.g. {missing[0]!r}")
        return self.subset([where[k] for k in ids])

    @classmethod
    def from_structures(cls, featurizer: CCDFeaturizer, structures: Sequence, energies: Sequence[float],
                        forces: Sequence | None = None, ids: Sequence[str] | None = None) -> PESData:
        """Reorder structures (pymatgen or ASE) and their forces into the featurizer's order.

        Parameters
        ----------
        featurizer : CCDFeaturizer
            Defines the supercell and atom order.
        structures : sequence of Structure or Atoms
            Distorted copies of the featurizer's supercell.
        energies : sequence of float
            Total energies, eV.
        forces : sequence of (n_atoms, 3) arrays, optional
            Forces in each structure's own atom order, eV/Å.
        ids : sequence of str, optional
            Identifiers; default ``"0", "1", ...``.
        """
        if len(structures) != len(energies):
            raise ValueError(f"{len(structures)} structures but {len(energies)} energies")
        pos, cells, frc = [], [], []
        for k, st in enumerate(structures):
            if len(st) != featurizer.n_atoms:
                raise ValueError(f"structure {k} has {len(st)} atoms; the featurizer's supercell has "
                                 f"{featurizer.n_atoms}")
            order = structure_order(featurizer, st)
            if isinstance(st, Structure):
                frac, cell = np.asarray(st.frac_coords), np.asarray(st.lattice.matrix)
            else:
                frac, cell = np.asarray(st.get_scaled_positions(wrap=False)), np.asarray(st.cell[:])
            pos.append(frac[order] @ cell)
            cells.append(cell)
            if forces is not None:
                frc.append(np.asarray(forces[k], dtype=float)[order])
        return cls(
            positions=torch.as_tensor(np.stack(pos), dtype=torch.float64),
            cells=torch.as_tensor(np.stack(cells), dtype=torch.float64),
            energies=torch.as_tensor(np.asarray(energies, dtype=float), dtype=torch.float64),
            forces=None if forces is None else torch.as_tensor(np.stack(frc), dtype=torch.float64),
            ids=[str(i) for i in ids] if ids is not None else [str(i) for i in range(len(structures))],
        )

    @classmethod
    def from_configurations(cls, featurizer: CCDFeaturizer, configurations: Sequence,
                            with_forces: bool = True) -> PESData:
        """From :class:`pes_core.db.Configuration` documents (ids = content hashes)."""
        structures = [Structure.from_dict(c.structure) for c in configurations]
        return cls.from_structures(
            featurizer, structures, [c.energy for c in configurations],
            forces=[c.forces for c in configurations] if with_forces else None,
            ids=[c.content_hash for c in configurations])


@dataclass
class FeatureData:
    """Precomputed features (no gradients) with energies.

    A configuration of an ``m``-times larger supercell of the featurizer's
    reference (``m`` times its atoms) is held as ``m`` consecutive feature
    *rows* of the featurizer's shape: every orbit's clusters and every site
    orbit's sites split into ``m`` equal chunks (see
    :func:`pes_core.ann.multicell.split_rows`).  The models are a constant
    plus a sum of local terms, so the configuration's energy is the sum of
    the model's energies of its rows (the constant counts ``m`` times).
    ``row_config`` says which configuration each row belongs to; without it
    (the usual case) there is one row per configuration.

    Attributes
    ----------
    clusters : dict
        Orbit name -> ``(R, n_clusters, n_basis)`` (``R`` rows).
    sites : dict
        Site label -> ``(R, n_sites, n_features)``.
    energies : torch.Tensor
        ``(N,)`` total energies of the configurations, eV.
    n_atoms : int
        Atoms per row (the featurizer's supercell).
    ids : list of str
        One per configuration.
    row_config : torch.Tensor or None
        ``(R,)`` int64 index of the configuration of every row,
        non-decreasing with every configuration present; ``None``: ``R = N``,
        row ``i`` is configuration ``i``.
    weights : torch.Tensor or None
        ``(N,)`` weights of the configurations in the fits (least squares and
        training loss); ``None``: all 1.  :func:`cell_weighted` gives a
        configuration of ``m`` cells the weight ``m``.
    """

    clusters: dict[str, torch.Tensor]
    sites: dict[str, torch.Tensor]
    energies: torch.Tensor
    n_atoms: int
    ids: list[str]
    row_config: torch.Tensor | None = None
    weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.weights is not None:
            w = torch.as_tensor(self.weights, dtype=torch.float64)
            if w.shape != (len(self.energies),) or not bool(torch.all(torch.isfinite(w) & (w > 0))):
                raise ValueError(f"weights must be {len(self.energies)} finite positive numbers, one per configuration")
            self.weights = w
        if self.row_config is None:
            return
        rc = torch.as_tensor(self.row_config, dtype=torch.int64)
        n = len(self.energies)
        counts = torch.bincount(rc, minlength=n) if len(rc) else torch.zeros(n, dtype=torch.int64)
        if len(rc) != self.n_rows or (len(rc) and bool(torch.any(rc[1:] < rc[:-1]))) or len(counts) != n \
                or bool(torch.any(counts < 1)):
            raise ValueError(f"row_config must give each of the {self.n_rows} feature rows a configuration in "
                             f"0..{n - 1}, non-decreasing, every configuration at least once")
        self.row_config = rc

    def __len__(self) -> int:
        return int(self.energies.shape[0])

    @property
    def grouped(self) -> bool:
        """Whether some configuration spans several rows (or rows are indexed explicitly)."""
        return self.row_config is not None

    @property
    def n_rows(self) -> int:
        """Feature rows (``len(self)`` unless :attr:`grouped`)."""
        for v in (*self.clusters.values(), *self.sites.values()):
            return int(v.shape[0])
        return len(self)

    @property
    def multiplicity(self) -> np.ndarray:
        """``(N,)`` rows per configuration (its atoms over :attr:`n_atoms`)."""
        if self.row_config is None:
            return np.ones(len(self), dtype=np.int64)
        return torch.bincount(self.row_config, minlength=len(self)).numpy()

    @property
    def atoms(self) -> np.ndarray:
        """``(N,)`` atoms of every configuration."""
        return self.n_atoms * self.multiplicity

    def sum_rows(self, values: torch.Tensor) -> torch.Tensor:
        """Per-configuration sums ``(N, ...)`` of per-row values ``(R, ...)`` (the values themselves if not grouped)."""
        if self.row_config is None:
            return values
        out = torch.zeros((len(self), *values.shape[1:]), dtype=values.dtype)
        return out.index_add(0, self.row_config, values)

    def per_cell(self, values: torch.Tensor) -> torch.Tensor:
        """Per-configuration values ``(N, ...)`` divided by the multiplicity (per featurizer cell)."""
        if self.row_config is None:
            return values
        m = torch.as_tensor(self.multiplicity, dtype=values.dtype)
        return values / m.reshape(-1, *([1] * (values.dim() - 1)))

    def _rows(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Row indices of configurations ``index`` (in that order) and their new ``row_config``."""
        m = self.multiplicity
        start = np.concatenate([[0], np.cumsum(m)[:-1]])
        rows = np.concatenate([np.arange(start[i], start[i] + m[i]) for i in index]) if len(index) else \
            np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(index)), m[index]) if len(index) else np.zeros(0, dtype=np.int64)
        return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(owner, dtype=torch.int64)

    def subset(self, index: Sequence[int] | np.ndarray) -> FeatureData:
        """The configurations at ``index`` (in that order), with all their rows."""
        index = np.asarray(index, dtype=np.int64)
        idx = torch.as_tensor(index)
        if self.row_config is None:
            rows, owner = idx, None
        else:
            rows, owner = self._rows(index)
        return FeatureData({k: v[rows] for k, v in self.clusters.items()},
                           {k: v[rows] for k, v in self.sites.items()}, self.energies[idx], self.n_atoms,
                           [self.ids[int(i)] for i in idx], owner,
                           None if self.weights is None else self.weights[idx])

    def select_ids(self, ids: Sequence[str]) -> FeatureData:
        """The configurations with these ids (``KeyError`` for an unknown id)."""
        where = {k: i for i, k in enumerate(self.ids)}
        missing = [k for k in ids if k not in where]
        if missing:
            raise KeyError(f"{len(missing)} ids not in the feature set, e.g. {missing[0]!r}")
        return self.subset([where[k] for k in ids])

    def to_dict(self) -> dict:
        """Tensors and lists (for ``torch.save``); :meth:`from_dict` reads it back."""
        d = {"clusters": self.clusters, "sites": self.sites, "energies": self.energies, "n_atoms": self.n_atoms,
             "ids": self.ids}
        if self.row_config is not None:
            d["row_config"] = self.row_config
        if self.weights is not None:
            d["weights"] = self.weights
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FeatureData:
        return cls(d["clusters"], d["sites"], d["energies"], int(d["n_atoms"]), list(d["ids"]), d.get("row_config"),
                   d.get("weights"))


def concat_features(parts: Sequence[FeatureData]) -> FeatureData:
    """One feature set of the configurations of ``parts`` (in order); grouped if any part is.

    All parts must come from featurizers of the same supercell shape (same
    orbits, basis sizes and atoms per row); ids must be unique.

    Examples
    --------
    >>> import torch
    >>> a = FeatureData({"p": torch.ones(2, 3, 1)}, {}, torch.tensor([1.0, 2.0]), 5, ["a", "b"])
    >>> b = FeatureData({"p": torch.ones(4, 3, 1)}, {}, torch.tensor([8.0]), 5, ["c"], torch.zeros(4, dtype=torch.int64))
    >>> c = concat_features([a, b])
    >>> len(c), c.n_rows, c.multiplicity.tolist(), c.atoms.tolist()
    (3, 6, [1, 1, 4], [5, 5, 20])
    """
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError("concat_features needs at least one feature set")
    first = parts[0]
    for p in parts[1:]:
        if p.n_atoms != first.n_atoms or set(p.clusters) != set(first.clusters) or set(p.sites) != set(first.sites) \
                or any(p.clusters[k].shape[1:] != first.clusters[k].shape[1:] for k in first.clusters) \
                or any(p.sites[k].shape[1:] != first.sites[k].shape[1:] for k in first.sites):
            raise ValueError("feature sets of different featurizers (orbits, basis or atoms per row differ) cannot "
                             "be concatenated; compute both with the same featurizer (larger cells through "
                             "pes_core.ann.multicell.multicell_features)")
    ids = [k for p in parts for k in p.ids]
    if len(set(ids)) != len(ids):
        dup = next(k for k in ids if ids.count(k) > 1)
        raise ValueError(f"configuration {dup!r} is in more than one of the feature sets; drop the duplicates")
    row_config = None
    if any(p.grouped for p in parts):
        owners, offset = [], 0
        for p in parts:
            own = p.row_config if p.row_config is not None else torch.arange(len(p), dtype=torch.int64)
            owners.append(own + offset)
            offset += len(p)
        row_config = torch.cat(owners)
    weights = None
    if any(p.weights is not None for p in parts):
        weights = torch.cat([p.weights if p.weights is not None else torch.ones(len(p), dtype=torch.float64)
                             for p in parts])
    return FeatureData({k: torch.cat([p.clusters[k] for p in parts]) for k in first.clusters},
                       {k: torch.cat([p.sites[k] for p in parts]) for k in first.sites},
                       torch.cat([p.energies for p in parts]), first.n_atoms, ids, row_config, weights)


def cell_weighted(features: FeatureData) -> FeatureData:
    """The same configurations with weight ``m`` for a configuration of ``m`` featurizer cells.

    The fits take a large configuration's energy per cell, ``E / m``.  If the
    model's errors of the ``m`` cells were independent with variance
    ``s^2``, that per-cell value has variance ``s^2 / m``, so its
    inverse-variance (generalized least-squares) weight is ``m``: a 320-atom
    snapshot counts as its 8 cells of 40 atoms, not as one 40-atom cell.
    Configurations of the featurizer's own cell keep weight 1.

    Examples
    --------
    >>> import torch
    >>> b = FeatureData({"p": torch.ones(4, 3, 1)}, {}, torch.tensor([8.0]), 5, ["c"], torch.zeros(4, dtype=torch.int64))
    >>> cell_weighted(b).weights.tolist()
    [4.0]
    """
    return dataclasses.replace(features, weights=torch.as_tensor(features.multiplicity, dtype=torch.float64))


def scaled_weights(features: FeatureData, factors: dict[str, float]) -> FeatureData:
    """The same configurations with their weights (1 where unset) multiplied by ``factors[id]``.

    Configurations whose id is not in ``factors`` keep their weight.  This is
    how a small set whose energy differences matter (relaxed phases, a
    transition path) is given more say in a fit than its size would
    (``pes_fit`` ``extra_weights``; MLIP fitting codes call it a weight per
    configuration type).

    Examples
    --------
    >>> import torch
    >>> b = FeatureData({"p": torch.ones(3, 2, 1)}, {}, torch.tensor([1.0, 2.0, 3.0]), 5, ["a", "b", "c"])
    >>> scaled_weights(cell_weighted(b), {"b": 10.0}).weights.tolist()
    [1.0, 10.0, 1.0]
    """
    bad = {k: v for k, v in factors.items() if not (np.isfinite(v) and v > 0)}
    if bad:
        raise ValueError(f"weight factors must be finite and positive, got {bad}")
    w = features.weights if features.weights is not None else torch.ones(len(features), dtype=torch.float64)
    scale = torch.tensor([float(factors.get(k, 1.0)) for k in features.ids], dtype=torch.float64)
    return dataclasses.replace(features, weights=w * scale)


def compute_features(featurizer: CCDFeaturizer, data: PESData, chunk: int = 256) -> FeatureData:
    """Cluster and site features of every configuration (evaluated without gradients)."""
    clusters: dict[str, list[torch.Tensor]] = {}
    sites: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for a in range(0, len(data), chunk):
            out = featurizer(data.positions[a:a + chunk], data.cells[a:a + chunk])
            for k, v in out.clusters.items():
                clusters.setdefault(k, []).append(v)
            for k, v in out.sites.items():
                sites.setdefault(k, []).append(v)
    return FeatureData({k: torch.cat(v) for k, v in clusters.items()}, {k: torch.cat(v) for k, v in sites.items()},
                       data.energies.clone(), data.n_atoms, list(data.ids))
