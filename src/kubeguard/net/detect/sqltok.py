"""A libinjection-style SQL tokenizer and the features the SQL injection model scores.

The tokenizer turns a value (a query parameter, a cookie, a JSON string, a query on the wire)
into a short sequence of typed tokens, the way libinjection does: strings, numbers, keywords,
functions, logic operators, operators, comments, brackets. Injection is a *shape* (a closed quote
followed by a logic operator and a tautology, a UNION SELECT, a stacked query, a function call
on a number) more than a word, so the features are n-grams of token types plus the SQL words
seen. Inline ``/* */`` comments are folded into whitespace (the classic evasion); MySQL
executable comments (``/*!50000select*/``) are opened.

Like libinjection, every value is read in three contexts: as is, as if it followed an opening
single quote, and as if it followed an opening double quote, because the application puts the
value *inside* its own query and we do not know where.
"""

from __future__ import annotations

import re

MAX_VALUE = 4096  # characters of one value that are tokenized (bounded work per value)
MAX_TOKENS = 64  # tokens kept per context

# Token types (one character each, as libinjection does).
STRING = "s"  # closed quoted string
OPEN_STRING = "S"  # quote that never closes: runs to the end
NUMBER = "n"
KEYWORD = "k"
UNION = "U"
STATEMENT = "E"  # select, insert, update, delete, drop, ...
FUNCTION = "f"
LOGIC = "&"  # and, or, xor, &&, ||
OPERATOR = "o"
COMPARE = "="  # = < > <= >= <> != like rlike regexp between in is
COMMENT = "c"  # --, #, unclosed /*: the end of the query is thrown away
LPAREN = "("
RPAREN = ")"
COMMA = ","
SEMICOLON = ";"
VARIABLE = "v"
BAREWORD = "b"
BACKTICK = "t"
OTHER = "x"

STATEMENTS = frozenset(
    [
        "select", "insert", "update", "delete", "drop", "create", "alter", "truncate", "replace", "exec", "execute",
        "declare", "call", "shutdown", "waitfor", "grant", "revoke", "merge", "rename", "handler", "load_file",
        "into", "outfile", "dumpfile"
    ]
)
KEYWORDS = frozenset(
    [
        "from", "where", "group", "by", "order", "having", "limit", "offset", "procedure", "as", "case", "when",
        "then", "else", "end", "null", "not", "all", "distinct", "top", "join", "inner", "outer", "left", "right",
        "on", "using", "values", "set", "table", "database", "schema", "column", "information_schema", "sysobjects",
        "syscolumns", "pg_sleep", "dual", "asc", "desc", "exists", "any", "collate", "cast", "convert", "char",
        "varchar", "nvarchar", "int", "integer", "binary", "true", "false", "with", "delay", "sounds", "elt",
        "mode", "share", "lock", "for", "rownum", "connect", "level"
    ]
)
LOGIC_WORDS = frozenset(["and", "or", "xor", "div", "mod"])
COMPARE_WORDS = frozenset(["like", "rlike", "regexp", "between", "in", "is", "glob", "match", "against", "similar"])
FUNCTIONS = frozenset(
    [
        "abs", "ascii", "benchmark", "bin", "bit_length", "cast", "ceil", "char", "char_length", "chr", "coalesce",
        "concat", "concat_ws", "conv", "convert", "count", "cot", "crc32", "current_user", "database", "db_name",
        "dbms_pipe", "decode", "elt", "exp", "extractvalue", "field", "find_in_set", "floor", "format",
        "from_base64", "geometrycollection", "get_lock", "greatest", "group_concat", "gtid_subset", "hex", "if",
        "ifnull", "iif", "instr", "isnull", "json_keys", "last_insert_id", "lcase", "left", "length", "like",
        "load_file", "locate", "lower", "lpad", "ltrim", "make_set", "max", "md5", "mid", "min", "multipoint",
        "name_const", "nullif", "oct", "ord", "pg_sleep", "polygon", "pow", "power", "rand", "randomblob",
        "regexp_substring", "repeat", "replace", "reverse", "right", "round", "row", "rpad", "rtrim", "schema",
        "sha1", "sleep", "soundex", "space", "sqlite_version", "str", "strcmp", "subdate", "substr", "substring",
        "substring_index", "sum", "sys_context", "system_user", "table_name", "to_char", "trim", "ucase", "unhex",
        "updatexml", "upper", "user", "utl_inaddr", "uuid", "version", "waitfor", "xmltype"
    ]
)

_WS = " \t\r\n\v\f\xa0"
_NUM = re.compile(r"0x[0-9a-fA-F]+|0b[01]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_$\x80-\uffff][A-Za-z0-9_$.\x80-\uffff]*")
_VAR = re.compile(r"@@?[A-Za-z0-9_.$]*")
_OPS2 = frozenset(("<>", "!=", "<=", ">=", "||", "&&", "::", ":=", "->", "<<", ">>", "!<", "!>"))  # and <=>


def _string_end(s: str, j: int, quote: str) -> int:
    """Where the string opened before `j` by `quote` ends (its closing quote), or >= len(s) when it does not:
    a backslash escapes the next character, a doubled quote is one quote."""
    n = len(s)
    while j < n:
        close = s.find(quote, j)
        if close < 0:
            return n
        backslash = s.find("\\", j, close)
        if backslash >= 0:
            j = backslash + 2
        elif close + 1 < n and s[close + 1] == quote:  # doubled quote escape
            j = close + 2
        else:
            return close
    return j


