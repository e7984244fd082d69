"""``pes mtp calc-grade / select-add / preselect``: MLIP-style active-learning commands.

They join the ``pes mtp`` group of :mod:`workflows.cli.mtp`; the work is done
by :mod:`pes_core.active`.  The active set is computed from TRAIN.cfg with the
given potential (``--mode``: per configuration or per atomic neighbourhood).
"""

from __future__ import annotations

import click

from workflows.cli.common import launchpad_option
from workflows.cli.mtp import _load_potential, _species, mtp, species_option

__all__ = ["COMMANDS"]

COMMANDS: list = []  # the commands are added to the existing `pes mtp` group below

mode_option = click.option("--mode", type=click.Choice(["configuration", "neighbourhood"]), default="configuration",
                           show_default=True, help="Active-set rows per configuration or per atomic neighbourhood.")
radial_option = click.option("--include-radial", is_flag=True,
                             help="Rows over all parameters (default: the linear ones).")


def _active_set(pot, train_cfg, sp, mode, include_radial):
    from pes_core.active import ActiveSet
    from pes_core.mtp import load_records

    train = load_records(train_cfg, species=sp or pot.species)
    if not train:
        raise click.ClickException(f"{train_cfg} holds no configurations")
    return ActiveSet.from_training(pot, [r.atoms for r in train], mode=mode, include_radial=include_radial)


