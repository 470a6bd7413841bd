"""The libinjection peer, run inside the bench-only venv (bench/.work/peers).

Usage (by bench scripts, not users): `python libinjection_peer.py ITEMS.json`. ITEMS is a JSON
list of query strings; each is split into parameters, every value URL-decoded and given to
libinjection's SQLi detector (libinjection-python). Prints one JSON object: count, seconds,
flagged indices.
"""

from __future__ import annotations

import json
import sys
import time
from urllib.parse import unquote_plus


def main() -> None:
    import libinjection

    with open(sys.argv[1]) as fh:
        items = json.load(fh)
    flagged = []
    start = time.perf_counter()
    for i, item in enumerate(items):
        for part in item.split("&"):
            value = unquote_plus(part.partition("=")[2] or part)
            if value and libinjection.is_sql_injection(value)["is_sqli"]:
                flagged.append(i)
                break
    seconds = time.perf_counter() - start
    print(json.dumps({"count": len(items), "seconds": seconds, "flagged": flagged}))


if __name__ == "__main__":
    main()
