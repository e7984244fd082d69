"""Spec of the ``oracle_batch`` kind: structures (files, prototypes, perturbed copies) for one oracle.

Example::

    kind: oracle_batch
    name: si-rattled
    oracle: chgnet
    oracle_settings: {}
    batch_size: 10
    tags: [demo]
    structures:
      - file: si.cif                   # CIF/POSCAR/extxyz/JSON, relative to the spec
      - prototype: {formula: Si, structure: diamond, a: 5.43}
        supercell: [2, 2, 2]
        perturb: {count: 20, rattle: 0.05, strain: 0.02, seed: 0}
    limits: {max_atoms: 5000, max_structures: 20000}   # the defaults; checked before anything is built

The prototypes' elements are checked against the oracle, and the atoms of
each structure (prototype x supercell) and the number of structures are
estimated and checked against ``limits`` before anything is built; files are
checked as soon as they are read, before their supercells and perturbed copies
are made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ase.build import bulk
from ase.symbols import string2symbols
from pydantic import Field, model_validator
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from pes_core.sampling import rattled_strained
from pes_core.structures import (
    DEFAULT_COVALENT_FACTOR,
    DEFAULT_MIN_DISTANCE,
    load_structures,
    validate_structure,
)
from workflows.core.spec import (
    Limits,
    OracleName,
    OracleSpec,
    SpecError,
    StrictModel,
    check_elements,
)

__all__ = ["OracleBatchSpec", "Perturb", "Prototype", "StructureSource", "collect_structures"]


class Perturb(StrictModel):
    count: int = Field(ge=1, le=10_000_000, description="number of perturbed copies (see limits.max_structures)")
    rattle: float = Field(0.05, ge=0, le=1.0, description="displacement std (Å)")
    strain: float = Field(0.02, ge=0, le=0.5, description="max strain component")
    seed: int = Field(0, ge=0)
    include_parent: bool = False


class Prototype(StrictModel):
    formula: str = Field(description="element symbol(s), e.g. Si or NaCl")
    structure: Literal["fcc", "bcc", "hcp", "diamond", "sc", "rocksalt", "zincblende",
                       "cesiumchloride", "fluorite", "wurtzite"]
    a: float = Field(gt=0.5, lt=50, description="lattice constant (Å)")
    c: float | None = Field(None, gt=0.5, lt=50)
    cubic: bool = False


class StructureSource(StrictModel):
    file: str | None = None
    prototype: Prototype | None = None
    supercell: list[int] | None = None
    perturb: Perturb | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.file is None) == (self.prototype is None):
            raise ValueError("give exactly one of 'file' or 'prototype'")
        if self.supercell is not None and (len(self.supercell) != 3 or min(self.supercell) < 1):
            raise ValueError(f"supercell must be three positive integers, e.g. [2, 2, 2], got {self.supercell}")
        return self

    def multiplicity(self) -> int:
        """Cells of the parent in one structure (the supercell's determinant)."""
        a, b, c = self.supercell or (1, 1, 1)
        return a * b * c

    def per_parent(self) -> int:
        """Structures made from one parent (perturbed copies, and the parent where kept)."""
        if self.perturb is None:
            return 1
        return self.perturb.count + int(self.perturb.include_parent)


class OracleBatchSpec(OracleSpec):
    kind: Literal["oracle_batch"]
    name: str | None = None
    oracle: OracleName
    oracle_settings: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = Field(None, ge=1, le=10000)
    tags: list[str] = Field(default_factory=list)
    min_distance: float = Field(DEFAULT_MIN_DISTANCE, gt=0, lt=5)
    limits: Limits = Field(default_factory=Limits, description="size limits checked before anything is built")
    structures: list[StructureSource] = Field(min_length=1)

    @model_validator(mode="after")
    def _elements_and_sizes(self):
        """Prototype elements against the oracle; atoms and structures against ``limits`` (files: when read)."""
        total = 0
        for k, src in enumerate(self.structures):
            if src.prototype is None:
                continue
            where = f"structures[{k}]"
            try:
                symbols = string2symbols(src.prototype.formula)
            except ValueError:
                raise ValueError(f"{where}.prototype.formula: {src.prototype.formula!r} is not a chemical formula "
                                 "(e.g. Si, NaCl, GaAs)") from None
            check_elements(dict.fromkeys(symbols), self.oracle, f"{where}.prototype.formula")
            atoms = _prototype_atoms(src.prototype)
            if atoms is not None:
                self.limits.check_atoms(atoms * src.multiplicity(), f"{where} (prototype x supercell)")
                total += src.per_parent()
                self.limits.check_structures(total, atoms * src.multiplicity(), "structures")
        return self


def _prototype_atoms(p: Prototype) -> int | None:
    """Atoms of the prototype's cell (``None`` if it cannot be built: reported by the builder)."""
    try:
        return len(bulk(p.formula, p.structure, a=p.a, c=p.c, cubic=p.cubic))
    except Exception:  # noqa: BLE001 (the builder reports it with its reason)
        return None


def _prototype(p: Prototype) -> Structure:
    try:
        atoms = bulk(p.formula, p.structure, a=p.a, c=p.c, cubic=p.cubic)
    except Exception as err:
        raise SpecError(f"cannot build prototype {p.formula} {p.structure}: {err}") from err
    return AseAtomsAdaptor.get_structure(atoms)


def collect_structures(sources: list[StructureSource], base_dir: Path,
                       min_distance: float = DEFAULT_MIN_DISTANCE,
                       limits: Limits | None = None) -> tuple[list[Structure], list[str]]:
    """Expand the ``structures`` entries of a spec into structures and generator labels.

    The size of every supercell and the number of structures are checked
    against ``limits`` (default :class:`~workflows.core.spec.Limits`) before
    they are made.
    """
    limits = limits or Limits()
    structures: list[Structure] = []
    labels: list[str] = []
    for k, src in enumerate(sources):
        if src.file is not None:
            path = (base_dir / src.file) if not Path(src.file).is_absolute() else Path(src.file)
            if not path.is_file():
                raise SpecError(f"structures[{k}].file: {path} does not exist")
            parents = load_structures(path, min_distance=min_distance)
            label = f"file:{path.name}"
        else:
            parents = [_prototype(src.prototype)]
            label = f"prototype:{src.prototype.formula}-{src.prototype.structure}"
        for parent in parents:
            n_atoms = len(parent) * src.multiplicity()
            try:
                limits.check_atoms(n_atoms, f"structures[{k}]")
                limits.check_structures(len(structures) + src.per_parent(), n_atoms, "structures")
            except ValueError as err:
                raise SpecError(str(err)) from None
            if src.supercell:
                parent = parent.copy()
                parent.make_supercell(src.supercell)
            # prototypes get the covalent-radius overlap check that structure files get on reading
            validate_structure(parent, min_distance, f"structures[{k}]",
                               covalent_factor=DEFAULT_COVALENT_FACTOR if src.file is None else None)
            if src.perturb is None or src.perturb.include_parent:
                structures.append(parent)
                labels.append(label)
            if src.perturb is None:
                continue
            samples = rattled_strained(parent, src.perturb.count, rattle=src.perturb.rattle,
                                       strain=src.perturb.strain, seed=src.perturb.seed,
                                       min_distance=min_distance)
            structures.extend(samples)
            labels.extend([f"{label}+rattle"] * len(samples))
    return structures, labels


