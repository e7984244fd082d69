"""The oracle interface: a structure in; energy, forces, stress and provenance out.

Every source of reference energies (first-principles codes, universal ML
potentials standing in for DFT, classical potentials for fast tests) is an
:class:`Oracle`.  Oracles are chosen by name through
:func:`pes_core.oracles.get_oracle`; workflows only ever see this interface.

Units and conventions (the whole project uses them):

* energy in eV (total energy of the cell),
* forces in eV/Å, shape ``(n_atoms, 3)``,
* stress in GPa, 3x3, ASE sign convention (``stress = (1/V) dE/dstrain``:
  positive when the cell is under tension, i.e. wants to shrink; VASP's
  "pressure" has the opposite sign).
"""

from __future__ import annotations

import abc
import datetime as _dt
import os
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

__all__ = [
    "Oracle",
    "OracleError",
    "OracleResult",
    "ResultBounds",
    "ase_stress_to_gpa",
    "to_atoms",
    "to_structure",
]


class OracleError(RuntimeError):
    """An oracle could not produce a trustworthy result (crash, NaN, timeout)."""


@dataclass(frozen=True)
class ResultBounds:
    """Plausibility bounds of oracle results: what no real material reaches.

    A result outside them is a failed calculation (overlapping atoms, a
    potential outside its range, a broken code), never a training
    configuration. ``None`` switches a check off.

    Parameters
    ----------
    energy_per_atom : float or None
        Bound on ``|E| / n_atoms`` in eV/atom (default 100). Cohesive energies
        of solids stay below 10 eV/atom (W: 8.9), and the energies of the
        stand-in oracles (classical potentials, universal ML potentials) are
        referenced to separated atoms, so 100 eV/atom is reached only by
        collapsed cells: LJ on a one-atom cell of 0.6 Å gives -443 eV/atom.
        Not applied to first-principles oracles (category ``"dft"``), whose
        energy zero is the code's own (CP2K totals are hundreds of eV/atom).
    stress : float or None
        Bound on every stress component in GPa (default 10,000 = 10 TPa, above
        the pressure at the centre of Jupiter, 4-7 TPa, and of any DFT study of
        matter under pressure; the collapsed LJ cell above gives 811,000 GPa).
    force : float or None
        Bound on every force component in eV/Å (default 1,000; atoms at 1 Å
        in DFT feel tens to a few hundred eV/Å).
    net_force_per_atom : float or None
        Bound on ``|sum of forces| / n_atoms`` in eV/Å (default 1): the forces
        of a periodic cell sum to zero (translation invariance; DFT codes show
        a drift of 0.01-0.1 eV/Å), so a larger net force means forces that do
        not belong to the energy.
    zero_result_bond_factor : float or None
        A result whose energy, forces and stress are all exactly zero is
        rejected when two atoms are closer than this factor times the sum of
        their covalent radii (default 1.5, i.e. within bonding range). No
        interaction vanishes at bonding distances; an all-zero answer there
        means the calculator saw no neighbours (a cutoff shorter than the
        bonds, a negative sigma, species it does not know). Atoms farther
        apart (a dilute gas beyond the cutoff) may legitimately give zero.
    force_check_step : float or None
        Step in Å of a finite-difference check that the forces belong to the
        energy (default ``None``: off; it costs two extra evaluations, so it
        is meant for cheap oracles and applies to category ``"ml"`` only).
        The structure is displaced by ``±step`` along the unit vector of the
        3N force components; the central difference of the energy must give
        the force norm ``|F| = -dE/ds`` within 10 % + 0.05 eV/Å (a central
        difference is exact to O(step^2); forces in the wrong units, with the
        wrong sign or from another structure fail it). Skipped when
        ``|F| < 0.05`` eV/Å (a symmetric position gives nothing to compare).

    Notes
    -----
    Set them per oracle class (``Oracle.result_bounds``) or for a run with
    the environment variable ``PES_RESULT_BOUNDS``, for example
    ``PES_RESULT_BOUNDS="stress=20000,force=none,force_check_step=0.01"``.
    """

    energy_per_atom: float | None = 100.0
    stress: float | None = 10_000.0
    force: float | None = 1_000.0
    net_force_per_atom: float | None = 1.0
    zero_result_bond_factor: float | None = 1.5
    force_check_step: float | None = None

    #: relative and absolute (eV/Å) tolerance of the finite-difference force check
    FORCE_CHECK_RTOL = 0.1
    FORCE_CHECK_ATOL = 0.05

    @classmethod
    def from_env(cls, base: ResultBounds | None = None, value: str | None = None) -> ResultBounds:
        """``base`` (default bounds) updated by ``PES_RESULT_BOUNDS`` (``key=value,...``; ``none`` = off).

        >>> ResultBounds.from_env(value="stress=2e4, force=none")
        ResultBounds(energy_per_atom=100.0, stress=20000.0, force=None, net_force_per_atom=1.0, zero_result_bond_factor=1.5, force_check_step=None)
        """
        base = base or cls()
        text = os.environ.get("PES_RESULT_BOUNDS", "") if value is None else value
        if not text.strip():
            return base
        names = {f.name for f in fields(cls)}
        kw = {}
        for item in text.split(","):
            key, sep, val = (part.strip() for part in item.partition("="))
            if not sep or key not in names:
                raise ValueError(f"PES_RESULT_BOUNDS: '{item.strip()}' is not KEY=VALUE with KEY one of "
                                 f"{', '.join(sorted(names))}")
            if val.lower() == "none":
                kw[key] = None
                continue
            try:
                number = float(val)
            except ValueError:
                number = float("nan")
            if not (number > 0 and np.isfinite(number)):
                raise ValueError(f"PES_RESULT_BOUNDS: {key}={val} must be a positive finite number or 'none'")
            kw[key] = number
        return cls(**{**{f.name: getattr(base, f.name) for f in fields(cls)}, **kw})

    def violations(self, result: OracleResult, energy: bool = True) -> list[str]:
        """What in ``result`` is out of bounds, each with its value and the bound (empty: plausible)."""
        out = []
        n = len(result.structure)
        if energy and self.energy_per_atom is not None and abs(result.energy) / n > self.energy_per_atom:
            out.append(f"energy {result.energy / n:.6g} eV/atom (|E|/atom must be below {self.energy_per_atom:g})")
        if self.stress is not None and result.stress is not None and np.abs(result.stress).max() > self.stress:
            out.append(f"stress {np.abs(result.stress).max():.6g} GPa (components must be below {self.stress:g})")
        if self.force is not None and n and np.abs(result.forces).max() > self.force:
            out.append(f"force {np.abs(result.forces).max():.6g} eV/Å (components must be below {self.force:g})")
        if self.net_force_per_atom is not None and n and result.stress is not None:  # periodic cells only
            net = float(np.linalg.norm(result.forces.sum(axis=0))) / n
            if net > self.net_force_per_atom:
                out.append(f"net force {net:.6g} eV/Å per atom (forces of a periodic cell sum to zero; "
                           f"bound {self.net_force_per_atom:g})")
        if self.zero_result_bond_factor is not None and n and _all_zero(result):
            close = _bonded_pair(result.structure, self.zero_result_bond_factor)
            if close is not None:
                d, i, j = close
                out.append(f"energy, forces and stress all exactly zero although atoms {i} and {j} are {d:.3f} Å "
                           f"apart, within {self.zero_result_bond_factor:g} x the sum of their covalent radii (the "
                           "calculator saw no neighbours: check its cutoff, sigma or species; bound "
                           "zero_result_bond_factor)")
        return out


