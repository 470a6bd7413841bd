"""The Tesla 2018 kill chain, one step per lane of kubeguard: the steps `kubeguard demo` runs.

`STEPS` is the ordered list. A step is a function `(DemoContext) -> bool` (True when it showed
what it should); it prints with `ctx.console` and must not raise for a missing optional input
(say so and return True). The lanes know nothing of the demo: their steps live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from kubeguard.cluster.loader import load_path
from kubeguard.cluster.podmap import PodMap
from kubeguard.cluster.snapshot import Snapshot
from kubeguard.model import Alert, Finding
from kubeguard.net.capture import read_file
from kubeguard.net.dpi_engine import Engine
from kubeguard.posture.check_runner import run_checks
from kubeguard.posture.paths.graph import CLOUD_DATA, CLUSTER_ADMIN, COMPUTE_HIJACK, INTERNET
from kubeguard.posture.paths.query import analyse
from kubeguard.posture.paths.render import print_answers
from kubeguard.posture.report import ScanResult, render_table
from kubeguard.rules.replay import ReplayStats, read_events
from kubeguard.rules.rule_engine import RuleEngine

HERE = Path(__file__).resolve().parent
CAPTURE = HERE / "tesla_miner.pcap"  # the miner's traffic (net/tesla_capture.py writes it)
PODS = HERE / "tesla_pods.json"  # the pods of that capture

# The findings `kubeguard scan examples/tesla` must show: each stage of the 2018 breach.
TESLA_CHECKS = ("unauthenticated-console", "rbac-cluster-admin", "secret-in-env", "no-resource-limits",
                "missing-network-policy", "exposed-service")
# The DPI alerts the miner's traffic must raise.
DPI_EXPECTED = {"Stratum mining protocol", "Connection to a known mining pool"}
# Each stage of the runtime chain and the default rule that must catch it.
TESLA_RUNTIME_RULES = (
    "Terminal shell in container",
    "Read service account token",
    "Contact K8S API Server From Container",
    "Contact cloud metadata service from container",
    "Read cloud credentials file",
    "Detect crypto miners",
    "Outbound connection to mining pool",
)


def examples_dir() -> Path:
    """examples/ of the source tree (editable install or run from the repo), else ./examples."""
    here = Path(__file__).resolve().parents[3] / "examples"
    if not here.is_dir():
        return Path("examples")
    try:  # shorter file names in the output when run from the repository
        return here.relative_to(Path.cwd().resolve())
    except ValueError:
        return here


@dataclass(slots=True)
class DemoContext:
    """What steps share: where the examples are, the console, and notes for later steps."""

    examples: Path
    console: Console
    notes: dict[str, object] = field(default_factory=dict)


def tesla_scan(ctx: DemoContext) -> tuple[Snapshot, list[Finding]] | None:
    """The Tesla example cluster and its scan findings (scanned once per demo); None when it is not there."""
    noted = ctx.notes.get("tesla_scan")
    if isinstance(noted, tuple):
        return noted
    target = ctx.examples / "tesla"
    if not target.is_dir():
        return None
    snapshot = load_path(target)
    scanned = (snapshot, run_checks(snapshot))
    ctx.notes["tesla_scan"] = scanned
    return scanned


def scan_tesla(ctx: DemoContext) -> bool:
    """Step 1: posture scan of the hand-written Tesla cluster."""
    scanned = tesla_scan(ctx)
    if scanned is None:
        ctx.console.print(f"{ctx.examples / 'tesla'} is not there: nothing to scan")
        return True
    snapshot, findings = scanned
    render_table(ScanResult(findings, snapshot.problems, str(ctx.examples / "tesla")), ctx.console)
    found = {f.check for f in findings if not f.suppressed}
    missing = [c for c in TESLA_CHECKS if c not in found]
    ctx.console.print(f"Tesla breach stages found: {len(TESLA_CHECKS) - len(missing)}/{len(TESLA_CHECKS)}"
                      + (f" (missing: {', '.join(missing)})" if missing else ""))
    return not missing


def tesla_attack_paths(ctx: DemoContext) -> bool:
    """Attack paths: the Tesla kill chain from the internet to cloud data and compute hijack, with choke points."""
    scanned = tesla_scan(ctx)
    if scanned is None:
        ctx.console.print(f"{ctx.examples / 'tesla'} is not there: no attack paths to show")
        return True
    snapshot, findings = scanned
    graph, answers = analyse(snapshot, [f for f in findings if not f.suppressed], INTERNET,
                             [CLOUD_DATA, COMPUTE_HIJACK], limit=3)
    print_answers(ctx.console, graph, answers)
    chain = all(a.paths and CLUSTER_ADMIN in a.paths[0].nodes for a in answers)
    closed = all(a.cut and a.cut_complete for a in answers)
    ctx.console.print(f"Tesla chain internet -> cluster-admin -> cloud data / compute hijack: "
                      f"{'found' if chain else 'NOT found'}; smallest fix: "
                      + ", ".join(sorted({f for a in answers for f in a.cut})))
    return chain and closed


def inspect_capture(capture: Path = CAPTURE, pods: Path = PODS) -> tuple[list[Alert], list[dict[str, object]]]:
    """Alerts and flow records of the bundled capture."""
    alerts: list[Alert] = []
    flows: list[dict[str, object]] = []
    engine = Engine(podmap=PodMap.from_file(pods), on_alert=alerts.append, on_flow=flows.append)
    engine.feed_frames(read_file(capture))
    engine.finish()
    return alerts, flows


def dpi_tesla_miner(ctx: DemoContext) -> bool:
    """Step: DPI of the cluster's traffic finds the hidden miner (Stratum on port 8443 behind a CDN)."""
    if not CAPTURE.exists():
        ctx.console.print(f"{CAPTURE} is not there: nothing to inspect")
        return True
    alerts, flows = inspect_capture()
    for flow in flows:
        ctx.console.print(f"flow {flow['fd.cip']}:{flow['fd.cport']} -> {flow['fd.sip']}:{flow['fd.sport']} "
                          f"{flow['fd.l4proto']}/{flow['net.proto']}", markup=False)
    for alert in alerts:
        ctx.console.print(f"[bold red]{alert.priority}[/] {escape(alert.output)}")
    ctx.notes["dpi_alerts"] = alerts
    found = {a.rule for a in alerts if a.workload and a.workload.pod.startswith("kubernetes-dashboard")}
    return found >= DPI_EXPECTED


