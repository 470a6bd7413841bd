"""Hostile input for the alert store and `kubeguard alerts` / `replay` storing (#18 items 10, 15, 16)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

from tests.hostile.hostilerun import error_lines, kubeguard, popen

from kubeguard.model import Alert
from kubeguard.store import AlertStore

RULE = """- rule: Any open
  desc: every open
  condition: evt.type = open
  output: "open %fd.name by %proc.name"
  priority: WARNING
"""


def write_events(path: Path, count: int) -> None:
    with path.open("w") as handle:
        for i in range(count):
            handle.write(json.dumps({"evt.type": "open", "evt.time": 1_700_000_000_000_000_000 + i,
                                     "proc.name": "cat", "fd.name": f"/etc/f{i}"}) + "\n")


def test_stable_ids_make_a_rerun_after_kill_9_idempotent(tmp_path: Path) -> None:
    """Item 15: kill -9 mid-replay, re-run: the stored count equals a clean run's, exactly."""
    rules = tmp_path / "r.yaml"
    rules.write_text(RULE)
    events = tmp_path / "e.jsonl"
    write_events(events, 20_000)
    common = ("--no-default-rules", "--rules", str(rules), "-o", "json")
    killed_db, clean_db = tmp_path / "killed.db", tmp_path / "clean.db"
    proc = popen("replay", str(events), *common, "--db", str(killed_db), tmp_path=tmp_path,
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    printed = 0
    for _ in proc.stdout:
        printed += 1
        if printed >= 1500:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(killed_db) as db:
        stored_at_kill = db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    assert printed <= stored_at_kill < 20_000  # every printed alert was stored before it was printed
    rerun = kubeguard("replay", str(events), *common, "--db", str(killed_db), tmp_path=tmp_path)
    clean = kubeguard("replay", str(events), *common, "--db", str(clean_db), tmp_path=tmp_path)
    assert rerun.returncode == clean.returncode == 0, rerun.stderr
    counts = []
    for path in (killed_db, clean_db):
        with sqlite3.connect(path) as db:
            counts.append(db.execute("SELECT COUNT(*), COUNT(DISTINCT uuid) FROM alerts").fetchone())
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert counts[0] == counts[1] == (20_000, 20_000)


def test_store_add_skips_ids_already_stored(tmp_path: Path) -> None:
    alert = Alert(rule="R", priority="Warning", output="o", uuid="fixed-id")
    with AlertStore(tmp_path / "a.db") as store:
        assert store.add([alert]) == 1
        assert store.add([alert, Alert(rule="R", priority="Warning", output="o")]) == 1
        assert store.count_alerts() == 2
        assert {a.uuid for a in store.alerts()} >= {"fixed-id"}


def _store_with_bad_rows(path: Path) -> None:
    with AlertStore(path) as store:
        store.add([Alert(rule=f"R{i}", priority="Warning", output="o", time=f"2026-01-0{i + 1}T00:00:00Z")
                   for i in range(3)])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alerts SET output_fields = '{not json' WHERE rule = 'R0'")
        db.execute("UPDATE alerts SET tags = '\"a string\"' WHERE rule = 'R1'")
        db.execute("INSERT INTO alerts (uuid, time, rule, priority, severity, source, hostname, output,"
                   " output_fields, tags, mitre) VALUES ('x', '2026-01-09', 'R9', 'Bogus', 3, 's', 'h', 'o',"
                   " '{}', '[]', '[]')")


def test_alerts_skips_unreadable_rows_and_lists_the_rest(tmp_path: Path) -> None:
    """Item 10: bad JSON in output_fields, a non-list tags value, an unknown priority: skipped, counted."""
    db = tmp_path / "a.db"
    _store_with_bad_rows(db)
    result = kubeguard("alerts", "--db", str(db), "-o", "json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["rule"] for line in result.stdout.splitlines()] == ["R2"]
    assert "3 stored alert row(s) could not be read and were skipped" in result.stderr
    assert error_lines(result) == []


def test_alerts_since_beyond_the_calendar_means_everything(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    with AlertStore(db) as store:
        store.add([Alert(rule="R", priority="Warning", output="o", time="2026-01-01T00:00:00Z")])
    for since in ("99999999999d", "99999999999999999999999s"):
        result = kubeguard("alerts", "--db", str(db), "--since", since, "-o", "json", tmp_path=tmp_path)
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 1
    bad = kubeguard("alerts", "--db", str(db), "--since", "99999-01-01", tmp_path=tmp_path)
    assert bad.returncode == 2 and len(error_lines(bad)) == 1 and "--since" in error_lines(bad)[0]


def test_a_file_that_is_not_a_kubeguard_store_is_refused_and_unchanged(tmp_path: Path) -> None:
    """Item 10: an unrelated SQLite file, an empty file, a text file: refused, bytes and mode untouched."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE contacts (name TEXT)")
        db.execute("INSERT INTO contacts VALUES ('ann')")
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 50)
    for path in (other, empty, text):
        path.chmod(0o644)
        before = path.read_bytes()
        for args in (("alerts", "--db", str(path)), ("replay", "/dev/null", "--db", str(path))):
            result = kubeguard(*args, tmp_path=tmp_path)
            lines = error_lines(result)
            assert result.returncode == 1, result.stderr
            assert len(lines) == 1 and "not a kubeguard alert store" in lines[0] and str(path) in lines[0]
        assert path.read_bytes() == before
        assert path.stat().st_mode & 0o777 == 0o644
        assert not Path(f"{path}-wal").exists()


def test_new_store_is_private_and_stamped(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "new.db"
    with AlertStore(db):
        pass
    assert db.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x6B677264
    assert [p.name for p in db.parent.iterdir() if p.name.endswith(".new")] == []


def test_store_written_before_the_stamp_is_still_read(tmp_path: Path) -> None:
    """Stores created before the application_id stamp (same tables, no uuid) are recognised and migrated."""
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, rule TEXT NOT NULL,"
            " priority TEXT NOT NULL, severity INTEGER NOT NULL, source TEXT NOT NULL, hostname TEXT NOT NULL,"
            " output TEXT NOT NULL, output_fields TEXT NOT NULL, tags TEXT NOT NULL, mitre TEXT NOT NULL,"
            " namespace TEXT NOT NULL DEFAULT '', pod TEXT NOT NULL DEFAULT '', container TEXT NOT NULL DEFAULT '',"
            " container_id TEXT NOT NULL DEFAULT '', image TEXT NOT NULL DEFAULT '', node TEXT NOT NULL DEFAULT '');"
            "CREATE TABLE findings (id INTEGER PRIMARY KEY AUTOINCREMENT, scan TEXT NOT NULL, time TEXT NOT NULL,"
            " finding_id TEXT NOT NULL, check_id TEXT NOT NULL, category TEXT NOT NULL, severity INTEGER NOT NULL,"
            " namespace TEXT NOT NULL DEFAULT '', data TEXT NOT NULL);"
            "INSERT INTO alerts (time, rule, priority, severity, source, hostname, output, output_fields, tags,"
            " mitre) VALUES ('2026-01-01', 'Old', 'Warning', 3, 'syscall', 'h', 'o', '{}', '[]', '[]');")
    with AlertStore(db) as store:
        assert [a.rule for a in store.alerts()] == ["Old"]
        store.add([Alert(rule="New", priority="Warning", output="o", uuid="u1")] * 2)
        assert store.count_alerts() == 2


def test_db_is_the_store_flag_everywhere_store_a_hidden_alias(tmp_path: Path) -> None:
    """Item 16: `--db` in replay, alerts and agent; `--store DB` still works but is not in --help."""
    for command in ("replay", "alerts", "agent"):
        result = kubeguard(command, "--help", tmp_path=tmp_path)
        assert "--db" in result.stdout and "--store " not in result.stdout, (command, result.stdout)
    db = tmp_path / "a.db"
    with AlertStore(db) as store:
        store.add([Alert(rule="R", priority="Warning", output="o")])
    result = kubeguard("alerts", "--store", str(db), "-o", "json", tmp_path=tmp_path)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
