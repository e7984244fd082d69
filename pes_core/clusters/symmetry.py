"""Space-group operations of a reference crystal (spglib) and how they move sites.

A space-group operation ``(R, t)`` acts on fractional coordinates as
``x' = R x + t``.  Applied to a site ``(k, n)`` (atom ``k`` of the reference
cell shifted by the integer lattice vector ``n``) it gives another site
``(k', n')``; :meth:`SpaceGroup.apply` computes that map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib
from pymatgen.core import Structure

__all__ = ["SpaceGroup", "get_space_group"]


@dataclass(frozen=True, eq=False)
class SpaceGroup:
    """Symmetry of a reference crystal.

    Attributes
    ----------
    structure : Structure
        The reference crystal (lengths in Å).
    rotations : numpy.ndarray
        ``(n_ops, 3, 3)`` integer rotations in the fractional (lattice) basis.
    translations : numpy.ndarray
        ``(n_ops, 3)`` fractional translations.
    cart_rotations : numpy.ndarray
        ``(n_ops, 3, 3)`` orthogonal matrices acting on Cartesian column vectors.
    international : str
        Hermann-Mauguin symbol, e.g. ``"Pm-3m"``.
    number : int
        Space-group number.
    wyckoffs : tuple of str
        Wyckoff letter of every site, with multiplicity prefix (e.g. ``"1a"``).
    equivalent_atoms : numpy.ndarray
        For every site, the index of the first site of its orbit.
    symprec : float
        Tolerance (Å) used by spglib and for matching positions.
    """

    structure: Structure
    rotations: np.ndarray
    translations: np.ndarray
    cart_rotations: np.ndarray
    international: str
    number: int
    wyckoffs: tuple[str, ...]
    equivalent_atoms: np.ndarray
    symprec: float

    @property
    def n_ops(self) -> int:
        """Number of operations (modulo lattice translations)."""
        return len(self.rotations)

    @property
    def frac(self) -> np.ndarray:
        """Fractional coordinates of the reference sites, ``(n_sites, 3)``."""
        return np.asarray(self.structure.frac_coords, dtype=float)

    @property
    def lattice(self) -> np.ndarray:
        """Lattice vectors as rows, ``(3, 3)`` in Å."""
        return np.asarray(self.structure.lattice.matrix, dtype=float)

    def site_orbits(self) -> dict[str, list[int]]:
        """Group reference sites into Wyckoff orbits.

        Returns
        -------
        dict
            Label such as ``"Br(3d)"`` mapped to the site indices of the orbit,
            in order of first appearance.
        """
        out: dict[str, list[int]] = {}
        for i, rep in enumerate(self.equivalent_atoms):
            label = f"{self.structure[int(rep)].specie}({self.wyckoffs[int(rep)]})"
            out.setdefault(label, []).append(i)
        return out

    def site_orbit_label(self, k: int) -> str:
        """Label (e.g. ``"Pb(1a)"``) of the Wyckoff orbit of reference site ``k``."""
        rep = int(self.equivalent_atoms[k])
        return f"{self.structure[rep].specie}({self.wyckoffs[rep]})"

    def apply(self, op: int, sites: np.ndarray) -> np.ndarray:
        """Apply operation ``op`` to sites.

        Parameters
        ----------
        op : int
            Operation index.
        sites : numpy.ndarray
            ``(m, 4)`` integer array of ``(k, n1, n2, n3)``.

        Returns
        -------
        numpy.ndarray
            ``(m, 4)`` image sites.
        """
        sites = np.asarray(sites, dtype=int).reshape(-1, 4)
        x = self.frac[sites[:, 0]] + sites[:, 1:]
        y = x @ self.rotations[op].T + self.translations[op]
        return self.locate(y)

    def locate(self, frac: np.ndarray) -> np.ndarray:
        """Find the sites ``(k, n)`` at fractional positions ``frac`` ``(m, 3)``.

        Raises
        ------
        ValueError
            If a position is not a reference site (within ``symprec``).
        """
        frac = np.atleast_2d(frac)
        diff = frac[:, None, :] - self.frac[None, :, :]
        n = np.rint(diff)
        resid = (diff - n) @ self.lattice
        dist = np.linalg.norm(resid, axis=-1)
        k = np.argmin(dist, axis=1)
        if np.any(dist[np.arange(len(k)), k] > self.symprec):
            raise ValueError(
                "a symmetry image is not a site of the reference structure; "
                "check the structure or increase symprec"
            )
        return np.column_stack([k, n[np.arange(len(k)), k].astype(int)])


def get_space_group(structure: Structure, symprec: float = 1e-3) -> SpaceGroup:
    """Compute the space group of a reference crystal with spglib.

    Parameters
    ----------
    structure : Structure
        Reference (high-symmetry) crystal, lengths in Å.
    symprec : float
        Symmetry tolerance in Å.

    Returns
    -------
    SpaceGroup
    """
    lattice = np.asarray(structure.lattice.matrix, dtype=float)
    cell = (lattice, np.asarray(structure.frac_coords), [s.specie.Z for s in structure])
    ds = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if ds is None:
        raise ValueError(f"spglib found no symmetry for {structure.formula}; check the structure")
    rot = np.asarray(ds.rotations, dtype=int)
    tr = np.asarray(ds.translations, dtype=float)
    lt = lattice.T
    cart = np.einsum("ij,njk,kl->nil", lt, rot, np.linalg.inv(lt))
    # multiplicities refer to the conventional (standardized) cell
    ratio = len(ds.std_types) / len(structure)
    mult = np.rint(
        np.bincount(np.asarray(ds.equivalent_atoms), minlength=len(structure)) * ratio
    ).astype(int)
    wyck = tuple(
        f"{mult[int(ds.equivalent_atoms[i])]}{ds.wyckoffs[i]}" for i in range(len(structure))
    )
    return SpaceGroup(
        structure=structure,
        rotations=rot,
        translations=tr,
        cart_rotations=cart,
        international=str(ds.international),
        number=int(ds.number),
        wyckoffs=wyck,
        equivalent_atoms=np.asarray(ds.equivalent_atoms, dtype=int),
        symprec=symprec,
    )
