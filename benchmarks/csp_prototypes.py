"""Known polymorphs of the CSP benchmark compositions and their relaxation with an oracle.

Used by ``benchmarks/csp.py --build-references`` to write
``benchmarks/csp_references.json``: each prototype is built with ASE or
pymatgen from its crystallographic description (no downloads), relaxed with
the oracle (positions and cell, ASE ``FrechetCellFilter``, tight ``fmax``),
and the lowest per composition and oracle is the reference ground state of
the benchmark.  Lattice constants are experimental or typical values (Å); the
relaxation takes each to the oracle's own minimum.

Examples
--------
>>> from pes_core.search.report import spacegroup_label
>>> [spacegroup_label(PROTOTYPES["Si"][p]()) for p in ("diamond", "beta-Sn", "lonsdaleite", "bc8")]
['Fd-3m (227)', 'I4_1/amd (141)', 'P6_3/mmc (194)', 'Ia-3 (206)']
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.build import bulk

__all__ = ["DEFAULT_ORACLES", "EXPECTED_SPACEGROUP", "PROTOTYPES", "relax_polymorph"]


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

#: oracles that describe each composition (SW and Tersoff: Si and C only; BKS: Si and O; CHGNet: the periodic table)
DEFAULT_ORACLES = {"Si": ["sw", "tersoff"], "C": ["tersoff", "chgnet"], "NaCl": ["chgnet"], "GaAs": ["chgnet"],
                   "Al2O3": ["chgnet"], "SiO2": ["bks", "chgnet"], "SrTiO3": ["chgnet"]}

#: space-group number of each prototype as built (before relaxation)
EXPECTED_SPACEGROUP = {"diamond": 227, "beta-Sn": 141, "lonsdaleite": 194, "bc8": 206, "graphite": 194,
                       "rock salt": 225, "CsCl": 221, "zinc blende": 216, "wurtzite": 186, "corundum": 167,
                       "alpha-quartz": 154, "alpha-cristobalite": 92, "beta-cristobalite": 227, "stishovite": 136, "cubic perovskite": 221,
                       "tetragonal perovskite (a0a0c-)": 140}


def relax_polymorph(atoms: Atoms, oracle, fmax: float = 0.001, steps: int = 3000, rattle: float = 0.02,
                    seed: int = 0) -> dict:
    """Relax ``atoms`` (positions and cell, zero pressure) on ``oracle``; its figures.

    The positions are first rattled (Gaussian, ``rattle`` Å, ``seed``): an
    ideal high-symmetry prototype has zero forces by symmetry even where it
    is a saddle (ideal beta-cristobalite, straight Si-O-Si), and the rattle
    lets the relaxation leave it.  Then BFGS on ASE's ``FrechetCellFilter``
    (``UnitCellFilter`` on older ASE) until the largest force and stress
    component (eV/Å, with the filter's scaling) is below ``fmax``, at most
    ``steps`` steps.

    Returns
    -------
    dict
        energy_per_atom (eV/atom), volume_per_atom (Å^3), n_atoms, spacegroup
        (``"symbol (number)"`` at symprec 0.1 Å), spacegroup_number,
        spacegroup_tight (at 0.01 Å), converged, steps, fmax (eV/Å), wall_s,
        rattle (Å), structure (pymatgen dict).
    """
    from ase.optimize import BFGS
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.oracles.calculator import OracleCalculator
    from pes_core.search.report import spacegroup_label

    try:
        from ase.filters import FrechetCellFilter as CellFilter
    except ImportError:  # older ASE
        from ase.constraints import UnitCellFilter as CellFilter
    a = atoms.copy()
    if rattle > 0:
        a.rattle(stdev=rattle, seed=seed)
    a.calc = OracleCalculator(oracle)
    t0 = time.perf_counter()
    opt = BFGS(CellFilter(a), logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    e = float(a.get_potential_energy())
    n = len(a)
    label = spacegroup_label(a, 0.1)
    out = {"energy_per_atom": e / n, "volume_per_atom": a.get_volume() / n, "n_atoms": n,
           "spacegroup": label, "spacegroup_number": int(label.rsplit("(", 1)[1].rstrip(")")),
           "spacegroup_tight": spacegroup_label(a, 0.01), "converged": converged,
           "steps": int(opt.nsteps), "fmax": fmax, "rattle": rattle, "wall_s": time.perf_counter() - t0}
    a.calc = None
    out["structure"] = AseAtomsAdaptor.get_structure(a).as_dict()
    return out
