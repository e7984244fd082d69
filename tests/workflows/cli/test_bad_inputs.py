"""A table of malformed inputs on every public entry point, each with its clear error.

Each row runs the real ``pes`` entry point in-process, inside a project made
by ``pes init`` (``$PES_LAUNCHPAD`` points at it), and checks the exit code (1
for bad input, 2 for bad command-line usage), the message on stderr, that no
traceback reaches the user, and that the project's files (the embedded store
above all) are byte for byte what they were: a refused input changes nothing.
"""

from __future__ import annotations

import textwrap

import pytest

from workflows.cli import main as pes

CFG_OK = textwrap.dedent("""\
    BEGIN_CFG
     Size
     2
     Supercell
     5 0 0
     0 5 0
     0 0 5
     AtomData: id type cartes_x cartes_y cartes_z fx fy fz
     1 0 0 0 0 0 0 0
     2 0 2.2 0 0 0 0 0
     Energy
     -1.0
    END_CFG
    """)

CSP = textwrap.dedent("""\
    kind: csp
    name: t
    oracle: tersoff
    mode: direct
    search: {composition: {Si: 1}, n_atoms: [4, 4]}
    """)

BATCH = textwrap.dedent("""\
    kind: oracle_batch
    oracle: emt
    structures:
      - file: s.file
    """)

POSCAR_OVERLAP = """Cu
1.0
3.6 0 0
0 3.6 0
0 0 3.6
Cu
2
Cartesian
0 0 0
0.1 0 0
"""

XYZ_NAN = """2
Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"
Cu 0 0 0
Cu nan 0 0
"""

BATCH_PROTO = textwrap.dedent("""\
    kind: oracle_batch
    oracle: emt
    structures:
      - prototype: {formula: Cu, structure: fcc, a: 3.6}
        perturb: {count: 2, seed: 1}
    """)

LJ_BATCH = BATCH_PROTO.replace("oracle: emt", "oracle: lj\noracle_settings: {sigma: 2.3, epsilon: 0.05}")

PES = textwrap.dedent("""\
    kind: pes_training_set
    name: p
    oracle: lj
    oracle_settings: {sigma: 2.6, epsilon: 0.05}
    reference: {species: {A: Cs, B: Pb, X: Br}, a: 5.87, supercell: [2, 2, 2]}
    stochastic: {count: 10}
    """)

PES_FIT = textwrap.dedent("""\
    kind: pes_fit
    name: f
    training_set: p
    oracle: lj
    oracle_settings: {sigma: 2.6, epsilon: 0.05}
    """)


def _spec(text: str, old: str | None = None, new: str = "", extra: str = "") -> dict[str, str]:
    """A spec.yaml: ``text`` with ``old`` replaced by ``new`` (``old`` must be there) and ``extra`` appended."""
    if old is not None:
        assert old in text, old
        text = text.replace(old, new)
    return {"spec.yaml": text + extra}


def _rows(base: str, rows: list[tuple]) -> list[tuple]:
    """Spec rows of ``pes submit``: (old, new, extra, message) edits of ``base`` (every 4th as --dry-run)."""
    out = []
    for k, (old, new, extra, message) in enumerate(rows):
        argv = ["submit", "--dry-run", "spec.yaml"] if k % 4 == 3 else ["submit", "spec.yaml"]
        out.append((_spec(base, old, new, extra), argv, 1, message))
    return out


CSP_SEARCH = "{composition: {Si: 1}, n_atoms: [4, 4]}"


def _search(extra: str) -> tuple:
    """Edit of the CSP search section: ``extra`` keys added to it."""
    return CSP_SEARCH, CSP_SEARCH[:-1] + ", " + extra + "}"


