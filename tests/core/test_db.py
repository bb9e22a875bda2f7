"""Storage: migrations, pragmas and the unit of work, on whichever database the suite runs against."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel, select

from core import db
from core.models import Department


def test_schema_is_at_head_with_all_tables(engine):
    assert db.current_revision(engine) == db.head_revision() != ""
    tables = set(inspect(engine).get_table_names())
    assert {"taxonomy_item", "filing_condition", "region", "grid_cell", "place", "department", "component"} <= tables


def test_the_migrations_make_the_tables_the_models_describe(engine):
    """A column, index or constraint added to core/models.py without its migration (or the other way round) would
    make a database that `gridline init` builds differ from the one the code expects."""
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_upgrade_is_idempotent(engine):
    assert db.upgrade(engine) == db.upgrade(engine) == db.head_revision()


def test_session_scope_rolls_back_on_error(engine):
    try:
        with db.session_scope(engine) as s:
            s.add(Department(code="D1", name="环卫所"))
            s.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with db.session_scope(engine) as s:
        assert s.exec(select(Department)).all() == []


def test_sqlite_runs_in_wal_with_foreign_keys(engine):
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_postgres_urls_use_psycopg3():
    assert db.normalise_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalise_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.database_kind("sqlite:///x.db") == "sqlite"
