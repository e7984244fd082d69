"""Firetasks of the ``pes_thermo`` job: one NPT Monte Carlo temperature, oracle relabelling, summary.

Per (supercell, direction) a chain of :class:`ThermoTemperatureTask`
fireworks (category ``ml``) runs the temperatures in scan order, each
starting from the previous one's end state; per temperature a
:class:`SnapshotOracleTask` firework (the oracle's category) relabels the
stored snapshots with the oracle; :class:`ThermoSummaryTask` (``ml``) last
computes the transition temperatures and the model's RMSE on the snapshots.

The blobs are listed in :mod:`workflows.thermo.store`.

Resuming: a temperature whose ``P.json`` exists (with the same inputs) is
not run again; one that crashed has no ``P.json`` and restarts from the
previous temperature's ``P.state.npz`` with the same seed, so it gives the
numbers of an uninterrupted run (and of :func:`pes_core.thermo.scan` with the
same inputs: the chains are seeded by ``(seed, index, T)`` in the same way).
"""

from __future__ import annotations

import json
import logging

import numpy as np
from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize
from pymatgen.core import Lattice, Structure

from pes_core.oracles import oracle_class
from pes_core.thermo import OctahedralTilts, SupercellPES, check_start, run_npt, start_configuration, summarize
from workflows.core.blobs import get_blob, put_blob
from workflows.core.runtime import ensure_domain_db, flush_store
from workflows.oracle.builders import oracle_batches
from workflows.oracle.tasks import OracleTask
from workflows.thermo.refine import record_round, refine_decision, refit_model
from workflows.thermo.store import (
    blob_name,
    directions,
    feedback_name,
    get_json,
    load_model_cached,
    mc_settings,
    model_reference,
    npz_arrays,
    npz_bytes,
    refit_model_name,
    result_name,
    round_config,
    round_of,
    run_prefix,
    scan_order,
    snapshot_sweeps,
    start_symbol,
    summary_name,
    temperature_inputs,
    thermo_summary,
)

logger = logging.getLogger(__name__)

__all__ = ["SnapshotOracleTask", "ThermoExchangeTask", "ThermoRefitTask", "ThermoSummaryTask", "ThermoTemperatureTask",
           "refit_firework", "round_fireworks", "run_exchange", "run_temperature"]


def _differing(stored: list[dict], wanted: list[dict]) -> list[str]:
    """Keys whose values differ between stored results' inputs and the inputs asked for now (pairwise)."""
    return sorted({k for o, n in zip(stored, wanted) for k in set(o) | set(n) if o.get(k) != n.get(k)})


