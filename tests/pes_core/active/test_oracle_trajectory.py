"""Short oracle relaxations (pre-exploration / oracle check frames)."""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from pes_core.active import oracle_trajectory
from pes_core.oracles import get_oracle


def test_oracle_trajectory_keeps_every_call_and_goes_down():
    atoms = bulk("Si", "diamond", a=5.6, cubic=True)
    atoms.rattle(0.15, seed=1)
    traj = oracle_trajectory(get_oracle("tersoff"), atoms, steps=6, every=3)
    assert 2 <= traj.n_calls <= 7 and traj.failed is None
    assert traj.kept[0] == 0 and traj.kept[-1] == traj.n_calls - 1
    assert all(k % 3 == 0 for k in traj.kept[:-1])
    e = [r.energy / len(atoms) for r in traj.results]
    assert e[-1] < e[0] and np.all(np.isfinite(e))
