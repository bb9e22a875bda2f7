"""What the console leans on in core: the actions a viewer may take now (``CaseLoop.available``), and 受理 with a
corrected place, whose grid cell, area class and 监督员 follow from the point."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from admin.runtime import Runtime
from core import users
from core.cases import SYSTEM, Actor, Invalid
from core.config import load_settings
from core.geocoder import Located
from core.intake import Incoming


@pytest.fixture
def rt(demo_url, tmp_path):
    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_url, "GRIDLINE_DATA_DIR": str(tmp_path)}))
    runtime.people = {
        name: Actor.of(users.add_user(runtime.engine, name, role, department=dept))
        for name, role, dept in (("op", "operator", None), ("lead", "shift_lead", None), ("hw", "department", "HW"))
    }
    yield runtime
    runtime.close()


def filed(rt, text: str = "人民路88号门口一大堆垃圾没人清") -> str:
    report, _ = rt.intake.submit(Incoming("webchat", text, datetime.now(UTC), sender="w1", text=text))
    return report.case_number


def test_available_follows_role_state_and_the_cases_own_fields(rt):
    number = filed(rt)
    case, _ = rt.loop.get(number, SYSTEM)
    op, lead, hw = rt.people["op"], rt.people["lead"], rt.people["hw"]
    assert [a.name for a in rt.loop.available(case, op)] == ["accept", "send_verify", "reject", "merge"]
    assert rt.loop.available(case, lead) == [] and rt.loop.available(case, hw) == []  # hw cannot even see it
    rt.loop.act(number, "accept", op)
    rt.loop.act(number, "file", lead, {"level": 1})
    rt.loop.act(number, "dispatch", Actor(None, "d", "dispatcher"), {"department": "HW"})
    case, _ = rt.loop.get(number, SYSTEM)
    assert [a.name for a in rt.loop.available(case, hw)][:2] == ["sign", "complete"]
    rt.loop.act(number, "sign", hw)
    rt.loop.act(number, "request_extension", hw, {"hours": 4, "reason": "材料未到"})
    case, _ = rt.loop.get(number, SYSTEM)
    names = [a.name for a in rt.loop.available(case, hw)]
    assert "sign" not in names and not any(n.startswith("request_") for n in names)
    assert [a.name for a in rt.loop.available(case, lead)] == ["urge", "approve", "deny"]


def test_accept_with_a_corrected_place_moves_the_case_to_that_cell(rt):
    number = filed(rt)
    before, _ = rt.loop.get(number, SYSTEM)
    there = rt.geocoder.locate("解放路100号")
    assert isinstance(there, Located) and there.grid.code != before.grid_code
    rt.loop.act(number, "accept", rt.people["op"], {"lon": there.lon, "lat": there.lat, "address": "解放路100号"}, 1)
    after, events = rt.loop.get(number, SYSTEM)
    assert (after.grid_code, after.area_class, after.address) == (there.grid.code, there.grid.area_class, "解放路100号")
    assert (
        events[-1].data["place"]["from"][2] == before.grid_code and events[-1].data["place"]["to"][2] == there.grid.code
    )


@pytest.mark.parametrize(
    "place", [{"lon": 116.4, "lat": 39.9}, {"lon": "东", "lat": 30}, {"lon": float("nan"), "lat": 1}]
)
def test_a_corrected_place_outside_the_grid_or_malformed_changes_nothing(rt, place):
    number = filed(rt)
    with pytest.raises(Invalid):
        rt.loop.act(number, "accept", rt.people["op"], place, 1)
    case, events = rt.loop.get(number, SYSTEM)
    assert case.state == "待受理" and case.version == 1 and len(events) == 1


def test_a_resent_submission_with_the_same_key_is_done_once_and_the_gps_position_is_recorded(rt):
    collector = Actor.of(users.add_user(rt.engine, "col", "collector", scope=["339901"]))
    number = filed(rt)
    rt.loop.act(number, "send_verify", rt.people["op"])
    case, _ = rt.loop.get(number, SYSTEM)
    near = {"gps_lon": case.lon + 0.0001, "gps_lat": case.lat, "gps_accuracy": 8}
    fields = {"confirmed": True, "key": "k-1", **near}
    rt.loop.act(number, "verify", collector, fields, 2)
    again = rt.loop.act(number, "verify", collector, fields, 2)  # the phone sends it again: no 409, no second event
    after, events = rt.loop.get(number, SYSTEM)
    assert again.version == after.version == 3 and [e.action for e in events].count("verify") == 1
    position = events[-1].data["position"]
    assert position["accuracy_m"] == 8 and 5 < position["distance_m"] < 15 and position["far"] is False
    assert events[-1].data["key"] == "k-1"


def test_a_gps_position_far_from_the_case_is_flagged(rt):
    collector = Actor.of(users.add_user(rt.engine, "col", "collector", scope=["339901"]))
    number = filed(rt)
    rt.loop.act(number, "send_verify", rt.people["op"])
    case, _ = rt.loop.get(number, SYSTEM)
    rt.loop.act(number, "verify", collector, {"confirmed": True, "gps_lon": case.lon + 0.01, "gps_lat": case.lat})
    _, events = rt.loop.get(number, SYSTEM)
    assert events[-1].data["position"]["far"] is True and events[-1].data["position"]["distance_m"] > 900
