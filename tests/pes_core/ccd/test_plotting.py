"""Mode displacement patterns and the PNG they are drawn to."""

from __future__ import annotations

import numpy as np

from pes_core.ccd import mode_displacements, plot_modes


def test_mode_displacements_move_one_ccd(tet_ccd, tetrahedron):
    disp = mode_displacements(tet_ccd)
    assert disp.shape == (6, 4, 3)
    x0 = tetrahedron.reference_positions
    h = 1e-6
    for k in range(6):
        dq = (tet_ccd.q(x0 + h * disp[k]) - tet_ccd.q(x0 - h * disp[k])) / (2 * h)
        np.testing.assert_allclose(dq, np.eye(6)[k], atol=1e-6)
        # no net translation
        np.testing.assert_allclose(disp[k].sum(axis=0), 0.0, atol=1e-10)


def test_plot_modes_writes_png(tet_ccd, tmp_path):
    path = plot_modes(tet_ccd, tmp_path / "modes" / "tet.png", n_cols=3)
    assert path.exists()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
