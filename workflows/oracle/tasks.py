"""The oracle firetask: compute structures with a named oracle and store them.

Thin by design: it reads the structures from its parameters, asks
:mod:`pes_core.oracles`, and upserts :class:`pes_core.db.Configuration`
documents.  Results never go into the spec; only counts and hashes do.

Reruns are idempotent: a structure whose calculation hash is already stored is
skipped without calling the oracle.
"""

from __future__ import annotations

import logging

from fireworks import FiretaskBase, FWAction, explicit_serialize
from pymatgen.core import Structure

from pes_core.db import (
    calculation_hash,
    get_configuration,
    record_failure,
    store_result,
)
from pes_core.oracles import OracleError, get_oracle, oracle_class
from pes_core.oracles.jobdir import (
    CWD_LOCK,  # file-based codes change the cwd: one at a time
)
from pes_core.progress import progress
from workflows.core.runtime import (
    current_fw_id,
    ensure_domain_db,
    flush_store,
    task_workdir,
    worker_env,
)

logger = logging.getLogger(__name__)

__all__ = ["OracleTask"]



@explicit_serialize
class OracleTask(FiretaskBase):
    """Compute energy, forces and stress of structures and store them.

    Required parameters
    -------------------
    oracle : str
        Oracle name (``chgnet``, ``vasp``, ``emt`` ...).
    structures : list of dict
        pymatgen ``Structure.as_dict()`` of each structure.

    Optional parameters
    -------------------
    oracle_settings : dict
        Settings of the oracle (recorded in provenance and part of the hash).
    tags : list of str
        Tags stored with every configuration.
    generator : str or list of str
        What produced the structures (one for all, or one per structure).
    workflow : str
        Name of the workflow the results belong to.
    extra : list of dict
        Per-structure extra fields (e.g. the extrapolation grade that selected it).
    allow_failures : bool
        Default ``True`` for batches: a failed structure is recorded as a
        ``FailedCalculation`` and the rest go on; the task fails only if every
        structure failed.  With ``False`` the first failure fizzles the firework.
    """

    required_params = ["oracle", "structures"]
    optional_params = ["oracle_settings", "tags", "generator", "workflow", "extra", "allow_failures"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        name = self["oracle"]
        settings = self.get("oracle_settings") or {}
        # FireWorks already decodes MSONable dicts in task parameters
        structures = [d if isinstance(d, Structure) else Structure.from_dict(d) for d in self["structures"]]
        tags = list(self.get("tags") or [])
        generators = self.get("generator")
        if not isinstance(generators, list):
            generators = [generators] * len(structures)
        extras = self.get("extra") or [{}] * len(structures)
        allow_failures = self.get("allow_failures", len(structures) > 1)
        fw_id = current_fw_id(fw_spec)
        oracle = get_oracle(name, settings, env=worker_env(fw_spec))
        file_based = oracle_class(name).category == "dft"

        stored, skipped, failed = [], [], []
        # per-structure progress with rate and ETA (a bar on a terminal, plain lines in a job log)
        label = f"oracle {name}" + (f" fw {fw_id}" if fw_id is not None else "")
        for k, structure in enumerate(progress(structures, desc=label, unit="structure",
                                               disable=None if len(structures) > 1 else True)):
            chash = calculation_hash(structure, name, settings)
            if get_configuration(chash) is not None:
                skipped.append(chash)
                continue
            workdir = str(task_workdir(fw_spec, f"calc_{k:04d}")) if file_based else None
            try:
                if file_based:
                    with CWD_LOCK:
                        result = oracle.compute(structure, workdir=workdir)
                else:
                    result = oracle.compute(structure)
            except (OracleError, ValueError, RuntimeError) as err:
                reason = f"{type(err).__name__}: {err}"
                logger.warning("oracle %s failed on structure %d: %s", name, k, reason)
                if not allow_failures:
                    raise OracleError(f"oracle {name} failed on {structure.composition.reduced_formula}: {reason}") from err
                record_failure(structure, name, settings, reason, fw_id=fw_id,
                               workflow=self.get("workflow"), tags=tags)
                failed.append({"index": k, "hash": chash, "reason": reason[:500]})
                continue
            _, created = store_result(
                result, oracle_settings=settings, content_hash=chash, fw_id=fw_id,
                launch_dir=workdir, workflow=self.get("workflow"),
                generator=generators[k], tags=tags, extra=extras[k] if k < len(extras) else {},
            )
            (stored if created else skipped).append(chash)
            flush_store(min_interval=2.0)
        flush_store()
        if failed and not stored and not skipped:
            raise OracleError(
                f"oracle {name} failed on all {len(structures)} structures; first reason: {failed[0]['reason']}"
            )
        summary = {"stored": len(stored), "already_stored": len(skipped), "failed": len(failed)}
        logger.info("oracle %s: %s", name, summary)
        return FWAction(stored_data={**summary, "failures": failed[:20]},
                        mod_spec=[{"_push_all": {"configuration_hashes": stored + skipped}}])