CSP_ROWS = _rows(CSP, [
    (None, "", "relax: {fmax: 0}\n", "relax.fmax must be a positive number, got 0 (allowed: > 0 and <= 10)"),
    (None, "", "relax: {steps: -1}\n", "relax.steps must be a positive number, got -1"),
    (None, "", "relax: {fmax: .nan}\n", "relax.fmax must be a positive number, got nan"),
    (None, "", "relax: {fmax: .inf}\n", "relax.fmax must be a positive number, got inf"),
    (None, "", "relax: {steps: 2.5}\n", "relax.steps: Input should be a valid integer, got 2.5"),
    (None, "", "relax: {fmax: fast}\n", "relax.fmax: Input should be a valid number"),
    (None, "", "relax: {steps: 1000000}\n", "relax.steps must be a positive number, got 1000000 (allowed: > 0 and <= 100000)"),
    (None, "", "relax: {fmax: 0.05, steps: 300, fmax: 0.01}\n", "duplicate key 'fmax' at line 6"),
    (None, "", "relax: 5\n", "relax: Input should be a valid dictionary"),
    (*_search("pressure_gpa: .nan"), "", "search.pressure_gpa must be a finite number, got nan (allowed: from -100 to 5000; GPa)"),
    (*_search("pressure_gpa: .inf"), "", "search.pressure_gpa must be a finite number, got inf"),
    (*_search("pressure_gpa: -.inf"), "", "search.pressure_gpa must be a finite number, got -inf"),
    (*_search("pressure_gpa: 1.0e+6"), "", "search.pressure_gpa is out of range, got 1000000.0"),
    (*_search("pressure_gpa: high"), "", "search.pressure_gpa must be a number, got 'high'"),
    (*_search("population_size: 0"), "", "search.population_size is out of range, got 0 (allowed: from 2 to 100000"),
    (*_search("population_size: 1"), "", "search.population_size is out of range, got 1"),
    (*_search("population_size: -5"), "", "search.population_size is out of range, got -5"),
    (*_search("population_size: 2.5"), "", "search.population_size must be an integer, got 2.5"),
    (*_search("population_size: true"), "", "search.population_size must be an integer, got True"),
    (*_search("max_generations: 0"), "", "search.max_generations is out of range, got 0"),
    (*_search("stop_after: 0"), "", "search.stop_after is out of range, got 0"),
    (*_search("fp_rcut: .nan"), "", "search.fp_rcut must be a finite number, got nan"),
    (*_search("energy_tol: -0.1"), "", "search.energy_tol is out of range, got -0.1 (allowed: above 0 up to 10; eV/atom)"),
    (*_search("best_frac: 1.5"), "", "search.best_frac is out of range, got 1.5"),
    (*_search("survivor_frac: .nan"), "", "search.survivor_frac must be a finite number, got nan"),
    (*_search("seed: -1"), "", "search.seed is out of range, got -1"),
    (*_search("fractions: {heredity: .nan}"), "", "search.fractions.heredity must be a finite number, got nan"),
    (*_search("min_distances: {Si-Si: -1}"), "", "search.min_distances.Si-Si is out of range, got -1"),
    (*_search("heredity_cut: [0.25, .nan]"), "", "search.heredity_cut[1] must be a finite number, got nan"),
    (*_search("volume_per_atom: 0"), "", "search.volume_per_atom is out of range, got 0"),
    (*_search("stop_enthalpy: .nan"), "", "search.stop_enthalpy must be a finite number, got nan"),
    (*_search("n_atoms: [4, 4]"), "", "duplicate key 'n_atoms' at line 5"),
    (*_search("seeds: [si.cif]"), "", "seeds[0] ('si.cif'): no structure file"),
    (*_search("seeds: [bc8]"), "", ("seed prototype:Si:bc8: its cell has 16 atoms (primitive cell 8) and no multiple "
                                    "of 8 is an allowed cell size of the search ([4], n_atoms [4, 4]); widen n_atoms")),
    (*_search("seeds: ['NaCl:rock salt']"), "", ("seed prototype:NaCl:rock salt has composition NaCl (AB), the search "
                                                 "Si (A): no species mapping keeps the stoichiometry")),
    (*_search("seeds: [{prototype: diamond, species: {Si: C}}]"), "",
     "seeds[0].species: Si -> 'C', but 'C' is not in the search's composition ['Si']"),
    ("{Si: 1}", "{Si: 0}", "", "search.composition.Si is out of range, got 0"),
    ("{Si: 1}", "{Si: -1}", "", "search.composition.Si is out of range, got -1"),
    ("{Si: 1}", "{Si: 1.5}", "", "search.composition.Si must be an integer, got 1.5"),
    ("{Si: 1}", "{Si: 1, O: 1}", "", "search.composition: oracle 'tersoff' has no parameters for O; it supports C, Si"),
    ("{Si: 1}", "{si: 1}", "", "unknown element(s) ['si'] in composition"),
    ("[4, 4]", "[0, 4]", "", "search.n_atoms[0] is out of range, got 0"),
    ("[4, 4]", "[4, 10000]", "", ("search.n_atoms: 10,000 atoms in one structure, above limits.max_atoms = 5,000; "
                                 "if you mean it, raise the limit in the spec: limits: {max_atoms: 10000}")),
    ("search: {", "search: [", "", "not valid YAML"),
    ("search: {composition: {Si: 1}, n_atoms: [4, 4]}", "search: [1, 2]", "", "search: Input should be a valid dictionary, got [1, 2]"),
    ("oracle: tersoff", "oracle: [tersoff]", "", "oracle: Input should be a valid string, got ['tersoff']"),
    ("kind: csp", "kind: [csp]", "", "unknown or missing kind ['csp']"),
    ("name: t", "name: 123", "", "name: Input should be a valid string, got 123"),
    ("oracle: tersoff", "oracle: tersoff\noracle_settings: {cutoff: 3}", "",
     "oracle_settings: unknown key(s) cutoff for oracle 'tersoff'; accepted: none"),
    ("oracle: tersoff", "oracle: tersoff\noracle: sw", "", "duplicate key 'oracle' at line 4 (first given at line 3)"),
    (None, "", "verify: {within_mev: .nan}\n", "verify.within_mev must be a positive number, got nan"),
    (None, "", "verify: {steps: 0}\n", "verify.steps must be a positive number, got 0"),
    ("mode: direct", "mode: mtp", "mtp: {max_dist: -4}\n", "mtp.max_dist must be a positive number, got -4"),
    ("mode: direct", "mode: mtp", "active: {select: .nan}\n", "active.select must be a positive number, got nan"),
    (None, "", "limits: {max_atom: 5}\n", ("limits.max_atom: unknown key (check the spelling against the "
                                                "examples/ specs; known keys here: max_atoms, max_structures)")),
    (None, "", "limits: {max_atoms: 0}\n", "limits.max_atoms: Input should be greater than or equal to 1, got 0"),
])

