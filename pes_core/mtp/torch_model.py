"""Batched, differentiable MTP evaluation in torch (used by the nonlinear fit).

Positions are fixed during a fit, so everything geometric (unit-vector
monomials, radial basis values and derivatives, pair bookkeeping) is
precomputed once in :class:`TorchBatch`.  The parameters enter through

* the radial functions ``f = scaling * C[z_i, z_j] Q`` per pair,
* the moment tensors ``Mom[i] = f_pad[i]^T mono_pad[i]`` (batched matmul),
* the contraction program (gather/multiply/scatter per layer),
* the site energies ``xi0[z_i] + xi . B(i)``.

Forces use the same analytic pair gradient as the numpy engine, with
``dE/dMom`` from autograd through the (cheap, per-atom) contraction program,
so the loss needs only first-order autograd through pair-sized tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pes_core.mtp.engine import get_plan
from pes_core.mtp.neighbours import PairList
from pes_core.mtp.potential import MTPPotential
from pes_core.mtp.radial import chebyshev_radial_basis

__all__ = ["TorchBatch", "TorchMTP"]


@dataclass
class TorchBatch:
    """Fixed geometry of many structures, concatenated (atoms and pairs).

    Attributes hold torch tensors (float64): ``types`` (N,), ``config`` (N,)
    config index of each atom, ``n_atoms`` (C,), ``pi``/``pj``/``slot`` (P,),
    ``pair_config`` (P,), ``pair_type`` (P,) = ``z_i * S + z_j``, ``vec`` (P, 3),
    ``dist`` (P,), ``u`` (P, 3), ``q``/``dq`` (P, N_Q), ``mono_pad`` (N, n_max, n_mono).
    """

    types: torch.Tensor
    config: torch.Tensor
    n_atoms: torch.Tensor
    pi: torch.Tensor
    pj: torch.Tensor
    slot: torch.Tensor
    pair_config: torch.Tensor
    pair_type: torch.Tensor
    vec: torch.Tensor
    dist: torch.Tensor
    u: torch.Tensor
    q: torch.Tensor
    dq: torch.Tensor
    mono_pad: torch.Tensor
    n_max: int

    @classmethod
    def build(cls, pot: MTPPotential, pair_lists: list[PairList], types_list: list[np.ndarray]) -> TorchBatch:
        """Concatenate the geometry of several structures for ``pot``'s basis and radial interval."""
        plan = get_plan(pot.basis)
        s = pot.n_species
        offs = np.cumsum([0] + [p.n_atoms for p in pair_lists])
        n_tot = int(offs[-1])
        pi = np.concatenate([p.i + o for p, o in zip(pair_lists, offs)]).astype(np.int64)
        pj = np.concatenate([p.j + o for p, o in zip(pair_lists, offs)]).astype(np.int64)
        vec = np.concatenate([p.vectors for p in pair_lists]).reshape(-1, 3)
        dist = np.concatenate([p.distances for p in pair_lists])
        types = np.concatenate(types_list).astype(np.int64)
        config = np.repeat(np.arange(len(pair_lists)), [p.n_atoms for p in pair_lists])
        counts = np.bincount(pi, minlength=n_tot)
        n_max = max(int(counts.max(initial=0)), 1)
        starts = np.cumsum(counts) - counts
        slot = np.arange(len(pi)) - starts[pi]
        u = vec / dist[:, None] if len(dist) else np.zeros((0, 3))
        q, dq = chebyshev_radial_basis(dist, pot.min_dist, pot.max_dist, pot.radial_basis_size)
        mono_t = np.zeros((plan.n_mono, n_tot, n_max))
        u_pad = np.zeros((3, n_tot, n_max))
        u_pad[:, pi, slot] = u.T
        mono_t[0] = 1.0
        for c in range(1, plan.n_mono):
            np.multiply(mono_t[plan.mono_parent_list[c]], u_pad[plan.mono_axis_list[c]], out=mono_t[c])
        mono_pad = np.ascontiguousarray(mono_t.transpose(1, 2, 0))
        t = lambda x, dt=torch.float64: torch.as_tensor(x, dtype=dt)  # noqa: E731
        return cls(
            t(types, torch.long), t(config, torch.long),
            t([p.n_atoms for p in pair_lists]), t(pi, torch.long), t(pj, torch.long), t(slot, torch.long),
            t(config[pi] if len(pi) else np.zeros(0, dtype=np.int64), torch.long),
            t(types[pi] * s + types[pj] if len(pi) else np.zeros(0, dtype=np.int64), torch.long),
            t(vec), t(dist), t(u), t(q), t(dq), t(mono_pad), n_max,
        )


