"""The anharmonic-PES job (spec kinds ``pes_training_set`` and ``pes_fit``).

Modules in import order: ``spec`` -> ``store`` (stored state) -> ``fit``
(end of a fit) -> ``report`` -> ``fit_tasks`` -> ``training_tasks`` ->
``builders``.

State lives in the domain database: relaxed cells and every oracle result are
``Configuration`` documents of the training-set workflow; the holdout split,
feature caches and the fit record are blobs (:mod:`workflows.core.blobs`) named
by the workflow; trained models are ``PotentialModel`` documents.  Reruns reuse
what is stored (relaxations, oracle results, the split), so the workflows are
idempotent and resumable.
"""
