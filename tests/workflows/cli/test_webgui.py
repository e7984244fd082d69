"""`pes webgui` works offline: no page loads anything from another host, the vendored assets are served."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from pes_core.sampling import rattled_strained
from workflows.core.backend import open_backend
from workflows.core.runner import run_local
from workflows.oracle.builders import oracle_workflow

CHROMIUM = next((p for p in map(shutil.which, ("chromium-headless-shell", "chromium", "chromium-browser",
                                                "google-chrome")) if p), None)


class _Assets(HTMLParser):
    """URLs a browser loads for a page: script src, stylesheet/icon href, img src."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href"):
            self.urls.append(a["href"])


def _assets(html: str) -> list[str]:
    p = _Assets()
    p.feed(html)
    return p.urls


def _external(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url))


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, ""


@pytest.fixture
def monitor(project):
    """`pes webgui` on 127.0.0.1 over a completed 2-firework oracle workflow; yields (base URL, fw_ids)."""
    parent = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True))
    with open_backend(project) as b:
        ids = sorted(b.lp.add_wf(oracle_workflow(rattled_strained(parent, 2, seed=2), "emt", batch_size=1,
                                                 name="offline")).values())
        assert run_local(b, progress=False).completed == 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "webgui", "-l", str(project),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(base + "/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("pes webgui did not start")
        yield base, ids
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_pages_load_nothing_from_other_hosts(monitor):
    import fireworks.flask_site

    base, ids = monitor
    fw_static = Path(fireworks.flask_site.__file__).parent / "static"
    pages = {"/": None, f"/wf/{ids[0]}": None, f"/fw/{ids[1]}": None}
    local = set()
    for path in pages:
        status, html = _get(base + path)
        assert status == 200, path
        urls = _assets(html)
        external = [u for u in urls if _external(u)]
        assert not external, f"{path} loads {external}"
        local.update(urls)
        pages[path] = html
    assert "/pes-static/jquery-1.11.1.min.js" in local  # the CDN jQuery, now vendored
    missing = []
    for url in sorted(local):
        status, body = _get(base + url)
        if status != 200:
            missing.append(url)
        elif url.endswith(".css"):
            assert not re.search(r"@import\s+url\(\s*[\"']?(https?:)?//", body), f"{url} imports from the internet"
        elif url.startswith("/pes-static/jquery"):
            assert body.startswith("/*! jQuery v1.11.1 | (c) 2005, 2014 jQuery Foundation")  # licence header kept
    # FireWorks' templates link a font-awesome stylesheet its package does not ship (404 online and offline)
    assert missing == ["/static/font-awesome-4.0.3/css/font-awesome.css"]
    assert not (fw_static / "font-awesome-4.0.3").exists()
    # our metadata reaches the workflow page (rendered from this JSON by jQuery's JSONView)
    wf_page = pages[f"/wf/{ids[0]}"]
    assert '"pes_kind": "oracle_batch"' in wf_page and '"oracle": "emt"' in wf_page
    assert "offline" in pages["/"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install -y chromium-headless-shell)")
def test_headless_chromium_renders_graph_and_metadata(monitor, tmp_path):
    """The browser view, offline: the workflow graph (cytoscape canvas) and the JSONView metadata are drawn."""
    base, ids = monitor

    def dump(path: str) -> str:
        res = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
                              "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",  # no internet
                              "--dump-dom", base + path], check=False, capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout

    def shown(dom: str, key: str, value: str) -> bool:  # a "key": "value" line drawn by jQuery's JSONView
        return f'{key}<span class="q">"</span></span>: <span class="string">"{value}"' in dom

    wf_dom = dump(f"/wf/{ids[0]}")
    assert 'data-id="layer2-node"' in wf_dom  # cytoscape drew the graph
    assert '<div class="jsonview">' in wf_dom  # only there when jQuery loaded
    assert shown(wf_dom, "pes_kind", "oracle_batch") and shown(wf_dom, "oracle", "emt")
    fw_dom = dump(f"/fw/{ids[1]}")
    assert '<div class="jsonview">' in fw_dom and shown(fw_dom, "name", "oracle emt Cu [1/2]")
    shot = tmp_path / "wf.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
                    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1", "--window-size=1200,900",
                    f"--screenshot={shot}", base + f"/wf/{ids[0]}"], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000
