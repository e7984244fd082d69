"""Seeds of a CSP workflow: files read at submission, the seed relaxed in generation 0 and labelled."""

from __future__ import annotations

import textwrap

import pytest
from ase.build import bulk
from ase.io import write

from pes_core.db import GenerationRecord, SearchRun
from workflows.core.backend import open_backend
from workflows.core.runner import run_local
from workflows.csp.builders import csp_workflow
from workflows.jobs import build_from_spec

#: Tersoff(1988) diamond Si, eV/atom (tests/pes_core/search/test_si_search.py)
E_DIAMOND_TERSOFF = -4.6296

SPEC = textwrap.dedent("""\
    kind: csp
    name: si4-seeded
    oracle: tersoff
    mode: direct
    search: {composition: {Si: 1}, n_atoms: [4, 4], population_size: 4, max_generations: 2, seed: 7,
             seeds: [si.cif]}
    relax: {fmax: 0.01, steps: 200}
    verify: {within_mev: 1}
    """)


def test_seed_file_is_embedded_at_submission_and_relaxed_in_generation_0(tmp_path, project):
    write(tmp_path / "si.cif", bulk("Si", "diamond", a=5.431, cubic=True))  # 8 atoms: primitive cell x 2
    (tmp_path / "spec.yaml").write_text(SPEC)
    wf = build_from_spec(tmp_path / "spec.yaml")
    [seed] = wf.fws[0].spec["pes_csp_config"]["search"]["seeds"]
    assert seed["label"] == "file:si.cif" and "file" not in seed and len(seed["structure"]["numbers"]) == 8
    (tmp_path / "si.cif").unlink()  # the workers never read the submitter's file
    with open_backend(project) as b:
        b.lp.add_wf(wf)
        assert run_local(b, progress=False).fizzled == 0
        run = SearchRun.objects.get(name="si4-seeded")
        assert run.current_generation == 1  # generation 1 read the seeds back from the database
        gen0 = GenerationRecord.objects.get(search="si4-seeded", index=0).stats["state"]
        members = gen0["population"]["members"]
        seeds = [m for m in members if m["origin"] == "seed"]
        assert len(members) == 4 and len(seeds) == 1
        assert seeds[0]["flags"]["seed"] == "file:si.cif" and seeds[0]["id"] == "g000-000"
        assert len(seeds[0]["structure"]["numbers"]) == 4 and seeds[0]["relax_info"]["n_calls"] > 0
        assert seeds[0]["enthalpy_per_atom"] == pytest.approx(E_DIAMOND_TERSOFF, abs=1e-3)
        assert gen0["history"][0]["generation_best"] == pytest.approx(E_DIAMOND_TERSOFF, abs=1e-3)


def test_a_search_without_seeds_stores_its_settings_unchanged():
    search = {"composition": {"Si": 1}, "n_atoms": [4, 4], "seed": 3}
    wf = csp_workflow("plain", search, oracle="tersoff", mode="direct")
    assert wf.fws[0].spec["pes_csp_config"]["search"] == search
