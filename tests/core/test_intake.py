"""Intake and the loop's rules, through core's own API on the demo city: store first, idempotency, a failing step,
duplicates, routing, 挂账 and 延期 quota, auto-steps, 漏报 attribution."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from admin.runtime import Runtime
from core import users
from core.cases import Actor, CaseLoop, Conflict, Rules, rules_from_settings
from core.config import ConfigError, Settings, load_settings
from core.intake import BadReport, Incoming
from core.models import CaseEvent, CaseFile, Report

SH = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 2, 9, 0, tzinfo=SH)  # a Monday

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def rt(demo_url, tmp_path):
    settings = load_settings(environ={"GRIDLINE_DATABASE_URL": demo_url, "GRIDLINE_DATA_DIR": str(tmp_path)})
    runtime = Runtime(settings)
    clock = Clock()
    runtime.__dict__["loop"] = CaseLoop(runtime.engine, runtime.calendar, rules_from_settings(settings), clock)
    people = {}
    for name, role, dept, scope in (
        ("op", "operator", None, []),
        ("col", "collector", None, ["339901001"]),
        ("lead", "shift_lead", None, []),
        ("disp", "dispatcher", None, []),
        ("hw", "department", "HW", []),
        ("ps", "department", "PS", []),
    ):
        people[name] = Actor.of(users.add_user(runtime.engine, name, role, department=dept, scope=scope))
    runtime.people, runtime.clock = people, clock
    yield runtime
    runtime.close()


def incoming(ref: str, text: str = "人民路88号门口一大堆垃圾没人清", **kw) -> Incoming:
    return Incoming(
        channel=kw.pop("channel", "wechat"),
        channel_ref=ref,
        received_at=datetime(2026, 11, 2, 9, 0, tzinfo=SH),
        text=text,
        **kw,
    )


def case_of(rt, report: Report) -> CaseFile:
    with Session(rt.engine) as s:
        return s.get(CaseFile, report.case_id)


def test_the_same_message_three_times_is_one_report_and_one_case(rt):
    results = [rt.intake.submit(incoming("msg-1")) for _ in range(3)]
    assert [created for _, created in results] == [True, False, False]
    assert len({r.id for r, _ in results}) == 1
    with Session(rt.engine) as s:
        assert len(s.exec(select(Report)).all()) == 1 and len(s.exec(select(CaseFile)).all()) == 1


def test_a_report_is_enriched_and_filed_in_the_acceptance_queue(rt):
    report, _ = rt.intake.submit(incoming("msg-2"))
    assert {k: v["status"] for k, v in report.steps.items()} == {
        "transcribe": "skipped",
        "classify": "ok",
        "locate": "ok",
        "duplicates": "ok",
        "file": "ok",
    }
    case = case_of(rt, report)
    assert case.state == "待受理" and case.matter_code == report.classification["code"]
    assert case.grid_code.startswith("339901") and case.public is True
    assert len(report.classification["top"]) <= 3 and report.place["method"] in ("门牌", "兴趣点")


def test_coordinates_in_gcj02_are_converted_before_locating(rt):
    from core.crs import from_wgs84

    wgs = (120.5981418, 29.9999542)
    report, _ = rt.intake.submit(
        incoming("msg-gcj", lon=from_wgs84(*wgs, "gcj02")[0], lat=from_wgs84(*wgs, "gcj02")[1], crs="gcj02")
    )
    assert abs(report.lon - wgs[0]) < 1e-5 and abs(report.lat - wgs[1]) < 1e-5
    assert case_of(rt, report).grid_code is not None


def test_a_failing_step_keeps_the_report_and_can_be_retried(rt):
    class Broken:
        def classify(self, text):
            raise RuntimeError("model file missing")

    working = rt.intake.services.classifier
    rt.intake.services.classifier = Broken()
    report, _ = rt.intake.submit(incoming("msg-3"))
    assert report.steps["classify"]["status"] == "failed" and "model file missing" in report.steps["classify"]["error"]
    assert report.case_id is not None and case_of(rt, report).matter_code is None  # filed anyway, code left to 受理员
    rt.intake.services.classifier = working
    assert rt.intake.retry() == 1
    with Session(rt.engine) as s:
        again = s.get(Report, report.id)
    assert again.steps["classify"]["status"] == "ok" and again.classification["code"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"channel": "fax"}, "channel"),
        ({"text": ""}, "为空"),
        ({"lon": 120.6}, "同时"),
        ({"lon": 200.0, "lat": 30.0}, "范围"),
        ({"crs": "utm"}, "坐标系"),
        ({"text": "x" * 5001}, "5000"),
    ],
)
def test_bad_reports_are_refused_before_anything_is_stored(rt, change, needle):
    base = incoming("bad")
    with pytest.raises(BadReport, match=needle):
        rt.intake.submit(replace(base, **change))
    with Session(rt.engine) as s:
        assert s.exec(select(Report)).all() == []


def test_a_second_report_nearby_points_at_the_open_case(rt):
    first, _ = rt.intake.submit(incoming("msg-4"))
    second, _ = rt.intake.submit(incoming("msg-5", text="人民路88号垃圾堆了好几天了"))
    assert second.classification["code"] == first.classification["code"]
    assert case_of(rt, second).duplicate_of == case_of(rt, first).number


def test_routing_suggests_the_owner_of_the_nearest_component(rt):
    report, _ = rt.intake.submit(incoming("msg-6", text="人民路88号的雨水井盖没了"))
    number = case_of(rt, report).number
    p = rt.people
    rt.loop.act(number, "accept", p["op"], {"matter_code": "01003"})  # 雨水井盖异常
    filed = rt.loop.act(number, "file", p["lead"], {"level": 1})
    assert filed.suggested_department == "PS"  # the demo city's 排水 owns 雨水井盖


def _dispatched(rt, ref: str) -> str:
    report, _ = rt.intake.submit(incoming(ref))
    number = case_of(rt, report).number
    p = rt.people
    rt.loop.act(number, "accept", p["op"], {"matter_code": "06010"})
    rt.loop.act(number, "file", p["lead"], {"level": 1})
    rt.loop.act(number, "dispatch", p["disp"], {"department": "HW"})
    return number


def test_suspension_stops_the_clock_until_resumed(rt):
    number = _dispatched(rt, "msg-7")
    p, loop = rt.people, rt.loop
    before = loop.timer(loop.get(number, p["lead"])[0]).deadline
    loop.act(number, "request_suspend", p["hw"], {"reason": "需等待管线施工"})
    loop.act(number, "approve", p["lead"])
    rt.clock.at += timedelta(days=7)
    with pytest.raises(Conflict):
        loop.act(number, "complete", p["hw"], {"attachments": ["a" * 64]})  # 挂账: nothing to complete
    resumed = loop.act(number, "resume", p["lead"])
    after = loop.timer(resumed).deadline
    assert after > before + timedelta(days=5)  # a week paused, the working hours still owed


def test_extensions_over_the_monthly_quota_are_flagged(rt):
    numbers = [_dispatched(rt, f"quota-{i}") for i in range(3)]
    p, loop = rt.people, rt.loop
    flags = []
    for number in numbers:
        loop.act(number, "request_extension", p["hw"], {"hours": 4, "reason": "设备维修"})
        loop.act(number, "approve", p["lead"])
        _, events = loop.get(number, p["lead"])
        flags.append(events[-1].data["over_quota"])
    assert flags == [True, True, True]  # 3 % of 3 cases allows none
    case, _ = loop.get(numbers[0], p["lead"])
    assert case.extension_count == 1 and case.stage_extra_hours == 4


def test_auto_accept_and_auto_dispatch_by_configuration(rt):
    rt.loop.rules = Rules(auto_accept_confidence=0.01, auto_dispatch_codes=("06010",))
    report, _ = rt.intake.submit(incoming("msg-8"))
    case = case_of(rt, report)
    if report.classification["decision"] != "auto":
        pytest.skip("the keyword classifier was not confident on this text")
    assert case.state == "待立案"
    from core.models import RoutingRule

    with Session(rt.engine) as s:
        s.add(RoutingRule(matter_prefix="06010", department_code="HW"))
        s.commit()
    filed = rt.loop.act(case.number, "file", rt.people["lead"], {"level": 1})
    assert filed.state == "处置中" and filed.department_code == "HW"
    with Session(rt.engine) as s:
        actors = [e.actor for e in s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)).all()]
    assert actors.count("系统") == 2


def test_public_reports_count_against_the_grids_collector(rt):
    public, _ = rt.intake.submit(incoming("msg-9"))
    own, _ = rt.intake.submit(incoming("msg-10", channel="collector"))
    assert case_of(rt, public).public is True and case_of(rt, own).public is False
    assert case_of(rt, public).collector_id == rt.people["col"].user_id


def test_stage_hours_setting_is_checked():
    with pytest.raises(ConfigError, match="stage_hours"):
        rules_from_settings(Settings(stage_hours="受理=abc"))
    assert rules_from_settings(Settings(stage_hours="受理=2")).stage_hours["受理"] == 2.0