def tokenize(text: str, context: str = "") -> list[tuple[str, str]]:
    """Tokens ``(type, value)`` of `text` read after `context` (``""``, ``"'"`` or ``'"'``)."""
    s = context + text[:MAX_VALUE]
    out: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while i < n and len(out) < MAX_TOKENS:
        ch = s[i]
        if ch in _WS:
            i += 1
            continue
        if ch in "'\"":
            j = _string_end(s, i + 1, ch)
            if j >= n:
                out.append((OPEN_STRING, s[i + 1 :]))
                break
            out.append((STRING, s[i + 1 : j]))
            i = j + 1
            continue
        if ch == "/" and s.startswith("/*", i):
            end = s.find("*/", i + 2)
            if s.startswith("/*!", i):  # MySQL executable comment: its content is SQL
                k = i + 3
                while k < n and s[k].isdigit():
                    k += 1
                inner = s[k:end] if end >= 0 else s[k:]
                s = s[:i] + " " + inner + " " + (s[end + 2 :] if end >= 0 else "")
                n = len(s)
                continue
            if end < 0:
                out.append((COMMENT, "/*"))
                break
            i = end + 2  # inline comment folds into whitespace
            continue
        if ch == "#" or (ch == "-" and s.startswith("--", i)):
            out.append((COMMENT, s[i : i + 2]))
            break
        if ch == "`":
            end = s.find("`", i + 1)
            out.append((BACKTICK, s[i + 1 : end] if end >= 0 else s[i + 1 :]))
            i = end + 1 if end >= 0 else n
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and s[i + 1].isdigit()):
            m = _NUM.match(s, i)
            if m:
                end = m.end()
                # "1e" or "123abc": a number glued to letters is a bareword (hex ids, hashes)
                if end < n and (s[end].isalpha() or s[end] == "_"):
                    w = _WORD.match(s, end)
                    end = w.end() if w else end + 1
                    out.append((BAREWORD, s[i:end]))
                else:
                    out.append((NUMBER, m.group()))
                i = end
                continue
        if ch == "@":
            m = _VAR.match(s, i)
            assert m is not None
            out.append((VARIABLE, m.group()))
            i = m.end()
            continue
        m = _WORD.match(s, i)
        if m:
            word = m.group()
            low = word.lower()
            i = m.end()
            j = i
            while j < n and s[j] in _WS:
                j += 1
            if low == "union":
                out.append((UNION, low))
            elif low in STATEMENTS:
                out.append((STATEMENT, low))
            elif low in LOGIC_WORDS:
                out.append((LOGIC, low))
            elif low in COMPARE_WORDS:
                out.append((COMPARE, low))
            elif j < n and s[j] == "(" and (low in FUNCTIONS or low not in KEYWORDS):
                out.append((FUNCTION, low))
            elif low in KEYWORDS:
                out.append((KEYWORD, low))
            elif low in FUNCTIONS:
                out.append((FUNCTION, low))
            else:
                out.append((BAREWORD, low))
            continue
        if ch in "(":
            out.append((LPAREN, ch))
        elif ch == ")":
            out.append((RPAREN, ch))
        elif ch == ",":
            out.append((COMMA, ch))
        elif ch == ";":
            out.append((SEMICOLON, ch))
        else:
            op2 = "<=>" if s.startswith("<=>", i) else s[i : i + 2] if s[i : i + 2] in _OPS2 else None
            if op2:
                out.append((LOGIC if op2 in ("||", "&&") else COMPARE if op2 not in ("::", ":=", "->", "<<", ">>")
                            else OPERATOR, op2))
                i += len(op2)
                continue
            if ch in "=<>":
                out.append((COMPARE, ch))
            elif ch in "+-*/%^|&~!:":
                out.append((OPERATOR, ch))
            else:
                out.append((OTHER, ch))
        i += 1
    return out


def _merge(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Fold runs libinjection folds: repeated operators and brackets stay, barewords merge."""
    merged: list[tuple[str, str]] = []
    for tok in tokens:
        if merged and tok[0] == BAREWORD and merged[-1][0] == BAREWORD:
            continue  # "foo bar baz" is one bareword run
        merged.append(tok)
    return merged


def context_types(text: str, context: str) -> str:
    """The token-type string of `text` in one context (the libinjection-like fingerprint)."""
    return "".join(t for t, _ in _merge(tokenize(text, context)))


CONTEXTS = ("", "'", '"')


def context_features(text: str) -> list[set[str]]:
    """One feature set per context: token-type n-grams (2..4) plus the SQL words and word pairs seen.

    The model scores each context and keeps the highest: the value is an injection if it is one
    in *some* place the application could have put it.
    """
    out: list[set[str]] = []
    for ctx in CONTEXTS:
        toks = _merge(tokenize(text, ctx))
        types = "^" + "".join(t for t, _ in toks) + "$"
        feats: set[str] = set()
        for size in (2, 3, 4):
            for k in range(len(types) - size + 1):
                feats.add(types[k : k + size])
        prev = ""
        for t, v in toks:
            if t in (UNION, STATEMENT, KEYWORD, FUNCTION, LOGIC, COMPARE):
                feats.add("w:" + v)
                if prev:
                    feats.add(f"ww:{prev}_{v}")
                prev = v
            elif t == VARIABLE:
                feats.add("w:@" + ("@" if v.startswith("@@") else ""))
        if "/*" in text:
            feats.add("inline_comment")
        out.append(feats)
    return out
