"""The wall's figures (``core.wall``) on cases run through the real loop: a hand-counted morning, and random walks
where the aggregates must equal the same figures counted by scanning every case in Python."""

from __future__ import annotations

import contextlib
import random
from datetime import datetime, timedelta

import pytest

from core import users, wall
from core.cases import ACTIONS, Actor, Conflict, Invalid
from core.democity import BBOX
from core.intake import Incoming
from tests.core.test_intake import SH, case_of, rt  # noqa: F401  (the shared fixture)

GARBAGE, POSTERS = "06010", "07001"  # 暴露垃圾 (大类 06 市容环境类), 非法小广告 (07 宣传广告类)
PHOTO = {"attachments": ["a" * 64]}


def report(rt, ref: str, channel: str, code: str, **kw) -> str:  # noqa: F811
    """A report received now, whose reporter chose the 事项: the number of its case."""
    incoming = Incoming(
        channel=channel,
        channel_ref=ref,
        received_at=rt.clock(),
        sender=kw.pop("sender", f"s-{ref}"),
        text=kw.pop("text", "人民路88号门口一大堆垃圾没人清"),
        chosen_code=code,
        **kw,
    )
    filed, _ = rt.intake.submit(incoming)
    return case_of(rt, filed).number


def at(rt, when: datetime) -> None:  # noqa: F811
    assert when >= rt.clock.at
    rt.clock.at = when


def gps(lon: float, lat: float) -> dict[str, float]:
    return {"gps_lon": lon, "gps_lat": lat, "gps_accuracy": 8.0}


def morning(rt) -> dict[str, str]:  # noqa: F811
    """Monday 2 November 2026 from 09:00, then Thursday the 5th to 11:00 (see the test for what each case went
    through)."""
    p, loop, day = rt.people, rt.loop, datetime(2026, 11, 2, tzinfo=SH)
    n = {}
    for key, channel in zip("ABC", ("wechat", "wechat", "hotline"), strict=True):
        n[key] = report(rt, key, channel, GARBAGE)
    n["D"] = report(rt, "D", "webchat", POSTERS)
    n["E"] = report(rt, "E", "collector", POSTERS, sender="col")
    for hour, key in ((10, "A"), (11, "B"), (12, "C")):
        at(rt, day.replace(hour=hour))
        loop.act(n[key], "accept", p["op"], {"matter_code": GARBAGE})
    at(rt, day.replace(hour=13))
    loop.act(n["D"], "send_verify", p["op"])
    at(rt, day.replace(hour=14))
    for key in "ABC":
        loop.act(n[key], "file", p["lead"], {"level": 1})
    at(rt, day.replace(hour=14, minute=30))
    for key, dept in (("A", "HW"), ("B", "HW"), ("C", "PS")):
        loop.act(n[key], "dispatch", p["disp"], {"department": dept})
    at(rt, day.replace(hour=15))
    loop.act(n["A"], "complete", p["hw"], PHOTO)
    at(rt, day.replace(hour=15, minute=30))
    loop.act(n["A"], "check", p["col"], {"passed": True, **PHOTO, **gps(120.5801, 29.9901)})
    at(rt, day.replace(hour=16))
    loop.act(n["A"], "close", p["lead"])
    thursday = day + timedelta(days=3)
    at(rt, thursday.replace(hour=10))
    loop.act(n["B"], "complete", p["hw"], PHOTO)  # late: 处置 began on Monday 14:30
    at(rt, thursday.replace(hour=10, minute=10))
    n["G"] = report(rt, "G", "wechat", POSTERS)  # 50 minutes of its 受理 hour gone by 11:00: yellow
    at(rt, thursday.replace(hour=10, minute=30))
    loop.act(n["B"], "check", p["col"], {"passed": True, **PHOTO, **gps(120.5823, 29.9912)})
    at(rt, thursday.replace(hour=10, minute=50))
    n["F"] = report(rt, "F", "webchat", POSTERS)  # 10 minutes of its hour by 11:00: green
    at(rt, thursday.replace(hour=11))
    loop.act(n["B"], "close", p["lead"])
    return n


