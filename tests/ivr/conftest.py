"""Fixtures of the hotline tests: the demo city's runtime, prompts made once by `gridline ivr prompts`, and a
factory for AGI servers on loopback (port 0, so parallel runs never clash)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from admin.runtime import Runtime
from core import db
from core.config import load_settings
from ivr.hotline import Hotline
from ivr.prompts import DIGITS, PromptSet, catalogue
from ivr.server import AgiServer
from tests.conftest import _new_database
from tests.ivr.fakes import FakeAsterisk, ScriptedSpeech

FAST = 450  # words per minute: the real-Asterisk calls take turns with these prompts, so shorter is quicker


@pytest.fixture(scope="session")
def ivr_env(_demo_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Settings of one writable demo-city database for the hotline tests, with all its prompts generated."""
    folder = tmp_path_factory.mktemp("ivr")
    url, _, drop = _new_database(_demo_template, folder)
    env = {"GRIDLINE_DATABASE_URL": url, "GRIDLINE_DATA_DIR": str(folder / "var")}
    engine = db.make_engine(url)
    texts = {**catalogue(engine), **DIGITS}
    engine.dispose()
    PromptSet((folder / "var" / "prompts").resolve()).generate(texts, speed=FAST)
    yield env
    drop()


@pytest.fixture(scope="session")
def ivr_runtime(ivr_env: dict[str, str]) -> Iterator[Runtime]:
    runtime = Runtime(load_settings(environ=ivr_env))
    runtime.geocoder  # noqa: B018  (build the indexes once for the whole session)
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def prompt_set(ivr_env: dict[str, str]) -> PromptSet:
    return PromptSet(Path(ivr_env["GRIDLINE_DATA_DIR"]).resolve() / "prompts")


@pytest.fixture
def make_hotline(ivr_runtime: Runtime, prompt_set: PromptSet, tmp_path: Path) -> Iterator[Callable[..., Hotline]]:
    made: list[Hotline] = []

    def make(speech: Any = "scripted", **kw: Any) -> Hotline:
        hotline = ivr_runtime.hotline(
            kw.pop("prompts", prompt_set),
            kw.pop("workdir", tmp_path / "calls"),
            ScriptedSpeech() if speech == "scripted" else speech,
            **kw,
        )
        made.append(hotline)
        return hotline

    yield make
    for hotline in made:
        hotline.close()


@pytest.fixture
async def ivr(make_hotline: Callable[..., Hotline]) -> AsyncIterator[Callable[..., Any]]:
    """``await ivr(**hotline_options)`` → (server, fake Asterisk, hotline), on a free loopback port."""
    servers: list[AgiServer] = []

    async def start(**kw: Any) -> tuple[AgiServer, FakeAsterisk, Hotline]:
        hotline = make_hotline(**kw)
        hotline.check()
        server = AgiServer(hotline, "127.0.0.1", 0)
        await server.start()
        servers.append(server)
        return server, FakeAsterisk(server.port), hotline

    yield start
    for server in servers:
        await server.close()
