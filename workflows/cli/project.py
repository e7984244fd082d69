"""``pes init``, ``pes submit``, ``pes run``, ``pes status``, ``pes repair``."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

import click
import yaml

from workflows.cli.common import launchpad_option
from workflows.core.backend import find_launchpad_file, open_backend

__all__ = ["COMMANDS"]


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--mongodb-uri", default=None, help="Use this MongoDB (mongodb:// or mongodb+srv:// URI) instead of the embedded store.")
@click.option("--db-name", default="pes", show_default=True, help="Database name.")
@click.option("--category", default="", help="Worker category written to my_fworker.yaml (dft, ml or empty for all).")
@click.option("--force", is_flag=True, help="Overwrite existing config files.")
def init(directory: str, mongodb_uri: str | None, db_name: str, category: str, force: bool) -> None:
    """Write my_launchpad.yaml and my_fworker.yaml into DIRECTORY.

    Without --mongodb-uri the project uses the embedded store (DIRECTORY/store.json):
    no server needed, one process at a time.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    lp_file, fw_file = d / "my_launchpad.yaml", d / "my_fworker.yaml"
    for f in (lp_file, fw_file):
        if f.exists() and not force:
            raise click.ClickException(f"{f} exists; pass --force to overwrite it")
    if mongodb_uri:
        if not mongodb_uri.startswith(("mongodb://", "mongodb+srv://")):
            raise click.ClickException("--mongodb-uri must start with mongodb:// or mongodb+srv://")
        lp = {"host": mongodb_uri, "uri_mode": True, "name": db_name,
              "mongoclient_kwargs": {"serverSelectionTimeoutMS": 5000}}
    else:
        lp = {"embedded_store": "store.json", "name": db_name}
    fworker = {"name": f"{os.uname().nodename}-worker", "category": category, "query": "{}",
               "env": {"pes_launchpad": str(lp_file.resolve())}}
    lp_file.write_text("# written by `pes init`\n" + yaml.safe_dump(lp, sort_keys=False))
    fw_file.write_text("# written by `pes init`; add vasp_cmd / cp2k_cmd under env for DFT workers\n"
                       + yaml.safe_dump(fworker, sort_keys=False))
    # open once: creates and initializes the store / checks the server
    with open_backend(lp_file, create=True) as backend:
        click.echo(f"initialized {backend.describe()}")
    click.echo(f"wrote {lp_file} and {fw_file}")


def _refuse_duplicates(found: list[str], name: str, if_new: bool, allow_duplicate: bool) -> bool:
    """``True``: go on adding. Skips (``--if-new``, exit 0) or refuses (exit 1) a duplicate submission."""
    if not found:
        return True
    listed = "; ".join(found)
    if if_new:
        click.echo(f"workflow '{name}' already submitted: {listed}; skipped (--if-new)")
        return False
    if allow_duplicate:
        click.echo(f"warning: adding a second workflow '{name}' (--allow-duplicate); already there: {listed}", err=True)
        return True
    raise click.ClickException(
        f"workflow '{name}' is already submitted: {listed}. Submitting it again would run the same work twice. "
        "Pass --allow-duplicate to add it anyway (`pes status` and `pes report` tell the two apart by workflow "
        "id), --if-new to skip it without error, or give the spec another `name`.")


def _added(id_map: dict) -> str:
    ids = sorted(id_map.values())
    return f"submitted: workflow {ids[0]}, fw_ids {ids[0]}..{ids[-1]}"


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@launchpad_option
@click.option("--dry-run", is_flag=True, help="Validate and build the workflow, add nothing.")
@click.option("--if-new", is_flag=True,
              help="Skip (exit 0) if a workflow of the same name or content is already submitted.")
@click.option("--allow-duplicate", is_flag=True,
              help="Add the workflow even if one of the same name or content is already submitted.")
@click.option("--wait-lock", default=None, type=click.FloatRange(0),
              help="Embedded store busy: wait up to this many seconds for it instead of queueing the "
                   "workflow in the spool at once (still busy then: it is queued).")
