"""The ``pes_thermo`` workflow: chained temperature fireworks per scan, oracle validation, a summary.

::

    per supercell n and direction d (cooling: descending T; heating: ascending):
      MC(n, d, T0) -> MC(n, d, T1) -> ... -> MC(n, d, Tk)          category ml
          |               |                      |
      oracle(T0)      oracle(T1)             oracle(Tk)             the oracle's category (dft for vasp/cp2k)
          \\______________\\______________________\\____> summary    category ml

The oracle fireworks are built with the batching of
:func:`workflows.oracle.builders.oracle_batches` (one snapshot a firework
for ``dft`` oracles).

With a ``refine`` section this is round 0; a round's summary that finds a
temperature above the tolerance adds (as its children) a refit firework
(category ``ml``) and the next round's fireworks, scanning the refitted model
(:class:`workflows.thermo.tasks.ThermoSummaryTask`, :mod:`workflows.thermo.refine`)::

    summary(r0) -> refit(r1) -> MC/oracle/summary fireworks of round 1 -> refit(r2) -> ...

>>> wf = pes_thermo_workflow({"name": "t", "model": "m", "supercells": [2], "temperatures": [300, 400],
...                           "validation": {"oracle": "emt", "snapshots_per_temperature": 2}})
>>> sorted({fw.spec["pes_kind"] for fw in wf.fws})
['oracle', 'pes_thermo_mc', 'pes_thermo_summary']
"""

from __future__ import annotations

from fireworks import Workflow

from workflows.core.spec import register_kind
from workflows.thermo.spec import PESThermoSpec
from workflows.thermo.store import round_config
from workflows.thermo.tasks import round_fireworks

__all__ = ["pes_thermo_workflow"]


def _config(spec: PESThermoSpec) -> dict:
    cfg = spec.model_dump()
    cfg.pop("kind")
    if cfg.get("refine") is None:
        cfg.pop("refine", None)  # the configuration of a plain scan, as before refine existed
        return cfg
    return round_config(cfg, 0, spec.model)


def pes_thermo_workflow(spec: PESThermoSpec | dict, base_dir=None) -> Workflow:
    """The thermodynamics workflow of a stored model (nothing touches the database here).

    Parameters
    ----------
    spec : PESThermoSpec or dict
        The validated spec (a dict is validated, ``kind`` optional).
    base_dir : path, optional
        Unused (the spec names no files).
    """
    if isinstance(spec, dict):
        spec = PESThermoSpec.model_validate({"kind": "pes_thermo", **spec})
    cfg = _config(spec)
    fws = round_fireworks(cfg)
    meta = {"pes_kind": "pes_thermo", "thermo": spec.name, "model": spec.model, "supercells": list(spec.supercells),
            "directions": spec.directions(), "oracle": spec.validation.oracle if spec.validation else None, "config": cfg}
    if spec.refine is not None:
        meta["refine"] = spec.refine.model_dump()
    return Workflow(fws, name=f"pes thermo {spec.name}", metadata=meta)


register_kind("pes_thermo", PESThermoSpec, pes_thermo_workflow)
