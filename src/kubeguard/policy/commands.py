"""`kubeguard policy show | export | apply | diff | mode | networkpolicy`: workload policies as files.

All of them work on the agent's ``--policy-dir``; a running agent picks changes up within a second.
A WORKLOAD argument is ``NAMESPACE/KIND/NAME`` or a shell-style pattern over those names (``shop/*``,
``*/Deployment/*``: ``*`` also crosses ``/``) that selects every workload the directory knows.
Bad input (a malformed file, an unknown workload name) is one line naming file:line, exit 2, and
nothing is changed.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

import typer
import yaml

from kubeguard.cliutil import UserError, die, stdout
from kubeguard.cluster.owners import WorkloadRef
from kubeguard.policy.document import MODES, PolicyError, WorkloadPolicy, dump_documents, load_file
from kubeguard.policy.netpol import network_policies
from kubeguard.policy.store import PolicyStore

policy_app = typer.Typer(help="Workload policies: show, export, apply, diff, change modes.", no_args_is_help=True)
WORKLOADS_HELP = "NAMESPACE/KIND/NAME, or a pattern such as 'shop/*' (default: all)."
DIR_OPTION = typer.Option(..., "--policy-dir", envvar="KUBEGUARD_POLICY_DIR", help="The agent's policy directory.")


def _store(directory: Path) -> PolicyStore:
    if not directory.is_dir():
        raise UserError(f"{directory}: policy directory not found")
    store = PolicyStore(directory)
    store.open()
    return store


def is_pattern(workload: str) -> bool:
    """True when `workload` is a shell-style pattern (``*``, ``?``, ``[...]``), not one workload's name."""
    return any(c in workload for c in "*?[")


def _parse(workload: str) -> WorkloadRef:
    try:
        return WorkloadRef.parse(workload)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _matching(store: PolicyStore, pattern: str) -> list[WorkloadRef]:
    """The workloads the directory knows (learned or hand-written) whose name matches `pattern`; UserError
    when none does."""
    refs = [r for r in store.workloads() if fnmatchcase(str(r), pattern)]
    if not refs:
        raise UserError(f"{pattern}: no workload in {store.directory} matches")
    return refs


def _effective(store: PolicyStore, workload: str | None) -> list[WorkloadPolicy]:
    refs = store.workloads()
    if workload and is_pattern(workload):
        refs = _matching(store, workload)
    elif workload:
        wanted = _parse(workload)
        if wanted not in refs:
            raise UserError(f"{workload}: no policy for this workload in {store.directory}")
        refs = [wanted]
    return [p for p in (store.effective(r) for r in refs) if p is not None]


def _run(fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except (UserError, PolicyError) as exc:
        die(str(exc), getattr(exc, "code", 2))


@policy_app.command("show")
def show(policy_dir: Path = DIR_OPTION,
         workload: str | None = typer.Argument(None, help=WORKLOADS_HELP)) -> None:
    """One line per workload: mode and rule counts (problems of refused files below)."""

    def go() -> None:
        store = _store(policy_dir)
        for policy in _effective(store, workload):
            stdout.print(f"{policy.workload}  mode={policy.mode}  zeroDrift={bool(policy.zero_drift)}  "
                         f"processes={len(policy.processes)} scripts={len(policy.scripts)} files={len(policy.files)} "
                         f"egress={len(policy.egress)} "
                         f"ingress={len(policy.ingress)} listen={len(policy.listen)}"
                         f"{'  (hand-written)' if policy.workload in store.user else ''}", markup=False)
        for problem in store.errors.values():
            stdout.print(f"refused: {problem}", markup=False)

    _run(go)


@policy_app.command("export")
def export(policy_dir: Path = DIR_OPTION,
           workload: str | None = typer.Argument(None, help=WORKLOADS_HELP),
           output: Path | None = typer.Option(None, "-o", "--output", help="Write here instead of stdout.")) -> None:
    """The policies in force (learned + hand-written) as WorkloadPolicy YAML."""

    def go() -> None:
        text = dump_documents(_effective(_store(policy_dir), workload))
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text)

    _run(go)


@policy_app.command("apply")
def apply(file: Path = typer.Argument(..., help="WorkloadPolicy YAML (one or more documents)."),
          policy_dir: Path = DIR_OPTION) -> None:
    """Validate FILE and put its policies in the directory (each replaces that workload's hand-written one)."""

    def go() -> None:
        policies = load_file(file)  # the whole file or nothing
        if not policies:
            raise UserError(f"{file}:1: no WorkloadPolicy documents")
        store = _store(policy_dir)
        for policy in policies:
            path = store.write_user(policy)
            stdout.print(f"{policy.workload}: applied ({path.name})", markup=False)

    _run(go)


@policy_app.command("mode")
def mode(workload: str = typer.Argument(..., help="NAMESPACE/KIND/NAME, or a pattern ('shop/*', '*') for every "
                                                  "workload the directory knows that matches it."),
         new_mode: str = typer.Argument(..., metavar="MODE", help="discover, monitor or protect."),
         policy_dir: Path = DIR_OPTION,
         zero_drift: bool | None = typer.Option(None, "--zero-drift/--no-zero-drift",
                                                help="Also block executables written after the container started.")
         ) -> None:
    """Switch a workload's mode, or every matching workload's (kept in its hand-written policy, which wins over
    learning)."""

    def go() -> None:
        if new_mode not in MODES:
            raise UserError(f"mode {new_mode!r}: expected one of {', '.join(MODES)}")
        store = _store(policy_dir)
        refs = _matching(store, workload) if is_pattern(workload) else [_parse(workload)]
        for ref in refs:
            user = store.user.get(ref)
            policy = user.copy() if user is not None else WorkloadPolicy(ref)
            policy.mode = new_mode
            if zero_drift is not None:
                policy.zero_drift = zero_drift
            store.write_user(policy)
            stdout.print(f"{ref}: mode {new_mode}" + ("" if ref in store.learned else " (no pods seen yet: kept "
                                                       "until the workload appears)"), markup=False)

    _run(go)


@policy_app.command("diff")
def diff(old: Path = typer.Argument(..., help="An earlier export."),
         new: Path = typer.Argument(..., help="A later export.")) -> None:
    """Rules added (+) and removed (-) between two exports; exit 1 when they differ."""
    try:
        before = {p.workload: p for p in load_file(old)}
        after = {p.workload: p for p in load_file(new)}
    except PolicyError as exc:
        die(str(exc))
    changed = False
    for ref in sorted(set(before) | set(after)):
        old_keys = before[ref].rule_keys() if ref in before else set()
        new_keys = after[ref].rule_keys() if ref in after else set()
        for key in sorted(new_keys - old_keys):
            typer.echo(f"+ {ref} {key}")
            changed = True
        for key in sorted(old_keys - new_keys):
            typer.echo(f"- {ref} {key}")
            changed = True
    raise typer.Exit(1 if changed else 0)


@policy_app.command("networkpolicy")
def networkpolicy(policy_dir: Path = DIR_OPTION,
                  workload: str | None = typer.Argument(None, help=WORKLOADS_HELP)) -> None:
    """The learned network part as Kubernetes NetworkPolicy YAML (pods selected by their labels)."""

    def go() -> None:
        store = _store(policy_dir)
        docs = network_policies(_effective(store, workload), _effective(store, None))
        typer.echo(yaml.safe_dump_all(docs, sort_keys=False) if docs else "", nl=False)

    _run(go)
