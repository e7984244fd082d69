"""Do models fitted to small cells transfer to large ones?  Their error on oracle-labelled mosaic supercells.

A mosaic (:func:`pes_core.sampling.mosaic_supercells`) places ``8`` different
configurations of a training set's cell (by default its oracle MD snapshots,
``--blocks thermal``) side by side in a 2x2x2 supercell of that cell (320
atoms for the 40-atom CsPbBr3 cell): each block keeps its own displacements
and neighbouring blocks are uncorrelated, as in a large cell at finite
temperature.  For each model the script prints its error (model minus oracle,
meV/atom) on the blocks themselves (the small cells) and on the mosaics, and
the oracle's cost of the block boundaries (mosaic energy minus the mean of its
blocks).  A model whose small-cell error is small but whose mosaic error is
large has couplings between neighbouring environments that its cells could
not determine (docs/thermo.md, "Transfer to large cells").

    OMP_NUM_THREADS=1 python benchmarks/thermo_mosaic.py --launchpad runs/full/my_launchpad.yaml \\
        --training-set cspbbr3-demo --models cspbbr3-full-lin4-linear cspbbr3-full-mos-linear --count 16

Reads the project read-only; labels the mosaics with the oracle in this
process (CHGNet: ~0.3 s per 320-atom cell on one idle core).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--launchpad", required=True, help="the project's my_launchpad.yaml (read only)")
    ap.add_argument("--training-set", required=True, help="training-set workflow whose cells make the blocks")
    ap.add_argument("--models", nargs="+", required=True, help="stored models (cluster, site or linear)")
    ap.add_argument("--blocks", default="thermal",
                    help="generator kind of the block cells (the part after ':' of Configuration.generator, "
                         "prefix match; default thermal: the oracle MD snapshots)")
    ap.add_argument("--count", type=int, default=16, help="mosaics (default 16)")
    ap.add_argument("--oracle", default="chgnet")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from pymatgen.core import Structure

    from pes_core.ann.calculator import stored_model
    from pes_core.oracles import get_oracle
    from pes_core.sampling import mosaic_supercells
    from pes_core.thermo import OctahedralTilts, SupercellPES
    from workflows.core.backend import open_backend
    from workflows.pes.models import block_configurations
    from workflows.thermo.store import model_reference

    print(machine_line())
    with open_backend(args.launchpad, read_only=True):
        models = {name: stored_model(name)[0] for name in args.models}
        n_atoms = next(iter(models.values())).featurizer.n_atoms
        confs = block_configurations(args.training_set, n_atoms, args.blocks)
    if len(confs) < 8:
        print(f"error: {len(confs)} configurations of {args.training_set} have a generator '<parent>:{args.blocks}...'; "
              "need at least 8 (see --blocks)", file=sys.stderr)
        return 2
    first = next(iter(models.values()))
    reference = first.featurizer.reference_structure()
    blocks = [Structure.from_dict(c.structure) for c in confs]
    e_blocks = np.array([c.energy / c.n_atoms for c in confs])
    print(f"inputs: {len(blocks)} '{args.blocks}' cells of {args.training_set} ({len(reference)} atoms), "
          f"{args.count} mosaics of 2x2x2 blocks, seed {args.seed}, oracle {args.oracle}")
    mosaics = mosaic_supercells(reference, blocks, args.count, repeats=2, seed=args.seed)
    oracle = get_oracle(args.oracle)
    t0 = time.perf_counter()
    e_oracle = np.array([oracle.compute(s).energy / len(s) for s in mosaics])
    print(f"oracle: {(time.perf_counter() - t0) / len(mosaics):.2f} s per mosaic")
    boundary = np.array([1000 * (e - e_blocks[m.properties["mosaic_blocks"]].mean()) for m, e in zip(mosaics, e_oracle)])
    print(f"oracle mosaic minus the mean of its blocks: {boundary.mean():.1f} meV/atom "
          f"(range {boundary.min():.1f} to {boundary.max():.1f})")
    print(f"{'model':34s} {'small cells: mean  rmse':>24s} {'mosaics: mean  rmse  max|err|':>30s} (meV/atom)")
    for name, model in models.items():
        ref = model_reference(model)
        n = round((len(reference) / 5) ** (1 / 3))  # the training cell is n x n x n primitive cells
        small, big = SupercellPES(model, n), SupercellPES(model, 2 * n)
        t_small, t_big = OctahedralTilts(ref, (n,) * 3), OctahedralTilts(ref, (2 * n,) * 3)
        err_s = np.array([1000 * (small.energy_of(*t_small.arrays(s)) / len(s) - e) for s, e in zip(blocks, e_blocks)])
        err_b = np.array([1000 * (big.energy_of(*t_big.arrays(s)) / len(s) - e) for s, e in zip(mosaics, e_oracle)])
        print(f"{name:34s} {err_s.mean():12.2f} {np.sqrt((err_s ** 2).mean()):6.2f} "
              f"{err_b.mean():14.2f} {np.sqrt((err_b ** 2).mean()):6.2f} {np.abs(err_b).max():8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