def submit(spec: str, launchpad: str | None, dry_run: bool, if_new: bool, allow_duplicate: bool,
           wait_lock: float | None) -> None:
    """Validate SPEC (yaml) and add its workflow to the LaunchPad.

    \b
    Embedded store held by another process (a running `pes run`): the workflow
    is queued in spool/ beside the store and the running `pes run` adds it
    before its next launch (the next `pes run` otherwise); `pes status` lists
    the queue. --wait-lock SECONDS waits for the store first.
    \b
    A workflow whose name or content (hash of its fireworks) is already on the
    LaunchPad or in the queue is refused (exit 1) unless --allow-duplicate;
    --if-new skips it (exit 0).
    """
    from workflows.core.backend import (
        Backend,
        LaunchpadConfig,
        StoreBusyError,
        lock_purpose,
    )
    from workflows.core.spool import (
        content_hash,
        drain_spool,
        find_duplicates,
        holder_summary,
        spool_dir,
        write_spool,
    )
    from workflows.jobs import build_from_spec

    if if_new and allow_duplicate:
        raise click.UsageError("--if-new and --allow-duplicate contradict each other; pass one")
    wf = build_from_spec(spec)  # all validation happens before the database is touched
    chash = wf.metadata["pes_content_hash"] = content_hash(wf)
    click.echo(f"workflow '{wf.name}': {len(wf.fws)} firework(s), content hash {chash}")
    if dry_run:
        return
    config = LaunchpadConfig.from_file(find_launchpad_file(launchpad))
    store = config.embedded_store
    try:
        with lock_purpose("pes submit"):
            backend = Backend(config, wait_lock=wait_lock or 0.0)
    except StoreBusyError as err:
        who, by_run = holder_summary(err.holder)
        with open_backend(launchpad, read_only=True) as snapshot:  # a copy of the store: no lock needed
            found = find_duplicates(snapshot.lp, wf.name, chash, store)
        if not _refuse_duplicates(found, wf.name, if_new, allow_duplicate):
            return
        path = write_spool(store, wf, spec_file=Path(spec).resolve())
        rel = f"{spool_dir(store).name}/{path.name}"
        if by_run:
            then = "the running `pes run` adds it before its next launch"
        else:
            then = "the next `pes run` (or `pes submit`) adds it"
        waited = f" after waiting {wait_lock:.0f} s" if wait_lock else ""
        click.echo(f"store busy ({who}){waited}; workflow '{wf.name}' queued in {rel}, {then}; "
                   "`pes status` lists the queue")
        try:  # the holder may have ended right after our first try: then add it ourselves
            with lock_purpose("pes submit"):
                backend = Backend(config)
        except StoreBusyError:
            return
        with backend:
            drain_spool(backend, echo=click.echo, error=lambda m: click.echo(m, err=True))
        return
    with backend:
        if config.is_embedded:  # queued while the store was busy: they came first
            drain_spool(backend, echo=click.echo, error=lambda m: click.echo(m, err=True))
        found = find_duplicates(backend.lp, wf.name, chash, store if config.is_embedded else None)
        if not _refuse_duplicates(found, wf.name, if_new, allow_duplicate):
            return
        id_map = backend.lp.add_wf(wf)
        backend.flush()
    click.echo(_added(id_map))


#: exit codes of `pes run` (documented in its --help)
EXIT_OK, EXIT_USER_ERROR, EXIT_FIZZLED, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 3, 130, 143

_RUN_HELP = f"""Launch all READY fireworks in this process (threads for local parallelism).

\b
Prints a start-up line (backend, store, READY/RUNNING fireworks, workers,
category), then one line per finished firework; --quiet (or PES_QUIET=1)
keeps only errors and the final summary line. Workflows that `pes submit`
queued in spool/ while this run holds the embedded store are added before
the next launch.

\b
On SIGTERM (a scheduler's wall-time limit) or Ctrl-C no new firework is
launched; the running ones get --grace seconds to finish (a second Ctrl-C
ends the wait). Those still running are left RUNNING in the store, which is
written, and the next `pes run` reruns them; it prints what it will do.

\b
Exit codes:
  {EXIT_OK}    every launched firework completed (or nothing was READY)
  {EXIT_USER_ERROR}    user error: bad launchpad, missing or damaged store, store busy
  {EXIT_FIZZLED}    at least one firework fizzled (`pes status --fizzled` shows why)
  {EXIT_SIGINT}  stopped by SIGINT (Ctrl-C)
  {EXIT_SIGTERM}  stopped by SIGTERM
  2    (click) bad command-line usage
"""


