"""Draw the CCD modes (displacement patterns dr/dq) of the PbBr6 octahedron of
cubic CsPbBr3 and of a zincblende cation tetrahedron, and print their irreps.

Usage::

    python examples/ccd_modes.py [OUTPUT_DIR]      # default: ./ccd_modes

Writes ``OUTPUT_DIR/PbBr6_octahedron_modes.png`` and
``OUTPUT_DIR/SZn4_tetrahedron_modes.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pes_core.ccd import build_ccd
from pes_core.ccd.plotting import plot_modes
from pes_core.clusters import cubic_cspbbr3, octahedron_orbits, tetrahedron_orbits, zincblende


def main(out_dir: str = "ccd_modes") -> list[Path]:
    """Build the CCDs of two clusters, print their blocks, write the PNGs."""
    out = Path(out_dir)
    written = []
    clusters = [
        octahedron_orbits(cubic_cspbbr3(5.87), "Pb", "Br")[0],
        tetrahedron_orbits(zincblende(5.41), "S", "Zn")[0],
    ]
    for orbit in clusters:
        ccd = build_ccd(orbit, metric="linear")
        print(ccd.summary())
        written.append(plot_modes(ccd, out / f"{orbit.name}_modes.png"))
        print(f"wrote {written[-1]}")
    return written


if __name__ == "__main__":
    main(*sys.argv[1:2])
