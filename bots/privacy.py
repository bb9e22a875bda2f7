"""OpenIDs, chat ids and web-chat keys are personal data: logs and dedup keys carry a short hash instead."""

from __future__ import annotations

import hashlib

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


def mask(user: str) -> str:
    """A stable, non-reversible stand-in for a user id (the same user gets the same tag in every log line)."""
    if not user:
        return "-"
    return "u:" + hashlib.sha256(user.encode()).hexdigest()[:10]


CHAT_PATHS = ("/wechat", "/telegram/", "/chat")


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log without the query string of chat paths: WeChat puts the sender's OpenID there."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        path = request.path if request.path.startswith(CHAT_PATHS) else request.path_qs
        self.logger.info(
            '%s "%s %s" %s %s %.3fs', request.remote, request.method, path, response.status, response.body_length, time
        )
