"""A table of malformed files (.cfg, .mtp, POSCAR/CIF/xyz) given to the real ``pes`` entry points.

Each row writes its files into a project made by ``pes init``, runs ``pes``
in-process and checks the exit code, a clear message fragment (file, line,
configuration or field), that no traceback and no binary junk reach the user,
and that the embedded store (and every other file of the project) is byte for
byte what it was before.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from workflows.cli import main as pes

CFG = textwrap.dedent("""\
    BEGIN_CFG
     Size
        2
     Supercell
        5 0 0
        0 5 0
        0 0 5
     AtomData:  id type cartes_x cartes_y cartes_z fx fy fz
        1 0 0 0 0 0.1 0 0
        2 0 2.2 0 0 -0.1 0 0
     Energy
        -1.0
     PlusStress:  xx yy zz yz xz xy
        0.1 0.1 0.1 0 0 0
     Feature   EFS_by  VASP
    END_CFG
    """)
TWO = CFG + "\n" + CFG

EXTXYZ = ('2\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3:forces:R:3 energy={e} pbc="T T T"\n'
          "H 0 0 0 0.1 0 0\nH 2.2 0 0 -0.1 0 0\n")

POSCAR = "Cu\n1.0\n3.6 0 0\n0 3.6 0\n0 0 3.6\nCu\n2\nCartesian\n0 0 0\n1.8 1.8 0\n"
XYZ = 'Lattice="5 0 0 0 5 0 0 0 5" pbc="T T T"'
CIF = textwrap.dedent("""\
    data_Cu
    _cell_length_a 3.6
    _cell_length_b 3.6
    _cell_length_c 3.6
    _cell_angle_alpha 90
    _cell_angle_beta 90
    _cell_angle_gamma 90
    _symmetry_space_group_name_H-M 'P 1'
    loop_
    _atom_site_label
    _atom_site_type_symbol
    _atom_site_fract_x
    _atom_site_fract_y
    _atom_site_fract_z
    Cu1 Cu 0 0 0
    Cu2 Cu 0.5 0.5 0
    """)
JUNK = bytes(range(256)) * 4  # NUL bytes, control characters, invalid UTF-8


def _batch(name: str) -> str:
    return f"kind: oracle_batch\noracle: emt\nstructures:\n  - file: {name}\n"


def _cfg(old: str, new: str, text: str = CFG) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _mtp(old: str, new: str, count: int = 1) -> tuple[str, str, int]:
    """A trained potential (level 6, one species) with ``old`` replaced by ``new``."""
    return ("trained", old, new, count)


def _tpl(old: str, new: str) -> tuple[str, str, int]:
    """An untrained template (level 6) with ``old`` replaced by ``new``."""
    return ("template", old, new, 1)


TRAIN = ["mtp", "train", "t.mtp", "x.cfg", "--save-to", "o.mtp", "--max-iter", "0"]
ERRORS = ["mtp", "calc-errors", "p.mtp", "x.cfg"]
EFS = ["mtp", "calc-efs", "p.mtp", "x.cfg", "o.cfg"]
CONVERT = ["mtp", "convert", "x.cfg", "o.extxyz"]
OK = {"t.mtp": _tpl("", ""), "p.mtp": _mtp("", "")}
SUBMIT = ["submit", "spec.yaml", "-l", "LP"]

# (files to write, argv, exit code, message fragments)
CASES = [
    # --- .cfg: non-finite numbers, with file, line, configuration and field
    ({**OK, "x.cfg": _cfg("-1.0", "nan")}, TRAIN, 1, ["x.cfg:12: configuration 1: Energy is nan"]),
    ({**OK, "x.cfg": _cfg("-1.0", "inf")}, ERRORS, 1, ["x.cfg:12: configuration 1: Energy is inf", "finite"]),
    ({**OK, "x.cfg": _cfg("2.2 0 0", "NaN 0 0")}, TRAIN, 1, ["x.cfg:10: configuration 1: atom 2 cartes_x is NaN"]),
    ({**OK, "x.cfg": _cfg("-0.1 0 0", "-0.1 inf 0")}, EFS, 1, ["x.cfg:10: configuration 1: atom 2 fy is inf"]),
    ({**OK, "x.cfg": _cfg("0.1 0.1 0.1", "0.1 nan 0.1")}, TRAIN, 1, ["x.cfg:14: configuration 1: PlusStress is nan"]),
    ({**OK, "x.cfg": _cfg("0 5 0", "0 nan 0")}, CONVERT, 1, ["x.cfg:6: configuration 1: Supercell is nan"]),
    ({**OK, "x.cfg": _cfg("-1.0", "-infinity", TWO).replace("-1.0", "nan", 2)}, TRAIN, 1,
     ["x.cfg:12: configuration 1: Energy is -infinity"]),
    ({**OK, "x.cfg": CFG + "\n" + _cfg("-1.0", "nan")}, TRAIN, 1, ["x.cfg:29: configuration 2: Energy is nan"]),
    ({**OK, "x.cfg": CFG + "\n" + _cfg("1 0 0 0 0 0.1", "1 0 0 0 0 nan")},
     ERRORS, 1, ["x.cfg:26: configuration 2: atom 1 fx is nan"]),
    # --- .cfg: counts, types, cells, structure of the file
    ({**OK, "x.cfg": _cfg("    2\n", "    3\n")}, TRAIN, 1, ["configuration 1", "Size is 3 but AtomData has 2 rows"]),
    ({**OK, "x.cfg": _cfg("    2\n", "    1\n")}, TRAIN, 1, ["x.cfg:10: configuration 1", "more rows than Size (1)"]),
    ({**OK, "x.cfg": _cfg("    2\n", "    0\n")}, CONVERT, 1, ["x.cfg:3: configuration 1: Size is 0"]),
    ({**OK, "x.cfg": _cfg("    2\n", "    two\n")}, CONVERT, 1, ["x.cfg:3", "Size 'two' is not a whole number"]),
    ({**OK, "x.cfg": _cfg("2 0 2.2", "2 5 2.2")}, ERRORS, 1, ["x.cfg:10: configuration 1: atom 2 has type 5",
                                                              "only 1 species"]),
    ({**OK, "x.cfg": _cfg("2 0 2.2", "2 -1 2.2")}, CONVERT, 1, ["atom 2 has type -1", "types must be 0 .. 117"]),
    ({**OK, "x.cfg": _cfg("2 0 2.2", "2 x 2.2")}, CONVERT, 1, ["atom 2 type 'x' is not a whole number"]),
    ({**OK, "x.cfg": _cfg("0 0 5\n", "5 0 0\n")}, TRAIN, 1, ["x.cfg:4: configuration 1: Supercell volume is 0",
                                                            "linearly dependent"]),
    ({**OK, "x.cfg": _cfg("    0 0 5\n", "")}, CONVERT, 1, ["Supercell has 2 lattice vectors"]),
    ({**OK, "x.cfg": _cfg("END_CFG\n", "")}, TRAIN, 1, ["x.cfg:1: configuration 1: BEGIN_CFG without END_CFG"]),
    ({**OK, "x.cfg": _cfg("END_CFG\n", "", TWO)}, CONVERT, 1, ["BEGIN_CFG without END_CFG (the next BEGIN_CFG is at line 17)"]),
    ({**OK, "x.cfg": _cfg("2 0 2.2 0 0 -0.1 0 0", "2 0 2.2 0 0 -0.1 0")}, TRAIN, 1,
     ["x.cfg:10: configuration 1", "AtomData row 2 has 7 columns"]),
    ({**OK, "x.cfg": _cfg(" Energy\n    -1.0\n", " Energy\n")}, TRAIN, 1, ["x.cfg:12: configuration 1: Energy: 'PlusStress:' is not a number"]),
    ({**OK, "x.cfg": _cfg("0.1 0.1 0.1 0 0 0", "0.1 0.1 0.1 0 0")}, TRAIN, 1, ["PlusStress needs 6 numbers, got 5"]),
    ({**OK, "x.cfg": _cfg("cartes_x cartes_y cartes_z", "direct_x direct_y direct_z").replace(
        " Supercell\n    5 0 0\n    0 5 0\n    0 0 5\n", "").replace(" PlusStress:  xx yy zz yz xz xy\n    0.1 0.1 0.1 0 0 0\n", "")},
     CONVERT, 1, ["direct coordinates need a Supercell"]),
    ({**OK, "x.cfg": _cfg(" Energy", " Enrgy")}, TRAIN, 1, ["x.cfg:11: configuration 1: unknown section 'Enrgy'"]),
    ({**OK, "x.cfg": ""}, TRAIN, 1, ["x.cfg holds no configurations"]),
    ({**OK, "x.cfg": "hello\n"}, TRAIN, 1, ["x.cfg:1: unexpected line outside BEGIN_CFG/END_CFG: 'hello'"]),
    ({**OK, "x.cfg": JUNK}, TRAIN, 1, ["x.cfg is not a text file (binary data); expected an MLIP .cfg"]),
    ({**OK, "x.cfg": "BEGIN_CFG\n Size\n \xe9\xff\n".encode("latin-1")}, ERRORS, 1, ["x.cfg: not a UTF-8 text file"]),
    ({**OK, "x.extxyz": EXTXYZ.format(e="nan")}, ["mtp", "train", "t.mtp", "x.extxyz", "--save-to", "o.mtp"], 1,
     ["x.extxyz: configuration 1: energy holds nan", "training data must be finite"]),
    ({**OK, "x.extxyz": EXTXYZ.format(e="-1").replace("2.2 0 0", "2.2 inf 0")}, ["mtp", "convert", "x.extxyz", "o.cfg"], 1,
     ["x.extxyz: configuration 1: positions holds inf"]),
    ({**OK, "x.extxyz": JUNK}, ["mtp", "convert", "x.extxyz", "o.cfg"], 1, ["x.extxyz is not a text file (binary data)"]),
    # --- .mtp: non-finite coefficients and cutoffs, inconsistent sizes
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("moment_coeffs = {0.0000000000000000e+00", "moment_coeffs = {nan")}, EFS, 1,
     ["p.mtp:", "moment_coeffs value 1 of 5 is nan", "must be finite"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("species_coeffs = {0.0000000000000000e+00}", "species_coeffs = {-inf}")},
     ERRORS, 1, ["p.mtp:23: species_coeffs value 1 of 1 is -inf"]),
    ({**OK, "x.cfg": CFG, "p.mtp": ("trained-radial", "nan")}, EFS, 1,
     ["p.mtp:14: radial_coeffs of pair 0-0 row 1 value 3 of 8 is nan"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("min_dist = 2.0000000000000000e+00", "min_dist = nan")}, EFS, 1,
     ["p.mtp:8: min_dist is nan"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("max_dist = 5.0000000000000000e+00", "max_dist = inf")}, ERRORS, 1,
     ["p.mtp:9: max_dist is inf"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("min_dist = 2.0000000000000000e+00", "min_dist = -1")}, EFS, 1,
     ["min_dist = -1 Å", "must be positive"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("min_dist = 2.0000000000000000e+00", "min_dist = 6")}, EFS, 1,
     ["min_dist = 6 Å is not below max_dist = 5 Å"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("min_dist = 2.0000000000000000e+00", "min_dist = 5")}, ERRORS, 1,
     ["min_dist = 5 Å is not below max_dist = 5 Å"]),
    ({**OK, "x.cfg": CFG, "p.mtp": ("trained-radial", "drop-number")}, EFS, 1,
     ["p.mtp:14: radial_coeffs of pair 0-0 row 1 has 7 numbers, expected radial_basis_size = 8"]),
    ({**OK, "x.cfg": CFG, "p.mtp": ("trained-radial", "drop-row")}, EFS, 1,
     ["p.mtp:13: radial_coeffs of pair 0-0 has 1 rows, expected radial_funcs_count = 2"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("moment_coeffs = {0.0000000000000000e+00, ", "moment_coeffs = {")}, EFS, 1,
     ["moment_coeffs has 4 values, expected 5"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("scaling = 1.0000000000000000e+00", "scaling = nan")}, EFS, 1,
     ["p.mtp:4: scaling is nan"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("scaling = 1.0000000000000000e+00", "scaling = 0")}, EFS, 1,
     ["scaling is 0.0; it must be a positive finite number"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("radial_funcs_count = 2", "radial_funcs_count = 0")}, EFS, 1,
     ["radial_funcs_count = 0; it must be at least 1"]),
    ({**OK, "x.cfg": CFG, "p.mtp": _mtp("alpha_index_basic_count = 5", "alpha_index_basic_count = five")}, EFS, 1,
     ["p.mtp:17: alpha_index_basic_count = 'five' is not a whole number"]),
    ({**OK, "x.cfg": CFG, "p.mtp": JUNK}, EFS, 1, ["p.mtp: not a text file (binary data); expected an MLIP .mtp"]),
    ({**OK, "x.cfg": CFG, "t.mtp": _tpl("min_dist = 2", "min_dist = nan")}, TRAIN, 1, ["t.mtp:7: min_dist is nan"]),
    ({**OK, "x.cfg": CFG, "t.mtp": _tpl("max_dist = 5", "max_dist = -5")}, TRAIN, 1, ["must be positive"]),
    # --- structure files through `pes submit` (spec `file:` entries)
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": "Si\n1.0\n0.6 0 0\n0 0.6 0\n0 0 0.6\nSi\n1\nDirect\n0 0 0\n"}, SUBMIT, 1,
     ["POSCAR: atom 0 (Si) is 0.600 Å from its own periodic image", "1.110 Å"]),
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": POSCAR.replace("1.8 1.8 0", "1.0 0 0")}, SUBMIT, 1,
     ["POSCAR: atoms 0 (Cu) and 1 (Cu) are 1.000 Å apart, below 0.5 x the sum of the covalent radii (1.320 Å)"]),
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": POSCAR.replace("1.8 1.8 0", "3.5 0 0")}, SUBMIT, 1,
     ["atoms 0 (Cu) and 1 (Cu) are 0.100 Å apart"]),  # across the periodic boundary
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": POSCAR.replace("0 3.6 0", "0 nan 0")}, SUBMIT, 1,
     ["POSCAR: lattice or coordinates contain NaN or infinity"]),
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": POSCAR.replace("1.8 1.8 0", "1.8 inf 0")}, SUBMIT, 1, ["NaN or infinity"]),
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": POSCAR.replace("0 0 3.6", "3.6 0 0")}, SUBMIT, 1,
     ["POSCAR: its lattice vectors are linearly dependent (zero cell volume)"]),
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": POSCAR.replace("Cu\n2", "Xx\n2")}, SUBMIT, 1, ["unknown element"]),
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": POSCAR.replace("\n1.8 1.8 0\n", "\n")}, SUBMIT, 1,
     ["cannot read structure file", "POSCAR", "expected a VASP POSCAR/CONTCAR"]),
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": ""}, SUBMIT, 1, ["POSCAR is empty; expected a VASP POSCAR/CONTCAR"]),
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": JUNK}, SUBMIT, 1, ["POSCAR is not a text file (binary data)"]),
    ({"spec.yaml": _batch("POSCAR"), "POSCAR": b"Cu\n1.0\n\xff\xfe\n"}, SUBMIT, 1, ["POSCAR is not UTF-8 text"]),
    ({"spec.yaml": _batch("x.cif"), "x.cif": "  \n\n"}, SUBMIT, 1, ["x.cif is empty; expected a CIF file"]),
    ({"spec.yaml": _batch("x.cif"), "x.cif": JUNK}, SUBMIT, 1, ["x.cif is not a text file (binary data); expected a CIF file"]),
    ({"spec.yaml": _batch("x.cif"), "x.cif": CIF.replace("Cu2 Cu 0.5 0.5 0", "Cu2 Cu 0.05 0.05 0")}, SUBMIT, 1,
     ["x.cif: atoms 0 (Cu) and 1 (Cu) are 0.255 Å apart, below the minimum distance"]),
    ({"spec.yaml": _batch("x.cif"), "x.cif": CIF.replace("Cu2 Cu 0.5 0.5 0", "Cu2 Cu 0.3 0 0")}, SUBMIT, 1,
     ["x.cif: atoms 0 (Cu) and 1 (Cu) are 1.080 Å apart, below 0.5 x the sum of the covalent radii"]),
    ({"spec.yaml": _batch("x.cif"), "x.cif": "data_x\n_cell_length_a what\n"}, SUBMIT, 1, ["x.cif", "expected a CIF file"]),
    ({"spec.yaml": _batch("x.xyz"), "x.xyz": "1\n\nCu 0 0 0\n"}, SUBMIT, 1, ["x.xyz: has no periodic cell", "Lattice="]),
    ({"spec.yaml": _batch("x.xyz"), "x.xyz": f"1\n{XYZ}\nQq 0 0 0\n"}, SUBMIT, 1, ["unknown element 'Qq'"]),
    ({"spec.yaml": _batch("x.extxyz"), "x.extxyz": f"2\n{XYZ}\nCu 0 0 0\nCu 2.5 0 0\n2\n{XYZ}\nCu 0 0 0\nCu 1 0 0\n"},
     SUBMIT, 1, ["x.extxyz frame 1: atoms 0 (Cu) and 1 (Cu) are 1.000 Å apart"]),
    ({"spec.yaml": _batch("x.extxyz"), "x.extxyz": f"2\n{XYZ}\nCu 0 0 0\nCu 2.5 -inf 0\n"}, SUBMIT, 1, ["NaN or infinity"]),
    ({"spec.yaml": _batch("x.extxyz"), "x.extxyz": f"3\n{XYZ}\nCu 0 0 0\nCu 2.5 0 0\n"}, SUBMIT, 1,
     ["cannot read structure file", "x.extxyz"]),
    ({"spec.yaml": _batch("x.json"), "x.json": '[1, 2]'}, SUBMIT, 1, ["cannot read structure file", "x.json"]),
    # --- model files of `pes model`
    ({"m.pt": JUNK}, ["model", "mc", "--model-file", "m.pt", "--temperatures", "300"], 1,
     ["cannot read model file m.pt: not a model file written by `pes model export NAME FILE`"]),
    ({"m.pt": ""}, ["model", "md", "--model-file", "m.pt", "--temperatures", "300"], 1,
     ["cannot read model file m.pt: not a model file", "(EOFError)"]),
    ({"m.pt": '{"kind": "cluster"}'}, ["model", "mc", "--model-file", "m.pt", "--temperatures", "300"], 1,
     ["cannot read model file m.pt: not a model file"]),
]


def _write(tmp_path, name: str, content) -> None:
    from pes_core.mtp import MTPPotential, write_mtp

    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        kind, *edit = content
        if kind == "template":
            pes(["mtp", "template", "6", name])
        else:
            write_mtp(path, MTPPotential.from_level(6, [1], 2.0, 5.0, 8, seed=0))
        text = path.read_text()
        if kind == "trained-radial":  # the first row of radial coefficients of pair 0-0 (line 14)
            lines = text.splitlines()
            row = lines[13]
            values = row.strip()[1:-1].split(", ")
            if edit[0] == "nan":
                values[2] = "nan"
                lines[13] = "\t\t\t{" + ", ".join(values) + "}"
            elif edit[0] == "drop-number":
                lines[13] = "\t\t\t{" + ", ".join(values[:-1]) + "}"
            else:
                del lines[13]
            text = "\n".join(lines) + "\n"
        elif edit[0]:
            old, new, count = edit
            assert old in text, old
            text = text.replace(old, new, count)
        path.write_text(text)


def _snapshot(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("files,argv,code,messages", CASES,
                         ids=[f"{k}-{c[1][0]}-{c[1][1] if c[1][0] == 'mtp' else next(iter(c[0]))}"
                              for k, c in enumerate(CASES)])
def test_bad_file(tmp_path, monkeypatch, capsys, files, argv, code, messages):
    monkeypatch.chdir(tmp_path)
    pes(["init", "proj"])
    lp = tmp_path / "proj" / "my_launchpad.yaml"
    for name, content in files.items():
        _write(tmp_path, name, content)
    before = _snapshot(tmp_path / "proj")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        pes([str(lp) if a == "LP" else a for a in argv])
        raise SystemExit(0)
    err = capsys.readouterr().err
    assert exc.value.code == code, err
    for message in messages:
        assert message in err, err
    assert "Traceback" not in err
    assert all(c.isprintable() or c in "\n\t" for c in err), repr(err)  # no binary junk echoed
    assert _snapshot(tmp_path / "proj") == before  # the store and the project are untouched
    assert not (tmp_path / "o.mtp").exists() and not (tmp_path / "o.cfg").exists()


def test_table_is_large_enough():
    assert len(CASES) >= 45
    named = [(n, " ".join(msgs)) for files, _, _, msgs in CASES for n in files]
    kinds = {re.sub(r".*\.", "", n) if "." in n else n for n, text in named if n in text}
    assert {"cfg", "mtp", "POSCAR", "cif", "xyz", "extxyz", "pt"} <= kinds
