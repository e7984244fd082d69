import os

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, diamond100

from pes_core.search import (
    SearchSettings,
    candidate_table,
    format_table,
    has_clash,
    has_vacuum,
    largest_gap,
    plot_history,
    run_search,
    spacegroup_label,
    write_cifs,
)

from search_fakes import DensityRelaxer


def test_vacuum_and_clash_flags():
    d = bulk("Si", "diamond", a=5.43, cubic=True)
    assert not has_vacuum(d) and not has_clash(d)
    slab = diamond100("Si", size=(1, 1, 4), vacuum=4.0)   # 8 Å of vacuum between slabs
    slab.pbc = True
    assert has_vacuum(slab) and largest_gap(slab) > 7.5
    tilted = slab.copy()                                   # a gap not along a cell vector
    tilted.set_cell(np.array(slab.cell) @ np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]]).T, scale_atoms=False)
    assert has_vacuum(tilted)
    pair = Atoms("Si2", positions=[[0, 0, 0], [0.5, 0, 0]], cell=[5, 5, 5], pbc=True)
    assert has_clash(pair)
    assert spacegroup_label(d) == "Fd-3m (227)"


@pytest.fixture(scope="module")
def small_state():
    s = SearchSettings(composition={"Si": 1}, n_atoms=(4, 4), population_size=6, seed=2,
                       max_generations=2, stop_after=5)
    return run_search(s, DensityRelaxer())


def test_table_cifs_and_plot(small_state, tmp_path):
    rows = candidate_table(small_state, within=10.0)
    assert rows and rows[0]["rank"] == 1 and rows[0]["delta_mev"] == 0.0
    hs = [r["enthalpy_per_atom"] for r in rows]
    assert hs == sorted(hs)
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(not r["individual"].is_duplicate for r in rows)
    assert rows[0]["id"] == small_state.best_id
    text = format_table(rows)
    assert "space group" in text and rows[0]["id"] in text
    narrow = candidate_table(small_state, within=0.0)
    assert len(narrow) >= 1 and all(r["delta_mev"] == 0.0 for r in narrow)
    paths = write_cifs(rows[:3], str(tmp_path / "cifs"))
    assert len(paths) == min(3, len(rows)) and all(os.path.getsize(p) > 100 for p in paths)
    png = plot_history(small_state, str(tmp_path / "history.png"))
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
