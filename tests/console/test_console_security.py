"""The console's access rules, checked against its own route table and with real logins (argon2id + TOTP)."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from tests.console.consolelab import (
    ADMIN_PASSWORD,
    SETUP_TOKEN,
    add_viewer,
    admin_client,
    api_token,
    client,
    enrol,
    form_csrf,
    login,
    new_app,
    session_csrf,
)

from kubeguard.console.app import ENROL_COOKIE, PUBLIC_PATHS, SESSION_COOKIE
from kubeguard.console.auth import MAX_FAILURES, password_problem


def routes(app) -> list[tuple[str, str, APIRoute]]:
    """(method, concrete path, route) for every route of the app, path parameters filled in."""
    out = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        path = re.sub(r"\{token_id\}", "1", route.path)
        path = re.sub(r"\{[^}]+\}", "x", path)
        out.extend((method, path, route) for method in sorted(route.methods - {"HEAD"}))
    return out


def test_every_route_needs_a_session_or_token(tmp_path) -> None:
    app = new_app(tmp_path)
    _admin, _ = admin_client(app)  # an admin exists: anonymous pages redirect to /login
    anon = client(app)
    checked = 0
    walked = set()
    for method, path, _route in routes(app):
        walked.add(path)
        if path in PUBLIC_PATHS:
            continue
        answer = anon.request(method, path, follow_redirects=False)
        if path.startswith("/api/"):
            assert answer.status_code == 401, (method, path, answer.status_code)
        else:
            assert answer.status_code == 303 and answer.headers["location"] == "/login", (method, path)
        assert "alerts" not in answer.text
        checked += 1
    assert checked >= 20
    assert {"/paths", "/flows", "/api/paths", "/api/flowmap", "/api/agent/paths", "/api/agent/flows"} <= walked
    # a made-up session cookie or bearer token is nobody
    anon.cookies.set(SESSION_COOKIE, "forged", domain="testserver")
    assert anon.get("/api/alerts").status_code == 401
    assert client(app).get("/api/alerts", headers={"Authorization": "Bearer kgt_forged"}).status_code == 401


def test_public_routes_serve_no_data(tmp_path) -> None:
    app = new_app(tmp_path)
    anon = client(app)
    assert anon.get("/healthz").text == "ok"
    assert anon.get("/login", follow_redirects=False).headers["location"] == "/setup"  # no admin yet
    assert "Setup token" in anon.get("/setup").text


def test_viewer_gets_403_on_every_admin_action_and_tokens_stay_in_their_lane(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    viewer, _ = add_viewer(admin, app)
    csrf = session_csrf(viewer)
    admin_routes = [(m, p) for m, p, r in routes(app) if "admin" in (r.tags or [])]
    assert len(admin_routes) >= 8
    for method, path in admin_routes:
        answer = viewer.request(method, path, headers={"X-CSRF-Token": csrf}, follow_redirects=False)
        assert answer.status_code == 403, (method, path, answer.status_code)
    assert viewer.get("/api/alerts").status_code == 200  # the viewer is logged in, just not an admin
    agent = api_token(admin, "node-a")
    reader = api_token(admin, "script", role="viewer")
    for method, path, route in routes(app):
        if path in PUBLIC_PATHS or not path.startswith("/api/"):
            continue
        spec = path == "/api/openapi.json"  # the API description: any authenticated caller
        for token, allowed in ((agent, spec or "agent" in (route.tags or [])),
                               (reader, method == "GET" and not ({"agent", "admin"} & set(route.tags or [])))):
            answer = client(app).request(method, path, headers={"Authorization": f"Bearer {token}"},
                                         follow_redirects=False)
            if allowed:
                assert answer.status_code not in (401, 403), (method, path, answer.status_code)
            else:
                assert answer.status_code == 403, (method, path, answer.status_code)


def test_state_changes_need_the_csrf_token(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    csrf = session_csrf(admin)
    put = "/api/workloads/shop/web/mode"
    assert admin.put(put, json={"mode": "protect"}).status_code == 403
    assert admin.put(put, json={"mode": "protect"}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert admin.post("/workloads/mode", data={"namespace": "shop", "workload": "web", "mode": "protect"},
                      follow_redirects=False).status_code == 403
    assert admin.post("/logout", follow_redirects=False).status_code == 403
    assert admin.post("/api/tokens", json={"name": "n1"}).status_code == 403
    assert admin.get("/api/workloads").json()["workloads"] == []  # nothing changed
    assert admin.put(put, json={"mode": "protect"}, headers={"X-CSRF-Token": csrf}).status_code == 200
    # pre-login forms carry their own token: a cross-site login POST without it is refused
    anon = client(app)
    assert anon.post("/login", data={"name": "alice", "password": ADMIN_PASSWORD, "code": "000000"},
                     follow_redirects=False).status_code == 403


def test_cookies_are_httponly_secure_samesite(tmp_path) -> None:
    app = new_app(tmp_path)
    c = client(app)
    page = c.get("/setup")
    c.post("/setup", data={"csrf": form_csrf(page.text), "token": SETUP_TOKEN, "name": "alice",
                           "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD}, follow_redirects=False)
    admin, codes = admin_client(new_app(tmp_path / "b"))
    answer = login(client(admin.app), "alice", ADMIN_PASSWORD, codes.next())
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE) and "HttpOnly" in cookie and "Secure" in cookie
    assert "samesite=strict" in cookie.lower()
    headers = admin.get("/alerts").headers
    assert "default-src 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"


def test_no_data_before_totp_is_enrolled(tmp_path) -> None:
    app = new_app(tmp_path)
    c = client(app)
    page = c.get("/setup")
    answer = c.post("/setup", data={"csrf": form_csrf(page.text), "token": SETUP_TOKEN, "name": "alice",
                                    "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD},
                    follow_redirects=False)
    assert answer.headers["location"] == "/enrol/totp" and c.cookies.get(ENROL_COOKIE)
    assert c.get("/alerts", follow_redirects=False).headers["location"] == "/setup"
    assert c.get("/api/alerts").status_code == 401
    assert login(c, "alice", ADMIN_PASSWORD, "123456").status_code == 401  # not enrolled: no login
    assert SESSION_COOKIE not in c.cookies
    wrong = c.post("/enrol/totp", data={"csrf": form_csrf(c.get("/enrol/totp").text), "code": "000000"})
    assert wrong.status_code == 400 and SESSION_COOKIE not in c.cookies


def test_setup_token_and_password_strength(tmp_path) -> None:
    app = new_app(tmp_path)
    c = client(app)
    page = c.get("/setup")
    bad = c.post("/setup", data={"csrf": form_csrf(page.text), "token": "guessed-token", "name": "alice",
                                 "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD})
    assert bad.status_code == 400 and "not valid" in bad.text
    weak = c.post("/setup", data={"csrf": form_csrf(page.text), "token": SETUP_TOKEN, "name": "alice",
                                  "password": "password123", "password2": "password123"})
    assert weak.status_code == 400 and "12 characters" in weak.text
    assert password_problem("alllowercaseletters") and password_problem("Alice-Secret-99", "alice")
    assert not password_problem(ADMIN_PASSWORD)
    enrol(c, SETUP_TOKEN, ADMIN_PASSWORD, name="alice")
    # the setup token is spent: a second admin cannot be made with it
    other = client(app)
    assert other.get("/setup", follow_redirects=False).headers["location"] == "/login"
    again = other.post("/enrol", data={"csrf": form_csrf(other.get("/enrol").text), "token": SETUP_TOKEN,
                                       "password": ADMIN_PASSWORD, "password2": ADMIN_PASSWORD})
    assert again.status_code == 400


def test_wrong_totp_gives_no_session_and_codes_are_single_use(tmp_path) -> None:
    app = new_app(tmp_path)
    _, codes = admin_client(app)
    c = client(app)
    answer = login(c, "alice", ADMIN_PASSWORD, "000000")
    assert answer.status_code == 401 and SESSION_COOKIE not in c.cookies
    assert c.get("/api/alerts").status_code == 401
    code = codes.next()
    assert login(c, "alice", ADMIN_PASSWORD, code).status_code == 303 and c.get("/api/alerts").status_code == 200
    replay = client(app)
    assert login(replay, "alice", ADMIN_PASSWORD, code).status_code == 401  # same code again: refused
    log = [e["action"] for e in c.get("/api/audit").json()["audit"]]
    assert log.count("login.failed") == 2 and "login" in log


def test_ten_wrong_passwords_lock_the_account(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, codes = admin_client(app)
    c = client(app)
    for attempt in range(MAX_FAILURES):
        answer = login(c, "alice", f"Wrong-Password-{attempt:02d}", codes.next() if attempt == 0 else "123456")
        assert answer.status_code == 401
    assert "locked" in answer.text
    locked = login(c, "alice", ADMIN_PASSWORD, codes.next())
    assert locked.status_code == 401 and "locked" in locked.text and SESSION_COOKIE not in c.cookies
    actions = [e["action"] for e in admin.get("/api/audit").json()["audit"]]
    assert "login.locked" in actions


def test_login_rate_limit_per_address(tmp_path) -> None:
    app = new_app(tmp_path, login_rate=5)
    admin_client(app)
    c = client(app)
    answers = [login(c, "alice", "Not-The-Password-1", "123456").status_code for _ in range(6)]
    assert answers[:5] == [401] * 5 and answers[5] == 429


def test_logout_ends_the_session(tmp_path) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    cookie = admin.cookies.get(SESSION_COOKIE)
    answer = admin.post("/logout", data={"csrf": session_csrf(admin)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    stale = client(app)
    stale.cookies.set(SESSION_COOKIE, cookie, domain="testserver")
    assert stale.get("/api/alerts").status_code == 401


@pytest.mark.parametrize("role", ["viewer", "agent"])
def test_revoked_token_is_refused(tmp_path, role: str) -> None:
    app = new_app(tmp_path)
    admin, _ = admin_client(app)
    token = api_token(admin, "node-a", role)
    path = "/api/agent/modes" if role == "agent" else "/api/alerts"
    assert client(app).get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert admin.post("/admin/tokens/1/revoke", data={"csrf": session_csrf(admin)},
                      follow_redirects=False).status_code == 303
    assert client(app).get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 401
