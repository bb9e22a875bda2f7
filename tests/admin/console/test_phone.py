"""电话登记 through HTTP: live suggestions, a caller's report filed through the intake (once per form, the number
kept but never shown), refusals that store nothing, and a call the IVR handed over accepted as its own case."""

from __future__ import annotations

import io
import re
import wave

from sqlmodel import Session, func, select

from core.cases import SYSTEM
from core.models import Report

CALLER = "13812345678"
KEY = re.compile(r'name="key" value="([^"]+)"')


def reports(console) -> int:
    with Session(console.runtime.engine) as session:
        return session.exec(select(func.count()).select_from(Report)).one()


def wav(seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(int(8000 * seconds) * 2))
    return out.getvalue()


async def form_key(staff) -> str:
    status, page = await staff.get("/console/phone")
    assert status == 200, page[:300]
    return KEY.search(page).group(1)


async def test_suggestions_while_typing_give_the_top_three_and_the_place_with_its_grid_cell(console):
    op = await console.login("op")
    async with op.http.get(
        "/console/phone/suggest", params={"text": "门口一大堆垃圾没人清", "place": "人民路88号"}
    ) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
        body = await resp.json()
    cls, place = body["classification"], body["place"]
    assert len(cls["top"]) == 3 and cls["top"][0]["code"] == "06010" and cls["decision"] in ("auto", "review")
    assert cls["top"][0]["p"] >= cls["top"][1]["p"] >= cls["top"][2]["p"] and "scope_reason" not in cls
    assert place["found"] and place["matched"] == "人民路88号" and place["grid"]["code"].startswith("339901")

    async with op.http.get("/console/phone/suggest", params={"text": "请问孩子上小学的学区怎么划分"}) as resp:
        other = (await resp.json())["classification"]
    assert other["decision"] == "out_of_scope" and other["scope_reason"] and other["code"] is None

    lon, lat = place["lon"], place["lat"]
    async with op.http.get("/console/phone/suggest", params={"lon": lon, "lat": lat}) as resp:
        picked = (await resp.json())["place"]
    assert picked["grid"]["code"] == place["grid"]["code"] and (picked["lon"], picked["lat"]) == (lon, lat)

    for bad in ({"text": "长" * 501}, {"place": "路" * 201}, {"lon": "120.6"}, {"lon": "x", "lat": "30"}, {}):
        async with op.http.get("/console/phone/suggest", params=bad) as resp:
            assert resp.status == 400 and (await resp.json())["error"], bad


async def test_a_phone_report_becomes_a_hotline_case_waiting_for_acceptance_with_the_number_masked(console):
    op = await console.login("op")
    key = await form_key(op)
    before = reports(console)
    status, page = await op.post(
        "/console/phone",
        {"key": key, "caller": "138-1234-5678", "text": "门口一大堆垃圾没人清，好几天了", "address": "人民路88号"},
    )
    assert status == 200 and "已登记电话反映" in page
    number = re.search(r"<h1>案卷 (\d+)", page).group(1)
    assert CALLER not in page and "138****5678" in page  # the case page shows the caller masked
    case, _ = console.runtime.loop.get(number, SYSTEM)
    assert (case.state, case.source, case.matter_code, case.address) == ("待受理", "hotline", "06010", "人民路88号")
    assert case.grid_code and case.grid_code.startswith("339901")
    with Session(console.runtime.engine) as session:
        [report] = session.exec(select(Report).where(Report.case_id == case.id)).all()
    assert (report.channel, report.sender, report.channel_ref) == ("hotline", CALLER, f"seat:{key}")
    assert reports(console) == before + 1

    # the same form sent again (a double click, the back button) files nothing new
    status, again = await op.post("/console/phone", {"key": key, "caller": CALLER, "text": "门口一大堆垃圾没人清"})
    assert status == 200 and "未重复登记" in again and f"案卷 {number}" in again
    assert reports(console) == before + 1

    # a point picked on the map is where the case is
    status, page = await op.post(
        "/console/phone", {"key": await form_key(op), "text": "井盖没了", "lon": "120.5981418", "lat": "29.9999542"}
    )
    picked = re.search(r"<h1>案卷 (\d+)", page).group(1)
    case, _ = console.runtime.loop.get(picked, SYSTEM)
    assert (case.lon, case.lat, case.grid_code) == (120.5981418, 29.9999542, "339901001003004")
    for path in ("/console/phone", f"/console/cases/{number}"):
        _, html = await op.get(path)
        assert CALLER not in html


