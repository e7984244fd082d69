"""``pes model ...``: list, export, import and sample trained PES models (Metropolis MC and Langevin MD).

The model is a ``PotentialModel`` stored by the ``pes_fit`` workflow
(``--model NAME``, from the project of ``--launchpad/-l``, ``$PES_LAUNCHPAD``
or ``./my_launchpad.yaml``; its training domain is computed from its training
configurations) or a model file (``--model-file F``; the domain from its
metadata, written by ``pes model export`` or by ``--model NAME --model-file
F``).  Only argument parsing and printing live here: the sampling, summaries
and plots are :mod:`pes_core.ann.montecarlo` and :mod:`pes_core.ann.md`, the
database access :mod:`workflows.pes.models`.  Bad input (no model, unknown
path, a reference cell outside the training domain) ends with a one-line
``Error: ...`` and exit code 1.
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from workflows.cli.common import launchpad_option

__all__ = ["model"]


def _temperatures(value: str) -> list[float]:
    """``"300,450"`` or ``"300 450"`` -> ``[300.0, 450.0]`` (K, positive)."""
    try:
        temps = [float(t) for t in value.replace(",", " ").split()]
    except ValueError:
        raise click.ClickException(f"--temperatures must be numbers in K separated by commas, got {value!r}")
    if not temps or any(not t > 0 for t in temps):
        raise click.ClickException("temperatures must be positive")
    return temps


def _source_options(fn):
    """``-l/--launchpad``, ``--model NAME`` and ``--model-file F``."""
    fn = click.option("--model-file", "model_file", type=click.Path(dir_okay=False), default=None,
                      help="Model file to read (its metadata carries the training domain); with --model: "
                           "write the stored model and its domain to this file first.")(fn)
    fn = click.option("-m", "--model", "name", default=None,
                      help="Name of a PotentialModel stored in the project (see `pes model list`).")(fn)
    return launchpad_option(fn)


def _user_errors(fn):
    """Bad input (``ValueError`` and friends from the loaders and engines) -> ``Error: ...``, exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, LookupError, FileNotFoundError) as exc:
            raise click.ClickException(_one_line(exc)) from exc

    return wrapper


def _one_line(exc: BaseException) -> str:
    """A loader's error as one printable line; an unreadable model file says what was expected.

    Library messages about unreadable files (torch's unpickler: many lines, bytes
    of the file) are replaced by the exception type and what the file should be.
    """
    text = str(exc).strip()
    cause = exc.__cause__
    if text.startswith("cannot read model file ") and cause is not None:
        head = text.split(": ", 1)[0].rstrip(":")
        return (f"{head}: not a model file written by `pes model export NAME FILE` or `--model NAME "
                f"--model-file FILE` ({type(cause).__name__})")
    first = text.splitlines()[0] if text else type(exc).__name__
    first = "".join(c if c.isprintable() else "?" for c in first)
    return first[:400] + ("..." if len(first) > 400 else "")


def _load(launchpad: str | None, name: str | None, model_file: str | None) -> tuple:
    """Model and domain from the database (exported to ``model_file`` when given) or from ``model_file``."""
    from workflows.pes.models import export_model, load_model

    if launchpad and not name:
        raise click.ClickException("--launchpad/-l needs --model NAME (see `pes model list`)")
    model, domain, source = load_model(launchpad, name, None if name else model_file)
    click.echo(f"{source}: {model.kind} model, {model.featurizer.n_atoms} atoms ({_formula(model)})")
    if name and model_file:
        click.echo(f"model written to {export_model(model, domain, model_file)}")
    return model, domain


def _formula(model) -> str:
    return model.featurizer.reference_structure().composition.reduced_formula


def _check_plot(plot: str | None) -> None:
    if plot and not Path(plot).resolve().parent.is_dir():
        raise click.ClickException(f"folder of --plot {plot} does not exist")


@click.group()
def model() -> None:
    """Trained PES models (cluster, site, linear): list, export, import, Monte Carlo and molecular dynamics."""


# --------------------------------------------------------------------------- list / export
@model.command("list")
@launchpad_option
@_user_errors
def list_(launchpad: str | None) -> None:
    """The stored PES models of the project with their fit metrics (meV/atom)."""
    from workflows.pes.models import list_models

    rows = list_models(launchpad)
    if not rows:
        click.echo("no PES models stored (run a pes_fit workflow first)")
        return

    def fmt(x) -> str:
        return f"{x:.2f}" if isinstance(x, (int, float)) else "-"

    w = max(len(r["name"]) for r in rows)
    click.echo(f"{'name':<{w}}  {'model':<7} {'ver':>3} {'n_train':>7} {'train':>7} {'cv_val':>7} {'holdout':>7}"
               "  training set")
    for r in rows:
        m = r["metrics"]
        click.echo(f"{r['name']:<{w}}  {r['model']:<7} {r['version']:>3} {r['n_training']:>7} "
                   f"{fmt(m.get('train_rmse')):>7} {fmt(m.get('cv_val_rmse')):>7} {fmt(m.get('holdout_rmse')):>7}"
                   f"  {r['training_set'] or '-'}")
    click.echo("RMSE of the energy per atom in meV/atom (train, cross-validation, holdout)")


