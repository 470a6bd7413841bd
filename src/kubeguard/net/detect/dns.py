"""DNS tunnelling, zone transfer and NULL/TXT flood detection.

Per name: `tunnel_score(qname)` rates the part of a name below its registered domain (the part a
tunnel encodes data into) with a small logistic model (``dns_model.json``, rebuilt by
``scripts/train_dns.py``) over hand-made features: label lengths, characters that no host name
uses (``+ / =``, non-ASCII), mixed case that is not 0x20 randomisation, digit share, entropy.

Over time: `DnsTunnelDetector.observe` keeps, per (source, registered domain), a sliding window of
tunnel-like names, distinct subdomains and encoded bytes (iodine, dnscat2 and dns2tcp all send
many unique, long subdomains of one domain), per-source NULL/TXT counts, and flags AXFR/IXFR.
State is bounded (`max_keys` entries, least recently used dropped) and windows expire.
"""

from __future__ import annotations

import json
import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from kubeguard.model import Severity
from kubeguard.net.detect.mask import snippet
from kubeguard.net.types import Detection, DnsQuestion
from kubeguard.redact import shannon_entropy

MODEL_PATH = Path(__file__).with_name("dns_model.json")
# Second-level labels under which ccTLDs register names (co.uk, com.br, ...).
_SLDS = frozenset([
    "co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gob", "mil", "nic", "ltd", "plc", "sch",
    "info", "biz"
])
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_VOWELS = frozenset("aeiou")
HEX_PAYLOAD = 48  # a hex-only subdomain this long is encoded data (no name, id or hash runs that long)
FEATURES = ("sub_len", "max_label", "labels", "bad_chars", "mixed_case", "digit_share", "entropy",
            "consonant_run", "hexlike", "vowel_share")


def registered_domain(qname: str) -> tuple[str, str]:
    """(subdomain part, registered domain) of a name: ``a.b.example.co.uk`` -> (``a.b``, ``example.co.uk``)."""
    labels = qname.rstrip(".").split(".")
    if len(labels) >= 2 and labels[-1].lower() in ("arpa",):
        return "", ".".join(labels)  # reverse lookups: the numbers are the question, not data
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2].lower() in _SLDS else 2
    return ".".join(labels[:-keep]), ".".join(labels[-keep:])


def name_features(qname: str) -> list[float]:
    """The features `tunnel_score` weighs (see `FEATURES`), each scaled to roughly 0..1."""
    sub, domain = registered_domain(qname[:1024])
    if not sub:
        return [0.0] * len(FEATURES)
    labels = sub.split(".")
    flat = sub.replace(".", "")
    low = flat.lower()
    letters = [c for c in low if c.isalpha()]
    has_upper = any(c.isupper() for c in flat)
    has_lower = any(c.islower() for c in flat)
    domain_mixed = any(c.isupper() for c in domain) and any(c.islower() for c in domain)
    run = best = 0
    for c in low:
        run = run + 1 if c.isalpha() and c not in _VOWELS else 0
        best = max(best, run)
    return [
        min(len(sub), 255) / 64,
        max(len(x) for x in labels) / 63,
        min(len(labels), 10) / 4,
        min(sum(c not in _HOST_CHARS for c in low), 8) / 4,
        1.0 if has_upper and has_lower and not domain_mixed else 0.0,
        sum(c.isdigit() for c in flat) / max(1, len(flat)),
        shannon_entropy(low) / 5,
        min(best, 12) / 6,
        1.0 if len(low) >= 16 and all(c in "0123456789abcdef" for c in low) else 0.0,
        (sum(c in _VOWELS for c in letters) / len(letters)) if letters else 0.0,
    ]


@cache
def load_model(path: Path = MODEL_PATH) -> tuple[float, float, list[float]]:
    """(bias, threshold, weights in `FEATURES` order) from the shipped model."""
    data = json.loads(path.read_text())
    return float(data["bias"]), float(data["threshold"]), [float(data["weights"][f]) for f in FEATURES]


