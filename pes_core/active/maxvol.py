"""The maxvol algorithm (Goreinov et al.) on a square active set.

Pure linear algebra, no potentials: rows are plain vectors.  An active set is
a square ``n x n`` matrix ``A`` of selected rows; a candidate row ``b`` has the
coefficients ``c = b A^{-1}`` and the *grade* ``max_k |c_k|``.  Swapping the
candidate into row ``k`` multiplies ``|det A|`` by ``|c_k|``, so every swap
with ``|c_k| > tolerance > 1`` increases the volume and the loop terminates.

>>> import numpy as np
>>> state = MaxvolState.empty(2)
>>> report = state.update(np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]]))
>>> sorted(report.added_rows)
[0, 1]
>>> float(np.abs(np.linalg.det(state.matrix)))
2.0
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["INIT_VALUE", "SWAP_TOLERANCE", "MaxvolReport", "MaxvolState", "row_grades"]

#: diagonal of a fresh active set (MLIP's INIT_VALUE): every real row beats it
INIT_VALUE = 1e-6
#: a candidate is swapped in while its largest |c| exceeds this (MLIP's 1.001)
SWAP_TOLERANCE = 1.001


def row_grades(rows: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """``max_k |(b A^{-1})_k|`` for every row ``b`` of ``rows`` (``(R, n)`` -> ``(R,)``)."""
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    if rows.shape[0] == 0:
        return np.zeros(0)
    return np.abs(rows @ inverse).max(axis=1)


@dataclass
class MaxvolReport:
    """What one :meth:`MaxvolState.update` did.

    Parameters
    ----------
    swaps : list of tuple
        ``(candidate row, active-set position, |c|)`` of every swap, in order
        (candidate row ``-1``: a row displaced earlier went back in).
    added_rows : list of int
        Candidate rows that are in the active set after the update.
    log_det_history : list of float
        ``log|det A|`` before the first swap and after each swap.
    """

    swaps: list[tuple[int, int, float]] = field(default_factory=list)
    added_rows: list[int] = field(default_factory=list)
    log_det_history: list[float] = field(default_factory=list)


@dataclass
class MaxvolState:
    """A square active set ``A`` with its inverse and the owner of every row.

    Parameters
    ----------
    matrix : numpy.ndarray
        ``A``, ``(n, n)``; row ``k`` is the ``k``-th selected row.
    inverse : numpy.ndarray
        ``A^{-1}``, ``(n, n)``.
    owners : numpy.ndarray
        ``(n,)`` integer labels of the rows (``-1``: an initial placeholder row).
    """

    matrix: np.ndarray
    inverse: np.ndarray
    owners: np.ndarray

    @classmethod
    def empty(cls, n: int, init_value: float = INIT_VALUE) -> MaxvolState:
        """``A = init_value * I`` with placeholder owners (MLIP's fresh selection state)."""
        if n < 1:
            raise ValueError(f"an active set needs at least one column, got n = {n}")
        return cls(np.eye(n) * init_value, np.eye(n) / init_value, np.full(n, -1, dtype=np.int64))

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0])

    def copy(self) -> MaxvolState:
        return MaxvolState(self.matrix.copy(), self.inverse.copy(), self.owners.copy())

    def grades(self, rows: np.ndarray) -> np.ndarray:
        """Grades of ``rows`` (``(R, n)``) against this active set."""
        return row_grades(rows, self.inverse)

    def refresh_inverse(self) -> None:
        """Recompute ``A^{-1}`` from ``A`` (removes rank-1 update drift)."""
        self.inverse = np.linalg.inv(self.matrix)

    def update(self, rows: np.ndarray, labels: np.ndarray | None = None,
               tolerance: float = SWAP_TOLERANCE, max_swaps: int | None = None) -> MaxvolReport:
        """Swap candidate ``rows`` into the active set while one grades above ``tolerance``.

        Parameters
        ----------
        rows : numpy.ndarray
            Candidates, ``(R, n)``.
        labels : numpy.ndarray, optional
            Owner label of each candidate row (default ``0 .. R-1``); kept in
            :attr:`owners` for rows that enter the set.
        tolerance : float
            Swap threshold on ``|c|`` (> 1).
        max_swaps : int, optional
            Hard cap on swaps (default ``10 * (n + R)``); the loop ends earlier
            in practice since each swap grows ``|det A|`` by more than ``tolerance``.

        Returns
        -------
        MaxvolReport
            Swaps, candidate rows now in the set, and the ``log|det A|`` history.
        """
        if tolerance <= 1.0:
            raise ValueError(f"tolerance must exceed 1 (got {tolerance}); otherwise maxvol may not terminate")
        pool = np.array(np.atleast_2d(rows), dtype=float)
        n = self.size
        if pool.shape[0] == 0:
            return MaxvolReport(log_det_history=[float(np.linalg.slogdet(self.matrix)[1])])
        if pool.shape[1] != n:
            raise ValueError(f"candidate rows have {pool.shape[1]} columns but the active set has {n}")
        r = pool.shape[0]
        pool_ids = np.arange(r) if labels is None else np.asarray(labels, dtype=np.int64).copy()
        # provenance of each pool slot: candidate index (>= 0) or -(1 + active position) for displaced rows
        slot_src = np.arange(r, dtype=np.int64)
        a_src = np.full(n, -1, dtype=np.int64)  # candidate index owning each active row (-1: old row)
        cap = 10 * (n + r) if max_swaps is None else int(max_swaps)
        c = pool @ self.inverse
        logdet = float(np.linalg.slogdet(self.matrix)[1])
        report = MaxvolReport(log_det_history=[logdet])
        a, ainv = self.matrix, self.inverse
        while len(report.swaps) < cap:
            i, j = np.unravel_index(int(np.argmax(np.abs(c))), c.shape)
            g = float(c[i, j])
            if not np.isfinite(g) or abs(g) <= tolerance:
                break
            d = c[i].copy()
            d[j] -= 1.0
            old_row, old_owner, old_src = a[j].copy(), self.owners[j], a_src[j]
            a[j] = pool[i]
            self.owners[j] = pool_ids[i]
            a_src[j] = slot_src[i]
            col = ainv[:, j].copy()
            ainv -= np.outer(col, d) / g
            c -= np.outer(c[:, j], d) / g
            # the displaced row goes back into the pool slot (it may be swapped in again later)
            pool[i], pool_ids[i], slot_src[i] = old_row, old_owner, old_src
            c[i] = old_row @ ainv
            report.swaps.append((int(a_src[j]), int(j), abs(g)))
            logdet += float(np.log(abs(g)))
            report.log_det_history.append(logdet)
        self.refresh_inverse()
        report.added_rows = sorted(int(s) for s in a_src if s >= 0)
        return report

