"""Managing fireworks and workflows: ``pes rerun``, ``defuse``, ``reignite``, ``delete``, ``archive``, ``lpad``.

The commands mirror FireWorks' ``lpad`` (``rerun_fws``, ``defuse_fws`` /
``defuse_wflows``, ``reignite_fws`` / ``reignite_wflows``, ``delete_wflows``,
``archive_wflows``) and call the same LaunchPad methods, so they behave alike
on the embedded store and on MongoDB.  Selection is by firework id (``-i 3``,
``-i 3,4``), name (``-n``), state (``-s FIZZLED``) or a pymongo query
(``-q``); several selectors narrow the selection (AND).  Every command first
lists what it will change; ``--dry-run`` stops there, and changes that discard
work (delete, archive, rerunning or defusing COMPLETED fireworks) need
``--yes`` or an interactive confirmation.  Afterwards the state changes are
printed.

Deleting or archiving a workflow only touches the LaunchPad collections
(fireworks, launches, workflows): the computed results in the domain database
(``Configuration``, ``FailedCalculation``, ``PotentialModel``, ``SearchRun``
...) are kept, so a resubmitted workflow finds its configurations again.

``pes lpad ARGS...`` runs FireWorks' own ``lpad`` sub-commands on the opened
backend: on the embedded store (which plain ``lpad`` cannot open) while
holding its lock, or on a read-only snapshot for the ``get_*`` commands.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import click

from workflows.cli.common import launchpad_option
from workflows.core.backend import Backend, open_backend

__all__ = ["COMMANDS", "Selection", "select_fireworks", "select_workflows"]

# FireWorks' states (Firework.STATE_RANKS), without importing fireworks at start-up
STATES = ("ARCHIVED", "FIZZLED", "DEFUSED", "PAUSED", "WAITING", "READY", "RESERVED", "RUNNING", "COMPLETED")


# ---------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------
@dataclass
class Selection:
    """What ``-i/-n/-s/-q`` asked for.

    Parameters
    ----------
    fw_ids : list of int
        Firework ids (for workflows: any firework of the workflow).
    name : str or None
        Exact firework name (workflow name in workflow mode).
    state : str or None
        Firework state (workflow state in workflow mode).
    query : dict or None
        Extra pymongo query on the fireworks (workflows) collection.
    """

    fw_ids: list[int]
    name: str | None
    state: str | None
    query: dict | None

    def empty(self) -> bool:
        return not (self.fw_ids or self.name or self.state or self.query is not None)

    def describe(self) -> str:
        parts = []
        if self.fw_ids:
            parts.append("fw_id " + ",".join(map(str, self.fw_ids)))
        if self.name:
            parts.append(f"name '{self.name}'")
        if self.state:
            parts.append(f"state {self.state}")
        if self.query is not None:
            parts.append(f"query {self.query}")
        return " and ".join(parts)


def _parse_ids(values: tuple[str, ...]) -> list[int]:
    ids = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                ids.append(int(part))
            except ValueError:
                raise click.BadParameter(f"'{part}' is not a firework id (an integer; several: -i 3,4 or -i 3 -i 4)",
                                         param_hint="-i/--fw-id") from None
    return ids


def _parse_query(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        query = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise click.BadParameter(f"{text!r} is not a Python/JSON dict ({err}); "
                                 "example: -q '{\"spec._category\": \"dft\"}'", param_hint="-q/--query") from None
    if not isinstance(query, dict):
        raise click.BadParameter(f"{text!r} must be a dict, got {type(query).__name__}", param_hint="-q/--query")
    return query


def select_fireworks(lp, sel: Selection) -> list[dict]:
    """Firework documents (fw_id, name, state, spec._category) matching ``sel``, by fw_id.

    Raises :class:`click.ClickException` for ids that do not exist.
    """
    query: dict[str, Any] = dict(sel.query or {})
    if sel.fw_ids:
        query["fw_id"] = {"$in": sel.fw_ids}
        found = {d["fw_id"] for d in lp.fireworks.find({"fw_id": {"$in": sel.fw_ids}}, {"fw_id": 1})}
        missing = sorted(set(sel.fw_ids) - found)
        if missing:
            raise click.ClickException(f"no firework with fw_id {', '.join(map(str, missing))}; "
                                       "`pes lpad get_fws -d less` lists the fireworks")
    if sel.name:
        query["name"] = sel.name
    if sel.state:
        query["state"] = sel.state
    docs = lp.fireworks.find(query, {"fw_id": 1, "name": 1, "state": 1, "spec._category": 1})
    return sorted(docs, key=lambda d: d["fw_id"])


def select_workflows(lp, sel: Selection) -> list[dict]:
    """Workflow documents (name, state, nodes, metadata) matching ``sel`` (``-i``: workflows holding these fw_ids)."""
    query: dict[str, Any] = dict(sel.query or {})
    if sel.fw_ids:
        found = {n for d in lp.workflows.find({"nodes": {"$in": sel.fw_ids}}, {"nodes": 1}) for n in d["nodes"]}
        missing = sorted(set(sel.fw_ids) - found)
        if missing:
            raise click.ClickException(f"no workflow holds fw_id {', '.join(map(str, missing))}; "
                                       "`pes lpad get_wflows -d less` lists the workflows")
        query["nodes"] = {"$in": sel.fw_ids}
    if sel.name:
        query["name"] = sel.name
    if sel.state:
        query["state"] = sel.state
    docs = lp.workflows.find(query, {"name": 1, "state": 1, "nodes": 1, "metadata": 1})
    return sorted(docs, key=lambda d: min(d["nodes"]))


def _fw_states(lp, fw_ids: list[int]) -> dict[int, tuple[str, str]]:
    """{fw_id: (state, name)} for these fireworks."""
    return {d["fw_id"]: (d["state"], d.get("name", ""))
            for d in lp.fireworks.find({"fw_id": {"$in": list(fw_ids)}}, {"fw_id": 1, "state": 1, "name": 1})}


def _wf_fw_ids(lp, fw_ids: list[int]) -> list[int]:
    """All fireworks of the workflows that hold ``fw_ids``."""
    nodes: set[int] = set()
    for d in lp.workflows.find({"nodes": {"$in": list(fw_ids)}}, {"nodes": 1}):
        nodes.update(d["nodes"])
    return sorted(nodes)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[io.StringIO]:
    """Swallow FireWorks' own prints (``delete_wf`` prints the ids it removes)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


