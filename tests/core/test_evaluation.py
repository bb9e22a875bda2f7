"""CJ/T 292 evaluation over a hand-built month, checked against numbers counted by hand.

The scenario is written straight into the tables the case loop fills (CaseFile, CaseEvent, Report), following its
conventions: one event per action, ``on_time`` for the stage the action leaves, ``department_code`` the department
the case is with (or is dispatched to). Times are Beijing time; November 2026 runs from 11-01 00:00 to 12-01 00:00.

Cases (G1 = 110101001001001 class A, G2 = 110101001002001 class B, both 东华门街道 and 监督员 col1's;
G3 = 110101002001001 class B, 景山街道, col2's):

C1 public, G1: accept, 立案, 派遣 HW, complete on time, 核查 passed, 结案 — all on time.
C2 col1's own report, G1: accept late; 立案; 派遣 HW; complete late; 核查 failed (返工); complete on time;
   核查 passed late; 结案 late.
C3 public, G2: 立案; 派遣 HW by disp1; HW asks 回退, approved; 派遣 SZ by disp2; complete; 核查; 结案.
C4 public, G3: 立案 late; 派遣 SZ; 延期 approved; complete 11-30 23:30; 核查 12-01 00:30 and 结案 12-02 (December).
C5 col1's report, G1: accept, then 作废.
C6 col2's report, G3: 发核实, 核实 by col2, 立案 late, 派遣 SZ late; 11-16 disp2 redispatches it to HW.
C7 public, G1: the whole loop in October only.
C8 public, G1: accept, 立案 and 派遣 HW on 10-31; complete late 11-01 00:30; 核查 and 结案 in November.
C9 col1's report, G1: merged into C1 (its event has on_time None: a 受理 stage without a clock).
C10 public, G1, September: 发核实, 自处理 by col1, 结案 — never 立案.
C11 public, G3, September: 立案, 派遣 HW, returned, dispatched to HW again.
"""

from __future__ import annotations

import csv
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from core import evaluation
from core.evaluation import Bands, Weights
from core.models import AppUser, CaseEvent, CaseFile, Department, GridCell, Region, Report

BJ = ZoneInfo("Asia/Shanghai")
G1, G2, G3 = "110101001001001", "110101001002001", "110101002001001"
T, F = True, False


def bj(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BJ)


def _to_state(action: str, data: dict[str, Any]) -> str:
    if action == "check":
        return "待结案" if data["passed"] else "处置中"
    if action == "approve":
        return "待派遣" if data["approved"] == "回退" else "处置中"
    return {
        "report": "待受理", "accept": "待立案", "send_verify": "待核实", "verify": "待立案", "merge": "已合并",
        "file": "待派遣", "void": "已作废", "complete": "待核查", "close": "已结案",
    }.get(action, "处置中")  # fmt: skip


