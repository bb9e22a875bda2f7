"""A real `gridline serve` for the tests that must talk HTTP to a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness import free_port, serving
from tests.conftest import _new_database

PEOPLE = (
    ("op", "operator", None),
    ("lead", "shift_lead", None),
    ("disp", "dispatcher", None),
    ("hw", "department", "HW"),
)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, _demo_template):
    """`gridline serve` on a copy of the demo database with one user per role: (base URL, {name: token})."""
    folder = tmp_path_factory.mktemp("live")
    url, _, drop = _new_database(_demo_template, folder)
    gridline = str(Path(sys.executable).with_name("gridline"))
    port = free_port()
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
    with serving(env, folder / "serve.log") as base:
        yield base, tokens
    drop()