# ---------------------------------------------------------------------------
# shared command machinery
# ---------------------------------------------------------------------------
def _selection_options(fn: Callable) -> Callable:
    options = [
        click.option("-i", "--fw-id", "fw_ids", multiple=True,
                     help="Firework id(s): -i 3, -i 3,4 or -i 3 -i 4 (workflow commands: any firework of the workflow)."),
        click.option("-n", "--name", default=None, help="Exact firework name (workflow commands: workflow name)."),
        click.option("-s", "--state", default=None, type=click.Choice(STATES, case_sensitive=False),
                     help="State, e.g. FIZZLED (workflow commands: workflow state)."),
        click.option("-q", "--query", default=None,
                     help="pymongo query on the fireworks (workflows) collection, e.g. '{\"spec._category\": \"dft\"}'."),
        click.option("--dry-run", is_flag=True, help="Only list what would change."),
        click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation."),
        click.option("--wait-lock", default=0.0, type=click.FloatRange(0), show_default=True,
                     help="Embedded store busy (`pes run` holds it): wait up to this many seconds."),
        launchpad_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _selection(fw_ids: tuple[str, ...], name: str | None, state: str | None, query: str | None) -> Selection:
    sel = Selection(_parse_ids(fw_ids), name, state.upper() if state else None, _parse_query(query))
    if sel.empty():
        raise click.UsageError("select what to change with -i FW_ID, -n NAME, -s STATE or -q QUERY "
                               "(all of them: -q '{}')")
    return sel


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.ClickException(f"{question} -- not confirmed: pass --yes to go ahead (or --dry-run to only list)")
    click.confirm(question, abort=True)


def _fw_line(fw_id: int, state: str, name: str, category: str | None = None) -> str:
    cat = f" [{category}]" if category else ""
    return f"  fw {fw_id:<5} {state:<10} {name}{cat}"


def _report_changes(before: dict[int, tuple[str, str]], after: dict[int, tuple[str, str]]) -> int:
    """Print ``fw N name: OLD -> NEW`` for every changed or removed firework; returns how many."""
    n = 0
    for fw_id in sorted(before):
        old, name = before[fw_id]
        new = after.get(fw_id, ("deleted", name))[0]
        if new != old:
            click.echo(f"  fw {fw_id:<5} {name}: {old} -> {new}")
            n += 1
    if n == 0:
        click.echo("  no firework changed state")
    return n


def _open(launchpad: str | None, wait_lock: float) -> contextlib.AbstractContextManager[Backend]:
    return open_backend(launchpad, wait_lock=wait_lock)


# ---------------------------------------------------------------------------
# firework commands
# ---------------------------------------------------------------------------
def _fireworks_command(verb: str, launchpad: str | None, sel: Selection, dry_run: bool, yes: bool,
                       wait_lock: float, act: Callable[[Any, int], Any], discards: Callable[[dict], bool],
                       hint: str | None = None) -> None:
    with _open(launchpad, wait_lock) as backend:
        lp = backend.lp
        docs = select_fireworks(lp, sel)
        if not docs:
            click.echo(f"no firework matches {sel.describe()}; nothing to {verb}")
            return
        click.echo(f"{verb} {len(docs)} firework(s) ({backend.describe()}):")
        for d in docs:
            click.echo(_fw_line(d["fw_id"], d["state"], d.get("name", ""), (d.get("spec") or {}).get("_category")))
        if dry_run:
            click.echo("dry run: nothing changed")
            return
        n_done = sum(1 for d in docs if discards(d))
        if n_done:
            _confirm(f"{verb} {n_done} COMPLETED firework(s)? Their launches are archived and they (and the "
                     "fireworks after them) run again", yes)
        affected = _wf_fw_ids(lp, [d["fw_id"] for d in docs])
        before = _fw_states(lp, affected)
        with _quiet_stdout():
            for d in docs:
                act(lp, d["fw_id"])
        backend.flush()
        click.echo("changed:")
        changed = _report_changes(before, _fw_states(lp, affected))
    if changed and hint:
        click.echo(hint)


@click.command()
@_selection_options
def rerun(fw_ids, name, state, query, dry_run, yes, wait_lock, launchpad) -> None:
    """Rerun fireworks (lpad rerun_fws): FIZZLED, lost RUNNING or COMPLETED ones go back to READY/WAITING.

    \b
    Examples:
      pes rerun -s FIZZLED           # every fizzled firework
      pes rerun -i 12 --dry-run      # what rerunning fw 12 would change
    Rerunning a COMPLETED firework also resets the fireworks after it and
    asks for confirmation (--yes).  Results already stored are kept: the
    firework finds them again (fireworks are idempotent).
    """
    sel = _selection(fw_ids, name, state, query)
    _fireworks_command("rerun", launchpad, sel, dry_run, yes, wait_lock,
                       act=lambda lp, fw_id: lp.rerun_fw(fw_id),
                       discards=lambda d: d["state"] == "COMPLETED",
                       hint="run them with `pes run` (or your queue jobs)")


@click.command()
@_selection_options
@click.option("--wf", "workflow_mode", is_flag=True,
              help="Defuse whole workflows (lpad defuse_wflows): every firework not yet COMPLETED or FIZZLED.")
@click.option("--all-states", is_flag=True,
              help="With --wf: also defuse COMPLETED and FIZZLED fireworks (lpad --defuse_all_states).")
def defuse(fw_ids, name, state, query, dry_run, yes, wait_lock, launchpad, workflow_mode, all_states) -> None:
    """Defuse fireworks (lpad defuse_fws) or workflows (--wf): they and what depends on them will not run.

    Undo with `pes reignite`.  Defusing a COMPLETED firework reruns it first
    (FireWorks' rule) and asks for confirmation.
    """
    sel = _selection(fw_ids, name, state, query)
    if all_states and not workflow_mode:
        raise click.UsageError("--all-states applies to workflows: add --wf")
    if workflow_mode:
        _workflows_command("defuse", launchpad, sel, dry_run, yes, wait_lock,
                           act=lambda lp, fw_id: lp.defuse_wf(fw_id, defuse_all_states=all_states),
                           confirm=all_states)
        return
    _fireworks_command("defuse", launchpad, sel, dry_run, yes, wait_lock,
                       act=lambda lp, fw_id: lp.defuse_fw(fw_id),
                       discards=lambda d: d["state"] == "COMPLETED",
                       hint="undo with `pes reignite`")


@click.command()
@_selection_options
@click.option("--wf", "workflow_mode", is_flag=True, help="Reignite whole workflows (lpad reignite_wflows).")
def reignite(fw_ids, name, state, query, dry_run, yes, wait_lock, launchpad, workflow_mode) -> None:
    """Reignite (un-defuse) DEFUSED fireworks (lpad reignite_fws) or workflows (--wf)."""
    sel = _selection(fw_ids, name, state, query)
    if workflow_mode:
        _workflows_command("reignite", launchpad, sel, dry_run, yes, wait_lock,
                           act=lambda lp, fw_id: lp.reignite_wf(fw_id), confirm=False,
                           hint="run them with `pes run` (or your queue jobs)")
        return
    _fireworks_command("reignite", launchpad, sel, dry_run, yes, wait_lock,
                       act=lambda lp, fw_id: lp.reignite_fw(fw_id), discards=lambda d: False,
                       hint="run them with `pes run` (or your queue jobs)")


# ---------------------------------------------------------------------------
# workflow commands
# ---------------------------------------------------------------------------
def _kept_results(wf: dict) -> str:
    """What the domain database keeps of a workflow (its computed results)."""
    from pes_core.db import Configuration, FailedCalculation, PotentialModel, SearchRun

    md = wf.get("metadata") or {}
    names = {wf["name"]} | {md[k] for k in ("search", "training_set", "fit") if md.get(k)}
    n_conf = Configuration.objects(workflow__in=list(names)).count()
    if md.get("search"):
        n_conf = max(n_conf, Configuration.objects(tags=f"csp:{md['search']}").count())
    parts = [f"{n_conf} configuration(s)"]
    n_failed = FailedCalculation.objects(workflow__in=list(names)).count()
    if n_failed:
        parts.append(f"{n_failed} failed calculation(s)")
    n_models = PotentialModel.objects(workflow__in=list(names)).count()
    if n_models:
        parts.append(f"{n_models} model(s)")
    if md.get("search") and SearchRun.objects(name=md["search"]).first() is not None:
        parts.append(f"search run '{md['search']}'")
    return ", ".join(parts)


def _workflows_command(verb: str, launchpad: str | None, sel: Selection, dry_run: bool, yes: bool,
                       wait_lock: float, act: Callable[[Any, int], Any], confirm: bool,
                       hint: str | None = None, after: Callable[[dict], str | None] | None = None) -> None:
    with _open(launchpad, wait_lock) as backend:
        lp = backend.lp
        wfs = select_workflows(lp, sel)
        if not wfs:
            click.echo(f"no workflow matches {sel.describe()}; nothing to {verb}")
            return
        click.echo(f"{verb} {len(wfs)} workflow(s) ({backend.describe()}):")
        for wf in wfs:
            states = _fw_states(lp, wf["nodes"])
            counts: dict[str, int] = {}
            for s, _ in states.values():
                counts[s] = counts.get(s, 0) + 1
            kind = (wf.get("metadata") or {}).get("pes_kind", "-")
            click.echo(f"  wf {min(wf['nodes']):<5} {wf['state']:<10} '{wf['name']}' kind={kind}, "
                       f"{len(wf['nodes'])} firework(s): " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            if "RUNNING" in counts and not backend.config.is_embedded:
                click.echo(f"    warning: {counts['RUNNING']} firework(s) RUNNING: a worker may still execute them")
        if dry_run:
            click.echo("dry run: nothing changed")
            return
        if confirm:
            _confirm(f"{verb} {len(wfs)} workflow(s)?", yes)
        affected = sorted({n for wf in wfs for n in wf["nodes"]})
        before = _fw_states(lp, affected)
        notes = []
        with _quiet_stdout():
            for wf in wfs:
                act(lp, min(wf["nodes"]))
                if after is not None:
                    notes.append(after(wf))
        backend.flush()
        click.echo("changed:")
        changed = _report_changes(before, _fw_states(lp, affected))
        for note in notes:
            if note:
                click.echo(note)
    if changed and hint:
        click.echo(hint)


@click.command()
@_selection_options
@click.option("--ldirs", "delete_launch_dirs", is_flag=True,
              help="Also delete the launch directories of the workflows' fireworks (lpad --ldirs).")
def delete(fw_ids, name, state, query, dry_run, yes, wait_lock, launchpad, delete_launch_dirs) -> None:
    """Delete workflows from the LaunchPad (lpad delete_wflows); asks for confirmation (--yes).

    Removes the workflows, their fireworks and launches.  The results they
    computed stay in the domain database (configurations, failed
    calculations, models, search runs): `pes status` still counts them and a
    resubmitted workflow reuses them.
    """
    sel = _selection(fw_ids, name, state, query)

    def note(wf: dict) -> str:
        return f"  deleted workflow '{wf['name']}'; kept in the database: {_kept_results(wf)}"

    _workflows_command("delete", launchpad, sel, dry_run, yes, wait_lock,
                       act=lambda lp, fw_id: lp.delete_wf(fw_id, delete_launch_dirs=delete_launch_dirs),
                       confirm=True, after=note)


@click.command()
@_selection_options
def archive(fw_ids, name, state, query, dry_run, yes, wait_lock, launchpad) -> None:
    """Archive workflows (lpad archive_wflows): every firework becomes ARCHIVED and never runs (irreversible).

    The "soft delete": the workflow stays listed (state ARCHIVED) and its
    results stay in the domain database.  Asks for confirmation (--yes).
    """
    sel = _selection(fw_ids, name, state, query)
    _workflows_command("archive", launchpad, sel, dry_run, yes, wait_lock,
                       act=lambda lp, fw_id: lp.archive_wf(fw_id), confirm=True,
                       after=lambda wf: f"  archived workflow '{wf['name']}'; kept in the database: {_kept_results(wf)}")


# ---------------------------------------------------------------------------
# pes lpad: FireWorks' own lpad on our backend
# ---------------------------------------------------------------------------
#: lpad sub-commands that only read: run on a read-only snapshot (works while `pes run` holds the store)
READ_ONLY_LPAD = {"get_fws", "get_wflows", "get_wfs", "get_fws_in_wflows", "get_launchdir", "dump_wflow",
                  "track_fws", "get_qids", "report", "introspect", "check_wflow", "check_wf"}
#: lpad options (before the sub-command) that take a value
_LPAD_VALUE_OPTIONS = {"-o", "--output", "-c", "--config_dir", "--logdir", "--loglvl", "-l", "--launchpad_file"}
_LPAD_REFUSED = {
    "init": "`pes init` writes the launchpad file (embedded store or --mongodb-uri)",
    "webgui": "use `pes webgui` (it serves the monitor on a snapshot without holding the store)",
}


def _lpad_subcommand(args: tuple[str, ...]) -> str | None:
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in _LPAD_VALUE_OPTIONS:
            skip = True
            continue
        if a.startswith("-"):
            continue
        return a
    return None


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


@contextlib.contextmanager
def _lpad_on(backend: Backend, silent: bool) -> Iterator[None]:
    """Make ``fireworks.scripts.lpad_run`` use ``backend.lp`` and show its INFO lines like lpad does."""
    from fireworks.scripts import lpad_run

    original = lpad_run.get_lp
    lpad_run.get_lp = lambda args: backend.lp
    handler = None
    if not silent:  # our backend logs at WARNING; lpad users expect "Finished ..." lines
        handler = logging.StreamHandler(sys.stdout)
        handler.setLevel(logging.INFO)
        handler.addFilter(_BelowWarning())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        backend.lp.m_logger.addHandler(handler)
    try:
        yield
    finally:
        lpad_run.get_lp = original
        if handler is not None:
            backend.lp.m_logger.removeHandler(handler)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@launchpad_option
@click.option("--wait-lock", default=0.0, type=click.FloatRange(0), show_default=True,
              help="Embedded store busy (`pes run` holds it): wait up to this many seconds.")
@click.argument("lpad_args", nargs=-1, type=click.UNPROCESSED)
def lpad(launchpad: str | None, wait_lock: float, lpad_args: tuple[str, ...]) -> None:
    """Run FireWorks' `lpad LPAD_ARGS...` on this project's LaunchPad (embedded store or MongoDB).

    \b
    Examples:
      pes lpad get_wflows -d more
      pes lpad -l proj/my_launchpad.yaml get_fws -s FIZZLED -d less
      pes lpad rerun_fws -i 12
      pes lpad get_wflows -h        # lpad's own help of a sub-command
    Reading sub-commands (get_fws, get_wflows, ...) use a read-only snapshot
    of the embedded store; the others hold its lock while they run, like
    `pes run`, and the store is written when they finish.
    """
    from fireworks.scripts import lpad_run

    args = list(lpad_args)
    if any(a in ("-l", "--launchpad_file") for a in args):
        raise click.UsageError("give the launchpad file to pes, before the lpad sub-command: "
                               "`pes lpad -l my_launchpad.yaml get_wflows`")
    sub = _lpad_subcommand(lpad_args)
    if sub is None:  # lpad's own help / version
        if not args:
            args = ["-h"]
        try:
            lpad_run.lpad(args)
        except SystemExit as err:
            if err.code:
                raise
        return
    if sub in _LPAD_REFUSED:
        raise click.UsageError(f"`lpad {sub}` is not run through pes: {_LPAD_REFUSED[sub]}")
    read_only = sub in READ_ONLY_LPAD
    silent = "-s" in args[: args.index(sub)] or "--silencer" in args[: args.index(sub)]
    read_only = read_only and _is_embedded(launchpad)
    with open_backend(launchpad, read_only=read_only, wait_lock=wait_lock) as backend, _lpad_on(backend, silent):
        try:
            lpad_run.lpad(args)
        except SystemExit as err:  # argparse errors and -h
            if err.code not in (0, None):
                raise click.exceptions.Exit(err.code if isinstance(err.code, int) else 2) from None


def _is_embedded(launchpad: str | None) -> bool:
    from workflows.core.backend import LaunchpadConfig, find_launchpad_file

    return LaunchpadConfig.from_file(find_launchpad_file(launchpad)).is_embedded


COMMANDS = [rerun, defuse, reignite, delete, archive, lpad]
