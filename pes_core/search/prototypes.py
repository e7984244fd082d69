"""Known crystal prototypes (polymorphs) of a few compositions, built without downloads.

Each builder makes the conventional or primitive cell of a polymorph from its
crystallographic description with ASE or pymatgen; lattice constants are
experimental or typical values in Å.  The table serves as the reference
polymorphs of the CSP benchmark (``benchmarks/csp_prototypes.py`` relaxes
them with each oracle) and as named seeds of a search
(:mod:`pes_core.search.seeds`: ``seeds: [diamond]``, ``seeds: ["NaCl:rock salt"]``).

Examples
--------
>>> from pes_core.search.geometry import spacegroup_label
>>> [spacegroup_label(PROTOTYPES["Si"][p]()) for p in ("diamond", "beta-Sn", "lonsdaleite", "bc8")]
['Fd-3m (227)', 'I4_1/amd (141)', 'P6_3/mmc (194)', 'Ia-3 (206)']
>>> prototype_names()[:3]
['Si:diamond', 'Si:beta-Sn', 'Si:lonsdaleite']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.build import bulk

__all__ = ["EXPECTED_SPACEGROUP", "PROTOTYPES", "prototype_names"]


def _from_spacegroup(group: str, lattice, species: list[str], coords: list[list[float]]) -> Atoms:
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    latt = Lattice.from_parameters(*lattice)
    return AseAtomsAdaptor.get_atoms(Structure.from_spacegroup(group, latt, species, coords))


def _beta_sn(el: str, a: float, c: float) -> Atoms:
    """A5 (beta-Sn, I4_1/amd): body-centred tetragonal, 4 atoms in the conventional cell."""
    return Atoms(el * 4, scaled_positions=[(0, 0, 0), (0, 0.5, 0.25), (0.5, 0.5, 0.5), (0.5, 0, 0.75)],
                 cell=[a, a, c], pbc=True)


def _graphite(a: float = 2.46, c: float = 6.71) -> Atoms:
    """AB (Bernal) graphite, P6_3/mmc."""
    cell = [[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]]
    return Atoms("C4", scaled_positions=[(0, 0, 0.25), (0, 0, 0.75), (1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75)],
                 cell=cell, pbc=True)


def _bc8(el: str, a: float, x: float) -> Atoms:
    """BC8 (Ia-3, 16c at x, x, x), 16 atoms in the conventional cell."""
    return _from_spacegroup("Ia-3", (a, a, a, 90, 90, 90), [el], [[x, x, x]])


def _beta_cristobalite(a: float = 7.16) -> Atoms:
    """Ideal beta-cristobalite (Fd-3m): Si on the diamond sites, O midway between bonded Si."""
    si = bulk("Si", "diamond", a=a, cubic=True)
    pos = si.get_positions()
    o = []
    for i in range(len(si)):
        for j in range(len(si)):
            d = si.get_distance(i, j, mic=True, vector=True)
            if 0 < np.linalg.norm(d) < 0.45 * a:  # a Si-Si bond (a sqrt(3) / 4)
                mid = pos[i] + d / 2
                if not any(np.allclose(np.mod(mid - m + a / 2, a) - a / 2, 0, atol=1e-6) for m in o):
                    o.append(mid)
    return Atoms(["Si"] * len(si) + ["O"] * len(o), positions=np.vstack([pos, o]), cell=si.cell, pbc=True)


def _corundum(a: float = 4.76, c: float = 12.99) -> Atoms:
    """alpha-Al2O3 (R-3c, hexagonal axes): Al 12c (0, 0, 0.352), O 18e (0.306, 0, 1/4)."""
    return _from_spacegroup("R-3c", (a, a, c, 90, 90, 120), ["Al", "O"], [[0, 0, 0.35216], [0.30624, 0, 0.25]])


def _quartz(a: float = 4.913, c: float = 5.405) -> Atoms:
    """alpha-quartz (P3_221, 9 atoms): Si 3a (0.4697, 0, 2/3), O 6c (0.4135, 0.2669, 0.7858); Si-O 1.60 Å."""
    return _from_spacegroup("P3_221", (a, a, c, 90, 90, 120), ["Si", "O"],
                            [[0.4697, 0.0, 2 / 3], [0.4135, 0.2669, 0.1191 + 2 / 3]])


def _alpha_cristobalite(a: float = 4.9717, c: float = 6.9223) -> Atoms:
    """alpha-cristobalite (P4_12_12, 12 atoms): Si 4a (0.3003, 0.3003, 0), O 8b (0.2392, 0.1044, 0.1787); Si-O 1.60 Å."""
    return _from_spacegroup("P4_12_12", (a, a, c, 90, 90, 90), ["Si", "O"],
                            [[0.3003, 0.3003, 0.0], [0.2392, 0.1044, 0.1787]])


def _stishovite(a: float = 4.18, c: float = 2.67, x: float = 0.3062) -> Atoms:
    """Stishovite (rutile type, P4_2/mnm): Si (0, 0, 0), O (x, x, 0)."""
    return Atoms("Si2O4", scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (x, x, 0), (-x, -x, 0),
                                           (0.5 + x, 0.5 - x, 0.5), (0.5 - x, 0.5 + x, 0.5)],
                 cell=[a, a, c], pbc=True)


def _perovskite(a: str, b: str, lat: float) -> Atoms:
    """Cubic perovskite ABO3 (Pm-3m)."""
    return Atoms(f"{a}{b}O3", scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5),
                                                (0, 0.5, 0.5)], cell=[lat] * 3, pbc=True)


def _tetragonal_perovskite(a: float = 5.52, c: float = 7.81, x: float = 0.241) -> Atoms:
    """SrTiO3 with a0a0c- octahedral rotation (I4/mcm, 20 atoms): Sr 4b, Ti 4c, O 4a and 8h (x, x + 1/2, 0)."""
    return _from_spacegroup("I4/mcm", (a, a, c, 90, 90, 90), ["Sr", "Ti", "O", "O"],
                            [[0, 0.5, 0.25], [0, 0, 0], [0, 0, 0.25], [x, x + 0.5, 0]])


#: composition (reduced formula) -> prototype name -> builder
PROTOTYPES: dict[str, dict[str, Callable[[], Atoms]]] = {
    "Si": {"diamond": lambda: bulk("Si", "diamond", a=5.431, cubic=True),
           "beta-Sn": lambda: _beta_sn("Si", 4.92, 2.71),
           "lonsdaleite": lambda: bulk("SiSi", "wurtzite", a=3.84, c=6.27),
           "bc8": lambda: _bc8("Si", 6.636, 0.1003)},
    "C": {"diamond": lambda: bulk("C", "diamond", a=3.567, cubic=True),
          "graphite": _graphite,
          "lonsdaleite": lambda: bulk("CC", "wurtzite", a=2.52, c=4.12)},
    "NaCl": {"rock salt": lambda: bulk("NaCl", "rocksalt", a=5.64, cubic=True),
             "CsCl": lambda: bulk("NaCl", "cesiumchloride", a=3.40),
             "zinc blende": lambda: bulk("NaCl", "zincblende", a=6.00, cubic=True),
             "wurtzite": lambda: bulk("NaCl", "wurtzite", a=4.25, c=6.90)},
    "GaAs": {"zinc blende": lambda: bulk("GaAs", "zincblende", a=5.653, cubic=True),
             "wurtzite": lambda: bulk("GaAs", "wurtzite", a=3.99, c=6.56),
             "rock salt": lambda: bulk("GaAs", "rocksalt", a=5.30, cubic=True)},
    "Al2O3": {"corundum": _corundum},
    "SiO2": {"alpha-quartz": _quartz, "alpha-cristobalite": _alpha_cristobalite,
             "beta-cristobalite": _beta_cristobalite, "stishovite": _stishovite},
    "SrTiO3": {"cubic perovskite": lambda: _perovskite("Sr", "Ti", 3.905),
               "tetragonal perovskite (a0a0c-)": _tetragonal_perovskite},
}

#: space-group number of each prototype as built (before relaxation)
EXPECTED_SPACEGROUP = {"diamond": 227, "beta-Sn": 141, "lonsdaleite": 194, "bc8": 206, "graphite": 194,
                       "rock salt": 225, "CsCl": 221, "zinc blende": 216, "wurtzite": 186, "corundum": 167,
                       "alpha-quartz": 154, "alpha-cristobalite": 92, "beta-cristobalite": 227, "stishovite": 136,
                       "cubic perovskite": 221,
                       "tetragonal perovskite (a0a0c-)": 140}


def prototype_names() -> list[str]:
    """Every prototype as ``"<formula>:<name>"`` (e.g. ``"NaCl:rock salt"``), in table order."""
    return [f"{formula}:{name}" for formula, protos in PROTOTYPES.items() for name in protos]