# (when, who, action, on_time, data); who is a user name or the report's channel
Step = tuple[datetime, str, str, bool | None, dict[str, Any]]
# fmt: off
CASES: dict[str, dict[str, Any]] = {
    "C1": {"grid": G1, "area": "A", "source": "wechat", "collector": "col1", "steps": [
        (bj(11, 2, 9), "wechat", "report", None, {}),
        (bj(11, 2, 9, 20), "op1", "accept", T, {}),
        (bj(11, 2, 9, 40), "lead1", "file", T, {"level": 1}),
        (bj(11, 2, 10), "disp1", "dispatch", T, {"department": "HW"}),
        (bj(11, 2, 10, 30), "hw", "sign", T, {}),
        (bj(11, 2, 15), "hw", "complete", T, {}),
        (bj(11, 2, 16), "col1", "check", T, {"passed": True}),
        (bj(11, 2, 17), "lead1", "close", T, {}),
    ]},
    "C2": {"grid": G1, "area": "A", "source": "collector", "collector": "col1", "steps": [
        (bj(11, 3, 9), "collector", "report", None, {}),
        (bj(11, 3, 11), "op1", "accept", F, {}),
        (bj(11, 3, 11, 10), "lead1", "file", T, {"level": 1}),
        (bj(11, 3, 11, 20), "disp1", "dispatch", T, {"department": "HW"}),
        (bj(11, 5, 10), "hw", "complete", F, {}),
        (bj(11, 5, 11), "col1", "check", T, {"passed": False, "rework": True}),
        (bj(11, 6, 10), "hw", "complete", T, {}),
        (bj(11, 6, 15), "col1", "check", F, {"passed": True}),
        (bj(11, 6, 16), "lead1", "close", F, {}),
    ]},
    "C3": {"grid": G2, "area": "B", "source": "hotline", "collector": "col1", "steps": [
        (bj(11, 5, 9), "hotline", "report", None, {}),
        (bj(11, 5, 9, 10), "op1", "accept", T, {}),
        (bj(11, 5, 9, 20), "lead1", "file", T, {"level": 1}),
        (bj(11, 5, 9, 30), "disp1", "dispatch", T, {"department": "HW"}),
        (bj(11, 5, 11), "hw", "request_return", T, {"request": "回退", "reason": "非本部门"}),
        (bj(11, 5, 11, 30), "lead1", "approve", T, {"approved": "回退"}),
        (bj(11, 5, 11, 40), "disp2", "dispatch", T, {"department": "SZ"}),
        (bj(11, 6, 9), "sz", "complete", T, {}),
        (bj(11, 6, 10), "col1", "check", T, {"passed": True}),
        (bj(11, 6, 11), "lead1", "close", T, {}),
    ]},
    "C4": {"grid": G3, "area": "B", "source": "wechat", "collector": "col2", "steps": [
        (bj(11, 10, 9), "wechat", "report", None, {}),
        (bj(11, 10, 9, 10), "op1", "accept", T, {}),
        (bj(11, 10, 9, 30), "lead1", "file", F, {"level": 1}),
        (bj(11, 10, 9, 40), "disp1", "dispatch", T, {"department": "SZ"}),
        (bj(11, 12, 9), "sz", "request_extension", T, {"request": "延期", "hours": 8.0}),
        (bj(11, 12, 10), "lead1", "approve", T, {"approved": "延期", "hours": 8.0, "over_quota": False}),
        (bj(11, 30, 23, 30), "sz", "complete", T, {}),
        (bj(12, 1, 0, 30), "col2", "check", F, {"passed": True}),
        (bj(12, 2, 10), "lead1", "close", T, {}),
    ]},
    "C5": {"grid": G1, "area": "A", "source": "collector", "collector": "col1", "steps": [
        (bj(11, 12, 9), "collector", "report", None, {}),
        (bj(11, 12, 9, 10), "op1", "accept", T, {}),
        (bj(11, 12, 9, 30), "lead1", "void", T, {"reason": "不属实"}),
    ]},
    "C6": {"grid": G3, "area": "B", "source": "collector", "collector": "col2", "steps": [
        (bj(11, 15, 9), "collector", "report", None, {}),
        (bj(11, 15, 9, 10), "op1", "send_verify", T, {"collector_id": "col2"}),
        (bj(11, 15, 10), "col2", "verify", T, {"confirmed": True}),
        (bj(11, 15, 14), "lead1", "file", F, {"level": 1}),
        (bj(11, 15, 15), "disp1", "dispatch", F, {"department": "SZ"}),
        (bj(11, 16, 10), "disp2", "redispatch", F, {"department": "HW"}),
    ]},
    "C7": {"grid": G1, "area": "A", "source": "wechat", "collector": "col1", "steps": [
        (bj(10, 10, 9), "wechat", "report", None, {}),
        (bj(10, 10, 9, 10), "op1", "accept", T, {}),
        (bj(10, 10, 9, 20), "lead1", "file", T, {"level": 1}),
        (bj(10, 10, 9, 30), "disp1", "dispatch", T, {"department": "HW"}),
        (bj(10, 11, 9), "hw", "complete", T, {}),
        (bj(10, 11, 10), "col1", "check", T, {"passed": True}),
        (bj(10, 11, 11), "lead1", "close", T, {}),
    ]},
    "C8": {"grid": G1, "area": "A", "source": "wechat", "collector": "col1", "steps": [
        (bj(10, 31, 20), "wechat", "report", None, {}),
        (bj(10, 31, 20, 30), "op1", "accept", T, {}),
        (bj(10, 31, 22), "lead1", "file", T, {"level": 1}),
        (bj(10, 31, 23), "disp1", "dispatch", T, {"department": "HW"}),
        (bj(11, 1, 0, 30), "hw", "complete", F, {}),
        (bj(11, 2, 11), "col1", "check", T, {"passed": True}),
        (bj(11, 3, 10), "lead1", "close", T, {}),
    ]},
    "C9": {"grid": G1, "area": "A", "source": "collector", "collector": "col1", "steps": [
        (bj(11, 20, 9), "collector", "report", None, {}),
        (bj(11, 20, 9, 10), "op1", "merge", None, {"target": "C1"}),  # no clock: not late
    ]},
    "C10": {"grid": G1, "area": "A", "source": "wechat", "collector": "col1", "steps": [
        (bj(9, 10, 9), "wechat", "report", None, {}),
        (bj(9, 10, 9, 10), "op1", "send_verify", T, {"collector_id": "col1"}),
        (bj(9, 10, 10), "col1", "self_handle", T, {"self_handled": True}),
        (bj(9, 10, 11), "lead1", "close", T, {}),
    ]},
    "C11": {"grid": G3, "area": "B", "source": "wechat", "collector": "col2", "steps": [
        (bj(9, 12, 9), "wechat", "report", None, {}),
        (bj(9, 12, 9, 10), "op1", "accept", T, {}),
        (bj(9, 12, 9, 20), "lead1", "file", T, {"level": 1}),
        (bj(9, 12, 9, 30), "disp1", "dispatch", T, {"department": "HW"}),
        (bj(9, 12, 11), "hw", "request_return", T, {"request": "回退", "reason": "非本部门"}),
        (bj(9, 12, 11, 30), "lead1", "approve", T, {"approved": "回退"}),
        (bj(9, 12, 11, 40), "disp1", "dispatch", T, {"department": "HW"}),
    ]},
}
# fmt: on
# collector reports: (sender, case or None, received); plus a public report by someone who calls himself col1
REPORTS = [
    ("collector", "col1", "C2", bj(11, 3, 8, 55)),
    ("collector", "col1", "C5", bj(11, 12, 8, 58)),
    ("collector", "col1", "C9", bj(11, 20, 8, 58)),
    ("collector", "col1", None, bj(10, 5)),  # October
    ("collector", "col2", "C6", bj(11, 15, 8, 58)),
    ("collector", "col2", None, bj(12, 1, 0, 10)),  # December in Beijing, still 11-30 in UTC
    ("wechat", "col1", "C1", bj(11, 2, 8, 58)),  # not a collector's report
]
USERS = [
    ("op1", "operator", None), ("op2", "operator", None), ("lead1", "shift_lead", None),
    ("disp1", "dispatcher", None), ("disp2", "dispatcher", None), ("col1", "collector", None),
    ("col2", "collector", None), ("hw", "department", "HW"), ("sz", "department", "SZ"),
]  # fmt: skip
REGIONS = [
    ("110101", "district", "东城区", None),
    ("110101001", "street", "东华门街道", "110101"),
    ("110101002", "street", "景山街道", "110101"),
    ("110101001001", "community", "多福巷社区", "110101001"),
    ("110101001002", "community", "银闸社区", "110101001"),
    ("110101002001", "community", "景山东街社区", "110101002"),
]


