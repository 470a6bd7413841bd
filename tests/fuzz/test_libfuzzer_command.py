"""libfuzzer_command: a harness's peak RSS is its own, not the peak of the (large) pytest that started it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PARENT = """
import json, resource, subprocess, sys
sys.path.insert(0, sys.argv[1])
from tests.conftest import libfuzzer_command
big = bytearray(400 * 1024 * 1024)
for i in range(0, len(big), 4096):
    big[i] = 1
child = [sys.executable, "-c", "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"]
direct = int(subprocess.run(child, capture_output=True, text=True, check=True).stdout)
wrapped = int(subprocess.run(libfuzzer_command(child), capture_output=True, text=True, check=True).stdout)
print(json.dumps({"direct": direct, "wrapped": wrapped}))
"""


def test_child_peak_rss_does_not_inherit_the_parents() -> None:
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", PARENT, root], capture_output=True, text=True, check=True, timeout=120)
    peaks = json.loads(out.stdout)
    assert peaks["direct"] > 400 * 1024  # KiB: the kernel's carry-over this guards against (vfork + execve)
    assert peaks["wrapped"] < 200 * 1024
