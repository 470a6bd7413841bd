"""Hostile input for the rule language, `replay` and the CLI's output (#18 items 1, 6, 7, 11, 12, 14).

Each test recreates the audit's input, runs `kubeguard` in a subprocess under a memory cap and a
generous wall bound, and asserts one clear line, the documented exit code (docs/cli.md) and that
nothing good was lost.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from tests.hostile.hostilerun import error_lines, kubeguard

from kubeguard.net.tesla_capture import write_capture
from kubeguard.rules.linear import LinearPattern

RULE = """- rule: {name}
  desc: d
  condition: {condition}
  output: "{output}"
  priority: {priority}
"""


def rules_file(tmp_path: Path, condition: str = "evt.type = open", output: str = "open %fd.name",
               priority: str = "WARNING", name: str = "R") -> Path:
    path = tmp_path / f"rules-{name}.yaml"
    path.write_text(RULE.format(name=name, condition=json.dumps(condition), output=output, priority=priority))
    return path


def event(**fields: object) -> str:
    return json.dumps({"evt.type": "open", "fd.name": "/etc/shadow", "proc.name": "cat", **fields})


def replay(tmp_path: Path, events: Path, rules: Path, *extra: str, timeout: float = 300):
    return kubeguard("replay", str(events), "--no-default-rules", "--rules", str(rules), "-o", "json",
                     "--db", str(tmp_path / "a.db"), *extra, tmp_path=tmp_path, timeout=timeout)


def test_bad_numbers_and_deep_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    """Item 1: evt.time 2**70, 1e30, Infinity, a line nested 100,000 deep: counted, skipped, the rest runs."""
    lines = [event(**{"evt.time": 1_700_000_000_000_000_000}),
             event(**{"evt.time": 2**70}),
             event().replace("}", ', "evt.time": 1e30}'),
             event().replace("}", ', "evt.time": Infinity}'),
             event().replace("}", ', "evt.time": -Infinity}'),
             event().replace("}", ', "evt.time": NaN}'),
             '{"evt.type": "open", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
             event(**{"evt.time": "9" * 5000}),
             event(**{"evt.time": 1_700_000_000_000_000_001})]
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(lines) + "\n")
    result = replay(tmp_path, events, rules_file(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert error_lines(result) == []
    assert len(result.stdout.splitlines()) == 2  # the first and the last line's alerts
    for number in range(2, 9):
        assert f"{events}:{number}: " in result.stderr
    assert "7 malformed line(s) skipped" in result.stderr
    listed = kubeguard("alerts", "--db", str(tmp_path / "a.db"), "-o", "json", tmp_path=tmp_path)
    assert len(listed.stdout.splitlines()) == 2


def _timed(pattern_rule: str, value_field: str, value: str, tmp_path: Path) -> tuple[object, float]:
    events = tmp_path / "e.jsonl"
    events.write_text(event(**{value_field: value}) + "\n")
    start = time.monotonic()
    result = replay(tmp_path, events, rules_file(tmp_path, pattern_rule), "--no-store", timeout=120)
    return result, time.monotonic() - start


@pytest.mark.parametrize(("condition", "field", "value"), [
    ('evt.type = open and proc.cmdline regex "(a+)+$"', "proc.cmdline", "a" * 28 + "!"),
    ('evt.type = open and proc.cmdline regex "(x+x+)+y"', "proc.cmdline", "x" * 5000),
    ("evt.type = open and fd.name glob '" + "*a" * 30 + "*b'", "fd.name", "a" * 200),
    ("evt.type = open and fd.name iglob '" + "*A" * 30 + "*b'", "fd.name", "a" * 200),
    ("evt.type = open and fd.name glob '/" + "*a*/" * 30 + "*b'", "fd.name", "/" + "aaaaaaaaa/" * 40),
    ("evt.type = open and fd.name glob '/" + "*/" * 60 + "b'", "fd.name", "/" + "a/" * 200),
    ("evt.type = open and fd.name pmatch ('/" + "*a" * 30 + "*b')", "fd.name", "/" + "a" * 200),
])
def test_patterns_match_in_linear_time(tmp_path: Path, condition: str, field: str, value: str) -> None:
    """Item 6: exponential regexes, 30-star globs, pmatch on 200 characters: bounded (seconds, not minutes)."""
    result, took = _timed(condition, field, value, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == ""  # none of them match
    assert took < 60, took  # Python's backtracking took 11 s to minutes per event; the automaton microseconds


def test_linear_pattern_agrees_with_full_match_semantics() -> None:
    assert LinearPattern("(a+)+$").fullmatch("a" * 28) and not LinearPattern("(a+)+$").fullmatch("a" * 28 + "b")
    assert LinearPattern("ab", nocase=True).fullmatch("AB")
    assert not LinearPattern("ab").fullmatch("xab") and not LinearPattern("ab").fullmatch("abx")
    assert LinearPattern("").fullmatch("") and LinearPattern("a.b").fullmatch("a\nb")
    assert LinearPattern("é+").fullmatch("éé") and not LinearPattern("a").fullmatch("\udcff")


def test_linear_pattern_is_safe_to_share_between_threads() -> None:
    pattern = LinearPattern("/usr/bin/[^/]*sh")
    results: list[bool] = []

    def scan() -> None:
        results.append(all(pattern.fullmatch("/usr/bin/bash") and not pattern.fullmatch("/usr/bin/x")
                           for _ in range(20_000)))

    threads = [threading.Thread(target=scan) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert results == [True] * 4


@pytest.mark.parametrize("regex", [r"(a)\\1", "(?=a)a", "(?<=a)b", "(?!x)y", "(?>a+)b"])
def test_unboundable_regexes_are_refused_at_load_with_file_line(tmp_path: Path, regex: str) -> None:
    rules = rules_file(tmp_path, f'evt.type = open and proc.cmdline regex "{regex}"')
    check = kubeguard("rules", "check", "--no-default-rules", str(rules), tmp_path=tmp_path)
    assert check.returncode == 1
    lines = error_lines(check)
    assert len(lines) == 1 and f"{rules}:3: rule 'R'" in lines[0] and "regular expression" in lines[0]
    events = tmp_path / "e.jsonl"
    events.write_text(event() + "\n")
    run = replay(tmp_path, events, rules)
    assert run.returncode == 2 and len(error_lines(run)) == 1


def _too_deep_for_one_function(tmp_path: Path) -> Path:
    """Two rules whose conditions compile alone but not as the engine's shared per-type function."""
    condition = "proc.name = a"
    for i in range(49):
        condition = f"(proc.pid = {i} or ({condition} and proc.ppid = {i}))"
    path = tmp_path / "deep.yaml"
    path.write_text("".join(RULE.format(name=name, condition=json.dumps("evt.type = open and " + condition),
                                        output="hit", priority="WARNING") for name in ("R1", "R2")))
    return path


