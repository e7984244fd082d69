"""Evolutionary crystal structure prediction (USPEX-like).

Modules: ``settings`` (:class:`SearchSettings`), ``individual`` and
``population`` (structures with fitness, ranking, selection), ``operators``
(random symmetric structures, heredity, coordinate and lattice mutation,
permutation), ``fingerprints`` (Oganov-Valle niching), ``relax`` (pluggable
relaxers; :class:`OracleRelaxer` relaxes directly on an oracle; :class:`RelaxSettings`,
:class:`VerifySettings`), ``engine``
(the generation step and the loop), ``seeds`` (known structures adapted into generation 0),
``prototypes`` (named polymorphs: seeds and benchmark references), ``geometry`` (vacuum, clash, space-group checks), ``report`` (tables,
CIFs, plots).

>>> from pes_core.oracles import get_oracle
>>> from pes_core.search import SearchSettings, OracleRelaxer, run_search, candidate_table, format_table
>>> settings = SearchSettings(composition={"Si": 1}, n_atoms=(8, 8), seed=3)  # doctest: +SKIP
>>> state = run_search(settings, OracleRelaxer(get_oracle("tersoff")))  # doctest: +SKIP
>>> print(format_table(candidate_table(state, within=0.05)))  # doctest: +SKIP
"""

from pes_core.search.engine import (
    SearchState,
    allocate,
    evaluate,
    new_search,
    next_generation,
    propose_offspring,
    relax_offspring,
    run_search,
    update,
)
from pes_core.search.fingerprints import FingerprintComparator, mark_duplicates
from pes_core.search.individual import Individual, atoms_from_dict, atoms_to_dict
from pes_core.search.population import Population
from pes_core.search.relax import OracleRelaxer, RelaxResult, Relaxer, RelaxSettings, VerifySettings, enthalpy_per_atom
from pes_core.search.report import (
    candidate_table,
    format_table,
    has_clash,
    has_vacuum,
    largest_gap,
    plot_history,
    spacegroup_label,
    write_cifs,
)
from pes_core.search.settings import DEFAULT_FRACTIONS, OPERATORS, SearchSettings

__all__ = [
    "DEFAULT_FRACTIONS",
    "FingerprintComparator",
    "Individual",
    "OPERATORS",
    "OracleRelaxer",
    "Population",
    "RelaxResult",
    "RelaxSettings",
    "Relaxer",
    "SearchSettings",
    "SearchState",
    "VerifySettings",
    "allocate",
    "atoms_from_dict",
    "atoms_to_dict",
    "candidate_table",
    "enthalpy_per_atom",
    "evaluate",
    "format_table",
    "has_clash",
    "has_vacuum",
    "largest_gap",
    "mark_duplicates",
    "new_search",
    "next_generation",
    "plot_history",
    "propose_offspring",
    "relax_offspring",
    "run_search",
    "spacegroup_label",
    "update",
    "write_cifs",
]
