"""Crystal structure prediction workflows (spec kind ``csp``).

Direct mode (``mode: direct``): every relaxation runs on the oracle; the
baseline for the MTP speed-up.  MTP mode (``mode: mtp``): pre-exploration
selects an initial training set by the extrapolation grade alone, the oracle
computes it, an MTP is fitted, and the relaxations learn on the fly.

Examples
--------
>>> wf = csp_workflow("si8", {"composition": {"Si": 1}, "n_atoms": [8, 8]}, oracle="tersoff", mode="mtp")
>>> [(fw.spec["pes_kind"], fw.spec["_category"]) for fw in wf.fws]
[('csp_preselect', 'ml'), ('mtp_train', 'ml'), ('csp_generation', 'ml')]
"""

from __future__ import annotations

from typing import Any

from fireworks import Firework, Workflow

from pes_core.active import ActiveSettings
from pes_core.search import SearchSettings
from pes_core.search.seeds import embed_seeds, resolve_seeds
from workflows.core.spec import register_kind
from workflows.csp.active_tasks import CSPPreselectTask, train_firework
from workflows.csp.spec import CSPSpec
from workflows.csp.tasks import generation_firework

__all__ = ["csp_workflow", "initial_fireworks"]


def csp_workflow(name: str, search: dict[str, Any], *, oracle: str, oracle_settings: dict | None = None,
                 mode: str = "direct", relax: dict | None = None, mtp: dict | None = None,
                 active: dict | None = None, verify: dict | None = None) -> Workflow:
    """The CSP workflow (the search itself is registered when the first firework runs).

    ``relax``, ``mtp``, ``active`` and ``verify`` are the spec sections
    (:mod:`workflows.csp.spec`); what they leave out takes the one default of
    its setting.
    """
    sections = {k: v for k, v in {"relax": relax, "mtp": mtp, "active": active, "verify": verify}.items() if v}
    spec = CSPSpec(kind="csp", name=name, oracle=oracle, oracle_settings=oracle_settings or {},
                   mode=mode, search=search, **sections)
    return _build(spec)


def initial_fireworks(name: str, config: dict, formula: str) -> list[Firework]:
    """Mode mtp: pre-exploration (``ml``) -> (oracle detour) -> training (``ml``) -> generation 0."""
    ActiveSettings.from_config(config)  # fail at submission on a bad setting
    pre = Firework([CSPPreselectTask(search=name)], name=f"csp {name} pre-exploration",
                   spec={"_category": "ml", "pes_kind": "csp_preselect", "search": name, "formula": formula})
    train = train_firework(name, parents=[pre], label="(initial)")
    gen0 = generation_firework(name, 0, config, formula=formula, parents=[train])
    return [pre, train, gen0]


def _build(spec: CSPSpec, base_dir=None) -> Workflow:
    """The workflow of ``spec``; seed files are read relative to ``base_dir`` (default: the working folder)."""
    settings = SearchSettings.from_dict(spec.search)
    formula = "".join(f"{el}{n if n > 1 else ''}" for el, n in settings.composition.items())
    config = spec.config()
    if settings.seeds:  # files read now (relative to the spec), every seed adapted: a bad one is refused here
        config["search"]["seeds"] = embed_seeds(settings.seeds, settings.composition, base_dir)
        resolve_seeds(SearchSettings.from_dict(config["search"]))
    if spec.mode == "mtp":
        fws = initial_fireworks(spec.name, config, formula)
    else:
        fws = [generation_firework(spec.name, 0, config, formula=formula)]
    fws[0].spec["pes_csp_config"] = config  # read once by the first firework to create the SearchRun
    metadata = {"pes_kind": "csp", "search": spec.name, "formula": formula, "mode": spec.mode,
                "oracle": spec.oracle, "pressure_gpa": settings.pressure_gpa}
    return Workflow(fws, name=f"csp {spec.name}", metadata=metadata)


register_kind("csp", CSPSpec, _build)
