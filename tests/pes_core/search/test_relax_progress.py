"""The relaxer's progress callback: every step reported, from the oracle's results, no extra oracle call."""

from __future__ import annotations

import io

import numpy as np
from ase.build import bulk

from pes_core.oracles import get_oracle
from pes_core.progress import StepReporter
from pes_core.search import OracleRelaxer


def _si():
    atoms = bulk("Si", "diamond", a=5.6, cubic=True)
    atoms.rattle(0.05, seed=4)
    return atoms


def test_callback_sees_every_step_and_costs_no_oracle_call():
    oracle = get_oracle("tersoff")
    plain = OracleRelaxer(oracle, fmax=0.05, steps=50)(_si())
    seen = []
    res = OracleRelaxer(oracle, fmax=0.05, steps=50, progress=lambda *a: seen.append(a))(_si())
    assert res.n_calls == plain.n_calls and res.energy == plain.energy  # same relaxation, same cost
    steps = [s for s, _, _ in seen]
    assert steps == list(range(res.n_steps + 1))  # the start (0) and every step
    assert seen[-1][1] == res.energy
    # the force reported is the largest atomic force of the oracle result at that step (eV/Å)
    final = res.atoms.copy()
    final.calc = None
    f = oracle.compute(final).forces
    assert seen[-1][2] == np.sqrt((f ** 2).sum(axis=1)).max()
    assert seen[0][2] > seen[-1][2]


def test_step_reporter_lines_are_throttled(monkeypatch):
    monkeypatch.delenv("PES_QUIET", raising=False)
    out = io.StringIO()
    rep = StepReporter("[s] oracle relaxation", max_steps=50, interval=3600.0, stream=out)
    OracleRelaxer(get_oracle("tersoff"), fmax=0.05, steps=50, progress=rep)(_si())
    assert out.getvalue() == ""  # a relaxation of a fraction of a second says nothing
    out = io.StringIO()
    rep = StepReporter("[s] oracle relaxation", max_steps=50, interval=0.0, stream=out)
    res = OracleRelaxer(get_oracle("tersoff"), fmax=0.05, steps=50, progress=rep)(_si())
    lines = out.getvalue().splitlines()
    assert len(lines) == res.n_steps + 1  # the start and every step when the interval is 0
    assert lines[-1].startswith(f"[s] oracle relaxation: step {res.n_steps}/50, E ")
    assert "/step, elapsed" in lines[-1]
    monkeypatch.setenv("PES_QUIET", "1")
    out = io.StringIO()
    OracleRelaxer(get_oracle("tersoff"), fmax=0.05, steps=50,
                  progress=StepReporter("[s]", interval=0.0, stream=out))(_si())
    assert out.getvalue() == ""