def test_a_hand_counted_morning(rt):  # noqa: F811
    n = morning(rt)
    w = wall.figures(rt.loop)
    assert w["now"] == datetime(2026, 11, 5, 11, tzinfo=SH).isoformat()
    assert w["today"] == {"total": 2, "channels": {"webchat": 1, "wechat": 1}}  # F and G; A–E came on Monday
    assert w["states"] == {s: 0 for s in wall.OPEN_STATES} | {"待受理": 3, "待核实": 1, "处置中": 1}
    assert [(g["name"], g["count"]) for g in w["groups"]] == [
        ("待受理", 4),  # E, F, G and D, sent for 核实
        ("待立案", 0),
        ("待派遣", 0),
        ("处置中", 1),  # C, at PS since Monday
        ("待核查", 0),
        ("待结案", 0),
    ]
    assert w["groups"][0]["parts"] == {"待受理": 3, "待核实": 1}
    # C (处置 since Monday), D (核实, 2 working hours) and E (受理, 1 hour, since Monday) are red
    assert w["lights"] == {"none": 0, "green": 1, "yellow": 1, "red": 3}
    assert [(m["number"], m["light"]) for m in w["markers"]] == [
        (n["C"], "red"),
        (n["D"], "red"),
        (n["E"], "red"),
        (n["G"], "yellow"),
        (n["F"], "green"),
    ]
    assert w["located"] == 5 and w["markers"][0]["name"] == "暴露垃圾" and w["markers"][0]["state"] == "处置中"
    assert w["cells"] == {case_of_number(rt, n["C"]).grid_code: 5}  # one address for all
    (col,) = w["collectors"]  # A's 核查 on Monday is more than a day old
    assert (col["name"], col["action"], col["number"]) == ("col", "check", n["B"])
    assert (col["lon"], col["lat"], col["accuracy_m"]) == pytest.approx((120.5823, 29.9912, 8.0))
    assert col["at"] == datetime(2026, 11, 5, 10, 30, tzinfo=SH).isoformat()
    days = w["days"]
    assert len(days) == 30 and days[-1] == "2026-11-05" and days[0] == "2026-10-07"
    series = {s["code"]: s["counts"] for s in w["by_channel"]}
    assert [s["code"] for s in w["by_channel"]] == ["wechat", "webchat", "collector", "hotline"]
    assert series["wechat"][-4] == 2 and series["wechat"][-1] == 1 and sum(series["wechat"]) == 3
    assert sum(series["webchat"]) == 2 and series["hotline"][-4] == 1 and series["collector"][-4] == 1
    majors = {s["code"]: (s["name"], sum(s["counts"])) for s in w["by_major"]}
    assert majors == {"07": ("宣传广告类", 4), "06": ("市容环境类", 3)}
    assert w["top"] == [
        {"code": POSTERS, "name": "非法小广告", "count": 4},
        {"code": GARBAGE, "name": "暴露垃圾", "count": 3},
    ]
    (hw,) = w["departments"]  # PS closed nothing
    assert hw == {"code": "HW", "name": hw["name"], "closed": 2, "on_time": 1, "rate": 50.0} and hw["name"] != "HW"
    stages = {s["state"]: [s["count"], s["median_h"], s["p90_h"]] for s in w["stages"]}
    assert not differences(
        stages,
        {
            "待受理": [4, 2.5, 3.7],  # A 1 h, B 2 h, C 3 h, D 4 h (to 发核实)
            "待立案": [3, 3.0, 3.8],  # C 2 h, B 3 h, A 4 h
            "待派遣": [3, 0.5, 0.5],
            "处置中": [2, 34.0, 60.8],  # A 0.5 h, B Monday 14:30 → Thursday 10:00 = 67.5 h
            "待核查": [2, 0.5, 0.5],
            "待结案": [2, 0.5, 0.5],
        },
    )
    assert [s["state"] for s in w["stages"]] == ["待受理", "待立案", "待派遣", "处置中", "待核查", "待结案"]
    assert not differences(w, wall.scan(rt.loop))