class TorchMTP:
    """Differentiable energies, forces and virials of a :class:`TorchBatch`.

    Parameters
    ----------
    pot : MTPPotential
        Supplies the basis, species count and scaling (its coefficients are not used).
    """

    def __init__(self, pot: MTPPotential) -> None:
        plan = get_plan(pot.basis)
        self.plan = plan
        self.n_species = pot.n_species
        self.scaling = float(pot.scaling)
        self.n_mu = plan.n_mu
        # reorder moments so that each layer writes a contiguous block
        order = [np.arange(plan.n_basic)]
        for lay in plan.layers:
            order.append(lay.k_unique)
        order = np.concatenate(order)
        new_index = np.full(plan.n_moments, -1, dtype=np.int64)
        new_index[order] = np.arange(len(order))
        self.layers = []
        for lay in plan.layers:
            k_local = np.searchsorted(lay.k_unique, lay.k)
            self.layers.append((
                torch.as_tensor(new_index[lay.i]), torch.as_tensor(new_index[lay.j]),
                torch.as_tensor(lay.mult), torch.as_tensor(k_local), len(lay.k_unique),
            ))
        self.mapping = torch.as_tensor(new_index[plan.mapping])
        self.basic_flat = torch.as_tensor(plan.basic_flat)
        self.hi = torch.as_tensor(plan.hi)
        self.hi_coef = torch.as_tensor(plan.hi_coef)
        self.degree = torch.as_tensor(plan.mono_degree)

    def __call__(self, batch: TorchBatch, species_coeffs: torch.Tensor, moment_coeffs: torch.Tensor,
                 radial_coeffs: torch.Tensor, forces: bool = True):
        """Energies ``(C,)`` in eV, forces ``(N, 3)`` in eV/Å and virials ``(C, 3, 3)`` in eV."""
        plan, n_mu, s = self.plan, self.n_mu, self.n_species
        n = batch.types.shape[0]
        n_conf = batch.n_atoms.shape[0]
        coeffs = self.scaling * radial_coeffs.reshape(s * s * n_mu, -1)

        def radial(q: torch.Tensor) -> torch.Tensor:
            out = q @ coeffs.T  # (P, S*S*N_mu)
            if s == 1:
                return out
            idx = (batch.pair_type[:, None] * n_mu + torch.arange(n_mu)[None, :])
            return torch.gather(out, 1, idx)

        f = radial(batch.q)
        n_mono = plan.n_mono
        f_pad = torch.zeros(n, batch.n_max, n_mu, dtype=f.dtype)
        f_pad = f_pad.index_put((batch.pi, batch.slot), f)
        mom = torch.bmm(f_pad.transpose(1, 2), batch.mono_pad)  # (N, N_mu, n_mono)
        mom_ext = torch.cat([mom, torch.zeros(n, n_mu, 1, dtype=mom.dtype)], dim=2)
        basic = mom_ext.reshape(n, -1).index_select(1, self.basic_flat)
        if forces and not basic.requires_grad:
            basic = basic.detach().requires_grad_(True)
        moments = basic
        for i, j, mult, k_local, n_k in self.layers:
            prod = moments.index_select(1, i) * moments.index_select(1, j) * mult
            new = torch.zeros(n, n_k, dtype=prod.dtype).index_add(1, k_local, prod)
            moments = torch.cat([moments, new], dim=1)
        b = moments.index_select(1, self.mapping)
        site = species_coeffs[batch.types] + b @ moment_coeffs
        energy = torch.zeros(n_conf, dtype=site.dtype).index_add(0, batch.config, site)
        if not forces:
            return energy, None, None
        (grad_basic,) = torch.autograd.grad(site.sum(), basic, create_graph=True)
        dmom = torch.zeros(n, n_mu * (n_mono + 1), dtype=f.dtype).index_add(1, self.basic_flat, grad_basic)
        dmom = dmom.reshape(n, n_mu, n_mono + 1)
        parts = [dmom[:, :, :n_mono]]
        for ax in range(3):
            parts.append(dmom.index_select(2, self.hi[ax]) * self.hi_coef[ax])
        parts.append(dmom[:, :, :n_mono] * self.degree)
        w = torch.stack(parts, dim=1).reshape(n, 5 * n_mu, n_mono).transpose(1, 2)  # (N, n_mono, 5 N_mu)
        r = torch.bmm(batch.mono_pad, w)  # (N, n_max, 5 N_mu)
        rp = r[batch.pi, batch.slot].reshape(-1, 5, n_mu)
        df = radial(batch.dq)
        radial = (rp[:, 0] * df).sum(dim=1)
        ang = (rp[:, 1:] * f[:, None, :]).sum(dim=2)  # (P, 4)
        u = batch.u
        g = radial[:, None] * u + (ang[:, :3] - u * ang[:, 3:4]) / batch.dist[:, None]
        frc = torch.zeros(n, 3, dtype=g.dtype).index_add(0, batch.pi, g).index_add(0, batch.pj, -g)
        vir = torch.zeros(n_conf, 9, dtype=g.dtype).index_add(
            0, batch.pair_config, (batch.vec[:, :, None] * g[:, None, :]).reshape(-1, 9)
        ).reshape(n_conf, 3, 3)
        vir = 0.5 * (vir + vir.transpose(1, 2))
        return energy, frc, vir
