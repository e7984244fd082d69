"""Seeds: known structures that join the first generation of a search.

A seed is given in the ``seeds`` list of :class:`~pes_core.search.SearchSettings`
as one of

* a prototype name of :mod:`pes_core.search.prototypes`, ``"diamond"`` or
  ``"NaCl:rock salt"`` (``"<formula>:<name>"`` where several compositions have
  a prototype of that name);
* a structure file (a string that names no prototype; write ``./diamond`` for
  a file whose name is a prototype's; POSIX path, relative to the spec's folder; CIF, POSCAR,
  extxyz, pymatgen JSON; read by the checked reader
  :func:`pes_core.structures.load_structures`, every frame of a multi-frame
  file is one seed);
* a mapping ``{file: ..., species: {Na: Mg, Cl: O}}`` or ``{prototype: ...,
  species: ...}`` with an explicit species mapping (seed element -> search
  element; elements not named keep their identity);
* ``{structure: {numbers, cell, scaled_positions}, label: ...}``: a structure
  written into the spec (the workflow builder turns files into these, so the
  workers never read the submitter's files).

Each seed is adapted to the search (:func:`adapt_seed`):

1. **species**: the explicit mapping, else the identity when the seed has the
   search's elements in its ratios, else the mapping that matches the
   stoichiometric ratios (pymatgen ``anonymized_formula``: SiO2 -> GeO2 maps
   Si to Ge); elements of the same count in the formula unit that are not
   shared by both (NaCl -> MgO: Na and Cl both 1) make the mapping ambiguous,
   which is an error asking for ``species``;
2. **cell size**: the smallest supercell of the seed's cell whose atom count
   is one of the search's allowed counts (multiples of the formula unit in
   ``n_atoms``); when none is, the same from the primitive cell; when still
   none, an error.  Among the supercells of that size the most compact (the
   largest smallest perpendicular width) is taken;
3. **volume**: isotropic scaling to ``volume_per_atom`` when the search sets
   it; otherwise the seed keeps its own volume per atom times the ratio of
   the covalent-sphere volumes of the mapped and the original species (site
   by site, ASE covalent radii), so a seed of the search's own elements keeps
   its volume and a NaCl seed for MgO shrinks by the ratio of the ions' sizes.

The adapted seed is checked for overlapping atoms (half the sum of covalent
radii) and enters generation 0 in place of a random structure, with origin
``seed`` and ``flags["seed"]`` = its label; it is relaxed like every other
structure.

Examples
--------
>>> from pes_core.search.settings import SearchSettings
>>> s = SearchSettings(composition={"Mg": 1, "O": 1}, n_atoms=(8, 8), volume_per_atom=9.3,
...                    seeds=[{"prototype": "NaCl:rock salt", "species": {"Na": "Mg", "Cl": "O"}}])
>>> [(label, a.get_chemical_formula(), round(float(a.get_volume()) / len(a), 2)) for label, a in resolve_seeds(s)]
[('prototype:NaCl:rock salt', 'Mg4O4', 9.3)]
"""

from __future__ import annotations

import itertools
from functools import reduce
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from pes_core.search.individual import atoms_from_dict, atoms_to_dict
from pes_core.search.prototypes import PROTOTYPES, prototype_names

if TYPE_CHECKING:
    from pes_core.search.settings import SearchSettings

__all__ = [
    "SeedError",
    "adapt_seed",
    "check_seed_entries",
    "embed_seeds",
    "find_prototype",
    "load_seed",
    "map_species",
    "resolve_seeds",
    "seed_label",
    "seed_supercell",
]

#: keys a seed mapping may have
SEED_KEYS = ("file", "prototype", "structure", "species", "label")

#: an adapted seed is refused when two atoms are closer than this share of their covalent-radius sum
OVERLAP_FACTOR = 0.5


class SeedError(ValueError):
    """A seed cannot be used by the search; the message names the seed and the fix."""


# -- the entries ----------------------------------------------------------------------
def _is_prototype_name(name: str) -> bool:
    """Whether ``name`` names a prototype (``"diamond"`` or ``"Si:diamond"``, case-insensitive)."""
    low = name.strip().lower()
    return any(low in (full.lower(), full.split(":", 1)[1].lower()) for full in prototype_names())


