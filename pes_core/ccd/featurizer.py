"""Cluster-based and site-based CCD features of supercells, in torch.

Build once from the reference crystal, a supercell matrix, the orbits, the
metric and the polynomial order; then call on batches of positions
``(B, n_atoms, 3)`` and cells ``(B, 3, 3)`` (Å, lattice vectors as rows).
Everything is differentiable, so energies of models built on the features
give forces (``-dE/dpositions``) and, through the cell, stress.

* Cluster features: for each orbit ``alpha`` a tensor
  ``(B, n_clusters_alpha, n_basis_alpha)`` of invariant polynomials
  ``phi_m(Q)`` of every cluster (a model sums a per-orbit net over clusters).
* Site features: for each site orbit ``s`` a tensor ``(B, n_sites_s, n_feat_s)``
  with ``g^i_{alpha,m} = (1/n_alpha) sum_{c in alpha, i in c} phi_m(Q_c)``,
  concatenated over the orbits that contain sites of ``s``.

Atom order is that of :class:`pes_core.clusters.Supercell` (see
:meth:`CCDFeaturizer.reference_structure`; :meth:`CCDFeaturizer.batch`
reorders pymatgen/ASE structures into it).

Forces and stress: with ``E`` computed from the features of ``(positions,
cells)`` (both ``requires_grad``), the forces are ``-dE/dpositions`` and the
derivative with respect to a homogeneous strain ``eps`` (positions and cell
both mapped by ``I + eps``) is
``dE/deps = (dE/dpositions)^T positions + (dE/dcells)^T cells`` (per
configuration, ``(3, 3)``);
the ASE-convention stress is that divided by the volume.

Use float64 inputs (the invariance tests hold to 1e-10 in float64).  On a
busy machine one torch thread (``torch.set_num_threads(1)``) was several
times faster than two.

Example
-------
>>> import torch
>>> from pes_core.clusters import cubic_cspbbr3
>>> from pes_core.ccd import CCDFeaturizer, OrbitSpec
>>> feat = CCDFeaturizer(cubic_cspbbr3(), 2, [OrbitSpec("pair", cutoff=4.5),
...                      OrbitSpec("octahedron", center="Pb", ligand="Br")], max_order=4)
>>> pos, cell = feat.reference_batch(3)
>>> out = feat(pos + 0.05 * torch.randn_like(pos), cell)
>>> out.clusters["PbBr6_octahedron"].shape
torch.Size([3, 8, 65])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pymatgen.core import Structure

from ..clusters.cluster import pair_indices
from ..clusters.orbits import ClusterOrbit
from ..clusters.supercell import Supercell, map_orbit
from ..clusters.symmetry import SpaceGroup, get_space_group
from .invariants import InvariantBasis, invariant_basis
from .metrics import Metric, metric_function
from .specs import OrbitSpec, resolve_orbits
from .transform import CCDTransform, build_ccd

__all__ = ["CCDFeatures", "CCDFeaturizer"]


@dataclass
class CCDFeatures:
    """Output of :class:`CCDFeaturizer`.

    Attributes
    ----------
    clusters : dict
        Orbit name -> ``(B, n_clusters, n_basis)``.
    sites : dict
        Site-orbit label (e.g. ``"Pb(1a)"``) -> ``(B, n_sites, n_features)``.
    """

    clusters: dict[str, torch.Tensor]
    sites: dict[str, torch.Tensor]


class _OrbitFeaturizer(torch.nn.Module):
    """CCDs and invariant polynomials of one orbit, from its block of pair deformations."""

    def __init__(self, ccd: CCDTransform, basis: InvariantBasis, n_clusters: int, n_q: int) -> None:
        super().__init__()
        self.register_buffer("u_t", torch.as_tensor(ccd.U[:n_q].T.copy(), dtype=torch.float64))
        self.poly = basis.evaluator()
        self.n_clusters = n_clusters
        self.n_pairs = ccd.n_ccd
        self.n_q = n_q

    def ccds(self, f: torch.Tensor) -> torch.Tensor:
        """``(B, n_clusters * N)`` pair deformations -> ``(B, n_clusters, n_q)`` CCDs."""
        return f.reshape(f.shape[0], self.n_clusters, self.n_pairs) @ self.u_t.to(f.dtype)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.poly(self.ccds(f))


class CCDFeaturizer(torch.nn.Module):
    """CCD featurizer for a supercell of a reference crystal.

    Parameters
    ----------
    reference : Structure or SpaceGroup
        High-symmetry reference crystal (Å).
    supercell_matrix : int, sequence of 3 ints or (3, 3) int array
        Supercell of the reference; lattice rows ``P @ reference.lattice``.
    orbits : list of OrbitSpec or ClusterOrbit
        Cluster orbits to featurize.
    metric : str
        Deformation metric (``"linear"``, ``"quadratic"``, ``"log"``, ``"inverse"``).
    max_order : int
        Highest degree of the invariant polynomials (e.g. 2, 4, 6).
    truncate : bool
        Use ``Q*`` (first ``3n - 6`` CCDs) for clusters of more than 4 sites.
    sigma : float, optional
        Displacement width for the correlation matrix (Å); default
        ``sigma_fraction`` x nearest-neighbour distance.
    sigma_fraction : float
        See ``sigma``.
    scaling : str
        ``U`` scaling, see :func:`pes_core.ccd.build_ccd`.
    wrap : bool
        Bring each atom to the periodic image nearest its reference position
        (by a lattice vector, so gradients are unaffected).
    """

    def __init__(
        self,
        reference: Structure | SpaceGroup,
        supercell_matrix,
        orbits: list[OrbitSpec | ClusterOrbit],
        metric: str | Metric = "linear",
        max_order: int = 4,
        truncate: bool = True,
        sigma: float | None = None,
        sigma_fraction: float = 0.15,
        scaling: str = "sqrt",
        wrap: bool = True,
    ) -> None:
        super().__init__()
        if max_order < 1:
            raise ValueError(f"max_order must be at least 1, got {max_order}")
        sg = reference if isinstance(reference, SpaceGroup) else get_space_group(reference)
        self.space_group = sg
        self.supercell = Supercell.build(sg, supercell_matrix)
        self.orbits = resolve_orbits(sg, list(orbits))
        if not self.orbits:
            raise ValueError("give at least one orbit")
        self.metric = Metric(metric).value
        self.max_order = max_order
        self.wrap = wrap
        self.transforms: dict[str, CCDTransform] = {}
        self.bases: dict[str, InvariantBasis] = {}
        self.n_clusters: dict[str, int] = {}
        mods = {}
        n_atoms = self.supercell.n_atoms
        memberships = {}
        pair_i, pair_j, pair_shift, pair_ref, slices = [], [], [], [], {}
        offset = 0
        for orb in self.orbits:
            ccd = build_ccd(orb, self.metric, sigma=sigma, sigma_fraction=sigma_fraction, scaling=scaling)
            n_q = ccd.n_independent if truncate else ccd.n_ccd
            basis = invariant_basis(ccd.D[:, :n_q, :n_q], max_order)
            so = map_orbit(orb, self.supercell)
            self.transforms[orb.name] = ccd
            self.bases[orb.name] = basis
            self.n_clusters[orb.name] = so.n_clusters
            mods[orb.name] = _OrbitFeaturizer(ccd, basis, so.n_clusters, n_q)
            memberships[orb.name] = so.site_membership(n_atoms)
            pairs = np.array(pair_indices(orb.n_sites))
            pair_i.append(so.atoms[:, pairs[:, 0]].reshape(-1))
            pair_j.append(so.atoms[:, pairs[:, 1]].reshape(-1))
            pair_shift.append((so.shifts[:, pairs[:, 1]] - so.shifts[:, pairs[:, 0]]).reshape(-1, 3))
            pair_ref.append(np.tile(orb.reference_distances, so.n_clusters))
            slices[orb.name] = (offset, offset + so.n_clusters * len(pairs))
            offset = slices[orb.name][1]
        self.orbit_names = list(mods)
        self.orbit_modules = torch.nn.ModuleList(mods.values())
        self.register_buffer("frac_ref", torch.as_tensor(self.supercell.frac, dtype=torch.float64))
        self.register_buffer("pair_i", torch.as_tensor(np.concatenate(pair_i), dtype=torch.long))
        self.register_buffer("pair_j", torch.as_tensor(np.concatenate(pair_j), dtype=torch.long))
        shift = np.concatenate(pair_shift).astype(float)
        self._shifted = np.flatnonzero(np.any(shift != 0, axis=1))
        self.register_buffer("shift_index", torch.as_tensor(self._shifted, dtype=torch.long))
        self.register_buffer("shift_vec", torch.as_tensor(shift[self._shifted], dtype=torch.float64))
        self.register_buffer("pair_ref", torch.as_tensor(np.concatenate(pair_ref), dtype=torch.float64))
        self.slices = slices
        self._metric_fn = metric_function(self.metric)
        # site-based aggregation
        ref_index = self.supercell.ref_index
        self.site_orbits: dict[str, np.ndarray] = {}
        for label, ks in sg.site_orbits().items():
            self.site_orbits[label] = np.flatnonzero(np.isin(ref_index, ks))
        self.site_feature_orbits: dict[str, list[str]] = {}
        self._site_keys: list[tuple[str, str, str]] = []
        for s_idx, (label, atoms) in enumerate(self.site_orbits.items()):
            used = []
            for o_idx, orb in enumerate(self.orbits):
                m = memberships[orb.name][atoms]  # (n_s, C)
                count = m.sum(axis=1)
                if not np.any(count):
                    continue
                if np.any(count == 0) or not np.allclose(count, count[0]):
                    raise RuntimeError(f"inconsistent cluster counts for site orbit {label} in {orb.name}")
                key = f"agg_{s_idx}_{o_idx}"
                self.register_buffer(key, torch.as_tensor(m / count[:, None], dtype=torch.float64))
                self._site_keys.append((label, orb.name, key))
                used.append(orb.name)
            self.site_feature_orbits[label] = used

    # ------------------------------------------------------------------ helpers
    @property
    def n_atoms(self) -> int:
        """Atoms in the supercell."""
        return self.supercell.n_atoms

    @property
    def n_basis(self) -> dict[str, int]:
        """Basis functions per orbit."""
        return {k: b.n_basis for k, b in self.bases.items()}

    @property
    def basis_degrees(self) -> dict[str, np.ndarray]:
        """Polynomial degree of every basis function, per orbit."""
        return {k: b.degrees.copy() for k, b in self.bases.items()}

    @property
    def n_site_features(self) -> dict[str, int]:
        """Site features per site orbit."""
        return {
            label: sum(self.bases[o].n_basis for o in names)
            for label, names in self.site_feature_orbits.items()
            if names
        }

    def reference_structure(self) -> Structure:
        """The undistorted supercell (this featurizer's atom order)."""
        return self.supercell.structure()

    def reference_batch(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Undistorted positions ``(B, n_atoms, 3)`` and cells ``(B, 3, 3)`` (Å, float64)."""
        pos = torch.as_tensor(self.supercell.positions, dtype=torch.float64)
        cell = torch.as_tensor(self.supercell.cell, dtype=torch.float64)
        return pos.expand(batch, -1, -1).clone(), cell.expand(batch, -1, -1).clone()

    def batch(self, structures: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions ``(B, n_atoms, 3)`` and cells ``(B, 3, 3)`` (Å, float64) of structures.

        Atoms are reordered into this featurizer's order by matching each to
        the nearest reference site (see :meth:`pes_core.clusters.Supercell.match`).

        Parameters
        ----------
        structures : list of pymatgen Structure or ase Atoms
            Distorted (and possibly strained) copies of the reference supercell.
        """
        pos, cells = [], []
        for st in structures:
            if isinstance(st, Structure):
                frac = np.asarray(st.frac_coords)
                cell = np.asarray(st.lattice.matrix)
                species = [str(s.specie) for s in st]
            else:  # ase.Atoms
                frac = np.asarray(st.get_scaled_positions(wrap=False))
                cell = np.asarray(st.cell[:])
                species = list(st.get_chemical_symbols())
            order = self.supercell.match(frac, species)
            pos.append(frac[order] @ cell)
            cells.append(cell)
        return (
            torch.as_tensor(np.stack(pos), dtype=torch.float64),
            torch.as_tensor(np.stack(cells), dtype=torch.float64),
        )

    def _prepare(self, positions: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if positions.dim() == 2:
            positions = positions.unsqueeze(0)
        if cells.dim() == 2:
            cells = cells.unsqueeze(0).expand(positions.shape[0], -1, -1)
        if positions.shape[1:] != (self.n_atoms, 3) or cells.shape[1:] != (3, 3):
            raise ValueError(
                f"expected positions (B, {self.n_atoms}, 3) and cells (B, 3, 3), "
                f"got {tuple(positions.shape)} and {tuple(cells.shape)}"
            )
        if positions.shape[0] != cells.shape[0]:
            raise ValueError("positions and cells have different batch sizes")
        if self.wrap:
            with torch.no_grad():
                frac = torch.linalg.solve(cells.transpose(1, 2), positions.transpose(1, 2)).transpose(1, 2)
                n = torch.round(frac - self.frac_ref.to(frac.dtype))
            if bool(torch.any(n != 0)):
                positions = positions - n @ cells
        return positions, cells

    # ------------------------------------------------------------------ features
    def deformations(self, positions: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """Pair deformations ``f(d)`` of all clusters of all orbits, ``(B, n_pairs_total)``."""
        positions, cells = self._prepare(positions, cells)
        dv = positions[:, self.pair_j] - positions[:, self.pair_i]
        if len(self._shifted):
            corr = self.shift_vec.to(dv.dtype) @ cells  # (B, n_shifted, 3)
            dv = dv.index_add(1, self.shift_index, corr)
        d = torch.linalg.vector_norm(dv, dim=-1)
        return self._metric_fn(d, self.pair_ref.to(d.dtype))

    def _split(self, f: torch.Tensor):
        for name, mod in zip(self.orbit_names, self.orbit_modules):
            a, b = self.slices[name]
            yield name, mod, f[:, a:b]

    def ccds(self, positions: torch.Tensor, cells: torch.Tensor) -> dict[str, torch.Tensor]:
        """CCDs (``Q*`` or ``Q``) of every cluster: orbit name -> ``(B, n_clusters, n_q)``."""
        f = self.deformations(positions, cells)
        return {name: mod.ccds(fo) for name, mod, fo in self._split(f)}

    def cluster_features(self, positions: torch.Tensor, cells: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cluster-based features: orbit name -> ``(B, n_clusters, n_basis)``."""
        f = self.deformations(positions, cells)
        return {name: mod(fo) for name, mod, fo in self._split(f)}

    def site_features_from(self, clusters: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Site-based features from already computed cluster features."""
        parts: dict[str, list[torch.Tensor]] = {label: [] for label in self.site_orbits}
        for label, name, key in self._site_keys:
            agg = getattr(self, key)
            parts[label].append(torch.matmul(agg.to(clusters[name].dtype), clusters[name]))
        return {label: torch.cat(p, dim=-1) for label, p in parts.items() if p}

    def site_features(self, positions: torch.Tensor, cells: torch.Tensor) -> dict[str, torch.Tensor]:
        """Site-based features: site-orbit label -> ``(B, n_sites, n_features)``."""
        return self.site_features_from(self.cluster_features(positions, cells))

    def forward(self, positions: torch.Tensor, cells: torch.Tensor) -> CCDFeatures:
        """Cluster- and site-based features of a batch (see the module docstring)."""
        clusters = self.cluster_features(positions, cells)
        return CCDFeatures(clusters=clusters, sites=self.site_features_from(clusters))