def tesla_events_path() -> Path:
    """The Tesla attack's kernel events (replay format), shipped with the package."""
    return Path(str(resources.files("kubeguard.scenarios").joinpath("tesla_events.jsonl")))


def replay_tesla_events(ctx: DemoContext) -> bool:
    """Runtime: replay the Tesla attack's kernel events through kubeguard's default rules."""
    engine = RuleEngine.load(hostname="demo-node")
    stats = ReplayStats()
    fired: list[str] = []
    for event in read_events(tesla_events_path(), stats, lambda msg: ctx.console.print(msg, markup=False)):
        for alert in engine.process(event):
            fired.append(alert.rule)
            ctx.console.print(f"[bold]{alert.priority:<8}[/] {alert.rule}")
            ctx.console.print(f"    {alert.output.split(': ', 1)[-1]}", markup=False)
    missing = [r for r in TESLA_RUNTIME_RULES if r not in fired]
    ctx.notes["tesla_runtime_alerts"] = fired
    ctx.console.print(f"Runtime stages caught: {len(TESLA_RUNTIME_RULES) - len(missing)}/{len(TESLA_RUNTIME_RULES)}"
                      f" ({len(fired)} alerts from {stats.events} events)"
                      + (f"; missing: {', '.join(missing)}" if missing else ""))
    return not missing


Step = Callable[[DemoContext], bool]
STEPS: list[Step] = [scan_tesla, tesla_attack_paths, dpi_tesla_miner, replay_tesla_events]


def run_demo(examples: Path | None, console: Console) -> int:
    """Run every step in order; the exit code is 1 if any step failed."""
    ctx = DemoContext(examples or examples_dir(), console)
    failed = []
    for number, step in enumerate(STEPS, 1):
        title = (step.__doc__ or step.__name__).strip().splitlines()[0]
        console.print(Rule(f"{number}. {title}"))
        if not step(ctx):
            failed.append(step.__name__)
    if failed:
        console.print(f"demo: steps that did not show what they should: {', '.join(failed)}")
        return 1
    console.print("demo: all steps done")
    return 0