def _all_zero(result: OracleResult) -> bool:
    return (result.energy == 0.0 and not np.any(result.forces)
            and (result.stress is None or not np.any(result.stress)))


def _bonded_pair(structure: Structure, factor: float) -> tuple[float, int, int] | None:
    """The closest pair (periodic images included) within ``factor`` x the sum of covalent radii, or ``None``."""
    from ase.data import covalent_radii

    n = len(structure)
    radii = np.array([covalent_radii[site.specie.Z] for site in structure])
    dmat = structure.distance_matrix if n > 1 else np.full((1, 1), np.inf)
    if structure.lattice is not None and structure.is_ordered:
        lll = structure.lattice.get_lll_reduced_lattice().matrix
        shifts = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                           if (a, b, c) != (0, 0, 0)])
        np.fill_diagonal(dmat, np.linalg.norm(shifts @ lll, axis=1).min())  # a site and its own image
    ratio = dmat / (factor * (radii[:, None] + radii[None, :]))
    i, j = map(int, np.unravel_index(np.argmin(ratio), ratio.shape))
    return (float(dmat[i, j]), min(i, j), max(i, j)) if ratio[i, j] < 1.0 else None


def to_atoms(structure: Structure | Atoms) -> Atoms:
    """Return an ASE ``Atoms`` copy of a pymatgen ``Structure`` (or of ``Atoms``)."""
    if isinstance(structure, Atoms):
        return structure.copy()
    return AseAtomsAdaptor.get_atoms(structure)


def to_structure(atoms: Structure | Atoms) -> Structure:
    """Return a pymatgen ``Structure`` for ``Atoms`` (a copy of a ``Structure``)."""
    if isinstance(atoms, Structure):
        return atoms.copy()
    return AseAtomsAdaptor.get_structure(atoms)


