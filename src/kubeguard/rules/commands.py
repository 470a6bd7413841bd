"""CLI: `kubeguard rules check|list`, `kubeguard replay`, `kubeguard alerts`.

Exit codes: 0 success; 1 rule files with problems (`rules check`) or a store failure; 2 bad input
(unreadable file, bad flag value, rules that do not load for `replay`/`list`, an events file with no
line end within 256 MiB).

`replay` stores before it prints: alerts are collected in batches (1000 alerts or one second), each
batch is committed to the store, then printed. Every alert printed is stored; a kill -9 loses at most
the alerts of the batch not yet committed, which were not printed either. Alert ids are stable
(`stable_alert_id` of the events file's line number and line digest and the rule), so re-running
the same file after a kill stores only what is missing: the count equals a clean run's.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from kubeguard.cliutil import UserError, die, stderr, stdout, warn
from kubeguard.model import Alert, Severity, format_time_ns, stable_alert_id
from kubeguard.rules.loader import RuleLoadError
from kubeguard.rules.replay import ReplayStats, read_replay
from kubeguard.rules.rule_engine import RuleEngine, build_engine, compile_rules, default_rule_files, read_rules
from kubeguard.rules.selection import RuleSelection, SelectionError, apply_selections, parse_selections
from kubeguard.store import AlertQuery, AlertStore, StoreError, default_db_path

rules_app = typer.Typer(help="Validate and list Falco-language rules.", no_args_is_help=True)
PRIORITY_STYLE = {"Emergency": "bold red", "Alert": "bold red", "Critical": "bold red", "Error": "red",
                  "Warning": "yellow", "Notice": "cyan", "Informational": "green", "Debug": "dim"}
OUTPUTS = ("rich", "json")


def _check_output(value: str) -> str:
    if value not in OUTPUTS:
        raise UserError(f"-o/--output must be one of {', '.join(OUTPUTS)}, not {value!r}")
    return value


OPTION_HELP = ("Falco rule selection, applied in order after the files: rules[].enable.rule=NAME, "
               "rules[].disable.rule=NAME (NAME may contain *), rules[].enable.tag=TAG, rules[].disable.tag=TAG "
               "(repeatable).")


def selections_of(options: list[str]) -> list[RuleSelection]:
    """The `--option` values as selection commands; UserError naming a bad one."""
    try:
        return parse_selections(options)
    except SelectionError as exc:
        raise UserError(str(exc)) from exc


def _load(rules: list[Path], defaults: bool, rule_matching: str = "all",
          options: list[str] | None = None) -> RuleEngine:
    for path in rules:
        if not path.is_file():
            raise UserError(f"{path}: no such rules file")
    selections = selections_of(options or [])
    try:
        engine = RuleEngine.load(rules, include_defaults=defaults, rule_matching=rule_matching,
                                 selections=selections)
    except RuleLoadError as exc:
        for problem in exc.problems[1:]:
            stderr.print(f"kubeguard: error: {problem}", markup=False)
        raise UserError(exc.problems[0] if exc.problems else str(exc)) from exc
    for w in engine.warnings:
        if w.startswith("option "):
            warn(w)
    return engine


@rules_app.command("check")
def rules_check(
    files: list[Path] = typer.Argument(..., help="Rules files to validate, loaded in this order."),
    no_default_rules: bool = typer.Option(False, "--no-default-rules", help="Do not load kubeguard's defaults first."),
    option: list[str] = typer.Option([], "--option", help=OPTION_HELP),
) -> None:
    """Load and validate rules files; every problem is printed as file:line: what."""
    for path in files:
        if not path.is_file():
            die(f"{path}: no such rules file")
    try:
        selections = selections_of(option)
    except UserError as exc:
        die(str(exc), exc.code)
    started = time.perf_counter()
    rs = read_rules(([] if no_default_rules else default_rule_files()) + list(files))
    apply_selections(rs, selections)
    engine, problems = build_engine(rs, hostname="")
    rules = engine.all_rules if engine is not None else compile_rules(rs)[0]
    for w in rs.warnings:
        warn(w)
    for p in problems:
        stderr.print(f"kubeguard: error: {p}", markup=False)
    enabled = sum(1 for r in rules if r.enabled)
    took = time.perf_counter() - started
    summary = (f"{len(rules)} rules ({enabled} enabled), {len(rs.macros)} macros, {len(rs.lists)} lists from "
               f"{len(rs.files)} file(s) in {took:.2f}s: {len(problems)} problem(s), {len(rs.warnings)} warning(s)")
    stdout.print(summary, markup=False)
    if problems:
        raise typer.Exit(1)


@rules_app.command("list")
def rules_list(
    rules: list[Path] = typer.Option([], "--rules", help="Extra rules file (repeatable)."),
    no_default_rules: bool = typer.Option(False, "--no-default-rules", help="Only the --rules files."),
    output: str = typer.Option("rich", "-o", "--output", help="rich or json."),
    option: list[str] = typer.Option([], "--option", help=OPTION_HELP),
) -> None:
    """List loaded rules with priority, tags and ATT&CK ids."""
    try:
        _check_output(output)
        engine = _load(rules, not no_default_rules, options=option)
    except UserError as exc:
        die(str(exc), exc.code)
    if output == "json":
        for r in engine.all_rules:
            stdout.print(json.dumps({"rule": r.name, "priority": r.priority, "enabled": r.enabled, "tags": r.tags,
                                     "mitre": r.mitre, "source": r.source, "file": r.file, "line": r.line,
                                     "desc": r.desc.strip()}), markup=False, soft_wrap=True)
        return
    table = Table(title=f"{len(engine.rules)} enabled rules")
    for col in ("rule", "priority", "ATT&CK", "tags", "where"):
        table.add_column(col)
    for r in engine.rules:
        tags = ", ".join(t for t in r.tags if t not in r.mitre)
        table.add_row(r.name, f"[{PRIORITY_STYLE.get(r.priority, '')}]{r.priority}[/]", ", ".join(r.mitre), tags,
                      f"{Path(r.file).name}:{r.line}")
    stdout.print(table)


def replay(
    events: Path = typer.Argument(..., help="Events file: JSON lines of Falco fields."),
    rules: list[Path] = typer.Option([], "--rules", help="Extra rules file (repeatable)."),
    no_default_rules: bool = typer.Option(False, "--no-default-rules", help="Only the --rules files."),
    output: str = typer.Option("rich", "-o", "--output", help="rich (default) or json (Falco JSON lines)."),
    db: Path | None = typer.Option(None, "--db", help="Alert store (SQLite); default $KUBEGUARD_DB."),
    store: Path | None = typer.Option(None, "--store", hidden=True, help="Old name of --db."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not write alerts into the store."),
    rule_matching: str = typer.Option("all", "--rule-matching", help="all (default) or first."),
    option: list[str] = typer.Option([], "--option", help=OPTION_HELP),
) -> None:
    """Evaluate recorded events against the rules; print alerts and store them."""
    try:
        _check_output(output)
        if rule_matching not in ("all", "first"):
            raise UserError(f"--rule-matching must be all or first, not {rule_matching!r}")
        engine = _load(rules, not no_default_rules, rule_matching, option)
        stats = run_replay(engine, events, output, None if no_store else (db or store or default_db_path()))
    except UserError as exc:
        die(str(exc), exc.code)
    except StoreError as exc:
        die(str(exc), 1)
    stderr.print(f"kubeguard: replayed {stats.events} events from {events}: {stats.alerts} alert(s), "
                 f"{stats.malformed} malformed line(s) skipped", markup=False)


BATCH_ALERTS = 1000
BATCH_SECONDS = 1.0


def run_replay(engine: RuleEngine, events: Path, output: str, store_path: Path | None) -> ReplayStats:
    """Replay a file through the engine; alerts are stored (one durable batch per 1000 or per second),
    then printed. An event the engine cannot evaluate is counted as malformed (file:line) and skipped."""
    stats = ReplayStats()
    pending: list[Alert] = []
    store = AlertStore(store_path) if store_path is not None else None
    flushed = time.monotonic()

    def flush() -> None:
        if store is not None:
            store.add(pending)
        for alert in pending:
            print_alert(alert, output)
        pending.clear()

    try:
        records = read_replay(events, stats, warn)
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except UserError:  # the file cannot be read further: keep what was found, then stop
                flush()
                raise
            try:
                raised = engine.process(record.event)
            except (ValueError, TypeError, OverflowError, RecursionError, KeyError) as exc:
                stats.events -= 1
                stats.malformed += 1
                warn(f"{record.where}: event cannot be evaluated ({type(exc).__name__}: {str(exc)[:200]}), skipped")
                continue
            for alert in raised:
                alert.uuid = stable_alert_id("replay", record.identity, alert.rule)
                stats.alerts += 1
                stats.by_rule[alert.rule] = stats.by_rule.get(alert.rule, 0) + 1
                pending.append(alert)
            if pending and (store is None or len(pending) >= BATCH_ALERTS
                            or time.monotonic() - flushed >= BATCH_SECONDS):
                flush()
                flushed = time.monotonic()
        flush()
    finally:
        if store is not None:
            store.close()
    return stats


def print_alert(alert: Alert, output: str) -> None:
    if output == "json":
        stdout.print(alert.to_json(), markup=False, soft_wrap=True)
        return
    style = PRIORITY_STYLE.get(alert.priority, "")
    stdout.print(f"[dim]{alert.time}[/] [{style}]{alert.priority:<8}[/] [bold]{_escape(alert.rule)}[/]")
    text = alert.output.split(": ", 1)[-1]
    text = text[len(alert.priority) + 1:] if text.startswith(alert.priority + " ") else text
    stdout.print(f"    {text}", markup=False)


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


_RELATIVE = re.compile(r"^(\d+)([smhd])$")


def parse_since(text: str) -> str:
    """`--since`: RFC 3339 time or a duration back from now (30m, 2h, 7d) -> RFC 3339 UTC.

    A duration reaching before year 1 means "everything" (the earliest time)."""
    m = _RELATIVE.match(text.strip())
    if m:
        if len(m.group(1)) > 15:
            return EARLIEST
        seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        try:
            return format_time_ns(int((time.time() - seconds) * 1e9))
        except (OverflowError, ValueError, OSError):
            return EARLIEST
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return format_time_ns(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)
    except (ValueError, OverflowError, OSError) as exc:
        raise UserError(f"--since {text[:64]!r}: expected a time like 2026-11-28T12:00:00Z or a duration like 2h") \
            from exc


EARLIEST = "0001-01-01T00:00:00.000000000Z"


def alerts(
    since: str | None = typer.Option(None, "--since", help="Only alerts at/after this time (RFC 3339 or 2h, 7d)."),
    priority: str | None = typer.Option(None, "--priority", help="Minimum priority (Falco name or severity)."),
    rule: str | None = typer.Option(None, "--rule", help="Only this rule."),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Only this Kubernetes namespace."),
    limit: int | None = typer.Option(None, "--limit", help="At most this many alerts."),
    output: str = typer.Option("rich", "-o", "--output", help="rich or json (Falco JSON lines)."),
    db: Path | None = typer.Option(None, "--db", help="Alert store (SQLite); default $KUBEGUARD_DB."),
    store: Path | None = typer.Option(None, "--store", hidden=True, help="Old name of --db."),
) -> None:
    """List stored alerts, oldest first, with filters. A stored row that cannot be read is skipped and counted."""
    try:
        _check_output(output)
        query = AlertQuery(since=parse_since(since) if since else None,
                           min_severity=_severity(priority) if priority else None, rule=rule, namespace=namespace,
                           limit=limit)
        path = db or store or default_db_path()
        if not path.exists():
            raise UserError(f"{path}: no alert store yet (run the agent or `kubeguard replay` first)", code=1)
        with AlertStore(path) as alert_store:
            count = 0
            for alert in alert_store.alerts(query):
                count += 1
                print_alert(alert, output)
            skipped = alert_store.skipped_rows
    except UserError as exc:
        die(str(exc), exc.code)
    except StoreError as exc:
        die(str(exc), 1)
    if skipped:
        warn(f"{skipped} stored alert row(s) could not be read and were skipped")
    if output != "json":
        stderr.print(f"kubeguard: {count} alert(s)", markup=False)


def _severity(text: str) -> Severity:
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise UserError(f"--priority: {exc}") from exc
