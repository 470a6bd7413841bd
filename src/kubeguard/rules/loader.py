"""Load Falco rule files: lists, macros, rules, overrides/appends, exceptions; expand to trees.

Later files refine earlier ones (`override: {key: append|replace}` or legacy `append: true`).
Every problem is reported as one line naming the file and line: ``rules.yaml:12: rule 'X': ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeguard.cluster.bounds import InputError, read_bounded
from kubeguard.model import FALCO_PRIORITIES
from kubeguard.rules.compiler import CompileError
from kubeguard.rules.falco_fields import FieldRef, UnknownField, field_type
from kubeguard.rules.parser import (
    And,
    Comparison,
    ConditionError,
    FieldValue,
    MacroRef,
    Node,
    Not,
    Operand,
    Or,
    Word,
    parse_condition,
    walk,
)

ENGINE_VERSION = (0, 57, 0)
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_LIST_ITEMS = 100_000
MAX_CONDITION_CHARS = 200_000
MAX_EXPANDED_NODES = 200_000
RULE_KEYS = {"rule", "condition", "output", "desc", "priority", "source", "enabled", "tags", "exceptions",
             "warn_evttypes", "skip-if-unknown-filter", "append", "override", "capture", "capture_duration"}
APPENDABLE = {"condition", "output", "desc", "tags", "exceptions"}
REPLACEABLE = APPENDABLE | {"priority", "enabled", "warn_evttypes", "skip-if-unknown-filter", "capture",
                            "capture_duration"}

try:
    _YamlLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _YamlLoader = yaml.SafeLoader


class RuleLoadError(Exception):
    """Rule files could not be loaded; `problems` holds one line per problem (file:line: what)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(problems[0] + more if problems else "rules could not be loaded")


