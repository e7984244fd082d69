"""`pes submit` specs and the CLI: clear errors, non-zero exit codes, nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workflows.cli import cli
from workflows.core.spec import SpecError
from workflows.jobs import build_from_spec

GOOD = """
kind: oracle_batch
name: cu
oracle: emt
batch_size: 4
structures:
  - prototype: {formula: Cu, structure: fcc, a: 3.61, cubic: true}
    perturb: {count: 6, seed: 2}
"""

BAD_SPECS = [
    ("oracle: [unclosed", "not valid YAML"),
    ("- just\n- a list", "must be a mapping"),
    ("kind: dance\n", "unknown or missing kind 'dance'"),
    (GOOD.replace("oracle: emt", "oracle: vaspp"), "unknown oracle 'vaspp'"),
    (GOOD.replace("batch_size: 4", "batch_size: 0"), "batch_size: Input should be greater than or equal to 1"),
    (GOOD.replace("name: cu", "nmae: cu"), "nmae: unknown key"),
    (GOOD.replace("structure: fcc", "structure: fccc"), "structures.0.prototype.structure"),
    (GOOD.replace("a: 3.61", "a: -3"), "structures.0.prototype.a"),
    (GOOD.replace("prototype: {formula: Cu, structure: fcc, a: 3.61, cubic: true}", "file: nothere.cif"),
     "nothere.cif does not exist"),
    (GOOD.replace("Cu,", "Si,").replace("fcc", "diamond").replace("3.61", "5.43"), "oracle 'emt' has no parameters for Si"),
    (GOOD.replace("a: 3.61", "a: 0.6"), "below the minimum distance"),
    (GOOD.replace("structures:\n  - prototype: {formula: Cu, structure: fcc, a: 3.61, cubic: true}\n    perturb: {count: 6, seed: 2}", "structures: []"),
     "structures: List should have at least 1 item"),
    ("kind: oracle_batch\noracle: emt\nstructures:\n  - {file: a.cif, prototype: {formula: Cu, structure: fcc, a: 3.6}}\n",
     "exactly one of 'file' or 'prototype'"),
]


@pytest.mark.parametrize("text,message", BAD_SPECS)
def test_bad_specs_fail_clearly_and_write_nothing(tmp_path, project, text, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    store = project.parent / "store.json"
    before = store.read_bytes()
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_from_spec(spec)
    res = subprocess.run([sys.executable, "-m", "workflows.cli", "submit", str(spec), "-l", str(project)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "Error:" in res.stderr and "Traceback" not in res.stderr
    assert store.read_bytes() == before


def test_malformed_structure_file(tmp_path):
    (tmp_path / "bad.cif").write_text("data_x\n_cell_length_a what\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("kind: oracle_batch\noracle: emt\nstructures:\n  - file: bad.cif\n")
    with pytest.raises(SpecError, match="bad.cif"):
        build_from_spec(spec)


def test_submit_run_status_end_to_end(tmp_path, project):
    from click.testing import CliRunner

    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    runner = CliRunner()
    res = runner.invoke(cli, ["submit", str(spec), "-l", str(project)])
    assert res.exit_code == 0, res.output
    assert "2 firework(s)" in res.output
    res = runner.invoke(cli, ["submit", str(spec), "-l", str(project), "--if-new"])
    assert "skipped" in res.output
    res = runner.invoke(cli, ["run", "-l", str(project), "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "completed 2, fizzled 0" in res.output
    res = runner.invoke(cli, ["status", "-l", str(project)])
    assert res.exit_code == 0, res.output
    assert "configurations: 6" in res.output and "COMPLETED  ml   2" in res.output


@pytest.mark.parametrize("command", [[], ["init"], ["submit"], ["run"], ["status"]])
def test_help_everywhere(command):
    from click.testing import CliRunner

    res = CliRunner().invoke(cli, command + ["--help"])
    assert res.exit_code == 0 and "Usage:" in res.output


def test_init_refuses_to_overwrite_and_checks_uri(tmp_path, project):
    res = subprocess.run([sys.executable, "-m", "workflows.cli", "init", str(project.parent)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "exists; pass --force" in res.stderr
    res = subprocess.run([sys.executable, "-m", "workflows.cli", "init", str(tmp_path / "x"), "--mongodb-uri", "http://x"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "must start with mongodb://" in res.stderr


def test_report_writes_plots_and_html(tmp_path, project):
    from click.testing import CliRunner

    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    runner = CliRunner()
    runner.invoke(cli, ["submit", str(spec), "-l", str(project)])
    runner.invoke(cli, ["run", "-l", str(project)])
    res = runner.invoke(cli, ["report", "cu", "-l", str(project), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    index = (tmp_path / "rep" / "index.html").read_text()
    assert "energy_force_histograms.png" in index and "6 stored, 0 failed" in index
    assert (tmp_path / "rep" / "wf_000" / "energy_force_histograms.png").stat().st_size > 5000
    res = runner.invoke(cli, ["report", "nope", "-l", str(project), "-o", str(tmp_path / "rep2")])
    assert res.exit_code != 0 and "no workflow named" in str(res.exception)
