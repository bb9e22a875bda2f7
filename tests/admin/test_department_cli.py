"""`gridline department set/show`: a department's notice channels from the command line, secrets masked, the last
deliveries listed, and one line with exit 2 for bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from admin.cli import main
from admin.runtime import Runtime
from core import users
from core.cases import Actor
from core.config import load_settings
from core.intake import Incoming
from core.models import AuditEvent, Department
from tests.admin.test_cli import one_line_error

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=robot-key-123"


@pytest.fixture
def cli(demo_url, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GRIDLINE_DATABASE_URL", demo_url)
    monkeypatch.setenv("GRIDLINE_DATA_DIR", str(tmp_path / "var"))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    run.url = demo_url
    return run


def test_set_then_show_masks_the_secrets(cli):
    code, out, err = cli("department", "set", "HW", "--webhook", "https://hw.example.org/hook", "--webhook-secret",
                         SECRET, "--email", "hw@example.org", "--wecom", WECOM, "--dingtalk",
                         "https://oapi.dingtalk.com/robot/send?access_token=tok-456", "--dingtalk-secret", "SECabc123",
                         "--telegram", "-1001234567")  # fmt: skip
    assert code == 0, err
    assert "已更新部门 HW 的通知设置" in out
    code, out, _ = cli("department", "show", "HW")
    assert code == 0
    assert "whsec_***" in out and "hw@example.org" in out and "-1001234567" in out and "还没有通知" in out
    for secret in (SECRET, "robot-key-123", "tok-456", "SECabc123"):
        assert secret not in out
    code, out, _ = cli("department", "show", "HW", "--json")
    data = json.loads(out)
    assert data["webhook_secret"] == "whsec_***" and data["dingtalk_secret"] == "***"
    assert data["wecom_url"] == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    assert data["channels"] == ["dept_webhook", "dept_email", "dept_wecom", "dept_dingtalk", "dept_telegram"]
    engine = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": cli.url})).engine
    with Session(engine) as session:
        dept = session.get(Department, "HW")
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "department.notices")).all()
    assert dept.webhook_secret == SECRET and dept.wecom_url == WECOM  # stored whole, only shown masked
    assert len(events) == 1 and events[0].actor.startswith("命令行")
    recorded = json.dumps(events[0].data, ensure_ascii=False)
    assert events[0].data["after"]["webhook_signing"] is True
    for secret in (SECRET, "robot-key-123", "tok-456", "SECabc123"):
        assert secret not in recorded
    engine.dispose()


def test_an_empty_value_clears_a_channel_and_the_same_values_change_nothing(cli):
    assert cli("department", "set", "HW", "--email", "hw@example.org")[0] == 0
    assert "没有改变" in cli("department", "set", "HW", "--email", "hw@example.org")[1]
    assert cli("department", "set", "HW", "--email", "")[0] == 0
    data = json.loads(cli("department", "show", "HW", "--json")[1])
    assert data["email"] == "" and data["channels"] == []


def test_show_lists_the_last_deliveries(cli, tmp_path):
    assert cli("department", "set", "HW", "--email", "hw@example.org", "--telegram", "-100123")[0] == 0
    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": cli.url, "GRIDLINE_DATA_DIR": str(tmp_path)}))
    people = {
        role: Actor.of(users.add_user(runtime.engine, role, role)) for role in ("operator", "shift_lead", "dispatcher")
    }
    numbers = []
    for i in range(6):  # 6 dispatches × 2 channels: only the last 10 are listed
        text = f"人民路{i + 1}号门口垃圾没人清"
        report, _ = runtime.intake.submit(Incoming("webchat", f"r{i}", datetime.now(UTC), sender="w", text=text))
        runtime.loop.act(report.case_number, "accept", people["operator"])
        runtime.loop.act(report.case_number, "file", people["shift_lead"], {"level": 1})
        runtime.loop.act(report.case_number, "dispatch", people["dispatcher"], {"department": "HW"})
        numbers.append(report.case_number)
    runtime.close()
    data = json.loads(cli("department", "show", "HW", "--json")[1])
    rows = data["deliveries"]
    assert len(rows) == 10 and rows[0]["number"] == numbers[-1] and numbers[0] not in {r["number"] for r in rows}
    assert {(r["event"], r["status"], r["attempts"], r["sent_at"]) for r in rows} == {
        ("case.dispatched", "pending", 0, None)
    }
    assert {r["channel"] for r in rows} == {"dept_email", "dept_telegram"}
    code, out, _ = cli("department", "show", "HW")
    assert code == 0 and "最近 10 条通知" in out and numbers[-1] in out and "未送达" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("set", "NOPE", "--email", "a@example.org"), "部门 NOPE 不存在"),
        (("show", "NOPE"), "部门 NOPE 不存在"),
        (("set", "HW", "--webhook", "https://x.example/h", "--webhook-secret", "abc"), "whsec_"),
        (("set", "HW", "--webhook", "ftp://x.example/h", "--webhook-secret", SECRET), "http"),
        (("set", "HW", "--wecom", "qyapi.weixin.qq.com/send"), "http"),
        (("set", "HW", "--email", "not-an-address"), "电子邮箱"),
        (("set", "HW", "--telegram", "chat me"), "Telegram"),
        (("set", "HW", "--webhook", "https://x.example/h"), "签名密钥"),
        (("set", "HW"), "至少给出一项"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(cli, argv, needle):
    code, _, err = cli("department", *argv)
    assert code == 2
    assert needle in one_line_error(err)
    data = json.loads(cli("department", "show", "HW", "--json")[1])
    assert data["channels"] == [] and data["email"] == "" and data["webhook_url"] == ""


def test_config_masks_the_smtp_password_and_the_shift_leads_robot_key(cli, monkeypatch, tmp_path):
    path = tmp_path / "gridline.toml"
    path.write_text(f'[smtp]\nhost = "mail.example.org"\npassword = "mail-pw-9"\nstarttls = true\n'
                    f'[shift_lead]\nwecom = "{WECOM}"\n', encoding="utf-8")  # fmt: skip
    code, out, _ = cli("config", "--json", "--config", str(path))
    settings = json.loads(out)
    assert code == 0 and settings["smtp_password"] == "***" and settings["smtp_starttls"] == "true"
    assert settings["shift_lead_wecom"].endswith("send?key=***") and "mail-pw-9" not in out and "robot-key" not in out
    monkeypatch.setenv("GRIDLINE_SMTP_STARTTLS", "maybe")
    code, _, err = cli("config")
    assert code == 2 and "smtp_starttls" in one_line_error(err)
