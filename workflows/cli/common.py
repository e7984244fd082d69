"""Options and helpers shared by the ``pes`` sub-commands."""

from __future__ import annotations

import click

launchpad_option = click.option(
    "-l", "--launchpad", "launchpad", type=click.Path(dir_okay=False), default=None,
    help="Launchpad yaml (default: $PES_LAUNCHPAD or ./my_launchpad.yaml).",
)
