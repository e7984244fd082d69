"""The crystal-structure-prediction job (spec kind ``csp``).

Modules in import order: ``spec`` (the spec model) -> ``state`` (the stored
``SearchRun``) -> ``report`` -> ``tasks``/``active_tasks``/``learning``
(firetasks of the generations, the pre-exploration and training, the
learning-on-the-fly glue) -> ``builders`` (the workflow from a spec).
"""
