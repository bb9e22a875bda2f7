"""The departments' notices as outbox rows: written in the case event's own transaction, one per configured
channel, with no citizen data; limit alerts once per threshold per stage, across restarts, with the 值班长's copies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from admin.runtime import Runtime
from core import notices, setup, users
from core.cases import SYSTEM, Actor
from core.config import load_settings
from core.intake import Incoming
from core.models import Outbox

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=lead-robot-key"
HW_CHANNELS = {
    "webhook_url": "http://127.0.0.1:9/hook",
    "webhook_secret": SECRET,
    "email": "hw@example.org",
    "wecom_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=hw-key",
    "dingtalk_url": "https://oapi.dingtalk.com/robot/send?access_token=hw-token",
    "telegram_chat_id": "-1001234567",
}
ADMIN = Actor(None, "adm", "admin")
PHONE = "13912345678"


def make_runtime(url: str, folder, **env: str) -> Runtime:
    environ = {"GRIDLINE_DATABASE_URL": url, "GRIDLINE_DATA_DIR": str(folder), **env}
    return Runtime(load_settings(environ=environ))


@pytest.fixture
def rt(demo_url, tmp_path):
    runtime = make_runtime(demo_url, tmp_path, GRIDLINE_SHIFT_LEAD_TELEGRAM="-100777", GRIDLINE_SHIFT_LEAD_WECOM=WECOM)
    runtime.people = {
        name: Actor.of(users.add_user(runtime.engine, name, role, department=dept, scope=scope))
        for name, role, dept, scope in (
            ("op", "operator", None, None),
            ("lead", "shift_lead", None, None),
            ("disp", "dispatcher", None, None),
            ("hw", "department", "HW", None),
            ("col", "collector", None, ["339901"]),
        )
    }
    setup.set_notice_channels(runtime.engine, ADMIN, "HW", HW_CHANNELS)
    yield runtime
    runtime.close()


def filed(rt: Runtime) -> str:
    """A case waiting for 派遣, reported by a citizen who gave a phone number."""
    text = f"人民路88号门口一大堆垃圾没人清，电话{PHONE}"
    report, _ = rt.intake.submit(Incoming("webchat", text, datetime.now(UTC), sender="openid-w1", text=text))
    number = report.case_number
    rt.loop.act(number, "accept", rt.people["op"])
    rt.loop.act(number, "file", rt.people["lead"], {"level": 1})
    return number


def dispatched(rt: Runtime, dept: str = "HW") -> str:
    number = filed(rt)
    rt.loop.act(number, "dispatch", rt.people["disp"], {"department": dept})
    return number


def outbox(rt: Runtime, **where: object) -> list[Outbox]:
    with Session(rt.engine) as session:
        stmt = select(Outbox).where(Outbox.kind == "notice").order_by(Outbox.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(Outbox, name) == value)
        return list(session.exec(stmt).all())


def test_a_dispatch_writes_one_notice_per_configured_channel_with_the_case_facts(rt):
    number = dispatched(rt)
    case, events = rt.loop.get(number, SYSTEM)
    rows = outbox(rt, case_id=case.id)
    assert sorted(r.channel for r in rows) == sorted(notices.CHANNELS)  # all five: HW configured each
    assert {r.recipient for r in rows} == {"HW"} and {r.status for r in rows} == {"pending"}
    seq = events[-1].seq
    assert {r.dedup_key for r in rows} == {f"notice:{case.id}:{seq}:{c}:HW" for c in notices.CHANNELS}
    body = rows[0].payload["notice"]
    assert rows[0].payload["event"] == body["event"] == "case.dispatched"
    timer = rt.loop.timer(case, events[-1].at)
    assert body["case"] == number and body["department"] == "HW" and body["grid_code"] == case.grid_code
    assert (body["matter_code"], body["matter_name"], body["address"]) == (case.matter_code, case.matter_name,
                                                                            case.address)  # fmt: skip
    assert (body["limit"], body["unit"], body["light"]) == (timer.limit, timer.unit, "green")
    assert body["deadline"] == timer.deadline.isoformat()
    assert body["url"] == f"http://127.0.0.1:8080/console/cases/{number}"


def test_a_failing_hook_rolls_back_the_action_and_its_notices(rt):
    number = filed(rt)

    def broken(session, case, event):
        raise RuntimeError("hook failed")

    rt.loop.on_event.append(broken)  # after the notices' hook: their rows are already in the transaction
    with pytest.raises(RuntimeError):
        rt.loop.act(number, "dispatch", rt.people["disp"], {"department": "HW"})
    case, events = rt.loop.get(number, SYSTEM)
    assert case.state == "待派遣" and case.department_code is None and events[-1].action == "file"
    assert outbox(rt, case_id=case.id) == []
    rt.loop.on_event.remove(broken)
    rt.loop.act(number, "dispatch", rt.people["disp"], {"department": "HW"})
    assert len(outbox(rt, case_id=case.id)) == 5


def test_urge_redispatch_and_rework_are_notified_and_other_actions_are_not(rt):
    setup.set_notice_channels(rt.engine, ADMIN, "SZ", {"email": "sz@example.org"})
    number = dispatched(rt)
    case, _ = rt.loop.get(number, SYSTEM)
    rt.loop.act(number, "sign", rt.people["hw"])  # the department's own steps tell nobody
    rt.loop.act(number, "urge", rt.people["lead"], {"note": f"请今天处理，群众电话 {PHONE}"})
    urged = [r for r in outbox(rt, case_id=case.id) if r.payload["event"] == "case.urged"]
    assert len(urged) == 5 and urged[0].payload["notice"]["note"] == "请今天处理，群众电话 139****5678"
    rt.loop.act(number, "redispatch", rt.people["disp"], {"department": "SZ", "note": "属市政"})
    moved = [r for r in outbox(rt, case_id=case.id) if r.payload["event"] == "case.redispatched"]
    assert [(r.channel, r.recipient) for r in moved] == [("dept_email", "SZ")]  # SZ has e-mail only
    rt.loop.act(number, "complete", Actor(None, "sz", "department", "SZ"), {"attachments": ["a" * 64]})
    rt.loop.act(number, "check", rt.people["col"], {"passed": False, "attachments": ["b" * 64], "note": "没扫干净"})
    rework = [r for r in outbox(rt, case_id=case.id) if r.payload["event"] == "case.rework"]
    assert [(r.channel, r.recipient) for r in rework] == [("dept_email", "SZ")]
    assert rework[0].payload["notice"]["note"] == "没扫干净"
    events = {r.payload["event"] for r in outbox(rt, case_id=case.id)}
    assert events == {"case.dispatched", "case.urged", "case.redispatched", "case.rework"}


def test_a_passed_check_and_a_department_without_channels_give_no_notice(rt):
    number = dispatched(rt, "YL")  # YL configured nothing
    case, _ = rt.loop.get(number, SYSTEM)
    yl = Actor(None, "yl", "department", "YL")
    rt.loop.act(number, "urge", rt.people["lead"], {"note": "尽快"})
    rt.loop.act(number, "complete", yl, {"attachments": ["a" * 64]})
    rt.loop.act(number, "check", rt.people["col"], {"passed": True, "attachments": ["b" * 64]})
    assert outbox(rt, case_id=case.id) == []


def test_a_notice_carries_no_citizen_data(rt):
    number = dispatched(rt)
    case, _ = rt.loop.get(number, SYSTEM)
    assert PHONE in case.description  # the citizen's words hold the number …
    dumped = json.dumps([r.payload for r in outbox(rt, case_id=case.id)], ensure_ascii=False)
    assert PHONE not in dumped and "openid-w1" not in dumped  # … and no notice does
    assert "description" not in dumped and case.description not in dumped


def lit(rt: Runtime, number: str, colour: str) -> datetime:
    """The first half hour at which the case's 处置 light shows ``colour``."""
    case, _ = rt.loop.get(number, SYSTEM)
    at = case.stage_started_at
    for _ in range(24 * 2 * 60):
        at += timedelta(minutes=30)
        if rt.loop.timer(case, at).light == colour:
            return at
    raise AssertionError(f"the light never turned {colour}")