def run_temperature(cfg: dict, supercell: int, direction: str, index: int, report: bool = True) -> dict:
    """Run (or reuse) temperature ``index`` of a scan and store its blobs; returns the stored result.

    The result is ``{"inputs", "point", "snapshots"}``; ``point`` is the
    :func:`pes_core.thermo.summarize` summary (per-temperature averages with
    block errors, susceptibilities, Glazer pattern, lattice parameters).

    Raises
    ------
    ValueError
        The stored result of this temperature was made with other inputs
        (other model weights, settings ...), or the previous temperature's end
        state is missing.
    """
    name = run_prefix(cfg)  # blob names: thermo/<name>/... (thermo/<name>/r<k>/... with refine)
    temps = scan_order(cfg, direction)
    t = temps[index]
    model, domain, fingerprint = load_model_cached(cfg["model"])
    inputs = temperature_inputs(cfg, fingerprint, supercell, direction, index)
    rname = result_name(name, supercell, direction, t)
    old = get_json(rname)
    if old is not None:
        diff = _differing([old["inputs"]], [inputs])
        if diff:
            raise ValueError(f"{rname} holds a result made with other inputs (differs in: {', '.join(diff)}); "
                             "give the pes_thermo spec another name to scan again")
        if report:
            print(f"  [{name}] {supercell}^3 {direction} {t:g} K: stored result reused", flush=True)
        return old
    reference = model_reference(model)
    diag = (int(supercell),) * 3
    settings = mc_settings(cfg)
    pes = SupercellPES(model, diag, domain=domain, margin=float(cfg["margin"]), grade_max=cfg.get("grade_max"),
                       floor_mev=cfg.get("floor_mev"))
    tilts = OctahedralTilts(reference, diag)
    e_ref = pes.energy_of(pes.ref_positions, pes.ref_cell)
    if index == 0:
        state = _start_state(cfg, direction, pes, tilts, reference)
    else:
        blob = get_blob(blob_name(name, supercell, direction, temps[index - 1], "state.npz"))
        if blob is None:
            raise ValueError(f"the end state of {temps[index - 1]:g} K ({direction}, {supercell}^3) is not stored: "
                             "rerun that temperature's firework first")
        z = npz_arrays(blob)
        state = (z["positions"], z["cell"])
    pes.set_state(*state)
    n_snap = inputs["snapshots"]
    wanted = snapshot_sweeps(settings.equilibration, settings.sweeps, n_snap) if n_snap else []
    seed = np.random.SeedSequence([int(cfg["seed"]), int(index), round(1000 * t)])
    series = run_npt(pes, tilts, t, float(cfg["pressure_gpa"]), settings, seed=seed, keep=wanted)
    point = summarize(series, t, float(cfg["pressure_gpa"]), pes.n_atoms, tilts.n_oct, diag, settings.block,
                      settings.equilibration, e_ref, float(cfg["threshold_deg"]))
    point["index"] = int(index)
    result = _store_temperature(name, supercell, direction, t, pes, series, point, inputs, wanted,
                                (pes.positions, pes.cell), reference.formula)
    flush_store()
    if report:
        _print_point(name, supercell, direction, point)
    return result


def _store_temperature(name: str, supercell: int, direction: str, t: float, pes, series: dict, point: dict,
                       inputs: dict, wanted: list[int], end: tuple, formula: str) -> dict:
    """Store one temperature's snapshots, end state, series and (last) result blobs; returns the result."""
    snaps = None
    if wanted:
        structures, energies = [], []
        for s in wanted:
            pos, cell = series["kept"][s]
            structures.append(Structure(Lattice(cell), pes.species, pos, coords_are_cartesian=True).as_dict())
            energies.append(float(pes.energy_of(pos, cell)))
        snaps = blob_name(name, supercell, direction, t, "snapshots.json")
        put_blob(snaps, json.dumps({"structures": structures, "sweeps": wanted, "model_energy": energies,
                                    "series_energy": [float(series["energy"][s]) for s in wanted],
                                    "n_atoms": pes.n_atoms, "T": t}).encode())
    put_blob(blob_name(name, supercell, direction, t, "state.npz"), npz_bytes(positions=end[0], cell=end[1]))
    put_blob(blob_name(name, supercell, direction, t, "series.npz"),
             npz_bytes(**{k: series[k] for k in ("energy", "enthalpy", "volume", "cell", "phi_m", "phi_r")}))
    result = {"inputs": inputs, "point": point, "snapshots": snaps, "formula": formula}
    put_blob(result_name(name, supercell, direction, t), json.dumps(result).encode())  # last: done once it exists
    return result


def _print_point(name: str, supercell: int, direction: str, point: dict) -> None:
    g = point.get("glazer", {})
    print(f"  [{name}] {supercell}^3 {direction} {point['T']:g} K: <E> {point['e_mean']:.2f} +- "
          f"{point['e_err']:.2f} meV/atom, |phi_M| {np.round(point['m_abs'], 2).tolist()} |phi_R| "
          f"{np.round(point['r_abs'], 2).tolist()} deg, {g.get('symbol', '')}, "
          f"{point['sweeps_per_second']:.1f} sweeps/s", flush=True)


def _start_state(cfg: dict, direction: str, pes, tilts, reference) -> tuple:
    """The first configuration of a scan: the cubic cell or a tilted Glazer start, checked against the domain."""
    start = start_symbol(cfg, direction)
    state = start_configuration(pes, reference, start, float(cfg["start_angle_deg"]), tilts)
    check_start(pes, *state, float(cfg["margin"]), what=f"the starting configuration ({start or 'a0a0a0'}) of "
                f"{cfg['model']}", fix="lower start_angle_deg" if start else "check the model's training set")
    return state


