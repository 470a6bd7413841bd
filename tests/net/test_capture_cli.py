"""`kubeguard capture` input errors: one line, exit 2, no traceback, nothing captured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.net.flowlab import pods_json


def capture(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeguard", "capture", *args], capture_output=True, text=True,
                          timeout=120)


def test_bad_flags(tmp_path: Path) -> None:
    import json

    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps(pods_json()))
    out = str(tmp_path / "x.pcapng")
    for args, text in ((("--pod", "shop/web", "--ring", "2"), "--ring N and --max-size MB go together"),
                       (("--pod", "web"), "expected NAMESPACE/POD"),
                       (("--pod", "shop/nope"), "no such pod in the pods map")):
        done = capture(*args, "--pods", str(pods), "-w", out)
        assert done.returncode == 2, (args, done.stderr)
        assert text in done.stderr and "Traceback" not in done.stderr
    assert not Path(out).exists()
