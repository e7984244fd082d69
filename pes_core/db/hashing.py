"""Canonical content hashes of structures and calculations.

Two requests for the same calculation (same structure, oracle and oracle
settings) must map to one stored :class:`~pes_core.db.documents.Configuration`.
The structure part of the hash is invariant under the order of the sites and
under wrapping fractional coordinates into [0, 1); lattice and coordinates are
rounded (1e-6 Å, 1e-7 fractional) so that floating-point noise from a
serialization round trip does not make a new record.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from pymatgen.core import Structure

__all__ = ["calculation_hash", "canonical_json", "structure_hash"]

_LATTICE_DECIMALS = 6
_FRAC_DECIMALS = 7


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace (numpy values converted)."""

    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"cannot hash object of type {type(o).__name__}")

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=default)


def structure_hash(structure: Structure) -> str:
    """SHA-256 of the canonical form of a structure (site order and periodic images ignored)."""
    lattice = np.round(structure.lattice.matrix, _LATTICE_DECIMALS) + 0.0
    frac = np.round(structure.frac_coords, _FRAC_DECIMALS) % 1.0
    frac = np.round(frac, _FRAC_DECIMALS) % 1.0 + 0.0  # 0.99999999 -> 0.0
    species = [site.species_string for site in structure]
    rows = sorted(zip(species, map(tuple, frac.tolist())))
    payload = {
        "lattice": lattice.tolist(),
        "pbc": [bool(p) for p in structure.lattice.pbc],
        "sites": [[s, [f"{x:.7f}" for x in c]] for s, c in rows],
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def calculation_hash(structure: Structure, oracle: str, settings: dict | None = None) -> str:
    """SHA-256 identifying a calculation: structure + oracle name + oracle settings."""
    payload = {
        "structure": structure_hash(structure),
        "oracle": oracle,
        "settings": settings or {},
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
