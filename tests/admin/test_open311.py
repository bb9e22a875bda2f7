"""Open311 GeoReport v2 at /open311/v2/: every JSON answer validated against the shared JSON Schemas (the XML one
must say the same), errors in Open311's own list, a client's POST taken as its choice of 事项 beside the
classifier's view, idempotent on its own id, rate-limited per key, no personal data in any answer; a POST walked
through the whole loop to 结案 is then ``closed``; and schemathesis drives the shared swagger.json against a real
`gridline serve`."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode, urlsplit

import defusedxml.ElementTree as SafeET
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from sqlalchemy import insert
from sqlmodel import Session, select

from admin.app import build_app
from admin.cli import main
from admin.console.casepage import case_view
from admin.runtime import Runtime
from bench.harness import free_port, serving
from core import apikeys, db, users
from core.cases import SYSTEM, Actor
from core.config import load_settings
from core.intake import Incoming
from core.models import CaseFile, FilingCondition, Report, TaxonomyItem, row_defaults
from tests.bots.conftest import DOOR_88, walk
from tests.bots.fakes import png
from tests.conftest import SHARED, _new_database

CONFORMANCE = SHARED / "conformance" / "open311-georeport-v2"
BASE = "/open311/v2"
DISTRICT = "339901"
PHONE, ID_NUMBER = "13812345678", "33010219800101123X"
ERRORS = {  # GeoReport v2's error list (the shared folder has no schema of it)
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["code", "description"],
        "properties": {"code": {"type": "integer"}, "description": {"type": "string", "minLength": 1}},
    },
}
LISTS = {"attributes", "values", "endpoints", "formats"}  # XML elements whose children are a list
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
FORMATS = jsonschema.FormatChecker()  # jsonschema checks these two only with extra packages: checked here instead

ADMIN = Actor(None, "测试管理员", "admin")


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or ("T" in value and datetime.fromisoformat(value).tzinfo is not None)


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme and urlsplit(value).netloc)


def validator(name: str) -> jsonschema.Draft4Validator:
    """A shared schema (``swagger.json#/definitions/…`` too) with its references; a visible skip without them."""
    if not CONFORMANCE.exists():
        pytest.skip(f"shared conformance schemas not available: {CONFORMANCE}")
    docs = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in CONFORMANCE.glob("*.json")}
    registry = Registry().with_resources(
        (file, Resource.from_contents(doc, default_specification=DRAFT4)) for file, doc in docs.items()
    )
    schema = docs.get(name, {"type": "array", "items": {"$ref": name}})
    return jsonschema.Draft4Validator(schema, registry=registry, format_checker=FORMATS)


def plain(element: Any) -> Any:
    """An XML answer as the JSON one would read with every value written as text."""
    if element.tag in LISTS:
        return [plain(child) for child in element]
    if len(element) == 0:
        return element.text or ""
    return {child.tag: plain(child) for child in element}


