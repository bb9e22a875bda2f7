"""What the benchmarks (and the tests that start a real server) need around the code they measure: a scratch
PostgreSQL database, a free port, and a `gridline serve` process that is up before the first request."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from core import db


def scratch_postgres(name: str) -> str | None:
    """A new, empty database ``name`` on ``GRIDLINE_BENCH_PG``'s server (default: the local one), or None when
    there is no server: the result tables say so instead of failing."""
    admin_url = db.normalise_url(os.environ.get("GRIDLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    try:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except Exception:
        return None
    return admin_url.rsplit("/", 1)[0] + "/" + name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_city(url: str, folder: Path) -> dict[str, str]:
    """The environment of a demo city that `gridline init --demo` made in ``folder`` and the database ``url``, with
    a free HTTP port: for `serving`, and for a Runtime beside it that seeds the city."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GRIDLINE_DATABASE_URL": url,
        "GRIDLINE_DATA_DIR": str(folder),
        "GRIDLINE_LOG_LEVEL": "WARNING",
        "GRIDLINE_HTTP_PORT": str(free_port()),
    }
    gridline = str(Path(sys.executable).with_name("gridline"))
    subprocess.run([gridline, "init", "--demo"], env=env, check=True, stdout=subprocess.DEVNULL)
    return env


@contextmanager
def serving(env: Mapping[str, str], log_path: Path, *args: str) -> Iterator[str]:
    """`gridline serve` in its own process with ``env`` (which names GRIDLINE_HTTP_PORT); yields its base URL once
    /healthz answers, and stops it on exit. Its output goes to ``log_path``."""
    command = [str(Path(sys.executable).with_name("gridline")), "serve", *args]
    base = f"http://127.0.0.1:{env['GRIDLINE_HTTP_PORT']}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
