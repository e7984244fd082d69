"""A table of malformed inputs on every public entry point, each with its clear error.

Each row runs the real ``pes`` entry point in-process and checks the exit code
(1 for bad input, 2 for bad command-line usage), the message on stderr, and
that no traceback reaches the user.
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
]


@pytest.mark.parametrize("files,argv,code,message", CASES, ids=[f"{c[1][0]}-{k}" for k, c in enumerate(CASES)])
def test_bad_input(tmp_path, monkeypatch, capsys, files, argv, code, message):
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        if text is None:  # an untrained template
            pes(["mtp", "template", "6", name])
        elif isinstance(text, tuple):  # a template with one edit
            src, old, new = text
            pes(["mtp", "template", "6", src])
            (tmp_path / name).write_text((tmp_path / src).read_text().replace(old, new))
        else:
            (tmp_path / name).write_text(text)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        pes(argv)
        raise SystemExit(0)
    err = capsys.readouterr().err
    assert exc.value.code == code, err
    assert message in err, err
    assert "Traceback" not in err


def test_table_is_large_enough():
    assert len(CASES) >= 30