@pytest.fixture
def city(engine) -> dict[str, int]:
    """The scenario above; returns the user ids by name."""
    with Session(engine) as s:
        s.add_all([Department(code="HW", name="环卫处"), Department(code="SZ", name="市政处")])
        s.add_all(Region(code=c, level=lv, name=n, parent_code=p) for c, lv, n, p in REGIONS)
        s.add(
            GridCell(
                code=G1, name="东华门一号网格", street_code=G1[:9], community_code=G1[:12], area_m2=10000.0,
                area_class="A", centroid_lon=116.4, centroid_lat=39.9,
                geometry_wkt="POLYGON((116.4 39.9, 116.401 39.9, 116.401 39.901, 116.4 39.901, 116.4 39.9))",
            )
        )  # fmt: skip
        s.flush()
        users = {n: AppUser(name=n, role=r, department_code=d) for n, r, d in USERS}
        s.add_all(users.values())
        s.flush()
        ids = {n: u.id for n, u in users.items()}
        files: dict[str, CaseFile] = {}
        for i, (key, spec) in enumerate(CASES.items(), start=1):
            steps: list[Step] = spec["steps"]
            depts = [d["department"] for _, _, a, _, d in steps if a in ("dispatch", "redispatch")]
            last = steps[-1]
            files[key] = CaseFile(
                number=f"{steps[0][0]:%Y%m%d}{i:04d}", state=_to_state(last[2], last[4]), matter_code="06010",
                grid_code=spec["grid"], area_class=spec["area"], source=spec["source"],
                public=spec["source"] != "collector", collector_id=ids[spec["collector"]],
                department_code=depts[-1] if depts else None, stage="处置", stage_started_at=last[0],
                created_at=steps[0][0], updated_at=last[0],
            )  # fmt: skip
        s.add_all(files.values())
        s.flush()
        for key, spec in CASES.items():
            state, dept = "", None
            for seq, (at, who, action, on_time, data) in enumerate(spec["steps"], start=1):
                if action in ("dispatch", "redispatch"):
                    dept = data["department"]
                to_state = _to_state(action, data)
                user = ids.get(who)
                role = dict((n, r) for n, r, _ in USERS).get(who, "system")
                s.add(
                    CaseEvent(
                        case_id=files[key].id, seq=seq, at=at, user_id=user, actor=who, role=role, action=action,
                        from_state=state, to_state=to_state, department_code=dept, on_time=on_time, data=data,
                    )
                )  # fmt: skip
                state = to_state
                if action == "approve" and data["approved"] == "回退":
                    dept = None
        for n, (channel, sender, case, at) in enumerate(REPORTS):
            s.add(
                Report(
                    channel=channel, channel_ref=f"ref-{n}", sender=sender, received_at=at,
                    case_id=files[case].id if case else None,
                )
            )  # fmt: skip
        s.commit()
    return ids


def by_code(rows: list[evaluation.Row]) -> dict[str, evaluation.Row]:
    return {r.object_code: r for r in rows}


def test_departments(engine, city):
    rows = evaluation.evaluate(engine, "2026-11", "dept")
    assert [r.object_code for r in rows] == ["HW", "SZ"]
    hw, sz = rows
    assert (hw.object_name, hw.role) == ("环卫处", "")
    # HW: dispatched to it in November C1, C2, C3 (later returned), C6 (redispatched to it 11-16); it completed
    # C1, C2 and C8 (dispatched 10-31, completed 11-01 00:30 Beijing = 10-31 16:30 UTC) → 应处置数 = |{C1, C2, C3,
    # C6, C8}| = 5, 处置数 3. Completions: C1 on time, C2 late, C2 again on time, C8 late → 2 on time, 2 late.
    # 返工: C2's failed 核查. C7 is October's only.
    assert hw.indicators == {
        "应处置数": 5, "处置数": 3, "按时处置数": 2, "超时处置数": 2, "返工数": 1, "延期数": 0,
        "处置率": 60.0,  # 3 / 5
        "按时处置率": 50.0,  # 2 / 4 completions
        "返工率": 25.0,  # 1 / 4 completions
        "延期率": 0.0,  # 0 / 5
        "派遣数分值": 100,  # 5 ≤ 50
    }  # fmt: skip
    # 100×10% + 60×30% + 50×30% + (100 − 25)×30% = 10 + 18 + 15 + 22.5 = 65.5 → C
    assert (hw.score, hw.grade) == (65.5, "C")
    # SZ: dispatched C3 (by disp2), C4, C6 (taken away 11-16); completed C3 and C4 (11-30 23:30), both on time;
    # C4's 延期 approved. C4's 核查 on 12-01 00:30 Beijing is December's.
    assert sz.indicators == {
        "应处置数": 3, "处置数": 2, "按时处置数": 2, "超时处置数": 0, "返工数": 0, "延期数": 1,
        "处置率": 66.7,  # 2 / 3
        "按时处置率": 100.0, "返工率": 0.0,
        "延期率": 33.3,  # 1 / 3
        "派遣数分值": 100,
    }  # fmt: skip
    # 10 + 66.7×30% + 100×30% + (100 − 0)×30% = 10 + 20.01 + 30 + 30 = 90.01 → 90.0 → A (A is ≥ 90)
    assert (sz.score, sz.grade) == (90.0, "A")


def test_streets(engine, city):
    rows = by_code(evaluation.evaluate(engine, "2026-11", "region"))
    assert set(rows) == {"110101001", "110101002"}
    dhm = rows["110101001"]
    assert (dhm.object_name, dhm.role) == ("东华门街道", "")
    # 立案 in November: C1, C2, C3 (C8 was filed 10-31; C5 voided, C9 merged: never filed).
    # 结案 in November: C1, C2, C3 and C8 (filed in October) → 应结案 = |{C1, C2, C3, C8}| = 4.
    # 按期: every 处置完成 on time — C1 yes, C2 no (its first was late), C3 yes, C8 no → 2.
    # Not public among the 立案: C2 → 1 / 3. Cases counted: C1, C2, C8 in class A, C3 in B → 3 of 4 → 一类区域,
    # and 3 立案 on the 一类 bands (3–4) → 75 (二类 would give 90).
    assert dhm.indicators == {
        "立案数": 3, "结案数": 4, "应结案数": 4, "按期结案数": 2, "结案率": 100.0, "按期结案率": 50.0,
        "监督举报率": 33.3, "一类区域": 1, "立案数分值": 75,
    }  # fmt: skip
    # 33.3×10% + 75×20% + 100×30% + 50×40% = 3.33 + 15 + 30 + 20 = 68.33 → 68.3 → C
    assert (dhm.score, dhm.grade) == (68.3, "C")
    js = rows["110101002"]
    # 立案 C4, C6 (C6 a collector's report); nothing closed in November (C4 closes 12-02); both class B → 二类,
    # 2 立案 (1–3) → 90.
    assert js.indicators == {
        "立案数": 2, "结案数": 0, "应结案数": 2, "按期结案数": 0, "结案率": 0.0, "按期结案率": 0.0,
        "监督举报率": 50.0, "一类区域": 0, "立案数分值": 90,
    }  # fmt: skip
    # 50×10% + 90×20% + 0 + 0 = 5 + 18 = 23.0 → E
    assert (js.score, js.grade) == (23.0, "E")


def test_communities_and_grid_cells(engine, city):
    rows = by_code(evaluation.evaluate(engine, "2026-11", "region", level="community"))
    assert set(rows) == {"110101001001", "110101001002", "110101002001"}
    dfx = rows["110101001001"]
    # G1: 立案 C1, C2; 结案 C1, C2, C8 → 应结案 3, 按期 only C1; not public: C2 of 2; all class A → 2 立案 → 90
    assert dfx.object_name == "多福巷社区"
    assert dfx.indicators == {
        "立案数": 2, "结案数": 3, "应结案数": 3, "按期结案数": 1, "结案率": 100.0, "按期结案率": 33.3,
        "监督举报率": 50.0, "一类区域": 1, "立案数分值": 90,
    }  # fmt: skip
    # 50×10% + 90×20% + 100×30% + 33.3×40% = 5 + 18 + 30 + 13.32 = 66.32 → 66.3 → C
    assert (dfx.score, dfx.grade) == (66.3, "C")
    yz = rows["110101001002"]
    # G2: C3 alone, filed, closed on time, public; class B, 1 立案 → 90: 0 + 18 + 30 + 40 = 88.0 → B
    assert (yz.indicators["按期结案率"], yz.indicators["监督举报率"], yz.indicators["立案数分值"]) == (100.0, 0.0, 90)
    assert (yz.score, yz.grade) == (88.0, "B")
    assert rows["110101002001"].score == 23.0  # the whole of 景山街道's cases lie in G3
    cells = by_code(evaluation.evaluate(engine, "2026-11", "region", level="grid"))
    assert set(cells) == {G1, G2, G3}
    assert cells[G1].object_name == "东华门一号网格" and cells[G1].indicators == dfx.indicators
    assert cells[G2].object_name == G2  # no GridCell row: the code stands for its name


