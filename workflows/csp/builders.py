"""Crystal structure prediction workflows (spec kind ``csp``).

Direct mode (``mode: direct``): every relaxation runs on the oracle; the
baseline for the MTP speed-up.  MTP mode (``mode: mtp``): pre-exploration
selects an initial training set by the extrapolation grade alone, the oracle
computes it, an MTP is fitted, and the relaxations learn on the fly.

>>> wf = csp_workflow("si8", {"composition": {"Si": 1}, "n_atoms": [8, 8]}, oracle="tersoff")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from fireworks import Workflow

from pes_core.search import SearchSettings
from workflows.core.spec import register_kind
from workflows.csp.learning import initial_fireworks
from workflows.csp.spec import CSPSpec
from workflows.csp.tasks import generation_firework

__all__ = ["csp_workflow"]


def csp_workflow(name: str, search: dict[str, Any], *, oracle: str, oracle_settings: dict | None = None,
                 mode: str = "direct", relax: dict | None = None, mtp: dict | None = None,
                 active: dict | None = None, verify: dict | None = None) -> Workflow:
    """The CSP workflow (the search itself is registered when the first firework runs)."""
    spec = CSPSpec(kind="csp", name=name, oracle=oracle, oracle_settings=oracle_settings or {},
                   mode=mode, search=search, relax=relax or {}, mtp=mtp or {}, active=active or {},
                   verify=verify or {"within_mev": 100.0})
    return _build(spec)


def _build(spec: CSPSpec, base_dir=None) -> Workflow:
    settings = SearchSettings.from_dict(spec.search)
    formula = "".join(f"{el}{n if n > 1 else ''}" for el, n in settings.composition.items())
    config = spec.model_dump()
    config.pop("kind")
    if spec.mode == "mtp":
        fws = initial_fireworks(spec.name, config, formula)
    else:
        fws = [generation_firework(spec.name, 0, formula=formula)]
    fws[0].spec["pes_csp_config"] = config  # read once by the first firework to create the SearchRun
    metadata = {"pes_kind": "csp", "search": spec.name, "formula": formula, "mode": spec.mode,
                "oracle": spec.oracle, "pressure_gpa": settings.pressure_gpa}
    return Workflow(fws, name=f"csp {spec.name}", metadata=metadata)


register_kind("csp", CSPSpec, _build)
