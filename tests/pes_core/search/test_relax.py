import numpy as np
import pytest
from ase.build import bulk
from ase.units import GPa

from pes_core.oracles import get_oracle
from pes_core.oracles.base import Oracle
from pes_core.search import OracleRelaxer, RelaxResult, Relaxer

E_DIAMOND = -4.6296  # Tersoff(1988) Si, eV/atom


@pytest.fixture(scope="module")
def tersoff():
    return get_oracle("tersoff")


def test_relaxes_strained_diamond_to_the_minimum(tersoff):
    a = bulk("Si", "diamond", a=5.6, cubic=True)
    a.rattle(0.05, seed=1)
    relax = OracleRelaxer(tersoff)
    assert isinstance(relax, Relaxer)
    res = relax(a, 0.0)
    assert isinstance(res, RelaxResult) and res.converged and not res.failed
    assert abs(res.enthalpy_per_atom - E_DIAMOND) < 1e-3
    assert abs(res.atoms.get_volume() / 8 - 5.432**3 / 8) < 0.2
    assert res.n_calls >= res.n_steps > 0
    assert res.atoms.calc is None


def test_enthalpy_at_pressure(tersoff):
    p = 10.0
    res = OracleRelaxer(tersoff, optimizer="FIRE")(bulk("Si", "diamond", a=5.43), p)
    v = res.atoms.get_volume()
    assert res.converged
    assert res.enthalpy_per_atom == pytest.approx((res.energy + p * GPa * v) / 2, abs=1e-9)
    assert v / 2 < 5.43**3 / 8 - 0.3  # compressed
    assert res.enthalpy_per_atom > E_DIAMOND


class _Broken(Oracle):
    name = "broken"

    def _compute(self, structure, workdir=None):
        raise ZeroDivisionError("0.0 cannot be raised to a negative power")


def test_failures_become_flagged_results():
    res = OracleRelaxer(_Broken())(bulk("Si", "diamond", a=5.43), 0.0)
    assert res.failed and not res.converged and np.isnan(res.enthalpy_per_atom)
    assert "ZeroDivisionError" in res.extra["reason"]
    with pytest.raises(ValueError, match="optimizer"):
        OracleRelaxer(_Broken(), optimizer="CG")
