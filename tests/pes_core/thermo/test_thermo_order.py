"""Tilt angles, M/R tilt modes, Glazer classification and lattice parameters on ideal tilted structures."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from pes_core.clusters import PerovskiteReference
from pes_core.sampling import GLAZER_SYSTEMS, glazer_tilted, parse_glazer
from pes_core.thermo import OctahedralTilts, glazer_pattern, lattice_parameters

REF = PerovskiteReference("Cs", "Pb", "Br", 5.87)


@pytest.mark.parametrize("supercell", [(2, 2, 2), (4, 4, 4), (6, 4, 2)])
@pytest.mark.parametrize("symbol", sorted(GLAZER_SYSTEMS))
def test_linearized_tilt_systems_give_only_their_modes(symbol, supercell):
    """glazer_tilted moves each anion by w x r: every bond angle is atan(w_a), so the modes are exact."""
    angles = (9.0, 7.0, 5.0)  # distinct per axis (equal letters get equal angles below)
    axes = parse_glazer(symbol)
    by_letter = {}
    for (letter, _), ang in zip(axes, angles):
        by_letter.setdefault(letter, ang)
    per_axis = [0.0 if ph == "0" else by_letter[letter] for letter, ph in axes]
    s = glazer_tilted(symbol, {k: v for k, v in by_letter.items()}, a=5.87, supercell=supercell)
    tilts = OctahedralTilts(REF, supercell)
    m, r = tilts.modes(*tilts.arrays(s))
    for a, (_, ph) in enumerate(axes):
        amp = np.arctan(np.radians(per_axis[a]))
        assert m[a] == pytest.approx(amp if ph == "+" else 0.0, abs=1e-10)
        assert r[a] == pytest.approx(amp if ph == "-" else 0.0, abs=1e-10)
    th = tilts.angles(*tilts.arrays(s))
    np.testing.assert_allclose(np.abs(th), np.abs(np.arctan(np.radians(per_axis)))[None, :].repeat(len(th), 0),
                               atol=1e-10)
    g = glazer_pattern(np.abs(m), np.abs(r))
    assert g["system"] == symbol and g["space_group"] == GLAZER_SYSTEMS[symbol][0]


def _rigid_single_axis(theta: float, phase: str, n: int = 4, a: float = 5.87) -> Structure:
    """Octahedra rigidly rotated about z by +-theta (exact rotations; the B-B distance shrinks to a cos theta)."""
    ab = a * np.cos(theta)
    species, cart = [], []
    for i in range(n):
        for j in range(n):
            for k in range(n):
                sign = (-1) ** (i + j) * ((-1) ** k if phase == "-" else 1)
                c, s = np.cos(sign * theta), np.sin(sign * theta)
                rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
                origin = np.array([i * ab, j * ab, k * a])
                species += ["Pb", "Cs"]
                cart += [origin, origin + np.array([ab, ab, a]) / 2]
                for axis in range(3):
                    r = np.zeros(3)
                    r[axis] = a / 2
                    species.append("Br")
                    cart.append(origin + rot @ r)
    return Structure(Lattice(np.diag([n * ab, n * ab, n * a])), species, np.array(cart), coords_are_cartesian=True)


@pytest.mark.parametrize("phase,mode", [("+", "m"), ("-", "r")])
def test_rigid_rotations_give_the_exact_angle(phase, mode):
    theta = np.radians(11.0)
    tilts = OctahedralTilts(REF, (4, 4, 4))
    pos, cell = tilts.arrays(_rigid_single_axis(theta, phase))
    m, r = tilts.modes(pos, cell)
    want = {"m": m, "r": r}[mode]
    other = {"m": r, "r": m}[mode]
    np.testing.assert_allclose(want, [0.0, 0.0, theta], atol=1e-10)
    np.testing.assert_allclose(other, 0.0, atol=1e-10)
    lat = lattice_parameters(cell, (4, 4, 4))
    assert lat["a"] == pytest.approx(5.87 * np.cos(theta)) and lat["c"] == pytest.approx(5.87)
    assert lat["volume"] == pytest.approx(5.87 ** 3 * np.cos(theta) ** 2)
    assert lat["gamma"] == pytest.approx(90.0)


def test_modes_are_blind_to_translations_strain_and_bond_stretching():
    tilts = OctahedralTilts(REF, (4, 4, 4))
    s = glazer_tilted("a-a-c+", 8.0, a=5.87, supercell=(4, 4, 4))
    pos, cell = tilts.arrays(s)
    m0, r0 = tilts.modes(pos, cell)
    m1, r1 = tilts.modes(pos + np.array([0.3, -0.2, 0.1]), cell)
    np.testing.assert_allclose(m1, m0, atol=1e-12)
    np.testing.assert_allclose(r1, r0, atol=1e-12)
    stretch = np.diag([1.03, 1.03, 1.03])  # isotropic: angles unchanged
    m2, r2 = tilts.modes(pos @ stretch, cell @ stretch)
    np.testing.assert_allclose(m2, m0, atol=1e-12)
    np.testing.assert_allclose(r2, r0, atol=1e-12)


def test_glazer_pattern_thresholds_and_axis_permutations():
    deg = np.radians
    assert glazer_pattern(deg([1.0, 0.5, 2.9]), deg([0.3, 0.2, 0.1]))["symbol"] == "a0a0a0"
    g = glazer_pattern(deg([8.0, 0.2, 0.1]), deg([0.1, 0.3, 0.2]))  # in-phase tilt about x
    assert g["symbol"] == "a+b0b0" and g["system"] == "a0a0c+" and g["space_group"] == "P4/mbm"
    assert g["phase"] == "tetragonal"
    g = glazer_pattern(deg([0.1, 0.2, 7.0]), deg([9.0, 9.3, 0.2]))  # Pnma with the in-phase tilt about z
    assert g["symbol"] == "a-a-c+" and g["system"] == "a+b-b-" and g["space_group"] == "Pnma"
    assert g["phase"] == "orthorhombic"
    assert glazer_pattern(deg([0, 0, 0]), deg([5.0, 5.1, 4.9]))["system"] == "a-a-a-"
    assert glazer_pattern(deg([0, 0, 0]), deg([5.0, 5.1, 4.9]), threshold_deg=6.0)["system"] == "a0a0a0"


def test_odd_supercells_are_refused():
    with pytest.raises(ValueError, match="even"):
        OctahedralTilts(REF, (3, 4, 4))
