"""The libmodsecurity + OWASP CRS peer, run inside the bench-only venv (bench/.work/peers).

Usage (by bench scripts, not users): `python crs_peer.py REQUESTS.jsonl [PARANOIA]`. Loads CRS
(Debian's modsecurity-crs) at the paranoia level given (default 1), inspects each JSON-line request
through the ModSecurity transaction API, and prints one JSON object: count, seconds, flagged indices,
the CRS version and the paranoia level CRS ran at. A request's body is sent with its `content_type`
(default application/json); JSON bodies go through ModSecurity's JSON processor, as the
`modsecurity.conf-recommended` rule 200001 that every ModSecurity install ships sets up.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

CRS_SETUP = "/etc/modsecurity/crs/crs-setup.conf"
CRS_RULES = "/usr/share/modsecurity-crs/rules"
SKIP = ("REQUEST-910-",)  # IP reputation needs GeoIP, which the wheel is built without


def main() -> None:
    from libmodsecurity import ModSecurity, RulesSet, Transaction

    path = sys.argv[1]
    paranoia = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    ms = ModSecurity()
    ms.set_log_callback(lambda *_args: None)  # the peer's per-rule log lines are not measured
    rules = RulesSet()
    text = (f"SecRuleEngine On\nSecRequestBodyAccess On\nSecResponseBodyAccess Off\n"
            f"Include {CRS_SETUP}\n"
            f'SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={paranoia}"\n'
            'SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,'
            'pass,nolog,ctl:requestBodyProcessor=JSON"\n'
            'SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\\+|/)|text/)xml" "id:200000,phase:1,'
            't:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"\n'
            + "".join(f"Include {f}\n" for f in sorted(glob.glob(f"{CRS_RULES}/*.conf"))
                      if not os.path.basename(f).startswith(SKIP)))
    if rules.load(text) < 0:
        print(json.dumps({"error": rules.get_parser_error()}))
        sys.exit(1)
    with open(path) as fh:
        requests = [json.loads(line) for line in fh]
    flagged = []
    start = time.perf_counter()
    for i, req in enumerate(requests):
        t = Transaction(ms, rules)
        t.process_connection("10.244.1.5", 40000, "10.244.2.7", 8080)
        t.process_uri(req["uri"], req["method"], "1.1")
        t.add_request_header("Host", req.get("host", "svc"))
        t.add_request_header("User-Agent", req.get("agent", "curl/8"))
        t.add_request_header("Accept", "*/*")
        body = req.get("body", "").encode("latin-1")
        if body:
            t.add_request_header("Content-Type", req.get("content_type") or "application/json")
            t.add_request_header("Content-Length", str(len(body)))
        t.process_request_headers()
        if body:
            t.append_request_body(body)
        t.process_request_body()
        intervention = t.intervention()
        if intervention is not None and intervention.disruptive:
            flagged.append(i)
        t.process_logging()
    seconds = time.perf_counter() - start
    print(json.dumps({"count": len(requests), "seconds": seconds, "flagged": flagged, "crs": crs_version(),
                      "paranoia": paranoia}))


def crs_version() -> str:
    """The CRS release the rules say they are (REQUEST-901's ver: field), e.g. 'OWASP_CRS/3.3.4'."""
    for name in sorted(glob.glob(f"{CRS_RULES}/REQUEST-901-*.conf")):
        with open(name) as fh:
            for line in fh:
                if "ver:'" in line:
                    return line.split("ver:'", 1)[1].split("'", 1)[0]
    return "unknown"


if __name__ == "__main__":
    main()
