"""``python -m pes_core.oracles.vasp_emulator`` runs the VASP emulator in the current directory."""

import sys

from pes_core.oracles.vasp_emulator import main

sys.exit(main())
