"""The two formats of every Open311 answer (``.json`` and ``.xml``, GeoReport v2's element names) and its own
error list, ``[{"code": 404, "description": …}]`` or ``<errors><error>…``, instead of the house ``{"error"}``.

Answers leave out the fields that have no value rather than writing ``null``: the shared JSON Schemas allow
either, the swagger document only the first. XML is written with ``xml.etree``; characters that XML 1.0 cannot
carry (control characters a citizen's text may hold) become U+FFFD.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from aiohttp import web

from admin.responses import json_response

FORMATS = {"json": "application/json", "xml": "text/xml"}
# the element of each item of a list, by the list's own element (GeoReport v2)
ITEMS = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format"}
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return NOT_XML.sub("\ufffd", str(value))


def _element(tag: str, value: Any) -> ET.Element:
    element = ET.Element(tag)
    if isinstance(value, dict):
        element.extend(_element(key, item) for key, item in value.items() if item is not None)
    elif isinstance(value, list):
        element.extend(_element(ITEMS[tag], item) for item in value)
    else:
        element.text = _text(value)
    return element


def xml_text(root: str, data: dict[str, Any] | list[dict[str, Any]], item: str = "") -> str:
    """A document: ``root`` holding ``data`` (a list: each element as ``item``)."""
    if isinstance(data, list):
        element = ET.Element(root)
        element.extend(_element(item, entry) for entry in data)
    else:
        element = _element(root, data)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="unicode")


def answer(
    fmt: str, data: dict[str, Any] | list[dict[str, Any]], root: str, item: str = "", status: int = 200
) -> web.Response:
    if fmt == "xml":
        return web.Response(text=xml_text(root, data, item), content_type=FORMATS["xml"], status=status)
    return json_response(data, status)


def error(fmt: str, status: int, description: str, headers: dict[str, str] | None = None) -> web.Response:
    """The Open311 error list (in JSON when the format asked for is none of ours)."""
    body = [{"code": status, "description": description}]
    resp = answer("xml" if fmt == "xml" else "json", body, "errors", "error", status)
    resp.headers.update(headers or {})
    return resp