def run_exchange(cfg: dict, supercell: int, report: bool = True) -> list[dict]:
    """Run (or reuse) the replica-exchange ladder of one supercell and store every temperature's blobs.

    The temperatures' blobs are those of a scan temperature under the
    direction ``exchange`` (:mod:`workflows.thermo.store`), so validation,
    summary, refinement and report treat the ladder like a scan; the exchange
    statistics go to ``thermo/<name>/<n>/exchange/ladder.json``.  The ladder's
    checkpoint (:func:`pes_core.thermo.replica_exchange`) is stored as a blob
    every ``checkpoint_every`` sweeps, so a killed firework resumes from it.

    Returns
    -------
    list of dict
        The stored results (``{"inputs", "point", "snapshots"}``), ascending in T.
    """
    import tempfile
    from pathlib import Path

    from pes_core.thermo import replica_exchange

    name, d = run_prefix(cfg), "exchange"
    temps = scan_order(cfg, d)
    model, domain, fingerprint = load_model_cached(cfg["model"])
    inputs = [temperature_inputs(cfg, fingerprint, supercell, d, i) for i in range(len(temps))]
    old = [get_json(result_name(name, supercell, d, t)) for t in temps]
    if all(o is not None for o in old):
        diff = _differing([o["inputs"] for o in old], inputs)
        if diff:
            raise ValueError(f"thermo/{name}/{supercell}/exchange holds results made with other inputs (differs in: "
                             f"{', '.join(diff)}); give the pes_thermo spec another name to run again")
        if report:
            print(f"  [{name}] {supercell}^3 exchange: stored ladder reused", flush=True)
        return old
    reference = model_reference(model)
    diag = (int(supercell),) * 3
    settings = mc_settings(cfg)
    n_snap = inputs[0]["snapshots"]
    wanted = snapshot_sweeps(settings.equilibration, settings.sweeps, n_snap) if n_snap else []
    ckpt_blob = f"thermo/{name}/{int(supercell)}/exchange/checkpoint"
    with tempfile.TemporaryDirectory(prefix="pes-exchange-") as tmp:
        folder = Path(tmp)
        for ext in ("json", "npz"):
            blob = get_blob(f"{ckpt_blob}.{ext}")
            if blob is not None:
                (folder / f"exchange.{ext}").write_bytes(blob)

        def keep_checkpoint(path: Path) -> None:
            put_blob(f"{ckpt_blob}.json", (folder / "exchange.json").read_bytes())
            put_blob(f"{ckpt_blob}.npz", path.read_bytes())
            flush_store()

        try:
            res = replica_exchange(model, reference, diag, temps, sweeps=settings.sweeps,
                                   equilibration=settings.equilibration, pressure=float(cfg["pressure_gpa"]),
                                   seed=int(cfg["seed"]), exchange_every=int(cfg.get("exchange_every") or 10),
                                   directory=folder, settings=settings, start=start_symbol(cfg, d),
                                   start_angle_deg=float(cfg["start_angle_deg"]),
                                   threshold_deg=float(cfg["threshold_deg"]), domain=domain,
                                   margin=float(cfg["margin"]), grade_max=cfg.get("grade_max"),
                                   floor_mev=cfg.get("floor_mev"), snapshots=wanted, on_checkpoint=keep_checkpoint,
                                   checkpoint_every=int(cfg.get("checkpoint_every") or 500),
                                   report=report)
        except ValueError as err:
            if "other inputs" in str(err):
                raise ValueError(f"the stored checkpoint {ckpt_blob}.npz was made with other inputs ({err}); give "
                                 "the pes_thermo spec another name to run again") from None
            raise
    results = []
    for i, (t, point, series) in enumerate(zip(temps, res.points, res.series)):
        end = (res.final["positions"][i], res.final["cell"][i])
        results.append(_store_temperature(name, supercell, d, t, res.pes, series, point, inputs[i], wanted, end,
                                          reference.formula))
    put_blob(f"thermo/{name}/{int(supercell)}/exchange/ladder.json", json.dumps(res.exchange).encode())
    flush_store()
    if report:
        for r in results:
            _print_point(name, supercell, d, r["point"])
    return results


