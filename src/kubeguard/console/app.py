"""The console's FastAPI application: server-rendered pages and the JSON API, all behind authentication.

Access rules (enforced by the dependencies below, checked route by route in tests/console):
- public: /login, /setup, /enrol*, /static/*, /healthz (no data);
- every other page and API call needs a full session (password + TOTP done) or an API token;
  without one, pages redirect to /login and /api/* answers 401;
- admin actions (`tags=["admin"]`) need an admin session: viewers and tokens get 403;
- /api/agent/* needs an agent token; the node is the token's name, not what the body says;
- every state change made with a session cookie needs the session's CSRF token (form field ``csrf`` or
  header ``X-CSRF-Token``), else 403; pre-login forms carry their own double-submit token.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import segno
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as FastApiPath
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from kubeguard import __version__
from kubeguard.console.auth import AuthError, AuthStore, Principal
from kubeguard.console.charts import bucket_prefix, timeline_svg
from kubeguard.model import FALCO_PRIORITIES, format_time_ns
from kubeguard.net import flowmap
from kubeguard.posture.paths import html as paths_html
from kubeguard.posture.paths.render import PathsDocumentError, from_json
from kubeguard.store.alerts import StoreError
from kubeguard.store.central import MODES, AgentReport, CentralQuery, CentralStore
from kubeguard.store.sqldb import Database

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "__Host-kg_session"
PRE_COOKIE = "__Host-kg_pre"
ENROL_COOKIE = "__Host-kg_enrol"
PUBLIC_PATHS = ("/login", "/setup", "/enrol", "/enrol/totp", "/static/console.css", "/healthz")
MAX_BATCH = 5000
MAX_OFFSET = 10_000_000
FLOW_MAP_RECORDS = 20_000  # the flow map draws the latest this many flow records
LOGIN_RATE = 30  # login attempts per address per minute
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none';"
       " base-uri 'none'")


class NeedLogin(Exception):
    """No valid credentials: pages redirect, the API answers 401."""


class AlertRecord(BaseModel):
    """One alert in Falco's JSON format plus its stable id."""

    uuid: str = Field(min_length=8, max_length=128, description="Stable id set where the alert was raised.")
    rule: str = Field(min_length=1, max_length=512)
    priority: str = Field(description="Falco priority (Emergency .. Debug).")
    time: str = Field(min_length=10, max_length=40, description="RFC 3339 time.")
    output: str = Field(default="", max_length=65536)
    source: str = Field(default="syscall", max_length=64)
    hostname: str = Field(default="", max_length=253)
    output_fields: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


class Heartbeat(BaseModel):
    """An agent's health figures."""

    version: str = Field(default="", max_length=64)
    events_per_s: float = Field(default=0.0, ge=0, le=1e12, allow_inf_nan=False)
    drops: int = Field(default=0, ge=0, le=2**62)
    alerts_sent: int = Field(default=0, ge=0, le=2**62)
    spooled: int = Field(default=0, ge=0, le=2**62)
    spool_dropped: int = Field(default=0, ge=0, le=2**62)
    stats: dict[str, Any] = Field(default_factory=dict)


class Batch(BaseModel):
    """What an agent ships: alerts (at most 5000) and/or a heartbeat."""

    alerts: list[AlertRecord] = Field(default_factory=list, max_length=MAX_BATCH)
    heartbeat: Heartbeat | None = None


class BatchAnswer(BaseModel):
    stored: int
    duplicates: int


class FindingsUpload(BaseModel):
    """A posture scan's findings (`kubeguard scan -o json`'s ``findings`` list)."""

    scan: str = Field(min_length=1, max_length=256)
    findings: list[dict[str, Any]] = Field(max_length=100_000)


class PathsUpload(BaseModel):
    """Attack paths: the document `kubeguard paths -o json` prints."""

    scan: str = Field(min_length=1, max_length=256)
    document: dict[str, Any] = Field(description="`kubeguard paths -o json` output (kind KubeguardAttackPaths).")


class FlowsUpload(BaseModel):
    """Flow records as `kubeguard dpi --flows-out` writes them (one object per flow; at most 5000)."""

    flows: list[dict[str, Any]] = Field(max_length=MAX_BATCH)


