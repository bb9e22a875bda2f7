"""The WeChat official account through HTTP, with the test playing the WeChat server (wechatpy's signer and crypto)
and a local fake of the WeChat API for media, customer-service messages, templates and the menu."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import urllib.parse
import urllib.request
import wave
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from admin.cli import main as gridline
from bench.harness import free_port, serving
from bots import storage
from bots.privacy import mask
from bots.routes import BOTS
from bots.wechat import Client, WeChat
from core.crs import distance_m
from core.models import ChannelDelivery, Conversation, Outbox
from tests.bots.conftest import (
    DOOR_88,
    DOOR_88_CELL,
    DOOR_88_GCJ,
    WECHAT_TOKEN,
    WeChatPlayer,
    case_of,
    new_user,
    reports_of,
    walk,
)
from tests.bots.fakes import amr, png


def location(lon_lat: tuple[float, float]) -> dict[str, object]:
    lon, lat = lon_lat
    return {"Location_X": f"{lat:.7f}", "Location_Y": f"{lon:.7f}", "Scale": "16", "Label": "人民路88号附近"}


async def test_url_verification_echoes_only_for_our_signature(client):
    player = WeChatPlayer(client)
    ok = await client.get("/wechat", params={**player.signed_query(), "echostr": "e-42"})
    assert ok.status == 200 and await ok.text() == "e-42"
    forged = await client.get("/wechat", params={**player.signed_query(token="not-ours"), "echostr": "e-42"})
    assert forged.status == 403 and "e-42" not in await forged.text()


@pytest.mark.parametrize("aes", [False, True], ids=["plain", "safe-mode"])
async def test_a_full_report_with_photo_and_location(world, client, aes):
    rt, fake = world.runtime, world.fakes.wechat
    player, user = WeChatPlayer(client, aes=aes), new_user()
    fake.media["photo-1"] = (png(11), "image/png")
    assert "什么位置" in await player.say(user, Content="下水道井盖破了")
    answer = await player.say(user, "location", **location(DOOR_88_GCJ))
    assert "已收到位置" in answer and "现场照片" in answer
    summary = await player.say(user, "image", PicUrl="http://example.invalid/p.jpg", MediaId="photo-1")
    assert "污水井盖异常" in summary and DOOR_88_CELL in summary
    receipt = await player.say(user, Content="确认")
    [report] = reports_of(rt, "wechat", user)
    case = case_of(rt, report)
    assert f"编号 {case.number}" in receipt
    assert case.matter_code == "01002" and case.grid_code == DOOR_88_CELL and case.source == "wechat"
    assert distance_m(report.lon, report.lat, *DOOR_88) < 1  # GCJ-02 from WeChat, stored as WGS-84
    assert [m["media_type"] for m in report.media] == ["image/png"]


async def test_the_same_message_three_times_at_once_is_one_report_answered_each_time_in_time(world, client):
    rt = world.runtime
    player, user = WeChatPlayer(client), new_user()
    await player.say(user, Content="人民路88号门口一大堆垃圾没人清")
    await player.say(user, Content="跳过")
    confirm = player.xml(user, "text", 880001 + int(time.time()), Content="确认")
    started = time.monotonic()

    async def deliver():
        status, reply, _raw = await player.post(confirm)
        return status, reply, time.monotonic() - started

    results = await asyncio.gather(deliver(), deliver(), deliver())
    assert all(status == 200 and took < 5 for status, _, took in results)
    contents = {reply["Content"] for _, reply, _ in results if reply is not None}
    assert len(contents) == 1 and "已登记" in contents.pop()
    assert len(reports_of(rt, "wechat", user)) == 1
    _, again, _ = await player.post(confirm)  # a fourth, later retry: the same answer, still one report
    assert "已登记" in again["Content"] and len(reports_of(rt, "wechat", user)) == 1


async def test_forged_wrong_appid_malformed_huge_and_unknown_messages_are_refused_or_answered(world, client):
    rt = world.runtime
    player, user = WeChatPlayer(client), new_user("bad")
    text = player.xml(user, "text", 990001, Content="井盖没了")
    status, _, _ = await player.post(text, player.signed_query(token="forged"))
    assert status == 403
    wrong_app = WeChatPlayer(client, aes=True, appid="wx0000000000000000")
    status, _, _ = await wrong_app.post(text)
    assert status == 403
    tampered = player.signed_query()
    tampered["signature"] = tampered["signature"][:-1] + ("0" if tampered["signature"][-1] != "0" else "1")
    assert (await player.post(text, tampered))[0] == 403
    assert (await player.post("<xml><MsgType>text</Msg"))[0] == 400
    assert (await player.post("not xml at all"))[0] == 400
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        f"<xml><ToUserName>gh</ToUserName><FromUserName>{user}</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>text</MsgType><Content>&lol2;</Content><MsgId>990002</MsgId></xml>"
    )
    assert (await player.post(bomb))[0] == 400
    huge = player.xml(user, "text", 990003, Content="井" * 70_000)
    assert (await player.post(huge))[0] == 413
    assert (await player.post("<xml><ToUserName>gh</ToUserName></xml>"))[0] == 400
    assert "暂不支持" in await player.say(user, "video", MediaId="v1", ThumbMediaId="t1")
    assert "暂不支持" in await player.say(user, "weird_kind")
    assert "没能取到这条照片" in await player.say(user, "image", MediaId="no-such-media", PicUrl="http://x.invalid/")
    status, _, raw = await player.post(player.xml(user, "event", None, Event="view_miniprogram", EventKey="x"))
    assert status == 200 and raw == "success"
    assert reports_of(rt, "wechat", user) == []
    with Session(rt.engine) as s:
        refs = s.exec(select(ChannelDelivery.ref).where(ChannelDelivery.ref.in_(["msg:990001", "msg:990002"]))).all()
        assert refs == []  # refused deliveries leave nothing behind


async def test_voice_uses_recognition_first_then_ffmpeg_and_the_recogniser(world, client, monkeypatch):
    fake = world.fakes.wechat
    player, user = WeChatPlayer(client), new_user()
    heard = await player.say(user, "voice", MediaId="none", Format="amr", Recognition="路灯晚上不亮")
    assert "语音识别为" in heard and "什么位置" in heard
    fake.media["voice-1"] = (amr(1.0), "audio/amr")
    assert "请发文字" in await player.say(user, "voice", MediaId="voice-1", Format="amr")  # no recogniser here

    seen = {}

    class Recogniser:
        def transcribe_file(self, path: str) -> str:
            with wave.open(path) as w:  # what ffmpeg made of the AMR: 16 kHz mono, about a second
                seen.update(rate=w.getframerate(), channels=w.getnchannels(), seconds=w.getnframes() / 16000)
            return "人民路88号"

    monkeypatch.setattr(world.runtime.intake.services, "transcriber", Recogniser())
    fake.media["voice-2"] = (amr(1.2), "audio/amr")
    answer = await player.say(user, "voice", MediaId="voice-2", Format="amr")
    assert seen["rate"] == 16000 and seen["channels"] == 1 and 1.0 < seen["seconds"] < 1.5
    assert "人民路88号" in answer and "现场照片" in answer


async def test_events_subscribe_menu_click_and_reported_location(world, client):
    player, user = WeChatPlayer(client), new_user()
    welcome = await player.say(user, "event", None, Event="subscribe", EventKey="")
    assert "感谢关注" in welcome
    assert "还没有通过本账号反映" in await player.say(user, "event", None, Event="CLICK", EventKey="MY_CASES")
    lat, lon = DOOR_88_GCJ[1], DOOR_88_GCJ[0]
    status, _, raw = await player.post(
        player.xml(user, "event", None, Event="LOCATION", Latitude=lat, Longitude=lon, Precision=30)
    )
    assert status == 200 and raw == "success"  # remembered, not answered
    question = await player.say(user, Content="垃圾没人清")
    assert "人民路88号" in question and "附近吗" in question  # the reported position is offered


async def test_an_answer_later_than_the_deadline_goes_by_customer_service_message(world, client):
    fake = world.fakes.wechat
    wechat = client.server.app[BOTS].wechat
    wechat.deadline = 0.5
    fake.media["slow-photo"] = (png(12), "image/png")
    fake.media_delay = 1.5
    player, user = WeChatPlayer(client), new_user()
    try:
        status, _reply, raw = await player.post(player.xml(user, "image", 770001, MediaId="slow-photo", PicUrl="x"))
        assert status == 200 and raw == "success"
        for _ in range(100):
            if fake.texts_to(user):
                break
            await asyncio.sleep(0.05)
        assert any("已收到照片" in t for t in fake.texts_to(user))
    finally:
        fake.media_delay = 0.0


async def test_case_progress_reaches_the_reporter_once_with_the_after_photo(world, client):
    rt, fake = world.runtime, world.fakes.wechat
    notifier = client.server.app[BOTS].notifier
    player, user = WeChatPlayer(client), new_user()
    await player.say(user, Content="人民路88号门口一大堆垃圾没人清")
    await player.say(user, Content="跳过")
    await player.say(user, Content="确认")
    number = case_of(rt, reports_of(rt, "wechat", user)[0]).number
    after = rt.attachments.put(png(77)).sha256
    walk(rt, number, after)
    uploads = len(fake.uploads)
    await notifier.tick()
    await notifier.tick()  # a second pass (or a second worker) announces nothing again
    texts = fake.texts_to(user)
    assert not any("已登记" in t for t in texts)  # the receipt said it already
    assert sum("已受理" in t for t in texts) == 1 and sum("已立案" in t for t in texts) == 1
    assert sum("已派给" in t and "处置" in t for t in texts) == 1
    assert sum("已处理完毕并结案" in t for t in texts) == 1
    assert len(fake.uploads) == uploads + 1 and fake.uploads[-1] == rt.attachments.open(after)
    assert any(m["touser"] == user and m["msgtype"] == "image" for m in fake.sent)


async def test_failed_sends_are_retried_with_backoff_and_old_conversations_get_a_template(world, client, caplog):
    caplog.set_level(logging.INFO, logger="gridline.bots")
    rt, fake = world.runtime, world.fakes.wechat
    notifier = client.server.app[BOTS].notifier
    user = new_user()
    await WeChatPlayer(client).say(user, Content="你好")
    key = f"test:{user}"
    storage.enqueue(rt.engine, [{"dedup_key": key, "channel": "wechat", "recipient": user, "kind": "notify",
                                 "payload": {"replies": [{"text": "编号 X 已立案"}]}}])  # fmt: skip
    fake.fail_sends = 1
    await notifier.deliver()
    with Session(rt.engine) as s:
        row = s.exec(select(Outbox).where(Outbox.dedup_key == key)).one()
        assert row.status == "pending" and row.attempts == 1 and "502" in row.error
        assert row.next_at > storage.now_utc()  # not before its backoff
        s.execute(update(Outbox).where(Outbox.id == row.id).values(next_at=storage.now_utc()))
        s.commit()
    await notifier.deliver()
    assert fake.texts_to(user).count("编号 X 已立案") == 1
    assert mask(user) in caplog.text and user not in caplog.text  # the failure was logged, the OpenID masked

    with Session(rt.engine) as s:  # the citizen last wrote three days ago: outside the 48-hour window
        s.execute(
            update(Conversation)
            .where(Conversation.user_ref == user)
            .values(last_seen_at=storage.now_utc() - timedelta(days=3))
        )
        s.commit()
    with_template = WeChat(dataclasses.replace(rt.settings, wechat_template_id="TPL-1"), rt.engine, rt.dialogue)
    await asyncio.to_thread(with_template.send, user, [{"text": "编号 Y 已结案"}], "notify")
    assert fake.templates[-1]["touser"] == user and "编号 Y" in str(fake.templates[-1]["data"])
    storage.enqueue(rt.engine, [{"dedup_key": key + ":2", "channel": "wechat", "recipient": user, "kind": "notify",
                                 "payload": {"replies": [{"text": "编号 Z"}]}}])  # fmt: skip
    await notifier.deliver()  # the app's own settings have no template: given up, not retried forever
    with Session(rt.engine) as s:
        row = s.exec(select(Outbox).where(Outbox.dedup_key == key + ":2")).one()
        assert row.status == "dead" and "48" in row.error


def test_access_token_is_shared_by_workers_and_the_menu_is_set(world, capsys, monkeypatch):
    rt, fake = world.runtime, world.fakes.wechat
    first = Client("wx1234567890abcdef", "s", world.fakes.wechat_url, rt.engine)
    second = Client("wx1234567890abcdef", "s", world.fakes.wechat_url, rt.engine)
    fetched = fake.token_fetches
    assert first.access_token == second.access_token
    assert fake.token_fetches <= fetched + 1
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    assert gridline(["wechat", "menu", "--json"]) == 0
    assert [b["name"] for b in fake.menus[-1]["button"]] == ["我要反映", "办理进度", "服务"]
    capsys.readouterr()
    assert gridline(["config", "--json"]) == 0
    shown = capsys.readouterr().out
    assert WECHAT_TOKEN not in shown and "wechat-app-secret" not in shown and '"wechat_token": "***"' in shown


def test_gridline_serve_answers_wechat_and_logs_no_openid(world, tmp_path):
    """The real server process: its access log keeps the path, not WeChat's query string with the OpenID."""
    port = free_port()
    env = {**world.env, "GRIDLINE_HTTP_PORT": str(port), "GRIDLINE_LOG_LEVEL": "INFO"}
    log_path, user = tmp_path / "serve.log", new_user("live")
    with serving(env, log_path) as base:
        player = WeChatPlayer(None)
        query = {**player.signed_query(), "openid": user}
        body = player.xml(user, "text", 660001, Content="你好").encode()
        request = urllib.request.Request(f"{base}/wechat?{urllib.parse.urlencode(query)}", data=body, method="POST")
        answer = urllib.request.urlopen(request, timeout=10).read().decode()
        assert "数字城管" in answer
    logged = log_path.read_text()
    assert '"POST /wechat"' in logged and user not in logged
