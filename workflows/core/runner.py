"""Run fireworks locally inside the process that holds the backend.

The embedded store must be used by one process only, so local parallelism is
threads: ``workers`` threads each call FireWorks' ``launch_rocket`` on the one
LaunchPad.  Heavy work (torch, numpy, external codes) releases the GIL, so
threads give real parallelism.  (FireWorks' ``launch_multiprocess`` serves the
LaunchPad to child processes, but on the embedded backend every state change
it made was lost -- measured, see DESIGN.md -- so it is not used.)  After every
firework the store is written to disk (at most a tenth of the time goes to
writing: see ``Backend.flush``), and always when the run ends.

On the embedded backend any firework found RUNNING at start-up was orphaned by
a crash (nobody else can hold the store), so it is rerun at once.

Workflows that ``pes submit`` queued while the store was busy
(:mod:`workflows.core.spool`) are added at start-up, before every launch and
once more at the end of the run (under the store lock: this process holds it).

The run prints a start-up line at once (backend, store, READY/RUNNING counts,
workers, category), then one line per finished firework; ``progress=False``
(``pes run --quiet``) keeps only errors (fizzled fireworks, rejected spool
files); the caller prints the final summary.

A run can be asked to stop (``stop``: an event the ``pes run`` signal handlers
set on SIGTERM/SIGINT): no new firework is launched, the running ones get
``grace`` seconds to finish, and those still running then are abandoned: they
stay RUNNING in the store, which is written one last time and then frozen, and
the next run reruns them as lost runs (:func:`recover_lost_runs`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field

from fireworks import FWorker
from fireworks.core.rocket_launcher import launch_rocket

from pes_core.oracles.jobdir import default_workdir
from workflows.core import runtime
from workflows.core.backend import Backend
from workflows.core.spool import drain_spool, has_spooled, read_spool

logger = logging.getLogger(__name__)

__all__ = ["RunSummary", "recover_lost_runs", "run_local", "startup_line"]


@dataclass
class RunSummary:
    """What :func:`run_local` did.

    ``stopped``: the run was asked to stop before the work ran out;
    ``abandoned``: fireworks still running at the end of the grace period
    (left RUNNING in the store, rerun by the next run); ``ready``: READY
    fireworks of this worker left when the run ended.
    """

    launched: int = 0
    completed: int = 0
    fizzled: int = 0
    recovered: list[int] = field(default_factory=list)
    wall_time_s: float = 0.0
    stopped: bool = False
    abandoned: list[int] = field(default_factory=list)
    ready: int = 0


def recover_lost_runs(backend: Backend, expiration_secs: int | None = None) -> list[int]:
    """Rerun fireworks whose worker died (RUNNING but no longer pinging).

    Embedded: every RUNNING firework is lost (this process holds the store).
    MongoDB: FireWorks' ``detect_lostruns`` with ``expiration_secs`` (default 4 h).
    """
    lp = backend.lp
    if backend.config.is_embedded:
        expiration_secs = 0
    elif expiration_secs is None:
        expiration_secs = 4 * 3600
    lost_launches, lost_fws, _ = lp.detect_lostruns(expiration_secs=expiration_secs, rerun=True)
    if lost_fws:
        logger.warning("reran %d lost firework(s): %s", len(lost_fws), lost_fws)
        backend.flush()
    return list(lost_fws)


def startup_line(backend: Backend, fworker: FWorker, workers: int, category: str | list[str] | None) -> str:
    """The line ``pes run`` prints before any work: backend, READY/RUNNING fireworks, workers, category.

    READY counts the fireworks this worker may launch (its category and
    query); RUNNING ones on the embedded store are lost runs, rerun now.
    """
    lp = backend.lp
    query = {"state": "READY"}
    query.update(fworker.query)
    n_ready = lp.fireworks.count_documents(query)
    n_ready_all = lp.fireworks.count_documents({"state": "READY"})
    n_running = lp.fireworks.count_documents({"state": "RUNNING"})
    cat = category if isinstance(category, str) else ",".join(category) if category else ""
    ready = f"{n_ready} READY" + (f" (of {n_ready_all})" if n_ready != n_ready_all else "")
    running = f"{n_running} RUNNING" + (" (lost, rerun now)" if n_running and backend.config.is_embedded else "")
    line = (f"pes run: {backend.describe()}; {ready}, {running}; {workers} worker(s); "
            f"category {cat or 'all'}")
    if backend.config.is_embedded:
        n_spooled = len(read_spool(backend.config.embedded_store)[0])
        if n_spooled:
            line += f"; {n_spooled} queued workflow(s) in the spool, added now"
    return line


def run_local(backend: Backend, workers: int = 1, category: str | list[str] | None = None,
              max_launches: int = 0, name: str = "pes-local", progress: bool = True,
              poll_interval: float = 0.2, fworker: FWorker | None = None,
              stop: threading.Event | None = None, grace: float = 30.0,
              abandon: threading.Event | None = None) -> RunSummary:
    """Launch READY fireworks until none is left (or ``max_launches`` is reached).

    Parameters
    ----------
    backend : Backend
        The open (writable) backend.
    workers : int
        Worker threads.
    category : str or list of str, optional
        Only fireworks of these ``_category`` values (e.g. ``"ml"``).
    max_launches : int
        Stop after this many launches (0: no limit).
    progress : bool
        Print the start-up line, one line per finished firework and one per
        workflow taken from the spool; ``False`` prints only errors (fizzled
        fireworks, unreadable spool files).
    fworker : FWorker, optional
        Worker identity and ``env`` (e.g. from ``my_fworker.yaml``); its
        category is replaced by ``category`` when that is given.
    stop : threading.Event, optional
        Set it (from a signal handler, another thread) to end the run: no new
        launch; the running fireworks may finish within ``grace``.
    grace : float
        Seconds the running fireworks get after ``stop`` is set; those still
        running then are abandoned (see :class:`RunSummary`).
    abandon : threading.Event, optional
        Set it to end the grace period now (a second Ctrl-C).
    """
    if backend.read_only:
        raise RuntimeError("cannot launch fireworks from a read-only snapshot")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    lp = backend.lp
    if fworker is None:
        fworker = FWorker(name=name, category=category or "")
    elif category:
        fworker = FWorker(name=fworker.name, category=category, query=fworker._query, env=fworker.env)
    # our one line per firework replaces FireWorks' chatty INFO lines
    for logname in ("rocket.launcher", "launchpad"):
        logging.getLogger(logname).setLevel(logging.WARNING)
    t0 = time.monotonic()
    if progress:
        print(startup_line(backend, fworker, workers, category), flush=True)

    def say(line: str) -> None:
        if progress:
            print(line, flush=True)

    def complain(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    embedded = backend.config.is_embedded
    store = backend.config.embedded_store
    if embedded:
        drain_spool(backend, echo=say, error=complain)
    summary = RunSummary(recovered=recover_lost_runs(backend))
    lock = threading.Lock()
    active = [0]
    claimed: set[int] = set()
    running: set[int] = set()
    stop = stop if stop is not None else threading.Event()

    def ready_query() -> dict:
        q = {"state": "READY"}
        q.update(fworker.query)
        return q

    def report(fw_id: int) -> None:
        fw = lp.fireworks.find_one({"fw_id": fw_id}, {"state": 1, "name": 1})
        state = fw["state"] if fw else "?"
        with lock:
            summary.completed += state == "COMPLETED"
            summary.fizzled += state == "FIZZLED"
            done = summary.completed + summary.fizzled
        if not progress and state == "FIZZLED":
            complain(f"fw {fw_id} FIZZLED: {fw.get('name', '') if fw else ''}")
        elif progress:
            remaining = lp.fireworks.count_documents(ready_query())
            print(f"[{done} done, {remaining} ready] fw {fw_id} {state}: {fw.get('name', '') if fw else ''}",
                  flush=True)

    def worker() -> None:
        while not stop.is_set():
            with lock:
                if max_launches and summary.launched >= max_launches:
                    return
                if embedded and has_spooled(store):  # workflows `pes submit` queued meanwhile
                    drain_spool(backend, echo=say, error=complain)
                query = ready_query()
                if claimed:
                    query["fw_id"] = {"$nin": sorted(claimed)}
                fw_doc = lp.fireworks.find_one(query, {"fw_id": 1}, sort=[("spec._priority", -1)])
                if fw_doc is None:
                    if active[0] == 0:
                        return  # nothing ready and nothing running that could release children
                    fw_id = None
                else:
                    if stop.is_set():
                        return
                    fw_id = fw_doc["fw_id"]
                    claimed.add(fw_id)
                    running.add(fw_id)
                    summary.launched += 1
                    active[0] += 1
            if fw_id is None:
                time.sleep(poll_interval)
                continue
            try:
                runtime.set_current_fw(fw_id)
                with default_workdir(root / f"fw_{fw_id}"):  # job folders of file-based oracles
                    launch_rocket(lp, fworker, fw_id=fw_id, strm_lvl="WARNING")
            except Exception:  # a rocket failure is recorded in the firework; keep going
                logger.exception("rocket for fw %s raised", fw_id)
            finally:
                runtime.set_current_fw(None)
                with lock:
                    active[0] -= 1
                    claimed.discard(fw_id)  # a rerun may make it READY again later
                    running.discard(fw_id)
                backend.flush(min_interval=0.1)  # at most a tenth of the time on writes (Backend.flush)
                report(fw_id)

    # launches (and per-firework work dirs) go under the project's launches/ folder
    root = backend.launch_root()
    root.mkdir(parents=True, exist_ok=True)
    old_root, runtime.LAUNCH_ROOT = runtime.LAUNCH_ROOT, root
    cwd = os.getcwd()
    os.chdir(root)  # FireWorks records the cwd as launch dir; threads share it
    from fireworks import fw_config
    old_print, fw_config.PRINT_FW_JSON = fw_config.PRINT_FW_JSON, False
    import fireworks.core.rocket as fw_rocket
    fw_rocket.PRINT_FW_JSON = False
    fw_rocket.ROCKET_STREAM_LOGLEVEL = "WARNING"  # errors still reach the terminal
    threads = [threading.Thread(target=worker, name=f"{name}-{k}", daemon=True) for k in range(workers)]
    deadline = None
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
                if stop.is_set():
                    summary.stopped = True
                    if deadline is None:
                        deadline = time.monotonic() + grace
                        if running:
                            logger.info("stopping: no new launch; waiting up to %.0f s for fw %s",
                                           grace, sorted(running))
                    if abandon is not None and abandon.is_set():
                        deadline = time.monotonic()
                    if time.monotonic() >= deadline:
                        break
                if backend.pending:  # a write skipped after a firework is made up for while the next ones run
                    backend.flush(min_interval=0.1)
            if deadline is not None and time.monotonic() >= deadline:
                break
    except KeyboardInterrupt:
        stop.set()
        raise
    finally:
        os.chdir(cwd)
        runtime.LAUNCH_ROOT = old_root
        fw_rocket.PRINT_FW_JSON = fw_config.PRINT_FW_JSON = old_print
        with lock:
            summary.abandoned = sorted(running)
        if embedded and not summary.abandoned and has_spooled(store):
            # queued after the last launch: added now, launched by the next run
            added = drain_spool(backend, echo=say, error=complain)
            if added:
                say(f"spool: {len(added)} workflow(s) added after the last launch; the next `pes run` launches them")
        backend.flush()
        if summary.abandoned:
            # their threads may still change the in-memory store: what is on disk now (the fireworks
            # RUNNING) is what the next run must find, so nothing is written any more
            backend.freeze()
        summary.stopped = summary.stopped or stop.is_set()
        summary.ready = lp.fireworks.count_documents(ready_query())
        summary.wall_time_s = time.monotonic() - t0
    return summary