def score_features(feats: list[float], bias: float, weights: list[float]) -> float:
    """Logistic score of a feature vector."""
    z = bias + sum(w * f for w, f in zip(weights, feats, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def hex_payload(sub: str) -> bool:
    """dnscat2-style: labels of hex digits only, `HEX_PAYLOAD` or more of them below the registered domain."""
    hexdigits = frozenset("0123456789abcdef")
    return sum(len(label) for label in sub.lower().split(".") if hexdigits.issuperset(label)) >= HEX_PAYLOAD


def tunnel_score(qname: str) -> float:
    """Probability that `qname` carries tunnelled data (0 for a bare registered domain).

    Hand-written layer first (hex payloads, which the training data has none of), then the model.
    """
    sub = registered_domain(qname)[0]
    if not sub:
        return 0.0
    if hex_payload(sub):
        return 1.0
    bias, _, weights = load_model()
    return score_features(name_features(qname), bias, weights)


def is_tunnel_name(qname: str) -> bool:
    """`tunnel_score` at or above the model's threshold."""
    return tunnel_score(qname) >= load_model()[1]


@dataclass(slots=True)
class DnsThresholds:
    """Detection thresholds (defaults documented in docs/dpi-detect.md)."""

    window: float = 60.0  # seconds of history per source and domain
    tunnel_names: int = 3  # tunnel-like names under one domain within the window
    unique_subdomains: int = 100  # distinct subdomains of one domain within the window
    subdomain_bytes: int = 4096  # bytes encoded in subdomains of one domain within the window
    null_queries: int = 10  # NULL queries from one source within the window (iodine's default type)
    txt_queries: int = 120  # TXT queries from one source within the window
    cooldown: float = 300.0  # seconds before the same alert repeats for the same key
    max_keys: int = 10000  # tracked (source, domain) and source entries; least recently used dropped


class _Window:
    __slots__ = ("events", "names")

    def __init__(self) -> None:
        self.events: deque[tuple[float, str, int, bool]] = deque()  # ts, subdomain, bytes, tunnel-like
        self.names: Counter[str] = Counter()


class DnsTunnelDetector:
    """Stateful DNS detector: feed it every question seen; it returns detections as they arise."""

    def __init__(self, thresholds: DnsThresholds | None = None) -> None:
        self.t = thresholds or DnsThresholds()
        self.domains: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self.types: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self.last_alert: OrderedDict[tuple[str, ...], float] = OrderedDict()

    def _touch(self, table: OrderedDict, key: tuple, factory: type) -> object:  # type: ignore[type-arg]
        item = table.get(key)
        if item is None:
            item = table[key] = factory()
            while len(table) > self.t.max_keys:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        return item

    def _once(self, key: tuple[str, ...], ts: float) -> bool:
        last = self.last_alert.get(key)
        if last is not None and ts - last < self.t.cooldown:
            return False
        self.last_alert[key] = ts
        self.last_alert.move_to_end(key)
        while len(self.last_alert) > self.t.max_keys:
            self.last_alert.popitem(last=False)
        return True

    def observe(self, src_ip: str, q: DnsQuestion, ts: float) -> list[Detection]:
        """Detections raised by one question from `src_ip` at time `ts` (seconds)."""
        if q.is_response or not math.isfinite(ts):
            return []
        out: list[Detection] = []
        qtype = q.qtype.upper()
        qname = q.qname[:1024]
        fields = {"dns.qname": snippet(qname, 0, None, 120), "dns.qtype": qtype}
        if qtype in ("AXFR", "IXFR", "252", "251") and self._once(("axfr", src_ip, qname.lower()), ts):
            out.append(Detection("DNS zone transfer attempt", Severity.HIGH, f"{qtype} for {snippet(qname)}",
                                 ("T1590.002",), dict(fields), ("dns", "dpi")))
        if qtype in ("NULL", "10", "TXT", "16"):
            kind = "NULL" if qtype in ("NULL", "10") else "TXT"
            times = self._touch(self.types, (src_ip, kind), deque)
            assert isinstance(times, deque)
            times.append(ts)
            while times and ts - times[0] > self.t.window:
                times.popleft()
            limit = self.t.null_queries if kind == "NULL" else self.t.txt_queries
            if len(times) >= limit and self._once(("flood", src_ip, kind), ts):
                out.append(Detection(f"DNS {kind} query flood", Severity.MEDIUM,
                                     f"{len(times)} {kind} queries in {self.t.window:.0f}s, last {snippet(qname)}",
                                     ("T1071.004", "T1498"), dict(fields), ("dns", "dpi")))
        sub, domain = registered_domain(qname)
        if not sub:
            return out
        domain = domain.lower()
        win = self._touch(self.domains, (src_ip, domain), _Window)
        assert isinstance(win, _Window)
        tunnel_like = is_tunnel_name(qname)
        win.events.append((ts, sub, len(sub), tunnel_like))
        win.names[sub] += 1
        while win.events and ts - win.events[0][0] > self.t.window:
            _, old, _, _ = win.events.popleft()
            win.names[old] -= 1
            if win.names[old] <= 0:
                del win.names[old]
        n_tunnel = sum(e[3] for e in win.events)
        encoded = sum(e[2] for e in win.events)
        reason = None
        if n_tunnel >= self.t.tunnel_names:
            reason = f"{n_tunnel} tunnel-like names"
        elif len(win.names) >= self.t.unique_subdomains and encoded >= self.t.subdomain_bytes:
            reason = f"{len(win.names)} distinct subdomains, {encoded} bytes"
        if reason and self._once(("tunnel", src_ip, domain), ts):
            out.append(Detection("DNS tunnelling", Severity.HIGH,
                                 f"{reason} under {domain} in {self.t.window:.0f}s, e.g. {snippet(qname, 0, None, 80)}",
                                 ("T1071.004", "T1048"), {**fields, "dns.domain": domain}, ("dns", "dpi")))
        return out