def case_of_number(rt, number: str):  # noqa: F811
    return rt.loop.get(number, rt.people["lead"])[0]


def differences(a, b, path: str = "") -> list[str]:
    """Where two figures differ, floats to within 1e-6 (SQLite's julianday keeps milliseconds, and JSON numbers
    pass through text)."""
    if isinstance(a, float) or isinstance(b, float):
        return [] if a == pytest.approx(b, abs=1e-6) else [f"{path}: {a!r} ≠ {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} ≠ {sorted(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items ≠ {len(b)}"]
        return [d for k, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{k}]")]
    return [] if a == b else [f"{path}: {a!r} ≠ {b!r}"]


def test_nothing_yet_is_zeros_and_empty_lists(rt):  # noqa: F811
    w = wall.figures(rt.loop)
    assert w["today"] == {"total": 0, "channels": {}} and sum(w["states"].values()) == 0
    assert w["markers"] == w["collectors"] == w["top"] == w["departments"] == w["stages"] == []
    assert w["by_channel"] == w["by_major"] == [] and w["cells"] == {}
    assert not differences(w, wall.scan(rt.loop))


FIELDS = {
    "reason": "现场需要协调",
    "confirmed": "true",
    "level": 1,
    "note": "请尽快处置",
    "hours": 4,
}


def walk(rt, rng: random.Random, number: str) -> None:  # noqa: F811
    """One step of a case: a random action that someone may take now, with the fields it needs."""
    loop, people = rt.loop, rt.people
    case = case_of_number(rt, number)
    choices = [(who, a) for who in people.values() for a in loop.available(case, who) if a.name != "merge"]
    if not choices:
        return
    who, action = rng.choice(choices)
    fields = {k: FIELDS[k] for k in ACTIONS[action.name].requires if k in FIELDS}
    if action.name in ("dispatch", "redispatch"):
        fields["department"] = rng.choice([d for d in ("HW", "PS") if d != case.department_code])
    if action.name == "accept":
        fields["matter_code"] = rng.choice((GARBAGE, POSTERS))
    if action.name == "check":
        fields["passed"] = rng.choice(("true", "true", "false"))
    if action.photo:
        fields |= PHOTO
    if who.role == "collector" and case.lon is not None and rng.random() < 0.8:  # the phone near the case
        fields |= gps(case.lon + rng.uniform(-3e-4, 3e-4), case.lat + rng.uniform(-3e-4, 3e-4))
    with contextlib.suppress(Invalid, Conflict):  # e.g. 自处理 of a problem that is not 一般: not for this walk
        loop.act(number, action.name, who, fields)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_aggregates_equal_a_scan_of_every_case(rt, seed):  # noqa: F811
    """Six weeks of random walks over the demo city (挂账 and its pauses, 返工, 延期, 回退, redispatch, cases older
    than the 30 days and from today, two 监督员): every figure of the aggregates is the scan's."""
    rng = random.Random(seed)
    rt.people["col2"] = Actor.of(users.add_user(rt.engine, "col2", "collector", scope=["339901"]))
    rt.clock.at = datetime(2026, 9, 20, 8, 0, tzinfo=SH)
    channels = ("wechat", "hotline", "webchat", "telegram", "collector")
    numbers: list[str] = []
    for step in range(300):
        rt.clock.at += timedelta(minutes=rng.choice((5, 30, 90, 240, 600) if step < 240 else (5, 10, 20)))
        if step % 5 == 0:
            lon, lat = rng.uniform(BBOX[0], BBOX[2]), rng.uniform(BBOX[1], BBOX[3])
            code = rng.choice((GARBAGE, POSTERS, None))
            numbers.append(report(rt, f"r{step}", rng.choice(channels), code, lon=lon, lat=lat))
        walk(rt, rng, rng.choice(numbers))
    w = wall.figures(rt.loop)
    assert not differences(w, wall.scan(rt.loop))
    assert w["stages"] and w["departments"] and w["collectors"] and len(w["cells"]) > 3
    assert sum(w["lights"].values()) >= 5 and w["today"]["total"]