BATCH_ROWS = _rows(LJ_BATCH, [
    ("sigma: 2.3", "sigma: -1", "", "oracle_settings.sigma is out of range for oracle 'lj', got -1 (allowed: > 0 and <= 20; Å"),
    ("epsilon: 0.05", "epsilon: 0", "", "oracle_settings.epsilon is out of range for oracle 'lj', got 0"),
    ("epsilon: 0.05", "epsilon: .nan", "", "oracle_settings.epsilon must be a finite number for oracle 'lj', got nan"),
    ("sigma: 2.3", "sigma: .inf", "", "oracle_settings.sigma must be a finite number for oracle 'lj', got inf"),
    ("sigma: 2.3", "sigma: big", "", "oracle_settings.sigma must be a number for oracle 'lj', got 'big'"),
    ("sigma: 2.3", "sigma: 2.3, foo: 1", "", "oracle_settings: unknown key(s) foo for oracle 'lj'; accepted: epsilon, rc, sigma, smooth"),
    ("sigma: 2.3", "sigma: 2.3, smooth: 'yes'", "", "oracle_settings.smooth must be a bool for oracle 'lj', got 'yes'"),
    ("sigma: 2.3", "sigma: 2.3, sigma: 2.0", "", "duplicate key 'sigma' at line 3"),
    ("{sigma: 2.3, epsilon: 0.05}", "[2.3]", "", "oracle_settings: Input should be a valid dictionary"),
    ("oracle: lj\noracle_settings: {sigma: 2.3, epsilon: 0.05}", "oracle: vasp\noracle_settings: {kpoints: [0, 4, 4]}", "",
     "oracle_settings.kpoints must be three integers from 1 to 100, e.g. [4, 4, 4] for oracle 'vasp', got [0, 4, 4]"),
    ("oracle: lj\noracle_settings: {sigma: 2.3, epsilon: 0.05}", "oracle: cp2k\noracle_settings: {cutoff: -100}", "",
     "oracle_settings.cutoff is out of range for oracle 'cp2k', got -100"),
    ("oracle: lj\noracle_settings: {sigma: 2.3, epsilon: 0.05}", "oracle: emt\noracle_settings: {cutoff: 1}", "",
     "oracle_settings: unknown key(s) cutoff for oracle 'emt'; accepted: none"),
    ("count: 2", "count: 100000", "", ("structures: 100,000 structures (at least 190 MB in memory), above "
                                       "limits.max_structures = 20,000; if you mean it, raise the limit in the spec: "
                                       "limits: {max_structures: 100000}")),
    ("    perturb", "    supercell: [60, 60, 60]\n    perturb", "",
     "216,000 atoms in one structure, above limits.max_atoms = 5,000; if you mean it, raise the limit in the spec"),
    ("count: 2", "count: 25", "limits: {max_structures: 20}\n", "25 structures (at least 0 MB in memory), above limits.max_structures = 20"),
    ("    perturb", "    supercell: [2, 2]\n    perturb", "", "supercell must be three positive integers, e.g. [2, 2, 2], got [2, 2]"),
    ("    perturb", "    supercell: [0, 1, 1]\n    perturb", "", "supercell must be three positive integers"),
    ("seed: 1", "seed: 1, rattle: .nan", "", "structures.0.perturb.rattle: Input should be a finite number, got nan (allowed: >= 0 and <= 1.0)"),
    ("seed: 1", "seed: 1, rattle: -0.1", "", "structures.0.perturb.rattle: Input should be greater than or equal to 0, got -0.1"),
    ("seed: 1", "seed: 1, strain: .inf", "", "structures.0.perturb.strain: Input should be a finite number, got inf"),
    ("seed: 1", "seed: -1", "", "structures.0.perturb.seed: Input should be greater than or equal to 0, got -1"),
    ("count: 2", "count: two", "", "structures.0.perturb.count: Input should be a valid integer, unable to parse string as an integer, got 'two'"),
    ("a: 3.6", "a: .nan", "", "structures.0.prototype.a: Input should be a finite number, got nan (allowed: > 0.5 and < 50)"),
    ("a: 3.6", "a: 0", "", "structures.0.prototype.a: Input should be greater than 0.5, got 0"),
    ("a: 3.6", "a: 3.6, a: 3.7", "", "duplicate key 'a' at line 5"),
    ("formula: Cu", "formula: Xx", "", "structures[0].prototype.formula: 'Xx' is not an element symbol"),
    ("formula: Cu", "formula: cu", "", "structures[0].prototype.formula: 'cu' is not a chemical formula"),
    ("structures:", "min_distance: .nan\nstructures:", "", "min_distance: Input should be a finite number, got nan (allowed: > 0 and < 5)"),
    ("structures:", "min_distance: 0\nstructures:", "", "min_distance: Input should be greater than 0, got 0"),
    ("structures:", "batch_size: 0\nstructures:", "", "batch_size: Input should be greater than or equal to 1, got 0"),
    ("structures:", "batch_size: 2.5\nstructures:", "", "batch_size: Input should be a valid integer, got a number with a fractional part, got 2.5"),
    ("structures:", "tags: demo\nstructures:", "", "tags: Input should be a valid list, got 'demo'"),
])

