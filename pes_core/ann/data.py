"""Training data in the featurizer's atom order, and precomputed CCD features.

:class:`PESData` holds positions, cells, energies and (optionally) forces of
configurations of one supercell, already reordered into a featurizer's atom
order.  :func:`compute_features` evaluates the cluster and site features once
(no gradients), which is what energy-only training needs.

Units: Å, eV (total energy of the supercell), eV/Å.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pymatgen.core import Structure

from pes_core.ccd import CCDFeaturizer

__all__ = ["FeatureData", "PESData", "compute_features", "structure_order"]


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

    Attributes
    ----------
    clusters : dict
        Orbit name -> ``(N, n_clusters, n_basis)``.
    sites : dict
        Site label -> ``(N, n_sites, n_features)``.
    energies : torch.Tensor
        ``(N,)`` total energies, eV.
    n_atoms : int
        Atoms per configuration.
    ids : list of str
    """

    clusters: dict[str, torch.Tensor]
    sites: dict[str, torch.Tensor]
    energies: torch.Tensor
    n_atoms: int
    ids: list[str]

    def __len__(self) -> int:
        return int(self.energies.shape[0])

    def subset(self, index: Sequence[int] | np.ndarray) -> FeatureData:
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return FeatureData({k: v[idx] for k, v in self.clusters.items()},
                           {k: v[idx] for k, v in self.sites.items()}, self.energies[idx], self.n_atoms,
                           [self.ids[int(i)] for i in idx])

    def select_ids(self, ids: Sequence[str]) -> FeatureData:
        where = {k: i for i, k in enumerate(self.ids)}
        missing = [k for k in ids if k not in where]
        if missing:
            raise KeyError(f"{len(missing)} ids not in the feature set, e.g. {missing[0]!r}")
        return self.subset([where[k] for k in ids])


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
