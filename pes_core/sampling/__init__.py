"""Training-set generators.

* :func:`rattled_strained` -- random strains and displacements of a parent cell,
* :func:`glazer_tilted` / :data:`GLAZER_SYSTEMS` -- the 15 octahedral tilt
  systems of a cubic perovskite (Glazer 1972; space groups after Howard &
  Stokes 1998); :func:`tilted_supercell` builds them for a
  :class:`pes_core.clusters.PerovskiteReference` (any ABX3).
* :func:`mosaic_supercells` -- supercells whose blocks are different
  distorted copies of one training cell (couplings a small periodic cell
  cannot hold);
* :mod:`pes_core.sampling.pes_training` -- symmetry-adapted displacement
  modes and strains, n-sphere samples with a feature-correlation novelty
  filter, interpolations, oracle relaxations and thermal (oracle MD)
  snapshots (PES training sets), and the settings dataclasses of those
  stages (:class:`SystematicSettings`, :class:`StochasticSettings`,
  :class:`ThermalSettings`, :class:`ReferenceRelaxSettings`).
"""

from pes_core.sampling.mosaic import block_displacements, mosaic_supercells
from pes_core.sampling.perturb import rattled_strained
from pes_core.sampling.pes_training import (
    ModeBlock,
    NoveltyFilter,
    ReferenceRelaxSettings,
    StochasticSettings,
    SystematicSettings,
    ThermalSettings,
    interpolate_structures,
    mode_enumeration,
    nsphere_samples,
    relax_cubic,
    relax_structure,
    stochastic_training_set,
    strain_enumeration,
    symmetry_adapted_modes,
    symmetry_adapted_strains,
    systematic_training_set,
    thermal_snapshots,
    thermal_training_set,
)
from pes_core.sampling.tilts import (
    GLAZER_SYSTEMS,
    glazer_tilted,
    parse_glazer,
    tilted_supercell,
)

__all__ = [
    "GLAZER_SYSTEMS",
    "ModeBlock",
    "NoveltyFilter",
    "ReferenceRelaxSettings",
    "StochasticSettings",
    "SystematicSettings",
    "ThermalSettings",
    "block_displacements",
    "glazer_tilted",
    "interpolate_structures",
    "mode_enumeration",
    "mosaic_supercells",
    "nsphere_samples",
    "parse_glazer",
    "rattled_strained",
    "relax_cubic",
    "relax_structure",
    "stochastic_training_set",
    "strain_enumeration",
    "symmetry_adapted_modes",
    "symmetry_adapted_strains",
    "systematic_training_set",
    "thermal_snapshots",
    "thermal_training_set",
    "tilted_supercell",
]