EMT_ROWS = _rows(BATCH_PROTO, [
    ("formula: Cu, structure: fcc, a: 3.6", "formula: Si, structure: diamond, a: 5.43", "",
     "structures[0].prototype.formula: oracle 'emt' has no parameters for Si"),
    ("formula: Cu", "formula: CuZr", "", "oracle 'emt' has no parameters for Zr"),
])

PES_ROWS = _rows(PES, [
    ("A: Cs", "A: Xx", "", "perovskite A site: 'Xx' is not an element symbol"),
    ("oracle: lj\noracle_settings: {sigma: 2.6, epsilon: 0.05}", "oracle: emt", "",
     "reference.species: oracle 'emt' has no parameters for Br, Cs, Pb"),
    ("a: 5.87", "a: .nan", "", "reference.a: Input should be a finite number, got nan (allowed: > 2 and < 20)"),
    ("[2, 2, 2]", "[40, 40, 40]", "", "reference.supercell (5 atoms a cubic cell): 320,000 atoms in one structure, above limits.max_atoms"),
    ("count: 10", "count: -1", "", "stochastic.count: Input should be greater than or equal to 0, got -1"),
    ("count: 10", "count: 200000", "", "200,000 structures (at least 5,840 MB in memory), above limits.max_structures = 20,000"),
    ("count: 10", "count: 10, threshold: .nan", "", "stochastic.threshold: Input should be a finite number, got nan (allowed: > 0 and <= 1.0)"),
    ("count: 10", "count: 10, displacement_radius: [0.2, .inf]", "", "stochastic.displacement_radius.1: Input should be a finite number, got inf (allowed: >= 0 and <= 10)"),
    (None, "", "systematic: {cubic_amplitudes: [0.3, .nan]}\n", "systematic.cubic_amplitudes.1: Input should be a finite number, got nan"),
    (None, "", "systematic: {strain_amplitudes: [0.9]}\n", "systematic.strain_amplitudes.0: Input should be less than or equal to 0.5, got 0.9"),
    (None, "", "thermal: {temperatures: [-300]}\n", "temperatures must be positive and at most 10000 K, got [-300.0]"),
    (None, "", "thermal: {dt_fs: .inf}\n", "thermal.dt_fs: Input should be a finite number, got inf (allowed: > 0 and <= 5.0)"),
    (None, "", "relax: {fmax: 0}\n", "relax.fmax: Input should be greater than 0, got 0"),
    ("sigma: 2.6", "sigma: .inf", "", "oracle_settings.sigma must be a finite number for oracle 'lj', got inf"),
    (None, "", "tilt_angle_deg: .nan\n", "tilt_angle_deg: Input should be a finite number, got nan (allowed: >= 0 and <= 30)"),
    (None, "", "seed: -1\n", "seed: Input should be greater than or equal to 0, got -1"),
    (None, "", "fit: {name: pf, folds: 1}\n", "fit.folds: Input should be greater than or equal to 2, got 1"),
    (None, "", "fit: {name: pf, test_fraction: .nan}\n", "fit.test_fraction: Input should be a finite number, got nan"),
    (None, "", "fit: {name: pf, grid: [{model: [linear]}, 3]}\n", "grid[1] must be a dict of hyperparameter lists"),
    ("A: Cs", "A: Cs, A: Rb", "", "duplicate key 'A' at line 5"),
    (None, "", "refine: {temperatures: [300], tolerance_mev: .nan}\n", "refine.tolerance_mev: Input should be a finite number, got nan"),
])

