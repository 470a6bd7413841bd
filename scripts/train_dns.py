"""Rebuild src/kubeguard/net/detect/dns_model.json from ../shared/data/dns (reproducible: fixed seed).

80 % of each file trains, 20 % is held out (seed 20261128). Hand-written benign names of the
shapes cluster traffic really has (cloud load balancers, CDN edge names, Kubernetes service names,
hashed ids) are added as negatives, so the model does not learn "any subdomain is a tunnel" from
a plain set that is mostly bare registered domains. Prints held-out rates.
Run: ``PYTHONPATH=src python scripts/train_dns.py [--data DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
from pathlib import Path

from kubeguard.net.detect.dns import FEATURES, MODEL_PATH, name_features, registered_domain, score_features

REPO = Path(__file__).resolve().parents[1]
SEED = 20261128
HOLDOUT = 0.2
TARGET_FP = 0.0005

BENIGN_NAMES = [
    "kubernetes.default.svc.cluster.local.", "kube-dns.kube-system.svc.cluster.local.",
    "payments-api-v2.production.svc.cluster.local.", "www.google.com.", "mail.google.com.",
    "s3.us-east-1.amazonaws.com.", "my-bucket-logs-2024.s3.eu-west-1.amazonaws.com.",
    "internal-my-elb-1234567890.us-east-1.elb.amazonaws.com.", "d111111abcdef8.cloudfront.net.",
    "e1234.dscb.akamaiedge.net.", "a23-45-67-89.deploy.static.akamaitechnologies.com.",
    "ec2-54-210-12-34.compute-1.amazonaws.com.", "ip-10-0-12-34.ec2.internal.",
    "abcdef0123456789.execute-api.us-west-2.amazonaws.com.", "123456789012.dkr.ecr.us-east-1.amazonaws.com.",
    "storage.googleapis.com.", "gke-cluster-1-default-pool-1a2b3c4d-x7yz.c.my-project.internal.",
    "login.microsoftonline.com.", "myaccount.blob.core.windows.net.", "api.github.com.",
    "registry-1.docker.io.", "production.cloudflare.docker.com.", "pypi.org.", "files.pythonhosted.org.",
    "deb.debian.org.", "security.debian.org.", "r3.o.lencr.org.", "ocsp.digicert.com.",
    "_ldap._tcp.dc._msdcs.corp.example.com.", "_sip._tls.example.com.", "time.cloudflare.com.",
    "5f2b8c3e-4d1a-4b6f-9e2c-7a8d9c0b1e2f.sessions.example.net.", "clients6.google.com.",
    "r4---sn-4g5e6nsz.googlevideo.com.", "rr1---sn-uxaxjvhxbt2u-j5pz.googlevideo.com.",
]


def load(path: Path) -> list[tuple[int, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [(int(row["label"]), row["qname"]) for row in csv.DictReader(fh)]


def split(data: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(train rows, held-out rows) of (label, qname): the fixed-seed split."""
    rows = [r for f in ("iodine_names.csv", "dns2tcp_names.csv", "plain_names.csv") for r in load(data / f)]
    rng = random.Random(SEED)
    rng.shuffle(rows)
    cut = int(len(rows) * (1 - HOLDOUT))
    return rows[:cut], rows[cut:]


def synthetic_benign(rng: random.Random, count: int = 3000) -> list[str]:
    """Benign subdomain shapes: service names, regional cloud hosts, CDN shards, hashed ids."""
    words = [
        "api", "web", "cdn", "static", "img", "auth", "login", "shop", "pay", "user", "data", "edge", "cache",
        "node", "pool", "prod", "stage", "svc", "internal", "east", "west", "central", "mail", "app", "mobile",
        "metrics", "logs", "events", "search", "media"
    ]
    zones = ("example.com", "amazonaws.com", "cloudfront.net", "akamaiedge.net", "googleapis.com",
             "azurewebsites.net", "cluster.local", "example.co.uk", "fastly.net", "herokuapp.com")
    out = []
    for _ in range(count):
        parts = [rng.choice(words) + rng.choice(("", "-" + rng.choice(words), str(rng.randint(1, 99))))
                 for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            parts.insert(0, "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice((8, 12, 16, 32)))))
        if rng.random() < 0.2:
            parts.insert(0, "ip-" + "-".join(str(rng.randint(0, 255)) for _ in range(4)))
        out.append(".".join(parts) + "." + rng.choice(zones) + ".")
    return out


def train(pos: list[list[float]], neg: list[list[float]], epochs: int = 30, lr: float = 0.5):
    rng = random.Random(SEED)
    data = [(f, 1.0, 1.0) for f in pos] + [(f, 0.0, 4.0) for f in neg]
    w = [0.0] * len(FEATURES)
    bias = 0.0
    for epoch in range(epochs):
        rng.shuffle(data)
        rate = lr / (1 + epoch * 0.3)
        for feats, y, weight in data:
            z = bias + sum(a * b for a, b in zip(w, feats, strict=True))
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            g = (p - y) * weight * rate
            bias -= g
            w = [a - g * b for a, b in zip(w, feats, strict=True)]
    return bias, w


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "dns")
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    args = ap.parse_args()
    train_rows, test_rows = split(args.data)
    extra = BENIGN_NAMES + synthetic_benign(random.Random(SEED))
    pos = [name_features(q) for y, q in train_rows if y == 1 and registered_domain(q)[0]]
    neg = [name_features(q) for y, q in train_rows if y == 0] + [name_features(q) for q in extra]
    bias, w = train(pos, neg)
    neg_scores = sorted((score_features(f, bias, w) for f in neg), reverse=True)
    threshold = max(0.5, neg_scores[int(TARGET_FP * len(neg_scores))] + 1e-4)
    model = {"version": 1, "seed": SEED, "bias": round(bias, 4), "threshold": round(threshold, 4),
             "weights": {name: round(v, 4) for name, v in zip(FEATURES, w, strict=True)}}
    args.out.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")

    def rate(items: list[str]) -> float:
        return sum(score_features(name_features(q), bias, w) >= threshold and bool(registered_domain(q)[0])
                   for q in items) / max(1, len(items))

    for label, part in (("train", train_rows), ("held-out", test_rows)):
        print(f"{label}: tunnels detected {rate([q for y, q in part if y == 1]):.4%}, "
              f"plain flagged {rate([q for y, q in part if y == 0]):.4%}")
    print(f"synthetic benign flagged {rate(extra):.4%}; threshold {threshold:.4f}")
    print(json.dumps(model["weights"]))
    for y, q in test_rows:
        hit = rate([q]) > 0
        if hit != bool(y):
            print("WRONG", y, q[:100], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
