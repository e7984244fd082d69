"""Step 2 of the CsPbBr3 thermodynamics model: the relaxed tilt phases as training data.

Writes ``phases.extxyz`` (81 structures of the 40-atom cell), which the
``oracle_batch`` spec ``2_phases.yaml`` then labels, so that every structure
is stored once, with the oracle's provenance.  Per Glazer system:

* the cell relaxed with the oracle (positions and cell, FIRE, fmax 0.005 eV/Å);
* for the tilted systems, the tilt displacement scaled by 0.5, 0.75 and 1.25
  in the relaxed cell (points on the path through the double well);
* 8 thermal-like neighbours: Gaussian displacements of 0.03-0.08 Å and
  random symmetric strains up to 0.5 %.

These energy *differences* (Pnma 3.2 meV/atom below P4/mbm with CHGNet) are
what the phase sequence hangs on, and random or thermal training cells do
not pin them (docs/thermo.md, session 11).

    python examples/cspbbr3_model/phases.py phases.extxyz [--oracle chgnet]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from ase.io import write
from pymatgen.core import Structure

from pes_core.oracles import get_oracle, to_atoms
from pes_core.sampling.pes_training import relax_cubic, relax_structure
from pes_core.sampling.tilts import glazer_tilted

SYSTEMS = ("a0a0a0", "a0a0c+", "a0a0c-", "a+b-b-", "a-a-a-", "a0b-b-", "a0b+b+")
SCALES = (0.5, 0.75, 1.25)
NEIGHBOURS = 8


def _scaled(relaxed: Structure, ideal_frac: np.ndarray, scale: float) -> Structure:
    """``relaxed`` with its displacements from the untilted positions scaled by ``scale`` (same cell)."""
    d = relaxed.frac_coords - ideal_frac
    d -= np.round(d)
    return Structure(relaxed.lattice, relaxed.species, ideal_frac + scale * d)


def _neighbour(s: Structure, rng: np.random.Generator) -> Structure:
    sigma = rng.uniform(0.03, 0.08)
    e = rng.uniform(-0.005, 0.005, size=(3, 3))
    e = 0.5 * (e + e.T)
    lattice = s.lattice.matrix @ (np.eye(3) + e)
    cart = s.frac_coords @ lattice + rng.normal(0.0, sigma, size=(len(s), 3))
    return Structure(lattice, s.species, cart, coords_are_cartesian=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="extxyz file to write")
    p.add_argument("--oracle", default="chgnet")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    # scipy's logm inside ASE's cell filter warns at 3e-13 relative error on every step: harmless here
    warnings.filterwarnings("ignore", message="logm result may be inaccurate")

    oracle = get_oracle(args.oracle)
    a, _ = relax_cubic(oracle)
    rng = np.random.default_rng(args.seed)
    ideal = glazer_tilted("a0a0a0", 0.0, a=a).frac_coords
    out = []
    e_cubic = None
    for symbol in SYSTEMS:
        t0 = time.time()
        start = glazer_tilted(symbol, 0.0 if symbol == "a0a0a0" else 8.0, a=a)
        relaxed, info = relax_structure(start, oracle, fmax=0.005, steps=1500,
                                        hydrostatic=symbol == "a0a0a0")
        e = oracle.compute(relaxed).energy / len(relaxed)
        e_cubic = e if e_cubic is None else e_cubic
        print(f"{symbol}: {1000 * (e - e_cubic):+.2f} meV/atom vs cubic, {info['steps']} steps, "
              f"converged {info['converged']}, {time.time() - t0:.0f} s", flush=True)
        members = [(relaxed, "relaxed")]
        if symbol != "a0a0a0":
            members += [(_scaled(relaxed, ideal, f), f"scaled {f}") for f in SCALES]
        members += [(_neighbour(relaxed, rng), f"neighbour {i}") for i in range(NEIGHBOURS)]
        for s, what in members:
            atoms = to_atoms(s)
            atoms.info["phase"] = f"{symbol} {what}"
            out.append(atoms)
    write(args.out, out, format="extxyz")
    print(f"{len(out)} structures written to {args.out}")


if __name__ == "__main__":
    main()
