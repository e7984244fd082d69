"""Polynomials of the CCDs invariant under the cluster point group.

For each degree ``d`` the invariant space is spanned by the Reynolds images
``R(m) = (1/|G|) sum_g m(D(g) q)`` of the degree-``d`` monomials ``m``.  A
linearly independent subset is chosen by a rank-revealing (pivoted) QR of the
Reynolds images evaluated at random points; each chosen invariant is then
expanded exactly into monomial coefficients.  The dimension found is checked
against the Molien series

    ``H(t) = (1/|G|) sum_g 1 / det(I - t D(g))``,

whose coefficients are computed from power sums (``tr D(g)^k``) with Newton's
identities.

Example
-------
>>> import numpy as np
>>> from pes_core.ccd.invariants import invariant_basis
>>> ops = np.array([np.eye(2), -np.eye(2)])          # the group {1, -1} on R^2
>>> basis = invariant_basis(ops, max_degree=2)
>>> basis.counts, basis.molien                        # degree 0..2
((0, 0, 3), (1, 0, 3))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations_with_replacement

import numpy as np
import scipy.linalg
import torch

__all__ = ["InvariantBasis", "invariant_basis", "molien_coefficients", "reynolds_rank"]


def molien_coefficients(ops: np.ndarray, max_degree: int) -> np.ndarray:
    """Coefficients ``c_0 .. c_max_degree`` of the Molien series (integers).

    Parameters
    ----------
    ops : numpy.ndarray
        ``(n_ops, N, N)`` matrices of the group acting on the variables.
    max_degree : int
        Highest degree.

    Raises
    ------
    ValueError
        If a coefficient is not close to an integer (the matrices are not a group).
    """
    ops = np.asarray(ops, dtype=float)
    n_ops = len(ops)
    p = np.zeros((n_ops, max_degree + 1))
    mk = np.broadcast_to(np.eye(ops.shape[1]), ops.shape).copy()
    for k in range(1, max_degree + 1):
        mk = mk @ ops
        p[:, k] = np.trace(mk, axis1=1, axis2=2)
    h = np.zeros((n_ops, max_degree + 1))
    h[:, 0] = 1.0
    for d in range(1, max_degree + 1):
        h[:, d] = sum(p[:, k] * h[:, d - k] for k in range(1, d + 1)) / d
    c = h.mean(axis=0)
    if not np.allclose(c, np.rint(c), atol=1e-6):
        raise ValueError(f"Molien coefficients are not integers ({c}); the matrices do not form a group")
    return np.rint(c).astype(int)


def _monomial_levels(n_vars: int, max_degree: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Monomials of degree 1..max_degree with prefix-tree links.

    Returns, per degree, ``(monos, parent, last)``: ``monos`` ``(M_d, d)``
    sorted index tuples, ``parent`` the row of ``monos[:, :-1]`` in the
    previous degree, ``last`` the final index.
    """
    levels = []
    prev_index: dict[tuple[int, ...], int] = {(): 0}
    for d in range(1, max_degree + 1):
        monos = list(combinations_with_replacement(range(n_vars), d))
        parent = np.array([prev_index[m[:-1]] for m in monos], dtype=int)
        last = np.array([m[-1] for m in monos], dtype=int)
        levels.append((np.array(monos, dtype=int).reshape(-1, d), parent, last))
        prev_index = {m: i for i, m in enumerate(monos)}
    return levels


def _reynolds_values(ops: np.ndarray, levels, points: np.ndarray) -> list[np.ndarray]:
    """Per degree, ``(K, M_d)`` values of the Reynolds images of all monomials at ``points``."""
    out = [np.zeros((len(points), len(lv[0]))) for lv in levels]
    for g in ops:
        y = points @ g.T
        val = y
        out[0] += val
        for d in range(1, len(levels)):
            _, parent, last = levels[d]
            val = val[:, parent] * y[:, last]
            out[d] += val
    return [o / len(ops) for o in out]


def _independent_columns(a: np.ndarray, rtol: float, chunk: int = 512) -> np.ndarray:
    """Greedy (left-to-right) choice of linearly independent columns of ``a``.

    Columns are normalized; a column is kept when its component orthogonal
    to all earlier columns exceeds ``rtol``.  Block Gram-Schmidt against the
    kept columns, then an unpivoted Householder QR inside each block (whose
    ``|R_jj|`` is exactly that orthogonal component).
    """
    norms = np.linalg.norm(a, axis=0)
    keep_mask = norms > 1e-12 * max(norms.max(initial=0.0), 1e-300)
    cols = np.flatnonzero(keep_mask)
    if len(cols) == 0:
        return cols
    a = a[:, cols] / norms[cols]
    k = a.shape[0]
    basis = np.zeros((k, 0))
    chosen: list[int] = []
    s = 0
    while s < a.shape[1] and basis.shape[1] < k:
        width = max(1, min(chunk, k - basis.shape[1]))
        blk = a[:, s : s + width]
        for _ in range(2):  # re-orthogonalize once for stability
            blk = blk - basis @ (basis.T @ blk)
        cand = np.flatnonzero(np.linalg.norm(blk, axis=0) > rtol)
        if len(cand):
            (r,) = scipy.linalg.qr(blk[:, cand], mode="r")
            new = cand[np.flatnonzero(np.abs(np.diag(r)) > rtol)]
            if len(new):
                # orthonormalize the kept columns themselves (the Q of the
                # full block contains noise directions of dependent columns)
                qq, r2 = scipy.linalg.qr(blk[:, new], mode="economic")
                ok = np.abs(np.diag(r2)) > rtol
                new, qq = new[ok], qq[:, ok]
                chosen.extend((s + new).tolist())
                basis = np.hstack([basis, qq])
        s += width
    return cols[np.array(chosen, dtype=int)]


