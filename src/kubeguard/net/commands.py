"""`kubeguard dpi`: inspect pcap/pcapng files or a live interface; alerts out, flow records optional."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any

import typer
from rich.markup import escape

from kubeguard.cliutil import UserError, die, stderr, stdout, stdout_failed, warn
from kubeguard.cluster.podmap import PodMap, PodMapError
from kubeguard.model import Alert
from kubeguard.net.capture import CaptureError, CaptureFile, interface_exists, live, read_file
from kubeguard.net.dpi_engine import Engine, EngineConfig
from kubeguard.store.alerts import AlertStore, StoreError

STORE_BATCH = 100
_COLOURS = {"Critical": "bold red", "Error": "red", "Warning": "yellow", "Notice": "cyan", "Informational": "dim"}


class AlertSink:
    """Prints alerts (Rich lines or Falco JSON) and stores them durably in batches.

    A failed write to stdout (a full disk, a closed pipe) stops the printing, not the run: the
    alerts are still counted and stored, and `write_error` says what failed.
    """

    def __init__(self, output: str, store: AlertStore | None, live_mode: bool) -> None:
        self.output = output
        self.store = store
        self.batch: list[Alert] = []
        self.live_mode = live_mode
        self.count = 0
        self.write_error: str | None = None

    def __call__(self, alert: Alert) -> None:
        self.count += 1
        if self.write_error is None:
            try:
                if self.output == "json":
                    print(alert.to_json(), flush=self.live_mode)
                else:
                    colour = _COLOURS.get(alert.priority, "")
                    stdout.print(f"[{colour}]{alert.priority:<8}[/] {alert.time} {escape(alert.output)}")
            except OSError as exc:
                self._failed(exc)
        if self.store is not None:
            self.batch.append(alert)
            if self.live_mode or len(self.batch) >= STORE_BATCH:
                self.flush()

    def flush(self) -> None:
        if self.store is not None and self.batch:
            self.store.add(self.batch)
            self.batch = []

    def flush_output(self) -> None:
        """Push buffered alert lines out, so a write error is seen before the run reports success."""
        if self.write_error is None:
            try:
                sys.stdout.flush()
            except OSError as exc:
                self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        """Keep the error; point stdout at /dev/null so the lines still buffered do not fail again at exit."""
        self.write_error = exc.strerror or str(exc)
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


class FlowWriter:
    """One JSON line per finished flow; a failed write stops the writing and is kept in `error`."""

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.count = 0
        self.error: str | None = None

    def __call__(self, record: dict[str, Any]) -> None:
        if self.error is not None:
            return
        try:
            self.fh.write(json.dumps(record, default=str) + "\n")
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return
        self.count += 1

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError as exc:
            self.error = self.error or exc.strerror or str(exc)


def dpi(
    files: list[Path] = typer.Argument(None, help="pcap / pcapng files to inspect.", show_default=False),
    interface: str = typer.Option(None, "--interface", "-i", help="Capture live on this interface (root)."),
    duration: float = typer.Option(None, "--duration", help="Live: stop after this many seconds."),
    count: int = typer.Option(None, "--count", help="Live: stop after this many frames."),
    pods: Path = typer.Option(None, "--pods", help="Snapshot or `kubectl get pods -o json` file naming pod IPs."),
    flows_out: Path = typer.Option(None, "--flows-out", help="Write one JSON line per flow to this file."),
    output: str = typer.Option("rich", "--output", "-o", help="Alert output: rich or json (Falco format)."),
    db: Path = typer.Option(None, "--db", help="Alert store (default $KUBEGUARD_DB or ~/.local/share/kubeguard)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not write alerts to the alert store."),
    stream_depth: int = typer.Option(1 << 20, "--stream-depth", help="Bytes inspected per TCP direction."),
    max_flows: int = typer.Option(200_000, "--max-flows", help="Flow table size bound."),
) -> None:
    """Deep packet inspection: flows, protocol identification, L7 attacks, from files or a live interface."""
    try:
        code = _run(files or [], interface, duration, count, pods, flows_out, output, db, no_store, stream_depth,
                    max_flows)
    except UserError as exc:
        die(str(exc), exc.code)
    raise typer.Exit(code)


def _run(files: list[Path], interface: str | None, duration: float | None, count: int | None, pods: Path | None,
         flows_out: Path | None, output: str, db: Path | None, no_store: bool, stream_depth: int,
         max_flows: int) -> int:
    if output not in ("rich", "json"):
        raise UserError(f"--output: expected rich or json, got {output!r}")
    if bool(files) == bool(interface):
        raise UserError("give capture files or --interface IF (exactly one of them)")
    if stream_depth < 0 or max_flows < 1:
        raise UserError("--stream-depth must be >= 0 and --max-flows >= 1")
    if interface and not interface_exists(interface):
        raise UserError(f"--interface {interface}: no such network interface")
    for path in files:
        if not path.is_file():
            raise UserError(f"{path}: no such capture file")
    podmap = None
    if pods is not None:
        try:
            podmap = PodMap.from_file(pods)
        except PodMapError as exc:
            raise UserError(str(exc)) from exc
    store = None
    if not no_store:
        try:
            store = AlertStore(db)
        except StoreError as exc:
            raise UserError(str(exc)) from exc
    flows_fh = None
    if flows_out is not None:
        try:
            flows_fh = flows_out.open("w")
        except OSError as exc:
            raise UserError(f"{flows_out}: cannot write flows: {exc.strerror or exc}") from exc
    sink = AlertSink(output, store, live_mode=bool(interface))
    writer = FlowWriter(flows_fh) if flows_fh else None
    engine = Engine(EngineConfig(stream_depth=stream_depth, max_flows=max_flows), podmap=podmap, on_alert=sink,
                    on_flow=writer)
    captures: list[CaptureFile] = []
    status = 0
    try:
        if interface:
            stop = threading.Event()
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                ready = lambda: stderr.print(f"dpi: capturing on {interface}", markup=False)  # noqa: E731
                engine.feed_frames(live(interface, duration=duration, count=count, stop=stop, on_ready=ready,
                                         on_drops=engine.drops.add_kernel_drops))
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
        for path in files:
            capture = read_file(path)
            captures.append(capture)
            try:
                engine.feed_frames(capture)
            except CaptureError as exc:
                warn(str(exc))
                status = 1
    except CaptureError as exc:
        raise UserError(str(exc)) from exc
    finally:
        engine.finish()
        try:
            sink.flush()
        except StoreError as exc:
            warn(str(exc))
            status = 1
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()
    sink.flush_output()
    if writer is not None and writer.error:
        warn(f"{flows_out}: cannot write flows: {writer.error}; the flow records there are incomplete")
        status = 1
    if sink.write_error:
        warn(f"stdout: cannot write alerts: {sink.write_error}; the printed alerts are incomplete"
             + (f" ({sink.count} alerts, all stored)" if store is not None else f" ({sink.count} alerts)"))
        status = 1
    # with JSON on stdout (or a stdout that failed) the summary goes to stderr, so stdout stays one alert per line
    out = stderr if output == "json" or sink.write_error or stdout_failed() else stdout
    try:
        out.print(_summary(engine, sink, captures), markup=False)
    except OSError as exc:
        warn(f"cannot write the summary: {exc.strerror or exc}")
        status = 1
    return status


def _summary(engine: Engine, sink: AlertSink, captures: list[CaptureFile]) -> str:
    """The one summary line: what was read, and every count of what was dropped or skipped."""
    decoder, table = engine.decoder, engine.table
    parts = [f"dpi: {engine.packets} packets, {table.created} flows, {sink.count} alerts"]
    if decoder.malformed:
        bad_time = f" ({decoder.bad_time} with out-of-range timestamps)" if decoder.bad_time else ""
        parts.append(f"{decoder.malformed} malformed{bad_time}")
    if decoder.non_ip:
        parts.append(f"{decoder.non_ip} non-IP or unsupported link-type frames skipped")
    skipped = sum(c.skipped for c in captures)
    if skipped:
        parts.append(f"{skipped} pcapng packets of undescribed interfaces skipped")
    if engine.inspection_errors:
        parts.append(f"{engine.inspection_errors} packets failed inspection (a bug: see the log)")
    if table.evicted_full:
        parts.append(f"{table.evicted_full} flows evicted early (flow table full, --max-flows {table.max_flows})")
    if engine.drops.kernel_drops:
        parts.append(f"{engine.drops.kernel_drops} packets dropped by the kernel (capture ring full)")
    return ", ".join(parts)
