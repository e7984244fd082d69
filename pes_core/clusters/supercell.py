"""Map cluster orbits of the reference crystal into a supercell.

Supercell atom ``t * n_ref + k`` is reference atom ``k`` translated by the
``t``-th lattice point of the supercell (:attr:`Supercell.translations`).
A cluster site is stored as a supercell atom plus an integer image shift in
the supercell lattice basis, so its Cartesian position is
``positions[atom] + shift @ cell``.  No minimum-image convention is needed:
clusters larger than half the supercell are handled exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Lattice, Structure

from .orbits import ClusterOrbit
from .symmetry import SpaceGroup

__all__ = ["Supercell", "SupercellOrbit", "map_orbit"]


def _lattice_points(p: np.ndarray) -> np.ndarray:
    """Integer lattice points (reference basis) inside the supercell spanned by rows of ``p``."""
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) @ p
    lo, hi = corners.min(0), corners.max(0)
    grid = np.stack(
        np.meshgrid(*[np.arange(lo[i], hi[i] + 1) for i in range(3)], indexing="ij"), -1
    ).reshape(-1, 3)
    f = grid @ np.linalg.inv(p)
    keep = np.all((f > -1e-9) & (f < 1 - 1e-9), axis=1)
    pts = grid[keep]
    det = int(round(abs(np.linalg.det(p))))
    if len(pts) != det:
        raise RuntimeError(f"found {len(pts)} lattice points in a supercell of volume {det}")
    order = np.lexsort(pts.T[::-1])
    return pts[order].astype(int)


@dataclass(frozen=True, eq=False)
class Supercell:
    """A supercell of a reference crystal.

    Attributes
    ----------
    space_group : SpaceGroup
        Symmetry of the reference (primitive) crystal.
    matrix : numpy.ndarray
        ``(3, 3)`` integer supercell matrix ``P``; supercell lattice rows are ``P @ lattice``.
    translations : numpy.ndarray
        ``(det P, 3)`` lattice points (reference basis) inside the supercell.
    """

    space_group: SpaceGroup = field(repr=False)
    matrix: np.ndarray
    translations: np.ndarray = field(repr=False)

    @classmethod
    def build(cls, space_group: SpaceGroup, matrix) -> Supercell:
        """Make a supercell from a supercell matrix (int ``(3,3)``, a length-3 diagonal, or an int)."""
        p = np.asarray(matrix)
        if p.ndim == 0:
            p = np.eye(3, dtype=int) * int(p)
        elif p.shape == (3,):
            p = np.diag(p)
        if p.shape != (3, 3) or not np.allclose(p, np.rint(p)) or abs(np.linalg.det(p)) < 0.5:
            raise ValueError(f"supercell matrix must be a non-singular integer 3x3 matrix, got {matrix!r}")
        p = np.rint(p).astype(int)
        return cls(space_group, p, _lattice_points(p))

    @property
    def n_ref(self) -> int:
        """Atoms in the reference cell."""
        return len(self.space_group.frac)

    @property
    def n_atoms(self) -> int:
        """Atoms in the supercell."""
        return self.n_ref * len(self.translations)

    @property
    def cell(self) -> np.ndarray:
        """Reference supercell lattice vectors as rows (Å)."""
        return self.matrix @ self.space_group.lattice

    @property
    def frac(self) -> np.ndarray:
        """Reference fractional coordinates of supercell atoms, ``(n_atoms, 3)``."""
        ref = self.space_group.frac
        x = (self.translations[:, None, :] + ref[None, :, :]).reshape(-1, 3)
        return x @ np.linalg.inv(self.matrix)

    @property
    def positions(self) -> np.ndarray:
        """Reference Cartesian positions of supercell atoms (Å)."""
        return self.frac @ self.cell

    @property
    def ref_index(self) -> np.ndarray:
        """Reference-cell atom of every supercell atom."""
        return np.tile(np.arange(self.n_ref), len(self.translations))

    def structure(self) -> Structure:
        """The undistorted supercell as a pymatgen Structure (this atom order)."""
        species = [self.space_group.structure[int(k)].specie for k in self.ref_index]
        return Structure(Lattice(self.cell), species, self.frac)

    def match(self, frac: np.ndarray, species: list[str] | None = None, tol: float = 0.3) -> np.ndarray:
        """Order of given atoms that puts them in this supercell's atom order.

        Parameters
        ----------
        frac : numpy.ndarray
            ``(n_atoms, 3)`` fractional coordinates of a (distorted) supercell
            whose lattice is this one's, possibly strained.
        species : list of str, optional
            Element of every given atom, checked against the reference.
        tol : float
            Largest accepted distance from the reference site, as a fraction
            of the shortest supercell lattice vector (dimensionless).

        Returns
        -------
        numpy.ndarray
            ``order`` such that ``frac[order]`` lists the atoms in supercell order.

        Raises
        ------
        ValueError
            If the atoms cannot be matched one-to-one to reference sites.

        Notes
        -----
        Every site takes its nearest atom; where two sites would share one
        (displacements of about half a bond or more) the one-to-one
        assignment of least total distance is taken instead.
        """
        frac = np.asarray(frac, dtype=float)
        if frac.shape != (self.n_atoms, 3):
            raise ValueError(f"expected {self.n_atoms} atoms, got an array of shape {frac.shape}")
        diff = frac[None, :, :] - self.frac[:, None, :]
        diff -= np.rint(diff)
        dist = np.linalg.norm(diff @ self.cell, axis=-1)  # (ref, given), Å in the reference cell
        order = np.argmin(dist, axis=1)
        ref = (None if species is None else
               np.array([str(self.space_group.structure[int(k)].specie) for k in self.ref_index]))
        if len(set(order.tolist())) != self.n_atoms:
            # Two sites share a nearest atom (large displacements, as in a Monte Carlo chain that left the
            # training region): take the one-to-one assignment of least total distance (Hungarian method,
            # scipy), atoms of the wrong species forbidden when ``species`` is given.
            from scipy.optimize import linear_sum_assignment

            cost = dist.copy()
            if ref is not None:
                cost[ref[:, None] != np.array([str(x) for x in species])[None, :]] = 1e6
            rows, order = linear_sum_assignment(cost)
            if cost[rows, order].max() >= 1e6:
                raise ValueError("atoms do not map one-to-one onto reference sites of their species "
                                 "(wrong composition or supercell?)")
        worst = dist[np.arange(self.n_atoms), order].max()
        if worst > tol * np.linalg.norm(self.cell, axis=1).min():
            raise ValueError(
                f"an atom is {worst:.2f} Å from its reference site; is this the right supercell?"
            )
        if ref is not None:
            got = [str(species[i]) for i in order]
            if ref.tolist() != got:
                raise ValueError("species of the matched atoms differ from the reference supercell")
        return order

    def locate(self, sites: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Supercell atom and image shift of reference sites ``(k, n)``.

        Parameters
        ----------
        sites : numpy.ndarray
            ``(..., 4)`` integer ``(k, n1, n2, n3)``.

        Returns
        -------
        atoms : numpy.ndarray
            ``(...)`` supercell atom indices.
        shifts : numpy.ndarray
            ``(..., 3)`` integer shifts in the supercell lattice basis.
        """
        s = np.asarray(sites, dtype=int)
        n = s[..., 1:].reshape(-1, 3)
        pinv = np.linalg.inv(self.matrix)
        f = n @ pinv
        shift = np.floor(f + 1e-9).astype(int)
        t = np.rint((f - shift) @ self.matrix).astype(int)
        lookup = {tuple(v): i for i, v in enumerate(self.translations.tolist())}
        tidx = np.array([lookup[tuple(v)] for v in t.tolist()], dtype=int)
        atoms = tidx * self.n_ref + s[..., 0].reshape(-1)
        return atoms.reshape(s.shape[:-1]), shift.reshape(s.shape[:-1] + (3,))

    def atom_permutation(self, op: int) -> tuple[np.ndarray, np.ndarray]:
        """How space-group operation ``op`` permutes the supercell atoms.

        Returns
        -------
        perm : numpy.ndarray
            ``perm[i] = j``: atom ``i`` is carried onto atom ``j``.
        shifts : numpy.ndarray
            Integer image shift (supercell basis) of each image.

        Raises
        ------
        ValueError
            If the operation does not map the supercell lattice onto itself.
        """
        r = self.space_group.rotations[op]
        m = self.matrix @ r.T @ np.linalg.inv(self.matrix)
        if not np.allclose(m, np.rint(m), atol=1e-8):
            raise ValueError(f"operation {op} is not compatible with supercell matrix {self.matrix.tolist()}")
        sites = np.column_stack([self.ref_index, np.repeat(self.translations, self.n_ref, axis=0)])
        img = self.space_group.apply(op, sites)
        return self.locate(img)


