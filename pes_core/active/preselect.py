"""Pre-exploration: choose an initial training set by the grade alone (no oracle calls).

A pool of random structures (the search's own symmetric generator with
minimal distances, various atom counts, each also compressed and expanded) is
graded against an empty active set of an initial (untrained) MTP; maxvol keeps
the configurations whose rows span the largest volume.  The rows of the
linear parameters depend only on the radial functions, which an untrained
potential already has, so no reference data are needed.

>>> from pes_core.search import SearchSettings  # doctest: +SKIP
>>> pool = random_pool(SearchSettings(composition={"Si": 1}, n_atoms=(2, 8)), 30, seed=0)  # doctest: +SKIP
>>> res = preselect(MTPPotential.from_level(10, ["Si"]), pool)  # doctest: +SKIP
>>> len(res.indices) <= res.active_set.size  # doctest: +SKIP
True

Two ways to spend fewer oracle calls on it (``active.preexploration:
adaptive`` and ``active.prior``):

* :func:`preexploration_covered` stops labelling when the refitted MTP's
  active set already covers the rest of the pool, and
  :func:`adapt_prerelax_steps` shortens the oracle pre-relaxations once the
  MTP predicts their end points;
* :func:`prior_candidates` relaxes the pool on a universal potential (free:
  no oracle call), so the oracle only labels prior-relaxed geometries
  (checked by :func:`check_prior`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms

from pes_core.active.active_set import ActiveSet
from pes_core.mtp import MTPPotential

__all__ = ["PreselectResult", "adapt_prerelax_steps", "check_prior", "preexploration_covered", "preselect",
           "prior_candidates", "random_pool"]


def random_pool(settings, size: int, seed: int = 0, atom_counts: Sequence[int] | None = None,
                volume_factors: Sequence[float] = (0.85, 1.0, 1.2), max_attempts: int = 20) -> list[Atoms]:
    """Random symmetric structures with minimal distances, and volume-scaled copies.

    Parameters
    ----------
    settings : pes_core.search.SearchSettings
        Composition, atom-count range, minimal distances, volume estimate.
    size : int
        Number of distinct random structures (the pool holds
        ``size * len(volume_factors)`` configurations).
    seed : int
        Seed of the generator.
    atom_counts : sequence of int, optional
        Atom counts to draw from (default: all the settings allow).
    volume_factors : sequence of float
        Volume multiples of each structure (1.0 keeps it); compressed copies
        never go below 0.7 of the minimal distances.
    max_attempts : int
        Tries per structure before giving up.
    """
    from pes_core.search.operators import min_distance_ratio, random_structure

    rng = np.random.default_rng([int(seed), 7919])
    counts = list(atom_counts or settings.allowed_atom_counts())
    if not counts:
        raise ValueError(f"no atom count in {settings.n_atoms} fits the composition {settings.composition}")
    pool: list[Atoms] = []
    for k in range(int(size)):
        n = int(counts[k % len(counts)])
        atoms = None
        for _ in range(max_attempts):
            atoms = random_structure(settings, rng, n_atoms=n)
            if atoms is not None:
                break
        if atoms is None:
            raise RuntimeError(f"could not build a random {n}-atom structure of {settings.composition}; "
                               "relax the minimal distances")
        ratio = min_distance_ratio(atoms, settings)
        for f in volume_factors:
            lin = float(f) ** (1 / 3)
            if np.isfinite(ratio) and ratio * lin < 0.7:
                continue
            b = atoms.copy()
            b.set_cell(atoms.cell * lin, scale_atoms=True)
            b.info = {"pool_index": len(pool), "volume_factor": float(f)}
            pool.append(b)
    return pool


@dataclass
class PreselectResult:
    """Indices of the chosen pool members, grades of the whole pool, the active set."""

    indices: list[int]
    grades: np.ndarray
    active_set: ActiveSet


def preselect(potential: MTPPotential, pool: Sequence[Atoms], mode: str = "configuration",
              include_radial: bool = False, max_configurations: int | None = None,
              active_set: ActiveSet | None = None) -> PreselectResult:
    """Maxvol selection from ``pool`` against ``active_set`` (default: an empty one).

    Parameters
    ----------
    potential : MTPPotential
        Initial potential (radial coefficients set; linear ones may be zero).
    pool : sequence of ase.Atoms
        Candidate structures.
    mode : {"configuration", "neighbourhood"}
        Active-set mode.
    include_radial : bool
        Rows over all parameters.
    max_configurations : int, optional
        Cap on the selected configurations (highest grades first).
    active_set : ActiveSet, optional
        Start from this set (e.g. of an existing training set).
    """
    if potential.radial_coeffs is None:
        potential = potential.copy()
        potential.initialize(np.random.default_rng(0))
    if potential.species_coeffs is None or potential.moment_coeffs is None:
        potential = potential.copy()
        potential.initialize(np.random.default_rng(0))
    aset = active_set.copy() if active_set is not None else ActiveSet.empty(potential, mode, include_radial)
    res = aset.select(potential, list(pool), labels=[str(k) for k in range(len(pool))],
                      max_configurations=max_configurations)
    return PreselectResult(res.selected, res.grades, aset)


def preexploration_covered(grades: Sequence[float] | np.ndarray, select: float, cover: float) -> bool:
    """Whether the remaining pool is covered: fewer than ``cover`` of it above the ``select`` grade.

    Parameters
    ----------
    grades : sequence of float
        Extrapolation grades (dimensionless) of the pool members not labelled
        yet, against the active set of the latest fit.
    select : float
        Selection threshold (``active.select``): a grade above it would make
        the configuration a learning candidate during the search.
    cover : float
        Largest share (0-1) of the remaining pool that may lie above ``select``.

    Returns
    -------
    bool
        True when nothing is left, nothing lies above ``select``, or the share
        above it is below ``cover``.

    Examples
    --------
    >>> preexploration_covered([0.5, 1.2, 3.0, 0.9], select=2.0, cover=0.3)
    True
    >>> preexploration_covered([0.5, 2.5, 3.0, 0.9], select=2.0, cover=0.3)
    False
    >>> preexploration_covered([], select=2.0, cover=0.0)
    True
    """
    g = np.asarray(grades, dtype=float).ravel()
    if g.size == 0:
        return True
    above = int(np.count_nonzero(~(g <= select)))  # NaN counts as above: an unknown grade is not covered
    return above == 0 or above / g.size < float(cover)


def adapt_prerelax_steps(steps: int, errors: Sequence[float] | np.ndarray, tolerance: float) -> int:
    """Oracle pre-relaxation steps of the next batch: half of ``steps`` when the MTP already got there.

    Parameters
    ----------
    steps : int
        Steps of the batch just labelled.
    errors : sequence of float
        Errors (eV/atom) of the MTP fitted *before* that batch on the last
        (lowest) frames of its oracle pre-relaxations: how well the model
        already predicted where the oracle relaxations lead.
    tolerance : float
        RMS error (eV/atom) at or below which the steps are halved (down to 0:
        single points).

    Returns
    -------
    int
        The next batch's steps (``steps`` unchanged without errors or above
        the tolerance).

    Examples
    --------
    >>> adapt_prerelax_steps(10, [0.01, -0.02], 0.05), adapt_prerelax_steps(10, [0.2, 0.01], 0.05)
    (5, 10)
    >>> adapt_prerelax_steps(1, [0.0], 0.05), adapt_prerelax_steps(10, [], 0.05)
    (0, 10)
    """
    e = np.asarray(errors, dtype=float).ravel()
    if e.size == 0 or not np.all(np.isfinite(e)):
        return int(steps)
    rms = float(np.sqrt(np.mean(np.square(e))))
    return int(steps) // 2 if rms <= float(tolerance) else int(steps)


def check_prior(prior: str, oracle: str, elements: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``prior`` can pre-relax for ``oracle`` on ``elements``.

    The prior must be a registered oracle, not the oracle itself (its
    relaxations would then be oracle calls, counted nowhere), of category
    ``ml`` (it runs inside the ``ml`` pre-exploration firework; a DFT code is
    no free prior) and with parameters for every element.

    >>> check_prior("tersoff", "sw", ["Si"])
    >>> check_prior("sw", "sw", ["Si"])
    Traceback (most recent call last):
    ...
    ValueError: active.prior 'sw' is the oracle itself; a prior must be a different (universal) potential, e.g. 'chgnet' or 'sevenn', or null
    >>> check_prior("tersoff", "sw", ["Si", "O"])
    Traceback (most recent call last):
    ...
    ValueError: active.prior 'tersoff' has no parameters for O (it supports C, Si); choose a universal potential such as 'chgnet' or 'sevenn'
    """
    from pes_core.oracles import available_oracles, oracle_class

    if prior == oracle:
        raise ValueError(f"active.prior {prior!r} is the oracle itself; a prior must be a different (universal) "
                         "potential, e.g. 'chgnet' or 'sevenn', or null")
    if prior not in available_oracles():
        raise ValueError(f"active.prior {prior!r} is not a registered potential; choose one of "
                         f"{', '.join(sorted(available_oracles()))} (e.g. 'chgnet' or 'sevenn'), or null")
    cls = oracle_class(prior)
    if cls.category != "ml":
        raise ValueError(f"active.prior {prior!r} runs in category {cls.category!r}: a prior must be a fast model "
                         "(category 'ml', e.g. 'chgnet' or 'sevenn') that pre-relaxes for free")
    supported = cls.supported_elements
    missing = sorted(set(elements) - set(supported)) if supported is not None else []
    if missing:
        raise ValueError(f"active.prior {prior!r} has no parameters for {', '.join(missing)} (it supports "
                         f"{', '.join(sorted(supported))}); choose a universal potential such as 'chgnet' or "
                         "'sevenn'")


