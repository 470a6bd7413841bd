"""Accuracy floors of the L7 attack classes (#12) on the committed corpora in bench/data/l7.

A deterministic sample of bench/l7_classes' requests (every command/code-injection entry in every placement,
a quarter of the traversal requests by hash, every benign item as a query parameter plus the benign documents)
through the whole HTTP inspection. Floors are the figures measured on main when they were set: a detector
change that loses attacks or gains false positives fails here; raise a floor when a detector lands that
lifts it (bench.l7_accuracy prints the full table).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from bench import l7_classes

# percent of sampled attack requests detected (any HTTP rule), never below; false positives, never above
# cmdi, code: 8d9d64d (96.49, 96.17); 24b3bcf (95.63, 95.10); da4f717 (95.42, 95.10); dd63a45 (95.09, 94.68);
# c0ff117 (94.14, 93.93)
# traversal: code12 (#12)
FLOORS = {"cmdi": 96.4, "code": 96.1, "traversal": 97.3}
FP_CEILING = 0.5  # the goal (0.30 % at l7cmd 93076da)


def _sampled(probe: l7_classes.Probe) -> bool:
    if probe.kind != "traversal":
        return True
    return int(hashlib.sha256(f"{probe.source}\0{probe.uri}".encode()).hexdigest()[:2], 16) % 4 == 0


@pytest.fixture(scope="module")
def attacks() -> dict[str, tuple[int, int]]:
    out = {}
    probes = [p for p in l7_classes.attack_set() if _sampled(p)]
    flags, _ = l7_classes.kubeguard_flags(probes)
    for klass in l7_classes.CLASSES:
        idx = [i for i, p in enumerate(probes) if p.kind == klass]
        out[klass] = (sum(flags[i] for i in idx), len(idx))
    return out


@pytest.mark.parametrize("klass", sorted(l7_classes.CLASSES))
def test_detection_floor(attacks: dict[str, tuple[int, int]], klass: str) -> None:
    hits, total = attacks[klass]
    assert total > 500, f"{klass}: only {total} sampled requests: corpus missing?"
    assert 100 * hits / total >= FLOORS[klass], f"{klass}: {hits}/{total} detected, floor {FLOORS[klass]} %"


def test_false_positive_ceiling() -> None:
    probes = [p for p in l7_classes.benign_set(shared=False) if p.placement in ("query", "json-doc", "form-doc")]
    flags, rules = l7_classes.kubeguard_flags(probes)
    assert len(probes) > 5000
    rate = 100 * sum(flags) / len(probes)
    assert rate <= FP_CEILING, f"{sum(flags)}/{len(probes)} benign requests flagged ({dict(rules)})"


def test_prefilter_keeps_every_finding_of_the_corpora() -> None:
    """The request prefilter is a superset filter: on every attack and benign request of the corpora, the rules
    that fire are the same with it and without it (a JSON value starting with a glob command once slipped by)."""
    from kubeguard.net.detect.http import inspect_http_request

    differ = []
    for probe in [*l7_classes.attack_set(), *l7_classes.benign_set(shared=False)]:
        req = probe.http()
        fast = {d.rule for d in inspect_http_request(req)}
        full = {d.rule for d in inspect_http_request(req, prefilter=False)}
        if fast != full:
            differ.append((probe.kind, probe.placement, probe.entry or probe.uri, sorted(full ^ fast)))
    assert not differ, differ[:5]


def test_source_names_every_file() -> None:
    root = l7_classes.DATA
    source = (root / "SOURCE").read_text()
    files = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "SOURCE"]
    assert len(files) >= 20
    unnamed = [f for f in files if not re.search(rf"(?<![\w/.-]){re.escape(f)}(?![\w.-])", source)]
    assert not unnamed, f"bench/data/l7/SOURCE does not name: {unnamed}"


def test_wire_form_keeps_list_escapes() -> None:
    assert l7_classes.wire("..%2f..%2fetc/passwd") == "..%2f..%2fetc/passwd"
    assert l7_classes.wire("; cat /etc/passwd #") == ";%20cat%20/etc/passwd%20%23"
    assert l7_classes.wire("100% & a+b") == "100%25%20%26%20a%2Bb"
    assert l7_classes.wire("a?b", path=True) == "a%3Fb"
    assert Path(l7_classes.DATA / "attacks").is_dir()
