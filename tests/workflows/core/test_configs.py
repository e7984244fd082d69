"""The shipped launchpad/fworker/qadapter examples and the docker files parse and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "launchpad_configs").glob("my_launchpad*.yaml")))
def test_launchpad_examples_load(name):
    from workflows.core.backend import LaunchpadConfig

    cfg = LaunchpadConfig.from_file(ROOT / "launchpad_configs" / name)
    assert cfg.is_embedded == ("embedded" in name)
    d = yaml.safe_load((ROOT / "launchpad_configs" / name).read_text())
    if d.get("uri_mode"):
        assert d["host"].startswith(("mongodb://", "mongodb+srv://"))
    elif not cfg.is_embedded:
        from fireworks import LaunchPad

        # FireWorks itself accepts it (pymongo connects lazily: nothing is contacted)
        assert LaunchPad.from_dict(d).name == "pes"


@pytest.mark.parametrize("name", ["my_fworker_dft.yaml", "my_fworker_ml.yaml"])
def test_fworker_examples(name):
    from fireworks import FWorker

    w = FWorker.from_file(str(ROOT / "launchpad_configs" / name))
    assert w.category in ("dft", "ml") and "pes_launchpad" in w.env


@pytest.mark.parametrize("name,q_type", [("my_qadapter_slurm.yaml", "SLURM"), ("my_qadapter_pbs.yaml", "PBS")])
def test_qadapter_examples_render(tmp_path, name, q_type):
    from fireworks.utilities.fw_serializers import load_object_from_file

    qa = load_object_from_file(str(ROOT / "launchpad_configs" / name))
    assert qa.q_type == q_type
    script = qa.get_script_str(str(tmp_path))
    assert "rlaunch" in script and ("#SBATCH" in script if q_type == "SLURM" else "#PBS" in script)


def test_docker_compose_parses():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    assert {"mongodb", "dft-worker", "ml-worker", "webgui"} <= set(compose["services"])
    for svc in ("dft-worker", "ml-worker"):
        cmd = compose["services"][svc]["command"]
        fworker = cmd[cmd.index("-w") + 1].replace("/config/", "")
        assert (ROOT / "docker" / "config" / fworker).is_file()
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile
