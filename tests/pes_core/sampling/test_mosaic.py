"""Mosaic supercells: each block keeps its own displacements; identical blocks give the tiled cell and its energy."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Structure

from pes_core.sampling import (
    block_displacements,
    glazer_tilted,
    mosaic_supercells,
    rattled_strained,
)


@pytest.fixture(scope="module")
def cells():
    ref = glazer_tilted("a0a0a0", 0.0, a=5.87)  # 40 atoms (2x2x2 primitive cells)
    blocks = rattled_strained(ref, 10, rattle=0.08, strain=0.0, seed=2)
    return ref, blocks


def test_displacements_recover_a_shuffled_rattled_cell(cells):
    ref, blocks = cells
    rng = np.random.default_rng(0)
    b = blocks[0]
    perm = rng.permutation(len(b))
    shuffled = Structure(b.lattice, [b[i].species for i in perm], b.frac_coords[perm] + rng.integers(-1, 2, (len(b), 3)))
    u = block_displacements(ref, shuffled)
    np.testing.assert_allclose(u, block_displacements(ref, b), atol=1e-12)
    d = (b.frac_coords - ref.frac_coords) @ ref.lattice.matrix  # rattled_strained keeps the atom order
    np.testing.assert_allclose(u @ ref.lattice.matrix, d - np.round(b.frac_coords - ref.frac_coords) @ ref.lattice.matrix,
                               atol=1e-10)


def test_each_block_keeps_its_own_displacements(cells):
    ref, blocks = cells
    (m,) = mosaic_supercells(ref, blocks, 1, repeats=2, seed=5)
    assert len(m) == 8 * len(ref) and m.composition == ref.composition * 8
    np.testing.assert_allclose(m.lattice.matrix, 2 * ref.lattice.matrix, atol=1e-12)  # unstrained blocks
    used = []
    for k, off in enumerate(np.ndindex(2, 2, 2)):
        part = m.frac_coords[k * len(ref):(k + 1) * len(ref)] * 2 - np.array(off)
        u = part - ref.frac_coords
        match = [i for i, b in enumerate(blocks) if np.allclose(u, block_displacements(ref, b), atol=1e-10)]
        assert len(match) == 1
        used.append(match[0])
    assert len(set(used)) == 8  # eight different cells
    assert m.properties["mosaic_blocks"] == used  # recorded in block order
    again = mosaic_supercells(ref, blocks, 3, repeats=2, seed=5)
    assert again[0] == m  # deterministic under the seed


def test_identical_blocks_give_the_tiled_cell_and_its_energy(cells):
    """A mosaic of copies of one cell is that cell's 2x2x2 supercell: LJ energy exactly 8 times the cell's."""
    from pes_core.oracles import get_oracle

    ref, blocks = cells
    (m,) = mosaic_supercells(ref, [blocks[3]] * 8, 1, repeats=2, seed=0)
    tiled = blocks[3].copy()
    tiled.make_supercell(2)
    lj = get_oracle("lj", {"sigma": 2.6, "epsilon": 0.05})
    assert lj.compute(m).energy == pytest.approx(8 * lj.compute(blocks[3]).energy, rel=1e-10)
    assert lj.compute(m).energy == pytest.approx(lj.compute(tiled).energy, rel=1e-10)


def test_bad_blocks_are_refused_with_the_reason(cells):
    ref, blocks = cells
    with pytest.raises(ValueError, match="not a distorted copy"):
        block_displacements(ref, glazer_tilted("a0a0a0", 0.0, a=5.87, supercell=(2, 2, 4)))
    far = blocks[0].copy()
    far.translate_sites(list(range(len(far))), [0.25, 0.25, 0.25])  # another origin: half a primitive cell
    with pytest.raises(ValueError, match="same origin"):
        block_displacements(ref, far)
    with pytest.raises(ValueError, match="at least 8 different cells"):
        mosaic_supercells(ref, blocks[:5], 1, repeats=2)
    with pytest.raises(ValueError, match="at least 2 blocks"):
        mosaic_supercells(ref, blocks, 1, repeats=1)