def ase_stress_to_gpa(stress: np.ndarray) -> np.ndarray:
    """Convert an ASE stress (eV/Å^3, Voigt-6 or 3x3) to a 3x3 matrix in GPa."""
    s = np.asarray(stress, dtype=float)
    if s.shape == (6,):
        xx, yy, zz, yz, xz, xy = s
        s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if s.shape != (3, 3):
        raise ValueError(f"stress must have shape (6,) or (3, 3), got {s.shape}")
    return s / GPa


@dataclass
class OracleResult:
    """Energy, forces and stress of one structure, with where they came from.

    Parameters
    ----------
    energy : float
        Total energy of the cell in eV.
    forces : numpy.ndarray
        Forces in eV/Å, shape ``(n_atoms, 3)``.
    stress : numpy.ndarray or None
        Stress in GPa, 3x3, ASE sign convention; ``None`` for non-periodic cells.
    structure : pymatgen.core.Structure
        The structure the results belong to (the final one for relaxations).
    provenance : dict
        Oracle name, code and version, settings, timings and anything a user
        needs to reproduce the number (JSON-serializable).
    """

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    structure: Structure
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.energy = float(self.energy)
        self.forces = np.asarray(self.forces, dtype=float).reshape(-1, 3)
        if self.stress is not None:
            self.stress = np.asarray(self.stress, dtype=float).reshape(3, 3)
        self.check()

    def check(self) -> None:
        """Raise :class:`OracleError` if any number is NaN/inf or shapes disagree."""
        n = len(self.structure)
        if self.forces.shape != (n, 3):
            raise OracleError(
                f"oracle returned forces of shape {self.forces.shape} for {n} atoms"
            )
        bad = []
        if not np.isfinite(self.energy):
            bad.append("energy")
        if not np.all(np.isfinite(self.forces)):
            bad.append("forces")
        if self.stress is not None and not np.all(np.isfinite(self.stress)):
            bad.append("stress")
        if bad:
            name = self.provenance.get("oracle", "oracle")
            raise OracleError(
                f"{name} returned non-finite {', '.join(bad)} for "
                f"{self.structure.composition.reduced_formula}; the result is "
                "rejected (check the structure for overlapping atoms or the "
                "oracle settings)"
            )

    def check_plausible(self, bounds: ResultBounds | None = None, energy: bool = True) -> None:
        """Raise :class:`OracleError` naming every value outside ``bounds`` (see :class:`ResultBounds`).

        Parameters
        ----------
        bounds : ResultBounds, optional
            Default: :class:`ResultBounds` updated by ``PES_RESULT_BOUNDS``.
        energy : bool
            Check the energy per atom (off for codes whose energy zero is their own).
        """
        self.check()
        bounds = bounds if bounds is not None else ResultBounds.from_env()
        bad = bounds.violations(self, energy=energy)
        if bad:
            name = self.provenance.get("oracle", "oracle")
            raise OracleError(
                f"{name} returned an implausible result for {self.structure.composition.reduced_formula} "
                f"({len(self.structure)} atoms, {self.structure.volume / len(self.structure):.3g} Å^3/atom): "
                f"{'; '.join(bad)}; the result is rejected (overlapping atoms or a potential outside its "
                "range; bounds are set by PES_RESULT_BOUNDS)"
            )

    @property
    def energy_per_atom(self) -> float:
        """Energy per atom in eV/atom."""
        return self.energy / len(self.structure)


