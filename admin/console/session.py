"""Console logins: a form with a CSRF token, an argon2-checked password (``core.users``), a session cookie
(HttpOnly, SameSite=Strict, Secure over https) whose key the server keeps only as a hash and ends when idle.

Every console request passes ``console_session``: logged-out visitors go to the login page, and every POST must carry
its session's CSRF token. Each handler says which roles may use it with ``@allow``; the case actions themselves are
checked again by ``core.cases`` (the same rules as the API)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web

from admin.responses import TEMPLATES, in_thread, json_error
from admin.runtime import RUNTIME
from core.cases import OVERSEERS, ROLES, Actor
from core.users import ConsoleLogin, actor_for_password, end_session, open_session, session_login

COOKIE = "gridline_console"
POLL_HEADER = "X-Console-Poll"
LOGIN_CSRF_COOKIE = "gridline_login_csrf"
LOGIN = web.RequestKey("console_login", ConsoleLogin)
FORM = web.RequestKey("console_form", dict)
FILES = web.RequestKey("console_files", list)  # (field name, bytes, declared type) of a multipart form
CENTRE = frozenset({"operator", "shift_lead", "dispatcher", "admin"})
HOME = {
    "operator": "/console/queue",
    "shift_lead": "/console/filing",
    "dispatcher": "/console/dispatch",
    "admin": "/console/admin/users",
    "department": "/console/inbox",
    "collector": "/console/tasks",
    "leader": "/console/wall",
}
# (label, path, roles that see it in the menu); a page's own @allow is what guards it
NAV = (
    ("受理", "/console/queue", frozenset({"operator", "shift_lead"})),
    ("电话登记", "/console/phone", frozenset({"operator", "shift_lead"})),
    ("人工会话", "/console/handoffs", frozenset({"operator", "shift_lead", "admin"})),
    ("立案与审批", "/console/filing", frozenset({"shift_lead"})),
    ("派遣", "/console/dispatch", frozenset({"dispatcher", "shift_lead"})),
    ("案件地图", "/console/map", CENTRE),
    ("监督指挥", "/console/wall", OVERSEERS),
    ("综合评价", "/console/evaluation", OVERSEERS),
    ("用户", "/console/admin/users", frozenset({"admin"})),
    ("部门与派遣规则", "/console/admin/departments", frozenset({"admin"})),
    ("工作日历", "/console/admin/calendar", frozenset({"admin"})),
    ("审计记录", "/console/admin/audit", frozenset({"admin"})),
    ("我的案卷", "/console/inbox", frozenset({"department"})),
    ("我的任务", "/console/tasks", frozenset({"collector"})),
)
OPEN = frozenset({"/console/login"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def actor(request: web.Request) -> Actor:
    return request[LOGIN].actor


def page(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    """A console page: the template with the viewer, their menu and their session's CSRF token."""
    login = request.get(LOGIN)
    role = login.actor.role if login else ""
    base = {
        "me": login.actor if login else None,
        "role_name": ROLES.get(role, ""),
        "csrf_token": login.csrf_token if login else "",
        "nav": [(label, path) for label, path, roles in NAV if role in roles],
        "path": request.path,
        "ok": request.query.get("ok", "")[:200],
    }
    tiles = request.app[RUNTIME].settings.map_tile_url.strip()
    base["tiles"] = tiles  # every minimap and the case map take the centre's tile layer, when it has one
    response = aiohttp_jinja2.render_template(
        f"console/{template}", request, {**base, **context}, status=status, app_key=TEMPLATES
    )
    response.headers["Cache-Control"] = "no-store"
    images = " ".join(filter(None, ("'self'", tile_source(tiles), "blob: data:")))
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src {images}; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "connect-src 'self'; media-src 'self'; frame-ancestors 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    return response