PES_FIT_ROWS = _rows(PES_FIT, [
    ("sigma: 2.6", "sigma: .nan", "", "oracle_settings.sigma must be a finite number for oracle 'lj', got nan"),
    ("sigma: 2.6", "sigma: 2.6, cutoff: 5", "", "oracle_settings: unknown key(s) cutoff for oracle 'lj'"),
    (None, "", "training: {learning_rate: .nan}\n", "training.learning_rate = nan is not a finite number"),
    (None, "", "test_fraction: 1.5\n", "test_fraction: Input should be less than 1, got 1.5"),
    (None, "", "grid: []\n", "grid is an empty list: give at least one dict of hyperparameter lists"),
    (None, "", "grid: [{model: [linear]}, {model: [cluster], training: [{patience: 3}]}]\n",
     "grid[1].training must be a dict of TrainSettings fields"),
    (None, "", "grid: [{model: [linear]}, {model: [cluster], training: {patience: -1, shedule: 3}}]\n",
     "grid[1].training: unknown training settings ['shedule']"),
])

THERMO = textwrap.dedent("""\
    kind: pes_thermo
    name: th
    model: m-linear
    supercells: [4]
    temperatures: [300, 400]
    sweeps: 100
    equilibration: 50
    validation: {oracle: lj, oracle_settings: {sigma: 2.6, epsilon: 0.05}, snapshots_per_temperature: 1}
    """)