@click.command(help=_RUN_HELP)
@launchpad_option
@click.option("-w", "--workers", default=1, show_default=True, type=click.IntRange(1, 256), help="Worker threads.")
@click.option("--category", default=None, help="Only fireworks of this category (dft, ml).")
@click.option("--max-launches", default=0, type=click.IntRange(0), help="Stop after N launches (0: all).")
@click.option("--fworker", "fworker_file", type=click.Path(dir_okay=False), default=None,
              help="my_fworker.yaml with the worker env (default: next to the launchpad file).")
@click.option("--wait-lock", default=0.0, type=click.FloatRange(0), show_default=True,
              help="Embedded store busy: wait up to this many seconds for it (queued jobs).")
@click.option("--grace", default=20.0, type=click.FloatRange(0), show_default=True,
              help="On SIGTERM/SIGINT: seconds the running fireworks get to finish (keep it below the "
                   "scheduler's kill delay, e.g. SLURM KillWait, minus the time a store write takes).")
@click.option("-q", "--quiet", is_flag=True,
              help="Print only errors and the final summary line (batch jobs); sets PES_QUIET=1 for the "
                   "fireworks. PES_QUIET=1 in the environment does the same.")
def run(launchpad: str | None, workers: int, category: str | None, max_launches: int,
        fworker_file: str | None, wait_lock: float, grace: float, quiet: bool) -> None:
    from fireworks import FWorker

    from pes_core.progress import quiet as env_quiet
    from workflows.core.backend import lock_purpose
    from workflows.core.runner import run_local

    previous_quiet = os.environ.get("PES_QUIET")
    if quiet:
        os.environ["PES_QUIET"] = "1"  # read by fireworks running in this process (progress bars)
    quiet = quiet or env_quiet()

    lp_path = find_launchpad_file(launchpad)
    fw_path = Path(fworker_file) if fworker_file else lp_path.resolve().parent / "my_fworker.yaml"
    fworker = FWorker.from_file(str(fw_path)) if fw_path.is_file() else None
    stop, abandon, received = threading.Event(), threading.Event(), []

    def on_signal(signum, _frame) -> None:
        if received:
            abandon.set()
        else:
            received.append(signum)
            click.echo(f"\n{signal.Signals(signum).name} received: launching no new firework; waiting up to "
                       f"{grace:.0f} s for the running ones (Ctrl-C again: stop waiting)", err=True)
        stop.set()

    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with lock_purpose("pes run"), open_backend(lp_path, wait_lock=wait_lock) as backend:
            summary = run_local(backend, workers=workers, category=category, max_launches=max_launches,
                                fworker=fworker, stop=stop, grace=grace, abandon=abandon, progress=not quiet)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if previous_quiet is None:
            os.environ.pop("PES_QUIET", None)
        else:
            os.environ["PES_QUIET"] = previous_quiet
    click.echo(f"launched {summary.launched}, completed {summary.completed}, fizzled {summary.fizzled}"
               f", recovered lost runs {summary.recovered or 'none'} in {summary.wall_time_s:.1f} s")
    if received:
        name = signal.Signals(received[0]).name
        lines = [f"stopped by {name}; the store is written."]
        if summary.abandoned:
            lines.append(f"fireworks {summary.abandoned} were still running and are left RUNNING: the next "
                         "`pes run` reruns them from the start (results already stored are not duplicated)")
        lines.append(f"the next `pes run` will launch the {summary.ready} READY firework(s)"
                     + (f" and rerun the {len(summary.abandoned)} left RUNNING" if summary.abandoned else ""))
        click.echo("\n".join(lines), err=True)
        raise SystemExit(EXIT_SIGTERM if received[0] == signal.SIGTERM else EXIT_SIGINT)
    if summary.fizzled:
        click.echo(f"{summary.fizzled} firework(s) fizzled; `pes status --fizzled` shows the errors", err=True)
        raise SystemExit(EXIT_FIZZLED)


def _exception_line(launch: dict | None) -> str:
    """The exception of a fizzled launch in one line (``Type: message``), not its stacktrace."""
    exc = ((launch or {}).get("action") or {}).get("stored_data", {}).get("_exception", {}) or {}
    lines = [ln.strip() for ln in str(exc.get("_stacktrace") or "").splitlines() if ln.strip()]
    text = lines[-1] if lines else str(exc.get("_details") or "").strip()
    return text[:240] + ("..." if len(text) > 240 else "")


