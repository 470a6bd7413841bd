"""The alert store: durable writes, filters, findings per scan."""

import os
import subprocess
import sys

from kubeguard.model import Alert, Finding, Resource, Severity, Workload
from kubeguard.store import AlertQuery, AlertStore


def make_alert(rule: str, priority: str, ns: str, time: str) -> Alert:
    return Alert(rule=rule, priority=priority, output=f"{rule} in {ns}", time=time,
                 output_fields={"k8s.ns.name": ns}, tags=["T1059"], workload=Workload(namespace=ns))


def test_add_and_filter(tmp_path) -> None:
    with AlertStore(tmp_path / "a.db") as store:
        store.add([
            make_alert("A", "Warning", "prod", "2026-01-01T00:00:00.000000000Z"),
            make_alert("B", "Critical", "dev", "2026-01-02T00:00:00.000000000Z"),
            make_alert("A", "Notice", "dev", "2026-01-03T00:00:00.000000000Z"),
        ])
        assert store.count_alerts() == 3
        assert [a.rule for a in store.alerts(AlertQuery(rule="A"))] == ["A", "A"]
        assert [a.rule for a in store.alerts(AlertQuery(namespace="dev"))] == ["B", "A"]
        assert [a.priority for a in store.alerts(AlertQuery(min_severity=Severity.MEDIUM))] == ["Warning", "Critical"]
        assert [a.time[:10] for a in store.alerts(AlertQuery(since="2026-01-02"))] == ["2026-01-02", "2026-01-03"]
        assert store.alerts(AlertQuery(limit=1)).__next__().rule == "A"
    assert oct(os.stat(tmp_path / "a.db").st_mode & 0o777) == "0o600"


def test_alerts_survive_a_killed_writer(tmp_path) -> None:
    """A process that returns from add() and is then SIGKILLed loses nothing."""
    db = tmp_path / "crash.db"
    code = (
        "import os, signal\n"
        "from kubeguard.model import Alert\n"
        "from kubeguard.store import AlertStore\n"
        f"s = AlertStore({str(db)!r})\n"
        "s.add([Alert(rule='r%d' % i, priority='Warning', output='x') for i in range(100)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -9
    with AlertStore(db) as store:
        assert store.count_alerts() == 100


def test_findings_per_scan(tmp_path) -> None:
    finding = Finding(check="privileged", category="workloads", title="t", severity=Severity.HIGH,
                      resource=Resource("Pod", "p", "ns"), evidence="e", remediation="r")
    with AlertStore(tmp_path / "f.db") as store:
        store.add_findings("scan-1", "2026-01-01T00:00:00Z", [finding])
        store.add_findings("scan-2", "2026-01-02T00:00:00Z", [finding, finding])
        assert len(store.findings()) == 2
        assert store.findings("scan-1")[0]["check"] == "privileged"


def test_console_database_closes_the_connections_of_ended_threads(tmp_path) -> None:
    """A web server's worker threads come and go; each used its own connection. They must not pile up (the
    suite once held 1,100 open console.db files, and select()-based clients later failed past fd 1024)."""
    import gc
    import threading

    from kubeguard.store.sqldb import Database

    def db_files() -> int:
        names = [os.path.join("/proc/self/fd", fd) for fd in os.listdir("/proc/self/fd")]
        return sum("console.db" in os.readlink(n) for n in names if os.path.exists(n))

    before = db_files()
    db = Database(str(tmp_path / "console.db"))
    for _ in range(40):
        worker = threading.Thread(target=lambda d=db: d.connection().execute("SELECT 1"))
        worker.start()
        worker.join()
    assert db_files() - before <= 6  # the main thread's and at most the last worker's (database + WAL + shm)
    assert db.open_connections() <= 2
    del db
    gc.collect()
    assert db_files() == before