class Oracle(abc.ABC):
    """Computes energy, forces and stress of structures.

    Subclasses set :attr:`name`, :attr:`category` (``"dft"`` for
    first-principles codes that go one structure per firework to DFT workers,
    ``"ml"`` for stand-ins that run in batches on ML workers) and implement
    :meth:`_compute`.

    Parameters
    ----------
    settings : dict, optional
        Oracle-specific settings (recorded in provenance).
    env : dict, optional
        Worker environment (e.g. ``{"vasp_cmd": "srun vasp_std"}``) taken from
        the FireWorks worker's ``env``; not part of the provenance hash.
    """

    name: str = "oracle"
    category: str = "ml"
    #: species the oracle can handle, ``None`` for "any element"
    supported_elements: frozenset[str] | None = None
    #: plausibility bounds of results (``None``: :class:`ResultBounds` defaults; ``PES_RESULT_BOUNDS`` on top)
    result_bounds: ResultBounds | None = None

    def __init__(self, settings: dict[str, Any] | None = None, env: dict[str, Any] | None = None):
        self.settings: dict[str, Any] = dict(settings or {})
        self.env: dict[str, Any] = dict(env or {})

    # -- public API ---------------------------------------------------------
    def compute(self, structure: Structure | Atoms, workdir: str | None = None) -> OracleResult:
        """Compute one structure (single point).

        Parameters
        ----------
        structure : Structure or Atoms
            The structure (positions in Å).
        workdir : str, optional
            Directory for file-based codes (VASP, CP2K); stand-ins ignore it.
        """
        structure = to_structure(structure)
        self.check_species(structure)
        t0 = _dt.datetime.now(_dt.timezone.utc)
        result = self._compute(structure, workdir=workdir)
        t1 = _dt.datetime.now(_dt.timezone.utc)
        prov = {
            "oracle": self.name,
            "category": self.category,
            "settings": self.settings,
            "code_version": self.code_version(),
            "started_at": t0.isoformat(),
            "finished_at": t1.isoformat(),
            "wall_time_s": (t1 - t0).total_seconds(),
        }
        prov.update(result.provenance)
        result.provenance = prov
        self.check_result(result)
        step = ResultBounds.from_env(self.result_bounds).force_check_step
        if step is not None and self.category != "dft":
            self.check_force_consistency(result, step)
        return result

    def check_force_consistency(self, result: OracleResult, step: float = 0.01) -> None:
        """Raise :class:`OracleError` unless the forces are minus the gradient of the energy.

        The structure is displaced by ``±step`` (Å) along ``d = F / |F|`` (the
        3N force components); the central difference ``-(E(+) - E(-)) / (2 step)``
        must equal ``|F|`` within ``ResultBounds.FORCE_CHECK_RTOL |F| +
        FORCE_CHECK_ATOL`` (eV/Å). Two extra evaluations; skipped when ``|F|`` is
        below ``FORCE_CHECK_ATOL`` (nothing to compare at a symmetric position).

        Parameters
        ----------
        result : OracleResult
            A result of this oracle.
        step : float
            Displacement in Å (0.01 resolves float32 energies of ML potentials).
        """
        norm = float(np.linalg.norm(result.forces))
        if norm < ResultBounds.FORCE_CHECK_ATOL:
            return
        direction = result.forces / norm
        energies = []
        for sign in (1.0, -1.0):
            s = result.structure
            moved = Structure(s.lattice, s.species_and_occu, s.cart_coords + sign * step * direction,
                              coords_are_cartesian=True, site_properties=s.site_properties)
            energies.append(self._compute(moved).energy)
        slope = -(energies[0] - energies[1]) / (2 * step)
        if not np.isfinite(slope) or abs(slope - norm) > ResultBounds.FORCE_CHECK_RTOL * norm + ResultBounds.FORCE_CHECK_ATOL:
            name = result.provenance.get("oracle", self.name)
            raise OracleError(
                f"{name} returned forces that do not belong to its energy for "
                f"{result.structure.composition.reduced_formula}: along the force direction the energy falls by "
                f"{slope:.6g} eV/Å (central difference, step {step:g} Å) but the forces' norm is {norm:.6g} eV/Å "
                f"(tolerance {ResultBounds.FORCE_CHECK_RTOL:g} x |F| + {ResultBounds.FORCE_CHECK_ATOL:g}); the "
                "result is rejected (force units or sign, or a broken calculator; the check is set by "
                "PES_RESULT_BOUNDS force_check_step)"
            )

    @classmethod
    def check_result(cls, result: OracleResult) -> None:
        """Raise :class:`OracleError` if ``result`` is non-finite or implausible (:class:`ResultBounds`).

        The bounds are this oracle's (``result_bounds``, ``PES_RESULT_BOUNDS``
        on top); the energy bound is not applied to first-principles oracles
        (category ``"dft"``): their energy zero is the code's own.
        """
        result.check_plausible(ResultBounds.from_env(cls.result_bounds), energy=cls.category != "dft")

    def compute_many(self, structures: list[Structure | Atoms]) -> list[OracleResult]:
        """Compute several structures (stand-ins reuse one loaded model)."""
        return [self.compute(s) for s in structures]

    def check_species(self, structure: Structure) -> None:
        """Raise ``ValueError`` naming elements this oracle cannot treat."""
        if self.supported_elements is None:
            return
        unknown = sorted({el.symbol for el in structure.composition} - set(self.supported_elements))
        if unknown:
            raise ValueError(
                f"oracle '{self.name}' has no parameters for {', '.join(unknown)}; "
                f"it supports {', '.join(sorted(self.supported_elements))}. "
                "Choose another oracle (e.g. 'chgnet' covers the periodic table)."
            )

    def code_version(self) -> str:
        """Version string of the code behind the oracle."""
        return "unknown"

    # -- to implement -------------------------------------------------------
    @abc.abstractmethod
    def _compute(self, structure: Structure, workdir: str | None = None) -> OracleResult:
        """Compute energy, forces and stress of ``structure``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, settings={self.settings!r})"
