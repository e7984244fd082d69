"""The ``pes`` command line.

Sub-commands live in modules of this package, one per area:
``project`` (init, submit, run, status, repair), ``mtp`` (MLIP-compatible moment
tensor potential commands).  Errors a user can fix end with a one-line
message and exit code 1 (no traceback); ``--debug`` shows the traceback.
Bad command-line usage is click's 2, Ctrl-C outside ``pes run`` 130;
``pes run`` adds 3 (a firework fizzled) and 130/143 (stopped by SIGINT/SIGTERM).
"""

from __future__ import annotations

import importlib
import sys

import click

# (module, attribute) of each click command/group added to `pes`
_SUBCOMMANDS = [
    ("workflows.cli.project", "COMMANDS"),
    ("workflows.cli.ops", "COMMANDS"),
    ("workflows.cli.manage", "COMMANDS"),  # rerun, defuse, reignite, delete, archive, lpad
    ("workflows.cli.mtp", "mtp"),
    ("workflows.cli.mtp_active", "COMMANDS"),  # adds calc-grade/select-add/preselect to `pes mtp`
    ("workflows.cli.model", "model"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Machine-learned potential energy surfaces and crystal structure prediction on FireWorks."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    for module, attr in _SUBCOMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:  # area not installed in this checkout
            if err.name == module:
                continue
            raise
        obj = getattr(mod, attr)
        for command in obj if isinstance(obj, (list, tuple)) else [obj]:
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``pes`` script: user errors become one line and exit code 1."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="pes", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except (ValueError, FileNotFoundError, OSError, RuntimeError, KeyError) as err:
        if debug:
            raise
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
