"""The BKS potential for silica (Si, O) with Ewald electrostatics: the ``bks`` oracle.

van Beest, Kramer and van Santen, Phys. Rev. Lett. 64, 1955 (1990): fixed
charges q_Si = +2.4 e, q_O = -1.2 e and a Buckingham term per pair,

    phi_ij(r) = q_i q_j e^2 / (4 pi eps0 r) + A_ij exp(-b_ij r) - C_ij / r^6,

with (A in eV, b in 1/Å, C in eV Å^6) Si-O (18003.7572, 4.87318, 133.5381),
O-O (1388.7730, 2.76000, 175.0000) and no Buckingham term for Si-Si.

Two repairs, both standard for BKS:

* Short-range wall (Saika-Voivod, Sciortino and Poole, Phys. Rev. E 63,
  011202 (2000)): the bare BKS pair energy (Coulomb included) has a maximum
  near 1.2 Å (Si-O) and 1.44 Å (O-O) below which -C/r^6 wins and the energy
  falls to minus infinity (Si-O at 0.5 Å: -7,055 eV), so the random
  structures of a search collapse.  Saika-Voivod et al. add
  4 eps_ij [(sigma_ij/r)^30 - (sigma_ij/r)^6] with sigma_SiO = 1.313635 Å,
  eps_SiO = 3.097948e-3 eV, sigma_OO = 1.779239 Å, eps_OO = 1.05105048e-3 eV,
  a steep wall inside those maxima (Si-O at 1.0 Å: +7 eV instead of -37 eV;
  at 0.5 Å: +4.8e10 eV) that lowers the alpha-quartz energy by 6 meV/atom.
* Cutoff: the short-range part (Buckingham + wall) is shifted-force
  truncated at ``cutoff``, phi_sf(r) = phi(r) - phi(rc) - (r - rc) phi'(rc)
  for r < rc, so energy and force go to zero continuously at rc.  Default
  8 Å.  The truncation is part of the model, as in every MD use of BKS (most
  use 5.5 Å after Vollmayr, Kob and Binder, Phys. Rev. B 54, 15808 (1996)),
  and it decides the polymorph ordering: the -C/r^6 tail favours dense
  stishovite.  Measured here (relaxed at 0 GPa, shifted-force cutoff ->
  quartz a, c; E(alpha-cristobalite) - E(quartz); E(stishovite) - E(quartz)):
  6.5 Å: 5.084, 5.597 Å, +31, +128 meV/atom; 8 Å: 5.002, 5.505 Å, +50,
  +35 meV/atom; 10 Å: 4.958, 5.463 Å, +55, -16 meV/atom; 12 Å: 4.939,
  5.447 Å, +56, -38 meV/atom.  Summed to 10 Å with an energy shift only,
  BKS gives the quartz lattice of the BKS paper (a = 4.939, c = 5.447 Å
  against 4.941, 5.449 Å) and puts stishovite 39 meV/atom below quartz.  The
  8 Å default is the longest of these cutoffs that keeps the experimental
  ordering (4-coordinated quartz lowest, stishovite above) with the quartz
  lattice within 1.3 % of the BKS values; ``cutoff: 12`` gives the
  near-untruncated potential with its stishovite ground state.

The Coulomb term is a full Ewald sum for periodic cells (fully non-periodic
cells: a direct sum over all pairs).  The Ewald splitting parameter follows
the cell, alpha = sqrt(pi) (N / V^2)^(1/6) (Fincham's balance of the real
and reciprocal work), the real-space cutoff is s / alpha and the reciprocal
cutoff 2 alpha s with s = sqrt(-ln ewald_accuracy), so both truncation
errors are about ``ewald_accuracy`` relative (default 1e-10).  A cell with a
net charge (not SiO2 stoichiometry) gets the uniform neutralizing background
(the LAMMPS convention), which makes its energy finite and independent of
alpha, but such energies are not comparable with those of neutral cells.

Why not matscipy's ``Ewald`` and ``BeestKramerSanten`` (matscipy 1.3.1):
its Ewald sizes the reciprocal lattice from the diagonal of the cell only and
fails on any non-orthorhombic cell with numpy >= 1.24 (``np.int``; quartz is
hexagonal), and its BKS pair term is energy-shifted only (a force step at the
cutoff).  This calculator uses matscipy's neighbour list (C) for all pairs
and numpy for the rest; energy, forces and stress of 9-atom quartz take
about 5 ms, of 72 atoms 80 ms, of 243 atoms 0.5 s (one core).

The energy zero is separated point ions, so alpha-quartz lies at
-19.32 eV/atom: BKS energies are comparable with each other, not with DFT
or CHGNet totals.

Units: energy eV, forces eV/Å, stress eV/Å^3 (ASE convention, positive under
tension); the oracle reports stress in GPa.

>>> from ase.spacegroup import crystal
>>> quartz = crystal(["Si", "O"], [(0.4697, 0, 2 / 3), (0.4135, 0.2669, 0.7858)], spacegroup=154,
...                  cellpar=[4.913, 4.913, 5.405, 90, 90, 120])
>>> round(BKSCalculator().get_potential_energy(quartz) / len(quartz), 3)
-19.297
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from scipy.special import erfc

from pes_core.oracles.ase_calc import AseCalculatorOracle, _pkg_version

__all__ = ["BKS_CHARGES", "BKS_PAIRS", "COULOMB", "SAIKA_VOIVOD_WALL", "BKSCalculator", "BKSOracle"]

#: e^2 / (4 pi eps0) in eV Å (the value LAMMPS and matscipy use)
COULOMB = 14.399645

#: BKS charges in units of e (PRL 64, 1955 (1990))
BKS_CHARGES = {"Si": 2.4, "O": -1.2}

#: BKS Buckingham parameters: pair -> (A eV, b 1/Å, C eV Å^6); Si-Si has none
BKS_PAIRS = {("O", "Si"): (18003.7572, 4.87318, 133.5381), ("O", "O"): (1388.7730, 2.76000, 175.0000)}

#: Saika-Voivod et al. PRE 63, 011202 (2000) 30-6 wall: pair -> (eps eV, sigma Å)
SAIKA_VOIVOD_WALL = {("O", "Si"): (3.097948e-3, 1.313635), ("O", "O"): (1.05105048e-3, 1.779239)}


def _short_range(r: np.ndarray, a: float, b: float, c: float, eps: float, sig: float) -> tuple[np.ndarray, np.ndarray]:
    """Buckingham + 30-6 wall and its derivative (eV, eV/Å) at distances ``r`` (Å)."""
    e_exp = a * np.exp(-b * r)
    inv6 = r ** -6.0
    s6 = (sig / r) ** 6
    s30 = s6 ** 5
    energy = e_exp - c * inv6 + 4 * eps * (s30 - s6)
    deriv = -b * e_exp + 6 * c * inv6 / r + 4 * eps * (-30 * s30 + 6 * s6) / r
    return energy, deriv


class BKSCalculator(Calculator):
    """ASE calculator of the BKS silica potential (module docstring: form, repairs, parameters).

    Parameters
    ----------
    cutoff : float
        Shifted-force cutoff of the short-range (Buckingham + wall) part in Å (default 8; the
        module docstring gives its effect on the polymorph ordering).
    ewald_accuracy : float
        Relative truncation error of both Ewald sums (default 1e-10).
    repulsion : bool
        Add the Saika-Voivod 30-6 wall (default True; False is bare BKS, which collapses).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]
    default_parameters: ClassVar[dict[str, Any]] = {"cutoff": 8.0, "ewald_accuracy": 1e-10, "repulsion": True}

    def __init__(self, cutoff: float = 8.0, ewald_accuracy: float = 1e-10, repulsion: bool = True, **kwargs: Any):
        super().__init__(cutoff=cutoff, ewald_accuracy=ewald_accuracy, repulsion=repulsion, **kwargs)
        self._pairs: dict[tuple[int, int], tuple[float, ...]] = {}
        rc = float(self.parameters["cutoff"])
        for (el1, el2), (a, b, c) in BKS_PAIRS.items():
            eps, sig = SAIKA_VOIVOD_WALL[(el1, el2)] if self.parameters["repulsion"] else (0.0, 1.0)
            (e_rc,), (d_rc,) = _short_range(np.array([rc]), a, b, c, eps, sig)
            z1, z2 = (Atoms(el).numbers[0] for el in (el1, el2))
            self._pairs[(min(z1, z2), max(z1, z2))] = (a, b, c, eps, sig, float(e_rc), float(d_rc))

    def calculate(self, atoms: Atoms | None = None, properties: list[str] | tuple[str, ...] = ("energy",),
                  system_changes: list[str] = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(BKS_CHARGES))
        if unknown:
            raise ValueError(f"BKS has parameters for Si and O only, got {', '.join(unknown)}")
        pbc = atoms.pbc
        if pbc.any() and not pbc.all():
            raise ValueError(f"BKS needs a fully periodic or a fully non-periodic cell, got pbc={pbc.tolist()}; "
                             "make the cell periodic in all three directions (add vacuum for slabs)")
        periodic = bool(pbc.all())
        q = np.array([BKS_CHARGES[s] for s in atoms.get_chemical_symbols()])
        n = len(atoms)
        s = math.sqrt(-math.log(float(self.parameters["ewald_accuracy"])))
        rc_sr = float(self.parameters["cutoff"])
        if periodic:
            volume = atoms.get_volume()
            alpha = math.sqrt(math.pi) * (n / volume ** 2) ** (1 / 6)
            i, j, r, vec = self._neighbours(atoms, max(rc_sr, s / alpha))
        else:
            i, j, r, vec = self._all_pairs(atoms)

        # Coulomb, real space (periodic: erfc-screened within s / alpha; else bare 1/r)
        qq = COULOMB * q[i] * q[j]
        if periodic:
            keep = r < s / alpha
            ri, qqi = r[keep], qq[keep]
            e_p = qqi * erfc(alpha * ri) / ri
            d_p = -qqi * (erfc(alpha * ri) / ri ** 2 + 2 * alpha / math.sqrt(math.pi) * np.exp(-(alpha * ri) ** 2) / ri)
            energy, fpair, pair_idx = 0.5 * e_p.sum(), d_p, np.nonzero(keep)[0]
        else:
            energy, fpair, pair_idx = 0.5 * (qq / r).sum(), -qq / r ** 2, np.arange(len(r))
        de = np.zeros(len(r))
        de[pair_idx] += fpair

        # short range: Buckingham + wall, shifted-force at rc_sr
        z = atoms.numbers
        zi, zj = np.minimum(z[i], z[j]), np.maximum(z[i], z[j])
        for (z1, z2), (a, b, c, eps, sig, e_rc, d_rc) in self._pairs.items():
            mask = (zi == z1) & (zj == z2) & (r < rc_sr)
            if not mask.any():
                continue
            rm = r[mask]
            e_sr, d_sr = _short_range(rm, a, b, c, eps, sig)
            energy += 0.5 * (e_sr - e_rc - (rm - rc_sr) * d_rc).sum()
            de[mask] += d_sr - d_rc

        # pairs -> forces and virial (each pair listed in both directions)
        w = de / r
        forces = np.zeros((n, 3))
        for k in range(3):
            forces[:, k] = np.bincount(i, weights=w * vec[:, k], minlength=n)
        virial = 0.5 * np.einsum("p,pa,pb->ab", w, vec, vec)

        if periodic:
            e_k, f_k, v_k = self._reciprocal(atoms, q, alpha, 2 * alpha * s)
            total_q = q.sum()
            e_self = -COULOMB * alpha / math.sqrt(math.pi) * (q ** 2).sum()
            e_bg = -COULOMB * math.pi * total_q ** 2 / (2 * volume * alpha ** 2)
            energy += e_k + e_self + e_bg
            forces += f_k
            virial += v_k - e_bg * np.eye(3)
            stress = virial / volume
            self.results["stress"] = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        self.results["energy"] = self.results["free_energy"] = float(energy)
        self.results["forces"] = forces

    @staticmethod
    def _neighbours(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, ...]:
        """All pairs within ``cutoff`` (Å), both directions, periodic images included."""
        from matscipy.neighbours import neighbour_list

        i, j, r, vec = neighbour_list("ijdD", atoms, cutoff)
        return i, j, r, vec

    @staticmethod
    def _all_pairs(atoms: Atoms) -> tuple[np.ndarray, ...]:
        """All pairs i != j of a non-periodic cell, both directions."""
        pos = atoms.positions
        i, j = np.nonzero(~np.eye(len(atoms), dtype=bool))
        vec = pos[j] - pos[i]
        return i, j, np.linalg.norm(vec, axis=1), vec

    @staticmethod
    def _reciprocal(atoms: Atoms, q: np.ndarray, alpha: float, kcut: float) -> tuple[float, np.ndarray, np.ndarray]:
        """Reciprocal-space Ewald energy (eV), forces (eV/Å) and virial dE/dstrain (eV) for |k| < kcut."""
        cell = atoms.cell.array
        volume = abs(np.linalg.det(cell))
        recip = 2 * np.pi * np.linalg.inv(cell).T  # rows b_i with a_i . b_j = 2 pi delta_ij
        # |n_i| = |k . a_i| / (2 pi) <= kcut |a_i| / (2 pi): this box holds every k of the sphere
        nmax = np.floor(kcut * np.linalg.norm(cell, axis=1) / (2 * np.pi)).astype(int)
        grids = np.meshgrid(*(np.arange(-m, m + 1) for m in nmax), indexing="ij")
        nvec = np.stack([g.ravel() for g in grids], axis=1)
        # half space (k and -k give the same term): first nonzero index positive
        first = np.where(nvec[:, 0] != 0, nvec[:, 0], np.where(nvec[:, 1] != 0, nvec[:, 1], nvec[:, 2]))
        nvec = nvec[first > 0]
        kvec = nvec @ recip
        k2 = (kvec ** 2).sum(axis=1)
        keep = k2 < kcut ** 2
        kvec, k2 = kvec[keep], k2[keep]
        if len(k2) == 0:
            return 0.0, np.zeros((len(atoms), 3)), np.zeros((3, 3))
        pref = 2 * (2 * np.pi / volume) * COULOMB * np.exp(-k2 / (4 * alpha ** 2)) / k2  # x2: half space
        phase = kvec @ atoms.positions.T  # (nk, n)
        cos, sin = np.cos(phase), np.sin(phase)
        s_re, s_im = cos @ q, sin @ q
        s2 = s_re ** 2 + s_im ** 2
        e_terms = pref * s2
        energy = float(e_terms.sum())
        # F_n = -dE/dr_n = sum_k pref 2 q_n k (s_re sin_n - s_im cos_n)
        amp = 2 * pref[:, None] * (s_re[:, None] * sin - s_im[:, None] * cos) * q[None, :]  # (nk, n)
        forces = amp.T @ kvec
        # dE/de_ab = sum_k e_k [-delta_ab + 2 k_a k_b (1 / (4 alpha^2) + 1 / k^2)]
        fac = 2 * e_terms * (1 / (4 * alpha ** 2) + 1 / k2)
        virial = np.einsum("k,ka,kb->ab", fac, kvec, kvec) - energy * np.eye(3)
        return energy, forces, virial


class BKSOracle(AseCalculatorOracle):
    """BKS silica potential (PRL 64, 1955 (1990)) with Ewald sums, a short-range wall and a smooth cutoff.

    Si and O in any proportion; SiO2 stoichiometry gives neutral cells.  The
    form, the Saika-Voivod 30-6 wall against the BKS collapse and the
    shifted-force 8 Å cutoff are described in :mod:`pes_core.oracles.bks`.
    Settings: ``cutoff`` (Å, default 8), ``ewald_accuracy`` (relative,
    default 1e-10), ``repulsion`` (bool, default True).  Relaxed at 0 GPa:
    alpha-quartz a = 5.002 Å, c = 5.505 Å (BKS paper: 4.941, 5.449 Å),
    -19.325 eV/atom; alpha-cristobalite +50 meV/atom, stishovite +35 meV/atom.
    """

    name = "bks"
    supported_elements = frozenset({"Si", "O"})

    def make_calculator(self) -> Calculator:
        return BKSCalculator(**{k: v for k, v in self.settings.items()
                                if k in BKSCalculator.default_parameters})

    def code_version(self) -> str:
        return (f"pes_core BKS (PRL 64 1955 (1990)) + Saika-Voivod PRE 63 011202 (2000) wall, Ewald; "
                f"matscipy {_pkg_version('matscipy')} neighbour list")