@dataclass(frozen=True, eq=False)
class SupercellOrbit:
    """All clusters of one orbit inside a supercell.

    Attributes
    ----------
    orbit : ClusterOrbit
        The orbit in the reference crystal.
    atoms : numpy.ndarray
        ``(n_clusters, n_sites)`` supercell atom of every cluster site.
    shifts : numpy.ndarray
        ``(n_clusters, n_sites, 3)`` integer image shifts (supercell basis).
    """

    orbit: ClusterOrbit = field(repr=False)
    atoms: np.ndarray
    shifts: np.ndarray

    @property
    def n_clusters(self) -> int:
        """Clusters in the supercell."""
        return len(self.atoms)

    def site_membership(self, n_atoms: int) -> np.ndarray:
        """``(n_atoms, n_clusters)``: how many sites of cluster ``c`` are images of atom ``i``.

        Usually 0 or 1; in a supercell smaller than the cluster an atom can
        occupy several sites of one cluster (through periodic images), and it
        is counted once per site, so that row sums equal the orbit's
        clusters-per-site number ``n_alpha`` of the infinite crystal.
        """
        m = np.zeros((n_atoms, self.n_clusters))
        cols = np.repeat(np.arange(self.n_clusters), self.atoms.shape[1])
        np.add.at(m, (self.atoms.reshape(-1), cols), 1.0)
        return m


def map_orbit(orbit: ClusterOrbit, supercell: Supercell) -> SupercellOrbit:
    """Every cluster of ``orbit`` in ``supercell`` (members x supercell translations).

    Site order within each cluster follows the orbit's consistent order.
    """
    if orbit.space_group is not supercell.space_group and not np.allclose(
        orbit.space_group.lattice, supercell.space_group.lattice
    ):
        raise ValueError("orbit and supercell were built from different reference structures")
    sites = []
    for t in supercell.translations:
        for mem in orbit.members:
            a = mem.array.copy()
            a[:, 1:] += t
            sites.append(a)
    sites = np.stack(sites)
    atoms, shifts = supercell.locate(sites)
    return SupercellOrbit(orbit=orbit, atoms=atoms, shifts=shifts)
