"""``pes mtp ...``: MLIP-style commands for moment tensor potentials (mirrors MLIP's ``mlp``).

Only argument parsing lives here; the work is done by :mod:`pes_core.mtp`.

MLIP files number species ``0, 1, ...`` without naming them.  Without
``--species`` the commands keep that convention (type ``t`` is handled as the
placeholder atomic number ``t + 1`` consistently in .mtp and .cfg); with
``--species Si,C`` type 0 is Si and type 1 is C (needed to convert to or from
extxyz/JSON with real elements).
"""

from __future__ import annotations

import click

__all__ = ["mtp"]


def _species(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [s.strip() for s in value.split(",") if s.strip()]


def _load_records(path: str, species: list | None, fmt: str | None = None) -> list:
    """Training records of ``path`` (any format), every number checked finite (errors name file and configuration)."""
    from pathlib import Path

    from pes_core.mtp import load_records
    from pes_core.mtp.io_cfg import CfgFileError, check_records

    expected = "an MLIP .cfg, an extxyz file or a JSON list of records"
    if b"\x00" in Path(path).read_bytes()[:65536]:
        raise click.ClickException(f"{path} is not a text file (binary data); expected {expected}")
    try:
        records = load_records(path, fmt=fmt, species=species)
    except (CfgFileError, FileNotFoundError):
        raise
    except Exception as err:  # ASE's and pymatgen's readers raise many types for bad files
        text = " ".join("".join(c if c.isprintable() else "?" for c in str(err)).split())[:200]
        raise click.ClickException(f"cannot read training data {path} ({type(err).__name__}: {text}); "
                                   f"expected {expected}") from err
    check_records(records, path)
    if not records:
        raise click.ClickException(f"{path} holds no configurations; expected at least one "
                                   "(BEGIN_CFG ... END_CFG block or extxyz frame)")
    return records


def _load_potential(path: str, species: list[str] | None):
    from pes_core.mtp import read_mtp
    from pes_core.mtp.io_cfg import placeholder_species

    pot = read_mtp(path, species=species)
    if species is None and any(z <= 0 for z in pot.species):
        pot.species = placeholder_species(pot.n_species)
    return pot


species_option = click.option(
    "--species", default=None,
    help="Comma-separated elements of MLIP types 0, 1, ... (e.g. Si,C). Default: keep MLIP's unnamed types.",
)


@click.group()
def mtp() -> None:
    """Moment tensor potentials: train, evaluate, measure errors, convert data (MLIP-compatible files)."""


@mtp.command()
@click.argument("potential", type=click.Path(exists=True, dir_okay=False))
@click.argument("train_cfg", type=click.Path(exists=True, dir_okay=False))
@click.option("--save-to", "save_to", required=True, type=click.Path(dir_okay=False), help="Output .mtp file.")
@click.option("--max-iter", default=200, show_default=True, help="L-BFGS iterations of the nonlinear stage (0: linear only).")
@click.option("--energy-weight", default=1.0, show_default=True,
              help="w_E; with --weighting vibrations w_E/N on the squared total energy error (eV^2).")
@click.option("--force-weight", default=0.01, show_default=True, help="w_F on squared force components (eV/A)^2.")
@click.option("--stress-weight", default=0.001, show_default=True,
              help="w_S; with --weighting vibrations w_S/N on the squared virial error (eV^2).")
@click.option("--weighting", type=click.Choice(["vibrations", "molecules", "structures", "per_atom"]),
              default="vibrations", show_default=True,
              help="Weighting of configurations of different sizes, as MLIP's mlp train --weighting "
                   "(per_atom: w_E on the per-atom energy, this project's former default).")
@click.option("--validation-fraction", default=0.0, show_default=True, help="Share of configurations held out for validation.")
@click.option("--valid-cfg", default=None, type=click.Path(exists=True, dir_okay=False), help="Validation configurations.")
@click.option("--reset-min-dist", is_flag=True,
              help="Set R_min from the shortest distance in the training data instead of keeping the template's.")
@click.option("--keep-min-dist", is_flag=True, hidden=True, help="Keep the template's R_min (the default now).")
@click.option("--optimizer", type=click.Choice(["lbfgs", "scipy"]), default="lbfgs", show_default=True,
              help="lbfgs: resumable L-BFGS (checkpoints); scipy: scipy's L-BFGS-B.")
@click.option("--tol", default=0.0, show_default=True,
              help="Stop when the loss changes by less than this (relative) over --tol-iterations iterations (0: off).")
@click.option("--tol-iterations", default=10, show_default=True, help="Iterations of the --tol window.")
@click.option("--gtol", default=0.0, show_default=True,
              help="Stop when the gradient norm of loss / initial loss is below this (0: off).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 1024),
              help="Threads of the nonlinear stage (over configurations; the fit does not depend on it).")
@click.option("--engine", type=click.Choice(["numba", "torch"]), default="numba", show_default=True,
              help="Loss gradient: numba (compiled kernels, streamed configurations) or torch (a graph per group).")
@click.option("--batch-atoms", default=4096, show_default=True,
              help="--engine torch: atoms per group of configurations evaluated at once (bounds memory; 0: all at once).")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False),
              help="Write the current potential here every --checkpoint-every iterations and on Ctrl-C.")
