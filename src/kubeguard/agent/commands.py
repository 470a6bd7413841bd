"""`kubeguard agent`: run a kernel sensor, attribute events to pods, apply the rules, emit alerts.

Status goes to stderr (which sensor runs, what it cannot see, a summary at exit); alerts go to
stdout as Falco JSON lines unless ``--alerts-out FILE`` is given. SIGTERM/SIGINT stop it cleanly:
the sensor is detached, both queues drained, the event log, store and outputs flushed.

Exit codes: 0 clean stop; 1 the sensor cannot start; 2 bad input (flag, file). A sensor that dies
later is restarted by the Supervisor, and the blind interval is raised as an alert.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import typer

from kubeguard.agent.config import AgentConfig
from kubeguard.agent.enrich import Enricher
from kubeguard.agent.firewall import describe, start_firewall
from kubeguard.agent.flowship import FlowAggregator
from kubeguard.agent.metrics import AgentMetrics, MetricsServer
from kubeguard.agent.outputs import JsonLinesOutput, Output, SyslogOutput, WebhookOutput, parse_header
from kubeguard.agent.pipeline import Pipeline, RuleMatcher
from kubeguard.agent.podsource import SA_TOKEN, ApiPodSource, FilePodSource, KubeletPodSource, PodSource
from kubeguard.agent.sensorrun import SensorRunner, sensor_factory
from kubeguard.agent.shipper import ConsoleOutput, read_token, tls_context
from kubeguard.agent.spool import Spool
from kubeguard.agent.writededupe import WriteDeduper
from kubeguard.cliutil import UserError, die, stderr
from kubeguard.cluster.cgroups import identity_of_pid
from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Alert, Event
from kubeguard.policy.document import PolicyError
from kubeguard.policy.enforce import Enforcer
from kubeguard.policy.policy_engine import PolicyEngine, cgroup_start_time
from kubeguard.policy.running import running_execs
from kubeguard.policy.store import PolicyStore
from kubeguard.response.inline import InlineFirewall
from kubeguard.response.iptables import IptablesError
from kubeguard.response.remote import QuarantineApplier
from kubeguard.rules import RuleEngine, RuleLoadError
from kubeguard.rules.commands import OPTION_HELP, selections_of
from kubeguard.rules.host_names import HOST_NAMES
from kubeguard.store.alerts import StoreError, default_db_path


def agent(
    rules: list[Path] = typer.Option([], "--rules", help="Extra Falco rules file (repeatable)."),
    no_default_rules: bool = typer.Option(False, "--no-default-rules", help="Load only the --rules files."),
    option: list[str] = typer.Option([], "-o", "--option", help=OPTION_HELP),
    resolve_names: bool = typer.Option(
        False, "--resolve-names",
        help="Resolve the host names rules compare addresses with (fd.sip.name ...; e.g. mining-pool domains) "
             "through the node's resolver, as Falco does: this sends DNS queries for those names from the node. "
             "Without it only the API server's service names match (KUBERNETES_SERVICE_HOST)."),
    events_out: Path | None = typer.Option(None, "--events-out", help="Write every enriched event (replay format)."),
    alerts_out: str = typer.Option("-", "--alerts-out", help="Falco JSON lines file for alerts ('-' = stdout)."),
    pods: Path | None = typer.Option(None, "--pods", help="Pods map file (Snapshot JSON or a List of Pods)."),
    sensor: str = typer.Option("ebpf", "--sensor", help="ebpf (bpftrace) or proc (netlink proc connector)."),
    fanotify: bool = typer.Option(True, "--fanotify/--no-fanotify",
                                  help="Also watch file writes below /etc and binary dirs through fanotify."),
    db: Path | None = typer.Option(None, "--db", help="Alert store (SQLite); default $KUBEGUARD_DB."),
    store: Path | None = typer.Option(None, "--store", hidden=True, help="Old name of --db."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on this port."),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Metrics bind address."),
    metrics_token_file: Path | None = typer.Option(None, "--metrics-token-file", help="Bearer token for /metrics."),
    webhook: str | None = typer.Option(None, "--webhook", help="POST each alert (Falco JSON) to this URL, with retry."),
    webhook_header: list[str] = typer.Option([], "--webhook-header", help="'Name: value' header for the webhook."),
    syslog: str | None = typer.Option(None, "--syslog", help="Send alerts to syslog: udp://HOST:PORT or unix:///dev/log."),
    node: str = typer.Option("", "--node", envvar="NODE_NAME", help="This node's name (pod lookups, k8s.node.name)."),
    queue_size: int = typer.Option(65536, "--queue-size", help="Events buffered between sensor and rules."),
    drop_report_interval: float = typer.Option(10.0, "--drop-report-interval", help="Seconds between drop alerts."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    policy_dir: Path | None = typer.Option(None, "--policy-dir", help="Learn and enforce workload policies "
                                           "(discover / monitor / protect); learned and hand-written YAML here."),
    quiet_window: float = typer.Option(3600.0, "--quiet-window", help="Seconds without new behaviour before a "
                                       "workload moves from discover to monitor."),
    protect_after: float | None = typer.Option(None, "--protect-after", help="Seconds in monitor without a "
                                               "deviation before a workload moves to protect (default: never; "
                                               "a mode set by hand is never changed)."),
    new_workload_mode: str | None = typer.Option(None, "--new-workload-mode", help="Mode of a workload seen for "
                                                 "the first time: discover (default), or monitor / protect with "
                                                 "nothing learned (every policy a reviewed file; with protect a "
                                                 "new pod's first exec is held until it is judged)."),
    enforce: bool = typer.Option(True, "--enforce/--no-enforce", help="Block in the kernel in protect mode "
                                 "(--no-enforce: protect only alerts)."),
    firewall: bool = typer.Option(False, "--firewall", help="Inline L7 firewall for this node's pods (NFQUEUE; "
                                  "docs/firewall.md)."),
    firewall_selector: str | None = typer.Option(None, "--firewall-selector", help="Label selector of the inline "
                                                 "pods (default: every pod, or the allow-list's)."),
    firewall_allow_list: Path | None = typer.Option(None, "--firewall-allow-list", help="Protocol allow-list YAML."),
    firewall_mode: str = typer.Option("monitor", "--firewall-mode", help="Mode of inline pods without a policy "
                                      "mode: discover, monitor or protect."),
    firewall_queue: int = typer.Option(7, "--firewall-queue", help="NFQUEUE number."),
    firewall_fail_closed: bool = typer.Option(False, "--firewall-fail-closed", help="Drop instead of pass when "
                                              "the queue is full or a packet cannot be inspected."),
    console_url: str | None = typer.Option(None, "--console", help="Ship alerts and heartbeats to this console "
                                           "(https://...); spooled on disk while it is unreachable."),
    console_token_file: Path | None = typer.Option(None, "--console-token-file",
                                                   help="File holding this node's console API token."),
    console_ca: Path | None = typer.Option(None, "--console-ca", help="CA certificate of the console (PEM)."),
    console_cert: Path | None = typer.Option(None, "--console-cert", help="Client certificate for mTLS (PEM)."),
    console_key: Path | None = typer.Option(None, "--console-key", help="Client key for mTLS (PEM)."),
    console_spool: Path | None = typer.Option(None, "--console-spool",
                                              help="Spool file (default: console-spool.db next to the store)."),
    console_spool_limit: int = typer.Option(100_000, "--console-spool-limit", help="Most alerts kept spooled."),
) -> None:
    """Run the node agent: kernel events -> pods -> rules -> alerts (store, stdout/file, webhook, syslog)."""
    config = AgentConfig(
        rules=rules, defaults=not no_default_rules, rule_options=option, resolve_names=resolve_names,
        events_out=events_out, alerts_out=alerts_out, pods=pods,
        sensor=sensor, fanotify=fanotify, store=db or store or default_db_path(), metrics_port=metrics_port,
        metrics_host=metrics_host, webhook=webhook, webhook_headers=webhook_header, syslog=syslog, node=node,
        queue_size=queue_size, drop_report_interval=drop_report_interval, duration=duration,
        policy_dir=policy_dir, quiet_window=quiet_window, protect_after=protect_after,
        new_workload_mode=new_workload_mode or "discover", enforce=enforce, firewall=firewall,
        firewall_selector=firewall_selector, firewall_allow_list=firewall_allow_list, firewall_mode=firewall_mode,
        firewall_queue=firewall_queue, firewall_fail_closed=firewall_fail_closed,
        console=console_url, console_ca=console_ca, console_cert=console_cert, console_key=console_key,
        console_spool=console_spool, console_spool_limit=console_spool_limit,
    )
    try:
        _needs("--console", console_url is not None, {"--console-token-file": console_token_file,
                                                      "--console-ca": console_ca, "--console-cert": console_cert,
                                                      "--console-key": console_key})
        _needs("--firewall", firewall, {"--firewall-allow-list": firewall_allow_list})
        _needs("--policy-dir", policy_dir is not None, {"--protect-after": protect_after,
                                                        "--new-workload-mode": new_workload_mode})
        config.metrics_token = _metrics_token(metrics_token_file)
        if console_token_file is not None:
            config.console_token = read_token(console_token_file)
        code = run_agent(config)
    except UserError as exc:
        die(str(exc), exc.code)
    raise typer.Exit(code)


def _needs(flag: str, given: bool, dependents: dict[str, object]) -> None:
    """UserError when a flag that only `flag` reads is given without it (it would be ignored silently)."""
    orphans = [name for name, value in dependents.items() if value is not None]
    if orphans and not given:
        raise UserError(f"{', '.join(orphans)} only apply with {flag}, which is not given")


def _metrics_token(path: Path | None) -> str | None:
    if path is None:
        return os.environ.get("KUBEGUARD_METRICS_TOKEN") or None
    return read_token(path, "metrics token")


def load_rules(paths: list[Path], defaults: bool, options: list[str] | None = None) -> RuleMatcher:
    """The rule engine with the default rules (unless disabled) plus `paths`, then Falco's `rules[]`
    selection `options` (`-o rules[].enable.rule=NAME`); UserError on bad files or options.

    No rules at all (``--no-default-rules`` without ``--rules``) runs the agent as a recorder:
    events are enriched and logged, only the agent's own alerts (drops, gaps) are raised.
    """
    selections = selections_of(options or [])
    if not paths and not defaults:
        return NoRules()
    try:
        engine = RuleEngine.load(paths or None, include_defaults=defaults, selections=selections)
    except RuleLoadError as exc:  # one line: the first problem as file:line, and how many more
        raise UserError(str(exc)) from exc
    for w in engine.warnings:
        if w.startswith("option "):
            stderr.print(f"kubeguard agent: warning: {w}", markup=False)
    stderr.print(f"kubeguard agent: {len(engine.rules)} rules loaded"
                 f"{f' ({len(engine.warnings)} load warnings)' if engine.warnings else ''}", markup=False)
    return engine


class NoRules:
    """The empty rule set."""

    def process(self, event: Event) -> list[Alert]:
        return []


def pod_source(pods: Path | None, node: str) -> PodSource:
    """--pods FILE; else the kubelet (with a service-account token) then the API server when in a cluster."""
    if pods is not None:
        source: PodSource = FilePodSource(pods)
        source.refresh(force=True)
        if source.errors:
            raise UserError(source.last_error)
        return source
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        if SA_TOKEN.exists():
            kubelet = KubeletPodSource()
            if kubelet.refresh(force=True):
                return kubelet
        api = ApiPodSource(node)
        api.refresh(force=True)
        if api.errors:
            stderr.print(f"kubeguard agent: warning: {api.last_error}; pods will show as container ids only",
                         markup=False)
        return api
    stderr.print("kubeguard agent: no pod source (--pods FILE, kubelet or API server): "
                 "containers are named by id only", markup=False)
    return PodSource()


def build_outputs(alerts_out: str, webhook: str | None, headers: list[str], syslog: str | None) -> list[Output]:
    outputs: list[Output] = [JsonLinesOutput(None if alerts_out == "-" else Path(alerts_out))]
    if webhook:
        outputs.append(WebhookOutput(webhook, headers=dict(parse_header(h) for h in headers)))
    if syslog:
        outputs.append(SyslogOutput(syslog))
    return outputs


def console_output(config: AgentConfig, health: Callable[[], dict[str, object]]) -> ConsoleOutput:
    """The console shipper with its disk spool (default: console-spool.db next to the store)."""
    spool_path = config.console_spool or (config.store or default_db_path()).parent / "console-spool.db"
    try:
        spool = Spool(spool_path, config.console_spool_limit)
    except StoreError as exc:
        raise UserError(str(exc), code=1) from exc
    context = tls_context(config.console_ca, config.console_cert, config.console_key)
    assert config.console and config.console_token
    try:
        flows = Spool(spool_path, config.console_spool_limit, table="flow_spool")
    except StoreError as exc:
        raise UserError(str(exc), code=1) from exc
    output = ConsoleOutput(config.console, config.console_token, spool, context, health=health, flows=flows)
    stderr.print(f"kubeguard agent: shipping alerts to {output.base} ({len(spool)} spooled from before)",
                 markup=False)
    return output


def _health(pipeline: Pipeline, runners: list[SensorRunner]) -> Callable[[], dict[str, object]]:
    """Figures for the console heartbeat: events/s since the last call, drops (queue + kernel)."""
    last = [time.monotonic(), 0]

    def figures() -> dict[str, object]:
        now, processed = time.monotonic(), pipeline.processed
        rate = (processed - last[1]) / max(now - last[0], 1e-3)
        last[0], last[1] = now, processed
        lost = sum(int(s.get("lost", 0)) for s in _stats(runners).values())
        return {"events_per_s": round(rate, 1), "drops": pipeline.total_dropped + lost,
                "alerts": pipeline.alerts_raised, "sensors": [r.name for r in runners]}

    return figures


def run_agent(config: AgentConfig) -> int:
    """The agent's main loop; returns the exit code. Raises UserError on bad input."""
    problems = config.problems()
    if problems:
        raise UserError(problems[0])
    node = config.node
    outputs = build_outputs(config.alerts_out, config.webhook, config.webhook_headers, config.syslog)
    health: list[Callable[[], dict[str, object]]] = []
    if config.console:
        outputs.append(console_output(config, lambda: health[0]() if health else {}))
    source = pod_source(config.pods, node)
    ruleset = load_rules(config.rules, config.defaults, config.rule_options)
    # fd.sip.name and friends: the API server's service names from this pod's own environment (kubelet sets
    # KUBERNETES_SERVICE_HOST); other names through the node's resolver in the background, when asked
    HOST_NAMES.set_cluster_names(os.environ)
    if config.resolve_names:
        HOST_NAMES.start()
    enricher = Enricher(source, node=node)
    # (policies read it too: the code an allowed program loads through its environment)
    enricher.read_env = (isinstance(ruleset, RuleEngine) and ruleset.reads_field("proc.env")) or bool(config.policy_dir)
    enricher.read_duration = isinstance(ruleset, RuleEngine) and ruleset.reads_field("proc.duration")
    if isinstance(ruleset, RuleEngine):  # Falco's files read it on open events only (proc_is_new)
        enricher.duration_types = ruleset.types_reading("proc.duration")
    metrics = AgentMetrics()
    factory = sensor_factory(config.sensor)
    if config.sensor == "ebpf" and isinstance(ruleset, RuleEngine):  # probes no loaded rule needs are left out
        from kubeguard.sensors.ebpf import OPTIONAL_FIELD_SECTIONS, OPTIONAL_SECTIONS

        skip = tuple(name for name, calls in OPTIONAL_SECTIONS.items()
                     if not any(ruleset.reads_evt_type(call) for call in calls)
                     and not (name == "sendto" and config.policy_dir))  # policies learn unconnected UDP peers
        skip += tuple(name for name, fields in OPTIONAL_FIELD_SECTIONS.items()
                      if not any(ruleset.reads_field(field) for field in fields)
                      and not (name == "execenv" and config.policy_dir))
        factory = functools.partial(factory, skip_sections=skip)
    runners: list[SensorRunner] = []
    pipeline = Pipeline(
        enricher, ruleset, outputs, store_path=config.store, events_out=config.events_out,
        metrics=metrics, queue_size=config.queue_size, drop_report_interval=config.drop_report_interval,
        sensor_stats=lambda: _stats(runners), hostname=node or socket.gethostname(),
    )
    policies = attach_policies(config, pipeline, source)
    health.append(_health(pipeline, runners))
    flows: FlowAggregator | None = None
    for output in outputs:
        if isinstance(output, ConsoleOutput):
            output.on_quarantines.append(QuarantineApplier(lambda: source.podmap))
            flows = FlowAggregator(output.send_flows, node or socket.gethostname())
            pipeline.on_event = flows.observe
    server = (MetricsServer(metrics, config.metrics_port, config.metrics_host, config.metrics_token)
              if config.metrics_port is not None else None)
    pipeline.start()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    emit = WriteDeduper(pipeline.submit) if config.fanotify else pipeline.submit
    inline: InlineFirewall | None = None
    try:
        runner = SensorRunner(factory, emit, pipeline.on_gap, metrics)
        try:
            runner.start()
        except UserError as exc:
            stderr.print(f"kubeguard: error: {exc}", markup=False)
            return 1
        runners.append(runner)
        if policies is not None:
            policies.start()
        if config.firewall:
            inline = start_firewall(config, pipeline, source, policies.engine.store if policies else None)
            stderr.print(f"kubeguard agent: {describe(inline)}", markup=False)
        if config.fanotify:
            _start_fanotify(runners, emit, pipeline, metrics)
        if server is not None:
            server.start()
            stderr.print(f"kubeguard agent: metrics on http://{config.metrics_host}:{server.port}/metrics",
                         markup=False)
        _announce(runners, source)
        deadline = time.monotonic() + config.duration if config.duration is not None else None
        while not stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            stop.wait(0.5 if remaining is None else min(0.5, remaining))
            for running in runners:
                running.refresh_health()
            if flows is not None:
                flows.flush()
    finally:
        if inline is not None:
            _stop_firewall(inline)
        if policies is not None:
            policies.stop()
        for running in runners:
            running.stop()
        if flows is not None:
            flows.flush(force=True)  # before the outputs close
        pipeline.stop()
        if policies is not None:
            policies.save()
        if server is not None:
            server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _summary(pipeline, runners)
    return 0


