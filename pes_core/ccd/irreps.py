"""Characters and Mulliken labels of the irreducible blocks of a CCD transformation.

The characters of a block are computed from the group itself
(``chi(g) = tr D_block(g)``); the label follows Mulliken's conventions, found
from the Cartesian operations:

* dimension 1/2/3 -> A or B / E / T;
* A vs B: character of the principal rotation ``C_n`` (``S_2n`` for groups
  such as D2d that have neither inversion nor a horizontal mirror);
* subscript 1/2: character of a C2 perpendicular to the principal axis, or
  else of a vertical mirror; for cubic groups, of C4 (O, Oh) or S4 (Td);
* g/u from the inversion, ' / '' from a horizontal mirror (no inversion).

A real-irreducible block made of a complex-conjugate pair (e.g. the E of C3)
is labelled E.  The characters are kept so that any label can be checked.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "character_norm",
    "classify_operations",
    "conjugacy_classes",
    "mulliken_label",
    "split_isotypic",
]


def classify_operations(rotations: np.ndarray) -> list[dict]:
    """Describe each Cartesian operation: kind, order of its proper part, axis.

    Returns
    -------
    list of dict
        Keys ``det`` (+1/-1), ``n`` (order of the proper part ``det*R``),
        ``axis`` (unit vector of the proper part, ``None`` for identity),
        ``kind`` in ``{"E", "C", "i", "sigma", "S"}``.
    """
    out = []
    for r in rotations:
        det = int(round(np.linalg.det(r)))
        p = det * r
        cos = np.clip((np.trace(p) - 1.0) / 2.0, -1.0, 1.0)
        theta = np.arccos(cos)
        if theta < 1e-6:
            n, axis = 1, None
        else:
            n = int(round(2 * np.pi / theta))
            w, v = np.linalg.eig(p)
            axis = np.real(v[:, np.argmin(np.abs(w - 1.0))])
            axis /= np.linalg.norm(axis)
            # orient the axis so that p rotates by +theta about it
            if n > 2:
                skew = np.array([p[2, 1] - p[1, 2], p[0, 2] - p[2, 0], p[1, 0] - p[0, 1]])
                if skew @ axis < 0:
                    axis = -axis
        if det == 1:
            kind = "E" if n == 1 else "C"
        elif n == 1:
            kind = "i"
        elif n == 2:
            kind = "sigma"
        else:
            kind = "S"
        out.append({"det": det, "n": n, "axis": axis, "kind": kind, "theta": theta})
    return out


def conjugacy_classes(rotations: np.ndarray, atol: float = 1e-8) -> list[list[int]]:
    """Conjugacy classes of a group of Cartesian matrices (lists of indices)."""
    rots = np.asarray(rotations)
    n = len(rots)

    def find(m):
        d = np.abs(rots - m).reshape(n, -1).max(axis=1)
        i = int(np.argmin(d))
        if d[i] > atol:
            raise ValueError("the matrices are not closed under conjugation (not a group)")
        return i

    seen = np.full(n, -1)
    classes: list[list[int]] = []
    for g in range(n):
        if seen[g] >= 0:
            continue
        members = sorted({find(h @ rots[g] @ h.T) for h in rots})
        for m in members:
            seen[m] = len(classes)
        classes.append(members)
    return classes


def split_isotypic(
    d_block: np.ndarray, classes: list[list[int]], seed: int = 0, rtol: float = 1e-8
) -> list[np.ndarray]:
    """Split a representation into its isotypic components.

    A random real combination of class sums, symmetrized (``g`` with
    ``g^-1``), is central and symmetric: it is a scalar on each isotypic
    component and generically different on different ones.  Its
    eigenvectors give the split.

    Parameters
    ----------
    d_block : numpy.ndarray
        ``(n_ops, k, k)`` orthogonal representation matrices.
    classes : list of list of int
        Conjugacy classes (indices into ``d_block``).

    Returns
    -------
    list of numpy.ndarray
        Orthonormal bases ``(k, k_i)`` of the components, in the block's coordinates.
    """
    k = d_block.shape[1]
    if k == 1:
        return [np.eye(1)]
    rng = np.random.default_rng(seed)
    h = np.zeros((k, k))
    for cls in classes:
        c = rng.normal()
        for g in cls:
            h += c * 0.5 * (d_block[g] + d_block[g].T)
    w, v = np.linalg.eigh(h)
    scale = max(np.abs(w).max(), 1.0)
    out, start = [], 0
    for i in range(1, k + 1):
        if i == k or abs(w[i] - w[i - 1]) > rtol * scale:
            out.append(v[:, start:i])
            start = i
    return out


def character_norm(chi: np.ndarray) -> float:
    """``(1/|G|) sum_g chi(g)^2``: 1 for a real irrep, 2 for a complex pair."""
    return float(np.mean(np.asarray(chi) ** 2))


def _parallel(a, b) -> bool:
    return a is not None and b is not None and abs(abs(float(a @ b)) - 1.0) < 1e-6


def _perpendicular(a, b) -> bool:
    return a is not None and b is not None and abs(float(a @ b)) < 1e-6


def _sign(x: float) -> int:
    return 1 if x > 0 else -1


def _axis_pref(axis) -> tuple:
    """Prefer axes along Cartesian directions, then along z."""
    a = np.abs(axis)
    return (-round(float(a.max()), 6), -round(float(a[2]), 6), -round(float(a[0]), 6))


def mulliken_label(rotations: np.ndarray, chi: np.ndarray) -> str:
    """Mulliken symbol of a (real-)irreducible representation.

    Parameters
    ----------
    rotations : numpy.ndarray
        ``(n_ops, 3, 3)`` Cartesian operations of the point group.
    chi : numpy.ndarray
        ``(n_ops,)`` characters of the representation.

    Returns
    -------
    str
        E.g. ``"A1g"``, ``"T2u"``, ``"E'"``.
    """
    chi = np.asarray(chi, dtype=float)
    ops = classify_operations(rotations)
    ident = next(i for i, o in enumerate(ops) if o["kind"] == "E")
    dim = int(round(chi[ident]))
    has_inv = any(o["kind"] == "i" for o in ops)
    inv = next((i for i, o in enumerate(ops) if o["kind"] == "i"), None)
    proper = [(i, o) for i, o in enumerate(ops) if o["kind"] == "C"]
    three_fold_axes = []
    for _, o in proper:
        if o["n"] == 3 and not any(_parallel(o["axis"], a) for a in three_fold_axes):
            three_fold_axes.append(o["axis"])
    cubic = len(three_fold_axes) >= 4
    letter = {1: "A", 2: "E", 3: "T", 4: "G", 5: "H"}.get(dim, f"Γ{dim}")
    sub = ""
    prime = ""
    if cubic:
        probe = [i for i, o in proper if o["n"] == 4] or [
            i for i, o in enumerate(ops) if o["kind"] == "S" and o["n"] == 4
        ]
        if probe and dim in (1, 3):
            sub = "1" if _sign(chi[probe[0]]) > 0 else "2"
    else:
        n_max = max((o["n"] for _, o in proper), default=1)
        principal_axis = None
        if n_max > 1:
            cands = [o["axis"] for _, o in proper if o["n"] == n_max]
            principal_axis = sorted(cands, key=_axis_pref)[0]
        sigma_h = None
        if principal_axis is not None:
            sigma_h = next(
                (
                    i
                    for i, o in enumerate(ops)
                    if o["kind"] == "sigma" and _parallel(o["axis"], principal_axis)
                ),
                None,
            )
        else:
            sigma_h = next((i for i, o in enumerate(ops) if o["kind"] == "sigma"), None)
        if principal_axis is not None:
            p_op = next(
                i
                for i, o in proper
                if o["n"] == n_max and _parallel(o["axis"], principal_axis)
                and (n_max == 2 or o["axis"] @ principal_axis > 0)
            )
            if not has_inv and sigma_h is None:
                s2n = [
                    i
                    for i, o in enumerate(ops)
                    if o["kind"] == "S" and o["n"] == 2 * n_max and _parallel(o["axis"], principal_axis)
                ]
                if s2n:
                    p_op = s2n[0]
            if dim == 1:
                letter = "A" if _sign(chi[p_op]) > 0 else "B"
                c2p = sorted(
                    [
                        o["axis"]
                        for _, o in proper
                        if o["n"] == 2 and _perpendicular(o["axis"], principal_axis)
                    ],
                    key=_axis_pref,
                )
                sv = sorted(
                    [
                        o["axis"]
                        for o in ops
                        if o["kind"] == "sigma" and _perpendicular(o["axis"], principal_axis)
                    ],
                    key=_axis_pref,
                )
                probe = None
                if c2p:
                    probe = next(i for i, o in proper if o["n"] == 2 and _parallel(o["axis"], c2p[0]))
                elif sv:
                    probe = next(
                        i for i, o in enumerate(ops) if o["kind"] == "sigma" and _parallel(o["axis"], sv[0])
                    )
                if probe is not None:
                    sub = "1" if _sign(chi[probe]) > 0 else "2"
            elif dim == 2 and n_max >= 5:
                ks = [
                    k for k in range(1, n_max // 2 + 1)
                    if abs(chi[p_op] - 2 * np.cos(2 * np.pi * k / n_max)) < 1e-6
                ]
                if ks:
                    sub = str(ks[0])
        if not has_inv and sigma_h is not None:
            prime = "'" if _sign(chi[sigma_h] / dim) > 0 else "''"
    parity = ""
    if has_inv:
        parity = "g" if _sign(chi[inv]) > 0 else "u"
    return f"{letter}{sub}{parity}{prime}"