def _frame_indices(n: int, frames: int) -> list[int]:
    """Indices of ``frames`` points evenly spaced strictly inside ``(0, n - 1)``, then ``n - 1``.

    >>> _frame_indices(31, 2), _frame_indices(3, 2), _frame_indices(1, 2)
    ([10, 20, 30], [1, 2], [0])
    """
    if n <= 1:
        return [0] * (n == 1)
    inner = {round(k * (n - 1) / (frames + 1)) for k in range(1, int(frames) + 1)}
    return sorted(i for i in inner if 0 < i < n - 1) + [n - 1]


def prior_candidates(prior, pool: Sequence[Atoms], steps: int = 100, frames: int = 2,
                     volume_factors: Sequence[float] = (1.0,), pressure_gpa: float = 0.0,
                     fmax: float = 0.05) -> list[Atoms]:
    """Relax ``pool`` on a prior potential; its relaxed geometries and points along the way.

    The prior is a universal potential, so these relaxations cost no oracle
    call: what the oracle labels afterwards are condensed, near-minimum
    geometries -- what the oracle pre-relaxations (``prerelax_steps``) buy at
    one oracle call per step.

    Parameters
    ----------
    prior : pes_core.oracles.Oracle
        The prior (an oracle object of a universal potential).
    pool : sequence of ase.Atoms
        Random start structures.
    steps : int
        BFGS steps (positions and cell) of each relaxation at most.
    frames : int
        Points along each trajectory besides the relaxed one, evenly spaced
        (the random start itself is left out: it is what the pool already had).
    volume_factors : sequence of float
        Volume multiples of each relaxed geometry (1.0 keeps it): the
        compressed and expanded copies sample the equation of state near the
        prior's minimum, where the oracle's may lie a little aside.
    pressure_gpa : float
        External pressure of the relaxations (GPa).
    fmax : float
        Force criterion (eV/Å).

    Returns
    -------
    list of ase.Atoms
        ``info``: ``pool_index`` (start in ``pool``), ``prior_step`` (BFGS
        step), ``prior_energy_per_atom`` (eV/atom, the prior's; None for
        volume-scaled copies), ``volume_factor``.  Starts whose prior
        relaxation failed at once contribute nothing.
    """
    from pes_core.active.learning import oracle_trajectory
    from pes_core.oracles import to_atoms

    out: list[Atoms] = []
    for k, start in enumerate(pool):
        traj = oracle_trajectory(prior, start, steps=int(steps), every=max(1, int(steps) + 1),
                                 pressure_gpa=pressure_gpa, fmax=fmax)
        good = [j for j, r in enumerate(traj.results)
                if r is not None and r.energy is not None and np.isfinite(r.energy)]
        if not good:
            continue
        for pos in _frame_indices(len(good), frames):
            j = good[pos]
            res = traj.results[j]
            atoms = to_atoms(res.structure)
            n = len(atoms)
            last = pos == len(good) - 1
            for f in (volume_factors if last else (1.0,)):
                b = atoms.copy()
                if float(f) != 1.0:
                    b.set_cell(atoms.cell * float(f) ** (1 / 3), scale_atoms=True)
                b.info = {"pool_index": k, "prior_step": j, "volume_factor": float(f),
                          "prior_energy_per_atom": float(res.energy) / n if float(f) == 1.0 else None}
                out.append(b)
    return out