def test_what_rules_check_accepts_the_engine_loads(tmp_path: Path) -> None:
    """Item 7: a condition `rules check` accepted used to raise in replay/agent; now both agree and it runs."""
    rules = _too_deep_for_one_function(tmp_path)
    check = kubeguard("rules", "check", "--no-default-rules", str(rules), tmp_path=tmp_path)
    assert check.returncode == 0 and error_lines(check) == []
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps({"evt.type": "open", "proc.pid": 48}) + "\n")
    run = replay(tmp_path, events, rules)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(json.loads(line)["rule"] for line in run.stdout.splitlines()) == ["R1", "R2"]


@pytest.mark.parametrize("field", ["proc.aname[0x10]", "proc.aname[1e3]", "proc.aname[²]",
                                   "proc.aname[" + "9" * 50 + "]"])
def test_output_field_with_a_bad_index_is_a_load_problem(tmp_path: Path, field: str) -> None:
    """Item 7: `%proc.aname[0x10]` in an output: file:line problem in check, list, replay; no traceback."""
    rules = rules_file(tmp_path, output=f"x %{field}")
    check = kubeguard("rules", "check", "--no-default-rules", str(rules), tmp_path=tmp_path)
    assert check.returncode == 1
    lines = error_lines(check)
    assert len(lines) == 1 and f"{rules}:" in lines[0] and "rule 'R': output:" in lines[0]
    assert "must be a number" in lines[0]
    listed = kubeguard("rules", "list", "--no-default-rules", "--rules", str(rules), tmp_path=tmp_path)
    assert listed.returncode == 2 and len(error_lines(listed)) == 1


def test_huge_priority_names_the_file(tmp_path: Path) -> None:
    """Item 14: a 5,000-digit priority: one line naming the file."""
    rules = rules_file(tmp_path, priority="9" * 5000)
    check = kubeguard("rules", "check", "--no-default-rules", str(rules), tmp_path=tmp_path)
    assert check.returncode == 1
    lines = error_lines(check)
    assert len(lines) == 1 and str(rules) in lines[0] and len(lines[0]) < 300