def test_a_region_split_evenly_between_classes_is_class_two(engine, city):
    # 11-05..11-06 in 东华门街道: 立案 C3 (class B); 结案 C2 (class A) and C3 → 应结案 {C2, C3}, one of each class:
    # not more than half in class A → 二类. Bands that tell the classes apart: 一类 → 0, 二类 → 100.
    w = Weights(region_bands_a=Bands(((100, 0),)), region_bands_b=Bands(((100, 100),)))
    (street,) = evaluation.evaluate(engine, "2026-11-05..2026-11-06", "region", weights=w)
    assert (street.object_code, street.indicators["应结案数"]) == ("110101001", 2)
    assert (street.indicators["一类区域"], street.indicators["立案数分值"]) == (0, 100)


def test_collectors(engine, city):
    rows = evaluation.evaluate(engine, "2026-11", "post")
    col1, col2 = (r for r in rows if r.role == "collector")
    assert (col1.object_code, col1.object_name) == (str(city["col1"]), "col1")
    # col1's reports in November: C2, C5, C9 (the October one and the WeChat one from "col1" do not count);
    # valid = 立案 or 作废: C2 (立案), C5 (作废); C9 was merged → 2 / 3.
    # Its grid's 立案 in November: C1, C2, C3; public ones it missed: C1, C3 → 2 / 3.
    # 核查: C1 on time, C2 (failed) on time, C2 late, C3 on time, C8 on time → 4 / 5; no 核实.
    assert col1.indicators == {
        "上报数": 3, "有效上报数": 2, "有效上报率": 66.7, "漏报数": 2, "漏报率": 66.7,
        "核实数": 0, "按时核实率": None, "核查数": 5, "按时核查率": 80.0,
    }  # fmt: skip
    # 66.7×40% + (100 − 66.7)×20% + 100 (no 核实) ×20% + 80×20% = 26.68 + 6.66 + 20 + 16 = 69.34 → 69.3 → C
    assert (col1.score, col1.grade) == (69.3, "C")
    # col2: report C6 (valid: filed); the one of 12-01 00:10 Beijing is December's. Its grid's 立案: C4 (public,
    # missed) and C6 → 漏报 1 / 2. 核实 C6 on time. C4's 核查 (late) is on 12-01 00:30 Beijing: not November's.
    assert col2.indicators == {
        "上报数": 1, "有效上报数": 1, "有效上报率": 100.0, "漏报数": 1, "漏报率": 50.0,
        "核实数": 1, "按时核实率": 100.0, "核查数": 0, "按时核查率": None,
    }  # fmt: skip
    # 100×40% + (100 − 50)×20% + 100×20% + 100 (no 核查) ×20% = 40 + 10 + 20 + 20 = 90.0 → A
    assert (col2.score, col2.grade) == (90.0, "A")


def test_operator_and_shift_lead(engine, city):
    rows = {r.object_name: r for r in evaluation.evaluate(engine, "2026-11", "post")}
    # one row per user who acted, in role order; op2 did nothing, hw and sz are judged as departments
    assert list(rows) == ["col1", "col2", "op1", "lead1", "disp1", "disp2"]
    op1 = rows["op1"]
    # accept C1, C2 (late), C3, C4, C5; send_verify C6; merge C9 (no clock, so not late) → 7, 6 on time
    # (C7, C8 were accepted in October)
    assert op1.role == "operator"
    assert op1.indicators == {"受理数": 7, "按时受理率": 85.7, "受理数分值": 0}  # 6 / 7 = 85.71…; 7 ≤ 100 → 0
    # 0×25% + 85.7×40% + 85.7×35% (按时受理率 for both dispatch rates) = 34.28 + 29.995 = 64.275 → 64.3 → C
    assert (op1.score, op1.grade) == (64.3, "C")
    lead = rows["lead1"]
    # 立案 C1, C2, C3 on time, C4, C6 late → 3 / 5; 作废 C5 → (5 − 1) / 5; 结案 C1, C2 (late), C3, C8 → 3 / 4
    assert lead.indicators == {
        "立案数": 5, "作废数": 1, "按时立案率": 60.0, "准确立案率": 80.0, "结案数": 4, "按时结案率": 75.0,
    }  # fmt: skip
    # 60×25% + 80×40% + 75×35% = 15 + 32 + 26.25 = 73.25 → 73.3 (四舍五入) → C
    assert (lead.score, lead.grade) == (73.3, "C")


