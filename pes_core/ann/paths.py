"""The four energy paths used to judge a perovskite PES model (e.g. CsPbBr3) against the oracle.

1. ``interpolation``: linear interpolation cubic -> tetragonal (P4/mbm,
   ``a0a0c+``) -> orthorhombic (Pnma, ``a+b-b-``), positions and cells.
2. ``in_phase_tilt``: amplitude of the in-phase tilt ``a0a0c+`` (degrees).
3. ``anti_phase_tilt``: amplitude of the anti-phase tilt ``a0a0c-`` (degrees).
4. ``volumetric_strain``: isotropic strain of the cubic supercell (%).

All structures are supercells (2x2x2: 40 atoms) in the atom order of
:func:`pes_core.sampling.glazer_tilted`, so interpolations are between
matching atoms.

Example
-------
>>> paths = energy_paths(5.87, n_points=5)
>>> sorted(paths)
['anti_phase_tilt', 'in_phase_tilt', 'interpolation', 'volumetric_strain']
>>> x, structures = paths["in_phase_tilt"]
>>> len(structures), len(structures[0])
(5, 40)
>>> x, structures = energy_paths(3.905, n_points=3, species=("Sr", "Ti", "O"))["anti_phase_tilt"]
>>> structures[0].composition.reduced_formula
'SrTiO3'
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Structure

from pes_core.sampling.pes_training import interpolate_structures
from pes_core.sampling.tilts import glazer_tilted

__all__ = ["PATH_LABELS", "energy_paths", "interpolate_structures"]

PATH_LABELS = {
    "interpolation": "cubic -> tetragonal -> orthorhombic (path coordinate)",
    "in_phase_tilt": "in-phase tilt a0a0c+ (deg)",
    "anti_phase_tilt": "anti-phase tilt a0a0c- (deg)",
    "volumetric_strain": "isotropic strain of the cubic cell (%, linear)",
}


def energy_paths(a: float, *, n_points: int = 13, tetragonal: Structure | None = None,
                 orthorhombic: Structure | None = None, max_tilt_deg: float = 12.0,
                 max_strain: float = 0.04, species: tuple[str, str, str] = ("Cs", "Pb", "Br"),
                 supercell: tuple[int, int, int] = (2, 2, 2)) -> dict[str, tuple[np.ndarray, list[Structure]]]:
    """The four paths: name -> (x values, structures).

    Parameters
    ----------
    a : float
        Pseudo-cubic lattice parameter of the (relaxed) cubic reference, Å.
    n_points : int
        Points per path (per segment for the interpolation).
    tetragonal, orthorhombic : Structure, optional
        End points of the interpolation (e.g. the oracle-relaxed ``a0a0c+``
        and ``a+b-b-`` supercells, atom order of ``glazer_tilted``); default:
        ideal tilts of 8 degrees.
    max_tilt_deg : float
        Largest tilt angle of the tilt paths (degrees).
    max_strain : float
        Largest absolute volumetric (linear) strain.
    species : (A, B, X)
        Elements of the perovskite (:class:`pes_core.clusters.PerovskiteReference.species`).
    supercell : (int, int, int)
        Supercell of the paths (even numbers).
    """
    def tilted(symbol, angles):
        return glazer_tilted(symbol, angles, a=a, species=tuple(species), supercell=tuple(supercell))

    cubic = tilted("a0a0a0", 0.0)
    tet = tetragonal if tetragonal is not None else tilted("a0a0c+", 8.0)
    ort = orthorhombic if orthorhombic is not None else tilted("a+b-b-", 8.0)
    seg1 = interpolate_structures(cubic, tet, n_points, include_end=False)
    seg2 = interpolate_structures(tet, ort, n_points, include_end=True)
    x_int = np.concatenate([np.linspace(0, 1, n_points + 1)[:-1], 1 + np.linspace(0, 1, n_points)])
    angles = np.linspace(0.0, max_tilt_deg, n_points)
    strains = np.linspace(-max_strain, max_strain, n_points)
    vol = []
    for e in strains:
        s = cubic.copy()
        s.apply_strain(float(e))
        vol.append(s)
    return {
        "interpolation": (x_int, seg1 + seg2),
        "in_phase_tilt": (angles, [tilted("a0a0c+", (0.0, 0.0, float(t))) for t in angles]),
        "anti_phase_tilt": (angles, [tilted("a0a0c-", (0.0, 0.0, float(t))) for t in angles]),
        "volumetric_strain": (100.0 * strains, vol),
    }