def _select_all(ops: np.ndarray, max_degree: int, n_points: int, rtol: float, seed: int):
    """Per degree: ``(monos, chosen rows, rank)``."""
    n_vars = ops.shape[1]
    levels = _monomial_levels(n_vars, max_degree)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_points, n_vars))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    values = _reynolds_values(ops, levels, x)
    out = []
    for (monos, _, _), a in zip(levels, values):
        chosen = _independent_columns(a, rtol)
        out.append((monos, chosen, len(chosen)))
    return out


def _expand(ops: np.ndarray, mono: np.ndarray, n_vars: int) -> dict[tuple[int, ...], float]:
    """Exact monomial coefficients of the Reynolds image of one monomial."""
    d = len(mono)
    rows = ops[:, mono, :]  # (G, d, N)
    nz = np.abs(rows) > 1e-14
    b = int(nz.sum(axis=2).max())
    order = np.argsort(~nz, axis=2, kind="stable")[:, :, :b]
    cols = order
    vals = np.take_along_axis(rows, order, axis=2) * np.take_along_axis(nz, order, axis=2)
    combos = np.stack(np.meshgrid(*[np.arange(b)] * d, indexing="ij"), -1).reshape(-1, d)
    ar = np.arange(d)
    cc = cols[:, ar[None, :], combos]  # (G, C, d)
    vv = np.prod(vals[:, ar[None, :], combos], axis=2)  # (G, C)
    cc = np.sort(cc, axis=2).reshape(-1, d)
    vv = vv.reshape(-1)
    keys = (cc * (n_vars ** np.arange(d))[None, :]).sum(axis=1)
    uk, inv = np.unique(keys, return_inverse=True)
    coef = np.bincount(inv, weights=vv) / len(ops)
    first = np.zeros(len(uk), dtype=int)
    first[inv] = np.arange(len(inv))
    out = {}
    cmax = np.abs(coef).max()
    for u, c, f in zip(uk, coef, first):
        if abs(c) > 1e-12 * cmax:
            out[tuple(int(v) for v in cc[f])] = float(c)
    return out


def reynolds_rank(
    ops: np.ndarray, max_degree: int, n_points: int, rtol: float = 1e-8, seed: int = 0
) -> list[int]:
    """Dimension of the span of the Reynolds images of all monomials, per degree 1..max_degree.

    Independent of the Molien series.  ``n_points`` random points bound the
    detectable rank, so choose it larger than the expected dimension.
    """
    sel = _select_all(np.asarray(ops, dtype=float), max_degree, n_points, rtol, seed)
    return [rank for _, _, rank in sel]


@dataclass(frozen=True, eq=False)
class InvariantBasis:
    """Linearly independent invariant polynomials of degrees 1..max_degree.

    Attributes
    ----------
    n_vars : int
        Number of variables (CCDs).
    max_degree : int
        Highest degree.
    monomials : tuple of tuple of int
        Variable indices of every monomial used (sorted within a monomial).
    coeffs : numpy.ndarray
        ``(n_monomials, n_basis)``; basis function ``b`` is
        ``sum_m coeffs[m, b] * prod(q[monomials[m]])``.
    degrees : numpy.ndarray
        Degree of every basis function.
    counts : tuple of int
        Number of independent invariants found for degree 0..max_degree
        (degree 0, the constant, is counted in :attr:`molien` only).
    molien : tuple of int
        Molien series coefficients for degree 0..max_degree.
    """

    n_vars: int
    max_degree: int
    monomials: tuple[tuple[int, ...], ...] = field(repr=False)
    coeffs: np.ndarray = field(repr=False)
    degrees: np.ndarray = field(repr=False)
    counts: tuple[int, ...]
    molien: tuple[int, ...]

    @property
    def n_basis(self) -> int:
        """Number of basis functions."""
        return self.coeffs.shape[1]

    def evaluate(self, q: np.ndarray) -> np.ndarray:
        """Evaluate all basis functions at ``q`` ``(..., n_vars)`` (numpy)."""
        q = np.asarray(q, dtype=float)
        mon = np.stack([np.prod(q[..., list(m)], axis=-1) for m in self.monomials], axis=-1)
        return mon @ self.coeffs

    def evaluator(self) -> PolynomialEvaluator:
        """A torch module evaluating the basis (differentiable)."""
        return PolynomialEvaluator(self)


