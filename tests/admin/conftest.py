"""A real `gridline serve` for the tests that must talk HTTP to a running server."""

from __future__ import annotations

import os

import pytest

from bench.harness import free_port, serving
from core import db, users
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
    port = free_port()
    env = {
        **os.environ,
        "GRIDLINE_DATABASE_URL": url,
        "GRIDLINE_DATA_DIR": str(folder / "var"),
        "GRIDLINE_HTTP_PORT": str(port),
    }
    engine = db.make_engine(url)  # the accounts through core's own API: eight CLI starts took 20 s of setup
    for name, role, dept in PEOPLE:
        users.add_user(engine, name, role, department=dept)
    tokens = {name: users.create_token(engine, name) for name, _, _ in PEOPLE}
    engine.dispose()
    with serving(env, folder / "serve.log") as base:
        yield base, tokens
    drop()
