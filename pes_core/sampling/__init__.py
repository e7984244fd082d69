"""Training-set generators.

* :func:`rattled_strained` -- random strains and displacements of a parent cell,
* :func:`glazer_tilted` / :data:`GLAZER_SYSTEMS` -- the 15 octahedral tilt
  systems of a cubic perovskite (Glazer 1972; space groups after Howard &
  Stokes 1998).
"""

from pes_core.sampling.perturb import rattled_strained
from pes_core.sampling.tilts import GLAZER_SYSTEMS, glazer_tilted, parse_glazer

__all__ = ["GLAZER_SYSTEMS", "glazer_tilted", "parse_glazer", "rattled_strained"]
