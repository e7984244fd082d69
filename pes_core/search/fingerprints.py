"""Oganov-Valle fingerprints and duplicate detection (niching).

The fingerprint and its cosine distance are those of ase-ga's
:class:`OFPComparator` (Oganov & Valle, J. Chem. Phys. 130, 104504 (2009)).
Fingerprints are per-atom normalized radial distribution functions, so they
do not change under rotations, translations, permutations of like atoms or a
change of cell setting (primitive vs conventional, supercells); structures
with different atom counts but the same composition ratio can be compared.

Defaults (measured on Si and NaCl): bin width 0.02 Å, smearing 0.08 Å, cutoff
8 Å. ase-ga bins each distance before smearing, so a crystal whose distances
sit on bin edges changes its fingerprint slightly under a translation: 1e-3
with 0.05 Å bins, 3e-4 with 0.02 Å. Diamond vs lonsdaleite Si is 0.029 apart,
diamond vs a copy rattled by 0.01 Å 0.001.

Two individuals are duplicates when their enthalpies per atom differ by less
than ``energy_tol`` *and* their cosine distance is below ``cos_max``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ase import Atoms

from pes_core.search.individual import Individual

try:  # ase-ga moved out of ase (ase >= 3.25 keeps only a placeholder)
    from ase_ga.ofp_comparator import OFPComparator
except ImportError:  # pragma: no cover - older ase still ships ase.ga
    try:
        from ase.ga.ofp_comparator import OFPComparator
    except ImportError as err:
        raise ImportError(
            "pes_core.search needs ase-ga's OFPComparator: `pip install ase-ga`"
        ) from err

__all__ = ["FingerprintComparator", "OFPComparator", "mark_duplicates"]

_CACHE: OrderedDict[tuple, tuple[dict, dict]] = OrderedDict()
_CACHE_SIZE = 5000


class FingerprintComparator:
    """Oganov-Valle fingerprints with a cache, cosine distances, duplicate test.

    Parameters
    ----------
    rcut : float
        Fingerprint cutoff radius in Å.
    binwidth : float
        Bin width in Å.
    sigma : float
        Gaussian smearing in Å.
    cos_max : float
        Cosine distance below which structures may be duplicates.
    energy_tol : float
        Enthalpy difference in eV/atom below which structures may be duplicates.

    Examples
    --------
    >>> from ase.build import bulk
    >>> comp = FingerprintComparator()
    >>> d = comp.distance(bulk("Si", "diamond", a=5.43), bulk("Si", "diamond", a=5.43, cubic=True))
    >>> d < 1e-6
    True
    """

    def __init__(self, rcut: float = 8.0, binwidth: float = 0.02, sigma: float = 0.08,
                 cos_max: float = 0.01, energy_tol: float = 0.015):
        self.ofp = OFPComparator(rcut=rcut, binwidth=binwidth, sigma=sigma, pbc=True,
                                 recalculate=True)
        self.cos_max = float(cos_max)
        self.energy_tol = float(energy_tol)
        self._params = (float(rcut), float(binwidth), float(sigma))

    @classmethod
    def from_settings(cls, settings: Any) -> FingerprintComparator:
        """Build from a :class:`~pes_core.search.settings.SearchSettings`."""
        return cls(rcut=settings.fp_rcut, binwidth=settings.fp_binwidth, sigma=settings.fp_sigma,
                   cos_max=settings.fp_cos_max, energy_tol=settings.energy_tol)

    def fingerprint(self, item: Atoms | Individual) -> tuple[dict, dict]:
        """(fingerprints by element pair, atom indices by element) of a structure.

        Individuals are cached (per process, least recently used dropped
        first) by fingerprint parameters, id and structure hash; ``Atoms`` are
        not cached.
        """
        if isinstance(item, Individual):
            key = (*self._params, item.id, item.hash)
            fp = _CACHE.get(key)
            if fp is None:
                fp = self._compute(item.atoms)
                _CACHE[key] = fp
                if len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)
            else:
                _CACHE.move_to_end(key)
            return fp
        return self._compute(item)

    def _compute(self, atoms: Atoms) -> tuple[dict, dict]:
        atoms = atoms.copy()
        atoms.pbc = True
        return self.ofp._take_fingerprints(atoms)

    def distance(self, a: Atoms | Individual, b: Atoms | Individual) -> float:
        """Oganov-Valle cosine distance in [0, 1] (0 = same structure).

        Structures with different element sets are at distance 1.
        """
        fa, ta = self.fingerprint(a)
        fb, tb = self.fingerprint(b)
        if sorted(fa) != sorted(fb):
            return 1.0
        na = {k: len(v) for k, v in ta.items()}
        nb = {k: len(v) for k, v in tb.items()}
        tot_a, tot_b = sum(na.values()), sum(nb.values())
        if any(abs(na[k] / tot_a - nb[k] / tot_b) > 1e-9 for k in na):
            return 1.0  # different composition ratio
        return float(max(0.0, self.ofp._cosine_distance(fa, fb, ta)))

    def is_duplicate(self, a: Individual, b: Individual) -> bool:
        """Close in enthalpy per atom (when both are known) and in fingerprint."""
        ha, hb = a.enthalpy_per_atom, b.enthalpy_per_atom
        if ha is not None and hb is not None and abs(ha - hb) >= self.energy_tol:
            return False
        return self.distance(a, b) < self.cos_max


def mark_duplicates(individuals: list[Individual], comparator: FingerprintComparator,
                    reference: list[Individual] | None = None) -> int:
    """Set ``flags["duplicate_of"]`` on duplicates, best enthalpy first; return their count.

    The lowest-enthalpy member of each group of duplicates stays distinct.
    ``reference`` individuals (already known distinct, e.g. survivors) are
    compared against but never flagged.  Individuals that are not usable
    (failed, clashing) are skipped.
    """
    distinct: list[Individual] = [r for r in (reference or []) if r.usable and not r.is_duplicate]
    ref_ids = {r.id for r in distinct}
    pool = sorted((i for i in individuals if i.usable and i.id not in ref_ids),
                  key=lambda i: (i.enthalpy_per_atom, i.id))
    n_dup = 0
    for ind in pool:
        ind.flags["duplicate_of"] = None
        for other in sorted(distinct, key=lambda o: abs(o.enthalpy_per_atom - ind.enthalpy_per_atom)):
            if abs(other.enthalpy_per_atom - ind.enthalpy_per_atom) >= comparator.energy_tol:
                break
            if comparator.distance(ind, other) < comparator.cos_max:
                ind.flags["duplicate_of"] = other.id
                n_dup += 1
                break
        if ind.flags["duplicate_of"] is None:
            distinct.append(ind)
    return n_dup
