"""Fixtures shared by the whole suite.

Every test that touches storage gets a database of its own, migrated to head: on SQLite a copy of a
template file, on PostgreSQL (``GRIDLINE_TEST_DATABASE_URL`` names a server's maintenance database) a
``CREATE DATABASE … TEMPLATE`` clone, dropped afterwards. So the same tests run on both.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from core import db

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GRIDLINE_SHARED", REPO.parent / "shared"))
PG_ADMIN_URL = os.environ.get("GRIDLINE_TEST_DATABASE_URL", "")
_counter = itertools.count()


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or a visible skip when this checkout has none."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def _template_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if PG_ADMIN_URL:
        admin = sa_create_engine(db.normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
        name = f"gridline_tmpl_{os.getpid()}"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(db.normalise_url(PG_ADMIN_URL)).set(database=name)
        engine = db.make_engine(url.render_as_string(hide_password=False))
        db.upgrade(engine)
        engine.dispose()
        yield name
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        engine.dispose()  # the last connection to close checkpoints the WAL into the file
        yield str(path)


def _new_database(template: str, folder: Path) -> tuple[str, str, Callable[[], None]]:
    """A fresh database cloned from a template: (url, its own template id, drop). A template id is a file path
    on SQLite and a database name on PostgreSQL."""
    if not PG_ADMIN_URL:
        path = folder / f"gridline-{next(_counter)}.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}", str(path), lambda: None
    admin = sa_create_engine(db.normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"gridline_t_{os.getpid()}_{next(_counter)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(db.normalise_url(PG_ADMIN_URL)).set(database=name)
    return url.render_as_string(hide_password=False), name, drop


@pytest.fixture
def db_url(_template_url: str, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh database at the newest schema, for this test alone."""
    url, _, drop = _new_database(_template_url, tmp_path)
    yield url
    drop()


@pytest.fixture(scope="session")
def _demo_template(_template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The default taxonomy and the demo city, loaded once through `gridline init --demo`; only ever cloned."""
    from admin.cli import main

    folder = tmp_path_factory.mktemp("demo")
    url, template, drop = _new_database(_template_url, folder)
    saved = {k: os.environ.get(k) for k in ("GRIDLINE_DATABASE_URL", "GRIDLINE_DATA_DIR")}
    os.environ.update(GRIDLINE_DATABASE_URL=url, GRIDLINE_DATA_DIR=str(folder / "var"))
    try:
        assert main(["init", "--demo"]) == 0
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield template
    drop()


@pytest.fixture(scope="session")
def demo_db_url(_demo_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One demo-city database shared by the whole run: tests that use it must only read."""
    url, _, drop = _new_database(_demo_template, tmp_path_factory.mktemp("demo-shared"))
    yield url
    drop()


@pytest.fixture
def demo_url(_demo_template: str, tmp_path: Path) -> Iterator[str]:
    """A demo-city database of this test's own, to change at will."""
    url, _, drop = _new_database(_demo_template, tmp_path)
    yield url
    drop()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()
