"""Who may use the console: users (argon2id + TOTP), enrolment tokens, sessions, API tokens, audit log.

There is no default account. The first admin enrols with a one-time setup token (printed at first
start or read from a file such as a mounted Kubernetes Secret); further users enrol with one-time
tokens an admin creates. Enrolment = choose a password (strength checked) and confirm a TOTP code;
a user is usable only after both. Secrets are stored as hashes only: passwords as argon2id, session
and API tokens and enrolment tokens as SHA-256 (they are 256-bit random, so a fast hash suffices).

Lockout: `MAX_FAILURES` consecutive failed logins (wrong password or wrong code) lock the account
for `LOCK_SECONDS`; a success resets the count. A TOTP code is accepted once (replay is refused).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kubeguard.store.sqldb import Database

ROLES = ("admin", "viewer")
TOKEN_ROLES = ("agent", "viewer")
MAX_FAILURES = 10
LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 8 * 3600
ENROL_SECONDS = 24 * 3600
ISSUER = "kubeguard"
COMMON_PASSWORDS = frozenset({
    "password", "password1", "password123", "passw0rd", "123456789012", "qwertyuiopas", "letmein12345",
    "administrator", "admin1234567", "welcome12345", "changeme1234", "iloveyou1234", "kubernetes123",
    "kubeguard123", "qwerty123456", "trustno1trustno1",
})

SCHEMA = """
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT NOT NULL,
    enrolled INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    locked_until {real} NOT NULL,
    totp_last {bigint} NOT NULL,
    created {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS console_enrolments (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    expires {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    stage TEXT NOT NULL,
    expires {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS console_api_tokens (
    id {pk},
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created {real} NOT NULL,
    last_used {real} NOT NULL,
    revoked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS console_audit (
    id {pk},
    time {real} NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    address TEXT NOT NULL
)
"""


class AuthError(Exception):
    """A refused credential or enrolment step; the message is safe to show to the user."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_problem(password: str, name: str = "") -> str:
    """Why `password` is too weak, or '' when it is acceptable.

    At least 12 characters; at least 3 of lower / upper / digit / other unless 20 or more characters;
    not a well-known password; not containing the user name; not one repeated character.
    """
    if len(password) < 12:
        return "the password must have at least 12 characters"
    if len(password) > 1024:
        return "the password is longer than 1024 characters"
    classes = sum((any(c.islower() for c in password), any(c.isupper() for c in password),
                   any(c.isdigit() for c in password), any(not c.isalnum() for c in password)))
    if classes < 3 and len(password) < 20:
        return "use 3 of lower case, upper case, digits and symbols (or at least 20 characters)"
    if password.lower() in COMMON_PASSWORDS or len(set(password)) < 5:
        return "the password is too easy to guess"
    if name and len(name) >= 3 and name.lower() in password.lower():
        return "the password must not contain the user name"
    return ""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user with a session, or a machine with an API token."""

    name: str
    role: str  # admin | viewer | agent
    kind: str  # session | token
    csrf: str = ""
    stage: str = "full"  # session only: 'enrol' while TOTP enrolment is pending


class AuthStore:
    """Users, enrolments, sessions, API tokens and the audit log in the console's database."""

    def __init__(self, db: Database, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        db.create_schema(SCHEMA)

    # --- enrolment ----------------------------------------------------------------------------------
    def has_admin(self) -> bool:
        return bool(self.db.query("SELECT 1 FROM console_users WHERE role = 'admin' AND enrolled = 1 LIMIT 1"))

    def set_setup_token(self, token: str) -> None:
        """Make `token` the (only) bootstrap token for the first admin; it names no user yet."""
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM console_enrolments WHERE name = ''")
            tx.execute("INSERT INTO console_enrolments (token_hash, name, role, expires) VALUES (?,?,?,?)",
                       (token_hash(token), "", "admin", time.time() + 10 * 365 * 86400))

    def create_enrolment(self, name: str, role: str) -> str:
        """A one-time token with which `name` sets a password and enrols TOTP (admin action)."""
        if role not in ROLES:
            raise AuthError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise AuthError("user names are 1-64 letters, digits, '-', '_' or '.'")
        if self.db.query("SELECT 1 FROM console_users WHERE name = ? AND enrolled = 1", [name]):
            raise AuthError(f"user {name} already exists")
        token = secrets.token_urlsafe(32)
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM console_enrolments WHERE name = ?", [name])
            tx.execute("INSERT INTO console_enrolments (token_hash, name, role, expires) VALUES (?,?,?,?)",
                       (token_hash(token), name, role, time.time() + ENROL_SECONDS))
        return token

    def start_enrolment(self, token: str, name: str, password: str) -> tuple[str, str]:
        """Check the token and password, create the (not yet usable) user; returns (name, TOTP secret)."""
        rows = self.db.query("SELECT name, role, expires FROM console_enrolments WHERE token_hash = ?",
                             [token_hash(token)])
        if not rows or rows[0][2] < time.time():
            raise AuthError("the setup / enrolment token is not valid")
        fixed, role, _ = rows[0]
        name = fixed or name.strip()
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise AuthError("user names are 1-64 letters, digits, '-', '_' or '.'")
        problem = password_problem(password, name)
        if problem:
            raise AuthError(problem)
        if self.db.query("SELECT 1 FROM console_users WHERE name = ? AND enrolled = 1", [name]):
            raise AuthError(f"user {name} already exists")
        secret = pyotp.random_base32()
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM console_users WHERE name = ? AND enrolled = 0", [name])
            tx.execute("INSERT INTO console_users (name, role, password_hash, totp_secret, enrolled, failures,"
                       " locked_until, totp_last, created) VALUES (?,?,?,?,0,0,0,0,?)",
                       (name, role, self.hasher.hash(password), secret, time.time()))
        return name, secret

    def finish_enrolment(self, token: str, name: str, code: str) -> None:
        """Confirm the TOTP code: the user becomes usable and the token is spent."""
        rows = self.db.query("SELECT name FROM console_enrolments WHERE token_hash = ? AND expires >= ?",
                             [token_hash(token), time.time()])
        user = self._user(name)
        if not rows or rows[0][0] not in ("", name) or user is None or user["enrolled"]:
            raise AuthError("the enrolment is no longer valid; start again")
        step = self._totp_step(user["totp_secret"], code, 0)
        if step is None:
            raise AuthError("the code does not match; check the authenticator app's clock and try again")
        with self.db.transaction() as tx:
            tx.execute("UPDATE console_users SET enrolled = 1, totp_last = ? WHERE name = ?", (step, name))
            tx.execute("DELETE FROM console_enrolments WHERE token_hash = ?", [token_hash(token)])

    def pending_secret(self, token: str, name: str) -> str | None:
        """The TOTP secret of `name` while its enrolment (by `token`) awaits the first code."""
        rows = self.db.query("SELECT name FROM console_enrolments WHERE token_hash = ? AND expires >= ?",
                             [token_hash(token), time.time()])
        user = self._user(name)
        if not rows or rows[0][0] not in ("", name) or user is None or user["enrolled"]:
            return None
        return str(user["totp_secret"])

    @staticmethod
    def totp_uri(name: str, secret: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER)

    # --- login --------------------------------------------------------------------------------------
    def login(self, name: str, password: str, code: str) -> str:
        """Check password and TOTP code; returns the user's role. AuthError (generic) when refused."""
        refused = AuthError("wrong user name, password or code")
        user = self._user(name)
        if user is None or not user["enrolled"]:
            self.hasher.hash(password)  # the same work as for a real user: no timing oracle on names
            raise refused
        now = time.time()
        if user["locked_until"] > now:
            raise AuthError("too many failed logins: the account is locked; try again later")
        try:
            self.hasher.verify(user["password_hash"], password)
            password_ok = True
        except (VerificationError, InvalidHashError):
            password_ok = False
        step = self._totp_step(user["totp_secret"], code, int(user["totp_last"])) if password_ok else None
        if step is None:
            failures = int(user["failures"]) + 1
            locked = now + LOCK_SECONDS if failures >= MAX_FAILURES else 0.0
            with self.db.transaction() as tx:
                tx.execute("UPDATE console_users SET failures = ?, locked_until = ? WHERE name = ?",
                           (0 if locked else failures, locked, name))
            if locked:
                raise AuthError("too many failed logins: the account is locked; try again later")
            raise refused
        with self.db.transaction() as tx:
            tx.execute("UPDATE console_users SET failures = 0, totp_last = ? WHERE name = ?", (step, name))
            if self.hasher.check_needs_rehash(user["password_hash"]):
                tx.execute("UPDATE console_users SET password_hash = ? WHERE name = ?",
                           (self.hasher.hash(password), name))
        return str(user["role"])

    def is_locked(self, name: str) -> bool:
        user = self._user(name)
        return bool(user and user["locked_until"] > time.time())

    @staticmethod
    def _totp_step(secret: str, code: str, last: int) -> int | None:
        """The time step `code` belongs to (now +-1 step), if valid and newer than `last`."""
        code = code.strip().replace(" ", "")
        if len(code) != 6 or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret)
        now = int(time.time()) // totp.interval
        for step in (now - 1, now, now + 1):
            if step > last and hmac.compare_digest(totp.generate_otp(step), code):
                return step
        return None

    def _user(self, name: str) -> dict[str, Any] | None:
        names = ("name", "role", "password_hash", "totp_secret", "enrolled", "failures", "locked_until", "totp_last")
        rows = self.db.query(f"SELECT {', '.join(names)} FROM console_users WHERE name = ?", [name])
        return dict(zip(names, rows[0], strict=True)) if rows else None

    def users(self) -> list[dict[str, Any]]:
        names = ("name", "role", "enrolled", "locked_until")
        return [dict(zip(names, r, strict=True)) for r in self.db.query(
            f"SELECT {', '.join(names)} FROM console_users ORDER BY name")]

    # --- sessions -----------------------------------------------------------------------------------
    def create_session(self, name: str, stage: str = "full") -> str:
        token = secrets.token_urlsafe(32)
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM console_sessions WHERE expires < ?", [time.time()])
            tx.execute("INSERT INTO console_sessions (token_hash, name, csrf, stage, expires) VALUES (?,?,?,?,?)",
                       (token_hash(token), name, secrets.token_urlsafe(32), stage, time.time() + SESSION_SECONDS))
        return token

    def session(self, token: str) -> Principal | None:
        rows = self.db.query(
            "SELECT s.name, s.csrf, s.stage, u.role, u.enrolled FROM console_sessions s JOIN console_users u"
            " ON u.name = s.name WHERE s.token_hash = ? AND s.expires >= ?", [token_hash(token), time.time()])
        if not rows:
            return None
        name, csrf, stage, role, enrolled = rows[0]
        if stage == "full" and not enrolled:
            return None
        return Principal(name=name, role=role, kind="session", csrf=csrf, stage=stage)

    def end_session(self, token: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM console_sessions WHERE token_hash = ?", [token_hash(token)])

    # --- API tokens ---------------------------------------------------------------------------------
    def create_api_token(self, name: str, role: str) -> str:
        """A bearer token for a machine (an agent: `name` is its node) or a read-only script. Shown once."""
        if role not in TOKEN_ROLES:
            raise AuthError(f"token role {role!r}: expected one of {', '.join(TOKEN_ROLES)}")
        if not name or len(name) > 253:
            raise AuthError("a token needs a name (for an agent: its node name)")
        token = "kgt_" + secrets.token_urlsafe(32)
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO console_api_tokens (token_hash, name, role, created, last_used, revoked)"
                       " VALUES (?,?,?,?,0,0)", (token_hash(token), name, role, time.time()))
        return token

    def api_token(self, token: str) -> Principal | None:
        rows = self.db.query("SELECT id, name, role FROM console_api_tokens WHERE token_hash = ? AND revoked = 0",
                             [token_hash(token)])
        if not rows:
            return None
        return Principal(name=str(rows[0][1]), role=str(rows[0][2]), kind="token")

    def revoke_api_token(self, token_id: int) -> bool:
        with self.db.transaction() as tx:
            return tx.execute("UPDATE console_api_tokens SET revoked = 1 WHERE id = ?", [token_id]) > 0

    def api_tokens(self) -> list[dict[str, Any]]:
        names = ("id", "name", "role", "created", "revoked")
        return [dict(zip(names, r, strict=True)) for r in self.db.query(
            f"SELECT {', '.join(names)} FROM console_api_tokens ORDER BY id")]

    # --- audit --------------------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target: str = "", detail: str = "", address: str = "") -> None:
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO console_audit (time, actor, action, target, detail, address) VALUES (?,?,?,?,?,?)",
                       (time.time(), actor, action, target, detail, address))

    def audit_log(self, limit: int = 500) -> list[dict[str, Any]]:
        names = ("time", "actor", "action", "target", "detail", "address")
        return [dict(zip(names, r, strict=True)) for r in self.db.query(
            f"SELECT {', '.join(names)} FROM console_audit ORDER BY id DESC LIMIT ?", [limit])]