THERMO_ROWS = _rows(THERMO, [
    ("[300, 400]", "[300, .nan]", "", "temperatures"),
    ("[4]", "[3]", "", "supercells"),
    ("sweeps: 100", "sweeps: 0", "", "sweeps"),
    ("sweeps: 100", "sweeps: 100\nsweeps: 200", "", "duplicate key 'sweeps'"),
    ("oracle: lj", "oracle: vasp5", "", "unknown oracle 'vasp5'"),
    ("sigma: 2.6", "sigma: -2.6", "", "oracle_settings.sigma"),
    (None, "", "pressure_gpa: .inf\n", "pressure_gpa"),
    (None, "", "cell_moves: wobble\n", "cell_moves"),
    (None, "", "refine: {rounds: 0}\n", "refine.rounds: Input should be greater than or equal to 1, got 0"),
    (None, "", "refine: {rounds: 2, tolerance_mev: -1}\n", "refine.tolerance_mev: Input should be greater than 0"),
    (None, "", "refine: {rounds: 2, tol: 3}\n", "refine.tol: unknown key"),
    (None, "", "refine: {tolerance_mev: 3}\n", "refine.rounds: Field required"),
    ("validation: {oracle: lj, oracle_settings: {sigma: 2.6, epsilon: 0.05}, snapshots_per_temperature: 1}",
     "refine: {rounds: 2}", "", "refine needs a validation section"),
])

