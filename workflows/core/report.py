"""``pes report``: plots and a small static HTML page per workflow.

Each workflow kind (``metadata.pes_kind``) has a reporter that writes PNG
files into a folder and returns (title, path, caption) items; this module
assembles them into ``index.html``.  Reporters for other kinds register with
:func:`register_reporter`.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

__all__ = ["register_reporter", "write_report"]

ReportItem = tuple[str, str, str]  # (title, file name relative to the report folder, caption)
_REPORTERS: dict[str, Callable[[dict, Path], list[ReportItem]]] = {}


def register_reporter(kind: str, func: Callable[[dict, Path], list[ReportItem]]) -> None:
    """Register ``func(workflow_doc, out_dir) -> items`` for workflows of ``kind``."""
    _REPORTERS[kind] = func


def write_report(backend, workflow: str | int | None, out_dir: str | Path) -> Path:
    """Write plots and ``index.html`` for one workflow (name or any fw_id), or all.

    Each workflow's section is headed by its id (its smallest fw_id, as
    FireWorks' ``lpad get_wflows`` shows it) and lists its fw_ids, so two
    workflows of the same name (a spec submitted twice) can be told apart.

    Returns the path of ``index.html``.  Reporters are those registered so
    far: :func:`workflows.jobs.write_report` is this function with every job's
    reporters registered.
    """
    lp = backend.lp
    if workflow is None:
        wfs = list(lp.workflows.find({}))
    elif isinstance(workflow, int) or str(workflow).isdigit():
        wfs = list(lp.workflows.find({"nodes": int(workflow)}))
    else:
        wfs = list(lp.workflows.find({"name": workflow}))
    if not wfs:
        raise ValueError(f"no workflow named or containing fw_id {workflow!r}; `pes status` lists them")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for k, wf in enumerate(wfs):
        kind = (wf.get("metadata") or {}).get("pes_kind", "")
        sub = out / f"wf_{k:03d}"
        sub.mkdir(exist_ok=True)
        states: dict[str, int] = {}
        for fw in lp.fireworks.find({"fw_id": {"$in": wf["nodes"]}}, {"state": 1}):
            states[fw["state"]] = states.get(fw["state"], 0) + 1
        reporter = _REPORTERS.get(kind)
        items = reporter(wf, sub) if reporter else []
        wf_id = min(wf["nodes"])  # FireWorks names a workflow by its fw_ids; the smallest is its id
        body = [f"<h2 id='wf-{wf_id}'>workflow {wf_id}: {html.escape(wf['name'])}</h2>",
                f"<p>workflow id: {wf_id} (fw_ids {', '.join(map(str, sorted(wf['nodes'])))}); "
                f"kind: {html.escape(kind or '-')}; state: {wf['state']}; fireworks: "
                + ", ".join(f"{s} {n}" for s, n in sorted(states.items())) + "</p>"]
        for title, fname, caption in items:
            body.append(f"<figure><img src='{sub.name}/{fname}' style='max-width:100%'>"
                        f"<figcaption><b>{html.escape(title)}</b>: {html.escape(caption)}</figcaption></figure>")
        sections.append("\n".join(body))
    index = out / "index.html"
    index.write_text("<!doctype html><html><head><meta charset='utf-8'><title>pes report</title></head><body>"
                     "<h1>pes report</h1>\n" + "\n<hr>\n".join(sections) + "</body></html>")
    return index
