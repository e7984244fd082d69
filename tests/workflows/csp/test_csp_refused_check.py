"""An oracle check the oracle refuses drops the offspring (it must not rank or stop the search on its MTP value)."""

from __future__ import annotations

from ase.build import bulk

from pes_core.active import ActiveSettings
from pes_core.db import Configuration, FailedCalculation, calculation_hash
from pes_core.oracles import to_structure
from pes_core.search import Individual
from workflows.core.backend import open_backend
from workflows.csp.active_tasks import OracleTrajectoryTask
from workflows.csp.learning import check_decision
from workflows.csp.state import RunState, start_search


def test_a_refused_check_is_recorded_and_drops_the_offspring(project, nan_oracle):
    config = {"search": {"composition": {"Cu": 1}, "n_atoms": [8, 8], "population_size": 4, "seed": 1},
              "oracle": nan_oracle, "oracle_settings": {}, "mode": "mtp"}
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))  # 8 atoms: nan-test returns NaN forces
    with open_backend(project):
        run = start_search("refused", config)
        ind = Individual.from_atoms("g001-000", atoms, "random", generation=1)
        ind.relaxed, ind.energy, ind.enthalpy_per_atom, ind.volume = True, -8 * 9.9, -9.9, atoms.get_volume()
        ind.spacegroup = "Fm-3m (225)"
        h = calculation_hash(to_structure(ind.atoms), nan_oracle, {})
        out = OracleTrajectoryTask(search="refused", structures=[to_structure(ind.atoms).as_dict()],
                                   generator="csp-check", steps=3, every=1).run_task({})
        assert out.stored_data["failed"] and out.stored_data["stored"] == 0
        failure = FailedCalculation.objects(content_hash=h).first()
        assert failure is not None and "non-finite forces" in failure.reason
        assert Configuration.objects(content_hash=h).first() is None  # nothing wrong is kept
        state = RunState.of(run)
        state.active.check_requested = [h]
        state.save(run)
        decision = check_decision(run, ActiveSettings(check_top=2, check_steps=3), 1, [ind])
        assert ind.flags["failed"] and not ind.usable and not decision.check
        assert ind.relax_info["oracle_refused"]["key"] == h