class ModeChange(BaseModel):
    mode: str = Field(description="discover, monitor or protect")


class QuarantineRequest(BaseModel):
    freeze: bool = Field(default=False, description="Also freeze every process of the pod.")


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=253, description="For an agent: its node name.")
    role: str = Field(default="agent", description="agent or viewer")


class UserRequest(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: str = Field(default="viewer", description="admin or viewer")


def now_iso() -> str:
    return format_time_ns(time.time_ns())


class LoginLimiter:
    """At most `rate` login attempts per client address per minute (in memory, per replica)."""

    def __init__(self, rate: int = LOGIN_RATE) -> None:
        self.rate = rate
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(address, deque())
            while hits and hits[0] < now - 60:
                hits.popleft()
            if len(hits) >= self.rate:
                return False
            hits.append(now)
            return True


def create_app(db: Database, *, setup_token: str | None = None, secure_cookies: bool = True,
               login_rate: int = LOGIN_RATE) -> FastAPI:
    """The console app on `db`. `setup_token` (when no admin exists yet) lets the first admin enrol."""
    central = CentralStore(db)
    auth = AuthStore(db)
    if setup_token and not auth.has_admin():
        auth.set_setup_token(setup_token)
    limiter = LoginLimiter(login_rate)
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    templates.filters["when"] = utc_label
    templates.filters["epoch"] = lambda t: datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%d %H:%M:%S")
    app = FastAPI(title="kubeguard console", version=__version__, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.central = central
    app.state.auth = auth

    # --- plumbing -----------------------------------------------------------------------------------
    def address(request: Request) -> str:
        return request.client.host if request.client else ""

    def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=secure_cookies, httponly=True,
                            samesite="strict")

    def render(request: Request, template: str, principal: Principal | None = None, status: int = 200,
               **context: Any) -> HTMLResponse:
        html = templates.get_template(template).render(user=principal, path=request.url.path, version=__version__,
                                                   **context)
        return HTMLResponse(html, status_code=status)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        if secure_cookies:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.exception_handler(StoreError)
    async def store_down(request: Request, exc: StoreError) -> Response:
        logger.error("database error: %s", exc)
        return JSONResponse({"detail": "database unavailable"}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(NeedLogin)
    async def need_login(request: Request, exc: NeedLogin) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "authentication required"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return RedirectResponse("/login" if auth.has_admin() else "/setup", status_code=303)

    async def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            found = auth.api_token(header[7:].strip())
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            found = auth.session(cookie) if cookie else None
        if found is None or found.stage != "full":
            raise NeedLogin()
        if found.kind == "session" and request.method not in ("GET", "HEAD", "OPTIONS"):
            sent = request.headers.get("x-csrf-token", "")
            if not sent and request.headers.get("content-type", "").startswith(
                    ("application/x-www-form-urlencoded", "multipart/form-data")):
                sent = str((await request.form()).get("csrf", ""))
            if not sent or not hmac.compare_digest(sent, found.csrf):
                raise HTTPException(403, "missing or wrong CSRF token")
        return found

    async def user(who: Principal = Depends(principal)) -> Principal:
        if who.role not in ("admin", "viewer"):
            raise HTTPException(403, "this token may only call /api/agent/*")
        return who

    async def admin(who: Principal = Depends(principal)) -> Principal:
        if who.role != "admin" or who.kind != "session":
            raise HTTPException(403, "admin only")
        return who

    async def agent(who: Principal = Depends(principal)) -> Principal:
        if who.role != "agent":
            raise HTTPException(403, "agent token required")
        return who

    def pre_token(request: Request) -> str:
        return request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)

    def check_pre(request: Request, form: Any) -> None:
        cookie = request.cookies.get(PRE_COOKIE, "")
        sent = str(form.get("csrf", ""))
        if not cookie or not sent or not hmac.compare_digest(cookie, sent):
            raise HTTPException(403, "missing or wrong CSRF token (reload the page)")

    def form_page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        token = pre_token(request)
        response = render(request, template, status=status, csrf=token, **context)
        set_cookie(response, PRE_COOKIE, token, max_age=3600)
        return response

    def query_of(rule: str = "", priority: str = "", namespace: str = "", workload: str = "", node: str = "",
                 since: str = "", until: str = "", limit: int = 200, offset: int = 0) -> CentralQuery:
        return CentralQuery(rule=rule, priority=priority, namespace=namespace, workload=workload, node=node,
                            since=since, until=until, limit=max(1, min(int(limit), 1000)), offset=max(0, offset))

    def timeline(query: CentralQuery) -> list[tuple[str, int]]:
        hours = central.timeline(query, len("2026-01-01T00"))
        return central.timeline(query, bucket_prefix(len(hours))) if hours else []

    # --- public -------------------------------------------------------------------------------------
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/static/console.css", include_in_schema=False)
    def css() -> Response:
        return Response((HERE / "templates" / "console.css").read_text(), media_type="text/css")

    @app.get("/setup", include_in_schema=False)
    def setup_page(request: Request) -> Response:
        if auth.has_admin():
            return RedirectResponse("/login", status_code=303)
        return form_page(request, "enrol.html", setup=True, token="", error="")

    @app.get("/enrol", include_in_schema=False)
    def enrol_page(request: Request, token: str = "") -> Response:
        return form_page(request, "enrol.html", setup=False, token=token, error="")

    @app.post("/setup", include_in_schema=False)
    @app.post("/enrol", include_in_schema=False)
    async def enrol_submit(request: Request) -> Response:
        form = await request.form()
        check_pre(request, form)
        setup = request.url.path == "/setup"
        token = str(form.get("token", "")).strip()
        password = str(form.get("password", ""))
        try:
            if password != str(form.get("password2", "")):
                raise AuthError("the two passwords differ")
            name, _ = auth.start_enrolment(token, str(form.get("name", "")), password)
        except AuthError as exc:
            auth.audit("", "enrol.refused", "", str(exc), address(request))
            return form_page(request, "enrol.html", status=400, setup=setup, token="", error=str(exc))
        response = RedirectResponse("/enrol/totp", status_code=303)
        set_cookie(response, ENROL_COOKIE, json.dumps({"t": token, "n": name}), max_age=3600)
        return response

    def enrol_state(request: Request) -> tuple[str, str, str] | None:
        try:
            data = json.loads(request.cookies.get(ENROL_COOKIE, ""))
            token, name = str(data["t"]), str(data["n"])
        except (ValueError, KeyError, TypeError):
            return None
        secret = auth.pending_secret(token, name)
        return (token, name, secret) if secret else None

    def totp_page(request: Request, name: str, secret: str, error: str = "", status: int = 200) -> HTMLResponse:
        uri = auth.totp_uri(name, secret)
        qr = segno.make(uri, error="m").svg_inline(scale=5, dark="#111", light="#fff")
        return form_page(request, "totp.html", status=status, name=name, secret=secret, qr=qr, error=error)

    @app.get("/enrol/totp", include_in_schema=False)
    def totp_enrol_page(request: Request) -> Response:
        state = enrol_state(request)
        if state is None:
            return RedirectResponse("/login" if auth.has_admin() else "/setup", status_code=303)
        return totp_page(request, state[1], state[2])

    @app.post("/enrol/totp", include_in_schema=False)
    async def totp_enrol_submit(request: Request) -> Response:
        form = await request.form()
        check_pre(request, form)
        state = enrol_state(request)
        if state is None:
            return RedirectResponse("/login" if auth.has_admin() else "/setup", status_code=303)
        token, name, secret = state
        try:
            auth.finish_enrolment(token, name, str(form.get("code", "")))
        except AuthError as exc:
            auth.audit(name, "enrol.totp_refused", name, str(exc), address(request))
            return totp_page(request, name, secret, error=str(exc), status=400)
        auth.audit(name, "enrol", name, "password and TOTP set", address(request))
        response = RedirectResponse("/alerts", status_code=303)
        response.delete_cookie(ENROL_COOKIE, path="/", secure=secure_cookies, httponly=True, samesite="strict")
        set_cookie(response, SESSION_COOKIE, auth.create_session(name))
        return response

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        if not auth.has_admin():
            return RedirectResponse("/setup", status_code=303)
        return form_page(request, "login.html", error="")

    @app.post("/login", include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        if not limiter.allow(address(request)):
            return PlainTextResponse("too many login attempts; wait a minute", status_code=429)
        form = await request.form()
        check_pre(request, form)
        name = str(form.get("name", "")).strip()[:64]
        try:
            role = auth.login(name, str(form.get("password", "")), str(form.get("code", "")))
        except AuthError as exc:
            locked = auth.is_locked(name)
            auth.audit(name, "login.locked" if locked else "login.failed", name, "", address(request))
            return form_page(request, "login.html", status=401, error=str(exc))
        auth.audit(name, "login", name, role, address(request))
        response = RedirectResponse("/alerts", status_code=303)
        set_cookie(response, SESSION_COOKIE, auth.create_session(name))
        return response

    # --- pages (viewer) -----------------------------------------------------------------------------
    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, who: Principal = Depends(user)) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            auth.end_session(cookie)
        auth.audit(who.name, "logout", who.name, "", address(request))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=secure_cookies, httponly=True, samesite="strict")
        return response

    @app.get("/", include_in_schema=False)
    def home(who: Principal = Depends(user)) -> Response:
        return RedirectResponse("/alerts", status_code=303)

    @app.get("/alerts", include_in_schema=False)
    def alerts_page(request: Request, rule: str = "", priority: str = "", namespace: str = "", workload: str = "",
                    node: str = "", since: str = "", until: str = "", offset: int = Query(0, ge=0, le=MAX_OFFSET),
                    who: Principal = Depends(user)) -> Response:
        query = query_of(rule, priority, namespace, workload, node, since, until, 100, offset)
        filters = {"rule": rule, "priority": priority, "namespace": namespace, "workload": workload, "node": node,
                   "since": since, "until": until}
        return render(request, "alerts.html", who, alerts=central.alerts(query), total=central.count(query),
                      chart=timeline_svg(timeline(query)), facets=central.facets(), filters=filters,
                      priorities=[p.capitalize() for p in FALCO_PRIORITIES], offset=query.offset)

    @app.get("/alerts/{uuid}", include_in_schema=False)
    def alert_page(request: Request, uuid: str, who: Principal = Depends(user)) -> Response:
        record = central.alert(uuid)
        if record is None:
            return render(request, "message.html", who, status=404, title="Not found", message="No such alert.")
        return render(request, "alert.html", who, alert=record)

    @app.get("/findings", include_in_schema=False)
    def findings_page(request: Request, who: Principal = Depends(user)) -> Response:
        scan, findings = central.findings()
        return render(request, "findings.html", who, scan=scan, findings=findings)

    @app.get("/paths", include_in_schema=False)
    def paths_page(request: Request, who: Principal = Depends(user)) -> Response:
        scan, uploaded, document = central.paths()
        graph, answers = from_json(document) if document is not None else (None, [])
        drawing = paths_html.svg(graph, answers) if graph is not None and any(a.paths for a in answers) else ""
        return render(request, "paths.html", who, scan=scan, uploaded=uploaded, graph=graph, answers=answers,
                      drawing=drawing)

    @app.get("/flows", include_in_schema=False)
    def flows_page(request: Request, who: Principal = Depends(user)) -> Response:
        fmap = flowmap.from_records(central.flows(FLOW_MAP_RECORDS))
        return render(request, "flows.html", who, drawing=flowmap.svg(fmap) if fmap.edges else "",
                      flowmap=fmap.to_dict(), limit=FLOW_MAP_RECORDS)

    @app.get("/workloads", include_in_schema=False)
    def workloads_page(request: Request, who: Principal = Depends(user)) -> Response:
        return render(request, "workloads.html", who, workloads=central.workloads(), modes=MODES,
                      quarantines=central.quarantines())

    @app.get("/agents", include_in_schema=False)
    def agents_page(request: Request, who: Principal = Depends(user)) -> Response:
        return render(request, "agents.html", who, agents=central.agents(), now=now_iso())

    # --- admin pages --------------------------------------------------------------------------------
    @app.get("/admin", include_in_schema=False, tags=["admin"])
    def admin_page(request: Request, who: Principal = Depends(admin)) -> Response:
        return render(request, "admin.html", who, users=auth.users(), tokens=auth.api_tokens(),
                      audit=auth.audit_log(200), created=None)

    @app.post("/workloads/mode", include_in_schema=False, tags=["admin"])
    async def mode_form(request: Request, who: Principal = Depends(admin)) -> Response:
        form = await request.form()
        namespace, workload, mode = (str(form.get(k, "")) for k in ("namespace", "workload", "mode"))
        if mode not in MODES or not workload:
            raise HTTPException(400, f"mode must be one of {', '.join(MODES)} and a workload given")
        change_mode(namespace, workload, mode, who, address(request))
        return RedirectResponse("/workloads", status_code=303)

    @app.post("/pods/quarantine", include_in_schema=False, tags=["admin"])
    async def quarantine_form(request: Request, who: Principal = Depends(admin)) -> Response:
        form = await request.form()
        namespace, pod = str(form.get("namespace", "")), str(form.get("pod", ""))
        if not namespace or not pod:
            raise HTTPException(400, "namespace and pod are required")
        if form.get("release"):
            release_pod(namespace, pod, who, address(request))
        else:
            quarantine_pod(namespace, pod, bool(form.get("freeze")), who, address(request))
        return RedirectResponse("/workloads", status_code=303)

    @app.post("/admin/users", include_in_schema=False, tags=["admin"])
    async def user_form(request: Request, who: Principal = Depends(admin)) -> Response:
        form = await request.form()
        try:
            token = new_user(str(form.get("name", "")), str(form.get("role", "viewer")), who, address(request))
        except AuthError as exc:
            raise HTTPException(400, str(exc)) from exc
        link = f"{request.base_url}enrol?token={token}"
        return render(request, "admin.html", who, users=auth.users(), tokens=auth.api_tokens(),
                      audit=auth.audit_log(200), created={"what": "enrolment link (shown once)", "value": link})

    @app.post("/admin/tokens", include_in_schema=False, tags=["admin"])
    async def token_form(request: Request, who: Principal = Depends(admin)) -> Response:
        form = await request.form()
        try:
            token = new_token(str(form.get("name", "")), str(form.get("role", "agent")), who, address(request))
        except AuthError as exc:
            raise HTTPException(400, str(exc)) from exc
        return render(request, "admin.html", who, users=auth.users(), tokens=auth.api_tokens(),
                      audit=auth.audit_log(200), created={"what": "API token (shown once)", "value": token})

    @app.post("/admin/tokens/{token_id}/revoke", include_in_schema=False, tags=["admin"])
    def revoke_form(request: Request, token_id: int = FastApiPath(ge=1, le=2**62),
                    who: Principal = Depends(admin)) -> Response:
        if auth.revoke_api_token(token_id):
            auth.audit(who.name, "token.revoke", str(token_id), "", address(request))
        return RedirectResponse("/admin", status_code=303)

    def change_mode(namespace: str, workload: str, mode: str, who: Principal, where: str) -> None:
        central.set_mode(namespace, workload, mode, who.name, now_iso())
        auth.audit(who.name, "policy.mode", f"{namespace}/{workload}", mode, where)

    def quarantine_pod(namespace: str, pod: str, freeze: bool, who: Principal, where: str) -> None:
        central.quarantine(namespace, pod, freeze, who.name, now_iso())
        auth.audit(who.name, "quarantine", f"{namespace}/{pod}", "freeze" if freeze else "network", where)

    def release_pod(namespace: str, pod: str, who: Principal, where: str) -> bool:
        released = central.release(namespace, pod)
        auth.audit(who.name, "quarantine.release", f"{namespace}/{pod}", "" if released else "was not quarantined",
                   where)
        return released

    def new_user(name: str, role: str, who: Principal, where: str) -> str:
        token = auth.create_enrolment(name.strip(), role)
        auth.audit(who.name, "user.create", name, role, where)
        return token

    def new_token(name: str, role: str, who: Principal, where: str) -> str:
        token = auth.create_api_token(name.strip(), role)
        auth.audit(who.name, "token.create", name, role, where)
        return token

    # --- JSON API -----------------------------------------------------------------------------------
    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(who: Principal = Depends(principal)) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/alerts", tags=["alerts"])
    def api_alerts(rule: str = "", priority: str = "", namespace: str = "", workload: str = "", node: str = "",
                   since: str = "", until: str = "", limit: int = Query(200, ge=1, le=1000),
                   offset: int = Query(0, ge=0, le=MAX_OFFSET), who: Principal = Depends(user)) -> dict[str, Any]:
        """Alerts, newest first, with the console's filters (times are RFC 3339, `until` exclusive)."""
        query = query_of(rule, priority, namespace, workload, node, since, until, limit, offset)
        return {"total": central.count(query), "alerts": central.alerts(query)}

    @app.get("/api/alerts/{uuid}", tags=["alerts"])
    def api_alert(uuid: str, who: Principal = Depends(user)) -> dict[str, Any]:
        """One alert with every output field."""
        record = central.alert(uuid)
        if record is None:
            raise HTTPException(404, "no such alert")
        return record

    @app.get("/api/timeline", tags=["alerts"])
    def api_timeline(rule: str = "", priority: str = "", namespace: str = "", workload: str = "", node: str = "",
                     since: str = "", until: str = "", who: Principal = Depends(user)) -> dict[str, Any]:
        """Alert counts per time bucket (minute, hour or day, by span)."""
        query = query_of(rule, priority, namespace, workload, node, since, until)
        return {"buckets": [{"time": t, "count": n} for t, n in timeline(query)]}

    @app.get("/api/findings", tags=["posture"])
    def api_findings(who: Principal = Depends(user)) -> dict[str, Any]:
        """The latest uploaded posture scan."""
        scan, findings = central.findings()
        return {"scan": scan, "findings": findings}

    @app.get("/api/paths", tags=["posture"])
    def api_paths(who: Principal = Depends(user)) -> dict[str, Any]:
        """The latest uploaded attack paths (`kubeguard paths -o json`)."""
        scan, uploaded, document = central.paths()
        return {"scan": scan, "time": uploaded, "document": document}

    @app.get("/api/flowmap", tags=["network"])
    def api_flowmap(who: Principal = Depends(user)) -> dict[str, Any]:
        """Who talks to whom: the flow map of the latest uploaded flow records."""
        return flowmap.from_records(central.flows(FLOW_MAP_RECORDS)).to_dict()

    @app.get("/api/workloads", tags=["workloads"])
    def api_workloads(who: Principal = Depends(user)) -> dict[str, Any]:
        """Workloads seen in alerts or given a mode, with their policy mode."""
        return {"workloads": central.workloads()}

    @app.put("/api/workloads/{namespace}/{workload}/mode", tags=["workloads", "admin"])
    def api_set_mode(namespace: str, workload: str, body: ModeChange, request: Request,
                     who: Principal = Depends(admin)) -> dict[str, str]:
        """Set a workload's policy mode (admin; audited). Agents pick it up at their next poll."""
        if body.mode not in MODES:
            raise HTTPException(422, f"mode must be one of {', '.join(MODES)}")
        change_mode(namespace, workload, body.mode, who, address(request))
        return {"namespace": namespace, "workload": workload, "mode": body.mode}

    @app.get("/api/quarantines", tags=["workloads"])
    def api_quarantines(who: Principal = Depends(user)) -> dict[str, Any]:
        """Pods the console wants quarantined (the agent of each pod's node applies it)."""
        return {"quarantines": central.quarantines()}

    @app.put("/api/pods/{namespace}/{pod}/quarantine", tags=["workloads", "admin"])
    def api_quarantine(namespace: str, pod: str, body: QuarantineRequest, request: Request,
                       who: Principal = Depends(admin)) -> dict[str, Any]:
        """Quarantine a pod: cut off the network (and freeze it when asked). Admin; audited."""
        quarantine_pod(namespace, pod, body.freeze, who, address(request))
        return {"namespace": namespace, "pod": pod, "freeze": body.freeze}

    @app.delete("/api/pods/{namespace}/{pod}/quarantine", tags=["workloads", "admin"])
    def api_release(namespace: str, pod: str, request: Request, who: Principal = Depends(admin)) -> dict[str, Any]:
        """Release a quarantined pod. Admin; audited."""
        return {"namespace": namespace, "pod": pod, "released": release_pod(namespace, pod, who, address(request))}

    @app.get("/api/agents", tags=["agents"])
    def api_agents(who: Principal = Depends(user)) -> dict[str, Any]:
        """Agents with their last heartbeat."""
        return {"agents": central.agents()}

    @app.get("/api/audit", tags=["admin"])
    def api_audit(who: Principal = Depends(admin)) -> dict[str, Any]:
        """The audit log, newest first (admin)."""
        return {"audit": auth.audit_log()}

    @app.post("/api/tokens", tags=["admin"], status_code=201)
    def api_new_token(body: TokenRequest, request: Request, who: Principal = Depends(admin)) -> dict[str, str]:
        """Create an API token (role agent or viewer); the token is in this answer only."""
        try:
            return {"name": body.name, "role": body.role,
                    "token": new_token(body.name, body.role, who, address(request))}
        except AuthError as exc:
            raise HTTPException(422, str(exc)) from exc

    @app.post("/api/users", tags=["admin"], status_code=201)
    def api_new_user(body: UserRequest, request: Request, who: Principal = Depends(admin)) -> dict[str, str]:
        """Create a user; the answer holds the one-time enrolment token (password + TOTP are set by the user)."""
        try:
            return {"name": body.name, "role": body.role,
                    "enrolment_token": new_user(body.name, body.role, who, address(request))}
        except AuthError as exc:
            raise HTTPException(422, str(exc)) from exc

    @app.post("/api/agent/batch", tags=["agent"])
    def api_batch(body: Batch, who: Principal = Depends(agent)) -> BatchAnswer:
        """Alerts and a heartbeat from one agent (node = the token's name). Ids already stored are skipped."""
        received = now_iso()
        try:
            rows = [central.alert_row(a.model_dump(), who.name, received) for a in body.alerts]
        except (ValueError, KeyError) as exc:
            raise HTTPException(422, f"bad alert: {exc}") from exc
        stored = central.add_alerts(rows)
        if body.heartbeat is not None:
            central.heartbeat(AgentReport(node=who.name, **body.heartbeat.model_dump()), received)
        return BatchAnswer(stored=stored, duplicates=len(rows) - stored)

    @app.post("/api/agent/findings", tags=["agent"])
    def api_upload_findings(body: FindingsUpload, who: Principal = Depends(agent)) -> dict[str, int]:
        """Upload a posture scan's findings (replaces what the findings page shows)."""
        return {"stored": central.add_findings(body.scan, now_iso(), body.findings)}

    @app.post("/api/agent/paths", tags=["agent"])
    def api_upload_paths(body: PathsUpload, who: Principal = Depends(agent)) -> dict[str, int]:
        """Upload attack paths (`kubeguard paths -o json`); the attack-path page shows the latest."""
        try:
            _graph, answers = from_json(body.document)
        except PathsDocumentError as exc:
            raise HTTPException(422, str(exc)) from exc
        central.add_paths(body.scan, now_iso(), who.name, body.document)
        return {"answers": len(answers), "paths": sum(len(a.paths) for a in answers)}

    @app.post("/api/agent/flows", tags=["agent"])
    def api_upload_flows(body: FlowsUpload, who: Principal = Depends(agent)) -> dict[str, int]:
        """Flow records (`kubeguard dpi --flows-out` lines) for the flow map; a bad record refuses the batch."""
        try:
            flowmap.from_records(body.flows)
        except flowmap.FlowMapError as exc:
            raise HTTPException(422, str(exc)) from exc
        stored = central.add_flows(who.name, now_iso(), body.flows)
        return {"stored": stored, "duplicates": len(body.flows) - stored}

    @app.get("/api/agent/modes", tags=["agent"])
    def api_modes(who: Principal = Depends(agent)) -> dict[str, Any]:
        """The desired policy mode of every workload that has one (others: discover) and the pods to quarantine."""
        return {"default": "discover", "modes": central.modes(), "quarantines": central.quarantines()}

    return app


def utc_label(iso: str) -> str:
    """'2026-12-04T15:00:00.123456789Z' -> '2026-12-04 15:00:00'."""
    try:
        return datetime.fromisoformat(iso[:19]).replace(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso
