"""The one dialogue through its module API, on the demo city: a report in a few messages, messages that join one
report, a new problem, status, hand-over, cancel, out-of-scope and abusive input, limits, and state that outlives
the Dialogue object (as it outlives a worker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from bots import dialogue as dlg
from bots.dialogue import Dialogue, Inbound
from core.crs import distance_m
from core.models import Conversation
from tests.bots.conftest import DOOR_88, DOOR_88_CELL, case_of, new_user, reports_of, walk
from tests.bots.fakes import png


class Chat:
    """One citizen talking to a dialogue."""

    def __init__(self, dialogue: Dialogue, user: str | None = None) -> None:
        self.d = dialogue
        self.user = user or new_user("d")

    def __call__(self, text: str = "", **kw) -> str:
        replies = self.d.handle(Inbound("webchat", self.user, text=text, **kw))
        return "\n".join(r.text for r in replies)


@pytest.fixture(scope="module")
def d(world) -> Dialogue:
    return Dialogue(world.runtime)


def test_a_report_in_four_messages_ends_in_one_case_with_code_point_cell_and_receipt(world, d):
    chat = Chat(d)
    assert "什么位置" in chat("下水道井盖破了")
    assert "现场照片" in chat("人民路88号")
    summary = chat(photo=png(1))
    assert "污水井盖异常" in summary and "人民路88号" in summary and DOOR_88_CELL in summary
    receipt = chat("确认")
    [report] = reports_of(world.runtime, "webchat", chat.user)
    case = case_of(world.runtime, report)
    assert f"编号 {case.number}" in receipt
    assert case.matter_code == "01002" and case.grid_code == DOOR_88_CELL
    assert distance_m(report.lon, report.lat, *DOOR_88) < 1
    assert [m["kind"] for m in report.media] == ["photo"]
    assert "已登记" not in chat("确认")  # confirming again creates nothing
    assert len(reports_of(world.runtime, "webchat", chat.user)) == 1


def test_yes_at_the_photo_question_skips_it_and_a_stray_word_is_not_a_description(world, d):
    chat = Chat(d)
    chat("人民路88号门口一大堆垃圾没人清")
    assert "请核对" in chat("好的")  # no photo: on to the summary
    assert "请回复“确认”" in chat("嗯嗯")
    assert "已补充" in chat("已经堆了三天了")  # a real addition is kept
    chat("确认")
    [report] = reports_of(world.runtime, "webchat", chat.user)
    assert report.text == "人民路88号门口一大堆垃圾没人清；已经堆了三天了"


def test_photo_then_text_then_location_join_one_report(world, d):
    chat = Chat(d)
    assert "描述" in chat(photo=png(2))
    assert "什么位置" in chat("垃圾没人清")
    summary = chat(lon=DOOR_88[0], lat=DOOR_88[1])
    assert "暴露垃圾" in summary and "照片：1 张" in summary
    chat("确认")
    [report] = reports_of(world.runtime, "webchat", chat.user)
    assert report.text == "垃圾没人清" and len(report.media) == 1
    assert case_of(world.runtime, report).grid_code == DOOR_88_CELL


def test_a_different_problem_before_confirming_asks_and_then_starts_a_new_report(world, d):
    chat = Chat(d)
    chat("人民路88号门口一大堆垃圾没人清")
    assert "确认" in chat("跳过")
    question = chat("路灯晚上不亮")
    assert "另一个问题" in question and "路灯异常" in question
    after = chat("提交")
    assert "已登记" in after and "什么位置" in after  # the first is filed, the second asks for its place
    chat("人民路和解放路交叉口")
    chat("跳过")
    chat("确认")
    codes = sorted(case_of(world.runtime, r).matter_code for r in reports_of(world.runtime, "webchat", chat.user))
    assert codes == ["01037", "06010"]


def test_an_unclear_place_is_confirmed_before_it_is_used(world, d):
    chat = Chat(d)
    chat("垃圾没人清")
    assert "范围太大" in chat("人民路")  # a whole road is no place
    question = chat("阳光小区附近")  # found, but not for sure (0.77)
    assert "“阳光小区”附近吗" in question and "阳光社区" in question
    assert "照片" in chat("是")
    [summary] = d.handle(Inbound("webchat", chat.user, text="跳过"))
    assert summary.options == ("确认", "取消") and "阳光小区附近" in summary.text


def test_place_not_found_asks_again_and_location_outside_the_city_is_refused(d):
    chat = Chat(d)
    chat("路灯晚上不亮")
    assert "没有找到" in chat("火星基地")
    assert "不在本平台负责的城区" in chat(lon=116.397, lat=39.909)  # Beijing
    assert "照片" in chat(lon=DOOR_88[0], lat=DOOR_88[1])


def test_status_only_for_ones_own_cases_in_plain_words_with_department_and_after_photo(world, d):
    rt = world.runtime
    owner, stranger = Chat(d), Chat(d)
    owner("人民路88号门口一大堆垃圾没人清")
    owner("跳过")
    owner("确认")
    [report] = reports_of(rt, "webchat", owner.user)
    number = case_of(rt, report).number
    assert "没有找到" in stranger(f"查询 {number}")
    assert "等待受理员受理" in owner(f"查询 {number}")
    after = rt.attachments.put(png(99)).sha256
    walk(rt, number, after, slice(0, 3))
    dispatched = owner(f"查询 {number}")
    assert "正在处置" in dispatched and "HW" not in dispatched  # the department's name, not its code
    walk(rt, number, after, slice(3, None))
    replies = d.handle(Inbound("webchat", owner.user, text=f"查询{number}"))
    assert "已处理完毕并结案" in replies[0].text
    assert replies[-1].photo == after
    assert number in owner("我的反映")


def test_handoff_cancel_out_of_scope_greeting_and_abuse(d):
    chat = Chat(d)
    assert "人工受理员" in chat("人工")
    assert "已转达受理员" in chat("垃圾没人清，快来人")
    queue = dlg.waiting_handoffs(d.engine)
    mine = [q for q in queue if q["messages"] and q["messages"][-1].get("text") == "垃圾没人清，快来人"]
    assert mine and chat.user not in str(mine)  # the 受理员 sees what was written, not the user id
    assert "已结束人工服务" in chat("取消")
    refused = chat("我要投诉物业不退押金")  # out of scope, and the citizen is told why and where to go
    assert "12345" in refused and "物业服务问题" in refused
    assert "数字城管" in chat("你好")
    assert "文明" in chat("傻逼")
    chat("井盖没了")
    assert "已取消" in chat("取消")
    assert "没有正在填写" in chat("确认")


def test_limits_are_answered_not_raised(d):
    chat = Chat(d)
    assert "太长" in chat("井" * 1500)
    assert "无法接收" in chat(photo=b"<html>not a photo</html>")
    assert "太大" in chat(photo=b"\xff\xd8\xff" + bytes(11 * 1024 * 1024))
    assert "数字城管" in chat("   \u200b  ")  # nothing but blanks: the help text
    assert "不支持" in chat(unsupported="视频消息")
    flood = Chat(d)
    answers = [flood(f"{i}") for i in range(dlg.RATE_MAX + 3)]
    assert "太频繁" in answers[dlg.RATE_MAX] and answers[-1] == ""  # warned once, then quiet


def test_nul_characters_from_a_channel_still_end_in_a_report(world, d):
    """Telegram's JSON may carry \\u0000 (PostgreSQL's text cannot hold it) or a lone \\ud800 (no database can
    encode it): the words are kept without them."""
    chat = Chat(d)
    chat(contact="138\x000000")
    assert "什么位置" in chat("井盖\x00没了\ud800")
    assert "已收到位置" in chat(lon=DOOR_88[0], lat=DOOR_88[1], crs="wgs84", label="人民路\x0088号")
    chat("跳过")
    assert "编号" in chat("确认")
    [report] = reports_of(world.runtime, "webchat", chat.user)
    assert report.text == "井盖没了" and "\x00" not in (report.address or "")


def test_state_lives_in_the_database_not_in_the_dialogue_object(world, d):
    chat = Chat(d)
    chat("下水道井盖破了")
    restarted = Chat(Dialogue(world.runtime), chat.user)  # another worker, or after a restart
    assert "现场照片" in restarted("人民路88号")
    with Session(world.runtime.engine) as s:
        conv = s.exec(
            Conversation.__table__.select().where(Conversation.user_ref == chat.user)  # type: ignore[attr-defined]
        ).first()
        assert conv.mode == "report" and conv.state["draft"]["step"] == "photo"


def test_a_stale_draft_expires(world):
    clock = {"at": None}
    from bots.storage import now_utc

    def now():
        return clock["at"] or now_utc()

    d = Dialogue(world.runtime, clock=now)
    chat = Chat(d)
    chat("下水道井盖破了")
    clock["at"] = now_utc() + timedelta(seconds=dlg.DRAFT_TTL_S + 60)
    assert "已作废" in chat("人民路88号")