def as_text(value: Any) -> Any:
    """A JSON answer with every value as the XML one writes it (characters XML cannot carry as U+FFFD)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_text(v) for v in value]
    return NOT_XML.sub("\ufffd", str(value))


@pytest.fixture(scope="module")
def world(tmp_path_factory, _demo_template):
    """A demo city of this module's own, with one client application's key."""
    folder = tmp_path_factory.mktemp("open311")
    url, _, drop = _new_database(_demo_template, folder)
    environ = {
        "GRIDLINE_DATABASE_URL": url,
        "GRIDLINE_DATA_DIR": str(folder / "var"),
        "GRIDLINE_CLASSIFIER_MODEL": "keyword",
    }
    runtime = Runtime(load_settings(environ=environ))
    key = apikeys.add_key(runtime.engine, ADMIN, "city-app", rate_per_minute=10_000)
    yield SimpleNamespace(runtime=runtime, key=key)
    runtime.close()
    drop()


@pytest.fixture
async def http(world, aiohttp_client):
    return await aiohttp_client(build_app(world.runtime))


async def both(http, path: str, schema: str, root: str, item: str = "", **params: Any) -> Any:
    """GET path.json and path.xml: the JSON valid against ``schema``, the XML the same data under ``root``."""
    resp = await http.get(f"{BASE}/{path}.json", params=params)
    assert resp.status == 200 and resp.content_type == "application/json", await resp.text()
    data = await resp.json()
    validator(schema).validate(data)
    resp = await http.get(f"{BASE}/{path}.xml", params=params)
    assert resp.status == 200 and resp.content_type == "text/xml"
    tree = SafeET.fromstring(await resp.read())
    assert tree.tag == root
    if isinstance(data, list):
        assert all(child.tag == item for child in tree)
        assert [plain(child) for child in tree] == as_text(data)
    else:
        assert plain(tree) == as_text(data)
    return data


async def refused(resp, status: int, fmt: str = "json") -> str:
    """An Open311 error list with this status, in the format asked for; its description."""
    assert resp.status == status, await resp.text()
    if fmt == "xml":
        tree = SafeET.fromstring(await resp.read())
        assert tree.tag == "errors" and [e.tag for e in tree] == ["error"]
        assert tree.find("error/code").text == str(status)
        return tree.find("error/description").text
    body = await resp.json()
    jsonschema.validate(body, ERRORS)
    assert body[0]["code"] == status and "error" not in body
    return body[0]["description"]


async def post(http, fmt: str = "json", **fields: str):
    return await http.post(f"{BASE}/requests.{fmt}", data=fields)


def report_fields(world, **extra: str) -> dict[str, str]:
    return {
        "api_key": world.key,
        "service_code": "06010",
        "lat": str(DOOR_88[1]),
        "long": str(DOOR_88[0]),
        "description": "人民路88号门口一大堆垃圾没人清",
        **extra,
    }


async def filed(http, world, **extra: str) -> dict[str, Any]:
    resp = await post(http, **report_fields(world, **extra))
    assert resp.status == 200, await resp.text()
    [receipt] = await resp.json()
    validator("swagger.json#/definitions/RequestResponse").validate([receipt])
    return receipt


# --- services ---------------------------------------------------------------------------------------------------
async def test_discovery_names_this_endpoint_and_both_formats(http):
    resp = await http.get(f"{BASE}/discovery.json")  # no shared schema of discovery: its fields checked here
    data = await resp.json()
    [endpoint] = data["endpoints"]
    assert endpoint["url"].endswith(BASE) and endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert set(endpoint["formats"]) == {"application/json", "text/xml"} and data["changeset"]
    tree = SafeET.fromstring(await (await http.get(f"{BASE}/discovery.xml")).read())
    assert plain(tree) == as_text(data)


async def test_services_are_every_matter_of_the_code_table_grouped_by_its_major(http, world):
    services = await both(http, "services", "services.json", "services", "service", jurisdiction_id=DISTRICT)
    with Session(world.runtime.engine) as session:
        matters = session.exec(select(TaxonomyItem).where(TaxonomyItem.kind == "matter")).all()
    assert {s["service_code"]: (s["service_name"], s["group"]) for s in services} == {
        m.code: (m.name, m.major_name) for m in matters
    }
    assert {s["type"] for s in services} == {"realtime"} and all(s["keywords"] for s in services)


async def test_a_definition_asks_for_the_component_and_the_filing_condition_where_the_matter_has_them(http, world):
    with Session(world.runtime.engine) as session:
        levels = session.exec(select(FilingCondition).where(FilingCondition.matter_code == "01001")).all()
        single = session.exec(select(TaxonomyItem).where(TaxonomyItem.kind == "matter", TaxonomyItem.code == "06010"))
        single = single.one()
    definition = await both(http, "services/01001", "service-definition.json", "service_definition")
    attributes = {a["code"]: a for a in definition["attributes"]}
    assert set(attributes) == {"component_id", "condition_level"}
    assert [int(v["key"]) for v in attributes["condition_level"]["values"]] == sorted(c.level for c in levels)
    assert not any(a["required"] for a in definition["attributes"])
    services = {s["service_code"]: s for s in await (await http.get(f"{BASE}/services.json")).json()}
    assert services["01001"]["metadata"] is True
    # 暴露垃圾 has no 部件; its metadata flag says whether it has a question
    plain_definition = await both(http, "services/06010", "service-definition.json", "service_definition")
    assert services["06010"]["metadata"] is bool(plain_definition["attributes"])
    assert single.component_code is None and "component_id" not in {a["code"] for a in plain_definition["attributes"]}
    for fmt in ("json", "xml"):
        await refused(await http.get(f"{BASE}/services/99999.{fmt}"), 404, fmt)


# --- POST -------------------------------------------------------------------------------------------------------
async def test_a_post_becomes_a_report_of_the_client_whose_choice_the_case_takes_beside_the_classifier(http, world):
    rt = world.runtime
    words = "小区门口的路灯晚上不亮，好几天了"  # the classifier reads a street lamp; the client chose 暴露垃圾
    receipt = await filed(http, world, description=words)
    number = receipt["service_request_id"]
    with Session(rt.engine) as session:
        report = session.exec(select(Report).where(Report.case_id.is_not(None), Report.text == words)).one()
    assert (report.channel, report.sender, report.chosen_code) == ("open311", "city-app", "06010")
    assert report.channel_ref == receipt["token"]
    seen = case_view(rt, number, Actor.of(users.add_user(rt.engine, "op-o311", "operator")))
    suggested = [t["code"] for t in seen["top"]]
    assert seen["case"].matter_code == "06010" and seen["case"].source == "open311"
    assert suggested and suggested[0] != "06010"  # the classifier's own view, shown beside the client's choice


async def test_the_clients_own_id_makes_a_repeated_post_one_report(http, world):
    first = await filed(http, world, **{"attribute[client_request_id]": "app-42"})
    again = await filed(http, world, **{"attribute[client_request_id]": "app-42", "description": "再报一次"})
    assert again["service_request_id"] == first["service_request_id"] and again["token"] == first["token"]
    other = await filed(http, world, **{"attribute[client_request_id]": "app-43"})
    unkeyed = [await filed(http, world), await filed(http, world)]
    ids = {first["service_request_id"], other["service_request_id"], *(r["service_request_id"] for r in unkeyed)}
    assert len(ids) == 4
    with Session(world.runtime.engine) as session:
        tokens = session.exec(select(Report.channel_ref).where(Report.channel == "open311")).all()
    assert tokens.count(first["token"]) == 1


async def test_xml_post_and_the_token_lead_to_the_same_request(http, world):
    resp = await post(http, "xml", **report_fields(world, address_string="解放路100号", lat="", long=""))
    assert resp.status == 200 and resp.content_type == "text/xml"
    tree = SafeET.fromstring(await resp.read())
    assert tree.tag == "service_requests" and [c.tag for c in tree] == ["request"]
    number, token = tree.find("request/service_request_id").text, tree.find("request/token").text
    answer = await both(
        http, f"tokens/{token}", "swagger.json#/definitions/TokenResponse", "service_requests", "request"
    )
    assert answer == [{"service_request_id": number, "token": token}]
    for missing in ("0" * 32, "not-a-token"):
        for fmt in ("json", "xml"):
            await refused(await http.get(f"{BASE}/tokens/{missing}.{fmt}"), 404, fmt)


async def test_answers_carry_no_personal_data_and_the_attributes_reach_the_description(http, world):
    words = f"门口垃圾没人清，我的电话 {PHONE}，身份证 {ID_NUMBER}"
    answers = {"attribute[component_id]": "33990101001000123", "attribute[condition_level]": "2"}
    photo = "https://img.example.org/1.jpg"
    receipt = await filed(http, world, service_code="01001", description=words, media_url=photo, **answers)
    [request] = await both(
        http, f"requests/{receipt['service_request_id']}", "requests.json", "service_requests", "request"
    )
    text = json.dumps(request, ensure_ascii=False)
    assert PHONE not in text and ID_NUMBER not in text and "city-app" not in text and world.key not in text
    assert "138****5678" in request["description"] and "330102********123X" in request["description"]
    assert "部件标识码：33990101001000123" in request["description"] and "情形：" in request["description"]
    assert request["media_url"] == photo and request["service_code"] == "01001"
    assert request["status"] == "open" and request["status_notes"] and request["lat"] == pytest.approx(DOOR_88[1])


async def test_characters_xml_cannot_carry_are_replaced_in_the_xml_answer_only(http, world):
    receipt = await filed(http, world, description="垃圾\x0b堆\x1f在门口")
    path = f"{BASE}/requests/{receipt['service_request_id']}"
    [request] = await (await http.get(f"{path}.json")).json()
    assert request["description"] == "垃圾\x0b堆\x1f在门口"
    tree = SafeET.fromstring(await (await http.get(f"{path}.xml")).read())
    assert tree.find("request/description").text == "垃圾\ufffd堆\ufffd在门口"


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"api_key": ""}, 400, "api_key"),
        ({"api_key": "o311_wrong"}, 403, "api_key"),
        ({"service_code": ""}, 400, "service_code"),
        ({"service_code": "99999"}, 400, "service_code"),
        ({"lat": "", "long": ""}, 400, "address_string"),
        ({"lat": "abc"}, 400, "lat"),
        ({"lat": "91"}, 400, "lat"),
        ({"long": "nan"}, 400, "long"),
        ({"description": "x" * 4001}, 400, "description"),
        ({"media_url": "ftp://example.org/a.jpg"}, 400, "media_url"),
        ({"attribute": "component_id"}, 400, "attribute"),
        ({"attribute[colour]": "red"}, 400, "colour"),
        ({"attribute[component_id]": "33990101002000123"}, 400, "component_id"),  # a 污水井盖 for a 供水井盖
        ({"attribute[condition_level]": "9"}, 400, "condition_level"),
        ({"attribute[client_request_id]": "x" * 65}, 400, "client_request_id"),
        ({"jurisdiction_id": "sfgov.org"}, 404, "jurisdiction_id"),
        ({"description": "垃圾\x00"}, 400, "NUL"),
    ],
)
async def test_a_bad_post_is_an_open311_error_naming_the_field_and_files_nothing(http, world, fields, status, words):
    with Session(world.runtime.engine) as session:
        before = len(session.exec(select(Report.id)).all())
    for fmt in ("json", "xml"):
        resp = await post(http, fmt, **{**report_fields(world, service_code="01001"), **fields})
        assert words in await refused(resp, status, fmt)
    with Session(world.runtime.engine) as session:
        assert len(session.exec(select(Report.id)).all()) == before


async def test_a_revoked_key_is_refused_and_each_key_is_rate_limited(http, world):
    engine = world.runtime.engine
    gone = apikeys.add_key(engine, ADMIN, "gone-app")
    apikeys.revoke_key(engine, ADMIN, "gone-app")
    assert "吊销" in await refused(await post(http, **report_fields(world, api_key=gone)), 403)
    slow = apikeys.add_key(engine, ADMIN, "slow-app", rate_per_minute=2)
    for n in range(2):
        assert (await post(http, **report_fields(world, api_key=slow, description=f"第 {n} 次"))).status == 200
    resp = await post(http, "xml", **report_fields(world, api_key=slow))
    await refused(resp, 429, "xml")
    assert 1 <= int(resp.headers["Retry-After"]) <= 30
    assert (await post(http, **report_fields(world))).status == 200  # another key is not held up


async def test_wrong_formats_routes_methods_and_jurisdictions_are_open311_errors(http):
    await refused(await http.get(f"{BASE}/services.html"), 400)
    await refused(await http.get(f"{BASE}/nothing.xml"), 404, "xml")
    resp = await http.delete(f"{BASE}/requests.json")
    await refused(resp, 405)
    assert "POST" in resp.headers["Allow"]
    await refused(await http.get(f"{BASE}/services.xml", params={"jurisdiction_id": "sfgov.org"}), 404, "xml")
    await refused(await http.get(f"{BASE}/requests.json", params={"service_code": "0\x00"}), 400)


# --- GET requests -----------------------------------------------------------------------------------------------
async def test_requests_filter_by_id_code_status_and_dates_within_90_days(http, world):
    rt = world.runtime
    loop = rt.loop
    real_clock = loop.clock
    long_ago = datetime.now(UTC) - timedelta(days=120)
    loop.clock = lambda: long_ago
    try:
        old, _ = rt.intake.submit(
            Incoming(
                "open311",
                "old-one",
                long_ago,
                sender="x",
                text="很久以前的垃圾堆",
                address="人民路88号",
                chosen_code="06010",
            )
        )
    finally:
        loop.clock = real_clock
    fresh = await filed(http, world, service_code="01002", description="污水井盖没了")
    number = fresh["service_request_id"]
    recent = await both(http, "requests", "requests.json", "service_requests", "request")
    assert number in {r["service_request_id"] for r in recent} and old.case_number not in {
        r["service_request_id"] for r in recent
    }
    assert len(recent) <= 1000
    stamps = [r["requested_datetime"] for r in recent]
    assert stamps == sorted(stamps, reverse=True)
    window = {
        "start_date": (long_ago - timedelta(days=1)).isoformat(),
        "end_date": (long_ago + timedelta(days=1)).isoformat(),
    }
    back_then = await both(http, "requests", "requests.json", "service_requests", "request", **window)
    assert [r["service_request_id"] for r in back_then] == [old.case_number]
    only = await both(http, "requests", "requests.json", "service_requests", "request", service_code="01002")
    assert {r["service_code"] for r in only} == {"01002"} and number in {r["service_request_id"] for r in only}
    assert not await both(
        http, "requests", "requests.json", "service_requests", "request", service_code="01002", status="closed"
    )
    # service_request_id overrides every other filter, the old case included
    ids = f"{old.case_number},{number},nonexistent"
    picked = await both(
        http, "requests", "requests.json", "service_requests", "request", service_request_id=ids, status="closed"
    )
    assert {r["service_request_id"] for r in picked} == {old.case_number, number}
    bad = [
        {"start_date": "yesterday"},
        {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-06-01T00:00:00+08:00"},  # more than 90 days
        {"start_date": "2026-06-01T00:00:00+08:00", "end_date": "2026-05-01T00:00:00+08:00"},
        {"end_date": "0001-01-01T00:00:00"},
        {"status": "pending"},
    ]
    for params in bad:
        for fmt in ("json", "xml"):
            await refused(await http.get(f"{BASE}/requests.{fmt}", params=params), 400, fmt)
    for fmt in ("json", "xml"):
        for missing in ("000000000000", "%00", "1" * 21):
            await refused(await http.get(f"{BASE}/requests/{missing}.{fmt}"), 404, fmt)


async def test_a_refused_case_is_closed_with_the_reason_the_citizen_was_told_masked(http, world):
    rt = world.runtime
    receipt = await filed(http, world)
    number = receipt["service_request_id"]
    op = Actor.of(users.add_user(rt.engine, "op-refuse", "operator"))
    rt.loop.act(number, "reject", op, {"reason": f"不属于城管范围，请拨打 12345（来电 {PHONE}）"})
    for path in (f"requests/{number}", f"request/{number}"):  # the specification's path and the swagger document's
        [request] = await both(http, path, "requests.json", "service_requests", "request")
        assert request["status"] == "closed" and "不予受理" in request["status_notes"]
        assert "12345" in request["status_notes"] and PHONE not in request["status_notes"]


async def test_a_post_walked_through_the_whole_loop_is_closed(http, world):
    rt = world.runtime
    receipt = await filed(http, world, **{"attribute[client_request_id]": "loop-1"})
    number = receipt["service_request_id"]
    [request] = await both(http, f"requests/{number}", "requests.json", "service_requests", "request")
    assert request["status"] == "open" and "受理" in request["status_notes"]
    after = rt.attachments.put(png(311)).sha256
    walk(rt, number, after, slice(0, 3))  # 受理, 立案, 派遣
    [request] = await both(http, f"requests/{number}", "requests.json", "service_requests", "request")
    assert request["status"] == "open" and request["agency_responsible"] and request["expected_datetime"]
    assert request["agency_responsible"] in request["status_notes"]
    walk(rt, number, after, slice(3, None))  # 处置, 核查, 结案
    case = rt.loop.get(number, SYSTEM)[0]
    assert case.state == "已结案"
    [request] = await both(http, f"requests/{number}", "requests.json", "service_requests", "request")
    assert request["status"] == "closed" and request["status_notes"] == "已处理完毕并结案"
    assert datetime.fromisoformat(request["updated_datetime"]) == case.closed_at.replace(microsecond=0)
    closed = await both(http, "requests", "requests.json", "service_requests", "request", status="closed")
    assert number in {r["service_request_id"] for r in closed}


async def test_at_most_1000_requests_the_newest_first(demo_url, tmp_path, aiohttp_client):
    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_url, "GRIDLINE_DATA_DIR": str(tmp_path)}))
    now = datetime.now(UTC)
    rows = [
        {
            **row_defaults(CaseFile),
            "number": f"2026{n:08d}",
            "state": "待受理",
            "source": "hotline",
            "stage": "受理",
            "description": f"第 {n} 件",
            "created_at": now - timedelta(minutes=n),
            "updated_at": now,
            "stage_started_at": now,
        }
        for n in range(1, 1006)
    ]
    with runtime.engine.begin() as conn:
        conn.execute(insert(CaseFile.__table__), rows)
    http = await aiohttp_client(build_app(runtime))
    found = await both(http, "requests", "requests.json", "service_requests", "request")
    assert len(found) == 1000 and found[0]["service_request_id"] == "202600000001"
    assert found[-1]["service_request_id"] == "202600001000" and found[0]["service_code"] == ""
    runtime.close()


# --- the command line -------------------------------------------------------------------------------------------
def test_key_add_list_revoke_from_the_command_line(db_url, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GRIDLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDLINE_DATA_DIR", str(tmp_path))
    assert main(["open311", "key", "add", "fixmystreet", "--rate", "30"]) == 0
    secret = capsys.readouterr().out.strip()
    engine = db.make_engine(db_url)
    assert apikeys.client_for(engine, secret).rate_per_minute == 30
    assert main(["--json", "open311", "key", "list"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["name"] == "fixmystreet" and listed["revoked_at"] is None and secret not in json.dumps(listed)
    assert main(["open311", "key", "revoke", "fixmystreet"]) == 0
    assert "已吊销" in capsys.readouterr().out and apikeys.client_for(engine, secret) is None
    assert main(["open311", "key", "list"]) == 0
    assert "已吊销" in capsys.readouterr().out
    for argv in (
        ["open311", "key", "add", "fixmystreet"],
        ["open311", "key", "revoke", "nobody"],
        ["open311", "key", "add", "x", "--rate", "0"],
        ["open311", "key"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("gridline: ") and err.count("\n") == 1
    engine.dispose()


# --- schemathesis against a real server -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def open311_server(tmp_path_factory, _demo_template):
    """`gridline serve` on a demo city with a client key and one request filed through it: (the Open311 base URL,
    the key, the request's path parameters)."""
    folder = tmp_path_factory.mktemp("open311-live")
    url, _, drop = _new_database(_demo_template, folder)
    engine = db.make_engine(url)
    key = apikeys.add_key(engine, ADMIN, "fuzz", rate_per_minute=apikeys.MAX_RATE)
    engine.dispose()
    env = {
        **os.environ,
        "GRIDLINE_DATABASE_URL": url,
        "GRIDLINE_DATA_DIR": str(folder / "var"),
        "GRIDLINE_HTTP_PORT": str(free_port()),
        "GRIDLINE_CLASSIFIER_MODEL": "keyword",
    }
    with serving(env, folder / "serve.log") as base:
        form = urlencode({"api_key": key, "service_code": "06010", "address_string": "人民路88号"}).encode()
        with urllib.request.urlopen(f"{base}{BASE}/requests.json", data=form) as resp:
            [receipt] = json.load(resp)
        known = {"service_request_id": receipt["service_request_id"], "token_id": receipt["token"]}
        yield base + BASE, key, {**known, "service_code": "01001"}
    drop()


if (CONFORMANCE / "swagger.json").exists():
    swagger = schemathesis.openapi.from_path(str(CONFORMANCE / "swagger.json"))

    @swagger.parametrize()
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def test_the_swagger_document_finds_no_server_error_and_no_schema_violation(case, open311_server):
        """Generated values everywhere, but in this city's jurisdiction, in one of its two formats, for a POST with
        a valid key, and every other time an existing 事项, request or token, so that the requests get past the
        first check to the answers the schemas describe."""
        base, key, known = open311_server
        generated = str(case.path_parameters.get("response_format", ""))
        if generated not in ("json", "xml"):
            case.path_parameters["response_format"] = ("json", "xml")[len(generated) % 2]
        case.query = {**(case.query or {}), "jurisdiction_id": DISTRICT}
        for values in (case.path_parameters, case.query):
            for name in set(values) & set(known):
                if len(str(values[name])) % 2 == 0:
                    values[name] = known[name]
        if case.method == "POST":
            case.query["api_key"] = key
        case.call_and_validate(
            base_url=base, checks=[not_a_server_error, response_schema_conformance, content_type_conformance]
        )

else:

    def test_the_swagger_document_finds_no_server_error_and_no_schema_violation():
        pytest.skip(f"shared swagger.json not available: {CONFORMANCE}")
