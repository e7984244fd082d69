"""Reports on search results (the checks are in :mod:`pes_core.search.geometry`, re-exported):
ranked candidate tables, CIF files and the history plot.

>>> from ase.build import bulk
>>> from pes_core.search.report import largest_gap, spacegroup_label
>>> round(largest_gap(bulk("Si", "diamond", a=5.43, cubic=True)), 2)  # between (111) double layers
2.35
>>> spacegroup_label(bulk("Si", "diamond", a=5.43))
'Fd-3m (227)'
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pes_core.search.fingerprints import FingerprintComparator, mark_duplicates
from pes_core.search.geometry import (
    has_clash,
    has_vacuum,
    largest_gap,
    spacegroup_label,
)
from pes_core.search.individual import Individual

if TYPE_CHECKING:
    from pes_core.search.engine import SearchState

__all__ = [
    "candidate_table",
    "format_table",
    "format_verified_table",
    "has_clash",
    "has_vacuum",
    "largest_gap",
    "merge_verified",
    "plot_history",
    "spacegroup_label",
    "write_cifs",
]

log = logging.getLogger(__name__)


def candidate_table(individuals: Iterable[Individual] | SearchState, within: float = 0.05,
                    symprec: float = 0.1) -> list[dict[str, Any]]:
    """Distinct usable candidates within ``within`` eV/atom of the best, ranked.

    Parameters
    ----------
    individuals : iterable of Individual or SearchState
        Candidates (their duplicate flags are trusted); for a state, the union
        of its archive and current population, niched again.
    within : float
        Window above the lowest enthalpy, in eV/atom.
    symprec : float
        Symmetry tolerance in Å for the space group.

    Returns
    -------
    list of dict
        rank, id, formula, n_atoms, enthalpy_per_atom (eV/atom), delta_mev
        (meV/atom above the best), volume_per_atom (Å^3), spacegroup, origin,
        generation, flags (comma-separated), individual (the object).
    """
    if hasattr(individuals, "archive"):
        # archive and population were niched separately: niche their union again
        state = individuals
        seen: dict[str, Individual] = {}
        for ind in list(state.archive) + list(state.population.members):
            if ind.id not in seen:
                seen[ind.id] = Individual.from_dict(copy.deepcopy(ind.to_dict()))
                seen[ind.id].flags["duplicate_of"] = None
        individuals = list(seen.values())
        mark_duplicates(individuals, FingerprintComparator.from_settings(state.settings))
    cands = sorted((i for i in individuals if i.usable and not i.is_duplicate),
                   key=lambda i: (i.enthalpy_per_atom, i.id))
    if not cands:
        return []
    h0 = cands[0].enthalpy_per_atom
    rows = []
    for ind in cands:
        dh = ind.enthalpy_per_atom - h0
        if dh > within + 1e-12:
            break
        atoms = ind.atoms
        flags = [k for k in ("vacuum", "clash") if ind.flags.get(k)]
        if not ind.relax_info.get("converged", True):
            flags.append("unconverged")
        rows.append({
            "rank": len(rows) + 1, "id": ind.id, "formula": atoms.get_chemical_formula(),
            "n_atoms": len(atoms), "enthalpy_per_atom": ind.enthalpy_per_atom,
            "delta_mev": 1000.0 * dh, "volume_per_atom": atoms.get_volume() / len(atoms),
            "spacegroup": spacegroup_label(atoms, symprec), "origin": ind.origin,
            "generation": ind.generation, "flags": ",".join(flags), "individual": ind,
        })
    return rows


#: StructureMatcher tolerances of :func:`merge_verified` (pymatgen's defaults: fractional length, site and Å)
MATCH_TOLERANCES = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0}


def merge_verified(entries: Iterable[dict[str, Any]], symprec: float = 0.1, angle_tolerance: float = 5.0,
                   match: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Final table after oracle verification: candidates merged by the structure they relaxed to, re-ranked.

    Verified candidates whose oracle-relaxed structures match (pymatgen's
    ``StructureMatcher`` with :data:`MATCH_TOLERANCES`, supercells allowed)
    are one row: the lowest of them represents the group, the others are
    listed as its ``members``.  Each row carries the space group of the
    oracle-relaxed structure (spglib through pymatgen's ``SpacegroupAnalyzer``
    at ``symprec`` Å and ``angle_tolerance`` degrees) and is ranked by the
    verified (oracle) enthalpy.

    Parameters
    ----------
    entries : iterable of dict
        Verification entries (``id``, ``search_enthalpy_per_atom``,
        ``oracle_enthalpy_per_atom`` in eV/atom, ``structure`` as pymatgen
        ``Structure.as_dict()``, ``failed``); failed ones and those without a
        structure are left out.
    symprec : float
        Symmetry tolerance in Å.
    angle_tolerance : float
        Angle tolerance of the symmetry search in degrees.
    match : dict, optional
        ``StructureMatcher`` tolerances (default :data:`MATCH_TOLERANCES`).

    Returns
    -------
    list of dict
        rank, id (the lowest member), members (ids, lowest first), formula,
        n_atoms, oracle_enthalpy_per_atom and search_enthalpy_per_atom
        (eV/atom, of the lowest member), delta_mev (meV/atom above the lowest
        row), volume_per_atom (Å^3), spacegroup (``"symbol (number)"``),
        spacegroup_number, symprec, structure (dict).

    Examples
    --------
    >>> from ase.build import bulk
    >>> from pymatgen.io.ase import AseAtomsAdaptor
    >>> d = AseAtomsAdaptor.get_structure(bulk("Si", "diamond", a=5.43, cubic=True)).as_dict()
    >>> b = AseAtomsAdaptor.get_structure(bulk("Si", "diamond", a=5.43)).as_dict()
    >>> rows = merge_verified([
    ...     {"id": "a", "oracle_enthalpy_per_atom": -4.33, "search_enthalpy_per_atom": -4.30, "structure": d},
    ...     {"id": "b", "oracle_enthalpy_per_atom": -4.3366, "search_enthalpy_per_atom": -4.31, "structure": b}])
    >>> [(r["id"], r["members"], r["spacegroup"]) for r in rows]
    [('b', ['b', 'a'], 'Fd-3m (227)')]
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    ok = [e for e in entries if not e.get("failed") and e.get("structure")
          and e.get("oracle_enthalpy_per_atom") is not None]
    ok.sort(key=lambda e: (float(e["oracle_enthalpy_per_atom"]), str(e["id"])))
    matcher = StructureMatcher(**(match or MATCH_TOLERANCES), primitive_cell=True, scale=True,
                               attempt_supercell=True)
    groups: list[tuple[Structure, list[dict]]] = []
    for e in ok:
        s = Structure.from_dict(e["structure"])
        for rep, members in groups:
            if rep.composition.reduced_composition == s.composition.reduced_composition and matcher.fit(rep, s):
                members.append(e)
                break
        else:
            groups.append((s, [e]))
    rows: list[dict[str, Any]] = []
    h0 = float(ok[0]["oracle_enthalpy_per_atom"]) if ok else 0.0
    for s, members in groups:
        best = members[0]
        try:
            sga = SpacegroupAnalyzer(s, symprec=symprec, angle_tolerance=angle_tolerance)
            label, number = f"{sga.get_space_group_symbol()} ({sga.get_space_group_number()})", \
                sga.get_space_group_number()
        except Exception as err:  # spglib fails on some degenerate cells
            log.debug("space group analysis failed: %s", err)
            label, number = "P1? (1)", 1
        h = float(best["oracle_enthalpy_per_atom"])
        rows.append({"rank": len(rows) + 1, "id": best["id"], "members": [m["id"] for m in members],
                     "formula": s.composition.formula.replace(" ", ""), "n_atoms": len(s),
                     "oracle_enthalpy_per_atom": h,
                     "search_enthalpy_per_atom": best.get("search_enthalpy_per_atom"),
                     "delta_mev": 1000.0 * (h - h0), "volume_per_atom": s.volume / len(s),
                     "spacegroup": label, "spacegroup_number": number, "symprec": symprec,
                     "structure": best["structure"]})
    return rows


def format_verified_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`merge_verified` rows (enthalpies in eV/atom, differences in meV/atom)."""
    symprec = rows[0]["symprec"] if rows else 0.1
    head = (f"{'rank':>4} {'id':<10} {'formula':<10} {'H oracle':>10} {'dH (meV)':>9} {'H search':>10} "
            f"{'V/atom':>7} {'space group (symprec ' + format(symprec, 'g') + ' A)':<28} merged")
    lines = [head, "-" * len(head)]
    for r in rows:
        hs = r["search_enthalpy_per_atom"]
        others = [m for m in r["members"] if m != r["id"]]
        lines.append(f"{r['rank']:>4} {r['id']:<10} {r['formula']:<10} {r['oracle_enthalpy_per_atom']:>10.4f} "
                     f"{r['delta_mev']:>9.1f} {'-' if hs is None else format(hs, '.4f'):>10} "
                     f"{r['volume_per_atom']:>7.2f} {r['spacegroup']:<28} "
                     f"{len(r['members'])}{(' (' + ', '.join(others) + ')') if others else ''}")
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`candidate_table` rows."""
    head = f"{'rank':>4} {'id':<10} {'formula':<10} {'H (eV/atom)':>12} {'dH (meV)':>9} " \
           f"{'V/atom':>7} {'space group':<16} {'origin':<11} {'flags'}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['rank']:>4} {r['id']:<10} {r['formula']:<10} {r['enthalpy_per_atom']:>12.4f} "
            f"{r['delta_mev']:>9.1f} {r['volume_per_atom']:>7.2f} {r['spacegroup']:<16} "
            f"{r['origin']:<11} {r['flags']}"
        )
    return "\n".join(lines)


def write_cifs(rows: list[dict[str, Any]], directory: str, symprec: float | None = 0.1) -> list[str]:
    """Write one CIF per table row (``rank_id.cif``); return the paths.

    With ``symprec`` the CIF carries the symmetrized setting (pymatgen's
    CifWriter), otherwise P1.
    """
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.cif import CifWriter

    os.makedirs(directory, exist_ok=True)
    paths = []
    for r in rows:
        ind = r["individual"]
        path = os.path.join(directory, f"{r['rank']:03d}_{ind.id}.cif")
        structure = AseAtomsAdaptor.get_structure(ind.atoms)
        try:
            CifWriter(structure, symprec=symprec).write_file(path)
        except Exception:  # symmetry finding failed: fall back to P1
            CifWriter(structure).write_file(path)
        paths.append(path)
    return paths


def plot_history(state: SearchState, path: str) -> str:
    """PNG of the best and population enthalpies per generation; return ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    gens, best = [], []
    for h in state.history:
        g = h["generation"]
        hs = h.get("enthalpies", [])
        if hs:
            ax.scatter([g] * len(hs), hs, s=8, color="0.6", zorder=1,
                       label="population" if g == state.history[0]["generation"] else None)
        if h.get("best_enthalpy") is not None:
            gens.append(g)
            best.append(h["best_enthalpy"])
    ax.plot(gens, best, "o-", color="C3", zorder=2, label="best")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel(f"enthalpy at {state.settings.pressure_gpa:g} GPa (eV/atom)")
    if best:
        lo = min(best)
        ax.set_ylim(lo - 0.05, lo + max(0.5, 2 * (max(best) - lo)))
    ax.legend(loc="upper right")
    comp = "".join(f"{el}{n if n > 1 else ''}" for el, n in state.settings.composition.items())
    lo_n, hi_n = state.settings.n_atoms
    ax.set_title(f"{comp}, {lo_n if lo_n == hi_n else f'{lo_n}-{hi_n}'} atoms/cell, "
                 f"best {best[-1]:.4f} eV/atom" if best else comp)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
