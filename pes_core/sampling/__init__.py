"""Training-set generators.

* :func:`rattled_strained` -- random strains and displacements of a parent cell,
* :func:`glazer_tilted` / :data:`GLAZER_SYSTEMS` -- the 15 octahedral tilt
  systems of a cubic perovskite (Glazer 1972; space groups after Howard &
  Stokes 1998).
* :mod:`pes_core.sampling.pes_training` -- symmetry-adapted displacement
  modes and strains, n-sphere samples with a feature-correlation novelty
  filter, interpolations, oracle relaxations and thermal (oracle MD)
  snapshots (PES training sets).
"""

from pes_core.sampling.perturb import rattled_strained
from pes_core.sampling.pes_training import (
    ModeBlock,
    NoveltyFilter,
    interpolate_structures,
    mode_enumeration,
    nsphere_samples,
    relax_cubic,
    relax_structure,
    stochastic_training_set,
    strain_enumeration,
    systematic_training_set,
    symmetry_adapted_modes,
    symmetry_adapted_strains,
    thermal_snapshots,
    thermal_training_set,
)
from pes_core.sampling.tilts import GLAZER_SYSTEMS, glazer_tilted, parse_glazer

__all__ = ["GLAZER_SYSTEMS", "ModeBlock", "NoveltyFilter", "glazer_tilted", "interpolate_structures",
           "mode_enumeration", "nsphere_samples", "parse_glazer", "rattled_strained", "relax_cubic",
           "relax_structure", "stochastic_training_set", "strain_enumeration",
           "systematic_training_set", "symmetry_adapted_modes", "symmetry_adapted_strains",
           "thermal_snapshots", "thermal_training_set"]
