"""SQL injection scoring of one value: tokenizer features through a small shipped linear model.

`sqli_score(value)` is the model's probability that `value`, put into a SQL query by the
application, changes the query's shape. The model (``sqli_model.json``, a logistic regression
over `kubeguard.net.detect.sqltok.features`) is rebuilt by ``scripts/train_sqli.py`` from
../shared/data/sqli; only the weights ship, never the data. Values that cannot carry SQL syntax
(plain words, numbers, ids) are skipped before any tokenizing, so benign traffic costs little.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache, lru_cache
from pathlib import Path

from kubeguard.net.detect.decode import normalize
from kubeguard.net.detect.sqltok import CONTEXTS, context_features, context_types

MODEL_PATH = Path(__file__).with_name("sqli_model.json")
# A value made only of these can not change a query's shape: skipped without tokenizing.
_INERT = re.compile(r"[\w.~:]*(?:-[\w.~:]+)*")
# Hand-written grammar layer: token-type shapes that are injection whatever the model says.
# A stacked query after a number/string/bracket (`1; DROP TABLE t`), and UNION [ALL] SELECT
# followed by a column list.
_SHAPES = re.compile(r"(?:^|[nsS)c]);E[^;]|U[k]?E[nfk(vsS]")


@cache
def load_model(path: Path = MODEL_PATH) -> tuple[float, float, dict[str, float]]:
    """(bias, threshold, weights) from the shipped model file."""
    data = json.loads(path.read_text())
    return float(data["bias"]), float(data["threshold"]), {k: float(v) for k, v in data["weights"].items()}


def is_inert(value: str) -> bool:
    """True when `value` holds no character SQL syntax needs (fast path for benign values)."""
    return _INERT.fullmatch(value) is not None


def raw_score(contexts: list[set[str]], bias: float, weights: dict[str, float]) -> float:
    """Probability under a (bias, weights) model: the highest over the value's contexts."""
    z = max(bias + sum(weights.get(f, 0.0) for f in feats) for feats in contexts)
    if z < -30:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z)) if z < 30 else 1.0


def grammar_match(text: str) -> str | None:
    """The fingerprint (token types) of the first context whose shape is always injection, or None."""
    for ctx in CONTEXTS:
        types = context_types(text, ctx)
        if _SHAPES.search(types):
            return types
    return None


def sqli_score(value: str, decoded: bool = False) -> float:
    """Probability that `value` is SQL injection (0 for inert values); decodes unless `decoded`."""
    text = value if decoded else normalize(value)
    text = text.strip()
    if not text or is_inert(text):
        return 0.0
    return _cached_score(text) if len(text) <= CACHE_VALUE_LEN else _score(text)


CACHE_VALUE_LEN = 512  # values up to this long are cached: benign traffic repeats them (user agents, ids)


def _score(text: str) -> float:
    if grammar_match(text):
        return 1.0
    bias, _, weights = load_model()
    return raw_score(context_features(text), bias, weights)


_cached_score = lru_cache(maxsize=8192)(_score)


def is_sqli(value: str, decoded: bool = False) -> bool:
    """`sqli_score` above the model's calibrated threshold."""
    return sqli_score(value, decoded) >= load_model()[1]


def query_values(query: str) -> list[str]:
    """Decoded values (and unusual keys) of an ``a=1&b=2`` string, the units the model scores."""
    out: list[str] = []
    for part in query.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            out.append(normalize(key, plus=True))
            continue
        if not is_inert(key):
            out.append(normalize(key, plus=True))
        out.append(normalize(value, plus=True))
    return out
