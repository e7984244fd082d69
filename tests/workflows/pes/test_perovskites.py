"""The PES job for any ABX3 perovskite (from the spec's reference section) and the fireworks' categories."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
#: LJ stand-in scaled to SrTiO3: the pair minimum 2^(1/6) sigma at the Ti-O bond (1.95 Å)
LJ_SRTIO3 = {"sigma": 1.74, "epsilon": 0.05}
CSPBBR3 = {"species": {"A": "Cs", "B": "Pb", "X": "Br"}, "a": 5.87}


def _srtio3_tiny() -> dict:
    """examples/pes_srtio3_quick.yaml, shrunk to seconds and labelled by the LJ stand-in."""
    spec = yaml.safe_load((ROOT / "examples" / "pes_srtio3_quick.yaml").read_text())
    spec.pop("kind")
    spec.update(name="srtio3-tiny", oracle="lj", oracle_settings=LJ_SRTIO3, batch_size=20,
                tilt_systems=["a0a0c-", "a+b-b-"], relax={"steps": 5, "fmax": 0.5, "fmax_cubic": 0.5},
                systematic={"cubic_amplitudes": [0.15], "cubic_vectors": "first", "tilt_amplitudes": [0.15],
                            "tilt_max_blocks": 3, "strain_amplitudes": [0.01], "interpolation_points": 2},
                stochastic={"count": 6, "displacement_radius": [0.1, 0.3], "strain_radius": 0.01,
                            "threshold": 0.999},
                featurize={"clusters": ["2pairs+oct"], "orders": [2]})
    spec["fit"].update(name="srtio3-tiny-fit", oracle="lj", oracle_settings=LJ_SRTIO3,
                       grid={"model": ["cluster", "linear"], "clusters": ["2pairs+oct"], "order": [2],
                             "layers": [1], "width": [4]},
                       training={"schedule": [[10, 2]], "patience": 2},
                       hiphive={"cutoffs": [3.5]}, paths={"n_points": 3})
    return spec


def test_srtio3_training_set_fit_and_report_from_its_spec(project, tmp_path):
    from pymatgen.core import Structure

    from pes_core.db import Configuration, PotentialModel
    from workflows.core.backend import open_backend
    from workflows.core.runner import run_local
    from workflows.pes.builders import pes_training_workflow
    from workflows.pes.fit import fit_record
    from workflows.pes.report import _training_set_report
    from workflows.pes.store import perovskite_reference

    spec = _srtio3_tiny()
    assert spec["reference"]["species"] == {"A": "Sr", "B": "Ti", "X": "O"}  # the example's perovskite
    with open_backend(project) as b:
        wf = pes_training_workflow(spec)
        assert wf.metadata["formula"] == "SrTiO3"
        b.lp.add_wf(wf)
        assert run_local(b, workers=2, progress=False).fizzled == 0
        confs = list(Configuration.objects(workflow="srtio3-tiny"))
        assert len(confs) > 30
        for c in confs:
            s = Structure.from_dict(c.structure)
            assert c.n_atoms == 40 and s.composition.reduced_formula == "SrTiO3"
            assert {str(x.specie) for x in s[:5]} == {"Sr", "Ti", "O"}
        ref = perovskite_reference("srtio3-tiny")
        assert ref.species == ("Sr", "Ti", "O") and ref.supercell == (2, 2, 2)
        assert ref.a == pytest.approx(3.905, rel=0.1)  # the oracle-relaxed cubic cell of the spec's a
        relaxed = {c.generator for c in confs if c.generator.startswith("relaxed:")}
        assert relaxed == {"relaxed:a0a0a0", "relaxed:a0a0c-", "relaxed:a+b-b-"}
        record = fit_record("srtio3-tiny-fit")
        assert set(record["models"]) == {"cluster", "linear", "hiphive"}
        assert all(np.isfinite(v) for v in record["holdout_rmse"].values())
        # the octahedron of the features is TiO6 (the B and X of the reference)
        models = {m.name: m for m in PotentialModel.objects(workflow="srtio3-tiny-fit")}
        assert set(models) == {f"srtio3-tiny-fit-{k}" for k in ("cluster", "linear", "hiphive")}
        from workflows.pes.store import featurizer_for

        feat = featurizer_for(ref, {"clusters": "2pairs+oct", "order": 2})
        assert any("TiO6" in k for k in feat.n_basis), sorted(feat.n_basis)
        # the energy paths are SrTiO3 cells computed in oracle fireworks of their own
        paths = list(Configuration.objects(workflow="srtio3-tiny-fit-paths"))
        assert paths and all(Structure.from_dict(c.structure).composition.reduced_formula == "SrTiO3" for c in paths)
        assert b.lp.fireworks.count_documents({"spec.pes_stage": "paths", "state": "COMPLETED"}) >= 1
        items = _training_set_report({"name": "pes srtio3-tiny", "metadata": wf.metadata}, tmp_path)
        files = {f for _, f, _ in items}
        assert {"energy_histogram.png", "parity.png", "paths.png"} <= files
        assert all((tmp_path / f).stat().st_size > 0 for f in files)


# --------------------------------------------------------------------------- categories (#17)
def _cfg(oracle: str, **extra) -> dict:
    from workflows.pes.builders import _config
    from workflows.pes.spec import PESTrainingSetSpec

    return _config(PESTrainingSetSpec.model_validate({"kind": "pes_training_set", "name": "cat", "oracle": oracle,
                                                      "reference": CSPBBR3, **extra}))


@pytest.mark.parametrize("oracle, category", [("vasp", "dft"), ("lj", "ml")])
def test_first_firework_carries_the_oracle_category(oracle, category):
    from pes_core.oracles import oracle_class
    from workflows.pes.builders import pes_training_workflow

    assert oracle_class(oracle).category == category
    wf = pes_training_workflow({"name": "cat", "oracle": oracle, "reference": CSPBBR3})
    (fw,) = wf.fws
    assert fw.spec["pes_kind"] == "pes_reference" and fw.spec["_category"] == category


def test_firework_factories_label_oracle_work_with_the_oracle_category():
    from pes_core.sampling import glazer_tilted
    from workflows.pes.training_tasks import (
        _oracle_fireworks,
        refine_firework,
        thermal_fireworks,
    )

    cells = {"a0a0a0": glazer_tilted("a0a0a0", 0.0), "a+b-b-": glazer_tilted("a+b-b-", 8.0)}
    structures = [(glazer_tilted("a0a0c+", float(t)), f"t{t}") for t in range(5)]
    for oracle, category in (("vasp", "dft"), ("lj", "ml")):
        cfg = _cfg(oracle, batch_size=2, thermal={"temperatures": [300, 450]}, refine={})
        thermal = thermal_fireworks(cfg, cells)
        assert len(thermal) == 4  # 2 parents x 2 temperatures: every MD step is an oracle call
        assert {f.spec["_category"] for f in thermal} == {category}
        assert {f.spec["pes_kind"] for f in thermal} == {"pes_thermal"}
        assert refine_firework(cfg, 0).spec["_category"] == "ml"  # Monte Carlo on the model
        batches = _oracle_fireworks(structures, cfg, "refine r0")
        assert {f.spec["_category"] for f in batches} == {category}
        # DFT: one structure a firework; stand-ins: batch_size a firework
        assert [f.spec["n_structures"] for f in batches] == ([1] * 5 if category == "dft" else [2, 2, 1])
        assert all(f.spec["pes_stage"] == "refine r0" for f in batches)
    with pytest.raises(ValueError, match="no relaxed cell"):
        thermal_fireworks(_cfg("lj", thermal={"parents": ["a0a0c-"]}), cells)


def test_fit_fireworks_are_model_work():
    from pes_core.sampling import glazer_tilted
    from workflows.pes.fit_tasks import fit_fireworks, oracle_fireworks

    (split,) = fit_fireworks({"name": "f", "oracle": "vasp"})
    assert split.spec["_category"] == "ml"
    fws = oracle_fireworks([(glazer_tilted("a0a0a0", 0.0), "path:x")] * 3, oracle="vasp", oracle_settings={},
                           workflow="f-paths", tags=["pes-path"], name="pes f paths", stage="paths")
    assert len(fws) == 3 and {f.spec["_category"] for f in fws} == {"dft"}


# --------------------------------------------------------------------------- spec
def test_reference_section_is_required_and_checked():
    from workflows.pes.spec import PESTrainingSetSpec

    base = {"kind": "pes_training_set", "name": "x", "oracle": "lj"}
    with pytest.raises(ValueError, match="reference"):
        PESTrainingSetSpec.model_validate(base)
    with pytest.raises(ValueError, match="a0 moved into the reference section"):
        PESTrainingSetSpec.model_validate({**base, "a0": 5.87})
    with pytest.raises(ValueError, match="not an element symbol"):
        PESTrainingSetSpec.model_validate({**base, "reference": {"species": {"A": "Cs", "B": "Pb", "X": "Xx"},
                                                                 "a": 5.9}})
    with pytest.raises(ValueError, match="even numbers"):
        PESTrainingSetSpec.model_validate({**base, "reference": {**CSPBBR3, "supercell": [3, 3, 3]}})
    spec = PESTrainingSetSpec.model_validate({**base, "reference": {**CSPBBR3, "supercell": [2, 2, 4]}})
    ref = spec.reference.to_reference()
    assert ref.n_atoms == 80 and ref.formula == "CsPbBr3"


def test_spec_sections_mirror_the_pes_core_settings():
    """One default each: a section left empty gives the dataclass defaults of the code that uses it."""
    from pes_core.ann.settings import FitSettings, RefineSettings
    from pes_core.sampling import (
        ReferenceRelaxSettings,
        StochasticSettings,
        SystematicSettings,
        ThermalSettings,
    )
    from workflows.pes.spec import (
        PESFitSpec,
        Refine,
        Relax,
        Stochastic,
        Systematic,
        Thermal,
    )

    pairs = [(Systematic, SystematicSettings), (Stochastic, StochasticSettings), (Thermal, ThermalSettings),
             (Refine, RefineSettings), (Relax, ReferenceRelaxSettings)]
    for section, settings in pairs:
        assert section().to_settings() == settings(), section.__name__
        assert set(section.model_fields) == set(settings.__dataclass_fields__), section.__name__
    fit = PESFitSpec(name="f")
    assert fit.to_settings() == FitSettings()
    assert set(FitSettings.__dataclass_fields__) <= set(PESFitSpec.model_fields)
    custom = Thermal(temperatures=[500], parents=["a0a0a0"], steps=50, equilibration=10, every=10).to_settings()
    assert custom.temperatures == (500.0,) and custom.snapshot_steps() == [20, 30, 40, 50]


# --------------------------------------------------------------------------- imports
ORDER = ["spec", "store", "fit", "report", "fit_tasks", "training_tasks", "builders"]


def test_workflows_pes_imports_go_one_way_and_at_module_level():
    for k, mod in enumerate(ORDER):
        tree = ast.parse((ROOT / "workflows" / "pes" / f"{mod}.py").read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                if name.startswith("workflows"):
                    assert id(node) in top, f"workflows/pes/{mod}.py: function-local import of {name}"
                if name.startswith("workflows.pes."):
                    other = name.split(".")[2]
                    assert ORDER.index(other) < k, f"workflows/pes/{mod}.py imports {name} (against {ORDER})"


def test_pes_core_ann_linear_and_models_have_no_cycle():
    src = ROOT / "pes_core" / "ann"
    linear = ast.parse((src / "linear.py").read_text())
    imported = {n.module for n in ast.walk(linear) if isinstance(n, ast.ImportFrom)}
    assert "models" not in imported and "base" in imported
