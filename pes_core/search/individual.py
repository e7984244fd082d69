"""One structure of the search with its fitness and provenance.

An :class:`Individual` serializes to a plain JSON-able dict (floats written
with full precision, so a round trip is exact and a resumed search makes the
same choices).
"""

from __future__ import annotations

import copy

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

__all__ = ["Individual", "atoms_from_dict", "atoms_to_dict", "canonical_atoms", "structure_hash"]


def canonical_atoms(atoms: Atoms) -> Atoms:
    """Copy of ``atoms`` sorted by atomic number, wrapped into the cell, periodic."""
    order = np.argsort(atoms.numbers, kind="stable")
    out = Atoms(numbers=atoms.numbers[order], cell=np.array(atoms.cell),
                scaled_positions=atoms.get_scaled_positions(wrap=True)[order], pbc=True)
    return out


def atoms_to_dict(atoms: Atoms) -> dict[str, Any]:
    """``{"numbers", "cell" (Å), "scaled_positions"}`` as nested lists."""
    return {
        "numbers": [int(z) for z in atoms.numbers],
        "cell": np.asarray(atoms.cell, dtype=float).tolist(),
        "scaled_positions": np.asarray(atoms.get_scaled_positions(wrap=False), dtype=float).tolist(),
    }


def atoms_from_dict(d: dict[str, Any]) -> Atoms:
    """Inverse of :func:`atoms_to_dict` (periodic in all directions)."""
    return Atoms(numbers=d["numbers"], cell=d["cell"], scaled_positions=d["scaled_positions"], pbc=True)


def structure_hash(atoms: Atoms) -> str:
    """Short content hash of a structure (numbers, cell and positions to 1e-6)."""
    h = hashlib.sha1()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.cell, dtype=float), 6).tobytes())
    h.update(np.round(atoms.get_scaled_positions(wrap=False), 6).tobytes())
    return h.hexdigest()[:16]


@dataclass
class Individual:
    """A structure with its fitness, origin and flags.

    Parameters
    ----------
    id : str
        Unique, deterministic name, ``"g003-012"`` = generation 3, offspring 12.
    structure : dict
        The structure as :func:`atoms_to_dict` (relaxed once ``relaxed`` is True).
    origin : str
        Operator that made it (``random``, ``heredity``, ``coordinate``,
        ``lattice``, ``permutation``, ``seed`` for user-supplied structures).
    parents : list of str
        Ids of the parents.
    generation : int
        Generation the individual was made in.
    energy : float or None
        Total energy in eV after relaxation.
    enthalpy_per_atom : float or None
        (E + pV)/N in eV/atom at the search pressure: the fitness (lower is better).
    volume : float or None
        Cell volume in Å^3 after relaxation.
    relaxed : bool
        Whether a relaxer has evaluated it.
    relax_info : dict
        n_steps, n_calls, converged and extra information from the relaxer.
    flags : dict
        ``duplicate_of`` (id or None), ``vacuum``, ``clash``, ``failed`` (bools).
    spacegroup : str or None
        Space group symbol (number) of the relaxed structure, symprec 0.1 Å.
    hash : str
        Content hash of the structure.
    """

    id: str
    structure: dict[str, Any]
    origin: str
    parents: list[str] = field(default_factory=list)
    generation: int = 0
    energy: float | None = None
    enthalpy_per_atom: float | None = None
    volume: float | None = None
    relaxed: bool = False
    relax_info: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=lambda: {
        "duplicate_of": None, "vacuum": False, "clash": False, "failed": False})
    spacegroup: str | None = None
    hash: str = ""

    def __post_init__(self) -> None:
        if not self.hash:
            self.hash = structure_hash(self.atoms)

    @classmethod
    def from_atoms(cls, id: str, atoms: Atoms, origin: str, parents: list[str] | None = None,
                   generation: int = 0) -> Individual:
        """New unrelaxed individual from ``atoms`` (sorted and wrapped first)."""
        return cls(id=id, structure=atoms_to_dict(canonical_atoms(atoms)), origin=origin,
                   parents=list(parents or []), generation=generation)

    @property
    def atoms(self) -> Atoms:
        """A fresh ``Atoms`` copy of the structure."""
        return atoms_from_dict(self.structure)

    @property
    def n_atoms(self) -> int:
        return len(self.structure["numbers"])

    @property
    def is_duplicate(self) -> bool:
        return self.flags.get("duplicate_of") is not None

    @property
    def usable(self) -> bool:
        """Relaxed, finite fitness, not failed or clashing (may breed unless duplicate)."""
        return (self.relaxed and self.enthalpy_per_atom is not None
                and np.isfinite(self.enthalpy_per_atom)
                and not self.flags.get("failed") and not self.flags.get("clash"))

    @property
    def can_breed(self) -> bool:
        return self.usable and not self.is_duplicate

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {
            "id": self.id, "structure": self.structure, "origin": self.origin,
            "parents": list(self.parents), "generation": int(self.generation),
            "energy": None if self.energy is None else float(self.energy),
            "enthalpy_per_atom": None if self.enthalpy_per_atom is None else float(self.enthalpy_per_atom),
            "volume": None if self.volume is None else float(self.volume),
            "relaxed": bool(self.relaxed), "relax_info": dict(self.relax_info),
            "flags": dict(self.flags), "spacegroup": self.spacegroup, "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Individual:
        """Inverse of :meth:`to_dict` (a deep copy: the individual never shares ``d``'s nested dicts).

        Sharing them let a later change of ``relax_info`` (the oracle check of
        a generation's best) leak into the cached partial results of the
        generation, which a rerun then restored half-updated.
        """
        return cls(**copy.deepcopy(d))

    def __repr__(self) -> str:
        h = "unrelaxed" if self.enthalpy_per_atom is None else f"{self.enthalpy_per_atom:.4f} eV/atom"
        return f"Individual({self.id}, {self.origin}, n={self.n_atoms}, {h})"