@click.option("--checkpoint-every", default=10, show_default=True, help="Iterations between checkpoints.")
@click.option("--resume", is_flag=True, help="Continue the fit saved in --checkpoint (same result as uninterrupted).")
@click.option("--log-every", default=10, show_default=True, help="Iterations between progress lines.")
@click.option("--seed", default=0, show_default=True, help="Seed of initialization and split.")
@species_option
def train(potential, train_cfg, save_to, max_iter, energy_weight, force_weight, stress_weight, weighting,
          validation_fraction, valid_cfg, reset_min_dist, keep_min_dist, optimizer, tol, tol_iterations, gtol,
          threads, engine, batch_atoms, checkpoint, checkpoint_every, resume, log_every, seed, species) -> None:
    """Fit POTENTIAL (.mtp template or trained potential) to TRAIN_CFG and write --save-to.

    R_min stays the template's (MLIP's behaviour; set it with ``pes mtp template --min-dist``)
    unless --reset-min-dist.
    """
    from pes_core.mtp import FitSettings, fit_mtp, write_mtp

    if reset_min_dist and keep_min_dist:
        raise click.UsageError("--reset-min-dist and --keep-min-dist contradict each other; give one")
    if resume and not checkpoint:
        raise click.UsageError("--resume needs --checkpoint FILE (the file the interrupted fit wrote)")
    if checkpoint and optimizer != "lbfgs":
        raise click.UsageError("--checkpoint needs --optimizer lbfgs (scipy's optimizer state cannot be saved)")
    sp = _species(species)
    pot = _load_potential(potential, sp)
    records = _load_records(train_cfg, sp or pot.species)
    valid = _load_records(valid_cfg, sp or pot.species) if valid_cfg else None
    settings = FitSettings(
        energy_weight=energy_weight, force_weight=force_weight, stress_weight=stress_weight, weighting=weighting,
        max_iter=max_iter, validation_fraction=validation_fraction, auto_min_dist=reset_min_dist,
        seed=seed, log=click.echo, log_every=log_every, torch_threads=threads, threads=threads, engine=engine, optimizer=optimizer, tol=tol,
        tol_iterations=tol_iterations, gtol=gtol, batch_atoms=batch_atoms or None, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every, resume=resume,
    )
    if not reset_min_dist:
        click.echo(f"R_min kept from {potential}: {pot.min_dist:.3f} A (--reset-min-dist sets it from the data)")
    fitted, _ = fit_mtp(pot, records, settings, validation=valid)
    write_mtp(save_to, fitted)
    click.echo(f"trained potential written to {save_to}")


