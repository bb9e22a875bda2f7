"""The Telegram bot through its webhook inside Gridline's app, against a local fake of the Bot API."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import time

import pytest
from sqlmodel import Session, select

from admin.cli import main as gridline
from bots.routes import BOTS
from core.crs import distance_m
from core.models import Outbox
from tests.bots.conftest import DOOR_88, DOOR_88_CELL, TELEGRAM_SECRET, TELEGRAM_TOKEN, case_of, reports_of
from tests.bots.fakes import png

_updates = itertools.count(int(time.time() * 1000) % 10**9)
_chats = itertools.count(7_000_000 + int(time.time()) % 1_000_000)


def update(chat_id: int, **message) -> dict:
    return {
        "update_id": next(_updates),
        "message": {
            "message_id": next(_updates),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "市民"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "市民"},
            **message,
        },
    }


def command(chat_id: int, text: str) -> dict:
    name = text.split()[0]
    return update(chat_id, text=text, entities=[{"type": "bot_command", "offset": 0, "length": len(name)}])


async def post(client, body: dict, secret: str | None = TELEGRAM_SECRET):
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return await client.post("/telegram/webhook", json=body, headers=headers)


async def says(client, fake, chat_id: int, body: dict) -> str:
    before = len(fake.texts_to(chat_id))
    resp = await post(client, body)
    assert resp.status == 200, await resp.text()
    return "\n".join(fake.texts_to(chat_id)[before:])


async def test_the_webhook_wants_the_secret_token(client, world):
    chat = next(_chats)
    assert (await post(client, command(chat, "/start"), secret=None)).status == 403
    assert (await post(client, command(chat, "/start"), secret="wrong")).status == 403
    assert (await client.post("/telegram/webhook", data=b"{not json", headers={
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})).status == 400  # fmt: skip
    assert world.fakes.telegram.texts_to(chat) == []


async def test_a_full_report_with_photo_and_location(world, client, caplog):
    caplog.set_level(logging.INFO)
    rt, fake = world.runtime, world.fakes.telegram
    chat = next(_chats)
    assert "数字城管" in await says(client, fake, chat, command(chat, "/start"))
    assert "描述" in await says(client, fake, chat, command(chat, "/report"))
    asked = await says(client, fake, chat, update(chat, text="有人占道摆摊卖水果"))
    assert "什么位置" in asked
    keyboard = fake.sent[-1]["reply_markup"]["keyboard"]
    assert any(b.get("request_location") for row in keyboard for b in row)  # a button to share the location
    fake.files["ph-1"] = png(21)
    photo = [{"file_id": "ph-1", "file_unique_id": "u1", "width": 800, "height": 600, "file_size": 2000}]
    assert "已收到照片" in await says(client, fake, chat, update(chat, photo=photo, caption=""))
    summary = await says(client, fake, chat, update(chat, location={"longitude": DOOR_88[0], "latitude": DOOR_88[1]}))
    assert "占道经营" in summary and DOOR_88_CELL in summary
    receipt = await says(client, fake, chat, update(chat, text="确认"))
    [report] = reports_of(rt, "telegram", str(chat))
    case = case_of(rt, report)
    assert f"编号 {case.number}" in receipt
    assert case.matter_code == "09006" and case.grid_code == DOOR_88_CELL and case.source == "telegram"
    assert distance_m(report.lon, report.lat, *DOOR_88) < 0.01 and len(report.media) == 1
    status = await says(client, fake, chat, command(chat, f"/status {case.number}"))
    assert case.number in status and "等待受理员受理" in status
    assert TELEGRAM_TOKEN not in caplog.text and str(chat) not in caplog.text  # no bot token, no chat id in the log


async def test_a_redelivered_update_is_processed_once(world, client):
    rt, fake = world.runtime, world.fakes.telegram
    chat = next(_chats)
    await says(client, fake, chat, update(chat, text="人民路88号门口一大堆垃圾没人清"))
    await says(client, fake, chat, update(chat, text="跳过"))
    confirm = update(chat, text="确认")
    answers = await asyncio.gather(*(post(client, confirm) for _ in range(3)))
    assert [a.status for a in answers] == [200, 200, 200]
    assert sum("已登记" in t for t in fake.texts_to(chat)) == 1
    assert len(reports_of(rt, "telegram", str(chat))) == 1


async def test_voice_without_a_recogniser_asks_for_text_and_cancel_works(world, client):
    fake = world.fakes.telegram
    chat = next(_chats)
    ogg = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
         "-c:a", "libopus", "-f", "ogg", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    fake.files["vo-1"] = ogg
    voice = {"file_id": "vo-1", "file_unique_id": "v1", "duration": 1, "mime_type": "audio/ogg", "file_size": len(ogg)}
    assert "请发文字" in await says(client, fake, chat, update(chat, voice=voice))
    await says(client, fake, chat, update(chat, text="井盖没了"))
    assert "已取消" in await says(client, fake, chat, command(chat, "/cancel"))
    sticker = {"file_id": "s", "file_unique_id": "s", "width": 1, "height": 1, "is_animated": False,
               "is_video": False, "type": "regular"}  # fmt: skip
    assert "暂不支持" in await says(client, fake, chat, update(chat, sticker=sticker))


async def test_a_failed_reply_is_kept_and_sent_later(world, client):
    rt, fake = world.runtime, world.fakes.telegram
    chat = next(_chats)
    fake.fail_sends = 1
    resp = await post(client, update(chat, text="你好"))
    assert resp.status == 200 and fake.texts_to(chat) == []
    with Session(rt.engine) as s:
        row = s.exec(select(Outbox).where(Outbox.recipient == str(chat))).one()
        assert row.kind == "reply" and row.status == "pending"
    await client.server.app[BOTS].notifier.deliver()
    assert any("数字城管" in t for t in fake.texts_to(chat))


async def test_polling_mode_runs_the_same_handlers(world):
    from bots.telegram_bot import TelegramBot

    fake = world.fakes.telegram
    chat = next(_chats)
    contact = {"phone_number": "+8613800000000", "first_name": "市民", "user_id": chat}
    fake.updates.extend([command(chat, "/start"), update(chat, contact=contact)])
    bot = TelegramBot(world.runtime.settings, world.runtime.dialogue, polling=True)
    await bot.app.initialize()
    await bot.app.updater.start_polling(poll_interval=0.05)
    await bot.app.start()
    try:
        for _ in range(100):
            if len(fake.texts_to(chat)) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await bot.app.updater.stop()
        await bot.app.stop()
        await bot.app.shutdown()
    texts = fake.texts_to(chat)
    assert "数字城管" in texts[0] and "联系电话" in texts[1]


def test_set_webhook_registers_the_url_with_the_secret(world, monkeypatch, capsys):
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    assert gridline(["telegram", "set-webhook", "https://gridline.example.org/telegram/webhook", "--json"]) == 0
    hook = world.fakes.telegram.webhooks[-1]
    assert hook["url"] == "https://gridline.example.org/telegram/webhook"
    assert hook["secret_token"] == TELEGRAM_SECRET
    assert gridline(["telegram", "set-webhook", "ftp://nope"]) == 2


@pytest.mark.parametrize("body", [{"update_id": "x"}, {"message": {}}, []])
async def test_malformed_updates_are_refused(client, body):
    assert (await post(client, body)).status == 400