@mtp.command("calc-grade")
@click.argument("potential", type=click.Path(exists=True, dir_okay=False))
@click.argument("train_cfg", type=click.Path(exists=True, dir_okay=False))
@click.argument("in_cfg", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_cfg", type=click.Path(dir_okay=False))
@mode_option
@radial_option
@species_option
def calc_grade(potential, train_cfg, in_cfg, out_cfg, mode, include_radial, species) -> None:
    """Write IN_CFG to OUT_CFG with each configuration's extrapolation grade (feature MV_grade)."""
    from pes_core.mtp import load_records, save_records

    sp = _species(species)
    pot = _load_potential(potential, sp)
    aset = _active_set(pot, train_cfg, sp, mode, include_radial)
    records = load_records(in_cfg, species=sp or pot.species)
    grades = []
    for rec in records:
        g = aset.grade(pot, rec.atoms)
        rec.features["MV_grade"] = f"{g:.6g}"
        grades.append(g)
    save_records(out_cfg, records, species=sp or pot.species)
    top = max(grades) if grades else 0.0
    click.echo(f"{len(records)} configurations graded (max grade {top:.4g}); written to {out_cfg}")


@mtp.command("select-add")
@click.argument("potential", type=click.Path(exists=True, dir_okay=False))
@click.argument("train_cfg", type=click.Path(exists=True, dir_okay=False))
@click.argument("candidates_cfg", type=click.Path(exists=True, dir_okay=False))
@click.argument("new_cfg", type=click.Path(dir_okay=False))
@mode_option
@radial_option
@click.option("--swap-tolerance", default=1.001, show_default=True, help="Maxvol swap threshold on |c|.")
@click.option("--max-selected", default=None, type=int, help="Keep at most this many (highest grades first).")
@species_option
def select_add(potential, train_cfg, candidates_cfg, new_cfg, mode, include_radial, swap_tolerance,
               max_selected, species) -> None:
    """Write to NEW_CFG the configurations of CANDIDATES_CFG that maxvol adds to the active set of TRAIN_CFG."""
    from pes_core.mtp import load_records, save_records

    sp = _species(species)
    pot = _load_potential(potential, sp)
    aset = _active_set(pot, train_cfg, sp, mode, include_radial)
    cands = load_records(candidates_cfg, species=sp or pot.species)
    res = aset.select(pot, [r.atoms for r in cands], tolerance=swap_tolerance, max_configurations=max_selected)
    chosen = []
    for k in res.selected:
        rec = cands[k]
        rec.features["MV_grade"] = f"{res.grades[k]:.6g}"
        chosen.append(rec)
    save_records(new_cfg, chosen, species=sp or pot.species)
    click.echo(f"{len(chosen)} of {len(cands)} candidates selected; written to {new_cfg}")


def _counts(value: str) -> tuple[int, int]:
    parts = value.replace(",", "-").split("-")
    try:
        lo, hi = int(parts[0]), int(parts[-1])
    except ValueError:
        raise click.BadParameter(f"atom counts must look like 8 or 2-8, got {value!r}") from None
    if lo < 1 or hi < lo:
        raise click.BadParameter(f"atom counts must be a range lo-hi with 1 <= lo <= hi, got {value!r}")
    return lo, hi


@mtp.command("preselect")
@click.option("--composition", required=True, help="Formula unit, e.g. Si or SiC or Mg1O1.")
@click.option("--atoms", "atoms", default="2-8", show_default=True, help="Atom counts per cell (range).")
@click.option("--pool-size", default=50, show_default=True, help="Random structures in the pool (x volume factors).")
@click.option("--min-distance", default=None, type=float, help="Minimal interatomic distance in Å for all pairs "
              "(default: 0.75 x sum of covalent radii).")
@click.option("--level", default=10, show_default=True, help="Level of the untrained MTP that grades the pool.")
@click.option("--potential", "potential", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Grade with this .mtp instead of a new one (needs --species for MLIP files).")
@click.option("--max-dist", default=5.0, show_default=True, help="Cutoff of the new MTP in Å.")
@mode_option
@radial_option
@click.option("--max-selected", default=None, type=int, help="Cap on the selected structures.")
@click.option("--seed", default=0, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Selected structures (.cfg or .extxyz/.xyz).")
@click.option("--submit", "submit_oracle", default=None, help="Also queue oracle fireworks with this oracle.")
@launchpad_option
@species_option
def preselect_cmd(composition, atoms, pool_size, min_distance, level, potential, max_dist, mode, include_radial,
                  max_selected, seed, output, submit_oracle, launchpad, species) -> None:
    """Pre-exploration: choose an initial training set from random structures by the grade alone."""
    from pymatgen.core import Composition

    from pes_core.active import preselect, random_pool
    from pes_core.mtp import MTPPotential, TrainingRecord, save_records
    from pes_core.search import SearchSettings

    comp = {el.symbol: int(n) for el, n in Composition(composition).items()}
    kw = {}
    if min_distance is not None:
        els = sorted(comp)
        kw["min_distances"] = {f"{a}-{b}": float(min_distance) for i, a in enumerate(els) for b in els[i:]}
    settings = SearchSettings(composition=comp, n_atoms=_counts(atoms), seed=seed, **kw)
    els = settings.elements()
    if potential:
        pot = _load_potential(potential, _species(species) or els)
    else:
        pot = MTPPotential.from_level(level, els, max_dist=max_dist, seed=seed)
    pool = random_pool(settings, pool_size, seed=seed)
    res = preselect(pot, pool, mode=mode, include_radial=include_radial, max_configurations=max_selected)
    chosen = [pool[k] for k in res.indices]
    recs = [TrainingRecord(a, features={"MV_grade": f"{res.grades[k]:.6g}"}) for a, k in zip(chosen, res.indices)]
    save_records(output, recs, species=pot.species)
    click.echo(f"{len(chosen)} of {len(pool)} pool structures selected; written to {output}")
    if submit_oracle:
        from pes_core.oracles import to_structure
        from workflows.core.backend import open_backend
        from workflows.oracle.builders import oracle_workflow

        wf = oracle_workflow([to_structure(a) for a in chosen], submit_oracle, tags=["preselect"],
                             generator="preselect", name=f"preselect {composition} x{len(chosen)}")
        with open_backend(launchpad) as backend:
            ids = backend.lp.add_wf(wf)
            backend.flush()
        click.echo(f"submitted {len(ids)} oracle firework(s) ({submit_oracle})")
