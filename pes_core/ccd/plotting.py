"""Draw the displacement pattern ``dr/dq`` of every CCD mode of a cluster.

At the reference geometry every metric has ``df/dd = 1/d~``, so the Jacobian
``J = dQ/dr`` is ``U`` times the bond-direction incidence matrix divided by
``d~``.  The pattern of mode ``k`` is column ``k`` of the pseudo-inverse
``J^+`` (the smallest displacement that changes ``q_k`` alone, free of rigid
translations and rotations).  Modes beyond ``Q*`` (dependent ones) have no
first-order displacement of their own; they are drawn with a grey title.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..clusters.cluster import pair_indices
from .transform import CCDTransform

__all__ = ["mode_displacements", "plot_modes"]


def mode_displacements(ccd: CCDTransform) -> np.ndarray:
    """``dr/dq`` for every CCD: ``(N, n_sites, 3)`` (Å per unit of ``q``)."""
    x = ccd.orbit.reference_positions
    n = len(x)
    pairs = pair_indices(n)
    jf = np.zeros((len(pairs), n, 3))
    for m, (i, j) in enumerate(pairs):
        e = x[j] - x[i]
        d = np.linalg.norm(e)
        jf[m, j] = e / d**2
        jf[m, i] = -e / d**2
    jq = ccd.U @ jf.reshape(len(pairs), 3 * n)
    pinv = np.linalg.pinv(jq, rcond=1e-10)  # (3n, N)
    return pinv.T.reshape(len(pairs), n, 3)


def plot_modes(
    ccd: CCDTransform,
    path: str | Path,
    n_cols: int = 5,
    amplitude: float = 1.0,
    dpi: int = 110,
) -> Path:
    """Write a PNG with one 3D panel per CCD mode (arrows = ``dr/dq``).

    Parameters
    ----------
    ccd : CCDTransform
        The cluster's CCDs.
    path : str or Path
        Output PNG file.
    n_cols : int
        Panels per row.
    amplitude : float
        Longest arrow of each panel, as a fraction of the shortest bond.
    dpi : int
        Resolution.

    Returns
    -------
    Path
        The file written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = ccd.orbit.reference_positions
    x = x - x.mean(axis=0)
    disp = mode_displacements(ccd)
    d_ref = ccd.orbit.reference_distances
    pairs = pair_indices(len(x))
    dmin = d_ref.min()
    edges = [p for p, d in zip(pairs, d_ref) if d <= 1.01 * dmin]
    labels = {}
    for b in ccd.blocks:
        for k in range(b.start, b.stop):
            labels[k] = b.label
    n_modes = len(disp)
    n_rows = int(np.ceil(n_modes / n_cols))
    fig = plt.figure(figsize=(3.0 * n_cols, 3.0 * n_rows))
    species = ccd.orbit.species
    colors = {s: c for s, c in zip(sorted(set(species)), ["tab:red", "tab:blue", "tab:green", "tab:purple"])}
    half = np.abs(x).max() + 0.35 * dmin
    for k in range(n_modes):
        ax = fig.add_subplot(n_rows, n_cols, k + 1, projection="3d")
        for i, j in edges:
            ax.plot(*np.stack([x[i], x[j]]).T, color="0.6", lw=1)
        ax.scatter(*x.T, s=60, c=[colors[s] for s in species], depthshade=False)
        v = disp[k]
        vmax = np.linalg.norm(v, axis=1).max()
        if vmax > 0:
            v = v * (amplitude * 0.5 * dmin / vmax)
        ax.quiver(*x.T, *v.T, color="k", lw=1.5, arrow_length_ratio=0.3)
        dependent = k >= ccd.n_independent
        ax.set_title(
            f"Q{k} {labels[k]}  λ={ccd.eigenvalues[k]:.2e}" + (" (dep.)" if dependent else ""),
            fontsize=9,
            color="0.5" if dependent else "k",
        )
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
        ax.set_zlim(-half, half)
        ax.set_box_aspect((1, 1, 1), zoom=1.25)
        ax.set_axis_off()
    fig.suptitle(f"{ccd.orbit.name}: CCD modes dr/dq ({ccd.metric} metric)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
