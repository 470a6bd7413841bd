"""API fuzzing with schemathesis against the console's own OpenAPI description: no answer is a 5xx.

Every operation is called with generated inputs, authenticated the way it is meant to be: /api/agent/* with
an agent token, the rest with an admin session and its CSRF token (so the calls reach the handlers).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from tests.console.consolelab import admin_client, api_token, new_app, session_csrf

from kubeguard.console.app import SESSION_COOKIE


@pytest.fixture(params=["sqlite", "postgresql"])
def console(request, tmp_path):
    db = request.getfixturevalue("postgres")() if request.param == "postgresql" else None
    app = new_app(tmp_path, db=db)
    admin, _ = admin_client(app)
    return {"app": app, "cookie": admin.cookies.get(SESSION_COOKIE), "csrf": session_csrf(admin),
            "agent": api_token(admin, "node-fuzz"), "client": admin}


def test_no_server_errors(console) -> None:
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", console["app"],
                                            headers={"Authorization": f"Bearer {console['agent']}"})
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    # edges the generator may miss: huge numbers and NUL characters (PostgreSQL text cannot hold NUL)
    client = console["client"]
    for params in ({"offset": 10**20}, {"limit": -(10**20)}, {"rule": "a\x00b"}):
        assert client.get("/api/alerts", params=params).status_code in (200, 422)
    nul = {"uuid": "u" * 8 + "\x00", "rule": "r\x00", "priority": "Notice", "time": "2026-12-04T00:00:00Z",
           "output_fields": {"k\x00": "v\x00"}, "tags": ["\x00"]}
    answer = client.post("/api/agent/batch", json={"alerts": [nul], "heartbeat": {"drops": 2**70}},
                         headers={"Authorization": f"Bearer {console['agent']}"})
    assert answer.status_code == 422  # drops out of range
    answer = client.post("/api/agent/batch", json={"alerts": [nul]},
                         headers={"Authorization": f"Bearer {console['agent']}"})
    assert answer.status_code == 200, answer.text
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case) -> None:
            if case.path.startswith("/api/agent/"):
                answer = case.call(headers={"Authorization": f"Bearer {console['agent']}"})
            else:
                answer = case.call(headers={"X-CSRF-Token": console["csrf"]},
                                   cookies={SESSION_COOKIE: console["cookie"]})
            assert answer.status_code < 500, (case.method, case.formatted_path, answer.status_code,
                                              answer.text[:300])
            assert answer.status_code not in (401, 403), (case.method, case.formatted_path, answer.text[:200])

        call()