async def test_bad_fields_are_refused_with_the_form_kept_and_nothing_stored(console):
    op = await console.login("op")
    key = await form_key(op)
    before = reports(console)
    good = {"key": key, "caller": CALLER, "text": "井盖没了", "address": "人民路88号"}
    for bad, says in (
        ({"text": "  "}, "请填写来电人反映的问题"),
        ({"caller": "12"}, "3–20 位数字"),
        ({"caller": "1381234567８"}, "3–20 位数字"),  # a full-width digit
        ({"caller": "1" * 21}, "3–20 位数字"),
        ({"key": ""}, "表单已过期"),
        ({"address": "路" * 201}, "地点最多"),
        ({"lon": "120.6"}, "同时提供"),
        ({"lon": "abc", "lat": "30"}, "经度应为数字"),
        ({"text": "井盖\x00没了"}, "NUL"),
    ):
        status, page = await op.post("/console/phone", {**good, **bad})
        assert status == 422 and says in page and "未保存" in page, (bad, page[:400])
        kept = ">井盖没了</textarea>" if "text" not in bad else 'value="人民路88号"'
        assert kept in page  # what the seat typed is still there
    assert reports(console) == before


async def test_a_call_the_ivr_handed_over_is_opened_heard_and_accepted_as_its_own_case(console):
    runtime = console.runtime
    audio = runtime.attachments.put(wav(), "audio/wav")
    media = ({"sha256": audio.sha256, "media_type": audio.media_type, "kind": "audio"},)
    number = console.report("人民路88号的井盖没了", channel="hotline", sender="13900001111", media=media)
    seat_case = await _seat_report(console)
    webchat = console.report()
    before = reports(console)

    op = await console.login("op")
    status, page = await op.get("/console/phone")
    listed = re.findall(r'href="/console/phone\?case=(\d+)"', page)
    assert number in listed and seat_case not in listed and webchat not in listed

    status, page = await op.get(f"/console/phone?case={number}")
    assert status == 200 and "13900001111" not in page and "139****1111" in page
    assert f'src="/console/cases/{number}/files/{audio.sha256}"' in page
    assert f'action="/console/cases/{number}/do/accept"' in page and "人民路88号的井盖没了</textarea>" in page
    async with op.http.get(f"/console/cases/{number}/files/{audio.sha256}") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "audio/wav"

    lead = await console.login("lead")  # a 值班长 may hear the call; 受理 is the 受理员's
    status, page = await lead.get(f"/console/phone?case={number}")
    assert status == 200 and "受理由受理员办理" in page and "/do/accept" not in page and "139****1111" in page

    case, _ = runtime.loop.get(number, SYSTEM)
    status, page = await op.post(
        f"/console/cases/{number}/do/accept",
        {
            "version": str(case.version),
            "next": "/console/phone",
            "matter_code": "01002",
            "note": "来电人确认：污水井盖",
            "address": "人民路90号",
            "lon": "120.5981418",
            "lat": "29.9999542",
        },
    )
    assert status == 200 and f"已受理：{number}" in page and "电话登记" in page
    case, events = runtime.loop.get(number, SYSTEM)
    assert (case.state, case.matter_code, case.address) == ("待立案", "01002", "人民路90号")
    assert events[-1].note == "来电人确认：污水井盖" and events[-1].actor == "op"
    assert reports(console) == before  # the call stayed one report and one case
    assert number not in re.findall(r'href="/console/phone\?case=(\d+)"', page)

    status, page = await op.get(f"/console/phone?case={number}")
    assert status == 200 and "已无需在此受理" in page and "/do/accept" not in page

    status, page = await op.get(f"/console/phone?case={webchat}")
    assert status == 404 and "不是 12319 来电" in page
    status, page = await op.get("/console/phone?case=20990101999999")
    assert status == 404


async def _seat_report(console) -> str:
    lead = await console.login("lead")
    status, page = await lead.post("/console/phone", {"key": await form_key(lead), "text": "路灯不亮了"})
    assert status == 200, page[:300]
    return re.search(r"<h1>案卷 (\d+)", page).group(1)


async def test_only_the_seat_roles_may_use_the_page(console):
    before = reports(console)
    for name in ("hw", "col", "disp"):
        staff = await console.login(name)
        status, page = await staff.get("/console/phone")
        assert status == 403 and "受理员" in page
        async with staff.http.get("/console/phone/suggest", params={"text": "井盖没了"}) as resp:
            assert resp.status == 403
            assert "classification" not in await resp.text()
        status, _ = await staff.post("/console/phone", {"key": "k" * 20, "caller": CALLER, "text": "井盖没了"})
        assert status == 403
    assert reports(console) == before
