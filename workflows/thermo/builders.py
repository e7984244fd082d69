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

>>> wf = pes_thermo_workflow({"name": "t", "model": "m", "supercells": [2], "temperatures": [300, 400],
...                           "validation": {"oracle": "emt", "snapshots_per_temperature": 2}})
>>> sorted({fw.spec["pes_kind"] for fw in wf.fws})
['oracle', 'pes_thermo_mc', 'pes_thermo_summary']
"""

from __future__ import annotations

from fireworks import Firework, Workflow

from pes_core.oracles import oracle_class
from workflows.core.spec import register_kind
from workflows.oracle.builders import oracle_batches
from workflows.thermo.spec import PESThermoSpec
from workflows.thermo.store import blob_name, scan_order
from workflows.thermo.tasks import (
    SnapshotOracleTask,
    ThermoSummaryTask,
    ThermoTemperatureTask,
)

__all__ = ["pes_thermo_workflow"]


def _config(spec: PESThermoSpec) -> dict:
    cfg = spec.model_dump()
    cfg.pop("kind")
    return cfg


def _oracle_fireworks(cfg: dict, mc: Firework, n: int, d: str, t: float) -> list[Firework]:
    v = cfg["validation"]
    cls = oracle_class(v["oracle"])
    k = int(v["snapshots_per_temperature"])
    batches = oracle_batches(k, v["oracle"], v.get("batch_size"))
    fws = []
    for b, sl in enumerate(batches):
        lo, hi = sl.start, min(sl.stop, k)
        task = SnapshotOracleTask(snapshot_blob=blob_name(cfg["name"], n, d, t, "snapshots.json"), start=lo, stop=hi,
                                  oracle=v["oracle"], oracle_settings=dict(v.get("oracle_settings") or {}),
                                  workflow=f"{cfg['name']}-validation", tags=["pes-thermo-validation", cfg["name"]],
                                  generator=f"thermo:{cfg['name']}:{n}:{d}:{t:g}")
        spec = {"_category": cls.category, "pes_kind": "oracle", "pes_stage": "thermo_validation",
                "oracle": v["oracle"], "n_structures": hi - lo, "supercell": n, "direction": d, "T": t}
        if cls.category == "ml":
            spec["_priority"] = 1
        fws.append(Firework([task], spec=spec, parents=[mc],
                            name=f"thermo {cfg['name']} {n}^3 {d} {t:g} K oracle {v['oracle']} "
                                 f"[{b + 1}/{len(batches)}]"))
    return fws


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
    fws: list[Firework] = []
    summary_parents: list[Firework] = []
    for n in spec.supercells:
        for d in spec.directions():
            prev = None
            for i, t in enumerate(scan_order(cfg, d)):
                mc = Firework([ThermoTemperatureTask(config=cfg, supercell=n, direction=d, index=i)],
                              name=f"thermo {spec.name} {n}^3 {d} {t:g} K",
                              spec={"_category": "ml", "pes_kind": "pes_thermo_mc", "supercell": n, "direction": d,
                                    "T": t, "index": i},
                              parents=[prev] if prev is not None else None)
                fws.append(mc)
                if spec.validation is not None:
                    oracle_fws = _oracle_fireworks(cfg, mc, n, d, t)
                    fws += oracle_fws
                    summary_parents += oracle_fws
                prev = mc
            summary_parents.append(prev)
    fws.append(Firework([ThermoSummaryTask(config=cfg)], name=f"thermo {spec.name} summary",
                        spec={"_category": "ml", "pes_kind": "pes_thermo_summary"}, parents=summary_parents))
    meta = {"pes_kind": "pes_thermo", "thermo": spec.name, "model": spec.model, "supercells": list(spec.supercells),
            "directions": spec.directions(), "oracle": spec.validation.oracle if spec.validation else None, "config": cfg}
    return Workflow(fws, name=f"pes thermo {spec.name}", metadata=meta)


register_kind("pes_thermo", PESThermoSpec, pes_thermo_workflow)
