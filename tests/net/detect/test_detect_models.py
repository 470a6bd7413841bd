"""The shipped models against ../shared/data: held-out floors, and reproducible from their scripts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tests.conftest import REPO, need_shared_data

from kubeguard.net.detect import dns, sqli

pytestmark = pytest.mark.shared_data


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flagged(item: str) -> bool:
    return any(sqli.is_sqli(v, decoded=True) for v in sqli.query_values(item))


def test_sqli_held_out_rates() -> None:
    data = need_shared_data("sqli")
    _, a_test, _, b_test = script("train_sqli").split(data)
    detected = sum(map(flagged, a_test)) / len(a_test)
    false_pos = sum(map(flagged, b_test)) / len(b_test)
    assert len(a_test) == 4000 and len(b_test) == 1250
    assert detected >= 0.99, f"held-out SQLi detection {detected:.2%}"
    assert false_pos <= 0.005, f"held-out benign flagged {false_pos:.2%}"


def test_dns_held_out_rates() -> None:
    data = need_shared_data("dns")
    _, test_rows = script("train_dns").split(data)
    tunnels = [q for y, q in test_rows if y == 1]
    plain = [q for y, q in test_rows if y == 0]
    detected = sum(map(dns.is_tunnel_name, tunnels)) / len(tunnels)
    false_pos = sum(map(dns.is_tunnel_name, plain)) / len(plain)
    assert detected >= 0.99, f"held-out tunnel detection {detected:.2%}"
    assert false_pos <= 0.001, f"held-out plain flagged {false_pos:.2%}"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "model", "data"),
                         [("train_sqli", sqli.MODEL_PATH, "sqli"), ("train_dns", dns.MODEL_PATH, "dns")])
def test_models_rebuild_identically(name: str, model: Path, data: str, tmp_path: Path) -> None:
    source = need_shared_data(data)
    out = tmp_path / model.name
    subprocess.run([sys.executable, str(REPO / "scripts" / f"{name}.py"), "--data", str(source), "--out", str(out)],
                   check=True,
                   capture_output=True, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert json.loads(out.read_text()) == json.loads(model.read_text())
    assert model.stat().st_size < 300_000