def test_events_file_without_newline_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """Item 12: a 1 GB line without a newline, then a good line: skipped in chunks under a 1 GiB cap."""
    events = tmp_path / "e.jsonl"
    with events.open("wb") as handle:
        handle.write(b'{"evt.type": "open", "pad": "')
        handle.seek(200 << 20)  # a sparse 200 MiB line: under the 256 MiB skip bound
        handle.write(b'"}\n' + event().encode() + b"\n")
    result = replay(tmp_path, events, rules_file(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{events}:1: line longer than" in result.stderr
    assert len(result.stdout.splitlines()) == 1  # the good line after it still ran


@pytest.mark.parametrize("source", ["/dev/zero", "sparse"])
def test_endless_or_binary_events_file_is_refused(tmp_path: Path, source: str) -> None:
    """Item 12: `replay /dev/zero` and a 1 GB file with no newline: refused after 256 MiB, exit 2, alerts kept."""
    events = Path(source)
    if source == "sparse":
        events = tmp_path / "e.jsonl"
        with events.open("wb") as handle:
            handle.write((event() + "\n").encode())
            handle.truncate(1 << 30)
    start = time.monotonic()
    result = replay(tmp_path, events, rules_file(tmp_path))
    assert time.monotonic() - start < 120
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result)
    assert len(lines) == 1 and "no line end within 256 MiB" in lines[0]
    if source == "sparse":
        assert f"{events}:2:" in lines[0]
        listed = kubeguard("alerts", "--db", str(tmp_path / "a.db"), "-o", "json", tmp_path=tmp_path)
        assert len(listed.stdout.splitlines()) == 1  # the alert found before the refusal was stored


@pytest.mark.parametrize("args", [
    ("rules", "list"),
    ("rules", "list", "-o", "json"),
    ("replay", "{events}", "-o", "json", "--db", "{db}"),
    ("replay", "{events}", "--db", "{db}"),
    ("alerts", "--db", "{db}", "-o", "json"),
    ("alerts", "--db", "{db}"),
    ("scan", "{fixtures}/clusters/rbac-escalation"),
    ("scan", "{fixtures}/clusters/rbac-escalation", "-o", "json"),
    ("paths", "{fixtures}/clusters/rbac-escalation"),
    ("dpi", "--no-store", "{capture}"),
    ("dpi", "--no-store", "{capture}", "-o", "json"),
    ("--version",),
])
def test_full_disk_on_stdout_is_one_line_and_exit_3(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Item 11: `> /dev/full`: one line naming standard output, exit 3 (docs/cli.md), no traceback."""
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(event(**{"evt.time": 1_700_000_000_000_000_000 + i}) for i in range(3000)) + "\n")
    db = tmp_path / "seed.db"
    seed = kubeguard("replay", str(events), "--db", str(db), "--no-default-rules", "--rules", str(rules_file(tmp_path)),
                     "-o", "json", tmp_path=tmp_path)
    assert seed.returncode == 0
    fixtures = Path(__file__).parents[1] / "fixtures"
    capture = tmp_path / "tesla.pcap"
    write_capture(capture)
    filled = [a.format(events=events, db=db, fixtures=fixtures, capture=capture) for a in args]
    if filled[0] == "replay":
        filled += ["--no-default-rules", "--rules", str(rules_file(tmp_path))]
    with open("/dev/full", "w") as full:
        result = kubeguard(*filled, tmp_path=tmp_path, stdout=full)
    stderr = result.stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-2000:]
    assert result.returncode == 3, (result.returncode, stderr[-2000:])
    errors = [line for line in stderr.splitlines() if line.startswith("kubeguard: error:")]
    assert errors == ["kubeguard: error: cannot write to standard output: No space left on device; "
                      "output is incomplete"]


@pytest.mark.parametrize("args", [
    ("scan", "{fixtures}/clusters/hardened", "--exceptions", "{endless}"),
    ("dpi", "--no-store", "--pods", "{endless}", "{capture}"),
    ("scan", "{fixtures}/clusters/hardened", "--exceptions", "{huge}"),
    ("dpi", "--no-store", "--pods", "{huge}", "{capture}"),
])
def test_endless_and_huge_side_files_are_refused_in_bounded_memory(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Item 12: `--pods` / `--exceptions` on /dev/zero or a 1 GB file: one line, exit 2, no MemoryError."""
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(1 << 30)
    capture = tmp_path / "tesla.pcap"
    write_capture(capture)
    fixtures = Path(__file__).parents[1] / "fixtures"
    filled = [a.format(fixtures=fixtures, endless="/dev/zero", huge=huge, capture=capture) for a in args]
    result = kubeguard(*filled, tmp_path=tmp_path, timeout=120)
    lines = error_lines(result)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and "too large" in lines[0]
    assert ("/dev/zero" if "{endless}" in args else str(huge)) in lines[0]