def test_limit_alerts_are_sent_once_per_colour_and_survive_a_restart(rt, demo_url, tmp_path):
    number = dispatched(rt)
    case, _ = rt.loop.get(number, SYSTEM)
    yellow, red = lit(rt, number, "yellow"), lit(rt, number, "red")
    assert notices.sweep_alerts(rt.loop, rt.settings, yellow - timedelta(minutes=30)) == 0  # still green
    per_colour = 5 + 3  # HW's five channels; the 值班长's Telegram, WeCom and console copies
    assert notices.sweep_alerts(rt.loop, rt.settings, yellow) == per_colour
    assert notices.sweep_alerts(rt.loop, rt.settings, yellow + timedelta(minutes=30)) == 0
    assert notices.sweep_alerts(rt.loop, rt.settings, red) == per_colour
    assert notices.sweep_alerts(rt.loop, rt.settings, red + timedelta(hours=1)) == 0
    again = make_runtime(demo_url, tmp_path, GRIDLINE_SHIFT_LEAD_TELEGRAM="-100777", GRIDLINE_SHIFT_LEAD_WECOM=WECOM)
    try:
        assert notices.sweep_alerts(again.loop, again.settings, red + timedelta(hours=2)) == 0  # a new process
    finally:
        again.close()
    alerts = [r for r in outbox(rt, case_id=case.id) if r.dedup_key.startswith("alert:")]
    assert sorted(r.payload["event"] for r in alerts) == ["case.limit_red"] * 8 + ["case.limit_yellow"] * 8
    assert {r.payload["notice"]["light"] for r in alerts if r.payload["event"] == "case.limit_red"} == {"red"}


