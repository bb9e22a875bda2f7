"""The OpenAPI 3 document of /api/v1. Its component schemas are also what validates request bodies."""

from __future__ import annotations

from typing import Any

from core.cases import ACTIONS, ROLES, STATES
from core.crs import CRS_NAMES
from core.intake import CHANNELS, MAX_TEXT

SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
MAX_OFFSET = 2**31 - 1  # past any centre's case count, and within every database's integer (a bigger one was a 500)
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}

SCHEMAS: dict[str, dict[str, Any]] = {
    "ReportIn": {
        "type": "object",
        "required": ["channel", "channel_ref"],
        "additionalProperties": False,
        "properties": {
            "channel": {"type": "string", "enum": list(CHANNELS)},
            "channel_ref": {"type": "string", "minLength": 1, "maxLength": 128},
            "text": {"type": "string", "maxLength": MAX_TEXT},
            "address": {"type": "string", "maxLength": 200},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "crs": {"type": "string", "enum": list(CRS_NAMES)},
            "media": {"type": "array", "items": SHA256, "maxItems": 9},
        },
    },
    "ActionIn": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {"type": "integer", "minimum": 1},
            "note": {"type": "string", "maxLength": 1000},
            "reason": {"type": "string", "minLength": 1, "maxLength": 1000},
            "matter_code": {"type": "string", "pattern": "^[0-9]{4,5}$"},
            "target": {"type": "string", "maxLength": 20},
            "confirmed": {"type": "boolean"},
            "passed": {"type": "boolean"},
            "level": {"type": "integer", "minimum": 1, "maximum": 9},
            "department": {"type": "string", "minLength": 1, "maxLength": 20},
            "hours": {"type": "number", "minimum": 0.1, "maximum": 720},
            "attachments": {"type": "array", "items": SHA256, "maxItems": 9},
            "lon": {"type": "number", "minimum": -180, "maximum": 180, "description": "受理时更正的位置（WGS-84）"},
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "address": {"type": "string", "maxLength": 200},
            "key": {"type": "string", "minLength": 1, "maxLength": 64, "description": "幂等键，重发不重复办理"},
            "gps_lon": {"type": "number", "minimum": -180, "maximum": 180, "description": "监督员 GPS（WGS-84）"},
            "gps_lat": {"type": "number", "minimum": -90, "maximum": 90},
            "gps_accuracy": {"type": "number", "minimum": 0, "maximum": 100000},
        },
        "dependentRequired": {"lon": ["lat"], "lat": ["lon"], "gps_lon": ["gps_lat"], "gps_lat": ["gps_lon"]},
    },
    "LoginIn": {
        "type": "object",
        "required": ["name", "password"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 60},
            "password": {"type": "string", "minLength": 1, "maxLength": 200},
        },
    },
    "HandoffReplyIn": {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 500, "pattern": "\\S"}},
    },
    "Handoff": {
        "type": "object",
        "required": ["conversation", "channel", "user", "messages"],
        "properties": {
            "conversation": {"type": "integer"},
            "channel": {"type": "string"},
            "user": {"type": "string", "description": "用户标识的不可逆摘要（不含 OpenID、chat id）"},
            "since": {"type": ["string", "null"]},
            "messages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": {"type": "string"},
                        "text": {"type": "string"},
                        "photo": SHA256,
                        "location": {"type": "array", "items": {"type": ["number", "string"]}},
                    },
                },
            },
        },
    },
    "Timer": {
        "type": ["object", "null"],
        "properties": {
            "stage": {"type": "string"},
            "limit": {"type": "number"},
            "unit": {"type": "string"},
            "deadline": {"type": ["string", "null"]},
            "remaining_hours": {"type": "number"},
            "used": {"type": "number"},
            "light": {"type": "string", "enum": ["green", "yellow", "red"]},
        },
    },
    "Case": {
        "type": "object",
        "required": ["number", "state", "version"],
        "properties": {
            "number": {"type": "string"},
            "state": {"type": "string", "enum": list(STATES)},
            "version": {"type": "integer"},
            "matter_code": {"type": ["string", "null"]},
            "matter_name": {"type": "string"},
            "severity": {"type": "string"},
            "condition_level": {"type": ["integer", "null"]},
            "description": {"type": "string"},
            "address": {"type": "string"},
            "lon": {"type": ["number", "null"]},
            "lat": {"type": ["number", "null"]},
            "grid_code": {"type": ["string", "null"]},
            "area_class": {"type": "string"},
            "source": {"type": "string"},
            "department": {"type": ["string", "null"]},
            "timer": {"$ref": "#/components/schemas/Timer"},
        },
    },
    "Error": ERROR,
}


