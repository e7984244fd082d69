"""Categories end to end: DFT work only on ``dft`` workers, ML work only on ``ml`` workers.

Every workflow kind is built from a spec with the ``vasp`` oracle (category
``dft``; the emulator of :mod:`pes_core.oracles.vasp_emulator` stands in for
``vasp_std``, run through atomate2 and custodian like the real code), and
each firework's ``_category`` is checked: the oracle's where the firework
calls the oracle, ``ml`` elsewhere.  Then small workflows run to completion
on the embedded store with workers restricted to one category at a time,
``dft`` and ``ml`` launches alternating as two kinds of queue jobs would, and
each launch is recorded: no firework may ever run on the other kind of
worker.  The ``ml`` worker has no ``vasp_cmd`` in its environment, so a VASP
firework reaching it would also fizzle.

Every emulated VASP call costs a second or two (a Python process started by
custodian), so the oracle batch and the direct CSP (about 10 and 25 s) run
in the default suite, the MTP-mode CSP (about 70 s) and the PES training
set (about 4 min: 40-atom cell relaxations) with ``-m slow``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from fireworks import FWorker

from pes_core.db import Configuration, GenerationRecord, SearchRun
from pes_core.oracles import oracle_class
from workflows.core.backend import open_backend
from workflows.core.runner import run_local
from workflows.jobs import build_from_spec, registered_kinds

#: the emulator run as custodian runs vasp_std; custodian polls every 0.2 s (tests/pes_core/oracles/dft_helpers.py)
EMULATOR_CMD = f"{sys.executable} -m pes_core.oracles.vasp_emulator"
VASP_SETTINGS = {"polling_time_step": 0.2, "monitor_freq": 5, "kpoints": [2, 2, 2]}

#: fireworks that call the oracle, by pes_kind (everything else is model work or bookkeeping: ml)
ORACLE_KINDS = {"oracle", "oracle_trajectory", "csp_relax", "csp_verify", "pes_reference", "pes_thermal"}
#: a CSP generation relaxes on the oracle in mode direct (on the MTP in mode mtp)
DIRECT_KINDS = ORACLE_KINDS | {"csp_generation"}

#: specs of every kind, all with the vasp oracle; cu-batch, csp-direct and csp-mtp also run below
SPECS = {
    "oracle_batch": """
        kind: oracle_batch
        name: cu-batch
        oracle: vasp
        oracle_settings: {settings}
        structures:
          - prototype: {{formula: Cu, structure: fcc, a: 3.62}}
            perturb: {{count: 3, rattle: 0.05, strain: 0.02, seed: 1}}
    """,
    "csp-direct": """
        kind: csp
        name: cu-direct
        oracle: vasp
        oracle_settings: {settings}
        mode: direct
        search: {{composition: {{Cu: 1}}, n_atoms: [2, 2], population_size: 2, max_generations: 1, seed: 3}}
        relax: {{fmax: 0.5, steps: 2, parallel: 2}}
        verify: {{within_mev: 1, steps: 1}}
    """,
    "csp-mtp": """
        kind: csp
        name: cu-mtp
        oracle: vasp
        oracle_settings: {settings}
        mode: mtp
        search: {{composition: {{Cu: 1}}, n_atoms: [2, 2], population_size: 2, max_generations: 1, seed: 3}}
        relax: {{fmax: 0.5, steps: 5}}
        mtp: {{level: 2, max_iter: 5, max_dist: 4.5}}
        active: {{pool_size: 4, max_initial: 3, prerelax_steps: 0, max_rounds_per_generation: 1,
                  max_configurations_per_round: 1, check_top: 1, max_check_rounds: 1}}
        verify: {{within_mev: 1, steps: 1}}
    """,
    "pes_training_set": """
        kind: pes_training_set
        name: cpb-dft
        oracle: vasp
        oracle_settings: {settings}
        reference:
          prototype: perovskite
          species: {{A: Cs, B: Pb, X: Br}}
          a: 5.87
          supercell: [2, 2, 2]
        tilt_systems: [a0a0c+]
        relax: {{steps: 2, fmax: 0.5, fmax_cubic: 0.5}}
        systematic: {{cubic_amplitudes: [0.3], cubic_vectors: first, tilt_amplitudes: [], strain_amplitudes: [0.01],
                      interpolation_points: 0}}
        stochastic: {{count: 2, displacement_radius: [0.2, 0.5], strain_radius: 0.01, threshold: 0.999}}
        featurize: {{clusters: ["2pairs+oct"], orders: [2]}}
    """,
    "pes_fit": """
        kind: pes_fit
        name: cpb-dft-fit
        training_set: cpb-dft
        oracle: vasp
        grid: {{model: [linear], clusters: ["2pairs"], order: [2]}}
    """,
    "pes_thermo": """
        kind: pes_thermo
        name: cpb-dft-thermo
        model: cpb-dft-fit-linear
        supercells: [2]
        temperatures: [300, 400]
        sweeps: 20
        equilibration: 10
        block: 5
        validation: {{oracle: vasp, oracle_settings: {settings}, snapshots_per_temperature: 1}}
    """,
}
#: the thermo run with the refinement loop: the same spec under another name, plus a refine section
SPECS["pes_thermo-refine"] = (SPECS["pes_thermo"].replace("name: cpb-dft-thermo\n", "name: cpb-dft-thermo-refine\n")
                              + "    refine: {{rounds: 2, tolerance_mev: 3.0}}\n")


def _spec_file(tmp_path: Path, key: str) -> Path:
    path = tmp_path / f"{key}.yaml"
    path.write_text(textwrap.dedent(SPECS[key]).format(settings=VASP_SETTINGS))
    return path


def _oracle_kinds(key: str) -> set[str]:
    return DIRECT_KINDS if key == "csp-direct" else ORACLE_KINDS


def test_every_kind_built_with_a_dft_oracle_routes_oracle_work_to_dft(tmp_path, project):
    assert oracle_class("vasp").category == "dft"
    built = {}
    wants: dict[str, set[str]] = {"dft": set(), "ml": set()}
    for key in SPECS:
        wf = build_from_spec(_spec_file(tmp_path, key))
        for fw in wf.fws:
            wants["dft" if fw.spec["pes_kind"] in _oracle_kinds(key) else "ml"].add(fw.name)
        built[key] = {(fw.spec["pes_kind"], fw.spec["_category"]) for fw in wf.fws}
        wrong = [(fw.name, fw.spec["_category"]) for fw in wf.fws if fw.spec["_category"] != ("dft" if fw.spec["pes_kind"] in _oracle_kinds(key) else "ml")]
        assert not wrong, f"{key}: {wrong}"
    kinds = {textwrap.dedent(s).split("kind: ")[1].split()[0] for s in SPECS.values()}
    assert kinds == set(registered_kinds())  # a new kind must be added here
    assert built == {
        "oracle_batch": {("oracle", "dft")},  # one structure a firework for DFT
        "csp-direct": {("csp_generation", "dft")},  # relaxes on the oracle (or collects its relax fireworks)
        "csp-mtp": {("csp_preselect", "ml"), ("mtp_train", "ml"), ("csp_generation", "ml")},
        "pes_training_set": {("pes_reference", "dft")},  # relaxes the reference cells on the oracle
        "pes_fit": {("pes_split", "ml")},
        # Monte Carlo on the model is ml work; relabelling its snapshots is oracle work
        "pes_thermo": {("pes_thermo_mc", "ml"), ("oracle", "dft"), ("pes_thermo_summary", "ml")},
        "pes_thermo-refine": {("pes_thermo_mc", "ml"), ("oracle", "dft"), ("pes_thermo_summary", "ml")},  # round 0
    }
    # a refinement round is added by the summary: the refit is ml work, the round's relabelling stays dft
    from workflows.thermo.store import round_config
    from workflows.thermo.tasks import refit_firework, round_fireworks

    cfg = build_from_spec(_spec_file(tmp_path, "pes_thermo-refine")).metadata["config"]
    refit = refit_firework(cfg, 1)
    added = [refit] + round_fireworks(round_config(cfg, 1, "cpb-dft-thermo-refine-model-r1"), parents=[refit])
    assert {(fw.spec["pes_kind"], fw.spec["_category"]) for fw in added} == {
        ("pes_thermo_refit", "ml"), ("pes_thermo_mc", "ml"), ("oracle", "dft"), ("pes_thermo_summary", "ml")}
    batch = build_from_spec(_spec_file(tmp_path, "oracle_batch"))
    assert len(batch.fws) == 3 and all(fw.spec["n_structures"] == 1 for fw in batch.fws)
    # the command each firework needs: `pes run --category dft` (or a dft fworker's rlaunch) selects with
    # FireWorks' own worker query, which must take exactly the oracle work; `--category ml` the rest
    with open_backend(project) as b:
        for key in SPECS:
            b.lp.add_wf(build_from_spec(_spec_file(tmp_path, key)))
        for category, names in wants.items():
            taken = {d["name"] for d in b.lp.fireworks.find(FWorker(category=category).query, {"name": 1})}
            assert taken == names, category
        assert b.lp.fireworks.count_documents({}) == sum(len(build_from_spec(_spec_file(tmp_path, k)).fws)
                                                         for k in SPECS)


# --------------------------------------------------------------------------- end to end
WORKERS = {"dft": FWorker(name="dft-worker", category="dft", env={"vasp_cmd": EMULATOR_CMD}),
           "ml": FWorker(name="ml-worker", category="ml")}


def _alternate(backend, max_launches: int = 40) -> list[dict]:
    """``dft`` and ``ml`` launches in turn until nothing is READY; one record per launch.

    A record: the worker's category and, per firework it ran, the firework's
    ``_category`` and ``pes_kind`` (from the launches FireWorks recorded).
    """
    lp = backend.lp
    records: list[dict] = []
    idle = 0
    while lp.fireworks.count_documents({"state": "READY"}):
        if len(records) >= max_launches:
            raise AssertionError(f"still READY after {max_launches} launches: {records}")
        category = "dft" if len(records) % 2 == 0 else "ml"
        seen = set(lp.launches.distinct("launch_id"))
        summary = run_local(backend, category=category, fworker=WORKERS[category], progress=False)
        new = [d for d in lp.launches.find({}, {"launch_id": 1, "fw_id": 1, "fworker": 1})
               if d["launch_id"] not in seen]
        ran = []
        for d in new:
            fw = lp.fireworks.find_one({"fw_id": d["fw_id"]}, {"spec._category": 1, "spec.pes_kind": 1, "name": 1})
            ran.append({"fw_id": d["fw_id"], "name": fw["name"], "category": fw["spec"].get("_category"),
                        "kind": fw["spec"].get("pes_kind"), "worker": d["fworker"]["name"]})
        records.append({"category": category, "ran": ran, "fizzled": summary.fizzled})
        idle = idle + 1 if not ran else 0
        if idle >= 2:  # neither kind of worker can run what is READY
            left = [(d["fw_id"], d["name"], d["spec"].get("_category"))
                    for d in lp.fireworks.find({"state": "READY"}, {"fw_id": 1, "name": 1, "spec._category": 1})]
            raise AssertionError(f"READY fireworks no worker takes: {left}")
    return records


def _check_routing(backend, records: list[dict], oracle_kinds: set[str]) -> None:
    """Every launch ran only its category; every firework in the store has the category of its work."""
    for rec in records:
        wrong = [r for r in rec["ran"] if r["category"] != rec["category"]]
        assert not wrong, f"a {rec['category']} launch ran {wrong}"
        assert all(r["worker"] == f"{rec['category']}-worker" for r in rec["ran"])
        if rec["category"] == "ml":
            assert not any(r["kind"] in oracle_kinds for r in rec["ran"]), rec
    states = {d["state"] for d in backend.lp.fireworks.find({})}
    assert states == {"COMPLETED"}, [(d["fw_id"], d["name"], d["state"]) for d in backend.lp.fireworks.find({})]
    # the fireworks the tasks added as they ran (fan-outs, detours, verification) carry the right category too
    wrong = [(d["name"], d["spec"]["_category"]) for d in backend.lp.fireworks.find({})
             if d["spec"]["_category"] != ("dft" if d["spec"]["pes_kind"] in oracle_kinds else "ml")]
    assert not wrong


def _run(project: Path, tmp_path: Path, key: str) -> list[dict]:
    with open_backend(project) as b:
        b.lp.add_wf(build_from_spec(_spec_file(tmp_path, key)))
        records = _alternate(b)
        _check_routing(b, records, _oracle_kinds(key))
    return records


def b_root(project: Path) -> Path:
    with open_backend(project, read_only=True) as b:
        return b.launch_root()


def test_oracle_batch_runs_on_dft_workers_only(tmp_path, project):
    records = _run(project, tmp_path, "oracle_batch")
    ran = [r for rec in records for r in rec["ran"]]
    assert len(ran) == 3 and {r["worker"] for r in ran} == {"dft-worker"}
    assert records[0]["category"] == "dft" and len(records[0]["ran"]) == 3
    with open_backend(project, read_only=True):
        confs = list(Configuration.objects(oracle="vasp"))
        assert len(confs) == 3 and all(c.provenance["emulated"] for c in confs)


def test_direct_csp_alternating_workers(tmp_path, project):
    records = _run(project, tmp_path, "csp-direct")
    kinds = {(r["kind"], r["worker"]) for rec in records for r in rec["ran"]}
    # the generation fans its relaxations out (relax.parallel 2), collects them, verifies on dft; reports on ml
    assert kinds == {("csp_generation", "dft-worker"), ("csp_relax", "dft-worker"), ("csp_verify", "dft-worker"),
                     ("csp_report", "ml-worker")}
    with open_backend(project, read_only=True):
        run = SearchRun.objects.get(name="cu-direct")
        # the emulator's energies: EMT plus -5 eV/atom, so nothing below fcc Cu (EMT's ground state, -5.006)
        gen0 = GenerationRecord.objects.get(search="cu-direct", index=0)
        found = [p["enthalpy_per_atom"] for p in gen0.population if not p["flags"].get("failed")]
        assert run.current_generation == 0 and run.best_enthalpy_per_atom == pytest.approx(min(found))
        assert -5.01 < run.best_enthalpy_per_atom < -3.0
        assert gen0.n_oracle_calls >= 2  # at least one oracle call per offspring
        assert run.state["verification"] and all(not v["failed"] for v in run.state["verification"])
        assert Configuration.objects(tags="csp-verify", oracle="vasp").count() >= 1
        # every VASP job folder lies in the folder of the firework that ran it, never in the shared cwd
        root = b_root(project)
        jobs = [d for d in root.rglob("vasp_*") if d.is_dir()]
        assert jobs and all(d.relative_to(root).parts[0].startswith("fw_") for d in jobs), jobs
        assert {d.parent.name for d in jobs} >= {"relax", "verify"}


@pytest.mark.slow
def test_mtp_csp_alternating_workers(tmp_path, project):
    records = _run(project, tmp_path, "csp-mtp")
    by_worker = {}
    for rec in records:
        for r in rec["ran"]:
            by_worker.setdefault(r["worker"], set()).add(r["kind"])
    assert by_worker["dft-worker"] >= {"oracle", "csp_verify"}
    assert by_worker["ml-worker"] >= {"csp_preselect", "mtp_train", "csp_generation", "csp_report"}
    assert len(records) >= 4  # the work went back and forth between the two kinds of worker
    with open_backend(project, read_only=True):
        assert SearchRun.objects.get(name="cu-mtp").status in ("capped", "converged")
        assert Configuration.objects(tags="csp:cu-mtp", oracle="vasp").count() >= 3


@pytest.mark.slow
def test_pes_training_set_alternating_workers(tmp_path, project):
    records = _run(project, tmp_path, "pes_training_set")
    by_worker = {}
    for rec in records:
        for r in rec["ran"]:
            by_worker.setdefault(r["worker"], set()).add(r["kind"])
    assert by_worker["dft-worker"] >= {"pes_reference", "oracle"}
    assert by_worker["ml-worker"] == {"pes_stochastic", "pes_collect", "pes_featurize"}
    with open_backend(project, read_only=True):
        confs = Configuration.objects(workflow="cpb-dft", oracle="vasp")
        assert confs.count() >= 4 and all(c.provenance["emulated"] for c in confs)
