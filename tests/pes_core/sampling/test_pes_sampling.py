"""Symmetry-adapted modes/strains, n-sphere samples, novelty filter, interpolation, paths."""

from __future__ import annotations

import numpy as np
import pytest

from pes_core.ann import energy_paths
from pes_core.clusters import get_space_group
from pes_core.sampling import (NoveltyFilter, glazer_tilted, interpolate_structures, mode_enumeration,
                               nsphere_samples, strain_enumeration, symmetry_adapted_modes,
                               symmetry_adapted_strains)
from pes_core.sampling.pes_training import displacement_representation, strain_representation


def _block_diagonal(blocks, rep):
    v = np.hstack([b.vectors for b in blocks])
    mask = np.zeros((v.shape[1], v.shape[1]), bool)
    k = 0
    for b in blocks:
        mask[k:k + b.dim, k:k + b.dim] = True
        k += b.dim
    np.testing.assert_allclose(v.T @ v, np.eye(v.shape[1]), atol=1e-10)
    return max(np.abs((v.T @ g @ v)[~mask]).max() for g in rep)


@pytest.mark.parametrize("symbol", ["a0a0a0", "a0a0c+", "a+b-b-"])
def test_modes_block_diagonalize_the_representation(symbol):
    s = glazer_tilted(symbol, 0.0 if symbol == "a0a0a0" else 8.0)
    blocks = symmetry_adapted_modes(s)
    assert sum(b.dim for b in blocks) == 3 * len(s) - 3
    assert _block_diagonal(blocks, displacement_representation(s)) < 1e-8
    # characters: blocks are irreducible (sum over g of chi^2 / |G| is 1, or 2 for a complex pair)
    for b in blocks:
        assert np.mean(b.characters ** 2) == pytest.approx(round(np.mean(b.characters ** 2)), abs=1e-6)
        assert round(np.mean(b.characters ** 2)) in (1, 2)


def test_cubic_strains_are_a1g_eg_t2g():
    s = glazer_tilted("a0a0a0", 0.0)
    blocks = symmetry_adapted_strains(s)
    assert [b.dim for b in blocks] == [1, 2, 3]
    assert _block_diagonal(blocks, strain_representation(s)) < 1e-10
    vol = blocks[0].vectors[:, 0]
    np.testing.assert_allclose(np.abs(vol[:3]), 1 / np.sqrt(3), atol=1e-10)  # volumetric


def test_a1_mode_keeps_the_space_group_and_strains_enumerate():
    s = glazer_tilted("a+b-b-", 8.0)
    blocks = symmetry_adapted_modes(s)
    a1 = [b for b in blocks if b.is_identity]
    assert a1, "Pnma has totally symmetric modes"
    (d, label), = mode_enumeration(s, [0.2], blocks=a1[:1])
    assert get_space_group(d, 1e-3).number == 62 and label.startswith("mode:")
    strained = strain_enumeration(s, [0.01])
    assert len(strained) == 6


def test_nsphere_samples_are_on_the_sphere_and_deterministic():
    parent = glazer_tilted("a0a0a0", 0.0)
    a = nsphere_samples(parent, 3, displacement_radius=0.5, strain_radius=0.0, seed=1)
    b = nsphere_samples(parent, 3, displacement_radius=0.5, strain_radius=0.0, seed=1)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.cart_coords, y.cart_coords)
        u = x.cart_coords - parent.cart_coords
        assert np.linalg.norm(u) == pytest.approx(0.5, abs=1e-9)
        np.testing.assert_allclose(u.mean(axis=0), 0, atol=1e-12)


def test_novelty_filter_rejects_near_duplicates(small_featurizer):
    parent = glazer_tilted("a0a0a0", 0.0, a=5.87)
    known = nsphere_samples(parent, 5, displacement_radius=0.6, strain_radius=0.01, seed=0)
    filt = NoveltyFilter(small_featurizer, known, threshold=0.99)
    assert filt.similarity(known[2]) == pytest.approx(1.0, abs=1e-9)
    assert not filt.accept(known[2])
    fresh = nsphere_samples(parent, 1, displacement_radius=0.6, strain_radius=0.01, seed=99)[0]
    assert filt.accept(fresh) and not filt.accept(fresh)
    assert filt.n_rejected == 2


def test_interpolation_and_paths():
    a, b = glazer_tilted("a0a0a0", 0.0), glazer_tilted("a0a0c+", 8.0)
    mid = interpolate_structures(a, b, 3)
    np.testing.assert_allclose(mid[0].frac_coords, a.frac_coords, atol=1e-12)
    np.testing.assert_allclose(mid[-1].cart_coords, b.cart_coords, atol=1e-9)
    paths = energy_paths(5.9, n_points=4)
    assert [len(v[1]) for v in paths.values()] == [8, 4, 4, 4]
    assert get_space_group(paths["in_phase_tilt"][1][-1], 1e-3).number == 127
    assert get_space_group(paths["anti_phase_tilt"][1][-1], 1e-3).number == 140
