"""Open311 GeoReport v2 at /open311/v2/ (docs/open311.md): the standard interface of the 数据交换子系统 for outside
tools. Reading is public; a POST needs a client application's API key (``core.apikeys``), is rate-limited per key,
becomes a report of channel ``open311`` and is idempotent on ``attribute[client_request_id]``.

Every route answers in the format its name ends in (``.json`` or ``.xml``), errors too, as GeoReport v2's own
error list. The swagger document's ``/request/{id}`` (singular) is served beside the specification's
``/requests/{id}``. ``jurisdiction_id`` may be left out; given, it must be the district code (``district_code``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from admin.open311 import records
from admin.open311.formats import FORMATS, answer, error
from admin.open311.records import Refused
from admin.responses import in_thread
from admin.runtime import RUNTIME
from core.apikeys import RateLimiter, client_for
from core.db import UNSTORABLE, storable
from core.intake import BadReport

BASE = "/open311/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-12-03T00:00:00+08:00"  # the date this interface last changed; raise it with every change
MAX_BODY = 64 * 1024
REASONS = {404: "没有这个接口（见 discovery.json）", 405: "该接口不支持这个请求方法"}
LIMITER = web.AppKey("open311_limiter", RateLimiter)
log = logging.getLogger("gridline.open311")


def _fmt(request: web.Request) -> str:
    fmt = request.match_info.get("fmt", "")
    if fmt not in FORMATS:
        raise Refused(400, "格式应为 .json 或 .xml")
    return fmt


def _format_of(request: web.Request) -> str:
    """The format an error is written in: the one asked for, or JSON."""
    return "xml" if request.path.endswith(".xml") else "json"


@web.middleware
async def open311_errors(request: web.Request, handler) -> web.StreamResponse:
    """Under /open311/ every failure is an Open311 error list: a refusal, a missing route, anything unexpected."""
    if not request.path.startswith("/open311/"):
        return await handler(request)
    try:
        return await handler(request)
    except Refused as exc:
        return error(_format_of(request), exc.status, exc.message)
    except BadReport as exc:
        return error(_format_of(request), 400, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error(_format_of(request), exc.status, REASONS.get(exc.status, exc.reason), allow)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(_format_of(request), 500, "服务器内部错误")


def _checked(request: web.Request, values: MultiDictProxy[Any] | MultiDict[Any]) -> None:
    """Text no database can keep is refused at the door; a jurisdiction_id, if given, must be this city's."""
    if not all(isinstance(v, str) and storable(k) and storable(v) for k, v in values.items()):
        raise Refused(400, f"参数中{UNSTORABLE}，或含有文件（照片请用 media_url）")
    jurisdiction, ours = values.get("jurisdiction_id", ""), request.app[RUNTIME].settings.district_code
    if jurisdiction and jurisdiction != ours:
        raise Refused(404, f"jurisdiction_id {jurisdiction[:40]} 不存在，本市为 {ours}")


def _query(request: web.Request) -> MultiDictProxy[str]:
    _checked(request, request.query)
    return request.query


async def discovery(request: web.Request) -> web.Response:
    fmt = _fmt(request)
    url = request.app[RUNTIME].settings.public_url.rstrip("/") + BASE
    body = {
        "changeset": CHANGESET,
        "contact": "12319 城建服务热线",
        "key_service": "Open311 API 密钥由城市管理指挥中心发放（gridline open311 key add 客户端名称）",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": url,
                "changeset": CHANGESET,
                "type": "production",
                "formats": list(FORMATS.values()),
            }
        ],
    }
    return answer(fmt, body, "discovery")


async def services(request: web.Request) -> web.Response:
    fmt = _fmt(request)
    _query(request)
    found = await in_thread(records.services, request.app[RUNTIME].engine)
    return answer(fmt, found, "services", "service")


async def definition(request: web.Request) -> web.Response:
    fmt = _fmt(request)
    _query(request)
    found = await in_thread(records.definition, request.app[RUNTIME].engine, request.match_info["code"])
    return answer(fmt, found, "service_definition")


