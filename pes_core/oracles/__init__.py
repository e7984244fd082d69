"""Oracles: named sources of reference energies, forces and stresses.

>>> from pes_core.oracles import get_oracle
>>> from ase.build import bulk
>>> result = get_oracle("emt").compute(bulk("Cu", "fcc", a=3.6))
>>> round(result.energy, 4)
-0.0067

Names: ``emt``, ``lj``, ``tersoff``, ``sw`` (fast classical), ``chgnet``, ``sevenn``
(universal ML potentials, the embedded default stand-in for DFT), and the
first-principles ``vasp`` and ``cp2k`` where their modules are present.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pes_core.oracles.base import Oracle, OracleError, OracleResult, to_atoms, to_structure

__all__ = [
    "Oracle",
    "OracleError",
    "OracleResult",
    "available_oracles",
    "get_oracle",
    "register_oracle",
    "to_atoms",
    "to_structure",
]

# name -> "module:Class"; imported lazily so heavy backends load only when used
_REGISTRY: dict[str, str | type[Oracle]] = {
    "emt": "pes_core.oracles.ase_calc:EMTOracle",
    "lj": "pes_core.oracles.ase_calc:LennardJonesOracle",
    "tersoff": "pes_core.oracles.ase_calc:TersoffOracle",
    "sw": "pes_core.oracles.ase_calc:StillingerWeberOracle",
    "chgnet": "pes_core.oracles.ase_calc:CHGNetOracle",
    "sevenn": "pes_core.oracles.ase_calc:SevenNetOracle",
    "vasp": "pes_core.oracles.vasp:VaspOracle",
    "cp2k": "pes_core.oracles.cp2k:Cp2kOracle",
}


_PLUGINS_LOADED = False


def _load_plugins() -> None:
    """Import oracle plugins: entry points of group ``pes_core.oracles`` and the
    comma-separated modules in ``$PES_ORACLE_PLUGINS`` (each calls :func:`register_oracle`)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    import os
    from importlib.metadata import entry_points

    for ep in entry_points(group="pes_core.oracles"):
        register_oracle(ep.name, ep.value)
    for module in filter(None, (m.strip() for m in os.environ.get("PES_ORACLE_PLUGINS", "").split(","))):
        try:
            import_module(module)
        except ImportError as err:
            raise ValueError(f"oracle plugin module {module!r} from $PES_ORACLE_PLUGINS cannot be imported: {err}") from err


def register_oracle(name: str, target: str | type[Oracle]) -> None:
    """Register an oracle class (or a lazily imported ``"module:Class"`` path) under ``name``."""
    _REGISTRY[name] = target


def available_oracles() -> list[str]:
    """Names of all registered oracles (a module may still fail to import)."""
    _load_plugins()
    return sorted(_REGISTRY)


def oracle_class(name: str) -> type[Oracle]:
    """The oracle class registered under ``name``."""
    _load_plugins()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"unknown oracle {name!r}; choose one of {', '.join(available_oracles())}"
        )
    target = _REGISTRY[name]
    if isinstance(target, type):
        return target
    module, cls = target.split(":")
    try:
        return getattr(import_module(module), cls)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"oracle {name!r} is registered but its module {module} cannot be loaded: {err}"
        ) from err


def get_oracle(name: str, settings: dict[str, Any] | None = None,
               env: dict[str, Any] | None = None) -> Oracle:
    """Build the oracle called ``name`` with its ``settings`` and worker ``env``."""
    return oracle_class(name)(settings=settings, env=env)
