"""schemathesis drives every operation of /api/v1/openapi.json against a real `gridline serve` with a demo city
and a valid token: whatever the generated request, the answer is never a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from admin.openapi import document

schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case, live_server):
    base, tokens = live_server
    case.call_and_validate(
        base_url=base, headers={"Authorization": f"Bearer {tokens['lead']}"}, checks=[not_a_server_error]
    )