@dataclass(slots=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(slots=True)
class ListDef:
    name: str
    items: list[str]
    where: Where


@dataclass(slots=True)
class MacroDef:
    name: str
    condition: str
    where: Where


@dataclass(slots=True)
class Exception_:
    name: str
    fields: list[str] | str
    comps: list[str] | str | None
    values: list[Any]


@dataclass(slots=True)
class RuleDef:
    """A rule as written (after overrides), before compilation."""

    name: str
    condition: str
    output: str
    desc: str
    priority: str
    where: Where
    source: str = "syscall"
    enabled: bool = True
    tags: list[str] = field(default_factory=list)
    exceptions: list[Exception_] = field(default_factory=list)
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False


@dataclass(slots=True)
class RuleSet:
    """Everything read from the files, in definition order."""

    lists: dict[str, ListDef] = field(default_factory=dict)
    macros: dict[str, MacroDef] = field(default_factory=dict)
    rules: dict[str, RuleDef] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


# --- reading YAML with line numbers -------------------------------------------------------------

class _Constructor(yaml.constructor.SafeConstructor):
    """SafeConstructor that reads a bare `=` (YAML's 'value' tag) as the string "=" (exception comps)."""


_Constructor.add_constructor("tag:yaml.org,2002:value", lambda loader, node: str(node.value))


def _items_with_lines(path: Path, text: str) -> list[tuple[Any, int, dict[str, int]]]:
    """Top-level items of a rules file with their line and the line of each key."""
    node = yaml.compose(text, Loader=_YamlLoader)
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise ValueError(f"{path}:{node.start_mark.line + 1}: a rules file must be a YAML list of items")
    constructor = _Constructor()
    out = []
    for item in node.value:
        data = constructor.construct_object(item, deep=True)
        key_lines: dict[str, int] = {}
        if isinstance(item, yaml.MappingNode):
            for k, v in item.value:
                if isinstance(k, yaml.ScalarNode):
                    key_lines[str(k.value)] = v.start_mark.line + 1
        out.append((data, item.start_mark.line + 1, key_lines))
    return out


class Loader:
    """Reads rule files into a RuleSet, applying overrides in file order."""

    def __init__(self) -> None:
        self.rs = RuleSet()

    def load_file(self, path: Path) -> None:
        name = str(path)
        self.rs.files.append(name)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                self.rs.problems.append(f"{name}: file is {size / 1e6:.1f} MB, over the {MAX_FILE_BYTES // 2**20} MB"
                                        " limit for a rules file")
                return
            text = read_bounded(path, MAX_FILE_BYTES).decode("utf-8")
        except InputError as exc:
            self.rs.problems.append(f"{name}: rules file {exc.message}")
            return
        except UnicodeDecodeError as exc:
            self.rs.problems.append(f"{name}: cannot read rules file: not UTF-8 text (byte {exc.start})")
            return
        except OSError as exc:
            self.rs.problems.append(f"{name}: cannot read rules file: {exc.strerror or exc}")
            return
        self.load_text(name, text)

    def load_text(self, name: str, text: str) -> None:
        try:
            items = _items_with_lines(Path(name), text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.rs.problems.append(f"{name}{at}: invalid YAML: {problem}")
            return
        except ValueError as exc:
            problem = str(exc)
            if "int_max_str_digits" in problem or ("digits" in problem and "integer" in problem):
                problem = f"{name}: invalid YAML value: a number with more than 4300 digits"
            elif not problem.startswith(name):
                problem = f"{name}: invalid YAML value: {problem}"
            self.rs.problems.append(problem)
            return
        except RecursionError:
            self.rs.problems.append(f"{name}: YAML nested too deeply")
            return
        for data, line, key_lines in items:
            where = Where(name, line)
            if not isinstance(data, dict):
                self.rs.problems.append(f"{where}: each item must be a mapping (list, macro, rule ...)")
                continue
            try:
                self._item(data, where, key_lines)
            except _Problem as exc:
                self.rs.problems.append(str(exc))

    def _item(self, data: dict[str, Any], where: Where, key_lines: dict[str, int]) -> None:
        if "rule" in data:
            self._rule(data, where, key_lines)
        elif "macro" in data:
            self._macro(data, where)
        elif "list" in data:
            self._list(data, where)
        elif "required_engine_version" in data:
            self._engine_version(data["required_engine_version"], where)
        elif "required_plugin_versions" in data:
            pass  # container/k8s metadata come from our own enrichment, not plugins
        else:
            keys = ", ".join(sorted(map(str, data)))
            self.rs.warnings.append(f"{where}: unknown item with keys [{keys}] ignored")

    # items
    def _engine_version(self, value: Any, where: Where) -> None:
        text = str(value)
        parts = text.split(".")
        try:
            wanted = tuple(int(p) for p in parts) if len(parts) > 1 else (0, int(text), 0)
        except ValueError as exc:
            raise _Problem(f"{where}: required_engine_version {text!r} is not a version") from exc
        if wanted > ENGINE_VERSION:
            have = ".".join(map(str, ENGINE_VERSION))
            raise _Problem(f"{where}: rules require engine version {text}, kubeguard implements {have}")

    def _list(self, data: dict[str, Any], where: Where) -> None:
        name = _name(data, "list", where)
        items = data.get("items", [])
        if items is None:
            items = []
        if not isinstance(items, list):
            raise _Problem(f"{where}: list '{name}': items must be a YAML list")
        if len(items) > MAX_LIST_ITEMS:
            raise _Problem(f"{where}: list '{name}': {len(items)} items, over the limit of {MAX_LIST_ITEMS}")
        for item in items:
            if isinstance(item, dict | list):
                raise _Problem(f"{where}: list '{name}': items must be strings or numbers")
        values = ["" if i is None else str(i) for i in items]
        mode = _mode(data, "items", where, f"list '{name}'")
        existing = self.rs.lists.get(name)
        if mode == "append":
            if existing is None:
                raise _Problem(f"{where}: list '{name}': append/override to a list that is not defined yet")
            existing.items.extend(values)
            if len(existing.items) > MAX_LIST_ITEMS:
                raise _Problem(f"{where}: list '{name}': over the limit of {MAX_LIST_ITEMS} items")
            return
        self.rs.lists.pop(name, None)
        self.rs.lists[name] = ListDef(name, values, where)

    def _macro(self, data: dict[str, Any], where: Where) -> None:
        name = _name(data, "macro", where)
        cond = data.get("condition")
        if not isinstance(cond, str | int | float | bool) or cond is None:
            raise _Problem(f"{where}: macro '{name}': condition must be a string")
        cond = str(cond)
        mode = _mode(data, "condition", where, f"macro '{name}'")
        existing = self.rs.macros.get(name)
        if mode == "append":
            if existing is None:
                raise _Problem(f"{where}: macro '{name}': append/override to a macro that is not defined yet")
            existing.condition = f"{existing.condition} {cond}"
            return
        self.rs.macros.pop(name, None)
        self.rs.macros[name] = MacroDef(name, cond, where)

    def _rule(self, data: dict[str, Any], where: Where, key_lines: dict[str, int]) -> None:
        name = _name(data, "rule", where)
        label = f"{where}: rule '{name}'"
        unknown = sorted(str(k) for k in data if k not in RULE_KEYS)
        if unknown:
            self.rs.warnings.append(f"{label}: unknown key(s) {', '.join(unknown)} ignored")
        existing = self.rs.rules.get(name)
        override = data.get("override")
        if override is not None:
            if not isinstance(override, dict):
                raise _Problem(f"{label}: override must be a mapping of key: append|replace")
            if existing is None:
                raise _Problem(f"{label}: override of a rule that is not defined yet")
            for key, how in override.items():
                if how not in ("append", "replace"):
                    raise _Problem(f"{label}: override.{key} must be append or replace, not {how!r}")
                allowed = APPENDABLE if how == "append" else REPLACEABLE
                if key not in allowed:
                    raise _Problem(f"{label}: key '{key}' cannot be overridden with {how}")
                if key not in data:
                    raise _Problem(f"{label}: override.{key} given but the rule has no '{key}' key")
                self._apply(existing, key, data[key], how, label)
            for key in data:
                if key not in ("rule", "override") and key not in override:
                    raise _Problem(f"{label}: key '{key}' is not listed under override")
            return
        if data.get("append") is True:
            if existing is None:
                raise _Problem(f"{label}: append to a rule that is not defined yet")
            for key in ("condition", "exceptions", "output", "desc", "tags"):
                if key in data:
                    self._apply(existing, key, data[key], "append", label)
            return
        if existing is not None and set(data) <= {"rule", "enabled"} and "enabled" in data:
            existing.enabled = _bool(data["enabled"], label, "enabled")  # legacy enable/disable
            return
        missing = [k for k in ("condition", "output", "desc", "priority") if k not in data]
        if missing:
            if existing is None and set(data) <= {"rule", "enabled"}:
                raise _Problem(f"{label}: enabling/disabling a rule that is not defined yet")
            raise _Problem(f"{label}: missing key(s) {', '.join(missing)}")
        rule = RuleDef(name=name, condition="", output="", desc="", priority="", where=where)
        for key in ("condition", "output", "desc", "priority", "enabled", "tags", "exceptions", "warn_evttypes",
                    "skip-if-unknown-filter"):
            if key in data:
                self._apply(rule, key, data[key], "replace", label)
        source = data.get("source", "syscall")
        rule.source = str(source)
        rule.where = Where(where.file, key_lines.get("condition", where.line))
        self.rs.rules.pop(name, None)
        self.rs.rules[name] = rule

    def _apply(self, rule: RuleDef, key: str, value: Any, how: str, label: str) -> None:
        if key in ("condition", "output", "desc"):
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise _Problem(f"{label}: {key} must be a string")
            text = str(value).strip()
            if key == "condition" and len(text) > MAX_CONDITION_CHARS:
                raise _Problem(f"{label}: condition is {len(text)} characters, over {MAX_CONDITION_CHARS}")
            old = getattr(rule, key)
            setattr(rule, key, f"{old} {text}" if how == "append" and old else text)
        elif key == "priority":
            text = str(value).strip().upper()
            text = "INFORMATIONAL" if text == "INFO" else text
            if text not in FALCO_PRIORITIES:
                raise _Problem(f"{label}: unknown priority {value!r} (one of {', '.join(FALCO_PRIORITIES)})")
            rule.priority = text.capitalize()
        elif key == "tags":
            if not isinstance(value, list) or any(isinstance(t, dict | list) for t in value):
                raise _Problem(f"{label}: tags must be a list of strings")
            tags = [str(t) for t in value]
            rule.tags = rule.tags + [t for t in tags if t not in rule.tags] if how == "append" else tags
        elif key == "enabled":
            rule.enabled = _bool(value, label, key)
        elif key == "warn_evttypes":
            rule.warn_evttypes = _bool(value, label, key)
        elif key == "skip-if-unknown-filter":
            rule.skip_if_unknown_filter = _bool(value, label, key)
        elif key == "exceptions":
            self._exceptions(rule, value, how, label)

    def _exceptions(self, rule: RuleDef, value: Any, how: str, label: str) -> None:
        if value is None:
            value = []
        if not isinstance(value, list):
            raise _Problem(f"{label}: exceptions must be a list")
        current = {x.name: x for x in rule.exceptions} if how == "append" else {}
        for raw in value:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise _Problem(f"{label}: each exception needs a name")
            name = raw["name"]
            values = raw.get("values") or []
            if not isinstance(values, list):
                raise _Problem(f"{label}: exception '{name}': values must be a list")
            if name in current and "fields" not in raw:
                current[name].values.extend(values)
                continue
            if "fields" not in raw:
                raise _Problem(f"{label}: exception '{name}': fields missing (and no earlier exception to append to)")
            fields_ = raw["fields"]
            comps = raw.get("comps")
            if not isinstance(fields_, str) and not (
                    isinstance(fields_, list) and all(isinstance(f, str) for f in fields_)):
                raise _Problem(f"{label}: exception '{name}': fields must be a field or a list of fields")
            current[name] = Exception_(name, fields_, comps, list(values))
        if how == "append":
            rule.exceptions = list(current.values())
        else:
            rule.exceptions = list(current.values())


class _Problem(Exception):
    pass


def _name(data: dict[str, Any], key: str, where: Where) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Problem(f"{where}: {key} needs a non-empty name")
    return value.strip()


def _mode(data: dict[str, Any], key: str, where: Where, label: str) -> str:
    override = data.get("override")
    if override is not None:
        if not isinstance(override, dict) or set(override) - {key}:
            raise _Problem(f"{where}: {label}: override may only name '{key}'")
        how = override.get(key)
        if how not in ("append", "replace"):
            raise _Problem(f"{where}: {label}: override.{key} must be append or replace")
        return str(how)
    return "append" if data.get("append") is True else "replace"


def _bool(value: Any, label: str, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _Problem(f"{label}: {key} must be true or false")


# --- expansion: macros, lists, exceptions --------------------------------------------------------

class Expander:
    """Inline macros and list names into condition trees, with cycle detection."""

    def __init__(self, rs: RuleSet) -> None:
        self.rs = rs
        self._macro_trees: dict[str, Node] = {}
        self._list_values: dict[str, tuple[Word, ...]] = {}
        self.used_macros: set[str] = set()
        self.used_lists: set[str] = set()

    def parse(self, text: str, what: str) -> Node:
        try:
            return parse_condition(text)
        except ConditionError as exc:
            raise CompileError(f"{what}: {exc}") from exc
        except RecursionError as exc:
            raise CompileError(f"{what}: condition nested too deeply") from exc

    def list_words(self, name: str, stack: tuple[str, ...] = ()) -> tuple[Word, ...]:
        if name in self._list_values:
            return self._list_values[name]
        if name in stack:
            raise CompileError(f"list '{name}' refers to itself ({' -> '.join((*stack, name))})")
        self.used_lists.add(name)
        out: list[Word] = []
        for item in self.rs.lists[name].items:
            if item in self.rs.lists:
                out.extend(self.list_words(item, (*stack, name)))
            else:
                out.append(list_item_word(item))
            if len(out) > MAX_LIST_ITEMS:
                raise CompileError(f"list '{name}' expands to more than {MAX_LIST_ITEMS} items")
        self._list_values[name] = tuple(out)
        return self._list_values[name]

    def macro_tree(self, name: str, stack: tuple[str, ...]) -> Node:
        if name in stack:
            raise CompileError(f"macro '{name}' refers to itself ({' -> '.join((*stack, name))})")
        cached = self._macro_trees.get(name)
        if cached is not None:
            return cached
        macro = self.rs.macros[name]
        self.used_macros.add(name)
        tree = self.expand(self.parse(macro.condition, f"macro '{name}' ({macro.where})"), (*stack, name))
        self._macro_trees[name] = tree
        return tree

    def expand(self, node: Node, stack: tuple[str, ...] = ()) -> Node:
        if isinstance(node, MacroRef):
            if node.name not in self.rs.macros:
                raise CompileError(f"undefined macro '{node.name}'")
            return self.macro_tree(node.name, stack)
        if isinstance(node, And):
            return And(tuple(self.expand(i, stack) for i in node.items))
        if isinstance(node, Or):
            return Or(tuple(self.expand(i, stack) for i in node.items))
        if isinstance(node, Not):
            return Not(self.expand(node.item, stack))
        if isinstance(node, Comparison) and isinstance(node.rhs, tuple):
            words: list[Word] = []
            for w in node.rhs:
                if not w.quoted and w.text in self.rs.lists:
                    words.extend(self.list_words(w.text))
                else:
                    words.append(w)
            return Comparison(node.lhs, node.op, tuple(words))
        return node

    def exceptions_tree(self, rule: RuleDef) -> Node | None:
        """Falco's expansion: `not ((f1 c1 v1 and f2 c2 v2) or ...)` over every exception's values."""
        alternatives: list[Node] = []
        for exc in rule.exceptions:
            what = f"exception '{exc.name}'"
            single = isinstance(exc.fields, str)
            fields_ = [exc.fields] if isinstance(exc.fields, str) else list(exc.fields)
            comps = exc.comps
            if comps is None:
                comps = "in" if single else ["="] * len(fields_)
            comps_list = [comps] if isinstance(comps, str) else list(comps)
            if len(comps_list) != len(fields_):
                raise CompileError(f"{what}: fields and comps have different lengths")
            refs = [self._field(f, what) for f in fields_]
            for row in exc.values:
                if single:
                    alternatives.append(self._exc_check(refs[0], comps_list[0], row, what, single=True))
                    continue
                if not isinstance(row, list) or len(row) != len(fields_):
                    raise CompileError(f"{what}: each value must be a list of {len(fields_)} item(s), got {row!r}")
                checks = [self._exc_check(r, c, v, what) for r, c, v in zip(refs, comps_list, row, strict=True)]
                alternatives.append(checks[0] if len(checks) == 1 else And(tuple(checks)))
        if not alternatives:
            return None
        return Not(alternatives[0] if len(alternatives) == 1 else Or(tuple(alternatives)))

    def _field(self, text: str, what: str) -> FieldRef:
        node = self.parse(f"{text} exists", what)
        if not isinstance(node, Comparison):
            raise CompileError(f"{what}: {text!r} is not a field")
        return node.lhs.field

    def _exc_check(self, ref: FieldRef, comp: str, value: Any, what: str, single: bool = False) -> Node:
        from kubeguard.rules.parser import BINARY_OPS, LIST_OPS

        if comp not in BINARY_OPS and comp not in LIST_OPS:
            raise CompileError(f"{what}: unknown comparison operator {comp!r}")
        if comp in LIST_OPS:
            if single:
                items = value if isinstance(value, list) else [value]
            else:
                items = value if isinstance(value, list) else [value]
            words: list[Word] = []
            for item in items:
                text = str(item)
                if text in self.rs.lists:
                    words.extend(self.list_words(text))
                else:
                    words.append(list_item_word(text))
            return Comparison(Operand(ref), comp, tuple(words))
        if single:
            raise CompileError(f"{what}: a single field exception needs comps in, pmatch or intersects")
        if isinstance(value, list | dict):
            raise CompileError(f"{what}: {comp} needs a single value, got {value!r}")
        return Comparison(Operand(ref), comp, Word("" if value is None else str(value), quoted=True))


def list_item_word(item: str) -> Word:
    """A list item as a condition value: Falco substitutes items into conditions, so quotes are syntax."""
    text = item.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        try:
            node = parse_condition(f"x.y = {text}")
        except ConditionError:
            return Word(item, quoted=True)
        if isinstance(node, Comparison) and isinstance(node.rhs, Word):
            return node.rhs
    return Word(item, quoted=True)


def validate_fields(node: Node) -> None:
    """Raise UnknownField for the first field Falco would not know; CompileError for a size bomb."""
    for count, n in enumerate(walk(node), 1):
        if count > MAX_EXPANDED_NODES:
            raise CompileError(f"condition expands to more than {MAX_EXPANDED_NODES} nodes")
        if isinstance(n, Comparison):
            field_type(n.lhs.field)
            if isinstance(n.rhs, FieldValue):
                field_type(n.rhs.operand.field)


__all__ = ["Expander", "Loader", "RuleDef", "RuleLoadError", "RuleSet", "UnknownField", "validate_fields"]
