"""Fixtures of the chat channels: a demo-city database per test module, local fakes of the WeChat and Telegram
APIs, a Runtime configured for both channels, and a player of the WeChat server that signs and encrypts with
wechatpy's own code."""

from __future__ import annotations

import os
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import xmltodict
from sqlmodel import Session, select
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from admin.app import build_app
from admin.runtime import Runtime
from core import users
from core.cases import Actor
from core.config import load_settings
from core.crs import from_wgs84
from core.models import CaseFile, Report
from tests.bots.fakes import FakeTelegram, FakeWeChat, serve
from tests.conftest import _new_database

WECHAT_TOKEN = "gridline-test-token"
WECHAT_APPID = "wx1234567890abcdef"
WECHAT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them
TELEGRAM_TOKEN = "123456:TEST-token_for-gridline"
TELEGRAM_SECRET = "webhook-secret_42"
# 人民路88号 in the demo city (a door plate), as WGS-84 and as WeChat sends it (GCJ-02)
DOOR_88 = (120.5981418, 29.9999542)
DOOR_88_GCJ = from_wgs84(*DOOR_88, "gcj02")
DOOR_88_CELL = "339901001003004"


@pytest.fixture(scope="module")
def fakes():
    wechat, telegram = FakeWeChat(), FakeTelegram(TELEGRAM_TOKEN)
    with serve(wechat.app) as wechat_url, serve(telegram.app) as telegram_url:
        yield SimpleNamespace(wechat=wechat, wechat_url=wechat_url, telegram=telegram, telegram_url=telegram_url)


def channel_env(folder, url: str, fakes) -> dict[str, str]:
    return {
        "GRIDLINE_DATABASE_URL": url,
        "GRIDLINE_DATA_DIR": str(folder / "var"),
        "GRIDLINE_WECHAT_TOKEN": WECHAT_TOKEN,
        "GRIDLINE_WECHAT_APPID": WECHAT_APPID,
        "GRIDLINE_WECHAT_SECRET": "wechat-app-secret",
        "GRIDLINE_WECHAT_AES_KEY": WECHAT_AES_KEY,
        "GRIDLINE_WECHAT_API_BASE": fakes.wechat_url,
        "GRIDLINE_TELEGRAM_TOKEN": TELEGRAM_TOKEN,
        "GRIDLINE_TELEGRAM_SECRET": TELEGRAM_SECRET,
        "GRIDLINE_TELEGRAM_API_BASE": fakes.telegram_url,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory, _demo_template, fakes):
    """One demo-city database and Runtime for a test module; tests keep apart by using users of their own."""
    folder = tmp_path_factory.mktemp("bots")
    url, _, drop = _new_database(_demo_template, folder)
    env = channel_env(folder, url, fakes)
    runtime = Runtime(load_settings(environ=env))
    runtime.intake  # noqa: B018  (build the classifier and indexes once for the module)
    yield SimpleNamespace(runtime=runtime, env={**os.environ, **env}, fakes=fakes, folder=folder)
    runtime.close()
    drop()


@pytest.fixture
async def client(world, aiohttp_client):
    return await aiohttp_client(build_app(world.runtime))


def new_user(prefix: str = "o") -> str:
    return f"{prefix}{uuid.uuid4().hex[:20]}"


def reports_of(runtime: Runtime, channel: str, sender: str) -> list[Report]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Report).where(Report.channel == channel, Report.sender == sender)).all())


def case_of(runtime: Runtime, report: Report) -> CaseFile:
    with Session(runtime.engine) as session:
        return session.get(CaseFile, report.case_id)


def walk(runtime: Runtime, number: str, after: str, steps: slice = slice(None)) -> None:
    """Move a case along the loop as the centre's staff would (one new user per role; the department is HW), with
    ``after`` as the after-photo; ``steps`` picks part of the way (受理 立案 派遣 处置 核查 结案)."""
    loop = (
        ("accept", "operator", {"matter_code": "06010"}),
        ("file", "shift_lead", {"level": 1}),
        ("dispatch", "dispatcher", {"department": "HW"}),
        ("complete", "department", {"attachments": [after]}),
        ("check", "collector", {"passed": True, "attachments": [after]}),
        ("close", "shift_lead", {}),
    )
    tag, staff = uuid.uuid4().hex[:8], {}
    for action, role, fields in loop[steps]:
        if role not in staff:
            department = "HW" if role == "department" else None
            staff[role] = Actor.of(users.add_user(runtime.engine, f"{role}-{tag}", role, department=department))
        runtime.loop.act(number, action, staff[role], fields)


class WeChatPlayer:
    """Plays the WeChat server against /wechat: signs with wechatpy's signer, encrypts with wechatpy's crypto."""

    def __init__(self, client, token: str = WECHAT_TOKEN, aes: bool = False, appid: str = WECHAT_APPID) -> None:
        self.client = client
        self.token = token
        self.crypto = WeChatCrypto(token, WECHAT_AES_KEY, appid) if aes else None
        self.account = "gh_gridline"

    def signed_query(self, token: str | None = None) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        signer = WeChatSigner()
        signer.add_data(token or self.token, timestamp, nonce)
        return {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce, "openid": "x"}

    def xml(self, user: str, kind: str, msg_id: int | None = None, **fields: Any) -> str:
        body = {"ToUserName": self.account, "FromUserName": user, "CreateTime": str(int(time.time())),
                "MsgType": kind, **{k: str(v) for k, v in fields.items()}}  # fmt: skip
        if msg_id is not None:
            body["MsgId"] = str(msg_id)
        return xmltodict.unparse({"xml": body}, full_document=False)

    async def post(self, xml: str, query: dict[str, str] | None = None):
        """POST a message as WeChat would; returns (status, reply dict or None, raw text)."""
        query = dict(query or self.signed_query())
        body = xml
        if self.crypto is not None:
            body = self.crypto.encrypt_message(xml, query["nonce"], query["timestamp"])
            envelope = xmltodict.parse(body)["xml"]
            query.update(encrypt_type="aes", msg_signature=envelope["MsgSignature"])
        resp = await self.client.post("/wechat", params=query, data=body.encode())
        raw = await resp.text()
        if resp.status != 200 or raw in ("success", ""):
            return resp.status, None, raw
        if self.crypto is not None:
            envelope = xmltodict.parse(raw)["xml"]
            raw = self.crypto.decrypt_message(raw, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"])
        return resp.status, xmltodict.parse(raw)["xml"], raw

    async def say(self, user: str, kind: str = "text", msg_id: int | None = None, **fields: Any) -> str:
        """Send one message and return the text of the passive reply (asserting there is one)."""
        msg_id = msg_id if msg_id is not None else int(uuid.uuid4().int % 10**18)
        status, reply, raw = await self.post(self.xml(user, kind, msg_id, **fields))
        assert status == 200 and reply is not None, raw
        assert reply["ToUserName"] == user and reply["FromUserName"] == self.account
        return reply["Content"]