# (files to write, argv, exit code, message fragment)
CASES = [
    # --- spec files
    ({"spec.yaml": ""}, ["submit", "spec.yaml"], 1, "must be a mapping"),
    ({"spec.yaml": "kind: [x"}, ["submit", "spec.yaml"], 1, "not valid YAML"),
    ({"spec.yaml": CSP.replace("tersoff", "vasp5")}, ["submit", "spec.yaml"], 1, "unknown oracle 'vasp5'"),
    ({"spec.yaml": CSP.replace("{Si: 1}", "{Xx: 1}")}, ["submit", "spec.yaml"], 1, "Xx"),
    ({"spec.yaml": CSP.replace("name: t", "name: two words")}, ["submit", "spec.yaml"], 1, "name: String should match pattern"),
    ({"spec.yaml": CSP.replace("[4, 4]", "[8, 4]")}, ["submit", "spec.yaml"], 1, "n_atoms"),
    ({"spec.yaml": CSP.replace("mode: direct", "mode: fast")}, ["submit", "spec.yaml"], 1, "mode: Input should be 'direct' or 'mtp'"),
    ({"spec.yaml": CSP + "verify: {fmax: 0.01, within: 50}\n"}, ["submit", "spec.yaml"], 1, "unknown verify keys ['within']"),
    ({"spec.yaml": CSP + "verify: {fmax: -0.01}\n"}, ["submit", "spec.yaml"], 1, "verify.fmax must be a positive number"),
    ({"spec.yaml": CSP.replace("[4, 4]}", "[4, 4], stop_enthalpy: low}")}, ["submit", "spec.yaml"], 1,
     "stop_enthalpy must be a number"),
    ({"spec.yaml": "kind: oracle_batch\noracle: emt\nstructures:\n  - prototype: {formula: Cu, structure: fcc, a: 3.6}\n    perturb: {count: 0}\n"},
     ["submit", "spec.yaml"], 1, "perturb.count: Input should be greater than or equal to 1"),
    ({"spec.yaml": "kind: oracle_batch\noracle: emt\nstructures: {file: x}\n"}, ["submit", "spec.yaml"], 1, "structures: Input should be a valid list"),
    # --- structure files
    ({"spec.yaml": BATCH.replace("s.file", "POSCAR"), "POSCAR": POSCAR_OVERLAP}, ["submit", "spec.yaml"], 1,
     "are 0.100 Å apart, below the minimum distance"),
    ({"spec.yaml": BATCH.replace("s.file", "x.cif"), "x.cif": "data_x\n_cell_length_a what\n"}, ["submit", "spec.yaml"], 1, "x.cif"),
    ({"spec.yaml": BATCH.replace("s.file", "x.extxyz"), "x.extxyz": XYZ_NAN}, ["submit", "spec.yaml"], 1, "NaN"),
    ({"spec.yaml": BATCH.replace("s.file", "x.json"), "x.json": '{"a": 1}'}, ["submit", "spec.yaml"], 1, "cannot read structure file"),
    ({"spec.yaml": BATCH.replace("s.file", "empty.cif"), "empty.cif": ""}, ["submit", "spec.yaml"], 1, "empty.cif"),
    ({"spec.yaml": BATCH.replace("s.file", "missing.cif")}, ["submit", "spec.yaml"], 1, "missing.cif does not exist"),
    # --- MLIP .mtp files
    ({"in.cfg": CFG_OK}, ["mtp", "calc-efs", "none.mtp", "in.cfg", "o.cfg"], 2, "none.mtp"),
    ({"in.cfg": CFG_OK, "t.mtp": None}, ["mtp", "calc-efs", "t.mtp", "in.cfg", "o.cfg"], 1, "untrained template"),
    ({"in.cfg": CFG_OK, "b.mtp": ("t.mtp", "radial_basis_size = 8", "radial_basis_size = x")},
     ["mtp", "calc-efs", "b.mtp", "in.cfg", "o.cfg"], 1, "not a number"),
    ({"in.cfg": CFG_OK, "h.mtp": "hello\n"}, ["mtp", "calc-efs", "h.mtp", "in.cfg", "o.cfg"], 1, "h.mtp"),
    ({"in.cfg": CFG_OK, "c.mtp": ("t.mtp", "alpha_moment_mapping", "alpha_moment_mappin")},
     ["mtp", "calc-efs", "c.mtp", "in.cfg", "o.cfg"], 1, "c.mtp"),
    # --- MLIP .cfg files
    ({"t.mtp": None, "x.cfg": CFG_OK.replace("END_CFG\n", "")}, ["mtp", "convert", "x.cfg", "o.extxyz"], 1, "BEGIN_CFG without END_CFG"),
    ({"t.mtp": None, "x.cfg": CFG_OK.replace("2.2 0 0", "2.2 zero 0")}, ["mtp", "convert", "x.cfg", "o.extxyz"], 1, "x.cfg"),
    ({"t.mtp": None, "x.cfg": CFG_OK.replace(" Size\n 2", " Size\n 3")}, ["mtp", "convert", "x.cfg", "o.extxyz"], 1, "x.cfg"),
    ({}, ["mtp", "convert", "nothere.cfg", "o.extxyz"], 2, "nothere.cfg"),
    ({"x.cfg": "BEGIN_CFG\n Size\n 1\nEND_CFG\n"}, ["mtp", "convert", "x.cfg", "o.extxyz"], 1, "x.cfg"),
    # --- command-line usage
    ({}, ["run", "--workers", "0"], 2, "Invalid value for '-w' / '--workers'"),
    ({}, ["frobnicate"], 2, "No such command 'frobnicate'"),
    ({}, ["submit", "nope.yaml"], 1, "spec file nope.yaml does not exist"),
    ({}, ["status", "-l", "missing.yaml"], 1, "missing.yaml does not exist; create one with `pes init`"),
    ({}, ["init", "p", "--mongodb-uri", "http://x"], 1, "must start with mongodb://"),
    ({}, ["mtp", "template", "40", "x.mtp"], 1, "level"),
    ({"lp.yaml": "embedded_store: s.json\n", "s.json": "{}"}, ["report", "nope", "-l", "lp.yaml"], 1, "no workflow named"),
    # --- launchpad / database
    ({"lp.yaml": "host: [x"}, ["status", "-l", "lp.yaml"], 1, "not valid YAML"),
    ({"lp.yaml": "name: pes\n"}, ["status", "-l", "lp.yaml"], 1, "neither 'embedded_store' nor a MongoDB 'host'"),
    ({"lp.yaml": "host: 127.0.0.1\nport: 9\nname: pes\nmongoclient_kwargs: {serverSelectionTimeoutMS: 200}\n"},
     ["run", "-l", "lp.yaml"], 1, "unreachable"),
    ({"lp.yaml": "embedded_store: s.json\n", "s.json": "garbage"}, ["run", "-l", "lp.yaml"], 1, "not a store file"),
    ({"lp.yaml": "embedded_store: s.json\nname: a\nname: b\n", "s.json": "{}"}, ["status", "-l", "lp.yaml"], 1,
     "duplicate key 'name' at line 3 (first given at line 2)"),
    ({"lp.yaml": "embedded_store: s.json\nembedded_store: t.json\n"}, ["run", "-l", "lp.yaml"], 1,
     "duplicate key 'embedded_store'"),
    # a prototype of a 0.6 Å one-atom cell: -443 eV/atom and 811,000 GPa on LJ if it got through
    ({"spec.yaml": "kind: oracle_batch\noracle: emt\nstructures:\n  - prototype: {formula: Cu, structure: sc, a: 0.6}\n"},
     ["submit", "spec.yaml"], 1, "from its own periodic image"),
    ({"spec.yaml": "kind: oracle_batch\noracle: emt\nstructures:\n  - prototype: {formula: Cu, structure: fcc, a: 1.2}\n"},
     ["submit", "spec.yaml"], 1, "below 0.5 x the sum of the covalent radii"),
    # --- spec numbers, keys, oracles and sizes, kind by kind
    *CSP_ROWS, *BATCH_ROWS, *EMT_ROWS, *PES_ROWS, *PES_FIT_ROWS, *THERMO_ROWS,
]