def test_dispatchers(engine, city):
    rows = {r.object_name: r for r in evaluation.evaluate(engine, "2026-11", "post")}
    d1, d2 = rows["disp1"], rows["disp2"]
    # disp1 dispatched C1, C2, C3 → HW, C4, C6 → SZ (C6 late). C3 was returned and sent to SZ, C6 redispatched
    # to HW: 2 of the 5 were not accurate.
    assert d1.indicators == {"派遣数": 5, "准确派遣数": 3, "按时派遣率": 80.0, "准确派遣率": 60.0, "派遣数分值": 0}
    # 0×20% + 80×40% + 60×40% = 32 + 24 = 56.0 → D
    assert (d1.score, d1.grade) == (56.0, "D")
    # disp2: dispatch C3 → SZ (on time) and redispatch C6 → HW, both accurate; the redispatch's on_time (late) is
    # SZ's 处置 clock, not a 派遣 one → 按时派遣率 1 / 1
    assert d2.indicators == {"派遣数": 2, "准确派遣数": 2, "按时派遣率": 100.0, "准确派遣率": 100.0, "派遣数分值": 0}
    assert (d2.score, d2.grade) == (80.0, "B")  # 0 + 40 + 40


def test_date_ranges_and_period_edges(engine, city):
    first = by_code(evaluation.evaluate(engine, "2026-11-01..2026-11-15", "dept"))
    # 11-01 to 11-15 inclusive: HW dispatched C1, C2, C3 (C6 comes on 11-16) and completed C1, C2, C8 → 4
    assert (first["HW"].indicators["应处置数"], first["HW"].indicators["处置率"]) == (4, 75.0)
    # and C6's redispatch of 11-16 is not yet known: disp1's dispatch of C6 still counts as accurate (4 / 5)
    posts = {r.object_name: r for r in evaluation.evaluate(engine, "2026-11-01..2026-11-15", "post")}
    assert posts["disp1"].indicators["准确派遣率"] == 80.0 and "disp2" in posts
    assert by_code(evaluation.evaluate(engine, "2026-11-01..2026-11-16", "dept"))["HW"].indicators["应处置数"] == 5
    second = by_code(evaluation.evaluate(engine, "2026-11-16..2026-11-30", "dept"))
    # 11-16 to 11-30: HW only received C6 and completed nothing → 处置率 0; no completions → the two rates are
    # None and score as if perfect: 100×10% + 0×30% + 100×30% + (100 − 0)×30% = 70.0
    hw = second["HW"]
    assert (hw.indicators["应处置数"], hw.indicators["处置率"]) == (1, 0.0)
    assert (hw.indicators["按时处置率"], hw.indicators["返工率"]) == (None, None)
    assert (hw.score, hw.grade) == (70.0, "C")
    # SZ completed C4 on 11-30 23:30 Beijing (15:30 UTC), inside the range
    assert (second["SZ"].indicators["处置数"], second["SZ"].indicators["延期数"]) == (1, 0)
    october = by_code(evaluation.evaluate(engine, "2026-10", "dept"))
    # October: HW received C7 and C8 (10-31 23:00 Beijing) and completed C7 only
    assert list(october) == ["HW"] and october["HW"].indicators["处置数"] == 1
    assert october["HW"].indicators["处置率"] == 50.0
    for kind in ("dept", "region", "post"):
        assert evaluation.evaluate(engine, "2026-08", kind) == []


