"""Compile expanded condition trees into Python source, then into functions, once at load time.

Per event type the engine builds one function that evaluates every rule that can match
that type: `evt.type` checks are folded to constants first (partial evaluation), so a rule that
cannot match an event type is absent from that type's function and the rest are plain Python
boolean expressions over ``e.get(...)`` with constants hoisted into the module namespace. Within
one function, plain fields read by several rules are loaded once into locals, and accessor calls and
subtrees (expanded macros) read twice or more are memoised per event (see `plan`, `CodeGen.end_memo`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubeguard.rules import falco_fields as F
from kubeguard.rules.falco_fields import FieldRef, field_type
from kubeguard.rules.host_names import NameSet
from kubeguard.rules.linear import LinearPattern, linear_pattern
from kubeguard.rules.parser import And, Comparison, Const, FieldValue, Node, Not, Or, Word

EVT_TYPE_FIELDS = frozenset({"evt.type", "syscall.type"})


class CompileError(ValueError):
    """A condition that parses but cannot be compiled (bad value for a field's type, bad regex...)."""


# --- runtime helpers used by generated code ------------------------------------------------------

def _lower(v: Any) -> Any:
    return None if v is None else F.to_str(v).lower()  # type: ignore[union-attr]


def _upper(v: Any) -> Any:
    return None if v is None else F.to_str(v).upper()  # type: ignore[union-attr]


def _b64(v: Any) -> Any:
    if v is None:
        return None
    try:
        return base64.b64decode(F.to_str(v) or "", validate=False).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return None


def _basename(v: Any) -> Any:
    if v is None:
        return None
    text = F.to_str(v) or ""
    return "" if text.endswith("/") else os.path.basename(text)


def _len(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, list | tuple | bytes | str):
        return len(v)
    return len(F.to_str(v) or "")


def _anyof(values: Any, test: Callable[[Any], bool]) -> bool:
    if values is None:
        return False
    if not isinstance(values, list | tuple):
        return test(values)
    for v in values:  # noqa: SIM110 - a plain loop: no generator frame per call (hot path)
        if v is not None and test(v):
            return True
    return False


def _anyin(values: Any, allowed: frozenset[Any]) -> bool:
    """Any of several values (ancestors, client/server ends) is in the set."""
    if values is None:
        return False
    if not isinstance(values, list | tuple):
        return values in allowed
    try:
        return not allowed.isdisjoint(values)
    except TypeError:
        return any(v in allowed for v in values if not isinstance(v, list | dict))


def _allin(values: Any, allowed: frozenset[Any]) -> bool:
    if not isinstance(values, list | tuple):
        return values in allowed
    return all(v in allowed for v in values)


def _intersects(values: Any, allowed: frozenset[Any]) -> bool:
    if not isinstance(values, list | tuple):
        return values in allowed
    return not allowed.isdisjoint(values)


TRANSFORM_FUNCS = {"tolower": "_lower", "toupper": "_upper", "b64": "_b64", "basename": "_basename", "len": "_len"}

BASE_NAMESPACE: dict[str, Any] = {
    "_lower": _lower, "_upper": _upper, "_b64": _b64, "_basename": _basename, "_len": _len,
    "_anyof": _anyof, "_anyin": _anyin, "_allin": _allin, "_intersects": _intersects,
    "_int": F.to_int, "_bool": F.to_bool, "_str": F.to_str, "_bytes": F.to_bytes,
    "_U": object(),
    "_anc": F.ancestor, "_ancs": F.ancestors, "_ix": F.indexed, "_innet": F.ip_in_nets,
}


class PathPrefixes:
    """Falco's `pmatch`: true when one of the paths is a component-wise prefix of the value (globs allowed)."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.globbed: list[list[Any]] = []
        for p in paths:
            p = p.rstrip("/") or "/"
            if any(c in p for c in "*?["):
                self.globbed.append([F.glob_matcher(part) for part in p.split("/")])
            else:
                self.exact.add(p)

    def __call__(self, value: Any) -> bool:
        path = F.to_str(value)
        if not path:
            return False
        if self.exact:
            if "/" in self.exact and path.startswith("/"):
                return True
            probe = path.rstrip("/") or "/"
            while True:
                if probe in self.exact:
                    return True
                cut = probe.rfind("/")
                if cut <= 0:
                    break
                probe = probe[:cut]
        if self.globbed:
            parts = path.split("/")
            for pattern in self.globbed:
                if len(parts) >= len(pattern) and all(
                        rx.fullmatch(part) for rx, part in zip(pattern, parts, strict=False)):
                    return True
        return False


# --- partial evaluation --------------------------------------------------------------------------

def evt_type_words(node: Node) -> set[str]:
    """Event types a tree names in `evt.type` checks."""
    from kubeguard.rules.parser import walk

    out: set[str] = set()
    for n in walk(node):
        if isinstance(n, Comparison) and n.lhs.field.name in EVT_TYPE_FIELDS and not n.lhs.transformers:
            if isinstance(n.rhs, Word):
                out.add(n.rhs.text)
            elif isinstance(n.rhs, tuple):
                out.update(w.text for w in n.rhs)
    return out


def fold(node: Node, evt_type: str | None) -> Node:
    """Replace `evt.type`/`evt.dir` checks by constants for one event type (None: a type no rule names)."""
    if isinstance(node, Comparison):
        return _fold_check(node, evt_type)
    if isinstance(node, Not):
        inner = fold(node.item, evt_type)
        return Const(not inner.value) if isinstance(inner, Const) else Not(inner)
    if isinstance(node, And | Or):
        is_and = isinstance(node, And)
        items: list[Node] = []
        for item in node.items:
            got = fold(item, evt_type)
            if isinstance(got, Const):
                if got.value != is_and:  # False in an and / True in an or decides it
                    return got
                continue
            items.append(got)
        if not items:
            return Const(is_and)
        if len(items) == 1:
            return items[0]
        return And(tuple(items)) if is_and else Or(tuple(items))
    return node


def _fold_check(c: Comparison, evt_type: str | None) -> Node:
    name = c.lhs.field.name
    if c.lhs.transformers or c.lhs.field.arg is not None or isinstance(c.rhs, FieldValue):
        return c
    if name == "evt.dir" and isinstance(c.rhs, Word) and c.op in ("=", "!="):
        # Falco >= 0.42: direction is deprecated; `evt.dir = <` matches everything, `= >` nothing.
        hit = c.rhs.text == "<"
        return Const(hit if c.op == "=" else not hit)
    if name not in EVT_TYPE_FIELDS:
        return c
    if c.op == "exists":
        return Const(True)
    values = [c.rhs.text] if isinstance(c.rhs, Word) else [w.text for w in c.rhs or ()]
    if c.op in ("=", "in", "intersects"):
        return Const(evt_type in values)
    if c.op == "!=":
        return Const(evt_type not in values)
    if evt_type is None:
        return c
    return c


# --- code generation -----------------------------------------------------------------------------

class CodeGen:
    """Turns expanded, folded trees into Python expressions; constants live in `namespace`."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = dict(BASE_NAMESPACE)
        self._const_names: dict[tuple[str, Any], str] = {}
        self._helpers: list[str] = []
        self._helper_count = 0
        self._helper_by_body: dict[str, str] = {}
        self._memo: dict[str, str] | None = None  # expression -> local name, while building a bucket
        self._fields: dict[str, str] = {}  # plain field -> local loaded once at the top of the bucket
        self._shared: set[int] = set()  # id() of subtrees met more than once in the bucket: memoised
        self._lazy: set[str] = set()  # plain fields read twice or more by few rules: memoised on first read

    def begin_memo(self, trees: Iterable[Node] = ()) -> None:
        """Within one generated function, compute each field accessor call, each plain field read used
        more than once and each subtree (macro) shared by several rules at most once per event."""
        self._memo = {}
        eager, self._lazy, self._shared = plan(list(trees))
        self._fields = {name: f"_f{i}" for i, name in enumerate(eager)}

    def end_memo(self, body: str) -> tuple[str, list[str]]:
        """Resolve the memo placeholders in `body`: an expression the final code reads once is
        inlined, one read twice or more becomes ``(_m0 if _m0 is not _U else (_m0 := expr))``.
        Returns (code, names to initialise to the `_U` sentinel at the top of the function)."""
        exprs = {name: expr for expr, name in (self._memo or {}).items()}
        self._memo = None
        uses: dict[str, int] = {}
        todo, seen = [body], set()
        while todo:  # count the reads in the body and in every memoised expression the body reaches
            for name in _MEMO_TOKEN.findall(todo.pop()):
                uses[name] = uses.get(name, 0) + 1
                if name not in seen:
                    seen.add(name)
                    todo.append(exprs[name])
        done: dict[str, str] = {}

        def resolve(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in done:
                expr = _MEMO_TOKEN.sub(resolve, exprs[name])
                done[name] = (f"({name} if {name} is not _U else ({name} := {expr}))" if uses[name] > 1
                              else f"({expr})")
            return done[name]

        code = _MEMO_TOKEN.sub(resolve, body)
        return code, [name for name in exprs if uses.get(name, 0) > 1]

    def prologue(self) -> list[str]:
        """Lines loading the bucket's shared plain fields into locals (after `end_memo`, clears them)."""
        lines = [f"    {local} = e.get({name!r})" for name, local in self._fields.items()]
        self._fields, self._shared, self._lazy = {}, set(), set()
        return lines

    def memo(self, expr: str) -> str:
        """`expr` evaluated at most once per call of the function being built (see `end_memo`)."""
        if self._memo is None:
            return expr
        name = self._memo.get(expr)
        if name is None:
            name = self._memo[expr] = f"_m{len(self._memo)}"
        return f"\x01{name}\x02"  # placeholder, resolved by end_memo

    def const(self, value: Any, kind: str = "") -> str:
        key = (kind + type(value).__name__, value if _hashable(value) else id(value))
        name = self._const_names.get(key)
        if name is None:
            name = f"_k{len(self._const_names)}"
            self._const_names[key] = name
            self.namespace[name] = value
        return name

    def helpers_source(self) -> str:
        return "\n".join(self._helpers)

    def expr(self, node: Node) -> str:
        if isinstance(node, Const):
            return "True" if node.value else "False"
        if isinstance(node, And):
            code = "(" + " and ".join(self.expr(i) for i in node.items) + ")"
        elif isinstance(node, Or):
            code = "(" + " or ".join(self._or_items(node.items)) + ")"
        elif isinstance(node, Not):
            code = f"(not {self.expr(node.item)})"
        elif isinstance(node, Comparison):
            code = self.check(node)
        else:
            raise CompileError(f"unexpanded macro reference {node!r}")
        return self.memo(code) if id(node) in self._shared else code

    def _or_items(self, items: tuple[Node, ...]) -> list[str]:
        """Code of an `or`'s items, with plain string tests on one field merged: `a = x or a in (y, z)`
        becomes one set lookup, `a startswith x or a startswith y` one ``startswith((x, y))``, globs one
        regular expression, `contains` tests one None check."""
        groups: dict[tuple[str, str], list[Comparison]] = {}
        for item in items:
            key = self._mergeable(item)
            if key is not None:
                groups.setdefault(key, []).append(item)  # type: ignore[arg-type]
        out: list[str] = []
        done: set[tuple[str, str]] = set()
        for item in items:
            key = self._mergeable(item)
            if key is None or len(groups[key]) < 2:
                out.append(self.expr(item))
                continue
            if key in done:
                continue
            done.add(key)
            checks = groups[key]
            words = [w.text for c in checks for w in ((c.rhs,) if isinstance(c.rhs, Word) else c.rhs)]  # type: ignore[union-attr]
            raw = self.raw(checks[0].lhs.field)
            if key[1] == "in":
                out.append(f"({raw} in {self.const(frozenset(words))})")
                continue
            v = raw if _is_name(raw) else "v"
            bind = v if v == raw else f"(v := {raw})"
            words = list(dict.fromkeys(words))
            if key[1] in ("glob", "iglob"):  # one alternation of the globs' own (group-free) patterns
                rx = self._glob(tuple(words), key[1] == "iglob", f"{key[1]} {words!r}")
                out.append(f"({bind} is not None and {self.const(rx, 'rx')}.fullmatch({v}) is not None)")
            elif key[1] == "contains":
                out.append(f"({bind} is not None and (" + " or ".join(f"{self.const(w)} in {v}" for w in words) + "))")
            else:
                out.append(f"({bind} is not None and {v}.{key[1]}({self.const(tuple(words))}))")
        return out

    @staticmethod
    def _mergeable(node: Node) -> tuple[str, str] | None:
        """(field, test) for a plain string check an `or` can merge with its siblings, else None."""
        if not isinstance(node, Comparison) or node.lhs.transformers or F.is_multi(node.lhs.field):
            return None
        if node.op not in ("=", "in", "intersects", "startswith", "endswith", "contains", "glob", "iglob"):
            return None
        try:
            if field_type(node.lhs.field) != F.STR:
                return None
        except F.UnknownField:
            return None
        if node.op not in ("in", "intersects") and not isinstance(node.rhs, Word):
            return None
        if node.op in ("in", "intersects") and not isinstance(node.rhs, tuple):
            return None
        test = "in" if node.op in ("=", "in", "intersects") else node.op
        return node.lhs.field.text, test

    # field access
    def raw(self, ref: FieldRef) -> str:
        """Expression for the raw value of a single-valued field."""
        if ref.arg is not None:
            if ref.name in F.ANCESTOR_LISTS:
                return self.memo(f"_anc(e, {ref.name!r}, {int(ref.arg)})")
            return self.memo(f"_ix(e, {ref.name!r}, {ref.arg!r})")
        if ref.name in F.DERIVED:
            return self.memo(f"{self.const(F.DERIVED[ref.name], 'fn')}(e)")
        local = self._fields.get(ref.name)
        if local is not None:
            return local
        get = f"e.get({ref.name!r})"
        return self.memo(get) if ref.name in self._lazy else get

    def typed(self, raw: str, kind: str, transformers: tuple[str, ...], typed: bool = False) -> tuple[str, str]:
        """Coerce a raw value expression to its type (unless `typed`: the accessor did), then apply
        transformers; returns (expr, kind)."""
        if typed:
            pass
        elif kind == F.INT:
            raw = self._coerce(raw, "int", "_int")
        elif kind == F.BOOL:
            raw = self.memo(f"_bool({raw})")
        elif kind in (F.ANY, F.IP, F.NET):
            raw = self._coerce(raw, "str", "_str")
        elif kind == F.BYTES:
            raw = self.memo(f"_bytes({raw})")
        for t in transformers:
            raw = f"{TRANSFORM_FUNCS[t]}({raw})"
            kind = F.INT if t == "len" else F.STR
        return raw, kind

    def _coerce(self, raw: str, pytype: str, fn: str) -> str:
        """`fn(raw)`, skipping the call when a local already holds a value of the type."""
        if _is_name(raw):
            return f"({raw} if type({raw}) is {pytype} else {fn}({raw}))"
        return self.memo(f"{fn}({raw})")

    def check(self, c: Comparison) -> str:
        ref = c.lhs.field
        kind = field_type(ref)
        if F.is_multi(ref):
            elem = F._INDEXED[ref.name] if ref.name in F.ANCESTOR_LISTS else kind
            sources = F.MULTI_SOURCES.get(ref.name)
            if (elem == F.NET and not c.lhs.transformers and c.op in ("=", "!=", "in", "intersects")
                    and isinstance(c.rhs, Word | tuple) and sources):
                # One NetSet scan over the plain fields the multi-valued one gathers (cached per address).
                items = [c.rhs.text] if isinstance(c.rhs, Word) else [w.text for w in c.rhs]
                nets = F.NetSet(tuple(self._net(x, c.lhs.text) for x in items))
                method = "lacks_any" if c.op == "!=" else "has_any"
                args = ", ".join(self.raw(F.FieldRef(k)) for k in sources)
                return self.memo(f"{self.const(nets, 'net')}.{method}({args})")
            values = self.memo(f"_ancs(e, {ref.name!r})" if ref.name in F.ANCESTOR_LISTS
                               else f"{self.const(F.MULTI[ref.name], 'fn')}(e)")
            if c.op == "exists":
                return f"({values} is not None)"
            if (c.op in ("=", "in", "intersects") and elem in (F.STR, F.INT) and not c.lhs.transformers
                    and isinstance(c.rhs, Word | tuple)):
                items = [c.rhs.text] if isinstance(c.rhs, Word) else [w.text for w in c.rhs]
                allowed = frozenset(self._literal(x, elem, c.lhs.text) for x in items)
                if elem == F.INT:
                    allowed = allowed | frozenset(str(x) for x in allowed)
                return f"_anyin({values}, {self.const(allowed)})"
            memo, self._memo = self._memo, None  # the helper's own argument is not memoised
            typed, tkind = self.typed("v", elem, c.lhs.transformers)
            self._memo = memo
            body = self._compare(typed, tkind, c)
            helper = self._helper_by_body.get(body)
            if helper is None:
                helper = self._helper_by_body[body] = f"_c{self._helper_count}"
                self._helper_count += 1
                self._helpers.append(f"def {helper}(v):\n    return {body}\n")
            return self.memo(f"_anyof({values}, {helper})")
        ip_field = HOST_NAME_FIELDS.get(ref.name)
        if (ip_field is not None and ref.arg is None and not c.lhs.transformers and c.op in ("=", "!=", "in")
                and isinstance(c.rhs, Word | tuple)):
            # Falco's compare_domain: the address is one of those the names resolve to (host_names.py)
            names = NameSet([c.rhs.text] if isinstance(c.rhs, Word) else [w.text for w in c.rhs])
            method = "lacks" if c.op == "!=" else "has"
            return self.memo(f"{self.const(names, 'names')}.{method}({self.raw(ref)}, {self.raw(FieldRef(ip_field))})")
        raw = self.raw(ref)
        if c.op == "exists":
            return f"({raw} is not None)"
        typed, tkind = self.typed(raw, kind, c.lhs.transformers, typed=ref.arg is None and ref.name in F.TYPED_DERIVED)
        # Fast paths: plain string equality / membership are None-safe by themselves.
        if tkind == F.STR and not c.lhs.transformers and isinstance(c.rhs, Word) and c.op == "=":
            return f"({raw} == {self.const(c.rhs.text)})"
        if tkind == F.STR and not c.lhs.transformers and isinstance(c.rhs, tuple) and c.op in ("in", "intersects") \
                and kind != F.LIST:
            return f"({raw} in {self.const(frozenset(w.text for w in c.rhs))})"
        if _is_name(typed):  # a local already: test it directly
            return f"({typed} is not None and {self._compare(typed, tkind, c)})"
        return f"((v := {typed}) is not None and {self._compare('v', tkind, c)})"

    def _compare(self, v: str, kind: str, c: Comparison) -> str:
        op, rhs = c.op, c.rhs
        what = c.lhs.text
        if isinstance(rhs, FieldValue):
            other_kind = field_type(rhs.operand.field)
            other, okind = self.typed(self.raw(rhs.operand.field), other_kind, rhs.operand.transformers)
            if kind == F.INT and okind != F.INT:
                other = f"_int({other})"
            elif kind != F.INT and okind == F.INT:
                other = f"_str({other})"
            pyop = _PYOPS.get(op)
            if pyop is None:
                method = {"contains": "({w} in {v})", "startswith": "{v}.startswith({w})",
                          "endswith": "{v}.endswith({w})", "icontains": "({w}.lower() in {v}.lower())"}.get(op)
                if method is None:
                    raise CompileError(f"{what} {op} val(...): operator not supported with val()")
                test = method.format(v=v, w="w")
            else:
                test = f"{v} {pyop} w"
            return f"((w := {other}) is not None and {test})"
        if op in ("in", "intersects", "pmatch"):
            items = [w.text for w in rhs] if isinstance(rhs, tuple) else [rhs.text]  # type: ignore[union-attr]
            if op == "pmatch":
                return f"{self.const(PathPrefixes(items), 'pm')}({v})"
            if kind == F.NET:
                nets = F.NetSet(tuple(self._net(x, what) for x in items))
                return f"({v} in {self.const(nets, 'net')})"
            allowed = self.const(frozenset(self._literal(x, kind, what) for x in items))
            if kind == F.LIST:
                return f"{'_allin' if op == 'in' else '_intersects'}({v}, {allowed})"
            return f"({v} in {allowed})"
        if not isinstance(rhs, Word):
            raise CompileError(f"{what} {op}: expected a single value, got a list")
        text = rhs.text
        if kind == F.NET and op in ("=", "!="):
            test = f"({v} in {self.const(F.NetSet((self._net(text, what),)), 'net')})"
            return test if op == "=" else f"(not {test})"
        if op in _PYOPS:
            if op in ("<", "<=", ">", ">=") and kind not in (F.INT, F.STR, F.ANY, F.IP):
                raise CompileError(f"{what} {op}: operator not supported for a {kind} field")
            return f"{v} {_PYOPS[op]} {self.const(self._literal(text, kind, what))}"
        s = v if kind in (F.STR,) else f"_str({v})"
        if op == "contains":
            return f"({self.const(text)} in {s})"
        if op == "icontains":
            low = self.memo(f"{s}.lower()") if s in self._fields.values() else f"{s}.lower()"
            return f"({self.const(text.lower())} in {low})"
        if op == "startswith":
            return f"{s}.startswith({self.const(text)})"
        if op == "endswith":
            return f"{s}.endswith({self.const(text)})"
        if op in ("bcontains", "bstartswith"):
            try:
                needle = bytes.fromhex(text)
            except ValueError as exc:
                raise CompileError(f"{what} {op} {text}: expected hexadecimal bytes") from exc
            b = f"_bytes({v})"
            return f"({self.const(needle)} in {b})" if op == "bcontains" else f"{b}.startswith({self.const(needle)})"
        if op in ("glob", "iglob"):
            rx = self._glob((text,), op == "iglob", f"{what} {op} {text!r}")
            return f"({self.const(rx, 'rx')}.fullmatch({s}) is not None)"
        if op == "regex":
            rx = self._linear(text, False, f"{what} regex {text!r}")
            return f"({self.const(rx, 'rx')}.fullmatch({s}) is not None)"
        raise CompileError(f"{what}: unknown operator {op}")

    @staticmethod
    def _glob(globs: tuple[str, ...], nocase: bool, what: str) -> Any:
        """A glob matcher in linear time (`fields.glob_matcher`); CompileError when it cannot be compiled."""
        try:
            return F.glob_matcher(globs, nocase)
        except ValueError as exc:
            raise CompileError(f"{what}: invalid glob: {exc}") from exc

    @staticmethod
    def _linear(pattern: str, nocase: bool, what: str) -> LinearPattern:
        """A linear-time matcher; CompileError for what is invalid or cannot be bounded."""
        try:
            return linear_pattern(pattern, nocase)
        except ValueError as exc:
            raise CompileError(f"{what}: invalid regular expression: {exc}") from exc

    @staticmethod
    def _literal(text: str, kind: str, what: str) -> Any:
        if kind == F.INT:
            value = F.to_int(text)
            if value is None:
                raise CompileError(f"{what}: {text!r} is not a number")
            return value
        if kind == F.BOOL:
            value = F.to_bool(text)
            if value is None:
                raise CompileError(f"{what}: {text!r} is not true or false")
            return value
        if kind == F.BYTES:
            return text.encode("utf-8", "surrogateescape")
        return text

    @staticmethod
    def _net(text: str, what: str) -> Any:
        try:
            return F.parse_net(text)
        except ValueError as exc:
            raise CompileError(f"{what}: {text!r} is not an IP network") from exc


_MEMO_TOKEN = re.compile("\x01(_m[0-9]+)\x02")
_PYOPS = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


# fd.Xip.name -> the address field it names (sinsp_filter_check_fd: client, server, local, remote)
HOST_NAME_FIELDS = {"fd.cip.name": "fd.cip", "fd.sip.name": "fd.sip", "fd.lip.name": "fd.lip", "fd.rip.name": "fd.rip"}


def _is_name(code: str) -> bool:
    return code.isidentifier()


def plan(trees: list[Node]) -> tuple[list[str], set[str], set[int]]:
    """What one bucket's function (one tree per rule) should compute once: plain fields read by three
    or more rules (loaded up front), other plain fields read twice or more (memoised on first read),
    and `and`/`or` subtrees (expanded macros such as `open_read`, `container`) occurring twice or more."""
    field_uses: dict[str, int] = {}
    field_rules: dict[str, set[int]] = {}
    ids: dict[Any, int] = {}  # structural key -> small int
    count: dict[int, int] = {}
    nodes: dict[int, list[int]] = {}  # structural id -> id() of its nodes

    def key(node: Node, rule: int) -> int:
        if isinstance(node, Comparison):
            for ref in (node.lhs.field, node.rhs.operand.field if isinstance(node.rhs, FieldValue) else None):
                if ref is None or ref.arg is not None or ref.name in F.DERIVED:
                    continue
                for name in F.MULTI_SOURCES.get(ref.name, ()) if F.is_multi(ref) else (ref.name,):
                    field_uses[name] = field_uses.get(name, 0) + 1
                    field_rules.setdefault(name, set()).add(rule)
            k: Any = node
        elif isinstance(node, And | Or):
            k = (type(node).__name__, tuple(key(i, rule) for i in node.items))
        elif isinstance(node, Not):
            k = ("not", key(node.item, rule))
        else:
            k = node
        sid = ids.setdefault(k, len(ids))
        if isinstance(node, And | Or) or (isinstance(node, Not) and isinstance(node.item, And | Or)):
            count[sid] = count.get(sid, 0) + 1
            nodes.setdefault(sid, []).append(id(node))
        return sid

    try:
        for rule, tree in enumerate(trees):
            key(tree, rule)
    except RecursionError:
        return [], set(), set()
    shared = {n for sid, c in count.items() if c > 1 for n in nodes[sid]}
    eager = [name for name, rules in field_rules.items() if len(rules) > 2]
    return eager, {name for name, c in field_uses.items() if c > 1} - set(eager), shared


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def build_function(gen: CodeGen, name: str, body: str) -> Callable[..., Any]:
    """Compile `def name(e): body` (body already indented) in the generator's namespace."""
    source = gen.helpers_source() + f"\ndef {name}(e):\n{body}\n"
    namespace = gen.namespace
    try:
        code = compile(source, f"<kubeguard-rules:{name}>", "exec")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise CompileError(f"condition too complex to compile ({exc.__class__.__name__})") from exc
    exec(code, namespace)
    gen._helpers.clear()
    return namespace[name]  # type: ignore[no-any-return]


def rule_function(gen: CodeGen, name: str, node: Node) -> Callable[[Mapping[str, Any]], bool]:
    """One rule's condition as a function of the event (used by tests and the slow, safe path)."""
    return build_function(gen, name, f"    return bool({gen.expr(node)})")
