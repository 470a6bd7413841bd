"""CentralStore.add_alerts batching: every alert stored once whatever mix of new, resent and repeated ids a batch
carries, on SQLite and on a real PostgreSQL (where a batch goes straight in by COPY unless an id is already there,
then through a temp table and ON CONFLICT DO NOTHING), also with two writers racing over the same ids in opposite
orders (no deadlock: rows go in in id order)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest

from kubeguard.store.central import CentralStore
from kubeguard.store.sqldb import Database

RECEIVED = "2026-12-04T16:00:00Z"


def rows(ids: list[str], node: str = "node-a") -> list[tuple]:
    return [CentralStore.alert_row({"uuid": i, "rule": "Terminal shell in container", "priority": "Notice",
                                    "time": f"2026-12-04T16:00:{n % 60:02d}Z", "output": f"shell {i}",
                                    "output_fields": {"k8s.ns.name": "shop", "k8s.pod.name": "web-0",
                                                      "proc.cmdline": "bash -i\x00"}}, node, RECEIVED)
            for n, i in enumerate(ids)]


def new_ids(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> CentralStore:
    if request.param == "sqlite":
        return CentralStore(Database(str(tmp_path / "console.db")))
    new_database: Callable[[], str] = request.getfixturevalue("postgres")
    return CentralStore(Database(new_database()))


def stored_ids(store: CentralStore) -> list[str]:
    return store.uuids()


def test_mixed_batches_store_each_alert_exactly_once(store: CentralStore) -> None:
    first, second, third = new_ids(1000), new_ids(1000), new_ids(500)
    assert store.add_alerts(rows(first)) == 1000  # all new: the fast path
    assert store.add_alerts(rows(first)) == 0  # a resent batch
    assert store.add_alerts(rows(first[:300] + second)) == 1000  # partly resent
    assert store.add_alerts(rows(third + third[:100])) == 500  # an id twice in one batch
    assert store.add_alerts(rows(new_ids(1) + first[-1:])) == 1  # one old id among new ones
    assert store.add_alerts(rows(third[-1:] + new_ids(1))) == 1  # the old id first
    ids = stored_ids(store)
    assert len(ids) == len(set(ids)) == 2502
    assert set(first) | set(second) | set(third) <= set(ids)
    stored = store.alert(second[0])
    assert stored is not None and stored["output"] == f"shell {second[0]}" and stored["workload"] == "web"
    assert stored["output_fields"]["proc.cmdline"] == "bash -i\x00"  # kept (escaped inside the JSON text)


def test_two_writers_racing_over_the_same_ids_store_each_once(store: CentralStore) -> None:
    shared = new_ids(4000)
    own = {"a": new_ids(2000), "b": new_ids(2000)}
    counts: dict[str, int] = {}
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            mine = shared + own[name]
            if name == "b":
                mine = list(reversed(mine))
            counts[name] = sum(store.add_alerts(rows(mine[i:i + 500], f"node-{name}"))
                               for i in range(0, len(mine), 500))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = stored_ids(store)
    assert len(ids) == len(set(ids)) == 8000 and set(ids) == set(shared) | set(own["a"]) | set(own["b"])
    assert counts["a"] + counts["b"] == 8000  # what the writers were told was new adds up: none lost, none twice