def test_the_shift_lead_gets_copies_and_sees_them_on_the_console(rt):
    number = dispatched(rt, "YL")  # a department without channels: the 值班长 is still told
    case, _ = rt.loop.get(number, SYSTEM)
    red = lit(rt, number, "red")
    assert notices.sweep_alerts(rt.loop, rt.settings, red) == 3  # red at once: a stage never seen yellow
    rows = outbox(rt, case_id=case.id)
    assert {(r.channel, r.recipient) for r in rows} == {
        ("dept_telegram", "shift_lead"),
        ("dept_wecom", "shift_lead"),
        ("console", "shift_lead"),
    }
    assert {r.payload["event"] for r in rows} == {"case.limit_red"}
    console = next(r for r in rows if r.channel == "console")
    assert console.status == "sent"  # no worker sends it: the console shows it
    shown = notices.console_alerts(rt.engine)
    assert [(a["case"], a["colour"]) for a in shown] == [(number, "red")]


def test_a_new_stage_gets_new_alerts(rt):
    number = dispatched(rt)
    case, _ = rt.loop.get(number, SYSTEM)
    red = lit(rt, number, "red")
    assert notices.sweep_alerts(rt.loop, rt.settings, red) == 8
    rt.loop.clock = lambda: red  # the 返工 starts a new 处置 stage at that time
    rt.loop.act(number, "complete", rt.people["hw"], {"attachments": ["a" * 64]})
    rt.loop.act(number, "check", rt.people["col"], {"passed": False, "attachments": ["b" * 64]})
    assert notices.console_alerts(rt.engine) == []  # the old stage's alert is no longer current
    assert notices.sweep_alerts(rt.loop, rt.settings, red) == 0  # the new stage is green
    red_again = lit(rt, number, "red")
    assert notices.sweep_alerts(rt.loop, rt.settings, red_again) == 8
    keys = {r.dedup_key.split(":")[1] for r in outbox(rt, case_id=case.id) if r.dedup_key.startswith("alert:")}
    assert keys == {str(case.id)}