def test_self_handled_closures_and_insisted_dispatches(engine, city):
    # September: C10 was closed without ever being 立案 (自处理), so 东华门街道 has nothing to show; 景山街道 has C11
    regions = by_code(evaluation.evaluate(engine, "2026-09", "region"))
    assert list(regions) == ["110101002"] and regions["110101002"].indicators["结案数"] == 0
    posts = {r.object_name: r for r in evaluation.evaluate(engine, "2026-09", "post")}
    # 自处理 is col1's way out of 核实; C10's 结案 is still lead1's
    assert (posts["col1"].indicators["核实数"], posts["lead1"].indicators["结案数"]) == (1, 1)
    # C11 came back from HW and went to HW again: not sent on to another department, so both dispatches stand
    assert posts["disp1"].indicators["准确派遣率"] == 100.0


@pytest.mark.parametrize(
    "period",
    ["2026-13", "2026-00", "0000-01", "11/2026", "2026-11-31..2026-12-01", "2026-11-30..2026-11-01", "", "2026"],
)
def test_bad_periods_are_refused(engine, period):
    with pytest.raises(ValueError, match="评价周期") as caught:
        evaluation.evaluate(engine, period, "dept")
    assert repr(period) in str(caught.value)


def test_bad_kind_and_level_are_refused(engine):
    with pytest.raises(ValueError, match="'people'"):
        evaluation.evaluate(engine, "2026-11", "people")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'district'"):
        evaluation.evaluate(engine, "2026-11", "region", level="district")


def test_csv_round_trip(engine, city, tmp_path):
    posts = evaluation.evaluate(engine, "2026-11", "post")
    path = tmp_path / "岗位.csv"
    evaluation.write_csv(posts, path)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    with path.open(encoding="utf-8-sig", newline="") as f:
        header, *table = list(csv.reader(f))
    assert header[:3] == ["对象代码", "对象名称", "岗位"] and header[-2:] == ["综合指标值", "等级"]
    assert {"上报数", "漏报率", "受理数", "准确立案率", "准确派遣率"} <= set(header)
    rows = [dict(zip(header, line, strict=True)) for line in table]
    assert [r["对象名称"] for r in rows] == [p.object_name for p in posts]
    col1 = rows[0]
    assert (col1["岗位"], col1["上报数"], col1["有效上报率"], col1["按时核实率"]) == ("监督员", "3", "66.7", "")
    assert col1["受理数"] == ""  # another 岗位's indicator
    lead = next(r for r in rows if r["对象名称"] == "lead1")
    assert (lead["岗位"], lead["立案数"], lead["综合指标值"], lead["等级"]) == ("值班长", "5", "73.3", "C")

    depts = tmp_path / "部门.csv"
    evaluation.write_csv(evaluation.evaluate(engine, "2026-11", "dept"), depts)
    with depts.open(encoding="utf-8-sig", newline="") as f:
        table = list(csv.DictReader(f))
    assert "岗位" not in table[0]
    assert [(r["对象代码"], r["对象名称"], r["应处置数"], r["综合指标值"], r["等级"]) for r in table] == [
        ("HW", "环卫处", "5", "65.5", "C"),
        ("SZ", "市政处", "3", "90.0", "A"),
    ]


def test_weights_and_bands_can_be_overridden(engine, city):
    # 派遣数分值 alone, with a band that gives 100 up to 3 cases and 50 above: HW (5) → 50, SZ (3) → 100
    w = Weights(dept=(1.0, 0.0, 0.0, 0.0), dept_bands=Bands(((3, 100),), above=50))
    rows = by_code(evaluation.evaluate(engine, "2026-11", "dept", weights=w))
    assert (rows["HW"].score, rows["HW"].grade, rows["SZ"].score) == (50.0, "D", 100.0)
    # a stricter grade scale: 东华门街道's 68.3 is a B where B starts at 60
    strict = Weights(grades=((95, "A"), (60, "B")), lowest_grade="C")
    streets = by_code(evaluation.evaluate(engine, "2026-11", "region", weights=strict))
    assert (streets["110101001"].grade, streets["110101002"].grade) == ("B", "C")
    # the 二类 bands for every region: 东华门街道's 3 立案 score 90 instead of 75 → 68.33 + (90 − 75)×20% = 71.3
    flat = Weights(region_bands_a=Weights().region_bands_b)
    assert by_code(evaluation.evaluate(engine, "2026-11", "region", weights=flat))["110101001"].score == 71.3
