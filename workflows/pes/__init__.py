"""The anharmonic-PES job (spec kinds ``pes_training_set`` and ``pes_fit``).

Modules in import order: ``spec`` -> ``store`` (stored state) -> ``fit``
(end of a fit) -> ``report`` -> ``fit_tasks`` -> ``training_tasks`` ->
``builders``.
"""