class PolynomialEvaluator(torch.nn.Module):
    """Evaluate an :class:`InvariantBasis` on torch tensors ``(..., n_vars)``.

    Monomials are built degree by degree (each from a lower-degree prefix
    times one variable), then contracted with the coefficient matrix.
    """

    def __init__(self, basis: InvariantBasis) -> None:
        super().__init__()
        needed: dict[tuple[int, ...], None] = {}
        for m in basis.monomials:
            for k in range(1, len(m) + 1):
                needed[m[:k]] = None
        by_deg: dict[int, list[tuple[int, ...]]] = {}
        for m in needed:
            by_deg.setdefault(len(m), []).append(m)
        self.max_degree = max(by_deg) if by_deg else 0
        position: dict[tuple[int, ...], int] = {}
        offset = 0
        for d in range(1, self.max_degree + 1):
            ms = sorted(by_deg.get(d, []))
            for i, m in enumerate(ms):
                position[m] = offset + i
            if d > 1:
                parent = torch.tensor([position[m[:-1]] - prev_offset for m in ms], dtype=torch.long)
                last = torch.tensor([m[-1] for m in ms], dtype=torch.long)
                self.register_buffer(f"parent{d}", parent)
                self.register_buffer(f"last{d}", last)
            else:
                self.register_buffer("first", torch.tensor([m[0] for m in ms], dtype=torch.long))
            prev_offset = offset
            offset += len(ms)
        rows = torch.tensor([position[m] for m in basis.monomials], dtype=torch.long)
        coeffs = torch.zeros(offset, basis.n_basis, dtype=torch.float64)
        coeffs[rows] = torch.as_tensor(basis.coeffs, dtype=torch.float64)
        # one coefficient block per degree (no concatenation at run time)
        start = 0
        self.n_levels = 0
        for d in range(1, self.max_degree + 1):
            n = len(by_deg.get(d, []))
            self.register_buffer(f"coeffs{d}", coeffs[start : start + n].clone())
            start += n
            self.n_levels += 1
        self.n_basis = basis.n_basis

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """``(..., n_vars)`` -> ``(..., n_basis)``."""
        lead = q.shape[:-1]
        if self.max_degree == 0:
            return q.new_zeros(lead + (0,))
        # variables along the first axis: every gather below copies whole rows
        qt = q.reshape(-1, q.shape[-1]).t().contiguous()
        level = qt.index_select(0, self.first)
        out = self.coeffs1.t().to(q.dtype) @ level
        for d in range(2, self.max_degree + 1):
            level = level.index_select(0, getattr(self, f"parent{d}")) * qt.index_select(
                0, getattr(self, f"last{d}")
            )
            out = out + getattr(self, f"coeffs{d}").t().to(q.dtype) @ level
        return out.t().reshape(lead + (self.n_basis,))


def invariant_basis(
    ops: np.ndarray,
    max_degree: int,
    rtol: float = 1e-8,
    seed: int = 0,
    check_molien: bool = True,
    extra_points: int = 40,
) -> InvariantBasis:
    """Independent invariant polynomials up to ``max_degree`` (Reynolds operator).

    Parameters
    ----------
    ops : numpy.ndarray
        ``(n_ops, N, N)`` orthogonal matrices of the group acting on the variables.
    max_degree : int
        Highest polynomial degree (e.g. 2, 4 or 6).
    rtol : float
        Relative threshold on the pivoted-QR diagonal for linear independence.
    seed : int
        Seed of the random evaluation points (results are deterministic).
    check_molien : bool
        Raise if the number found for a degree differs from the Molien coefficient.
    extra_points : int
        Evaluation points beyond the Molien count (so a larger rank would show).

    Returns
    -------
    InvariantBasis
        Each invariant scaled to a largest coefficient of 1.
    """
    ops = np.asarray(ops, dtype=float)
    n_vars = ops.shape[1]
    molien = molien_coefficients(ops, max_degree)
    monomials: dict[tuple[int, ...], int] = {}
    columns: list[dict[tuple[int, ...], float]] = []
    degrees: list[int] = []
    counts = [0]
    n_points = int(molien[1:].max(initial=0)) + extra_points
    selection = _select_all(ops, max_degree, n_points, rtol, seed)
    for d, (monos, chosen, rank) in enumerate(selection, start=1):
        if check_molien and rank != molien[d]:
            raise RuntimeError(
                f"degree {d}: {rank} independent Reynolds invariants but Molien series says {molien[d]}; "
                "loosen rtol or check the group matrices"
            )
        counts.append(rank)
        for c in chosen:
            poly = _expand(ops, monos[c], n_vars)
            scale = max(abs(v) for v in poly.values())
            columns.append({m: v / scale for m, v in poly.items()})
            degrees.append(d)
            for m in poly:
                monomials.setdefault(m, len(monomials))
    coeffs = np.zeros((len(monomials), len(columns)))
    for b, poly in enumerate(columns):
        for m, v in poly.items():
            coeffs[monomials[m], b] = v
    return InvariantBasis(
        n_vars=n_vars,
        max_degree=max_degree,
        monomials=tuple(monomials),
        coeffs=coeffs,
        degrees=np.asarray(degrees, dtype=int),
        counts=tuple(counts),
        molien=tuple(int(v) for v in molien),
    )
