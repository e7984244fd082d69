"""Features of configurations of larger supercells, as rows of the training cell's shape.

The linear, cluster and site models are a constant plus a sum of local terms
(one per cluster of every orbit, or one per site)::

    E = E0 + sum_rows ...  =>  E(m cells) = m E0 + sum over all clusters / sites

A configuration of a supercell with ``m`` times the primitive cells of the
featurizer's own supercell (e.g. 4x4x4 = 320 atoms of CsPbBr3 for a model of
2x2x2 = 40-atom cells: ``m = 8``) has exactly ``m`` times the clusters of
every orbit and the sites of every site orbit.  Its features are computed by
a featurizer of the large cell with the same orbits, metric and basis
(:func:`supercell_featurizer`, the construction of
:class:`pes_core.thermo.SupercellPES`), then every orbit's clusters and every
site orbit's sites are cut into ``m`` equal chunks: ``m`` feature *rows* of
the small shape (:func:`split_rows`).  Any partition does, because the models
sum over clusters; :class:`~pes_core.ann.data.FeatureData` keeps which rows
make a configuration and every model, fit and error sums them.

Units: Å, eV (total energies), as in :mod:`pes_core.ann.data`.

Example
-------
>>> feats = multicell_features(feat, structures, energies, ids)  # doctest: +SKIP
>>> model.predict(feats)   # total energies of 40- and 320-atom cells alike  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch
from pymatgen.core import Structure

from pes_core.ccd import CCDFeaturizer

from .data import FeatureData, PESData, compute_features, concat_features

__all__ = ["configuration_features", "multicell_features", "split_rows", "supercell_featurizer", "supercell_matrix"]

_CACHE: dict[tuple, CCDFeaturizer] = {}
_LOCK = threading.Lock()


def _lattice(structure) -> np.ndarray:
    if isinstance(structure, Structure):
        return np.asarray(structure.lattice.matrix, dtype=float)
    return np.asarray(structure.cell[:], dtype=float)


def supercell_matrix(featurizer: CCDFeaturizer, structure, tol: float = 0.2) -> np.ndarray:
    """Integer matrix ``P`` (lattice rows = ``P @ primitive``) of a (strained) supercell of the reference.

    ``P`` is the rounded ``lattice @ inv(primitive)``; it is accepted when the
    cell it implies holds the structure's atoms (``|det P|`` primitive cells)
    and the remaining homogeneous deformation ``F = inv(P @ primitive) @
    lattice`` is within ``tol`` of the identity.  The bound is on the strain,
    not on the entries of ``P``: a fixed bound on the entries would allow 12 %
    strain in a 2x2x2 cell but only 6 % in a 4x4x4 and 4 % in a 6x6x6 one
    (Monte Carlo chains of a model with a strain hole reach c/a = 1.13 in a
    4x4x4 cell, and those are the snapshots a refit needs).

    Parameters
    ----------
    featurizer : CCDFeaturizer
        Gives the primitive reference lattice (Å) and its atoms per cell.
    structure : Structure or Atoms
        A distorted, possibly strained supercell of the reference.
    tol : float
        Largest component of the strain ``F - 1`` (dimensionless).

    Raises
    ------
    ValueError
        When the cell is not close to an integer supercell of the reference
        holding the structure's number of atoms.
    """
    prim = np.asarray(featurizer.space_group.lattice, dtype=float)
    lattice = _lattice(structure)
    p = lattice @ np.linalg.inv(prim)
    r = np.rint(p)
    cells = abs(np.linalg.det(r))
    per_cell = featurizer.n_atoms // len(featurizer.supercell.translations)
    strain = np.linalg.inv(r @ prim) @ lattice - np.eye(3) if cells >= 0.5 else np.full((3, 3), np.inf)
    worst = float(np.max(np.abs(strain)))
    if cells < 0.5 or worst > tol or len(structure) != per_cell * round(cells):
        raise ValueError(f"the cell {np.round(lattice, 3).tolist()} (Å) with {len(structure)} atoms is not a supercell "
                         f"of the model's reference (matrix {np.round(p, 3).tolist()}: {round(cells)} primitive cells "
                         f"of {per_cell} atoms, strain {worst:.3g}, at most {tol}); only supercells of the training "
                         "set's reference can be used")
    return r.astype(int)


def supercell_featurizer(featurizer: CCDFeaturizer, matrix) -> CCDFeaturizer:
    """The (cached) featurizer of another supercell of ``featurizer``'s reference: same orbits, metric, basis.

    Parameters
    ----------
    featurizer : CCDFeaturizer
        The model's featurizer (its orbits, CCD transforms and invariant
        polynomials are rebuilt identically for the new cell).
    matrix : int, 3 ints or (3, 3) int array
        The supercell of the primitive reference.
    """
    p = np.asarray(matrix)
    p = np.diag(p) if p.shape == (3,) else (np.eye(3, dtype=int) * int(p) if p.ndim == 0 else p)
    p = np.rint(p).astype(int)
    if np.array_equal(p, featurizer.supercell.matrix):
        return featurizer
    settings = getattr(featurizer, "settings", None)
    key = (settings.key() if settings is not None else id(featurizer), tuple(p.reshape(-1)))
    with _LOCK:
        feat = _CACHE.get(key)
        if feat is None:
            feat = CCDFeaturizer(featurizer.space_group, p, featurizer.orbits, metric=featurizer.metric,
                                 max_order=featurizer.max_order, wrap=featurizer.wrap)
            for name, small, big in zip(featurizer.orbit_names, featurizer.orbit_modules, feat.orbit_modules):
                if small.u_t.shape != big.u_t.shape or not torch.allclose(small.u_t, big.u_t, rtol=0, atol=1e-12):
                    raise RuntimeError(f"the CCD transform of orbit {name} differs in the supercell {p.tolist()}")
            _CACHE[key] = feat
    return feat


def split_rows(featurizer: CCDFeaturizer, features: FeatureData) -> FeatureData:
    """Features of a larger supercell as ``m`` rows per configuration of ``featurizer``'s shape.

    Parameters
    ----------
    featurizer : CCDFeaturizer
        The model's featurizer (the shape of a row).
    features : FeatureData
        Features of configurations of one larger supercell (one row each),
        computed by :func:`supercell_featurizer` of ``featurizer``.

    Returns
    -------
    FeatureData
        ``m * len(features)`` rows, ``row_config`` set, ``n_atoms`` of the featurizer.
    """
    if features.grouped:
        raise ValueError("split_rows takes features of one supercell, one row per configuration")
    if features.n_atoms % featurizer.n_atoms:
        raise ValueError(f"a configuration of {features.n_atoms} atoms is not a whole number of the model's "
                         f"{featurizer.n_atoms}-atom cells; use supercells with a multiple of its primitive cells")
    m = features.n_atoms // featurizer.n_atoms
    n = len(features)
    small = {"clusters": featurizer.n_clusters,
             "sites": {label: len(atoms) for label, atoms in featurizer.site_orbits.items()}}

    def cut(table: dict[str, torch.Tensor], counts: dict[str, int], what: str) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in table.items():
            if k not in counts or v.shape[1] != m * counts[k]:
                raise ValueError(f"{what} {k}: {v.shape[1]} in the large cell, not {m} x {counts.get(k)} of the "
                                 "model's cell; compute the features with supercell_featurizer(model.featurizer, ...)")
            out[k] = v.reshape(n * m, counts[k], *v.shape[2:])
        return out

    return FeatureData(cut(features.clusters, small["clusters"], "orbit"), cut(features.sites, small["sites"], "site"),
                       features.energies.clone(), featurizer.n_atoms, list(features.ids),
                       torch.repeat_interleave(torch.arange(n), m))


def multicell_features(featurizer: CCDFeaturizer, structures: Sequence, energies: Sequence[float],
                       ids: Sequence[str] | None = None) -> FeatureData:
    """Features of configurations of any supercells of ``featurizer``'s reference, in input order.

    Configurations of the featurizer's own supercell get one row each, as
    :func:`pes_core.ann.compute_features`; those of another supercell with a
    whole multiple ``m`` of its primitive cells get ``m`` rows
    (:func:`split_rows`).  The result is grouped only if some configuration
    is not of the featurizer's own supercell.

    Parameters
    ----------
    featurizer : CCDFeaturizer
        The model's featurizer.
    structures : sequence of Structure or Atoms
        Distorted (possibly strained) supercells of the reference.
    energies : sequence of float
        Total energies, eV.
    ids : sequence of str, optional
        Identifiers; default ``"0", "1", ...``.
    """
    if not len(structures):
        raise ValueError("multicell_features needs at least one structure")
    ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(structures))]
    if len(structures) != len(energies) or len(ids) != len(structures):
        raise ValueError(f"{len(structures)} structures, {len(energies)} energies and {len(ids)} ids")
    n_cells = len(featurizer.supercell.translations)
    by_cell: dict[tuple, list[int]] = {}
    for k, st in enumerate(structures):
        p = supercell_matrix(featurizer, st)
        cells = round(abs(np.linalg.det(p)))
        if cells % n_cells:
            raise ValueError(f"structure {ids[k]!r} is a supercell of {cells} primitive cells ({len(st)} atoms), "
                             f"not a multiple of the model's {n_cells} ({featurizer.n_atoms} atoms); only "
                             "supercells with a whole multiple of the training cell's atoms can be used")
        by_cell.setdefault(tuple(p.reshape(-1)), []).append(k)
    parts = []
    for key, members in by_cell.items():
        feat = supercell_featurizer(featurizer, np.array(key).reshape(3, 3))
        data = PESData.from_structures(feat, [structures[k] for k in members], [energies[k] for k in members],
                                       ids=[ids[k] for k in members])
        f = compute_features(feat, data)
        parts.append(f if feat is featurizer else split_rows(featurizer, f))
    return concat_features(parts).select_ids(ids) if len(parts) > 1 or parts[0].grouped else parts[0]


def configuration_features(featurizer: CCDFeaturizer, configurations: Sequence) -> FeatureData:
    """:func:`multicell_features` of :class:`pes_core.db.Configuration` documents (ids = content hashes)."""
    return multicell_features(featurizer, [Structure.from_dict(c.structure) for c in configurations],
                              [c.energy for c in configurations], [c.content_hash for c in configurations])