def tile_source(url: str) -> str:
    """The CSP source a tile URL needs ({s} subdomains as a wildcard), or "" for none or a relative URL."""
    parts = urlsplit(url.replace("{s}", "tiles-sub"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc.replace('tiles-sub', '*')}"


def refused(request: web.Request, status: int, message: str) -> web.Response:
    """A refusal a person can read (what and why, and a way back); nothing was changed."""
    return page(request, "refused.html", {"status": status, "message": message}, status=status)


def allow(*roles: str, data: str = "") -> Callable[[Handler], Handler]:
    """Only these roles may use the page or action; others get a 403 page naming who may. A route that a page's
    script reads (``data``: what it serves, such as 案件地图) answers them with a JSON ``{"error"}`` instead."""
    allowed = frozenset(roles)

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if actor(request).role not in allowed:
                names = "、".join(ROLES[r] for r in sorted(allowed))
                if data:
                    return json_error(403, f"{data}仅限{names}使用")
                return refused(request, 403, f"此页面或操作仅限{names}使用")
            return await handler(request)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap


def form(request: web.Request) -> dict[str, Any]:
    """The POST's fields, read once by the middleware (which checked its CSRF token)."""
    return request[FORM]


def files(request: web.Request, name: str) -> list[tuple[bytes, str]]:
    """The uploaded files of one field: (bytes, declared type)."""
    return [(data, media_type) for field, data, media_type in request.get(FILES, []) if field == name]


def safe_next(raw: str, fallback: str) -> str:
    return raw if raw.startswith("/console/") and "//" not in raw and "\\" not in raw else fallback


def done(target: str, message: str) -> NoReturn:
    """After a successful POST, back to a page (never to another site) with what was done."""
    target = safe_next(target, "/console/")
    sep = "&" if "?" in target else "?"
    raise web.HTTPSeeOther(f"{target}{sep}ok={quote(message)}")


@web.middleware
async def console_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/console") or request.path.startswith("/console/static/"):
        return await handler(request)
    runtime = request.app[RUNTIME]
    key = request.cookies.get(COOKIE, "")
    idle = timedelta(minutes=runtime.settings.console_idle_minutes)
    touch = request.headers.get(POLL_HEADER) != "1"  # console.js marks the requests a page makes by itself
    login = await in_thread(session_login, runtime.engine, key, idle, touch) if key else None
    if login is not None:
        request[LOGIN] = login
    if request.method == "POST":
        try:
            fields = await request.post()
        except ValueError:
            return refused(request, 400, "表单无法解析")
        request[FORM] = {k: v for k, v in fields.items() if not isinstance(v, web.FileField)}
        request[FILES] = [
            (k, v.file.read(), v.content_type) for k, v in fields.items() if isinstance(v, web.FileField) and v.filename
        ]
    if request.path in OPEN:
        return await handler(request)
    if login is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(f"/console/login?next={quote(request.path_qs)}")
        return refused(request, 401, "登录已失效，请重新登录后再操作（本次操作未执行）")
    if request.method == "POST":
        token = str(request[FORM].get("csrf_token", "")) or request.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(token.encode(), login.csrf_token.encode()):
            return refused(request, 403, "表单校验失败（CSRF 令牌缺失或不符），请刷新页面后重试；本次操作未执行")
    return await handler(request)


async def login_page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    if request.get(LOGIN) and request.method == "GET":
        raise web.HTTPSeeOther(HOME[request[LOGIN].actor.role])
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = page(
        request,
        "login.html",
        {"login_csrf": token, "message": message, "next": safe_next(request.query.get("next", ""), "")},
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/console/login"
    )
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    """The login form is checked by double submit (cookie = hidden field): there is no session to hold a token
    yet, and a cross-site page can neither read nor set the cookie."""
    fields = form(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    token = str(fields.get("csrf_token", ""))
    if not cookie or not hmac.compare_digest(cookie.encode(), token.encode()):
        return await login_page(request, "表单已过期，请重新输入", 403)
    name, password = str(fields.get("username", "")).strip(), str(fields.get("password", ""))
    if not name or not password or len(name) > 60 or len(password) > 200:
        return await login_page(request, "请输入用户名和密码", 400)
    engine = request.app[RUNTIME].engine
    who = await in_thread(actor_for_password, engine, name, password)
    if who is None:
        return await login_page(request, "用户名或密码不正确", 401)
    key, _ = await in_thread(open_session, engine, who)
    response = web.HTTPSeeOther(safe_next(str(fields.get("next", "")), HOME[who.role]))
    response.set_cookie(COOKIE, key, httponly=True, samesite="Strict", secure=request.secure, path="/")
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await in_thread(end_session, request.app[RUNTIME].engine, request.cookies.get(COOKIE, ""))
    response = web.HTTPSeeOther("/console/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(HOME[actor(request).role])


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", home)
    r.add_get("/console/", home)
    r.add_get("/console/login", login_page)
    r.add_post("/console/login", login_submit)
    r.add_post("/console/logout", logout)
