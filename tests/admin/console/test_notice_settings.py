"""The departments' notice channels on the 管理员's page, the dead letters with 重发, and the 值班长's 超时预警, through
HTTP: every change is one audit event without its secrets; a refused change writes nothing; other roles get 403."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from bots.routes import BOTS
from core import notices
from core.cases import SYSTEM, Actor
from core.models import AuditEvent, Department, Outbox

PAGE = "/console/admin/departments"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=robot-key-123"
HIDDEN = (SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "robot-key-123", "SECding789")


def dept(console, code: str = "HW") -> Department:
    with Session(console.runtime.engine) as s:
        return s.get(Department, code)


def audit(console, action: str) -> list[AuditEvent]:
    with Session(console.runtime.engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all())


async def configure(adm, **fields: str) -> tuple[int, str]:
    return await adm.post(f"{PAGE}/HW/notices", fields)


async def test_an_admin_sets_the_channels_with_one_audit_event_and_no_secret_in_it_or_on_the_page(console):
    adm = await console.login("adm")
    await adm.get(PAGE)
    status, html = await configure(adm, webhook_url="https://hw.example.org/hook", webhook_secret=SECRET,
                                   wecom_url=WECOM, dingtalk_url="https://oapi.dingtalk.com/robot/send?access_token=t1",
                                   dingtalk_secret="SECding789", email="hw@example.org")  # fmt: skip
    assert status == 200 and "已保存部门 HW 的通知设置" in html
    hw = dept(console)
    assert (hw.webhook_url, hw.webhook_secret, hw.wecom_url, hw.email) == (
        "https://hw.example.org/hook", SECRET, WECOM, "hw@example.org"
    )
    [event] = audit(console, "department.notices")
    assert (event.actor, event.role, event.target) == ("adm", "admin", "部门 HW")
    recorded = json.dumps(event.data, ensure_ascii=False)
    assert not any(secret in recorded for secret in HIDDEN)
    assert event.data["before"]["webhook_signing"] is False and event.data["after"]["webhook_signing"] is True
    assert event.data["after"]["wecom_url"].endswith("key=***")
    _, page = await adm.get(PAGE)
    assert not any(secret in page for secret in HIDDEN)
    assert "Webhook、电子邮件、企业微信、钉钉" in page  # HW's configured channels in its summary
    _, trail = await adm.get("/console/admin/audit")
    assert "部门通知设置" in trail and not any(secret in trail for secret in HIDDEN)


async def test_empty_fields_keep_their_values_and_a_stop_box_clears_the_channel(console):
    adm = await console.login("adm")
    await adm.get(PAGE)
    await configure(adm, webhook_url="https://hw.example.org/hook", webhook_secret=SECRET, email="hw@example.org")
    status, html = await configure(adm, email="", webhook_secret="")  # the form as it comes back: all empty
    assert status == 200 and "没有改变" in html
    assert (dept(console).email, dept(console).webhook_secret) == ("hw@example.org", SECRET)
    status, _ = await configure(adm, clear_webhook="1", telegram_chat_id="-100555")
    hw = dept(console)
    assert status == 200 and (hw.webhook_url, hw.webhook_secret, hw.telegram_chat_id) == (None, None, "-100555")
    assert hw.email == "hw@example.org" and len(audit(console, "department.notices")) == 2


async def test_a_bad_field_is_refused_and_changes_nothing(console):
    adm = await console.login("adm")
    await adm.get(PAGE)
    for fields, needle in (
        ({"webhook_url": "https://hw.example.org/hook", "webhook_secret": "plain-secret"}, "whsec_"),
        ({"wecom_url": "javascript:alert(1)"}, "http"),
        ({"email": "not an address"}, "电子邮箱"),
        ({"webhook_url": "https://hw.example.org/hook"}, "签名密钥"),
    ):
        status, html = await configure(adm, **fields)
        assert status == 422 and needle in html, fields
    status, _ = await adm.post(f"{PAGE}/NOPE/notices", {"email": "a@example.org"})
    assert status == 404
    hw = dept(console)
    assert (hw.webhook_url, hw.wecom_url, hw.email) == (None, None, None)
    assert audit(console, "department.notices") == []


async def test_other_roles_are_refused(console):
    for name in ("lead", "disp", "hw"):
        staff = await console.login(name)
        status, _ = await staff.get(PAGE)
        assert status == 403
        status, _ = await staff.post(f"{PAGE}/HW/notices", {"email": "x@example.org"})
        assert status == 403
        status, _ = await staff.post("/console/admin/notices/1/resend", {})
        assert status == 403
    assert dept(console).email is None and audit(console, "department.notices") == []


def dispatched(console) -> str:
    number = console.report()
    loop = console.runtime.loop
    loop.act(number, "accept", Actor(None, "op", "operator"))
    loop.act(number, "file", Actor(None, "lead", "shift_lead"), {"level": 1})
    loop.act(number, "dispatch", Actor(None, "disp", "dispatcher"), {"department": "HW"})
    return number


async def test_dead_letters_are_listed_and_resent_with_an_audit_event(console, monkeypatch):
    async def idle() -> int:
        return 0

    monkeypatch.setattr(console.app[BOTS].notices, "tick", idle)  # the server's delivery worker stands still
    adm = await console.login("adm")
    await adm.get(PAGE)
    await configure(adm, email="hw@example.org", telegram_chat_id="-100555")
    number = dispatched(console)
    engine = console.runtime.engine
    with Session(engine, expire_on_commit=False) as s:
        row = s.exec(select(Outbox).where(Outbox.channel == "dept_email")).one()
        s.execute(update(Outbox).where(Outbox.id == row.id).values(status="dead", attempts=6, error="SMTP 550 拒收"))
        s.commit()
    _, page = await adm.get(PAGE)
    assert "死信，1" in page and number in page and "SMTP 550 拒收" in page and "电子邮件" in page
    assert f"/console/admin/notices/{row.id}/resend" in page
    status, html = await adm.post(f"/console/admin/notices/{row.id}/resend", {})
    assert status == 200 and "重新排队发送" in html and "没有发送失败的通知" in html
    with Session(engine) as s:
        again = s.get(Outbox, row.id)
    assert (again.status, again.attempts, again.error, again.dedup_key) == ("pending", 0, "", row.dedup_key)
    [event] = audit(console, "notice.resend")
    assert event.actor == "adm" and event.data["after"]["case"] == number and event.data["after"]["status"] == "pending"
    status, _ = await adm.post(f"/console/admin/notices/{row.id}/resend", {})  # no longer dead
    assert status == 404 and len(audit(console, "notice.resend")) == 1
    status, _ = await adm.post("/console/admin/notices/abc/resend", {})
    assert status == 404


async def test_the_shift_lead_sees_the_limit_alerts_on_the_filing_page(console):
    number = dispatched(console)
    loop = console.runtime.loop
    case, _ = loop.get(number, SYSTEM)
    at = case.stage_started_at
    while loop.timer(case, at).light != "red":
        at += timedelta(minutes=30)
    assert notices.sweep_alerts(loop, console.runtime.settings, at) == 1  # HW has no channels: the console copy
    lead = await console.login("lead")
    status, html = await lead.get("/console/filing")
    assert status == 200 and "超时预警（1）" in html and number in html and "红灯 已超时" in html
