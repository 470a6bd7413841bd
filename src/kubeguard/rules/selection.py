"""Falco's rule selection: `-o rules[].enable.rule=NAME` and friends, applied after every rules file is read.

Falco (0.38 and later) accepts, in falco.yaml's `rules:` section or on the command line as
`-o "rules[].<enable|disable>.<rule|tag>=<value>"`, a list of commands evaluated in order after all
rules files are loaded. They override the `enabled:` state the files gave a rule (so a rule Falco ships
`enabled: false` can be switched on without writing a rules file). `rule` takes a name pattern in which
`*` matches any run of characters (Falco's wildcard; every other character is literal, case-sensitive);
`tag` takes one tag, matched exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubeguard.errors import KubeguardError
from kubeguard.rules.loader import RuleSet

_OPTION = re.compile(r"rules\[\]\.(enable|disable)\.(rule|tag)=(.*)", re.DOTALL)


class SelectionError(KubeguardError):
    """A rule selection option that is not Falco's `rules[].<enable|disable>.<rule|tag>=VALUE`."""


@dataclass(frozen=True)
class RuleSelection:
    """One command: enable or disable the rules whose name matches `pattern` (or that carry tag `pattern`)."""

    enable: bool
    by: str  # "rule" or "tag"
    pattern: str

    def matches(self, name: str, tags: list[str]) -> bool:
        if self.by == "tag":
            return self.pattern in tags
        return _wildcard(self.pattern).fullmatch(name) is not None

    def __str__(self) -> str:
        return f"rules[].{'enable' if self.enable else 'disable'}.{self.by}={self.pattern}"


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def parse_selection(text: str) -> RuleSelection:
    """`rules[].enable.rule=Some rule` -> RuleSelection; SelectionError naming the option otherwise."""
    found = _OPTION.fullmatch(text.strip())
    if found is None:
        raise SelectionError(f"option {text!r}: only Falco's rule selection is supported here: "
                             "rules[].enable.rule=NAME, rules[].disable.rule=NAME, rules[].enable.tag=TAG, "
                             "rules[].disable.tag=TAG (NAME may contain *)")
    action, by, value = found.groups()
    if not value.strip():
        raise SelectionError(f"option {text!r}: empty {by} after '='")
    return RuleSelection(enable=action == "enable", by=by, pattern=value.strip())


def parse_selections(texts: list[str]) -> list[RuleSelection]:
    """Every `-o` value in order."""
    return [parse_selection(t) for t in texts]


def apply_selections(rs: RuleSet, selections: list[RuleSelection]) -> None:
    """Set `enabled` of the read rules, command by command in order; a command matching no rule is warned."""
    for selection in selections:
        hits = 0
        for rule in rs.rules.values():
            if selection.matches(rule.name, rule.tags):
                rule.enabled = selection.enable
                hits += 1
        if not hits:
            rs.warnings.append(f"option {selection}: matches no loaded rule")
