"""The MTP potential: basis tables, radial basis settings and coefficients.

Flat parameter vector (``MTPPotential.parameters``), in this order:

1. ``species_coeffs``  ``(S,)``          eV, site-energy offsets ``xi0[z]``
2. ``moment_coeffs``   ``(m,)``          eV, linear coefficients ``xi_alpha``
3. ``radial_coeffs``   ``(S, S, N_mu, N_Q)`` C-order flattened; index
   ``[z_i, z_j, mu, beta]`` (central species, neighbour species)

The first ``S + m`` entries are the *linear* parameters (the energy is linear
in them); :attr:`MTPPotential.n_linear` gives that count.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from pes_core.mtp.basis import MomentBasis, generate_basis

__all__ = ["MTPPotential"]


@dataclass
class MTPPotential:
    """A moment tensor potential (MLIP's ``.mtp`` content).

    Parameters
    ----------
    basis : MomentBasis
        Contraction program (``alpha_*`` tables).
    species : list of int
        Atomic numbers of MLIP types ``0 .. S-1``.  ``0`` entries mean "unknown"
        (an ``.mtp`` file does not name its species); assign before evaluating.
    min_dist, max_dist : float
        Radial basis interval ``[R_min, R_cut]`` in Å.
    radial_basis_size : int
        Number of Chebyshev functions ``N_Q`` (8 in MLIP's templates).
    scaling : float
        Multiplies all radial functions (dimensionless).
    radial_coeffs : numpy.ndarray
        ``(S, S, N_mu, N_Q)``, indexed ``[z_i, z_j, mu, beta]``.
    species_coeffs : numpy.ndarray
        ``(S,)`` site-energy offsets in eV.
    moment_coeffs : numpy.ndarray
        ``(m,)`` linear coefficients in eV.
    potential_name, potential_tag, version : str
        Free-form header fields kept for round trips.
    """

    basis: MomentBasis
    species: list[int]
    min_dist: float = 2.0
    max_dist: float = 5.0
    radial_basis_size: int = 8
    scaling: float = 1.0
    radial_coeffs: np.ndarray | None = None
    species_coeffs: np.ndarray | None = None
    moment_coeffs: np.ndarray | None = None
    potential_name: str = "MTP1m"
    potential_tag: str = ""
    version: str = "1.1.0"
    radial_basis_type: str = "RBChebyshev"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.species = [int(z) for z in self.species]
        if self.min_dist >= self.max_dist:
            raise ValueError(
                f"min_dist ({self.min_dist} Å) must be smaller than max_dist ({self.max_dist} Å)"
            )
        s, n_mu, nq, m = self.n_species, self.basis.radial_funcs_count, self.radial_basis_size, self.basis.alpha_scalar_moments
        for name, shape in (("radial_coeffs", (s, s, n_mu, nq)), ("species_coeffs", (s,)), ("moment_coeffs", (m,))):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.array(value, dtype=float)
            if value.shape != shape:
                raise ValueError(
                    f"{name} has shape {value.shape} but the potential needs {shape} "
                    f"({s} species, {n_mu} radial functions, {nq} radial basis functions, {m} basis functions)"
                )
            setattr(self, name, value)

    # ------------------------------------------------------------------ create
    @classmethod
    def from_level(
        cls,
        level: int,
        species: list[int | str],
        min_dist: float = 2.0,
        max_dist: float = 5.0,
        radial_basis_size: int = 8,
        seed: int | None = 0,
    ) -> MTPPotential:
        """A new potential of ``level`` for ``species`` with initialized coefficients.

        Parameters
        ----------
        level : int
            MTP level (even, 2..28).
        species : list of int or str
            Atomic numbers or symbols, in MLIP type order.
        min_dist, max_dist : float
            Radial interval in Å.
        radial_basis_size : int
            Number of Chebyshev functions.
        seed : int or None
            Seed of the radial coefficient initialization (``None``: leave coefficients unset).
        """
        zs = [atomic_numbers[z] if isinstance(z, str) else int(z) for z in species]
        pot = cls(generate_basis(level), zs, min_dist, max_dist, radial_basis_size)
        if seed is not None:
            pot.initialize(np.random.default_rng(seed))
        return pot

    def initialize(self, rng: np.random.Generator) -> None:
        """Set unset coefficients: zero linear ones; radial ones ``f_mu ~ T_mu(s) (R_cut - r)^2 / (R_cut - R_min)^2``.

        The radial coefficients are the identity (radial function ``mu`` is
        Chebyshev term ``mu``) plus uniform noise of 0.1, divided by
        ``(R_cut - R_min)^2`` so that ``|f_mu| <= ~1``.
        """
        s, n_mu, nq = self.n_species, self.basis.radial_funcs_count, self.radial_basis_size
        if self.radial_coeffs is None:
            c = rng.uniform(-0.1, 0.1, (s, s, n_mu, nq))
            for mu in range(n_mu):
                c[:, :, mu, mu % nq] += 1.0
            self.radial_coeffs = c / (self.max_dist - self.min_dist) ** 2
        if self.species_coeffs is None:
            self.species_coeffs = np.zeros(s)
        if self.moment_coeffs is None:
            self.moment_coeffs = np.zeros(self.basis.alpha_scalar_moments)

    # -------------------------------------------------------------- properties
    @property
    def n_species(self) -> int:
        """Number of species ``S``."""
        return len(self.species)

    @property
    def level(self) -> int | None:
        """Level of the basis (``None`` if unknown)."""
        return self.basis.level

    @property
    def n_linear(self) -> int:
        """Number of linear parameters ``S + m``."""
        return self.n_species + self.basis.alpha_scalar_moments

    @property
    def n_parameters(self) -> int:
        """Total number of parameters (MLIP's count)."""
        return self.n_linear + self.n_species**2 * self.basis.radial_funcs_count * self.radial_basis_size

    @property
    def is_trained(self) -> bool:
        """Whether all coefficient arrays are set."""
        return all(x is not None for x in (self.radial_coeffs, self.species_coeffs, self.moment_coeffs))

    @property
    def parameters(self) -> np.ndarray:
        """Flat parameter vector (layout in the module docstring)."""
        self._require_trained()
        return np.concatenate([self.species_coeffs, self.moment_coeffs, self.radial_coeffs.ravel()])

    @parameters.setter
    def parameters(self, theta: np.ndarray) -> None:
        theta = np.asarray(theta, dtype=float).ravel()
        if theta.size != self.n_parameters:
            raise ValueError(f"expected {self.n_parameters} parameters, got {theta.size}")
        s, m = self.n_species, self.basis.alpha_scalar_moments
        self.species_coeffs = theta[:s].copy()
        self.moment_coeffs = theta[s : s + m].copy()
        self.radial_coeffs = theta[s + m :].reshape(s, s, self.basis.radial_funcs_count, self.radial_basis_size).copy()

    def copy(self) -> MTPPotential:
        """Deep copy of the coefficient arrays (the basis is immutable and shared)."""
        cp = lambda x: None if x is None else np.array(x, copy=True)  # noqa: E731
        return replace(
            self,
            species=list(self.species),
            radial_coeffs=cp(self.radial_coeffs),
            species_coeffs=cp(self.species_coeffs),
            moment_coeffs=cp(self.moment_coeffs),
            extra=dict(self.extra),
        )

    # ------------------------------------------------------------------ types
    def types_of(self, numbers: np.ndarray) -> np.ndarray:
        """MLIP type indices of atomic numbers; a clear error for unknown species."""
        numbers = np.asarray(numbers, dtype=np.int64)
        if any(z <= 0 for z in self.species):
            raise ValueError(
                "the potential's species are not set (an .mtp file does not name them); "
                "pass species=[...] when reading it, e.g. read_mtp(path, species=['Si'])"
            )
        lookup = np.full(max(max(self.species), int(numbers.max(initial=0))) + 1, -1, dtype=np.int64)
        lookup[self.species] = np.arange(self.n_species)
        types = lookup[numbers]
        if (types < 0).any():
            unknown = sorted({chemical_symbols[z] for z in numbers[types < 0]})
            known = [chemical_symbols[z] for z in self.species]
            raise ValueError(
                f"structure contains species {unknown} that the potential does not know "
                f"(it was built for {known}); fit a potential that includes them"
            )
        return types

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise ValueError(
                "the potential has no coefficients (an untrained template); fit it first "
                "or call potential.initialize(numpy.random.default_rng())"
            )
