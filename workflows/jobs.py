"""Every job of the project in one registry: spec kinds, their builders and their reporters.

Each job package (:mod:`workflows.oracle`, :mod:`workflows.csp`,
:mod:`workflows.pes`, :mod:`workflows.thermo`) registers its spec kinds in its ``builders`` module
and its reporters in its ``report`` module; importing this module imports
them all, so the functions below know every kind.

>>> from workflows.jobs import registered_kinds
>>> registered_kinds()
['csp', 'oracle_batch', 'pes_fit', 'pes_thermo', 'pes_training_set']
"""

from __future__ import annotations

import workflows.csp.builders  # noqa: F401  (registers kind csp)
import workflows.csp.report  # noqa: F401
import workflows.oracle.builders  # noqa: F401  (registers kind oracle_batch)
import workflows.oracle.report  # noqa: F401
import workflows.pes.builders  # noqa: F401  (registers kinds pes_training_set, pes_fit)
import workflows.pes.report  # noqa: F401
import workflows.thermo.builders  # noqa: F401  (registers kind pes_thermo)
import workflows.thermo.report  # noqa: F401
from workflows.core.report import write_report
from workflows.core.spec import build_from_spec, load_spec, registered_kinds

__all__ = ["build_from_spec", "load_spec", "registered_kinds", "write_report"]
