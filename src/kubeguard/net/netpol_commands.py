"""`kubeguard netpol`: NetworkPolicy check (allowed / denied, and by which policies) and generation from flows."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import typer

from kubeguard.cliutil import UserError, die, stdout, warn
from kubeguard.cluster.snapshot import Snapshot
from kubeguard.net.netpol import Endpoint, NetpolError, NetpolEvaluator

netpol_app = typer.Typer(help="Kubernetes NetworkPolicy: check a connection, generate policies from flows.",
                         no_args_is_help=True)


@netpol_app.command("check")
def check(
    paths: list[Path] = typer.Argument(None, help="Manifest files or folders, or `kubectl get -o json` dumps.",
                                       show_default=False),
    source: str = typer.Option(..., "--from", help="NS/POD (a Pod or a controller such as a Deployment) or an IP."),
    target: str = typer.Option(..., "--to", help="NS/POD:PORT[/PROTO] or IP:PORT[/PROTO]; PORT may be a named "
                                                  "container port; PROTO is TCP (default), UDP or SCTP."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", help="Read the live cluster of this kubeconfig."),
    context: str = typer.Option(None, "--context", help="kubeconfig context (default: the current one)."),
    output: str = typer.Option("text", "-o", "--output", help="text | json"),
) -> None:
    """Is a connection allowed by the NetworkPolicies? Egress of the source and ingress of the destination.

    Exit codes: 0 allowed, 1 denied, 2 bad input (an invalid NetworkPolicy is named by file:line).
    """
    try:
        if output not in ("text", "json"):
            raise UserError(f"--output: expected text or json, got {output!r}")
        evaluator = NetpolEvaluator(load_snapshot(paths or [], kubeconfig, context))
        if evaluator.problems:
            for problem in evaluator.problems[1:]:
                warn(str(problem))
            raise UserError(str(evaluator.problems[0]))
        src = endpoint(evaluator, source, "--from")
        where, port_text, protocol = split_target(target)
        dst = endpoint(evaluator, where, "--to")
        port: int | str = int(port_text) if port_text.isdigit() else port_text
        verdict = evaluator.evaluate(src, dst, port, protocol)
    except (UserError, NetpolError) as exc:
        die(str(exc), exc.code)
    if output == "json":
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        word = "[bold green]allowed[/]" if verdict.allowed else "[bold red]denied[/]"
        stdout.print(f"{word} {verdict.src} -> {verdict.dst}:{verdict.port}/{verdict.protocol}")
        stdout.print(f"  deciding: {', '.join(verdict.deciding) or 'none (no policy isolates either side)'}",
                     markup=False)
        stdout.print(f"  {verdict.reason}", markup=False)
    raise typer.Exit(0 if verdict.allowed else 1)


def load_snapshot(paths: list[Path], kubeconfig: Path | None, context: str | None) -> Snapshot:
    """Manifests and/or the live cluster (when --kubeconfig/--context, or no paths, are given)."""
    from kubeguard.cluster.loader import load_paths

    snapshot = Snapshot()
    for path in paths:
        if not path.exists():
            raise UserError(f"{path}: no such file or directory")
    if paths:
        load_paths(paths, snapshot)
    if not paths or kubeconfig is not None or context is not None:
        from kubeguard.cluster.live import load_live

        live = load_live(kubeconfig, context)
        snapshot.extend(live.objects)
        snapshot.problems.extend(live.problems)
        snapshot.cluster = live.cluster
    for problem in snapshot.problems:
        warn(str(problem))
    return snapshot


def split_target(text: str) -> tuple[str, str, str]:
    """NS/POD:PORT[/PROTO] (or IP:PORT, [IPv6]:PORT) -> (where, port, protocol)."""
    head, sep, tail = text.rpartition(":")
    if not sep or not head or not tail:
        raise UserError(f"--to {text!r}: expected NS/POD:PORT[/PROTO] or IP:PORT[/PROTO]")
    port, _, protocol = tail.partition("/")
    if not port:
        raise UserError(f"--to {text!r}: no port")
    return head.strip("[]"), port, (protocol or "TCP").upper()


def endpoint(evaluator: NetpolEvaluator, text: str, flag: str) -> Endpoint:
    """A pod (NS/NAME) of the snapshot, or an IP (the pod that has it, else an external address)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return evaluator.by_ip(text)
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name:
        raise UserError(f"{flag} {text!r}: expected NS/POD or an IP address")
    found = evaluator.pod(namespace, name)
    if found is None:
        raise UserError(f"{flag} {text!r}: no such pod or workload in the manifests")
    return found