@model.command()
@click.argument("name")
@click.argument("model_file", type=click.Path(dir_okay=False))
@launchpad_option
@_user_errors
def export(name: str, model_file: str, launchpad: str | None) -> None:
    """Write the stored model NAME and its training domain to MODEL_FILE (for --model-file)."""
    from workflows.pes.models import export_model, load_model

    m, domain, source = load_model(launchpad, name)
    path = export_model(m, domain, model_file)
    dom = (f"training domain of {domain.n_configurations} configurations" if domain is not None
           else "no training domain (training configurations not stored)")
    click.echo(f"{source} written to {path} with {dom}")


@model.command("import")
@click.argument("model_file", type=click.Path(dir_okay=False))
@click.argument("name")
@launchpad_option
@_user_errors
def import_(model_file: str, name: str, launchpad: str | None) -> None:
    """Store MODEL_FILE (written by `pes model export`, with its training domain) as model NAME of this project.

    Specs that take a stored model (pes_thermo model: NAME) can then use it;
    the refinement loop needs a model fitted in the project (it refits on the
    training configurations, which a file does not carry).
    """
    from workflows.pes.models import import_model

    rec = import_model(model_file, name, launchpad)
    click.echo(f"model file {model_file} stored as {rec['name']!r} ({rec['model']}, training domain of "
               f"{rec['n_domain']} configurations)")


@model.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("-m", "--model", "name", required=True, help="Stored model whose reference cell the blocks are of.")
@click.option("--training-set", required=True, help="Training-set workflow whose configurations are the blocks.")
@click.option("--blocks", default="", show_default=True,
              help="Only configurations whose generator kind starts with this (e.g. thermal: the oracle MD "
                   "snapshots); default all.")
@click.option("--count", default=300, show_default=True, type=click.IntRange(1, 100000), help="Mosaics to write.")
@click.option("--repeats", default=2, show_default=True, type=click.IntRange(2, 4),
              help="Blocks along each lattice vector (2: 8 blocks, 320 atoms for a 40-atom cell).")
@click.option("--seed", default=0, show_default=True, help="Seed of the choice of blocks.")
@launchpad_option
@_user_errors
def mosaics(out, name, training_set, blocks, count, repeats, seed, launchpad) -> None:
    """Write supercells assembled from different training cells to OUT (extxyz) for the oracle.

    Each mosaic places repeats^3 different configurations of the training set
    side by side (each keeps its own displacements), so that couplings between
    neighbouring environments that the small periodic cell cannot hold get
    data.  Label them with an oracle_batch (structures: [{file: OUT}]) and add
    them to a pes_fit with extra_training: [<batch name>] (docs/thermo.md).
    """
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    from workflows.pes.models import mosaics as make

    if not Path(out).resolve().parent.is_dir():
        raise click.ClickException(f"folder of {out} does not exist")
    structures, n_cells = make(launchpad, name, training_set, count, blocks=blocks, repeats=repeats, seed=seed)
    write(out, [AseAtomsAdaptor.get_atoms(s) for s in structures], format="extxyz")
    click.echo(f"{len(structures)} mosaics of {repeats}x{repeats}x{repeats} blocks ({len(structures[0])} atoms) from "
               f"{n_cells} cells of {training_set} written to {out}; label them with an oracle_batch "
               f"(structures: [{{file: {Path(out).name}}}]) and fit with extra_training")


# --------------------------------------------------------------------------- Monte Carlo
@model.command()
@_source_options
@click.option("--temperatures", default="300,450", show_default=True, help="Temperatures in K, comma-separated.")
@click.option("--sweeps", default=1000, show_default=True, help="Production sweeps (one trial move per atom each).")
@click.option("--equilibration", default=300, show_default=True, help="Equilibration sweeps (step widths adapted).")
@click.option("--block", default=100, show_default=True, help="Sweeps a block (progress lines, block averages).")
@click.option("--seed", default=0, show_default=True, help="A chain is seeded by (seed, T).")
@click.option("--margin", default=0.25, show_default=True,
              help="Accepted excess beyond the training ranges, in range widths (the wall).")
@click.option("--step", default=0.05, show_default=True, help="Initial Gaussian step width, Å.")
@click.option("--target-acceptance", default=0.4, show_default=True,
              help="Acceptance the step widths are adapted to during equilibration.")