def _response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "请求有误",
        401: "未认证",
        403: "无权操作",
        404: "不存在",
        409: "冲突（状态或版本）",
        413: "过大",
        422: "内容不符合业务规则",
    }
    return {str(c): _response(text[c], {"$ref": "#/components/schemas/Error"}) for c in codes}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def document() -> dict[str, Any]:
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 20}}
    action_list = "；".join(
        f"{a.name}（{a.label}，{'/'.join(ROLES[r] for r in sorted(a.roles))}）" for a in ACTIONS.values()
    )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Gridline API",
            "version": "1",
            "description": "数字城管案卷闭环：上报、受理、核实、立案、派遣、处置、核查、结案。",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
        "paths": {
            "/api/v1/locate": {
                "get": {
                    "summary": "地点描述（q）或坐标（lon、lat、crs）→ WGS-84 坐标与单元网格（公开）",
                    "security": [],
                    "parameters": [
                        {"name": "q", "in": "query", "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
                        {"name": "lon", "in": "query", "schema": {"type": "number", "minimum": -180, "maximum": 180}},
                        {"name": "lat", "in": "query", "schema": {"type": "number", "minimum": -90, "maximum": 90}},
                        {"name": "crs", "in": "query", "schema": {"type": "string", "enum": list(CRS_NAMES)}},
                    ],
                    "responses": {"200": _response("已定位"), "404": _response("未能定位"), **_errors(400)},
                }
            },
            "/api/v1/session": {
                "post": {
                    "summary": "控制台登录（设置会话 Cookie）",
                    "security": [],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("LoginIn")}}},
                    "responses": {"200": _response("已登录"), **_errors(400, 401)},
                }
            },
            "/api/v1/me": {
                "get": {"summary": "当前用户", "responses": {"200": _response("用户、角色与范围"), **_errors(401)}}
            },
            "/api/v1/reports": {
                "post": {
                    "summary": "登记一条上报（按 channel + channel_ref 幂等）",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ReportIn")}}},
                    "responses": {
                        "201": _response("新上报及其案卷号"),
                        "200": _response("已存在的同一上报"),
                        **_errors(400, 401, 403, 404, 413),
                    },
                }
            },
            "/api/v1/cases": {
                "get": {
                    "summary": "案卷列表（专业部门只见本部门案卷）",
                    "parameters": [
                        {"name": "state", "in": "query", "schema": {"type": "string", "enum": list(STATES)}},
                        {"name": "code", "in": "query", "schema": {"type": "string", "maxLength": 8}},
                        {"name": "grid", "in": "query", "schema": {"type": "string", "maxLength": 15}},
                        {"name": "department", "in": "query", "schema": {"type": "string", "maxLength": 20}},
                        {
                            "name": "light",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["green", "yellow", "red"]},
                        },
                        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                        },
                    ],
                    "responses": {
                        "200": _response(
                            "案卷",
                            {
                                "type": "object",
                                "properties": {
                                    "total": {"type": "integer"},
                                    "cases": {"type": "array", "items": _ref("Case")},
                                },
                            },
                        ),
                        **_errors(400, 401),
                    },
                }
            },
            "/api/v1/cases/{number}": {
                "get": {
                    "summary": "案卷及其全部操作记录",
                    "parameters": [number],
                    "responses": {"200": _response("案卷", _ref("Case")), **_errors(401, 404)},
                }
            },
            "/api/v1/cases/{number}/actions/{action}": {
                "post": {
                    "summary": "对案卷执行一个操作",
                    "description": f"操作：{action_list}。带 version 时按版本比较并更新，版本不符答 409。",
                    "parameters": [
                        number,
                        {
                            "name": "action",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": list(ACTIONS)},
                        },
                    ],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ActionIn")}}},
                    "responses": {
                        "200": _response("操作后的案卷", _ref("Case")),
                        **_errors(400, 401, 403, 404, 409, 422),
                    },
                }
            },
            "/api/v1/evaluation": {
                "get": {
                    "summary": "综合评价（CJ/T 292）：部门、区域或岗位",
                    "parameters": [
                        {
                            "name": "period",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 30},
                        },
                        {
                            "name": "object",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["dept", "region", "post"]},
                        },
                        {
                            "name": "level",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["grid", "community", "street"]},
                        },
                    ],
                    "responses": {"200": _response("指标、综合指标值与等级"), **_errors(400, 401, 403)},
                }
            },
            "/api/v1/handoffs": {
                "get": {
                    "summary": "等待人工受理员的会话（市民发送“人工”后），最早的在前",
                    "responses": {
                        "200": _response(
                            "人工会话队列",
                            {"type": "object", "properties": {"handoffs": {"type": "array", "items": _ref("Handoff")}}},
                        ),
                        **_errors(401, 403),
                    },
                }
            },
            "/api/v1/handoffs/{conversation}/reply": {
                "post": {
                    "summary": "受理员答复一条人工会话（经市民所用渠道发出）",
                    "parameters": [
                        {
                            "name": "conversation",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("HandoffReplyIn")}},
                    },
                    "responses": {"200": _response("已排入发送队列"), **_errors(400, 401, 403, 404)},
                }
            },
            "/api/v1/attachments": {
                "post": {
                    "summary": "上传照片或录音（按内容寻址，照片去除 EXIF）",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                            "image/png": {"schema": {"type": "string", "format": "binary"}},
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "responses": {"201": _response("已保存"), **_errors(400, 401, 413)},
                }
            },
            "/api/v1/attachments/{sha256}": {
                "get": {
                    "summary": "下载附件",
                    "parameters": [{"name": "sha256", "in": "path", "required": True, "schema": SHA256}],
                    "responses": {"200": {"description": "文件"}, **_errors(400, 401, 404)},
                }
            },
        },
    }
