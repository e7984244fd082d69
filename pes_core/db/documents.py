"""mongoengine documents of the domain database.

The domain database lives beside the FireWorks LaunchPad (same server or
embedded store, collections prefixed ``pes_``).  It is the single place where
results live; firework specs only carry ids.

Units: energies eV, forces eV/Å, stress GPa (3x3, ASE sign convention).
"""

from __future__ import annotations

import datetime as _dt

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    FileField,
    FloatField,
    IntField,
    ListField,
    StringField,
)

__all__ = [
    "ActiveLearningEvent",
    "Configuration",
    "FailedCalculation",
    "GenerationRecord",
    "PotentialModel",
    "SearchRun",
]


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


class Configuration(Document):
    """One structure with first-principles (or stand-in) results and provenance.

    ``content_hash`` is a canonical hash of (structure, oracle, oracle
    settings) -- see :func:`pes_core.db.hashing.calculation_hash` -- and is
    unique, so storing the same calculation twice is a no-op.
    """

    content_hash = StringField(required=True, unique=True)
    structure_hash = StringField(required=True)
    structure = DictField(required=True)  # pymatgen Structure.as_dict()
    formula = StringField(required=True)
    reduced_formula = StringField()
    elements = ListField(StringField())
    n_atoms = IntField(required=True, min_value=1)
    volume = FloatField()  # Å^3

    energy = FloatField(required=True)  # eV
    energy_per_atom = FloatField(required=True)  # eV/atom
    forces = ListField(ListField(FloatField()), required=True)  # eV/Å, (n, 3)
    stress = ListField(ListField(FloatField()), default=None, null=True)  # GPa, 3x3

    oracle = StringField(required=True)
    oracle_settings = DictField()
    code_version = StringField()
    provenance = DictField()  # everything the oracle reported (INCAR, custodian corrections, ...)
    fw_id = IntField(null=True)
    launch_dir = StringField(null=True)
    workflow = StringField(null=True)  # a name/id of the workflow that asked for it
    generator = StringField(null=True)  # e.g. 'rattle', 'tilt:a-a-a-', 'csp:heredity'
    tags = ListField(StringField())
    extra = DictField()  # e.g. {'grade': 12.3} for actively selected configurations
    created_at = DateTimeField(default=_now)

    meta = {
        "collection": "pes_configurations",
        "indexes": ["structure_hash", "oracle", "reduced_formula", "tags", "workflow"],
    }


class FailedCalculation(Document):
    """A structure whose oracle call failed, with the reason (kept for reports)."""

    content_hash = StringField(required=True)
    structure = DictField(required=True)
    oracle = StringField(required=True)
    oracle_settings = DictField()
    reason = StringField(required=True)
    fw_id = IntField(null=True)
    workflow = StringField(null=True)
    tags = ListField(StringField())
    created_at = DateTimeField(default=_now)

    meta = {"collection": "pes_failed_calculations", "indexes": ["content_hash", "workflow"]}


class PotentialModel(Document):
    """A trained potential (MTP or neural network) with its training record."""

    name = StringField(required=True)
    kind = StringField(required=True, choices=("mtp", "ann", "linear", "hiphive"))
    version = IntField(default=0)
    parameters = FileField(collection_name="pes_model_files")  # serialized model (GridFS)
    active_set = FileField(collection_name="pes_model_files")  # maxvol state (GridFS), MTP only
    settings = DictField()  # hyperparameters
    metrics = DictField()  # RMSEs etc. (eV/atom, eV/Å, GPa)
    training_ids = ListField(StringField())  # Configuration.content_hash of every training item
    validation_ids = ListField(StringField())
    workflow = StringField(null=True)
    parent = StringField(null=True)  # id of the model this one was retrained from
    fw_id = IntField(null=True)
    created_at = DateTimeField(default=_now)

    meta = {"collection": "pes_potential_models", "indexes": ["name", "kind", "workflow"]}


class SearchRun(Document):
    """One crystal-structure-prediction run (its settings and running state)."""

    name = StringField(required=True, unique=True)
    settings = DictField(required=True)
    state = DictField()  # serialized search state: population ids, history, operator stats
    status = StringField(default="running", choices=("running", "converged", "capped", "failed"))
    current_generation = IntField(default=0)
    best_enthalpy_per_atom = FloatField(null=True)  # eV/atom
    model_id = StringField(null=True)
    created_at = DateTimeField(default=_now)
    updated_at = DateTimeField(default=_now)

    meta = {"collection": "pes_search_runs"}


class GenerationRecord(Document):
    """A finished generation of a search; (search, index) is unique so reruns do not duplicate."""

    search = StringField(required=True)
    index = IntField(required=True, unique_with="search")
    population = ListField(DictField())  # individuals: structure dicts, enthalpies, origins
    best_enthalpy_per_atom = FloatField(null=True)
    n_oracle_calls = IntField(default=0)
    n_model_evaluations = IntField(default=0)
    stats = DictField()
    created_at = DateTimeField(default=_now)

    meta = {"collection": "pes_generations"}


class ActiveLearningEvent(Document):
    """A configuration selected by the extrapolation grade and what was done with it."""

    configuration_hash = StringField(required=True)
    model_id = StringField(null=True)
    grade = FloatField(required=True)
    reason = StringField(default="select")  # 'select', 'break', 'floor' or 'short'
    context = DictField()  # search name, generation, relaxation step ...
    processed = BooleanField(default=False)
    created_at = DateTimeField(default=_now)

    meta = {"collection": "pes_active_learning_events", "indexes": ["configuration_hash"]}
