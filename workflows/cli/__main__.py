"""``python -m workflows.cli`` == ``pes``."""

from workflows.cli import main

main()