async def list_requests(request: web.Request) -> web.Response:
    fmt = _fmt(request)
    loop = request.app[RUNTIME].loop
    query = records.parse_query(_query(request), loop.clock())
    found = await in_thread(records.find_requests, loop, query)
    return answer(fmt, found, "service_requests", "request")


async def one_request(request: web.Request) -> web.Response:
    fmt = _fmt(request)
    _query(request)
    loop = request.app[RUNTIME].loop
    number = request.match_info["id"]
    now = loop.clock()
    plain = number.isascii() and number.isalnum() and len(number) <= 20  # a case number; anything else is none
    found = await in_thread(records.find_requests, loop, records.Query(now, now, ids=(number,))) if plain else []
    if not found:
        raise Refused(404, f"service_request_id {number} 不存在")
    return answer(fmt, found, "service_requests", "request")


async def token(request: web.Request) -> web.Response:
    fmt = _fmt(request)
    _query(request)
    found = await in_thread(records.find_token, request.app[RUNTIME].engine, request.match_info["token"])
    if found is None:
        raise Refused(404, "token 不存在")
    return answer(fmt, [found], "service_requests", "request")


def _attributes(values: Mapping[str, str] | MultiDict[str]) -> dict[str, list[str]]:
    """``attribute[CODE]=v`` (and ``attribute[CODE][]=v`` for lists), as GeoReport v2 writes them."""
    given: dict[str, list[str]] = {}
    for key, value in values.items():
        if key == "attribute" and value.strip():  # the swagger document's unnamed list: an answer to no question
            raise Refused(400, "attribute 应写作 attribute[代码]=值（代码见 services/{service_code}.json）")
        if key.startswith("attribute[") and key.endswith("]"):
            code = key[len("attribute[") : -1].removesuffix("][")
            given.setdefault(code, []).append(value)
    return given


async def create(request: web.Request) -> web.Response:
    """POST requests: form fields (or the query string, as the swagger document has them); form fields win."""
    fmt = _fmt(request)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refused(413, f"请求体过大，上限 {MAX_BODY // 1024} KB")
    try:
        form = await request.post()
    except ValueError:
        raise Refused(400, "表单无法解析") from None
    values: MultiDict[Any] = MultiDict(request.query)
    for key in set(form):
        values.popall(key, None)
    values.extend(form)
    _checked(request, values)
    runtime = request.app[RUNTIME]
    secret = values.get("api_key", "")
    if not secret:
        raise Refused(400, "缺少 api_key")
    client = await in_thread(client_for, runtime.engine, secret)
    if client is None:
        raise Refused(403, "api_key 无效或已吊销")
    wait = request.app[LIMITER].take(client)
    if wait:
        seconds = str(math.ceil(wait))
        return error(fmt, 429, f"请求过于频繁，请 {seconds} 秒后再试", {"Retry-After": seconds})
    found = await in_thread(
        records.submission, runtime.engine, client, values, _attributes(values), runtime.loop.clock()
    )
    report, _ = await in_thread(runtime.intake.submit, found.incoming)
    hours = runtime.loop.rules.stage_hours.get("受理", 1.0)
    receipt = {
        "service_request_id": report.case_number,
        "token": found.token,
        "service_notice": f"已登记，受理员将在 {hours:g} 个工作时内受理",
    }
    return answer(fmt, [records.compact(receipt)], "service_requests", "request")


def mount(app: web.Application) -> None:
    """The routes, their error middleware and the per-key rate limiter, on an app that carries a Runtime."""
    app[LIMITER] = RateLimiter()
    app.middlewares.append(open311_errors)
    r = app.router
    r.add_get(BASE + "/discovery.{fmt}", discovery)
    r.add_get(BASE + "/services.{fmt}", services)
    r.add_get(BASE + "/services/{code}.{fmt}", definition)
    r.add_get(BASE + "/requests.{fmt}", list_requests)
    r.add_post(BASE + "/requests.{fmt}", create)
    r.add_get(BASE + "/requests/{id}.{fmt}", one_request)
    r.add_get(BASE + "/request/{id}.{fmt}", one_request)  # the path of the swagger document
    r.add_get(BASE + "/tokens/{token}.{fmt}", token)
