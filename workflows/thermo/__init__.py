"""Thermodynamics of a stored PES model (kind ``pes_thermo``): NPT Monte Carlo scans, transitions, validation.

``spec`` (keys) -> ``tasks`` (firetasks, blobs) -> ``builders`` (the workflow,
registers the kind) -> ``report`` (plots).  See ``docs/jobs/thermo.md``.
"""

from __future__ import annotations
