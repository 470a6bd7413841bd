"""The one entry point: `kubeguard scan | paths | rules | replay | alerts | dpi | agent | demo ...`.

Each lane keeps its command code in its own package (`kubeguard.<lane>.commands`); this module
only wires them into one Typer app and turns user errors into one line and an exit code.
"""

from __future__ import annotations

import typer

from kubeguard import __version__
from kubeguard.cliutil import log_to_stderr, run_cli

app = typer.Typer(
    name="kubeguard",
    help="Kubernetes security: posture and attack paths, runtime detection, deep packet inspection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kubeguard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Kubernetes security: posture and attack paths, runtime detection, deep packet inspection."""
    log_to_stderr()


# Lanes register their commands below (one import and one line each).
from kubeguard.agent.commands import agent  # noqa: E402
from kubeguard.console.commands import console  # noqa: E402
from kubeguard.coverage.commands import coverage  # noqa: E402
from kubeguard.net.capture_commands import capture_command  # noqa: E402
from kubeguard.net.commands import dpi  # noqa: E402
from kubeguard.net.flowmap_commands import flows_command  # noqa: E402
from kubeguard.net.netpol_commands import netpol_app  # noqa: E402
from kubeguard.policy.commands import policy_app  # noqa: E402
from kubeguard.posture.commands import scan  # noqa: E402
from kubeguard.posture.paths.commands import paths_command  # noqa: E402
from kubeguard.response.commands import firewall  # noqa: E402
from kubeguard.response.quarantine_commands import quarantine_command  # noqa: E402
from kubeguard.rules.commands import alerts, replay, rules_app  # noqa: E402
from kubeguard.scenarios.commands import demo  # noqa: E402

app.command("dpi")(dpi)
app.command("capture")(capture_command)
app.command("flows")(flows_command)
app.command("agent")(agent)
app.command("firewall")(firewall)
app.command("console")(console)
app.command("scan")(scan)
app.command("paths")(paths_command)
app.command("demo")(demo)
app.add_typer(rules_app, name="rules")
app.add_typer(policy_app, name="policy")
app.add_typer(netpol_app, name="netpol")
app.command("quarantine")(quarantine_command)
app.command("replay")(replay)
app.command("alerts")(alerts)
app.command("coverage")(coverage)


def main() -> None:
    """The `kubeguard` program: the app with standard output guarded (write errors: one line, exit 3)."""
    run_cli(lambda: app(prog_name="kubeguard"))
