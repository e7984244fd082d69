"""Known polymorphs of the CSP benchmark compositions and their relaxation with an oracle.

The builders live in :mod:`pes_core.search.prototypes` (they are also the
named seeds of a search); this module re-exports them.  Used by
``benchmarks/csp.py --build-references`` to write
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

from ase import Atoms

from pes_core.search.prototypes import EXPECTED_SPACEGROUP, PROTOTYPES

__all__ = ["DEFAULT_ORACLES", "EXPECTED_SPACEGROUP", "PROTOTYPES", "relax_polymorph"]


#: oracles that describe each composition (SW and Tersoff: Si and C only; BKS: Si and O; CHGNet: the periodic table)
DEFAULT_ORACLES = {"Si": ["sw", "tersoff"], "C": ["tersoff", "chgnet"], "NaCl": ["chgnet"], "GaAs": ["chgnet"],
                   "Al2O3": ["chgnet"], "SiO2": ["bks", "chgnet"], "SrTiO3": ["chgnet"]}


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
