"""The access log keeps personal data and credentials out: chat paths lose their query, Open311's its values."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bots.privacy import AccessLogger


def _logged(url: str, caplog) -> str:
    logger = logging.getLogger("test.access")
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logger, "").log(make_mocked_request("GET", url), web.Response(text="ok"), 0.01)
    return caplog.records[-1].getMessage()


def test_secrets_and_ids_in_queries_stay_out_of_the_access_log(caplog):
    line = _logged("/open311/v2/requests.json?api_key=o311_secret&service_code=06010", caplog)
    assert "o311_secret" not in line and "06010" not in line and "api_key=***" in line
    assert "oUser123" not in _logged("/wechat?openid=oUser123&signature=abc", caplog)
    assert "page=2" in _logged("/console/queue?page=2", caplog)
