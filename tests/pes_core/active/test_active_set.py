"""Active set, grades and maxvol (pes_core.active)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from pes_core.active import ActiveSet, MaxvolState, row_grades
from pes_core.mtp import MTPPotential


def _images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = bulk("Si", "diamond", a=5.43, cubic=True)
        a.rattle(0.1, seed=k)
        a.set_cell(a.cell * (1 + 0.03 * rng.standard_normal()), scale_atoms=True)
        out.append(a)
    return out


@pytest.fixture(scope="module")
def pot():
    return MTPPotential.from_level(10, ["Si"])


def test_maxvol_grows_det_monotonically_and_terminates():
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((300, 12)) * rng.uniform(0.1, 3, 12)
    state = MaxvolState.empty(12)
    rep = state.update(rows)
    hist = np.array(rep.log_det_history)
    assert len(rep.swaps) > 12 and np.all(np.diff(hist) > np.log(1.001) - 1e-12)
    assert np.isclose(hist[-1], np.linalg.slogdet(state.matrix)[1])
    # converged: nothing grades above the tolerance, and another pass swaps nothing
    assert row_grades(rows, state.inverse).max() <= 1.001 + 1e-9
    assert state.update(rows).swaps == []
    # every active row comes from the candidates and grades exactly 1
    assert set(state.owners) <= set(range(300))
    assert np.allclose(row_grades(rows[state.owners], state.inverse), 1.0)


def test_maxvol_in_batches_matches_quality():
    rng = np.random.default_rng(2)
    rows = rng.standard_normal((200, 8))
    one = MaxvolState.empty(8)
    one.update(rows)
    batched = MaxvolState.empty(8)
    for k in range(0, 200, 25):
        batched.update(rows[k:k + 25])
    batched.update(rows)
    assert row_grades(rows, batched.inverse).max() <= 1.001 + 1e-9


@pytest.mark.parametrize("mode", ["configuration", "neighbourhood"])
def test_grades_one_on_active_rows_and_below_one_inside(pot, mode):
    images = _images()
    aset = ActiveSet.from_training(pot, images, mode=mode)
    assert aset.n_filled == aset.size
    rows = aset.state.matrix
    assert np.allclose(aset.grade_rows(rows), 1.0)
    rng = np.random.default_rng(3)
    for _ in range(20):
        w = rng.dirichlet(np.ones(aset.size))
        assert aset.grade_rows(w @ rows)[0] <= 1.0 + 1e-9
    assert aset.grade_many(pot, images).max() <= 1.001 + 1e-9
    # the stored configurations reproduce their rows
    for r, (owner, atom) in enumerate(zip(aset.state.owners, aset.atom_index)):
        row = aset.rows(pot, aset.configurations[owner])[atom]
        assert np.allclose(row, rows[r])


@pytest.mark.parametrize("mode", ["configuration", "neighbourhood"])
def test_out_of_distribution_grades_far_above_break(pot, mode):
    aset = ActiveSet.from_training(pot, _images(), mode=mode)
    inside = bulk("Si", "diamond", a=5.43, cubic=True)
    inside.rattle(0.05, seed=99)
    compressed = bulk("Si", "diamond", a=5.43 * 0.7 ** (1 / 3), cubic=True)  # volume -30 %
    assert aset.grade(pot, inside) < 2.0
    assert aset.grade(pot, compressed) > 10 * 1.5


def test_select_returns_new_configurations_only(pot):
    images = _images(30)
    aset = ActiveSet.from_training(pot, images)
    again = aset.select(pot, images, update=False)
    assert again.selected == []
    far = [bulk("Si", "diamond", a=a, cubic=True) for a in (4.9, 6.2)]
    res = aset.select(pot, far + images[:3], update=False)
    assert set(res.selected) <= {0, 1} and res.selected
    before = aset.state.matrix.copy()
    res2 = aset.select(pot, far, max_configurations=1)
    assert len(res2.selected) == 1 and not np.array_equal(before, aset.state.matrix)


def test_save_load_exact(pot, tmp_path):
    aset = ActiveSet.from_training(pot, _images(25), mode="neighbourhood", labels=[f"c{k}" for k in range(25)])
    aset.save(tmp_path / "as.npz")
    back = ActiveSet.load(tmp_path / "as.npz")
    assert back.mode == "neighbourhood" and back.labels == aset.labels
    for name in ("matrix", "inverse", "owners"):
        assert np.array_equal(getattr(back.state, name), getattr(aset.state, name))
    assert np.array_equal(back.atom_index, aset.atom_index)
    for a, b in zip(back.configurations, aset.configurations):
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell.array, b.cell.array)
    probe = bulk("Si", "diamond", a=5.0, cubic=True)
    assert back.grade(pot, probe) == aset.grade(pot, probe)


def test_wrong_potential_size_is_a_clear_error(pot):
    aset = ActiveSet.from_training(pot, _images(20))
    with pytest.raises(ValueError, match="recompute the active set"):
        aset.grade(MTPPotential.from_level(6, ["Si"]), bulk("Si"))


@pytest.mark.parametrize("include_radial", [False, True])
def test_mlip_appended_state_round_trip(pot, tmp_path, include_radial):
    from pes_core.active.mlip_state import read_almtp, write_almtp
    from pes_core.mtp import read_mtp

    aset = ActiveSet.from_training(pot, _images(20), mode="neighbourhood", include_radial=include_radial)
    write_almtp(tmp_path / "pot.almtp", pot, aset)
    pot2, back = read_almtp(tmp_path / "pot.almtp")
    assert back.mode == "neighbourhood" and back.include_radial == include_radial
    assert np.array_equal(back.state.matrix, aset.state.matrix)
    assert np.array_equal(back.state.inverse, aset.state.inverse)
    assert np.array_equal(back.state.owners, aset.state.owners)
    assert np.array_equal(pot2.parameters, pot.parameters)
    probe = bulk("Si", "diamond", a=5.1, cubic=True)
    assert back.grade(pot2, probe) == aset.grade(pot, probe)
    # the potential part alone is still a plain .mtp for our reader
    head = (tmp_path / "pot.almtp").read_bytes().split(b"#MVS_v1.1")[0]
    (tmp_path / "head.mtp").write_bytes(head)
    assert np.array_equal(read_mtp(tmp_path / "head.mtp").parameters, pot.parameters)