def _stop_firewall(inline: InlineFirewall) -> None:
    """Remove the firewall's rules (never leave them behind) and say what it did."""
    try:
        inline.stop()
    except IptablesError as exc:
        stderr.print(f"kubeguard agent: warning: {exc} (run `kubeguard firewall --cleanup --queue-num "
                     f"{inline.chains.queue_num}`)", markup=False)
    c = inline.firewall.counters
    stderr.print(f"kubeguard agent: firewall stopped; {c.packets} packets, {c.blocked_flows} flows blocked, "
                 f"{c.bypassed_flows} bypassed, {inline.counter.total} "
                 f"{'dropped' if inline.counter.fail_closed else 'passed'} uninspected; rules removed",
                 markup=False)


class AgentPolicies:
    """The policy engine in the pipeline plus, unless --no-enforce, the kernel enforcer."""

    def __init__(self, engine: PolicyEngine, enforcer: Enforcer | None) -> None:
        self.engine = engine
        self.enforcer = enforcer

    def start(self) -> None:
        if self.enforcer is not None:
            self.enforcer.start()

    def stop(self) -> None:
        if self.enforcer is not None:
            self.enforcer.stop()
            stderr.print(f"kubeguard agent: policy: enforcement stopped; {self.enforcer.kills} executions blocked, "
                         f"{self.enforcer.file_guard.denials} file opens denied", markup=False)
            for line in self.enforcer.file_guard.recent:
                stderr.print(f"kubeguard agent: policy: denied: {line[2:]}", markup=False)

    def save(self) -> None:
        try:
            self.engine.save()
        except OSError as exc:
            stderr.print(f"kubeguard agent: warning: cannot save learned policies: {exc.strerror}", markup=False)


