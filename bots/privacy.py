"""OpenIDs, chat ids and web-chat keys are personal data: logs and dedup keys carry a short hash instead."""

from __future__ import annotations

import hashlib

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from core.config import mask_query


def mask(user: str) -> str:
    """A stable, non-reversible stand-in for a user id (the same user gets the same tag in every log line)."""
    if not user:
        return "-"
    return "u:" + hashlib.sha256(user.encode()).hexdigest()[:10]


CHAT_PATHS = ("/wechat", "/telegram/", "/chat")
KEYED_PATHS = ("/open311/",)  # an Open311 client may send its api_key in the query, as the spec's examples do


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log without the query string of chat paths (WeChat puts the sender's OpenID there) and
    with the query values of keyed paths hidden."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if request.path.startswith(CHAT_PATHS):
            path = request.path
        elif request.path.startswith(KEYED_PATHS):
            path = mask_query(request.path_qs)
        else:
            path = request.path_qs
        self.logger.info(
            '%s "%s %s" %s %s %.3fs', request.remote, request.method, path, response.status, response.body_length, time
        )
