"""The rule engine: load rule files, compile every condition once, evaluate events, emit Alerts.

Per event type there is one compiled function that runs every enabled rule that can match that
type (`evt.type` checks folded away), rules sharing a leading test nested under it, and returns the
matches in definition order. Events of a type no rule names go to
the function of the rules without an `evt.type` restriction.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kubeguard.model import Alert, format_time_ns, now_iso, workload_from_fields
from kubeguard.rules import falco_fields as F
from kubeguard.rules.compiler import CodeGen, CompileError, build_function, evt_type_words, fold, rule_function
from kubeguard.rules.loader import Expander, Loader, RuleLoadError, RuleSet, UnknownField, validate_fields
from kubeguard.rules.output import OutputTemplate
from kubeguard.rules.parser import And, Comparison, Const, FieldValue, Node, Not, Or
from kubeguard.rules.selection import RuleSelection, apply_selections

MAX_TIME_NS = 253402300799 * 1_000_000_000  # 9999-12-31T23:59:59Z: the last time RFC 3339 can write
MAX_NEST = 12  # nesting levels of shared leading tests in a generated bucket function


@dataclass(slots=True)
class Rule:
    """A loaded, compiled rule."""

    name: str
    priority: str
    tags: list[str]
    source: str
    desc: str
    output: OutputTemplate
    condition: str
    tree: Node
    file: str
    line: int
    enabled: bool = True
    evt_types: frozenset[str] | None = None  # None: every type
    _fn: Callable[[Mapping[str, Any]], bool] | None = field(default=None, repr=False)

    @property
    def mitre(self) -> list[str]:
        from kubeguard.model import MITRE_ID

        return [t for t in self.tags if MITRE_ID.match(t)]


def default_rule_files() -> list[Path]:
    """The rule files shipped in the package (kubeguard/rules/default/*.yaml), in name order."""
    root = Path(str(resources.files("kubeguard.rules").joinpath("default")))
    return sorted(root.glob("*.yaml")) if root.is_dir() else []


class RuleEngine:
    """Compiled rules indexed by event type. Build with `RuleEngine.load(...)`."""

    def __init__(self, rules: list[Rule], *, rule_matching: str = "all", warnings: list[str] | None = None,
                 hostname: str | None = None) -> None:
        if rule_matching not in ("all", "first"):
            raise RuleLoadError([f"rule_matching must be 'all' or 'first', not {rule_matching!r}"])
        self.rules = [r for r in rules if r.enabled]
        self.all_rules = rules
        self.rule_matching = rule_matching
        self.warnings = warnings or []
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.errors = 0  # events whose evaluation raised (malformed values); they were retried safely
        self._gen = CodeGen()
        self._types: set[str] = set()
        for r in self.rules:
            self._types |= evt_type_words(r.tree)
        self._by_type: dict[Any, Callable[[Mapping[str, Any]], list[Rule]]] = {}
        self._by_source: dict[str, list[Rule]] = {}
        self._other = self._bucket(None)
        for t in sorted(self._types):
            self._by_type[t] = self._bucket(t)

    def reads_evt_type(self, name: str) -> bool:
        """Whether an enabled rule can match events of type `name` (a rule naming no evt.type matches every
        type): lets the agent leave out sensor probes no rule needs."""
        return name in self._types or any(r.evt_types is None for r in self.rules)

    def reads_field(self, name: str) -> bool:
        """Whether an enabled rule's condition (macros expanded) reads field `name` (e.g. proc.env): lets the
        agent skip work no rule needs."""
        return any(name in _tree_fields(r.tree) for r in self.rules)

    def types_reading(self, name: str) -> frozenset[str] | None:
        """The event types of the enabled rules whose conditions read field `name`; None when one of them
        matches every type: lets the agent fill a costly field only for the events a rule can read it on."""
        types: set[str] = set()
        for rule in self.rules:
            if name in _tree_fields(rule.tree):
                if rule.evt_types is None:
                    return None
                types |= rule.evt_types
        return frozenset(types)

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def load(cls, paths: Iterable[Path | str] | None = None, *, include_defaults: bool = True,
             rule_matching: str = "all", hostname: str | None = None,
             selections: list[RuleSelection] | None = None) -> RuleEngine:
        """Load rule files (defaults first, then `paths` in order), then apply Falco's `rules[]` selection
        commands (`selections`, in order); raises RuleLoadError (file:line)."""
        files = (default_rule_files() if include_defaults else []) + [Path(p) for p in paths or []]
        rs = read_rules(files)
        apply_selections(rs, selections or [])
        engine, problems = build_engine(rs, rule_matching=rule_matching, hostname=hostname)
        if engine is None:
            raise RuleLoadError(problems)
        return engine

    def _bucket(self, evt_type: str | None) -> Callable[[Mapping[str, Any]], list[Rule]]:
        """One function running every rule that can match `evt_type`, returning the matching rules.

        With rule_matching "all", rules whose conditions start with the same test (an expanded macro
        such as `open_read`) are nested under one `if` on it, so a false macro skips them all; the
        matches are put back in definition order before returning.
        """
        first = self.rule_matching == "first"
        todo: list[tuple[int, Node]] = []
        for i, rule in enumerate(self.rules):
            if rule.source != "syscall":
                continue
            tree = fold(rule.tree, evt_type)
            if not (isinstance(tree, Const) and not tree.value):
                todo.append((i, tree))
        gen = self._gen
        gen.begin_memo(tree for _, tree in todo)
        lines: list[str] = []
        if first:
            for i, tree in todo:
                lines.append(f"    if {gen.expr(tree)}:")
                lines.append(f"        return [{gen.const(self.rules[i], 'rule')}]")
            lines.append("    return m")
        else:
            conjuncts = [(i, _conjuncts(tree)) for i, tree in todo]
            self._nest(conjuncts, lines, 1)
            lines.append("    if m:")
            lines.append(f"        return [{gen.const(self.rules, 'rules')}[i] for i in sorted(m)]")
            lines.append("    return m")
        code, memo = gen.end_memo("\n".join(lines))
        head = ["    m = []"] + gen.prologue() + (["    " + " = ".join(memo) + " = _U"] if memo else [])
        name = f"_bucket_{len(self._by_type)}_{abs(hash(evt_type)) % 10**8}"
        try:
            return build_function(gen, name, "\n".join([*head, code]))
        except CompileError:  # the shared function is too deep for Python: each rule's own function instead
            return self._rule_by_rule([(self.rules[i], tree) for i, tree in todo], first)

    def _rule_by_rule(self, todo: list[tuple[Rule, Node]], first: bool) -> Callable[[Mapping[str, Any]], list[Rule]]:
        """A bucket calling one compiled function per rule (each compiled alone, as `compile_rules` did)."""
        tests = [(rule, rule_function(CodeGen(), f"_rule_{n}", tree)) for n, (rule, tree) in enumerate(todo)]

        def bucket(event: Mapping[str, Any]) -> list[Rule]:
            out = []
            for rule, test in tests:
                if test(event):
                    out.append(rule)
                    if first:
                        break
            return out

        return bucket

    def _nest(self, rules: list[tuple[int, tuple[Node, ...]]], lines: list[str], depth: int) -> None:
        """Append code testing each (rule index, remaining conjuncts); rules whose first conjunct
        compiles to the same code are nested under one `if` on it (at most MAX_NEST levels deep)."""
        pad = "    " * depth
        expr = self._gen.expr
        while rules:
            leads: dict[str, int] = {}
            if depth < MAX_NEST:
                for _, items in rules:
                    if items:
                        code = expr(items[0])
                        leads[code] = leads.get(code, 0) + 1
            lead, count = max(leads.items(), key=lambda kv: kv[1], default=("", 0))
            if count < 2:
                for i, items in rules:
                    if not items:
                        lines.append(f"{pad}m.append({i})")
                    else:
                        lines.append(f"{pad}if {expr(And(items) if len(items) > 1 else items[0])}:")
                        lines.append(f"{pad}    m.append({i})")
                return
            group = [(i, items[1:]) for i, items in rules if items and expr(items[0]) == lead]
            rules = [(i, items) for i, items in rules if not (items and expr(items[0]) == lead)]
            lines.append(f"{pad}if {lead}:")
            self._nest(group, lines, depth + 1)

    # --- evaluation -----------------------------------------------------------------------------
    def matching_rules(self, event: Mapping[str, Any]) -> list[Rule]:
        """Rules whose condition holds for the event (respecting rule_matching)."""
        t = event.get("evt.type")
        fn = self._by_type.get(t) if type(t) is str else None
        if fn is None:
            fn = self._other
        try:
            return fn(event)
        except Exception:  # a malformed value (wrong type): retry rule by rule on a normalised copy
            self.errors += 1
            return self._safe_matches(event)

    def process(self, event: Mapping[str, Any]) -> list[Alert]:
        """Alerts (Falco format) raised by one event; empty for nearly every event."""
        matched = self.matching_rules(event)
        if not matched:
            return []
        return [self.alert(rule, event) for rule in matched]

    def alert(self, rule: Rule, event: Mapping[str, Any]) -> Alert:
        text, fields_ = rule.output.render(event)
        ns = F.to_int(event.get("evt.time"))
        time = format_time_ns(ns) if ns is not None and 0 <= ns <= MAX_TIME_NS else now_iso()
        hostname = event.get("evt.hostname") or self.hostname
        clock = time[11:29]
        identity = {k: v for k, v in event.items() if k.startswith(("k8s.", "container."))}
        return Alert(rule=rule.name, priority=rule.priority, output=f"{clock}: {rule.priority} {text}", time=time,
                     source=rule.source, hostname=str(hostname), output_fields=fields_, tags=list(rule.tags),
                     workload=workload_from_fields({**identity, **fields_}))

    def _safe_matches(self, event: Mapping[str, Any]) -> list[Rule]:
        normal = normalise(event)
        out: list[Rule] = []
        t = normal.get("evt.type")
        for rule in self.rules:
            if rule.source != "syscall":
                continue
            if rule.evt_types is not None and t not in rule.evt_types:
                continue
            if rule._fn is None:
                rule._fn = rule_function(self._gen, f"_rule_{id(rule)}", rule.tree)
            try:
                hit = rule._fn(normal)
            except Exception:
                hit = False
            if hit:
                out.append(rule)
                if self.rule_matching == "first":
                    break
        return out


def _conjuncts(tree: Node) -> tuple[Node, ...]:
    """The tests a rule's condition is the `and` of, nested `and`s flattened, in order."""
    if tree == Const(True):
        return ()
    out: list[Node] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, And):
            stack.extend(reversed(node.items))
        else:
            out.append(node)
    return tuple(out)


def normalise(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with each known field coerced to its type (strings, ints, bools)."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        try:
            kind = F.field_type(F.FieldRef(key))
        except UnknownField:
            out[key] = value
            continue
        if kind == F.INT:
            out[key] = F.to_int(value)
        elif kind == F.BOOL:
            out[key] = F.to_bool(value)
        elif kind in (F.STR, F.IP, F.NET, F.ANY) and not isinstance(value, dict | list):
            out[key] = F.to_str(value)
        else:
            out[key] = value
    return out


def _tree_fields(node: Node) -> set[str]:
    """Names of the fields a condition tree reads."""
    found: set[str] = set()
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Comparison):
            found.add(item.lhs.field.name)
            rhs = item.rhs
            if isinstance(rhs, FieldValue):
                found.add(rhs.operand.field.name)
        elif isinstance(item, And | Or):
            stack.extend(item.items)
        elif isinstance(item, Not):
            stack.append(item.item)
    return found


def read_rules(files: Iterable[Path]) -> RuleSet:
    loader = Loader()
    for path in files:
        loader.load_file(path)
    return loader.rs


def build_engine(rs: RuleSet, *, rule_matching: str = "all",
                 hostname: str | None = None) -> tuple[RuleEngine | None, list[str]]:
    """The one compile `rules check`, `replay` and the agent run: (engine or None, problems as file:line).

    Compiles every rule (`compile_rules`), then builds the engine's per-event-type functions; a rule that
    compiles alone but breaks the generated functions is found and named too, so what `rules check`
    accepts always loads in the engine.
    """
    rules, problems = compile_rules(rs)
    if problems:
        return None, problems
    try:
        return RuleEngine(rules, rule_matching=rule_matching, warnings=rs.warnings, hostname=hostname), []
    except RuleLoadError as exc:
        return None, list(exc.problems)
    except (CompileError, ValueError, TypeError, OverflowError, SyntaxError, RecursionError) as exc:
        failure = exc
    for rule in rules:
        try:
            RuleEngine([rule], rule_matching=rule_matching, hostname="")
        except (CompileError, ValueError, TypeError, OverflowError, SyntaxError, RecursionError) as exc:
            problems.append(f"{rule.file}:{rule.line}: rule '{rule.name}': cannot be compiled: "
                            f"{type(exc).__name__}: {str(exc)[:200]}")
    return None, problems or [f"the rules cannot be compiled together: {type(failure).__name__}: "
                              f"{str(failure)[:200]}"]


def compile_rules(rs: RuleSet) -> tuple[list[Rule], list[str]]:
    """Expand and validate every rule; returns (rules in definition order, problems)."""
    problems = list(rs.problems)
    expander = Expander(rs)
    rules: list[Rule] = []
    gen = CodeGen()
    for rd in rs.rules.values():
        label = f"{rd.where}: rule '{rd.name}'"
        if rd.source not in ("syscall",):
            rs.warnings.append(f"{label}: source '{rd.source}' is not loaded; rule skipped")
            continue
        try:
            tree = expander.expand(expander.parse(rd.condition, "condition"))
            exc_tree = expander.exceptions_tree(rd)
            if exc_tree is not None:
                tree = And((tree, exc_tree))
            validate_fields(tree)
            template = OutputTemplate(rd.output)
            bad = template.unknown_fields()
            if bad:
                raise UnknownField(f"output: {bad[0]}")
            rule_function(gen, "_check", tree)  # type/regex/value errors surface now
        except UnknownField as exc:
            if rd.skip_if_unknown_filter:
                rs.warnings.append(f"{label}: skipped ({exc}; skip-if-unknown-filter is set)")
                continue
            problems.append(f"{label}: {exc}")
            continue
        except (CompileError, ValueError, TypeError, OverflowError) as exc:
            problems.append(f"{label}: {exc}")
            continue
        except RecursionError:
            problems.append(f"{label}: condition nested too deeply")
            continue
        types = evt_type_words(tree)
        open_types = not isinstance(fold(tree, None), Const) or fold(tree, None) == Const(True)
        if open_types and rd.warn_evttypes and rd.enabled:
            rs.warnings.append(f"{label}: no evt.type restriction: the rule runs on every event"
                               " (set warn_evttypes: false to silence)")
        rules.append(Rule(name=rd.name, priority=rd.priority, tags=rd.tags, source=rd.source, desc=rd.desc,
                          output=template, condition=rd.condition, tree=tree, file=rd.where.file,
                          line=rd.where.line, enabled=rd.enabled,
                          evt_types=None if open_types else frozenset(types)))
    for name, macro in rs.macros.items():
        if name not in expander.used_macros:
            try:
                expander.parse(macro.condition, f"macro '{name}'")
            except CompileError as exc:
                problems.append(f"{macro.where}: {exc}")
    return rules, problems