def attach_policies(config: AgentConfig, pipeline: Pipeline, source: PodSource) -> AgentPolicies | None:
    """--policy-dir: load the policies (UserError on an unusable directory) and hook the engine in."""
    if config.policy_dir is None:
        return None
    store = PolicyStore(config.policy_dir)
    try:
        store.open()
    except PolicyError as exc:
        raise UserError(str(exc)) from exc
    for problem in store.errors.values():
        stderr.print(f"kubeguard agent: warning: policy: {problem} (refused)", markup=False)
    enricher = pipeline.enricher
    engine = PolicyEngine(store, lambda: source.podmap, quiet_window=config.quiet_window,
                          container_start=cgroup_start_time(enricher.cgroups.root, enricher.cgroups.path),
                          protect_after=config.protect_after, new_mode=config.new_workload_mode,
                          running=lambda uids, podmap: running_execs(uids, podmap, enricher.user_name,
                                                                     enricher.cgroups.root))
    own = identity_of_pid(os.getpid())
    if own is not None and own.pod_uid:  # the DaemonSet's pod: no policy learns, alerts on or kills the agent's own
        engine.exempt_pods = frozenset({own.pod_uid})
    pipeline.policy = engine
    pipeline.on_message = lambda line: stderr.print(f"kubeguard agent: {line}", markup=False)
    stderr.print(f"kubeguard agent: policy: {len(store.workloads())} workload policies from {config.policy_dir}; "
                 + (f"new workloads discover for {config.quiet_window:g}s" if config.new_workload_mode == "discover"
                    else f"new workloads start in {config.new_workload_mode}, nothing learned")
                 + (f", then protect after {config.protect_after:g}s in monitor without a deviation"
                    if config.protect_after is not None else ""), markup=False)

    def pods() -> PodMap:
        source.refresh()
        return source.podmap

    def pods_now() -> PodMap:  # a new pod cgroup: the kubelet lists its pod already
        source.refresh(force=True)
        return source.podmap

    enforcer = Enforcer(engine, pods, pipeline.on_message, reread_pods=pods_now) if config.enforce else None
    return AgentPolicies(engine, enforcer)


