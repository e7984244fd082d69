"""Variation operators: make new structures from nothing or from parents.

Every operator takes a ``numpy.random.Generator`` and returns a new
``Atoms`` (Niggli-reduced, atoms sorted by atomic number) or ``None`` when
its attempt did not give a valid structure (atoms closer than the minimal
distances, wrong composition); the caller retries with fresh random numbers.
Operators never change the composition; only ``random_structure`` and
``heredity`` (which takes the atom count of one parent) can pick another
atom count from the allowed range.

>>> import numpy as np
>>> from pes_core.search.settings import SearchSettings
>>> s = SearchSettings(composition={"Si": 1}, n_atoms=(4, 4))
>>> atoms = random_structure(s, np.random.default_rng(0))
>>> len(atoms), check_distances(atoms, s)
(4, True)
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from functools import lru_cache
from typing import Callable

import numpy as np
from ase import Atoms
from ase.build import niggli_reduce
from ase.neighborlist import neighbor_list

from pes_core.search.individual import canonical_atoms
from pes_core.search.settings import SearchSettings

__all__ = [
    "OPERATOR_FUNCTIONS",
    "check_distances",
    "compatible_space_groups",
    "coordinate_mutation",
    "heredity",
    "lattice_mutation",
    "min_distance_ratio",
    "permutation",
    "primitive_cell",
    "random_setting",
    "random_space_group",
    "random_structure",
    "scale_to_volume",
    "standardize",
    "symmetrize",
]

log = logging.getLogger(__name__)


# -- checks and helpers -------------------------------------------------------------
def min_distance_ratio(atoms: Atoms, settings: SearchSettings) -> float:
    """Smallest (pair distance / allowed minimal distance) over all pairs, images included.

    Above 1 means every pair is far enough apart; ``inf`` when no pair is
    within the largest minimal distance.
    """
    dmin = settings.min_distance_matrix()
    cutoff = max(dmin.values())
    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    if len(d) == 0:
        return float("inf")
    z = atoms.numbers
    allowed = np.array([dmin[(int(a), int(b))] for a, b in zip(z[i], z[j])])
    return float(np.min(d / allowed))


def check_distances(atoms: Atoms, settings: SearchSettings) -> bool:
    """True when no two atoms (periodic images included) are closer than allowed."""
    return min_distance_ratio(atoms, settings) >= 1.0


def scale_to_volume(atoms: Atoms, volume: float) -> Atoms:
    """Copy of ``atoms`` with the cell (and positions) scaled to ``volume`` Å^3."""
    out = atoms.copy()
    s = (volume / out.get_volume()) ** (1.0 / 3.0)
    out.set_cell(np.array(out.cell) * s, scale_atoms=True)
    return out


def standardize(atoms: Atoms) -> Atoms | None:
    """Niggli-reduced, wrapped, sorted copy; ``None`` for a degenerate cell."""
    out = atoms.copy()
    out.pbc = True
    vol = abs(np.linalg.det(np.array(out.cell)))
    if not np.isfinite(vol) or vol < 1e-3 * max(1, len(out)):
        return None
    try:
        niggli_reduce(out)
    except Exception:  # ase raises plain RuntimeError/ValueError on hopeless cells
        return None
    return canonical_atoms(out)


def _has_composition(atoms: Atoms, counts: dict[int, int]) -> bool:
    return Counter(int(z) for z in atoms.numbers) == Counter(counts)


def _counts_by_z(atoms: Atoms) -> dict[int, int]:
    return dict(Counter(int(z) for z in atoms.numbers))


# -- random symmetric structures -------------------------------------------------------
@lru_cache(maxsize=4096)
def _compatible(sg: int, num_ions: tuple[int, ...]) -> bool:
    from pyxtal.symmetry import Group

    try:
        ok, free = Group(sg).check_compatible(list(num_ions))
    except Exception:
        return False
    return bool(ok and free)


def compatible_space_groups(num_ions: tuple[int, ...]) -> tuple[int, ...]:
    """Space groups 2-230 whose Wyckoff positions can hold ``num_ions`` (per species).

    Checks all 228 groups (seconds, cached per group); the search itself uses
    :func:`random_space_group`, which checks only the groups it draws.
    """
    return tuple(sg for sg in range(2, 231) if _compatible(sg, tuple(num_ions))) or (1,)


def random_space_group(num_ions: tuple[int, ...], rng: np.random.Generator, tries: int = 500) -> int:
    """A space group drawn uniformly from those compatible with ``num_ions`` (1 if none found)."""
    for _ in range(tries):
        sg = int(rng.integers(2, 231))
        if _compatible(sg, tuple(num_ions)):
            return sg
    return 1


@lru_cache(maxsize=4096)
def _compatible_primitive(sg: int, num_ions: tuple[int, ...]) -> bool:
    """Whether centred group ``sg`` has a primitive cell holding ``num_ions`` (its conventional cell holds more)."""
    from pyxtal.symmetry import Group

    try:
        group = Group(sg)
        centring = int(group.cellsize())
        if centring == 1:
            return False
        ok, free = group.check_compatible([n * centring for n in num_ions])
    except Exception:
        return False
    return bool(ok and free)


def random_setting(num_ions: tuple[int, ...], rng: np.random.Generator, primitive_centred: bool = True,
                   tries: int = 500) -> tuple[int, bool]:
    """A space group and cell for a random structure: ``(sg, conventional)``.

    ``conventional``: the cell holds ``num_ions`` in the group's conventional
    setting; otherwise in the primitive cell of a centred group (its
    conventional cell holds 2-4 times as many). The group is drawn uniformly
    from those that allow either cell (only conventional ones unless
    ``primitive_centred``); one that allows both gives either with
    probability 1/2. ``(1, True)`` if no group is found.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> draws = {random_setting((4, 6), rng) for _ in range(400)}
    >>> (167, False) in draws          # corundum's R-3c, as a 10-atom primitive cell
    True
    >>> any(sg == 167 for sg, _ in {random_setting((4, 6), rng, primitive_centred=False) for _ in range(400)})
    False
    """
    num_ions = tuple(num_ions)
    if not primitive_centred:
        return random_space_group(num_ions, rng, tries), True
    for _ in range(tries):
        sg = int(rng.integers(2, 231))
        conv, prim = _compatible(sg, num_ions), _compatible_primitive(sg, num_ions)
        if conv and prim:
            return sg, bool(rng.random() < 0.5)
        if conv or prim:
            return sg, conv
    return 1, True


def primitive_cell(atoms: Atoms, symprec: float = 1e-3) -> Atoms | None:
    """The primitive cell of a symmetric structure (spglib, positions not idealized); ``None`` if spglib fails."""
    import spglib

    cell = (np.array(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    try:
        out = spglib.standardize_cell(cell, to_primitive=True, no_idealize=True, symprec=symprec)
    except Exception:
        return None
    if out is None:
        return None
    lattice, frac, numbers = out
    return Atoms(numbers=numbers, scaled_positions=frac, cell=lattice, pbc=True)


def random_structure(settings: SearchSettings, rng: np.random.Generator,
                     n_atoms: int | None = None, volume_per_atom: float | None = None) -> Atoms | None:
    """A random symmetric structure (pyxtal) in a random compatible space group.

    Parameters
    ----------
    settings : SearchSettings
        Composition, allowed atom counts, minimal distances (as pyxtal's
        pairwise tolerance matrix, so no pair is closer than allowed).
    rng : numpy.random.Generator
        Source of every random choice.
    n_atoms : int, optional
        Atoms in the cell; random from the allowed counts by default.
    volume_per_atom : float, optional
        Target volume in Å^3/atom (scaled by a random factor in [0.9, 1.1]);
        the cell is never compressed below the minimal distances.
    """
    from pyxtal import pyxtal
    from pyxtal.tolerance import Tol_matrix

    if n_atoms is None:
        n_atoms = int(rng.choice(settings.allowed_atom_counts()))
    counts = settings.species_counts(n_atoms)
    species, num_ions = list(counts), [counts[el] for el in counts]
    els = settings.elements()
    tm = Tol_matrix(*[(a, b, settings.min_distance(a, b))
                      for k, a in enumerate(els) for b in els[k:]], prototype="atomic")
    vpa = volume_per_atom or settings.initial_volume_per_atom()
    for _ in range(10):
        if settings.primitive_centred:
            sg, conventional = random_setting(tuple(num_ions), rng)
        else:  # the draw of earlier versions (same random numbers, same searches)
            sg, conventional = random_space_group(tuple(num_ions), rng), True
        seed = int(rng.integers(2**31 - 1))
        crystal = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal.from_random(3, sg, species, num_ions, tm=tm, random_state=seed, conventional=conventional)
        except Exception as err:  # pyxtal raises assorted errors for unlucky draws
            log.debug("pyxtal failed for space group %d: %s", sg, err)
            continue
        if not crystal.valid:
            continue
        atoms = crystal.to_ase()
        if not conventional:
            atoms = primitive_cell(atoms)
        if atoms is None or len(atoms) != n_atoms:
            continue
        target = vpa * n_atoms * rng.uniform(0.9, 1.1)
        ratio = min_distance_ratio(atoms, settings)
        scale = (target / atoms.get_volume()) ** (1 / 3)
        if np.isfinite(ratio):
            scale = max(scale, 1.001 / ratio)  # never compress below the minimal distances
        atoms = scale_to_volume(atoms, atoms.get_volume() * scale**3)
        atoms.info["spacegroup"] = sg
        out = standardize(atoms)
        if out is not None and check_distances(out, settings):
            out.info["spacegroup"] = sg
            return out
    return None


def symmetrize(atoms: Atoms, settings: SearchSettings, tol_step: float = 0.1) -> Atoms | None:
    """Copy of ``atoms`` moved onto the nearest space group above P1 (spglib).

    Tolerances ``tol_step, 2 tol_step, ...`` up to ``settings.symmetrize_tol``
    (Å) are tried in turn; at the first that finds a space group other than
    P1 the cell and the positions are symmetrized in that group
    (:func:`ase.spacegroup.symmetrize.refine_symmetry`; the atom count and
    the cell setting are kept) and the result is accepted when no pair is
    closer than the minimal distances. ``None`` when no tolerance gives such
    a structure. Deterministic: no random numbers.

    Examples
    --------
    >>> from ase.build import bulk
    >>> s = SearchSettings(composition={"Si": 1}, n_atoms=(8, 8))
    >>> d = bulk("Si", "diamond", a=5.43, cubic=True)
    >>> d.positions += np.random.default_rng(0).normal(0, 0.05, (8, 3))
    >>> int(symmetrize(d, s).info["spacegroup"]) > 1
    True
    """
    import spglib
    from ase.spacegroup.symmetrize import refine_symmetry

    n_steps = max(1, int(np.floor(settings.symmetrize_tol / tol_step + 1e-9)))
    for k in range(1, n_steps + 1):
        tol = k * tol_step
        cell = (np.array(atoms.cell), atoms.get_scaled_positions(wrap=True), atoms.numbers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = spglib.get_symmetry_dataset(cell, symprec=tol)
        if data is None or data.number <= 1:
            continue
        out = atoms.copy()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                refine_symmetry(out, symprec=tol, verbose=False)
        except Exception as err:  # spglib/ase refuse some loose-tolerance groups
            log.debug("symmetrization at %.2f Å failed: %s", tol, err)
            continue
        out = standardize(out)
        if out is None or len(out) != len(atoms) or not check_distances(out, settings):
            continue
        out.info["spacegroup"] = int(data.number)
        return out
    return None


# -- operators on parents ----------------------------------------------------------
def heredity(p1: Atoms, p2: Atoms, settings: SearchSettings, rng: np.random.Generator,
             volume_per_atom: float | None = None) -> Atoms | None:
    """Cut two parents along a random lattice axis and join the slabs.

    Each parent is shifted by a random fractional vector; atoms of ``p1``
    below the cut fraction ``x`` (random in ``settings.heredity_cut``) and of
    ``p2`` above it are kept in a lattice ``x L1 + (1 - x) L2``. The atom
    counts are then fixed to those of one parent (random choice): surplus
    atoms are removed at random, missing ones are taken from the discarded
    parts of the parents nearest the cut planes. The volume is set to the
    parents' mean volume per atom (or ``volume_per_atom``).

    Parents of different sizes (a search over a range of atom counts) are
    cut and spliced in space instead (:func:`_heredity_across_sizes`): the
    child takes the cell and the atom count of the chosen parent.
    """
    target_parent = p1 if rng.random() < 0.5 else p2
    target = _counts_by_z(target_parent)
    axis = int(rng.integers(3))
    x = float(rng.uniform(*settings.heredity_cut))
    if len(p1) != len(p2):
        return _heredity_across_sizes(target_parent, p2 if target_parent is p1 else p1,
                                      axis, x, settings, rng, volume_per_atom)
    f1 = (p1.get_scaled_positions(wrap=True) + rng.random(3)) % 1.0
    f2 = (p2.get_scaled_positions(wrap=True) + rng.random(3)) % 1.0
    take1 = f1[:, axis] < x
    take2 = f2[:, axis] >= x
    frac = np.vstack([f1[take1], f2[take2]])
    numbers = np.concatenate([p1.numbers[take1], p2.numbers[take2]])
    # spare atoms, ordered by how far they sit outside their parent's slab
    spare_f = np.vstack([f1[~take1], f2[~take2]])
    spare_z = np.concatenate([p1.numbers[~take1], p2.numbers[~take2]])
    d_out1 = np.minimum(f1[~take1, axis] - x, 1.0 - f1[~take1, axis])
    d_out2 = np.minimum(x - f2[~take2, axis], f2[~take2, axis])
    spare_d = np.concatenate([d_out1, d_out2])

    cell = x * np.array(p1.cell) + (1.0 - x) * np.array(p2.cell)
    if abs(np.linalg.det(cell)) < 1e-6:
        return None
    kept = _fill_counts(frac, numbers, spare_f, spare_z, spare_d, target, rng)
    if kept is None:
        return None
    keep_f, keep_z = kept
    child = Atoms(numbers=keep_z, cell=cell, scaled_positions=np.array(keep_f), pbc=True)
    if volume_per_atom is None:
        volume_per_atom = 0.5 * (p1.get_volume() / len(p1) + p2.get_volume() / len(p2))
    child = scale_to_volume(child, volume_per_atom * len(child))
    out = standardize(child)
    if out is None or not _has_composition(out, target) or not check_distances(out, settings):
        return None
    return out


def _fill_counts(frac: np.ndarray, numbers: np.ndarray, spare_f: np.ndarray, spare_z: np.ndarray,
                 spare_d: np.ndarray, target: dict[int, int],
                 rng: np.random.Generator) -> tuple[list, list] | None:
    """Atoms kept per species to match ``target``: surplus dropped at random, missing ones
    taken from the spare atoms nearest the cut (smallest ``spare_d``); ``None`` if too few."""
    keep_f, keep_z = [], []
    for z, n_target in target.items():
        idx = np.flatnonzero(numbers == z)
        if len(idx) > n_target:
            idx = np.sort(rng.choice(idx, size=n_target, replace=False))
        keep_f.extend(frac[idx])
        keep_z.extend([z] * len(idx))
        missing = n_target - len(idx)
        if missing > 0:
            cand = np.flatnonzero(spare_z == z)
            cand = cand[np.argsort(spare_d[cand], kind="stable")]
            if len(cand) < missing:
                return None
            keep_f.extend(spare_f[cand[:missing]])
            keep_z.extend([z] * missing)
    return keep_f, keep_z


def _heredity_across_sizes(target_parent: Atoms, other: Atoms, axis: int, x: float,
                           settings: SearchSettings, rng: np.random.Generator,
                           volume_per_atom: float | None, max_images: int = 2000) -> Atoms | None:
    """Heredity of parents with different atom counts: cut and splice in space.

    Both parents are scaled to the common volume per atom (the parents'
    mean, or ``volume_per_atom``, Å^3/atom). The child's cell is the target
    parent's; its slab ``f_axis < x`` (after a random shift) is kept, and the
    rest of the cell is filled with the other parent's crystal (periodic
    images, randomly shifted) where it falls at ``f_axis >= x``. The atom
    counts are then repaired to the target parent's as in :func:`heredity`.
    """
    if volume_per_atom is None:
        volume_per_atom = 0.5 * (target_parent.get_volume() / len(target_parent)
                                 + other.get_volume() / len(other))
    t = scale_to_volume(target_parent, volume_per_atom * len(target_parent))
    o = scale_to_volume(other, volume_per_atom * len(other))
    cell = np.array(t.cell)
    ft = (t.get_scaled_positions(wrap=True) + rng.random(3)) % 1.0
    fo = (o.get_scaled_positions(wrap=True) + rng.random(3)) % 1.0
    # the other parent's lattice points that can put an atom into the child's cell
    ocell = np.array(o.cell)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float) @ cell
    c_in_o = corners @ np.linalg.inv(ocell)
    lo = np.floor(c_in_o.min(axis=0)).astype(int) - 1
    hi = np.ceil(c_in_o.max(axis=0)).astype(int) + 1
    if np.prod(hi - lo) * len(o) > max_images * max(1, len(t)):
        return None
    shifts = np.array([[i, j, k] for i in range(lo[0], hi[0]) for j in range(lo[1], hi[1])
                       for k in range(lo[2], hi[2])], dtype=float)
    cart = ((fo[None, :, :] + shifts[:, None, :]).reshape(-1, 3)) @ ocell
    zo = np.tile(o.numbers, len(shifts))
    fc = cart @ np.linalg.inv(cell)
    inside = np.all((fc >= 0.0) & (fc < 1.0), axis=1)
    fc, zo = fc[inside], zo[inside]
    take_t = ft[:, axis] < x
    take_o = fc[:, axis] >= x
    frac = np.vstack([ft[take_t], fc[take_o]])
    numbers = np.concatenate([t.numbers[take_t], zo[take_o]])
    spare_f = np.vstack([ft[~take_t], fc[~take_o]])
    spare_z = np.concatenate([t.numbers[~take_t], zo[~take_o]])
    spare_d = np.concatenate([np.minimum(ft[~take_t, axis] - x, 1.0 - ft[~take_t, axis]),
                              np.minimum(x - fc[~take_o, axis], fc[~take_o, axis])])
    target = _counts_by_z(target_parent)
    kept = _fill_counts(frac, numbers, spare_f, spare_z, spare_d, target, rng)
    if kept is None:
        return None
    child = Atoms(numbers=kept[1], cell=cell, scaled_positions=np.array(kept[0]), pbc=True)
    out = standardize(child)
    if out is None or not _has_composition(out, target) or not check_distances(out, settings):
        return None
    return out


def coordinate_mutation(parent: Atoms, settings: SearchSettings,
                        rng: np.random.Generator) -> Atoms | None:
    """Displace every atom by a Gaussian vector (sigma random in ``coordinate_sigma``, Å)."""
    sigma = float(rng.uniform(*settings.coordinate_sigma))
    child = parent.copy()
    child.positions = child.positions + rng.normal(0.0, sigma, size=(len(child), 3))
    out = standardize(child)
    if out is None or not check_distances(out, settings):
        return None
    return out


def lattice_mutation(parent: Atoms, settings: SearchSettings,
                     rng: np.random.Generator) -> Atoms | None:
    """Apply a random symmetric strain (I + eps) to the cell, keep the volume.

    The strain components are normal with standard deviation
    ``lattice_sigma``, clipped to +-``lattice_clip``; the fractional
    coordinates are kept and the volume is restored to the parent's.
    """
    eps = rng.normal(0.0, settings.lattice_sigma, size=(3, 3))
    eps = np.clip(0.5 * (eps + eps.T), -settings.lattice_clip, settings.lattice_clip)
    cell = np.array(parent.cell) @ (np.eye(3) + eps)
    if np.linalg.det(cell) <= 1e-6:
        return None
    child = parent.copy()
    child.set_cell(cell, scale_atoms=True)
    child = scale_to_volume(child, parent.get_volume())
    out = standardize(child)
    if out is None or not check_distances(out, settings):
        return None
    return out


def permutation(parent: Atoms, settings: SearchSettings,
                rng: np.random.Generator) -> Atoms | None:
    """Swap the species of a few random pairs of unlike atoms (needs two or more species)."""
    z = parent.numbers.copy()
    if len(set(z.tolist())) < 2:
        return None
    n_swaps = int(rng.integers(1, max(1, len(z) // 4) + 1))
    for _ in range(n_swaps):
        i = int(rng.integers(len(z)))
        others = np.flatnonzero(z != z[i])
        j = int(rng.choice(others))
        z[i], z[j] = z[j], z[i]
    child = parent.copy()
    child.numbers = z
    out = standardize(child)
    if out is None or not check_distances(out, settings):
        return None
    return out


#: operator name -> number of parents and the function (without settings/rng binding)
OPERATOR_FUNCTIONS: dict[str, tuple[int, Callable]] = {
    "heredity": (2, heredity),
    "random": (0, random_structure),
    "coordinate": (1, coordinate_mutation),
    "lattice": (1, lattice_mutation),
    "permutation": (1, permutation),
}