@click.option("--full-energy", is_flag=True, help="Evaluate the full energy at every trial (no local updates).")
@click.option("--plot", default="mc.png", show_default=True, help="PNG of traces and histograms ('' for none).")
@_user_errors
def mc(launchpad, name, model_file, temperatures, sweeps, equilibration, block, seed, margin, step,
       target_acceptance, full_energy, plot) -> None:
    """Metropolis Monte Carlo (NVT) at the model's reference cell, inside its training domain.

    A trial displaces one random atom by a Gaussian step (widths per species
    adapted to --target-acceptance during equilibration, then frozen); cluster
    and linear models recompute only the clusters of the moved atom.  Trials
    leaving the training domain by more than --margin range widths are
    rejected (an infinite-energy wall).  Prints every block, then per
    temperature <E> (block-averaging error), the configurational heat capacity
    (jackknife error) beside the harmonic values, the wall's share of the
    rejections and the B-X-B angle deviation of perovskites.
    """
    from pes_core.ann import torch_threads
    from pes_core.ann.montecarlo import comparison_line, plot_mc, run_mc, summary_lines

    temps = _temperatures(temperatures)
    if sweeps < block or block < 1 or equilibration < 0:
        raise click.ClickException("--sweeps must be at least --block (>= 1) and --equilibration non-negative")
    if not 0.05 <= target_acceptance <= 0.95 or step <= 0 or margin < 0:
        raise click.ClickException("--target-acceptance must be in [0.05, 0.95], --step positive, --margin >= 0")
    _check_plot(plot)
    m, domain = _load(launchpad, name, model_file)
    if domain is None:
        raise click.ClickException(
            "no training domain known for this model (a model file written without it?): the wall needs one; "
            "use --model NAME with the project, or write the file with `pes model export NAME FILE`")
    click.echo(f"training domain: {domain.n_configurations} configurations, E/atom in [{domain.energy_lo:.4f}, "
               f"{domain.energy_hi:.4f}] eV, margin {margin} range widths (beyond it: infinite-energy wall)")
    results = []
    with torch_threads(1):
        for t in temps:
            results.append(run_mc(m, t, sweeps=sweeps, equilibration=equilibration, block=block, seed=seed,
                                  domain=domain, margin=margin, step=step, target_acceptance=target_acceptance,
                                  local=False if full_energy else None))
    for r in results:
        click.echo("\n".join(summary_lines(r)))
    line = comparison_line(results)
    if line:
        click.echo(line)
    if plot:
        click.echo(f"plot written to {plot_mc(results, plot)}")


# --------------------------------------------------------------------------- molecular dynamics
@model.command()
@_source_options
@click.option("--temperatures", default="300,450", show_default=True, help="Temperatures in K, comma-separated.")
@click.option("--steps", default=300, show_default=True, help="MD steps at each temperature.")
@click.option("--dt", default=2.0, show_default=True, help="Time step, fs (at most 4).")
@click.option("--friction", default=0.01, show_default=True, help="Langevin friction, 1/fs.")
@click.option("--seed", default=0, show_default=True, help="Seed of the velocities and the thermostat noise.")
@click.option("--margin", default=0.25, show_default=True,
              help="Accepted excess beyond the training ranges, in range widths.")
@click.option("--report", default=25, show_default=True, help="Print T and E_pot every N steps (0: never).")
@click.option("--no-domain", is_flag=True, help="Do not check the training domain.")
@click.option("--plot", default="", help="PNG of the T and E_pot traces (default: none).")
@_user_errors
def md(launchpad, name, model_file, temperatures, steps, dt, friction, seed, margin, report, no_domain,
       plot) -> None:
    """NVT Langevin MD from the model's reference cell; stops where the model leaves its training domain.

    Prints T and E_pot - E_ref every --report steps and their means over the
    second half of each run.  Without a training domain (or with --no-domain)
    only runaway temperatures or energies far below the reference cell stop a
    run.  Exit code 1 when any run was stopped, after printing the steps done
    and the reason; 0 when all runs completed.
    """
    from pes_core.ann import torch_threads
    from pes_core.ann.md import plot_md, run_md, summary_line

    temps = _temperatures(temperatures)
    if dt <= 0 or dt > 4:
        raise click.ClickException("--dt must be in (0, 4] fs")
    if steps < 1 or friction <= 0 or margin < 0 or report < 0:
        raise click.ClickException("--steps must be positive, --friction positive, --margin and --report >= 0")
    _check_plot(plot)
    m, domain = _load(launchpad, name, model_file)
    if no_domain:
        domain = None
    if domain is None:
        click.echo("no training domain known for this model: only runaway temperatures/energies stop the run")
    else:
        click.echo(f"training domain: {domain.n_configurations} configurations, E/atom in "
                   f"[{domain.energy_lo:.4f}, {domain.energy_hi:.4f}] eV, margin {margin} range widths")
    results = []
    with torch_threads(1):
        for t in temps:
            r = run_md(m, t, steps, seed=seed, dt_fs=dt, domain=domain, margin=margin, report=report,
                       friction_per_fs=friction)
            results.append(r)
            click.echo(summary_line(r))
            if r["stopped"]:
                click.echo(f"  {r['stopped']}")
    if plot:
        click.echo(f"plot written to {plot_md(results, plot)}")
    if any(r["stopped"] for r in results):
        raise click.exceptions.Exit(1)
