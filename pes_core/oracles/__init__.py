"""Oracles: named sources of reference energies, forces and stresses.

>>> from pes_core.oracles import get_oracle
>>> from ase.build import bulk
>>> result = get_oracle("emt").compute(bulk("Cu", "fcc", a=3.6))
>>> round(result.energy, 4)
-0.0067

Names: ``emt``, ``lj``, ``tersoff``, ``sw``, ``bks`` (fast classical), ``chgnet``, ``sevenn``
(universal ML potentials, the embedded default stand-in for DFT), and the
first-principles ``vasp`` and ``cp2k`` where their modules are present.

The settings each oracle accepts, with their types and physical ranges, are
in :data:`ORACLE_SETTINGS`; :func:`check_oracle_settings` refuses unknown keys
and out-of-range numbers before any work starts:

>>> from pes_core.oracles import check_oracle_settings
>>> check_oracle_settings("lj", {"sigma": 2.3, "epsilon": 0.05})
>>> check_oracle_settings("lj", {"sigma": -1})
Traceback (most recent call last):
...
ValueError: oracle_settings.sigma is out of range for oracle 'lj', got -1 (allowed: > 0 and <= 20; Å, LJ length scale)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from pes_core.oracles.base import (
    Oracle,
    OracleError,
    OracleResult,
    to_atoms,
    to_structure,
)

__all__ = [
    "ORACLE_SETTINGS",
    "Oracle",
    "OracleError",
    "OracleResult",
    "SettingRule",
    "accepted_settings",
    "available_oracles",
    "check_oracle_settings",
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
    "bks": "pes_core.oracles.bks:BKSOracle",
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


@dataclass(frozen=True)
class SettingRule:
    """Type and range of one oracle setting.

    Parameters
    ----------
    kind : str
        ``"float"`` (finite number), ``"int"``, ``"bool"``, ``"str"``, ``"dict"``,
        ``"list"`` (any list), ``"str_list"`` or ``"mesh"`` (three positive integers).
    gt, ge, lt, le : float, optional
        Bounds of a number (``float``/``int``).
    unit : str
        Unit and meaning, shown in messages.
    """

    kind: str
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    unit: str = ""

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``> 0 and <= 20``."""
        parts = [f"{op} {v:g}" for op, v in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                 if v is not None]
        return " and ".join(parts) if parts else {"float": "any finite number", "int": "any integer"}.get(
            self.kind, self.kind)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (``None``: allowed)."""
        kind = self.kind
        if kind in ("float", "int"):
            is_int = isinstance(value, int) and not isinstance(value, bool)
            if kind == "int" and not is_int:
                return "must be an integer"
            if not (is_int or isinstance(value, float)):
                return "must be a number"
            if not math.isfinite(value):
                return "must be a finite number"
            if ((self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge)
                    or (self.lt is not None and not value < self.lt) or (self.le is not None and not value <= self.le)):
                return "is out of range"
            return None
        if kind == "mesh":
            ok = (isinstance(value, list) and len(value) == 3
                  and all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 100 for x in value))
            return None if ok else "must be three integers from 1 to 100, e.g. [4, 4, 4]"
        if kind == "str_list":
            ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
            return None if ok else "must be a list of names"
        types = {"bool": bool, "str": str, "dict": dict, "list": list}[kind]
        return None if isinstance(value, types) else f"must be a {kind}"


_POS = SettingRule("float", gt=0)
_S = SettingRule  # short for the table below
_CUSTODIAN = {
    "relax": _S("bool", unit="ionic relaxation instead of a single point"),
    "max_errors": _S("int", ge=0, le=1000, unit="custodian's error limit"),
    "polling_time_step": _S("float", gt=0, le=3600, unit="s"),
    "monitor_freq": _S("int", ge=1, le=100000),
}

#: the settings each built-in oracle accepts (name -> key -> rule); oracles not listed
#: here use their class attribute ``accepted_settings`` (absent: settings are not checked)
ORACLE_SETTINGS: dict[str, dict[str, SettingRule]] = {
    "emt": {},
    "tersoff": {},
    "sw": {},
    "bks": {
        "cutoff": _S("float", ge=5, le=30, unit="Å, shifted-force cutoff of the Buckingham part"),
        "ewald_accuracy": _S("float", ge=1e-16, le=1e-3, unit="relative truncation error of the Ewald sums"),
        "repulsion": _S("bool", unit="Saika-Voivod 30-6 short-range wall against the BKS collapse"),
    },
    "chgnet": {},
    "sevenn": {},
    "lj": {
        "epsilon": _S("float", gt=0, le=100, unit="eV, LJ well depth"),
        "sigma": _S("float", gt=0, le=20, unit="Å, LJ length scale"),
        "rc": _S("float", gt=0, le=50, unit="Å, cutoff radius"),
        "smooth": _S("bool", unit="smooth cutoff"),
    },
    "vasp": {
        **_CUSTODIAN,
        "incar_updates": _S("dict"), "kpoints": _S("mesh"),
        "kpoints_density": _S("float", gt=0, le=1e5, unit="k-points per Å^-3"),
        "user_kpoints_settings": _S("dict"), "potcar_functional": _S("str"), "user_potcar_settings": _S("dict"),
        "potcar_spec": _S("bool"), "input_set_kwargs": _S("dict"), "handlers": _S("str_list"),
        "custodian_wall_time": _S("float", gt=0, unit="s"), "frozen_timeout": _S("float", gt=0, unit="s"),
        "verify_inputs": _S("bool"), "vasp_cmd": _S("str"),
    },
    "cp2k": {
        **_CUSTODIAN,
        "kpoints": _S("mesh"), "kpoints_length": _S("float", gt=0, le=200, unit="Å"),
        "cutoff": _S("float", gt=0, le=10000, unit="Ry"), "rel_cutoff": _S("float", gt=0, le=10000, unit="Ry"),
        "input_settings": _S("dict"), "omp_threads": _S("int", ge=1, le=1024),
        "cp2k_cmd": _S("str"), "cp2k_data_dir": _S("str"),
    },
}


def accepted_settings(name: str) -> dict[str, SettingRule] | None:
    """The settings oracle ``name`` accepts (key -> rule), ``None`` when it does not say."""
    if name in ORACLE_SETTINGS:
        return ORACLE_SETTINGS[name]
    return getattr(oracle_class(name), "accepted_settings", None)


def check_oracle_settings(name: str, settings: dict[str, Any] | None, where: str = "oracle_settings") -> None:
    """Raise ``ValueError`` for unknown keys or out-of-range values in the settings of oracle ``name``.

    The message names the key path (``where.key``), the value and the
    allowed range, or lists the accepted keys.
    """
    rules = accepted_settings(name)
    if rules is None:
        return
    if settings is None:
        return
    if not isinstance(settings, dict):
        raise ValueError(f"{where} must be a mapping of settings, got {settings!r}")  # noqa: TRY004 (pydantic)
    unknown = sorted(str(k) for k in settings if k not in rules)
    if unknown:
        accepted = ", ".join(sorted(rules)) if rules else "none (this oracle takes no settings: leave it out)"
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} for oracle {name!r}; accepted: {accepted}")
    for key in sorted(settings):
        rule, value = rules[key], settings[key]
        why = rule.problem(value)
        if why is None:
            continue
        unit = f"; {rule.unit}" if rule.unit else ""
        if rule.kind in ("float", "int"):
            raise ValueError(f"{where}.{key} {why} for oracle {name!r}, got {value!r} "
                             f"(allowed: {rule.allowed()}{unit})")
        raise ValueError(f"{where}.{key} {why} for oracle {name!r}, got {value!r}" + (f" ({rule.unit})" if unit else ""))