def _normalized(entry: Any, k: int) -> dict[str, Any]:
    """``entry`` as a mapping with one of ``file``/``prototype``/``structure`` (form checks only)."""
    where = f"seeds[{k}]"
    if isinstance(entry, str):
        if not entry.strip():
            raise SeedError(f"{where} is empty; give a prototype name (e.g. diamond) or a structure file")
        return {"prototype": entry} if _is_prototype_name(entry) else {"file": entry}
    if not isinstance(entry, dict):
        raise SeedError(f"{where} must be a prototype name, a file path or a mapping "
                        f"{{file|prototype: ..., species: {{...}}}}, got {entry!r}")
    unknown = sorted(set(map(str, entry)) - set(SEED_KEYS))
    if unknown:
        raise SeedError(f"{where}: unknown key(s) {unknown}; known: {', '.join(SEED_KEYS)}")
    sources = [key for key in ("file", "prototype", "structure") if entry.get(key) is not None]
    if len(sources) != 1:
        raise SeedError(f"{where}: give exactly one of file, prototype or structure, got "
                        f"{sources or 'none'}")
    if sources[0] in ("file", "prototype") and not (isinstance(entry[sources[0]], str)
                                                    and entry[sources[0]].strip()):
        raise SeedError(f"{where}.{sources[0]} must be a non-empty string, got {entry[sources[0]]!r}")
    if sources[0] == "structure":
        st = entry["structure"]
        if not (isinstance(st, dict) and {"numbers", "cell", "scaled_positions"} <= set(st)):
            raise SeedError(f"{where}.structure must be a mapping with numbers, cell (Å) and scaled_positions")
    return dict(entry)


def seed_label(entry: Any, k: int = 0) -> str:
    """How reports name a seed: ``prototype:<formula>:<name>``, ``file:<name>`` or its ``label``."""
    e = _normalized(entry, k)
    if e.get("label"):
        return str(e["label"])
    if "prototype" in e:
        return f"prototype:{e['prototype']}"
    if "file" in e:
        return f"file:{Path(e['file']).name}"
    return f"seed {k}"


def check_seed_entries(entries: Any, composition: dict[str, int]) -> None:
    """Form checks of the ``seeds`` setting (no file is read); raise :class:`SeedError`.

    Every entry must be a prototype name, a path or a mapping with one
    source; a ``species`` mapping must map element symbols to elements of
    ``composition``.
    """
    if not isinstance(entries, (list, tuple)):
        raise SeedError(f"seeds must be a list of prototype names, files or mappings, got {entries!r}")
    for k, entry in enumerate(entries):
        e = _normalized(entry, k)
        species = e.get("species")
        if species is None:
            continue
        if not isinstance(species, dict) or not species:
            raise SeedError(f"seeds[{k}].species must be a mapping seed element -> search element, "
                            f"e.g. {{Na: Mg, Cl: O}}, got {species!r}")
        for src, dst in species.items():
            if str(src) not in atomic_numbers or str(src) == "X":
                raise SeedError(f"seeds[{k}].species: {src!r} is not an element symbol")
            if str(dst) not in composition:
                raise SeedError(f"seeds[{k}].species: {src} -> {dst!r}, but {dst!r} is not in the search's "
                                f"composition {sorted(composition)}; map onto its elements")