@mtp.command("calc-efs")
@click.argument("potential", type=click.Path(exists=True, dir_okay=False))
@click.argument("in_cfg", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_cfg", type=click.Path(dir_okay=False))
@species_option
def calc_efs(potential, in_cfg, out_cfg, species) -> None:
    """Compute energies, forces and stresses of IN_CFG with POTENTIAL; write OUT_CFG."""
    from pes_core.mtp import evaluate, save_records

    sp = _species(species)
    pot = _load_potential(potential, sp)
    records = _load_records(in_cfg, sp or pot.species)
    for rec in records:
        res = evaluate(pot, rec.atoms)
        rec.energy, rec.forces, rec.stress = res.energy, res.forces, res.stress
        rec.features["EFS_by"] = "MTP"
    save_records(out_cfg, records, species=sp or pot.species)
    click.echo(f"{len(records)} configurations written to {out_cfg}")


@mtp.command("calc-errors")
@click.argument("potential", type=click.Path(exists=True, dir_okay=False))
@click.argument("in_cfg", type=click.Path(exists=True, dir_okay=False))
@species_option
def calc_errors(potential, in_cfg, species) -> None:
    """Print RMSE and MAE of energy per atom, force components and stress of POTENTIAL on IN_CFG."""
    from pes_core.mtp import error_metrics

    sp = _species(species)
    pot = _load_potential(potential, sp)
    records = _load_records(in_cfg, sp or pot.species)
    m = error_metrics(pot, records)
    click.echo(f"configurations: {m.n_configs}")
    click.echo(f"energy per atom  RMSE {1e3 * m.energy_rmse:.4f} meV/atom   MAE {1e3 * m.energy_mae:.4f} meV/atom")
    click.echo(f"force component  RMSE {m.force_rmse:.5f} eV/A       MAE {m.force_mae:.5f} eV/A")
    click.echo(f"stress component RMSE {m.stress_rmse:.5f} GPa        MAE {m.stress_mae:.5f} GPa")


@mtp.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--from", "src_fmt", type=click.Choice(["cfg", "extxyz", "json"]), default=None, help="Input format (default: suffix).")
@click.option("--to", "dst_fmt", type=click.Choice(["cfg", "extxyz", "json"]), default=None, help="Output format (default: suffix).")
@species_option
def convert(source, target, src_fmt, dst_fmt, species) -> None:
    """Convert configurations between MLIP .cfg, extxyz and pymatgen JSON (energies, forces, stresses kept)."""
    from ase.data import chemical_symbols

    from pes_core.mtp import save_records
    from pes_core.mtp.datasets import file_format, infer_species

    sp = _species(species)
    records = _load_records(source, sp, fmt=src_fmt)
    if sp is None and file_format(target, dst_fmt) == "cfg" and file_format(source, src_fmt) != "cfg":
        sp = [chemical_symbols[z] for z in infer_species(records)]
        click.echo("MLIP types: " + ", ".join(f"{t}={el}" for t, el in enumerate(sp)) + " (pass --species to choose)")
    save_records(target, records, fmt=dst_fmt, species=sp)
    click.echo(f"{len(records)} configurations written to {target}")


@mtp.command()
@click.argument("level", type=int)
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--species-count", default=1, show_default=True, help="Number of species.")
@click.option("--min-dist", default=2.0, show_default=True, help="R_min in Angstrom.")
@click.option("--max-dist", default=5.0, show_default=True, help="Cutoff R_cut in Angstrom.")
@click.option("--radial-basis-size", default=8, show_default=True, help="Number of Chebyshev functions.")
def template(level, output, species_count, min_dist, max_dist, radial_basis_size) -> None:
    """Write an untrained MLIP template of LEVEL (2..28) to OUTPUT (like MLIP's untrained_mtps/NN.mtp)."""
    from pes_core.mtp import MTPPotential, write_mtp

    pot = MTPPotential.from_level(level, list(range(1, species_count + 1)), min_dist, max_dist,
                                  radial_basis_size, seed=None)
    write_mtp(output, pot)
    click.echo(f"level {level}: {pot.basis.alpha_scalar_moments} basis functions, {pot.n_parameters} parameters -> {output}")