def _snapshot(folder) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("files,argv,code,message", CASES, ids=[f"{c[1][0]}-{k}" for k, c in enumerate(CASES)])
def test_bad_input(tmp_path, monkeypatch, capsys, project, files, argv, code, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PES_LAUNCHPAD", str(project))
    for name, text in files.items():
        if text is None:  # an untrained template
            pes(["mtp", "template", "6", name])
        elif isinstance(text, tuple):  # a template with one edit
            src, old, new = text
            pes(["mtp", "template", "6", src])
            (tmp_path / name).write_text((tmp_path / src).read_text().replace(old, new))
        else:
            (tmp_path / name).write_text(text)
    store = project.parent / "store.json"
    before, store_before = _snapshot(project.parent), store.read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        pes(argv)
        raise SystemExit(0)
    err = capsys.readouterr().err
    assert exc.value.code == code, err
    assert message in err, err
    assert "Traceback" not in err
    assert store.read_bytes() == store_before  # a refused input never touches the store
    assert _snapshot(project.parent) == before


def test_table_is_large_enough():
    assert len(CASES) >= 30 + 50
    assert len(CSP_ROWS) + len(BATCH_ROWS) + len(EMT_ROWS) + len(PES_ROWS) + len(PES_FIT_ROWS) >= 50
