"""A real `gridline serve` for the tests that must talk HTTP to a running server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import _new_database

PEOPLE = (
    ("op", "operator", None),
    ("lead", "shift_lead", None),
    ("disp", "dispatcher", None),
    ("hw", "department", "HW"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, _demo_template):
    """`gridline serve` on a copy of the demo database with one user per role: (base URL, {name: token})."""
    folder = tmp_path_factory.mktemp("live")
    url, _, drop = _new_database(_demo_template, folder)
    gridline = str(Path(sys.executable).with_name("gridline"))
    port = _free_port()
    env = {
        **os.environ,
        "GRIDLINE_DATABASE_URL": url,
        "GRIDLINE_DATA_DIR": str(folder / "var"),
        "GRIDLINE_HTTP_PORT": str(port),
    }
    tokens = {}
    for name, role, dept in PEOPLE:
        subprocess.run(
            [gridline, "user", "add", name, "--role", role, *(["--department", dept] if dept else [])],
            env=env,
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [gridline, "token", "create", name, "--json"], env=env, check=True, capture_output=True, text=True
        ).stdout
        tokens[name] = json.loads(out)["token"]
    log = (folder / "serve.log").open("w")
    proc = subprocess.Popen([gridline, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            break
        except OSError:
            assert proc.poll() is None, (folder / "serve.log").read_text()
            time.sleep(0.1)
    yield base, tokens
    proc.terminate()
    proc.wait(timeout=10)
    drop()
