"""Recognise literal credentials in configuration values, and mask them for output.

A value is a credential when it matches a known token format (AWS, GCP, Azure, GitHub, Slack,
private keys, URLs with a password) or when its variable name says secret (PASSWORD, TOKEN,
SECRET_KEY, ...) and the value looks like one: long enough, not a placeholder or a reference,
and random enough (Shannon entropy). The secret itself never leaves this module: callers get
the kind and the masked value (kubeguard.redact).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubeguard.redact import AWS_KEY_ID, mask, shannon_entropy

# (kind, pattern, is a cloud or signing credential: rated critical)
TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str], bool], ...] = (
    ("AWS access key id", AWS_KEY_ID, True),
    ("private key", re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY"), True),
    ("GCP service account key", re.compile(r"\"type\"\s*:\s*\"service_account\""), True),
    ("GCP API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), True),
    ("Azure storage account key", re.compile(r"AccountKey=[A-Za-z0-9+/]{86}==", re.I), True),
    ("Azure SAS token", re.compile(r"[?&]sig=[A-Za-z0-9%+/]{40,}"), True),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{50,})\b"), False),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), False),
    ("Slack webhook", re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"), False),
    ("password in URL", re.compile(r"\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:(?![$<{])[^/\s@]{3,}@"), False),
)
# Formats whose first four characters are a public marker (AKIA, AIza, ghp_, xoxb), safe to show.
PUBLIC_PREFIX_KINDS = frozenset({"AWS access key id", "GCP API key", "GitHub token", "Slack token"})
# Variable names that announce a secret; AWS/Azure/GCP names make it a cloud credential.
SECRET_NAME = re.compile(
    r"(PASSW(OR)?D|PASSWD|(^|_)PWD$|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH_?KEY|"
    r"CLIENT_?SECRET|CONN(ECTION)?_?STR(ING)?)",
    re.I,
)
CLOUD_NAME = re.compile(r"(^|_)(AWS|AZURE|GCP|GOOGLE|GCLOUD|ARM)(_|$)", re.I)
# Values that are clearly not a secret: references, placeholders, booleans, paths.
NOT_SECRET = re.compile(
    r"^(\$\(.*\)|\$\{.*\}|<.*>|\{\{.*\}\}|true|false|yes|no|none|null|changeme|change_me|redacted|"
    r"xxx+|\*+|/[\w./\-]*|file:.*|example|dummy|placeholder|secret|password)$",
    re.I,
)
MIN_SECRET_LENGTH = 8
MIN_ENTROPY = 2.5  # bits per character: random tokens score 4+, "aaaaaaaa" 0, "password" 2.75


@dataclass(frozen=True, slots=True)
class SecretMatch:
    """A recognised credential: what kind, whether it is a cloud/signing credential, its masked form."""

    kind: str
    cloud: bool
    masked: str


def find_secret(name: str, value: str) -> SecretMatch | None:
    """The credential in variable `name` = `value`, if it holds one."""
    if not value:
        return None
    for kind, pattern, cloud in TOKEN_PATTERNS:
        found = pattern.search(value)
        if found:
            prefixed = found.start() == 0 and kind in PUBLIC_PREFIX_KINDS
            return SecretMatch(kind, cloud, mask(value, 4 if prefixed else 0))
    if not SECRET_NAME.search(name):
        return None
    stripped = value.strip()
    if len(stripped) < MIN_SECRET_LENGTH or NOT_SECRET.match(stripped):
        return None
    if shannon_entropy(stripped) < MIN_ENTROPY:
        return None
    cloud = bool(CLOUD_NAME.search(name))
    kind = "cloud secret key" if cloud else "password or token"
    return SecretMatch(kind, cloud, mask(stripped))
