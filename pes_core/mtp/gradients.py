"""Derivatives of energies with respect to the parameters (rows for active learning).

For the maxvol / D-optimality selection of Podryabinkin and Shapeev, a
configuration is represented by ``b = (1/N) dE/dtheta`` and an atom by
``dV_i/dtheta``.  ``theta`` is the flat parameter vector of
:class:`~pes_core.mtp.potential.MTPPotential` (``species_coeffs``,
``moment_coeffs``, then ``radial_coeffs`` C-ordered ``[z_i, z_j, mu, beta]``);
the linear part is its first ``S + m`` entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from pes_core.mtp.engine import evaluate_pairs
from pes_core.mtp.neighbours import build_pairs
from pes_core.mtp.potential import MTPPotential

__all__ = ["ParameterGradients", "parameter_gradients"]


@dataclass
class ParameterGradients:
    """Energy derivatives of one structure.

    Parameters
    ----------
    site_rows : numpy.ndarray
        ``dV_i/dtheta``, ``(N, n)`` (eV per parameter unit).
    config_row : numpy.ndarray
        ``(1/N) dE/dtheta``, ``(n,)``.
    include_radial : bool
        Whether the rows cover all parameters (``n = n_parameters``) or only the
        linear ones (``n = S + m``).
    """

    site_rows: np.ndarray
    config_row: np.ndarray
    include_radial: bool


def parameter_gradients(pot: MTPPotential, atoms: Atoms, include_radial: bool = False) -> ParameterGradients:
    """Per-atom and per-configuration energy gradients over the parameters.

    Parameters
    ----------
    pot : MTPPotential
        Trained potential.
    atoms : ase.Atoms
        Structure.
    include_radial : bool
        Also differentiate with respect to the radial coefficients.

    Examples
    --------
    >>> from ase.build import bulk
    >>> pot = MTPPotential.from_level(6, ["Si"])
    >>> parameter_gradients(pot, bulk("Si")).config_row.shape
    (6,)
    """
    types = pot.types_of(atoms.numbers)
    pairs = build_pairs(atoms, pot.max_dist)
    res = evaluate_pairs(pot, pairs, types, forces=include_radial, keep=include_radial)
    n, s = len(atoms), pot.n_species
    onehot = np.zeros((n, s))
    onehot[np.arange(n), types] = 1.0
    rows = [onehot, res.basis_values]
    if include_radial:
        n_mu, n_q = pot.basis.radial_funcs_count, pot.radial_basis_size
        radial = np.zeros((n, s, s, n_mu, n_q))
        if len(pairs.i):
            per_pair = pot.scaling * res.d_site_d_f[:, :, None] * res.radial_q[:, None, :]  # (P, N_mu, N_Q)
            key = pairs.i * s + types[pairs.j]
            acc = np.zeros((n * s, n_mu * n_q))
            np.add.at(acc, key, per_pair.reshape(len(key), -1))
            acc = acc.reshape(n, s, n_mu, n_q)
            radial[np.arange(n), types] = acc
        rows.append(radial.reshape(n, -1))
    site_rows = np.concatenate(rows, axis=1)
    return ParameterGradients(site_rows, site_rows.sum(axis=0) / n, include_radial)
