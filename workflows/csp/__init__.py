"""The crystal-structure-prediction job (spec kind ``csp``).

Modules import one way: ``spec`` (the spec model, typed sections) -> ``state``
(the stored ``SearchRun`` and its typed ``state``) -> ``learning`` (the MTP
relaxer and the learning step after a generation: decisions as data, computed
by :mod:`pes_core.active.decisions`) -> ``report`` -> ``active_tasks``
(pre-exploration, oracle trajectories, training; their firework factories)
-> ``tasks`` (generations, relaxations, verification, report; the one place
that turns decisions into fireworks) -> ``builders`` (the workflow from a spec).
"""