def _start_fanotify(runners: list[SensorRunner], emit: Callable[[Event], None], pipeline: Pipeline,
                    metrics: AgentMetrics) -> None:
    """Add the fanotify sensor next to the process sensor; if it cannot start, say so and go on."""
    fan = SensorRunner(sensor_factory("fanotify"), emit, pipeline.on_gap, metrics)
    try:
        fan.start()
    except UserError as exc:
        stderr.print(f"kubeguard agent: warning: {exc}; file writes are seen by {runners[0].name} only",
                     markup=False)
        return
    runners.append(fan)


def _stats(runners: list[SensorRunner]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for running in runners:
        out.update(running.stats())
    return out


def _announce(runners: list[SensorRunner], source: PodSource) -> None:
    for index, running in enumerate(runners):
        role = f"; pods from {source.name}" if index == 0 else " (file writes, next to the process sensor)"
        stderr.print(f"kubeguard agent: sensor {running.name} running{role}", markup=False)
        for spot in running.blind_spots:
            stderr.print(f"kubeguard agent: blind spot ({running.name}): {spot}", markup=False)
    sys.stderr.flush()


def _summary(pipeline: Pipeline, runners: list[SensorRunner]) -> None:
    lost = sum(int(s.get("lost", 0)) for s in _stats(runners).values())
    stderr.print(
        f"kubeguard agent: stopped; events {sum(pipeline.received.values())}, processed {pipeline.processed}, "
        f"dropped {pipeline.total_dropped} (queue) + {lost} (kernel), alerts {pipeline.alerts_raised}, "
        f"stored {pipeline.stored}", markup=False,
    )