def _last_error(lp, fizzled: list[dict]) -> str:
    """``fw N 'name': Type: message`` for the most recent fizzled launch among ``fizzled`` fireworks."""
    if not fizzled:
        return ""
    names = {fw["fw_id"]: fw.get("name", "") for fw in fizzled}
    launch = lp.launches.find_one({"fw_id": {"$in": sorted(names)}, "state": "FIZZLED"}, sort=[("launch_id", -1)])
    if launch is None:
        fw_id = max(names)
        return f"fw {fw_id} '{names[fw_id]}': FIZZLED (no launch recorded)"
    return f"fw {launch['fw_id']} '{names[launch['fw_id']]}': {_exception_line(launch) or 'no exception recorded'}"


def _show_spool(backend) -> None:
    """Workflows queued by `pes submit` while the store was busy (embedded store)."""
    from workflows.core.spool import holder_summary, read_spool

    entries, bad = read_spool(backend.config.embedded_store)
    if not entries and not bad:
        return
    held, holder = backend.holder()
    who, by_run = holder_summary(holder)
    if held and by_run:
        when = f"the running {who} adds them before its next launch"
    else:
        when = "the next `pes run` adds them"
    click.echo(f"queued (spool): {len(entries)} workflow(s); {when}")
    for e in entries:
        click.echo(f"  queued {e.describe()}")
    for path, reason in bad:
        click.echo(f"  unreadable {path.parent.name}/{path.name} ({reason}); the next `pes run` moves it to spool/rejected/")


