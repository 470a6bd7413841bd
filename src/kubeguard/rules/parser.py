"""Falco's condition language: tokenizer and recursive-descent parser into a small AST.

Grammar (libsinsp's, precedence low to high)::

    expr    := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | '(' expr ')' | check | MACRO
    check   := operand UNARY_OP | operand BINARY_OP value | operand LIST_OP list
    operand := FIELD | TRANSFORMER '(' operand ')'
    value   := QUOTED | BARE | 'val' '(' FIELD ')' | TRANSFORMER '(' value ')'
    list    := '(' [item (',' item)*] ')'

List items that name a `list` are expanded later by the loader (they stay `Word(quoted=False)`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubeguard.rules.falco_fields import FieldRef

MAX_DEPTH = 100
UNARY_OPS = frozenset({"exists"})
LIST_OPS = frozenset({"in", "intersects", "pmatch"})
WORD_OPS = ("contains", "icontains", "bcontains", "startswith", "bstartswith", "endswith", "glob", "iglob",
            "pmatch", "exists", "intersects", "regex", "in")
SYMBOL_OPS = ("==", "!=", "<=", ">=", "=", "<", ">")
BINARY_OPS = frozenset(SYMBOL_OPS) | frozenset(WORD_OPS) - UNARY_OPS - LIST_OPS
TRANSFORMERS = frozenset({"tolower", "toupper", "b64", "basename", "len"})

_FIELD = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)+")
_IDENT = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_BARE = re.compile(r"""[^ \b\t\n\r\f\v(),="']+""")
_SPACE = re.compile(r"\s*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "b": "\b", "f": "\f", "0": "\0"}


class ConditionError(ValueError):
    """A syntax error in a condition; `pos` is the character offset in the condition text."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


# --- AST ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Word:
    """A literal value; `quoted` tells apart `"shell_binaries"` (a string) from a list name."""

    text: str
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Operand:
    """A field with transformers applied innermost first: tolower(basename(fd.name)) -> (basename, tolower)."""

    field: FieldRef
    transformers: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        out = self.field.text
        for t in self.transformers:
            out = f"{t}({out})"
        return out


@dataclass(frozen=True, slots=True)
class FieldValue:
    """`val(field)` on the right side, with transformers around it."""

    operand: Operand


@dataclass(frozen=True, slots=True)
class Comparison:
    lhs: Operand
    op: str
    rhs: Word | FieldValue | tuple[Word, ...] | None = None


@dataclass(frozen=True, slots=True)
class MacroRef:
    name: str
    pos: int = 0


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class Const:
    """Result of partial evaluation (e.g. `evt.type = execve` once the event type is known)."""

    value: bool


Node = Comparison | MacroRef | And | Or | Not | Const


# --- parser -------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    # low-level helpers
    def _skip(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def _peek(self, s: str) -> bool:
        self._skip()
        return self.text.startswith(s, self.pos)

    def _eat(self, s: str) -> bool:
        if self._peek(s):
            self.pos += len(s)
            return True
        return False

    def _keyword(self, word: str) -> bool:
        """Consume `word` when followed by a space, '(' or the end (Falco's rule for and/or/not)."""
        self._skip()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (end == len(self.text) or not
                                                   (self.text[end].isalnum() or self.text[end] in "_.")):
            self.pos = end
            return True
        return False

    def _error(self, message: str, pos: int | None = None) -> ConditionError:
        at = self.pos if pos is None else pos
        near = self.text[at:at + 25].split("\n")[0]
        where = f"near '{near}'" if near else "at end of condition"
        return ConditionError(f"{message} {where} (position {at})", at)

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._error(f"condition nested more than {MAX_DEPTH} levels deep")

    # grammar
    def parse(self) -> Node:
        self._skip()
        if self.pos >= len(self.text):
            raise self._error("empty condition")
        node = self.expr()
        self._skip()
        if self.pos < len(self.text):
            raise self._error("unexpected text")
        return node

    def expr(self) -> Node:
        items = [self.and_expr()]
        while self._keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self._keyword("and"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        self._enter()
        try:
            if self._keyword("not"):
                return Not(self.not_expr())
            if self._eat("("):
                node = self.expr()
                if not self._eat(")"):
                    raise self._error("missing ')'")
                return node
            return self.check()
        finally:
            self.depth -= 1

    def check(self) -> Node:
        self._skip()
        start = self.pos
        ident = _IDENT.match(self.text, self.pos)
        field = _FIELD.match(self.text, self.pos)
        if field is None:
            if ident is None:
                raise self._error("expected a field, a macro name or '('")
            after = _SPACE.match(self.text, ident.end()).end()  # type: ignore[union-attr]
            if ident.group() in TRANSFORMERS and self.text.startswith("(", after):
                lhs = self.operand()
            else:
                self.pos = ident.end()
                return MacroRef(ident.group(), start)
        else:
            lhs = self.operand()
        op = self.operator()
        if op in UNARY_OPS:
            return Comparison(lhs, op)
        if op in LIST_OPS:
            return Comparison(lhs, op, self.list_value())
        return Comparison(lhs, op, self.value())

    def operand(self) -> Operand:
        self._skip()
        self._enter()
        try:
            ident = _IDENT.match(self.text, self.pos)
            if ident and ident.group() in TRANSFORMERS and _FIELD.match(self.text, self.pos) is None:
                self.pos = ident.end()
                if not self._eat("("):
                    raise self._error(f"expected '(' after {ident.group()}")
                inner = self.operand()
                if not self._eat(")"):
                    raise self._error(f"missing ')' after {ident.group()}(...")
                return Operand(inner.field, (*inner.transformers, ident.group()))
            return Operand(self.field_ref())
        finally:
            self.depth -= 1

    def field_ref(self) -> FieldRef:
        self._skip()
        m = _FIELD.match(self.text, self.pos)
        if m is None:
            raise self._error("expected a field name")
        self.pos = m.end()
        arg = None
        if self.text.startswith("[", self.pos):
            close = self.text.find("]", self.pos)
            if close < 0:
                raise self._error("missing ']' in field argument")
            arg = self.text[self.pos + 1:close].strip()
            if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
                arg = arg[1:-1]
            self.pos = close + 1
        return FieldRef(m.group(), arg)

    def operator(self) -> str:
        self._skip()
        for op in SYMBOL_OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return "=" if op == "==" else op
        for op in WORD_OPS:
            if self._keyword(op):
                return op
        raise self._error("expected an operator")

    def value(self) -> Word | FieldValue:
        self._skip()
        ident = _IDENT.match(self.text, self.pos)
        if ident is not None:
            after = _SPACE.match(self.text, ident.end()).end()  # type: ignore[union-attr]
            name = ident.group()
            if self.text.startswith("(", after) and (name == "val" or name in TRANSFORMERS):
                self._enter()
                try:
                    self.pos = after + 1
                    if name == "val":
                        inner = FieldValue(Operand(self.field_ref()))
                    else:
                        got = self.value()
                        if not isinstance(got, FieldValue):
                            raise self._error(f"{name}() on the right side needs val(field)")
                        inner = FieldValue(Operand(got.operand.field, (*got.operand.transformers, name)))
                    if not self._eat(")"):
                        raise self._error(f"missing ')' after {name}(...")
                    return inner
                finally:
                    self.depth -= 1
        return self.word()

    def word(self) -> Word:
        self._skip()
        if self.pos >= len(self.text):
            raise self._error("expected a value")
        quote = self.text[self.pos]
        if quote in "'\"":
            return Word(self.quoted(quote), quoted=True)
        m = _BARE.match(self.text, self.pos)
        if m is None:
            raise self._error("expected a value")
        self.pos = m.end()
        return Word(m.group())

    def quoted(self, quote: str) -> str:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c == quote:
                self.pos += 1
                return "".join(out)
            if c == "\\" and self.pos + 1 < len(text):
                nxt = text[self.pos + 1]
                if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[self.pos + 2:self.pos + 4]):
                    out.append(chr(int(text[self.pos + 2:self.pos + 4], 16)))
                    self.pos += 4
                    continue
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                self.pos += 2
                continue
            out.append(c)
            self.pos += 1
        raise self._error("unterminated string", start)

    def list_value(self) -> tuple[Word, ...]:
        if not self._eat("("):
            raise self._error("expected '(' to open a list")
        items: list[Word] = []
        if self._eat(")"):
            return ()
        while True:
            items.append(self.word())
            if self._eat(")"):
                return tuple(items)
            if not self._eat(","):
                raise self._error("expected ',' or ')' in list")


def parse_condition(text: str) -> Node:
    """Parse one condition (or macro body); raises ConditionError with the offset of the problem."""
    return _Parser(text).parse()


def walk(node: Node):  # type: ignore[no-untyped-def]
    """Every node of a tree, parents first (iterative: safe on deep trees)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, And | Or):
            stack.extend(reversed(n.items))
        elif isinstance(n, Not):
            stack.append(n.item)