# -- reading ------------------------------------------------------------------------------
def find_prototype(name: str, composition: dict[str, int]) -> tuple[str, str]:
    """The ``(formula, name)`` of the prototype a seed names, for a search of ``composition``.

    ``"<formula>:<name>"`` is taken as given.  A bare name is the search's own
    composition's prototype of that name if there is one, else the one
    composition of the same stoichiometry (anonymized formula) that has it,
    else the one composition that has it at all; several are an error that
    lists the ``"<formula>:<name>"`` to choose from.

    >>> find_prototype("diamond", {"Si": 1}), find_prototype("diamond", {"C": 1})
    (('Si', 'diamond'), ('C', 'diamond'))
    >>> find_prototype("corundum", {"Fe": 2, "O": 3})
    ('Al2O3', 'corundum')
    """
    from pymatgen.core import Composition

    full = {f.lower(): tuple(f.split(":", 1)) for f in prototype_names()}
    key = name.strip().lower()
    if key in full:
        return full[key]  # type: ignore[return-value]
    have = [(formula, proto) for formula, protos in PROTOTYPES.items() for proto in protos
            if proto.lower() == key]
    if not have:
        raise SeedError(f"no prototype named {name!r}; known: {', '.join(prototype_names())}")
    target = Composition(composition).reduced_composition
    for choose in (lambda f: Composition(f).reduced_composition == target,
                   lambda f: Composition(f).anonymized_formula == target.anonymized_formula,
                   lambda f: True):
        found = [(f, p) for f, p in have if choose(f)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise SeedError(f"prototype name {name!r} is ambiguous for {target.reduced_formula}: choose one of "
                            + ", ".join(f"'{f}:{p}'" for f, p in found))
    raise AssertionError("unreachable")  # the last filter keeps every candidate


def load_seed(entry: Any, composition: dict[str, int], base_dir: str | Path | None = None,
              k: int = 0) -> list[tuple[str, Atoms]]:
    """The structures of one seed entry, unadapted, with their labels.

    Files are read relative to ``base_dir`` (default: the working folder)
    with :func:`pes_core.structures.load_structures`; a file with several
    frames gives one seed per frame (labels ``file:<name>[i]``).
    """
    from pes_core.structures import StructureError, load_structures, validate_structure
    from pymatgen.io.ase import AseAtomsAdaptor

    e = _normalized(entry, k)
    label = seed_label(e, k)
    if "prototype" in e:
        formula, name = find_prototype(e["prototype"], composition)
        return [(label if e.get("label") else f"prototype:{formula}:{name}", PROTOTYPES[formula][name]())]
    if "structure" in e:
        atoms = atoms_from_dict(e["structure"])
        validate_structure(AseAtomsAdaptor.get_structure(atoms), label=f"seed {label}",
                           covalent_factor=OVERLAP_FACTOR)
        return [(label, atoms)]
    path = Path(e["file"])
    if not path.is_absolute():
        path = Path(base_dir or ".") / path
    if not path.is_file():
        raise SeedError(f"seeds[{k}] ({e['file']!r}): no structure file {path} and no prototype of that name; "
                        f"fix the path (relative to the spec's folder) or use a prototype: "
                        f"{', '.join(prototype_names())}")
    try:
        structures = load_structures(path)
    except StructureError as err:
        raise SeedError(f"seeds[{k}]: {err}") from None
    adaptor = AseAtomsAdaptor()
    if len(structures) == 1:
        return [(label, adaptor.get_atoms(structures[0]))]
    return [(f"{label}[{i}]", adaptor.get_atoms(s)) for i, s in enumerate(structures)]


def embed_seeds(entries: list[Any], composition: dict[str, int],
                base_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """``entries`` with every file read into ``{structure, label, species}`` mappings.

    What a workflow stores: the workers then never read the submitter's
    files.  Prototype entries stay names.
    """
    out: list[dict[str, Any]] = []
    for k, entry in enumerate(entries):
        e = _normalized(entry, k)
        if "file" not in e:
            out.append(e)
            continue
        for label, atoms in load_seed(e, composition, base_dir, k):
            item: dict[str, Any] = {"structure": atoms_to_dict(atoms), "label": label}
            if e.get("species"):
                item["species"] = dict(e["species"])
            out.append(item)
    return out


# -- adapting ------------------------------------------------------------------------------
def _counts(symbols: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in symbols:
        out[s] = out.get(s, 0) + 1
    return out


def _reduced(counts: dict[str, int]) -> dict[str, int]:
    g = reduce(gcd, counts.values())
    return {el: n // g for el, n in counts.items()}


def _formula(counts: dict[str, int]) -> str:
    """Reduced formula as a chemist writes it (pymatgen: MgO, SiO2)."""
    from pymatgen.core import Composition

    return Composition(counts).reduced_formula


def map_species(atoms: Atoms, composition: dict[str, int], species: dict[str, str] | None = None,
                label: str = "seed") -> Atoms:
    """A copy of ``atoms`` with its elements mapped onto those of ``composition``.

    The explicit ``species`` mapping when given (elements it does not name
    keep theirs), else the identity or the unambiguous mapping by
    stoichiometric ratio (see the module notes).  Raises :class:`SeedError`
    when the result does not have the ratios of ``composition``.

    >>> from ase.build import bulk
    >>> map_species(bulk("NaCl", "rocksalt", a=5.64), {"Na": 1, "Br": 1}).get_chemical_formula()
    'BrNa'
    """
    from pymatgen.core import Composition

    symbols = atoms.get_chemical_symbols()
    have = _reduced(_counts(symbols))
    want = _reduced({str(el): int(n) for el, n in composition.items()})
    fix = "; give the mapping, e.g. {file|prototype: ..., species: {" + ", ".join(
        f"{el}: ..." for el in sorted(have)) + "}}"
    if species:
        missing = sorted(set(species) - set(have))
        if missing:
            raise SeedError(f"seed {label} ({_formula(have)}): species maps {missing}, which it does not "
                            f"contain; it has {sorted(have)}")
        mapping = {el: str(species.get(el, el)) for el in have}
    elif have == want:
        mapping = {el: el for el in have}
    else:
        anon_have = Composition(have).anonymized_formula
        anon_want = Composition(want).anonymized_formula
        if anon_have != anon_want:
            raise SeedError(f"seed {label} has composition {_formula(have)} ({anon_have}), the search "
                            f"{_formula(want)} ({anon_want}): no species mapping keeps the stoichiometry; "
                            "give a seed of the search's stoichiometry")
        mapping = {}
        for n in sorted(set(have.values())):
            src = sorted(el for el, c in have.items() if c == n)
            dst = sorted(el for el, c in want.items() if c == n)
            for el in [el for el in src if el in dst]:  # shared elements keep their identity
                mapping[el] = el
            src_left = [el for el in src if el not in mapping]
            dst_left = [el for el in dst if el not in mapping.values()]
            if len(src_left) > 1:
                raise SeedError(f"seed {label} ({_formula(have)}) matches the stoichiometry {anon_want} of "
                                f"{_formula(want)}, but the species mapping is ambiguous: "
                                f"{' and '.join(src_left)} could each become {' or '.join(dst_left)}{fix}")
            mapping.update(dict(zip(src_left, dst_left)))
    out = atoms.copy()
    out.set_chemical_symbols([mapping[s] for s in symbols])
    got = _reduced(_counts(out.get_chemical_symbols()))
    if got != want:
        raise SeedError(f"seed {label} ({_formula(have)}) mapped by {mapping} is {_formula(got)}, not the "
                        f"search's composition {_formula(want)}; fix species")
    return out


def _hnf(k: int) -> list[np.ndarray]:
    """Every lower-triangular Hermite normal form of determinant ``k`` (the distinct supercells)."""
    out = []
    for a in range(1, k + 1):
        if k % a:
            continue
        for c in range(1, k // a + 1):
            if (k // a) % c:
                continue
            f = k // (a * c)
            for b, d, e in itertools.product(range(c), range(f), range(f)):
                out.append(np.array([[a, 0, 0], [b, c, 0], [d, e, f]]))
    return out


def _min_width(cell: np.ndarray) -> float:
    """Smallest distance between opposite faces of a cell in Å."""
    vol = abs(np.linalg.det(cell))
    return float(min(vol / np.linalg.norm(np.cross(cell[i - 2], cell[i - 1])) for i in range(3)))


def seed_supercell(atoms: Atoms, allowed: list[int], label: str = "seed") -> Atoms:
    """The smallest supercell of ``atoms`` with an allowed atom count (from the primitive cell if needed).

    Among the supercells of that size the one with the largest smallest
    perpendicular width (most compact) is taken; raises :class:`SeedError`
    when no multiple of the cell or of its primitive cell is allowed.

    >>> from ase.build import bulk
    >>> len(seed_supercell(bulk("Si", "diamond", a=5.43), [8, 10]))
    8
    """
    from ase.build import make_supercell

    n = len(atoms)
    cells = [atoms]
    if not any(a % n == 0 for a in allowed):
        from pymatgen.io.ase import AseAtomsAdaptor

        prim = AseAtomsAdaptor.get_atoms(AseAtomsAdaptor.get_structure(atoms).get_primitive_structure(
            tolerance=0.01))
        cells.append(prim)
    for cell in cells:
        m = len(cell)
        ks = [a // m for a in allowed if a % m == 0]
        if not ks:
            continue
        k = min(ks)
        if k == 1:
            return cell.copy()
        best = max(_hnf(k), key=lambda p: _min_width(p @ np.asarray(cell.cell)))
        return make_supercell(cell, best)
    prim_n = len(cells[-1])
    lo, hi = min(allowed), max(allowed)
    raise SeedError(f"seed {label}: its cell has {n} atoms" + (f" (primitive cell {prim_n})" if prim_n != n else "")
                    + f" and no multiple of {prim_n} is an allowed cell size of the search ({allowed}, "
                    f"n_atoms [{lo}, {hi}]); widen n_atoms to include a multiple of {prim_n}, or give a "
                    "seed cell of an allowed size")


def _covalent_volume(symbols: list[str]) -> float:
    """Sum of the covalent-sphere volumes of ``symbols`` in Å^3."""
    return float(sum(4.0 / 3.0 * np.pi * covalent_radii[atomic_numbers[s]] ** 3 for s in symbols))


def adapt_seed(atoms: Atoms, settings: SearchSettings, species: dict[str, str] | None = None,
               label: str = "seed") -> Atoms:
    """``atoms`` made a structure of the search: species mapped, supercell, volume scaled.

    Parameters
    ----------
    atoms : Atoms
        The seed as read (any cell, periodic).
    settings : SearchSettings
        The search (composition, ``n_atoms``, ``volume_per_atom``).
    species : dict, optional
        Explicit seed element -> search element mapping.
    label : str
        The seed's name in error messages.

    Returns
    -------
    Atoms
        The adapted seed: the search's composition, an allowed atom count,
        volume per atom ``settings.volume_per_atom`` (Å^3/atom) when set,
        else its own scaled by the covalent-volume ratio of the mapping.
    """
    from pes_core.structures import StructureError, validate_structure
    from pymatgen.io.ase import AseAtomsAdaptor

    orig = atoms.get_chemical_symbols()
    mapped = map_species(atoms, settings.composition, species, label)
    if settings.volume_per_atom is not None:
        v_atom = float(settings.volume_per_atom)
    else:
        ratio = _covalent_volume(mapped.get_chemical_symbols()) / _covalent_volume(orig)
        v_atom = atoms.get_volume() / len(atoms) * ratio
    out = seed_supercell(mapped, settings.allowed_atom_counts(), label)
    out.pbc = True
    scale = (v_atom * len(out) / out.get_volume()) ** (1.0 / 3.0)
    out.set_cell(np.asarray(out.cell) * scale, scale_atoms=True)
    try:
        validate_structure(AseAtomsAdaptor.get_structure(out), label=f"seed {label} (adapted)",
                           covalent_factor=OVERLAP_FACTOR)
    except StructureError as err:
        raise SeedError(f"{err}; set search.volume_per_atom or give a mapping onto elements of similar size") \
            from None
    return out


def resolve_seeds(settings: SearchSettings, base_dir: str | Path | None = None) -> list[tuple[str, Atoms]]:
    """Every seed of ``settings.seeds``, adapted, with its label (files relative to ``base_dir``).

    Raises :class:`SeedError` naming the seed for a missing file, an unknown
    prototype, a composition no mapping reaches, a cell size outside
    ``n_atoms``, overlapping atoms, or more seeds than the first generation holds.
    """
    out: list[tuple[str, Atoms]] = []
    for k, entry in enumerate(settings.seeds):
        e = _normalized(entry, k)
        for label, atoms in load_seed(e, settings.composition, base_dir, k):
            out.append((label, adapt_seed(atoms, settings, e.get("species"), label)))
    n0 = settings.resolved_initial_size()
    if len(out) > n0:
        raise SeedError(f"{len(out)} seeds but generation 0 holds {n0} structures; drop seeds or raise "
                        f"initial_population_size to at least {len(out)}")
    return out

