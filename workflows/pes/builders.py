"""PES workflows: training-set generation (``pes_training_set``) and model fitting (``pes_fit``).

The spec keys are documented in :mod:`workflows.pes.spec`.
"""

from __future__ import annotations

from fireworks import Workflow

from workflows.core.spec import register_kind
from workflows.pes.fit_tasks import fit_fireworks
from workflows.pes.spec import PESFitSpec, PESTrainingSetSpec
from workflows.pes.training_tasks import reference_firework

__all__ = ["pes_fit_workflow", "pes_training_workflow"]


def _config(spec: PESTrainingSetSpec) -> dict:
    cfg = spec.model_dump()
    cfg.pop("kind")
    if cfg.get("fit"):
        cfg["fit"].pop("kind", None)
        cfg["fit"].setdefault("oracle", spec.oracle)
    return cfg


def pes_training_workflow(spec: PESTrainingSetSpec | dict, base_dir=None) -> Workflow:
    """The training-set workflow (reference relaxations first; the rest is added as it runs).

    The first firework relaxes the reference cells with the oracle, so it carries the oracle's
    category (``dft`` workers run it for VASP/CP2K).
    """
    if isinstance(spec, dict):
        spec = PESTrainingSetSpec.model_validate({"kind": "pes_training_set", **spec})
    cfg = _config(spec)
    fw = reference_firework(cfg)
    ref = spec.reference.to_reference()
    meta = {"pes_kind": "pes_training_set", "training_set": spec.name, "oracle": spec.oracle,
            "fit": spec.fit.name if spec.fit else None, "formula": ref.formula}
    return Workflow([fw], name=f"pes {spec.name}", metadata=meta)


def pes_fit_workflow(spec: PESFitSpec | dict, base_dir=None) -> Workflow:
    """The fit workflow of an existing training set (split -> CV fan-out -> select)."""
    if isinstance(spec, dict):
        spec = PESFitSpec.model_validate({"kind": "pes_fit", **spec})
    if not spec.training_set:
        raise ValueError("a pes_fit spec needs training_set (the training-set workflow name)")
    fit = spec.model_dump()
    fit.pop("kind")
    meta = {"pes_kind": "pes_fit", "fit": spec.name, "training_set": spec.training_set}
    return Workflow(fit_fireworks(fit), name=f"pes fit {spec.name}", metadata=meta)


register_kind("pes_training_set", PESTrainingSetSpec, pes_training_workflow)
register_kind("pes_fit", PESFitSpec, pes_fit_workflow)
