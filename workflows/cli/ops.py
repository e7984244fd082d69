"""Operations: ``pes qlaunch`` (submit to SLURM/PBS) and ``pes webgui`` (FireWorks monitor).

Both work on either backend.  With the embedded store they read a snapshot
(never writing it back), and the queued jobs should run ``pes run
--max-launches 1 --wait-lock SECONDS`` so that jobs starting together take
turns on the store.  With MongoDB, FireWorks' own ``qlaunch``/``rlaunch``/
``lpad webgui`` work as well.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import click

from workflows.cli.common import launchpad_option
from workflows.core.backend import LaunchpadConfig, find_launchpad_file, open_backend

__all__ = ["COMMANDS", "EXTERNAL_ASSETS", "make_offline"]

#: vendored copies of what FireWorks' monitor templates load from the internet (see static/README.md)
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/pes-static"
EXTERNAL_ASSETS = {
    "//code.jquery.com/jquery.min.js": "jquery-1.11.1.min.js",  # frozen at 1.11.1 on code.jquery.com
}
# Google Fonts stylesheet imported by flat-ui.css: dropped (the browser's sans-serif is used)
_FONT_IMPORT = re.compile(r"@import\s+url\(\s*[\"']?(?:https?:)?//fonts\.googleapis\.com/[^)]*\)\s*;?")


def make_offline(app) -> None:
    """Serve the monitor's external assets from :data:`STATIC_DIR` so its pages work without internet.

    Adds the route ``/pes-static/<file>`` and an ``after_request`` hook that
    points ``//code.jquery.com/...`` (plain or ``https:``) in the HTML pages at
    it and drops the Google Fonts ``@import`` from the served stylesheets.
    Calling it again on the same app does nothing.
    """
    from flask import send_from_directory

    if getattr(app, "_pes_offline", False):
        return
    for name in EXTERNAL_ASSETS.values():
        if not (STATIC_DIR / name).is_file():
            raise FileNotFoundError(f"vendored asset {STATIC_DIR / name} is missing; reinstall the package "
                                    "(pyproject.toml package-data must include workflows/cli/static)")

    def pes_static(filename: str):
        return send_from_directory(STATIC_DIR, filename, max_age=86400)

    app.add_url_rule(f"{STATIC_URL}/<path:filename>", endpoint="pes_static", view_func=pes_static)

    def rewrite(response):
        if response.status_code != 200 or response.mimetype not in ("text/html", "text/css"):
            return response
        response.direct_passthrough = False  # static files are streamed; we need the text
        text = response.get_data(as_text=True)
        new = text
        if response.mimetype == "text/html":
            for url, name in EXTERNAL_ASSETS.items():
                new = new.replace(f"https:{url}", url).replace(f"http:{url}", url)
                new = new.replace(url, f"{STATIC_URL}/{name}")
        else:
            new = _FONT_IMPORT.sub("", new)
        if new != text:
            response.set_data(new)
            response.headers.pop("ETag", None)  # the file's ETag no longer describes the body
        return response

    app.after_request(rewrite)
    app._pes_offline = True


@click.command()
@launchpad_option
@click.option("-q", "--qadapter", "qadapter_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Queue adapter yaml (launchpad_configs/my_qadapter_slurm.yaml, ..._pbs.yaml).")
@click.option("-w", "--fworker", "fworker_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Worker yaml (category, env); decides which fireworks count as ready.")
@click.option("--nlaunches", type=click.IntRange(0), default=None,
              help="Jobs to submit (default: one per READY firework of this worker).")
@click.option("--maxjobs-queue", type=click.IntRange(0), default=0, help="Cap on jobs in the queue (0: none).")
@click.option("--launch-dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where FireWorks writes the block/launcher folders and job scripts.")
def qlaunch(launchpad: str | None, qadapter_file: str, fworker_file: str | None, nlaunches: int | None,
            maxjobs_queue: int, launch_dir: str) -> None:
    """Submit queue jobs that run fireworks (FireWorks' qlaunch rapidfire, no reservation)."""
    from fireworks import FWorker
    from fireworks.queue.queue_launcher import launch_rocket_to_queue
    from fireworks.utilities.fw_serializers import load_object_from_file

    qadapter = load_object_from_file(qadapter_file)
    fworker = FWorker.from_file(fworker_file) if fworker_file else FWorker()
    config = LaunchpadConfig.from_file(find_launchpad_file(launchpad))
    block = Path(launch_dir).resolve() / time.strftime("block_%Y-%m-%d-%H-%M-%S")
    block.mkdir(parents=True, exist_ok=True)
    if qadapter.get("logdir"):  # FireWorks needs it to exist; relative = relative to the block
        logdir = Path(qadapter["logdir"])
        logdir = logdir if logdir.is_absolute() else block / logdir
        logdir.mkdir(parents=True, exist_ok=True)
        qadapter["logdir"] = str(logdir)
    with open_backend(launchpad, read_only=config.is_embedded) as backend:
        query = dict(fworker.query)
        query["state"] = "READY"
        n_ready = backend.lp.fireworks.count_documents(query)
        n = n_ready if nlaunches is None else nlaunches
        if n == 0:
            click.echo("no READY fireworks for this worker; nothing submitted")
            return
        submitted = 0
        for _ in range(n):
            if maxjobs_queue and (qadapter.get_njobs_in_queue() or 0) >= maxjobs_queue:
                click.echo(f"queue holds {maxjobs_queue} job(s) already; stopping")
                break
            ok = launch_rocket_to_queue(backend.lp, fworker, qadapter, launcher_dir=str(block),
                                        reserve=False, strm_lvl="WARNING", create_launcher_dir=True)
            if not ok:
                raise click.ClickException(
                    f"submitting a job with {qadapter.q_type} failed after {submitted} job(s); "
                    f"see the logs in {qadapter.get('logdir') or block}"
                )
            submitted += 1
    click.echo(f"submitted {submitted} job(s) for {n_ready} READY firework(s) via {qadapter.q_type} "
               f"(scripts under {block})")


@click.command()
@launchpad_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--refresh", default=10.0, show_default=True,
              help="Embedded store: seconds between snapshot reloads.")
