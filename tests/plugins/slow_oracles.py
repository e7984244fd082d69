"""Test-only oracles loaded through ``PES_ORACLE_PLUGINS=slow_oracles`` (tests/plugins on PYTHONPATH).

``slow-emt``: EMT that sleeps ``delay`` seconds (setting, default 0.5) per structure,
so a test can kill a worker in the middle of a firework.
"""

from __future__ import annotations

import time

from pes_core.oracles import register_oracle
from pes_core.oracles.ase_calc import EMTOracle


class SlowEMTOracle(EMTOracle):
    name = "slow-emt"

    def _compute(self, structure, workdir=None):
        time.sleep(float(self.settings.get("delay", 0.5)))
        return super()._compute(structure, workdir)


register_oracle("slow-emt", SlowEMTOracle)
