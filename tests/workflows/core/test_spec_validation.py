"""The one validation layer of every spec kind (workflows.core.spec): YAML, numbers, oracles, sizes."""

from __future__ import annotations

import copy
import math
import re
import time
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from pes_core import oracles
from pes_core.oracles import ORACLE_SETTINGS, accepted_settings, check_oracle_settings
from workflows.core.spec import (
    DEFAULT_MAX_ATOMS,
    DEFAULT_MAX_STRUCTURES,
    SpecError,
    _format_validation_error,
    check_elements,
    load_yaml_text,
)
from workflows.csp.spec import CSPSpec
from workflows.jobs import build_from_spec, load_spec
from workflows.oracle.spec import OracleBatchSpec
from workflows.pes.spec import PESFitSpec, PESTrainingSetSpec

ROOT = Path(__file__).resolve().parents[3]

#: a valid spec of each kind (small: validation only)
VALID = {
    CSPSpec: {"kind": "csp", "name": "t", "oracle": "tersoff", "mode": "mtp",
              "search": {"composition": {"Si": 1}, "n_atoms": [4, 4]}},
    OracleBatchSpec: {"kind": "oracle_batch", "oracle": "lj", "oracle_settings": {"sigma": 2.3},
                      "structures": [{"prototype": {"formula": "Cu", "structure": "hcp", "a": 2.5, "c": 4.1},
                                      "perturb": {"count": 2}}]},
    PESTrainingSetSpec: {"kind": "pes_training_set", "name": "p", "oracle": "lj",
                         "reference": {"species": {"A": "Cs", "B": "Pb", "X": "Br"}, "a": 5.87},
                         "thermal": {}, "refine": {}, "fit": {"name": "f"}},
    PESFitSpec: {"kind": "pes_fit", "name": "f", "oracle": "lj"},
}


# -- YAML ---------------------------------------------------------------------------------------


def test_duplicate_keys_are_refused_at_any_depth_with_their_lines():
    assert load_yaml_text("a: 1\nb: {c: 2}\n") == {"a": 1, "b": {"c": 2}}
    with pytest.raises(SpecError, match=r"s.yaml: duplicate key 'a' at line 3 \(first given at line 1\)"):
        load_yaml_text("a: 1\nb: 2\na: 3\n", "s.yaml")
    deep = "x:\n  y:\n    - z: 1\n      w: 2\n      z: 1\n"
    with pytest.raises(SpecError, match=r"duplicate key 'z' at line 5 \(first given at line 3\)"):
        load_yaml_text(deep)
    # a merge key may be overridden by an explicit key (YAML's own rule), not an error
    assert load_yaml_text("base: &b {fmax: 0.1, steps: 5}\nrelax: {<<: *b, fmax: 0.01}\n")["relax"] == {
        "fmax": 0.01, "steps": 5}


def test_binary_spec_file_is_refused_clearly(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"kind: csp\n\xff\xfe\x00junk")
    with pytest.raises(SpecError, match="spec.yaml: not a text file"):
        load_spec(spec)


# -- every float of every spec model refuses NaN and infinity -----------------------------------