@click.command()
@launchpad_option
@click.option("--fizzled", is_flag=True, help="Also list fizzled fireworks with their error.")
def status(launchpad: str | None, fizzled: bool) -> None:
    """Workflows, fireworks by state, stored configurations, queued submissions (read-only).

    \b
    Each workflow is shown with its id (its smallest fw_id, as `lpad get_wflows`),
    its progress (COMPLETED / all fireworks) and the last error of its fizzled
    fireworks. Reads a copy of the embedded store without taking its lock: safe
    while `pes run` works.
    """
    from pes_core.db import Configuration, FailedCalculation, PotentialModel, SearchRun

    with open_backend(launchpad, read_only=True) as backend:
        lp = backend.lp
        click.echo(f"backend: {backend.describe()}")
        wf_states = Counter(d["state"] for d in lp.workflows.find({}, {"state": 1}))
        fw_states = Counter((d["state"], d.get("spec", {}).get("_category", "-"))
                            for d in lp.fireworks.find({}, {"state": 1, "spec._category": 1}))
        click.echo(f"workflows: {sum(wf_states.values())}  " + "  ".join(f"{k}={v}" for k, v in sorted(wf_states.items())))
        click.echo(f"fireworks: {sum(fw_states.values())}")
        for (state, cat), n in sorted(fw_states.items()):
            click.echo(f"  {state:<10} {cat:<4} {n}")
        running = sorted(d["fw_id"] for d in lp.fireworks.find({"state": "RUNNING"}, {"fw_id": 1}))
        if running and backend.config.is_embedded:
            held, holder = backend.holder()
            if held:
                click.echo(f"  RUNNING fireworks {running}: in {holder or 'the process holding the store'}")
            else:
                was = f" ({holder})" if holder else ""
                click.echo(f"  RUNNING fireworks {running}: the process that ran them is gone{was}; "
                           "the next `pes run` reruns them")
        for wf in lp.workflows.find({}, {"name": 1, "state": 1, "metadata": 1, "nodes": 1}).sort("updated_on", -1).limit(10):
            md = wf.get("metadata") or {}
            nodes = wf.get("nodes", [])
            fws = list(lp.fireworks.find({"fw_id": {"$in": nodes}}, {"fw_id": 1, "state": 1, "name": 1}))
            done = sum(fw["state"] == "COMPLETED" for fw in fws)
            click.echo(f"  wf {min(nodes, default='-')} '{wf['name']}' {wf['state']} ({len(nodes)} fws, "
                       f"{done}/{len(nodes)} done) kind={md.get('pes_kind', '-')}")
            error = _last_error(lp, [fw for fw in fws if fw["state"] == "FIZZLED"])
            if error:
                click.echo(f"      last error: {error}")
        if backend.config.is_embedded:
            _show_spool(backend)
        n_conf = Configuration.objects.count()
        click.echo(f"configurations: {n_conf}")
        by = Counter((c.oracle, c.reduced_formula) for c in Configuration.objects.only("oracle", "reduced_formula"))
        for (oracle, formula), n in sorted(by.items()):
            click.echo(f"  {oracle:<8} {formula:<12} {n}")
        n_failed = FailedCalculation.objects.count()
        if n_failed:
            click.echo(f"failed calculations: {n_failed}")
        for m in PotentialModel.objects.order_by("-created_at").limit(5):
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in (m.metrics or {}).items() if isinstance(v, (int, float)))
            click.echo(f"model {m.name} ({m.kind} v{m.version}, {len(m.training_ids)} training configs) {metrics}")

        from workflows.csp.report import search_accounting

        for s in SearchRun.objects.order_by("-created_at").limit(5):
            acc = search_accounting(s.name)  # the one count behind summary.json, the plots and this line
            best = acc["best_verified_enthalpy_per_atom"]
            best_txt = (f"best {best:.4f} eV/atom (verified)" if best is not None else
                        f"best {acc['best_search_enthalpy_per_atom']:.4f} eV/atom (search)"
                        if acc["best_search_enthalpy_per_atom"] is not None else "best -")
            last = acc["last_generation"]
            purposes = ", ".join(f"{k} {v}" for k, v in acc["oracle_calls_by_purpose"].items() if v)
            line = (f"search {s.name} ({acc['mode']}): {s.status}, generations done "
                    f"{'-' if last is None else last + 1}, {best_txt}, oracle calls {acc['oracle_calls']}"
                    + (f" ({purposes})" if purposes else "")
                    + (f", failed or refused oracle calls {acc['oracle_failures']} (not in the total)"
                       if acc.get("oracle_failures") else ""))
            if acc["mode"] == "mtp":
                model = PotentialModel.objects(id=s.model_id).first() if s.model_id else None
                line += f", MTP evaluations {acc['mtp_evaluations']}"
                if model is not None:
                    line += f", model v{model.version} trained on {len(model.training_ids)}"
            click.echo(line)
        for wf in lp.workflows.find({"metadata.pes_kind": "pes_training_set"}, {"name": 1, "state": 1, "metadata": 1}):
            ts = wf["metadata"].get("training_set", wf["name"])
            n = Configuration.objects(workflow=ts).count()
            click.echo(f"training set {ts}: {wf['state']}, {n} configurations")
        if fizzled:
            for fw in lp.fireworks.find({"state": "FIZZLED"}, {"fw_id": 1, "name": 1}):
                launch = lp.launches.find_one({"fw_id": fw["fw_id"]}, sort=[("launch_id", -1)])
                err = ((launch or {}).get("action") or {}).get("stored_data", {}).get("_exception", {})
                click.echo(f"  FIZZLED fw {fw['fw_id']} {fw.get('name')}: {str(err.get('_stacktrace', ''))[-300:].strip()}")


@click.command()
@launchpad_option
@click.option("--wait-lock", default=0.0, type=click.FloatRange(0), show_default=True,
              help="Store busy: wait up to this many seconds for the other process.")
def repair(launchpad: str | None, wait_lock: float) -> None:
    """Restore an unreadable or deleted embedded store from its newest readable copy.

    Every write of the store keeps the file it replaces as store.json.bak.1
    (bak.2, bak.3 older). This puts the newest readable copy in place, keeps the
    damaged file as store.json.damaged-<time>, and reports what was lost: the
    work stored after that copy, which the next `pes run` redoes (its fireworks
    are READY or RUNNING again in the copy; stored results are never duplicated).
    A readable store is left alone.
    """
    from workflows.core.backend import LaunchpadConfig, repair_store

    config = LaunchpadConfig.from_file(find_launchpad_file(launchpad))
    report = repair_store(config, wait_lock=wait_lock)
    click.echo(report.summary())
    if report.restored_from is not None:
        click.echo("next: `pes status` to check, then `pes run` to redo the lost work")


COMMANDS = [init, submit, run, status, repair]
