"""Metropolis Monte Carlo (NVT) of 2x2x2 CsPbBr3 (40 atoms) on a trained PES model, at 300 K and 450 K.

The model comes from the project database (a ``PotentialModel`` stored by the
``pes_fit`` workflow, with its training domain computed from its training
configurations) or from a model file whose metadata carries the domain
(written by ``examples/md_cspbbr3.py --launchpad ... --model-file F``)::

    python examples/mc_cspbbr3.py --launchpad proj/my_launchpad.yaml --model cspbbr3-quick-fit-cluster
    python examples/mc_cspbbr3.py --model-file cspbbr3_cluster.pt --sweeps 2000 --seed 1

Canonical ensemble at the fixed cubic reference cell of the model (no volume
moves).  A trial move displaces one atom (chosen at random) by a Gaussian
step; the step width of each species is adapted during equilibration towards
``--target-acceptance`` (default 0.4) and then frozen, so that the production
chain satisfies detailed balance.  Only energies are evaluated (no forces).
For models whose energy is a sum over clusters (``cluster`` and ``linear``
kinds) a trial recomputes only the clusters that contain the moved atom (a
local update, checked against a full evaluation at start and after every
block); other models (``site``) are evaluated in full at every trial.

Wall.  The sampled energy is the model energy inside the model's domain of
validity and **+infinity outside it**: a trial configuration whose pair
deformations, cluster features or energy per atom lie more than ``--margin``
range widths outside the ranges spanned by the training configurations
(:class:`pes_core.ann.calculator.TrainingDomain`, the same test as the MD
guard) is rejected.  The models are quartic polynomials of the CCD features
and unbounded below away from their data (MD on them runs away after
~100-250 fs), so without the wall the chain would fall into an unphysical
hole; with it the chain samples the Boltzmann distribution of the model
*truncated to the training domain*.  (The ``refine`` rounds of the training-set
spec run this sampler on the model being trained and send the chain ends to
the oracle, so the holes the chains find are learned; see README.md.)  The
fraction of trial moves rejected by
the wall is printed for every block and in the summary: when it is not small
compared with the Boltzmann rejections, the wall -- i.e. the extent of the
training data, not the model energy -- shapes the distribution, and the
averages describe the training set rather than the crystal at that
temperature.

Printed per block: sweep (one sweep = 40 trial moves), T, acceptance (per
species), wall rejections (fraction of trials), <E> (meV/atom relative to the
cubic cell) and the mean Pb-Br-Pb angle deviation from 180 degrees.  Summary
per temperature: <E> with its standard error from block averages (blocks of
``--block`` sweeps), the configurational heat capacity from the energy
fluctuations, ``c = var(E) / (k_B T^2 N)`` (k_B per atom; jackknife error over
blocks), compared with the harmonic values ``<E> = (3N - 3) k_B T / 2N`` and
``c = (3N - 3) / 2N`` (the 3 translations are free), the mean Pb-Br-Pb angle
deviation (octahedral tilting and thermal bending; larger at 450 K than at
300 K) and the cost of a trial.  A PNG (``--plot``) shows the energy traces
and the production histograms of both temperatures.  The chain of each
temperature is seeded by (``--seed``, T) alone: identical runs give identical
numbers.  Exit code 1 on bad input (no model, unknown path, a reference cell
outside the training domain).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pes_core.ann.montecarlo import KB, run_mc  # noqa: E402,F401  (the engine; KB re-exported)


class InputError(RuntimeError):
    """Bad command-line input (missing model, unknown path...): exit code 1 with this message."""


# --------------------------------------------------------------------------- loading
def load(launchpad: str | None = None, model_name: str = "cspbbr3-quick-fit-cluster",
         model_file: str | None = None):
    """The model and its training domain (``None`` when the model file carries none)."""
    from pes_core.ann.calculator import model_file_with_domain, stored_model_with_domain

    if launchpad is None:
        if not model_file:
            raise InputError("give --launchpad (and --model) or --model-file")
        if not Path(model_file).is_file():
            raise InputError(f"model file {model_file} does not exist")
        try:
            return model_file_with_domain(model_file)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
            raise InputError(f"cannot read model file {model_file}: {exc}") from exc
    if not Path(launchpad).is_file():
        raise InputError(f"launchpad file {launchpad} does not exist")
    from workflows.core.backend import open_backend

    with open_backend(launchpad, read_only=True):
        try:
            return stored_model_with_domain(model_name)
        except (LookupError, ValueError) as exc:
            raise InputError(str(exc)) from exc


def plot(results: list[dict], path: str | Path) -> Path:
    """Energy traces and production histograms of the runs (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    for r, c in zip(results, ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange"] * 4):
        x = np.arange(1, len(r["trace"]) + 1)
        ax1.plot(x, r["trace"], color=c, lw=0.8, label=f"{r['T']:.0f} K")
        ax1.axhline(r["e_harmonic"], color=c, ls=":", lw=0.8)
        ax2.hist(r["energies"], bins=30, color=c, alpha=0.5, density=True,
                 label=f"{r['T']:.0f} K: {r['e_mean']:.1f} meV/atom, wall {100 * r['wall_fraction']:.1f} %")
    if results:
        ax1.axvline(results[0]["equilibration"], color="k", lw=0.6, ls="--")
        floor = results[0].get("energy_floor", float("-inf"))
        if np.isfinite(floor):
            ax1.axhline(floor, color="0.4", lw=1.2, label="wall: energy floor")
            ax2.axvline(floor, color="0.4", lw=1.2)
    ax1.set_xlabel("sweep (40 trial moves); dashed: end of equilibration, dotted: harmonic <E>")
    ax1.set_ylabel("E - E_cubic (meV/atom)")
    ax1.legend()
    ax2.set_xlabel("E - E_cubic (meV/atom), production")
    ax2.set_ylabel("density")
    ax2.legend(fontsize=8)
    fig.suptitle("Metropolis NVT on the PES model (training-domain wall)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_lines(r: dict) -> list[str]:
    acc_sp = ", ".join(f"{k} {v:.2f}" for k, v in r["acceptance_species"].items())
    lines = [
        f"MC {r['T']:.0f} K, {r['sweeps']} sweeps after {r['equilibration']} ({r['ms_per_trial']:.2f} ms/trial, "
        f"{'local' if r['local'] else 'full'} energy updates):",
        f"  <E - E_cubic> = {r['e_mean']:.2f} +- {r['e_err']:.2f} meV/atom (blocks of {r['block']} sweeps; "
        f"harmonic {r['e_harmonic']:.2f}), min {r['e_min']:.2f}",
        f"  configurational heat capacity c = {r['cv']:.2f} +- {r['cv_err']:.2f} k_B/atom "
        f"(harmonic {r['cv_harmonic']:.2f})",
        f"  acceptance {r['acceptance']:.2f} ({acc_sp}); wall rejections {100 * r['wall_fraction']:.1f} % of trials "
        f"= {100 * r['wall_share']:.1f} % of rejections ({100 * r['wall_energy_fraction']:.1f} % of trials at the "
        f"energy floor {r['energy_floor']:.1f} meV/atom, the rest beyond the feature ranges)",
        f"  <180 - Pb-Br-Pb> = {r['angle_dev']:.2f} +- {r['angle_err']:.2f} deg",
    ]
    if r["wall_share"] > 0.1:
        lines.append("  WARNING: the training-domain wall, not the Boltzmann factor, rejects a large share of the "
                     "moves: the distribution is shaped by the extent of the training data")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--launchpad", help="project my_launchpad.yaml (model and training domain from the database)")
    ap.add_argument("--model", default="cspbbr3-quick-fit-cluster", help="PotentialModel name")
    ap.add_argument("--model-file", help="model file with the training domain in its metadata")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 450.0])
    ap.add_argument("--sweeps", type=int, default=1000, help="production sweeps (default 1000)")
    ap.add_argument("--equilibration", type=int, default=300, help="equilibration sweeps (default 300)")
    ap.add_argument("--block", type=int, default=100, help="sweeps a block (default 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margin", type=float, default=0.25,
                    help="accepted excess beyond the training ranges, in range widths (default 0.25)")
    ap.add_argument("--step", type=float, default=0.05, help="initial step width, Å (default 0.05)")
    ap.add_argument("--target-acceptance", type=float, default=0.4)
    ap.add_argument("--full-energy", action="store_true", help="evaluate the full energy at every trial")
    ap.add_argument("--plot", default="mc_cspbbr3.png", help="PNG to write ('' for none)")
    args = ap.parse_args(argv)
    try:
        if args.sweeps < args.block or args.block < 1 or args.equilibration < 0:
            raise InputError("--sweeps must be at least --block (>= 1) and --equilibration non-negative")
        if not 0.05 <= args.target_acceptance <= 0.95 or args.step <= 0 or args.margin < 0:
            raise InputError("--target-acceptance must be in [0.05, 0.95], --step positive, --margin >= 0")
        if any(t <= 0 for t in args.temperatures):
            raise InputError("temperatures must be positive")
        if args.plot and not Path(args.plot).resolve().parent.is_dir():
            raise InputError(f"folder of --plot {args.plot} does not exist")
        from pes_core.ann import torch_threads

        model, domain = load(args.launchpad, args.model, args.model_file)
        if domain is None:
            raise InputError("no training domain known for this model (a model file written without --launchpad?): "
                             "the wall needs one; use --launchpad, or write the file with examples/md_cspbbr3.py "
                             "--launchpad ... --model-file F")
        print(f"{model.kind} model, {model.featurizer.n_atoms} atoms; training domain: {domain.n_configurations} "
              f"configurations, E/atom in [{domain.energy_lo:.4f}, {domain.energy_hi:.4f}] eV, margin "
              f"{args.margin} range widths (beyond it: infinite-energy wall)")
        results = []
        with torch_threads(1):
            for t in args.temperatures:
                results.append(run_mc(model, t, sweeps=args.sweeps, equilibration=args.equilibration,
                                      block=args.block, seed=args.seed, domain=domain, margin=args.margin,
                                      step=args.step, target_acceptance=args.target_acceptance,
                                      local=False if args.full_energy else None))
    except (InputError, ValueError) as exc:  # ValueError: the cubic cell outside the domain
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print("\n".join(summary_lines(r)))
    if len(results) > 1:
        lo, hi = min(results, key=lambda r: r["T"]), max(results, key=lambda r: r["T"])
        print(f"{hi['T']:.0f} K vs {lo['T']:.0f} K: <180 - Pb-Br-Pb> {hi['angle_dev']:.2f} vs "
              f"{lo['angle_dev']:.2f} deg, "
              f"<E> {hi['e_mean']:.2f} vs {lo['e_mean']:.2f} meV/atom")
    if args.plot:
        print(f"plot written to {plot(results, args.plot)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