def webgui(launchpad: str | None, host: str, port: int, refresh: float) -> None:
    """Serve FireWorks' web monitor (read-only snapshots for the embedded store).

    Works offline: the assets its pages load from CDNs (jQuery) are served
    from a vendored copy under /pes-static/.
    """
    from fireworks.flask_site.app import app

    make_offline(app)

    config = LaunchpadConfig.from_file(find_launchpad_file(launchpad))
    ctx = open_backend(launchpad, read_only=config.is_embedded)
    backend = ctx.__enter__()
    app.lp = backend.lp
    app.config["WEBGUI_USERNAME"] = None
    app.config["WEBGUI_PASSWORD"] = None
    stop = threading.Event()

    def reload_snapshots() -> None:
        nonlocal ctx
        while not stop.wait(refresh):
            new_ctx = open_backend(launchpad, read_only=True)
            new_backend = new_ctx.__enter__()
            old_ctx, ctx = ctx, new_ctx
            app.lp = new_backend.lp
            time.sleep(1.0)  # let requests on the old snapshot finish
            old_ctx.__exit__(None, None, None)

    if config.is_embedded and refresh > 0:
        threading.Thread(target=reload_snapshots, daemon=True).start()
    click.echo(f"FireWorks monitor for {backend.describe()} on http://{host}:{port}")
    try:
        app.run(host=host, port=port, debug=False, threaded=True, use_reloader=False)
    finally:
        stop.set()
        ctx.__exit__(None, None, None)


@click.command()
@click.argument("workflow", required=False)
@launchpad_option
@click.option("-o", "--out", default="report", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the PNG files and index.html.")
def report(workflow: str | None, launchpad: str | None, out: str) -> None:
    """Write plots and an HTML page for WORKFLOW (name or fw_id; default: all)."""
    from workflows.jobs import write_report

    with open_backend(launchpad, read_only=True) as backend:
        index = write_report(backend, workflow, out)
    click.echo(f"wrote {index}")


COMMANDS = [qlaunch, webgui, report]
