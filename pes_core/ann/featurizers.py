"""Featurizers named by hyperparameters (cluster set, basis order), cached per process.

A *cluster set* is a short name for a list of orbits of the cubic reference:

* ``"4pairs+oct"`` -- the 4 shortest pair orbits and the BX6 octahedron,
* ``"7pairs+triplet+oct"`` -- 7 pairs, the shortest triplet and the octahedron,
* in general ``"<n>pairs[+triplet][+oct]"``.

Example
-------
>>> from pes_core.clusters import cubic_cspbbr3
>>> feat = get_featurizer(cubic_cspbbr3(), "4pairs+oct", order=2)  # doctest: +SKIP
>>> sorted(feat.n_basis)[:1]  # doctest: +SKIP
['PbBr6_octahedron']
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field

import numpy as np
from pymatgen.core import Structure

from pes_core.ccd import CCDFeaturizer, OrbitSpec

__all__ = ["FeaturizerSettings", "cluster_set_specs", "get_featurizer", "perovskite_featurizer"]

_SET_RE = re.compile(r"^(\d+)pairs?((?:\+(?:triplet|oct))*)$")


def cluster_set_specs(name: str, *, pair_cutoff: float = 8.0, triplet_cutoff: float = 6.0,
                      center: str = "Pb", ligand: str = "Br") -> list[OrbitSpec]:
    """Orbit specs of a cluster set such as ``"7pairs+triplet+oct"``.

    Parameters
    ----------
    name : str
        ``"<n>pairs"`` optionally followed by ``"+triplet"`` and/or ``"+oct"``.
    pair_cutoff, triplet_cutoff : float
        Largest pair distance (Å) considered when ranking pair/triplet orbits.
    center, ligand : str
        Elements of the octahedron (B site and X site).
    """
    m = _SET_RE.match(name.replace(" ", ""))
    if m is None:
        raise ValueError(f"cluster set {name!r} not understood; use e.g. '4pairs+oct' or '7pairs+triplet+oct'")
    n_pairs = int(m.group(1))
    extras = [x for x in m.group(2).split("+") if x]
    specs = [OrbitSpec("pair", cutoff=pair_cutoff, index=i) for i in range(n_pairs)]
    if "triplet" in extras:
        specs.append(OrbitSpec("triplet", cutoff=triplet_cutoff))
    if "oct" in extras:
        specs.append(OrbitSpec("octahedron", center=center, ligand=ligand))
    if not specs:
        raise ValueError(f"cluster set {name!r} selects no orbit")
    return specs


@dataclass(frozen=True)
class FeaturizerSettings:
    """Everything needed to rebuild a :class:`~pes_core.ccd.CCDFeaturizer`.

    Attributes
    ----------
    reference : dict
        ``Structure.as_dict()`` of the reference (primitive cubic) cell, Å.
    supercell : list of int
        Diagonal of the supercell matrix.
    clusters : str
        Cluster-set name (see :func:`cluster_set_specs`).
    order : int
        Highest degree of the invariant polynomials.
    metric : str
        Deformation metric.
    """

    reference: dict
    supercell: tuple[int, int, int] = (2, 2, 2)
    clusters: str = "7pairs+triplet+oct"
    order: int = 4
    metric: str = "linear"
    options: dict = field(default_factory=dict)

    def key(self) -> str:
        """A string identifying these settings (for caches)."""
        d = asdict(self)
        s = Structure.from_dict(self.reference)
        d["reference"] = [np.round(s.lattice.matrix, 6).tolist(), [str(x.specie) for x in s],
                          np.round(s.frac_coords, 6).tolist()]
        return json.dumps(d, sort_keys=True, default=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["supercell"] = list(self.supercell)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FeaturizerSettings:
        d = dict(d)
        d["supercell"] = tuple(d.get("supercell", (2, 2, 2)))
        return cls(**d)

    def build(self) -> CCDFeaturizer:
        """Build the featurizer (a few seconds; prefer :func:`get_featurizer`)."""
        specs = cluster_set_specs(self.clusters, **self.options)
        return CCDFeaturizer(Structure.from_dict(self.reference), list(self.supercell), specs,
                             metric=self.metric, max_order=self.order)


_CACHE: dict[str, CCDFeaturizer] = {}
_LOCK = threading.Lock()


def get_featurizer(reference: Structure | FeaturizerSettings, clusters: str = "7pairs+triplet+oct",
                   order: int = 4, supercell=(2, 2, 2), metric: str = "linear",
                   options: dict | None = None) -> CCDFeaturizer:
    """A (cached) featurizer for ``reference`` and the hyperparameters.

    Parameters
    ----------
    reference : Structure or FeaturizerSettings
        The relaxed cubic reference cell (Å), or complete settings.
    clusters : str
        Cluster-set name, see :func:`cluster_set_specs`.
    order : int
        Highest polynomial degree (2 or 4 in the CsPbBr3 study).
    supercell : sequence of 3 int
        Supercell of the reference.
    metric : str
        Deformation metric.
    options : dict, optional
        Keyword arguments of :func:`cluster_set_specs` (e.g. the octahedron's ``center`` and ``ligand``).
    """
    if isinstance(reference, FeaturizerSettings):
        settings = reference
    else:
        settings = FeaturizerSettings(reference=reference.as_dict(), supercell=tuple(int(x) for x in supercell),
                                      clusters=clusters, order=int(order), metric=metric,
                                      options=dict(options or {}))
    key = settings.key()
    with _LOCK:
        feat = _CACHE.get(key)
        if feat is None:
            feat = settings.build()
            feat.settings = settings  # type: ignore[attr-defined]
            _CACHE[key] = feat
    return feat


def perovskite_featurizer(reference, clusters: str = "7pairs+triplet+oct", order: int = 4) -> CCDFeaturizer:
    """The (cached) featurizer of a perovskite: its 5-atom cubic cell, supercell and BX6 octahedron.

    Parameters
    ----------
    reference : pes_core.clusters.PerovskiteReference
        Species, (relaxed) lattice parameter (Å) and supercell.
    clusters : str
        Cluster-set name, see :func:`cluster_set_specs`; ``+oct`` is the octahedron of
        ``reference.B`` and ``reference.X``.
    order : int
        Highest polynomial degree.

    Notes
    -----
    For the default octahedron (Pb, Br) the settings carry no options, so the
    settings key (and the feature caches named by it) are those of
    ``get_featurizer(cubic_cspbbr3(a), ...)``.
    """
    options = {} if (reference.B, reference.X) == ("Pb", "Br") else {"center": reference.B, "ligand": reference.X}
    return get_featurizer(reference.primitive(), clusters, order=order, supercell=reference.supercell,
                          options=options)
