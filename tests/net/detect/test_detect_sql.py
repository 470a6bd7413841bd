"""SQL protocol detections: injection marks in wire queries, access-denied bursts."""

from __future__ import annotations

import pytest

from kubeguard.net.detect.sql import SqlAuthMonitor, SqlAuthThresholds, inspect_sql_query

INJECTED = [
    "SELECT * FROM users WHERE name = 'admin' OR '1'='1'",
    "SELECT * FROM users WHERE name = 'x' OR 1=1 -- ' AND password = 'y'",
    "SELECT id FROM items WHERE id = 1 UNION SELECT NULL, NULL, table_name FROM information_schema.tables",
    "SELECT id FROM items WHERE id = 1; DROP TABLE users",
    "SELECT id FROM items WHERE id = 1 AND SLEEP(5)",
    "SELECT load_file('/etc/passwd')",
    "COPY t FROM PROGRAM 'id'",
    "SELECT 1 FROM dual WHERE 1=1 UNION SELECT @@version",
]
NORMAL = [
    "SELECT * FROM users WHERE id = 42",
    "SELECT name FROM customers WHERE name = 'O''Brien' AND active = 1",
    "INSERT INTO orders (id, note) VALUES (1, 'select your size -- or not'); INSERT INTO log VALUES (2)",
    "SELECT a FROM t -- fetch everything\nWHERE b = 1",
    "UPDATE accounts SET balance = balance - 10 WHERE id = 7 AND version = 3",
    "SELECT count(*) FROM events WHERE kind IN ('a', 'b') OR kind IS NULL",
]


@pytest.mark.parametrize("query", INJECTED)
def test_injected_query(query: str) -> None:
    found = inspect_sql_query(query)
    assert [d.rule for d in found] == ["SQL injection in query"]
    assert found[0].mitre == ("T1190",) and found[0].fields["sql.reasons"]


@pytest.mark.parametrize("query", NORMAL)
def test_normal_query(query: str) -> None:
    assert inspect_sql_query(query) == []


def test_access_denied_burst_once_per_cooldown_and_only_failures_count() -> None:
    mon = SqlAuthMonitor(SqlAuthThresholds(failures=5, window=10, cooldown=100))
    key = ("10.0.0.7", "10.0.0.9", 3306)
    assert mon.observe(key, False, 0.0) == []
    hits = [mon.observe(key, True, t * 0.5) for t in range(4)]
    assert all(h == [] for h in hits)
    fifth = mon.observe(key, True, 2.5)
    assert [d.rule for d in fifth] == ["SQL access-denied burst"] and fifth[0].mitre == ("T1110",)
    assert mon.observe(key, True, 3.0) == []  # cooldown
    assert mon.observe(("other",), True, 3.0) == []


def test_access_denied_window_expires() -> None:
    mon = SqlAuthMonitor(SqlAuthThresholds(failures=3, window=1.0))
    assert all(mon.observe("k", True, t * 2.0) == [] for t in range(10))  # slower than 3 per second


def test_auth_monitor_memory_bounded() -> None:
    mon = SqlAuthMonitor(SqlAuthThresholds(max_keys=100))
    for i in range(5000):
        mon.observe(f"key{i}", True, float(i))
    assert len(mon.failures) <= 100