def _float_fields(model: type[BaseModel], prefix: tuple = ()) -> list[tuple[tuple, str]]:
    """(key path, shape) of every float field of ``model`` and the models inside it."""
    out = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        ann = field.annotation
        flat = repr(ann)
        inner = [a for a in _walk(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
        if inner:
            index = (0,) if typing.get_origin(ann) is list else ()  # list of models: its first item
            out += _float_fields(inner[0], prefix + (key, *index))
        elif "float" in flat:
            out.append((prefix + (key,), "list" if flat.startswith("list") else "scalar"))
    return out


def _walk(ann):
    yield ann
    for arg in typing.get_args(ann):
        yield from _walk(arg)


def _set(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("model", list(VALID), ids=lambda m: m.__name__)
def test_every_float_field_refuses_nan_and_inf_naming_the_key(model):
    model.model_validate(VALID[model])  # the base is valid
    fields = _float_fields(model)
    assert fields, model
    for path, shape in fields:
        for bad in (math.nan, math.inf, -math.inf):
            value = [bad] if shape == "list" else bad
            with pytest.raises(ValidationError) as err:
                model.model_validate(_set(VALID[model], path, value))
            text = _format_validation_error(Path("s.yaml"), err.value, model)
            assert ".".join(map(str, path)) in text and repr(bad) in text, (path, text)


def test_search_numbers_are_checked_key_by_key():
    for key, bad in [("pressure_gpa", math.nan), ("pressure_gpa", 1e7), ("population_size", 0),
                     ("max_generations", 0), ("fp_sigma", -1.0), ("volume_per_atom", math.inf)]:
        data = _set(VALID[CSPSpec], ("search", key), bad)
        with pytest.raises(ValidationError, match=f"search.{key} .*got {bad!r} \\(allowed: "):
            CSPSpec.model_validate(data)


def test_limits_are_not_a_stored_search_setting():
    spec = CSPSpec.model_validate({**VALID[CSPSpec], "limits": {"max_atoms": 10}})
    assert "limits" not in spec.config()
    with pytest.raises(ValidationError, match=r"search.n_atoms: 12 atoms in one structure, above limits.max_atoms = 10"):
        CSPSpec.model_validate(_set(spec.model_dump(by_alias=True), ("search", "n_atoms"), [12, 12]))


# -- oracle settings and elements ---------------------------------------------------------------


def test_every_builtin_oracle_says_which_settings_it_takes():
    builtins = [n for n, t in oracles._REGISTRY.items() if isinstance(t, str) and t.startswith("pes_core.")]
    assert sorted(builtins) == sorted(ORACLE_SETTINGS)


@pytest.mark.parametrize("module,names", [("ase_calc", ["lj"]), ("vasp", ["vasp"]), ("cp2k", ["cp2k"])])
def test_accepted_settings_are_the_keys_the_oracle_code_reads(module, names):
    """The table and the code agree: every key the module reads is accepted, every accepted key is read."""
    text = (ROOT / "pes_core" / "oracles" / f"{module}.py").read_text()
    read = set(re.findall(r"settings(?:\.get\(|\[)[\"'](\w+)[\"']", text))
    for keys in re.findall(r"for k(?:ey)? in \(([^)]*)\)", text):  # e.g. for key in ("polling_time_step", ...)
        read |= set(re.findall(r"\"(\w+)\"", keys))
    accepted = set().union(*(accepted_settings(n) for n in names))
    assert read == accepted, (sorted(read - accepted), sorted(accepted - read))


def test_oracle_settings_messages_name_key_value_and_range():
    check_oracle_settings("lj", {"sigma": 2.3, "epsilon": 0.05, "rc": 6.0, "smooth": False})
    check_oracle_settings("vasp", {"kpoints": [4, 4, 4], "incar_updates": {"ENCUT": 520}, "relax": True})
    with pytest.raises(ValueError, match=r"oracle_settings.epsilon is out of range for oracle 'lj', got -0.1 "
                                         r"\(allowed: > 0 and <= 100; eV"):
        check_oracle_settings("lj", {"epsilon": -0.1})
    with pytest.raises(ValueError, match="oracle_settings.omp_threads must be an integer for oracle 'cp2k', got 1.5"):
        check_oracle_settings("cp2k", {"omp_threads": 1.5})
    with pytest.raises(ValueError, match="unknown key.* ENCUT for oracle 'vasp'; accepted: .*incar_updates"):
        check_oracle_settings("vasp", {"ENCUT": 520})


def test_plugin_oracles_declare_settings_or_are_not_checked():
    from pes_core.oracles import register_oracle
    from pes_core.oracles.ase_calc import EMTOracle

    class Declared(EMTOracle):
        name = "declared-test"
        accepted_settings: typing.ClassVar = {"delay": oracles.SettingRule("float", ge=0, unit="s")}

    class Silent(EMTOracle):
        name = "silent-test"
        supported_elements = None

    register_oracle("declared-test", Declared)
    register_oracle("silent-test", Silent)
    try:
        check_oracle_settings("declared-test", {"delay": 0.5})
        with pytest.raises(ValueError, match="oracle_settings.delay is out of range"):
            check_oracle_settings("declared-test", {"delay": -1})
        check_oracle_settings("silent-test", {"anything": 1})
        check_elements(["Og"], "silent-test", "x")  # any element
        with pytest.raises(ValueError, match="'Q' is not an element symbol"):
            check_elements(["Q"], "silent-test", "x")
    finally:
        oracles._REGISTRY.pop("declared-test")
        oracles._REGISTRY.pop("silent-test")


@pytest.mark.parametrize("model,edit,message", [
    (CSPSpec, (("oracle",), "sw"), None),
    (CSPSpec, (("search", "composition"), {"Si": 1, "C": 1}), "oracle 'tersoff'"),  # tersoff: Si and C
    (CSPSpec, (("search", "composition"), {"Si": 1, "Ge": 1}), "has no parameters for Ge"),
    (OracleBatchSpec, (("oracle",), "tersoff"), "structures[0].prototype.formula: oracle 'tersoff' has no parameters for Cu"),
    (PESTrainingSetSpec, (("oracle",), "sw"), "reference.species: oracle 'sw' has no parameters for Br, Cs, Pb"),
])
def test_compositions_are_checked_against_the_oracle_in_every_kind(model, edit, message):
    path, value = edit
    data = _set(VALID[model], path, value)
    if path == ("oracle",):
        data.pop("oracle_settings", None)
    if message is None or (model is CSPSpec and value == {"Si": 1, "C": 1}):
        model.model_validate(data)
    else:
        with pytest.raises(ValidationError, match=re.escape(message)):
            model.model_validate(data)


# -- sizes before work ----------------------------------------------------------------------------


BIG = """
kind: oracle_batch
oracle: emt
structures:
  - prototype: {formula: Cu, structure: fcc, a: 3.6}
"""


@pytest.mark.parametrize("extra,message", [
    ("    perturb: {count: 100000}\n", f"above limits.max_structures = {DEFAULT_MAX_STRUCTURES:,}"),
    ("    supercell: [60, 60, 60]\n", f"216,000 atoms in one structure, above limits.max_atoms = {DEFAULT_MAX_ATOMS:,}"),
])
def test_huge_specs_are_refused_before_anything_is_built(tmp_path, extra, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(BIG + extra)
    build_from_spec(_write(tmp_path / "ok.yaml", BIG))  # imports warm: the time below is validation only
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=re.escape(message)):
        build_from_spec(spec)
    assert time.perf_counter() - t0 < 1.0


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_limits_section_raises_or_lowers_the_limits(tmp_path):
    text = BIG + "    supercell: [3, 1, 1]\n"
    assert len(build_from_spec(_write(tmp_path / "a.yaml", text)).fws) == 1
    with pytest.raises(SpecError, match=r"3 atoms in one structure, above limits.max_atoms = 2; .*limits: \{max_atoms: 3\}"):
        build_from_spec(_write(tmp_path / "b.yaml", text + "limits: {max_atoms: 2}\n"))
    many = BIG + "    perturb: {count: 30, seed: 1}\n"
    with pytest.raises(SpecError, match=r"30 structures .* above limits.max_structures = 20"):
        build_from_spec(_write(tmp_path / "c.yaml", many + "limits: {max_structures: 20}\n"))
    assert len(build_from_spec(_write(tmp_path / "d.yaml", many + "limits: {max_structures: 30}\n")).fws) >= 1


def test_file_sources_are_sized_when_read_before_supercells_are_made(tmp_path):
    (tmp_path / "cu.json").write_text(_cu_json())
    text = "kind: oracle_batch\noracle: emt\nstructures:\n  - file: cu.json\n    supercell: [40, 40, 40]\n"
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"structures\[0\]: 64,000 atoms in one structure, above limits.max_atoms"):
        build_from_spec(_write(tmp_path / "s.yaml", text))
    assert time.perf_counter() - t0 < 1.0


def _cu_json() -> str:
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6)).to_json()


# -- the shipped examples ------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_validate(path):
    spec, _ = load_spec(path)
    assert spec.kind


def test_cspbbr3_model_recipe_validates(tmp_path):
    """examples/cspbbr3_model: every step's spec loads (the labelled files are written by earlier steps)."""
    import shutil

    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    from pes_core.sampling.tilts import glazer_tilted

    folder = ROOT / "examples" / "cspbbr3_model"
    steps = sorted(folder.glob("*.yaml"))
    assert [p.name[0] for p in steps] == ["1", "2", "3", "4", "5", "6"]
    cell = AseAtomsAdaptor.get_atoms(glazer_tilted("a+b-b-", 8.0))
    for name in ("phases.extxyz", "mosaics.extxyz"):
        write(tmp_path / name, [cell], format="extxyz")
    kinds = []
    for path in steps:
        shutil.copy(path, tmp_path / path.name)
        spec, _ = load_spec(tmp_path / path.name)
        kinds.append(spec.kind)
    assert kinds == ["pes_training_set", "oracle_batch", "oracle_batch", "pes_fit", "pes_thermo", "pes_thermo"]