@explicit_serialize
class ThermoExchangeTask(FiretaskBase):
    """The replica-exchange ladder of one supercell (``direction: exchange``), stored per temperature.

    Required parameters: ``config`` (the spec as a dict), ``supercell``.
    """

    required_params = ["config", "supercell"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        results = run_exchange(self["config"], int(self["supercell"]))
        ladder = get_json(f"thermo/{run_prefix(self['config'])}/{int(self['supercell'])}/exchange/ladder.json") or {}
        return FWAction(stored_data={"T": [r["point"]["T"] for r in results],
                                     "glazer": [r["point"].get("glazer", {}).get("symbol") for r in results],
                                     "swap_acceptance": ladder.get("acceptance"),
                                     "round_trips": ladder.get("round_trips")})


@explicit_serialize
class ThermoTemperatureTask(FiretaskBase):
    """One temperature of a heating or cooling scan (NPT Metropolis), stored as GridFS blobs.

    Required parameters: ``config`` (the spec as a dict), ``supercell`` (n of
    n x n x n), ``direction`` (``cooling``/``heating``), ``index`` (position in
    the scan order).
    """

    required_params = ["config", "supercell", "direction", "index"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        res = run_temperature(self["config"], int(self["supercell"]), self["direction"], int(self["index"]))
        p = res["point"]
        return FWAction(stored_data={"T": p["T"], "e_mean": p["e_mean"], "e_err": p["e_err"], "cp": p["cp"],
                                     "glazer": p.get("glazer", {}).get("symbol"),
                                     "acceptance": p["acceptance"], "wall_fraction": p["wall_fraction"]})


# --------------------------------------------------------------------------- oracle relabelling
@explicit_serialize
class SnapshotOracleTask(FiretaskBase):
    """Compute stored snapshots ``[start, stop)`` of one temperature with the oracle (via :class:`OracleTask`).

    The snapshots are known only once the temperature has run, so this task
    reads them from their blob and hands them to
    :class:`workflows.oracle.tasks.OracleTask`: the results are stored once as
    ``Configuration`` documents with provenance (a rerun skips stored ones).

    Required parameters: ``snapshot_blob``, ``start``, ``stop``, ``oracle``.
    Optional: ``oracle_settings``, ``workflow``, ``tags``, ``generator``.
    """

    required_params = ["snapshot_blob", "start", "stop", "oracle"]
    optional_params = ["oracle_settings", "workflow", "tags", "generator"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        snaps = get_json(self["snapshot_blob"])
        if snaps is None:
            raise ValueError(f"snapshot blob {self['snapshot_blob']} is missing: its Monte Carlo firework has not "
                             "finished (rerun it first)")
        lo, hi = int(self["start"]), int(self["stop"])
        structures = snaps["structures"][lo:hi]
        extra = [{"thermo_T": snaps["T"], "sweep": int(s), "model_energy": float(e)}
                 for s, e in zip(snaps["sweeps"][lo:hi], snaps["model_energy"][lo:hi])]
        task = OracleTask(oracle=self["oracle"], structures=structures,
                          oracle_settings=dict(self.get("oracle_settings") or {}), tags=list(self.get("tags") or []),
                          generator=self.get("generator"), workflow=self.get("workflow"), extra=extra)
        return task.run_task(fw_spec)


@explicit_serialize
class ThermoSummaryTask(FiretaskBase):
    """Transition temperatures, finite-size estimate, validation RMSE per temperature and the feedback list.

    Writes ``thermo/<name>/summary.json`` and, with a validation section,
    ``thermo/<name>/feedback.json``: the content hashes of the snapshots at
    temperatures whose RMSE exceeds ``tolerance_mev``, under the training-set
    name ``validation.feedback_set`` (default ``<name>-feedback``), for a
    later refit.

    With a ``refine`` section the summary of round ``k`` is written under
    ``thermo/<name>/r<k>/`` and as ``thermo/<name>/summary.json`` (the latest
    round's), the round is recorded in ``thermo/<name>/refine.json``
    (:mod:`workflows.thermo.refine`), and, unless the round converged or was
    the last, the refit firework and round ``k + 1`` (Monte Carlo, oracle,
    summary fireworks scanning the refitted model) are added as children.
    """

    required_params = ["config"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        cfg = self["config"]
        name, prefix = cfg["name"], run_prefix(cfg)
        summary = thermo_summary(cfg)
        stored: dict = {"n_transitions": len(summary["transitions"])}
        feedback = None
        if "validation" in summary:
            val = summary["validation"]
            flagged = [r for r in val["per_temperature"] if r["flagged"]]
            feedback = {"training_set": cfg["validation"].get("feedback_set") or f"{name}-feedback",
                        "model": cfg["model"], "oracle": val["oracle"], "tolerance_mev": val["tolerance_mev"],
                        "temperatures": [r["T"] for r in flagged],
                        "ids": sorted({i for r in flagged for i in r["ids"]})}
            if cfg.get("refine"):
                feedback["round"] = round_of(cfg)
            stored.update({"flagged_temperatures": feedback["temperatures"], "n_feedback": len(feedback["ids"]),
                           "rmse_mev": {f"{r['T']:g}": r["rmse"] for r in val["per_temperature"]}})
            for r in val["per_temperature"]:
                print(f"  [{prefix}] validation {r['T']:g} K: RMSE "
                      f"{'-' if r['rmse'] is None else format(r['rmse'], '.2f')} meV/atom on {r['n']} snapshots"
                      f"{' (above tolerance)' if r['flagged'] else ''}", flush=True)
        additions = []
        if cfg.get("refine"):
            decision = refine_decision(cfg, summary["validation"])
            history = record_round(cfg, decision)
            summary["refine"] = {k: history.get(k) for k in ("status", "last_round", "last_model", "tolerance_mev",
                                                              "best_round", "best_model", "best_max_rmse")}
            summary["refine"]["max_rmse"] = decision["max_rmse"]
            stored.update({"round": decision["round"], "refine": decision["action"], "max_rmse": decision["max_rmse"]})
            print(f"  [{name}] round {decision['round']} ({cfg['model']}): worst temperature RMSE "
                  f"{'-' if decision['max_rmse'] is None else format(decision['max_rmse'], '.2f')} meV/atom, "
                  f"tolerance {decision['tolerance_mev']:g}: {decision['action']}", flush=True)
            if decision["action"] == "refit":
                nxt = decision["round"] + 1
                refit = refit_firework(cfg, nxt)
                fws = round_fireworks(round_config(cfg, nxt, refit_model_name(name, nxt)), parents=[refit])
                additions.append(Workflow([refit] + fws, name=f"pes thermo {name} round {nxt}"))
        names = [prefix] + ([name] if prefix != name else [])  # the round's own, and the latest round's
        for n in names:
            put_blob(summary_name(n), json.dumps(summary).encode())
            if feedback is not None:
                put_blob(feedback_name(n), json.dumps(feedback).encode())
        flush_store()
        return FWAction(stored_data=stored, additions=additions)


@explicit_serialize
class ThermoRefitTask(FiretaskBase):
    """Refit the model on its training set plus the run's relabelled snapshots, for round ``round``.

    See :func:`workflows.thermo.refine.refit_model`; a rerun reuses the
    stored ``<name>-model-r<round>``.

    Required parameters: ``config`` (the configuration of round ``round - 1``), ``round``.
    """

    required_params = ["config", "round"]

    def run_task(self, fw_spec: dict) -> FWAction:
        ensure_domain_db(fw_spec)
        out = refit_model(self["config"], int(self["round"]))
        flush_store()
        return FWAction(stored_data=out)


# --------------------------------------------------------------------------- fireworks of a round
def _round_tag(cfg: dict) -> str:
    return f" r{round_of(cfg)}" if cfg.get("refine") else ""


def _oracle_fireworks(cfg: dict, mc: Firework, n: int, d: str, t: float) -> list[Firework]:
    v = cfg["validation"]
    cls = oracle_class(v["oracle"])
    k = int(v["snapshots_per_temperature"])
    batches = oracle_batches(k, v["oracle"], v.get("batch_size"))
    rnd = f"r{round_of(cfg)}:" if cfg.get("refine") else ""
    fws = []
    for b, sl in enumerate(batches):
        lo, hi = sl.start, min(sl.stop, k)
        task = SnapshotOracleTask(snapshot_blob=blob_name(run_prefix(cfg), n, d, t, "snapshots.json"), start=lo,
                                  stop=hi, oracle=v["oracle"], oracle_settings=dict(v.get("oracle_settings") or {}),
                                  workflow=f"{cfg['name']}-validation", tags=["pes-thermo-validation", cfg["name"]],
                                  generator=f"thermo:{cfg['name']}:{rnd}{n}:{d}:{t:g}")
        spec = {"_category": cls.category, "pes_kind": "oracle", "pes_stage": "thermo_validation",
                "oracle": v["oracle"], "n_structures": hi - lo, "supercell": n, "direction": d, "T": t}
        if cfg.get("refine"):
            spec["round"] = round_of(cfg)
        if cls.category == "ml":
            spec["_priority"] = 1
        fws.append(Firework([task], spec=spec, parents=[mc],
                            name=f"thermo {cfg['name']}{_round_tag(cfg)} {n}^3 {d} {t:g} K oracle {v['oracle']} "
                                 f"[{b + 1}/{len(batches)}]"))
    return fws


def round_fireworks(cfg: dict, parents: list[Firework] | None = None) -> list[Firework]:
    """The fireworks of one scan round: MC chains (ml), oracle validation (the oracle's category), summary (ml).

    ``parents`` (e.g. the refit firework of a refinement round) become the
    parents of every chain's first temperature.  The summary is last.
    """
    fws: list[Firework] = []
    summary_parents: list[Firework] = []
    extra = {"round": round_of(cfg)} if cfg.get("refine") else {}
    tag = _round_tag(cfg)
    for n in cfg["supercells"]:
        for d in directions(cfg):
            if d == "exchange":  # one firework runs the whole ladder; the oracle checks each temperature
                mc = Firework([ThermoExchangeTask(config=cfg, supercell=n)],
                              name=f"thermo {cfg['name']}{tag} {n}^3 replica exchange",
                              spec={"_category": "ml", "pes_kind": "pes_thermo_exchange", "supercell": n,
                                    "direction": d, "T": scan_order(cfg, d), **extra}, parents=parents)
                fws.append(mc)
                if cfg.get("validation") is not None:
                    for t in scan_order(cfg, d):
                        oracle_fws = _oracle_fireworks(cfg, mc, n, d, t)
                        fws += oracle_fws
                        summary_parents += oracle_fws
                summary_parents.append(mc)
                continue
            prev = None
            for i, t in enumerate(scan_order(cfg, d)):
                mc = Firework([ThermoTemperatureTask(config=cfg, supercell=n, direction=d, index=i)],
                              name=f"thermo {cfg['name']}{tag} {n}^3 {d} {t:g} K",
                              spec={"_category": "ml", "pes_kind": "pes_thermo_mc", "supercell": n, "direction": d,
                                    "T": t, "index": i, **extra},
                              parents=[prev] if prev is not None else parents)
                fws.append(mc)
                if cfg.get("validation") is not None:
                    oracle_fws = _oracle_fireworks(cfg, mc, n, d, t)
                    fws += oracle_fws
                    summary_parents += oracle_fws
                prev = mc
            summary_parents.append(prev)
    fws.append(Firework([ThermoSummaryTask(config=cfg)], name=f"thermo {cfg['name']}{tag} summary",
                        spec={"_category": "ml", "pes_kind": "pes_thermo_summary", **extra}, parents=summary_parents))
    return fws


def refit_firework(cfg: dict, rnd: int) -> Firework:
    """The refit firework of round ``rnd`` (category ``ml``: model work), from round ``rnd - 1``'s ``cfg``."""
    return Firework([ThermoRefitTask(config=cfg, round=int(rnd))], name=f"thermo {cfg['name']} refit r{rnd}",
                    spec={"_category": "ml", "pes_kind": "pes_thermo_refit", "round": int(rnd)})
